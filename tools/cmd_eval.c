/* rotq eval MODEL: float baseline perplexity, then rotate (optional), quantize weights (RTN or
 * GPTQ from calibration text), and the perplexity with activation/KV fake quantization — the whole
 * QuaRot measurement in one run. */
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

/* ---- rotq eval ----------------------------------------------------------------------------------- */

static const char *help_head =
    "usage: rotq eval MODEL --text FILE [--rotate ...] [--preset P | --w-bits 4 --w-quant rtn|gptq ...\n"
    "                 --a-bits 4 ... --kv-bits 4 ...] [--calib FILE] [--ctx N] [--max-windows N] [--json]\n"
    "\n"
    "Several processes: mpirun -np N rotq eval ... splits the calibration and perplexity windows across N ranks\n"
    "(a build made with -DROTQ_MPI=ON); the result equals one process's, up to summation order; rank 0 prints and writes.\n"
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
    "  --compare-rotations LIST  one run per rotation of LIST, comma-separated: none, full (R1..R4 as\n"
    "                     --r1/--r2/--r3/--r4 say) and block[:N] (the same with R1 and R4 block-diagonal\n"
    "                     Hadamards of size N; default N: the activations' float-format block, 32 or 16);\n"
    "                     the model reloaded for each, one baseline, the weight quantizer and the quantized\n"
    "                     perplexity of each in one table (--json: \"comparison\")\n"
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

/* Everything one evaluation measures, for the report. */
typedef struct eval_state {
    const char *cmd, *path;
    quant_cli c;
    rotq_model *m;
    rotq_hparams hp;
    rotq_tokenizer *tok;
    int32_t *ids;
    int64_t n_ids, calib_text_tokens;
    uint64_t text_bytes;
    bool wikitext, base_cached;
    rotq_ppl_options po;
    rotq_ppl_result base, quant;
    rotq_quant_report rep;
    int threads;
    double t_start, t_load, t_rot, t_quant, t_total;
    char bos_desc[96], cached_when[64], products[512], transforms[2048];
} eval_state;

/* The float baseline of the model as loaded: from the cache when a record matches, else computed
 * (and stored). 0 or 1 (error printed). */
static int eval_baseline(eval_state *e) {
    rotq_baseline_cache *cache = NULL;
    rotq_status s = rotq_baseline_cache_open(e->c.baseline_cache, e->m, e->ids, e->n_ids, &e->po, e->threads, &cache);
    if (s != ROTQ_OK) return cli_lib_error(e->cmd, s);
    rotq_quant_options none = rotq_quant_defaults();
    e->base_cached = rotq_baseline_cache_get(cache, &e->base, e->cached_when, sizeof e->cached_when);
    int failed = 0;
    if (!e->base_cached) {
        failed = run_ppl(e->cmd, e->m, &e->c, &none, e->ids, e->n_ids, &e->po, "baseline", false, NULL, 0, NULL, 0, &e->base);
        if (!failed && rotq_baseline_cache_put(cache, &e->base) != ROTQ_OK && !e->c.quiet)
            fprintf(stderr, "eval: could not store the baseline: %s\n", rotq_last_error());
    } else if (!e->c.quiet) {
        fprintf(stderr, "eval: float baseline %.4f from the cache (%s, computed %s)\n", e->base.ppl,
                rotq_baseline_cache_dir(cache), e->cached_when);
    }
    rotq_baseline_cache_free(cache);
    return failed;
}

static void calib_desc(const eval_state *e, char *out, size_t size) {
    const rotq_quant_options *q = &e->c.q;
    int64_t cctx = q->calib_ctx;
    if (e->hp.max_pos > 0 && cctx > e->hp.max_pos) cctx = e->hp.max_pos;
    if (rotq_quant_calibrated(q) && rotq_quant_has_weights(q))
        snprintf(out, size, "%s: %lld random windows x %lld tokens (of %lld), seed %llu, no BOS", e->c.calib,
                 (long long)q->nsamples, (long long)cctx, (long long)e->calib_text_tokens, (unsigned long long)q->seed);
    else
        snprintf(out, size, "none (%s)", q->w_method == ROTQ_WQ_RTN && rotq_quant_has_weights(q) ? "RTN needs none" : "no weight quantization");
}

