/* Calibration for GPTQ: random windows of the calibration text, run layer by layer through the
 * model while it is being quantized (QuaRot's gptq_fwrd, "true sequential"):
 *
 *   for each layer l, with X [nsamples, T, d] the residual stream entering l:
 *     A  H_qkv  from norm(X)                          → quantize q, k, v
 *     B  H_o    from attention(X) with quantized qkv  → quantize o
 *     C  X ← X + o(attention(X));  H_gu from norm(X)  → quantize gate, up
 *     D  H_down from swiglu(gate, up) (after R4)      → quantize down
 *     E  X ← X + down(...)                              (layer l+1's input)
 *
 * Every stage calls the runner's transforms where the forward pass does, so online rotations (R3, R4)
 * shape the Hessians exactly as they shape inference. Activations stay float here (QuaRot
 * configures activation quantizers only after GPTQ). H = 2·XᵀX / N over all N calibration tokens,
 * each window's XᵀX formed by ssyrk in float and summed in double. */
#include <cblas.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "quant/quant.h"
#include "rotate/rotate.h"
#include "core/clock.h"

rotq_status rotq_calib_windows(const int32_t *ids, int64_t n, int64_t nsamples, int64_t ctx, uint64_t seed,
                               int32_t **out) {
    *out = NULL;
    if (nsamples <= 0 || ctx <= 0)
        return rotq_fail(ROTQ_ERR_ARG, "calib: %lld windows of %lld tokens", (long long)nsamples, (long long)ctx);
    if (n < ctx)
        return rotq_fail(ROTQ_ERR_ARG, "calib: the calibration text has %lld tokens, fewer than one window of %lld",
                         (long long)n, (long long)ctx);
    int32_t *w = malloc((size_t)(nsamples * ctx) * sizeof *w);
    if (!w) return rotq_fail(ROTQ_ERR_NOMEM, "calib: out of memory for %lld x %lld tokens", (long long)nsamples, (long long)ctx);
    rotq_rng rng;
    rotq_rng_seed(&rng, seed);
    int64_t starts = n - ctx + 1;
    for (int64_t s = 0; s < nsamples; s++) {
        int64_t i = (int64_t)(rotq_rng_uniform(&rng) * (double)starts);
        if (i >= starts) i = starts - 1;
        memcpy(w + s * ctx, ids + i, (size_t)ctx * sizeof *w);
    }
    *out = w;
    return ROTQ_OK;
}

int rotq_quant_layer_linears(const rotq_model *m, int32_t l, rotq_role *roles, rotq_tensor **tensors) {
    static const rotq_role order[] = {ROLE_QKV, ROLE_Q, ROLE_K, ROLE_V, ROLE_O, ROLE_GATE_UP, ROLE_GATE, ROLE_UP, ROLE_DOWN};
    int n = 0;
    for (size_t i = 0; i < sizeof order / sizeof order[0]; i++) {
        rotq_tensor *t = rotq_model_role(m, order[i], l);
        if (!t) continue;
        roles[n] = order[i];
        tensors[n] = t;
        n++;
    }
    return n;
}

/* ---- the layer walk ---------------------------------------------------------------------------- */

typedef struct walk {
    rotq_model *m;
    rotq_runner *r;
    const rotq_quant_options *o;
    rotq_wq_format fmt;
    int64_t ns, T, d, qd, kvd, ff, half;
    float *X;                     /* [ns, T, d] residual stream */
    float *att_store;             /* [ns, T, qd] attention outputs of stage B, or NULL (recomputed) */
    float *ff_store;              /* [ns, T, ff] down_proj inputs of stage D, or NULL (recomputed) */
    float *xn, *q, *k, *v, *att, *ff1, *ff2, *scores, *cos_t, *sin_t, *gram;
    double *H;
    int64_t q_block;
    rotq_quant_report *rep;
    double t_quant;
} walk;

#define HOOK(call) do { rotq_status hs_ = (call); if (hs_ != ROTQ_OK) return hs_; } while (0)

static rotq_status linear_hook(const walk *c, int32_t l, rotq_role role, float *x, int64_t cols) {
    return rotq_runner_linear_input(c->r, l, role, x, c->T, cols);
}

