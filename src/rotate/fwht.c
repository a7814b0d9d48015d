/* Applying a rotation x ← x·R to batches of rows. Hadamard rotations R = D·(H_K ⊗ H_M)/√n become a
 * plan (signs and scale folded into the first pass, or the last for the inverse x ← x·Rᵀ, which runs
 * the transposed K step) that the backend's fwht_rows runs; dense rotations go to BLAS outside any
 * parallel region. The double-precision path (weight operations) stays here in plain C.
 */
#include <cblas.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

#include "backend/backend.h"
#include "backend/cpu/caps.h"
#include "rotate/rotate.h"

/* ---- instruction set selection (the CPU backend's choice, cpu/caps.h) ---------------------------- */

const char *rotq_isa_name(rotq_isa isa) {
    switch (isa) {
    case ROTQ_ISA_AUTO: return "auto";
    case ROTQ_ISA_SCALAR: return "scalar";
    case ROTQ_ISA_AVX2: return "avx2";
    case ROTQ_ISA_AVX512: return "avx512";
    }
    return "?";
}

rotq_isa rotq_fwht_isa(void) { return rotq_cpu_caps_get()->fwht_avx2 ? ROTQ_ISA_AVX2 : ROTQ_ISA_SCALAR; }

rotq_status rotq_fwht_set_isa(rotq_isa isa) {
    rotq_cpu_caps c = *rotq_cpu_caps_get();
    if (isa == ROTQ_ISA_AUTO) c.fwht_avx2 = rotq_cpu_caps_probe().fwht_avx2;
    else if (isa == ROTQ_ISA_SCALAR) c.fwht_avx2 = false;
    else if (isa == ROTQ_ISA_AVX2 && c.avx2_fma) c.fwht_avx2 = true;
    else return rotq_fail(ROTQ_ERR_UNSUPPORTED, "fwht: the %s kernel is not available on this CPU/build", rotq_isa_name(isa));
    rotq_cpu_caps_set(&c);
    return ROTQ_OK;
}

/* ---- rows ---------------------------------------------------------------------------------------- */

static rotq_fwht_plan make_plan(const rotq_rotation *R, bool inverse) {
    rotq_fwht_plan p = {.n = R->n, .K = R->K, .M = R->n / R->K, .m = R->m};
    p.kstep = R->K > 1 ? (inverse ? R->kstep_inv : R->kstep_fwd) : NULL;
    p.pre = inverse ? NULL : R->scaled_signs;
    p.post = inverse ? R->scaled_signs : NULL;
    return p;
}

/* Elements per call below which threads cost more than they save (as the CPU backend). */
#define PARALLEL_MIN (INT64_C(1) << 18)

static void hadamard_row_f64(const rotq_rotation *R, double *x, double *tmp, bool inverse) {
    int64_t n = R->n, K = R->K, M = n / K;
    const double *s = R->scaled_signs_f64;
    if (!inverse)
        for (int64_t i = 0; i < n; i++) x[i] *= s[i];
    for (int64_t a = 0; a < K; a++) rotq_fwht_f64(x + a * M, R->m);
    if (K > 1) {
        const int8_t *H = R->base;
        for (int64_t c = 0; c < K; c++) {
            double *restrict o = tmp + c * M;
            for (int64_t d = 0; d < M; d++) o[d] = 0.0;
            for (int64_t a = 0; a < K; a++) {
                /* forward: y_c = Σ_a H[a][c] x_a; inverse: y_c = Σ_a H[c][a] x_a. A multiply by ±1
                 * (exact) instead of a branch lets the compiler vectorize over d. */
                const double g = inverse ? H[c * K + a] : H[a * K + c];
                const double *restrict xa = x + a * M;
                for (int64_t d = 0; d < M; d++) o[d] += g * xa[d];
            }
        }
        memcpy(x, tmp, sizeof(double) * (size_t)n);
    }
    if (inverse)
        for (int64_t i = 0; i < n; i++) x[i] *= s[i];
}

