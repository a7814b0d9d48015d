/* Hyper-parameters from HF config.json or GGUF metadata, and back to a config.json for export. */
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "arch/arch.h"

/* First present key among "a|b|c". */
static json_t *get_alt(const json_t *cfg, const char *keys) {
    char buf[128];
    snprintf(buf, sizeof buf, "%s", keys);
    for (char *save = NULL, *k = strtok_r(buf, "|", &save); k; k = strtok_r(NULL, "|", &save)) {
        json_t *v = json_object_get(cfg, k);
        if (v && !json_is_null(v)) return v;
    }
    return NULL;
}

static rotq_status get_int(const json_t *cfg, const char *keys, const char *origin, int64_t *out, bool required) {
    json_t *v = get_alt(cfg, keys);
    if (!v) {
        if (required) return rotq_fail(ROTQ_ERR_FORMAT, "%s: config.json lacks %s", origin, keys);
        return ROTQ_OK;
    }
    if (json_is_array(v) && json_array_size(v) > 0) v = json_array_get(v, 0); /* eos_token_id lists */
    if (!json_is_integer(v)) return rotq_fail(ROTQ_ERR_FORMAT, "%s: config.json %s is not an integer", origin, keys);
    *out = json_integer_value(v);
    return ROTQ_OK;
}

static rotq_status get_real(const json_t *cfg, const char *keys, const char *origin, double *out) {
    json_t *v = get_alt(cfg, keys);
    if (!v) return ROTQ_OK;
    if (!json_is_number(v)) return rotq_fail(ROTQ_ERR_FORMAT, "%s: config.json %s is not a number", origin, keys);
    *out = json_number_value(v);
    return ROTQ_OK;
}

static rotq_status check_dims(const rotq_arch *a, const rotq_hparams *hp, const char *origin) {
    struct { const char *name; int64_t v; } dims[] = {
        {"hidden size", hp->hidden}, {"intermediate size", hp->intermediate}, {"layer count", hp->n_layers},
        {"head count", hp->n_heads}, {"KV head count", hp->n_kv_heads}, {"head dim", hp->head_dim},
    };
    for (size_t i = 0; i < sizeof dims / sizeof dims[0]; i++)
        if (dims[i].v <= 0 || dims[i].v > (1 << 20))
            return rotq_fail(ROTQ_ERR_FORMAT, "%s: %s is %lld (expected 1..%d)", origin, dims[i].name, (long long)dims[i].v, 1 << 20);
    if (hp->n_heads % hp->n_kv_heads != 0)
        return rotq_fail(ROTQ_ERR_FORMAT, "%s: %lld heads is not a multiple of %lld KV heads", origin,
                         (long long)hp->n_heads, (long long)hp->n_kv_heads);
    bool learned = a->pos == ROTQ_POS_LEARNED;
    if (learned ? hp->rotary_dim != 0 : (hp->rotary_dim <= 0 || hp->rotary_dim > hp->head_dim || hp->rotary_dim % 2))
        return rotq_fail(ROTQ_ERR_FORMAT, "%s: rotary dim %lld invalid for head dim %lld", origin,
                         (long long)hp->rotary_dim, (long long)hp->head_dim);
    if (!(hp->norm_eps > 0) || !(hp->rope_theta > 0))
        return rotq_fail(ROTQ_ERR_FORMAT, "%s: norm epsilon %g / rope theta %g must be positive", origin, hp->norm_eps, hp->rope_theta);
    return ROTQ_OK;
}

static void set_defaults(const rotq_arch *a, rotq_hparams *hp) {
    memset(hp, 0, sizeof *hp);
    snprintf(hp->arch, sizeof hp->arch, "%s", a->name);
    hp->norm_eps = 1e-5;
    hp->rope_theta = 10000.0;
    hp->bos_id = hp->eos_id = -1;
    hp->tied_embeddings = a->default_tied;
    hp->max_pos = 2048;
    hp->mlp_act = a->mlp;
    hp->norm_offset = a->norm_offset;
    hp->sliding_pattern = a->default_sliding_pattern;
    hp->rope_theta_local = a->default_rope_local_theta;
}

