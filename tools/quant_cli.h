/* Options shared by rotq eval and rotq quantize (parsed in cmd_eval.c). */
#ifndef ROTQ_QUANT_CLI_H
#define ROTQ_QUANT_CLI_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "rotq.h"

typedef struct quant_cli {
    rotq_quant_options q;
    bool static_groups_set;
    bool rotate;
    rotq_rotate_options ro;
    const char *preset;
    const char *text, *calib, *arch_file, *tokenizer, *bos_arg, *baseline;
    int64_t ctx, max_windows;
    bool ctx_given;
    int text_format;          /* 0 auto, 1 wikitext, 2 plain */
    bool json, quiet, force;
    bool float_products;
    const char *compare;      /* eval: --compare-rotations LIST (none,full,block[:N]) */
    const char *baseline_cache; /* eval: --baseline-cache DIR|off (NULL: the default folder) */      /* eval: fake-quantized floats through sgemm even where integer codes would do */
    /* quantize only */
    int out_format;           /* 0 auto, 1 hf, 2 gguf */
    int out_dtype;            /* rotq_dtype or -1 */
    bool clip_set;            /* --w-clip / --no-w-clip given */
    bool pack;                /* --format gguf:MIX: weights packed into their GGUF block types */
    bool weighted_set;        /* --weighted-scales or --no-weighted-scales given */
    bool plan_only;           /* quantize --plan: print each matrix's type and the sizes, write nothing */
    const char *ct_scheme;    /* --format compressed-tensors:SCHEME (w4a16, w8a16, w4a8, w8a8, w4a4), or NULL */
    bool group_set;           /* --w-group given */
    const char *positional[2];
    int n_positional;
} quant_cli;

/* Parses argv[1..]; `what` names the command in errors. Returns 0, or the exit code after printing
 * the error. */
int quant_cli_parse(const char *cmd, int argc, char **argv, quant_cli *c);
/* The option summary both commands print in --help. */
extern const char *quant_cli_help;
/* "R1 random-hadamard, R2 random-hadamard, R3 on, R4 on, seed 0" or "none". */
void quant_cli_rotation_desc(const quant_cli *c, char *out, size_t size);
/* Reads and tokenizes a text file (wikitext rows joined like the papers for wiki.*.raw, or when
 * format == 1). Returns 0 or prints the error and returns 1. */
int quant_cli_tokenize_file(const char *cmd, const rotq_tokenizer *tok, const char *path, int format, int32_t **ids,
                            int64_t *n, uint64_t *bytes, bool *wikitext);
/* Weight quantization with progress and a one-line summary on stderr. */
int quant_cli_quantize(const char *cmd, rotq_model *m, const quant_cli *c, const rotq_tokenizer *tok,
                       rotq_quant_report *rep, int64_t *calib_tokens_in_text, double *seconds);
#endif