static void report_json(const eval_state *e, const char *dtype, const char *rdesc, const char *qdesc, const char *cdesc) {
    const quant_cli *c = &e->c;
    bool gptq = rotq_quant_calibrated(&c->q) && rotq_quant_has_weights(&c->q);
    json_t *j = json_pack("{s:s, s:s, s:s, s:s, s:s, s:I, s:I, s:s, s:s, s:I}", "model", e->path, "architecture", e->hp.arch,
                          "dtype", dtype, "text", c->text, "text_format", e->wikitext ? "wikitext" : "plain", "text_bytes",
                          (json_int_t)e->text_bytes, "text_tokens", (json_int_t)e->n_ids, "tokenizer",
                          rotq_tokenizer_kind(e->tok), "bos", e->bos_desc, "ctx", (json_int_t)e->po.ctx);
    json_object_set_new(j, "windows", json_integer(e->quant.n_windows));
    json_object_set_new(j, "windows_available", json_integer(e->quant.n_windows_available));
    json_object_set_new(j, "scored_tokens", json_integer(e->quant.n_scored));
    json_object_set_new(j, "rotation", json_string(rdesc));
    json_object_set_new(j, "quantization", json_string(qdesc));
    if (c->preset) json_object_set_new(j, "preset", json_string(c->preset));
    json_object_set_new(j, "calibration", json_string(cdesc));
    json_object_set_new(j, "products", json_string(e->products));
    json_object_set_new(j, "transforms", json_string(e->transforms));
    json_object_set_new(j, "seed", json_integer((json_int_t)c->q.seed));
    json_object_set_new(j, "baseline", json_string(c->baseline));
    if (strcmp(c->baseline, "none") != 0) {
        json_object_set_new(j, "baseline_perplexity", json_real(e->base.ppl));
        json_object_set_new(j, "baseline_seconds", json_real(e->base.seconds));
        json_object_set_new(j, "baseline_cached", json_boolean(e->base_cached));
        if (e->base_cached) json_object_set_new(j, "baseline_computed", json_string(e->cached_when));
    }
    json_object_set_new(j, "perplexity", json_real(e->quant.ppl));
    json_object_set_new(j, "eval_seconds", json_real(e->quant.seconds));
    json_object_set_new(j, "load_seconds", json_real(e->t_load));
    json_object_set_new(j, "rotate_seconds", json_real(e->t_rot));
    json_object_set_new(j, "quantize_seconds", json_real(e->t_quant));
    json_object_set_new(j, "calib_seconds", json_real(e->rep.calib_seconds));
    json_object_set_new(j, "gptq_seconds", json_real(gptq ? e->rep.quant_seconds : 0.0));
    json_object_set_new(j, "linears_quantized", json_integer(e->rep.n_linears));
    json_object_set_new(j, "dead_columns", json_integer(e->rep.n_dead));
    json_object_set_new(j, "total_seconds", json_real(e->t_total));
    json_object_set_new(j, "peak_rss_mib", json_real(nn_cli_peak_rss_mib()));
    json_object_set_new(j, "threads", json_integer(e->threads));
    char *js = json_dumps(j, JSON_INDENT(2));
    if (js) { puts(js); free(js); }
    json_decref(j);
}

