/* rotq quantize IN OUT: rotate (optional) and quantize the weights, write them dequantized to float
 * so any tool can evaluate them; rotq quant-test: the quantizers on raw matrices (for oracles). */
#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli.h"
#include "core/model.h"
#include "quant_cli.h"
#include "core/clock.h"

static const char *help_head =
    "usage: rotq quantize IN OUT [--rotate ...] (--preset P | --w-bits N [--w-quant rtn|gptq] ...)\n"
    "                    [--calib FILE --nsamples N --calib-ctx N --seed N] [--to hf|gguf] [--dtype f32|f16|bf16]\n"
    "\n"
    "Writes OUT (an HF folder, or GGUF when OUT ends in .gguf) with every decoder linear's weights\n"
    "quantized and dequantized back to float (the grid values, exactly, in float32 by default), and\n"
    "the rotation record when rotated. Activation and KV-cache quantization happen at run time and\n"
    "are not stored: evaluate OUT with rotq eval OUT --a-bits 4 --kv-bits 4 ... (no weight options).\n";

int cmd_quantize(int argc, char **argv) {
    const char *cmd = "quantize";
    if (cli_wants_help(argc, argv)) { fputs(help_head, stdout); fputs(quant_cli_help, stdout); return 0; }
    quant_cli c;
    if (quant_cli_parse(cmd, argc, argv, &c)) return 1;
    if (c.n_positional != 2) { fputs(help_head, stderr); return 2; }
    const char *in = c.positional[0], *out = c.positional[1];
    if (c.q.w_method == ROTQ_WQ_NONE || c.q.w_bits >= 16)
        return cli_error(cmd, "nothing to quantize: give --w-bits N or a --preset (rotq rotate rotates alone)");
    if (rotq_quant_has_runtime(&c.q) && !c.quiet)
        fprintf(stderr, "quantize: note: activation/KV settings are applied at run time and are not stored; pass them "
                        "to rotq eval\n");
    rotq_status s = rotq_path_check_distinct(in, out);
    if (s != ROTQ_OK) return cli_lib_error(cmd, s);
    double t0 = rotq_now_s();
    rotq_model *m;
    if (cli_load(cmd, in, c.arch_file, c.tokenizer, &m)) return 1;
    rotq_tokenizer *tok = NULL;
    int rc = 1;
    if (c.q.w_method == ROTQ_WQ_GPTQ && (s = rotq_tokenizer_from_model(m, &tok)) != ROTQ_OK) { cli_lib_error(cmd, s); goto done; }
    if (c.rotate) {
        rotq_rotate_options ro = c.ro;
        ro.verbose = !c.quiet;
        if ((s = rotq_rotate_model(m, &ro)) != ROTQ_OK) { cli_lib_error(cmd, s); goto done; }
    }
    rotq_quant_report rep;
    int64_t calib_tokens = 0;
    double t_quant = 0.0;
    if (quant_cli_quantize(cmd, m, &c, tok, &rep, &calib_tokens, &t_quant)) goto done;
    rotq_save_options so = rotq_save_defaults();
    if (c.out_format == 1) so.format = ROTQ_FORMAT_HF;
    if (c.out_format == 2) so.format = ROTQ_FORMAT_GGUF;
    if (c.out_dtype >= 0) so.dtype = (rotq_dtype)c.out_dtype;
    if ((s = rotq_model_save(m, out, &so)) != ROTQ_OK) { cli_lib_error(cmd, s); goto done; }
    char qdesc[512], rdesc[256];
    rotq_quant_describe(&c.q, qdesc, sizeof qdesc);
    quant_cli_rotation_desc(&c, rdesc, sizeof rdesc);
    double secs = rotq_now_s() - t0;
    if (c.json) {
        json_t *j = json_pack("{s:s, s:s, s:s, s:s, s:I, s:I, s:I, s:f, s:f, s:f, s:f, s:f}", "input", in, "output", out,
                              "rotation", rdesc, "quantization", qdesc, "linears", (json_int_t)rep.n_linears, "weights",
                              (json_int_t)rep.n_params, "calib_tokens", (json_int_t)rep.calib_tokens,
                              "quantize_seconds", t_quant, "calib_seconds", rep.calib_seconds, "rtn_or_gptq_seconds",
                              rep.quant_seconds, "gptq_loss", rep.gptq_loss, "seconds", secs);
        char *text = json_dumps(j, 0);
        if (text) puts(text);
        free(text);
        json_decref(j);
    } else {
        fprintf(stderr, "rotq quantize: %s; rotation %s; %lld linears (calibration forward %.1f s, %s %.1f s); wrote %s "
                "in %.1f s\n", qdesc, rdesc, (long long)rep.n_linears, rep.calib_seconds,
                c.q.w_method == ROTQ_WQ_GPTQ ? "GPTQ" : "RTN", rep.quant_seconds, out, secs);
    }
    rc = 0;
done:
    rotq_tokenizer_free(tok);
    rotq_model_free(m);
    return rc;
}

