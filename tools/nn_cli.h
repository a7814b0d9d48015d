/* Helpers shared by the commands that run the model (ppl, generate); defined in cmd_ppl.c. */
#ifndef ROTQ_NN_CLI_H
#define ROTQ_NN_CLI_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "rotq.h"

/* Parses "1,2,3" into malloc'ed ids; prints the error and returns 1 on failure. */
int nn_cli_parse_ids(const char *cmd, const char *list, int32_t **ids, int64_t *n);
/* Reads a raw little-endian int32 file of ids. */
int nn_cli_read_ids(const char *cmd, const char *path, int32_t **ids, int64_t *n);
/* "1..64" threads; prints the error and returns 1 on failure. */
int nn_cli_threads(const char *cmd, const char *v, int *threads);
/* "f32 (file: q4_1)": the compute dtype and the dtypes the linear weights came in. */
void nn_cli_dtype_desc(const rotq_model *m, char *out, size_t size);
/* --text-format auto|wikitext|plain → 0|1|2; 1 when v is none of them. */
int nn_cli_text_format(const char *v, int *format);
/* The windows over a text tokenized with tok: protocol, BOS policy (bos_arg "none"|"first"|"every",
 * NULL: the tokenizer's default) with its description for the report, ctx capped at the model's
 * positions (said on stderr when say_cap), max_windows (0: all). */
void nn_cli_ppl_options(const char *cmd, const rotq_tokenizer *tok, const rotq_hparams *hp, rotq_ppl_protocol protocol,
                        const char *bos_arg, int64_t ctx, bool say_cap, int64_t max_windows, rotq_ppl_options *o,
                        char *bos_desc, size_t bos_size);
/* Peak resident memory of this process in MiB. */
double nn_cli_peak_rss_mib(void);
#endif
