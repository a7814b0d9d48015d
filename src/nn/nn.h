/* The reference model runner: one plain float32 CPU forward pass for every registered decoder.
 *
 * A runner is prepared once from a bound model (weights viewed or converted to float32), then
 * runs windows of tokens: embedding → n_layers × (norm → attention → residual, norm → MLP →
 * residual) → final norm → lm_head. Every op goes through the runner's backend (backend/backend.h:
 * the CPU one runs the products in BLAS over the whole window and the element-wise work on OpenMP
 * threads).
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
#include "backend/backend.h"
#include "core/model.h"

/* ---- transforms ----------------------------------------------------------------------------- */

/* Where a transform acts, as the backward names it (rows are tokens; Q/K/V rows hold every head). */
typedef enum rotq_grad_site {
    ROTQ_GRAD_LINEAR_INPUT = 0, /* [T, n_in] input of a linear group (role names the group) */
    ROTQ_GRAD_Q,                /* [T, n_heads·head_dim] after RoPE */
    ROTQ_GRAD_K,                /* [T, n_kv·head_dim] after RoPE */
    ROTQ_GRAD_V,                /* [T, n_kv·head_dim] */
    ROTQ_GRAD_DOWN_INPUT,       /* [T, intermediate] */
} rotq_grad_site;

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
    /* Training (backward.c): this transform's backward at a site its forward hooks act on. g [rows, cols]
     * holds dL/d(the transform's output) and is left holding dL/d(its input); raw and post are the
     * site's values before any and after all of its transforms, as the training forward kept them.
     * NULL: the gradient passes unchanged (the straight-through estimator of a fake quantizer, as
     * SpinQuant's training quantizers take it; a probe). */
    rotq_status (*grad)(void *ctx, rotq_grad_site site, int32_t layer, rotq_role role, float *g, const float *raw,
                        const float *post, int64_t rows, int64_t cols);
    /* Training: the backward of a product this transform's `linear` hook computed. dy [rows, n_out] =
     * dL/d(out); x [rows, n_in] the product's input as the forward passed it; dx (+)= dL/dx
     * (accumulate) and the transform accumulates the gradients of what its product depends on. Sets
     * *done when it took the product (the runner's float backward runs otherwise). */
    rotq_status (*linear_grad)(void *ctx, int32_t layer, rotq_role role, float *dx, const float *dy, const float *x,
                               int64_t rows, int64_t n_in, int64_t n_out, bool accumulate, bool *done);
} rotq_hooks;

typedef enum rotq_transform_kind {
    ROTQ_TF_ONLINE_ROTATION = 0, /* recorded with the model (R3, R4): part of its function */
    ROTQ_TF_FAKE_QUANT,          /* quantize → dequantize of activations or the KV cache */
    ROTQ_TF_INT_PRODUCT,         /* a linear's product computed from integer codes */
    ROTQ_TF_STATS,               /* records, changes nothing */
    ROTQ_TF_OTHER,
} rotq_transform_kind;

#define ROTQ_MAX_TRANSFORMS 16 /* R3, R4, five layerwise sites, A, K, V, products, stats, a learner ... */
#define ROTQ_TRANSFORM_NAME 96

typedef struct rotq_transform {
    char name[ROTQ_TRANSFORM_NAME];  /* "R3: online Hadamard 64 on Q, K after RoPE" */
    rotq_transform_kind kind;
    rotq_hooks hooks;                /* hooks.ctx is the transform's state */
    void (*release)(void *ctx);      /* frees the state with the runner (NULL: the caller owns it) */
} rotq_transform;


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
    const float *q_norm, *k_norm;           /* [hd] per-head norms of q and k before RoPE (Qwen3, Gemma 3) */
    const float *post_attn_norm, *post_mlp_norm; /* [d] sandwich norms of o's and down's outputs (Gemma 3) */
    bool fused_qkv, fused_gate_up;          /* Phi-3 layout: hooks name ROLE_QKV / ROLE_GATE_UP */
    bool local;                             /* sliding-window layer: hp.sliding_window, the local RoPE base */
} rotq_layer_weights;