/* ---- rotq quant-test ------------------------------------------------------------------------------ */

static const char *test_help =
    "usage: rotq quant-test rtn|gptq|act --in M.f32 --rows R --cols C --out Q.f32 [options]\n"
    "\n"
    "Runs one quantizer on a raw little-endian float32 matrix [R, C] (row-major) and writes the\n"
    "dequantized result the same way — the hook for tests that compare rotq with a reference.\n"
    "  rtn    weights: --bits N [--asym] [--group G] [--mse] (clip search)\n"
    "  gptq   weights with Hessian --hessian H.f64 (raw float64 [C, C]): --bits N [--asym] [--group G]\n"
    "         [--mse] [--act-order] [--static-groups] [--block B] [--percdamp F]; prints the loss\n"
    "  act    per-row activations: --bits N [--asym] [--clip R] [--group G]\n";

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

int cmd_quant_test(int argc, char **argv) {
    const char *cmd = "quant-test";
    if (argc < 2 || cli_wants_help(argc, argv)) { fputs(test_help, argc < 2 ? stderr : stdout); return argc < 2 ? 2 : 0; }
    const char *mode = argv[1], *in = NULL, *out = NULL, *hpath = NULL;
    long long rows = 0, cols = 0, bits = 4, group = -1, block = 128;
    bool asym = false, clip = false, act_order = false, static_groups = false;
    double clip_ratio = 1.0, percdamp = 0.01;
    for (int i = 2; i < argc; i++) {
        const char *a = argv[i], *v;
        char *end = NULL;
        if (cli_is(a, "--in")) in = cli_value(argc, argv, &i);
        else if (cli_is(a, "--out")) out = cli_value(argc, argv, &i);
        else if (cli_is(a, "--hessian")) hpath = cli_value(argc, argv, &i);
        else if (cli_is(a, "--asym")) asym = true;
        else if (cli_is(a, "--act-order")) act_order = true;
        else if (cli_is(a, "--static-groups")) static_groups = true;
        else if (cli_is(a, "--mse")) clip = true;
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
        } else return cli_error(cmd, "unknown option %s (see rotq quant-test --help)", a);
    }
    if (!in || !out || rows <= 0 || cols <= 0 || rows * cols > (1LL << 31))
        return cli_error(cmd, "needs --in, --out and positive --rows/--cols");
    float *x = NULL;
    if (read_raw(cmd, in, (uint64_t)(rows * cols) * sizeof(float), (void **)&x)) return 1;
    rotq_status s;
    double loss = 0.0;
    if (strcmp(mode, "rtn") == 0) {
        rotq_wq_format f = rotq_wq_format_make((int32_t)bits, asym, group, clip);
        s = rotq_rtn_quantize(x, rows, cols, &f);
    } else if (strcmp(mode, "gptq") == 0) {
        double *H = NULL;
        if (!hpath) { free(x); return cli_error(cmd, "gptq needs --hessian H.f64"); }
        if (read_raw(cmd, hpath, (uint64_t)(cols * cols) * sizeof(double), (void **)&H)) { free(x); return 1; }
        rotq_wq_format f = rotq_wq_format_make((int32_t)bits, asym, group, clip);
        rotq_gptq_options o = rotq_gptq_defaults();
        o.act_order = act_order;
        o.static_groups = static_groups;
        o.block = block;
        o.percdamp = percdamp;
        rotq_gptq_hinv h;
        s = rotq_gptq_prepare(H, cols, &o, &h);
        if (s == ROTQ_OK) s = rotq_gptq_quantize(x, rows, cols, &h, &f, &o, &loss);
        if (s == ROTQ_OK) printf("loss %.17g\ndead %lld\n", loss, (long long)h.n_dead);
        rotq_gptq_hinv_free(&h);
        free(H);
    } else if (strcmp(mode, "act") == 0) {
        rotq_act_format f = {.bits = (int32_t)bits, .asym = asym, .clip = (float)clip_ratio, .group = group};
        s = rotq_act_quantize(x, rows, cols, &f);
    } else {
        free(x);
        return cli_error(cmd, "mode %s: expected rtn, gptq or act", mode);
    }
    if (s == ROTQ_OK) s = rotq_write_file_atomic(out, x, (uint64_t)(rows * cols) * sizeof(float));
    free(x);
    return s == ROTQ_OK ? 0 : cli_lib_error(cmd, s);
}
