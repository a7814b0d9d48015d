/* The forward pass: weight preparation, the decoder loop with its hook points, the KV cache. */
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cblas.h>

#include "core/files.h"
#include "nn/nn.h"

/* ---- preparing weights ------------------------------------------------------------------------ */

static rotq_status keep_owned(rotq_runner *r, void *p, uint64_t bytes) {
    if (r->n_owned == r->cap_owned) {
        int64_t cap = r->cap_owned ? 2 * r->cap_owned : 64;
        void **n = realloc(r->owned, (size_t)cap * sizeof *n);
        if (!n) { free(p); return rotq_fail(ROTQ_ERR_NOMEM, "nn: out of memory listing weight copies"); }
        r->owned = n;
        r->cap_owned = cap;
    }
    r->owned[r->n_owned++] = p;
    r->owned_bytes += bytes;
    return ROTQ_OK;
}

/* A float32 view of tensor t: its own data when already float32 and aligned, else a copy. */
static rotq_status f32_view(rotq_runner *r, const rotq_tensor *t, int64_t want_numel, const float **out) {
    int64_t n = rotq_tensor_numel(t);
    if (n != want_numel)
        return rotq_fail(ROTQ_ERR_FORMAT, "nn: tensor %s has %lld elements, the runner expects %lld", t->name,
                         (long long)n, (long long)want_numel);
    if (t->dtype == ROTQ_F32 && ((uintptr_t)t->data % sizeof(float)) == 0) {
        *out = t->data;
        return ROTQ_OK;
    }
    float *p = malloc((size_t)n * sizeof(float));
    if (!p) return rotq_fail(ROTQ_ERR_NOMEM, "nn: out of memory converting %s (%lld floats)", t->name, (long long)n);
    rotq_status s = rotq_tensor_to_f32(t, p);
    if (s != ROTQ_OK) { free(p); return s; }
    ROTQ_TRY(keep_owned(r, p, (uint64_t)n * sizeof(float)));
    *out = p;
    return ROTQ_OK;
}

/* The float32 data of role `role` in `layer`, or NULL when the model lacks it and it is optional. */
static rotq_status role_f32(rotq_runner *r, rotq_role role, int32_t layer, int64_t numel, bool required,
                            const float **out) {
    *out = NULL;
    const rotq_tensor *t = rotq_model_role(r->model, role, layer);
    if (!t) {
        if (!required) return ROTQ_OK;
        return rotq_fail(ROTQ_ERR_FORMAT, "nn: model %s has no %s tensor for layer %d", r->model->source_path,
                         rotq_role_name(role), layer);
    }
    return f32_view(r, t, numel, out);
}

static rotq_status prepare_layer(rotq_runner *r, int32_t l) {
    const rotq_hparams *hp = &r->hp;
    int64_t d = hp->hidden, ff = hp->intermediate, qd = hp->n_heads * hp->head_dim, kvd = hp->n_kv_heads * hp->head_dim;
    rotq_layer_weights *w = &r->layers[l];
    ROTQ_TRY(role_f32(r, ROLE_ATTN_NORM, l, d, true, &w->attn_norm));
    ROTQ_TRY(role_f32(r, ROLE_ATTN_NORM_BIAS, l, d, false, &w->attn_norm_b));
    ROTQ_TRY(role_f32(r, ROLE_MLP_NORM, l, d, true, &w->mlp_norm));
    ROTQ_TRY(role_f32(r, ROLE_MLP_NORM_BIAS, l, d, false, &w->mlp_norm_b));

    if (rotq_model_role(r->model, ROLE_QKV, l)) {
        /* Phi-3: rows [q; k; v] of one tensor, viewed as three */
        const float *qkv, *b;
        ROTQ_TRY(role_f32(r, ROLE_QKV, l, (qd + 2 * kvd) * d, true, &qkv));
        w->wq = qkv;
        w->wk = qkv + qd * d;
        w->wv = qkv + (qd + kvd) * d;
        w->fused_qkv = true;
        ROTQ_TRY(role_f32(r, ROLE_QKV_BIAS, l, qd + 2 * kvd, false, &b));
        if (b) { w->bq = b; w->bk = b + qd; w->bv = b + qd + kvd; }
    } else {
        ROTQ_TRY(role_f32(r, ROLE_Q, l, qd * d, true, &w->wq));
        ROTQ_TRY(role_f32(r, ROLE_K, l, kvd * d, true, &w->wk));
        ROTQ_TRY(role_f32(r, ROLE_V, l, kvd * d, true, &w->wv));
        ROTQ_TRY(role_f32(r, ROLE_Q_BIAS, l, qd, false, &w->bq));
        ROTQ_TRY(role_f32(r, ROLE_K_BIAS, l, kvd, false, &w->bk));
        ROTQ_TRY(role_f32(r, ROLE_V_BIAS, l, kvd, false, &w->bv));
    }
    ROTQ_TRY(role_f32(r, ROLE_O, l, d * qd, true, &w->wo));
    ROTQ_TRY(role_f32(r, ROLE_O_BIAS, l, d, false, &w->bo));

    if (rotq_model_role(r->model, ROLE_GATE_UP, l)) {
        /* Phi-3: rows [gate; up] of one tensor */
        const float *gu;
        ROTQ_TRY(role_f32(r, ROLE_GATE_UP, l, 2 * ff * d, true, &gu));
        w->wgate = gu;
        w->wup = gu + ff * d;
        w->fused_gate_up = true;
    } else {
        ROTQ_TRY(role_f32(r, ROLE_GATE, l, ff * d, r->gated, &w->wgate));
        ROTQ_TRY(role_f32(r, ROLE_UP, l, ff * d, true, &w->wup));
        ROTQ_TRY(role_f32(r, ROLE_GATE_BIAS, l, ff, false, &w->bgate));
        ROTQ_TRY(role_f32(r, ROLE_UP_BIAS, l, ff, false, &w->bup));
    }
    ROTQ_TRY(role_f32(r, ROLE_DOWN, l, d * ff, true, &w->wdown));
    ROTQ_TRY(role_f32(r, ROLE_DOWN_BIAS, l, d, false, &w->bdown));
    ROTQ_TRY(role_f32(r, ROLE_Q_NORM, l, hp->head_dim, false, &w->q_norm));
    ROTQ_TRY(role_f32(r, ROLE_K_NORM, l, hp->head_dim, false, &w->k_norm));
    ROTQ_TRY(role_f32(r, ROLE_POST_ATTN_NORM, l, d, false, &w->post_attn_norm));
    ROTQ_TRY(role_f32(r, ROLE_POST_MLP_NORM, l, d, false, &w->post_mlp_norm));
    if (!w->q_norm != !w->k_norm)
        return rotq_fail(ROTQ_ERR_FORMAT, "nn: model %s has a %s norm but no %s norm in layer %d", r->model->source_path,
                         w->q_norm ? "q" : "k", w->q_norm ? "k" : "q", l);
    w->local = rotq_hparams_layer_sliding(hp, l);
    return ROTQ_OK;
}

