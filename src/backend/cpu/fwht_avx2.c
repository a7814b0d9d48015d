/* AVX2+FMA kernels for the Hadamard rotation of one row (see rotq_fwht_plan in rotate.h).
 *
 * The butterflies of a Walsh–Hadamard transform act on one index bit each, so they commute and may
 * run in any order. Forward rows multiply by `pre` in the first pass; inverse rows by `post` in the
 * last, so the sign/scale costs no extra pass. Bits 0-2 are done inside a register (permutes + one
 * FMA each); higher bits three at a time (radix 8) on 8 registers. Segments longer than BLOCK are
 * done in two phases (bits inside a BLOCK while it sits in L1, then the remaining bits) to save
 * cache traffic. Compiled with target attributes; fwht.c only calls it when the CPU has AVX2+FMA.
 */
#include <immintrin.h>
#include <string.h>

#include "backend/backend.h"

#define AVX2 __attribute__((target("avx2,fma")))
#define BLOCK 4096 /* floats: 16 KiB, half of L1d */

/* Bits 0..2 of the index within one 8-float register. s1/s2/s4 are +1 where the bit is clear and
 * -1 where it is set: out = v·s + swap(v) gives v+swap on clear lanes and swap-v on set lanes. */
AVX2 static inline __m256 inreg3(__m256 v, __m256 s1, __m256 s2, __m256 s4) {
    v = _mm256_fmadd_ps(v, s1, _mm256_permute_ps(v, 0xB1));
    v = _mm256_fmadd_ps(v, s2, _mm256_permute_ps(v, 0x4E));
    v = _mm256_fmadd_ps(v, s4, _mm256_permute2f128_ps(v, v, 0x01));
    return v;
}

AVX2 static void inreg_pass(float *x, int64_t len, const float *mul, bool mul_before) {
    const __m256 s1 = _mm256_setr_ps(1, -1, 1, -1, 1, -1, 1, -1);
    const __m256 s2 = _mm256_setr_ps(1, 1, -1, -1, 1, 1, -1, -1);
    const __m256 s4 = _mm256_setr_ps(1, 1, 1, 1, -1, -1, -1, -1);
    if (!mul) {
        for (int64_t j = 0; j < len; j += 8) _mm256_storeu_ps(x + j, inreg3(_mm256_loadu_ps(x + j), s1, s2, s4));
    } else if (mul_before) {
        for (int64_t j = 0; j < len; j += 8) {
            __m256 v = _mm256_mul_ps(_mm256_loadu_ps(x + j), _mm256_loadu_ps(mul + j));
            _mm256_storeu_ps(x + j, inreg3(v, s1, s2, s4));
        }
    } else {
        for (int64_t j = 0; j < len; j += 8) {
            __m256 v = inreg3(_mm256_loadu_ps(x + j), s1, s2, s4);
            _mm256_storeu_ps(x + j, _mm256_mul_ps(v, _mm256_loadu_ps(mul + j)));
        }
    }
}

#define BFLY(a, b) do { __m256 t_ = a; a = _mm256_add_ps(t_, b); b = _mm256_sub_ps(t_, b); } while (0)

AVX2 static void pass_r2(float *x, int64_t len, int64_t h) {
    for (int64_t j0 = 0; j0 < len; j0 += 2 * h)
        for (int64_t j = j0; j < j0 + h; j += 8) {
            __m256 a = _mm256_loadu_ps(x + j), b = _mm256_loadu_ps(x + j + h);
            BFLY(a, b);
            _mm256_storeu_ps(x + j, a);
            _mm256_storeu_ps(x + j + h, b);
        }
}

