/* Evaluation: perplexity over a token stream with the protocols papers and llama.cpp use. */
#ifndef ROTQ_EVAL_EVAL_H
#define ROTQ_EVAL_EVAL_H

#include <stdbool.h>
#include <stdint.h>

#include "nn/nn.h"


/* Perplexity of the model in `r` (hooks included) over text tokens ids[n] (tokenized without BOS). */
rotq_status rotq_ppl_eval(rotq_runner *r, const int32_t *ids, int64_t n, const rotq_ppl_options *o, rotq_ppl_result *out);


#endif
