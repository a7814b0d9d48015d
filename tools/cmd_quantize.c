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
    "Several processes: mpirun -np N rotq quantize ... splits the calibration windows (GPTQ/GPTAQ/Qronos) across N ranks\n"
    "(a build made with -DROTQ_MPI=ON); the result equals one process's, up to summation order; rank 0 prints and writes.\n"
    "\n"
    "Writes OUT (an HF folder, or GGUF when OUT ends in .gguf) with every decoder linear's weights\n"
    "quantized and dequantized back to float (the grid values, exactly, in float32 by default), and\n"
    "the rotation record when rotated. Activation and KV-cache quantization happen at run time and\n"
    "are not stored: evaluate OUT with rotq eval OUT --a-bits 4 --kv-bits 4 ... (no weight options).\n"
    "  --format gguf:MIX write the matrices as GGUF blocks, per tensor as llama.cpp's quantizer mixes them\n"
    "                    (MIX: Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, Q2_K, Q2_K_S, Q3_K_S, Q3_K_M, Q3_K_L, Q4_K_S,\n"
    "                    Q4_K_M, Q5_K_S, Q5_K_M, Q6_K; or Q3_K, Q4_K, Q5_K alone), each tensor quantized on its\n"
    "                    type's own grid (bits, groups, zero, scale and min encoding) by RTN or GPTQ, so the\n"
    "                    file holds the codes the quantizer chose; rows that are not whole blocks fall back as\n"
    "                    llama.cpp's do (Q4_K -> Q5_0, Q6_K -> Q8_0, ...); norms stay float (--dtype).\n"
    "                    OUT is GGUF and llama.cpp runs it unchanged (--format turns the online R3/R4 off:\n"
    "                    stock llama.cpp has none). See --pure, --tensor-type, --embedding-type, --output-type\n"
    "  --format compressed-tensors:SCHEME  write an HF folder vLLM and transformers load quantized (the\n"
    "                    compressed-tensors format): SCHEME w4a16 or w8a16 (pack-quantized: codes packed in int32,\n"
    "                    groups of 128 unless --w-group), w4a8, w8a8 or w4a4 (int-quantized: int8 codes per\n"
    "                    channel, activations quantized by the runtime per token, dynamically); symmetric weights\n"
    "                    by RTN or GPTQ on that grid, scales in the output dtype; fused rotations only (R3/R4 off),\n"
    "                    lm_head float. rotq reads such folders back (rotq eval OUT applies the file's activation\n"
    "                    scheme). vLLM runs w4a16, w8a16 and w8a8 (w4a8/w4a4 int: transformers only)\n"
    "  --plan            print every matrix's type and bytes and the file's size under the plan (after\n"
    "                    --rotate, which unties a tied embedding), and write nothing (OUT may be omitted)\n"
    "  --force           replace an existing OUT (a GGUF file, or an HF folder holding config.json)\n";

/* quantize --plan: each matrix's type under the plan, and the file size the tensors make (a float
 * tensor at the output dtype; header and metadata not counted). */
static int print_plan(const char *cmd, const rotq_model *m, const quant_cli *c, rotq_dtype out_dtype) {
    int64_t n = rotq_model_n_tensors(m);
    rotq_dtype *types = calloc((size_t)(n ? n : 1), sizeof *types);
    if (!types) return cli_error(cmd, "out of memory");
    rotq_status s = rotq_quant_tensor_types(m, &c->q, types);
    if (s != ROTQ_OK) { free(types); return cli_lib_error(cmd, s); }
    double total = 0.0, quant = 0.0, by_type[ROTQ_DTYPE_COUNT] = {0};
    int64_t count[ROTQ_DTYPE_COUNT] = {0};
    for (int64_t i = 0; i < n; i++) {
        rotq_tensor_info ti;
        if (rotq_model_tensor_info(m, i, &ti) != ROTQ_OK) continue;
        int64_t el = 1;
        for (int d = 0; d < ti.n_dims; d++) el *= ti.shape[d];
        rotq_dtype t = types[i] != ROTQ_DTYPE_INVALID ? types[i] : out_dtype;
        double bytes = (double)el * rotq_dtype_bits_per_weight(t) / 8.0;
        total += bytes;
        by_type[t] += bytes;
        count[t]++;
        if (types[i] != ROTQ_DTYPE_INVALID) {
            quant += bytes;
            printf("%-48s %-6s [%lld, %lld] %10.0f bytes\n", ti.name, rotq_dtype_name(t), (long long)ti.shape[0],
                   (long long)(ti.n_dims > 1 ? ti.shape[1] : 1), bytes);
        }
    }
    for (int t = 0; t < ROTQ_DTYPE_COUNT; t++)
        if (count[t]) printf("%-6s %4lld tensors %12.0f bytes\n", rotq_dtype_name((rotq_dtype)t), (long long)count[t], by_type[t]);
    printf("tensors %.0f bytes (%.2f MiB), of which quantized matrices %.0f bytes\n", total, total / 1048576.0, quant);
    free(types);
    return 0;
}