static rotq_status check_hparams(const rotq_model *m) {
    const rotq_hparams *hp = &m->hp;
    const char *p = m->source_path;
    if (hp->hidden <= 0 || hp->intermediate <= 0 || hp->n_layers <= 0 || hp->n_heads <= 0 || hp->n_kv_heads <= 0 ||
        hp->head_dim <= 0 || hp->vocab <= 0)
        return rotq_fail(ROTQ_ERR_FORMAT, "nn: %s: impossible sizes (hidden %lld, intermediate %lld, %lld layers, %lld heads, "
                         "%lld KV heads, head dim %lld, vocab %lld)", p, (long long)hp->hidden, (long long)hp->intermediate,
                         (long long)hp->n_layers, (long long)hp->n_heads, (long long)hp->n_kv_heads,
                         (long long)hp->head_dim, (long long)hp->vocab);
    if (hp->n_heads % hp->n_kv_heads)
        return rotq_fail(ROTQ_ERR_FORMAT, "nn: %s: %lld heads do not split into %lld KV groups", p, (long long)hp->n_heads,
                         (long long)hp->n_kv_heads);
    bool rope = m->arch->pos == ROTQ_POS_ROPE;
    if (rope ? (hp->rotary_dim <= 0 || hp->rotary_dim > hp->head_dim || hp->rotary_dim % 2) : hp->rotary_dim != 0)
        return rotq_fail(ROTQ_ERR_FORMAT, "nn: %s: rotary dim %lld invalid for head dim %lld", p, (long long)hp->rotary_dim,
                         (long long)hp->head_dim);
    if (!(hp->norm_eps > 0) || !(hp->rope_theta > 0))
        return rotq_fail(ROTQ_ERR_FORMAT, "nn: %s: norm epsilon %g / rope theta %g must be positive", p, hp->norm_eps,
                         hp->rope_theta);
    if (hp->sliding_window < 0 || hp->sliding_pattern < 0 || hp->rope_theta_local < 0 || !(hp->attn_scale >= 0) ||
        !(hp->embed_scale >= 0) || !isfinite(hp->norm_offset))
        return rotq_fail(ROTQ_ERR_FORMAT, "nn: %s: invalid sliding window %lld / pattern %d / local rope base %g / query scale "
                         "%g / embedding scale %g / norm offset %g", p, (long long)hp->sliding_window, hp->sliding_pattern,
                         hp->rope_theta_local, hp->attn_scale, hp->embed_scale, hp->norm_offset);
    if (hp->rope_scaling == 2 && (!(hp->rope_factor > 0) || !(hp->rope_high_freq_factor > hp->rope_low_freq_factor) ||
                                  !(hp->rope_low_freq_factor > 0) || hp->rope_orig_max_pos <= 0))
        return rotq_fail(ROTQ_ERR_FORMAT, "nn: %s: llama3 rope scaling needs factor > 0, high > low > 0 and an original "
                         "context (got %g, %g, %g, %lld)", p, hp->rope_factor, hp->rope_high_freq_factor,
                         hp->rope_low_freq_factor, (long long)hp->rope_orig_max_pos);
    if (hp->rope_scaling == 1 && !(hp->rope_factor > 0))
        return rotq_fail(ROTQ_ERR_FORMAT, "nn: %s: linear rope scaling factor %g must be positive", p, hp->rope_factor);
    /* BLAS takes int sizes */
    if (hp->hidden > (1 << 20) || hp->intermediate > (1 << 22) || hp->vocab > (1 << 24) ||
        hp->n_heads * hp->head_dim > (1 << 20))
        return rotq_fail(ROTQ_ERR_UNSUPPORTED, "nn: %s: sizes beyond what the runner handles", p);
    return ROTQ_OK;
}

