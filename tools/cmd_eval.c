/* rotq eval MODEL: float baseline perplexity, then rotate (optional), quantize weights (RTN or
 * GPTQ from calibration text), and the perplexity with activation/KV fake quantization — the whole
 * QuaRot measurement in one run. Also the option parser rotq quantize shares (quant_cli.h). */
#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"
#include "nn_cli.h"
#include "quant_cli.h"

const char *quant_cli_help =
    "rotation (in memory, as rotq rotate; any --rN implies --rotate):\n"
    "  --rotate           QuaRot: random-Hadamard R1 and R2, online R3 and R4\n"
    "  --r1 KIND, --r2 KIND  random-hadamard (default), hadamard, orthogonal, none, or a .safetensors file\n"
    "  --r3 on|off, --r4 on|off  online Hadamards on Q/K after RoPE and before down_proj (default on)\n"
    "  --seed N           seed of the rotations and of the calibration windows (default 0)\n"
    "weights (lm_head and embeddings stay float):\n"
    "  --w-bits N         2..8 (16: float, the default)\n"
    "  --w-quant rtn|gptq round-to-nearest (default) or GPTQ from --calib\n"
    "  --w-group G        input columns per scale (-1: per output channel, the default)\n"
    "  --w-asym           asymmetric grid (default symmetric)\n"
    "  --w-clip / --no-w-clip  search the clip ratio minimizing sum |w-q|^2.4 per row/group (QuaRot)\n"
    "  --act-order        GPTQ: columns by decreasing Hessian diagonal (static groups with --w-group)\n"
    "  --static-groups / --no-static-groups  GPTQ group scales from the unmodified weights\n"
    "  --percdamp F       GPTQ dampening, fraction of the mean Hessian diagonal (default 0.01)\n"
    "  --gptq-block N     GPTQ lazy-update block (default 128)\n"
    "activations (per token, dynamic, at every linear input; R4 before down_proj's):\n"
    "  --a-bits N         2..8 (16: float)   --a-asym   --a-clip R (range x R, default 1)\n"
    "  --a-group G        columns per scale within a token (default: the whole row)\n"
    "  --a-lm-head        quantize lm_head's input too (default float)\n"
    "KV cache (K after RoPE and R3, V after v_proj; Q stays float):\n"
    "  --kv-bits N        both K and V (--k-bits/--v-bits separately)\n"
    "  --kv-asym / --kv-sym  --kv-clip R  --kv-group G (default head_dim: per head)\n"
    "presets (applied first, other options override): --preset w4a16|w4a8|w4a8kv8|w8a8|w4a4|w4a4kv4\n"
    "  weights sym per-channel clip-search; activations sym per-token, clip 0.9 at 4 bits;\n"
    "  KV asym per-head, clip 0.95 at 4 bits (QuaRot's paper settings)\n"
    "calibration (GPTQ):\n"
    "  --calib FILE       calibration text (keep it apart from the evaluation text)\n"
    "  --nsamples N       random windows (default 128)   --calib-ctx N  tokens each (default 2048)\n"
    "  --calib-cache-mb N memory for layer activations kept rather than recomputed (default 4096)\n"
    "  --threads N        BLAS/OpenMP threads (default: all)\n"
    "  --arch-file F      register a JSON architecture first; --tokenizer F  llama2.c tokenizer.bin\n";

static int parse_i64(const char *cmd, const char *opt, const char *v, int64_t lo, int64_t hi, int64_t *out) {
    char *end;
    errno = 0;
    long long x = v ? strtoll(v, &end, 10) : 0;
    if (!v || *end || errno || x < lo || x > hi)
        return cli_error(cmd, "%s needs an integer from %lld to %lld", opt, (long long)lo, (long long)hi);
    *out = x;
    return 0;
}

static int parse_f(const char *cmd, const char *opt, const char *v, double lo, double hi, double *out) {
    char *end;
    errno = 0;
    double x = v ? strtod(v, &end) : 0;
    if (!v || *end || errno || !(x >= lo && x <= hi)) return cli_error(cmd, "%s needs a number from %g to %g", opt, lo, hi);
    *out = x;
    return 0;
}

static int parse_rot_kind(const char *v, rotq_rotation_choice *k, const char **file) {
    *file = NULL;
    if (strcmp(v, "random-hadamard") == 0) *k = ROTQ_R_RANDOM_HADAMARD;
    else if (strcmp(v, "hadamard") == 0) *k = ROTQ_R_HADAMARD;
    else if (strcmp(v, "orthogonal") == 0) *k = ROTQ_R_ORTHOGONAL;
    else if (strcmp(v, "none") == 0) *k = ROTQ_R_NONE;
    else { *k = ROTQ_R_FILE; *file = v; }
    return 0;
}

