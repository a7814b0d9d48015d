/* rotq quantize IN OUT: rotate (optional) and quantize the weights, write them dequantized to float
 * so any tool can evaluate them. */
#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli.h"
#include "quant_cli.h"

static const char *help_head =
    "usage: rotq quantize IN OUT [--rotate ...] (--preset P | --w-bits N [--w-quant rtn|gptq] ...)\n"
    "                    [--calib FILE --nsamples N --calib-ctx N --seed N] [--to hf|gguf] [--dtype f32|f16|bf16]\n"
    "\n"
    "Writes OUT (an HF folder, or GGUF when OUT ends in .gguf) with every decoder linear's weights\n"
    "quantized and dequantized back to float (the grid values, exactly, in float32 by default), and\n"
    "the rotation record when rotated. Activation and KV-cache quantization happen at run time and\n"
    "are not stored: evaluate OUT with rotq eval OUT --a-bits 4 --kv-bits 4 ... (no weight options).\n"
    "  --format gguf:T   write the decoder linears as GGUF blocks of type T (Q4_0, Q4_1, Q5_0, Q5_1, Q8_0,\n"
    "                    Q6_K), quantized on T's own grid (T's bits, groups, zero and scale encoding) by RTN or\n"
    "                    GPTQ, so the file holds the codes the quantizer chose; other tensors stay float\n"
    "                    (--dtype f16 halves them). OUT is GGUF and llama.cpp runs it unchanged (with\n"
    "                    --format turns the online R3/R4 off: stock llama.cpp has none)\n"
    "  --force           replace an existing OUT (a GGUF file, or an HF folder holding config.json)\n";

int cmd_quantize(int argc, char **argv) {
    const char *cmd = "quantize";
    if (cli_wants_help(argc, argv)) { fputs(help_head, stdout); fputs(quant_cli_help, stdout); return 0; }
    quant_cli c;
    if (quant_cli_parse(cmd, argc, argv, &c)) return 1;
    if (c.n_positional != 2) { fputs(help_head, stderr); return 2; }
    const char *in = c.positional[0], *out = c.positional[1];
    if (c.q.w_method == ROTQ_WQ_NONE || c.q.w_bits >= 16)
        return cli_usage(cmd, "nothing to quantize: give --w-bits N or a --preset (rotq rotate rotates alone)");
    if (rotq_quant_has_runtime(&c.q) && !c.quiet)
        fprintf(stderr, "quantize: note: activation/KV settings are applied at run time and are not stored; pass them "
                        "to rotq eval\n");
    rotq_format out_fmt = c.out_format == 1 ? ROTQ_FORMAT_HF : c.out_format == 2 ? ROTQ_FORMAT_GGUF : ROTQ_FORMAT_AUTO;
    if (cli_check_output(cmd, in, out, cli_model_output_kind(out, out_fmt), c.force)) return 1;
    rotq_status s;
    double t0 = cli_now_s();
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
    so.overwrite = c.force;
    if (c.pack_dtype >= 0) {
        int64_t packed = 0;
        if ((s = rotq_model_pack_weights(m, (rotq_dtype)c.pack_dtype, &packed)) != ROTQ_OK) { cli_lib_error(cmd, s); goto done; }
        if (!c.quiet) fprintf(stderr, "quantize: %lld linears packed as %s blocks\n", (long long)packed, rotq_dtype_name((rotq_dtype)c.pack_dtype));
    }
    if ((s = rotq_model_save(m, out, &so)) != ROTQ_OK) { cli_lib_error(cmd, s); goto done; }
    char qdesc[512], rdesc[256];
    rotq_quant_describe(&c.q, qdesc, sizeof qdesc);
    quant_cli_rotation_desc(&c, rdesc, sizeof rdesc);
    double secs = cli_now_s() - t0;
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