rotq_status rotq_runner_new(const rotq_model *m, int threads, rotq_runner **out) {
    *out = NULL;
    if (!m || !m->arch) return rotq_fail(ROTQ_ERR_ARG, "nn: the model has no architecture bound");
    if (m->hp.mlp_act < ROTQ_MLP_SWIGLU || m->hp.mlp_act > ROTQ_MLP_QUICK_GELU)
        return rotq_fail(ROTQ_ERR_UNSUPPORTED, "nn: %s: MLP kind %d is not one the runner implements", m->source_path,
                         (int)m->hp.mlp_act);
    ROTQ_TRY(check_hparams(m));
    rotq_runner *r = calloc(1, sizeof *r);
    if (!r) return rotq_fail(ROTQ_ERR_NOMEM, "nn: out of memory");
    r->be = rotq_backend_cpu();
    r->model = m;
    r->hp = m->hp;
    /* The architecture's norm even after LayerNorm fusion: on the centred stream LayerNorm equals the RMSNorm
     * fusion aims at, and once the stream's writers are quantized (their outputs no longer exactly mean-free)
     * LayerNorm is what the written checkpoint means to every other runtime */
    r->norm = m->arch->norm;
    r->rope = m->arch->pos == ROTQ_POS_ROPE;
    r->gated = m->hp.mlp_act == ROTQ_MLP_SWIGLU || m->hp.mlp_act == ROTQ_MLP_GEGLU;
    r->pos_offset = m->arch->pos_offset;
    r->norm_offset = (float)m->hp.norm_offset;
    r->embed_scale = m->hp.embed_scale > 0 ? (float)m->hp.embed_scale : 1.0f;
    r->attn_scale = m->hp.attn_scale > 0 ? (float)m->hp.attn_scale : 1.0f / sqrtf((float)r->hp.head_dim);
    r->online_required = rotq_record_has_online(&m->rot);
    if (threads > 0) {
        r->threads = threads;
        omp_set_num_threads(threads);
        openblas_set_num_threads(threads);
    } else {
        r->threads = omp_get_max_threads();
    }
    const rotq_hparams *hp = &r->hp;
    int64_t d = hp->hidden;
    rotq_status s = ROTQ_OK;
    r->layers = calloc((size_t)hp->n_layers, sizeof *r->layers);
    if (r->rope) r->inv_freq = malloc((size_t)(hp->rotary_dim / 2) * sizeof(float));
    if (!r->layers || (r->rope && !r->inv_freq)) { s = rotq_fail(ROTQ_ERR_NOMEM, "nn: out of memory"); goto fail; }
    if (r->rope) rotq_rope_inv_freq(hp, r->inv_freq);
    bool any_local = false;
    for (int32_t l = 0; l < hp->n_layers; l++) any_local |= rotq_hparams_layer_sliding(hp, l);
    if (r->rope && any_local && hp->rope_theta_local > 0) {
        /* local layers: their own base, without the global layers' scaling (transformers, llama.cpp) */
        rotq_hparams local = *hp;
        local.rope_theta = hp->rope_theta_local;
        local.rope_scaling = 0;
        r->inv_freq_local = malloc((size_t)(hp->rotary_dim / 2) * sizeof(float));
        if (!r->inv_freq_local) { s = rotq_fail(ROTQ_ERR_NOMEM, "nn: out of memory"); goto fail; }
        rotq_rope_inv_freq(&local, r->inv_freq_local);
    }
    if (m->arch->vision_tower) {
        /* a vision tower: patches in through the patch embedding, merged patches out through the merger */
        r->vision = true;
        r->merge = m->vis.merge;
        r->out_hidden = m->vis.out_hidden;
        r->vis_window = m->vis.window;
        memcpy(r->full_layers, m->vis.full_layers, sizeof r->full_layers);
        int64_t mm = r->merge * r->merge * d;
        rotq_hparams quarter = *hp; /* its rotary frequencies: transformers' for dim head_dim / 2 */
        quarter.rotary_dim = hp->head_dim / 2;
        quarter.rope_scaling = 0;
        rotq_rope_inv_freq(&quarter, r->inv_freq);
        if ((s = role_f32(r, ROLE_PATCH_EMBED, -1, d * hp->vocab, true, &r->patch_embed)) != ROTQ_OK ||
            (s = role_f32(r, ROLE_MERGER_UP, -1, mm * mm, true, &r->merger_up)) != ROTQ_OK ||
            (s = role_f32(r, ROLE_MERGER_UP_BIAS, -1, mm, false, &r->merger_up_b)) != ROTQ_OK ||
            (s = role_f32(r, ROLE_MERGER_DOWN, -1, r->out_hidden * mm, true, &r->merger_down)) != ROTQ_OK ||
            (s = role_f32(r, ROLE_MERGER_DOWN_BIAS, -1, r->out_hidden, false, &r->merger_down_b)) != ROTQ_OK)
            goto fail;
    } else {
        if ((s = role_f32(r, ROLE_EMBED, -1, hp->vocab * d, true, &r->embed)) != ROTQ_OK) goto fail;
        if (!r->rope &&
            (s = role_f32(r, ROLE_POS_EMBED, -1, (hp->max_pos + r->pos_offset) * d, true, &r->pos_embed)) != ROTQ_OK)
            goto fail;
    }
    for (int32_t l = 0; l < hp->n_layers; l++)
        if ((s = prepare_layer(r, l)) != ROTQ_OK) goto fail;
    if ((s = role_f32(r, ROLE_FINAL_NORM, -1, d, true, &r->final_norm)) != ROTQ_OK) goto fail;
    if ((s = role_f32(r, ROLE_FINAL_NORM_BIAS, -1, d, false, &r->final_norm_b)) != ROTQ_OK) goto fail;
    if (r->vision) { /* the merger takes the place of lm_head */
        *out = r;
        return ROTQ_OK;
    }
    if ((s = role_f32(r, ROLE_LM_HEAD, -1, hp->vocab * d, false, &r->lm_head)) != ROTQ_OK) goto fail;
    if (!r->lm_head) r->lm_head = r->embed; /* tied */
    if ((s = role_f32(r, ROLE_LM_HEAD_BIAS, -1, hp->vocab, false, &r->lm_head_b)) != ROTQ_OK) goto fail;
    *out = r;
    return ROTQ_OK;
fail:
    rotq_runner_free(r);
    return s;
}

