/* rotq ppl MODEL --text FILE: perplexity with the papers' protocol or llama.cpp's.
 * Also the debug path behind the oracle tests: --ids ... --dump-logits FILE writes raw logits. */
#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "cli.h"
#include "nn_cli.h"

static const char *help =
    "usage: rotq ppl MODEL --text FILE [--ctx N] [--bos none|first|every] [--protocol papers|llama.cpp]\n"
    "                [--max-windows N] [--text-format auto|wikitext|plain] [--threads N] [--json] [--quiet]\n"
    "       rotq ppl MODEL (--ids 1,2,3 | --ids-file F.i32) --dump-logits OUT.f32\n"
    "\n"
    "Several processes: mpirun -np N rotq ppl ... splits the perplexity windows across N ranks\n"
    "(a build made with -DROTQ_MPI=ON); the result equals one process's, up to summation order; rank 0 prints and writes.\n"
    "\n"
    "Perplexity of MODEL on a text, computed in float32 (weights converted once at load).\n"
    "The text is tokenized once and cut into non-overlapping windows of --ctx tokens.\n"
    "  --text FILE        text to score\n"
    "  --ctx N            window length (default 2048, capped at the model's maximum positions)\n"
    "  --protocol P       papers (default): every token after the first of each window is scored;\n"
    "                     the tail shorter than a window is dropped (QuaRot/SpinQuant/GPTQ).\n"
    "                     llama.cpp: as llama.cpp's perplexity tool: BOS before the text and at the\n"
    "                     start of every window when the vocabulary adds BOS; only the second half of\n"
    "                     each window is scored.\n"
    "  --bos P            papers protocol: none (the text alone), first (one BOS before the whole text)\n"
    "                     or every (each window starts with BOS, taking one of its ctx positions).\n"
    "                     Default: first when the tokenizer adds BOS by default (as HF tokenizers\n"
    "                     do when the papers tokenize the text), else none. llama.cpp protocol:\n"
    "                     none turns BOS off, first/every force it on (default: the vocabulary's).\n"
    "  --max-windows N    stop after N windows\n"
    "  --text-format F    wikitext: the file's lines are rows, joined as the papers do\n"
    "                     (\"\\n\\n\".join(rows), each row ending in \"\\n\", CR dropped); plain: the\n"
    "                     bytes as they are. auto (default): wikitext for wiki.*.raw files\n"
    "  --threads N        threads for BLAS and OpenMP (default: all)\n"
    "  --json             machine-readable result on stdout\n"
    "  --quiet            no progress on stderr\n"
    "  --ids L, --ids-file F, --dump-logits OUT\n"
    "                     debug: run ids (comma list, or raw int32 file) as positions 0.. and write\n"
    "                     the logits [n, vocab] as raw float32 to OUT (- : standard output)\n"
    "  --force            replace an existing --dump-logits file\n"
    "  --float-activations  run activations in float even where the file says its runtime quantizes them\n"
    "                     (compressed-tensors w8a8, w4a4: by default rotq quantizes them as the file says)\n"
    "  --arch-file F      register a JSON architecture description first\n"
    "  --tokenizer F      llama2.c: tokenizer.bin path (default: beside the model)\n";

/* ---- helpers shared with generate (nn_cli.h) --------------------------------------------------- */

int nn_cli_parse_ids(const char *cmd, const char *list, int32_t **ids, int64_t *n) {
    int64_t cap = 1;
    for (const char *p = list; *p; p++) cap += *p == ',';
    int32_t *v = malloc((size_t)cap * sizeof *v);
    if (!v) return cli_error(cmd, "out of memory");
    int64_t k = 0;
    const char *p = list;
    while (*p) {
        char *end;
        errno = 0;
        long long x = strtoll(p, &end, 10);
        if (end == p || errno || x < 0 || x > INT32_MAX || (*end && *end != ',')) {
            free(v);
            return cli_usage(cmd, "--ids: expected comma-separated token ids, got \"%s\"", list);
        }
        v[k++] = (int32_t)x;
        p = *end ? end + 1 : end;
    }
    if (k == 0) { free(v); return cli_usage(cmd, "--ids: no ids given"); }
    *ids = v;
    *n = k;
    return 0;
}

