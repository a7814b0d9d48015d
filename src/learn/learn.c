/* Learned rotations (SpinQuant): R1 and R2 learned by Cayley SGD through the fake-quantized model.
 *
 * The weights stay frozen and unrotated (norms fused, R3/R4 in place). A rotation changes the
 * model's function only where a quantizer acts, so the training runner applies it there: the
 * quantizer's input x becomes x·R, its output q comes back as q·Rᵀ. This is exactly the rotated
 * model (W·R1 for a linear reading the stream computes (x·R1)·(W·R1)ᵀ = x·Wᵀ elsewhere), costs
 * O(T·n²) per site instead of re-rotating every weight each step, and gives dL/dR from values the
 * training forward keeps anyway. With SpinQuant's straight-through quantizer (the gradient passes
 * through unchanged), a site y = q(x·R)·Rᵀ contributes dL/dR = xᵀ·(g·R) + gᵀ·(q) where g = dL/dy
 * and q the quantizer's output in the rotated basis (= y·R). */
#include <cblas.h>
#include <errno.h>
#include <jansson.h>
#include <lapacke.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "core/clock.h"
#include "core/files.h"
#include "core/dist.h"
#include "learn/learn.h"
#include "rotate/fuse.h"
#include "rotate/online.h"
#include "rotate/rotate.h"

/* ---- the rotations as transforms -------------------------------------------------------------- */

void rotq_learned_free(rotq_learned *lr) {
    if (!lr) return;
    free(lr->r1), free(lr->g1), free(lr->r2), free(lr->g2), free(lr->r1f), free(lr->r2f), free(lr->tmp);
    free(lr->weff), free(lr->pv), free(lr->mo), free(lr->bv), free(lr->wdelta);
    free(lr);
}

static rotq_status build_weights(rotq_learned *lr);

rotq_status rotq_learned_sync(rotq_learned *lr) {
    if (lr->r1)
        for (int64_t i = 0; i < lr->d * lr->d; i++) lr->r1f[i] = (float)lr->r1[i];
    if (lr->r2)
        for (int64_t i = 0; i < lr->n_layers * lr->head_dim * lr->head_dim; i++) lr->r2f[i] = (float)lr->r2[i];
    return lr->wq ? build_weights(lr) : ROTQ_OK;
}

void rotq_learned_zero_grad(rotq_learned *lr) {
    if (lr->g1) memset(lr->g1, 0, (size_t)(lr->d * lr->d) * sizeof(double));
    if (lr->g2) memset(lr->g2, 0, (size_t)(lr->n_layers * lr->head_dim * lr->head_dim) * sizeof(double));
}

rotq_status rotq_learned_new(const rotq_runner *r, const rotq_fakequant *fq, const double *r1, const double *r2,
                             rotq_learned **out) {
    *out = NULL;
    rotq_learned *lr = calloc(1, sizeof *lr);
    if (!lr) return rotq_fail(ROTQ_ERR_NOMEM, "learn: out of memory");
    lr->d = r->hp.hidden, lr->head_dim = r->hp.head_dim, lr->n_layers = r->hp.n_layers;
    int64_t d2 = lr->d * lr->d, h2 = lr->n_layers * lr->head_dim * lr->head_dim;
    bool ok = true;
    if (r1) {
        lr->r1 = malloc((size_t)d2 * sizeof(double)), lr->g1 = calloc((size_t)d2, sizeof(double));
        lr->r1f = malloc((size_t)d2 * sizeof(float));
        ok = lr->r1 && lr->g1 && lr->r1f;
        if (ok) memcpy(lr->r1, r1, (size_t)d2 * sizeof(double));
    }
    if (ok && r2) {
        lr->r2 = malloc((size_t)h2 * sizeof(double)), lr->g2 = calloc((size_t)h2, sizeof(double));
        lr->r2f = malloc((size_t)h2 * sizeof(float));
        ok = lr->r2 && lr->g2 && lr->r2f;
        if (ok) memcpy(lr->r2, r2, (size_t)h2 * sizeof(double));
    }
    if (!ok) {
        rotq_learned_free(lr);
        return rotq_fail(ROTQ_ERR_NOMEM, "learn: out of memory for the rotations");
    }
    bool act = rotq_act_on(&fq->act);
    lr->at_stream = r1 && act;
    lr->at_lm_head = r1 && act && fq->act_lm_head;
    lr->at_o = r2 && act;
    lr->at_v = r2 && rotq_act_on(&fq->v);
    rotq_learned_sync(lr);
    *out = lr;
    return ROTQ_OK;
}

/* The rotation at a site: n, its float and double matrices and its gradient (NULL: none here). */
typedef struct site_rot {
    int64_t n;
    const float *f;
    const double *r;
    double *g;
} site_rot;

static bool reads_stream(rotq_role role) {
    return role == ROLE_Q || role == ROLE_QKV || role == ROLE_GATE || role == ROLE_GATE_UP || role == ROLE_UP;
}

/* The rotation the "into" (out_side false) or "out of" (true) transform applies at a site. Float
 * weights: both at every quantizer the rotation reaches. Weights quantized in the loop: the products
 * consume rotated inputs (their weights hold the rotations), so readers of the stream and o_proj
 * take only the way in, and V, which its product makes in R2's basis, only the way back. */
static site_rot rot_at(const rotq_learned *lr, rotq_grad_site site, int32_t layer, rotq_role role, bool out_side) {
    site_rot s = {0};
    bool r1 = false, r2 = false;
    if (!lr->wq) {
        if (site == ROTQ_GRAD_V) r2 = lr->at_v;
        else if (site == ROTQ_GRAD_LINEAR_INPUT) {
            if (role == ROLE_O) r2 = lr->at_o;
            else if (role == ROLE_LM_HEAD) r1 = lr->at_lm_head;
            else r1 = lr->at_stream && reads_stream(role);
        }
    } else if (site == ROTQ_GRAD_V) {
        r2 = out_side && lr->r2;
    } else if (site == ROTQ_GRAD_LINEAR_INPUT) {
        if (role == ROLE_LM_HEAD) r1 = lr->at_lm_head; /* lm_head stays float: the way in and out */
        else if (!out_side && role == ROLE_O) r2 = lr->r2 != NULL;
        else if (!out_side && reads_stream(role)) r1 = lr->r1 != NULL;
    }
    if (r1) s = (site_rot){lr->d, lr->r1f, lr->r1, lr->g1};
    if (r2 && layer >= 0) {
        int64_t o = (int64_t)layer * lr->head_dim * lr->head_dim;
        s = (site_rot){lr->head_dim, lr->r2f + o, lr->r2 + o, lr->g2 + o};
    }
    return s;
}