int quant_cli_parse(const char *cmd, int argc, char **argv, quant_cli *c) {
    memset(c, 0, sizeof *c);
    c->q = rotq_quant_defaults();
    c->ro = rotq_rotate_options_default();
    c->ctx = 2048;
    c->out_dtype = -1;
    c->baseline = "original";
    /* the preset first, so that every other option overrides it wherever it stands */
    for (int i = 1; i < argc; i++)
        if (cli_is(argv[i], "--preset")) {
            const char *v = cli_value(argc, argv, &i);
            if (!v) return cli_error(cmd, "--preset needs a name");
            rotq_status s = rotq_quant_preset(&c->q, v);
            if (s != ROTQ_OK) return cli_lib_error(cmd, s);
            c->preset = v;
        }
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v;
        int64_t n = 0;
        double f = 0.0;
        if (cli_is(a, "--preset")) { cli_value(argc, argv, &i); }
        else if (cli_is(a, "--rotate")) c->rotate = true;
        else if (cli_is(a, "--r1") || cli_is(a, "--r2")) {
            if (!(v = cli_value(argc, argv, &i))) return cli_error(cmd, "%s needs a kind", a);
            if (a[3] == '1') parse_rot_kind(v, &c->ro.r1, &c->ro.r1_file);
            else parse_rot_kind(v, &c->ro.r2, &c->ro.r2_file);
            c->rotate = true;
        } else if (cli_is(a, "--r3") || cli_is(a, "--r4")) {
            v = cli_value(argc, argv, &i);
            bool on;
            if (v && strcmp(v, "on") == 0) on = true;
            else if (v && strcmp(v, "off") == 0) on = false;
            else return cli_error(cmd, "%.4s expects on or off", a);
            if (a[3] == '3') c->ro.r3 = on; else c->ro.r4 = on;
            c->rotate = true;
        } else if (cli_is(a, "--seed")) {
            char *end;
            if (!(v = cli_value(argc, argv, &i))) return cli_error(cmd, "--seed needs a number");
            errno = 0;
            unsigned long long x = strtoull(v, &end, 10);
            if (*end || errno || v[0] == '-') return cli_error(cmd, "--seed %s: expected a non-negative integer", v);
            c->ro.seed = c->q.seed = x;
        } else if (cli_is(a, "--w-bits")) {
            if (parse_i64(cmd, "--w-bits", cli_value(argc, argv, &i), 2, 16, &n)) return 1;
            c->q.w_bits = (int32_t)n;
            if (c->q.w_method == ROTQ_WQ_NONE) c->q.w_method = ROTQ_WQ_RTN;
        } else if (cli_is(a, "--w-quant")) {
            if (!(v = cli_value(argc, argv, &i))) return cli_error(cmd, "--w-quant needs rtn or gptq");
            if (strcmp(v, "rtn") == 0) c->q.w_method = ROTQ_WQ_RTN;
            else if (strcmp(v, "gptq") == 0) c->q.w_method = ROTQ_WQ_GPTQ;
            else return cli_error(cmd, "--w-quant %s: expected rtn or gptq", v);
        } else if (cli_is(a, "--w-group")) {
            if (parse_i64(cmd, "--w-group", cli_value(argc, argv, &i), -1, 1 << 24, &n)) return 1;
            if (n == 0) return cli_error(cmd, "--w-group 0: use -1 for per-channel scales");
            c->q.w_group = n;
        } else if (cli_is(a, "--w-asym")) c->q.w_asym = true;
        else if (cli_is(a, "--w-sym")) c->q.w_asym = false;
        else if (cli_is(a, "--w-clip")) c->q.w_clip = true;
        else if (cli_is(a, "--no-w-clip")) c->q.w_clip = false;
        else if (cli_is(a, "--act-order")) c->q.gptq.act_order = true;
        else if (cli_is(a, "--static-groups")) { c->q.gptq.static_groups = true; c->static_groups_set = true; }
        else if (cli_is(a, "--no-static-groups")) { c->q.gptq.static_groups = false; c->static_groups_set = true; }
        else if (cli_is(a, "--percdamp")) {
            if (parse_f(cmd, "--percdamp", cli_value(argc, argv, &i), 0, 1e3, &f)) return 1;
            c->q.gptq.percdamp = f;
        } else if (cli_is(a, "--gptq-block")) {
            if (parse_i64(cmd, "--gptq-block", cli_value(argc, argv, &i), 1, 1 << 20, &n)) return 1;
            c->q.gptq.block = n;
        } else if (cli_is(a, "--a-bits")) {
            if (parse_i64(cmd, "--a-bits", cli_value(argc, argv, &i), 2, 16, &n)) return 1;
            c->q.act.bits = (int32_t)n;
        } else if (cli_is(a, "--a-asym")) c->q.act.asym = true;
        else if (cli_is(a, "--a-sym")) c->q.act.asym = false;
        else if (cli_is(a, "--a-clip")) {
            if (parse_f(cmd, "--a-clip", cli_value(argc, argv, &i), 1e-6, 1, &f)) return 1;
            c->q.act.clip = (float)f;
        } else if (cli_is(a, "--a-group")) {
            if (parse_i64(cmd, "--a-group", cli_value(argc, argv, &i), -1, 1 << 24, &n)) return 1;
            c->q.act.group = n;
        } else if (cli_is(a, "--a-lm-head")) c->q.act_lm_head = true;
        else if (cli_is(a, "--kv-bits") || cli_is(a, "--k-bits") || cli_is(a, "--v-bits")) {
            if (parse_i64(cmd, a, cli_value(argc, argv, &i), 2, 16, &n)) return 1;
            if (a[2] != 'v' || a[3] == 'v') c->q.k.bits = (int32_t)n;
            if (a[2] != 'k' || a[3] == 'v') c->q.v.bits = (int32_t)n;
        } else if (cli_is(a, "--kv-asym")) c->q.k.asym = c->q.v.asym = true;
        else if (cli_is(a, "--kv-sym")) c->q.k.asym = c->q.v.asym = false;
        else if (cli_is(a, "--kv-clip")) {
            if (parse_f(cmd, "--kv-clip", cli_value(argc, argv, &i), 1e-6, 1, &f)) return 1;
            c->q.k.clip = c->q.v.clip = (float)f;
        } else if (cli_is(a, "--kv-group")) {
            if (parse_i64(cmd, "--kv-group", cli_value(argc, argv, &i), -1, 1 << 24, &n)) return 1;
            c->q.k.group = c->q.v.group = n;
        } else if (cli_is(a, "--calib")) {
            if (!(c->calib = cli_value(argc, argv, &i))) return cli_error(cmd, "--calib needs a file");
        } else if (cli_is(a, "--nsamples")) {
            if (parse_i64(cmd, "--nsamples", cli_value(argc, argv, &i), 1, 1 << 20, &c->q.nsamples)) return 1;
        } else if (cli_is(a, "--calib-ctx")) {
            if (parse_i64(cmd, "--calib-ctx", cli_value(argc, argv, &i), 2, 1 << 20, &c->q.calib_ctx)) return 1;
        } else if (cli_is(a, "--calib-cache-mb")) {
            if (parse_i64(cmd, "--calib-cache-mb", cli_value(argc, argv, &i), 0, 1 << 30, &c->q.calib_cache_mb)) return 1;
        } else if (cli_is(a, "--threads")) {
            int t;
            if (nn_cli_threads(cmd, cli_value(argc, argv, &i), &t)) return 1;
            c->q.threads = t;
        } else if (cli_is(a, "--text")) {
            if (!(c->text = cli_value(argc, argv, &i))) return cli_error(cmd, "--text needs a file");
        } else if (cli_is(a, "--ctx")) {
            if (parse_i64(cmd, "--ctx", cli_value(argc, argv, &i), 2, 1 << 20, &c->ctx)) return 1;
            c->ctx_given = true;
        } else if (cli_is(a, "--bos")) {
            if (!(c->bos_arg = cli_value(argc, argv, &i)) ||
                (strcmp(c->bos_arg, "none") && strcmp(c->bos_arg, "first") && strcmp(c->bos_arg, "every")))
                return cli_error(cmd, "--bos needs none, first or every");
        } else if (cli_is(a, "--max-windows")) {
            if (parse_i64(cmd, "--max-windows", cli_value(argc, argv, &i), 1, INT64_MAX, &c->max_windows)) return 1;
        } else if (cli_is(a, "--text-format")) {
            if (!(v = cli_value(argc, argv, &i))) return cli_error(cmd, "--text-format needs auto, wikitext or plain");
            if (strcmp(v, "auto") == 0) c->text_format = 0;
            else if (strcmp(v, "wikitext") == 0) c->text_format = 1;
            else if (strcmp(v, "plain") == 0) c->text_format = 2;
            else return cli_error(cmd, "--text-format %s: expected auto, wikitext or plain", v);
        } else if (cli_is(a, "--baseline")) {
            if (!(v = cli_value(argc, argv, &i)) || (strcmp(v, "original") && strcmp(v, "rotated") && strcmp(v, "none")))
                return cli_error(cmd, "--baseline needs original, rotated or none");
            c->baseline = v;
        } else if (cli_is(a, "--no-baseline")) c->baseline = "none";
        else if (cli_is(a, "--baseline-cache")) {
            if (!(c->baseline_cache = cli_value(argc, argv, &i))) return cli_error(cmd, "--baseline-cache needs a folder or off");
        } else if (cli_is(a, "--products")) {
            if (!(v = cli_value(argc, argv, &i)) || (strcmp(v, "int") && strcmp(v, "float")))
                return cli_error(cmd, "--products needs int or float");
            c->float_products = strcmp(v, "float") == 0;
        }
        else if (cli_is(a, "--json")) c->json = true;
        else if (cli_is(a, "--quiet")) c->quiet = true;
        else if (cli_is(a, "--arch-file")) {
            if (!(c->arch_file = cli_value(argc, argv, &i))) return cli_error(cmd, "--arch-file needs a file");
        } else if (cli_is(a, "--tokenizer")) {
            if (!(c->tokenizer = cli_value(argc, argv, &i))) return cli_error(cmd, "--tokenizer needs a file");
        } else if (cli_is(a, "--to")) {
            if (!(v = cli_value(argc, argv, &i))) return cli_error(cmd, "--to needs hf or gguf");
            if (strcmp(v, "hf") == 0) c->out_format = 1;
            else if (strcmp(v, "gguf") == 0) c->out_format = 2;
            else return cli_error(cmd, "--to %s: expected hf or gguf", v);
        } else if (cli_is(a, "--dtype")) {
            if (!(v = cli_value(argc, argv, &i))) return cli_error(cmd, "--dtype needs f32, f16 or bf16");
            rotq_dtype dt = rotq_dtype_from_name(v);
            if (dt != ROTQ_F32 && dt != ROTQ_F16 && dt != ROTQ_BF16) return cli_error(cmd, "--dtype %s: expected f32, f16 or bf16", v);
            c->out_dtype = dt;
        } else if (a[0] == '-' && a[1]) {
            return cli_error(cmd, "unknown option %s (see rotq %s --help)", a, cmd);
        } else if (c->n_positional < 2) {
            c->positional[c->n_positional++] = a;
        } else {
            return cli_error(cmd, "unexpected argument %s", a);
        }
    }
    if (c->q.gptq.act_order && c->q.w_group > 0 && !c->static_groups_set) c->q.gptq.static_groups = true;
    if (c->q.w_method == ROTQ_WQ_GPTQ && c->q.w_bits >= 16)
        return cli_error(cmd, "--w-quant gptq needs --w-bits (or a --preset)");
    if (c->q.w_method == ROTQ_WQ_GPTQ && c->q.w_bits < 16 && !c->calib)
        return cli_error(cmd, "GPTQ needs calibration text: --calib FILE");
    rotq_status s = rotq_quant_options_check(&c->q);
    if (s != ROTQ_OK) return cli_lib_error(cmd, s);
    return 0;
}

