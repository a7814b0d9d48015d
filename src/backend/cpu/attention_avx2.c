/* Fused causal GQA attention (flash-attention style) for AVX2+FMA; layers.c picks it at run time.
 *
 * Rows are (query t, head j of a KV group) pairs, numbered t·group + j inside each group, so the
 * heads that share K and V also share every K/V tile. A work item is a run of rows of one group;
 * it walks the key tiles (KT keys) from 0 to its last query's position, keeping per row a running
 * maximum m and sum l of exp(s - m) (online softmax), and accumulates the output straight into
 * `out`, rescaled whenever m grows. No scores matrix exists beyond one MR × KT tile.
 *
 * Each key tile is transposed once per work item into a d-major [hd][KT] buffer so that Q·Kᵀ
 * vectorizes over keys: a micro-kernel of MR rows × 16 keys broadcasts q and loads K rows of the
 * tile. P·V is the same shape of kernel (MR rows × 16 dims, p broadcast, V rows loaded once for
 * the MR rows). Tiles above the causal diagonal are never touched; the diagonal tile only runs
 * as far as the block's last row sees and masks per row in the softmax step.
 */
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC optimize("no-trapping-math") /* as in layers.c: lets the exp loops vectorize */
#endif

#include <immintrin.h>
#include <math.h>
#include <omp.h>
#include <stdint.h>
#include <string.h>

#include "backend/backend.h"
#include "backend/cpu/caps.h"
#include "backend/cpu/exp_approx.h"

#define AVX2 __attribute__((target("avx2,fma")))
#define KT 64                           /* keys per tile: the packed Kᵀ tile is ≤ 64 KiB at hd 256 */
#define MR 6                            /* rows per micro-kernel: 12 accumulators + 2 loads + 1 broadcast */
#define ROWS_MAX 96                     /* rows per work item at most (per-row m, l on the stack) */
#define HD_MAX ROTQ_ATTENTION_FUSED_HD_MAX

typedef struct {
    float *out;
    const float *q, *k, *v;
    int64_t T, pos0, group, hd, q_stride, kv_stride;
    int64_t window;                     /* > 0: a query at p sees keys p - window + 1 .. p */
    float scale;
} attn_shape;

/* kt[d·KT + j] = K[k0 + j][d] for j < kn, zero up to the next multiple of 16 (the micro-kernel
 * reads whole 16-key columns; the zeros give finite scores that the softmax step masks). */
AVX2 static void pack_k_tile(float *kt, const float *kg, int64_t kv_stride, int64_t kn, int64_t hd) {
    int64_t j0 = 0;
    for (; j0 + 8 <= kn; j0 += 8)
        for (int64_t d0 = 0; d0 < hd; d0 += 8) {
            const float *src = kg + j0 * kv_stride + d0;
            __m256 r0 = _mm256_loadu_ps(src), r1 = _mm256_loadu_ps(src + kv_stride);
            __m256 r2 = _mm256_loadu_ps(src + 2 * kv_stride), r3 = _mm256_loadu_ps(src + 3 * kv_stride);
            __m256 r4 = _mm256_loadu_ps(src + 4 * kv_stride), r5 = _mm256_loadu_ps(src + 5 * kv_stride);
            __m256 r6 = _mm256_loadu_ps(src + 6 * kv_stride), r7 = _mm256_loadu_ps(src + 7 * kv_stride);
            __m256 t0 = _mm256_unpacklo_ps(r0, r1), t1 = _mm256_unpackhi_ps(r0, r1);
            __m256 t2 = _mm256_unpacklo_ps(r2, r3), t3 = _mm256_unpackhi_ps(r2, r3);
            __m256 t4 = _mm256_unpacklo_ps(r4, r5), t5 = _mm256_unpackhi_ps(r4, r5);
            __m256 t6 = _mm256_unpacklo_ps(r6, r7), t7 = _mm256_unpackhi_ps(r6, r7);
            __m256 u0 = _mm256_shuffle_ps(t0, t2, 0x44), u1 = _mm256_shuffle_ps(t0, t2, 0xEE);
            __m256 u2 = _mm256_shuffle_ps(t1, t3, 0x44), u3 = _mm256_shuffle_ps(t1, t3, 0xEE);
            __m256 u4 = _mm256_shuffle_ps(t4, t6, 0x44), u5 = _mm256_shuffle_ps(t4, t6, 0xEE);
            __m256 u6 = _mm256_shuffle_ps(t5, t7, 0x44), u7 = _mm256_shuffle_ps(t5, t7, 0xEE);
            float *dst = kt + d0 * KT + j0;
            _mm256_store_ps(dst + 0 * KT, _mm256_permute2f128_ps(u0, u4, 0x20));
            _mm256_store_ps(dst + 1 * KT, _mm256_permute2f128_ps(u1, u5, 0x20));
            _mm256_store_ps(dst + 2 * KT, _mm256_permute2f128_ps(u2, u6, 0x20));
            _mm256_store_ps(dst + 3 * KT, _mm256_permute2f128_ps(u3, u7, 0x20));
            _mm256_store_ps(dst + 4 * KT, _mm256_permute2f128_ps(u0, u4, 0x31));
            _mm256_store_ps(dst + 5 * KT, _mm256_permute2f128_ps(u1, u5, 0x31));
            _mm256_store_ps(dst + 6 * KT, _mm256_permute2f128_ps(u2, u6, 0x31));
            _mm256_store_ps(dst + 7 * KT, _mm256_permute2f128_ps(u3, u7, 0x31));
        }
    int64_t jend = (kn + 15) & ~(int64_t)15;
    for (int64_t d = 0; d < hd; d++)
        for (int64_t j = j0; j < jend; j++) kt[d * KT + j] = j < kn ? kg[j * kv_stride + d] : 0.0f;
}

