/* Binding a loaded model to its architecture: roles, layers, and shape checks. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "arch/arch.h"

rotq_tensor *rotq_model_role(const rotq_model *m, rotq_role r, int32_t layer) {
    for (int64_t i = 0; i < m->n_tensors; i++) {
        rotq_tensor *t = &m->tensors[i];
        if (t->role == (int32_t)r && (t->layer == layer || t->layer < 0)) return t;
    }
    return NULL;
}

rotq_norm_kind rotq_model_norm_kind(const rotq_model *m) {
    return m->rot.ln_as_rms || !m->arch ? ROTQ_NORM_RMS : m->arch->norm;
}

/* Public: a tensor with its role named (here, where roles are known). */
rotq_status rotq_model_tensor_info(const rotq_model *m, int64_t i, rotq_tensor_info *out) {
    if (i < 0 || i >= m->n_tensors) return rotq_fail(ROTQ_ERR_ARG, "tensor index %lld out of range", (long long)i);
    const rotq_tensor *t = &m->tensors[i];
    out->name = t->name;
    out->dtype = t->dtype;
    out->file_dtype = t->file_dtype;
    out->n_dims = t->n_dims;
    for (int d = 0; d < 5; d++) out->shape[d] = d < t->n_dims ? t->shape[d] : 0;
    out->role = t->role;
    out->role_name = t->role >= 0 && t->role < ROLE_COUNT ? rotq_role_name((rotq_role)t->role) : "";
    out->layer = t->layer;
    out->file_bits_per_weight = t->file_bpw > 0 ? t->file_bpw : rotq_dtype_bits_per_weight(t->file_dtype);
    out->file_format = t->file_format;
    return ROTQ_OK;
}

rotq_status rotq_model_layout_get(const rotq_model *m, rotq_model_layout *out) {
    if (!m->arch) return rotq_fail(ROTQ_ERR_ARG, "%s: no architecture bound", m->source_path);
    *out = (rotq_model_layout){.source_format = m->source_format, .norm = rotq_model_norm_kind(m),
                               .positions = m->arch->pos, .pos_offset = (int32_t)m->arch->pos_offset,
                               .online_r3 = m->rot.r3.on, .online_r4 = m->rot.r4.on,
                               .qk_norm = rotq_model_role(m, ROLE_Q_NORM, 0) != NULL,
                               .sandwich_norms = rotq_model_role(m, ROLE_POST_ATTN_NORM, 0) || rotq_model_role(m, ROLE_POST_MLP_NORM, 0)};
    for (int32_t i = 0; i < m->arch->n_ops; i++) out->fused_r1 |= strcmp(m->arch->ops[i], "rotate_r1") == 0;
    out->fused_r1 &= !out->sandwich_norms;
    return ROTQ_OK;
}

/* Expected shape of a role's tensor from the hyper-parameters; returns the number of dims. */
static int expected_shape(const rotq_model *m, rotq_role r, int64_t *s) {
    const rotq_arch *a = m->arch;
    const rotq_hparams *hp = &m->hp;
    const rotq_vision_config *vis = &m->vis;
    int64_t h = hp->hidden, q = hp->n_heads * hp->head_dim, kv = hp->n_kv_heads * hp->head_dim;
    int64_t merged = h * vis->merge * vis->merge; /* a vision tower's merger input: merge² patches side by side */
    switch (r) {
    case ROLE_PATCH_EMBED: /* Conv3d [hidden, C, Tp, P, P] */
        s[0] = h; s[1] = vis->channels; s[2] = vis->temporal_patch; s[3] = s[4] = vis->patch; return 5;
    case ROLE_MERGER_UP: s[0] = merged; s[1] = merged; return 2;
    case ROLE_MERGER_UP_BIAS: s[0] = merged; return 1;
    case ROLE_MERGER_DOWN: s[0] = vis->out_hidden; s[1] = merged; return 2;
    case ROLE_MERGER_DOWN_BIAS: s[0] = vis->out_hidden; return 1;
    case ROLE_EMBED: case ROLE_LM_HEAD: s[0] = hp->vocab; s[1] = h; return 2;
    case ROLE_POS_EMBED: s[0] = hp->max_pos + a->pos_offset; s[1] = h; return 2;
    case ROLE_ATTN_NORM: case ROLE_ATTN_NORM_BIAS: case ROLE_MLP_NORM: case ROLE_MLP_NORM_BIAS:
    case ROLE_FINAL_NORM: case ROLE_FINAL_NORM_BIAS: case ROLE_O_BIAS: case ROLE_DOWN_BIAS: s[0] = h; return 1;
    case ROLE_Q: s[0] = q; s[1] = h; return 2;
    case ROLE_K: case ROLE_V: s[0] = kv; s[1] = h; return 2;
    case ROLE_Q_BIAS: s[0] = q; return 1;
    case ROLE_K_BIAS: case ROLE_V_BIAS: s[0] = kv; return 1;
    case ROLE_QKV: s[0] = q + 2 * kv; s[1] = h; return 2;
    case ROLE_QKV_BIAS: s[0] = q + 2 * kv; return 1;
    case ROLE_O: s[0] = h; s[1] = q; return 2;
    case ROLE_GATE: case ROLE_UP: s[0] = hp->intermediate; s[1] = h; return 2;
    case ROLE_GATE_BIAS: case ROLE_UP_BIAS: s[0] = hp->intermediate; return 1;
    case ROLE_GATE_UP: s[0] = 2 * hp->intermediate; s[1] = h; return 2;
    case ROLE_DOWN: s[0] = h; s[1] = hp->intermediate; return 2;
    case ROLE_LM_HEAD_BIAS: s[0] = hp->vocab; return 1;
    case ROLE_Q_NORM: case ROLE_K_NORM: s[0] = hp->head_dim; return 1;
    case ROLE_POST_ATTN_NORM: case ROLE_POST_MLP_NORM: s[0] = h; return 1;
    default: return 0;
    }
}

