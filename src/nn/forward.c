/* The forward pass: weight preparation, the decoder loop with its hook points, the KV cache. */
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cblas.h>

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
    if (m->hp.mlp_act < ROTQ_MLP_SWIGLU || m->hp.mlp_act > ROTQ_MLP_GELU_TANH)
        return rotq_fail(ROTQ_ERR_UNSUPPORTED, "nn: %s: MLP kind %d is not one the runner implements", m->source_path,
                         (int)m->hp.mlp_act);
    ROTQ_TRY(check_hparams(m));
    rotq_runner *r = calloc(1, sizeof *r);
    if (!r) return rotq_fail(ROTQ_ERR_NOMEM, "nn: out of memory");
    r->model = m;
    r->hp = m->hp;
    r->norm = rotq_model_norm_kind(m);
    r->rope = m->arch->pos == ROTQ_POS_ROPE;
    r->gated = m->hp.mlp_act == ROTQ_MLP_SWIGLU;
    r->pos_offset = m->arch->pos_offset;
    r->norm_offset = (float)m->arch->norm_offset;
    r->attn_scale = 1.0f / sqrtf((float)r->hp.head_dim);
    r->online_required = m->rot.r3.on || m->rot.r4.on;
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
    if ((s = role_f32(r, ROLE_EMBED, -1, hp->vocab * d, true, &r->embed)) != ROTQ_OK) goto fail;
    if (!r->rope &&
        (s = role_f32(r, ROLE_POS_EMBED, -1, (hp->max_pos + r->pos_offset) * d, true, &r->pos_embed)) != ROTQ_OK)
        goto fail;
    for (int32_t l = 0; l < hp->n_layers; l++)
        if ((s = prepare_layer(r, l)) != ROTQ_OK) goto fail;
    if ((s = role_f32(r, ROLE_FINAL_NORM, -1, d, true, &r->final_norm)) != ROTQ_OK) goto fail;
    if ((s = role_f32(r, ROLE_FINAL_NORM_BIAS, -1, d, false, &r->final_norm_b)) != ROTQ_OK) goto fail;
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
    float **bufs[] = {&r->x, &r->xn, &r->q, &r->k, &r->v, &r->att, &r->attn_work, &r->ff1, &r->ff2, &r->scores, &r->rope_cos, &r->rope_sin};
    for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++) { free(*bufs[i]); *bufs[i] = NULL; }
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
    free_scratch(r);
    free(r);
}

/* ---- transforms ------------------------------------------------------------------------------ */

const char *rotq_transform_kind_name(rotq_transform_kind k) {
    switch (k) {
    case ROTQ_TF_ONLINE_ROTATION: return "online rotation";
    case ROTQ_TF_FAKE_QUANT: return "fake quantization";
    case ROTQ_TF_INT_PRODUCT: return "integer product";
    case ROTQ_TF_STATS: return "statistics";
    case ROTQ_TF_OTHER: return "other";
    }
    return "?";
}

rotq_status rotq_runner_add_transform(rotq_runner *r, const rotq_transform *t) {
    if (r->n_tf == ROTQ_MAX_TRANSFORMS)
        return rotq_fail(ROTQ_ERR_ARG, "nn: more than %d transforms on one runner (adding \"%s\")", ROTQ_MAX_TRANSFORMS,
                         t->name);
    r->tf[r->n_tf++] = *t;
    return ROTQ_OK;
}