/* A plain (non-gated) MLP's activation from the config's name for it. */
static rotq_status read_act(const rotq_arch *a, const json_t *cfg, const char *origin, rotq_hparams *hp) {
    if (a->mlp == ROTQ_MLP_SWIGLU || !a->keys.act[0]) return ROTQ_OK;
    json_t *v = get_alt(cfg, a->keys.act);
    if (!v) return ROTQ_OK;
    const char *s = json_is_string(v) ? json_string_value(v) : "";
    if (a->mlp == ROTQ_MLP_GEGLU) { /* gated: only the gate's activation can vary, and rotq has the tanh GELU */
        if (strcmp(s, "gelu_pytorch_tanh") != 0 && strcmp(s, "gelu_new") != 0)
            return rotq_fail(ROTQ_ERR_UNSUPPORTED, "%s: %s \"%.40s\" is not supported for architecture %s (rotq runs its "
                             "GeGLU with gelu_pytorch_tanh)", origin, a->keys.act, s, a->name);
        return ROTQ_OK;
    }
    if (strcmp(s, "relu") == 0) hp->mlp_act = ROTQ_MLP_RELU;
    else if (strcmp(s, "gelu") == 0) hp->mlp_act = ROTQ_MLP_GELU;
    else if (strcmp(s, "gelu_new") == 0 || strcmp(s, "gelu_pytorch_tanh") == 0) hp->mlp_act = ROTQ_MLP_GELU_TANH;
    else if (strcmp(s, "quick_gelu") == 0) hp->mlp_act = ROTQ_MLP_QUICK_GELU;
    else
        return rotq_fail(ROTQ_ERR_UNSUPPORTED, "%s: %s \"%.40s\" is not supported for architecture %s (rotq knows relu, gelu, "
                         "gelu_new, quick_gelu)", origin, a->keys.act, s, a->name);
    return ROTQ_OK;
}

/* Config variants the description does not cover (e.g. OPT's post-norm opt-350m). */
static rotq_status check_required(const rotq_arch *a, const json_t *cfg, const char *origin, const rotq_hparams *hp) {
    for (int32_t i = 0; i < a->n_require_true; i++) {
        /* "!key": must be false when present */
        const char *key = a->require_true[i];
        bool want = key[0] != '!';
        if (!want) key++;
        json_t *v = json_object_get(cfg, key);
        if (v && !json_is_null(v) && !(want ? json_is_true(v) : json_is_false(v)))
            return rotq_fail(ROTQ_ERR_UNSUPPORTED, "%s: %s is %s; architecture %s is only supported with it %s", origin, key,
                             json_is_boolean(v) ? (want ? "false" : "true") : "a non-boolean", a->name, want ? "true" : "false");
    }
    if (a->keys.softcaps[0]) {
        char buf[sizeof a->keys.softcaps];
        snprintf(buf, sizeof buf, "%s", a->keys.softcaps);
        for (char *save = NULL, *k = strtok_r(buf, "|", &save); k; k = strtok_r(NULL, "|", &save)) {
            json_t *v = json_object_get(cfg, k);
            if (v && !json_is_null(v))
                return rotq_fail(ROTQ_ERR_UNSUPPORTED, "%s: %s is set; rotq's %s runs without soft-capping (Gemma 3 has none; "
                                 "Gemma 2 is not supported)", origin, k, a->name);
        }
    }
    if (a->require_eq_hidden[0]) {
        json_t *v = json_object_get(cfg, a->require_eq_hidden);
        if (v && !json_is_null(v) && (!json_is_integer(v) || json_integer_value(v) != hp->hidden))
            return rotq_fail(ROTQ_ERR_UNSUPPORTED, "%s: %s differs from hidden_size %lld; architecture %s "
                             "supports only models without the extra input/output projection", origin, a->require_eq_hidden,
                             (long long)hp->hidden, a->name);
    }
    return ROTQ_OK;
}

/* Sliding-window layers, their RoPE base and the query scale (Gemma 3); nothing when the description
 * names none of these keys. transformers 5 writes layer_types and per-type rope_parameters. */
