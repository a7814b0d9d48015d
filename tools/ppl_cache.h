/* Float baselines kept on disk, so that sweeping quantization settings over one model and text
 * does not recompute the same float perplexity every time (rotq eval --baseline-cache). */
#ifndef ROTQ_PPL_CACHE_H
#define ROTQ_PPL_CACHE_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "eval/eval.h"
#include "rotq.h"

/* Records describe plain float models: none for a model that carries online rotations. */
bool ppl_cache_usable(const rotq_model *m);
/* The key: fingerprints of the rotq executable itself, of every tensor's bytes (with names, dtypes,
 * shapes and the hyperparameters the forward reads) and of the token ids; the thread count (BLAS
 * summation order) and the window settings. */
void ppl_cache_key(const rotq_model *m, const int32_t *ids, int64_t n, const rotq_ppl_options *po, int threads,
                   char *key, size_t size);
/* The cache folder: `arg` (--baseline-cache), else $ROTQ_CACHE_DIR, else $XDG_CACHE_HOME/rotq or
 * ~/.cache/rotq; NULL when off ("off" in either place). */
const char *ppl_cache_dir(const char *arg, char *buf, size_t size);
/* A stored result whose key matches exactly (and whose numbers agree with each other); `when` gets
 * the UTC time it was computed. */
bool ppl_cache_get(const char *dir, const char *key, rotq_ppl_result *res, char *when, size_t when_size);
/* Stores res under key, atomically (temporary file, then rename). 0 or -1. */
int ppl_cache_put(const char *dir, const char *key, const rotq_ppl_result *res, int threads);
#endif