/* s[r][c..c+16) = scale · q_r · Kᵀ tile columns, for ncols (a multiple of 16) columns. */
AVX2 static void qk_block(float *s, const float *const qr[MR], const float *kt, int64_t hd, int64_t ncols,
                          float scale) {
    const float *q0 = qr[0], *q1 = qr[1], *q2 = qr[2], *q3 = qr[3], *q4 = qr[4], *q5 = qr[5];
    const __m256 vs = _mm256_set1_ps(scale);
    for (int64_t c = 0; c < ncols; c += 16) {
        __m256 a00 = _mm256_setzero_ps(), a01 = a00, a10 = a00, a11 = a00, a20 = a00, a21 = a00;
        __m256 a30 = a00, a31 = a00, a40 = a00, a41 = a00, a50 = a00, a51 = a00;
        const float *b = kt + c;
        for (int64_t d = 0; d < hd; d++, b += KT) {
            __m256 b0 = _mm256_load_ps(b), b1 = _mm256_load_ps(b + 8), x;
            x = _mm256_broadcast_ss(q0 + d); a00 = _mm256_fmadd_ps(x, b0, a00); a01 = _mm256_fmadd_ps(x, b1, a01);
            x = _mm256_broadcast_ss(q1 + d); a10 = _mm256_fmadd_ps(x, b0, a10); a11 = _mm256_fmadd_ps(x, b1, a11);
            x = _mm256_broadcast_ss(q2 + d); a20 = _mm256_fmadd_ps(x, b0, a20); a21 = _mm256_fmadd_ps(x, b1, a21);
            x = _mm256_broadcast_ss(q3 + d); a30 = _mm256_fmadd_ps(x, b0, a30); a31 = _mm256_fmadd_ps(x, b1, a31);
            x = _mm256_broadcast_ss(q4 + d); a40 = _mm256_fmadd_ps(x, b0, a40); a41 = _mm256_fmadd_ps(x, b1, a41);
            x = _mm256_broadcast_ss(q5 + d); a50 = _mm256_fmadd_ps(x, b0, a50); a51 = _mm256_fmadd_ps(x, b1, a51);
        }
        float *o = s + c;
        _mm256_store_ps(o + 0 * KT, _mm256_mul_ps(a00, vs)); _mm256_store_ps(o + 0 * KT + 8, _mm256_mul_ps(a01, vs));
        _mm256_store_ps(o + 1 * KT, _mm256_mul_ps(a10, vs)); _mm256_store_ps(o + 1 * KT + 8, _mm256_mul_ps(a11, vs));
        _mm256_store_ps(o + 2 * KT, _mm256_mul_ps(a20, vs)); _mm256_store_ps(o + 2 * KT + 8, _mm256_mul_ps(a21, vs));
        _mm256_store_ps(o + 3 * KT, _mm256_mul_ps(a30, vs)); _mm256_store_ps(o + 3 * KT + 8, _mm256_mul_ps(a31, vs));
        _mm256_store_ps(o + 4 * KT, _mm256_mul_ps(a40, vs)); _mm256_store_ps(o + 4 * KT + 8, _mm256_mul_ps(a41, vs));
        _mm256_store_ps(o + 5 * KT, _mm256_mul_ps(a50, vs)); _mm256_store_ps(o + 5 * KT + 8, _mm256_mul_ps(a51, vs));
    }
}

