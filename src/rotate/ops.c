/* Weight operations built on rotations (the seed framework's AutoOperation): rotate a linear's
 * input (W ← W·R), its output (W ← Rᵀ·W, b ← Rᵀ·b), an embedding's output (E ← E·R), and centre
 * outputs — in double, stored back in the tensor's float dtype, chunk by chunk so a large tensor
 * never needs a full double copy.
 *
 * Everything reduces to "apply R to vectors": W·R acts on each row of W, and Rᵀ·W on each column w_j
 * as (w_jᵀ·R)ᵀ. Hadamard rotations gather panels of such vectors (rows or columns) into double
 * buffers and transform them across the panel, OpenMP over panels (see "the fast path" below);
 * dense rotations gather columns into rows and go through BLAS.
 * Quantized tensors are dequantized and come back as F32 (rotq has no way to requantize here).
 */
#include <immintrin.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "arch/arch.h"
#include "rotate/rotate.h"

#define CHUNK_ELEMS (INT64_C(1) << 22) /* doubles per working buffer (32 MiB) */
#define PANEL 64                       /* columns gathered per output-side pass */

rotq_rotate_opts rotq_rotate_defaults(void) {
    rotq_rotate_opts o = {0};
    return o;
}

static void read_span(const rotq_tensor *t, int64_t at, int64_t count, double *dst) {
    switch (t->dtype) {
    case ROTQ_F64: memcpy(dst, (const double *)t->data + at, sizeof(double) * (size_t)count); break;
    case ROTQ_F32: { const float *s = (const float *)t->data + at; for (int64_t i = 0; i < count; i++) dst[i] = s[i]; break; }
    case ROTQ_F16: { const uint16_t *s = (const uint16_t *)t->data + at; for (int64_t i = 0; i < count; i++) dst[i] = rotq_f16_to_f32(s[i]); break; }
    case ROTQ_BF16: { const uint16_t *s = (const uint16_t *)t->data + at; for (int64_t i = 0; i < count; i++) dst[i] = rotq_bf16_to_f32(s[i]); break; }
    default: break;
    }
}

/* Same rounding as rotq_tensor_set_f64: double → float → 16-bit. */
static void write_span(rotq_tensor *t, int64_t at, int64_t count, const double *src) {
    switch (t->dtype) {
    case ROTQ_F64: memcpy((double *)t->data + at, src, sizeof(double) * (size_t)count); break;
    case ROTQ_F32: { float *d = (float *)t->data + at; for (int64_t i = 0; i < count; i++) d[i] = (float)src[i]; break; }
    case ROTQ_F16: { uint16_t *d = (uint16_t *)t->data + at; for (int64_t i = 0; i < count; i++) d[i] = rotq_f32_to_f16((float)src[i]); break; }
    case ROTQ_BF16: { uint16_t *d = (uint16_t *)t->data + at; for (int64_t i = 0; i < count; i++) d[i] = rotq_f32_to_bf16((float)src[i]); break; }
    default: break;
    }
}

/* Makes the tensor writable in a float dtype: owned copy; quantized data becomes F32. */
static rotq_status prepare(rotq_tensor *t) {
    if (t->dtype == ROTQ_F32 || t->dtype == ROTQ_F16 || t->dtype == ROTQ_BF16 || t->dtype == ROTQ_F64)
        return rotq_tensor_make_owned(t);
    int64_t n = rotq_tensor_numel(t);
    float *f = malloc(sizeof(float) * (size_t)(n ? n : 1));
    if (!f) return rotq_fail(ROTQ_ERR_NOMEM, "rotate: out of memory dequantizing %s", t->name);
    rotq_status st = rotq_tensor_to_f32(t, f);
    if (st == ROTQ_OK) st = rotq_tensor_set_f32(t, f, ROTQ_F32);
    free(f);
    return st;
}

static rotq_status check_rot(const rotq_tensor *t, const rotq_rotation *R, int64_t len, bool block, const char *what) {
    if (!R) return rotq_fail(ROTQ_ERR_ARG, "%s %s: no rotation given", what, t->name);
    if (block ? (len % R->n != 0) : (len != R->n))
        return rotq_fail(ROTQ_ERR_ARG, "%s %s: dimension %lld does not match the rotation size %lld%s", what, t->name,
                         (long long)len, (long long)R->n, block ? " (block-diagonal: must be a multiple)" : "");
    return ROTQ_OK;
}

