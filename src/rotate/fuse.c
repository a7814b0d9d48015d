/* Norm fusion and embedding untying: the operations that make the residual stream rotatable.
 * After fusion each RMSNorm only normalizes (weight 1), so R1 commutes with it. A LayerNorm model
 * first has every residual-stream writer centred, so its LayerNorms become RMSNorms; their
 * weights and biases are folded into the linears they feed (docs/rotation.md, "LayerNorm").
 * Everything here computes in double and stores back in the tensor's dtype. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rotate/fuse.h"
#include "rotate/rotate.h"

rotq_status rotq_scale_linear_input(rotq_tensor *w, const double *s) { return rotq_scale_columns(w, s); }

/* Whether every element of t plus `offset` equals `want` (true when t is NULL). */
static bool tensor_all(const rotq_tensor *t, double offset, double want) {
    if (!t) return true;
    int64_t n = rotq_tensor_numel(t);
    double *w = malloc((size_t)(n ? n : 1) * sizeof *w);
    bool all = w && rotq_tensor_to_f64(t, w) == ROTQ_OK;
    for (int64_t i = 0; all && i < n; i++) all = w[i] + offset == want;
    free(w);
    return all;
}

/* Whether the final norm is already the identity (weight 1, no bias): then R1 alone keeps the
 * embeddings tied (and, for LayerNorm, centring the embedding leaves the tied head's logits alone,
 * since the head then reads a zero-mean vector). */
static bool final_norm_is_unit(const rotq_model *m) {
    return tensor_all(rotq_model_role(m, ROLE_FINAL_NORM, -1), m->hp.norm_offset, 1.0) &&
           tensor_all(rotq_model_role(m, ROLE_FINAL_NORM_BIAS, -1), 0.0, 0.0);
}

rotq_status rotq_op_untie_embeddings(rotq_rotate_ctx *ctx) {
    rotq_model *m = ctx->m;
    if (!ctx->globals || !m->hp.tied_embeddings || rotq_model_role(m, ROLE_LM_HEAD, -1)) return ROTQ_OK;
    /* Tied weights stay tied when nothing will make the two uses differ. */
    if (!ctx->force_untie && (!ctx->opt->fuse_norms || final_norm_is_unit(m))) return ROTQ_OK;
    const rotq_arch_tensor *head = rotq_arch_tensor_for(m->arch, ROLE_LM_HEAD);
    rotq_tensor *emb = rotq_model_role(m, ROLE_EMBED, -1);
    if (!head || !emb) return rotq_fail(ROTQ_ERR_UNSUPPORTED, "architecture %s has no lm_head role to untie into", m->arch->name);
    void *copy = malloc(emb->nbytes);
    if (!copy) return rotq_fail(ROTQ_ERR_NOMEM, "out of memory untying embeddings");
    memcpy(copy, emb->data, emb->nbytes);
    rotq_tensor e = *emb; /* the array may move when a tensor is added */
    rotq_status s = rotq_model_add_tensor(m, head->hf, e.dtype, e.n_dims, e.shape, copy, e.nbytes, true);
    if (s != ROTQ_OK) { free(copy); return s; }
    rotq_tensor *t = &m->tensors[m->n_tensors - 1];
    t->role = ROLE_LM_HEAD;
    t->layer = -1;
    m->hp.tied_embeddings = false;
    ctx->params_added += rotq_tensor_numel(t);
    return ROTQ_OK;
}