/* o_r[0..hd) += Σ_j p[r][j] · V[j] over kn keys; 16 dims at a time, then 8 for hd ≡ 8 (mod 16). */
AVX2 static void pv_block(float *const orow[MR], const float *p, const float *vg, int64_t kv_stride, int64_t kn,
                          int64_t hd) {
    float *o0 = orow[0], *o1 = orow[1], *o2 = orow[2], *o3 = orow[3], *o4 = orow[4], *o5 = orow[5];
    int64_t d0 = 0;
    for (; d0 + 16 <= hd; d0 += 16) {
        __m256 a00 = _mm256_loadu_ps(o0 + d0), a01 = _mm256_loadu_ps(o0 + d0 + 8);
        __m256 a10 = _mm256_loadu_ps(o1 + d0), a11 = _mm256_loadu_ps(o1 + d0 + 8);
        __m256 a20 = _mm256_loadu_ps(o2 + d0), a21 = _mm256_loadu_ps(o2 + d0 + 8);
        __m256 a30 = _mm256_loadu_ps(o3 + d0), a31 = _mm256_loadu_ps(o3 + d0 + 8);
        __m256 a40 = _mm256_loadu_ps(o4 + d0), a41 = _mm256_loadu_ps(o4 + d0 + 8);
        __m256 a50 = _mm256_loadu_ps(o5 + d0), a51 = _mm256_loadu_ps(o5 + d0 + 8);
        const float *b = vg + d0;
        for (int64_t j = 0; j < kn; j++, b += kv_stride) {
            __m256 b0 = _mm256_loadu_ps(b), b1 = _mm256_loadu_ps(b + 8), x;
            x = _mm256_broadcast_ss(p + 0 * KT + j); a00 = _mm256_fmadd_ps(x, b0, a00); a01 = _mm256_fmadd_ps(x, b1, a01);
            x = _mm256_broadcast_ss(p + 1 * KT + j); a10 = _mm256_fmadd_ps(x, b0, a10); a11 = _mm256_fmadd_ps(x, b1, a11);
            x = _mm256_broadcast_ss(p + 2 * KT + j); a20 = _mm256_fmadd_ps(x, b0, a20); a21 = _mm256_fmadd_ps(x, b1, a21);
            x = _mm256_broadcast_ss(p + 3 * KT + j); a30 = _mm256_fmadd_ps(x, b0, a30); a31 = _mm256_fmadd_ps(x, b1, a31);
            x = _mm256_broadcast_ss(p + 4 * KT + j); a40 = _mm256_fmadd_ps(x, b0, a40); a41 = _mm256_fmadd_ps(x, b1, a41);
            x = _mm256_broadcast_ss(p + 5 * KT + j); a50 = _mm256_fmadd_ps(x, b0, a50); a51 = _mm256_fmadd_ps(x, b1, a51);
        }
        _mm256_storeu_ps(o0 + d0, a00); _mm256_storeu_ps(o0 + d0 + 8, a01);
        _mm256_storeu_ps(o1 + d0, a10); _mm256_storeu_ps(o1 + d0 + 8, a11);
        _mm256_storeu_ps(o2 + d0, a20); _mm256_storeu_ps(o2 + d0 + 8, a21);
        _mm256_storeu_ps(o3 + d0, a30); _mm256_storeu_ps(o3 + d0 + 8, a31);
        _mm256_storeu_ps(o4 + d0, a40); _mm256_storeu_ps(o4 + d0 + 8, a41);
        _mm256_storeu_ps(o5 + d0, a50); _mm256_storeu_ps(o5 + d0 + 8, a51);
    }
    if (d0 < hd) {
        __m256 a0 = _mm256_loadu_ps(o0 + d0), a1 = _mm256_loadu_ps(o1 + d0), a2 = _mm256_loadu_ps(o2 + d0);
        __m256 a3 = _mm256_loadu_ps(o3 + d0), a4 = _mm256_loadu_ps(o4 + d0), a5 = _mm256_loadu_ps(o5 + d0);
        const float *b = vg + d0;
        for (int64_t j = 0; j < kn; j++, b += kv_stride) {
            __m256 b0 = _mm256_loadu_ps(b);
            a0 = _mm256_fmadd_ps(_mm256_broadcast_ss(p + 0 * KT + j), b0, a0);
            a1 = _mm256_fmadd_ps(_mm256_broadcast_ss(p + 1 * KT + j), b0, a1);
            a2 = _mm256_fmadd_ps(_mm256_broadcast_ss(p + 2 * KT + j), b0, a2);
            a3 = _mm256_fmadd_ps(_mm256_broadcast_ss(p + 3 * KT + j), b0, a3);
            a4 = _mm256_fmadd_ps(_mm256_broadcast_ss(p + 4 * KT + j), b0, a4);
            a5 = _mm256_fmadd_ps(_mm256_broadcast_ss(p + 5 * KT + j), b0, a5);
        }
        _mm256_storeu_ps(o0 + d0, a0); _mm256_storeu_ps(o1 + d0, a1); _mm256_storeu_ps(o2 + d0, a2);
        _mm256_storeu_ps(o3 + d0, a3); _mm256_storeu_ps(o4 + d0, a4); _mm256_storeu_ps(o5 + d0, a5);
    }
}

