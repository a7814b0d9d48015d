/* Norm fusion and embedding untying: the operations that make the residual stream rotatable.
 * After fusion each RMSNorm only normalizes (weight 1), so R1 commutes with it. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "rotate/fuse.h"
#include "rotate/rotate.h"

rotq_status rotq_scale_linear_input(rotq_tensor *w, const double *s) { return rotq_scale_columns(w, s); }

/* Whether the final norm is already the identity scale (then R1 alone keeps embeddings tied). */
static bool final_norm_is_unit(const rotq_model *m) {
    rotq_tensor *fn = rotq_model_role(m, ROLE_FINAL_NORM, -1);
    if (!fn) return true;
    int64_t n = rotq_tensor_numel(fn);
    double *w = malloc((size_t)n * sizeof *w);
    bool unit = w && rotq_tensor_to_f64(fn, w) == ROTQ_OK;
    for (int64_t i = 0; unit && i < n; i++) unit = w[i] + m->arch->norm_offset == 1.0;
    free(w);
    return unit;
}

rotq_status rotq_op_untie_embeddings(rotq_rotate_ctx *ctx) {
    rotq_model *m = ctx->m;
    if (!ctx->globals || !m->hp.tied_embeddings || rotq_model_role(m, ROLE_LM_HEAD, -1)) return ROTQ_OK;
    /* Tied weights stay tied when nothing will make the two uses differ. */
    if (!ctx->opt->fuse_norms || final_norm_is_unit(m)) return ROTQ_OK;
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

/* Folds one norm (weight w, plus the architecture's offset) into the linears it feeds. */
static rotq_status fuse_group(rotq_rotate_ctx *ctx, const rotq_norm_group *g, int32_t layer) {
    rotq_model *m = ctx->m;
    rotq_tensor *norm = rotq_model_role(m, g->norm, layer);
    if (!norm) return ROTQ_OK;
    int64_t n = rotq_tensor_numel(norm);
    double *w = malloc((size_t)n * sizeof *w);
    if (!w) return rotq_fail(ROTQ_ERR_NOMEM, "out of memory fusing %s", norm->name);
    rotq_status s = rotq_tensor_to_f64(norm, w);
    for (int64_t i = 0; i < n; i++) w[i] += m->arch->norm_offset;
    for (int32_t i = 0; s == ROTQ_OK && i < g->n_linears; i++) {
        rotq_tensor *lin = rotq_model_role(m, g->linears[i], layer);
        if (!lin && g->linears[i] == ROLE_LM_HEAD) lin = NULL; /* still tied: the embedding is not scaled */
        if (!lin) continue;
        if (lin->shape[1] != n) s = rotq_fail(ROTQ_ERR_FORMAT, "%s feeds %s but their widths differ (%lld vs %lld)", norm->name,
                                             lin->name, (long long)n, (long long)lin->shape[1]);
        else s = rotq_scale_linear_input(lin, w);
    }
    if (s == ROTQ_OK) {
        for (int64_t i = 0; i < n; i++) w[i] = 1.0 - m->arch->norm_offset;
        s = rotq_tensor_set_f64(norm, w);
    }
    free(w);
    return s;
}

rotq_status rotq_op_fuse_norms(rotq_rotate_ctx *ctx) {
    rotq_model *m = ctx->m;
    if (!ctx->opt->fuse_norms) return ROTQ_OK;
    if (m->arch->norm != ROTQ_NORM_RMS)
        return rotq_fail(ROTQ_ERR_UNSUPPORTED, "%s: LayerNorm fusion is not implemented yet", m->source_path);
    for (int32_t gi = 0; gi < m->arch->n_groups; gi++) {
        const rotq_norm_group *g = &m->arch->groups[gi];
        const rotq_arch_tensor *nt = rotq_arch_tensor_for(m->arch, g->norm);
        if (!nt || (!nt->per_layer && !ctx->globals)) continue;
        if (g->norm == ROLE_FINAL_NORM && m->hp.tied_embeddings && !final_norm_is_unit(m))
            return rotq_fail(ROTQ_ERR_ARG, "%s: the final norm cannot be fused into a tied lm_head; run untie_embeddings first", m->source_path);
        if (!nt->per_layer) ROTQ_TRY(fuse_group(ctx, g, -1));
        else for (int32_t L = ctx->layer_begin; L < ctx->layer_end; L++) ROTQ_TRY(fuse_group(ctx, g, L));
    }
    if (ctx->globals) m->rot.norms_fused = true;
    return ROTQ_OK;
}