static rotq_status grow_tmp(rotq_learned *lr, int64_t n) {
    if (n <= lr->tmp_cap) return ROTQ_OK;
    float *t = realloc(lr->tmp, (size_t)n * sizeof(float));
    if (!t) return rotq_fail(ROTQ_ERR_NOMEM, "learn: out of memory for %lld floats of scratch", (long long)n);
    lr->tmp = t, lr->tmp_cap = n;
    return ROTQ_OK;
}

/* x [rows, n] ← x·R (transpose: x·Rᵀ). */
static rotq_status rotate_rows(rotq_learned *lr, const site_rot *s, float *x, int64_t rows, bool transpose) {
    ROTQ_TRY(grow_tmp(lr, rows * s->n));
    memcpy(lr->tmp, x, (size_t)(rows * s->n) * sizeof(float));
    cblas_sgemm(CblasRowMajor, CblasNoTrans, transpose ? CblasTrans : CblasNoTrans, (int)rows, (int)s->n, (int)s->n, 1.0f,
                lr->tmp, (int)s->n, s->f, (int)s->n, 0.0f, x, (int)s->n);
    return ROTQ_OK;
}

/* g += aᵀ·b for a, b [rows, n] (float products, summed into the double gradient). */
static rotq_status add_outer(rotq_learned *lr, double *g, const float *a, const float *b, int64_t rows, int64_t n) {
    ROTQ_TRY(grow_tmp(lr, n * n));
    cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, (int)n, (int)n, (int)rows, 1.0f, a, (int)n, b, (int)n, 0.0f,
                lr->tmp, (int)n);
    for (int64_t i = 0; i < n * n; i++) g[i] += lr->tmp[i];
    return ROTQ_OK;
}

/* x [n values] through the rotation the "into" (out_side false: x·R) or "out of" (x·Rᵀ) transform
 * applies at this site, row by row of its size; nothing where rot_at puts none. */
static rotq_status rotate_at(rotq_learned *lr, rotq_grad_site site, int32_t layer, rotq_role role, float *x, int64_t n,
                             bool out_side) {
    site_rot s = rot_at(lr, site, layer, role, out_side);
    return s.n ? rotate_rows(lr, &s, x, n / s.n, out_side) : ROTQ_OK;
}
static rotq_status in_linear(void *ctx, int32_t layer, rotq_role role, float *x, int64_t rows, int64_t cols) {
    return rotate_at(ctx, ROTQ_GRAD_LINEAR_INPUT, layer, role, x, rows * cols, false);
}
static rotq_status out_linear(void *ctx, int32_t layer, rotq_role role, float *x, int64_t rows, int64_t cols) {
    return rotate_at(ctx, ROTQ_GRAD_LINEAR_INPUT, layer, role, x, rows * cols, true);
}
static rotq_status in_v(void *ctx, int32_t layer, float *v, int64_t T, int64_t pos0, int64_t nkv, int64_t hd) {
    (void)pos0;
    return rotate_at(ctx, ROTQ_GRAD_V, layer, ROLE_V, v, T * nkv * hd, false);
}
static rotq_status out_v(void *ctx, int32_t layer, float *v, int64_t T, int64_t pos0, int64_t nkv, int64_t hd) {
    (void)pos0;
    return rotate_at(ctx, ROTQ_GRAD_V, layer, ROLE_V, v, T * nkv * hd, true);
}

/* Backward of u = x·R (x = the site's raw value): dR += xᵀ·g, then g ← g·Rᵀ. */
static rotq_status in_grad(void *ctx, rotq_grad_site site, int32_t layer, rotq_role role, float *g, const float *raw,
                           const float *post, int64_t rows, int64_t cols) {
    (void)post;
    rotq_learned *lr = ctx;
    site_rot s = rot_at(lr, site, layer, role, false);
    if (!s.n) return ROTQ_OK;
    int64_t n_rows = rows * cols / s.n;
    ROTQ_TRY(add_outer(lr, s.g, raw, g, n_rows, s.n));
    return rotate_rows(lr, &s, g, n_rows, true);
}

/* Backward of y = q·Rᵀ (q = post·R, the quantizer's output): dR += gᵀ·q, then g ← g·R. */
static rotq_status out_grad(void *ctx, rotq_grad_site site, int32_t layer, rotq_role role, float *g, const float *raw,
                            const float *post, int64_t rows, int64_t cols) {
    (void)raw;
    rotq_learned *lr = ctx;
    site_rot s = rot_at(lr, site, layer, role, true);
    if (!s.n) return ROTQ_OK;
    int64_t n_rows = rows * cols / s.n;
    float *q = malloc((size_t)(n_rows * s.n) * sizeof(float));
    if (!q) return rotq_fail(ROTQ_ERR_NOMEM, "learn: out of memory");
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)n_rows, (int)s.n, (int)s.n, 1.0f, post, (int)s.n, s.f,
                (int)s.n, 0.0f, q, (int)s.n);
    rotq_status st = add_outer(lr, s.g, g, q, n_rows, s.n);
    free(q);
    ROTQ_TRY(st);
    return rotate_rows(lr, &s, g, n_rows, false);
}

/* ---- weights in the loop ------------------------------------------------------------------------ */

enum { W_Q, W_K, W_V, W_O, W_GATE, W_UP, W_DOWN };

static int role_slot(rotq_role role) {
    switch (role) {
    case ROLE_Q: return W_Q;
    case ROLE_K: return W_K;
    case ROLE_V: return W_V;
    case ROLE_O: return W_O;
    case ROLE_GATE: return W_GATE;
    case ROLE_UP: return W_UP;
    case ROLE_DOWN: return W_DOWN;
    default: return -1;
    }
}

static const float *base_weight(const rotq_learned *lr, int32_t l, int slot) {
    const rotq_layer_weights *w = &lr->r->layers[l];
    const float *p[7] = {w->wq, w->wk, w->wv, w->wo, w->wgate, w->wup, w->wdown};
    return p[slot];
}

/* c [m, n] = a [m, k] · b (ta: aᵀ, tb: bᵀ), row-major with leading dimensions lda, ldb. */
static void mm(bool ta, bool tb, int64_t m, int64_t n, int64_t k, const float *a, int64_t lda, const float *b, int64_t ldb,
               float beta, float *c, int64_t ldc) {
    cblas_sgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans, (int)m, (int)n, (int)k, 1.0f, a,
                (int)lda, b, (int)ldb, beta, c, (int)ldc);
}