static const char *rot_name(rotq_rotation_choice k, const char *file) {
    switch (k) {
    case ROTQ_R_NONE: return "none";
    case ROTQ_R_HADAMARD: return "hadamard";
    case ROTQ_R_RANDOM_HADAMARD: return "random-hadamard";
    case ROTQ_R_ORTHOGONAL: return "orthogonal";
    case ROTQ_R_FILE: return file ? file : "file";
    }
    return "?";
}

void quant_cli_rotation_desc(const quant_cli *c, char *out, size_t size) {
    if (!c->rotate) { snprintf(out, size, "none"); return; }
    snprintf(out, size, "R1 %s, R2 %s, R3 %s, R4 %s, seed %llu", rot_name(c->ro.r1, c->ro.r1_file),
             rot_name(c->ro.r2, c->ro.r2_file), c->ro.r3 ? "on" : "off", c->ro.r4 ? "on" : "off",
             (unsigned long long)c->ro.seed);
}

int quant_cli_tokenize_file(const char *cmd, const rotq_tokenizer *tok, const char *path, int format, int32_t **ids,
                            int64_t *n, uint64_t *bytes, bool *wikitext) {
    uint64_t len;
    char *text;
    if (cli_read_text(cmd, path, &format, &text, &len)) return 1;
    rotq_status s = rotq_tokenizer_encode(tok, text, len, false, ids, n);
    free(text);
    if (s != ROTQ_OK) return cli_lib_error(cmd, s);
    *bytes = len;
    *wikitext = format == 1;
    return 0;
}