static void report_text(const eval_state *e, const char *dtype, const char *rdesc, const char *qdesc, const char *cdesc) {
    const quant_cli *c = &e->c;
    const rotq_quant_report *rep = &e->rep;
    printf("model        %s (%s, %lld layers, hidden %lld, vocab %lld)\n", e->path, e->hp.arch, (long long)e->hp.n_layers,
           (long long)e->hp.hidden, (long long)e->hp.vocab);
    printf("dtype        %s\n", dtype);
    printf("text         %s (%s, %llu bytes, %lld tokens)\n", c->text,
           e->wikitext ? "wikitext rows joined with \"\\n\\n\"" : "plain bytes", (unsigned long long)e->text_bytes,
           (long long)e->n_ids);
    printf("tokenizer    %s; BOS %s\n", rotq_tokenizer_kind(e->tok), e->bos_desc);
    printf("protocol     papers: windows of %lld tokens, %lld scored of %lld available%s\n", (long long)e->po.ctx,
           (long long)e->quant.n_windows, (long long)e->quant.n_windows_available, c->max_windows ? " (--max-windows)" : "");
    printf("rotation     %s (%.2f s)\n", rdesc, e->t_rot);
    if (c->preset) printf("quantization %s  (preset %s)\n", qdesc, c->preset);
    else printf("quantization %s\n", qdesc);
    printf("calibration  %s\n", cdesc);
    printf("products     %s\n", e->products);
    cli_print_transforms("transforms   ", e->transforms);
    if (rotq_quant_has_weights(&c->q))
        printf("weights      %lld linears, %lld weights in %.1f s (calibration forward %.1f s, %s %.1f s)%s\n",
               (long long)rep->n_linears, (long long)rep->n_params, e->t_quant, rep->calib_seconds,
               rotq_wq_method_name(c->q.w_method), rep->quant_seconds,
               rep->n_dead ? " — dead Hessian columns zeroed" : "");
    if (strcmp(c->baseline, "none") != 0 && e->base_cached)
        printf("baseline     perplexity %.4f  (%s float model; from the baseline cache: computed %s in %.1f s, same "
               "weights, token ids and windows; --baseline-cache off recomputes)\n", e->base.ppl, c->baseline,
               e->cached_when, e->base.seconds);
    else if (strcmp(c->baseline, "none") != 0)
        printf("baseline     perplexity %.4f  (%s float model, %.1f s)\n", e->base.ppl, c->baseline, e->base.seconds);
    printf("quantized    perplexity %.4f  (%.1f s)\n", e->quant.ppl, e->quant.seconds);
    printf("time         total %.1f s (load %.1f s), %d threads, peak RSS %.0f MiB\n", e->t_total, e->t_load, e->threads,
           nn_cli_peak_rss_mib());
}

static void report(const eval_state *e) {
    char dtype[256], qdesc[512], rdesc[256], cdesc[512];
    nn_cli_dtype_desc(e->m, dtype, sizeof dtype);
    rotq_quant_describe(&e->c.q, qdesc, sizeof qdesc);
    quant_cli_rotation_desc(&e->c, rdesc, sizeof rdesc);
    calib_desc(e, cdesc, sizeof cdesc);
    if (e->c.json) report_json(e, dtype, rdesc, qdesc, cdesc);
    else report_text(e, dtype, rdesc, qdesc, cdesc);
}

/* ---- --compare-rotations: one model, several rotations, one table ---------------------------------- */

typedef struct compare_row {
    char name[32], rotation[256], transforms[2048];
    double ppl, rotate_s, quantize_s, eval_s;
} compare_row;

/* "none", "full", "block" or "block:N" as rotate options (on: whether to rotate at all); 0 or 2. */
static int compare_variant(const char *cmd, const quant_cli *c, const char *v, rotq_rotate_options *ro, bool *on) {
    *ro = c->ro;
    ro->r1_block = ro->r4_block = 0;
    *on = true;
    if (strcmp(v, "none") == 0) { *on = false; return 0; }
    if (strcmp(v, "full") == 0) return 0;
    if (strncmp(v, "block", 5) == 0 && (v[5] == 0 || v[5] == ':')) {
        int64_t n = rotq_num_format_block(c->q.act.num);
        if (n <= 0) n = rotq_num_format_block(c->q.w_num);
        if (v[5] == ':') {
            char *end;
            long long x = strtoll(v + 6, &end, 10);
            if (*end || x <= 0) return cli_usage(cmd, "--compare-rotations %s: block:N needs a positive size", v);
            n = x;
        }
        if (n <= 0) return cli_usage(cmd, "--compare-rotations block: no float format gives a block size; say block:N");
        ro->r1_block = ro->r4_block = n;
        return 0;
    }
    return cli_usage(cmd, "--compare-rotations %s: expected none, full, block or block:N", v);
}

