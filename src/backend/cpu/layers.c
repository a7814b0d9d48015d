/* The CPU backend's layer kernels: plain loops on float arrays, BLAS for the products.
 *
 * Row kernels (one row of a norm, a softmax, a log-sum-exp) are compiled twice, for AVX2 and
 * for the baseline, and picked at load time, so that a portable build still runs at full width.
 * OpenMP loops call these kernels; BLAS is only ever called outside OpenMP regions, because
 * OpenBLAS runs its own thread pool.
 */
#include <cblas.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "backend/backend.h"
#include "backend/cpu/caps.h"

/* The exp kernel clamps its input with comparisons; under GCC's default trapping-math they count
 * as control flow and keep the loops scalar. Nothing here relies on floating-point traps. */
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC optimize("no-trapping-math")
#endif
#include "backend/cpu/exp_approx.h" /* after the pragma, so that exp_approx is built under it too */

#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__) && !defined(ROTQ_NO_CLONES)
#define ROTQ_ROW_KERNEL __attribute__((target_clones("avx2", "default")))
#else
#define ROTQ_ROW_KERNEL
#endif

/* ---- linear -------------------------------------------------------------------------------- */

void rotq_linear_forward(float *out, const float *x, const float *w, const float *b, int64_t T, int64_t n_in,
                         int64_t n_out, bool accumulate) {
    if (b) {
        /* Bias goes in first so the product accumulates on top (one sgemm either way). */
        if (accumulate) {
            for (int64_t t = 0; t < T; t++)
                for (int64_t o = 0; o < n_out; o++) out[t * n_out + o] += b[o];
        } else {
            for (int64_t t = 0; t < T; t++) memcpy(out + t * n_out, b, (size_t)n_out * sizeof(float));
        }
    }
    float beta = (accumulate || b) ? 1.0f : 0.0f;
    if (T == 1) {
        /* one token (generation): sgemm would repack the whole weight matrix for a single row */
        cblas_sgemv(CblasRowMajor, CblasNoTrans, (blasint)n_out, (blasint)n_in, 1.0f, w, (blasint)n_in, x, 1, beta, out, 1);
        return;
    }
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (blasint)T, (blasint)n_out, (blasint)n_in, 1.0f, x,
                (blasint)n_in, w, (blasint)n_in, beta, out, (blasint)n_out);
}

/* ---- norms ---------------------------------------------------------------------------------- */

ROTQ_ROW_KERNEL
static void rmsnorm_row(float *out, const float *x, const float *w, float offset, float eps, int64_t d) {
    float ss = 0.0f;
#pragma omp simd reduction(+ : ss)
    for (int64_t i = 0; i < d; i++) ss += x[i] * x[i];
    float inv = 1.0f / sqrtf(ss / (float)d + eps);
#pragma omp simd
    for (int64_t i = 0; i < d; i++) out[i] = (w[i] + offset) * (x[i] * inv);
}

void rotq_rmsnorm_forward(float *out, const float *x, const float *w, float offset, float eps, int64_t T, int64_t d) {
#pragma omp parallel for schedule(static) if (T * d > 32768)
    for (int64_t t = 0; t < T; t++) rmsnorm_row(out + t * d, x + t * d, w, offset, eps, d);
}

static void layernorm_row(float *out, const float *x, const float *w, const float *b, float offset, float eps,
                          int64_t d) {
    double mean = 0.0, var = 0.0;
    for (int64_t i = 0; i < d; i++) mean += x[i];
    mean /= (double)d;
    for (int64_t i = 0; i < d; i++) var += (x[i] - mean) * (x[i] - mean);
    float m = (float)mean, inv = 1.0f / sqrtf((float)(var / (double)d) + eps);
    for (int64_t i = 0; i < d; i++) out[i] = (x[i] - m) * inv * (w[i] + offset) + (b ? b[i] : 0.0f);
}

