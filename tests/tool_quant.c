/* tool_quant: one quantizer on a raw float32 matrix, for tests/oracle_quant_gptq.py to compare with
 * a reference (rtn, gptq with a given Hessian, per-row activations). Test tooling: it reaches the
 * library's private quantizers, which the rotq command-line tool does not, and shares the tool's
 * option helpers (tools/cli.c). */
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "quant/quant.h"

static const char *test_help =
    "usage: tool_quant rtn|gptq|act --in M.f32 --rows R --cols C --out Q.f32 [options]\n"
    "\n"
    "Runs one quantizer on a raw little-endian float32 matrix [R, C] (row-major) and writes the\n"
    "dequantized result the same way — the hook for tests that compare rotq with a reference.\n"
    "  rtn    weights: --bits N [--asym] [--group G] [--mse] (clip search), or --grid T: GGUF block type T's\n"
    "         own grid (gptq too)\n"
    "  gptq   weights with Hessian --hessian H.f64 (raw float64 [C, C]): --bits N [--asym] [--group G]\n"
    "         [--mse] [--act-order] [--static-groups] [--block B] [--percdamp F]; prints the loss;\n"
    "         --method gptaq|qronos --cross G.f64: the asymmetric fits, H from the quantized inputs and G\n"
    "         (raw float64 [C, C], G_ij = sum x_i x~_j) the cross term [--qronos-damp F] [--gptaq-alpha A]\n"
    "  act    per-row activations: --bits N [--asym] [--clip R] [--group G]\n"
    "  --norm P  the clip search's error exponent (rtn; default 2.4)\n"
    "  --scale clip|mse|hessian  the scale search (implies --mse); hessian needs --hessian, rtn included\n"
    "  --range maxq|full|signed  symmetric grids' range convention (rtn, gptq, act; default maxq)\n";

/* the scalar format, or a block type's own grid (as a GGUF export quantizes) */
static rotq_wq_format make_format(long long bits, bool asym, long long group, bool clip, rotq_dtype grid, rotq_sym_range range) {
    if (grid == ROTQ_DTYPE_INVALID) {
        rotq_wq_format f = rotq_wq_format_make((int32_t)bits, asym, group, clip);
        f.sym_range = range;
        return f;
    }
    rotq_quant_options o = rotq_quant_defaults();
    o.w_clip = clip;
    return rotq_wq_format_for_dtype(&o, grid);
}

static int read_raw(const char *cmd, const char *path, uint64_t want, void **out) {
    uint8_t *data;
    uint64_t size;
    rotq_status s = rotq_read_file(path, &data, &size);
    if (s != ROTQ_OK) return cli_lib_error(cmd, s);
    if (size != want) {
        free(data);
        return cli_error(cmd, "%s holds %llu bytes, expected %llu", path, (unsigned long long)size, (unsigned long long)want);
    }
    *out = data;
    return 0;
}