rotq_status rotq_fold_norm_into_linear(rotq_tensor *w, rotq_tensor *bias, const double *g, const double *beta) {
    if (w->n_dims != 2) return rotq_fail(ROTQ_ERR_FORMAT, "tensor %s: expected a 2-D linear weight", w->name);
    if (!beta || !bias) return rotq_scale_linear_input(w, g);
    int64_t rows = w->shape[0], cols = w->shape[1];
    if (bias->n_dims != 1 || bias->shape[0] != rows)
        return rotq_fail(ROTQ_ERR_FORMAT, "bias %s has %lld entries but %s has %lld rows", bias->name,
                         (long long)rotq_tensor_numel(bias), w->name, (long long)rows);
    double *d = malloc((size_t)(rows * cols) * sizeof *d), *b = malloc((size_t)rows * sizeof *b);
    rotq_status st = d && b ? ROTQ_OK : rotq_fail(ROTQ_ERR_NOMEM, "out of memory folding a norm into %s", w->name);
    if (st == ROTQ_OK) st = rotq_tensor_to_f64(w, d);
    if (st == ROTQ_OK) st = rotq_tensor_to_f64(bias, b);
    if (st == ROTQ_OK) {
        for (int64_t r = 0; r < rows; r++) {
            double acc = 0.0;
            for (int64_t c = 0; c < cols; c++) {
                acc += d[r * cols + c] * beta[c]; /* b' = b + W·β, with W before scaling */
                d[r * cols + c] *= g[c];
            }
            b[r] += acc;
        }
        st = rotq_tensor_set_f64(w, d);
        if (st == ROTQ_OK) st = rotq_tensor_set_f64(bias, b);
    }
    free(d);
    free(b);
    return st;
}

/* Folds one norm (weight w, plus the architecture's offset, and its bias β when it has one) into
 * the linears it feeds: W ← W·diag(w), b ← b + W·β. When some linear has no bias to take W·β
 * (OPT's lm_head), β stays in the norm as β/w (the norm's output is then x̂ + β/w, which the
 * scaled linears map to x̂·diag(w)·Wᵀ + β·Wᵀ as before); R1 rotates it with the stream. */