/* Every layer's effective weights from the frozen ones and the rotations (see learn.h). */
static rotq_status build_weights(rotq_learned *lr) {
    const rotq_hparams *hp = &lr->r->hp;
    int64_t d = hp->hidden, hd = hp->head_dim, nh = hp->n_heads, nkv = hp->n_kv_heads, qd = nh * hd, kvd = nkv * hd;
    int64_t ff = hp->intermediate;
    const int64_t rows[7] = {qd, kvd, kvd, d, ff, ff, d}, cols[7] = {d, d, d, qd, d, d, ff};
    bool record = lr->freeze_weights && !lr->wdelta;
    if (record && !(lr->wdelta = malloc((size_t)(lr->stride * lr->n_layers) * sizeof(float))))
        return rotq_fail(ROTQ_ERR_NOMEM, "learn: out of memory");
    for (int32_t l = 0; l < lr->n_layers; l++) {
        const float *r2 = lr->r2f ? lr->r2f + (int64_t)l * hd * hd : NULL;
        for (int k = 0; k < 7; k++) {
            const float *W = base_weight(lr, l, k);
            if (!W) continue;
            float *E = lr->weff + l * lr->stride + lr->off[k];
            int64_t R = rows[k], C = cols[k];
            if (k == W_O || k == W_DOWN) {
                /* M = W·R2 per head (o), then E = R1ᵀ·M */
                const float *M = W;
                if (k == W_O && r2) {
                    float *mo = lr->mo + (int64_t)l * d * qd;
                    for (int64_t h = 0; h < nh; h++) mm(false, false, d, hd, hd, W + h * hd, qd, r2, hd, 0.0f, mo + h * hd, qd);
                    M = mo;
                }
                if (lr->r1f) mm(true, false, d, C, d, lr->r1f, d, M, C, 0.0f, E, C);
                else memcpy(E, M, (size_t)(R * C) * sizeof(float));
            } else {
                /* E = W·R1, then for v R2ᵀ per head: E_h = R2ᵀ·(W·R1)_h */
                float *P = k == W_V ? lr->pv + (int64_t)l * kvd * d : E;
                if (lr->r1f) mm(false, false, R, d, d, W, d, lr->r1f, d, 0.0f, P, d);
                else memcpy(P, W, (size_t)(R * d) * sizeof(float));
                if (k == W_V) {
                    if (r2)
                        for (int64_t h = 0; h < nkv; h++) mm(true, false, hd, d, hd, r2, hd, P + h * hd * d, d, 0.0f, E + h * hd * d, d);
                    else memcpy(E, P, (size_t)(R * d) * sizeof(float));
                    const float *b = lr->r->layers[l].bv;
                    if (b && lr->bv && r2)
                        for (int64_t h = 0; h < nkv; h++) mm(false, false, 1, hd, hd, b + h * hd, hd, r2, hd, 0.0f, lr->bv + l * kvd + h * hd, hd);
                    else if (b && lr->bv) memcpy(lr->bv + l * kvd, b, (size_t)kvd * sizeof(float));
                }
            }
            float *delta = lr->wdelta ? lr->wdelta + l * lr->stride + lr->off[k] : NULL;
            if (lr->freeze_weights && !record) {
                for (int64_t i = 0; i < R * C; i++) E[i] += delta[i];
                continue;
            }
            if (record) memcpy(delta, E, (size_t)(R * C) * sizeof(float));
            rotq_status s = rotq_rtn_quantize(E, R, C, &lr->wf, NULL);
            if (s != ROTQ_OK) return rotq_fail_context(s, "learn: layer %d, effective weight %d", l, k);
            if (record)
                for (int64_t i = 0; i < R * C; i++) delta[i] = E[i] - delta[i];
        }
    }
    return ROTQ_OK;
}

rotq_status rotq_learned_quantize_weights(rotq_learned *lr, const rotq_runner *r, const rotq_wq_format *f) {
    ROTQ_TRY(rotq_wq_format_check(f));
    const rotq_hparams *hp = &r->hp;
    int64_t d = hp->hidden, qd = hp->n_heads * hp->head_dim, kvd = hp->n_kv_heads * hp->head_dim, ff = hp->intermediate;
    const int64_t sizes[7] = {qd * d, kvd * d, kvd * d, d * qd, ff * d, ff * d, d * ff};
    lr->stride = 0;
    for (int k = 0; k < 7; k++) lr->off[k] = lr->stride, lr->stride += sizes[k];
    lr->r = r;
    lr->wf = *f;
    bool vbias = false;
    for (int64_t l = 0; l < lr->n_layers; l++) vbias |= r->layers[l].bv != NULL;
    lr->weff = malloc((size_t)(lr->stride * lr->n_layers) * sizeof(float));
    lr->pv = malloc((size_t)(lr->n_layers * kvd * d) * sizeof(float));
    lr->mo = malloc((size_t)(lr->n_layers * d * qd) * sizeof(float));
    if (vbias) lr->bv = malloc((size_t)(lr->n_layers * kvd) * sizeof(float));
    if (!lr->weff || !lr->pv || !lr->mo || (vbias && !lr->bv))
        return rotq_fail(ROTQ_ERR_NOMEM, "learn: out of memory for the effective weights (%lld floats)",
                         (long long)(lr->stride * lr->n_layers));
    lr->wq = true;
    return build_weights(lr);
}

/* out (+)= x·Eᵀ + b with the effective weight; o/down: out (+)= (x·Eᵀ)·R1ᵀ + b. */
static rotq_status wq_linear(void *ctx, int32_t layer, rotq_role role, const float *x, int64_t rows, int64_t n_in, float *out,
                             int64_t n_out, const float *b, bool accumulate, bool *done) {
    rotq_learned *lr = ctx;
    int k = role_slot(role);
    if (!lr->wq || layer < 0 || k < 0) return ROTQ_OK;
    const float *E = lr->weff + layer * lr->stride + lr->off[k];
    int64_t kvd = lr->r->hp.n_kv_heads * lr->head_dim;
    if ((k == W_O || k == W_DOWN) && lr->r1f) {
        ROTQ_TRY(grow_tmp(lr, rows * n_out));
        mm(false, true, rows, n_out, n_in, x, n_in, E, n_in, 0.0f, lr->tmp, n_out);
        mm(false, true, rows, n_out, n_out, lr->tmp, n_out, lr->r1f, n_out, accumulate ? 1.0f : 0.0f, out, n_out);
    } else {
        mm(false, true, rows, n_out, n_in, x, n_in, E, n_in, accumulate ? 1.0f : 0.0f, out, n_out);
    }
    if (k == W_V && b && lr->bv) b = lr->bv + layer * kvd;
    if (b)
        for (int64_t t = 0; t < rows; t++)
            for (int64_t o = 0; o < n_out; o++) out[t * n_out + o] += b[o];
    *done = true;
    return ROTQ_OK;
}

/* g [m, n] (double) += a·b as mm computes it. */
static rotq_status add_mm(rotq_learned *lr, double *g, bool ta, bool tb, int64_t m, int64_t n, int64_t k, const float *a,
                          int64_t lda, const float *b, int64_t ldb) {
    ROTQ_TRY(grow_tmp(lr, m * n));
    mm(ta, tb, m, n, k, a, lda, b, ldb, 0.0f, lr->tmp, n);
    for (int64_t i = 0; i < m * n; i++) g[i] += lr->tmp[i];
    return ROTQ_OK;
}

