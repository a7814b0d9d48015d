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
    "                     the logits [n, vocab] as raw float32 to OUT\n"
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
            return cli_error(cmd, "--ids: expected comma-separated token ids, got \"%s\"", list);
        }
        v[k++] = (int32_t)x;
        p = *end ? end + 1 : end;
    }
    if (k == 0) { free(v); return cli_error(cmd, "--ids: no ids given"); }
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
    if (!v || *end || t < 1 || t > 1024) return cli_error(cmd, "--threads needs a count from 1 to 1024");
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
    if (s == ROTQ_OK) s = rotq_write_file_atomic(out_path, logits, (uint64_t)(n * V) * sizeof(float));
    free(logits);
    if (s != ROTQ_OK) return cli_lib_error(cmd, s);
    fprintf(stderr, "ppl: wrote logits [%lld, %lld] float32 to %s\n", (long long)n, (long long)V, out_path);
    return 0;
}

int cmd_ppl(int argc, char **argv) {
    const char *cmd = "ppl";
    if (cli_wants_help(argc, argv)) { fputs(help, stdout); return 0; }
    const char *path = NULL, *text_path = NULL, *arch_file = NULL, *tokenizer = NULL, *v;
    const char *ids_list = NULL, *ids_file = NULL, *dump = NULL, *bos_arg = NULL;
    int64_t ctx = 2048, max_windows = 0;
    int threads = 0;
    bool as_json = false, quiet = false, ctx_given = false;
    int text_format = 0; /* 0 auto, 1 wikitext, 2 plain */
    rotq_ppl_protocol protocol = ROTQ_PPL_PAPERS;
    for (int i = 1; i < argc; i++) {
        char *end;
        if (cli_is(argv[i], "--text")) {
            if (!(text_path = cli_value(argc, argv, &i))) return cli_error(cmd, "--text needs a file");
        } else if (cli_is(argv[i], "--ctx")) {
            v = cli_value(argc, argv, &i);
            ctx = v ? strtoll(v, &end, 10) : 0;
            if (!v || *end || ctx < 2 || ctx > (1 << 20)) return cli_error(cmd, "--ctx needs a window length from 2 to 1048576");
            ctx_given = true;
        } else if (cli_is(argv[i], "--bos")) {
            if (!(bos_arg = cli_value(argc, argv, &i)) ||
                (strcmp(bos_arg, "none") && strcmp(bos_arg, "first") && strcmp(bos_arg, "every")))
                return cli_error(cmd, "--bos needs none, first or every");
        } else if (cli_is(argv[i], "--protocol")) {
            if (!(v = cli_value(argc, argv, &i))) return cli_error(cmd, "--protocol needs papers or llama.cpp");
            if (strcmp(v, "papers") == 0) protocol = ROTQ_PPL_PAPERS;
            else if (strcmp(v, "llama.cpp") == 0 || strcmp(v, "llamacpp") == 0) protocol = ROTQ_PPL_LLAMACPP;
            else return cli_error(cmd, "--protocol %s: expected papers or llama.cpp", v);
        } else if (cli_is(argv[i], "--max-windows")) {
            v = cli_value(argc, argv, &i);
            max_windows = v ? strtoll(v, &end, 10) : 0;
            if (!v || *end || max_windows < 1) return cli_error(cmd, "--max-windows needs a positive count");
        } else if (cli_is(argv[i], "--text-format")) {
            if (!(v = cli_value(argc, argv, &i))) return cli_error(cmd, "--text-format needs auto, wikitext or plain");
            if (strcmp(v, "auto") == 0) text_format = 0;
            else if (strcmp(v, "wikitext") == 0) text_format = 1;
            else if (strcmp(v, "plain") == 0) text_format = 2;
            else return cli_error(cmd, "--text-format %s: expected auto, wikitext or plain", v);
        } else if (cli_is(argv[i], "--threads")) {
            if (nn_cli_threads(cmd, cli_value(argc, argv, &i), &threads)) return 1;
        } else if (cli_is(argv[i], "--json")) {
            as_json = true;
        } else if (cli_is(argv[i], "--quiet")) {
            quiet = true;
        } else if (cli_is(argv[i], "--ids")) {
            if (!(ids_list = cli_value(argc, argv, &i))) return cli_error(cmd, "--ids needs a list");
        } else if (cli_is(argv[i], "--ids-file")) {
            if (!(ids_file = cli_value(argc, argv, &i))) return cli_error(cmd, "--ids-file needs a file");
        } else if (cli_is(argv[i], "--dump-logits")) {
            if (!(dump = cli_value(argc, argv, &i))) return cli_error(cmd, "--dump-logits needs an output file");
        } else if (cli_is(argv[i], "--arch-file")) {
            if (!(arch_file = cli_value(argc, argv, &i))) return cli_error(cmd, "--arch-file needs a file");
        } else if (cli_is(argv[i], "--tokenizer")) {
            if (!(tokenizer = cli_value(argc, argv, &i))) return cli_error(cmd, "--tokenizer needs a file");
        } else if (argv[i][0] == '-') {
            return cli_error(cmd, "unknown option %s (see rotq ppl --help)", argv[i]);
        } else if (!path) {
            path = argv[i];
        } else {
            return cli_error(cmd, "one model at a time (got %s and %s)", path, argv[i]);
        }
    }
    if (!path) { fputs(help, stderr); return 2; }
    bool debug = ids_list || ids_file || dump;
    if (debug && (!(ids_list || ids_file) || !dump)) return cli_error(cmd, "--dump-logits needs --ids or --ids-file, and they need it");
    if (!debug && !text_path) return cli_error(cmd, "--text FILE is required (see rotq ppl --help)");

    rotq_model *m;
    if (cli_load(cmd, path, arch_file, tokenizer, &m)) return 1;
    rotq_hparams hp;
    rotq_model_hparams(m, &hp);
    rotq_session *ses = NULL;
    rotq_tokenizer *tok = NULL;
    int32_t *ids = NULL;
    char *text = NULL;
    int rc = 1;
    rotq_session_options so = rotq_session_defaults();
    so.threads = threads;
    rotq_status s = rotq_session_new(m, &so, &ses);
    if (s != ROTQ_OK) { cli_lib_error(cmd, s); goto done; }

    if (debug) {
        int64_t n;
        if (ids_list ? nn_cli_parse_ids(cmd, ids_list, &ids, &n) : nn_cli_read_ids(cmd, ids_file, &ids, &n)) goto done;
        rc = dump_logits(cmd, ses, hp.vocab, ids, n, dump);
        goto done;
    }

    /* the text, read as the chosen format */
    uint64_t text_len;
    if (cli_read_text(cmd, text_path, &text_format, &text, &text_len)) goto done;

    if ((s = rotq_tokenizer_from_model(m, &tok)) != ROTQ_OK) { cli_lib_error(cmd, s); goto done; }
    bool tok_bos = rotq_tokenizer_add_bos_default(tok);
    rotq_ppl_options o = {0};
    o.protocol = protocol;
    o.bos_id = rotq_tokenizer_bos(tok);
    if (o.bos_id < 0) o.bos_id = hp.bos_id;
    if (protocol == ROTQ_PPL_PAPERS) {
        o.bos = !bos_arg ? (tok_bos ? ROTQ_BOS_FIRST : ROTQ_BOS_NONE)
              : strcmp(bos_arg, "none") == 0 ? ROTQ_BOS_NONE
              : strcmp(bos_arg, "first") == 0 ? ROTQ_BOS_FIRST : ROTQ_BOS_EVERY;
    } else {
        o.add_bos = bos_arg ? strcmp(bos_arg, "none") != 0 : tok_bos;
    }
    int64_t n_ids;
    if ((s = rotq_tokenizer_encode(tok, text, text_len, false, &ids, &n_ids)) != ROTQ_OK) { cli_lib_error(cmd, s); goto done; }
    bool capped = false;
    if (hp.max_pos > 0 && ctx > hp.max_pos) { ctx = hp.max_pos; capped = true; }
    if (capped && ctx_given && !quiet) fprintf(stderr, "ppl: --ctx capped at the model's %lld positions\n", (long long)ctx);
    o.ctx = ctx;
    o.max_windows = max_windows;
    progress_state ps = {isatty(2) != 0, quiet, ctx};
    o.progress = progress;
    o.progress_ctx = &ps;
    rotq_ppl_result res;
    if ((s = rotq_session_ppl(ses, ids, n_ids, &o, &res)) != ROTQ_OK) { cli_lib_error(cmd, s); goto done; }
    /* a float model's result is exactly rotq eval's baseline: record it for eval to reuse */
    rotq_baseline_cache *cache = NULL;
    if (rotq_baseline_cache_open(NULL, m, ids, n_ids, &o, rotq_session_threads(ses), &cache) == ROTQ_OK &&
        rotq_baseline_cache_put(cache, &res) != ROTQ_OK && !quiet)
        fprintf(stderr, "ppl: could not record the result in the baseline cache: %s\n", rotq_last_error());
    rotq_baseline_cache_free(cache);

    char dtype[256], bos_desc[96], proto_desc[160];
    nn_cli_dtype_desc(m, dtype, sizeof dtype);
    if (protocol == ROTQ_PPL_PAPERS) {
        const char *names[] = {"none", "first", "every"};
        snprintf(bos_desc, sizeof bos_desc, "%s%s", names[o.bos], bos_arg ? "" : " (tokenizer default)");
        snprintf(proto_desc, sizeof proto_desc, "papers: windows of %lld tokens, every token after the first scored",
                 (long long)ctx);
    } else {
        snprintf(bos_desc, sizeof bos_desc, "%s%s", o.add_bos ? "text start + every window" : "none",
                 bos_arg ? "" : " (vocabulary default)");
        snprintf(proto_desc, sizeof proto_desc, "llama.cpp: windows of %lld tokens, second half scored", (long long)ctx);
    }
    const char *fmt_desc = text_format == 1 ? "wikitext rows joined with \"\\n\\n\"" : "plain bytes";
    double tps = res.seconds > 0 ? (double)res.n_processed / res.seconds : 0.0;
    double rss = nn_cli_peak_rss_mib();
    if (as_json) {
        json_t *j = json_object();
        json_object_set_new(j, "model", json_string(path));
        json_object_set_new(j, "architecture", json_string(hp.arch));
        json_object_set_new(j, "text", json_string(text_path));
        json_object_set_new(j, "text_format", json_string(text_format == 1 ? "wikitext" : "plain"));
        json_object_set_new(j, "text_bytes", json_integer((json_int_t)text_len));
        json_object_set_new(j, "text_tokens", json_integer(n_ids));
        json_object_set_new(j, "tokenizer", json_string(rotq_tokenizer_kind(tok)));
        json_object_set_new(j, "protocol", json_string(protocol == ROTQ_PPL_PAPERS ? "papers" : "llama.cpp"));
        json_object_set_new(j, "bos", json_string(bos_desc));
        json_object_set_new(j, "ctx", json_integer(ctx));
        json_object_set_new(j, "dtype", json_string(dtype));
        json_object_set_new(j, "transforms", json_string(rotq_session_transforms(ses)));
        json_object_set_new(j, "perplexity", json_real(res.ppl));
        json_object_set_new(j, "nll_sum", json_real(res.nll));
        json_object_set_new(j, "scored_tokens", json_integer(res.n_scored));
        json_object_set_new(j, "windows", json_integer(res.n_windows));
        json_object_set_new(j, "windows_available", json_integer(res.n_windows_available));
        json_object_set_new(j, "seconds", json_real(res.seconds));
        json_object_set_new(j, "tokens_per_second", json_real(tps));
        json_object_set_new(j, "threads", json_integer(rotq_session_threads(ses)));
        json_object_set_new(j, "peak_rss_mib", json_real(rss));
        char *js = json_dumps(j, JSON_INDENT(2));
        if (js) { puts(js); free(js); }
        json_decref(j);
    } else {
        printf("model       %s (%s, %lld layers, hidden %lld, vocab %lld)\n", path, hp.arch, (long long)hp.n_layers,
               (long long)hp.hidden, (long long)hp.vocab);
        printf("dtype       %s\n", dtype);
        cli_print_transforms("transforms  ", rotq_session_transforms(ses));
        printf("text        %s (%s, %llu bytes, %lld tokens)\n", text_path, fmt_desc, (unsigned long long)text_len,
               (long long)n_ids);
        printf("tokenizer   %s; BOS %s\n", rotq_tokenizer_kind(tok), bos_desc);
        printf("protocol    %s\n", proto_desc);
        printf("perplexity  %.4f\n", res.ppl);
        printf("scored      %lld tokens in %lld windows (%lld available)\n", (long long)res.n_scored,
               (long long)res.n_windows, (long long)res.n_windows_available);
        printf("time        %.2f s, %.1f tokens/s, %d threads, peak RSS %.0f MiB\n", res.seconds, tps, rotq_session_threads(ses), rss);
    }
    rc = 0;
done:
    free(ids);
    free(text);
    rotq_tokenizer_free(tok);
    rotq_session_free(ses);
    rotq_model_free(m);
    return rc;
}