void rotq_layernorm_forward(float *out, const float *x, const float *w, const float *b, float offset, float eps,
                            int64_t T, int64_t d) {
#pragma omp parallel for schedule(static) if (T * d > 32768)
    for (int64_t t = 0; t < T; t++) layernorm_row(out + t * d, x + t * d, w, b, offset, eps, d);
}

/* ---- RoPE ----------------------------------------------------------------------------------- */

void rotq_rope_inv_freq(const rotq_hparams *hp, float *inv_freq) {
    int64_t dim = hp->rotary_dim, half = dim / 2;
    for (int64_t i = 0; i < half; i++) {
        /* transformers: 1 / base ** (arange(0, dim, 2).float() / dim), every step in float32 */
        float e = (float)(2 * i) / (float)dim;
        float f = 1.0f / (float)pow(hp->rope_theta, (double)e);
        if (hp->rope_scaling == 1) {
            f = f / (float)hp->rope_factor;
        } else if (hp->rope_scaling == 2) {
            /* Llama 3: long wavelengths slowed by `factor`, short ones kept, a smooth ramp between */
            double factor = hp->rope_factor, lo = hp->rope_low_freq_factor, hi = hp->rope_high_freq_factor;
            double old_ctx = (double)hp->rope_orig_max_pos;
            double wavelen = 2.0 * M_PI / f;
            if (wavelen > old_ctx / lo) {
                f = (float)(f / factor);
            } else if (wavelen >= old_ctx / hi) {
                double smooth = (old_ctx / wavelen - lo) / (hi - lo);
                f = (float)((1.0 - smooth) * f / factor + smooth * f);
            }
        }
        inv_freq[i] = f;
    }
}

void rotq_rope_tables(const float *inv_freq, int64_t half, int64_t pos0, int64_t T, float *cos_t, float *sin_t) {
#pragma omp parallel for schedule(static) if (T * half > 4096)
    for (int64_t t = 0; t < T; t++)
        for (int64_t i = 0; i < half; i++) {
            float angle = (float)(pos0 + t) * inv_freq[i]; /* float32 product, as transformers */
            cos_t[t * half + i] = (float)cos((double)angle);
            sin_t[t * half + i] = (float)sin((double)angle);
        }
}

void rotq_rope_forward(float *x, const float *cos_t, const float *sin_t, int64_t T, int64_t n_heads,
                       int64_t head_dim, int64_t half) {
#pragma omp parallel for schedule(static) if (T * n_heads * half > 32768)
    for (int64_t t = 0; t < T; t++) {
        const float *c = cos_t + t * half, *s = sin_t + t * half;
        for (int64_t h = 0; h < n_heads; h++) {
            float *v = x + (t * n_heads + h) * head_dim;
            /* rotate-half: pairs (i, i + half) of the rotary part */
            for (int64_t i = 0; i < half; i++) {
                float a = v[i], b = v[i + half];
                v[i] = a * c[i] - b * s[i];
                v[i + half] = b * c[i] + a * s[i];
            }
        }
    }
}

/* ---- attention ------------------------------------------------------------------------------- */

/* Softmax over entries [lo, n_valid) of a row; the masked rest of [0, n) becomes 0 so the
 * following P·V product can run over the whole block. */
ROTQ_ROW_KERNEL
static void softmax_row_masked(float *x, int64_t lo, int64_t n_valid, int64_t n) {
    float mx = -INFINITY;
#pragma omp simd reduction(max : mx)
    for (int64_t i = lo; i < n_valid; i++) mx = x[i] > mx ? x[i] : mx;
    float sum = 0.0f;
#pragma omp simd reduction(+ : sum)
    for (int64_t i = lo; i < n_valid; i++) {
        float e = exp_approx(x[i] - mx);
        x[i] = e;
        sum += e;
    }
    float inv = 1.0f / sum;
#pragma omp simd
    for (int64_t i = lo; i < n_valid; i++) x[i] *= inv;
    for (int64_t i = 0; i < lo; i++) x[i] = 0.0f;
    for (int64_t i = n_valid; i < n; i++) x[i] = 0.0f;
}

