#!/usr/bin/env bash
# After ctest: names every skipped test with its reason, and every passed test that ran with a
# reduced scope (it printed a line starting "skip" or "note:"), from ctest's console output and
# its log. Usage: test_summary.sh BUILD_DIR CTEST_CONSOLE_OUTPUT
set -euo pipefail
log="$1/Testing/Temporary/LastTest.log"
[ -f "$log" ] && [ -f "$2" ] || { echo "test summary: no ctest output to read" >&2; exit 0; }
awk '
  FNR == NR { if ($0 ~ /\*\*\*Skipped/) { for (i = 1; i <= NF; i++) if ($i == "Test" && $(i+1) ~ /^#/) skipped[$(i+2)] = 1 } next }
  /^[0-9]+\/[0-9]+ Testing: / { name = $3; next }
  /^(skip|SKIP|Skip|note:)/ { if (name != "") { w = (name in why) ? why[name] "\n" sprintf("%-38s", "") $0 : $0; why[name] = w } next }
  END {
    for (t in skipped) { printf "skipped  %-28s %s\n", t, (t in why) ? why[t] : "(no reason printed)"; ns++ }
    for (t in why) if (!(t in skipped)) { printf "partial  %-28s %s\n", t, why[t]; np++ }
    printf "test summary: %d skipped, %d passed with a reduced scope; reasons above\n", ns, np
  }' "$2" "$log" >&2