static void free_scratch(rotq_runner *r) {
    float **bufs[] = {&r->x, &r->xn, &r->q, &r->k, &r->v, &r->att, &r->attn_work, &r->ff1, &r->ff2, &r->scores, &r->rope_cos, &r->rope_sin,
                      &r->rope_cos_l, &r->rope_sin_l};
    for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++) { r->be->release(*bufs[i]); *bufs[i] = NULL; }
    r->scratch_T = r->scores_cap = 0;
}

void rotq_runner_free(rotq_runner *r) {
    if (!r) return;
    for (int i = 0; i < r->n_tf; i++)
        if (r->tf[i].release) r->tf[i].release(r->tf[i].hooks.ctx);
    for (int64_t i = 0; i < r->n_owned; i++) free(r->owned[i]);
    free(r->owned);
    free(r->layers);
    free(r->inv_freq);
    free(r->inv_freq_local);
    free_scratch(r);
    free(r);
}

/* ---- transforms ------------------------------------------------------------------------------ */

rotq_status rotq_runner_add_transform(rotq_runner *r, const rotq_transform *t) {
    if (r->n_tf == ROTQ_MAX_TRANSFORMS)
        return rotq_fail(ROTQ_ERR_ARG, "nn: more than %d transforms on one runner (adding \"%s\")", ROTQ_MAX_TRANSFORMS,
                         t->name);
    /* the order is part of the function: quantizers and probes must see rotated values */
    if (t->kind == ROTQ_TF_ONLINE_ROTATION)
        for (int i = 0; i < r->n_tf; i++)
            if (r->tf[i].kind != ROTQ_TF_ONLINE_ROTATION)
                return rotq_fail(ROTQ_ERR_ARG, "nn: online rotation \"%s\" added after \"%s\"; online rotations come "
                                 "first", t->name, r->tf[i].name);
    r->tf[r->n_tf++] = *t;
    return ROTQ_OK;
}

rotq_status rotq_runner_check_ready(const rotq_runner *r) {
    if (r->online_required && !r->online_attached)
        return rotq_fail(ROTQ_ERR_ARG, "nn: %s records online rotations (R3/R4) that this runner does not apply; "
                         "run it through a session (rotq_session_new), which attaches them", r->model->source_path);
    return ROTQ_OK;
}

/* Sites in the order a layer meets them. */
static const char *const site_names[] = {"linear_input", "linear", "qk_rope", "v", "down_input"};

static bool acts_at(const rotq_hooks *h, size_t site) {
    switch (site) {
    case 0: return h->linear_input != NULL;
    case 1: return h->linear != NULL;
    case 2: return h->qk_rope != NULL;
    case 3: return h->v != NULL;
    default: return h->down_input != NULL;
    }
}

void rotq_runner_describe(const rotq_runner *r, char *out, size_t size) {
    size_t n = 0;
    if (size) out[0] = 0;
    for (size_t site = 0; site < sizeof site_names / sizeof site_names[0]; site++) {
        bool any = false;
        for (int i = 0; i < r->n_tf && n < size; i++) {
            if (!acts_at(&r->tf[i].hooks, site)) continue;
            if (any) n += (size_t)snprintf(out + n, size - n, " -> %s", r->tf[i].name);
            else n += (size_t)snprintf(out + n, size - n, "%s%s: %s", n ? "\n" : "", site_names[site], r->tf[i].name);
            any = true;
        }
    }
    if (n == 0 && size) snprintf(out, size, "none (the model as stored, in float)");
}

uint64_t rotq_runner_owned_bytes(const rotq_runner *r) { return r->owned_bytes; }

void rotq_runner_set_training(rotq_runner *r, rotq_activations *acts) { r->train = acts; }

/* ---- training-mode records ------------------------------------------------------------------------ */

