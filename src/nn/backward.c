/* The backward pass: one reference function per forward op on raw float arrays, then a decoder
 * layer's and the model's backward, which mirror rotq_layer_forward step by step (llm.c style).
 * A training-mode forward keeps what these read (rotq_layer_acts); the weights are the runner's.
 * Products go through BLAS over the whole window; row reductions are summed in double; OpenMP only
 * around element-wise loops, never around a BLAS call. Shapes: T tokens, d hidden, qd = heads·hd,
 * kvd = kv_heads·hd, ff intermediate. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <cblas.h>

#include "core/files.h"
#include "nn/nn.h"

/* ---- ops ---------------------------------------------------------------------------------------- */

void rotq_linear_backward(float *dx, float *dw, float *db, const float *dy, const float *x, const float *w, int64_t T,
                          int64_t n_in, int64_t n_out, bool accumulate_dx) {
    if (dx) /* dx [T, n_in] = dy [T, n_out] · w [n_out, n_in] */
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)T, (int)n_in, (int)n_out, 1.0f, dy, (int)n_out, w,
                    (int)n_in, accumulate_dx ? 1.0f : 0.0f, dx, (int)n_in);
    if (dw) /* dw [n_out, n_in] += dyᵀ · x */
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, (int)n_out, (int)n_in, (int)T, 1.0f, dy, (int)n_out, x,
                    (int)n_in, 1.0f, dw, (int)n_in);
    if (db)
        for (int64_t o = 0; o < n_out; o++) {
            double s = 0;
            for (int64_t t = 0; t < T; t++) s += dy[t * n_out + o];
            db[o] += (float)s;
        }
}

/* Both norms: x̂ = (x − μ)·rstd (μ = 0 for RMSNorm), y = x̂·g + b with g = w + offset. Then
 * dx = rstd·(ĝ − x̂·mean(ĝ·x̂) [− mean(ĝ) for LayerNorm]) with ĝ = dy·g. */
static void norm_backward(bool center, float *dx, float *dw, float *db, const float *dy, const float *x,
                          const float *rstd, const float *w, float offset, int64_t T, int64_t d) {
#pragma omp parallel for schedule(static) if (T * d > 65536)
    for (int64_t t = 0; t < T; t++) {
        const float *xr = x + t * d, *gr = dy + t * d;
        double mu = 0;
        if (center)
            for (int64_t i = 0; i < d; i++) mu += xr[i];
        mu /= (double)d;
        double r = rstd[t], m_g = 0, m_gx = 0;
        for (int64_t i = 0; i < d; i++) {
            double g = gr[i] * ((w ? w[i] : 1.0) + offset), xh = (xr[i] - mu) * r;
            m_g += g, m_gx += g * xh;
        }
        m_g /= (double)d, m_gx /= (double)d;
        float *dr = dx + t * d;
        for (int64_t i = 0; i < d; i++) {
            double g = gr[i] * ((w ? w[i] : 1.0) + offset), xh = (xr[i] - mu) * r;
            dr[i] += (float)(r * (g - xh * m_gx - (center ? m_g : 0.0)));
        }
    }
    if (dw || db)
        for (int64_t i = 0; i < d; i++) {
            double sw = 0, sb = 0;
            for (int64_t t = 0; t < T; t++) {
                double mu = 0;
                if (center && dw)
                    for (int64_t j = 0; j < d; j++) mu += x[t * d + j] / (double)d;
                sw += dy[t * d + i] * (x[t * d + i] - mu) * rstd[t];
                sb += dy[t * d + i];
            }
            if (dw) dw[i] += (float)sw;
            if (db) db[i] += (float)sb;
        }
}

void rotq_rmsnorm_backward(float *dx, float *dw, float *db, const float *dy, const float *x, const float *rstd,
                           const float *w, float offset, int64_t T, int64_t d) {
    norm_backward(false, dx, dw, db, dy, x, rstd, w, offset, T, d);
}

void rotq_layernorm_backward(float *dx, float *dw, float *db, const float *dy, const float *x, const float *rstd,
                             const float *w, float offset, int64_t T, int64_t d) {
    norm_backward(true, dx, dw, db, dy, x, rstd, w, offset, T, d);
}