int cmd_quantize(int argc, char **argv) {
    const char *cmd = "quantize";
    if (cli_wants_help(argc, argv)) { fputs(help_head, stdout); fputs(quant_cli_help, stdout); return 0; }
    quant_cli c;
    if (quant_cli_parse(cmd, argc, argv, &c)) return 1;
    if (c.n_positional != 2 && !(c.plan_only && c.n_positional == 1)) { fputs(help_head, stderr); return 2; }
    if (c.plan_only && !rotq_quant_has_types(&c.q)) return cli_usage(cmd, "--plan needs a GGUF mixture (--format gguf:MIX or --w-grid MIX)");
    const char *in = c.positional[0], *out = c.n_positional == 2 ? c.positional[1] : NULL;
    if (!rotq_quant_has_weights(&c.q))
        return cli_usage(cmd, "nothing to quantize: give --w-bits N, a --preset or --format gguf:MIX (rotq rotate rotates alone)");
    if (rotq_quant_has_runtime(&c.q) && !c.quiet)
        fprintf(stderr, "quantize: note: activation/KV settings are applied at run time and are not stored; pass them "
                        "to rotq eval\n");
    rotq_format out_fmt = c.out_format == 1 ? ROTQ_FORMAT_HF : c.out_format == 2 ? ROTQ_FORMAT_GGUF : ROTQ_FORMAT_AUTO;
    if (out && !c.plan_only && cli_check_output(cmd, in, out, cli_model_output_kind(out, out_fmt), c.force)) return 1;
    rotq_status s;
    double t0 = cli_now_s();
    rotq_model *m;
    if (cli_load(cmd, in, c.arch_file, c.tokenizer, &m)) return 1;
    rotq_tokenizer *tok = NULL;
    int rc = 1;
    if (!c.plan_only && rotq_quant_calibrated(&c.q) && (s = rotq_tokenizer_from_model(m, &tok)) != ROTQ_OK) { cli_lib_error(cmd, s); goto done; }
    if (c.rotate) {
        rotq_rotate_options ro = c.ro;
        ro.verbose = !c.quiet;
        if ((s = rotq_rotate_model(m, &ro)) != ROTQ_OK) { cli_lib_error(cmd, s); goto done; }
    }
    if (c.plan_only) {
        rc = print_plan(cmd, m, &c, c.out_dtype >= 0 ? (rotq_dtype)c.out_dtype : ROTQ_F32);
        goto done;
    }
    rotq_quant_report rep;
    int64_t calib_tokens = 0;
    double t_quant = 0.0;
    if (c.ct_scheme && rotq_model_vision(m, NULL)) { /* said before any work */
        cli_error(cmd, "%s: compressed-tensors export of a vision-language model is not written yet (write the quantized "
                  "floats with --to hf)", in);
        goto done;
    }
    if (c.ct_scheme && c.q.w_group > 0) {
        /* said before any work: every quantized linear's input must split into whole groups */
        static const char *const linear_roles[] = {"q", "k", "v", "qkv", "o", "gate", "up", "gate_up", "down"};
        for (int64_t i = 0; i < rotq_model_n_tensors(m); i++) {
            rotq_tensor_info ti;
            if (rotq_model_tensor_info(m, i, &ti) != ROTQ_OK || ti.n_dims != 2) continue;
            for (size_t k = 0; k < sizeof linear_roles / sizeof *linear_roles; k++)
                if (strcmp(ti.role_name, linear_roles[k]) == 0 && ti.shape[1] % c.q.w_group) {
                    cli_error(cmd, "%s has %lld input columns, not whole groups of %lld: choose --w-group to divide every "
                              "linear's input width, or -1 (per channel)", ti.name, (long long)ti.shape[1], (long long)c.q.w_group);
                    goto done;
                }
        }
    }
    if (c.ct_scheme) {
        /* compressed-tensors keeps the scales in the model's float dtype: choose the codes with those scales */
        rotq_dtype sdt = c.out_dtype >= 0 ? (rotq_dtype)c.out_dtype : ROTQ_F32;
        for (int64_t i = 0; c.out_dtype < 0 && i < rotq_model_n_tensors(m); i++) {
            rotq_tensor_info ti;
            if (rotq_model_tensor_info(m, i, &ti) == ROTQ_OK && strcmp(ti.role_name, "embed") == 0 &&
                (ti.dtype == ROTQ_F16 || ti.dtype == ROTQ_BF16))
                sdt = ti.dtype;
        }
        c.q.w_scale_store = sdt == ROTQ_F16 ? ROTQ_SCALE_F16 : sdt == ROTQ_BF16 ? ROTQ_SCALE_BF16 : ROTQ_SCALE_F32;
        if (c.out_dtype < 0) c.out_dtype = sdt;
    }
    if (quant_cli_quantize(cmd, m, &c, tok, &rep, &calib_tokens, &t_quant)) goto done;
    rotq_save_options so = rotq_save_defaults();
    if (c.out_format == 1) so.format = ROTQ_FORMAT_HF;
    if (c.out_format == 2) so.format = ROTQ_FORMAT_GGUF;
    if (c.out_dtype >= 0) so.dtype = (rotq_dtype)c.out_dtype;
    so.overwrite = c.force;
    if (c.pack) {
        int64_t packed = 0;
        if ((s = rotq_model_pack_weights(m, &packed)) != ROTQ_OK) { cli_lib_error(cmd, s); goto done; }
        if (!c.quiet) fprintf(stderr, "quantize: %lld matrices packed as GGUF blocks (%s)\n", (long long)packed, c.q.w_types.mixture);
    }
    if (rotq_dist_rank() > 0) { rc = 0; goto done; } /* several processes calibrated together: rank 0 writes */
    s = c.ct_scheme ? rotq_save_compressed_tensors(m, out, &c.q, &so) : rotq_model_save(m, out, &so);
    if (s != ROTQ_OK) { cli_lib_error(cmd, s); goto done; }
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
                rotq_wq_method_name(c.q.w_method), rep.quant_seconds, out, secs);
    }
    rc = 0;
done:
    rotq_tokenizer_free(tok);
    rotq_model_free(m);
    return rc;
}
