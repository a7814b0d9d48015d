/* rotq learn MODEL OUTDIR: learn R1/R2 (SpinQuant's Cayley SGD through the fake-quantized model)
 * from a calibration text and write them for rotq eval/quantize/rotate (--rotations OUTDIR). */
#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "quant_cli.h"

static const char *help_head =
    "usage: rotq learn MODEL OUTDIR --calib FILE [options]\n"
    "\n"
    "Several processes: mpirun -np N rotq learn ... splits each step's sequences across N ranks\n"
    "(a build made with -DROTQ_MPI=ON); the result equals one process's, up to summation order; rank 0 prints and writes.\n"
    "\n"
    "Learns the fused rotations R1 (residual stream) and R2 (per head, V -> O) by Cayley SGD on the\n"
    "orthogonal group through the fake-quantized model (SpinQuant): the weights stay frozen, each\n"
    "quantizer sees its input through the rotations, and the loss (next-token cross-entropy, or KL to\n"
    "the float model) is minimised over windows of the calibration text. Writes OUTDIR (a new folder):\n"
    "r1.safetensors, r2.layerL.safetensors and learn.json (settings, loss per step). Use them with\n"
    "  rotq eval MODEL --rotations OUTDIR ...   (also rotq quantize and rotq rotate)\n"
    "with the R3/R4 settings they were learned with. Never train on the evaluation text.\n"
    "training (SpinQuant's recipe by default):\n"
    "  --calib FILE       the training text (required)\n"
    "  --steps N          optimizer steps (default 100)\n"
    "  --batch N          sequences per step (default 8)\n"
    "  --seq-len N        tokens per sequence (default 2048)\n"
    "  --n-seqs N         windows drawn from the text, seeded, used in turn (default 800)\n"
    "  --lr F             learning rate (default 1.5); the Cayley step is min(lr, 1/|W|_1)\n"
    "  --schedule cosine|linear|constant  (default cosine, to 0 at the last step)\n"
    "  --momentum F       (default 0)\n"
    "  --loss ce|kl       next-token cross-entropy (default) or KL(float model || quantized model)\n"
    "  --learn r1,r2|r1|r2  which rotations move (default both); the other keeps its start\n"
    "quantizers on while learning: --preset and the activation/KV options of rotq eval (default\n"
    "  --preset w4a4kv4). Weights stay float (W16A4KV4, as SpinQuant learns before GPTQ) unless --w-bits N\n"
    "  is given: then each step rounds the rotated weights to N bits (RTN, each row's or group's full\n"
    "  range; --w-group, --w-asym apply), as SpinQuant learns for RTN weights\n"
    "starting point: --r1/--r2 KIND (random-hadamard: QuaRot's, the default; hadamard, orthogonal, a\n"
    "  file, a folder of rotations, or none: left out), --r3/--r4 on|off, --seed N (rotations and windows)\n"
    "  --threads N        BLAS/OpenMP threads (default: all)\n"
    "  --json             a JSON summary on stdout;  --quiet  no progress line\n";

typedef struct learn_cli {
    rotq_learn_options o;
    bool quiet;
} learn_cli;

static void progress(void *ctx, const rotq_learn_step *s) {
    learn_cli *c = ctx;
    if (c->quiet) return;
    fprintf(stderr, "rotq learn: step %lld/%lld  loss %.4f  lr %.3g  step %.3g  |g| %.3g  orth %.1e  %.0f tok/s  ETA %.0fs\n",
            (long long)s->step, (long long)s->steps, s->loss, s->lr, s->alpha, s->grad_norm, s->orth_err, s->tokens_per_s,
            s->eta_s);
}