/* The first key a query at position p sees: p - window + 1 with a sliding window, else 0. */
static inline int64_t window_lo(int64_t p, int64_t window) { return window > 0 && p + 1 > window ? p + 1 - window : 0; }

int64_t rotq_attention_block(int64_t T, int64_t n_heads, int64_t n_keys) {
    /* Blocks of queries skip the keys above the causal diagonal (about half the work of long
     * windows) while keeping each product large enough for BLAS to run at speed. */
    int64_t b = T <= 128 ? T : T <= 1024 ? 128 : 256;
    /* all heads' scores of a block are held at once: keep them under 16M floats (64 MB) */
    int64_t cap = ((int64_t)1 << 24) / (n_heads * (n_keys > 0 ? n_keys : 1));
    if (cap < 1) cap = 1;
    return b < cap ? b : cap;
}

/* The fused kernel when the CPU and head size allow it and the CPU choice keeps it (cpu/caps.h:
 * ROTQ_ATTENTION=blas, or rotq_cpu_caps_set, selects the BLAS path for comparisons). */
static bool use_fused_attention(int64_t head_dim) {
    return rotq_cpu_caps_get()->attention_fused && rotq_attention_fused_supported(head_dim);
}

void rotq_attention_forward_ws(float *out, const float *q, const float *k, const float *v, float *scores,
                               float *work, int64_t T, int64_t pos0, int64_t n_heads, int64_t n_kv, int64_t head_dim,
                               float scale, int64_t q_block, int64_t window) {
    bool full = window == ROTQ_ATTN_FULL;
    if (!full && use_fused_attention(head_dim)) {
        rotq_attention_fused(out, q, k, v, T, pos0, n_heads, n_kv, head_dim, scale, window);
        return;
    }
    int64_t group = n_heads / n_kv, q_stride = n_heads * head_dim, kv_stride = n_kv * head_dim;
    int64_t gw = group * head_dim; /* floats of one KV group's heads in a row */
    /* qt [n_kv, T, group, hd]: each KV group's query heads stacked as rows (t, j), so that one
     * product serves the whole group (GQA shares K and V inside it). */
    float *qt = work, *ot = work + T * q_stride;
#pragma omp parallel for schedule(static) if (T * q_stride > 65536)
    for (int64_t t = 0; t < T; t++)
        for (int64_t g = 0; g < n_kv; g++)
            memcpy(qt + (g * T + t) * gw, q + t * q_stride + g * gw, (size_t)gw * sizeof(float));

    for (int64_t b0 = 0; b0 < T; b0 += q_block) {
        int64_t nq = T - b0 < q_block ? T - b0 : q_block;
        int64_t nk = full ? pos0 + T : pos0 + b0 + nq; /* keys the last query of the block may see */
        int64_t rows = nq * group;   /* score rows per KV group */
        /* scores[g] [nq·group, nk] = scale · Qt_g[block] · K_g[0:nk]ᵀ; all groups go through BLAS
         * back to back, then one parallel softmax, so BLAS and OpenMP threads take turns rarely. */
        for (int64_t g = 0; g < n_kv; g++)
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (blasint)rows, (blasint)nk, (blasint)head_dim, scale,
                        qt + (g * T + b0) * gw, (blasint)head_dim, k + g * head_dim, (blasint)kv_stride, 0.0f,
                        scores + g * rows * nk, (blasint)nk);
        int64_t all_rows = n_kv * rows;
#pragma omp parallel for schedule(static) if (all_rows * nk > 32768)
        for (int64_t r = 0; r < all_rows; r++) {
            int64_t t = (r % rows) / group;
            softmax_row_masked(scores + r * nk, window_lo(pos0 + b0 + t, window), full ? nk : pos0 + b0 + t + 1, nk);
        }
        /* out rows (t, heads of g) = P_g [nq·group, nk] · V_g[0:nk] [nk, hd], via ot */
        for (int64_t g = 0; g < n_kv; g++) {
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (blasint)rows, (blasint)head_dim, (blasint)nk, 1.0f,
                        scores + g * rows * nk, (blasint)nk, v + g * head_dim, (blasint)kv_stride, 0.0f, ot,
                        (blasint)head_dim);
            for (int64_t t = 0; t < nq; t++)
                memcpy(out + (b0 + t) * q_stride + g * gw, ot + t * gw, (size_t)gw * sizeof(float));
        }
    }
}

