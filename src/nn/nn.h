/* The reference model runner: one plain float32 CPU forward pass for every registered decoder.
 *
 * A runner is prepared once from a bound model (weights viewed or converted to float32), then
 * runs windows of tokens: embedding → n_layers × (norm → attention → residual, norm → MLP →
 * residual) → final norm → lm_head. Matrix products go through BLAS over the whole window;
 * element-wise work is spread over OpenMP threads (never around a BLAS call).
 *
 * Transforms let later stages (online rotations, fake quantization, integer products, statistics)
 * act at named sites, in the order they were added (rotq_runner_add_transform); each site runs its
 * transforms one after the other, so a list reads like the computation it describes:
 *   linear_input  the input of every linear, just before its product
 *   qk_rope       Q and K after RoPE (after the projections when the model has no RoPE)
 *   v             V, as it leaves v_proj (before it enters the cache)
 *   down_input    the input of down_proj (called before down_proj's linear_input hook)
 * Shapes in comments are row-major, outermost first; T is the number of tokens in the call.
 */
#ifndef ROTQ_NN_NN_H
#define ROTQ_NN_NN_H

#include <stdbool.h>
#include <stdint.h>

#include "arch/arch.h"
#include "core/model.h"

/* ---- transforms ----------------------------------------------------------------------------- */

/* The functions of one transform, one per site it acts at (NULL where it does nothing). */
typedef struct rotq_hooks {
    void *ctx;
    /* x [rows, cols]: input of linear `role` in `layer` (layer -1 for lm_head). Linears that share
     * one input are called once with the group's first role: ROLE_Q (or ROLE_QKV) for q/k/v,
     * ROLE_GATE (or ROLE_GATE_UP; ROLE_UP for a plain MLP) for gate/up; then ROLE_O, ROLE_DOWN,
     * ROLE_LM_HEAD. */
    rotq_status (*linear_input)(void *ctx, int32_t layer, rotq_role role, float *x, int64_t rows, int64_t cols);
    /* q [T, n_heads, head_dim], k [T, n_kv, head_dim] after RoPE; row t sits at position pos0 + t. */
    rotq_status (*qk_rope)(void *ctx, int32_t layer, float *q, float *k, int64_t T, int64_t pos0, int64_t n_heads,
                           int64_t n_kv, int64_t head_dim);
    /* v [T, n_kv, head_dim] (bias added). */
    rotq_status (*v)(void *ctx, int32_t layer, float *v, int64_t T, int64_t pos0, int64_t n_kv, int64_t head_dim);
    /* x [rows, intermediate] = silu(gate) * up (plain MLP: act(up)), before ROLE_DOWN's linear_input hook. */
    rotq_status (*down_input)(void *ctx, int32_t layer, float *x, int64_t rows, int64_t cols);
    /* Optional product override: out [rows, n_out] (+)= linear `role` of layer applied to x [rows, n_in]
     * (+ b), computed by the hook (for example in integers) when it sets *done; otherwise the
     * runner's float product runs. Called for each decoder linear (ROLE_Q, ROLE_K, ... ROLE_DOWN),
     * right after its group's linear_input. */
    rotq_status (*linear)(void *ctx, int32_t layer, rotq_role role, const float *x, int64_t rows, int64_t n_in,
                          float *out, int64_t n_out, const float *b, bool accumulate, bool *done);
} rotq_hooks;

typedef enum rotq_transform_kind {
    ROTQ_TF_ONLINE_ROTATION = 0, /* recorded with the model (R3, R4): part of its function */
    ROTQ_TF_FAKE_QUANT,          /* quantize → dequantize of activations or the KV cache */
    ROTQ_TF_INT_PRODUCT,         /* a linear's product computed from integer codes */
    ROTQ_TF_STATS,               /* records, changes nothing */
    ROTQ_TF_OTHER,
} rotq_transform_kind;

#define ROTQ_MAX_TRANSFORMS 8
#define ROTQ_TRANSFORM_NAME 96

typedef struct rotq_transform {
    char name[ROTQ_TRANSFORM_NAME];  /* "R3: online Hadamard 64 on Q, K after RoPE" */
    rotq_transform_kind kind;
    rotq_hooks hooks;                /* hooks.ctx is the transform's state */
    void (*release)(void *ctx);      /* frees the state with the runner (NULL: the caller owns it) */
} rotq_transform;

const char *rotq_transform_kind_name(rotq_transform_kind k);

/* ---- weights -------------------------------------------------------------------------------- */

/* One decoder layer's weights as float32 (NULL where the model has no such tensor). Fused
 * Phi-3 tensors are viewed as their parts: wq/wk/wv point into qkv_proj, wgate/wup into gate_up. */