int nn_cli_read_ids(const char *cmd, const char *path, int32_t **ids, int64_t *n) {
    uint8_t *data;
    uint64_t size;
    rotq_status s = rotq_read_file(path, &data, &size);
    if (s != ROTQ_OK) return cli_lib_error(cmd, s);
    if (size == 0 || size % 4) {
        free(data);
        return cli_error(cmd, "%s: %llu bytes is not a whole, non-empty list of int32 ids", path, (unsigned long long)size);
    }
    *n = (int64_t)(size / 4);
    *ids = malloc(size);
    if (!*ids) { free(data); return cli_error(cmd, "out of memory"); }
    memcpy(*ids, data, size);
    free(data);
    return 0;
}

int nn_cli_threads(const char *cmd, const char *v, int *threads) {
    char *end;
    long t = v ? strtol(v, &end, 10) : 0;
    if (!v || *end || t < 1 || t > 1024) return cli_usage(cmd, "--threads needs a count from 1 to 1024");
    *threads = (int)t;
    return 0;
}

void nn_cli_dtype_desc(const rotq_model *m, char *out, size_t size) {
    /* what the linear weights were stored as before rotq made them float32 */
    int64_t count[ROTQ_DTYPE_COUNT] = {0};
    for (int64_t i = 0; i < rotq_model_n_tensors(m); i++) {
        rotq_tensor_info t;
        if (rotq_model_tensor_info(m, i, &t) == ROTQ_OK && t.n_dims == 2 && t.file_dtype >= 0 && t.file_dtype < ROTQ_DTYPE_COUNT)
            count[t.file_dtype]++;
    }
    size_t o = (size_t)snprintf(out, size, "f32 compute (weights in file:");
    for (int d = 0; d < ROTQ_DTYPE_COUNT && o < size; d++)
        if (count[d]) o += (size_t)snprintf(out + o, size - o, " %s×%lld", rotq_dtype_name((rotq_dtype)d), (long long)count[d]);
    if (o < size) snprintf(out + o, size - o, ")");
}

int nn_cli_text_format(const char *v, int *format) {
    if (strcmp(v, "auto") == 0) *format = 0;
    else if (strcmp(v, "wikitext") == 0) *format = 1;
    else if (strcmp(v, "plain") == 0) *format = 2;
    else return 1;
    return 0;
}

void nn_cli_ppl_options(const char *cmd, const rotq_tokenizer *tok, const rotq_hparams *hp, rotq_ppl_protocol protocol,
                        const char *bos_arg, int64_t ctx, bool say_cap, int64_t max_windows, rotq_ppl_options *o,
                        char *bos_desc, size_t bos_size) {
    memset(o, 0, sizeof *o);
    bool tok_bos = rotq_tokenizer_add_bos_default(tok);
    o->protocol = protocol;
    o->bos_id = rotq_tokenizer_bos(tok);
    if (o->bos_id < 0) o->bos_id = hp->bos_id;
    if (protocol == ROTQ_PPL_PAPERS) {
        const char *names[] = {"none", "first", "every"};
        o->bos = !bos_arg ? (tok_bos ? ROTQ_BOS_FIRST : ROTQ_BOS_NONE)
               : strcmp(bos_arg, "none") == 0 ? ROTQ_BOS_NONE
               : strcmp(bos_arg, "first") == 0 ? ROTQ_BOS_FIRST : ROTQ_BOS_EVERY;
        snprintf(bos_desc, bos_size, "%s%s", names[o->bos], bos_arg ? "" : " (tokenizer default)");
    } else {
        o->add_bos = bos_arg ? strcmp(bos_arg, "none") != 0 : tok_bos;
        snprintf(bos_desc, bos_size, "%s%s", o->add_bos ? "text start + every window" : "none",
                 bos_arg ? "" : " (vocabulary default)");
    }
    if (hp->max_pos > 0 && ctx > hp->max_pos) {
        ctx = hp->max_pos;
        if (say_cap) fprintf(stderr, "%s: --ctx capped at the model's %lld positions\n", cmd, (long long)ctx);
    }
    o->ctx = ctx;
    o->max_windows = max_windows;
}

double nn_cli_peak_rss_mib(void) {
    struct rusage ru;
    if (getrusage(RUSAGE_SELF, &ru) != 0) return 0.0;
    return (double)ru.ru_maxrss / 1024.0; /* Linux reports KiB */
}

/* ---- the command ------------------------------------------------------------------------------ */

typedef struct progress_state {
    bool tty;
    bool quiet;
    int64_t ctx;
} progress_state;

