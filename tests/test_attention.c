/* The fused AVX2 attention (attention_avx2.c) against a double-precision triple loop and against the
 * BLAS path (ROTQ_ATTENTION=blas), over query counts from decoding (T=1) to long windows, cache
 * offsets, GQA groupings, head sizes 8..128, and logits up to about ±80.
 *
 * Errors are relative to the largest |output| of the case; the bound 1e-5 sits well above float
 * rounding and well below what a wrong mask, group, scale or rescaling would give (checked below
 * by measuring a non-causal reference with the same comparator).
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "backend/cpu/caps.h"
#include "nn/nn.h"
#include "testutil.h"

#define TOL 1e-5

static unsigned long long rng = 0x2545F4914F6CDD1Dull;

/* Output row t (all heads) of causal attention in double, over keys first..pos0+t where a sliding
 * window (> 0) sets first = pos0+t-window+1; causal = false lets every query see all pos0+T keys (a
 * deliberately wrong answer for the self-check). */
static void reference_row(double *o, const float *q, const float *k, const float *v, int64_t t, int64_t T,
                          int64_t pos0, int64_t nh, int64_t nkv, int64_t hd, double scale, bool causal, int64_t window) {
    int64_t last = causal ? pos0 + t : pos0 + T - 1;
    int64_t first = causal && window > 0 && last + 1 > window ? last + 1 - window : 0;
    double *s = malloc(sizeof(double) * (size_t)(last + 1));
    for (int64_t h = 0; h < nh; h++) {
        int64_t g = h / (nh / nkv);
        double mx = -INFINITY, sum = 0;
        for (int64_t j = 0; j < first; j++) s[j] = 0;
        for (int64_t j = first; j <= last; j++) {
            double dot = 0;
            for (int64_t i = 0; i < hd; i++) dot += (double)q[(t * nh + h) * hd + i] * k[(j * nkv + g) * hd + i];
            s[j] = scale * dot;
            mx = fmax(mx, s[j]);
        }
        for (int64_t j = first; j <= last; j++) sum += (s[j] = exp(s[j] - mx));
        for (int64_t i = 0; i < hd; i++) {
            double acc = 0;
            for (int64_t j = first; j <= last; j++) acc += s[j] * v[(j * nkv + g) * hd + i];
            o[h * hd + i] = acc / sum;
        }
    }
    free(s);
}

static double max_abs(const float *x, int64_t n) {
    double m = 0;
    for (int64_t i = 0; i < n; i++) m = fmax(m, fabs(x[i]));
    return m;
}

static bool has_nan(const float *x, int64_t n) {
    for (int64_t i = 0; i < n; i++)
        if (!isfinite(x[i])) return true;
    return false;
}

/* Query rows checked against the double loop: all of short windows, else both ends, the middle and
 * a few random ones (the loop costs pos0+T keys per row and head). */
static int64_t pick_rows(int64_t rows[40], int64_t T) {
    int64_t n = 0;
    if (T <= 40) {
        for (int64_t t = 0; t < T; t++) rows[n++] = t;
        return n;
    }
    const int64_t fixed[] = {0, 1, 2, 7, T / 3, T / 2, T - 3, T - 2, T - 1};
    for (size_t i = 0; i < sizeof fixed / sizeof *fixed; i++) rows[n++] = fixed[i];
    for (int i = 0; i < 4; i++) rows[n++] = (int64_t)(tu_nrand(&rng) * 1e6 + 1e9) % T;
    return n;
}