rotq_status rotq_activations_new(const rotq_runner *r, int64_t T, rotq_activations **out) {
    *out = NULL;
    const rotq_hparams *hp = &r->hp;
    int64_t L = hp->n_layers, d = hp->hidden, qd = hp->n_heads * hp->head_dim, kvd = hp->n_kv_heads * hp->head_dim;
    int64_t ff = hp->intermediate, nh = hp->n_heads;
    if (T <= 0) return rotq_fail(ROTQ_ERR_ARG, "nn: activations for %lld tokens", (long long)T);
    /* per layer: 6 [T,d] + 4 [T,qd] + 4 [T,kvd] + 4 [T,ff] + [nh,T] + 2 [T], and q/k before their norms */
    bool qk_norm = r->layers[0].q_norm != NULL;
    int64_t per_layer = T * (6 * d + 4 * qd + 4 * kvd + 4 * ff + nh + 2 + (qk_norm ? qd + kvd : 0));
    int64_t total = L * per_layer + T * (2 * d + 1);
    rotq_activations *a = calloc(1, sizeof *a);
    if (a) a->layers = calloc((size_t)L, sizeof *a->layers);
    if (a && a->layers) a->block = malloc((size_t)total * sizeof(float));
    if (!a || !a->layers || !a->block) {
        rotq_activations_free(a);
        return rotq_fail(ROTQ_ERR_NOMEM, "nn: out of memory for training activations (%lld floats)", (long long)total);
    }
    a->T = T;
    a->n_layers = L;
    float *p = a->block;
#define TAKE(field, n) (field = p, p += (n))
    for (int64_t l = 0; l < L; l++) {
        rotq_layer_acts *s = &a->layers[l];
        TAKE(s->x_in, T * d), TAKE(s->rstd_attn, T), TAKE(s->xn_attn_raw, T * d), TAKE(s->xn_attn, T * d);
        if (qk_norm) TAKE(s->q_pre, T * qd), TAKE(s->k_pre, T * kvd);
        TAKE(s->q_raw, T * qd), TAKE(s->k_raw, T * kvd), TAKE(s->v_raw, T * kvd);
        TAKE(s->q, T * qd), TAKE(s->k, T * kvd), TAKE(s->v, T * kvd), TAKE(s->lse, nh * T);
        TAKE(s->att_raw, T * qd), TAKE(s->att, T * qd), TAKE(s->x_mid, T * d), TAKE(s->rstd_mlp, T);
        TAKE(s->xn_mlp_raw, T * d), TAKE(s->xn_mlp, T * d), TAKE(s->gate, T * ff), TAKE(s->up, T * ff);
        TAKE(s->ff_raw, T * ff), TAKE(s->ff, T * ff);
    }
    TAKE(a->x_final, T * d), TAKE(a->rstd_final, T), TAKE(a->hidden_raw, T * d);
#undef TAKE
    *out = a;
    return ROTQ_OK;
}

void rotq_activations_free(rotq_activations *a) {
    if (!a) return;
    free(a->block);
    free(a->layers);
    free(a);
}

/* Activations for T tokens. */
static rotq_status ensure_scratch(rotq_runner *r, int64_t T) {
    if (T <= r->scratch_T) return ROTQ_OK;
    int64_t newT = T;
    free_scratch(r);
    const rotq_hparams *hp = &r->hp;
    int64_t d = hp->hidden, qd = hp->n_heads * hp->head_dim, kvd = hp->n_kv_heads * hp->head_dim;
    int64_t half = hp->rotary_dim / 2, ff = hp->intermediate;
    struct { float **p; int64_t n; } want[] = {
        {&r->x, newT * d}, {&r->xn, newT * d}, {&r->q, newT * qd}, {&r->k, newT * kvd}, {&r->v, newT * kvd},
        {&r->att, newT * qd}, {&r->attn_work, 2 * newT * qd}, {&r->ff1, newT * ff}, {&r->ff2, newT * ff},
        {&r->rope_cos, newT * half}, {&r->rope_sin, newT * half},
        {&r->rope_cos_l, r->inv_freq_local ? newT * half : 0}, {&r->rope_sin_l, r->inv_freq_local ? newT * half : 0},
    };
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
        *want[i].p = r->be->alloc((size_t)(want[i].n > 0 ? want[i].n : 1) * sizeof(float));
        if (!*want[i].p) {
            free_scratch(r);
            return rotq_fail(ROTQ_ERR_NOMEM, "nn: out of memory for activations of %lld tokens", (long long)newT);
        }
    }
    r->scratch_T = newT;
    return ROTQ_OK;
}

/* The attention scores block for T queries over n_keys keys. */
static rotq_status ensure_scores(rotq_runner *r, int64_t T, int64_t n_keys) {
    int64_t need = r->hp.n_heads * rotq_attention_block(T, r->hp.n_heads, n_keys) * n_keys;
    if (need <= r->scores_cap) return ROTQ_OK;
    r->be->release(r->scores);
    r->scores = r->be->alloc((size_t)need * sizeof(float));
    r->scores_cap = r->scores ? need : 0;
    if (!r->scores) return rotq_fail(ROTQ_ERR_NOMEM, "nn: out of memory for attention scores (%lld floats)", (long long)need);
    return ROTQ_OK;
}

/* ---- KV cache ----------------------------------------------------------------------------- */