typedef struct rotq_runner {
    const rotq_backend *be;                 /* every op of the forward pass goes through this table */
    rotq_hparams hp;
    const rotq_model *model;
    rotq_norm_kind norm;
    float norm_offset;                      /* 1 for (1 + w) norms */
    const float *embed;                     /* [vocab, d] */
    const float *pos_embed;                 /* [max_pos + pos_offset, d] learned positions, or NULL */
    int64_t pos_offset;
    bool rope;                              /* false: no RoPE (learned positions) */
    bool gated;                             /* SwiGLU/GeGLU (gate, up) or a plain MLP (up only, hp.mlp_act) */
    float embed_scale;                      /* the embedding output's factor (1; Gemma sqrt(d)) */
    rotq_layer_weights *layers;             /* [n_layers] */
    const float *final_norm, *final_norm_b; /* [d] */
    const float *lm_head, *lm_head_b;       /* [vocab, d] (the embedding when tied), [vocab] */
    float *inv_freq;                        /* [rotary_dim / 2] RoPE frequencies, scaling applied (or NULL) */
    float *inv_freq_local;                  /* ... of the local layers (their own base, no scaling), or NULL */
    float attn_scale;                       /* 1 / sqrt(head_dim), or the model's own query scale */
    /* a vision tower (model arch->vision_tower): hp.vocab is a patch row's width */
    bool vision;                            /* every position attends to every other (ROTQ_ATTN_FULL) */
    const float *patch_embed;               /* [d, vocab] */
    const float *merger_up, *merger_up_b;   /* [merge²·d, merge²·d], [merge²·d] */
    const float *merger_down, *merger_down_b; /* [out_hidden, merge²·d], [out_hidden] */
    int64_t merge, out_hidden;
    int64_t vis_window;                     /* > 0: windowed attention (Qwen2.5-VL), windows of this many merged patches a side */
    uint64_t full_layers[4];                /* ... except in these layers (bit l) */
    int threads;
    rotq_transform tf[ROTQ_MAX_TRANSFORMS]; /* in order of application at each site */
    int n_tf;
    bool online_required;                   /* the model records online rotations (R3/R4) ... */
    bool online_attached;                   /* ... and rotq_online_attach put them in place */

    struct rotq_activations *train;         /* training mode: the record the forward fills (not owned) */

    void **owned;                           /* float32 copies made at prepare time */
    int64_t n_owned, cap_owned;
    uint64_t owned_bytes;

    /* Scratch, grown on demand (llm.c style: one block per activation), in the backend's memory
     * (be->alloc). The embedding lookup, RoPE tables and training records are written on the host:
     * a device backend uploads them (the CPU's host memory is its own). */
    float *x, *xn, *q, *k, *v, *att, *attn_work, *ff1, *ff2, *scores, *rope_cos, *rope_sin, *rope_cos_l, *rope_sin_l;
    int64_t scratch_T, scores_cap;
} rotq_runner;

/* Prepares a runner over `m` (which must outlive it and stay unchanged while it runs: float32
 * tensors are borrowed, others converted once). threads > 0 sets the process-wide OpenMP and
 * OpenBLAS thread counts; threads <= 0 leaves both at their defaults. */
rotq_status rotq_runner_new(const rotq_model *m, int threads, rotq_runner **out);
void rotq_runner_free(rotq_runner *r);
/* Appends a transform (copied; its state is released with the runner when t->release is set).
 * ROTQ_ERR_ARG past ROTQ_MAX_TRANSFORMS, or for an online rotation after any other kind. */
rotq_status rotq_runner_add_transform(rotq_runner *r, const rotq_transform *t);
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

/* ---- one decoder layer, as ordered steps (layer.c) ------------------------------------------------ */

typedef enum rotq_layer_step {
    ROTQ_STEP_ATTN_NORM = 0, /* xn ← norm(x); transforms at q/k/v's input */
    ROTQ_STEP_ATTENTION,     /* q/k/v products, RoPE, qk/v transforms, attention; transforms at o's input */
    ROTQ_STEP_ATTN_OUT,      /* x ← x + att·Woᵀ (+ bo) */
    ROTQ_STEP_MLP_NORM,      /* xn ← norm(x); transforms at gate/up's input */
    ROTQ_STEP_MLP_HIDDEN,    /* ff ← silu(gate)·up or act(up); transforms at down's input */
    ROTQ_STEP_MLP_OUT,       /* x ← x + ff·Wdownᵀ (+ bdown) */
    ROTQ_LAYER_STEPS
} rotq_layer_step;