int quant_cli_quantize(const char *cmd, rotq_model *m, const quant_cli *c, const rotq_tokenizer *tok,
                       rotq_quant_report *rep, int64_t *calib_tokens_in_text, double *seconds) {
    double t0 = cli_now_s();
    int32_t *calib = NULL;
    int64_t n_calib = 0;
    *calib_tokens_in_text = 0;
    rotq_quant_options q = c->q;
    q.verbose = !c->quiet;
    if (q.w_method == ROTQ_WQ_GPTQ && q.w_bits < 16) {
        uint64_t bytes;
        bool wt;
        if (quant_cli_tokenize_file(cmd, tok, c->calib, 0, &calib, &n_calib, &bytes, &wt)) return 1;
        *calib_tokens_in_text = n_calib;
    }
    rotq_status s = rotq_quantize_weights(m, &q, calib, n_calib, rep);
    free(calib);
    if (s != ROTQ_OK) return cli_lib_error(cmd, s);
    *seconds = cli_now_s() - t0;
    return 0;
}

/* ---- rotq eval ----------------------------------------------------------------------------------- */

static const char *help_head =
    "usage: rotq eval MODEL --text FILE [--rotate ...] [--preset P | --w-bits 4 --w-quant rtn|gptq ...\n"
    "                 --a-bits 4 ... --kv-bits 4 ...] [--calib FILE] [--ctx N] [--max-windows N] [--json]\n"
    "\n"
    "Measures what quantization costs: the float model's perplexity first (the baseline), then the\n"
    "model rotated in memory (when asked), its weights quantized (RTN, or GPTQ layer by layer from\n"
    "--calib), and the perplexity with activations and KV cache fake-quantized at run time. All in\n"
    "float32 on the CPU (quantize → dequantize); the same text, windows and BOS policy for both.\n"
    "evaluation (papers' protocol: non-overlapping windows, every token after the first scored):\n"
    "  --text FILE        text to score (wiki.*.raw: rows joined as the papers do; --text-format)\n"
    "  --ctx N            window (default 2048, capped at the model's positions)\n"
    "  --bos none|first|every  default: first when the tokenizer adds BOS, else none\n"
    "  --max-windows N    score only the first N windows (faster; say so when reporting)\n"
    "  --baseline original|rotated|none  float reference: the model as loaded (default), after the\n"
    "                     rotation (a check that rotation kept the function), or skip it\n"
    "  --json             machine-readable result on stdout;  --quiet  no progress\n"
    "  --baseline-cache DIR|off  keep float baselines (keyed by fingerprints of the weights, the token\n"
    "                     ids and the window settings) and reuse them; default $ROTQ_CACHE_DIR, else\n"
    "                     ~/.cache/rotq. The report says when a baseline comes from the cache\n"
    "  --products int|float  quantized linears: exact integer sums of the codes, scaled once, where\n"
    "                     weights sit on a symmetric per-channel grid of <= 7 bits and activations are\n"
    "                     per token (default int; else float), or fake-quantized floats through sgemm\n";