/* xn ← norm(x) and the q/k/v input hook */
static rotq_status attn_input(walk *c, int32_t l, const float *x) {
    const rotq_layer_weights *w = &c->r->layers[l];
    rotq_runner_norm(c->r, c->xn, x, w->attn_norm, w->attn_norm_b, c->T);
    return linear_hook(c, l, rotq_model_role(c->m, ROLE_QKV, l) ? ROLE_QKV : ROLE_Q, c->xn, c->d);
}

/* att ← attention(xn) (q/k/v with the current weights, RoPE, hooks), then o_proj's input hook */
static rotq_status attention(walk *c, int32_t l) {
    const rotq_runner *r = c->r;
    const rotq_hparams *hp = &r->hp;
    int64_t T = c->T, nh = hp->n_heads, nkv = hp->n_kv_heads, hd = hp->head_dim;
    HOOK(rotq_runner_qkv(r, l, c->xn, c->q, c->k, c->v, c->cos_t, c->sin_t, T, 0));
    rotq_attention_forward(c->att, c->q, c->k, c->v, c->scores, T, 0, nh, nkv, hd, r->attn_scale, c->q_block);
    return linear_hook(c, l, ROLE_O, c->att, c->qd);
}

static rotq_status mlp_input(walk *c, int32_t l, const float *x) {
    const rotq_layer_weights *w = &c->r->layers[l];
    rotq_runner_norm(c->r, c->xn, x, w->mlp_norm, w->mlp_norm_b, c->T);
    return linear_hook(c, l, rotq_runner_mlp_role(c->r, l), c->xn, c->d);
}

/* ff1 ← swiglu(gate(xn), up(xn)) or act(up(xn)), then the down_input (R4) and down_proj input hooks */
static rotq_status mlp_hidden(walk *c, int32_t l) {
    HOOK(rotq_runner_mlp_hidden(c->r, l, c->xn, c->ff1, c->ff2, c->T));
    return linear_hook(c, l, ROLE_DOWN, c->ff1, c->ff);
}

/* H += xᵀx for x [T, n] (upper triangle) */
static void gram_add(walk *c, const float *x, int64_t n) {
    cblas_ssyrk(CblasRowMajor, CblasUpper, CblasTrans, (blasint)n, (blasint)c->T, 1.0f, x, (blasint)n, 0.0f, c->gram,
                (blasint)n);
    double *H = c->H;
    const float *g = c->gram;
#pragma omp parallel for schedule(static) if (n >= 256)
    for (int64_t i = 0; i < n; i++)
        for (int64_t j = i; j < n; j++) H[i * n + j] += g[i * n + j];
}

/* 2/N scaling and the lower triangle, then GPTQ on every tensor reading this input */
static rotq_status quantize_group(walk *c, int32_t l, int64_t n, const rotq_role *roles, int n_roles) {
    double t0 = rotq_now_s();
    double *H = c->H, scale = 2.0 / (double)(c->ns * c->T);
    for (int64_t i = 0; i < n; i++) {
        for (int64_t j = i; j < n; j++) H[i * n + j] *= scale;
        for (int64_t j = 0; j < i; j++) H[i * n + j] = H[j * n + i];
    }
    rotq_gptq_hinv hinv;
    rotq_status s = rotq_gptq_prepare(H, n, &c->o->gptq, &hinv);
    if (s != ROTQ_OK) return rotq_fail_context(s, "layer %d, %s input", l, rotq_role_name(roles[0]));
    for (int i = 0; i < n_roles && s == ROTQ_OK; i++) {
        rotq_tensor *t = rotq_model_role(c->m, roles[i], l);
        if (!t) continue;
        int64_t rows = rotq_tensor_numel(t) / n;
        double loss = 0.0;
        s = rotq_gptq_quantize((float *)t->data, rows, n, &hinv, &c->fmt, &c->o->gptq, &loss);
        if (s != ROTQ_OK) { s = rotq_fail_context(s, "%s", t->name); break; }
        c->rep->n_linears++;
        c->rep->n_params += rows * n;
        c->rep->gptq_loss += loss;
    }
    c->rep->n_dead += hinv.n_dead;
    rotq_gptq_hinv_free(&hinv);
    c->t_quant += rotq_now_s() - t0;
    return s;
}