typedef struct rotq_layer_weights {
    const float *attn_norm, *attn_norm_b;   /* [d] */
    const float *wq, *bq;                   /* [n_heads*hd, d], [n_heads*hd] */
    const float *wk, *bk, *wv, *bv;         /* [n_kv*hd, d], [n_kv*hd] */
    const float *wo, *bo;                   /* [d, n_heads*hd], [d] */
    const float *mlp_norm, *mlp_norm_b;     /* [d] */
    const float *wgate, *bgate, *wup, *bup; /* [ff, d], [ff] */
    const float *wdown, *bdown;             /* [d, ff], [d] */
    bool fused_qkv, fused_gate_up;          /* Phi-3 layout: hooks name ROLE_QKV / ROLE_GATE_UP */
} rotq_layer_weights;

typedef struct rotq_runner {
    rotq_hparams hp;
    const rotq_model *model;
    rotq_norm_kind norm;
    float norm_offset;                      /* 1 for (1 + w) norms */
    const float *embed;                     /* [vocab, d] */
    const float *pos_embed;                 /* [max_pos + pos_offset, d] learned positions, or NULL */
    int64_t pos_offset;
    bool rope;                              /* false: no RoPE (learned positions) */
    bool gated;                             /* SwiGLU (gate, up) or a plain MLP (up only, hp.mlp_act) */
    rotq_layer_weights *layers;             /* [n_layers] */
    const float *final_norm, *final_norm_b; /* [d] */
    const float *lm_head, *lm_head_b;       /* [vocab, d] (the embedding when tied), [vocab] */
    float *inv_freq;                        /* [rotary_dim / 2] RoPE frequencies, scaling applied (or NULL) */
    float attn_scale;                       /* 1 / sqrt(head_dim) */
    int threads;
    rotq_transform tf[ROTQ_MAX_TRANSFORMS]; /* in order of application at each site */
    int n_tf;
    bool online_required;                   /* the model records online rotations (R3/R4) ... */
    bool online_attached;                   /* ... and rotq_online_attach put them in place */

    void **owned;                           /* float32 copies made at prepare time */
    int64_t n_owned, cap_owned;
    uint64_t owned_bytes;

    /* Scratch, grown on demand (llm.c style: one block per activation). */
    float *x, *xn, *q, *k, *v, *att, *attn_work, *ff1, *ff2, *scores, *rope_cos, *rope_sin;
    int64_t scratch_T, scores_cap;
} rotq_runner;

/* Prepares a runner over `m` (which must outlive it and stay unchanged while it runs: float32
 * tensors are borrowed, others converted once). threads > 0 sets the process-wide OpenMP and
 * OpenBLAS thread counts; threads <= 0 leaves both at their defaults. */
rotq_status rotq_runner_new(const rotq_model *m, int threads, rotq_runner **out);
void rotq_runner_free(rotq_runner *r);
/* Pieces of the forward pass shared with the layer-by-layer calibration walk (quant/calib.c):
 * x [T, d] = embed[ids] (+ learned positions pos0..pos0+T-1); the model's norm (RMSNorm or
 * LayerNorm, weight, optional bias); the role a layer's MLP input hook names; and the MLP hidden
 * activation ff1 [T, ff] from xn (ff2: scratch of the same size), with the down_input hook run. */
void rotq_runner_embed(const rotq_runner *r, const int32_t *ids, int64_t T, int64_t pos0, float *x);
void rotq_runner_norm(const rotq_runner *r, float *out, const float *x, const float *w, const float *b, int64_t T);
rotq_role rotq_runner_mlp_role(const rotq_runner *r, int32_t layer);
rotq_status rotq_runner_mlp_hidden(const rotq_runner *r, int32_t layer, const float *xn, float *ff1, float *ff2, int64_t T);
/* q [T, nh·hd], k, v [T, nkv·hd] from xn: the three products (through the `linear` hook), RoPE with
 * the cos/sin tables of positions pos0.. (rotq_rope_tables), then the qk_rope and v hooks. */
rotq_status rotq_runner_qkv(const rotq_runner *r, int32_t layer, const float *xn, float *q, float *k, float *v,
                            const float *cos_t, const float *sin_t, int64_t T, int64_t pos0);
/* Appends a transform (copied; its state is released with the runner when t->release is set).
 * ROTQ_ERR_ARG past ROTQ_MAX_TRANSFORMS. */
rotq_status rotq_runner_add_transform(rotq_runner *r, const rotq_transform *t);
/* Removes every transform that is not an online rotation (releasing their states). */
void rotq_runner_clear_transforms(rotq_runner *r);
/* ROTQ_ERR_ARG naming the model when it records online rotations that are not attached: a forward
 * without them computes another function (the silent-wrong-answer guard of every entry point). */