static rotq_status fuse_group(rotq_rotate_ctx *ctx, const rotq_norm_group *g, int32_t layer) {
    rotq_model *m = ctx->m;
    rotq_tensor *norm = rotq_model_role(m, g->norm, layer);
    if (!norm) return ROTQ_OK;
    rotq_role bias_role = rotq_role_bias(g->norm);
    rotq_tensor *nb = bias_role == ROLE_COUNT ? NULL : rotq_model_role(m, bias_role, layer);
    int64_t n = rotq_tensor_numel(norm);
    if (nb && rotq_tensor_numel(nb) != n)
        return rotq_fail(ROTQ_ERR_FORMAT, "norm bias %s has %lld entries but %s has %lld", nb->name,
                         (long long)rotq_tensor_numel(nb), norm->name, (long long)n);
    double *w = malloc((size_t)n * sizeof *w), *beta = nb ? calloc((size_t)n, sizeof *beta) : NULL;
    if (!w || (nb && !beta)) { free(w); free(beta); return rotq_fail(ROTQ_ERR_NOMEM, "out of memory fusing %s", norm->name); }
    rotq_status s = rotq_tensor_to_f64(norm, w);
    if (s == ROTQ_OK && nb) s = rotq_tensor_to_f64(nb, beta);
    for (int64_t i = 0; i < n; i++) w[i] += m->hp.norm_offset;
    bool has_beta = false;
    for (int64_t i = 0; nb && i < n; i++) has_beta |= beta[i] != 0.0;
    /* β goes into the linears' biases only when every linear of the group has one */
    bool fold_beta = has_beta;
    for (int32_t i = 0; i < g->n_linears; i++) {
        if (!rotq_model_role(m, g->linears[i], layer)) continue; /* a tied lm_head: checked by the caller */
        rotq_role br = rotq_role_bias(g->linears[i]);
        if (br == ROLE_COUNT || !rotq_model_role(m, br, layer)) fold_beta = false;
    }
    for (int64_t i = 0; s == ROTQ_OK && has_beta && !fold_beta && i < n; i++)
        if (w[i] == 0.0 && beta[i] != 0.0)
            s = rotq_fail(ROTQ_ERR_UNSUPPORTED, "%s: cannot fuse %s: weight %lld is 0 but bias %s is not there, and a linear "
                          "it feeds has no bias to take it", m->source_path, norm->name, (long long)i, nb->name);
    for (int32_t i = 0; s == ROTQ_OK && i < g->n_linears; i++) {
        rotq_tensor *lin = rotq_model_role(m, g->linears[i], layer);
        if (!lin) continue; /* still tied: the embedding is not scaled */
        if (lin->role == ROLE_MERGER_UP && lin->n_dims == 2 && lin->shape[1] % n == 0) {
            /* a vision merger reads merge² normed patches side by side: the norm folds into each block */
            int64_t k = lin->shape[1] / n;
            double *wt = malloc((size_t)(k * n) * sizeof *wt), *bt = malloc((size_t)(k * n) * sizeof *bt);
            if (!wt || !bt) s = rotq_fail(ROTQ_ERR_NOMEM, "out of memory fusing %s", norm->name);
            for (int64_t j = 0; s == ROTQ_OK && j < k * n; j++) wt[j] = w[j % n], bt[j] = beta ? beta[j % n] : 0.0;
            rotq_role br = rotq_role_bias(g->linears[i]);
            if (s == ROTQ_OK) s = rotq_fold_norm_into_linear(lin, fold_beta ? rotq_model_role(m, br, layer) : NULL, wt, fold_beta ? bt : NULL);
            free(wt);
            free(bt);
            continue;
        }
        if (lin->n_dims != 2 || lin->shape[1] != n) {
            s = rotq_fail(ROTQ_ERR_FORMAT, "%s feeds %s but their widths differ (%lld vs %lld)", norm->name, lin->name,
                          (long long)n, (long long)lin->shape[lin->n_dims > 1 ? 1 : 0]);
            break;
        }
        rotq_role br = rotq_role_bias(g->linears[i]);
        rotq_tensor *lb = fold_beta ? rotq_model_role(m, br, layer) : NULL;
        s = rotq_fold_norm_into_linear(lin, lb, w, fold_beta ? beta : NULL);
    }
    if (s == ROTQ_OK && nb) {
        for (int64_t i = 0; i < n; i++) beta[i] = has_beta && !fold_beta && w[i] != 0.0 ? beta[i] / w[i] : 0.0;
        s = rotq_tensor_set_f64(nb, beta);
    }
    if (s == ROTQ_OK) {
        for (int64_t i = 0; i < n; i++) w[i] = 1.0 - m->hp.norm_offset;
        s = rotq_tensor_set_f64(norm, w);
    }
    free(w);
    free(beta);
    return s;
}

/* LayerNorm: makes every residual-stream writer's output zero-mean, so the stream itself is
 * (its LayerNorms' centring becomes a no-op and they equal RMSNorm): embedding rows (token and
 * learned-position tables) lose their mean, o_proj/down_proj get W ← (I − 11ᵀ/d)·W and
 * b ← b − mean(b). */
static rotq_status center_stream(rotq_model *m) {
    rotq_rotate_opts ro = rotq_rotate_defaults();
    for (int64_t i = 0; i < m->n_tensors; i++) {
        rotq_tensor *t = &m->tensors[i];
        if (t->role == ROLE_EMBED || t->role == ROLE_POS_EMBED) {
            ROTQ_TRY(rotq_center_output(t, NULL, &ro));
        } else if (t->role == ROLE_PATCH_EMBED) { /* a vision tower's first writer: a linear of the patch */
            ROTQ_TRY(rotq_center_output(t, NULL, &ro));
        } else if (t->role == ROLE_O || t->role == ROLE_DOWN) {
            rotq_tensor *b = rotq_model_role(m, rotq_role_bias((rotq_role)t->role), t->layer);
            ROTQ_TRY(rotq_center_output(t, b, &ro));
        }
    }
    return ROTQ_OK;
}