static rotq_status read_local_attention(const rotq_arch *a, const json_t *cfg, const json_t *rope, const char *origin,
                                        rotq_hparams *hp) {
    const rotq_config_keys *k = &a->keys;
    if (k->sliding_window[0]) ROTQ_TRY(get_int(cfg, k->sliding_window, origin, &hp->sliding_window, false));
    if (k->sliding_pattern[0]) {
        int64_t p = hp->sliding_pattern;
        ROTQ_TRY(get_int(cfg, k->sliding_pattern, origin, &p, false));
        hp->sliding_pattern = (int32_t)p;
    }
    json_t *types = k->layer_types[0] ? json_object_get(cfg, k->layer_types) : NULL;
    if (types && json_is_array(types)) {
        if ((int64_t)json_array_size(types) != hp->n_layers)
            return rotq_fail(ROTQ_ERR_FORMAT, "%s: layer_types lists %zu layers, the model has %lld", origin,
                             json_array_size(types), (long long)hp->n_layers);
        int64_t first_full = -1;
        for (size_t i = 0; i < json_array_size(types); i++) {
            const char *t = json_string_value(json_array_get(types, i));
            if (!t || (strcmp(t, "full_attention") != 0 && strcmp(t, "sliding_attention") != 0))
                return rotq_fail(ROTQ_ERR_UNSUPPORTED, "%s: layer_types[%zu] is not \"full_attention\" or \"sliding_attention\"",
                                 origin, i);
            if (first_full < 0 && strcmp(t, "full_attention") == 0) first_full = (int64_t)i;
        }
        hp->sliding_pattern = first_full < 0 ? 0 : (int32_t)(first_full + 1);
        for (size_t i = 0; i < json_array_size(types); i++) {
            bool sliding = strcmp(json_string_value(json_array_get(types, i)), "sliding_attention") == 0;
            if (sliding != (hp->sliding_pattern <= 0 || ((int64_t)i + 1) % hp->sliding_pattern != 0))
                return rotq_fail(ROTQ_ERR_UNSUPPORTED, "%s: layer_types is not a repeating pattern of local layers with every "
                                 "%d-th layer global (layer %zu breaks it); rotq runs only such patterns", origin,
                                 hp->sliding_pattern, i);
        }
    }
    if (k->rope_local_theta[0]) ROTQ_TRY(get_real(cfg, k->rope_local_theta, origin, &hp->rope_theta_local));
    const json_t *local = rope ? json_object_get(rope, "sliding_attention") : NULL;
    if (json_is_object(local)) ROTQ_TRY(get_real(local, "rope_theta", origin, &hp->rope_theta_local));
    if (k->attn_scalar[0]) {
        double s = 0;
        ROTQ_TRY(get_real(cfg, k->attn_scalar, origin, &s));
        if (s < 0 || (s == 0 && get_alt(cfg, k->attn_scalar)))
            return rotq_fail(ROTQ_ERR_FORMAT, "%s: %s must be positive", origin, k->attn_scalar);
        if (s > 0) hp->attn_scale = 1.0 / sqrt(s);
    }
    if (hp->sliding_window < 0) return rotq_fail(ROTQ_ERR_FORMAT, "%s: sliding_window is negative", origin);
    return ROTQ_OK;
}

/* M-RoPE sections (Qwen2-VL): "mrope_section" in the rope settings, whose type transformers 4 wrote as "mrope". */
static rotq_status read_mrope(const json_t *scaling, const char *origin, rotq_hparams *hp) {
    const json_t *sec = json_object_get(scaling, "mrope_section");
    if (!sec) return ROTQ_OK;
    int64_t sum = 0;
    if (!json_is_array(sec) || json_array_size(sec) != 3)
        return rotq_fail(ROTQ_ERR_UNSUPPORTED, "%s: mrope_section must list 3 sections (temporal, height, width)", origin);
    for (size_t i = 0; i < 3; i++) {
        const json_t *v = json_array_get(sec, i);
        if (!json_is_integer(v) || json_integer_value(v) < 0 || json_integer_value(v) > (1 << 16))
            return rotq_fail(ROTQ_ERR_FORMAT, "%s: mrope_section[%zu] is not a small non-negative integer", origin, i);
        hp->mrope_section[i] = (int32_t)json_integer_value(v);
        sum += hp->mrope_section[i];
    }
    if (sum * 2 != hp->rotary_dim)
        return rotq_fail(ROTQ_ERR_FORMAT, "%s: mrope_section sums to %lld pairs but the heads rotate %lld dims", origin,
                         (long long)sum, (long long)hp->rotary_dim);
    return ROTQ_OK;
}