void rotq_rope_backward(float *g, const float *cos_t, const float *sin_t, int64_t T, int64_t n_heads, int64_t head_dim,
                        int64_t half) {
#pragma omp parallel for schedule(static) if (T * n_heads * half > 32768)
    for (int64_t t = 0; t < T; t++) {
        const float *c = cos_t + t * half, *s = sin_t + t * half;
        for (int64_t h = 0; h < n_heads; h++) {
            float *v = g + (t * n_heads + h) * head_dim;
            for (int64_t i = 0; i < half; i++) { /* the forward's 2×2 rotation, transposed */
                float a = v[i], b = v[i + half];
                v[i] = a * c[i] + b * s[i];
                v[i + half] = b * c[i] - a * s[i];
            }
        }
    }
}

/* Per head h (KV group g = h / (nh/nkv)), with S = scale·q_h·k_gᵀ and P = exp(S − lse) causal:
 * dv_g += Pᵀ·dout_h, dP = dout_h·v_gᵀ, dS = P·(dP − rowsum(dout_h·out_h)), dq_h = scale·dS·k_g,
 * dk_g += scale·dSᵀ·q_h. */
void rotq_attention_backward(float *dq, float *dk, float *dv, const float *dout, const float *out, const float *q,
                             const float *k, const float *v, const float *lse, int64_t T, int64_t n_heads, int64_t n_kv,
                             int64_t head_dim, float scale, float *work) {
    int64_t hd = head_dim, qd = n_heads * hd, kvd = n_kv * hd, group = n_heads / n_kv;
    float *P = work, *dP = work + T * T;
    memset(dk, 0, (size_t)(T * kvd) * sizeof(float));
    memset(dv, 0, (size_t)(T * kvd) * sizeof(float));
    for (int64_t h = 0; h < n_heads; h++) {
        int64_t g = h / group;
        const float *qh = q + h * hd, *kg = k + g * hd, *vg = v + g * hd, *oh = dout + h * hd, *outh = out + h * hd;
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)T, (int)T, (int)hd, scale, qh, (int)qd, kg, (int)kvd,
                    0.0f, P, (int)T);
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)T, (int)T, (int)hd, 1.0f, oh, (int)qd, vg, (int)kvd,
                    0.0f, dP, (int)T);
        const float *lh = lse + h * T;
#pragma omp parallel for schedule(static) if (T * T > 65536)
        for (int64_t t = 0; t < T; t++) {
            float *pr = P + t * T, *dr = dP + t * T;
            double D = 0;
            for (int64_t i = 0; i < hd; i++) D += (double)oh[t * qd + i] * outh[t * qd + i];
            for (int64_t j = 0; j < T; j++) {
                float p = j <= t ? expf(pr[j] - lh[t]) : 0.0f;
                pr[j] = p;
                dr[j] = p * (float)(dr[j] - D);
            }
        }
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, (int)T, (int)hd, (int)T, 1.0f, P, (int)T, oh, (int)qd, 1.0f,
                    dv + g * hd, (int)kvd);
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)T, (int)hd, (int)T, scale, dP, (int)T, kg, (int)kvd,
                    0.0f, dq + h * hd, (int)qd);
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, (int)T, (int)hd, (int)T, scale, dP, (int)T, qh, (int)qd, 1.0f,
                    dk + g * hd, (int)kvd);
    }
}

void rotq_swiglu_backward(float *dgate, float *dup, const float *dout, const float *gate, const float *up, int64_t n) {
#pragma omp parallel for schedule(static) if (n > 65536)
    for (int64_t i = 0; i < n; i++) {
        double g = gate[i], sig = 1.0 / (1.0 + exp(-g)), silu = g * sig;
        dup[i] = (float)(dout[i] * silu);
        dgate[i] = (float)(dout[i] * up[i] * sig * (1.0 + g * (1.0 - sig)));
    }
}