/* The options rotq learn reads itself (the rest go to the shared parser): 1 consumed, 0 not one, -1 bad. */
static int learn_option(int argc, char **argv, int *i, rotq_learn_options *o) {
    const char *a = argv[*i], *v;
    int64_t n;
    char *end;
    int64_t *dst = cli_is(a, "--steps") ? &o->steps : cli_is(a, "--batch") ? &o->batch : cli_is(a, "--seq-len") ? &o->seq_len
                 : cli_is(a, "--n-seqs") ? &o->n_seqs : NULL;
    if (dst) {
        char name[16];
        snprintf(name, sizeof name, "%.*s", (int)strcspn(a, "="), a);
        if (cli_int("learn", name, cli_value(argc, argv, i), dst == &o->seq_len ? 2 : 1, 1 << 24, &n)) return -1;
        *dst = n;
        return 1;
    }
    if (cli_is(a, "--lr") || cli_is(a, "--momentum")) {
        bool lr = cli_is(a, "--lr");
        v = cli_value(argc, argv, i);
        errno = 0;
        double x = v ? strtod(v, &end) : NAN;
        if (!v || *end || errno || !(lr ? x > 0 && x < 1e6 : x >= 0 && x < 1))
            return -cli_usage("learn", "%s needs a number %s", lr ? "--lr" : "--momentum", lr ? "> 0" : "in [0, 1)");
        if (lr) o->lr = x;
        else o->momentum = x;
        return 1;
    }
    if (cli_is(a, "--schedule")) {
        v = cli_value(argc, argv, i);
        if (v && strcmp(v, "cosine") == 0) o->schedule = ROTQ_LR_COSINE;
        else if (v && strcmp(v, "linear") == 0) o->schedule = ROTQ_LR_LINEAR;
        else if (v && strcmp(v, "constant") == 0) o->schedule = ROTQ_LR_CONSTANT;
        else return -cli_usage("learn", "--schedule %s: expected cosine, linear or constant", v ? v : "(nothing)");
        return 1;
    }
    if (cli_is(a, "--loss")) {
        v = cli_value(argc, argv, i);
        if (v && strcmp(v, "ce") == 0) o->loss = ROTQ_LEARN_CE;
        else if (v && strcmp(v, "kl") == 0) o->loss = ROTQ_LEARN_KL;
        else return -cli_usage("learn", "--loss %s: expected ce or kl", v ? v : "(nothing)");
        return 1;
    }
    if (cli_is(a, "--learn")) {
        v = cli_value(argc, argv, i);
        if (v && strcmp(v, "r1,r2") == 0) o->learn_r1 = o->learn_r2 = true;
        else if (v && strcmp(v, "r1") == 0) o->learn_r1 = true, o->learn_r2 = false;
        else if (v && strcmp(v, "r2") == 0) o->learn_r1 = false, o->learn_r2 = true;
        else return -cli_usage("learn", "--learn %s: expected r1,r2, r1 or r2", v ? v : "(nothing)");
        return 1;
    }
    return 0;
}