/* Head by head, without the work buffer: the fallback when it cannot be allocated. */
static void attention_per_head(float *out, const float *q, const float *k, const float *v, float *scores, int64_t T,
                               int64_t pos0, int64_t n_heads, int64_t n_kv, int64_t head_dim, float scale,
                               int64_t q_block, int64_t window) {
    int64_t group = n_heads / n_kv, q_stride = n_heads * head_dim, kv_stride = n_kv * head_dim;
    bool full = window == ROTQ_ATTN_FULL;
    for (int64_t h = 0; h < n_heads; h++)
        for (int64_t b0 = 0; b0 < T; b0 += q_block) {
            int64_t nq = T - b0 < q_block ? T - b0 : q_block, nk = full ? pos0 + T : pos0 + b0 + nq;
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (blasint)nq, (blasint)nk, (blasint)head_dim, scale,
                        q + b0 * q_stride + h * head_dim, (blasint)q_stride, k + (h / group) * head_dim,
                        (blasint)kv_stride, 0.0f, scores, (blasint)nk);
#pragma omp parallel for schedule(static) if (nq * nk > 32768)
            for (int64_t r = 0; r < nq; r++)
                softmax_row_masked(scores + r * nk, window_lo(pos0 + b0 + r, window), full ? nk : pos0 + b0 + r + 1, nk);
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (blasint)nq, (blasint)head_dim, (blasint)nk, 1.0f,
                        scores, (blasint)nk, v + (h / group) * head_dim, (blasint)kv_stride, 0.0f,
                        out + b0 * q_stride + h * head_dim, (blasint)q_stride);
        }
}

void rotq_attention_forward(float *out, const float *q, const float *k, const float *v, float *scores, int64_t T,
                            int64_t pos0, int64_t n_heads, int64_t n_kv, int64_t head_dim, float scale,
                            int64_t q_block, int64_t window) {
    if (window != ROTQ_ATTN_FULL && use_fused_attention(head_dim)) {
        rotq_attention_fused(out, q, k, v, T, pos0, n_heads, n_kv, head_dim, scale, window);
        return;
    }
    float *work = malloc((size_t)(2 * T * n_heads * head_dim) * sizeof(float));
    if (work)
        rotq_attention_forward_ws(out, q, k, v, scores, work, T, pos0, n_heads, n_kv, head_dim, scale, q_block, window);
    else
        attention_per_head(out, q, k, v, scores, T, pos0, n_heads, n_kv, head_dim, scale, q_block, window);
    free(work);
}

/* ---- MLP ------------------------------------------------------------------------------------ */

ROTQ_ROW_KERNEL
static void swiglu_span(float *gate, const float *up, int64_t n) {
#pragma omp simd
    for (int64_t i = 0; i < n; i++) {
        float g = gate[i];
        gate[i] = g / (1.0f + exp_approx(-g)) * up[i];
    }
}

void rotq_swiglu_forward(float *gate, const float *up, int64_t n) {
    const int64_t span = 16384;
    int64_t n_spans = (n + span - 1) / span;
#pragma omp parallel for schedule(static) if (n_spans > 1)
    for (int64_t s = 0; s < n_spans; s++) {
        int64_t i0 = s * span, len = n - i0 < span ? n - i0 : span;
        swiglu_span(gate + i0, up + i0, len);
    }
}