rotq_status rotq_hparams_from_hf_config(const rotq_arch *a, const void *json_config, const char *origin, rotq_hparams *hp) {
    const json_t *cfg = json_config, *top = cfg;
    if (!json_is_object(cfg)) return rotq_fail(ROTQ_ERR_FORMAT, "%s: config.json is not an object", origin);
    set_defaults(a, hp);
    const rotq_config_keys *k = &a->keys;
    /* multimodal configs of transformers 5 nest the language model's settings in "text_config" */
    const json_t *text = json_object_get(cfg, "text_config");
    if (json_is_object(text) && !get_alt(cfg, k->hidden)) cfg = text;
    ROTQ_TRY(get_int(cfg, k->hidden, origin, &hp->hidden, true));
    ROTQ_TRY(get_int(cfg, k->n_layers, origin, &hp->n_layers, true));
    ROTQ_TRY(get_int(cfg, k->n_heads, origin, &hp->n_heads, true));
    hp->intermediate = 4 * hp->hidden;
    ROTQ_TRY(get_int(cfg, k->intermediate, origin, &hp->intermediate, false));
    hp->n_kv_heads = hp->n_heads;
    ROTQ_TRY(get_int(cfg, k->n_kv_heads, origin, &hp->n_kv_heads, false));
    hp->head_dim = hp->n_heads > 0 ? hp->hidden / hp->n_heads : 0;
    ROTQ_TRY(get_int(cfg, k->head_dim, origin, &hp->head_dim, false));
    ROTQ_TRY(get_int(cfg, k->vocab, origin, &hp->vocab, false));
    ROTQ_TRY(get_int(cfg, k->max_pos, origin, &hp->max_pos, false));
    ROTQ_TRY(get_real(cfg, k->norm_eps, origin, &hp->norm_eps));
    /* transformers 5 moves rope settings into "rope_parameters"; 4.x uses rope_theta + rope_scaling */
    const json_t *rope = json_object_get(cfg, "rope_parameters"), *rope_types = NULL;
    if (!json_is_object(rope)) rope = NULL;
    if (rope && json_is_object(json_object_get(rope, "full_attention"))) { /* per layer type (Gemma 3) */
        rope_types = rope;
        rope = json_object_get(rope, "full_attention");
    }
    ROTQ_TRY(get_real(cfg, k->rope_theta, origin, &hp->rope_theta));
    if (rope) ROTQ_TRY(get_real(rope, "rope_theta", origin, &hp->rope_theta));
    const json_t *scaling = json_object_get(cfg, "rope_scaling");
    if (!json_is_object(scaling)) scaling = rope;
    if (scaling) {
        json_t *type = get_alt(scaling, "rope_type|type");
        const char *ts = json_is_string(type) ? json_string_value(type) : "default";
        if (strcmp(ts, "llama3") == 0) hp->rope_scaling = 2;
        else if (strcmp(ts, "linear") == 0) hp->rope_scaling = 1;
        else if (strcmp(ts, "default") != 0 && !(strcmp(ts, "mrope") == 0 && json_object_get(scaling, "mrope_section")))
            return rotq_fail(ROTQ_ERR_UNSUPPORTED, "%s: rope scaling \"%s\" is not supported (rotq knows default, linear, llama3)", origin, ts);
        hp->rope_factor = 1;
        ROTQ_TRY(get_real(scaling, "factor", origin, &hp->rope_factor));
        ROTQ_TRY(get_real(scaling, "low_freq_factor", origin, &hp->rope_low_freq_factor));
        ROTQ_TRY(get_real(scaling, "high_freq_factor", origin, &hp->rope_high_freq_factor));
        ROTQ_TRY(get_int(scaling, "original_max_position_embeddings", origin, &hp->rope_orig_max_pos, false));
    }
    hp->rotary_dim = hp->head_dim;
    double partial = 1.0;
    ROTQ_TRY(get_real(cfg, "partial_rotary_factor", origin, &partial));
    hp->rotary_dim = (int64_t)llround(partial * (double)hp->head_dim);
    if (a->pos == ROTQ_POS_LEARNED) hp->rotary_dim = 0;
    if (scaling) ROTQ_TRY(read_mrope(scaling, origin, hp));
    ROTQ_TRY(read_act(a, cfg, origin, hp));
    ROTQ_TRY(read_local_attention(a, cfg, rope_types, origin, hp));
    json_t *tied = get_alt(top, k->tied);
    if (!tied) tied = get_alt(cfg, k->tied);
    if (tied) hp->tied_embeddings = json_is_true(tied);
    int64_t bos = -1, eos = -1;
    ROTQ_TRY(get_int(cfg, "bos_token_id", origin, &bos, false));
    ROTQ_TRY(get_int(cfg, "eos_token_id", origin, &eos, false));
    hp->bos_id = (int32_t)bos;
    hp->eos_id = (int32_t)eos;
    ROTQ_TRY(check_required(a, cfg, origin, hp));
    return check_dims(a, hp, origin);
}

