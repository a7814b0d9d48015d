/* The backend seam: one narrow table of the operations a forward pass (and its transforms) is made
 * of. The runner computes through a backend's table and never calls a kernel directly, so a new
 * backend (CUDA next) plugs in here and is tested op by op against the CPU one, which is the
 * reference (tests/test_backend.c).
 *
 * Memory: ops take pointers the backend can read and write — host memory for the CPU backend;
 * a device backend allocates its buffers with its own alloc and moves data with upload/download.
 * Shapes in comments are row-major, outermost first; T is the number of tokens in a call.
 *
 * The CPU backend (cpu/): BLAS for the products, OpenMP over rows for the element-wise work
 * (never around a BLAS call), AVX2 kernels picked once from what the CPU can run (cpu/caps.h).
 */
#ifndef ROTQ_BACKEND_BACKEND_H
#define ROTQ_BACKEND_BACKEND_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "backend/igemm.h"
#include "core/model.h"

/* One row of the Hadamard rotation for the kernels: x ← (x ∘ pre)·(H_K-step ⊗ H_M) ∘ post, where
 * the K-step multiplies the K segments of length M by kstep (kstep[c·K+a] weighs segment a into
 * output segment c; NULL when K = 1). pre/post: n multipliers or NULL. */
typedef struct rotq_fwht_plan {
    int64_t n, K, M;
    int32_t m;
    const float *kstep;
    const float *pre, *post;
} rotq_fwht_plan;

/* The attention window that is no window: every query sees all pos0 + T keys, before and after it
 * (a vision tower's bidirectional attention over an image's patches). */
#define ROTQ_ATTN_FULL (-1)

typedef struct rotq_backend {
    const char *name;
    /* memory the ops work on */
    void *(*alloc)(size_t bytes);
    void (*release)(void *p);
    rotq_status (*upload)(void *dst, const void *host_src, size_t bytes);
    rotq_status (*download)(void *host_dst, const void *src, size_t bytes);

    /* out [T, n_out] = (or += when accumulate) x [T, n_in] · w [n_out, n_in]ᵀ + b (b may be NULL) */
    void (*linear)(float *out, const float *x, const float *w, const float *b, int64_t T, int64_t n_in, int64_t n_out,
                   bool accumulate);
    /* the integer product of activation codes and packed weight codes (backend/igemm.h) */
    void (*int_linear)(float *y, const uint8_t *u, const float *s, const int32_t *z, int64_t T, int32_t u_max,
                       const rotq_igemm_weights *w, const float *b, bool accumulate);
    /* out [T, d] = x / sqrt(mean(x²) + eps) * (w + offset) */
    void (*rmsnorm)(float *out, const float *x, const float *w, float offset, float eps, int64_t T, int64_t d);
    /* out [T, d] = (x - mean) / sqrt(var + eps) * (w + offset) + b */
    void (*layernorm)(float *out, const float *x, const float *w, const float *b, float offset, float eps, int64_t T,
                      int64_t d);
    /* out [T, d] += b */
    void (*add_rows)(float *out, const float *b, int64_t T, int64_t d);
    /* rotate-half RoPE in place on x [T, n_heads, head_dim] (first 2·half dims of each head) */
    void (*rope)(float *x, const float *cos_t, const float *sin_t, int64_t T, int64_t n_heads, int64_t head_dim,
                 int64_t half);
    /* causal GQA attention: q [T, nh, hd] at positions pos0.., k/v [pos0+T, nkv, hd]; out [T, nh, hd];
     * window > 0: a query at position p sees only keys p - window + 1 .. p (sliding window);
     * ROTQ_ATTN_FULL: every query sees all pos0 + T keys (no causal mask).
     * scores/work: scratch (see rotq_attention_forward_ws) */
    void (*attention)(float *out, const float *q, const float *k, const float *v, float *scores, float *work, int64_t T,
                      int64_t pos0, int64_t n_heads, int64_t n_kv, int64_t head_dim, float scale, int64_t q_block,
                      int64_t window);
    /* gate [n] ← silu(gate) * up (geglu: gelu_tanh(gate) * up);  x [n] ← act(x) for a plain MLP */
    void (*swiglu)(float *gate, const float *up, int64_t n);
    void (*geglu)(float *gate, const float *up, int64_t n);
    /* out [n] += x [n] */
    void (*add)(float *out, const float *x, int64_t n);
    void (*activation)(rotq_mlp_kind act, float *x, int64_t n);
    /* out [rows] = log Σ exp over each row of x [rows, n] */
    void (*logsumexp_rows)(const float *x, int64_t rows, int64_t n, double *out);
    /* x [rows, p->n] ← each row through the Hadamard plan (online rotations) */
    rotq_status (*fwht_rows)(const rotq_fwht_plan *p, float *x, int64_t rows);
    /* x [rows, cols] ← fake-quantized per row (group) with f's grid (quant/quant.h) */
    rotq_status (*act_quant)(float *x, int64_t rows, int64_t cols, const rotq_act_format *f);
} rotq_backend;