/* The products' backward: dx from the effective weight, dL/dR1 and dL/dR2 through the weights
 * (straight through the rounding). */
static rotq_status wq_linear_grad(void *ctx, int32_t layer, rotq_role role, float *dx, const float *dy, const float *x,
                                  int64_t rows, int64_t n_in, int64_t n_out, bool accumulate, bool *done) {
    rotq_learned *lr = ctx;
    int k = role_slot(role);
    if (!lr->wq || layer < 0 || k < 0) return ROTQ_OK;
    *done = true;
    const rotq_hparams *hp = &lr->r->hp;
    int64_t d = hp->hidden, hd = hp->head_dim, nh = hp->n_heads, nkv = hp->n_kv_heads, qd = nh * hd, T = rows;
    const float *E = lr->weff + layer * lr->stride + lr->off[k], *W = base_weight(lr, layer, k);
    const float *r2 = lr->r2f ? lr->r2f + (int64_t)layer * hd * hd : NULL;
    double *g2 = lr->g2 ? lr->g2 + (int64_t)layer * hd * hd : NULL;
    rotq_status s = ROTQ_OK;
    if (k == W_O || k == W_DOWN) {
        /* out = z·R1ᵀ, z = x·Eᵀ, E = R1ᵀ·M (M = W_o·R2 per head, or W_down) */
        float *dz = malloc((size_t)(T * n_out) * sizeof(float)), *dE = malloc((size_t)(n_out * n_in) * sizeof(float));
        float *z = lr->r1f ? malloc((size_t)(T * n_out) * sizeof(float)) : NULL;
        float *dM = lr->r1f && k == W_O && r2 ? malloc((size_t)(n_out * n_in) * sizeof(float)) : NULL;
        if (!dz || !dE || (lr->r1f && !z) || (lr->r1f && k == W_O && r2 && !dM)) s = rotq_fail(ROTQ_ERR_NOMEM, "learn: out of memory");
        if (s == ROTQ_OK && lr->r1f) {
            mm(false, false, T, d, d, dy, d, lr->r1f, d, 0.0f, dz, d);
            mm(false, true, T, d, n_in, x, n_in, E, n_in, 0.0f, z, d);
            s = add_mm(lr, lr->g1, true, false, d, d, T, dy, d, z, d);
        } else if (s == ROTQ_OK) memcpy(dz, dy, (size_t)(T * d) * sizeof(float));
        if (s == ROTQ_OK) {
            mm(false, false, T, n_in, d, dz, d, E, n_in, accumulate ? 1.0f : 0.0f, dx, n_in);
            mm(true, false, d, n_in, T, dz, d, x, n_in, 0.0f, dE, n_in); /* dE = dzᵀ·x */
            const float *M = k == W_O && r2 ? lr->mo + (int64_t)layer * d * qd : W;
            if (lr->r1f) { /* dR1 += M·dEᵀ;  dM = R1·dE */
                s = add_mm(lr, lr->g1, false, true, d, d, n_in, M, n_in, dE, n_in);
                if (s == ROTQ_OK && dM) mm(false, false, d, n_in, d, lr->r1f, d, dE, n_in, 0.0f, dM, n_in);
            }
            if (s == ROTQ_OK && k == W_O && r2) { /* dR2 += W_o,hᵀ·dM_h per head */
                const float *g = dM ? dM : dE;
                for (int64_t h = 0; s == ROTQ_OK && h < nh; h++) s = add_mm(lr, g2, true, false, hd, hd, d, W + h * hd, qd, g + h * hd, qd);
            }
        }
        free(dz), free(dE), free(z), free(dM);
        return s;
    }
    /* readers: out = x·Eᵀ (+ b), E = W·R1 (v: R2ᵀ per head, b·R2) */
    mm(false, false, T, n_in, n_out, dy, n_out, E, n_in, accumulate ? 1.0f : 0.0f, dx, n_in);
    if (k != W_V) {
        if (!lr->r1f) return ROTQ_OK;
        float *u = malloc((size_t)(T * d) * sizeof(float));
        if (!u) return rotq_fail(ROTQ_ERR_NOMEM, "learn: out of memory");
        mm(false, false, T, d, n_out, dy, n_out, W, d, 0.0f, u, d); /* u = dy·W;  dR1 += uᵀ·x */
        s = add_mm(lr, lr->g1, true, false, d, d, T, u, d, x, d);
        free(u);
        return s;
    }
    int64_t kvd = n_out;
    float *dE = malloc((size_t)(kvd * d) * sizeof(float)), *G = malloc((size_t)(kvd * d) * sizeof(float));
    float *db = malloc((size_t)hd * sizeof(float));
    if (!dE || !G || !db) s = rotq_fail(ROTQ_ERR_NOMEM, "learn: out of memory");
    if (s == ROTQ_OK) {
        mm(true, false, kvd, d, T, dy, kvd, x, d, 0.0f, dE, d); /* dE = dyᵀ·x */
        const float *P = lr->pv + (int64_t)layer * kvd * d, *b = lr->r->layers[layer].bv;
        for (int64_t h = 0; s == ROTQ_OK && r2 && h < nkv; h++) {
            /* E_h = R2ᵀ·P_h: dR2 += P_h·dE_hᵀ; G_h = R2·dE_h = d(P_h) */
            s = add_mm(lr, g2, false, true, hd, hd, d, P + h * hd * d, d, dE + h * hd * d, d);
            mm(false, false, hd, d, hd, r2, hd, dE + h * hd * d, d, 0.0f, G + h * hd * d, d);
            if (s == ROTQ_OK && b) { /* b' = b·R2: dR2 += b_hᵀ·(Σ_t dy_h) */
                for (int64_t i = 0; i < hd; i++) {
                    double acc = 0;
                    for (int64_t t = 0; t < T; t++) acc += dy[t * kvd + h * hd + i];
                    db[i] = (float)acc;
                }
                s = add_mm(lr, g2, true, false, hd, hd, 1, b + h * hd, hd, db, hd);
            }
        }
        if (s == ROTQ_OK && lr->r1f) s = add_mm(lr, lr->g1, true, false, d, d, kvd, W, d, r2 ? G : dE, d); /* dR1 += W_vᵀ·dP */
    }
    free(dE), free(G), free(db);
    return s;
}

