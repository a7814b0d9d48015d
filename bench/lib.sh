# Shared by the bench scripts (sourced): timing a command with its peak RSS. Both need $out.

# measure LABEL COMMAND...: runs COMMAND under /usr/bin/time; its stdout (the --json result) goes to
# $out/LABEL.json and stderr to $out/LABEL.err; prints wall time and peak RSS. Stops on failure.
measure() {
  local label=$1; shift
  /usr/bin/time -f "%e %M" -o "$out/time.txt" "$@" > "$out/$label.json" 2> "$out/$label.err" || { tail "$out/$label.err"; exit 1; }
  read -r secs kb < "$out/time.txt"
  printf "%-12s %8.1f s (%.1f min)  peak RSS %7.0f MiB\n" "$label" "$secs" "$(echo "$secs / 60" | bc -l)" "$(echo "$kb / 1024" | bc -l)"
}

# measure_cpu LABEL COMMAND...: the same without keeping stdout, with CPU time and the load average.
measure_cpu() {
  local label=$1; shift
  /usr/bin/time -f "%e %M %U %S" -o "$out/time.txt" "$@" >/dev/null 2>"$out/err.txt" || { cat "$out/err.txt"; exit 1; }
  read -r secs kb usr sys < "$out/time.txt"
  printf "%-28s %8.2f s  (cpu %5.2f s)  peak RSS %8.1f MB   load %s\n" "$label" "$secs" "$(echo "$usr + $sys" | bc -l)" \
    "$(echo "$kb / 1024" | bc -l)" "$(cut -d' ' -f1-3 /proc/loadavg)"
}