static rotq_status check_args(const rotq_rotation *R, const void *x, int64_t rows) {
    if (!R || (!x && rows > 0) || rows < 0)
        return rotq_fail(ROTQ_ERR_ARG, "rotation apply: invalid arguments (rows=%lld)", (long long)rows);
    return ROTQ_OK;
}

#define DENSE_CHUNK 1024 /* rows per sgemm, bounding the temporary */

rotq_status rotq_rotation_apply_rows(const rotq_rotation *R, float *x, int64_t rows, bool inverse) {
    return rotq_rotation_apply_rows_on(rotq_backend_cpu(), R, x, rows, inverse);
}

rotq_status rotq_rotation_apply_rows_on(const rotq_backend *be, const rotq_rotation *R, float *x, int64_t rows,
                                        bool inverse) {
    ROTQ_TRY(check_args(R, x, rows));
    if (rows == 0) return ROTQ_OK;
    if (R->kind == ROTQ_ROT_HADAMARD) {
        rotq_fwht_plan p = make_plan(R, inverse);
        return be->fwht_rows(&p, x, rows);
    }
    int64_t n = R->n, chunk = rows < DENSE_CHUNK ? rows : DENSE_CHUNK;
    float *y = malloc(sizeof(float) * (size_t)(chunk * n));
    if (!y) return rotq_fail(ROTQ_ERR_NOMEM, "rotation apply: out of memory (%lld×%lld)", (long long)chunk, (long long)n);
    for (int64_t r0 = 0; r0 < rows; r0 += chunk) {
        int64_t nr = rows - r0 < chunk ? rows - r0 : chunk;
        cblas_sgemm(CblasRowMajor, CblasNoTrans, inverse ? CblasTrans : CblasNoTrans, (int)nr, (int)n, (int)n, 1.0f,
                    x + r0 * n, (int)n, R->dense_f32, (int)n, 0.0f, y, (int)n);
        memcpy(x + r0 * n, y, sizeof(float) * (size_t)(nr * n));
    }
    free(y);
    return ROTQ_OK;
}

rotq_status rotq_rotation_apply_rows_f64(const rotq_rotation *R, double *x, int64_t rows, bool inverse) {
    ROTQ_TRY(check_args(R, x, rows));
    if (rows == 0) return ROTQ_OK;
    int64_t n = R->n;
    if (R->kind == ROTQ_ROT_HADAMARD) {
        bool failed = false;
        bool parallel = rows > 1 && rows * n >= PARALLEL_MIN;
#pragma omp parallel if (parallel)
        {
            double *tmp = malloc(sizeof(double) * (size_t)n);
            if (!tmp) {
#pragma omp atomic write
                failed = true;
            }
#pragma omp for schedule(static)
            for (int64_t r = 0; r < rows; r++)
                if (tmp) hadamard_row_f64(R, x + r * n, tmp, inverse);
            free(tmp);
        }
        if (failed) return rotq_fail(ROTQ_ERR_NOMEM, "fwht: out of memory for a row buffer (n=%lld)", (long long)n);
        return ROTQ_OK;
    }
    int64_t chunk = rows < DENSE_CHUNK ? rows : DENSE_CHUNK;
    double *y = malloc(sizeof(double) * (size_t)(chunk * n));
    if (!y) return rotq_fail(ROTQ_ERR_NOMEM, "rotation apply: out of memory (%lld×%lld)", (long long)chunk, (long long)n);
    for (int64_t r0 = 0; r0 < rows; r0 += chunk) {
        int64_t nr = rows - r0 < chunk ? rows - r0 : chunk;
        cblas_dgemm(CblasRowMajor, CblasNoTrans, inverse ? CblasTrans : CblasNoTrans, (int)nr, (int)n, (int)n, 1.0,
                    x + r0 * n, (int)n, R->dense, (int)n, 0.0, y, (int)n);
        memcpy(x + r0 * n, y, sizeof(double) * (size_t)(nr * n));
    }
    free(y);
    return ROTQ_OK;
}