rotq_status rotq_kv_cache_new(const rotq_runner *r, int64_t capacity, rotq_kv_cache **out) {
    *out = NULL;
    if (capacity <= 0 || capacity > (1 << 24))
        return rotq_fail(ROTQ_ERR_ARG, "nn: KV cache capacity %lld out of range", (long long)capacity);
    rotq_kv_cache *c = calloc(1, sizeof *c);
    if (!c) return rotq_fail(ROTQ_ERR_NOMEM, "nn: out of memory");
    c->capacity = capacity;
    c->n_layers = r->hp.n_layers;
    c->kv_dim = r->hp.n_kv_heads * r->hp.head_dim;
    size_t n = (size_t)(c->n_layers * capacity * c->kv_dim);
    c->be = r->be;
    c->k = c->be->alloc(n * sizeof(float));
    c->v = c->be->alloc(n * sizeof(float));
    if (!c->k || !c->v) {
        rotq_kv_cache_free(c);
        return rotq_fail(ROTQ_ERR_NOMEM, "nn: out of memory for a KV cache of %lld positions", (long long)capacity);
    }
    *out = c;
    return ROTQ_OK;
}

void rotq_kv_cache_free(rotq_kv_cache *c) {
    if (!c) return;
    c->be->release(c->k);
    c->be->release(c->v);
    free(c);
}

/* ---- forward -------------------------------------------------------------------------------- */

void rotq_runner_rope_tables(const rotq_runner *r, int64_t pos0, int64_t T, float *cos_t, float *sin_t, float *cos_l,
                             float *sin_l) {
    if (!r->rope) return;
    int64_t half = r->hp.rotary_dim / 2;
    rotq_rope_tables(r->inv_freq, half, pos0, T, cos_t, sin_t);
    if (r->inv_freq_local) rotq_rope_tables(r->inv_freq_local, half, pos0, T, cos_l, sin_l);
}

int64_t rotq_runner_window(const rotq_runner *r, int32_t l) {
    return r->vision ? ROTQ_ATTN_FULL : r->layers[l].local ? r->hp.sliding_window : 0;
}

void rotq_runner_embed(const rotq_runner *r, const int32_t *ids, int64_t T, int64_t pos0, float *x) {
    int64_t d = r->hp.hidden;
    for (int64_t t = 0; t < T; t++) {
        float *row = x + t * d;
        memcpy(row, r->embed + (int64_t)ids[t] * d, (size_t)d * sizeof(float));
        if (r->embed_scale != 1.0f)
            for (int64_t i = 0; i < d; i++) row[i] *= r->embed_scale;
        if (r->pos_embed) {
            const float *p = r->pos_embed + (pos0 + t + r->pos_offset) * d;
            for (int64_t i = 0; i < d; i++) row[i] += p[i];
        }
    }
}

/* Checks a forward call of T tokens at the cache's next position and sizes the scratch. */
static rotq_status forward_begin(rotq_runner *r, int64_t T, const rotq_kv_cache *cache) {
    const rotq_hparams *hp = &r->hp;
    int64_t kvd = hp->n_kv_heads * hp->head_dim;
    if (T <= 0 || T > (1 << 20)) return rotq_fail(ROTQ_ERR_ARG, "nn: forward of %lld tokens", (long long)T);
    if (r->vision) return rotq_fail(ROTQ_ERR_ARG, "nn: %s is a vision tower: it runs images (rotq_nn_vision_forward), not tokens",
                                    r->model->source_path);
    ROTQ_TRY(rotq_runner_check_ready(r));
    ROTQ_TRY(rotq_check_cancel("forward"));
    int64_t pos0 = cache ? cache->n : 0;
    if (cache) {
        if (cache->n_layers != hp->n_layers || cache->kv_dim != kvd)
            return rotq_fail(ROTQ_ERR_ARG, "nn: KV cache made for another model shape");
        if (pos0 + T > cache->capacity)
            return rotq_fail(ROTQ_ERR_ARG, "nn: KV cache full (%lld positions cached, %lld more asked, capacity %lld)",
                             (long long)pos0, (long long)T, (long long)cache->capacity);
    }
    if (r->pos_embed && pos0 + T > hp->max_pos)
        return rotq_fail(ROTQ_ERR_ARG, "nn: %s: position %lld is beyond the model's %lld learned positions",
                         r->model->source_path, (long long)(pos0 + T - 1), (long long)hp->max_pos);
    if (r->train && (cache || T != r->train->T))
        return rotq_fail(ROTQ_ERR_ARG, "nn: a training-mode forward takes windows of exactly %lld tokens and no KV cache "
                         "(got %lld%s)", (long long)r->train->T, (long long)T, cache ? " with a cache" : "");
    ROTQ_TRY(ensure_scratch(r, T));
    return ensure_scores(r, T, pos0 + T);
}

/* The decoder from the residual stream r->x [T, d] and the RoPE tables in r->rope_*: every layer, the
 * final norm into hidden, lm_head's input transforms; the cache advances. */
static rotq_status forward_layers(rotq_runner *r, int64_t T, rotq_kv_cache *cache, float *hidden) {
    const rotq_hparams *hp = &r->hp;
    int64_t d = hp->hidden, kvd = hp->n_kv_heads * hp->head_dim, pos0 = cache ? cache->n : 0;
    rotq_activations *tr = r->train;
    rotq_layer_io io = {.x = r->x, .xn = r->xn, .q = r->q, .att = r->att, .ff1 = r->ff1, .ff2 = r->ff2,
                        .scores = r->scores, .work = r->attn_work, .cos_t = r->rope_cos, .sin_t = r->rope_sin,
                        .cos_l = r->inv_freq_local ? r->rope_cos_l : NULL, .sin_l = r->inv_freq_local ? r->rope_sin_l : NULL,
                        .T = T, .pos0 = pos0};
    for (int32_t l = 0; l < hp->n_layers; l++) {
        io.k_all = cache ? cache->k + (int64_t)l * cache->capacity * kvd : r->k;
        io.v_all = cache ? cache->v + (int64_t)l * cache->capacity * kvd : r->v;
        io.save = tr ? &tr->layers[l] : NULL;
        ROTQ_TRY(rotq_layer_forward(r, l, &io));
    }
    rotq_runner_norm(r, hidden, r->x, r->final_norm, r->final_norm_b, T);
    if (tr) {
        memcpy(tr->x_final, r->x, (size_t)(T * d) * sizeof(float));
        memcpy(tr->hidden_raw, hidden, (size_t)(T * d) * sizeof(float));
        rotq_runner_norm_rstd(r, r->x, T, tr->rstd_final);
    }
    ROTQ_TRY(rotq_runner_linear_input(r, -1, ROLE_LM_HEAD, hidden, T, d));
    if (cache) cache->n += T;
    return ROTQ_OK;
}