static void run_case(int64_t T, int64_t pos0, int64_t nh, int64_t nkv, int64_t hd, bool large, bool self_check,
                     int64_t window) {
    const int64_t nk = pos0 + T, nq = T * nh * hd, nkvf = nk * nkv * hd;
    const float scale = 1.0f / sqrtf((float)hd);
    /* large: q and k scaled so that logits have a spread of ~18 and extremes near ±80 */
    const float amp = large ? sqrtf(18.0f / (scale * sqrtf((float)hd))) : 1.0f;
    float *q = malloc(sizeof(float) * (size_t)nq), *k = malloc(sizeof(float) * (size_t)nkvf);
    float *v = malloc(sizeof(float) * (size_t)nkvf);
    float *out_fused = malloc(sizeof(float) * (size_t)nq), *out_blas = malloc(sizeof(float) * (size_t)nq);
    int64_t qb = rotq_attention_block(T, nh, nk);
    float *scores = malloc(sizeof(float) * (size_t)(nh * qb * nk)), *work = malloc(sizeof(float) * (size_t)(2 * nq));
    double *ref = malloc(sizeof(double) * (size_t)(nh * hd));
    for (int64_t i = 0; i < nq; i++) q[i] = amp * (float)tu_nrand(&rng);
    for (int64_t i = 0; i < nkvf; i++) { k[i] = amp * (float)tu_nrand(&rng); v[i] = (float)tu_nrand(&rng); }

    bool full = window == ROTQ_ATTN_FULL; /* bidirectional: BLAS only (the fused kernel is causal) */
    bool fused = !full && rotq_attention_fused_supported(hd);
    if (fused) rotq_attention_fused(out_fused, q, k, v, T, pos0, nh, nkv, hd, scale, window);
    { rotq_cpu_caps c_ = *rotq_cpu_caps_get(); c_.attention_fused = false; rotq_cpu_caps_set(&c_); }
    rotq_attention_forward_ws(out_blas, q, k, v, scores, work, T, pos0, nh, nkv, hd, scale, qb, window);
    rotq_cpu_caps_set(NULL);
    const float *out = fused ? out_fused : out_blas;

    char what[160];
    snprintf(what, sizeof what, "T=%lld pos0=%lld nh=%lld nkv=%lld hd=%lld window=%lld%s", (long long)T, (long long)pos0,
             (long long)nh, (long long)nkv, (long long)hd, (long long)window, large ? " large logits" : "");
    CHECK(!has_nan(out, nq), "%s: non-finite output", what);
    double mag = fmax(max_abs(out, nq), 1e-30);
    if (fused) {
        double worst = 0;
        for (int64_t i = 0; i < nq; i++) worst = fmax(worst, fabs((double)out_fused[i] - out_blas[i]));
        CHECK(worst / mag <= TOL, "%s: fused vs BLAS path: %g relative", what, worst / mag);
    }
    int64_t rows[40], n_rows = pick_rows(rows, T);
    double worst = 0, worst_wrong = 0;
    for (int64_t r = 0; r < n_rows; r++) {
        int64_t t = rows[r];
        reference_row(ref, q, k, v, t, T, pos0, nh, nkv, hd, scale, !full, full ? 0 : window);
        for (int64_t i = 0; i < nh * hd; i++) worst = fmax(worst, fabs(ref[i] - out[t * nh * hd + i]));
        if (self_check) {
            /* without a window: the non-causal answer; with one: the full causal answer; bidirectional: causal */
            reference_row(ref, q, k, v, t, T, pos0, nh, nkv, hd, scale, full || window > 0, 0);
            for (int64_t i = 0; i < nh * hd; i++) worst_wrong = fmax(worst_wrong, fabs(ref[i] - out[t * nh * hd + i]));
        }
    }
    CHECK(worst / mag <= TOL, "%s: %s vs double loops: %g relative", what, fused ? "fused" : "BLAS", worst / mag);
    /* the comparator must see a wrong (non-causal, or window-less) answer */
    if (self_check) CHECK(worst_wrong / mag > 100 * TOL, "%s: wrong reference not told apart (%g)", what, worst_wrong / mag);
    free(q); free(k); free(v); free(out_fused); free(out_blas); free(scores); free(work); free(ref);
}

/* Without ROTQ_ATTENTION, rotq_attention_forward(_ws) must take the fused path (same bits). */
static void test_dispatch(void) {
    if (!rotq_attention_fused_supported(64)) return;
    const int64_t T = 50, pos0 = 3, nh = 9, nkv = 3, hd = 64, nq = T * nh * hd, nkvf = (pos0 + T) * nkv * hd;
    float *q = malloc(sizeof(float) * nq), *k = malloc(sizeof(float) * nkvf), *v = malloc(sizeof(float) * nkvf);
    float *a = malloc(sizeof(float) * nq), *b = malloc(sizeof(float) * nq), *c = malloc(sizeof(float) * nq);
    float *scores = malloc(sizeof(float) * nh * T * (pos0 + T)), *work = malloc(sizeof(float) * 2 * nq);
    for (int64_t i = 0; i < nq; i++) q[i] = (float)tu_nrand(&rng);
    for (int64_t i = 0; i < nkvf; i++) { k[i] = (float)tu_nrand(&rng); v[i] = (float)tu_nrand(&rng); }
    rotq_cpu_caps_set(NULL);
    rotq_attention_fused(a, q, k, v, T, pos0, nh, nkv, hd, 0.125f, 0);
    rotq_attention_forward_ws(b, q, k, v, scores, work, T, pos0, nh, nkv, hd, 0.125f, T, 0);
    rotq_attention_forward(c, q, k, v, scores, T, pos0, nh, nkv, hd, 0.125f, T, 0);
    CHECK(!memcmp(a, b, sizeof(float) * nq) && !memcmp(a, c, sizeof(float) * nq), "default path is not the fused kernel");
    free(q); free(k); free(v); free(a); free(b); free(c); free(scores); free(work);
}