void rotq_act_backward(rotq_mlp_kind act, float *dx, const float *dout, const float *x, int64_t n) {
#pragma omp parallel for schedule(static) if (n > 65536)
    for (int64_t i = 0; i < n; i++) {
        double v = x[i], dd;
        switch (act) {
        case ROTQ_MLP_RELU: dd = v > 0 ? 1.0 : 0.0; break;
        case ROTQ_MLP_GELU: /* Φ(v) + v·φ(v) */
            dd = 0.5 * (1.0 + erf(v * 0.70710678118654752)) + v * exp(-0.5 * v * v) * 0.39894228040143268;
            break;
        case ROTQ_MLP_GELU_TANH: {
            double c = 0.79788456080286536, u = c * (v + 0.044715 * v * v * v), th = tanh(u);
            dd = 0.5 * (1.0 + th) + 0.5 * v * (1.0 - th * th) * c * (1.0 + 3.0 * 0.044715 * v * v);
            break;
        }
        case ROTQ_MLP_QUICK_GELU: { /* s + 1.702·v·s·(1 − s), s = sigmoid(1.702·v) */
            double sg = 1.0 / (1.0 + exp(-1.702 * v));
            dd = sg + 1.702 * v * sg * (1.0 - sg);
            break;
        }
        default: dd = 1.0; break;
        }
        dx[i] = (float)(dout[i] * dd);
    }
}

void rotq_embedding_backward(float *dembed, const float *dx, const int32_t *ids, int64_t T, int64_t d) {
    for (int64_t t = 0; t < T; t++)
        for (int64_t i = 0; i < d; i++) dembed[(int64_t)ids[t] * d + i] += dx[t * d + i];
}

/* ---- loss ------------------------------------------------------------------------------------------ */

enum { LOSS_CHUNK = 64 };

rotq_status rotq_nn_loss_backward(const rotq_runner *r, rotq_loss_kind kind, const float *hidden, const float *teacher,
                                  const int32_t *targets, int64_t T, float *dhidden, double *loss, int64_t *counted) {
    int64_t d = r->hp.hidden, V = r->hp.vocab, n = 0;
    if (kind == ROTQ_LOSS_KL && !teacher) return rotq_fail(ROTQ_ERR_ARG, "nn: a KL loss needs the float model's hidden states");
    for (int64_t t = 0; t < T; t++)
        if (targets[t] >= V) return rotq_fail(ROTQ_ERR_ARG, "nn: target %d at row %lld outside the vocabulary", targets[t], (long long)t);
        else n += targets[t] >= 0;
    if (counted) *counted = n;
    if (loss) *loss = 0;
    memset(dhidden, 0, (size_t)(T * d) * sizeof(float));
    if (n == 0) return ROTQ_OK;
    float *lg = malloc((size_t)(LOSS_CHUNK * V) * sizeof(float) * (kind == ROTQ_LOSS_KL ? 2 : 1));
    if (!lg) return rotq_fail(ROTQ_ERR_NOMEM, "nn: out of memory for the logits of %d rows", LOSS_CHUNK);
    float *tl = kind == ROTQ_LOSS_KL ? lg + LOSS_CHUNK * V : NULL;
    double total = 0;
    for (int64_t c0 = 0; c0 < T; c0 += LOSS_CHUNK) {
        int64_t rows = T - c0 < LOSS_CHUNK ? T - c0 : LOSS_CHUNK;
        r->be->linear(lg, hidden + c0 * d, r->lm_head, r->lm_head_b, rows, d, V, false);
        if (tl) r->be->linear(tl, teacher + c0 * d, r->lm_head, r->lm_head_b, rows, d, V, false);
        double part = 0;
#pragma omp parallel for schedule(static) reduction(+ : part)
        for (int64_t i = 0; i < rows; i++) {
            float *row = lg + i * V;
            int32_t tg = targets[c0 + i];
            if (tg < 0) { memset(row, 0, (size_t)V * sizeof(float)); continue; }
            double mx = -INFINITY, s = 0;
            for (int64_t j = 0; j < V; j++) mx = row[j] > mx ? row[j] : mx;
            for (int64_t j = 0; j < V; j++) s += exp(row[j] - mx);
            double lse = mx + log(s);
            if (!tl) {
                part += lse - row[tg];
                for (int64_t j = 0; j < V; j++) row[j] = (float)((exp(row[j] - lse) - (j == tg)) / (double)n);
            } else { /* KL(p_t ‖ p) = Σ p_t (log p_t − log p);  d/dlogit = p − p_t */
                float *trow = tl + i * V;
                double tmx = -INFINITY, ts = 0;
                for (int64_t j = 0; j < V; j++) tmx = trow[j] > tmx ? trow[j] : tmx;
                for (int64_t j = 0; j < V; j++) ts += exp(trow[j] - tmx);
                double tlse = tmx + log(ts), kl = 0;
                for (int64_t j = 0; j < V; j++) {
                    double lpt = trow[j] - tlse, lp = row[j] - lse, pt = exp(lpt);
                    kl += pt * (lpt - lp);
                    row[j] = (float)((exp(lp) - pt) / (double)n);
                }
                part += kl;
            }
        }
        total += part;
        /* dhidden rows = dlogits · lm_head */
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)rows, (int)d, (int)V, 1.0f, lg, (int)V, r->lm_head,
                    (int)d, 0.0f, dhidden + c0 * d, (int)d);
    }
    free(lg);
    if (loss) *loss = total / (double)n;
    return ROTQ_OK;
}