rotq_status rotq_nn_forward(rotq_runner *r, const int32_t *ids, int64_t T, rotq_kv_cache *cache, float *hidden) {
    const rotq_hparams *hp = &r->hp;
    ROTQ_TRY(forward_begin(r, T, cache));
    int64_t pos0 = cache ? cache->n : 0;
    for (int64_t t = 0; t < T; t++)
        if (ids[t] < 0 || ids[t] >= hp->vocab)
            return rotq_fail(ROTQ_ERR_ARG, "nn: token id %d at position %lld outside the vocabulary (%lld)", ids[t],
                             (long long)(pos0 + t), (long long)hp->vocab);
    /* x [T, d] = embed[ids] (+ learned positions) */
    rotq_runner_embed(r, ids, T, pos0, r->x);
    rotq_runner_rope_tables(r, pos0, T, r->rope_cos, r->rope_sin, r->rope_cos_l, r->rope_sin_l);
    return forward_layers(r, T, cache, hidden);
}

void rotq_mrope_tables(const float *inv_freq, int64_t half, const int32_t *section, const int64_t *pos3, int64_t T,
                       float *cos_t, float *sin_t) {
    for (int64_t i = 0, c = 0, end = section[0]; i < half; i++) {
        while (i >= end && c < 2) end += section[++c];
        for (int64_t t = 0; t < T; t++) {
            float angle = (float)pos3[c * T + t] * inv_freq[i]; /* float32 product, as transformers */
            cos_t[t * half + i] = cosf(angle);
            sin_t[t * half + i] = sinf(angle);
        }
    }
}

rotq_status rotq_nn_forward_embeds(rotq_runner *r, const float *x, const int64_t *pos3, int64_t T, rotq_kv_cache *cache,
                                   float *hidden) {
    ROTQ_TRY(forward_begin(r, T, cache));
    if (!r->rope || r->pos_embed || r->inv_freq_local)
        return rotq_fail(ROTQ_ERR_UNSUPPORTED, "nn: %s: embeddings with their own positions need a model with one RoPE for "
                         "every layer", r->model->source_path);
    const rotq_hparams *hp = &r->hp;
    memcpy(r->x, x, (size_t)(T * hp->hidden) * sizeof(float));
    int64_t half = hp->rotary_dim / 2;
    int32_t plain[3] = {(int32_t)half, 0, 0};
    bool sections = hp->mrope_section[0] + hp->mrope_section[1] + hp->mrope_section[2] > 0;
    if (pos3) rotq_mrope_tables(r->inv_freq, half, sections ? hp->mrope_section : plain, pos3, T, r->rope_cos, r->rope_sin);
    else rotq_runner_rope_tables(r, cache ? cache->n : 0, T, r->rope_cos, r->rope_sin, NULL, NULL);
    return forward_layers(r, T, cache, hidden);
}

/* Rows of one image's patches in the processor's order: frames, then merge×merge blocks row-major,
 * then the patches inside a block row-major; (h, w) of row i in patch units. */
static void patch_hw(int64_t i, int64_t gh, int64_t gw, int64_t m, int64_t *h, int64_t *w) {
    int64_t f = i % (gh * gw), blk = f / (m * m), in = f % (m * m);
    *h = blk / (gw / m) * m + in / m;
    *w = blk % (gw / m) * m + in % m;
}