int main(int argc, char **argv) {
    const char *cmd = "tool_quant";
    if (argc < 2 || strcmp(argv[1], "--help") == 0) { fputs(test_help, argc < 2 ? stderr : stdout); return argc < 2 ? 2 : 0; }
    const char *mode = argv[1], *in = NULL, *out = NULL, *hpath = NULL, *gpath = NULL;
    rotq_wq_method method = ROTQ_WQ_GPTQ;
    double qronos_damp = -1.0, norm = 2.4, alpha = -1.0;
    long long rows = 0, cols = 0, bits = 4, group = -1, block = 128;
    bool asym = false, clip = false, act_order = false, static_groups = false;
    rotq_dtype grid = ROTQ_DTYPE_INVALID;
    double clip_ratio = 1.0, percdamp = 0.01;
    rotq_sym_range range = ROTQ_SYM_MAXQ;
    rotq_w_scale scale = ROTQ_WSCALE_CLIP;
    for (int i = 2; i < argc; i++) {
        const char *a = argv[i], *v;
        char *end = NULL;
        if (cli_is(a, "--in")) in = cli_value(argc, argv, &i);
        else if (cli_is(a, "--out")) out = cli_value(argc, argv, &i);
        else if (cli_is(a, "--hessian")) hpath = cli_value(argc, argv, &i);
        else if (cli_is(a, "--cross")) gpath = cli_value(argc, argv, &i);
        else if (cli_is(a, "--method")) {
            if (!(v = cli_value(argc, argv, &i))) return cli_error(cmd, "--method needs gptq, gptaq or qronos");
            if (strcmp(v, "gptq") == 0) method = ROTQ_WQ_GPTQ;
            else if (strcmp(v, "gptaq") == 0) method = ROTQ_WQ_GPTAQ;
            else if (strcmp(v, "qronos") == 0) method = ROTQ_WQ_QRONOS;
            else return cli_error(cmd, "--method %s: expected gptq, gptaq or qronos", v);
        } else if (cli_is(a, "--norm")) {
            if (!(v = cli_value(argc, argv, &i))) return cli_error(cmd, "--norm needs a number");
            norm = strtod(v, &end);
            if (*end) return cli_error(cmd, "--norm %s: expected a number", v);
        } else if (cli_is(a, "--gptaq-alpha")) {
            if (!(v = cli_value(argc, argv, &i))) return cli_error(cmd, "--gptaq-alpha needs a number");
            alpha = strtod(v, &end);
            if (*end) return cli_error(cmd, "--gptaq-alpha %s: expected a number", v);
        } else if (cli_is(a, "--qronos-damp")) {
            if (!(v = cli_value(argc, argv, &i))) return cli_error(cmd, "--qronos-damp needs a number");
            qronos_damp = strtod(v, &end);
            if (*end) return cli_error(cmd, "--qronos-damp %s: expected a number", v);
        }
        else if (cli_is(a, "--asym")) asym = true;
        else if (cli_is(a, "--act-order")) act_order = true;
        else if (cli_is(a, "--static-groups")) static_groups = true;
        else if (cli_is(a, "--mse")) clip = true;
        else if (cli_is(a, "--scale")) {
            if (!(v = cli_value(argc, argv, &i))) return cli_error(cmd, "--scale needs clip, mse or hessian");
            if (strcmp(v, "clip") == 0) scale = ROTQ_WSCALE_CLIP;
            else if (strcmp(v, "mse") == 0) scale = ROTQ_WSCALE_MSE;
            else if (strcmp(v, "hessian") == 0) scale = ROTQ_WSCALE_HESSIAN;
            else return cli_error(cmd, "--scale %s: expected clip, mse or hessian", v);
            clip = true;
        }
        else if (cli_is(a, "--range")) {
            if (!(v = cli_value(argc, argv, &i))) return cli_error(cmd, "--range needs maxq, full or signed");
            if (strcmp(v, "maxq") == 0) range = ROTQ_SYM_MAXQ;
            else if (strcmp(v, "full") == 0) range = ROTQ_SYM_FULL;
            else if (strcmp(v, "signed") == 0) range = ROTQ_SYM_SIGNED;
            else return cli_error(cmd, "--range %s: expected maxq, full or signed", v);
        } else if (cli_is(a, "--grid")) {
            if (!(v = cli_value(argc, argv, &i)) || !rotq_dtype_block_written(grid = rotq_dtype_from_name(v)))
                return cli_error(cmd, "--grid needs a GGUF block type rotq writes");
        }
        else if (cli_is(a, "--clip")) {
            if (!(v = cli_value(argc, argv, &i))) return cli_error(cmd, "--clip needs a ratio");
            clip_ratio = strtod(v, &end);
            if (*end) return cli_error(cmd, "--clip %s: expected a ratio", v);
        } else if (cli_is(a, "--percdamp")) {
            if (!(v = cli_value(argc, argv, &i))) return cli_error(cmd, "--percdamp needs a number");
            percdamp = strtod(v, &end);
            if (*end) return cli_error(cmd, "--percdamp %s: expected a number", v);
        } else if (cli_is(a, "--rows") || cli_is(a, "--cols") || cli_is(a, "--bits") || cli_is(a, "--group") ||
                   cli_is(a, "--block")) {
            if (!(v = cli_value(argc, argv, &i))) return cli_error(cmd, "%s needs a number", a);
            errno = 0;
            long long x = strtoll(v, &end, 10);
            if (*end || errno) return cli_error(cmd, "%s %s: expected an integer", a, v);
            if (cli_is(a, "--rows")) rows = x;
            else if (cli_is(a, "--cols")) cols = x;
            else if (cli_is(a, "--bits")) bits = x;
            else if (cli_is(a, "--group")) group = x;
            else block = x;
        } else return cli_error(cmd, "unknown option %s (see tool_quant --help)", a);
    }
    if (!in || !out || rows <= 0 || cols <= 0 || rows * cols > (1LL << 31))
        return cli_error(cmd, "needs --in, --out and positive --rows/--cols");
    float *x = NULL;
    if (read_raw(cmd, in, (uint64_t)(rows * cols) * sizeof(float), (void **)&x)) return 1;
    rotq_status s;
    double loss = 0.0;
    bool rtn_hessian = strcmp(mode, "rtn") == 0 && scale == ROTQ_WSCALE_HESSIAN;
    if (strcmp(mode, "rtn") == 0 && !rtn_hessian) {
        rotq_wq_format f = make_format(bits, asym, group, clip, grid, range);
        rotq_wq_format_set_search(&f, scale, norm);
        s = rotq_rtn_quantize(x, rows, cols, &f, NULL);
    } else if (strcmp(mode, "gptq") == 0 || rtn_hessian) {
        double *H = NULL;
        if (!hpath) { free(x); return cli_error(cmd, "gptq needs --hessian H.f64"); }
        if (read_raw(cmd, hpath, (uint64_t)(cols * cols) * sizeof(double), (void **)&H)) { free(x); return 1; }
        rotq_wq_format f = make_format(bits, asym, group, clip, grid, range);
        rotq_wq_format_set_search(&f, scale, 2.4);
        double *Hm = malloc((size_t)(cols * cols) * sizeof *Hm);
        if (!Hm) { free(x); free(H); return cli_error(cmd, "out of memory"); }
        memcpy(Hm, H, (size_t)(cols * cols) * sizeof *Hm); /* prepare() takes H as scratch */
        rotq_gptq_options o = rotq_gptq_defaults();
        o.act_order = act_order;
        o.static_groups = static_groups;
        o.block = block;
        o.percdamp = percdamp;
        if (qronos_damp >= 0) o.qronos_damp = qronos_damp;
        if (alpha >= 0) o.gptaq_alpha = alpha;
        rotq_gptq_hinv h;
        if (method == ROTQ_WQ_GPTQ) {
            s = rotq_gptq_prepare(H, cols, &o, &h);
        } else {
            double *G = NULL;
            if (!gpath) { free(x); free(H); free(Hm); return cli_error(cmd, "--method %s needs --cross G.f64", rotq_wq_method_name(method)); }
            if (read_raw(cmd, gpath, (uint64_t)(cols * cols) * sizeof(double), (void **)&G)) { free(x); free(H); free(Hm); return 1; }
            s = rotq_gptq_prepare_asym(H, G, cols, &o, method, &h);
            free(G);
        }
        if (s == ROTQ_OK) {
            h.H = Hm;
            h.rtn = rtn_hessian;
            s = rotq_gptq_quantize(x, rows, cols, &h, &f, &o, &loss, NULL);
        } else {
            free(Hm);
        }
        if (s == ROTQ_OK) printf("loss %.17g\ndead %lld\n", loss, (long long)h.n_dead);
        rotq_gptq_hinv_free(&h);
        free(H);
    } else if (strcmp(mode, "act") == 0) {
        rotq_act_format f = {.bits = (int32_t)bits, .asym = asym, .clip = (float)clip_ratio, .group = group, .range = range};
        s = rotq_act_quantize(x, rows, cols, &f);
    } else {
        free(x);
        return cli_error(cmd, "mode %s: expected rtn, gptq or act", mode);
    }
    if (s == ROTQ_OK) s = rotq_write_file_atomic(out, x, (uint64_t)(rows * cols) * sizeof(float));
    free(x);
    return s == ROTQ_OK ? 0 : cli_lib_error(cmd, s);
}