void rotq_learned_transforms(rotq_learned *lr, rotq_transform *in, rotq_transform *out) {
    *in = (rotq_transform){.kind = ROTQ_TF_OTHER};
    *out = (rotq_transform){.kind = ROTQ_TF_OTHER};
    snprintf(in->name, sizeof in->name, "learned %s%s%s (into each quantizer)", lr->r1 ? "R1" : "", lr->r1 && lr->r2 ? ", " : "",
             lr->r2 ? "R2" : "");
    snprintf(out->name, sizeof out->name, "learned %s%s%s inverse (out of each quantizer)", lr->r1 ? "R1" : "",
             lr->r1 && lr->r2 ? ", " : "", lr->r2 ? "R2" : "");
    bool any_lin = lr->at_stream || lr->at_lm_head || lr->at_o;
    in->hooks = (rotq_hooks){.ctx = lr, .linear_input = any_lin ? in_linear : NULL, .v = lr->at_v ? in_v : NULL, .grad = in_grad};
    out->hooks = (rotq_hooks){.ctx = lr, .linear_input = any_lin ? out_linear : NULL, .v = lr->at_v ? out_v : NULL,
                              .grad = out_grad};
    if (lr->wq) { /* products on the effective weights; rotations wherever rot_at puts them */
        in->hooks.linear_input = in_linear, in->hooks.v = NULL;
        in->hooks.linear = wq_linear, in->hooks.linear_grad = wq_linear_grad;
        out->hooks.linear_input = lr->at_lm_head ? out_linear : NULL;
        out->hooks.v = lr->r2 ? out_v : NULL;
        snprintf(in->name, sizeof in->name, "learned%s%s into quantizers, weights W%d RTN on the rotated weights",
                 lr->r1 ? " R1" : "", lr->r2 ? " R2" : "", lr->wf.bits);
    }
}

rotq_status rotq_learned_attach(rotq_runner *r, rotq_learned *lr, rotq_fakequant *fq) {
    rotq_transform in, out;
    rotq_learned_transforms(lr, &in, &out);
    ROTQ_TRY(rotq_runner_add_transform(r, &in));
    ROTQ_TRY(rotq_fakequant_attach(r, fq));
    return rotq_runner_add_transform(r, &out);
}

/* ---- the Cayley step -------------------------------------------------------------------------------- */

rotq_status rotq_cayley_step(double *R, const double *G, double *M, int64_t n, double lr, double momentum, double *alpha) {
    size_t nn = (size_t)(n * n);
    double *W = malloc(nn * sizeof(double)), *A = malloc(nn * sizeof(double)), *B = malloc(nn * sizeof(double));
    double *Rold = malloc(nn * sizeof(double));
    lapack_int *piv = malloc((size_t)n * sizeof *piv);
    rotq_status s = ROTQ_OK;
    if (!W || !A || !B || !Rold || !piv) { s = rotq_fail(ROTQ_ERR_NOMEM, "learn: out of memory for a %lld×%lld step", (long long)n, (long long)n); goto done; }
    const double *Mv = G;
    if (M && momentum != 0) {
        for (size_t i = 0; i < nn; i++) M[i] = momentum * M[i] + G[i];
        Mv = M;
    }
    /* A = Rᵀ·M;  W = ½(A − Aᵀ) */
    cblas_dgemm(CblasRowMajor, CblasTrans, CblasNoTrans, (int)n, (int)n, (int)n, 1.0, R, (int)n, Mv, (int)n, 0.0, A, (int)n);
    double norm1 = 0;
    for (int64_t i = 0; i < n; i++)
        for (int64_t j = 0; j < n; j++) W[i * n + j] = 0.5 * (A[i * n + j] - A[j * n + i]);
    for (int64_t j = 0; j < n; j++) {
        double c = 0;
        for (int64_t i = 0; i < n; i++) c += fabs(W[i * n + j]);
        norm1 = c > norm1 ? c : norm1;
    }
    double a = 1.0 / (norm1 + 1e-8);
    a = lr < a ? lr : a;
    if (alpha) *alpha = a;
    /* (I + a/2·W)·C = (I − a/2·W):  A = I + a/2·W, B = I − a/2·W, solved in place into B */
    for (int64_t i = 0; i < n; i++)
        for (int64_t j = 0; j < n; j++) {
            double w = 0.5 * a * W[i * n + j], id = i == j ? 1.0 : 0.0;
            A[i * n + j] = id + w, B[i * n + j] = id - w;
        }
    lapack_int info = LAPACKE_dgesv(LAPACK_ROW_MAJOR, (lapack_int)n, (lapack_int)n, A, (lapack_int)n, piv, B, (lapack_int)n);
    if (info != 0) { s = rotq_fail(ROTQ_ERR_NUMERIC, "learn: the Cayley system is singular (LAPACK info %d)", (int)info); goto done; }
    memcpy(Rold, R, nn * sizeof(double));
    cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)n, (int)n, (int)n, 1.0, Rold, (int)n, B, (int)n, 0.0, R, (int)n);
    if (M && momentum != 0) /* the descent direction carried to the new point, as Li et al.'s optimizer does */
        cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)n, (int)n, (int)n, 1.0, Rold, (int)n, W, (int)n, 0.0, M, (int)n);
done:
    free(W), free(A), free(B), free(Rold), free(piv);
    return s;
}

/* ---- the training loop ------------------------------------------------------------------------------ */

rotq_learn_options rotq_learn_defaults(void) {
    rotq_learn_options o = {0};
    o.rot = rotq_rotate_options_default();
    o.learn_r1 = o.learn_r2 = true;
    o.quant = rotq_quant_defaults();
    rotq_quant_preset(&o.quant, "w4a4kv4");
    o.quant.w_bits = 16, o.quant.w_method = ROTQ_WQ_NONE; /* W16A4KV4, as SpinQuant trains before GPTQ */
    o.steps = 100, o.batch = 8, o.seq_len = 2048, o.n_seqs = 800;
    o.lr = 1.5, o.schedule = ROTQ_LR_COSINE, o.momentum = 0, o.loss = ROTQ_LEARN_CE;
    return o;
}

static double schedule_lr(const rotq_learn_options *o, int64_t step) { /* step 0-based, as HF's schedulers */
    double p = (double)step / (double)o->steps;
    switch (o->schedule) {
    case ROTQ_LR_COSINE: return o->lr * 0.5 * (1.0 + cos(M_PI * p));
    case ROTQ_LR_LINEAR: return o->lr * (1.0 - p);
    default: return o->lr;
    }
}

static const char *schedule_name(rotq_lr_schedule s) {
    return s == ROTQ_LR_COSINE ? "cosine" : s == ROTQ_LR_LINEAR ? "linear" : "constant";
}

rotq_status rotq_learn_supported(const rotq_model *m) {
    /* the backward covers the Llama/Qwen2/Qwen3/Phi-3/OPT layer; these pieces have a forward only */
    rotq_model_layout lay;
    ROTQ_TRY(rotq_model_layout_get(m, &lay));
    const char *missing = lay.sandwich_norms ? "sandwich norms"
                          : m->hp.mlp_act == ROTQ_MLP_GEGLU ? "a GeGLU MLP"
                          : m->hp.sliding_window > 0 ? "sliding-window attention"
                          : m->hp.embed_scale > 0 ? "a scaled embedding" : NULL;
    if (missing)
        return rotq_fail(ROTQ_ERR_UNSUPPORTED, "learn: %s (%s) has %s, which rotq's training backward does not cover yet; "
                         "rotate it with random rotations instead", m->source_path, m->arch->name, missing);
    return ROTQ_OK;
}

