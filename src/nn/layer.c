/* One decoder layer, defined once, as ordered steps over a window's buffers (rotq_layer_io): the
 * forward pass runs them in order; GPTQ's calibration walk runs them window by window and reads
 * each linear group's input where a step leaves it (rotq_layer_step_info); a training-mode forward
 * keeps in rotq_layer_acts what the backward needs. Shapes: T tokens, d hidden, qd = heads·hd,
 * kvd = kv_heads·hd, ff intermediate.
 *
 *   ATTN_NORM   xn ← norm(x); transforms at q/k/v's input            (leaves q/k/v's input: xn)
 *   ATTENTION   q, k, v ← xn·Wᵀ + b; per-head q/k norms; RoPE; qk/v transforms; att ← causal
 *               attention (sliding window on local layers);
 *               transforms at o_proj's input                          (leaves o's input: att)
 *   ATTN_OUT    x ← x + att·Woᵀ + bo  (sandwich norms: x ← x + norm(att·Woᵀ + bo), as MLP_OUT)
 *   MLP_NORM    xn ← norm(x); transforms at gate/up's input           (leaves gate/up's input: xn)
 *   MLP_HIDDEN  ff ← silu(xn·Wgᵀ)·(xn·Wuᵀ) or act(xn·Wuᵀ + b); down_input and down_proj's input
 *               transforms                                            (leaves down's input: ff)
 *   MLP_OUT     x ← x + ff·Wdownᵀ + bdown
 */
#include <cblas.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "nn/nn.h"

static const rotq_step_info steps[ROTQ_LAYER_STEPS] = {
    [ROTQ_STEP_ATTN_NORM] = {"attn_norm", true, false},
    [ROTQ_STEP_ATTENTION] = {"attention", true, false},
    [ROTQ_STEP_ATTN_OUT] = {"attn_out", false, true},
    [ROTQ_STEP_MLP_NORM] = {"mlp_norm", true, false},
    [ROTQ_STEP_MLP_HIDDEN] = {"mlp_hidden", true, false},
    [ROTQ_STEP_MLP_OUT] = {"mlp_out", false, true},
};

const rotq_step_info *rotq_layer_step_info(rotq_layer_step s) { return &steps[s]; }

rotq_role rotq_runner_mlp_role(const rotq_runner *r, int32_t layer) {
    return r->layers[layer].fused_gate_up ? ROLE_GATE_UP : r->gated ? ROLE_GATE : ROLE_UP;
}

float *rotq_layer_step_output(const rotq_runner *r, int32_t l, rotq_layer_step s, const rotq_layer_io *io, int64_t *cols,
                              rotq_role *group) {
    const rotq_hparams *hp = &r->hp;
    switch (s) {
    case ROTQ_STEP_ATTN_NORM:
        *cols = hp->hidden, *group = r->layers[l].fused_qkv ? ROLE_QKV : ROLE_Q;
        return io->xn;
    case ROTQ_STEP_ATTENTION: *cols = hp->n_heads * hp->head_dim, *group = ROLE_O; return io->att;
    case ROTQ_STEP_MLP_NORM: *cols = hp->hidden, *group = rotq_runner_mlp_role(r, l); return io->xn;
    case ROTQ_STEP_MLP_HIDDEN: *cols = hp->intermediate, *group = ROLE_DOWN; return io->ff1;
    default: *cols = 0, *group = ROLE_COUNT; return NULL;
    }
}

/* ---- pieces ----------------------------------------------------------------------------------- */

static void copy(float *dst, const float *src, int64_t n) {
    if (dst) memcpy(dst, src, (size_t)n * sizeof(float));
}

void rotq_runner_norm(const rotq_runner *r, float *out, const float *x, const float *w, const float *b, int64_t T) {
    const rotq_hparams *hp = &r->hp;
    if (r->norm == ROTQ_NORM_LAYER) {
        r->be->layernorm(out, x, w, b, r->norm_offset, (float)hp->norm_eps, T, hp->hidden);
    } else {
        r->be->rmsnorm(out, x, w, r->norm_offset, (float)hp->norm_eps, T, hp->hidden);
        if (b) r->be->add_rows(out, b, T, hp->hidden); /* a LayerNorm bias kept through fusion */
    }
}

void rotq_norm_rstd_rows(const float *x, int64_t rows, int64_t d, double eps, bool centre, float *rstd) {
    for (int64_t t = 0; t < rows; t++) {
        const float *xr = x + t * d;
        double mean = 0, ss = 0;
        if (centre)
            for (int64_t i = 0; i < d; i++) mean += xr[i] / (double)d;
        for (int64_t i = 0; i < d; i++) ss += (xr[i] - mean) * (xr[i] - mean);
        rstd[t] = (float)(1.0 / sqrt(ss / (double)d + eps));
    }
}