rotq_status rotq_op_fuse_norms(rotq_rotate_ctx *ctx) {
    rotq_model *m = ctx->m;
    if (!ctx->opt->fuse_norms) return ROTQ_OK;
    bool layer_norm = rotq_model_norm_kind(m) == ROTQ_NORM_LAYER;
    /* checked before anything changes */
    if (ctx->globals && m->hp.tied_embeddings && !rotq_model_role(m, ROLE_LM_HEAD, -1) && !final_norm_is_unit(m))
        return rotq_fail(ROTQ_ERR_ARG, "%s: the final norm cannot be fused into a tied lm_head; run untie_embeddings first", m->source_path);
    if (layer_norm) {
        /* centring and the mean-keeping R1 touch the whole model at once: never streamed (plan.c) */
        if (!ctx->globals || ctx->layer_begin != 0 || ctx->layer_end != (int32_t)m->hp.n_layers)
            return rotq_fail(ROTQ_ERR_ARG, "%s: LayerNorm fusion runs on the whole model, not layer by layer", m->source_path);
        ROTQ_TRY(center_stream(m));
    }
    for (int32_t gi = 0; gi < m->arch->n_groups; gi++) {
        const rotq_norm_group *g = &m->arch->groups[gi];
        const rotq_arch_tensor *nt = rotq_arch_tensor_for(m->arch, g->norm);
        if (!nt || (!nt->per_layer && !ctx->globals)) continue;
        if (!nt->per_layer) ROTQ_TRY(fuse_group(ctx, g, -1));
        else for (int32_t L = ctx->layer_begin; L < ctx->layer_end; L++) ROTQ_TRY(fuse_group(ctx, g, L));
    }
    if (ctx->globals) {
        m->rot.norms_fused = true;
        if (layer_norm) m->rot.ln_as_rms = true;
    }
    return ROTQ_OK;
}

/* ---- R1 on a LayerNorm model --------------------------------------------------------------- */

/* Readers of the stream (a vision merger reads blocks of it: rows of its weight split into stream-wide pieces). */
static bool stream_reader(int32_t role) {
    return role == ROLE_Q || role == ROLE_K || role == ROLE_V || role == ROLE_QKV || role == ROLE_GATE || role == ROLE_UP ||
           role == ROLE_GATE_UP || role == ROLE_LM_HEAD || role == ROLE_MERGER_UP;
}

/* x ← x·P = x − 2(x·v)v for each row of n doubles */
static void reflect_rows(double *x, int64_t rows, const double *v, int64_t n) {
    for (int64_t r = 0; r < rows; r++) {
        double *row = x + r * n, dot = 0.0;
        for (int64_t i = 0; i < n; i++) dot += row[i] * v[i];
        for (int64_t i = 0; i < n; i++) row[i] -= 2.0 * dot * v[i];
    }
}

/* D ← P·D for D [n, cols] (P = I − 2vvᵀ): u = vᵀ·D, then D −= 2·v·uᵀ. u: scratch of cols doubles. */
static void reflect_cols(double *d, int64_t n, int64_t cols, const double *v, double *u) {
    memset(u, 0, (size_t)cols * sizeof *u);
    for (int64_t i = 0; i < n; i++)
        for (int64_t j = 0; j < cols; j++) u[j] += v[i] * d[i * cols + j];
    for (int64_t i = 0; i < n; i++)
        for (int64_t j = 0; j < cols; j++) d[i * cols + j] -= 2.0 * v[i] * u[j];
}

/* Applies P to one stream site: rows (embeddings, readers W ← W·P, norm biases) or, for writers,
 * the output side W ← P·W (P is symmetric). */