int main(void) {
    if (!rotq_attention_fused_supported(64)) fprintf(stderr, "test_attention: no AVX2+FMA, checking the BLAS path only\n");
    const int64_t Ts[] = {1, 2, 7, 33, 300, 1000}, pos0s[] = {0, 5, 500}, hds[] = {8, 16, 24, 64, 128};
    const int64_t heads[][2] = {{9, 3}, {4, 4}, {8, 1}, {6, 2}};
    int n = 0;
    for (size_t ti = 0; ti < sizeof Ts / sizeof *Ts; ti++)
        for (size_t pi = 0; pi < sizeof pos0s / sizeof *pos0s; pi++)
            for (size_t hi = 0; hi < sizeof heads / sizeof *heads; hi++)
                for (size_t di = 0; di < sizeof hds / sizeof *hds; di++, n++) {
                    /* the longest windows with the widest heads only in some combinations, to bound the time */
                    if (Ts[ti] == 1000 && hds[di] == 128 && hi % 2) continue;
                    run_case(Ts[ti], pos0s[pi], heads[hi][0], heads[hi][1], hds[di], n % 2 == 1,
                             n % 7 == 0 && pos0s[pi] == 0 && Ts[ti] > 1, 0);
                }
    /* sliding windows (Gemma 3's local layers): shorter, equal to and longer than a key tile (64), windows
     * that start inside the cache, and decoding a token whose window lies entirely in the cache */
    const int64_t windows[] = {1, 5, 64, 100, 512};
    const int64_t wcases[][3] = {{300, 0, 0}, {1000, 0, 0}, {33, 500, 0}, {1, 700, 0}, {200, 130, 0}};
    for (size_t wi = 0; wi < sizeof windows / sizeof *windows; wi++)
        for (size_t ci = 0; ci < sizeof wcases / sizeof *wcases; ci++) {
            const int64_t *h = heads[(wi + ci) % 4], hd = hds[(wi * 3 + ci) % 5];
            run_case(wcases[ci][0], wcases[ci][1], h[0], h[1], hd, ci % 2 == 1,
                     wcases[ci][0] + wcases[ci][1] > windows[wi] + 1 && wcases[ci][0] > 1, windows[wi]);
        }
    run_case(600, 0, 4, 1, 256, false, true, 512); /* Gemma 3 270M's attention shape */
    /* bidirectional (a vision tower over an image's patches): every query sees every key, also through
     * the dispatching entry point, across query blocks (T > 128) */
    const int64_t fcases[][4] = {{7, 0, 4, 16}, {64, 0, 16, 80}, {300, 0, 12, 64}, {1000, 0, 4, 24}, {33, 5, 6, 12}};
    for (size_t ci = 0; ci < sizeof fcases / sizeof *fcases; ci++)
        run_case(fcases[ci][0], fcases[ci][1], fcases[ci][2], fcases[ci][2], fcases[ci][3], ci % 2 == 1, true, ROTQ_ATTN_FULL);
    {
        const int64_t T = 200, nh = 4, hd = 64, n = T * nh * hd;
        float *q = malloc(sizeof(float) * n), *k = malloc(sizeof(float) * n), *v = malloc(sizeof(float) * n);
        float *a = malloc(sizeof(float) * n), *b = malloc(sizeof(float) * n), *work = malloc(sizeof(float) * 2 * n);
        int64_t qb = rotq_attention_block(T, nh, T);
        float *scores = malloc(sizeof(float) * (size_t)(nh * qb * T));
        for (int64_t i = 0; i < n; i++) q[i] = (float)tu_nrand(&rng), k[i] = (float)tu_nrand(&rng), v[i] = (float)tu_nrand(&rng);
        rotq_cpu_caps_set(NULL);
        rotq_attention_forward(a, q, k, v, scores, T, 0, nh, nh, hd, 0.125f, qb, ROTQ_ATTN_FULL);
        { rotq_cpu_caps c_ = *rotq_cpu_caps_get(); c_.attention_fused = false; rotq_cpu_caps_set(&c_); }
        rotq_attention_forward_ws(b, q, k, v, scores, work, T, 0, nh, nh, hd, 0.125f, qb, ROTQ_ATTN_FULL);
        rotq_cpu_caps_set(NULL);
        CHECK(!memcmp(a, b, sizeof(float) * n), "bidirectional attention: the dispatching entry point is not the BLAS path");
        free(q); free(k); free(v); free(a); free(b); free(work); free(scores);
    }
    test_dispatch();
    return tu_finish("test_attention");
}