rotq_status rotq_runner_check_ready(const rotq_runner *r);
/* What runs where, one line per site: "qk_rope: R3 online Hadamard 64 → KV fake-quant K4". */
void rotq_runner_describe(const rotq_runner *r, char *out, size_t size);
/* The transforms at the input of a linear (forward pass and calibration walk alike). */
rotq_status rotq_runner_linear_input(const rotq_runner *r, int32_t layer, rotq_role role, float *x, int64_t rows,
                                     int64_t cols);
/* Bytes of float32 weight copies the runner owns (0 when every weight was borrowed). */
uint64_t rotq_runner_owned_bytes(const rotq_runner *r);

/* ---- KV cache (generation) -------------------------------------------------------------------- */

typedef struct rotq_kv_cache {
    int64_t capacity;   /* positions */
    int64_t n;          /* positions filled: the next token goes to position n */
    int64_t n_layers, kv_dim;
    float *k, *v;       /* [n_layers, capacity, n_kv*hd] each, post-RoPE / post-hook values */
} rotq_kv_cache;

rotq_status rotq_kv_cache_new(const rotq_runner *r, int64_t capacity, rotq_kv_cache **out);
void rotq_kv_cache_free(rotq_kv_cache *c);

/* ---- forward -------------------------------------------------------------------------------- */

/* Runs tokens ids[T] through the decoder. Without a cache the tokens sit at positions 0..T-1;
 * with one, at cache->n .. cache->n+T-1, attending to everything cached, and the cache advances.
 * hidden [T, d] receives the final-normed states (lm_head's input, after its linear_input hook). */
rotq_status rotq_nn_forward(rotq_runner *r, const int32_t *ids, int64_t T, rotq_kv_cache *cache, float *hidden);
/* logits [rows, vocab] = hidden [rows, d] · lm_headᵀ (+ bias). */
rotq_status rotq_nn_logits(const rotq_runner *r, const float *hidden, int64_t rows, float *logits);

/* ---- layers (layers.c): plain functions on raw float arrays ------------------------------------ */

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
 * out [T, nh, hd]. scores: scratch of n_heads * q_block * (pos0+T) floats (q_block from
 * rotq_attention_block). Allocates a 2·T·nh·hd work buffer per call; _ws takes it from the caller. */
void rotq_attention_forward(float *out, const float *q, const float *k, const float *v, float *scores, int64_t T,
                            int64_t pos0, int64_t n_heads, int64_t n_kv, int64_t head_dim, float scale,
                            int64_t q_block);
void rotq_attention_forward_ws(float *out, const float *q, const float *k, const float *v, float *scores,
                               float *work, int64_t T, int64_t pos0, int64_t n_heads, int64_t n_kv, int64_t head_dim,
                               float scale, int64_t q_block);
/* The fused AVX2+FMA attention (attention_avx2.c): same contract as rotq_attention_forward, without
 * the scores scratch. _supported says whether this CPU and head_dim can run it; the two functions
 * above call it on their own unless the environment sets ROTQ_ATTENTION=blas. */
#define ROTQ_ATTENTION_FUSED_HD_MAX 256
bool rotq_attention_fused_supported(int64_t head_dim);
void rotq_attention_fused(float *out, const float *q, const float *k, const float *v, int64_t T, int64_t pos0,
                          int64_t n_heads, int64_t n_kv, int64_t head_dim, float scale);
/* Query rows per attention block for T queries over n_keys keys (bounds the scores scratch). */
int64_t rotq_attention_block(int64_t T, int64_t n_heads, int64_t n_keys);
/* gate [T, ff] ← silu(gate) * up. */
void rotq_swiglu_forward(float *gate, const float *up, int64_t n);
/* x ← act(x) over n floats for a plain MLP: ROTQ_MLP_RELU max(x, 0), ROTQ_MLP_GELU
 * x·Φ(x) = x/2·(1 + erf(x/√2)), ROTQ_MLP_GELU_TANH x/2·(1 + tanh(√(2/π)·(x + 0.044715·x³))). */
void rotq_act_forward(rotq_mlp_kind act, float *x, int64_t n);
/* out[t] += b for each of T rows of d (a bias left in a norm after LayerNorm fusion). */
void rotq_add_rows(float *out, const float *b, int64_t T, int64_t d);
/* Row-wise log-sum-exp of x [rows, n]. */
void rotq_logsumexp_rows(const float *x, int64_t rows, int64_t n, double *out);
/* exp over n floats in place after subtracting `shift`; returns the sum (double). */
double rotq_exp_shift_sum(float *x, int64_t n, float shift);

#endif