void rotq_runner_clear_transforms(rotq_runner *r) {
    int kept = 0;
    for (int i = 0; i < r->n_tf; i++) {
        if (r->tf[i].kind == ROTQ_TF_ONLINE_ROTATION) r->tf[kept++] = r->tf[i];
        else if (r->tf[i].release) r->tf[i].release(r->tf[i].hooks.ctx);
    }
    r->n_tf = kept;
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

rotq_status rotq_runner_linear_input(const rotq_runner *r, int32_t layer, rotq_role role, float *x, int64_t rows,
                                     int64_t cols) {
    for (int i = 0; i < r->n_tf; i++) {
        const rotq_hooks *h = &r->tf[i].hooks;
        if (h->linear_input) ROTQ_TRY(h->linear_input(h->ctx, layer, role, x, rows, cols));
    }
    return ROTQ_OK;
}

uint64_t rotq_runner_owned_bytes(const rotq_runner *r) { return r->owned_bytes; }

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
    };
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
        *want[i].p = malloc((size_t)(want[i].n > 0 ? want[i].n : 1) * sizeof(float));
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
    free(r->scores);
    r->scores = malloc((size_t)need * sizeof(float));
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
    c->k = malloc(n * sizeof(float));
    c->v = malloc(n * sizeof(float));
    if (!c->k || !c->v) {
        rotq_kv_cache_free(c);
        return rotq_fail(ROTQ_ERR_NOMEM, "nn: out of memory for a KV cache of %lld positions", (long long)capacity);
    }
    *out = c;
    return ROTQ_OK;
}

void rotq_kv_cache_free(rotq_kv_cache *c) {
    if (!c) return;
    free(c->k);
    free(c->v);
    free(c);
}

/* ---- forward -------------------------------------------------------------------------------- */

void rotq_runner_norm(const rotq_runner *r, float *out, const float *x, const float *w, const float *b, int64_t T) {
    const rotq_hparams *hp = &r->hp;
    if (r->norm == ROTQ_NORM_LAYER) {
        rotq_layernorm_forward(out, x, w, b, r->norm_offset, (float)hp->norm_eps, T, hp->hidden);
    } else {
        rotq_rmsnorm_forward(out, x, w, r->norm_offset, (float)hp->norm_eps, T, hp->hidden);
        if (b) rotq_add_rows(out, b, T, hp->hidden); /* a LayerNorm bias kept through fusion */
    }
}

void rotq_runner_embed(const rotq_runner *r, const int32_t *ids, int64_t T, int64_t pos0, float *x) {
    int64_t d = r->hp.hidden;
    for (int64_t t = 0; t < T; t++) {
        float *row = x + t * d;
        memcpy(row, r->embed + (int64_t)ids[t] * d, (size_t)d * sizeof(float));
        if (r->pos_embed) {
            const float *p = r->pos_embed + (pos0 + t + r->pos_offset) * d;
            for (int64_t i = 0; i < d; i++) row[i] += p[i];
        }
    }
}

/* A decoder linear: the first transform's product that takes it, else the float product. */
static rotq_status linear(const rotq_runner *r, int32_t l, rotq_role role, float *out, const float *x, const float *w,
                          const float *b, int64_t T, int64_t n_in, int64_t n_out, bool accumulate) {
    for (int i = 0; i < r->n_tf; i++) {
        const rotq_hooks *h = &r->tf[i].hooks;
        if (!h->linear) continue;
        bool done = false;
        rotq_status s = h->linear(h->ctx, l, role, x, T, n_in, out, n_out, b, accumulate, &done);
        if (s != ROTQ_OK || done) return s;
    }
    rotq_linear_forward(out, x, w, b, T, n_in, n_out, accumulate);
    return ROTQ_OK;
}
rotq_role rotq_runner_mlp_role(const rotq_runner *r, int32_t layer) {
    return r->layers[layer].fused_gate_up ? ROLE_GATE_UP : r->gated ? ROLE_GATE : ROLE_UP;
}

rotq_status rotq_runner_mlp_hidden(const rotq_runner *r, int32_t l, const float *xn, float *ff1, float *ff2, int64_t T) {
    const rotq_layer_weights *w = &r->layers[l];
    int64_t d = r->hp.hidden, ff = r->hp.intermediate;
    if (r->gated) {
        ROTQ_TRY(linear(r, l, ROLE_GATE, ff1, xn, w->wgate, w->bgate, T, d, ff, false));
        ROTQ_TRY(linear(r, l, ROLE_UP, ff2, xn, w->wup, w->bup, T, d, ff, false));
        rotq_swiglu_forward(ff1, ff2, T * ff);
    } else {
        ROTQ_TRY(linear(r, l, ROLE_UP, ff1, xn, w->wup, w->bup, T, d, ff, false));
        rotq_act_forward((rotq_mlp_kind)r->hp.mlp_act, ff1, T * ff);
    }
    for (int i = 0; i < r->n_tf; i++) {
        const rotq_hooks *h = &r->tf[i].hooks;
        if (h->down_input) ROTQ_TRY(h->down_input(h->ctx, l, ff1, T, ff));
    }
    return ROTQ_OK;
}