/* ---- the layer and the model ------------------------------------------------------------------------ */

static bool hook_at(const rotq_hooks *h, rotq_grad_site site) {
    switch (site) {
    case ROTQ_GRAD_LINEAR_INPUT: return h->linear_input != NULL;
    case ROTQ_GRAD_Q:
    case ROTQ_GRAD_K: return h->qk_rope != NULL;
    case ROTQ_GRAD_V: return h->v != NULL;
    default: return h->down_input != NULL;
    }
}

/* The transforms at a site, last first: g from dL/d(post) to dL/d(raw). */
static rotq_status site_backward(const rotq_runner *r, rotq_grad_site site, int32_t l, rotq_role role, float *g,
                                 const float *raw, const float *post, int64_t rows, int64_t cols) {
    for (int i = r->n_tf - 1; i >= 0; i--) {
        const rotq_hooks *h = &r->tf[i].hooks;
        if (hook_at(h, site) && h->grad) ROTQ_TRY(h->grad(h->ctx, site, l, role, g, raw, post, rows, cols));
    }
    return ROTQ_OK;
}

/* The down_proj input chain: down_input hooks ran first, then ROLE_DOWN's linear_input ones. */
static rotq_status down_backward(const rotq_runner *r, int32_t l, float *g, const rotq_layer_acts *a, int64_t T) {
    int64_t ff = r->hp.intermediate;
    ROTQ_TRY(site_backward(r, ROTQ_GRAD_LINEAR_INPUT, l, ROLE_DOWN, g, a->ff_raw, a->ff, T, ff));
    return site_backward(r, ROTQ_GRAD_DOWN_INPUT, l, ROLE_DOWN, g, a->ff_raw, a->ff, T, ff);
}

/* The backward of a decoder linear: the transform that took its product, else dx (+)= dy·w. */
static rotq_status linear_bwd(const rotq_runner *r, int32_t l, rotq_role role, float *dx, const float *dy, const float *x,
                              const float *w, int64_t T, int64_t n_in, int64_t n_out, bool accumulate) {
    for (int i = 0; i < r->n_tf; i++) {
        const rotq_hooks *h = &r->tf[i].hooks;
        if (!h->linear_grad) continue;
        bool done = false;
        ROTQ_TRY(h->linear_grad(h->ctx, l, role, dx, dy, x, T, n_in, n_out, accumulate, &done));
        if (done) return ROTQ_OK;
    }
    rotq_linear_backward(dx, NULL, NULL, dy, x, w, T, n_in, n_out, accumulate);
    return ROTQ_OK;
}

typedef struct grad_ws {
    float *dxn, *dq, *dk, *dv, *datt, *dff, *dgate, *dup, *attn, *dqk_pre, *rstd_heads;
} grad_ws;

/* The per-head q or k norm: g [rows·hd] holds dL/d(norm output) in, dL/d(its input) out; x the input the
 * forward kept (rows = T·heads). rstd and tmp: rows and rows·hd floats of scratch. */
static void head_norm_bwd(const rotq_runner *r, float *g, const float *x, const float *w, int64_t rows, float *rstd,
                          float *tmp) {
    int64_t hd = r->hp.head_dim;
    rotq_norm_rstd_rows(x, rows, hd, r->hp.norm_eps, false, rstd);
    memset(tmp, 0, (size_t)(rows * hd) * sizeof(float));
    rotq_rmsnorm_backward(tmp, NULL, NULL, g, x, rstd, w, r->norm_offset, rows, hd);
    memcpy(g, tmp, (size_t)(rows * hd) * sizeof(float));
}