static void compare_report(const eval_state *e, const compare_row *rows, int n) {
    char dtype[256], qdesc[512], cdesc[512];
    nn_cli_dtype_desc(e->m, dtype, sizeof dtype);
    rotq_quant_describe(&e->c.q, qdesc, sizeof qdesc);
    calib_desc(e, cdesc, sizeof cdesc);
    if (e->c.json) {
        json_t *j = json_pack("{s:s, s:s, s:s, s:s, s:s, s:I, s:I, s:I, s:s, s:s}", "model", e->path, "architecture", e->hp.arch,
                              "dtype", dtype, "text", e->c.text, "bos", e->bos_desc, "ctx", (json_int_t)e->po.ctx, "windows",
                              (json_int_t)e->base.n_windows, "scored_tokens", (json_int_t)e->base.n_scored, "quantization", qdesc,
                              "calibration", cdesc);
        json_object_set_new(j, "seed", json_integer((json_int_t)e->c.q.seed));
        json_object_set_new(j, "baseline_perplexity", json_real(e->base.ppl));
        json_t *arr = json_array();
        for (int i = 0; i < n; i++)
            json_array_append_new(arr, json_pack("{s:s, s:s, s:s, s:f, s:f, s:f, s:f}", "variant", rows[i].name, "rotation",
                                                 rows[i].rotation, "transforms", rows[i].transforms, "perplexity", rows[i].ppl,
                                                 "rotate_seconds", rows[i].rotate_s, "quantize_seconds", rows[i].quantize_s,
                                                 "eval_seconds", rows[i].eval_s));
        json_object_set_new(j, "comparison", arr);
        char *js = json_dumps(j, JSON_INDENT(2));
        if (js) { puts(js); free(js); }
        json_decref(j);
        return;
    }
    printf("model        %s (%s), %s\n", e->path, e->hp.arch, dtype);
    printf("text         %s; BOS %s; windows of %lld tokens, %lld scored\n", e->c.text, e->bos_desc, (long long)e->po.ctx,
           (long long)e->base.n_windows);
    printf("quantization %s\n", qdesc);
    printf("calibration  %s\n", cdesc);
    printf("baseline     perplexity %.4f (float model as loaded)\n\n", e->base.ppl);
    printf("%-10s %12s %10s %10s  %s\n", "rotation", "perplexity", "quantize s", "eval s", "rotations");
    for (int i = 0; i < n; i++)
        printf("%-10s %12.4f %10.1f %10.1f  %s\n", rows[i].name, rows[i].ppl, rows[i].quantize_s, rows[i].eval_s, rows[i].rotation);
}

/* The list's syntax, before any model is loaded: 0 or 2 (printed). */
static int compare_check(const char *cmd, const quant_cli *c) {
    char list[512];
    if (snprintf(list, sizeof list, "%s", c->compare) >= (int)sizeof list) return cli_usage(cmd, "--compare-rotations: list too long");
    int n = 0;
    for (char *save = NULL, *v = strtok_r(list, ",", &save); v; v = strtok_r(NULL, ",", &save), n++) {
        rotq_rotate_options ro;
        bool on;
        if (n == 16) return cli_usage(cmd, "--compare-rotations: at most 16 variants");
        if (compare_variant(cmd, c, v, &ro, &on)) return 2;
    }
    return n ? 0 : cli_usage(cmd, "--compare-rotations needs at least one of none, full, block");
}

/* Each variant from the model as loaded: rotate, quantize the weights, the quantized perplexity. */
static int evaluate_compare(eval_state *e) {
    const quant_cli *c = &e->c;
    char list[512];
    snprintf(list, sizeof list, "%s", c->compare);
    compare_row rows[16]; /* compare_check allowed at most 16 */
    int n = 0;
    for (char *save = NULL, *v = strtok_r(list, ",", &save); v; v = strtok_r(NULL, ",", &save)) {
        rotq_rotate_options ro;
        bool on;
        if (compare_variant(e->cmd, c, v, &ro, &on)) return 2;
        compare_row *row = &rows[n++];
        memset(row, 0, sizeof *row);
        snprintf(row->name, sizeof row->name, "%s", v);
        if (n > 1) {
            rotq_model_free(e->m);
            e->m = NULL;
            if (cli_load(e->cmd, e->path, c->arch_file, c->tokenizer, &e->m)) return 1;
        }
        if (!c->quiet) fprintf(stderr, "eval: rotation %s\n", v);
        snprintf(row->rotation, sizeof row->rotation, "none");
        if (on) {
            double t0 = cli_now_s();
            ro.verbose = !c->quiet;
            rotq_status s = rotq_rotate_model(e->m, &ro);
            if (s != ROTQ_OK) return cli_lib_error(e->cmd, s);
            row->rotate_s = cli_now_s() - t0;
            quant_cli c2 = *c;
            c2.ro = ro;
            c2.rotate = true;
            quant_cli_rotation_desc(&c2, row->rotation, sizeof row->rotation);
        }
        if (quant_cli_quantize(e->cmd, e->m, c, e->tok, &e->rep, &e->calib_text_tokens, &row->quantize_s)) return 1;
        rotq_ppl_result res;
        char label[64];
        snprintf(label, sizeof label, "quantized (%s)", v);
        if (run_ppl(e->cmd, e->m, c, &c->q, e->ids, e->n_ids, &e->po, label, !c->float_products, NULL, 0, row->transforms,
                    sizeof row->transforms, &res))
            return 1;
        row->ppl = res.ppl;
        row->eval_s = res.seconds;
    }
    compare_report(e, rows, n);
    return 0;
}