/* ---- a vision tower (vision_config of a multimodal config.json) ---- */

rotq_status rotq_hparams_vision_from_hf(const rotq_arch *va, const void *vision_config, const char *origin, int64_t out_hidden,
                                        rotq_hparams *hp, rotq_vision_config *vis) {
    const json_t *c = vision_config;
    if (!json_is_object(c)) return rotq_fail(ROTQ_ERR_FORMAT, "%s: config.json has no \"vision_config\" object", origin);
    set_defaults(va, hp);
    hp->norm_eps = 1e-6; /* transformers builds the tower's norms with eps 1e-6, not from the config */
    /* Qwen2-VL: embed_dim, mlp_ratio, hidden_size = the merger's output; Qwen2.5-VL: hidden_size, intermediate_size,
     * out_hidden_size */
    bool v25 = json_object_get(c, "out_hidden_size") != NULL;
    ROTQ_TRY(get_int(c, v25 ? "hidden_size" : "embed_dim", origin, &hp->hidden, true));
    ROTQ_TRY(get_int(c, "depth", origin, &hp->n_layers, true));
    ROTQ_TRY(get_int(c, "num_heads", origin, &hp->n_heads, true));
    double ratio = 4;
    ROTQ_TRY(get_real(c, "mlp_ratio", origin, &ratio));
    hp->intermediate = (int64_t)((double)hp->hidden * ratio);
    if (v25) ROTQ_TRY(get_int(c, "intermediate_size", origin, &hp->intermediate, true));
    hp->n_kv_heads = hp->n_heads;
    hp->head_dim = hp->n_heads > 0 ? hp->hidden / hp->n_heads : 0;
    if (hp->n_heads <= 0 || hp->hidden % hp->n_heads || hp->head_dim % 4)
        return rotq_fail(ROTQ_ERR_FORMAT, "%s: vision_config: embed_dim %lld does not split into %lld heads of a size divisible "
                         "by 4 (2-D rotary positions)", origin, (long long)hp->hidden, (long long)hp->n_heads);
    hp->rotary_dim = hp->head_dim;
    const json_t *rope = json_object_get(c, "rope_parameters");
    if (json_is_object(rope)) ROTQ_TRY(get_real(rope, "rope_theta", origin, &hp->rope_theta));
    *vis = (rotq_vision_config){.patch = 14, .temporal_patch = 2, .merge = 2, .channels = 3, .out_hidden = out_hidden,
                                .min_pixels = 56 * 56, .max_pixels = 28 * 28 * 1280,
                                .mean = {0.48145466, 0.4578275, 0.40821073}, .std = {0.26862954, 0.26130258, 0.27577711},
                                .image_token = -1, .vision_start = -1, .vision_end = -1};
    ROTQ_TRY(get_int(c, "patch_size", origin, &vis->patch, false));
    ROTQ_TRY(get_int(c, "temporal_patch_size", origin, &vis->temporal_patch, false));
    ROTQ_TRY(get_int(c, "spatial_merge_size", origin, &vis->merge, false));
    ROTQ_TRY(get_int(c, "in_channels", origin, &vis->channels, false));
    ROTQ_TRY(get_int(c, v25 ? "out_hidden_size" : "hidden_size", origin, &vis->out_hidden, false));
    if (v25) {
        /* windows of window_size pixels: window_size / patch / merge merged patches a side */
        int64_t ws = 112;
        ROTQ_TRY(get_int(c, "window_size", origin, &ws, false));
        vis->window = ws / (vis->patch > 0 ? vis->patch : 1) / (vis->merge > 0 ? vis->merge : 1);
        if (vis->window <= 0)
            return rotq_fail(ROTQ_ERR_FORMAT, "%s: vision_config window_size %lld is smaller than one merged patch", origin, (long long)ws);
        const json_t *full = json_object_get(c, "fullatt_block_indexes");
        for (size_t i = 0; json_is_array(full) && i < json_array_size(full); i++) {
            const json_t *x = json_array_get(full, i);
            if (!json_is_integer(x) || json_integer_value(x) < 0 || json_integer_value(x) >= hp->n_layers || json_integer_value(x) >= 256)
                return rotq_fail(ROTQ_ERR_FORMAT, "%s: vision_config fullatt_block_indexes[%zu] is not a layer index", origin, i);
            int64_t l = json_integer_value(x);
            vis->full_layers[l / 64] |= UINT64_C(1) << (l % 64);
        }
    }
    if (vis->patch <= 0 || vis->patch > 1024 || vis->temporal_patch <= 0 || vis->temporal_patch > 64 || vis->merge <= 0 ||
        vis->merge > 64 || vis->channels != 3 || vis->out_hidden != out_hidden)
        return rotq_fail(ROTQ_ERR_UNSUPPORTED, "%s: vision_config: patch %lld, temporal patch %lld, merge %lld, %lld channels, "
                         "output width %lld (rotq reads RGB images into a tower whose output width is the language model's "
                         "hidden size %lld)", origin, (long long)vis->patch, (long long)vis->temporal_patch,
                         (long long)vis->merge, (long long)vis->channels, (long long)vis->out_hidden, (long long)out_hidden);
    hp->vocab = vis->channels * vis->temporal_patch * vis->patch * vis->patch; /* a patch row's width */
    hp->max_pos = 0;
    hp->tied_embeddings = false;
    const json_t *act = json_object_get(c, "hidden_act");
    const char *want = va->mlp == ROTQ_MLP_SWIGLU ? "silu" : "quick_gelu";
    if (act && (!json_is_string(act) || strcmp(json_string_value(act), want) != 0))
        return rotq_fail(ROTQ_ERR_UNSUPPORTED, "%s: vision_config hidden_act \"%.40s\": rotq's %s tower runs %s", origin,
                         json_is_string(act) ? json_string_value(act) : "?", va->name, want);
    return check_dims(va, hp, origin);
}