typedef struct rotq_step_info {
    const char *name;
    bool feeds_linear;       /* leaves a linear group's input (rotq_layer_step_output) */
    bool updates_stream;     /* adds to the residual stream x */
} rotq_step_info;

/* What one layer's backward needs, kept by a training-mode forward (rows: the window's T tokens).
 * "raw" values are a site's input before its transforms (online rotation, fake quantization); the
 * others what the computation went on with — so the pre-quantization values a straight-through
 * mask needs are the raw ones through the site's rotation. */
typedef struct rotq_layer_acts {
    float *x_in;                /* [T, d]   the layer's input (residual stream) */
    float *rstd_attn;           /* [T]      1/sqrt(mean(x²)+eps) (LayerNorm: of the centred x) */
    float *xn_attn_raw, *xn_attn; /* [T, d] attention norm output, before / after q/k/v's input transforms */
    float *q_pre, *k_pre;       /* [T, qd], [T, kvd] before the per-head q/k norms (NULL without them) */
    float *q_raw, *k_raw, *v_raw; /* [T, qd], [T, kvd] after RoPE, before the qk/v transforms */
    float *q, *k, *v;           /* [T, qd], [T, kvd] what attention read */
    float *lse;                 /* [nh, T]  log-sum-exp of each query row's scaled scores */
    float *att_raw, *att;       /* [T, qd]  attention output, before / after o_proj's input transforms */
    float *x_mid;               /* [T, d]   residual stream after attention */
    float *rstd_mlp;            /* [T] */
    float *xn_mlp_raw, *xn_mlp; /* [T, d] */
    float *gate, *up;           /* [T, ff]  gate/up products (gate NULL-free only when gated; up is act's input otherwise) */
    float *ff_raw, *ff;         /* [T, ff]  down_proj's input before / after its transforms */
} rotq_layer_acts;

/* A training-mode forward's record of one window of T tokens: every layer, and the final norm. */
typedef struct rotq_activations {
    int64_t T, n_layers;
    rotq_layer_acts *layers;    /* [n_layers] */
    float *x_final;             /* [T, d]   the final norm's input */
    float *rstd_final;          /* [T] */
    float *hidden_raw;          /* [T, d]   final norm output before lm_head's input transforms */
    float *block;               /* one allocation behind every pointer above */
} rotq_activations;

rotq_status rotq_activations_new(const rotq_runner *r, int64_t T, rotq_activations **out);
void rotq_activations_free(rotq_activations *a);
/* Training mode: the next forwards (no KV cache, exactly acts->T tokens) fill acts. NULL: inference. */
void rotq_runner_set_training(rotq_runner *r, rotq_activations *acts);

/* A window's buffers, as the steps read and write them. */
typedef struct rotq_layer_io {
    float *x;                   /* [T, d]   residual stream (updated by ATTN_OUT and MLP_OUT) */
    float *xn;                  /* [T, d] */
    float *q;                   /* [T, qd] */
    float *k_all, *v_all;       /* [pos0+T, kvd] this layer's keys and values; rows pos0.. are written */
    float *att;                 /* [T, qd] */
    float *ff1, *ff2;           /* [T, ff] */
    float *scores, *work;       /* attention scratch (rotq_attention_forward_ws) */
    const float *cos_t, *sin_t; /* [T, rotary_dim/2] RoPE tables of positions pos0.. */
    const float *cos_l, *sin_l; /* the same for the local layers (NULL when every layer is global) */
    const int64_t *segs;        /* a vision tower's windows: rows [segs[i], segs[i+1]) attend within themselves in
                                   every layer but its full ones (rotq_runner_full_layer); NULL: none */
    int64_t n_segs;
    int64_t T, pos0;
    rotq_layer_acts *save;      /* training mode: where to keep what the backward needs (NULL: none) */
} rotq_layer_io;

