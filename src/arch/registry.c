/* The architecture registry: built-in descriptions plus user registrations (C or JSON). */
#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include "arch/arch.h"

#define MAX_ARCHS 64

static rotq_arch registry[MAX_ARCHS];
static int32_t n_registry;
static pthread_once_t builtins_once = PTHREAD_ONCE_INIT;
static pthread_mutex_t registry_lock = PTHREAD_MUTEX_INITIALIZER;

static void add_unlocked(const rotq_arch *a) {
    for (int32_t i = 0; i < n_registry; i++)
        if (strcmp(registry[i].name, a->name) == 0) { registry[i] = *a; return; }
    if (n_registry < MAX_ARCHS) registry[n_registry++] = *a;
}

static void register_builtins(void) {
    rotq_arch a;
    rotq_arch_llama(&a); add_unlocked(&a);
    rotq_arch_qwen2(&a); add_unlocked(&a);
    rotq_arch_qwen3(&a); add_unlocked(&a);
    rotq_arch_gemma3(&a); add_unlocked(&a);
    rotq_arch_phi3(&a); add_unlocked(&a);
    rotq_arch_opt(&a); add_unlocked(&a);
    rotq_arch_qwen2_vl(&a); add_unlocked(&a);
    rotq_arch_qwen2_vl_vision(&a); add_unlocked(&a);
    rotq_arch_qwen2_5_vl(&a); add_unlocked(&a);
    rotq_arch_qwen2_5_vl_vision(&a); add_unlocked(&a);
}

static void ensure(void) { pthread_once(&builtins_once, register_builtins); }

rotq_status rotq_arch_register(const rotq_arch *a) {
    ensure();
    if (!a->name[0]) return rotq_fail(ROTQ_ERR_ARG, "architecture description has no name");
    if (a->n_tensors <= 0) return rotq_fail(ROTQ_ERR_ARG, "architecture %s describes no tensors", a->name);
    pthread_mutex_lock(&registry_lock);
    bool full = n_registry >= MAX_ARCHS && !rotq_arch_find(a->name);
    if (!full) add_unlocked(a);
    pthread_mutex_unlock(&registry_lock);
    if (full) return rotq_fail(ROTQ_ERR_ARG, "architecture registry full (%d entries)", MAX_ARCHS);
    return ROTQ_OK;
}

const char *rotq_arch_name(int32_t i) {
    ensure();
    return i >= 0 && i < n_registry ? registry[i].name : NULL;
}

const rotq_arch *rotq_arch_find(const char *name) {
    ensure();
    for (int32_t i = 0; i < n_registry; i++)
        if (strcmp(registry[i].name, name) == 0) return &registry[i];
    return NULL;
}

/* Later registrations win, so a user description can take over a built-in identifier. */
const rotq_arch *rotq_arch_find_hf(const char *hf_id) {
    ensure();
    for (int32_t i = n_registry - 1; i >= 0; i--)
        for (int32_t j = 0; j < registry[i].n_hf_ids; j++)
            if (strcmp(registry[i].hf_ids[j], hf_id) == 0) return &registry[i];
    return NULL;
}

const rotq_arch *rotq_arch_find_gguf(const char *gguf_id) {
    ensure();
    for (int32_t i = n_registry - 1; i >= 0; i--)
        for (int32_t j = 0; j < registry[i].n_gguf_ids; j++)
            if (strcmp(registry[i].gguf_ids[j], gguf_id) == 0) return &registry[i];
    return NULL;
}

static const char *role_names[ROLE_COUNT] = {
    [ROLE_EMBED] = "embed", [ROLE_POS_EMBED] = "pos_embed",
    [ROLE_ATTN_NORM] = "attn_norm", [ROLE_ATTN_NORM_BIAS] = "attn_norm_bias",
    [ROLE_Q] = "q", [ROLE_Q_BIAS] = "q_bias", [ROLE_K] = "k", [ROLE_K_BIAS] = "k_bias",
    [ROLE_V] = "v", [ROLE_V_BIAS] = "v_bias", [ROLE_QKV] = "qkv", [ROLE_QKV_BIAS] = "qkv_bias",
    [ROLE_O] = "o", [ROLE_O_BIAS] = "o_bias",
    [ROLE_MLP_NORM] = "mlp_norm", [ROLE_MLP_NORM_BIAS] = "mlp_norm_bias",
    [ROLE_GATE] = "gate", [ROLE_GATE_BIAS] = "gate_bias", [ROLE_UP] = "up", [ROLE_UP_BIAS] = "up_bias",
    [ROLE_GATE_UP] = "gate_up", [ROLE_DOWN] = "down", [ROLE_DOWN_BIAS] = "down_bias",
    [ROLE_FINAL_NORM] = "final_norm", [ROLE_FINAL_NORM_BIAS] = "final_norm_bias",
    [ROLE_LM_HEAD] = "lm_head", [ROLE_LM_HEAD_BIAS] = "lm_head_bias",
    [ROLE_Q_NORM] = "q_norm", [ROLE_K_NORM] = "k_norm",
    [ROLE_POST_ATTN_NORM] = "post_attn_norm", [ROLE_POST_MLP_NORM] = "post_mlp_norm",
    [ROLE_PATCH_EMBED] = "patch_embed", [ROLE_MERGER_UP] = "merger_up", [ROLE_MERGER_UP_BIAS] = "merger_up_bias",
    [ROLE_MERGER_DOWN] = "merger_down", [ROLE_MERGER_DOWN_BIAS] = "merger_down_bias",
};