/* ---- GGUF ---- */

static const rotq_meta *meta_arch(const rotq_model *m, const char *arch, const char *suffix) {
    char key[160];
    snprintf(key, sizeof key, "%s.%s", arch, suffix);
    return rotq_model_meta(m, key);
}

static rotq_status gguf_int(const rotq_model *m, const char *arch, const char *suffix, const char *origin, int64_t *out, bool required) {
    const rotq_meta *kv = meta_arch(m, arch, suffix);
    double v;
    if (!kv) {
        if (required) return rotq_fail(ROTQ_ERR_FORMAT, "%s: GGUF metadata lacks %s.%s", origin, arch, suffix);
        return ROTQ_OK;
    }
    /* the range check keeps the cast below defined for absurd values */
    if (!rotq_meta_number(kv, &v) || v != floor(v) || fabs(v) > 9.0e15)
        return rotq_fail(ROTQ_ERR_FORMAT, "%s: GGUF metadata %s.%s is not a sensible integer", origin, arch, suffix);
    *out = (int64_t)v;
    return ROTQ_OK;
}

rotq_status rotq_hparams_from_gguf(const rotq_arch *a, const rotq_model *m, const char *origin, rotq_hparams *hp) {
    set_defaults(a, hp);
    const rotq_meta *archkv = rotq_model_meta(m, "general.architecture");
    const char *g = archkv && archkv->type == ROTQ_META_STRING ? archkv->str : a->gguf_write_id;
    ROTQ_TRY(gguf_int(m, g, "embedding_length", origin, &hp->hidden, true));
    ROTQ_TRY(gguf_int(m, g, "block_count", origin, &hp->n_layers, true));
    ROTQ_TRY(gguf_int(m, g, "attention.head_count", origin, &hp->n_heads, true));
    ROTQ_TRY(gguf_int(m, g, "feed_forward_length", origin, &hp->intermediate, true));
    hp->n_kv_heads = hp->n_heads;
    ROTQ_TRY(gguf_int(m, g, "attention.head_count_kv", origin, &hp->n_kv_heads, false));
    hp->head_dim = hp->n_heads > 0 ? hp->hidden / hp->n_heads : 0;
    ROTQ_TRY(gguf_int(m, g, "attention.key_length", origin, &hp->head_dim, false));
    hp->rotary_dim = hp->head_dim;
    ROTQ_TRY(gguf_int(m, g, "rope.dimension_count", origin, &hp->rotary_dim, false));
    ROTQ_TRY(gguf_int(m, g, "context_length", origin, &hp->max_pos, false));
    ROTQ_TRY(gguf_int(m, g, "vocab_size", origin, &hp->vocab, false));
    double v;
    if (rotq_meta_number(meta_arch(m, g, "attention.layer_norm_rms_epsilon"), &v)) hp->norm_eps = v;
    else if (rotq_meta_number(meta_arch(m, g, "attention.layer_norm_epsilon"), &v)) hp->norm_eps = v;
    if (rotq_meta_number(meta_arch(m, g, "rope.freq_base"), &v)) hp->rope_theta = v;
    const rotq_meta *st = meta_arch(m, g, "rope.scaling.type");
    if (st && st->type == ROTQ_META_STRING && strcmp(st->str, "none") != 0) {
        if (strcmp(st->str, "linear") != 0)
            return rotq_fail(ROTQ_ERR_UNSUPPORTED, "%s: rope scaling \"%s\" is not supported", origin, st->str);
        hp->rope_scaling = 1;
        hp->rope_factor = rotq_meta_number(meta_arch(m, g, "rope.scaling.factor"), &v) ? v : 1.0;
    }
    const rotq_meta *tokens = rotq_model_meta(m, "tokenizer.ggml.tokens");
    if (hp->vocab == 0 && tokens && tokens->type == ROTQ_META_ARRAY) hp->vocab = (int64_t)tokens->n;
    if (rotq_meta_number(rotq_model_meta(m, "tokenizer.ggml.bos_token_id"), &v) && v >= 0 && v < 2147483647.0) hp->bos_id = (int32_t)v;
    if (rotq_meta_number(rotq_model_meta(m, "tokenizer.ggml.eos_token_id"), &v) && v >= 0 && v < 2147483647.0) hp->eos_id = (int32_t)v;
    /* GGUF has no tie flag: a model without an output tensor ties it to the embedding. */
    hp->tied_embeddings = false;
    const rotq_arch_tensor *head = rotq_arch_tensor_for(a, ROLE_LM_HEAD);
    bool has_head = false;
    for (int64_t i = 0; head && i < m->n_tensors; i++)
        if (strcmp(m->tensors[i].name, head->gguf) == 0 || strcmp(m->tensors[i].name, head->hf) == 0) has_head = true;
    hp->tied_embeddings = !has_head;
    if (a->pos == ROTQ_POS_LEARNED) hp->rotary_dim = 0;
    if (a->gguf_norm_shift) hp->norm_offset = 0; /* the converter stored w + offset */
    ROTQ_TRY(gguf_int(m, g, "attention.sliding_window", origin, &hp->sliding_window, false));
    int64_t pattern = hp->sliding_pattern;
    ROTQ_TRY(gguf_int(m, g, "attention.sliding_window_pattern", origin, &pattern, false));
    hp->sliding_pattern = (int32_t)pattern;
    if (rotq_meta_number(meta_arch(m, g, "rope.freq_base_swa"), &v)) hp->rope_theta_local = v;
    /* llama.cpp's gemma3 graph: q scaled by 1/sqrt(head_dim), except the 27B (62 layers) by
     * 1/sqrt(hidden / heads) — its query_pre_attn_scalar; GGUF has no key for it */
    if (a->embed_scale_sqrt && hp->n_layers == 62 && hp->n_heads > 0)
        hp->attn_scale = 1.0 / sqrt((double)hp->hidden / (double)hp->n_heads);
    if (hp->sliding_window < 0 || hp->sliding_pattern < 0)
        return rotq_fail(ROTQ_ERR_FORMAT, "%s: negative sliding window %lld or pattern %d", origin, (long long)hp->sliding_window,
                         hp->sliding_pattern);
    return check_dims(a, hp, origin);
}

