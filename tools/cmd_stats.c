/* rotq stats MODEL --text FILE: how outlier-heavy the input of every linear is, per layer and site,
 * and (with --rotate) the same after rotating in memory; --plot draws both with gnuplot. */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "nn_cli.h"

static const char *help =
    "usage: rotq stats MODEL --text FILE [--tokens N] [--rotate [--r1 K --r2 K --r3 on|off --r4 on|off --seed S]]\n"
    "                  [--plot FILE.png [--force]] [--json] [--threads N] [--arch-file F]\n"
    "\n"
    "Runs the first N tokens of FILE (default 512; tokenized with the model's tokenizer and its BOS\n"
    "default) and reports, for every layer and site (attn_in: q/k/v input, o_in, mlp_in: gate/up\n"
    "input, down_in), max|x|/rms(x) over the site's activations and their kurtosis E[x^4]/E[x^2]^2\n"
    "(3 for a Gaussian). --rotate also rotates the model in memory (options as rotq rotate) and\n"
    "reports both.\n"
    "  --text FILE        the text (required); --tokens N how many of its tokens (default 512, at most\n"
    "                     the model's context)\n"
    "  --rotate           also rotate in memory; --r1 --r2 --r3 --r4 --seed as in rotq rotate\n"
    "  --plot FILE.png    draw max/rms and kurtosis per layer, before and after, through gnuplot\n"
    "                     (Debian's gnuplot-nox); --force replaces an existing FILE.png\n"
    "  --json             print the numbers as JSON on stdout\n"
    "  --threads N        threads for BLAS and OpenMP (default: all)\n"
    "  --arch-file F      register a JSON architecture description first\n";

/* The statistics of every layer and site, [n_layers][ROTQ_N_SITES] (malloc'd), from one forward
 * pass of a session: after the model's online rotations, as a quantizer would see them. Returns 0,
 * or 1 with the error printed. */
static int collect(rotq_model *m, const rotq_hparams *hp, const int32_t *ids, int64_t n, int threads,
                   rotq_site_summary **out) {
    rotq_session_options so = rotq_session_defaults();
    so.threads = threads;
    so.stats = true;
    rotq_session *ses = NULL;
    rotq_status s = rotq_session_new(m, &so, &ses);
    if (s != ROTQ_OK) return cli_lib_error("stats", s);
    int64_t cells = hp->n_layers * ROTQ_N_SITES;
    *out = malloc((size_t)cells * sizeof **out);
    float *logits = malloc((size_t)(n * hp->vocab) * sizeof *logits);
    int rc = *out && logits ? 0 : cli_error("stats", "out of memory for %lld tokens", (long long)n);
    if (!rc && (s = rotq_session_logits(ses, ids, n, logits)) != ROTQ_OK) rc = cli_lib_error("stats", s);
    for (int64_t i = 0; !rc && i < cells; i++)
        if ((s = rotq_session_site_stats(ses, (int32_t)(i / ROTQ_N_SITES), (rotq_site)(i % ROTQ_N_SITES), &(*out)[i])) != ROTQ_OK)
            rc = cli_lib_error("stats", s);
    free(logits);
    rotq_session_free(ses);
    return rc;
}

