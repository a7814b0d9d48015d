/* rotq: command dispatch (the shared helpers are in cli.c). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"

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


static void usage(FILE *f) {
    fprintf(f, "rotq %s — rotate LLMs so they quantize to 4 bits\n\nusage: rotq COMMAND [options]\n\ncommands:\n", ROTQ_VERSION);
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        fprintf(f, "  %-10s %s\n", commands[i].name, commands[i].summary);
    fprintf(f, "\n'rotq COMMAND --help' describes a command.\n");
    fprintf(f, "Every command refuses a model with tensors its architecture gives no role (they would be ignored);\n"
               "--allow-unused (with any command) loads it anyway, naming them in a warning.\n");
}


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
                if (a > 1 && strcmp(argv[a], "--allow-unused") == 0) cli_allow_unused = true;
                else argv[n++] = argv[a];
            }
            argv[n] = NULL;
            return commands[i].run(n - 1, argv + 1);
        }
    fprintf(stderr, "rotq: unknown command '%s'\n\n", argv[1]);
    usage(stderr);
    return 2;
}
