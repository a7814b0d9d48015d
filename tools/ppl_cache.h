/* Float baselines kept on disk, so that sweeping quantization settings over one model and text
 * does not recompute the same float perplexity every time (rotq eval --baseline-cache). */
#ifndef ROTQ_PPL_CACHE_H
#define ROTQ_PPL_CACHE_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "eval/eval.h"
#include "rotq.h"

/* Where a float run's record lives and what it must match. */
typedef struct ppl_cache {
    const char *dir;       /* the cache folder */
    char dir_buf[4096];
    char key[512];         /* the full key, stored in the record and compared */
    int threads;
} ppl_cache;

/* Opens the record of one float run of m over ids with po and `threads` (BLAS summation order).
 * The folder: `arg` (--baseline-cache), else $ROTQ_CACHE_DIR, else $XDG_CACHE_HOME/rotq or
 * ~/.cache/rotq. The key: fingerprints of the rotq executable itself, of every tensor's bytes (with
 * names, dtypes, shapes and the hyperparameters the forward reads) and of the token ids; the thread
 * count and the window settings. False (nothing to read or write) when the cache is "off" or the
 * model carries online rotations (records describe plain float models). */
bool ppl_cache_open(ppl_cache *c, const char *arg, const rotq_model *m, const int32_t *ids, int64_t n,
                    const rotq_ppl_options *po, int threads);
/* A stored result whose key matches exactly (and whose numbers agree with each other); `when` gets
 * the UTC time it was computed. */
bool ppl_cache_get(const ppl_cache *c, rotq_ppl_result *res, char *when, size_t when_size);
/* Stores res, atomically (rotq_write_file_atomic). ROTQ_OK or the error. */
rotq_status ppl_cache_put(const ppl_cache *c, const rotq_ppl_result *res);
#endif