int cmd_learn(int argc, char **argv) {
    if (cli_wants_help(argc, argv)) {
        fputs(help_head, stdout);
        fputs("\nquantizer options (as rotq eval):\n", stdout);
        fputs(quant_cli_help, stdout);
        return 0;
    }
    learn_cli lc = {.o = rotq_learn_defaults()};
    /* learning options here; everything else (quantizers, rotations, --calib, --json ...) through the
     * parser rotq eval uses, with --preset w4a4kv4 first unless one is given */
    char **rest = calloc((size_t)argc + 3, sizeof *rest);
    if (!rest) return cli_error("learn", "out of memory");
    int n = 0;
    bool preset = false, wbits = false, gptq = false;
    rest[n++] = argv[0];
    for (int i = 1; i < argc; i++) {
        if (cli_is(argv[i], "--preset")) preset = true;
        if (cli_is(argv[i], "--w-bits")) wbits = true;
        if (cli_is(argv[i], "--w-quant") || cli_is(argv[i], "--format") || cli_is(argv[i], "--w-grid")) gptq = true;
        int used = cli_is_option(argv[i]) ? learn_option(argc, argv, &i, &lc.o) : 0;
        if (used < 0) { free(rest); return 1; }
        if (used == 0) rest[n++] = argv[i];
    }
    if (!preset) rest[n++] = "--preset", rest[n++] = "w4a4kv4";
    quant_cli c;
    int rc = quant_cli_parse("learn", n, rest, &c);
    free(rest);
    if (rc) return rc;
    if (gptq) return cli_usage("learn", "weights in the loop are RTN (--w-bits N); GPTQ-family quantizers and GGUF types run "
                               "after learning: rotq eval/quantize --rotations OUTDIR --w-quant gptq ...");
    if (c.text) return cli_usage("learn", "--text: learning reads only --calib (never train on the evaluation text)");
    if (c.n_positional != 2) return cli_usage("learn", "expected MODEL and OUTDIR (see rotq learn --help)");
    if (!c.calib) return cli_usage("learn", "--calib FILE is required: the text the rotations are learned on");
    if (!wbits) c.q.w_bits = 16, c.q.w_method = ROTQ_WQ_NONE; /* a preset's weight bits do not count */
    else c.q.w_clip = false;                                   /* full-range RTN in the loop */
    lc.o.quant = c.q;
    lc.o.rot = c.ro;
    lc.o.threads = c.q.threads;
    lc.quiet = c.quiet;
    lc.o.progress = progress;
    lc.o.progress_ctx = &lc;
    const char *in = c.positional[0], *out = c.positional[1];
    if (cli_check_output("learn", in, out, ROTQ_OUTPUT_FOLDER, false)) return 1;

    rotq_model *m = NULL;
    if (cli_load("learn", in, c.arch_file, c.tokenizer, &m)) return 1;
    rotq_status s = rotq_learn_supported(m); /* before tokenizing the calibration text */
    if (s != ROTQ_OK) { rotq_model_free(m); return cli_lib_error("learn", s); }
    rotq_tokenizer *tok = NULL;
    s = rotq_tokenizer_from_model(m, &tok);
    if (s != ROTQ_OK) { rotq_model_free(m); return cli_lib_error("learn", s); }
    int32_t *ids = NULL;
    int64_t n_ids = 0;
    uint64_t bytes;
    bool wt;
    if (quant_cli_tokenize_file("learn", tok, c.calib, 0, &ids, &n_ids, &bytes, &wt)) {
        rotq_tokenizer_free(tok), rotq_model_free(m);
        return 1;
    }
    char qdesc[256], rdesc[160];
    rotq_quant_describe(&lc.o.quant, qdesc, sizeof qdesc);
    c.rotate = true;
    quant_cli_rotation_desc(&c, rdesc, sizeof rdesc);
    if (!c.quiet)
        fprintf(stderr, "rotq learn: %s; %lld steps x %lld x %lld tokens from %lld windows of %s (%lld tokens); lr %g %s; "
                "while learning: %s; start: %s\n", in, (long long)lc.o.steps, (long long)lc.o.batch, (long long)lc.o.seq_len,
                (long long)lc.o.n_seqs, c.calib, (long long)n_ids, lc.o.lr,
                lc.o.schedule == ROTQ_LR_COSINE ? "cosine" : lc.o.schedule == ROTQ_LR_LINEAR ? "linear" : "constant", qdesc, rdesc);
    rotq_learn_report rep;
    s = rotq_learn_rotations(m, &lc.o, ids, n_ids, out, &rep);
    free(ids);
    rotq_tokenizer_free(tok);
    rotq_model_free(m);
    if (s != ROTQ_OK) return cli_lib_error("learn", s);
    if (c.json) {
        json_t *j = json_pack("{s:s, s:s, s:s, s:s, s:I, s:I, s:I, s:I, s:f, s:f, s:f, s:f, s:f}", "model", in, "rotations", out,
                              "quantization_while_learning", qdesc, "start", rdesc, "steps", (json_int_t)rep.steps,
                              "batch", (json_int_t)lc.o.batch, "seq_len", (json_int_t)lc.o.seq_len, "tokens",
                              (json_int_t)rep.tokens, "first_loss", rep.first_loss, "last_loss", rep.last_loss,
                              "orthogonality_error", rep.orth_err, "seconds", rep.seconds, "lr", lc.o.lr);
        json_object_set_new(j, "step_seconds", json_real(rep.step_seconds));
        json_object_set_new(j, "seconds_per_step_per_1k_tokens",
                            json_real(rep.step_seconds / (double)rep.steps / ((double)lc.o.batch * (double)lc.o.seq_len / 1000.0)));
        char *t = json_dumps(j, JSON_INDENT(1));
        puts(t);
        free(t);
        json_decref(j);
    } else {
        printf("learned rotations: %s\n", out);
        printf("steps %lld (%lld tokens), loss %.4f -> %.4f, max |R^T R - I| %.1e, %.1f s\n", (long long)rep.steps,
               (long long)rep.tokens, rep.first_loss, rep.last_loss, rep.orth_err, rep.seconds);
        if (wbits) /* the rotations fit the quantizer they were learned with: say which */
            printf("use: rotq eval %s --rotations %s --w-bits %d --w-quant rtn --no-w-clip%s ...\n", in, out, (int)c.q.w_bits,
                   c.ro.r3 && c.ro.r4 ? "" : " (with the same --r3/--r4)");
        else printf("use: rotq eval %s --rotations %s%s ...\n", in, out, c.ro.r3 && c.ro.r4 ? "" : " (with the same --r3/--r4)");
    }
    return 0;
}
