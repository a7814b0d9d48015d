/* Carrying a tokenizer across formats on save (tok_export*.c).
 *
 * A model read from GGUF (tokenizer.ggml.*) or llama2.c (tokenizer.bin) gets Hugging Face tokenizer
 * files (tok_export_hf.c); one read from an HF folder (tokenizer.json) or llama2.c gets llama.cpp's
 * tokenizer.* keys (tok_export_gguf.c). Both start from rotq's own loaded tokenizer, gathered once
 * by rotq_xtok_load (tok_export.c), so what is written tokenizes as the source did; the rest (token
 * types, pre-tokenizer name, special ids) comes from the source files.
 */
#ifndef ROTQ_TOK_EXPORT_H
#define ROTQ_TOK_EXPORT_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/model.h"
#include "tok/tok.h"

/* GGUF token types (llama.cpp's llama_token_type). */
enum { TT_NORMAL = 1, TT_UNKNOWN = 2, TT_CONTROL = 3, TT_USER_DEFINED = 4, TT_UNUSED = 5, TT_BYTE = 6 };

static const char META_SPACE[] __attribute__((unused)) = "\xE2\x96\x81"; /* U+2581 ▁ */

typedef enum { SRC_JSON, SRC_GGUF, SRC_LLAMA2C } src_kind;

/* Everything either target needs, gathered once from the model. */
typedef struct xtok {
    rotq_tokenizer *t;
    src_kind src;
    const char *where;
    bool spm;                 /* GGUF "llama" (scores) rather than "gpt2" (merges) */
    int32_t n;                /* tokens written: the tokenizer's, padded to the model's vocabulary */
    char **text;              /* token text as both targets store it (▁ for spaces in SPM vocabularies) */
    uint32_t *len;
    int32_t *type;            /* TT_* */
    float *score;             /* SPM merge priority per token */
    int32_t *added;           /* per id: index into t->added, or -1 */
    int32_t (*merges)[2];     /* rank order */
    int64_t n_merges;
    int32_t bos, eos, unk, pad;
    bool add_bos, add_eos, add_space_prefix, ignore_merges;
    char pre[32];             /* llama.cpp pre-tokenizer name (gpt2) */
    char *chat_template;
} xtok;

/* Gathers everything either target needs from m's tokenizer; `where` names the output in messages. */
rotq_status rotq_xtok_load(xtok *x, const rotq_model *m, const char *where);
void rotq_xtok_free(xtok *x);
rotq_status rotq_xtok_oom(const xtok *x);
/* A NUL-terminated malloc'd copy of n bytes (NULL when out of memory). */
char *rotq_xtok_dup(const void *p, size_t n);
/* BPE merges from token pairs (byte-level vocabularies), SPM scores from merges, and merges from
 * SPM scores: what one target stores and the other derives. */
rotq_status rotq_xtok_merges_from_pairs(xtok *x);
rotq_status rotq_xtok_scores_from_merges(xtok *x);
rotq_status rotq_xtok_merges_from_scores(xtok *x);
#endif
