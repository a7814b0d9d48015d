/* Evaluation: perplexity over a token stream with the protocols papers and llama.cpp use. */
#ifndef ROTQ_EVAL_EVAL_H
#define ROTQ_EVAL_EVAL_H

#include <stdbool.h>
#include <stdint.h>

#include "nn/nn.h"

typedef enum rotq_bos_policy {
    ROTQ_BOS_NONE = 0,   /* the text alone */
    ROTQ_BOS_FIRST,      /* one BOS before the whole text */
    ROTQ_BOS_EVERY,      /* each window starts with BOS, which takes one of its ctx positions */
} rotq_bos_policy;

typedef enum rotq_ppl_protocol {
    /* QuaRot/SpinQuant/GPTQ: non-overlapping windows of ctx tokens, every token after the first
     * of a window scored, the tail shorter than a window dropped. */
    ROTQ_PPL_PAPERS = 0,
    /* llama.cpp's perplexity tool: the stream is tokenized with BOS when the vocabulary adds one;
     * windows of ctx tokens whose first token is replaced by BOS (when it adds one); only the
     * predictions of the second half (rows ctx/2 .. ctx-2) are scored. */
    ROTQ_PPL_LLAMACPP,
} rotq_ppl_protocol;

typedef struct rotq_ppl_options {
    int64_t ctx;                 /* window length in tokens (> 1) */
    rotq_ppl_protocol protocol;
    rotq_bos_policy bos;         /* papers protocol only */
    bool add_bos;                /* llama.cpp protocol: whether the vocabulary adds BOS */
    int32_t bos_id;              /* needed when a policy inserts BOS */
    int64_t max_windows;         /* 0: every full window */
    /* Called after each window (may be NULL). */
    void (*progress)(void *ctx, int64_t window, int64_t n_windows, double nll, int64_t n_scored, double seconds);
    void *progress_ctx;
} rotq_ppl_options;

typedef struct rotq_ppl_result {
    double ppl;                  /* exp(nll / n_scored) */
    double nll;                  /* summed negative log-likelihood (nats) */
    int64_t n_scored;            /* predictions scored */
    int64_t n_windows;           /* windows evaluated */
    int64_t n_windows_available; /* full windows the text holds */
    int64_t n_stream;            /* tokens in the stream after the BOS policy */
    int64_t n_processed;         /* tokens run through the model */
    double seconds;              /* forward + scoring time */
} rotq_ppl_result;

/* Perplexity of the model in `r` (hooks included) over text tokens ids[n] (tokenized without BOS). */
rotq_status rotq_ppl_eval(rotq_runner *r, const int32_t *ids, int64_t n, const rotq_ppl_options *o, rotq_ppl_result *out);

/* WikiText-2 raw as the papers read it: "\n\n".join(rows). The file's lines (CRLF or LF) are the
 * rows, each given back its "\n" ending. Returns a malloc'ed NUL-terminated string. */
rotq_status rotq_text_join_rows(const uint8_t *data, uint64_t size, char **out, uint64_t *out_len);

#endif