static rotq_status check_options(const rotq_model *m, const rotq_learn_options *o, int64_t n_ids, const char *out_dir) {
    if (o->steps <= 0 || o->batch <= 0 || o->seq_len < 2 || o->n_seqs <= 0)
        return rotq_fail(ROTQ_ERR_ARG, "learn: %lld steps of %lld sequences of %lld tokens from %lld windows: each must be "
                         "positive (sequences of 2 tokens at least)", (long long)o->steps, (long long)o->batch,
                         (long long)o->seq_len, (long long)o->n_seqs);
    if (!(o->lr > 0) || !isfinite(o->lr) || !(o->momentum >= 0 && o->momentum < 1))
        return rotq_fail(ROTQ_ERR_ARG, "learn: learning rate %g must be positive and momentum %g in [0, 1)", o->lr, o->momentum);
    bool r1 = o->rot.r1 != ROTQ_R_NONE && o->learn_r1, r2 = o->rot.r2 != ROTQ_R_NONE && o->learn_r2;
    if (!r1 && !r2) return rotq_fail(ROTQ_ERR_ARG, "learn: nothing to learn (R1 and R2 both off)");
    ROTQ_TRY(rotq_learn_supported(m));
    if (o->rot.layerwise)
        return rotq_fail(ROTQ_ERR_UNSUPPORTED, "learn: layerwise rotations are not combined with learned R1/R2 (rotate with "
                         "--layerwise after learning)");
    if (o->rot.r1_block > 0)
        return rotq_fail(ROTQ_ERR_UNSUPPORTED, "learn: R1 is learned as one full %lld x %lld rotation, not block-diagonal "
                         "(--r1-block)", (long long)m->hp.hidden, (long long)m->hp.hidden);
    bool weights = rotq_quant_has_weights(&o->quant);
    if (weights && o->quant.w_num != ROTQ_NUM_INT)
        return rotq_fail(ROTQ_ERR_UNSUPPORTED, "learn: weights in the loop are integer grids (%s weights: learn with --w-bits 16, "
                         "quantize after)", rotq_num_format_name(o->quant.w_num));
    if (weights && (rotq_quant_has_types(&o->quant) || o->quant.w_method != ROTQ_WQ_RTN))
        return rotq_fail(ROTQ_ERR_UNSUPPORTED, "learn: weights in the loop are rounded to nearest (RTN) on a scalar grid; "
                         "GPTQ-family quantizers and GGUF block types run after learning");
    if (!weights && !rotq_quant_has_runtime(&o->quant))
        return rotq_fail(ROTQ_ERR_ARG, "learn: no quantizer is on: with float activations and weights every rotation "
                         "gives the same model, so there is nothing to learn");
    if (m->arch->norm == ROTQ_NORM_LAYER && r1)
        return rotq_fail(ROTQ_ERR_UNSUPPORTED, "learn: %s is a LayerNorm model; a learned R1 must keep its stream's mean "
                         "(not supported yet: learn R2 only with --r1 none)", m->source_path);
    if (n_ids < o->seq_len)
        return rotq_fail(ROTQ_ERR_ARG, "learn: the training text has %lld tokens, fewer than one sequence of %lld",
                         (long long)n_ids, (long long)o->seq_len);
    struct stat st;
    if (lstat(out_dir, &st) == 0) return rotq_fail(ROTQ_ERR_IO, "learn: %s exists; give a new folder", out_dir);
    return ROTQ_OK;
}

/* A starting rotation as a dense double matrix. */
static rotq_status start_rotation(rotq_rotation_choice c, const char *file, int64_t n, uint64_t seed, const char *site,
                                  int32_t layer, double *out, char *desc, size_t desc_size) {
    rotq_rotation *R = NULL;
    ROTQ_TRY(rotq_site_rotation_make(c, file, n, seed, site, layer, &R));
    rotq_status s = rotq_rotation_to_dense_f64(R, out);
    if (desc) snprintf(desc, desc_size, "%s", rotq_rotation_describe(R));
    rotq_rotation_free(R);
    return s;
}

static rotq_status save_dense(const char *dir, int32_t layer, const double *R, int64_t n, const char *desc) {
    char path[4096];
    rotq_rotation_folder_file(dir, layer, path, sizeof path);
    rotq_rotation *rot = NULL;
    ROTQ_TRY(rotq_rotation_from_dense(n, R, 1e-6, &rot));
    snprintf(rot->desc, sizeof rot->desc, "%s", desc);
    rotq_status s = rotq_rotation_save(rot, path, ROTQ_F64);
    rotq_rotation_free(rot);
    return s;
}

static double max_orth_err(const rotq_learned *lr) {
    double e = 0;
    if (lr->r1) e = rotq_orthogonality_error(lr->r1, lr->d);
    for (int64_t l = 0; lr->r2 && l < lr->n_layers; l++) {
        double el = rotq_orthogonality_error(lr->r2 + l * lr->head_dim * lr->head_dim, lr->head_dim);
        e = el > e ? el : e;
    }
    return e;
}

static double frob(const double *g, int64_t n) {
    double s = 0;
    for (int64_t i = 0; i < n; i++) s += g[i] * g[i];
    return sqrt(s);
}

typedef struct train_state {
    rotq_runner *r, *teacher;
    rotq_fakequant fq;
    rotq_learned *lr;
    rotq_activations *acts;
    int32_t *windows, *targets;
    float *hidden, *dhidden, *teacher_hidden;
    double *m1, *m2;
    json_t *curve;
} train_state;

static void state_free(train_state *st) {
    rotq_runner_free(st->r);
    rotq_runner_free(st->teacher);
    rotq_fakequant_release(&st->fq);
    rotq_learned_free(st->lr);
    rotq_activations_free(st->acts);
    free(st->windows), free(st->targets), free(st->hidden), free(st->dhidden), free(st->teacher_hidden);
    free(st->m1), free(st->m2);
    json_decref(st->curve);
}