/* rstd [T] = 1/sqrt(mean(x²) + eps) (RMSNorm) or 1/sqrt(var + eps) (LayerNorm), for the backward. */
void rotq_runner_norm_rstd(const rotq_runner *r, const float *x, int64_t T, float *rstd) {
    rotq_norm_rstd_rows(x, T, r->hp.hidden, r->hp.norm_eps, r->norm == ROTQ_NORM_LAYER, rstd);
}

/* lse [nh, T]: log Σ_j exp(scale·q_t·k_j) over the causal keys j <= pos0 + t of each query row. The
 * scores come from one sgemm per head (the T×n_keys block), the row sums in double. */
static rotq_status attention_lse(const rotq_runner *r, const float *q, const float *k_all, int64_t T, int64_t pos0, float *lse) {
    const rotq_hparams *hp = &r->hp;
    int64_t nh = hp->n_heads, nkv = hp->n_kv_heads, hd = hp->head_dim, group = nh / nkv, nk = pos0 + T;
    float *S = malloc((size_t)(T * nk) * sizeof(float));
    if (!S) return rotq_fail(ROTQ_ERR_NOMEM, "nn: out of memory for the attention scores of %lld tokens", (long long)T);
    for (int64_t h = 0; h < nh; h++) {
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)T, (int)nk, (int)hd, r->attn_scale, q + h * hd,
                    (int)(nh * hd), k_all + (h / group) * hd, (int)(nkv * hd), 0.0f, S, (int)nk);
#pragma omp parallel for schedule(static) if (T * nk > 65536)
        for (int64_t t = 0; t < T; t++) {
            const float *sr = S + t * nk;
            double mx = -INFINITY, sum = 0;
            for (int64_t j = 0; j <= pos0 + t; j++) mx = sr[j] > mx ? sr[j] : mx;
            for (int64_t j = 0; j <= pos0 + t; j++) sum += exp(sr[j] - mx);
            lse[h * T + t] = (float)(mx + log(sum));
        }
    }
    free(S);
    return ROTQ_OK;
}

/* A decoder linear: the first transform's product that takes it, else the backend's float product. */
static rotq_status linear(const rotq_runner *r, int32_t l, rotq_role role, float *out, const float *x, const float *w,
                          const float *b, int64_t T, int64_t n_in, int64_t n_out, bool accumulate) {
    for (int i = 0; i < r->n_tf; i++) {
        const rotq_hooks *h = &r->tf[i].hooks;
        if (!h->linear) continue;
        bool done = false;
        rotq_status s = h->linear(h->ctx, l, role, x, T, n_in, out, n_out, b, accumulate, &done);
        if (s != ROTQ_OK || done) return s;
    }
    r->be->linear(out, x, w, b, T, n_in, n_out, accumulate);
    return ROTQ_OK;
}

rotq_status rotq_runner_linear_input(const rotq_runner *r, int32_t layer, rotq_role role, float *x, int64_t rows,
                                     int64_t cols) {
    for (int i = 0; i < r->n_tf; i++) {
        const rotq_hooks *h = &r->tf[i].hooks;
        if (h->linear_input) ROTQ_TRY(h->linear_input(h->ctx, layer, role, x, rows, cols));
    }
    return ROTQ_OK;
}