rotq_status rotq_runner_qkv(const rotq_runner *r, int32_t l, const float *xn, float *q, float *k, float *v,
                            const float *cos_t, const float *sin_t, int64_t T, int64_t pos0) {
    const rotq_hparams *hp = &r->hp;
    const rotq_layer_weights *w = &r->layers[l];
    int64_t d = hp->hidden, nh = hp->n_heads, nkv = hp->n_kv_heads, hd = hp->head_dim;
    int64_t qd = nh * hd, kvd = nkv * hd, half = hp->rotary_dim / 2;
    ROTQ_TRY(linear(r, l, ROLE_Q, q, xn, w->wq, w->bq, T, d, qd, false));
    ROTQ_TRY(linear(r, l, ROLE_K, k, xn, w->wk, w->bk, T, d, kvd, false));
    ROTQ_TRY(linear(r, l, ROLE_V, v, xn, w->wv, w->bv, T, d, kvd, false));
    if (r->rope) {
        rotq_rope_forward(q, cos_t, sin_t, T, nh, hd, half);
        rotq_rope_forward(k, cos_t, sin_t, T, nkv, hd, half);
    }
    for (int i = 0; i < r->n_tf; i++) {
        const rotq_hooks *h = &r->tf[i].hooks;
        if (h->qk_rope) ROTQ_TRY(h->qk_rope(h->ctx, l, q, k, T, pos0, nh, nkv, hd));
    }
    for (int i = 0; i < r->n_tf; i++) {
        const rotq_hooks *h = &r->tf[i].hooks;
        if (h->v) ROTQ_TRY(h->v(h->ctx, l, v, T, pos0, nkv, hd));
    }
    return ROTQ_OK;
}

#define HOOK(call) do { rotq_status hs_ = (call); if (hs_ != ROTQ_OK) return hs_; } while (0)



/* One decoder layer over x [T, d] in place. k_all/v_all [pos0+T, kvd] hold this layer's keys and
 * values; rows pos0.. are written here. */
static rotq_status layer_forward(rotq_runner *r, int32_t l, int64_t T, int64_t pos0, float *k_all, float *v_all) {
    const rotq_hparams *hp = &r->hp;
    const rotq_layer_weights *w = &r->layers[l];
    int64_t d = hp->hidden, nh = hp->n_heads, nkv = hp->n_kv_heads, hd = hp->head_dim, ff = hp->intermediate;
    int64_t qd = nh * hd, kvd = nkv * hd;

    /* attention block: xn = norm(x); q, k, v = xn · W{q,k,v}ᵀ (+ b) */
    rotq_runner_norm(r, r->xn, r->x, w->attn_norm, w->attn_norm_b, T);
    HOOK(rotq_runner_linear_input(r, l, w->fused_qkv ? ROLE_QKV : ROLE_Q, r->xn, T, d));
    HOOK(rotq_runner_qkv(r, l, r->xn, r->q, k_all + pos0 * kvd, v_all + pos0 * kvd, r->rope_cos, r->rope_sin, T, pos0));
    rotq_attention_forward_ws(r->att, r->q, k_all, v_all, r->scores, r->attn_work, T, pos0, nh, nkv, hd,
                              r->attn_scale, rotq_attention_block(T, nh, pos0 + T));
    /* x += att · Woᵀ (+ bo) */
    HOOK(rotq_runner_linear_input(r, l, ROLE_O, r->att, T, qd));
    HOOK(linear(r, l, ROLE_O, r->x, r->att, w->wo, w->bo, T, qd, d, true));

    /* MLP block: x += (silu(xn · Wgateᵀ) * (xn · Wupᵀ)) · Wdownᵀ, or act(xn · Wupᵀ + b) · Wdownᵀ */
    rotq_runner_norm(r, r->xn, r->x, w->mlp_norm, w->mlp_norm_b, T);
    HOOK(rotq_runner_linear_input(r, l, rotq_runner_mlp_role(r, l), r->xn, T, d));
    HOOK(rotq_runner_mlp_hidden(r, l, r->xn, r->ff1, r->ff2, T));
    HOOK(rotq_runner_linear_input(r, l, ROLE_DOWN, r->ff1, T, ff));
    HOOK(linear(r, l, ROLE_DOWN, r->x, r->ff1, w->wdown, w->bdown, T, ff, d, true));
    return ROTQ_OK;
}