static rotq_status write_outputs(const rotq_learn_options *o, const rotq_model *m, train_state *st, const char *out_dir,
                                 const char *r1_desc, const char *r2_desc, const rotq_learn_report *rep) {
    char tmp[PATH_MAX];
    int fd;
    ROTQ_TRY(rotq_tmp_create(out_dir, true, tmp, &fd));
    const rotq_learned *lr = st->lr;
    rotq_status s = ROTQ_OK;
    char desc[192];
    if (lr->r1) {
        snprintf(desc, sizeof desc, "learned R1 (%lld Cayley SGD steps from %s)", (long long)rep->steps, r1_desc);
        s = save_dense(tmp, -1, lr->r1, lr->d, desc);
    }
    for (int64_t l = 0; s == ROTQ_OK && lr->r2 && l < lr->n_layers; l++) {
        snprintf(desc, sizeof desc, "learned R2 layer %lld (%lld Cayley SGD steps from %s)", (long long)l,
                 (long long)rep->steps, r2_desc);
        s = save_dense(tmp, (int32_t)l, lr->r2 + l * lr->head_dim * lr->head_dim, lr->head_dim, desc);
    }
    if (s == ROTQ_OK) {
        char qdesc[256];
        rotq_quant_describe(&o->quant, qdesc, sizeof qdesc);
        json_t *j = json_pack("{s:s, s:s, s:s, s:s, s:b, s:b, s:b, s:b, s:I, s:s, s:I, s:I, s:I, s:I, s:f, s:s, s:f, s:s, "
                              "s:I, s:f, s:f, s:f, s:f}",
                              "model", m->source_path, "architecture", m->arch->name, "r1_start", r1_desc, "r2_start", r2_desc,
                              "r1", lr->r1 != NULL, "r2", lr->r2 != NULL, "r3", o->rot.r3, "r4", o->rot.r4,
                              "seed", (json_int_t)o->rot.seed, "quantization_while_learning", qdesc,
                              "steps", (json_int_t)o->steps, "batch", (json_int_t)o->batch, "seq_len", (json_int_t)o->seq_len,
                              "n_seqs", (json_int_t)o->n_seqs, "lr", o->lr, "schedule", schedule_name(o->schedule),
                              "momentum", o->momentum, "loss", o->loss == ROTQ_LEARN_KL ? "kl-to-float" : "ce",
                              "tokens", (json_int_t)rep->tokens, "first_loss", rep->first_loss, "last_loss", rep->last_loss,
                              "orthogonality_error", rep->orth_err, "seconds", rep->seconds);
        if (j) json_object_set_new(j, "step_seconds", json_real(rep->step_seconds));
        if (!j) s = rotq_fail(ROTQ_ERR_NOMEM, "learn: out of memory");
        else {
            json_object_set(j, "loss_per_step", st->curve);
            char *text = json_dumps(j, JSON_INDENT(2));
            json_decref(j);
            char path[4096];
            snprintf(path, sizeof path, "%s/learn.json", tmp);
            s = text ? rotq_write_file_atomic(path, text, strlen(text)) : rotq_fail(ROTQ_ERR_NOMEM, "learn: out of memory");
            free(text);
        }
    }
    if (s == ROTQ_OK && rename(tmp, out_dir) != 0)
        s = rotq_fail(ROTQ_ERR_IO, "learn: cannot move %s to %s: %s", tmp, out_dir, strerror(errno));
    if (s != ROTQ_OK) rotq_tmp_remove_folder(tmp);
    return s;
}

