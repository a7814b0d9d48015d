/* rotq: command dispatch (the shared helpers are in cli.c). */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"

static const rotq_command commands[] = {
    {"info", cmd_info, "describe a model: architecture, sizes, dtypes, rotation sites", false},
    {"convert", cmd_convert, "convert between HF folders, GGUF and llama2.c (F32/F16/BF16)", false},
    {"hadamard", cmd_hadamard, "how an exact Hadamard matrix of order N is built, checked; --write saves it", false},
    {"ppl", cmd_ppl, "perplexity on a text (papers' or llama.cpp's protocol)", true},
    {"generate", cmd_generate, "greedy text generation from a prompt", false},
    {"rotate", cmd_rotate, "fuse norms and apply the QuaRot rotations R1-R4, write the rotated model", false},
    {"stats", cmd_stats, "activation outliers (max/rms, kurtosis) per layer and site, before/after rotation", false},
    {"verify", cmd_verify, "run two models on the same tokens: max |dlogit|, KL, perplexities", false},
    {"tokenize", cmd_tokenize, "text to token ids with a model's tokenizer (or ids to text)", false},
    {"eval", cmd_eval, "float vs quantized perplexity: rotate, RTN/GPTQ/GPTAQ/Qronos weights, activation/KV fake quant", true},
    {"quantize", cmd_quantize, "rotate and quantize the weights (RTN/GPTQ/GPTAQ/Qronos), write them", true},
    {"learn", cmd_learn, "learn R1/R2 by Cayley SGD through the quantized model (SpinQuant), write them", true},
};


static void usage(FILE *f) {
    fprintf(f, "rotq %s — rotate LLMs so they quantize to 4 bits\n\nusage: rotq COMMAND [options]\n\ncommands:\n", ROTQ_VERSION);
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        fprintf(f, "  %-10s %s\n", commands[i].name, commands[i].summary);
    fprintf(f, "\nppl, eval, quantize and learn split their windows across processes under mpirun -np N (a build with\n"
               "-DROTQ_MPI=ON; this one: %s); the others run on rank 0.\n", rotq_dist_backend());
    fprintf(f, "\n'rotq help COMMAND' (or 'rotq COMMAND --help') describes a command; '--' ends the options.\n"
               "Exit codes: 0 success, 1 error, 2 usage error, 3 a check that failed (verify), 128+N killed by signal N.\n");
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

/* SIGINT/SIGTERM: the first asks the library to stop at its next check point (it removes its
 * temporaries and returns ROTQ_ERR_CANCELLED); a second one ends the process at once. */
static volatile sig_atomic_t got_signal;

static void on_signal(int sig) {
    if (got_signal) {
        signal(sig, SIG_DFL);
        raise(sig);
        return;
    }
    got_signal = sig;
    rotq_cancel();
    static const char msg[] = "rotq: stopping (removing temporaries); signal again to quit at once\n";
    ssize_t w = write(2, msg, sizeof msg - 1);
    (void)w;
}

static void install_signal_handlers(void) {
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
}

/* A command's results went to stdout: a full disk or closed pipe must not end in exit 0. */
static int finish(int rc) {
    if (fflush(stdout) != 0 || ferror(stdout)) {
        fprintf(stderr, "rotq: error: writing the results to standard output failed: %s\n", strerror(errno ? errno : EIO));
        if (rc == 0) rc = 1;
    }
    if (got_signal) {
        fflush(stderr);
        signal(got_signal, SIG_DFL);
        raise(got_signal); /* the caller sees the signal, as if the temporaries had never been there */
        rc = 128 + got_signal;
    }
    return rc;
}

static const rotq_command *find_command(const char *name) {
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        if (strcmp(name, commands[i].name) == 0) return &commands[i];
    return NULL;
}

int main(int argc, char **argv) {
    rotq_log_set(log_to_stderr, NULL);
    /* the re-exec for OpenMP's wait policy comes before MPI starts (a process that exec()s after MPI_Init
     * leaves its launcher waiting) */
    if (argc >= 2 && find_command(argv[1])) prefer_passive_wait(argv);
    if (rotq_dist_init(&argc, &argv) != ROTQ_OK) {
        fprintf(stderr, "rotq: %s\n", rotq_last_error());
        return 1;
    }
    atexit(rotq_dist_finalize);
    if (rotq_dist_rank() > 0) {
        /* ranks past 0 compute their share and stay silent: rank 0 prints and writes */
        if (!freopen("/dev/null", "w", stdout) || !freopen("/dev/null", "w", stderr)) return 1;
    }
    if (argc >= 2 && strcmp(argv[1], "help") == 0 && argc >= 3) {
        const rotq_command *c = find_command(argv[2]);
        if (!c) {
            fprintf(stderr, "rotq: unknown command '%s'\n\n", argv[2]);
            usage(stderr);
            return 2;
        }
        char *help_argv[] = {argv[2], "--help", NULL};
        return finish(c->run(2, help_argv));
    }
    if (argc < 2 || strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "help") == 0) {
        usage(argc < 2 ? stderr : stdout);
        return finish(argc < 2 ? 2 : 0);
    }
    if (strcmp(argv[1], "--version") == 0) {
        printf("rotq %s (processes: %s)\n", ROTQ_VERSION, rotq_dist_backend());
        return finish(0);
    }
    const rotq_command *c = find_command(argv[1]);
    if (!c) {
        fprintf(stderr, "rotq: unknown command '%s'\n\n", argv[1]);
        usage(stderr);
        return 2;
    }
    /* under mpirun, the commands that split their work across ranks run on every rank; the others on rank 0 */
    if (rotq_dist_rank() > 0 && !c->parallel) return finish(0);
    install_signal_handlers();
    int n = 0, dashdash = -1;
    for (int a = 0; a < argc; a++) {
        if (dashdash < 0 && a > 1 && strcmp(argv[a], "--") == 0) dashdash = n;
        else if (dashdash < 0 && a > 1 && strcmp(argv[a], "--allow-unused") == 0) cli_allow_unused = true;
        else argv[n++] = argv[a];
    }
    argv[n] = NULL;
    if (dashdash >= 0) cli_set_positional_only((const char *const *)argv + dashdash, n - dashdash);
    int rc = c->run(n - 1, argv + 1);
    if (cli_usage_error && rc != 0) rc = 2;
    return finish(rc);
}