static void progress(void *ctx, int64_t window, int64_t n_windows, double nll, int64_t n_scored, double seconds) {
    progress_state *p = ctx;
    if (p->quiet) return;
    double tps = seconds > 0 ? (double)(window * p->ctx) / seconds : 0.0;
    double eta = window > 0 ? seconds / (double)window * (double)(n_windows - window) : 0.0;
    if (p->tty)
        fprintf(stderr, "\rppl: window %lld/%lld  ppl %.4f  %.0f tok/s  eta %.0fs   ", (long long)window,
                (long long)n_windows, exp(nll / (double)n_scored), tps, eta);
    else
        fprintf(stderr, "ppl: window %lld/%lld ppl %.4f %.0f tok/s\n", (long long)window, (long long)n_windows,
                exp(nll / (double)n_scored), tps);
    if (p->tty && window == n_windows) fputc('\n', stderr);
    fflush(stderr);
}

static int dump_logits(const char *cmd, rotq_session *ses, int64_t V, const int32_t *ids, int64_t n, const char *out_path) {
    float *logits = malloc((size_t)(n * V) * sizeof(float));
    if (!logits) return cli_error(cmd, "out of memory for %lld logits rows", (long long)n);
    rotq_status s = rotq_session_logits(ses, ids, n, logits);
    bool to_stdout = strcmp(out_path, "-") == 0 || strcmp(out_path, "/dev/stdout") == 0;
    if (s == ROTQ_OK && to_stdout && fwrite(logits, sizeof(float), (size_t)(n * V), stdout) != (size_t)(n * V)) {
        free(logits);
        return cli_error(cmd, "standard output: write failed");
    }
    if (s == ROTQ_OK && !to_stdout) s = rotq_write_file_atomic(out_path, logits, (uint64_t)(n * V) * sizeof(float));
    free(logits);
    if (s != ROTQ_OK) return cli_lib_error(cmd, s);
    fprintf(stderr, "ppl: wrote logits [%lld, %lld] float32 to %s\n", (long long)n, (long long)V, out_path);
    return 0;
}

typedef struct ppl_args {
    const char *path, *text_path, *arch_file, *tokenizer, *bos_arg;
    const char *ids_list, *ids_file, *dump; /* the debug path */
    int64_t ctx, max_windows;
    int threads, text_format;               /* text_format: 0 auto, 1 wikitext, 2 plain */
    bool json, quiet, ctx_given, force;
    bool float_acts;                        /* ignore a file's own run-time activation quantization */
    rotq_ppl_protocol protocol;
} ppl_args;

/* 0, or the exit code after printing why. */
static int parse_args(const char *cmd, int argc, char **argv, ppl_args *a) {
    *a = (ppl_args){.ctx = 2048, .protocol = ROTQ_PPL_PAPERS};
    const char *v;
    for (int i = 1; i < argc; i++) {
        char *end;
        const char **str = cli_is(argv[i], "--text") ? &a->text_path : cli_is(argv[i], "--ids") ? &a->ids_list
                         : cli_is(argv[i], "--ids-file") ? &a->ids_file : cli_is(argv[i], "--dump-logits") ? &a->dump
                         : cli_is(argv[i], "--arch-file") ? &a->arch_file : cli_is(argv[i], "--tokenizer") ? &a->tokenizer
                         : NULL;
        if (str) {
            if (!(*str = cli_value(argc, argv, &i))) return cli_usage(cmd, "%s needs a value", argv[i]);
        } else if (cli_is(argv[i], "--ctx")) {
            v = cli_value(argc, argv, &i);
            a->ctx = v ? strtoll(v, &end, 10) : 0;
            if (!v || *end || a->ctx < 2 || a->ctx > (1 << 20)) return cli_usage(cmd, "--ctx needs a window length from 2 to 1048576");
            a->ctx_given = true;
        } else if (cli_is(argv[i], "--bos")) {
            if (!(a->bos_arg = cli_value(argc, argv, &i)) ||
                (strcmp(a->bos_arg, "none") && strcmp(a->bos_arg, "first") && strcmp(a->bos_arg, "every")))
                return cli_usage(cmd, "--bos needs none, first or every");
        } else if (cli_is(argv[i], "--protocol")) {
            if (!(v = cli_value(argc, argv, &i))) return cli_usage(cmd, "--protocol needs papers or llama.cpp");
            if (strcmp(v, "papers") == 0) a->protocol = ROTQ_PPL_PAPERS;
            else if (strcmp(v, "llama.cpp") == 0 || strcmp(v, "llamacpp") == 0) a->protocol = ROTQ_PPL_LLAMACPP;
            else return cli_usage(cmd, "--protocol %s: expected papers or llama.cpp", v);
        } else if (cli_flag(argv[i], "--float-activations")) {
            a->float_acts = true;
        } else if (cli_is(argv[i], "--max-windows")) {
            if (cli_int(cmd, "--max-windows", cli_value(argc, argv, &i), 1, INT32_MAX, &a->max_windows)) return 1;
        } else if (cli_is(argv[i], "--text-format")) {
            if (!(v = cli_value(argc, argv, &i)) || nn_cli_text_format(v, &a->text_format))
                return cli_usage(cmd, "--text-format needs auto, wikitext or plain");
        } else if (cli_is(argv[i], "--threads")) {
            if (nn_cli_threads(cmd, cli_value(argc, argv, &i), &a->threads)) return 1;
        } else if (cli_flag(argv[i], "--json")) {
            a->json = true;
        } else if (cli_flag(argv[i], "--quiet")) {
            a->quiet = true;
        } else if (cli_flag(argv[i], "--force")) {
            a->force = true;
        } else if (cli_is_option(argv[i])) {
            return cli_unknown(cmd, argv[i]);
        } else if (!a->path) {
            a->path = argv[i];
        } else {
            return cli_usage(cmd, "one model at a time (got %s and %s)", a->path, argv[i]);
        }
    }
    if (!a->path) { fputs(help, stderr); return 2; }
    bool debug = a->ids_list || a->ids_file || a->dump;
    if (debug && (!(a->ids_list || a->ids_file) || !a->dump)) return cli_usage(cmd, "--dump-logits needs --ids or --ids-file, and they need it");
    if (!debug && !a->text_path) return cli_usage(cmd, "--text FILE is required (see rotq ppl --help)");
    bool dump_stdout = a->dump && (strcmp(a->dump, "-") == 0 || strcmp(a->dump, "/dev/stdout") == 0);
    if (a->dump && !dump_stdout && cli_check_output(cmd, a->path, a->dump, ROTQ_OUTPUT_FILE, a->force)) return 1;
    return 0;
}