static rotq_status reflect_tensor(rotq_tensor *t, const double *v, int64_t n, bool output_side) {
    int64_t numel = rotq_tensor_numel(t);
    double *d = malloc((size_t)(numel ? numel : 1) * sizeof *d);
    if (!d) return rotq_fail(ROTQ_ERR_NOMEM, "out of memory reflecting %s", t->name);
    rotq_status s = rotq_tensor_to_f64(t, d);
    if (s == ROTQ_OK && !output_side) {
        if (numel % n) s = rotq_fail(ROTQ_ERR_FORMAT, "tensor %s: %lld elements are not rows of %lld", t->name, (long long)numel, (long long)n);
        else reflect_rows(d, numel / n, v, n);
    } else if (s == ROTQ_OK) {
        int64_t cols = numel / n;
        if (t->shape[0] != n) s = rotq_fail(ROTQ_ERR_FORMAT, "tensor %s: %lld output rows, the stream has %lld", t->name, (long long)t->shape[0], (long long)n);
        double *u = s == ROTQ_OK ? malloc((size_t)(cols ? cols : 1) * sizeof *u) : NULL;
        if (s == ROTQ_OK && !u) s = rotq_fail(ROTQ_ERR_NOMEM, "out of memory reflecting %s", t->name);
        if (s == ROTQ_OK) reflect_cols(d, n, cols, v, u);
        free(u);
    }
    if (s == ROTQ_OK) s = rotq_tensor_set_f64(t, d);
    free(d);
    return s;
}

rotq_status rotq_r1_keep_mean(rotq_model *m, const struct rotq_rotation *R, struct rotq_rotation **effective) {
    if (effective) *effective = NULL;
    int64_t n = R->n;
    if (n != m->hp.hidden) return rotq_fail(ROTQ_ERR_ARG, "R1 of size %lld for a stream of %lld", (long long)n, (long long)m->hp.hidden);
    double *e = malloc((size_t)n * sizeof *e), *v = malloc((size_t)n * sizeof *v);
    if (!e || !v) { free(e); free(v); return rotq_fail(ROTQ_ERR_NOMEM, "out of memory for R1"); }
    for (int64_t i = 0; i < n; i++) e[i] = v[i] = 1.0 / sqrt((double)n);
    rotq_status s = rotq_rotation_apply_rows_f64(R, v, 1, true); /* v = (R·e)ᵀ */
    double norm = 0.0;
    for (int64_t i = 0; s == ROTQ_OK && i < n; i++) {
        v[i] -= e[i];
        norm += v[i] * v[i];
    }
    norm = sqrt(norm);
    free(e);
    if (s != ROTQ_OK || norm < 1e-12) { free(v); return s; } /* R already keeps 1 */
    for (int64_t i = 0; i < n; i++) v[i] /= norm;
    for (int64_t i = 0; s == ROTQ_OK && i < m->n_tensors; i++) {
        rotq_tensor *t = &m->tensors[i];
        int32_t r = t->role;
        if (r == ROLE_EMBED || r == ROLE_POS_EMBED || stream_reader(r) || r == ROLE_ATTN_NORM_BIAS ||
            r == ROLE_MLP_NORM_BIAS || r == ROLE_FINAL_NORM_BIAS || r == ROLE_O_BIAS || r == ROLE_DOWN_BIAS)
            s = reflect_tensor(t, v, n, false);
        else if (r == ROLE_O || r == ROLE_DOWN || r == ROLE_PATCH_EMBED)
            s = reflect_tensor(t, v, n, true);
    }
    if (s == ROTQ_OK && effective) {
        /* the matrix that now acts on the stream, P·R, for --save-rotations */
        double *M = malloc((size_t)(n * n) * sizeof *M), *u = malloc((size_t)n * sizeof *u);
        if (!M || !u) s = rotq_fail(ROTQ_ERR_NOMEM, "out of memory for R1 (%lld²)", (long long)n);
        if (s == ROTQ_OK) s = rotq_rotation_to_dense_f64(R, M);
        if (s == ROTQ_OK) {
            reflect_cols(M, n, n, v, u);
            s = rotq_rotation_from_dense(n, M, 1e-9, effective);
        }
        if (s == ROTQ_OK) snprintf((*effective)->desc, sizeof (*effective)->desc, "%.150s, reflected to fix 1", R->desc);
        free(M);
        free(u);
    }
    free(v);
    return s;
}
