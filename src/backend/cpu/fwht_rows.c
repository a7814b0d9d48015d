/* The Hadamard rotation of rows on the CPU: plain C kernels (the AVX2 row kernel is in fwht_avx2.c,
 * picked once from what the CPU runs), and the batch over rows spread on OpenMP threads.
 *
 * Per row: multiply by pre (s/√n), Walsh–Hadamard transform each of the K segments of length M,
 * then the K×K step across segments (y_c = Σ_a kstep[c·K+a]·x_a), then multiply by post. */
#include <omp.h>
#include <stdlib.h>
#include <string.h>

#include "backend/backend.h"
#include "backend/cpu/caps.h"

/* ---- plain C kernels --------------------------------------------------------------------------- */

void rotq_fwht_f32(float *x, int32_t m) {
    int64_t M = INT64_C(1) << m;
    for (int64_t h = 1; h < M; h *= 2)
        for (int64_t j0 = 0; j0 < M; j0 += 2 * h)
            for (int64_t j = j0; j < j0 + h; j++) {
                float a = x[j], b = x[j + h];
                x[j] = a + b;
                x[j + h] = a - b;
            }
}

void rotq_fwht_f64(double *x, int32_t m) {
    int64_t M = INT64_C(1) << m;
    for (int64_t h = 1; h < M; h *= 2)
        for (int64_t j0 = 0; j0 < M; j0 += 2 * h)
            for (int64_t j = j0; j < j0 + h; j++) {
                double a = x[j], b = x[j + h];
                x[j] = a + b;
                x[j + h] = a - b;
            }
}

static void row_scalar(const rotq_fwht_plan *p, float *x, float *tmp) {
    int64_t n = p->n, K = p->K, M = p->M;
    if (p->pre)
        for (int64_t i = 0; i < n; i++) x[i] *= p->pre[i];
    for (int64_t a = 0; a < K; a++) rotq_fwht_f32(x + a * M, p->m);
    if (K > 1) {
        for (int64_t c = 0; c < K; c++) {
            float *o = tmp + c * M;
            for (int64_t d = 0; d < M; d++) o[d] = 0.0f;
            for (int64_t a = 0; a < K; a++) {
                float g = p->kstep[c * K + a];
                const float *xa = x + a * M;
                for (int64_t d = 0; d < M; d++) o[d] += g * xa[d];
            }
        }
        memcpy(x, tmp, sizeof(float) * (size_t)n);
    }
    if (p->post)
        for (int64_t i = 0; i < n; i++) x[i] *= p->post[i];
}

void rotq_fwht_rows_scalar(const rotq_fwht_plan *p, float *x, int64_t rows, float *tmp) {
    for (int64_t r = 0; r < rows; r++) row_scalar(p, x + r * p->n, tmp);
}

typedef void (*rows_fn)(const rotq_fwht_plan *, float *, int64_t, float *);

/* Elements per call below which threads cost more than they save (a parallel region and its
 * barrier are tens of microseconds, far more when the machine is oversubscribed). */
#define PARALLEL_MIN (INT64_C(1) << 18)

rotq_status rotq_cpu_fwht_rows(const rotq_fwht_plan *plan, float *x, int64_t rows) {
    const rotq_fwht_plan p = *plan;
    rows_fn fn = (rotq_cpu_caps_get()->fwht_avx2 && p.M >= 8) ? rotq_fwht_rows_avx2 : rotq_fwht_rows_scalar;
    int64_t n = p.n;
    size_t tmp_bytes = p.K > 1 ? ((sizeof(float) * (size_t)n + 63) / 64) * 64 : 64;
    bool failed = false;
    if (rows > 1 && rows * n >= PARALLEL_MIN) {
        /* each thread takes one contiguous range of rows (one call, one buffer) */
#pragma omp parallel
        {
            int64_t t = omp_get_thread_num(), nt = omp_get_num_threads();
            int64_t r0 = rows * t / nt, r1 = rows * (t + 1) / nt;
            float *tmp = aligned_alloc(64, tmp_bytes);
            if (!tmp) {
#pragma omp atomic write
                failed = true;
            } else {
                fn(&p, x + r0 * n, r1 - r0, tmp);
            }
            free(tmp);
        }
    } else {
        float *tmp = aligned_alloc(64, tmp_bytes);
        if (!tmp) failed = true;
        else fn(&p, x, rows, tmp);
        free(tmp);
    }
    if (failed) return rotq_fail(ROTQ_ERR_NOMEM, "fwht: out of memory for a row buffer (n=%lld)", (long long)n);
    return ROTQ_OK;
}