static void norm_bwd(const rotq_runner *r, float *dx, const float *dy, const float *x, const float *rstd, const float *w,
                     int64_t T) {
    if (r->norm == ROTQ_NORM_LAYER) rotq_layernorm_backward(dx, NULL, NULL, dy, x, rstd, w, r->norm_offset, T, r->hp.hidden);
    else rotq_rmsnorm_backward(dx, NULL, NULL, dy, x, rstd, w, r->norm_offset, T, r->hp.hidden);
}

/* dx [T, d]: dL/d(layer output) in, dL/d(layer input) out — the steps of layer.c, last first. */
static rotq_status layer_backward(const rotq_runner *r, int32_t l, const rotq_layer_acts *a, float *dx, const grad_ws *ws,
                                  int64_t T) {
    const rotq_hparams *hp = &r->hp;
    const rotq_layer_weights *w = &r->layers[l];
    int64_t d = hp->hidden, nh = hp->n_heads, nkv = hp->n_kv_heads, hd = hp->head_dim, ff = hp->intermediate;
    int64_t qd = nh * hd, kvd = nkv * hd;
    /* MLP_OUT: x ← x_mid + ff·Wdownᵀ */
    ROTQ_TRY(linear_bwd(r, l, ROLE_DOWN, ws->dff, dx, a->ff, w->wdown, T, ff, d, false));
    /* MLP_HIDDEN: transforms at down's input, the activation, the gate/up products */
    ROTQ_TRY(down_backward(r, l, ws->dff, a, T));
    if (r->gated) {
        rotq_swiglu_backward(ws->dgate, ws->dup, ws->dff, a->gate, a->up, T * ff);
        ROTQ_TRY(linear_bwd(r, l, ROLE_GATE, ws->dxn, ws->dgate, a->xn_mlp, w->wgate, T, d, ff, false));
        ROTQ_TRY(linear_bwd(r, l, ROLE_UP, ws->dxn, ws->dup, a->xn_mlp, w->wup, T, d, ff, true));
    } else {
        rotq_act_backward((rotq_mlp_kind)hp->mlp_act, ws->dup, ws->dff, a->up, T * ff);
        ROTQ_TRY(linear_bwd(r, l, ROLE_UP, ws->dxn, ws->dup, a->xn_mlp, w->wup, T, d, ff, false));
    }
    /* MLP_NORM */
    ROTQ_TRY(site_backward(r, ROTQ_GRAD_LINEAR_INPUT, l, rotq_runner_mlp_role(r, l), ws->dxn, a->xn_mlp_raw, a->xn_mlp, T, d));
    norm_bwd(r, dx, ws->dxn, a->x_mid, a->rstd_mlp, w->mlp_norm, T);
    /* ATTN_OUT: x_mid = x_in + att·Woᵀ */
    ROTQ_TRY(linear_bwd(r, l, ROLE_O, ws->datt, dx, a->att, w->wo, T, qd, d, false));
    /* ATTENTION: o's input transforms, attention, qk/v transforms, RoPE, the q/k/v products */
    ROTQ_TRY(site_backward(r, ROTQ_GRAD_LINEAR_INPUT, l, ROLE_O, ws->datt, a->att_raw, a->att, T, qd));
    rotq_attention_backward(ws->dq, ws->dk, ws->dv, ws->datt, a->att_raw, a->q, a->k, a->v, a->lse, T, nh, nkv, hd,
                            r->attn_scale, ws->attn);
    ROTQ_TRY(site_backward(r, ROTQ_GRAD_V, l, ROLE_V, ws->dv, a->v_raw, a->v, T, kvd));
    ROTQ_TRY(site_backward(r, ROTQ_GRAD_K, l, ROLE_K, ws->dk, a->k_raw, a->k, T, kvd));
    ROTQ_TRY(site_backward(r, ROTQ_GRAD_Q, l, ROLE_Q, ws->dq, a->q_raw, a->q, T, qd));
    if (r->rope) {
        rotq_rope_backward(ws->dq, r->rope_cos, r->rope_sin, T, nh, hd, hp->rotary_dim / 2);
        rotq_rope_backward(ws->dk, r->rope_cos, r->rope_sin, T, nkv, hd, hp->rotary_dim / 2);
    }
    if (w->q_norm) { /* Qwen3: the per-head norms before RoPE */
        head_norm_bwd(r, ws->dq, a->q_pre, w->q_norm, T * nh, ws->rstd_heads, ws->dqk_pre);
        head_norm_bwd(r, ws->dk, a->k_pre, w->k_norm, T * nkv, ws->rstd_heads, ws->dqk_pre);
    }
    ROTQ_TRY(linear_bwd(r, l, ROLE_Q, ws->dxn, ws->dq, a->xn_attn, w->wq, T, d, qd, false));
    ROTQ_TRY(linear_bwd(r, l, ROLE_K, ws->dxn, ws->dk, a->xn_attn, w->wk, T, d, kvd, true));
    ROTQ_TRY(linear_bwd(r, l, ROLE_V, ws->dxn, ws->dv, a->xn_attn, w->wv, T, d, kvd, true));
    /* ATTN_NORM */
    ROTQ_TRY(site_backward(r, ROTQ_GRAD_LINEAR_INPUT, l, w->fused_qkv ? ROLE_QKV : ROLE_Q, ws->dxn, a->xn_attn_raw,
                           a->xn_attn, T, d));
    norm_bwd(r, dx, ws->dxn, a->x_in, a->rstd_attn, w->attn_norm, T);
    return ROTQ_OK;
}