static void shape_str(const int64_t *s, int n, char *out, size_t size) {
    size_t o = (size_t)snprintf(out, size, "[");
    for (int i = 0; i < n && o < size; i++) o += (size_t)snprintf(out + o, size - o, "%s%lld", i ? ", " : "", (long long)s[i]);
    if (o < size) snprintf(out + o, size - o, "]");
}

rotq_status rotq_model_bind_arch(rotq_model *m) {
    const rotq_arch *a = m->arch;
    const char *origin = m->source_path;
    if (!a) return rotq_fail(ROTQ_ERR_UNSUPPORTED, "%s: no architecture bound", origin);
    rotq_hparams *hp = &m->hp;
    snprintf(hp->arch, sizeof hp->arch, "%s", a->name);
    for (int64_t i = 0; i < m->n_tensors; i++) m->tensors[i].role = m->tensors[i].layer = -1;

    /* Vocabulary size: trust the embedding when the config is silent. */
    const rotq_arch_tensor *emb = rotq_arch_tensor_for(a, ROLE_EMBED);
    rotq_tensor *et = emb ? rotq_model_find(m, emb->hf) : NULL;
    if (et && et->n_dims == 2 && hp->vocab == 0) hp->vocab = et->shape[0];

    char name[ROTQ_NAME_MAX];
    for (int32_t i = 0; i < a->n_tensors; i++) {
        const rotq_arch_tensor *at = &a->tensors[i];
        int64_t nl = at->per_layer ? hp->n_layers : 1;
        for (int64_t L = 0; L < nl; L++) {
            rotq_arch_expand(at->hf, (int32_t)L, name, sizeof name);
            rotq_tensor *t = rotq_model_find(m, name);
            if (!t) {
                bool needed = !at->optional || (at->role == ROLE_LM_HEAD && !hp->tied_embeddings);
                if (needed)
                    return rotq_fail(ROTQ_ERR_FORMAT, "%s: missing tensor %s (role %s of architecture %s)", origin, name,
                                     rotq_role_name(at->role), a->name);
                continue;
            }
            t->role = at->role;
            t->layer = at->per_layer ? (int32_t)L : -1;
            int64_t want[ROTQ_MAX_DIMS];
            int nd = expected_shape(m, at->role, want);
            bool ok = nd == t->n_dims;
            for (int d = 0; ok && d < nd; d++) ok = want[d] == t->shape[d];
            if (nd && !ok) {
                char ws[96], gs[96];
                shape_str(want, nd, ws, sizeof ws);
                shape_str(t->shape, t->n_dims, gs, sizeof gs);
                return rotq_fail(ROTQ_ERR_FORMAT,
                                 "%s: tensor %s has shape %s but the config (hidden %lld, intermediate %lld, %lld heads, "
                                 "%lld KV heads, head dim %lld, vocab %lld) implies %s",
                                 origin, name, gs, (long long)hp->hidden, (long long)hp->intermediate, (long long)hp->n_heads,
                                 (long long)hp->n_kv_heads, (long long)hp->head_dim, (long long)hp->vocab, ws);
            }
        }
    }
    /* Extra layers beyond the config are a lie about the model, not something to ignore. */
    const rotq_arch_tensor *qt = rotq_arch_tensor_for(a, ROLE_ATTN_NORM);
    if (qt && qt->per_layer) {
        rotq_arch_expand(qt->hf, (int32_t)hp->n_layers, name, sizeof name);
        if (rotq_model_find(m, name))
            return rotq_fail(ROTQ_ERR_FORMAT, "%s: tensor %s exists but the config says %lld layers", origin, name,
                             (long long)hp->n_layers);
    }
    if (!a->vision_tower && !rotq_model_role(m, ROLE_LM_HEAD, -1)) hp->tied_embeddings = true;
    /* the embedding scale, here where the file format and the embedding's dtype are known: transformers
     * multiplies by sqrt(hidden) cast to the embedding's dtype (bf16: 25.25 for 640, not 25.298),
     * llama.cpp by the float32 value, which GGUF files therefore keep */
    if (a->embed_scale_sqrt) {
        float sc = (float)sqrt((double)hp->hidden);
        rotq_dtype dt = et && m->source_format == ROTQ_FORMAT_HF ? et->dtype : ROTQ_F32;
        hp->embed_scale = dt == ROTQ_BF16 ? rotq_bf16_to_f32(rotq_f32_to_bf16(sc))
                          : dt == ROTQ_F16 ? rotq_f16_to_f32(rotq_f32_to_f16(sc)) : sc;
    }
    return ROTQ_OK;
}

