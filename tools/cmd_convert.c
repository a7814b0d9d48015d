/* rotq convert IN OUT: change format and/or float dtype; tensors are otherwise copied bit for bit. */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

static const char *help =
    "usage: rotq convert IN OUT [--to hf|gguf] [--dtype f32|f16|bf16] [--shard-size BYTES] [--arch-file FILE]\n"
    "\n"
    "Reads IN (HF folder, GGUF or llama2.c checkpoint) and writes OUT as an HF folder or a GGUF file\n"
    "(default: GGUF when OUT ends in .gguf, else HF). Quantized GGUF tensors are dequantized to f32.\n"
    "The output is written atomically; IN is never modified and OUT may not be IN.\n"
    "  --to FMT          hf or gguf\n"
    "  --dtype T         store float tensors as f32, f16 or bf16 (default: keep each tensor's type)\n"
    "  --shard-size N    HF: largest safetensors shard in bytes (default 5000000000)\n"
    "  --arch-file F     register a JSON architecture description first\n"
    "  --tokenizer F     llama2.c: tokenizer.bin path (default: beside the model)\n"
    "  --force           replace an existing OUT (a GGUF file, or an HF folder holding config.json)\n"
    "  --json            print a JSON summary on stdout\n"
    "  --allow-unused    load IN even when its architecture gives some tensors no role (named in a warning)\n";

int cmd_convert(int argc, char **argv) {
    if (cli_wants_help(argc, argv)) { fputs(help, stdout); return 0; }
    const char *in = NULL, *out = NULL, *arch_file = NULL, *tokenizer = NULL, *v;
    bool as_json = false;
    rotq_save_options so = rotq_save_defaults();
    for (int i = 1; i < argc; i++) {
        if (cli_is(argv[i], "--to")) {
            if (!(v = cli_value(argc, argv, &i))) return cli_usage("convert", "--to needs hf or gguf");
            if (strcmp(v, "hf") == 0) so.format = ROTQ_FORMAT_HF;
            else if (strcmp(v, "gguf") == 0) so.format = ROTQ_FORMAT_GGUF;
            else return cli_usage("convert", "--to %s: expected hf or gguf", v);
        } else if (cli_is(argv[i], "--dtype")) {
            if (!(v = cli_value(argc, argv, &i))) return cli_usage("convert", "--dtype needs f32, f16 or bf16");
            so.dtype = rotq_dtype_from_name(v);
            if (so.dtype != ROTQ_F32 && so.dtype != ROTQ_F16 && so.dtype != ROTQ_BF16)
                return cli_usage("convert", "--dtype %s: expected f32, f16 or bf16", v);
        } else if (cli_is(argv[i], "--shard-size")) {
            int64_t sb;
            if (cli_int("convert", "--shard-size", cli_value(argc, argv, &i), 1, INT64_MAX, &sb)) return 1;
            so.shard_bytes = (uint64_t)sb;
        } else if (cli_is(argv[i], "--arch-file")) {
            if (!(arch_file = cli_value(argc, argv, &i))) return cli_usage("convert", "--arch-file needs a file");
        } else if (cli_is(argv[i], "--tokenizer")) {
            if (!(tokenizer = cli_value(argc, argv, &i))) return cli_usage("convert", "--tokenizer needs a file");
        } else if (cli_flag(argv[i], "--json")) {
            as_json = true;
        } else if (cli_flag(argv[i], "--force")) {
            so.overwrite = true;
        } else if (cli_is_option(argv[i])) {
            return cli_unknown("convert", argv[i]);
        } else if (!in) in = argv[i];
        else if (!out) out = argv[i];
        else return cli_usage("convert", "unexpected argument %s", argv[i]);
    }
    if (!in || !out) { fputs(help, stderr); return 2; }
    if (cli_check_output("convert", in, out, cli_model_output_kind(out, so.format), so.overwrite)) return 1;
    rotq_model *m;
    if (cli_load("convert", in, arch_file, tokenizer, &m)) return 1;
    rotq_status s = rotq_model_save(m, out, &so);
    int64_t n = rotq_model_n_tensors(m);
    rotq_model_free(m);
    if (s != ROTQ_OK) return cli_lib_error("convert", s);
    if (as_json) {
        json_t *j = json_pack("{s:s, s:s, s:I}", "input", in, "output", out, "tensors", (json_int_t)n);
        char *text = json_dumps(j, 0);
        puts(text);
        free(text);
        json_decref(j);
    }
    else fprintf(stderr, "rotq convert: wrote %s (%lld tensors)\n", out, (long long)n);
    return 0;
}