rotq_status rotq_nn_vision_forward(rotq_runner *r, const float *patches, int64_t grid_t, int64_t grid_h, int64_t grid_w,
                                   float *out) {
    const rotq_hparams *hp = &r->hp;
    int64_t m = r->merge, d = hp->hidden, K = hp->vocab, T = grid_t * grid_h * grid_w, mm = m * m;
    if (!r->vision) return rotq_fail(ROTQ_ERR_ARG, "nn: %s is not a vision tower", r->model->source_path);
    if (grid_t <= 0 || grid_h <= 0 || grid_w <= 0 || grid_h % m || grid_w % m || T > (1 << 20))
        return rotq_fail(ROTQ_ERR_ARG, "nn: a patch grid of %lld×%lld×%lld does not split into %lld×%lld merge blocks",
                         (long long)grid_t, (long long)grid_h, (long long)grid_w, (long long)m, (long long)m);
    ROTQ_TRY(rotq_runner_check_ready(r));
    ROTQ_TRY(rotq_check_cancel("vision forward"));
    ROTQ_TRY(ensure_scratch(r, T));
    ROTQ_TRY(ensure_scores(r, T, T));
    int64_t half = hp->rotary_dim / 2, quarter = half / 2, units = T / mm;
    int64_t row = K > mm * d ? K : mm * d;
    if (row < r->out_hidden) row = r->out_hidden;
    float *px = malloc((size_t)(T * row) * sizeof(float));
    /* windowed towers (Qwen2.5-VL) regroup the merged patches window by window: unit k of the new order is
     * unit order[k] of the processor's; segs bound each window's rows */
    int64_t *order = malloc(sizeof(int64_t) * (size_t)units), *segs = malloc(sizeof(int64_t) * (size_t)(units + 1)), n_segs = 0;
    if (!px || !order || !segs) {
        free(px), free(order), free(segs);
        return rotq_fail(ROTQ_ERR_NOMEM, "nn: out of memory for %lld patches", (long long)T);
    }
    int64_t k = 0, ws = r->vis_window, lh = grid_h / m, lw = grid_w / m;
    segs[0] = 0;
    if (ws > 0) {
        for (int64_t f = 0; f < grid_t; f++)
            for (int64_t wh = 0; wh < (lh + ws - 1) / ws; wh++)
                for (int64_t ww = 0; ww < (lw + ws - 1) / ws; ww++) {
                    for (int64_t i = wh * ws; i < (wh + 1) * ws && i < lh; i++)
                        for (int64_t j = ww * ws; j < (ww + 1) * ws && j < lw; j++) order[k++] = (f * lh + i) * lw + j;
                    segs[++n_segs] = k * mm;
                }
    } else {
        for (k = 0; k < units; k++) order[k] = k;
    }
    /* x [T, d] = patches · PEᵀ (rows in the new order) */
    for (k = 0; k < units; k++) memcpy(px + k * mm * K, patches + order[k] * mm * K, (size_t)(mm * K) * sizeof(float));
    rotq_status s = rotq_runner_linear_input(r, -1, ROLE_PATCH_EMBED, px, T, K);
    if (s == ROTQ_OK) r->be->linear(r->x, px, r->patch_embed, NULL, T, K, d, false);
    /* 2-D rotary positions: the first quarter of each head's frequencies turn with the patch row, the second
     * with its column (inv_freq_vision [quarter] as transformers computes it for dim head_dim / 2) */
    for (int64_t i = 0; s == ROTQ_OK && i < T; i++) {
        int64_t ph, pw;
        patch_hw(order[i / mm] * mm + i % mm, grid_h, grid_w, m, &ph, &pw);
        for (int64_t j = 0; j < half; j++) {
            float angle = (float)(j < quarter ? ph : pw) * r->inv_freq[j % quarter];
            r->rope_cos[i * half + j] = cosf(angle);
            r->rope_sin[i * half + j] = sinf(angle);
        }
    }
    rotq_layer_io io = {.x = r->x, .xn = r->xn, .q = r->q, .att = r->att, .ff1 = r->ff1, .ff2 = r->ff2, .scores = r->scores,
                        .work = r->attn_work, .cos_t = r->rope_cos, .sin_t = r->rope_sin, .T = T, .pos0 = 0,
                        .k_all = r->k, .v_all = r->v, .segs = ws > 0 ? segs : NULL, .n_segs = n_segs};
    /* one image: all its patches see each other in full layers (frames of a video would too: Qwen2-VL attends
     * per image), their window's in the others */
    for (int32_t l = 0; s == ROTQ_OK && l < hp->n_layers; l++) s = rotq_layer_forward(r, l, &io);
    /* the merger: norm each patch, read merge² neighbours as one row, up (GELU) and down into the LM's stream */
    if (s == ROTQ_OK) {
        rotq_runner_norm(r, px, r->x, r->final_norm, r->final_norm_b, T);
        s = rotq_runner_linear_input(r, -1, ROLE_MERGER_UP, px, T / mm, mm * d);
    }
    float *up = s == ROTQ_OK ? malloc((size_t)(T * d) * sizeof(float)) : NULL;
    if (s == ROTQ_OK && !up) s = rotq_fail(ROTQ_ERR_NOMEM, "nn: out of memory for the patch merger");
    if (s == ROTQ_OK) {
        r->be->linear(up, px, r->merger_up, r->merger_up_b, T / mm, mm * d, mm * d, false);
        r->be->activation(ROTQ_MLP_GELU, up, T * d);
        s = rotq_runner_linear_input(r, -1, ROLE_MERGER_DOWN, up, T / mm, mm * d);
    }
    if (s == ROTQ_OK) r->be->linear(px, up, r->merger_down, r->merger_down_b, T / mm, mm * d, r->out_hidden, false);
    /* back to the processor's order */
    for (k = 0; s == ROTQ_OK && k < units; k++)
        memcpy(out + order[k] * r->out_hidden, px + k * r->out_hidden, (size_t)r->out_hidden * sizeof(float));
    free(up);
    free(px);
    free(order);
    free(segs);
    return s;
}

rotq_status rotq_nn_logits(const rotq_runner *r, const float *hidden, int64_t rows, float *logits) {
    if (rows <= 0) return rotq_fail(ROTQ_ERR_ARG, "nn: logits of %lld rows", (long long)rows);
    r->be->linear(logits, hidden, r->lm_head, r->lm_head_b, rows, r->hp.hidden, r->hp.vocab, false);
    return ROTQ_OK;
}