/* gate ← gelu_tanh(gate)·up, in float as transformers' gelu_pytorch_tanh. */
void rotq_geglu_forward(float *gate, const float *up, int64_t n) {
#pragma omp parallel for schedule(static) if (n > 16384)
    for (int64_t i = 0; i < n; i++) {
        float v = gate[i];
        gate[i] = 0.5f * v * (1.0f + tanhf(0.79788456080286536f * (v + 0.044715f * v * v * v))) * up[i];
    }
}

void rotq_add_forward(float *out, const float *x, int64_t n) {
#pragma omp parallel for schedule(static) if (n > 65536)
    for (int64_t i = 0; i < n; i++) out[i] += x[i];
}

void rotq_act_forward(rotq_mlp_kind act, float *x, int64_t n) {
    switch (act) {
    case ROTQ_MLP_RELU:
#pragma omp parallel for schedule(static) if (n > 65536)
        for (int64_t i = 0; i < n; i++) x[i] = x[i] > 0.0f ? x[i] : 0.0f;
        break;
    case ROTQ_MLP_GELU:
#pragma omp parallel for schedule(static) if (n > 16384)
        for (int64_t i = 0; i < n; i++) x[i] = 0.5f * x[i] * (1.0f + erff(x[i] * 0.70710678118654752f));
        break;
    case ROTQ_MLP_GELU_TANH:
#pragma omp parallel for schedule(static) if (n > 16384)
        for (int64_t i = 0; i < n; i++) {
            float v = x[i];
            x[i] = 0.5f * v * (1.0f + tanhf(0.79788456080286536f * (v + 0.044715f * v * v * v)));
        }
        break;
    case ROTQ_MLP_QUICK_GELU: /* x·sigmoid(1.702·x) in float32, as transformers' QuickGELUActivation */
#pragma omp parallel for schedule(static) if (n > 16384)
        for (int64_t i = 0; i < n; i++) x[i] = x[i] / (1.0f + expf(-1.702f * x[i]));
        break;
    default: break; /* SwiGLU and GeGLU are gated: rotq_swiglu_forward, rotq_geglu_forward */
    }
}

void rotq_add_rows(float *out, const float *b, int64_t T, int64_t d) {
    for (int64_t t = 0; t < T; t++)
        for (int64_t i = 0; i < d; i++) out[t * d + i] += b[i];
}

/* ---- log-softmax pieces ------------------------------------------------------------------------ */

ROTQ_ROW_KERNEL
static double logsumexp_row(const float *x, int64_t n) {
    float mx = -INFINITY;
#pragma omp simd reduction(max : mx)
    for (int64_t i = 0; i < n; i++) mx = x[i] > mx ? x[i] : mx;
    /* float partial sums over short spans, double across them: cheap and accurate to ~1e-7 */
    double total = 0.0;
    for (int64_t i0 = 0; i0 < n; i0 += 1024) {
        int64_t i1 = i0 + 1024 < n ? i0 + 1024 : n;
        float s = 0.0f;
#pragma omp simd reduction(+ : s)
        for (int64_t i = i0; i < i1; i++) s += exp_approx(x[i] - mx);
        total += s;
    }
    return (double)mx + log(total);
}

void rotq_logsumexp_rows(const float *x, int64_t rows, int64_t n, double *out) {
#pragma omp parallel for schedule(static) if (rows * n > 32768)
    for (int64_t r = 0; r < rows; r++) out[r] = logsumexp_row(x + r * n, n);
}

/* (static: a cloned extern function's resolver would be exported from the shared library) */
ROTQ_ROW_KERNEL
static double exp_shift_sum(float *x, int64_t n, float shift) {
    double total = 0.0;
    for (int64_t i0 = 0; i0 < n; i0 += 1024) {
        int64_t i1 = i0 + 1024 < n ? i0 + 1024 : n;
        float s = 0.0f;
#pragma omp simd reduction(+ : s)
        for (int64_t i = i0; i < i1; i++) {
            x[i] = exp_approx(x[i] - shift);
            s += x[i];
        }
        total += s;
    }
    return total;
}

double rotq_exp_shift_sum(float *x, int64_t n, float shift) { return exp_shift_sum(x, n, shift); }