static rotq_status walk_layer(walk *c, int32_t l) {
    int64_t T = c->T, d = c->d, qd = c->qd;
    const rotq_layer_weights *w = &c->r->layers[l];
    float *X = c->X;

    /* A: q, k, v */
    memset(c->H, 0, (size_t)(d * d) * sizeof(double));
    for (int64_t s = 0; s < c->ns; s++) {
        ROTQ_TRY(attn_input(c, l, X + s * T * d));
        gram_add(c, c->xn, d);
    }
    rotq_role qkv[4] = {ROLE_QKV, ROLE_Q, ROLE_K, ROLE_V};
    ROTQ_TRY(quantize_group(c, l, d, qkv, 4));

    /* B: o_proj */
    memset(c->H, 0, (size_t)(qd * qd) * sizeof(double));
    for (int64_t s = 0; s < c->ns; s++) {
        ROTQ_TRY(attn_input(c, l, X + s * T * d));
        ROTQ_TRY(attention(c, l));
        gram_add(c, c->att, qd);
        if (c->att_store) memcpy(c->att_store + s * T * qd, c->att, (size_t)(T * qd) * sizeof(float));
    }
    rotq_role o_role[1] = {ROLE_O};
    ROTQ_TRY(quantize_group(c, l, qd, o_role, 1));

    /* C: residual after attention; gate and up */
    memset(c->H, 0, (size_t)(d * d) * sizeof(double));
    for (int64_t s = 0; s < c->ns; s++) {
        float *xs = X + s * T * d;
        const float *att = c->att;
        if (c->att_store) {
            att = c->att_store + s * T * qd;
        } else {
            ROTQ_TRY(attn_input(c, l, xs));
            ROTQ_TRY(attention(c, l));
        }
        rotq_linear_forward(xs, att, w->wo, w->bo, T, qd, d, true);
        ROTQ_TRY(mlp_input(c, l, xs));
        gram_add(c, c->xn, d);
    }
    rotq_role gu[3] = {ROLE_GATE_UP, ROLE_GATE, ROLE_UP};
    ROTQ_TRY(quantize_group(c, l, d, gu, 3));

    /* D: down_proj */
    memset(c->H, 0, (size_t)(c->ff * c->ff) * sizeof(double));
    for (int64_t s = 0; s < c->ns; s++) {
        ROTQ_TRY(mlp_input(c, l, X + s * T * d));
        ROTQ_TRY(mlp_hidden(c, l));
        gram_add(c, c->ff1, c->ff);
        if (c->ff_store) memcpy(c->ff_store + s * T * c->ff, c->ff1, (size_t)(T * c->ff) * sizeof(float));
    }
    rotq_role down[1] = {ROLE_DOWN};
    ROTQ_TRY(quantize_group(c, l, c->ff, down, 1));

    /* E: the layer's output with every weight quantized */
    for (int64_t s = 0; s < c->ns; s++) {
        float *xs = X + s * T * d;
        const float *ff = c->ff1;
        if (c->ff_store) {
            ff = c->ff_store + s * T * c->ff;
        } else {
            ROTQ_TRY(mlp_input(c, l, xs));
            ROTQ_TRY(mlp_hidden(c, l));
        }
        rotq_linear_forward(xs, ff, w->wdown, w->bdown, T, c->ff, d, true);
    }
    return ROTQ_OK;
}