typedef struct eval_progress { bool quiet, tty; const char *label; int64_t ctx; } eval_progress;

static void progress(void *ctx, int64_t window, int64_t n_windows, double nll, int64_t n_scored, double seconds) {
    eval_progress *p = ctx;
    if (p->quiet) return;
    double tps = seconds > 0 ? (double)(window * p->ctx) / seconds : 0.0;
    fprintf(stderr, p->tty ? "\r%s: window %lld/%lld  ppl %.4f  %.0f tok/s   " : "%s: window %lld/%lld ppl %.4f %.0f tok/s\n",
            p->label, (long long)window, (long long)n_windows, exp(nll / (double)n_scored), tps);
    if (p->tty && window == n_windows) fputc('\n', stderr);
    fflush(stderr);
}

/* Perplexity of m as it stands (its session attaches the recorded online rotations) with the
 * run-time quantizers of q; `ints` asks for integer products where the weights allow them. The
 * session's products and transforms are reported when `products`/`transforms` are given. */
static int run_ppl(const char *cmd, rotq_model *m, const quant_cli *c, const rotq_quant_options *q, const int32_t *ids,
                   int64_t n, rotq_ppl_options *po, const char *label, bool ints, char *products, size_t products_size,
                   char *transforms, size_t transforms_size, rotq_ppl_result *res) {
    eval_progress pp = {c->quiet, isatty(2) != 0, label, po->ctx};
    po->progress = progress;
    po->progress_ctx = &pp;
    rotq_session_options so = rotq_session_defaults();
    so.threads = c->q.threads;
    so.quant = q;
    so.float_products = !ints;
    rotq_session *ses = NULL;
    rotq_status s = rotq_session_new(m, &so, &ses);
    if (s == ROTQ_OK && products) snprintf(products, products_size, "%s", rotq_session_products(ses));
    if (s == ROTQ_OK && transforms) snprintf(transforms, transforms_size, "%s", rotq_session_transforms(ses));
    if (s == ROTQ_OK) s = rotq_session_ppl(ses, ids, n, po, res);
    rotq_session_free(ses);
    return s == ROTQ_OK ? 0 : cli_lib_error(cmd, s);
}