rotq_status rotq_nn_backward(rotq_runner *r, const float *hidden, float *dhidden, float *dx0) {
    rotq_activations *a = r->train;
    if (!a) return rotq_fail(ROTQ_ERR_ARG, "nn: a backward needs a training-mode forward first (rotq_runner_set_training)");
    for (int i = 0; i < r->n_tf; i++) {
        const rotq_transform *t = &r->tf[i];
        bool straight = t->kind == ROTQ_TF_FAKE_QUANT || t->kind == ROTQ_TF_STATS;
        if ((t->hooks.linear && !t->hooks.linear_grad) || (!straight && !t->hooks.grad))
            return rotq_fail(ROTQ_ERR_UNSUPPORTED, "nn: transform \"%s\" has no backward (training runs fake quantizers, "
                             "online and learned rotations; not integer products)", t->name);
    }
    const rotq_hparams *hp = &r->hp;
    int64_t T = a->T, d = hp->hidden, qd = hp->n_heads * hp->head_dim, kvd = hp->n_kv_heads * hp->head_dim;
    int64_t ff = hp->intermediate;
    int64_t need = T * (2 * d + 3 * qd + 2 * kvd + 3 * ff + hp->n_heads) + 2 * T * T;
    float *block = malloc((size_t)need * sizeof(float));
    if (!block) return rotq_fail(ROTQ_ERR_NOMEM, "nn: out of memory for the backward of %lld tokens", (long long)T);
    float *p = block, *dx;
    grad_ws ws;
#define TAKE(field, n) (field = p, p += (n))
    TAKE(dx, T * d), TAKE(ws.dxn, T * d), TAKE(ws.dq, T * qd), TAKE(ws.datt, T * qd), TAKE(ws.dk, T * kvd);
    TAKE(ws.dv, T * kvd), TAKE(ws.dff, T * ff), TAKE(ws.dgate, T * ff), TAKE(ws.dup, T * ff), TAKE(ws.attn, 2 * T * T);
    TAKE(ws.dqk_pre, T * qd), TAKE(ws.rstd_heads, T * hp->n_heads);
#undef TAKE
    /* lm_head's input transforms, then the final norm */
    rotq_status s = site_backward(r, ROTQ_GRAD_LINEAR_INPUT, -1, ROLE_LM_HEAD, dhidden, a->hidden_raw, hidden, T, d);
    if (s == ROTQ_OK) {
        memset(dx, 0, (size_t)(T * d) * sizeof(float));
        norm_bwd(r, dx, dhidden, a->x_final, a->rstd_final, r->final_norm, T);
        /* the tables of positions 0..T-1 again: another forward on this runner may have reused the scratch */
        rotq_runner_rope_tables(r, 0, T, r->rope_cos, r->rope_sin, r->rope_cos_l, r->rope_sin_l);
    }
    for (int32_t l = (int32_t)hp->n_layers - 1; s == ROTQ_OK && l >= 0; l--) {
        s = rotq_check_cancel("backward");
        if (s == ROTQ_OK) s = layer_backward(r, l, &a->layers[l], dx, &ws, T);
    }
    if (s == ROTQ_OK && dx0) memcpy(dx0, dx, (size_t)(T * d) * sizeof(float));
    free(block);
    return s;
}