/* Dense rotations (BLAS, outside any parallel region of ours): chunks of rows in double. */
static rotq_status rotate_rows_dense(rotq_tensor *t, int64_t rows, int64_t cols, const rotq_rotation *R, bool inverse) {
    ROTQ_TRY(prepare(t));
    if (rows <= 0 || cols <= 0) return ROTQ_OK;
    int64_t chunk_rows = CHUNK_ELEMS / cols;
    if (chunk_rows < 1) chunk_rows = 1;
    if (chunk_rows > rows) chunk_rows = rows;
    double *buf = malloc(sizeof(double) * (size_t)(chunk_rows * cols));
    if (!buf) return rotq_fail(ROTQ_ERR_NOMEM, "rotate %s: out of memory", t->name);
    rotq_status st = ROTQ_OK;
    for (int64_t r0 = 0; r0 < rows && st == ROTQ_OK; r0 += chunk_rows) {
        int64_t nr = rows - r0 < chunk_rows ? rows - r0 : chunk_rows;
        read_span(t, r0 * cols, nr * cols, buf);
        st = rotq_rotation_apply_rows_f64(R, buf, nr * cols / R->n, inverse);
        if (st == ROTQ_OK) write_span(t, r0 * cols, nr * cols, buf);
    }
    free(buf);
    return st;
}

/* ---- the fast path: Hadamard rotations applied to panels of vectors ----------------------------
 *
 * A task gathers P vectors of length n (rows of the tensor on the input side, columns on the output
 * side) into a double panel X[n][P] (element i of vector p at X[i·P + p]), applies R along the first
 * axis with every step vectorized across the P vectors, and scatters the result in the tensor's
 * dtype. The arithmetic is exactly that of rotq_rotation_apply_rows_f64 (same operations in the same
 * order, multiplications by ±1 being exact), so results are bitwise those of the row kernel. Tasks
 * are spread over OpenMP threads; the source may be the read-only mapping and the destination a
 * fresh buffer, so a mapped tensor is read once and written once. */

static inline float bf16_to_f32(uint16_t h) {
    uint32_t u = (uint32_t)h << 16;
    float f;
    memcpy(&f, &u, 4);
    return f;
}