static int plot(const char *png, int64_t n_layers, const rotq_site_summary *before, const rotq_site_summary *after,
                const char *title) {
    char dat[] = "/tmp/rotq-stats-XXXXXX";
    int fd = mkstemp(dat);
    if (fd < 0) return cli_error("stats", "cannot create a temporary file for gnuplot");
    FILE *f = fdopen(fd, "w");
    for (int64_t l = 0; l < n_layers; l++) {
        fprintf(f, "%lld", (long long)l);
        for (int s = 0; s < ROTQ_N_SITES; s++) {
            const rotq_site_summary *b = &before[l * ROTQ_N_SITES + s], *a = after ? &after[l * ROTQ_N_SITES + s] : b;
            fprintf(f, " %g %g %g %g", b->max_over_rms, a->max_over_rms, b->kurtosis, a->kurtosis);
        }
        fprintf(f, "\n");
    }
    fclose(f);
    FILE *g = popen("gnuplot 2>&1", "w");
    if (!g) { unlink(dat); return cli_error("stats", "cannot run gnuplot (install Debian's gnuplot-nox)"); }
    /* gnuplot writes a temporary beside the PNG (named as the library names its own), renamed into place */
    char tmp[4096];
    snprintf(tmp, sizeof tmp, "%s.tmp-%ld-XXXXXX", png, (long)getpid());
    int tfd = mkstemp(tmp);
    if (tfd < 0) { pclose(g); unlink(dat); return cli_error("stats", "%s: cannot create a temporary file beside it", png); }
    close(tfd);
    fprintf(g, "set terminal pngcairo size 1400,600 font ',10' noenhanced\nset output '%s'\nset multiplot layout 1,2 title '%s'\n", tmp, title);
    fprintf(g, "set logscale y\nset xlabel 'layer'\nset key outside right top\nset grid\n");
    const char *colors[ROTQ_N_SITES] = {"#1f77b4", "#ff7f0e", "#2ca02c", "#d62728"};
    for (int panel = 0; panel < 2; panel++) {
        fprintf(g, "set ylabel '%s'\nplot ", panel ? "kurtosis" : "max|x| / rms");
        for (int s = 0; s < ROTQ_N_SITES; s++) {
            int col = 2 + 4 * s + 2 * panel;
            fprintf(g, "%s'%s' using 1:%d with linespoints lw 2 lc rgb '%s' dt 2 title '%s before'", s ? ", " : "", dat, col, colors[s], rotq_site_name(s));
            if (after) fprintf(g, ", '%s' using 1:%d with linespoints lw 2 lc rgb '%s' title '%s after'", dat, col + 1, colors[s], rotq_site_name(s));
        }
        fprintf(g, "\n");
    }
    fprintf(g, "unset multiplot\n");
    int rc = pclose(g);
    unlink(dat);
    if (rc == 0 && rename(tmp, png) != 0) rc = -1;
    if (rc != 0) unlink(tmp);
    if (rc != 0) return cli_error("stats", "gnuplot failed writing %s (is gnuplot with the pngcairo terminal installed?)", png);
    return 0;
}

