/* The helpers every command shares (cli.h): errors, option values, loading, texts, timing. Kept apart
 * from main (rotq.c) so that test tools built on the same conventions link them too. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"

bool cli_allow_unused;

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
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) return true;
    return false;
}

int cli_check_output(const char *cmd, const char *in, const char *out) {
    rotq_status s = rotq_path_check_distinct(in, out);
    if (s != ROTQ_OK) return cli_lib_error(cmd, s);
    char dir[4096];
    snprintf(dir, sizeof dir, "%s", out);
    size_t n = strlen(dir);
    while (n > 1 && dir[n - 1] == '/') dir[--n] = '\0'; /* "out/" names the folder out */
    char *slash = strrchr(dir, '/');
    if (!slash) snprintf(dir, sizeof dir, ".");
    else if (slash == dir) dir[1] = '\0';
    else *slash = '\0';
    struct stat st;
    if (stat(dir, &st) != 0 || !S_ISDIR(st.st_mode))
        return cli_error(cmd, "%s: the folder %s does not exist (nothing was loaded or written)", out, dir);
    if (access(dir, W_OK) != 0)
        return cli_error(cmd, "%s: the folder %s is not writable (nothing was loaded or written)", out, dir);
    return 0;
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
