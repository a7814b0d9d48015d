/* The helpers every command shares (cli.h): errors, option values, loading, texts, timing. Kept apart
 * from main (rotq.c) so that test tools built on the same conventions link them too. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"

bool cli_allow_unused;
bool cli_usage_error;

/* The arguments after "--" (main takes the "--" out): never options, whatever they look like. */
static const char *const *positional_only;
static int n_positional_only;

void cli_set_positional_only(const char *const *args, int n) {
    positional_only = args;
    n_positional_only = n;
}

static bool forced_positional(const char *arg) {
    for (int k = 0; k < n_positional_only; k++)
        if (positional_only[k] == arg) return true;
    return false;
}

int cli_usage(const char *cmd, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "rotq %s: usage error: ", cmd);
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, " (rotq help %s)\n", cmd);
    va_end(ap);
    cli_usage_error = true;
    return 1;
}

int cli_int(const char *cmd, const char *opt, const char *v, int64_t lo, int64_t hi, int64_t *out) {
    char *end;
    errno = 0;
    long long x = v ? strtoll(v, &end, 10) : 0;
    if (!v || !*v || *end || errno || x < lo || x > hi)
        return cli_usage(cmd, "%s needs an integer from %lld to %lld%s%s", opt, (long long)lo, (long long)hi, v ? ", not " : "", v ? v : "");
    *out = x;
    return 0;
}

int cli_unknown(const char *cmd, const char *arg) {
    const char *eq = strchr(arg, '=');
    if (eq) return cli_usage(cmd, "unknown option %s (an on/off flag takes no value: give %.*s alone)", arg, (int)(eq - arg), arg);
    return cli_usage(cmd, "unknown option %s", arg);
}

bool cli_is_option(const char *arg) { return arg[0] == '-' && arg[1] && !forced_positional(arg); }

bool cli_flag(const char *arg, const char *name) { return !forced_positional(arg) && strcmp(arg, name) == 0; }

int cli_error(const char *cmd, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "rotq %s: error: ", cmd);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    return 1;
}

void cli_print_transforms(const char *label, const char *list) {
    size_t pad = strlen(label);
    printf("%s", label);
    for (const char *p = list; *p; p++) {
        putchar(*p);
        if (*p == '\n') printf("%*s", (int)pad, "");
    }
    putchar('\n');
}

uint64_t cli_splitmix64(uint64_t *state) {
    uint64_t z = (*state += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

double cli_now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

int cli_lib_error(const char *cmd, rotq_status s) {
    return cli_error(cmd, "%s (%s)", rotq_last_error()[0] ? rotq_last_error() : "failed", rotq_status_name(s));
}

bool cli_is(const char *arg, const char *name) {
    if (forced_positional(arg)) return false;
    size_t n = strlen(name);
    return strncmp(arg, name, n) == 0 && (arg[n] == 0 || arg[n] == '=');
}

const char *cli_value(int argc, char **argv, int *i) {
    const char *eq = strchr(argv[*i], '=');
    if (eq && argv[*i][0] == '-') return eq + 1;
    if (*i + 1 >= argc) return NULL;
    return argv[++*i];
}

bool cli_wants_help(int argc, char **argv) {
    for (int i = 1; i < argc; i++)
        if (cli_flag(argv[i], "--help") || cli_flag(argv[i], "-h")) return true;
    return false;
}

int cli_check_output(const char *cmd, const char *in, const char *out, rotq_output_kind kind, bool force) {
    rotq_status s = rotq_output_check(out, kind, force, in);
    if (s != ROTQ_OK) return cli_error(cmd, "%s (nothing was loaded or written)", rotq_last_error());
    return 0;
}

rotq_output_kind cli_model_output_kind(const char *out, rotq_format format) {
    size_t n = strlen(out);
    bool gguf = format == ROTQ_FORMAT_GGUF || (format == ROTQ_FORMAT_AUTO && n > 5 && strcmp(out + n - 5, ".gguf") == 0);
    return gguf ? ROTQ_OUTPUT_FILE : ROTQ_OUTPUT_FOLDER;
}

int cli_load(const char *cmd, const char *path, const char *arch_file, const char *tokenizer, rotq_model **m) {
    rotq_load_options lo = rotq_load_defaults();
    lo.arch_file = arch_file;
    lo.tokenizer = tokenizer;
    lo.allow_unused = cli_allow_unused;
    rotq_status s = rotq_model_load(path, &lo, m);
    return s == ROTQ_OK ? 0 : cli_lib_error(cmd, s);
}

int cli_read_text(const char *cmd, const char *path, int *format, char **text, uint64_t *len) {
    uint8_t *raw;
    uint64_t size;
    rotq_status s = rotq_read_file(path, &raw, &size);
    if (s != ROTQ_OK) return cli_lib_error(cmd, s);
    if (*format == 0) {
        char copy[4096];
        snprintf(copy, sizeof copy, "%s", path);
        const char *base = basename(copy);
        size_t bl = strlen(base);
        *format = strncmp(base, "wiki.", 5) == 0 && bl > 4 && strcmp(base + bl - 4, ".raw") == 0 ? 1 : 2;
    }
    if (*format == 1) {
        s = rotq_text_join_rows(raw, size, text, len);
        free(raw);
        return s == ROTQ_OK ? 0 : cli_lib_error(cmd, s);
    }
    *text = realloc(raw, size + 1);
    if (!*text) {
        free(raw);
        return cli_error(cmd, "out of memory");
    }
    (*text)[size] = 0;
    *len = size;
    return 0;
}