int cmd_stats(int argc, char **argv) {
    if (cli_wants_help(argc, argv)) { fputs(help, stdout); return 0; }
    if (cli_wants_help(argc, argv)) { fputs(help, stdout); return 0; }
    const char *path = NULL, *text = NULL, *png = NULL, *arch_file = NULL;
    int64_t T = 512;
    int threads = 0;
    bool rotate = false, as_json = false, force = false;
    rotq_rotate_options ro = rotq_rotate_options_default();
    for (int i = 1; i < argc; i++) {
        int used = cli_rotate_option("stats", argc, argv, &i, &ro);
        if (used < 0) return 1;
        if (used) continue;
        if (cli_is(argv[i], "--text")) { if (!(text = cli_value(argc, argv, &i))) return cli_usage("stats", "--text needs a file"); }
        else if (cli_is(argv[i], "--plot")) { if (!(png = cli_value(argc, argv, &i))) return cli_usage("stats", "--plot needs a file"); }
        else if (cli_is(argv[i], "--arch-file")) { if (!(arch_file = cli_value(argc, argv, &i))) return cli_usage("stats", "--arch-file needs a file"); }
        else if (cli_is(argv[i], "--tokens")) { if (cli_int("stats", "--tokens", cli_value(argc, argv, &i), 1, 1 << 20, &T)) return 1; }
        else if (cli_is(argv[i], "--threads")) { if (nn_cli_threads("stats", cli_value(argc, argv, &i), &threads)) return 1; }
        else if (cli_flag(argv[i], "--rotate")) rotate = true;
        else if (cli_flag(argv[i], "--json")) as_json = true;
        else if (cli_flag(argv[i], "--force")) force = true;
        else if (cli_is_option(argv[i])) return cli_unknown("stats", argv[i]);
        else if (!path) path = argv[i];
        else return cli_usage("stats", "unexpected argument %s", argv[i]);
    }
    if (!path || !text) { fputs(help, stderr); return 2; }
    if (png && cli_check_output("stats", path, png, ROTQ_OUTPUT_FILE, force)) return 1;
    rotq_model *m;
    if (cli_load("stats", path, arch_file, NULL, &m)) return 1;
    uint8_t *data = NULL;
    uint64_t size;
    rotq_tokenizer *tok = NULL;
    int32_t *ids = NULL;
    int64_t n = 0;
    rotq_status s = rotq_read_file(text, &data, &size);
    if (s == ROTQ_OK) s = rotq_tokenizer_from_model(m, &tok);
    size_t len = size > (uint64_t)T * 32 ? (size_t)T * 32 : (size_t)size;
    if (s == ROTQ_OK) s = rotq_tokenizer_encode(tok, (const char *)data, len, rotq_tokenizer_add_bos_default(tok), &ids, &n);
    if (n > T) n = T;
    rotq_hparams hp;
    rotq_model_hparams(m, &hp);
    if (n > hp.max_pos) n = hp.max_pos;
    int64_t L = hp.n_layers;
    rotq_site_summary *before = NULL, *after = NULL;
    int rc = s == ROTQ_OK ? 0 : cli_lib_error("stats", s);
    if (!rc) rc = collect(m, &hp, ids, n, threads, &before);
    if (!rc && rotate) {
        s = rotq_rotate_model(m, &ro);
        rc = s == ROTQ_OK ? collect(m, &hp, ids, n, threads, &after) : cli_lib_error("stats", s);
    }
    if (!rc) {
        json_t *j = json_pack("{s:s, s:s, s:I, s:b}", "model", path, "text", text, "tokens", (json_int_t)n, "rotated", rotate);
        json_t *rows = json_array();
        if (!as_json)
            printf("%s on %lld tokens of %s%s\nlayer site       max/rms%s   kurtosis%s\n", path, (long long)n, text,
                   rotate ? " (before -> after rotation)" : "", rotate ? " before  after" : "", rotate ? " before  after" : "");
        for (int64_t l = 0; l < L; l++)
            for (int st = 0; st < ROTQ_N_SITES; st++) {
                const rotq_site_summary *b = &before[l * ROTQ_N_SITES + st];
                json_t *row = json_pack("{s:I, s:s, s:f, s:f}", "layer", (json_int_t)l, "site", rotq_site_name(st), "max_over_rms",
                                        b->max_over_rms, "kurtosis", b->kurtosis);
                if (rotate) {
                    const rotq_site_summary *a = &after[l * ROTQ_N_SITES + st];
                    json_object_set_new(row, "max_over_rms_rotated", json_real(a->max_over_rms));
                    json_object_set_new(row, "kurtosis_rotated", json_real(a->kurtosis));
                    if (!as_json)
                        printf("%5lld %-9s %8.2f %7.2f   %8.2f %7.2f\n", (long long)l, rotq_site_name(st), b->max_over_rms,
                               a->max_over_rms, b->kurtosis, a->kurtosis);
                } else if (!as_json)
                    printf("%5lld %-9s %8.2f   %8.2f\n", (long long)l, rotq_site_name(st), b->max_over_rms, b->kurtosis);
                json_array_append_new(rows, row);
            }
        json_object_set_new(j, "sites", rows);
        if (as_json) {
            char *out = json_dumps(j, JSON_INDENT(2));
            puts(out);
            free(out);
        }
        json_decref(j);
        if (png) {
            char title[512];
            const char *base = strrchr(path, '/') && strrchr(path, '/')[1] ? strrchr(path, '/') + 1 : path;
            snprintf(title, sizeof title, "%s, %lld tokens%s", base, (long long)n, rotate ? ": dashed before, solid after rotation" : "");
            for (char *c = title; *c; c++) if (*c == '\'') *c = ' ';
            rc = plot(png, L, before, rotate ? after : NULL, title);
        }
    }
    free(before);
    free(after);
    free(ids);
    free(data);
    rotq_tokenizer_free(tok);
    rotq_model_free(m);
    return rc;
}