/* Online softmax step of one row over its valid scores [st, nv) of the tile (st < nv): s becomes
 * exp(s - m_new) there and 0 elsewhere in [0, ncols), and the row's output is rescaled if m grew. */
AVX2 static void softmax_update(float *s, int64_t st, int64_t nv, int64_t ncols, float *m, float *l, float *o, int64_t hd) {
    float mx = *m;
#pragma omp simd reduction(max : mx)
    for (int64_t i = st; i < nv; i++) mx = s[i] > mx ? s[i] : mx;
    float sum = 0.0f;
#pragma omp simd reduction(+ : sum)
    for (int64_t i = st; i < nv; i++) {
        float e = exp_approx(s[i] - mx);
        s[i] = e;
        sum += e;
    }
    for (int64_t i = 0; i < st; i++) s[i] = 0.0f;
    for (int64_t i = nv; i < ncols; i++) s[i] = 0.0f;
    /* exp_approx(0) is exactly 1, so an unchanged maximum costs no rescaling pass */
    float alpha = exp_approx(*m - mx);
    if (alpha != 1.0f) {
        const __m256 va = _mm256_set1_ps(alpha);
        for (int64_t d = 0; d < hd; d += 8) _mm256_storeu_ps(o + d, _mm256_mul_ps(_mm256_loadu_ps(o + d), va));
    }
    *l = *l * alpha + sum;
    *m = mx;
}