/* The CPU backend: the reference every other backend is tested against. */
const rotq_backend *rotq_backend_cpu(void);
/* A backend by name ("cpu"; "cuda" when built with it): ROTQ_ERR_UNSUPPORTED naming what exists. */
rotq_status rotq_backend_get(const char *name, const rotq_backend **out);

/* ---- the CPU kernels (cpu/layers.c, cpu/attention_avx2.c): plain functions on raw float arrays */

/* out [T, n_out] = x [T, n_in] · w [n_out, n_in]ᵀ + b (b may be NULL); accumulate: out += instead. */
void rotq_linear_forward(float *out, const float *x, const float *w, const float *b, int64_t T, int64_t n_in,
                         int64_t n_out, bool accumulate);
/* out [T, d] = x / sqrt(mean(x²) + eps) * (w + offset) — in float32, as transformers does. */
void rotq_rmsnorm_forward(float *out, const float *x, const float *w, float offset, float eps, int64_t T, int64_t d);
/* out [T, d] = (x - mean) / sqrt(var + eps) * (w + offset) + b. */
void rotq_layernorm_forward(float *out, const float *x, const float *w, const float *b, float offset, float eps,
                            int64_t T, int64_t d);
/* RoPE frequencies [rotary_dim/2] as transformers computes them (float32), with linear or llama3
 * scaling from hp. */
void rotq_rope_inv_freq(const rotq_hparams *hp, float *inv_freq);
/* cos/sin tables [T, half] for positions pos0..pos0+T-1. */
void rotq_rope_tables(const float *inv_freq, int64_t half, int64_t pos0, int64_t T, float *cos_t, float *sin_t);
/* Rotate-half RoPE in place on x [T, n_heads, head_dim], touching the first 2*half dims of each head. */
void rotq_rope_forward(float *x, const float *cos_t, const float *sin_t, int64_t T, int64_t n_heads,
                       int64_t head_dim, int64_t half);
/* Causal GQA attention. q [T, nh, hd] at positions pos0.., k/v [pos0+T, nkv, hd] (all keys so far);
 * out [T, nh, hd]; window > 0 keeps the keys p - window + 1 .. p of a query at p (0: all of 0 .. p;
 * ROTQ_ATTN_FULL: all pos0 + T keys, later ones too — the fused kernel is causal only, so this takes BLAS).
 * scores: scratch of n_heads * q_block * (pos0+T) floats (q_block from rotq_attention_block).
 * Allocates a 2·T·nh·hd work buffer per call; _ws takes it from the caller. */
void rotq_attention_forward(float *out, const float *q, const float *k, const float *v, float *scores, int64_t T,
                            int64_t pos0, int64_t n_heads, int64_t n_kv, int64_t head_dim, float scale,
                            int64_t q_block, int64_t window);