const rotq_step_info *rotq_layer_step_info(rotq_layer_step s);
/* Runs one step of layer l on io. */
rotq_status rotq_layer_step_run(const rotq_runner *r, int32_t l, rotq_layer_step s, rotq_layer_io *io);
/* All steps in order: the layer's forward. */
rotq_status rotq_layer_forward(const rotq_runner *r, int32_t l, rotq_layer_io *io);
/* The buffer of io where a step leaves a linear group's input (its width in *cols, the group's
 * first role in *group), or NULL for the steps that feed none. */
float *rotq_layer_step_output(const rotq_runner *r, int32_t l, rotq_layer_step s, const rotq_layer_io *io, int64_t *cols,
                              rotq_role *group);
/* Pieces the calibration walk needs too: x [T, d] = embed[ids] (+ learned positions pos0..), the
 * model's norm, and the role a layer's MLP input transforms name. */
void rotq_runner_embed(const rotq_runner *r, const int32_t *ids, int64_t T, int64_t pos0, float *x);
/* RoPE tables [T, rotary_dim/2] of positions pos0..: cos/sin for the global layers, cos_l/sin_l for the
 * local ones (left alone when the runner has none: r->inv_freq_local == NULL). */
void rotq_runner_rope_tables(const rotq_runner *r, int64_t pos0, int64_t T, float *cos_t, float *sin_t, float *cos_l,
                             float *sin_l);
/* Whether layer l of a windowed vision tower attends to the whole image. */
static inline bool rotq_runner_full_layer(const rotq_runner *r, int32_t l) {
    return r->vis_window <= 0 || l >= 256 || (r->full_layers[l / 64] >> (l % 64) & 1);
}
/* Sliding window of layer l's attention (0: global). */
int64_t rotq_runner_window(const rotq_runner *r, int32_t l);
void rotq_runner_norm(const rotq_runner *r, float *out, const float *x, const float *w, const float *b, int64_t T);
/* rstd [T] of the norm over x [T, d] (in double), for the backward. */
void rotq_runner_norm_rstd(const rotq_runner *r, const float *x, int64_t T, float *rstd);
/* rstd [rows] = 1/sqrt(mean((x - centre)²) + eps) over rows of d, in double; centre: LayerNorm's mean, else 0. */
void rotq_norm_rstd_rows(const float *x, int64_t rows, int64_t d, double eps, bool centre, float *rstd);
rotq_role rotq_runner_mlp_role(const rotq_runner *r, int32_t layer);

/* ---- backward (backward.c) ------------------------------------------------------------------------
 * One plain reference per forward op on raw float arrays (llm.c style; sums in double where a row
 * is reduced), then a layer's and the model's backward that mirror rotq_layer_forward step by step
 * from what a training-mode forward kept. Gradients named d* are dL/d(that tensor); "+=" functions
 * accumulate. Every function is checked against central finite differences (tests/test_nn_backward.c). */

/* y [T, n_out] = x [T, n_in]·wᵀ + b:  dx (+)= dy·w (accumulate_dx), dw += dyᵀ·x, db += Σ_t dy (each may be NULL). */
void rotq_linear_backward(float *dx, float *dw, float *db, const float *dy, const float *x, const float *w, int64_t T,
                          int64_t n_in, int64_t n_out, bool accumulate_dx);
/* y = x·rstd·(w + offset) (+ b), rstd [T] as the forward computed it:  dx += , dw +=, db += (dw, db may be NULL;
 * w NULL means a weight of ones). */
void rotq_rmsnorm_backward(float *dx, float *dw, float *db, const float *dy, const float *x, const float *rstd,
                           const float *w, float offset, int64_t T, int64_t d);
/* y = (x − mean)·rstd·(w + offset) + b:  dx +=, dw +=, db += (dw, db may be NULL). */
void rotq_layernorm_backward(float *dx, float *dw, float *db, const float *dy, const float *x, const float *rstd,
                             const float *w, float offset, int64_t T, int64_t d);
/* In place on g [T, n_heads, head_dim]: dL/d(x) from dL/d(rope(x)) (the transposed rotation). */
void rotq_rope_backward(float *g, const float *cos_t, const float *sin_t, int64_t T, int64_t n_heads, int64_t head_dim,
                        int64_t half);