int cmd_eval(int argc, char **argv) {
    const char *cmd = "eval";
    if (cli_wants_help(argc, argv)) { fputs(help_head, stdout); fputs(quant_cli_help, stdout); return 0; }
    quant_cli c;
    if (quant_cli_parse(cmd, argc, argv, &c)) return 1;
    if (c.n_positional != 1) { fputs(help_head, stderr); return 2; }
    if (!c.text) return cli_error(cmd, "--text FILE is required (see rotq eval --help)");
    const char *path = c.positional[0];
    double t_start = cli_now_s();

    rotq_model *m = NULL;
    rotq_tokenizer *tok = NULL;
    int32_t *ids = NULL;
    int rc = 1;
    if (cli_load(cmd, path, c.arch_file, c.tokenizer, &m)) return 1;
    double t_load = cli_now_s() - t_start;
    rotq_hparams hp;
    rotq_model_hparams(m, &hp);
    rotq_status s = rotq_tokenizer_from_model(m, &tok);
    if (s != ROTQ_OK) { cli_lib_error(cmd, s); goto done; }

    int64_t n_ids;
    uint64_t text_bytes = 0;
    bool wikitext = false;
    if (quant_cli_tokenize_file(cmd, tok, c.text, c.text_format, &ids, &n_ids, &text_bytes, &wikitext)) goto done;
    rotq_ppl_options po;
    memset(&po, 0, sizeof po);
    po.protocol = ROTQ_PPL_PAPERS;
    po.bos_id = rotq_tokenizer_bos(tok);
    if (po.bos_id < 0) po.bos_id = hp.bos_id;
    bool tok_bos = rotq_tokenizer_add_bos_default(tok);
    po.bos = !c.bos_arg ? (tok_bos ? ROTQ_BOS_FIRST : ROTQ_BOS_NONE)
           : strcmp(c.bos_arg, "none") == 0 ? ROTQ_BOS_NONE
           : strcmp(c.bos_arg, "first") == 0 ? ROTQ_BOS_FIRST : ROTQ_BOS_EVERY;
    int64_t ctx = c.ctx;
    if (hp.max_pos > 0 && ctx > hp.max_pos) {
        ctx = hp.max_pos;
        if (c.ctx_given && !c.quiet) fprintf(stderr, "eval: --ctx capped at the model's %lld positions\n", (long long)ctx);
    }
    po.ctx = ctx;
    po.max_windows = c.max_windows;
    char dtype[256];
    nn_cli_dtype_desc(m, dtype, sizeof dtype);

    rotq_quant_options none = rotq_quant_defaults();
    rotq_ppl_result base = {0}, quant = {0};
    bool have_base = strcmp(c.baseline, "none") != 0;
    int threads = rotq_threads_resolve(c.q.threads);
    char cached_when[64] = "";
    bool base_cached = false;
    if (strcmp(c.baseline, "original") == 0) {
        rotq_baseline_cache *cache = NULL;
        if ((s = rotq_baseline_cache_open(c.baseline_cache, m, ids, n_ids, &po, threads, &cache)) != ROTQ_OK) {
            cli_lib_error(cmd, s);
            goto done;
        }
        base_cached = rotq_baseline_cache_get(cache, &base, cached_when, sizeof cached_when);
        int failed = 0;
        if (!base_cached) {
            failed = run_ppl(cmd, m, &c, &none, ids, n_ids, &po, "baseline", false, NULL, 0, NULL, 0, &base);
            if (!failed && rotq_baseline_cache_put(cache, &base) != ROTQ_OK && !c.quiet)
                fprintf(stderr, "eval: could not store the baseline: %s\n", rotq_last_error());
        } else if (!c.quiet) {
            fprintf(stderr, "eval: float baseline %.4f from the cache (%s, computed %s)\n", base.ppl,
                    rotq_baseline_cache_dir(cache), cached_when);
        }
        rotq_baseline_cache_free(cache);
        if (failed) goto done;
    }

    double t_rot = 0.0;
    if (c.rotate) {
        double t0 = cli_now_s();
        rotq_rotate_options ro = c.ro;
        ro.verbose = !c.quiet;
        if ((s = rotq_rotate_model(m, &ro)) != ROTQ_OK) { cli_lib_error(cmd, s); goto done; }
        t_rot = cli_now_s() - t0;
    }
    if (strcmp(c.baseline, "rotated") == 0 && run_ppl(cmd, m, &c, &none, ids, n_ids, &po, "rotated float", false, NULL, 0, NULL, 0, &base)) goto done;

    rotq_quant_report rep;
    memset(&rep, 0, sizeof rep);
    int64_t calib_text_tokens = 0;
    double t_quant = 0.0;
    if (quant_cli_quantize(cmd, m, &c, tok, &rep, &calib_text_tokens, &t_quant)) goto done;
    char products[512], transforms[2048];
    if (run_ppl(cmd, m, &c, &c.q, ids, n_ids, &po, "quantized", !c.float_products, products, sizeof products, transforms,
                sizeof transforms, &quant))
        goto done;
    double t_total = cli_now_s() - t_start;

    char qdesc[512], rdesc[256], bos_desc[64], calib_desc[512];
    rotq_quant_describe(&c.q, qdesc, sizeof qdesc);
    quant_cli_rotation_desc(&c, rdesc, sizeof rdesc);
    const char *bos_names[] = {"none", "first", "every"};
    snprintf(bos_desc, sizeof bos_desc, "%s%s", bos_names[po.bos], c.bos_arg ? "" : " (tokenizer default)");
    bool gptq = c.q.w_method == ROTQ_WQ_GPTQ && c.q.w_bits < 16;
    int64_t cctx = c.q.calib_ctx;
    if (hp.max_pos > 0 && cctx > hp.max_pos) cctx = hp.max_pos;
    if (gptq)
        snprintf(calib_desc, sizeof calib_desc, "%s: %lld random windows x %lld tokens (of %lld), seed %llu, no BOS",
                 c.calib, (long long)c.q.nsamples, (long long)cctx, (long long)calib_text_tokens,
                 (unsigned long long)c.q.seed);
    else
        snprintf(calib_desc, sizeof calib_desc, "none (%s)", c.q.w_method == ROTQ_WQ_RTN && c.q.w_bits < 16 ? "RTN needs none" : "no weight quantization");
    double rss = nn_cli_peak_rss_mib();
    if (c.json) {
        json_t *j = json_object();
        json_object_set_new(j, "model", json_string(path));
        json_object_set_new(j, "architecture", json_string(hp.arch));
        json_object_set_new(j, "dtype", json_string(dtype));
        json_object_set_new(j, "text", json_string(c.text));
        json_object_set_new(j, "text_format", json_string(wikitext ? "wikitext" : "plain"));
        json_object_set_new(j, "text_bytes", json_integer((json_int_t)text_bytes));
        json_object_set_new(j, "text_tokens", json_integer(n_ids));
        json_object_set_new(j, "tokenizer", json_string(rotq_tokenizer_kind(tok)));
        json_object_set_new(j, "bos", json_string(bos_desc));
        json_object_set_new(j, "ctx", json_integer(ctx));
        json_object_set_new(j, "windows", json_integer(quant.n_windows));
        json_object_set_new(j, "windows_available", json_integer(quant.n_windows_available));
        json_object_set_new(j, "scored_tokens", json_integer(quant.n_scored));
        json_object_set_new(j, "rotation", json_string(rdesc));
        json_object_set_new(j, "quantization", json_string(qdesc));
        if (c.preset) json_object_set_new(j, "preset", json_string(c.preset));
        json_object_set_new(j, "calibration", json_string(calib_desc));
        json_object_set_new(j, "products", json_string(products));
        json_object_set_new(j, "transforms", json_string(transforms));
        json_object_set_new(j, "seed", json_integer((json_int_t)c.q.seed));
        json_object_set_new(j, "baseline", json_string(c.baseline));
        if (have_base) {
            json_object_set_new(j, "baseline_perplexity", json_real(base.ppl));
            json_object_set_new(j, "baseline_seconds", json_real(base.seconds));
            json_object_set_new(j, "baseline_cached", json_boolean(base_cached));
            if (base_cached) json_object_set_new(j, "baseline_computed", json_string(cached_when));
        }
        json_object_set_new(j, "perplexity", json_real(quant.ppl));
        json_object_set_new(j, "eval_seconds", json_real(quant.seconds));
        json_object_set_new(j, "load_seconds", json_real(t_load));
        json_object_set_new(j, "rotate_seconds", json_real(t_rot));
        json_object_set_new(j, "quantize_seconds", json_real(t_quant));
        json_object_set_new(j, "calib_seconds", json_real(rep.calib_seconds));
        json_object_set_new(j, "gptq_seconds", json_real(gptq ? rep.quant_seconds : 0.0));
        json_object_set_new(j, "linears_quantized", json_integer(rep.n_linears));
        json_object_set_new(j, "dead_columns", json_integer(rep.n_dead));
        json_object_set_new(j, "total_seconds", json_real(t_total));
        json_object_set_new(j, "peak_rss_mib", json_real(rss));
        json_object_set_new(j, "threads", json_integer(threads));
        char *js = json_dumps(j, JSON_INDENT(2));
        if (js) { puts(js); free(js); }
        json_decref(j);
    } else {
        printf("model        %s (%s, %lld layers, hidden %lld, vocab %lld)\n", path, hp.arch, (long long)hp.n_layers,
               (long long)hp.hidden, (long long)hp.vocab);
        printf("dtype        %s\n", dtype);
        printf("text         %s (%s, %llu bytes, %lld tokens)\n", c.text, wikitext ? "wikitext rows joined with \"\\n\\n\"" : "plain bytes",
               (unsigned long long)text_bytes, (long long)n_ids);
        printf("tokenizer    %s; BOS %s\n", rotq_tokenizer_kind(tok), bos_desc);
        printf("protocol     papers: windows of %lld tokens, %lld scored of %lld available%s\n", (long long)ctx,
               (long long)quant.n_windows, (long long)quant.n_windows_available, c.max_windows ? " (--max-windows)" : "");
        printf("rotation     %s (%.2f s)\n", rdesc, t_rot);
        if (c.preset) printf("quantization %s  (preset %s)\n", qdesc, c.preset);
        else printf("quantization %s\n", qdesc);
        printf("calibration  %s\n", calib_desc);
        printf("products     %s\n", products);
        cli_print_transforms("transforms   ", transforms);
        if (c.q.w_method != ROTQ_WQ_NONE && c.q.w_bits < 16)
            printf("weights      %lld linears, %lld weights in %.1f s (calibration forward %.1f s, %s %.1f s)%s\n",
                   (long long)rep.n_linears, (long long)rep.n_params, t_quant, rep.calib_seconds, gptq ? "GPTQ" : "RTN",
                   rep.quant_seconds, rep.n_dead ? " — dead Hessian columns zeroed" : "");
        if (have_base && base_cached)
            printf("baseline     perplexity %.4f  (%s float model; from the baseline cache: computed %s in %.1f s, same "
                   "weights, token ids and windows; --baseline-cache off recomputes)\n", base.ppl, c.baseline, cached_when,
                   base.seconds);
        else if (have_base)
            printf("baseline     perplexity %.4f  (%s float model, %.1f s)\n", base.ppl, c.baseline, base.seconds);
        printf("quantized    perplexity %.4f  (%.1f s)\n", quant.ppl, quant.seconds);
        printf("time         total %.1f s (load %.1f s), %d threads, peak RSS %.0f MiB\n", t_total, t_load, threads, rss);
    }
    rc = 0;
done:
    free(ids);
    rotq_tokenizer_free(tok);
    rotq_model_free(m);
    return rc;
}