rotq_status rotq_nn_forward(rotq_runner *r, const int32_t *ids, int64_t T, rotq_kv_cache *cache, float *hidden) {
    const rotq_hparams *hp = &r->hp;
    int64_t d = hp->hidden, kvd = hp->n_kv_heads * hp->head_dim;
    if (T <= 0 || T > (1 << 20)) return rotq_fail(ROTQ_ERR_ARG, "nn: forward of %lld tokens", (long long)T);
    ROTQ_TRY(rotq_runner_check_ready(r));
    int64_t pos0 = cache ? cache->n : 0;
    if (cache) {
        if (cache->n_layers != hp->n_layers || cache->kv_dim != kvd)
            return rotq_fail(ROTQ_ERR_ARG, "nn: KV cache made for another model shape");
        if (pos0 + T > cache->capacity)
            return rotq_fail(ROTQ_ERR_ARG, "nn: KV cache full (%lld positions cached, %lld more asked, capacity %lld)",
                             (long long)pos0, (long long)T, (long long)cache->capacity);
    }
    for (int64_t t = 0; t < T; t++)
        if (ids[t] < 0 || ids[t] >= hp->vocab)
            return rotq_fail(ROTQ_ERR_ARG, "nn: token id %d at position %lld outside the vocabulary (%lld)", ids[t],
                             (long long)(pos0 + t), (long long)hp->vocab);
    if (r->pos_embed && pos0 + T > hp->max_pos)
        return rotq_fail(ROTQ_ERR_ARG, "nn: %s: position %lld is beyond the model's %lld learned positions",
                         r->model->source_path, (long long)(pos0 + T - 1), (long long)hp->max_pos);
    ROTQ_TRY(ensure_scratch(r, T));
    ROTQ_TRY(ensure_scores(r, T, pos0 + T));

    /* x [T, d] = embed[ids] (+ learned positions) */
    rotq_runner_embed(r, ids, T, pos0, r->x);
    if (r->rope) rotq_rope_tables(r->inv_freq, hp->rotary_dim / 2, pos0, T, r->rope_cos, r->rope_sin);

    for (int32_t l = 0; l < hp->n_layers; l++) {
        float *k_all = cache ? cache->k + (int64_t)l * cache->capacity * kvd : r->k;
        float *v_all = cache ? cache->v + (int64_t)l * cache->capacity * kvd : r->v;
        ROTQ_TRY(layer_forward(r, l, T, pos0, k_all, v_all));
    }
    rotq_runner_norm(r, hidden, r->x, r->final_norm, r->final_norm_b, T);
    HOOK(rotq_runner_linear_input(r, -1, ROLE_LM_HEAD, hidden, T, d));
    if (cache) cache->n += T;
    return ROTQ_OK;
}

rotq_status rotq_nn_logits(const rotq_runner *r, const float *hidden, int64_t rows, float *logits) {
    if (rows <= 0) return rotq_fail(ROTQ_ERR_ARG, "nn: logits of %lld rows", (long long)rows);
    rotq_linear_forward(logits, hidden, r->lm_head, r->lm_head_b, rows, r->hp.hidden, r->hp.vocab, false);
    return ROTQ_OK;
}
