/* The fast Hadamard rotation x ← x·R, R = D·(H_K ⊗ H_M)/√n, on batches of rows.
 *
 * Per row: multiply by s/√n, Walsh–Hadamard transform each of the K segments of length M, then the
 * K×K step across segments (y_c = Σ_a H_K[a][c]·x_a). The inverse x ← x·Rᵀ runs the transposed K
 * step and multiplies by s/√n last. Plain C here; the AVX2 row kernel (fwht_avx2.c) is picked at
 * run time. Rows are spread over OpenMP threads; dense rotations go to BLAS outside any parallel
 * region.
 */
#include <cblas.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

#include "rotate/rotate.h"

/* ---- instruction set selection ----------------------------------------------------------------- */

static rotq_isa forced_isa = ROTQ_ISA_AUTO;

static bool cpu_has(rotq_isa isa) {
    switch (isa) {
    case ROTQ_ISA_SCALAR: return true;
    case ROTQ_ISA_AVX2:
        __builtin_cpu_init();
        return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
    default: return false; /* no AVX-512 kernel is built (the development machine lacks it) */
    }
}

const char *rotq_isa_name(rotq_isa isa) {
    switch (isa) {
    case ROTQ_ISA_AUTO: return "auto";
    case ROTQ_ISA_SCALAR: return "scalar";
    case ROTQ_ISA_AVX2: return "avx2";
    case ROTQ_ISA_AVX512: return "avx512";
    }
    return "?";
}

rotq_isa rotq_fwht_isa(void) {
    if (forced_isa != ROTQ_ISA_AUTO) return forced_isa;
    const char *env = getenv("ROTQ_FWHT_ISA");
    if (env && strcmp(env, "scalar") == 0) return ROTQ_ISA_SCALAR;
    return cpu_has(ROTQ_ISA_AVX2) ? ROTQ_ISA_AVX2 : ROTQ_ISA_SCALAR;
}

rotq_status rotq_fwht_set_isa(rotq_isa isa) {
    if (isa != ROTQ_ISA_AUTO && !cpu_has(isa))
        return rotq_fail(ROTQ_ERR_UNSUPPORTED, "fwht: the %s kernel is not available on this CPU/build", rotq_isa_name(isa));
    forced_isa = isa;
    return ROTQ_OK;
}

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

/* ---- batches ----------------------------------------------------------------------------------- */

static rotq_fwht_plan make_plan(const rotq_rotation *R, bool inverse) {
    rotq_fwht_plan p = {.n = R->n, .K = R->K, .M = R->n / R->K, .m = R->m};
    p.kstep = R->K > 1 ? (inverse ? R->kstep_inv : R->kstep_fwd) : NULL;
    p.pre = inverse ? NULL : R->scaled_signs;
    p.post = inverse ? R->scaled_signs : NULL;
    return p;
}

typedef void (*rows_fn)(const rotq_fwht_plan *, float *, int64_t, float *);

/* Elements per call below which threads cost more than they save (a parallel region and its
 * barrier are tens of microseconds, far more when the machine is oversubscribed). */
#define PARALLEL_MIN (INT64_C(1) << 18)

static rotq_status hadamard_rows_f32(const rotq_rotation *R, float *x, int64_t rows, bool inverse) {
    rotq_fwht_plan p = make_plan(R, inverse);
    rows_fn fn = (rotq_fwht_isa() == ROTQ_ISA_AVX2 && p.M >= 8) ? rotq_fwht_rows_avx2 : rotq_fwht_rows_scalar;
    int64_t n = R->n;
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
    ROTQ_TRY(check_args(R, x, rows));
    if (rows == 0) return ROTQ_OK;
    if (R->kind == ROTQ_ROT_HADAMARD) return hadamard_rows_f32(R, x, rows, inverse);
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