/* q [T, qd], k, v [T, kvd] from xn: products, RoPE, then the qk_rope and v transforms. */
static rotq_status qkv(const rotq_runner *r, int32_t l, const rotq_layer_io *io, float *k, float *v) {
    const rotq_hparams *hp = &r->hp;
    const rotq_layer_weights *w = &r->layers[l];
    int64_t T = io->T, d = hp->hidden, nh = hp->n_heads, nkv = hp->n_kv_heads, hd = hp->head_dim;
    int64_t qd = nh * hd, kvd = nkv * hd, half = hp->rotary_dim / 2;
    float *q = io->q;
    ROTQ_TRY(linear(r, l, ROLE_Q, q, io->xn, w->wq, w->bq, T, d, qd, false));
    ROTQ_TRY(linear(r, l, ROLE_K, k, io->xn, w->wk, w->bk, T, d, kvd, false));
    ROTQ_TRY(linear(r, l, ROLE_V, v, io->xn, w->wv, w->bv, T, d, kvd, false));
    rotq_layer_acts *sv = io->save;
    if (sv && w->q_norm) copy(sv->q_pre, q, T * qd), copy(sv->k_pre, k, T * kvd);
    if (w->q_norm) { /* per head, before RoPE */
        r->be->rmsnorm(q, q, w->q_norm, r->norm_offset, (float)hp->norm_eps, T * nh, hd);
        r->be->rmsnorm(k, k, w->k_norm, r->norm_offset, (float)hp->norm_eps, T * nkv, hd);
    }
    if (r->rope) {
        bool local = w->local && io->cos_l;
        const float *c = local ? io->cos_l : io->cos_t, *sn = local ? io->sin_l : io->sin_t;
        r->be->rope(q, c, sn, T, nh, hd, half);
        r->be->rope(k, c, sn, T, nkv, hd, half);
    }
    if (sv) copy(sv->q_raw, q, T * qd), copy(sv->k_raw, k, T * kvd), copy(sv->v_raw, v, T * kvd);
    for (int i = 0; i < r->n_tf; i++) {
        const rotq_hooks *h = &r->tf[i].hooks;
        if (h->qk_rope) ROTQ_TRY(h->qk_rope(h->ctx, l, q, k, T, io->pos0, nh, nkv, hd));
    }
    for (int i = 0; i < r->n_tf; i++) {
        const rotq_hooks *h = &r->tf[i].hooks;
        if (h->v) ROTQ_TRY(h->v(h->ctx, l, v, T, io->pos0, nkv, hd));
    }
    if (sv) copy(sv->q, q, T * qd), copy(sv->k, k, T * kvd), copy(sv->v, v, T * kvd);
    return ROTQ_OK;
}

/* ff1 [T, ff] ← silu(xn·Wgᵀ)·(xn·Wuᵀ) (ff2: the up product) or act(xn·Wuᵀ + b), then down_input. */
static rotq_status mlp_hidden(const rotq_runner *r, int32_t l, const rotq_layer_io *io) {
    const rotq_layer_weights *w = &r->layers[l];
    int64_t T = io->T, d = r->hp.hidden, ff = r->hp.intermediate;
    rotq_layer_acts *sv = io->save;
    if (r->gated) {
        ROTQ_TRY(linear(r, l, ROLE_GATE, io->ff1, io->xn, w->wgate, w->bgate, T, d, ff, false));
        ROTQ_TRY(linear(r, l, ROLE_UP, io->ff2, io->xn, w->wup, w->bup, T, d, ff, false));
        if (sv) copy(sv->gate, io->ff1, T * ff), copy(sv->up, io->ff2, T * ff);
        if (r->hp.mlp_act == ROTQ_MLP_GEGLU) r->be->geglu(io->ff1, io->ff2, T * ff);
        else r->be->swiglu(io->ff1, io->ff2, T * ff);
    } else {
        ROTQ_TRY(linear(r, l, ROLE_UP, io->ff1, io->xn, w->wup, w->bup, T, d, ff, false));
        if (sv) copy(sv->up, io->ff1, T * ff);
        r->be->activation((rotq_mlp_kind)r->hp.mlp_act, io->ff1, T * ff);
    }
    if (sv) copy(sv->ff_raw, io->ff1, T * ff);
    for (int i = 0; i < r->n_tf; i++) {
        const rotq_hooks *h = &r->tf[i].hooks;
        if (h->down_input) ROTQ_TRY(h->down_input(h->ctx, l, io->ff1, T, ff));
    }
    return ROTQ_OK;
}

/* x [T, d] ← x + in·Wᵀ + b, or with a sandwich norm x ← x + norm(in·Wᵀ + b) through xn (free at both
 * steps that write the stream). */
static rotq_status add_to_stream(const rotq_runner *r, int32_t l, rotq_role role, const rotq_layer_io *io, const float *in,
                                 const float *w, const float *b, int64_t n_in, const float *post_norm) {
    int64_t T = io->T, d = r->hp.hidden;
    if (!post_norm) return linear(r, l, role, io->x, in, w, b, T, n_in, d, true);
    ROTQ_TRY(linear(r, l, role, io->xn, in, w, b, T, n_in, d, false));
    r->be->rmsnorm(io->xn, io->xn, post_norm, r->norm_offset, (float)r->hp.norm_eps, T, d);
    r->be->add(io->x, io->xn, T * d);
    return ROTQ_OK;
}

/* ---- the steps ---------------------------------------------------------------------------------- */