/* Rows [r0, r1) of KV group g (r1 - r0 ≤ ROWS_MAX). */
AVX2 static void attend_rows(const attn_shape *a, int64_t g, int64_t r0, int64_t r1) {
    _Alignas(32) float kt[HD_MAX * KT];
    _Alignas(32) float s[MR * KT];
    _Alignas(32) float dummy_out[HD_MAX]; /* output of the padding rows of a short last block */
    float m[ROWS_MAX], l[ROWS_MAX];
    const int64_t G = a->group, hd = a->hd, pos0 = a->pos0;
    float *orow_of[ROWS_MAX];
    const float *qrow_of[ROWS_MAX];
    for (int64_t r = r0; r < r1; r++) {
        int64_t t = r / G, h = g * G + r % G;
        orow_of[r - r0] = a->out + t * a->q_stride + h * hd;
        qrow_of[r - r0] = a->q + t * a->q_stride + h * hd;
        memset(orow_of[r - r0], 0, (size_t)hd * sizeof(float));
        m[r - r0] = -INFINITY;
        l[r - r0] = 0.0f;
    }
    const int64_t n_keys = pos0 + (r1 - 1) / G + 1; /* keys the item's last query sees */
    const float *kg = a->k + g * hd, *vg = a->v + g * hd;
    /* first key row r sees (sliding window), 0 without one */
#define LO(r) (a->window > 0 && pos0 + (r) / G + 1 > a->window ? pos0 + (r) / G + 1 - a->window : 0)
    for (int64_t k0 = LO(r0) / KT * KT; k0 < n_keys; k0 += KT) {
        int64_t kn = n_keys - k0 < KT ? n_keys - k0 : KT;
        pack_k_tile(kt, kg + k0 * a->kv_stride, a->kv_stride, kn, hd);
        for (int64_t rb = r0; rb < r1; rb += MR) {
            int64_t re = rb + MR < r1 ? rb + MR : r1;
            int64_t seen = pos0 + (re - 1) / G + 1 - k0; /* keys of the tile the block's last row sees */
            if (seen <= 0) continue;                      /* the tile lies above the diagonal */
            if (LO(rb) >= k0 + kn) continue;              /* ... or entirely before the window */
            int64_t kmax = seen < kn ? seen : kn, ncols = (kmax + 15) & ~(int64_t)15;
            const float *qr[MR];
            float *orow[MR];
            for (int64_t i = 0; i < MR; i++) {
                bool real = rb + i < re;
                qr[i] = qrow_of[real ? rb + i - r0 : 0];
                orow[i] = real ? orow_of[rb + i - r0] : dummy_out;
            }
            qk_block(s, qr, kt, hd, ncols, a->scale);
            for (int64_t i = 0; i < MR; i++) {
                int64_t nv = rb + i < re ? pos0 + (rb + i) / G + 1 - k0 : 0, st = 0;
                nv = nv < kmax ? nv : kmax;
                if (rb + i < re && LO(rb + i) > k0) st = LO(rb + i) - k0;
                if (nv <= st) memset(s + i * KT, 0, (size_t)ncols * sizeof(float));
                else softmax_update(s + i * KT, st, nv, ncols, &m[rb + i - r0], &l[rb + i - r0], orow[i], hd);
            }
            pv_block(orow, s, vg + k0 * a->kv_stride, a->kv_stride, kmax, hd);
        }
    }
#undef LO
    for (int64_t r = 0; r < r1 - r0; r++) {
        const __m256 inv = _mm256_set1_ps(1.0f / l[r]);
        for (int64_t d = 0; d < hd; d += 8)
            _mm256_storeu_ps(orow_of[r] + d, _mm256_mul_ps(_mm256_loadu_ps(orow_of[r] + d), inv));
    }
}

bool rotq_attention_fused_supported(int64_t head_dim) {
    return rotq_cpu_caps_get()->avx2_fma && head_dim > 0 && head_dim % 8 == 0 && head_dim <= HD_MAX;
}

void rotq_attention_fused(float *out, const float *q, const float *k, const float *v, int64_t T, int64_t pos0,
                          int64_t n_heads, int64_t n_kv, int64_t head_dim, float scale, int64_t window) {
    const attn_shape a = {.out = out, .q = q, .k = k, .v = v, .T = T, .pos0 = pos0, .group = n_heads / n_kv,
                          .hd = head_dim, .q_stride = n_heads * head_dim, .kv_stride = n_kv * head_dim,
                          .window = window, .scale = scale};
    const int64_t rows = T * a.group; /* rows per KV group */
    /* Rows per item: enough to amortize packing each key tile (≈ 96·64 output floats in L2),
     * fewer when that leaves too few items to spread over the threads. */
    int64_t per = 8192 / (head_dim * MR) * MR;
    per = per < MR ? MR : per > ROWS_MAX ? ROWS_MAX : per;
    int64_t threads = omp_get_max_threads();
    while (per > MR && n_kv * ((rows + per - 1) / per) < 8 * threads) per = (per / 2 + MR - 1) / MR * MR;
    const int64_t per_group = (rows + per - 1) / per, items = n_kv * per_group;
    /* Later rows see more keys: hand out the heaviest items first, one at a time. */
    double work = (double)rows * (double)n_kv * (double)(pos0 + T) * (double)head_dim;
#pragma omp parallel for schedule(dynamic, 1) if (items > 1 && work > 1e5)
    for (int64_t it = 0; it < items; it++) {
        int64_t i = per_group - 1 - it / n_kv, g = it % n_kv;
        int64_t r0 = i * per, r1 = r0 + per < rows ? r0 + per : rows;
        attend_rows(&a, g, r0, r1);
    }
}