/* Tensors a checkpoint may carry that say nothing the config does not: RoPE frequency buffers. */
static bool derived_buffer(const char *name) {
    size_t n = strlen(name);
    const char *tails[] = {"rotary_emb.inv_freq", "rope_freqs.weight", "rope_freqs"};
    for (size_t i = 0; i < sizeof tails / sizeof tails[0]; i++) {
        size_t k = strlen(tails[i]);
        if (n >= k && strcmp(name + n - k, tails[i]) == 0 && (n == k || name[n - k - 1] == '.')) return true;
    }
    return false;
}

rotq_status rotq_model_check_claimed(const rotq_model *m, bool allow_unused) {
    char list[512] = "";
    size_t o = 0;
    int64_t n = 0;
    for (int64_t i = 0; i < m->n_tensors; i++) {
        const rotq_tensor *t = &m->tensors[i];
        if (t->role >= 0 || derived_buffer(t->name)) continue;
        if (n < 4 && o < sizeof list) o += (size_t)snprintf(list + o, sizeof list - o, "%s%s", n ? ", " : "", t->name);
        n++;
    }
    if (n == 0) return ROTQ_OK;
    const char *more = n > 4 ? " and more" : "";
    const char *name = m->arch ? m->arch->name : "?";
    if (allow_unused) {
        rotq_log(ROTQ_LOG_WARN, "%s: %lld tensors have no role in architecture %s and are ignored by every computation: "
                 "%s%s", m->source_path, (long long)n, name, list, more);
        return ROTQ_OK;
    }
    return rotq_fail(ROTQ_ERR_UNSUPPORTED, "%s: %lld tensors have no role in architecture %s, so every computation would "
                     "ignore them (%s%s); describe them with --arch-file, or load anyway with --allow-unused",
                     m->source_path, (long long)n, name, list, more);
}

rotq_status rotq_permute_qk_rows(rotq_tensor *t, int64_t n_head, bool to_gguf) {
    if (t->n_dims < 1 || n_head <= 0 || t->shape[0] % n_head != 0 || (t->shape[0] / n_head) % 2 != 0)
        return rotq_fail(ROTQ_ERR_FORMAT, "tensor %s: %lld rows cannot be split into %lld heads of even size", t->name,
                         (long long)t->shape[0], (long long)n_head);
    /* rows move whole: fine for float types and for block types whose blocks never cross a row */
    bool whole_rows = rotq_dtype_is_float(t->dtype) ||
                      (t->n_dims == 2 && rotq_dtype_block_size(t->dtype) > 1 && t->shape[1] % rotq_dtype_block_size(t->dtype) == 0);
    if (!whole_rows)
        return rotq_fail(ROTQ_ERR_UNSUPPORTED, "tensor %s: Q/K permutation needs a float dtype or whole blocks per row, not %s", t->name,
                         rotq_dtype_name(t->dtype));
    int64_t rows = t->shape[0], hd = rows / n_head, half = hd / 2;
    uint64_t row_bytes = t->nbytes / (uint64_t)rows;
    uint8_t *src = malloc(t->nbytes);
    if (!src) return rotq_fail(ROTQ_ERR_NOMEM, "out of memory permuting %s", t->name);
    memcpy(src, t->data, t->nbytes);
    rotq_status s = rotq_tensor_make_owned(t);
    if (s != ROTQ_OK) { free(src); return s; }
    uint8_t *dst = t->data;
    /* Within a head, HF row j*half + i (rotate-half) sits at GGUF row 2*i + j (interleaved pairs). */
    for (int64_t h = 0; h < n_head; h++)
        for (int64_t i = 0; i < half; i++)
            for (int64_t j = 0; j < 2; j++) {
                int64_t hf_row = h * hd + j * half + i, gguf_row = h * hd + 2 * i + j;
                int64_t from = to_gguf ? hf_row : gguf_row, to = to_gguf ? gguf_row : hf_row;
                memcpy(dst + (uint64_t)to * row_bytes, src + (uint64_t)from * row_bytes, row_bytes);
            }
    free(src);
    return ROTQ_OK;
}
