#include "eval/verify.h"

#include <math.h>
#include <stdlib.h>

/* Log-softmax of one row of logits into out (double). */
static void log_softmax(const float *x, int64_t n, double *out) {
    double mx = x[0];
    for (int64_t i = 1; i < n; i++) mx = x[i] > mx ? x[i] : mx;
    double s = 0;
    for (int64_t i = 0; i < n; i++) s += exp((double)x[i] - mx);
    double lse = mx + log(s);
    for (int64_t i = 0; i < n; i++) out[i] = (double)x[i] - lse;
}

rotq_status rotq_verify_runners(rotq_runner *a, rotq_runner *b, const int32_t *ids, int64_t T, rotq_verify_result *res) {
    int64_t d = a->hp.hidden, V = a->hp.vocab;
    if (b->hp.vocab != V) return rotq_fail(ROTQ_ERR_ARG, "the models' vocabularies differ (%lld vs %lld)", (long long)V, (long long)b->hp.vocab);
    if (T < 2) return rotq_fail(ROTQ_ERR_ARG, "verify needs at least 2 tokens");
    const int64_t block = 32;
    float *ha = malloc((size_t)(T * d) * sizeof *ha), *hb = malloc((size_t)(T * b->hp.hidden) * sizeof *hb);
    float *la = malloc((size_t)(block * V) * sizeof *la), *lb = malloc((size_t)(block * V) * sizeof *lb);
    double *pa = malloc((size_t)V * sizeof *pa), *pb = malloc((size_t)V * sizeof *pb);
    rotq_status s = ha && hb && la && lb && pa && pb ? ROTQ_OK : rotq_fail(ROTQ_ERR_NOMEM, "out of memory verifying");
    if (s == ROTQ_OK) s = rotq_nn_forward(a, ids, T, NULL, ha);
    if (s == ROTQ_OK) s = rotq_nn_forward(b, ids, T, NULL, hb);
    double max_d = 0, max_l = 0, kl_sum = 0, nll_a = 0, nll_b = 0;
    for (int64_t t0 = 0; s == ROTQ_OK && t0 < T; t0 += block) {
        int64_t rows = T - t0 < block ? T - t0 : block;
        s = rotq_nn_logits(a, ha + t0 * d, rows, la);
        if (s == ROTQ_OK) s = rotq_nn_logits(b, hb + t0 * b->hp.hidden, rows, lb);
        for (int64_t r = 0; s == ROTQ_OK && r < rows; r++) {
            const float *xa = la + r * V, *xb = lb + r * V;
            for (int64_t i = 0; i < V; i++) {
                double dd = fabs((double)xa[i] - xb[i]);
                if (!(dd <= max_d)) max_d = dd; /* NaN propagates as a failure */
                if (fabs(xa[i]) > max_l) max_l = fabs(xa[i]);
            }
            log_softmax(xa, V, pa);
            log_softmax(xb, V, pb);
            double kl = 0;
            for (int64_t i = 0; i < V; i++) kl += exp(pa[i]) * (pa[i] - pb[i]);
            kl_sum += kl;
            int64_t t = t0 + r;
            if (t + 1 < T) {
                nll_a -= pa[ids[t + 1]];
                nll_b -= pb[ids[t + 1]];
            }
        }
    }
    if (s == ROTQ_OK) {
        res->n_tokens = T;
        res->max_abs_dlogit = max_d;
        res->max_abs_logit = max_l;
        res->mean_kl = kl_sum / (double)T;
        res->ppl_a = exp(nll_a / (double)(T - 1));
        res->ppl_b = exp(nll_b / (double)(T - 1));
    }
    free(ha); free(hb); free(la); free(lb); free(pa); free(pb);
    return s;
}