void rotq_attention_forward_ws(float *out, const float *q, const float *k, const float *v, float *scores,
                               float *work, int64_t T, int64_t pos0, int64_t n_heads, int64_t n_kv, int64_t head_dim,
                               float scale, int64_t q_block, int64_t window);
/* The fused AVX2+FMA attention (attention_avx2.c): same contract as rotq_attention_forward, without
 * the scores scratch. _supported says whether this CPU and head_dim can run it; the two functions
 * above call it on their own unless the CPU choice says otherwise (cpu/caps.h). */
#define ROTQ_ATTENTION_FUSED_HD_MAX 256
bool rotq_attention_fused_supported(int64_t head_dim);
void rotq_attention_fused(float *out, const float *q, const float *k, const float *v, int64_t T, int64_t pos0,
                          int64_t n_heads, int64_t n_kv, int64_t head_dim, float scale, int64_t window);
/* Query rows per attention block for T queries over n_keys keys (bounds the scores scratch). */
int64_t rotq_attention_block(int64_t T, int64_t n_heads, int64_t n_keys);
/* gate [T, ff] ← silu(gate) * up;  geglu: gelu_tanh(gate) * up. */
void rotq_swiglu_forward(float *gate, const float *up, int64_t n);
void rotq_geglu_forward(float *gate, const float *up, int64_t n);
/* out [n] += x [n]. */
void rotq_add_forward(float *out, const float *x, int64_t n);
/* x ← act(x) over n floats for a plain MLP: ROTQ_MLP_RELU max(x, 0), ROTQ_MLP_GELU
 * x·Φ(x) = x/2·(1 + erf(x/√2)), ROTQ_MLP_GELU_TANH x/2·(1 + tanh(√(2/π)·(x + 0.044715·x³))). */
void rotq_act_forward(rotq_mlp_kind act, float *x, int64_t n);
/* out[t] += b for each of T rows of d (a bias left in a norm after LayerNorm fusion). */
void rotq_add_rows(float *out, const float *b, int64_t T, int64_t d);
/* Row-wise log-sum-exp of x [rows, n]. */
void rotq_logsumexp_rows(const float *x, int64_t rows, int64_t n, double *out);
/* exp over n floats in place after subtracting `shift`; returns the sum (double). */
double rotq_exp_shift_sum(float *x, int64_t n, float shift);

/* ---- activation fake quantization on the CPU (cpu/quant_rows.c) --------------------------------- */

/* Whether f quantizes (2..8 bits; 0 or >= 16 mean float). */
static inline bool rotq_act_on(const rotq_act_format *f) { return f->bits > 0 && f->bits < 16; }
/* ROTQ_ERR_ARG naming `what` when f (on) is outside 2..8 bits or its clip outside (0, 1]. */
rotq_status rotq_act_format_check(const rotq_act_format *f, const char *what);
/* Quantizes each row (token) of x [rows, cols] in place with its own scale(s), computed in float32
 * as QuaRot's ActQuantizer. NaN/Inf → ROTQ_ERR_NUMERIC naming the row. */
rotq_status rotq_act_quantize(float *x, int64_t rows, int64_t cols, const rotq_act_format *f);

/* ---- the CPU Hadamard kernels (cpu/fwht_rows.c, cpu/fwht_avx2.c) ------------------------------- */

/* Unnormalized in-place Walsh–Hadamard transform of length 2^m (x ← x·H_{2^m}), one row. */
void rotq_fwht_f32(float *x, int32_t m);
void rotq_fwht_f64(double *x, int32_t m);

/* tmp: n floats (K > 1). */

/* `rows` consecutive rows of p->n floats. */
void rotq_fwht_rows_scalar(const rotq_fwht_plan *p, float *x, int64_t rows, float *tmp);
void rotq_fwht_rows_avx2(const rotq_fwht_plan *p, float *x, int64_t rows, float *tmp);   /* needs M >= 8 */

#endif