/* Causal GQA attention at positions 0..T-1 (out = softmax(scale·q·kᵀ)·v per head), from the forward's
 * q, k, v, out and lse [nh, T]:  dq = , dk = , dv = (overwritten). work: 2·T·T floats. */
void rotq_attention_backward(float *dq, float *dk, float *dv, const float *dout, const float *out, const float *q,
                             const float *k, const float *v, const float *lse, int64_t T, int64_t n_heads, int64_t n_kv,
                             int64_t head_dim, float scale, float *work);
/* out = silu(gate)·up:  dgate = , dup = (n values). */
void rotq_swiglu_backward(float *dgate, float *dup, const float *dout, const float *gate, const float *up, int64_t n);
/* out = act(x) (plain MLP):  dx = dout·act'(x). */
void rotq_act_backward(rotq_mlp_kind act, float *dx, const float *dout, const float *x, int64_t n);
/* x [T, d] = embed[ids]:  dembed [vocab, d] += rows of dx. */
void rotq_embedding_backward(float *dembed, const float *dx, const int32_t *ids, int64_t T, int64_t d);

typedef enum rotq_loss_kind {
    ROTQ_LOSS_CE = 0,   /* mean cross-entropy of the next token */
    ROTQ_LOSS_KL,       /* mean KL(p_float ‖ p_model) over the teacher's next-token distributions */
} rotq_loss_kind;

/* The loss over logits = hidden [T, d]·lm_headᵀ (+ b) and dhidden [T, d] = dL/dhidden, in row chunks
 * (no [T, vocab] buffer). CE: targets[t] is row t's next token (< 0: not counted). KL: teacher [T, d]
 * holds the float model's hidden states, scored through the same lm_head; rows with targets[t] < 0
 * are not counted. The loss is the mean over counted rows; *loss and *counted may be NULL. */
rotq_status rotq_nn_loss_backward(const rotq_runner *r, rotq_loss_kind kind, const float *hidden, const float *teacher,
                                  const int32_t *targets, int64_t T, float *dhidden, double *loss, int64_t *counted);
/* The model's backward from dL/dhidden [T, d] (hidden: what the training forward returned, the
 * lm_head's input after its transforms), through the record r->train kept: every transform's grad
 * hook runs at its sites (a transform that cannot run backward, such as an integer product, is
 * refused by name). dx0 [T, d] (may be NULL) receives dL/d(the embedding output). dhidden is used
 * as scratch. */
rotq_status rotq_nn_backward(rotq_runner *r, const float *hidden, float *dhidden, float *dx0);

/* ---- KV cache (generation) -------------------------------------------------------------------- */

typedef struct rotq_kv_cache {
    const rotq_backend *be; /* the runner's: k and v live in its memory */
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
/* rotq_nn_forward from embeddings x [T, d] (say, token embeddings with an image's merged patches in place of
 * its marker tokens) at RoPE positions pos3 [3, T] (temporal, height, width: M-RoPE with hp.mrope_section;
 * a model without sections uses pos3[0]); pos3 NULL: the cache's next positions. */
rotq_status rotq_nn_forward_embeds(rotq_runner *r, const float *x, const int64_t *pos3, int64_t T, rotq_kv_cache *cache,
                                   float *hidden);
/* M-RoPE tables [T, half]: frequency i turns with position component c while i < section[0] + .. + section[c]. */
void rotq_mrope_tables(const float *inv_freq, int64_t half, const int32_t *section, const int64_t *pos3, int64_t T,
                       float *cos_t, float *sin_t);
/* A vision tower's forward over one image's patches [T = grid_t·grid_h·grid_w, hp.vocab] in the image
 * processor's order: out [T / merge², out_hidden], the merged patch embeddings for the language model. */
rotq_status rotq_nn_vision_forward(rotq_runner *r, const float *patches, int64_t grid_t, int64_t grid_h, int64_t grid_w,
                                   float *out);
/* logits [rows, vocab] = hidden [rows, d] · lm_headᵀ (+ bias). */
rotq_status rotq_nn_logits(const rotq_runner *r, const float *hidden, int64_t rows, float *logits);

#endif