AVX2 static void pass_r4(float *x, int64_t len, int64_t h) {
    for (int64_t j0 = 0; j0 < len; j0 += 4 * h)
        for (int64_t j = j0; j < j0 + h; j += 8) {
            float *p = x + j;
            __m256 v0 = _mm256_loadu_ps(p), v1 = _mm256_loadu_ps(p + h);
            __m256 v2 = _mm256_loadu_ps(p + 2 * h), v3 = _mm256_loadu_ps(p + 3 * h);
            BFLY(v0, v1); BFLY(v2, v3);
            BFLY(v0, v2); BFLY(v1, v3);
            _mm256_storeu_ps(p, v0);
            _mm256_storeu_ps(p + h, v1);
            _mm256_storeu_ps(p + 2 * h, v2);
            _mm256_storeu_ps(p + 3 * h, v3);
        }
}

AVX2 static void pass_r8(float *x, int64_t len, int64_t h) {
    for (int64_t j0 = 0; j0 < len; j0 += 8 * h)
        for (int64_t j = j0; j < j0 + h; j += 8) {
            float *p = x + j;
            __m256 v0 = _mm256_loadu_ps(p), v1 = _mm256_loadu_ps(p + h);
            __m256 v2 = _mm256_loadu_ps(p + 2 * h), v3 = _mm256_loadu_ps(p + 3 * h);
            __m256 v4 = _mm256_loadu_ps(p + 4 * h), v5 = _mm256_loadu_ps(p + 5 * h);
            __m256 v6 = _mm256_loadu_ps(p + 6 * h), v7 = _mm256_loadu_ps(p + 7 * h);
            BFLY(v0, v1); BFLY(v2, v3); BFLY(v4, v5); BFLY(v6, v7);
            BFLY(v0, v2); BFLY(v1, v3); BFLY(v4, v6); BFLY(v5, v7);
            BFLY(v0, v4); BFLY(v1, v5); BFLY(v2, v6); BFLY(v3, v7);
            _mm256_storeu_ps(p, v0);
            _mm256_storeu_ps(p + h, v1);
            _mm256_storeu_ps(p + 2 * h, v2);
            _mm256_storeu_ps(p + 3 * h, v3);
            _mm256_storeu_ps(p + 4 * h, v4);
            _mm256_storeu_ps(p + 5 * h, v5);
            _mm256_storeu_ps(p + 6 * h, v6);
            _mm256_storeu_ps(p + 7 * h, v7);
        }
}

/* 64 floats in eight registers: bits 0-2 inside each register, bits 3-5 across them, one pass.
 * Forward multiplies by `mul` first; inverse runs the bits in the other order and multiplies last. */
