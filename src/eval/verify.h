/* Two models on the same tokens: the user's proof that a rotation kept the function. */
#ifndef ROTQ_EVAL_VERIFY_H
#define ROTQ_EVAL_VERIFY_H
#include "nn/nn.h"

typedef struct rotq_verify_result {
    int64_t n_tokens;
    double max_abs_dlogit;   /* max over positions and vocabulary of |logit_a - logit_b| */
    double max_abs_logit;    /* max |logit_a|, to state the difference relative to it */
    double mean_kl;          /* mean over positions of KL(p_a || p_b), nats */
    double ppl_a, ppl_b;     /* perplexity of each on ids[1..T-1] */
} rotq_verify_result;

/* Runs ids[T] through both runners (hooks included) and compares their next-token distributions. */
rotq_status rotq_verify_runners(rotq_runner *a, rotq_runner *b, const int32_t *ids, int64_t T, rotq_verify_result *out);
#endif