/* The measurement itself: baseline, rotation, weights, quantized perplexity. 0 or 1. */
static int evaluate(eval_state *e) {
    const quant_cli *c = &e->c;
    rotq_status s = rotq_tokenizer_from_model(e->m, &e->tok);
    if (s != ROTQ_OK) return cli_lib_error(e->cmd, s);
    if (quant_cli_tokenize_file(e->cmd, e->tok, c->text, c->text_format, &e->ids, &e->n_ids, &e->text_bytes, &e->wikitext))
        return 1;
    nn_cli_ppl_options(e->cmd, e->tok, &e->hp, ROTQ_PPL_PAPERS, c->bos_arg, c->ctx, c->ctx_given && !c->quiet,
                       c->max_windows, &e->po, e->bos_desc, sizeof e->bos_desc);
    e->threads = rotq_threads_resolve(c->q.threads);
    if (c->compare) {
        if (strcmp(c->baseline, "original") != 0)
            return cli_usage(e->cmd, "--compare-rotations compares against the model as loaded (--baseline original)");
        return eval_baseline(e) ? 1 : evaluate_compare(e);
    }
    if (strcmp(c->baseline, "original") == 0 && eval_baseline(e)) return 1;
    if (c->rotate) {
        double t0 = cli_now_s();
        rotq_rotate_options ro = c->ro;
        ro.verbose = !c->quiet;
        if ((s = rotq_rotate_model(e->m, &ro)) != ROTQ_OK) return cli_lib_error(e->cmd, s);
        e->t_rot = cli_now_s() - t0;
    }
    rotq_quant_options none = rotq_quant_defaults();
    if (strcmp(c->baseline, "rotated") == 0 &&
        run_ppl(e->cmd, e->m, c, &none, e->ids, e->n_ids, &e->po, "rotated float", false, NULL, 0, NULL, 0, &e->base))
        return 1;
    if (quant_cli_quantize(e->cmd, e->m, c, e->tok, &e->rep, &e->calib_text_tokens, &e->t_quant)) return 1;
    return run_ppl(e->cmd, e->m, c, &c->q, e->ids, e->n_ids, &e->po, "quantized", !c->float_products, e->products,
                   sizeof e->products, e->transforms, sizeof e->transforms, &e->quant);
}

int cmd_eval(int argc, char **argv) {
    const char *cmd = "eval";
    if (cli_wants_help(argc, argv)) { fputs(help_head, stdout); fputs(quant_cli_help, stdout); return 0; }
    eval_state *e = calloc(1, sizeof *e);
    if (!e) return cli_error(cmd, "out of memory");
    e->cmd = cmd;
    int rc = quant_cli_parse(cmd, argc, argv, &e->c) ? 1 : 0;
    if (!rc && e->c.n_positional != 1) { fputs(help_head, stderr); rc = 2; }
    if (!rc && !e->c.text) rc = cli_usage(cmd, "--text FILE is required (see rotq eval --help)");
    if (!rc && e->c.compare) rc = compare_check(cmd, &e->c);
    if (!rc) {
        e->path = e->c.positional[0];
        e->t_start = cli_now_s();
        rc = cli_load(cmd, e->path, e->c.arch_file, e->c.tokenizer, &e->m);
    }
    if (!rc) {
        e->t_load = cli_now_s() - e->t_start;
        rotq_model_hparams(e->m, &e->hp);
        rc = evaluate(e);
    }
    if (!rc && !e->c.compare) {
        e->t_total = cli_now_s() - e->t_start;
        report(e);
    }
    free(e->ids);
    rotq_tokenizer_free(e->tok);
    rotq_model_free(e->m);
    free(e);
    return rc;
}