AVX2 static void chunk64(float *x, const float *mul, bool inverse) {
    const __m256 s1 = _mm256_setr_ps(1, -1, 1, -1, 1, -1, 1, -1);
    const __m256 s2 = _mm256_setr_ps(1, 1, -1, -1, 1, 1, -1, -1);
    const __m256 s4 = _mm256_setr_ps(1, 1, 1, 1, -1, -1, -1, -1);
    __m256 v0 = _mm256_loadu_ps(x), v1 = _mm256_loadu_ps(x + 8), v2 = _mm256_loadu_ps(x + 16), v3 = _mm256_loadu_ps(x + 24);
    __m256 v4 = _mm256_loadu_ps(x + 32), v5 = _mm256_loadu_ps(x + 40), v6 = _mm256_loadu_ps(x + 48), v7 = _mm256_loadu_ps(x + 56);
    if (!inverse) {
        if (mul) {
            v0 = _mm256_mul_ps(v0, _mm256_loadu_ps(mul)); v1 = _mm256_mul_ps(v1, _mm256_loadu_ps(mul + 8));
            v2 = _mm256_mul_ps(v2, _mm256_loadu_ps(mul + 16)); v3 = _mm256_mul_ps(v3, _mm256_loadu_ps(mul + 24));
            v4 = _mm256_mul_ps(v4, _mm256_loadu_ps(mul + 32)); v5 = _mm256_mul_ps(v5, _mm256_loadu_ps(mul + 40));
            v6 = _mm256_mul_ps(v6, _mm256_loadu_ps(mul + 48)); v7 = _mm256_mul_ps(v7, _mm256_loadu_ps(mul + 56));
        }
        v0 = inreg3(v0, s1, s2, s4); v1 = inreg3(v1, s1, s2, s4); v2 = inreg3(v2, s1, s2, s4); v3 = inreg3(v3, s1, s2, s4);
        v4 = inreg3(v4, s1, s2, s4); v5 = inreg3(v5, s1, s2, s4); v6 = inreg3(v6, s1, s2, s4); v7 = inreg3(v7, s1, s2, s4);
    }
    BFLY(v0, v1); BFLY(v2, v3); BFLY(v4, v5); BFLY(v6, v7);
    BFLY(v0, v2); BFLY(v1, v3); BFLY(v4, v6); BFLY(v5, v7);
    BFLY(v0, v4); BFLY(v1, v5); BFLY(v2, v6); BFLY(v3, v7);
    if (inverse) {
        v0 = inreg3(v0, s1, s2, s4); v1 = inreg3(v1, s1, s2, s4); v2 = inreg3(v2, s1, s2, s4); v3 = inreg3(v3, s1, s2, s4);
        v4 = inreg3(v4, s1, s2, s4); v5 = inreg3(v5, s1, s2, s4); v6 = inreg3(v6, s1, s2, s4); v7 = inreg3(v7, s1, s2, s4);
        if (mul) {
            v0 = _mm256_mul_ps(v0, _mm256_loadu_ps(mul)); v1 = _mm256_mul_ps(v1, _mm256_loadu_ps(mul + 8));
            v2 = _mm256_mul_ps(v2, _mm256_loadu_ps(mul + 16)); v3 = _mm256_mul_ps(v3, _mm256_loadu_ps(mul + 24));
            v4 = _mm256_mul_ps(v4, _mm256_loadu_ps(mul + 32)); v5 = _mm256_mul_ps(v5, _mm256_loadu_ps(mul + 40));
            v6 = _mm256_mul_ps(v6, _mm256_loadu_ps(mul + 48)); v7 = _mm256_mul_ps(v7, _mm256_loadu_ps(mul + 56));
        }
    }
    _mm256_storeu_ps(x, v0); _mm256_storeu_ps(x + 8, v1); _mm256_storeu_ps(x + 16, v2); _mm256_storeu_ps(x + 24, v3);
    _mm256_storeu_ps(x + 32, v4); _mm256_storeu_ps(x + 40, v5); _mm256_storeu_ps(x + 48, v6); _mm256_storeu_ps(x + 56, v7);
}

/* Butterflies for strides h_lo, 2·h_lo, ... < h_hi (all ≥ 8) over x[0, len). */
AVX2 static void strides(float *x, int64_t len, int64_t h_lo, int64_t h_hi) {
    int64_t h = h_lo;
    while (h < h_hi) {
        if (h * 8 <= h_hi) { pass_r8(x, len, h); h *= 8; }
        else if (h * 4 <= h_hi) { pass_r4(x, len, h); h *= 4; }
        else { pass_r2(x, len, h); h *= 2; }
    }
}

/* One segment of length M ≥ 8: unnormalized FWHT with optional multipliers before or after. */
AVX2 static void segment(float *x, int64_t M, const float *pre, const float *post) {
    int64_t B = M < BLOCK ? M : BLOCK;
    if (M >= 64) {
        if (!post) {
            for (int64_t b = 0; b < M; b += B) {
                for (int64_t c = b; c < b + B; c += 64) chunk64(x + c, pre ? pre + c : NULL, false);
                strides(x + b, B, 64, B);
            }
            if (M > B) strides(x, M, B, M);
        } else {
            if (M > B) strides(x, M, B, M);
            for (int64_t b = 0; b < M; b += B) {
                strides(x + b, B, 64, B);
                for (int64_t c = b; c < b + B; c += 64) chunk64(x + c, post + c, true);
            }
        }
        return;
    }
    if (!post) {
        for (int64_t b = 0; b < M; b += B) {
            inreg_pass(x + b, B, pre ? pre + b : NULL, true);
            strides(x + b, B, 8, B);
        }
        if (M > B) strides(x, M, B, M);
    } else {
        if (M > B) strides(x, M, B, M);
        for (int64_t b = 0; b < M; b += B) {
            strides(x + b, B, 8, B);
            inreg_pass(x + b, B, post + b, false);
        }
    }
}

