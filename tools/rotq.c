/* rotq: command dispatch and shared option helpers. */
#include <libgen.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli.h"
#include <time.h>

static const rotq_command commands[] = {
    {"info", cmd_info, "describe a model: architecture, sizes, dtypes, rotation sites"},
    {"convert", cmd_convert, "convert between HF folders, GGUF and llama2.c (F32/F16/BF16)"},
    {"hadamard", cmd_hadamard, "how an exact Hadamard matrix of order N is built, checked; --write saves it"},
    {"ppl", cmd_ppl, "perplexity on a text (papers' or llama.cpp's protocol)"},
    {"generate", cmd_generate, "greedy text generation from a prompt"},
    {"rotate", cmd_rotate, "fuse norms and apply the QuaRot rotations R1-R4, write the rotated model"},
    {"stats", cmd_stats, "activation outliers (max/rms, kurtosis) per layer and site, before/after rotation"},
    {"verify", cmd_verify, "run two models on the same tokens: max |dlogit|, KL, perplexities"},
    {"tokenize", cmd_tokenize, "text to token ids with a model's tokenizer (or ids to text)"},
    {"eval", cmd_eval, "float vs quantized perplexity: rotate, RTN/GPTQ weights, activation/KV fake quant"},
    {"quantize", cmd_quantize, "rotate and quantize the weights (RTN/GPTQ), write them dequantized"},
};

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

static void usage(FILE *f) {
    fprintf(f, "rotq %s — rotate LLMs so they quantize to 4 bits\n\nusage: rotq COMMAND [options]\n\ncommands:\n", ROTQ_VERSION);
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        fprintf(f, "  %-10s %s\n", commands[i].name, commands[i].summary);
    fprintf(f, "\n'rotq COMMAND --help' describes a command.\n");
    fprintf(f, "Every command refuses a model with tensors its architecture gives no role (they would be ignored);\n"
               "--allow-unused (with any command) loads it anyway, naming them in a warning.\n");
}

/* --allow-unused, accepted by every command that loads a model (taken out of argv in main). */
static bool allow_unused;

/* rotq's OpenMP loops alternate with serial work, file writes and OpenBLAS calls (which run on
 * OpenBLAS's own threads). By default libgomp lets an idle thread spin for milliseconds before it
 * sleeps, so it burns a core that the working thread or BLAS needs: SmolLM2 rotate under a load of
 * 4 on 2 cores took ~8 s wall / 7 s CPU spinning vs ~3.7 s / 2.6 s passive, and one 2048-token
 * perplexity window on the idle machine 10.6–11.3 s vs 6.7–7.8 s. libgomp reads OMP_WAIT_POLICY
 * only when it starts, so every command sets it and starts again, unless the user chose a policy
 * (or the re-exec fails: then it goes on as it is). */
static void prefer_passive_wait(char **argv) {
    if (getenv("OMP_WAIT_POLICY") || getenv("GOMP_SPINCOUNT")) return;
    if (setenv("OMP_WAIT_POLICY", "passive", 1) != 0) return;
    execv("/proc/self/exe", argv);
}

/* The library's warnings and progress lines, on stderr as every command's own. */
static void log_to_stderr(void *ctx, rotq_log_level level, const char *line) {
    (void)ctx;
    if (level == ROTQ_LOG_INFO) fprintf(stderr, "rotq: %s\n", line);
    else fprintf(stderr, "rotq: %s: %s\n", rotq_log_level_name(level), line);
}

int main(int argc, char **argv) {
    rotq_log_set(log_to_stderr, NULL);
    if (argc < 2 || strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "help") == 0) {
        usage(argc < 2 ? stderr : stdout);
        return argc < 2 ? 2 : 0;
    }
    if (strcmp(argv[1], "--version") == 0) {
        printf("rotq %s\n", ROTQ_VERSION);
        return 0;
    }
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        if (strcmp(argv[1], commands[i].name) == 0) {
            prefer_passive_wait(argv);
            int n = 0;
            for (int a = 0; a < argc; a++) {
                if (a > 1 && strcmp(argv[a], "--allow-unused") == 0) allow_unused = true;
                else argv[n++] = argv[a];
            }
            argv[n] = NULL;
            return commands[i].run(n - 1, argv + 1);
        }
    fprintf(stderr, "rotq: unknown command '%s'\n\n", argv[1]);
    usage(stderr);
    return 2;
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
    lo.allow_unused = allow_unused;
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