/* What one scored text leaves for the report. */
typedef struct ppl_report {
    const rotq_model *m;
    const rotq_hparams *hp;
    const rotq_session *ses;
    const rotq_tokenizer *tok;
    const rotq_ppl_options *o;
    const rotq_ppl_result *res;
    uint64_t text_len;
    int64_t n_ids;
    const char *bos_desc;
} ppl_report;

static void report(const ppl_args *a, const ppl_report *r) {
    char dtype[256], proto_desc[160];
    nn_cli_dtype_desc(r->m, dtype, sizeof dtype);
    bool papers = a->protocol == ROTQ_PPL_PAPERS;
    if (papers)
        snprintf(proto_desc, sizeof proto_desc, "papers: windows of %lld tokens, every token after the first scored",
                 (long long)r->o->ctx);
    else
        snprintf(proto_desc, sizeof proto_desc, "llama.cpp: windows of %lld tokens, second half scored", (long long)r->o->ctx);
    const rotq_ppl_result *res = r->res;
    double tps = res->seconds > 0 ? (double)res->n_processed / res->seconds : 0.0, rss = nn_cli_peak_rss_mib();
    int threads = rotq_session_threads(r->ses);
    if (a->json) {
        json_t *j = json_pack("{s:s, s:s, s:s, s:s, s:I, s:I, s:s, s:s, s:s, s:I, s:s, s:s}", "model", a->path, "architecture",
                              r->hp->arch, "text", a->text_path, "text_format", a->text_format == 1 ? "wikitext" : "plain",
                              "text_bytes", (json_int_t)r->text_len, "text_tokens", (json_int_t)r->n_ids, "tokenizer",
                              rotq_tokenizer_kind(r->tok), "protocol", papers ? "papers" : "llama.cpp", "bos", r->bos_desc,
                              "ctx", (json_int_t)r->o->ctx, "dtype", dtype, "transforms", rotq_session_transforms(r->ses));
        json_object_set_new(j, "perplexity", json_real(res->ppl));
        json_object_set_new(j, "nll_sum", json_real(res->nll));
        json_object_set_new(j, "scored_tokens", json_integer(res->n_scored));
        json_object_set_new(j, "windows", json_integer(res->n_windows));
        json_object_set_new(j, "windows_available", json_integer(res->n_windows_available));
        json_object_set_new(j, "seconds", json_real(res->seconds));
        json_object_set_new(j, "tokens_per_second", json_real(tps));
        json_object_set_new(j, "threads", json_integer(threads));
        json_object_set_new(j, "peak_rss_mib", json_real(rss));
        char *js = json_dumps(j, JSON_INDENT(2));
        if (js) { puts(js); free(js); }
        json_decref(j);
        return;
    }
    printf("model       %s (%s, %lld layers, hidden %lld, vocab %lld)\n", a->path, r->hp->arch, (long long)r->hp->n_layers,
           (long long)r->hp->hidden, (long long)r->hp->vocab);
    printf("dtype       %s\n", dtype);
    cli_print_transforms("transforms  ", rotq_session_transforms(r->ses));
    printf("text        %s (%s, %llu bytes, %lld tokens)\n", a->text_path,
           a->text_format == 1 ? "wikitext rows joined with \"\\n\\n\"" : "plain bytes", (unsigned long long)r->text_len,
           (long long)r->n_ids);
    printf("tokenizer   %s; BOS %s\n", rotq_tokenizer_kind(r->tok), r->bos_desc);
    printf("protocol    %s\n", proto_desc);
    printf("perplexity  %.4f\n", res->ppl);
    printf("scored      %lld tokens in %lld windows (%lld available)\n", (long long)res->n_scored, (long long)res->n_windows,
           (long long)res->n_windows_available);
    printf("time        %.2f s, %.1f tokens/s, %d threads, peak RSS %.0f MiB\n", res->seconds, tps, threads, rss);
}