/* The key a config is written with: the first of `alts` ("ffn_dim|intermediate_size"), else `fallback`. */
static const char *first_key(const char *alts, const char *fallback, char *out, size_t size) {
    snprintf(out, size, "%s", alts[0] ? alts : fallback);
    out[strcspn(out, "|")] = 0;
    return out;
}

void *rotq_hparams_to_hf_config(const rotq_arch *a, const rotq_hparams *hp) {
    json_t *c = json_object();
    json_object_set_new(c, "architectures", json_pack("[s]", a->hf_write_id));
    json_object_set_new(c, "model_type", json_string(a->hf_model_type));
    json_object_set_new(c, "hidden_size", json_integer(hp->hidden));
    char key[64];
    json_object_set_new(c, first_key(a->keys.intermediate, "intermediate_size", key, sizeof key), json_integer(hp->intermediate));
    json_object_set_new(c, "num_hidden_layers", json_integer(hp->n_layers));
    json_object_set_new(c, "num_attention_heads", json_integer(hp->n_heads));
    json_object_set_new(c, "num_key_value_heads", json_integer(hp->n_kv_heads));
    json_object_set_new(c, "head_dim", json_integer(hp->head_dim));
    json_object_set_new(c, "vocab_size", json_integer(hp->vocab));
    json_object_set_new(c, "max_position_embeddings", json_integer(hp->max_pos));
    json_object_set_new(c, "rms_norm_eps", json_real(hp->norm_eps));
    json_object_set_new(c, "rope_theta", json_real(hp->rope_theta));
    if (hp->mlp_act == ROTQ_MLP_SWIGLU) {
        json_object_set_new(c, "hidden_act", json_string("silu"));
    } else if (hp->mlp_act == ROTQ_MLP_GEGLU) {
        json_object_set_new(c, first_key(a->keys.act, "hidden_act", key, sizeof key), json_string("gelu_pytorch_tanh"));
    } else {
        const char *act = hp->mlp_act == ROTQ_MLP_RELU ? "relu" : hp->mlp_act == ROTQ_MLP_GELU ? "gelu" : "gelu_new";
        json_object_set_new(c, first_key(a->keys.act, "hidden_act", key, sizeof key), json_string(act));
    }
    for (int32_t i = 0; i < a->n_require_true; i++) {
        const char *rk = a->require_true[i];
        json_object_set_new(c, rk + (rk[0] == '!'), json_boolean(rk[0] != '!'));
    }
    if (a->keys.attn_scalar[0]) /* written always: the config class's default need not be head_dim */
    {
        double q = hp->attn_scale > 0 ? 1.0 / (hp->attn_scale * hp->attn_scale) : (double)hp->head_dim;
        json_object_set_new(c, first_key(a->keys.attn_scalar, "", key, sizeof key),
                            fabs(q - round(q)) < 1e-6 * q ? json_integer((json_int_t)llround(q)) : json_real(q));
    }
    if (hp->sliding_window > 0) {
        json_object_set_new(c, "sliding_window", json_integer(hp->sliding_window));
        json_object_set_new(c, "sliding_window_pattern", json_integer(hp->sliding_pattern));
        json_t *types = json_array();
        for (int32_t l = 0; l < hp->n_layers; l++)
            json_array_append_new(types, json_string(rotq_hparams_layer_sliding(hp, l) ? "sliding_attention" : "full_attention"));
        json_object_set_new(c, "layer_types", types);
    }
    if (hp->rope_theta_local > 0 && a->keys.rope_local_theta[0])
        json_object_set_new(c, first_key(a->keys.rope_local_theta, "", key, sizeof key), json_real(hp->rope_theta_local));
    if (a->require_eq_hidden[0]) json_object_set_new(c, a->require_eq_hidden, json_integer(hp->hidden));
    json_object_set_new(c, "tie_word_embeddings", json_boolean(hp->tied_embeddings));
    if (a->pos == ROTQ_POS_ROPE && hp->rotary_dim != hp->head_dim)
        json_object_set_new(c, "partial_rotary_factor", json_real((double)hp->rotary_dim / (double)hp->head_dim));
    if (hp->rope_scaling) {
        json_t *s = json_object();
        json_object_set_new(s, "rope_type", json_string(hp->rope_scaling == 2 ? "llama3" : "linear"));
        json_object_set_new(s, "factor", json_real(hp->rope_factor));
        if (hp->rope_scaling == 2) {
            json_object_set_new(s, "low_freq_factor", json_real(hp->rope_low_freq_factor));
            json_object_set_new(s, "high_freq_factor", json_real(hp->rope_high_freq_factor));
            json_object_set_new(s, "original_max_position_embeddings", json_integer(hp->rope_orig_max_pos));
        }
        json_object_set_new(c, "rope_scaling", s);
    }
    if (hp->bos_id >= 0) json_object_set_new(c, "bos_token_id", json_integer(hp->bos_id));
    if (hp->eos_id >= 0) json_object_set_new(c, "eos_token_id", json_integer(hp->eos_id));
    return c;
}