rotq_status rotq_layer_step_run(const rotq_runner *r, int32_t l, rotq_layer_step s, rotq_layer_io *io) {
    const rotq_hparams *hp = &r->hp;
    const rotq_layer_weights *w = &r->layers[l];
    int64_t T = io->T, pos0 = io->pos0, d = hp->hidden, nh = hp->n_heads, nkv = hp->n_kv_heads, hd = hp->head_dim;
    int64_t qd = nh * hd, kvd = nkv * hd, ff = hp->intermediate;
    rotq_layer_acts *sv = io->save;
    switch (s) {
    case ROTQ_STEP_ATTN_NORM:
        rotq_runner_norm(r, io->xn, io->x, w->attn_norm, w->attn_norm_b, T);
        if (sv) copy(sv->x_in, io->x, T * d), rotq_runner_norm_rstd(r, io->x, T, sv->rstd_attn), copy(sv->xn_attn_raw, io->xn, T * d);
        ROTQ_TRY(rotq_runner_linear_input(r, l, w->fused_qkv ? ROLE_QKV : ROLE_Q, io->xn, T, d));
        if (sv) copy(sv->xn_attn, io->xn, T * d);
        return ROTQ_OK;
    case ROTQ_STEP_ATTENTION:
        ROTQ_TRY(qkv(r, l, io, io->k_all + pos0 * kvd, io->v_all + pos0 * kvd));
        if (io->segs && !rotq_runner_full_layer(r, l)) {
            /* windowed attention (a vision tower's window layers): each segment of rows attends within itself */
            for (int64_t sgi = 0; sgi < io->n_segs; sgi++) {
                int64_t a0 = io->segs[sgi], n = io->segs[sgi + 1] - a0;
                if (n > 0)
                    r->be->attention(io->att + a0 * qd, io->q + a0 * qd, io->k_all + a0 * kvd, io->v_all + a0 * kvd, io->scores,
                                     io->work, n, 0, nh, nkv, hd, r->attn_scale, rotq_attention_block(n, nh, n), ROTQ_ATTN_FULL);
            }
        } else {
            r->be->attention(io->att, io->q, io->k_all, io->v_all, io->scores, io->work, T, pos0, nh, nkv, hd, r->attn_scale,
                             rotq_attention_block(T, nh, pos0 + T), rotq_runner_window(r, l));
        }
        if (sv) {
            ROTQ_TRY(attention_lse(r, io->q, io->k_all, T, pos0, sv->lse));
            copy(sv->att_raw, io->att, T * qd);
        }
        ROTQ_TRY(rotq_runner_linear_input(r, l, ROLE_O, io->att, T, qd));
        if (sv) copy(sv->att, io->att, T * qd);
        return ROTQ_OK;
    case ROTQ_STEP_ATTN_OUT:
        ROTQ_TRY(add_to_stream(r, l, ROLE_O, io, io->att, w->wo, w->bo, qd, w->post_attn_norm));
        if (sv) copy(sv->x_mid, io->x, T * d);
        return ROTQ_OK;
    case ROTQ_STEP_MLP_NORM:
        rotq_runner_norm(r, io->xn, io->x, w->mlp_norm, w->mlp_norm_b, T);
        if (sv) rotq_runner_norm_rstd(r, io->x, T, sv->rstd_mlp), copy(sv->xn_mlp_raw, io->xn, T * d);
        ROTQ_TRY(rotq_runner_linear_input(r, l, rotq_runner_mlp_role(r, l), io->xn, T, d));
        if (sv) copy(sv->xn_mlp, io->xn, T * d);
        return ROTQ_OK;
    case ROTQ_STEP_MLP_HIDDEN:
        ROTQ_TRY(mlp_hidden(r, l, io));
        ROTQ_TRY(rotq_runner_linear_input(r, l, ROLE_DOWN, io->ff1, T, ff));
        if (sv) copy(sv->ff, io->ff1, T * ff);
        return ROTQ_OK;
    case ROTQ_STEP_MLP_OUT:
        return add_to_stream(r, l, ROLE_DOWN, io, io->ff1, w->wdown, w->bdown, ff, w->post_mlp_norm);
    default: return rotq_fail(ROTQ_ERR_ARG, "nn: no layer step %d", (int)s);
    }
}

rotq_status rotq_layer_forward(const rotq_runner *r, int32_t l, rotq_layer_io *io) {
    for (int s = 0; s < ROTQ_LAYER_STEPS; s++) ROTQ_TRY(rotq_layer_step_run(r, l, (rotq_layer_step)s, io));
    return ROTQ_OK;
}