int cmd_ppl(int argc, char **argv) {
    const char *cmd = "ppl";
    if (cli_wants_help(argc, argv)) { fputs(help, stdout); return 0; }
    ppl_args a;
    int prc = parse_args(cmd, argc, argv, &a);
    if (prc) return prc;
    rotq_model *m;
    if (cli_load(cmd, a.path, a.arch_file, a.tokenizer, &m)) return 1;
    rotq_hparams hp;
    rotq_model_hparams(m, &hp);
    rotq_session *ses = NULL;
    rotq_tokenizer *tok = NULL;
    int32_t *ids = NULL;
    char *text = NULL;
    int rc = 1;
    rotq_session_options so = rotq_session_defaults();
    so.threads = a.threads;
    rotq_quant_options floatq = rotq_quant_defaults(); /* nothing quantized: over a file's own activation scheme */
    if (a.float_acts) so.quant = &floatq;
    rotq_status s = rotq_session_new(m, &so, &ses);
    if (s != ROTQ_OK) { cli_lib_error(cmd, s); goto done; }
    if (a.dump) {
        int64_t n;
        if (a.ids_list ? nn_cli_parse_ids(cmd, a.ids_list, &ids, &n) : nn_cli_read_ids(cmd, a.ids_file, &ids, &n)) goto done;
        rc = dump_logits(cmd, ses, hp.vocab, ids, n, a.dump);
        goto done;
    }
    /* the text, read as the chosen format, and the windows over it */
    uint64_t text_len;
    int64_t n_ids;
    if (cli_read_text(cmd, a.text_path, &a.text_format, &text, &text_len)) goto done;
    if ((s = rotq_tokenizer_from_model(m, &tok)) != ROTQ_OK) { cli_lib_error(cmd, s); goto done; }
    if ((s = rotq_tokenizer_encode(tok, text, text_len, false, &ids, &n_ids)) != ROTQ_OK) { cli_lib_error(cmd, s); goto done; }
    rotq_ppl_options o;
    char bos_desc[96];
    nn_cli_ppl_options(cmd, tok, &hp, a.protocol, a.bos_arg, a.ctx, a.ctx_given && !a.quiet, a.max_windows, &o, bos_desc,
                       sizeof bos_desc);
    progress_state ps = {isatty(2) != 0, a.quiet, o.ctx};
    o.progress = progress;
    o.progress_ctx = &ps;
    rotq_ppl_result res;
    if ((s = rotq_session_ppl(ses, ids, n_ids, &o, &res)) != ROTQ_OK) { cli_lib_error(cmd, s); goto done; }
    /* a float model's result is exactly rotq eval's baseline: record it for eval to reuse */
    rotq_baseline_cache *cache = NULL;
    if (rotq_baseline_cache_open(NULL, m, ids, n_ids, &o, rotq_session_threads(ses), &cache) == ROTQ_OK &&
        rotq_baseline_cache_put(cache, &res) != ROTQ_OK && !a.quiet)
        fprintf(stderr, "ppl: could not record the result in the baseline cache: %s\n", rotq_last_error());
    rotq_baseline_cache_free(cache);
    report(&a, &(ppl_report){m, &hp, ses, tok, &o, &res, text_len, n_ids, bos_desc});
    rc = 0;
done:
    free(ids);
    free(text);
    rotq_tokenizer_free(tok);
    rotq_session_free(ses);
    rotq_model_free(m);
    return rc;
}