rotq_status rotq_gptq_model(rotq_model *m, rotq_runner *r, const int32_t *windows, int64_t ns, int64_t T,
                            const rotq_quant_options *o, rotq_quant_report *rep) {
    ROTQ_TRY(rotq_runner_check_ready(r));
    const rotq_hparams *hp = &r->hp;
    walk c;
    memset(&c, 0, sizeof c);
    c.m = m;
    c.r = r;
    c.o = o;
    c.rep = rep;
    c.fmt = rotq_wq_format_make(o->w_bits, o->w_asym, o->w_group, o->w_clip);
    ROTQ_TRY(rotq_wq_format_check(&c.fmt));
    c.ns = ns;
    c.T = T;
    c.d = hp->hidden;
    c.qd = hp->n_heads * hp->head_dim;
    c.kvd = hp->n_kv_heads * hp->head_dim;
    c.ff = hp->intermediate;
    c.half = hp->rotary_dim / 2;
    if (ns <= 0 || T <= 0) return rotq_fail(ROTQ_ERR_ARG, "calib: %lld windows of %lld tokens", (long long)ns, (long long)T);
    for (int64_t i = 0; i < ns * T; i++)
        if (windows[i] < 0 || windows[i] >= hp->vocab)
            return rotq_fail(ROTQ_ERR_ARG, "calib: token id %d outside the vocabulary (%lld)", windows[i], (long long)hp->vocab);
    c.q_block = rotq_attention_block(T, hp->n_heads, T);
    int64_t hmax = c.d > c.qd ? c.d : c.qd;
    if (c.ff > hmax) hmax = c.ff;
    struct { float **p; int64_t n; } bufs[] = {
        {&c.X, ns * T * c.d}, {&c.xn, T * c.d}, {&c.q, T * c.qd}, {&c.k, T * c.kvd}, {&c.v, T * c.kvd},
        {&c.att, T * c.qd}, {&c.ff1, T * c.ff}, {&c.ff2, T * c.ff}, {&c.scores, hp->n_heads * c.q_block * T},
        {&c.cos_t, T * c.half}, {&c.sin_t, T * c.half}, {&c.gram, hmax * hmax},
    };
    rotq_status s = ROTQ_OK;
    for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++) {
        *bufs[i].p = malloc((size_t)(bufs[i].n > 0 ? bufs[i].n : 1) * sizeof(float));
        if (!*bufs[i].p) {
            s = rotq_fail(ROTQ_ERR_NOMEM, "calib: out of memory for %lld calibration floats", (long long)bufs[i].n);
            goto done;
        }
    }
    c.H = malloc((size_t)(hmax * hmax) * sizeof(double));
    if (!c.H) { s = rotq_fail(ROTQ_ERR_NOMEM, "calib: out of memory for a %lld² Hessian", (long long)hmax); goto done; }
    /* keeping stage B's attention outputs and stage D's down_proj inputs saves recomputing them in
     * stages C and E (a third of the calibration forward) when they fit in the cache budget */
    double budget = (double)o->calib_cache_mb * 1024.0 * 1024.0;
    double att_bytes = (double)(ns * T * c.qd) * sizeof(float), ff_bytes = (double)(ns * T * c.ff) * sizeof(float);
    if (att_bytes <= budget) c.att_store = malloc((size_t)att_bytes);
    if (c.att_store) budget -= att_bytes;
    if (ff_bytes <= budget) c.ff_store = malloc((size_t)ff_bytes);

    if (r->pos_embed && T > hp->max_pos) {
        s = rotq_fail(ROTQ_ERR_ARG, "calib: windows of %lld tokens exceed the model's %lld learned positions", (long long)T,
                      (long long)hp->max_pos);
        goto done;
    }
    if (r->rope) rotq_rope_tables(r->inv_freq, c.half, 0, T, c.cos_t, c.sin_t);
    for (int64_t sm = 0; sm < ns; sm++) rotq_runner_embed(r, windows + sm * T, T, 0, c.X + sm * T * c.d);

    double t_start = rotq_now_s();
    for (int32_t l = 0; l < hp->n_layers; l++) {
        double t0 = rotq_now_s(), q0 = c.t_quant, loss0 = rep->gptq_loss;
        if ((s = walk_layer(&c, l)) != ROTQ_OK) goto done;
        if (o->verbose)
            rotq_log(ROTQ_LOG_INFO, "gptq: layer %d/%lld  %.1f s (quantize %.1f s)  loss %.4g\n", l + 1, (long long)hp->n_layers,
                    rotq_now_s() - t0, c.t_quant - q0, rep->gptq_loss - loss0);
    }
    rep->quant_seconds += c.t_quant;
    rep->calib_seconds += rotq_now_s() - t_start - c.t_quant;
    rep->calib_tokens = ns * T;
done:
    for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++) free(*bufs[i].p);
    free(c.H);
    free(c.att_store);
    free(c.ff_store);
    return s;
}