rotq_status rotq_learn_rotations(rotq_model *m, const rotq_learn_options *opts, const int32_t *ids, int64_t n_ids,
                                 const char *out_dir, rotq_learn_report *rep) {
    rotq_learn_options o = opts ? *opts : rotq_learn_defaults();
    rotq_learn_report rp = {0};
    if (!m || !m->arch || !out_dir) return rotq_fail(ROTQ_ERR_ARG, "learn: a bound model and an output folder are needed");
    ROTQ_TRY(check_options(m, &o, n_ids, out_dir));
    if (rotq_quant_has_weights(&o.quant)) o.quant.w_clip = false; /* full-range RTN in the loop (recorded so) */
    double t0 = rotq_now_s();
    const rotq_hparams *hp = &m->hp;
    int64_t d = hp->hidden, hd = hp->head_dim, L = hp->n_layers, T = o.seq_len;
    bool use_r1 = o.rot.r1 != ROTQ_R_NONE, use_r2 = o.rot.r2 != ROTQ_R_NONE;

    /* the model training runs on: norms fused, embeddings untied, R3/R4; R1/R2 live in the learner */
    rotq_rotate_options prep = o.rot;
    prep.r1 = prep.r2 = ROTQ_R_NONE;
    prep.fuse_norms = true;
    prep.save_rotations = NULL;
    ROTQ_TRY(rotq_rotate_model(m, &prep));

    train_state st = {0};
    char r1_desc[192] = "none", r2_desc[192] = "none";
    double *r1 = use_r1 ? malloc((size_t)(d * d) * sizeof(double)) : NULL;
    double *r2 = use_r2 ? malloc((size_t)(L * hd * hd) * sizeof(double)) : NULL;
    rotq_status s = (use_r1 && !r1) || (use_r2 && !r2) ? rotq_fail(ROTQ_ERR_NOMEM, "learn: out of memory") : ROTQ_OK;
    if (s == ROTQ_OK && use_r1)
        s = start_rotation(o.rot.r1, o.rot.r1_file, d, rotq_seed_derive(o.rot.seed, ROTQ_SEED_R1, 0), "R1", -1, r1, r1_desc,
                           sizeof r1_desc);
    for (int32_t l = 0; s == ROTQ_OK && use_r2 && l < L; l++) {
        char site[32];
        snprintf(site, sizeof site, "R2 layer %d", l);
        s = start_rotation(o.rot.r2, o.rot.r2_file, hd, rotq_seed_derive(o.rot.seed, ROTQ_SEED_R2, l), site, l,
                           r2 + (int64_t)l * hd * hd, l == 0 ? r2_desc : NULL, sizeof r2_desc);
    }
    if (s == ROTQ_OK) s = rotq_runner_new(m, o.threads, &st.r);
    if (s == ROTQ_OK) s = rotq_online_attach(st.r);
    if (s == ROTQ_OK) {
        st.fq = rotq_quant_fakequant(&o.quant, m);
        s = rotq_learned_new(st.r, &st.fq, r1, r2, &st.lr);
    }
    free(r1), free(r2);
    if (s == ROTQ_OK && rotq_quant_has_weights(&o.quant)) {
        /* RTN with the rows' (groups') full range: the clip search would cost more than the step */
        rotq_wq_format wf = rotq_wq_format_from_options(&o.quant);
        s = rotq_learned_quantize_weights(st.lr, st.r, &wf);
    }
    if (s == ROTQ_OK) s = rotq_learned_attach(st.r, st.lr, &st.fq);
    if (s == ROTQ_OK && o.loss == ROTQ_LEARN_KL) {
        s = rotq_runner_new(m, o.threads, &st.teacher);
        if (s == ROTQ_OK) s = rotq_online_attach(st.teacher);
    }
    if (s == ROTQ_OK) s = rotq_activations_new(st.r, T, &st.acts);
    if (s == ROTQ_OK) s = rotq_calib_windows(ids, n_ids, o.n_seqs, T, o.rot.seed, &st.windows);
    if (s == ROTQ_OK) {
        st.targets = malloc((size_t)T * sizeof(int32_t));
        st.hidden = malloc((size_t)(T * d) * sizeof(float));
        st.dhidden = malloc((size_t)(T * d) * sizeof(float));
        if (st.teacher) st.teacher_hidden = malloc((size_t)(T * d) * sizeof(float));
        if (o.momentum > 0) {
            if (st.lr->r1) st.m1 = calloc((size_t)(d * d), sizeof(double));
            if (st.lr->r2) st.m2 = calloc((size_t)(L * hd * hd), sizeof(double));
        }
        st.curve = json_array();
        if (!st.targets || !st.hidden || !st.dhidden || (st.teacher && !st.teacher_hidden) || !st.curve ||
            (o.momentum > 0 && ((st.lr->r1 && !st.m1) || (st.lr->r2 && !st.m2))))
            s = rotq_fail(ROTQ_ERR_NOMEM, "learn: out of memory for the training buffers");
    }
    bool learn1 = st.lr && st.lr->r1 && o.learn_r1, learn2 = st.lr && st.lr->r2 && o.learn_r2;
    double t_train = rotq_now_s();
    for (int64_t step = 0; s == ROTQ_OK && step < o.steps; step++) {
        rotq_learned_zero_grad(st.lr);
        double loss_sum = 0;
        /* several processes: each takes every ranks-th sequence of the batch; gradients and loss are summed below */
        for (int64_t b = rotq_dist_rank_get(); s == ROTQ_OK && b < o.batch; b += rotq_dist_size_get()) {
            const int32_t *w = st.windows + ((step * o.batch + b) % o.n_seqs) * T;
            for (int64_t t = 0; t < T; t++) st.targets[t] = t + 1 < T ? w[t + 1] : -1;
            if (st.teacher) s = rotq_nn_forward(st.teacher, w, T, NULL, st.teacher_hidden);
            rotq_runner_set_training(st.r, st.acts);
            if (s == ROTQ_OK) s = rotq_nn_forward(st.r, w, T, NULL, st.hidden);
            double loss = 0;
            if (s == ROTQ_OK)
                s = rotq_nn_loss_backward(st.r, o.loss == ROTQ_LEARN_KL ? ROTQ_LOSS_KL : ROTQ_LOSS_CE, st.hidden,
                                          st.teacher_hidden, st.targets, T, st.dhidden, &loss, NULL);
            if (s == ROTQ_OK) s = rotq_nn_backward(st.r, st.hidden, st.dhidden, NULL);
            rotq_runner_set_training(st.r, NULL);
            if (s == ROTQ_OK && !isfinite(loss))
                s = rotq_fail(ROTQ_ERR_NUMERIC, "learn: step %lld: the loss is not finite", (long long)step + 1);
            loss_sum += loss;
        }
        if (s != ROTQ_OK) break;
        if (rotq_dist_size_get() > 1) { /* reduced on rank 0 and broadcast: every rank takes the same Cayley step */
            if (st.lr->g1) s = rotq_dist_sum_f64(st.lr->g1, d * d);
            if (s == ROTQ_OK && st.lr->g2) s = rotq_dist_sum_f64(st.lr->g2, L * hd * hd);
            if (s == ROTQ_OK) s = rotq_dist_sum_f64(&loss_sum, 1);
            if (s != ROTQ_OK) break;
        }
        double inv = 1.0 / (double)o.batch, lr_t = schedule_lr(&o, step), alpha = 0, gnorm = 0;
        if (st.lr->g1)
            for (int64_t i = 0; i < d * d; i++) st.lr->g1[i] *= inv;
        if (st.lr->g2)
            for (int64_t i = 0; i < L * hd * hd; i++) st.lr->g2[i] *= inv;
        if (learn1) {
            gnorm = frob(st.lr->g1, d * d);
            s = rotq_cayley_step(st.lr->r1, st.lr->g1, st.m1, d, lr_t, o.momentum, &alpha);
        }
        for (int64_t l = 0; s == ROTQ_OK && learn2 && l < L; l++) {
            double a2;
            int64_t off = l * hd * hd;
            s = rotq_cayley_step(st.lr->r2 + off, st.lr->g2 + off, st.m2 ? st.m2 + off : NULL, hd, lr_t, o.momentum, &a2);
            if (!learn1) gnorm += frob(st.lr->g2 + off, hd * hd), alpha = l == 0 ? a2 : alpha;
        }
        if (s == ROTQ_OK) s = rotq_learned_sync(st.lr);
        if (s != ROTQ_OK) break;
        double loss = loss_sum * inv;
        if (step == 0) rp.first_loss = loss;
        rp.last_loss = loss;
        rp.steps = step + 1;
        rp.tokens += o.batch * T;
        json_array_append_new(st.curve, json_real(loss));
        if (o.progress) {
            double el = rotq_now_s() - t_train;
            rotq_learn_step ls = {.step = step + 1, .steps = o.steps, .loss = loss, .lr = lr_t, .alpha = alpha,
                                  .grad_norm = gnorm, .orth_err = max_orth_err(st.lr), .seconds = el,
                                  .tokens_per_s = (double)rp.tokens / el,
                                  .eta_s = el / (double)(step + 1) * (double)(o.steps - step - 1)};
            o.progress(o.progress_ctx, &ls);
        }
    }
    rp.step_seconds = rotq_now_s() - t_train;
    if (s == ROTQ_OK && rotq_dist_size_get() > 1) {
        /* every rank took the same steps from the same reduced gradients: check it, bit for bit */
        int64_t n1 = st.lr->r1 ? d * d : 0, n2 = st.lr->r2 ? L * hd * hd : 0;
        double *mine = malloc(sizeof(double) * (size_t)(n1 + n2 + 1)), diff = 0;
        if (!mine) s = rotq_fail(ROTQ_ERR_NOMEM, "learn: out of memory");
        if (s == ROTQ_OK) {
            if (n1) memcpy(mine, st.lr->r1, sizeof(double) * (size_t)n1);
            if (n2) memcpy(mine + n1, st.lr->r2, sizeof(double) * (size_t)n2);
            s = rotq_dist_bcast(mine, sizeof(double) * (size_t)(n1 + n2), 0);
        }
        for (int64_t i = 0; s == ROTQ_OK && i < n1 + n2; i++)
            diff = fmax(diff, fabs(mine[i] - (i < n1 ? st.lr->r1[i] : st.lr->r2[i - n1])));
        if (s == ROTQ_OK) s = rotq_dist_max_f64(&diff, 1);
        if (s == ROTQ_OK && diff != 0.0)
            s = rotq_fail(ROTQ_ERR_NUMERIC, "learn: the ranks' rotations differ by %g after %lld steps", diff, (long long)o.steps);
        free(mine);
    }
    if (s == ROTQ_OK) {
        rp.orth_err = max_orth_err(st.lr);
        rp.seconds = rotq_now_s() - t0;
        if (rotq_dist_rank_get() == 0) s = write_outputs(&o, m, &st, out_dir, r1_desc, r2_desc, &rp); /* one writer */
    }
    state_free(&st);
    if (rep) *rep = rp;
    return s;
}