/* tmp[c-segment] = Σ_a G[c][a]·x[a-segment] (∘ post), two output segments × 32 columns at a time. */
AVX2 static void kstep(const rotq_fwht_plan *p, const float *x, float *tmp) {
    int64_t K = p->K, M = p->M;
    const float *G = p->kstep;
    if (M >= 32) {
        for (int64_t d = 0; d < M; d += 32)
            for (int64_t c = 0; c < K; c += 2) {
                __m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
                __m256 b0 = a0, b1 = a0, b2 = a0, b3 = a0;
                const float *g0 = G + c * K, *g1 = g0 + K;
                const float *xs = x + d;
                for (int64_t a = 0; a < K; a++, xs += M) {
                    __m256 x0 = _mm256_loadu_ps(xs), x1 = _mm256_loadu_ps(xs + 8);
                    __m256 x2 = _mm256_loadu_ps(xs + 16), x3 = _mm256_loadu_ps(xs + 24);
                    __m256 w0 = _mm256_broadcast_ss(g0 + a), w1 = _mm256_broadcast_ss(g1 + a);
                    a0 = _mm256_fmadd_ps(w0, x0, a0); a1 = _mm256_fmadd_ps(w0, x1, a1);
                    a2 = _mm256_fmadd_ps(w0, x2, a2); a3 = _mm256_fmadd_ps(w0, x3, a3);
                    b0 = _mm256_fmadd_ps(w1, x0, b0); b1 = _mm256_fmadd_ps(w1, x1, b1);
                    b2 = _mm256_fmadd_ps(w1, x2, b2); b3 = _mm256_fmadd_ps(w1, x3, b3);
                }
                float *o0 = tmp + c * M + d, *o1 = o0 + M;
                if (p->post) {
                    const float *q0 = p->post + c * M + d, *q1 = q0 + M;
                    a0 = _mm256_mul_ps(a0, _mm256_loadu_ps(q0)); a1 = _mm256_mul_ps(a1, _mm256_loadu_ps(q0 + 8));
                    a2 = _mm256_mul_ps(a2, _mm256_loadu_ps(q0 + 16)); a3 = _mm256_mul_ps(a3, _mm256_loadu_ps(q0 + 24));
                    b0 = _mm256_mul_ps(b0, _mm256_loadu_ps(q1)); b1 = _mm256_mul_ps(b1, _mm256_loadu_ps(q1 + 8));
                    b2 = _mm256_mul_ps(b2, _mm256_loadu_ps(q1 + 16)); b3 = _mm256_mul_ps(b3, _mm256_loadu_ps(q1 + 24));
                }
                _mm256_storeu_ps(o0, a0); _mm256_storeu_ps(o0 + 8, a1);
                _mm256_storeu_ps(o0 + 16, a2); _mm256_storeu_ps(o0 + 24, a3);
                _mm256_storeu_ps(o1, b0); _mm256_storeu_ps(o1 + 8, b1);
                _mm256_storeu_ps(o1 + 16, b2); _mm256_storeu_ps(o1 + 24, b3);
            }
    } else if (M == 16) {
        /* four output segments × both column vectors: 8 chains, 6 loads per 8 FMAs (K % 4 == 0) */
        for (int64_t c = 0; c < K; c += 4) {
            __m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0, b0 = a0, b1 = a0, b2 = a0, b3 = a0;
            const float *g0 = G + c * K, *g1 = g0 + K, *g2 = g1 + K, *g3 = g2 + K;
            const float *xs = x;
            for (int64_t a = 0; a < K; a++, xs += 16) {
                __m256 x0 = _mm256_loadu_ps(xs), x1 = _mm256_loadu_ps(xs + 8);
                __m256 w0 = _mm256_broadcast_ss(g0 + a), w1 = _mm256_broadcast_ss(g1 + a);
                __m256 w2 = _mm256_broadcast_ss(g2 + a), w3 = _mm256_broadcast_ss(g3 + a);
                a0 = _mm256_fmadd_ps(w0, x0, a0); b0 = _mm256_fmadd_ps(w0, x1, b0);
                a1 = _mm256_fmadd_ps(w1, x0, a1); b1 = _mm256_fmadd_ps(w1, x1, b1);
                a2 = _mm256_fmadd_ps(w2, x0, a2); b2 = _mm256_fmadd_ps(w2, x1, b2);
                a3 = _mm256_fmadd_ps(w3, x0, a3); b3 = _mm256_fmadd_ps(w3, x1, b3);
            }
            __m256 lo[4] = {a0, a1, a2, a3}, hi[4] = {b0, b1, b2, b3};
            for (int k = 0; k < 4; k++) {
                float *o = tmp + (c + k) * 16;
                if (p->post) {
                    lo[k] = _mm256_mul_ps(lo[k], _mm256_loadu_ps(p->post + (c + k) * 16));
                    hi[k] = _mm256_mul_ps(hi[k], _mm256_loadu_ps(p->post + (c + k) * 16 + 8));
                }
                _mm256_storeu_ps(o, lo[k]);
                _mm256_storeu_ps(o + 8, hi[k]);
            }
        }
    } else {
        /* M = 8: four output segments per pass keep four independent FMA chains (K % 4 == 0) */
        for (int64_t d = 0; d < M; d += 8)
            for (int64_t c = 0; c < K; c += 4) {
                __m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
                const float *g0 = G + c * K, *g1 = g0 + K, *g2 = g1 + K, *g3 = g2 + K;
                const float *xs = x + d;
                for (int64_t a = 0; a < K; a++, xs += M) {
                    __m256 xv = _mm256_loadu_ps(xs);
                    a0 = _mm256_fmadd_ps(_mm256_broadcast_ss(g0 + a), xv, a0);
                    a1 = _mm256_fmadd_ps(_mm256_broadcast_ss(g1 + a), xv, a1);
                    a2 = _mm256_fmadd_ps(_mm256_broadcast_ss(g2 + a), xv, a2);
                    a3 = _mm256_fmadd_ps(_mm256_broadcast_ss(g3 + a), xv, a3);
                }
                __m256 acc[4] = {a0, a1, a2, a3};
                for (int k = 0; k < 4; k++) {
                    if (p->post) acc[k] = _mm256_mul_ps(acc[k], _mm256_loadu_ps(p->post + (c + k) * M + d));
                    _mm256_storeu_ps(tmp + (c + k) * M + d, acc[k]);
                }
            }
    }
}

AVX2 static void row(const rotq_fwht_plan *p, float *x, float *tmp) {
    int64_t K = p->K, M = p->M;
    if (K == 1) {
        segment(x, M, p->pre, p->post);
        return;
    }
    for (int64_t a = 0; a < K; a++) segment(x + a * M, M, p->pre ? p->pre + a * M : NULL, NULL);
    kstep(p, x, tmp);
    memcpy(x, tmp, sizeof(float) * (size_t)p->n);
}

AVX2 void rotq_fwht_rows_avx2(const rotq_fwht_plan *p, float *x, int64_t rows, float *tmp) {
    if (p->K == 1 && p->M == 64) { /* whole row in registers: no per-row call overhead */
        bool inverse = p->post != NULL;
        const float *mul = inverse ? p->post : p->pre;
        for (int64_t r = 0; r < rows; r++) chunk64(x + r * 64, mul, inverse);
        return;
    }
    for (int64_t r = 0; r < rows; r++) row(p, x + r * p->n, tmp);
}