double rotq_norm_export_shift(const rotq_model *m, const rotq_tensor *t, rotq_format format) {
    if (!m->arch || m->arch->norm_offset == 0) return 0;
    switch (t->role) {
    case ROLE_ATTN_NORM: case ROLE_MLP_NORM: case ROLE_FINAL_NORM: case ROLE_Q_NORM: case ROLE_K_NORM:
    case ROLE_POST_ATTN_NORM: case ROLE_POST_MLP_NORM: break;
    default: return 0;
    }
    double file = format == ROTQ_FORMAT_GGUF && m->arch->gguf_norm_shift ? 0 : m->arch->norm_offset;
    return m->hp.norm_offset - file; /* value + model's offset == stored + file's offset */
}

bool rotq_hparams_layer_sliding(const rotq_hparams *hp, int32_t l) {
    if (hp->sliding_window <= 0) return false;
    return hp->sliding_pattern <= 0 || (l + 1) % hp->sliding_pattern != 0;
}

rotq_role rotq_role_bias(rotq_role r) {
    switch (r) {
    case ROLE_ATTN_NORM: return ROLE_ATTN_NORM_BIAS;
    case ROLE_MLP_NORM: return ROLE_MLP_NORM_BIAS;
    case ROLE_FINAL_NORM: return ROLE_FINAL_NORM_BIAS;
    case ROLE_Q: return ROLE_Q_BIAS;
    case ROLE_K: return ROLE_K_BIAS;
    case ROLE_V: return ROLE_V_BIAS;
    case ROLE_QKV: return ROLE_QKV_BIAS;
    case ROLE_O: return ROLE_O_BIAS;
    case ROLE_GATE: return ROLE_GATE_BIAS;
    case ROLE_UP: return ROLE_UP_BIAS;
    case ROLE_DOWN: return ROLE_DOWN_BIAS;
    case ROLE_LM_HEAD: return ROLE_LM_HEAD_BIAS;
    case ROLE_MERGER_UP: return ROLE_MERGER_UP_BIAS;
    case ROLE_MERGER_DOWN: return ROLE_MERGER_DOWN_BIAS;
    default: return ROLE_COUNT;
    }
}

const char *rotq_role_name(rotq_role r) { return r >= 0 && r < ROLE_COUNT ? role_names[r] : "?"; }

rotq_role rotq_role_from_name(const char *name) {
    for (int r = 0; r < ROLE_COUNT; r++)
        if (strcmp(role_names[r], name) == 0) return (rotq_role)r;
    return ROLE_COUNT;
}

const rotq_arch_tensor *rotq_arch_tensor_for(const rotq_arch *a, rotq_role r) {
    for (int32_t i = 0; i < a->n_tensors; i++)
        if (a->tensors[i].role == r) return &a->tensors[i];
    return NULL;
}

void rotq_arch_expand(const char *tmpl, int32_t layer, char *out, size_t out_size) {
    size_t o = 0;
    for (const char *p = tmpl; *p && o + 1 < out_size; p++) {
        if (p[0] == '{' && p[1] == 'L' && p[2] == '}') {
            int w = snprintf(out + o, out_size - o, "%d", layer);
            if (w > 0) o += (size_t)w;
            if (o >= out_size) o = out_size - 1;
            p += 2;
        } else {
            out[o++] = *p;
        }
    }
    out[o] = 0;
}

/* Finds the (role, layer) whose `from` template expands to `name` and expands `to` for it. */
static bool translate(const rotq_arch *a, const char *name, int64_t n_layers, bool from_gguf, char *out, size_t out_size) {
    char buf[ROTQ_NAME_MAX];
    for (int32_t i = 0; i < a->n_tensors; i++) {
        const rotq_arch_tensor *t = &a->tensors[i];
        const char *from = from_gguf ? t->gguf : t->hf, *to = from_gguf ? t->hf : t->gguf;
        if (!from[0] || !to[0]) continue;
        int64_t nl = t->per_layer ? n_layers : 1;
        for (int64_t L = 0; L < nl; L++) {
            rotq_arch_expand(from, (int32_t)L, buf, sizeof buf);
            if (strcmp(buf, name) == 0) {
                rotq_arch_expand(to, (int32_t)L, out, out_size);
                return true;
            }
        }
    }
    return false;
}

bool rotq_arch_gguf_to_hf(const rotq_arch *a, const char *gguf_name, int64_t n_layers, char *out, size_t out_size) {
    return translate(a, gguf_name, n_layers, true, out, out_size);
}

bool rotq_arch_hf_to_gguf(const rotq_arch *a, const char *hf_name, int64_t n_layers, char *out, size_t out_size) {
    return translate(a, hf_name, n_layers, false, out, out_size);
}
