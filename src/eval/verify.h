/* Two models on the same tokens: the user's proof that a rotation kept the function. */
#ifndef ROTQ_EVAL_VERIFY_H
#define ROTQ_EVAL_VERIFY_H
#include "nn/nn.h"


/* Runs ids[T] through both runners (hooks included) and compares their next-token distributions. */
rotq_status rotq_verify_runners(rotq_runner *a, rotq_runner *b, const int32_t *ids, int64_t T, rotq_verify_result *out);
#endif
