/* rotq_igemm_forward (igemm.h). Portable version: weights kept row-major, output rows split
 * across threads, each running the reference loops. A vectorized kernel replaces this. */
#include <stdlib.h>
#include <string.h>

#include "quant/igemm.h"

struct rotq_igemm_weights {
    int64_t n_out, n_in;
    int8_t *q;   /* [n_out, n_in] */
    float *sw;   /* [n_out] */
};

rotq_status rotq_igemm_pack(const int8_t *q, const float *sw, int64_t n_out, int64_t n_in, rotq_igemm_weights **out) {
    *out = NULL;
    if (n_out <= 0 || n_in <= 0) return rotq_fail(ROTQ_ERR_ARG, "igemm: weights of %lld x %lld", (long long)n_out, (long long)n_in);
    rotq_igemm_weights *w = calloc(1, sizeof *w);
    if (w) {
        w->q = malloc((size_t)(n_out * n_in));
        w->sw = malloc((size_t)n_out * sizeof(float));
    }
    if (!w || !w->q || !w->sw) {
        rotq_igemm_free(w);
        return rotq_fail(ROTQ_ERR_NOMEM, "igemm: out of memory packing %lld x %lld weights", (long long)n_out, (long long)n_in);
    }
    w->n_out = n_out;
    w->n_in = n_in;
    memcpy(w->q, q, (size_t)(n_out * n_in));
    memcpy(w->sw, sw, (size_t)n_out * sizeof(float));
    *out = w;
    return ROTQ_OK;
}

void rotq_igemm_free(rotq_igemm_weights *w) {
    if (!w) return;
    free(w->q);
    free(w->sw);
    free(w);
}

int64_t rotq_igemm_n_out(const rotq_igemm_weights *w) { return w->n_out; }
int64_t rotq_igemm_n_in(const rotq_igemm_weights *w) { return w->n_in; }

void rotq_igemm_forward(float *y, const uint8_t *u, const float *s, const int32_t *z, int64_t T, int32_t u_max,
                        const rotq_igemm_weights *w, const float *b, bool accumulate) {
    (void)u_max;
    int64_t n_in = w->n_in, n_out = w->n_out;
#pragma omp parallel for schedule(static)
    for (int64_t t = 0; t < T; t++)
        rotq_igemm_forward_ref(y + t * n_out, u + t * n_in, s + t, z + t, 1, n_in, w->q, w->sw, n_out, b, accumulate);
}