/* Same rounding as rotq_f32_to_bf16 (nearest even, NaN kept quiet). */
static inline uint16_t f32_to_bf16(float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    if ((u & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((u >> 16) | 0x40);
    u += 0x7fffu + ((u >> 16) & 1u);
    return (uint16_t)(u >> 16);
}

/* X[i·P + p] ← element at src + off + i·si + p·sp, for i < n, p < P. */
static void gather(rotq_dtype dt, const void *src, int64_t off, int64_t si, int64_t sp, int64_t n, int64_t P, double *X) {
#define GATHER(T, CONV)                                                                                           \
    do {                                                                                                          \
        const T *b = (const T *)src + off;                                                                        \
        if (sp == 1) {                                                                                            \
            for (int64_t i = 0; i < n; i++)                                                                       \
                for (int64_t p = 0; p < P; p++) X[i * P + p] = CONV(b[i * si + p]);                               \
        } else {                                                                                                  \
            for (int64_t p = 0; p < P; p++)                                                                       \
                for (int64_t i = 0; i < n; i++) X[i * P + p] = CONV(b[i * si + p * sp]);                          \
        }                                                                                                         \
    } while (0)
#define ID(x) (x)
    switch (dt) {
    case ROTQ_F64: GATHER(double, ID); break;
    case ROTQ_F32: GATHER(float, (double)); break;
    case ROTQ_BF16: GATHER(uint16_t, (double)bf16_to_f32); break;
    case ROTQ_F16: GATHER(uint16_t, (double)rotq_f16_to_f32); break;
    default: break;
    }
#undef GATHER
}

static void scatter(rotq_dtype dt, void *dst, int64_t off, int64_t si, int64_t sp, int64_t n, int64_t P, const double *X) {
#define SCATTER(T, CONV)                                                                                          \
    do {                                                                                                          \
        T *b = (T *)dst + off;                                                                                    \
        if (sp == 1) {                                                                                            \
            for (int64_t i = 0; i < n; i++)                                                                       \
                for (int64_t p = 0; p < P; p++) b[i * si + p] = CONV(X[i * P + p]);                               \
        } else {                                                                                                  \
            for (int64_t p = 0; p < P; p++)                                                                       \
                for (int64_t i = 0; i < n; i++) b[i * si + p * sp] = CONV(X[i * P + p]);                          \
        }                                                                                                         \
    } while (0)
#define TO_F32(x) ((float)(x))
#define TO_BF16(x) f32_to_bf16((float)(x))
#define TO_F16(x) rotq_f32_to_f16((float)(x))
    switch (dt) {
    case ROTQ_F64: SCATTER(double, ID); break;
    case ROTQ_F32: SCATTER(float, TO_F32); break;
    case ROTQ_BF16: SCATTER(uint16_t, TO_BF16); break;
    case ROTQ_F16: SCATTER(uint16_t, TO_F16); break;
    default: break;
    }
#undef SCATTER
#undef ID
}

/* The K-step y_c = Σ_a g·x_a (forward g = H[a][c], inverse g = H[c][a]) over blocks of MP doubles,
 * from 0.0 with a ascending, as the row kernel does; g = ±1 makes g·x exact, so adding or subtracting
 * x is the same operation. */
static void kstep_generic(const int8_t *H, int64_t K, int64_t MP, bool inverse, const double *restrict X, double *restrict T) {
    for (int64_t c = 0; c < K; c++) {
        double *restrict o = T + c * MP;
        for (int64_t a = 0; a < K; a++) {
            const int8_t g = inverse ? H[c * K + a] : H[a * K + c];
            const double *restrict xa = X + a * MP;
            if (a == 0) {
                if (g > 0) for (int64_t e = 0; e < MP; e++) o[e] = 0.0 + xa[e];
                else for (int64_t e = 0; e < MP; e++) o[e] = 0.0 - xa[e];
            } else if (g > 0) {
                for (int64_t e = 0; e < MP; e++) o[e] += xa[e];
            } else {
                for (int64_t e = 0; e < MP; e++) o[e] -= xa[e];
            }
        }
    }
}

/* Same sums, register-blocked: 16 doubles of two outputs at a time stay in registers while the K
 * inputs stream from L1; the sign is an XOR of the sign bit (x + (-x') ≡ x - x'). */
__attribute__((target("avx2,fma"))) static void kstep_avx2(const int8_t *H, int64_t K, int64_t MP, bool inverse,
                                                          const double *X, double *T, double *sg) {
    for (int64_t c = 0; c < K; c++)
        for (int64_t a = 0; a < K; a++) sg[c * K + a] = (inverse ? H[c * K + a] : H[a * K + c]) < 0 ? -0.0 : 0.0;
    int64_t e0 = 0;
    for (; e0 + 16 <= MP; e0 += 16) {
        int64_t c = 0;
        for (; c + 2 <= K; c += 2) {
            __m256d p0 = _mm256_setzero_pd(), p1 = p0, p2 = p0, p3 = p0, q0 = p0, q1 = p0, q2 = p0, q3 = p0;
            const double *s0 = sg + c * K, *s1 = s0 + K;
            for (int64_t a = 0; a < K; a++) {
                const double *x = X + a * MP + e0;
                const __m256d x0 = _mm256_loadu_pd(x), x1 = _mm256_loadu_pd(x + 4), x2 = _mm256_loadu_pd(x + 8),
                              x3 = _mm256_loadu_pd(x + 12);
                const __m256d m0 = _mm256_broadcast_sd(s0 + a), m1 = _mm256_broadcast_sd(s1 + a);
                p0 = _mm256_add_pd(p0, _mm256_xor_pd(x0, m0));
                p1 = _mm256_add_pd(p1, _mm256_xor_pd(x1, m0));
                p2 = _mm256_add_pd(p2, _mm256_xor_pd(x2, m0));
                p3 = _mm256_add_pd(p3, _mm256_xor_pd(x3, m0));
                q0 = _mm256_add_pd(q0, _mm256_xor_pd(x0, m1));
                q1 = _mm256_add_pd(q1, _mm256_xor_pd(x1, m1));
                q2 = _mm256_add_pd(q2, _mm256_xor_pd(x2, m1));
                q3 = _mm256_add_pd(q3, _mm256_xor_pd(x3, m1));
            }
            double *o = T + c * MP + e0, *o1 = o + MP;
            _mm256_storeu_pd(o, p0), _mm256_storeu_pd(o + 4, p1), _mm256_storeu_pd(o + 8, p2), _mm256_storeu_pd(o + 12, p3);
            _mm256_storeu_pd(o1, q0), _mm256_storeu_pd(o1 + 4, q1), _mm256_storeu_pd(o1 + 8, q2), _mm256_storeu_pd(o1 + 12, q3);
        }
        for (; c < K; c++) {
            __m256d p0 = _mm256_setzero_pd(), p1 = p0, p2 = p0, p3 = p0;
            const double *s0 = sg + c * K;
            for (int64_t a = 0; a < K; a++) {
                const double *x = X + a * MP + e0;
                const __m256d m0 = _mm256_broadcast_sd(s0 + a);
                p0 = _mm256_add_pd(p0, _mm256_xor_pd(_mm256_loadu_pd(x), m0));
                p1 = _mm256_add_pd(p1, _mm256_xor_pd(_mm256_loadu_pd(x + 4), m0));
                p2 = _mm256_add_pd(p2, _mm256_xor_pd(_mm256_loadu_pd(x + 8), m0));
                p3 = _mm256_add_pd(p3, _mm256_xor_pd(_mm256_loadu_pd(x + 12), m0));
            }
            double *o = T + c * MP + e0;
            _mm256_storeu_pd(o, p0), _mm256_storeu_pd(o + 4, p1), _mm256_storeu_pd(o + 8, p2), _mm256_storeu_pd(o + 12, p3);
        }
    }
    for (; e0 < MP; e0++) /* tail: the same sums one element at a time */
        for (int64_t c = 0; c < K; c++) {
            double acc = 0.0;
            for (int64_t a = 0; a < K; a++) {
                const double x = X[a * MP + e0];
                acc = signbit(sg[c * K + a]) ? acc - x : acc + x;
            }
            T[c * MP + e0] = acc;
        }
}

/* x ← x·R (inverse: x·Rᵀ) for the P vectors of the panel; T: n·P doubles of scratch, sg: K·K.
 * Returns the buffer holding the result (X or T). */
static inline __attribute__((always_inline)) double *panel_body(const rotq_rotation *R, double *restrict X, int64_t P,
                                                                bool inverse, double *restrict T, double *sg, bool avx2) {
    const int64_t n = R->n, K = R->K, M = n / K, MP = M * P;
    const double *s = R->scaled_signs_f64;
    if (!inverse)
        for (int64_t i = 0; i < n; i++) {
            const double si = s[i];
            double *restrict x = X + i * P;
            for (int64_t p = 0; p < P; p++) x[p] *= si;
        }
    for (int64_t a = 0; a < K; a++) {
        double *Y = X + a * MP;
        for (int64_t h = 1; h < M; h *= 2)
            for (int64_t j0 = 0; j0 < M; j0 += 2 * h)
                for (int64_t j = j0; j < j0 + h; j++) {
                    double *restrict u = Y + j * P, *restrict w = Y + (j + h) * P;
                    for (int64_t p = 0; p < P; p++) {
                        const double x0 = u[p], x1 = w[p];
                        u[p] = x0 + x1;
                        w[p] = x0 - x1;
                    }
                }
    }
    double *Z = X;
    if (K > 1) {
        if (avx2) kstep_avx2(R->base, K, MP, inverse, X, T, sg);
        else kstep_generic(R->base, K, MP, inverse, X, T);
        Z = T;
    }
    if (inverse)
        for (int64_t i = 0; i < n; i++) {
            const double si = s[i];
            double *restrict x = Z + i * P;
            for (int64_t p = 0; p < P; p++) x[p] *= si;
        }
    return Z;
}

__attribute__((target("avx2,fma"))) static double *panel_avx2(const rotq_rotation *R, double *X, int64_t P, bool inverse,
                                                             double *T, double *sg) {
    return panel_body(R, X, P, inverse, T, sg, true);
}
static double *panel_generic(const rotq_rotation *R, double *X, int64_t P, bool inverse, double *T, double *sg) {
    return panel_body(R, X, P, inverse, T, sg, false);
}

/* One rotation job over a tensor: `n_tasks` panels, each P vectors of length R->n.
 *  rows mode (input side, embeddings): vector v is elements [v·n, v·n + n) (n_vec of them);
 *  cols mode (output side): vector (q, j) is column j of rows [rb + q·n, rb + q·n + n). */
typedef struct panel_job {
    const rotq_rotation *R;
    bool inverse, cols_mode;
    rotq_dtype dt;
    const void *src;
    void *dst;
    int64_t P;
    int64_t n_vec;               /* rows mode */
    int64_t cols, rb, n_blocks;  /* cols mode */
} panel_job;

static int64_t panel_width(int64_t n) {
    int64_t P = (INT64_C(32768) / (n ? n : 1)) & ~INT64_C(7); /* ~256 KiB of doubles per panel */
    return P < 8 ? 8 : P > 64 ? 64 : P;
}

#define PANEL_PARALLEL_MIN (INT64_C(1) << 16) /* elements below which one thread does the job */

static rotq_status run_panels(const panel_job *j, int64_t total_elems) {
    const int64_t n = j->R->n, P = j->P;
    const int64_t strips = j->cols_mode ? (j->cols + P - 1) / P : 0;
    const int64_t n_tasks = j->cols_mode ? j->n_blocks * strips : (j->n_vec + P - 1) / P;
    const bool avx2 = rotq_fwht_isa() == ROTQ_ISA_AVX2;
    bool failed = false;
#pragma omp parallel if (total_elems >= PANEL_PARALLEL_MIN && n_tasks > 1)
    {
        double *X = malloc(sizeof(double) * (size_t)(n * P)), *T = malloc(sizeof(double) * (size_t)(n * P));
        double *sg = malloc(sizeof(double) * (size_t)(j->R->K * j->R->K));
        if (!X || !T || !sg) {
#pragma omp atomic write
            failed = true;
        }
#pragma omp for schedule(dynamic, 1)
        for (int64_t k = 0; k < n_tasks; k++) {
            if (!X || !T || !sg) continue;
            int64_t off, si, sp, pw;
            if (j->cols_mode) {
                int64_t q = k / strips, j0 = (k % strips) * P;
                pw = j->cols - j0 < P ? j->cols - j0 : P;
                off = (j->rb + q * n) * j->cols + j0;
                si = j->cols;
                sp = 1;
            } else {
                int64_t v0 = k * P;
                pw = j->n_vec - v0 < P ? j->n_vec - v0 : P;
                off = v0 * n;
                si = 1;
                sp = n;
            }
            gather(j->dt, j->src, off, si, sp, n, pw, X);
            const double *Z = avx2 ? panel_avx2(j->R, X, pw, j->inverse, T, sg) : panel_generic(j->R, X, pw, j->inverse, T, sg);
            scatter(j->dt, j->dst, off, si, sp, n, pw, Z);
        }
        free(X);
        free(T);
        free(sg);
    }
    if (failed) return rotq_fail(ROTQ_ERR_NOMEM, "rotate: out of memory for a panel (n=%lld)", (long long)n);
    return ROTQ_OK;
}

/* Source and destination of an in-place job: a float tensor still in its mapping is read from there
 * and written to a fresh buffer (adopted afterwards); anything else is made writable first. */
static rotq_status job_buffers(rotq_tensor *t, const void **src, void **dst) {
    if (!t->owned && rotq_dtype_is_float(t->dtype)) {
        void *p = malloc(t->nbytes ? t->nbytes : 1);
        if (!p) return rotq_fail(ROTQ_ERR_NOMEM, "rotate %s: out of memory (%llu bytes)", t->name, (unsigned long long)t->nbytes);
        *src = t->data;
        *dst = p;
        return ROTQ_OK;
    }
    ROTQ_TRY(prepare(t));
    *src = *dst = t->data;
    return ROTQ_OK;
}

static rotq_status finish_job(rotq_tensor *t, const void *src, void *dst, rotq_status st) {
    if (src == dst) return st;
    if (st == ROTQ_OK) rotq_tensor_adopt(t, dst);
    else free(dst);
    return st;
}

/* x ← x·R (or x·Rᵀ) for every row of a [rows, cols] tensor, cols a multiple of R->n. */
static rotq_status rotate_rows(rotq_tensor *t, int64_t rows, int64_t cols, const rotq_rotation *R, bool inverse) {
    if (R->kind != ROTQ_ROT_HADAMARD) return rotate_rows_dense(t, rows, cols, R, inverse);
    if (rows <= 0 || cols <= 0) return prepare(t);
    const void *src = NULL;
    void *dst = NULL;
    ROTQ_TRY(job_buffers(t, &src, &dst));
    panel_job j = {.R = R, .inverse = inverse, .cols_mode = false, .dt = t->dtype, .src = src, .dst = dst,
                   .P = panel_width(R->n), .n_vec = rows * cols / R->n};
    return finish_job(t, src, dst, run_panels(&j, rows * cols));
}

/* W[:, j] ← s[j]·W[:, j] in double, stored in the tensor's dtype (same rounding as to_f64/set_f64). */
rotq_status rotq_scale_columns(rotq_tensor *w, const double *s) {
    if (w->n_dims != 2) return rotq_fail(ROTQ_ERR_FORMAT, "tensor %s: expected a 2-D linear weight", w->name);
    const int64_t rows = w->shape[0], cols = w->shape[1];
    const void *src = NULL;
    void *dst = NULL;
    ROTQ_TRY(job_buffers(w, &src, &dst));
    const rotq_dtype dt = w->dtype;
#pragma omp parallel for schedule(static) if (rows * cols >= PANEL_PARALLEL_MIN)
    for (int64_t r = 0; r < rows; r++) {
        const int64_t o = r * cols;
        switch (dt) {
        case ROTQ_F64: for (int64_t c = 0; c < cols; c++) ((double *)dst)[o + c] = ((const double *)src)[o + c] * s[c]; break;
        case ROTQ_F32: for (int64_t c = 0; c < cols; c++) ((float *)dst)[o + c] = (float)((double)((const float *)src)[o + c] * s[c]); break;
        case ROTQ_BF16:
            for (int64_t c = 0; c < cols; c++)
                ((uint16_t *)dst)[o + c] = f32_to_bf16((float)((double)bf16_to_f32(((const uint16_t *)src)[o + c]) * s[c]));
            break;
        case ROTQ_F16:
            for (int64_t c = 0; c < cols; c++)
                ((uint16_t *)dst)[o + c] = rotq_f32_to_f16((float)((double)rotq_f16_to_f32(((const uint16_t *)src)[o + c]) * s[c]));
            break;
        default: break;
        }
    }
    return finish_job(w, src, dst, ROTQ_OK);
}

rotq_status rotq_rotate_linear_input(rotq_tensor *W, const rotq_rotation *R, const rotq_rotate_opts *o) {
    rotq_rotate_opts d = rotq_rotate_defaults();
    if (!o) o = &d;
    if (!W || W->n_dims != 2) return rotq_fail(ROTQ_ERR_ARG, "rotate_input %s: a linear weight [out, in] is 2-D", W ? W->name : "(null)");
    ROTQ_TRY(check_rot(W, R, W->shape[1], o->block_diag, "rotate_input"));
    return rotate_rows(W, W->shape[0], W->shape[1], R, o->inverse);
}

rotq_status rotq_rotate_embedding_output(rotq_tensor *E, const rotq_rotation *R, const rotq_rotate_opts *o) {
    rotq_rotate_opts d = rotq_rotate_defaults();
    if (!o) o = &d;
    if (!E || E->n_dims != 2) return rotq_fail(ROTQ_ERR_ARG, "rotate embedding %s: an embedding [vocab, d] is 2-D", E ? E->name : "(null)");
    ROTQ_TRY(check_rot(E, R, E->shape[1], o->block_diag, "rotate embedding"));
    return rotate_rows(E, E->shape[0], E->shape[1], R, o->inverse);
}

static rotq_status row_range(const rotq_tensor *t, const rotq_rotate_opts *o, int64_t rows, int64_t *rb, int64_t *re) {
    *rb = o->row_begin;
    *re = o->row_end ? o->row_end : rows;
    if (*rb < 0 || *re > rows || *rb >= *re)
        return rotq_fail(ROTQ_ERR_ARG, "%s: row range [%lld, %lld) outside [0, %lld)", t->name, (long long)o->row_begin,
                         (long long)o->row_end, (long long)rows);
    return ROTQ_OK;
}

static rotq_status rotate_bias(rotq_tensor *b, int64_t rb, int64_t re, const rotq_rotation *R, bool inverse, bool block) {
    if (b->n_dims != 1 || b->shape[0] < re)
        return rotq_fail(ROTQ_ERR_ARG, "rotate_output bias %s: shape does not cover rows [%lld, %lld)", b->name,
                         (long long)rb, (long long)re);
    ROTQ_TRY(check_rot(b, R, re - rb, block, "rotate_output bias"));
    ROTQ_TRY(prepare(b));
    int64_t len = re - rb;
    double *v = malloc(sizeof(double) * (size_t)len);
    if (!v) return rotq_fail(ROTQ_ERR_NOMEM, "rotate %s: out of memory", b->name);
    read_span(b, rb, len, v);
    rotq_status st = rotq_rotation_apply_rows_f64(R, v, len / R->n, inverse);
    if (st == ROTQ_OK) write_span(b, rb, len, v);
    free(v);
    return st;
}

rotq_status rotq_rotate_linear_output(rotq_tensor *W, rotq_tensor *bias, const rotq_rotation *R, const rotq_rotate_opts *o) {
    rotq_rotate_opts d = rotq_rotate_defaults();
    if (!o) o = &d;
    if (!W || W->n_dims < 2)
        return rotq_fail(ROTQ_ERR_ARG, "rotate_output %s: a weight [out, ...] needs 2+ dimensions", W ? W->name : "(null)");
    int64_t rows = W->shape[0], cols = rotq_tensor_numel(W) / (rows ? rows : 1), rb, re;
    ROTQ_TRY(row_range(W, o, rows, &rb, &re));
    int64_t len = re - rb;
    ROTQ_TRY(check_rot(W, R, len, o->block_diag, "rotate_output"));
    if (R->kind == ROTQ_ROT_HADAMARD) {
        const void *src = NULL;
        void *dst = NULL;
        ROTQ_TRY(job_buffers(W, &src, &dst));
        if (src != dst && (rb > 0 || re < rows)) { /* rows outside the range are copied unchanged */
            const uint64_t row_bytes = W->nbytes / (uint64_t)rows;
            memcpy(dst, src, row_bytes * (uint64_t)rb);
            memcpy((uint8_t *)dst + row_bytes * (uint64_t)re, (const uint8_t *)src + row_bytes * (uint64_t)re,
                   row_bytes * (uint64_t)(rows - re));
        }
        panel_job j = {.R = R, .inverse = o->inverse, .cols_mode = true, .dt = W->dtype, .src = src, .dst = dst,
                       .P = panel_width(R->n), .cols = cols, .rb = rb, .n_blocks = len / R->n};
        rotq_status st = finish_job(W, src, dst, run_panels(&j, len * cols));
        if (st == ROTQ_OK && bias) st = rotate_bias(bias, rb, re, R, o->inverse, o->block_diag);
        return st;
    }
    ROTQ_TRY(prepare(W));
    double *panel = malloc(sizeof(double) * (size_t)(PANEL * len));
    double *line = malloc(sizeof(double) * PANEL);
    if (!panel || !line) { free(panel); free(line); return rotq_fail(ROTQ_ERR_NOMEM, "rotate_output %s: out of memory", W->name); }
    rotq_status st = ROTQ_OK;
    for (int64_t j0 = 0; j0 < cols && st == ROTQ_OK; j0 += PANEL) {
        int64_t pw = cols - j0 < PANEL ? cols - j0 : PANEL;
        /* panel row p = column j0+p of W restricted to rows [rb, re) */
        for (int64_t i = 0; i < len; i++) {
            read_span(W, (rb + i) * cols + j0, pw, line);
            for (int64_t p = 0; p < pw; p++) panel[p * len + i] = line[p];
        }
        st = rotq_rotation_apply_rows_f64(R, panel, pw * len / R->n, o->inverse);
        if (st != ROTQ_OK) break;
        for (int64_t i = 0; i < len; i++) {
            for (int64_t p = 0; p < pw; p++) line[p] = panel[p * len + i];
            write_span(W, (rb + i) * cols + j0, pw, line);
        }
    }
    free(panel);
    free(line);
    if (st == ROTQ_OK && bias) st = rotate_bias(bias, rb, re, R, o->inverse, o->block_diag);
    return st;
}

rotq_status rotq_center_output(rotq_tensor *t, rotq_tensor *bias, const rotq_rotate_opts *o) {
    rotq_rotate_opts d = rotq_rotate_defaults();
    if (!o) o = &d;
    if (!t || t->n_dims < 1) return rotq_fail(ROTQ_ERR_ARG, "center_output: no tensor");
    bool embedding = t->role == ROLE_EMBED || t->role == ROLE_POS_EMBED;
    ROTQ_TRY(prepare(t));
    if (embedding || t->n_dims == 1) {
        /* each row (an embedding vector, or the whole bias) loses its mean over the features */
        int64_t cols = t->shape[t->n_dims - 1], rows = rotq_tensor_numel(t) / (cols ? cols : 1);
        double *v = malloc(sizeof(double) * (size_t)(cols ? cols : 1));
        if (!v) return rotq_fail(ROTQ_ERR_NOMEM, "center_output %s: out of memory", t->name);
        for (int64_t r = 0; r < rows; r++) {
            read_span(t, r * cols, cols, v);
            double s = 0.0;
            for (int64_t i = 0; i < cols; i++) s += v[i];
            s /= (double)cols;
            for (int64_t i = 0; i < cols; i++) v[i] -= s;
            write_span(t, r * cols, cols, v);
        }
        free(v);
        return ROTQ_OK;
    }
    int64_t rows = t->shape[0], cols = rotq_tensor_numel(t) / (rows ? rows : 1), rb, re;
    ROTQ_TRY(row_range(t, o, rows, &rb, &re));
    int64_t len = re - rb;
    double *mean = calloc((size_t)cols, sizeof(double)), *line = malloc(sizeof(double) * (size_t)cols);
    if (!mean || !line) { free(mean); free(line); return rotq_fail(ROTQ_ERR_NOMEM, "center_output %s: out of memory", t->name); }
    for (int64_t i = rb; i < re; i++) {
        read_span(t, i * cols, cols, line);
        for (int64_t j = 0; j < cols; j++) mean[j] += line[j];
    }
    for (int64_t j = 0; j < cols; j++) mean[j] /= (double)len;
    for (int64_t i = rb; i < re; i++) {
        read_span(t, i * cols, cols, line);
        for (int64_t j = 0; j < cols; j++) line[j] -= mean[j];
        write_span(t, i * cols, cols, line);
    }
    free(mean);
    free(line);
    if (bias) {
        if (bias->n_dims != 1 || bias->shape[0] < re)
            return rotq_fail(ROTQ_ERR_ARG, "center_output bias %s: shape does not cover rows [%lld, %lld)", bias->name,
                             (long long)rb, (long long)re);
        ROTQ_TRY(prepare(bias));
        double *b = malloc(sizeof(double) * (size_t)len);
        if (!b) return rotq_fail(ROTQ_ERR_NOMEM, "center_output %s: out of memory", bias->name);
        read_span(bias, rb, len, b);
        double s = 0.0;
        for (int64_t i = 0; i < len; i++) s += b[i];
        s /= (double)len;
        for (int64_t i = 0; i < len; i++) b[i] -= s;
        write_span(bias, rb, len, b);
        free(b);
    }
    return ROTQ_OK;
}

rotq_status rotq_op_rotate(rotq_tensor *t, rotq_tensor *bias, rotq_rotate_side side, const rotq_rotation *R,
                           const rotq_rotate_opts *o) {
    if (!t) return rotq_fail(ROTQ_ERR_ARG, "rotate: no tensor");
    rotq_rotate_opts d = rotq_rotate_defaults();
    if (!o) o = &d;
    if (side == ROTQ_CENTER_OUTPUT) return rotq_center_output(t, bias, o);
    if (side != ROTQ_ROTATE_INPUT && side != ROTQ_ROTATE_OUTPUT)
        return rotq_fail(ROTQ_ERR_ARG, "rotate %s: unknown side %d", t->name, (int)side);
    bool embedding = t->role == ROLE_EMBED || t->role == ROLE_POS_EMBED;
    if (t->n_dims == 1) {
        /* a bias (or any vector on the output side) on its own: b ← Rᵀ·b */
        if (side != ROTQ_ROTATE_OUTPUT) return rotq_fail(ROTQ_ERR_ARG, "rotate_input %s: a 1-D tensor has no input side", t->name);
        int64_t rb, re;
        ROTQ_TRY(row_range(t, o, t->shape[0], &rb, &re));
        return rotate_bias(t, rb, re, R, o->inverse, o->block_diag);
    }
    if (embedding) {
        /* E ← E·R: the embedding's output; the same product is the input side of a head tied to it */
        if (bias) return rotq_fail(ROTQ_ERR_ARG, "rotate embedding %s: embeddings have no bias", t->name);
        return rotq_rotate_embedding_output(t, R, o);
    }
    if (side == ROTQ_ROTATE_INPUT) {
        if (t->n_dims != 2) return rotq_fail(ROTQ_ERR_ARG, "rotate_input %s: %d-D weights are not handled", t->name, t->n_dims);
        return rotq_rotate_linear_input(t, R, o);
    }
    return rotq_rotate_linear_output(t, bias, R, o);
}
