/* User architectures from JSON: the same description as the C tables, so adding a model
 * needs no core change. Optional "base" starts from a registered description. */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "arch/builtin.h"

static rotq_status str_list(json_t *arr, const char *origin, const char *field, char *dst, size_t width, int32_t max, int32_t *n) {
    if (!arr) return ROTQ_OK;
    if (!json_is_array(arr)) return rotq_fail(ROTQ_ERR_FORMAT, "%s: \"%s\" must be an array of strings", origin, field);
    if ((int32_t)json_array_size(arr) > max) return rotq_fail(ROTQ_ERR_FORMAT, "%s: \"%s\" has more than %d entries", origin, field, max);
    *n = 0;
    size_t i;
    json_t *v;
    json_array_foreach(arr, i, v) {
        if (!json_is_string(v) || json_string_length(v) >= width)
            return rotq_fail(ROTQ_ERR_FORMAT, "%s: \"%s\"[%zu] must be a string shorter than %zu", origin, field, i, width);
        snprintf(dst + (size_t)(*n)++ * width, width, "%s", json_string_value(v));
    }
    return ROTQ_OK;
}

static rotq_status copy_str(json_t *obj, const char *key, char *dst, size_t size, const char *origin) {
    json_t *v = json_object_get(obj, key);
    if (!v) return ROTQ_OK;
    if (!json_is_string(v) || json_string_length(v) >= size)
        return rotq_fail(ROTQ_ERR_FORMAT, "%s: \"%s\" must be a string shorter than %zu", origin, key, size);
    snprintf(dst, size, "%s", json_string_value(v));
    return ROTQ_OK;
}

static rotq_status parse_role(json_t *v, const char *origin, rotq_role *out) {
    if (!json_is_string(v)) return rotq_fail(ROTQ_ERR_FORMAT, "%s: a role must be a string", origin);
    *out = rotq_role_from_name(json_string_value(v));
    if (*out == ROLE_COUNT) return rotq_fail(ROTQ_ERR_FORMAT, "%s: unknown role \"%s\" (see docs/architectures.md)", origin, json_string_value(v));
    return ROTQ_OK;
}

static rotq_status parse(json_t *root, const char *origin, rotq_arch *a) {
    if (!json_is_object(root)) return rotq_fail(ROTQ_ERR_FORMAT, "%s: an architecture description is a JSON object", origin);
    memset(a, 0, sizeof *a);
    json_t *base = json_object_get(root, "base");
    if (base) {
        const rotq_arch *b = json_is_string(base) ? rotq_arch_find(json_string_value(base)) : NULL;
        if (!b) return rotq_fail(ROTQ_ERR_FORMAT, "%s: \"base\" names no registered architecture", origin);
        *a = *b;
        a->n_hf_ids = a->n_gguf_ids = 0;
    } else {
        rotq_arch_default_keys(&a->keys);
        rotq_arch_set_ops(a, rotq_arch_standard_ops, ROTQ_STANDARD_OPS);
    }
    ROTQ_TRY(copy_str(root, "name", a->name, sizeof a->name, origin));
    if (!a->name[0] || (base && strcmp(a->name, json_string_value(base)) == 0 && !json_object_get(root, "name")))
        return rotq_fail(ROTQ_ERR_FORMAT, "%s: \"name\" is required", origin);
    ROTQ_TRY(str_list(json_object_get(root, "hf_architectures"), origin, "hf_architectures", a->hf_ids[0], sizeof a->hf_ids[0], ROTQ_ARCH_MAX_IDS, &a->n_hf_ids));
    ROTQ_TRY(str_list(json_object_get(root, "gguf_architectures"), origin, "gguf_architectures", a->gguf_ids[0], sizeof a->gguf_ids[0], ROTQ_ARCH_MAX_IDS, &a->n_gguf_ids));
    if (a->n_hf_ids == 0 && a->n_gguf_ids == 0)
        return rotq_fail(ROTQ_ERR_FORMAT, "%s: give \"hf_architectures\" and/or \"gguf_architectures\" to say which files match", origin);
    snprintf(a->hf_write_id, sizeof a->hf_write_id, "%s", a->n_hf_ids ? a->hf_ids[0] : "");
    snprintf(a->gguf_write_id, sizeof a->gguf_write_id, "%s", a->n_gguf_ids ? a->gguf_ids[0] : "");
    ROTQ_TRY(copy_str(root, "hf_model_type", a->hf_model_type, sizeof a->hf_model_type, origin));
    ROTQ_TRY(copy_str(root, "gguf_write_architecture", a->gguf_write_id, sizeof a->gguf_write_id, origin));

    json_t *tensors = json_object_get(root, "tensors");
    if (tensors) {
        if (!json_is_object(tensors)) return rotq_fail(ROTQ_ERR_FORMAT, "%s: \"tensors\" maps role names to {\"hf\":..., \"gguf\":...}", origin);
        a->n_tensors = 0;
        const char *role_name;
        json_t *spec;
        json_object_foreach(tensors, role_name, spec) {
            rotq_role r = rotq_role_from_name(role_name);
            if (r == ROLE_COUNT) return rotq_fail(ROTQ_ERR_FORMAT, "%s: unknown role \"%s\" in \"tensors\"", origin, role_name);
            if (a->n_tensors >= ROTQ_ARCH_MAX_TENSORS) return rotq_fail(ROTQ_ERR_FORMAT, "%s: too many tensors", origin);
            json_t *hf = json_object_get(spec, "hf"), *gg = json_object_get(spec, "gguf");
            if (!json_is_string(hf) || json_string_length(hf) >= sizeof a->tensors[0].hf)
                return rotq_fail(ROTQ_ERR_FORMAT, "%s: tensor role %s needs an \"hf\" name template", origin, role_name);
            if (gg && (!json_is_string(gg) || json_string_length(gg) >= sizeof a->tensors[0].gguf))
                return rotq_fail(ROTQ_ERR_FORMAT, "%s: tensor role %s: \"gguf\" must be a short string", origin, role_name);
            rotq_arch_add_tensor(a, r, json_string_value(hf), gg ? json_string_value(gg) : "", json_is_true(json_object_get(spec, "optional")));
        }
    }
    json_t *groups = json_object_get(root, "norm_groups");
    if (groups) {
        if (!json_is_array(groups) || json_array_size(groups) > ROTQ_ARCH_MAX_GROUPS)
            return rotq_fail(ROTQ_ERR_FORMAT, "%s: \"norm_groups\" is an array of {\"norm\": role, \"linears\": [roles]}", origin);
        a->n_groups = 0;
        size_t i;
        json_t *g;
        json_array_foreach(groups, i, g) {
            rotq_norm_group *ng = &a->groups[a->n_groups++];
            ROTQ_TRY(parse_role(json_object_get(g, "norm"), origin, &ng->norm));
            json_t *lin = json_object_get(g, "linears");
            if (!json_is_array(lin) || json_array_size(lin) == 0 || json_array_size(lin) > ROTQ_ARCH_MAX_LINEARS)
                return rotq_fail(ROTQ_ERR_FORMAT, "%s: norm_groups[%zu].linears must list 1..%d roles", origin, i, ROTQ_ARCH_MAX_LINEARS);
            ng->n_linears = 0;
            size_t j;
            json_t *l;
            json_array_foreach(lin, j, l) ROTQ_TRY(parse_role(l, origin, &ng->linears[ng->n_linears++]));
        }
    }
    json_t *ops = json_object_get(root, "ops");
    if (ops) ROTQ_TRY(str_list(ops, origin, "ops", a->ops[0], sizeof a->ops[0], ROTQ_ARCH_MAX_OPS, &a->n_ops));
    json_t *v;
    if ((v = json_object_get(root, "norm"))) {
        const char *s = json_is_string(v) ? json_string_value(v) : "";
        if (strcmp(s, "rms") == 0) a->norm = ROTQ_NORM_RMS;
        else if (strcmp(s, "layer") == 0) a->norm = ROTQ_NORM_LAYER;
        else return rotq_fail(ROTQ_ERR_FORMAT, "%s: \"norm\" must be \"rms\" or \"layer\"", origin);
    }
    if ((v = json_object_get(root, "mlp"))) {
        const char *s = json_is_string(v) ? json_string_value(v) : "";
        if (strcmp(s, "swiglu") == 0) a->mlp = ROTQ_MLP_SWIGLU;
        else if (strcmp(s, "gelu") == 0) a->mlp = ROTQ_MLP_GELU;
        else if (strcmp(s, "relu") == 0) a->mlp = ROTQ_MLP_RELU;
        else if (strcmp(s, "gelu_tanh") == 0) a->mlp = ROTQ_MLP_GELU_TANH;
        else if (strcmp(s, "geglu") == 0) a->mlp = ROTQ_MLP_GEGLU;
        else if (strcmp(s, "quick_gelu") == 0) a->mlp = ROTQ_MLP_QUICK_GELU;
        else return rotq_fail(ROTQ_ERR_FORMAT, "%s: \"mlp\" must be \"swiglu\", \"geglu\", \"gelu\", \"gelu_tanh\", \"quick_gelu\" or \"relu\"", origin);
    }
    if ((v = json_object_get(root, "positions"))) {
        const char *s = json_is_string(v) ? json_string_value(v) : "";
        if (strcmp(s, "rope") == 0) a->pos = ROTQ_POS_ROPE;
        else if (strcmp(s, "learned") == 0) a->pos = ROTQ_POS_LEARNED;
        else return rotq_fail(ROTQ_ERR_FORMAT, "%s: \"positions\" must be \"rope\" or \"learned\"", origin);
    }
    if ((v = json_object_get(root, "position_offset"))) {
        if (!json_is_integer(v) || json_integer_value(v) < 0 || json_integer_value(v) > 1024)
            return rotq_fail(ROTQ_ERR_FORMAT, "%s: \"position_offset\" must be an integer in 0..1024", origin);
        a->pos_offset = (int32_t)json_integer_value(v);
    }
    if ((v = json_object_get(root, "norm_offset"))) {
        if (!json_is_number(v)) return rotq_fail(ROTQ_ERR_FORMAT, "%s: \"norm_offset\" must be a number", origin);
        a->norm_offset = json_number_value(v);
    }
    if ((v = json_object_get(root, "gguf_permute_qk"))) a->gguf_permute_qk = json_is_true(v);
    if ((v = json_object_get(root, "tied_default"))) a->default_tied = json_is_true(v);
    if ((v = json_object_get(root, "gguf_norm_shift"))) a->gguf_norm_shift = json_is_true(v);
    if ((v = json_object_get(root, "embed_scale_sqrt_hidden"))) a->embed_scale_sqrt = json_is_true(v);
    /* multimodal: a vision tower's description (another registered name) and where its tensors sit */
    if ((v = json_object_get(root, "vision_tower"))) a->vision_tower = json_is_true(v);
    const char *vkeys[2] = {"vision", "vision_prefix"};
    char *vdst[2] = {a->vision, a->vision_prefix};
    for (int i = 0; i < 2; i++)
        if ((v = json_object_get(root, vkeys[i]))) {
            if (!json_is_string(v) || !json_string_length(v) || json_string_length(v) >= sizeof a->vision)
                return rotq_fail(ROTQ_ERR_FORMAT, "%s: \"%s\" must be a non-empty string (< %zu bytes)", origin, vkeys[i], sizeof a->vision);
            snprintf(vdst[i], sizeof a->vision, "%s", json_string_value(v));
        }
    if (!a->vision[0] != !a->vision_prefix[0])
        return rotq_fail(ROTQ_ERR_FORMAT, "%s: \"vision\" and \"vision_prefix\" go together", origin);
    if ((v = json_object_get(root, "sliding_pattern_default"))) {
        if (!json_is_integer(v) || json_integer_value(v) < 0 || json_integer_value(v) > 1 << 20)
            return rotq_fail(ROTQ_ERR_FORMAT, "%s: \"sliding_pattern_default\" must be a non-negative integer", origin);
        a->default_sliding_pattern = (int32_t)json_integer_value(v);
    }
    if ((v = json_object_get(root, "rope_local_theta_default"))) {
        if (!json_is_number(v) || !(json_number_value(v) > 0))
            return rotq_fail(ROTQ_ERR_FORMAT, "%s: \"rope_local_theta_default\" must be a positive number", origin);
        a->default_rope_local_theta = json_number_value(v);
    }
    json_t *keys = json_object_get(root, "config_keys");
    if (keys) {
        if (!json_is_object(keys)) return rotq_fail(ROTQ_ERR_FORMAT, "%s: \"config_keys\" must be an object", origin);
        struct { const char *k; char *dst; size_t n; } kk[] = {
            {"hidden", a->keys.hidden, sizeof a->keys.hidden}, {"intermediate", a->keys.intermediate, sizeof a->keys.intermediate},
            {"n_layers", a->keys.n_layers, sizeof a->keys.n_layers}, {"n_heads", a->keys.n_heads, sizeof a->keys.n_heads},
            {"n_kv_heads", a->keys.n_kv_heads, sizeof a->keys.n_kv_heads}, {"head_dim", a->keys.head_dim, sizeof a->keys.head_dim},
            {"vocab", a->keys.vocab, sizeof a->keys.vocab}, {"max_pos", a->keys.max_pos, sizeof a->keys.max_pos},
            {"norm_eps", a->keys.norm_eps, sizeof a->keys.norm_eps}, {"rope_theta", a->keys.rope_theta, sizeof a->keys.rope_theta},
            {"tied", a->keys.tied, sizeof a->keys.tied},
            {"act", a->keys.act, sizeof a->keys.act},
            {"sliding_window", a->keys.sliding_window, sizeof a->keys.sliding_window},
            {"sliding_pattern", a->keys.sliding_pattern, sizeof a->keys.sliding_pattern},
            {"rope_local_theta", a->keys.rope_local_theta, sizeof a->keys.rope_local_theta},
            {"attn_scalar", a->keys.attn_scalar, sizeof a->keys.attn_scalar},
            {"layer_types", a->keys.layer_types, sizeof a->keys.layer_types},
            {"softcaps", a->keys.softcaps, sizeof a->keys.softcaps},
        };
        for (size_t i = 0; i < sizeof kk / sizeof kk[0]; i++) ROTQ_TRY(copy_str(keys, kk[i].k, kk[i].dst, kk[i].n, origin));
    }
    if (a->n_tensors == 0 || !rotq_arch_tensor_for(a, ROLE_EMBED))
        return rotq_fail(ROTQ_ERR_FORMAT, "%s: \"tensors\" must give at least the \"embed\" role", origin);
    for (int32_t g = 0; g < a->n_groups; g++)
        for (int32_t l = 0; l < a->groups[g].n_linears; l++)
            if (!rotq_arch_tensor_for(a, a->groups[g].linears[l]) || !rotq_arch_tensor_for(a, a->groups[g].norm))
                return rotq_fail(ROTQ_ERR_FORMAT, "%s: norm group %d names a role with no tensor", origin, g);
    return ROTQ_OK;
}

rotq_status rotq_arch_from_json(const char *json_text, const char *origin, rotq_arch *out) {
    json_error_t err;
    json_t *root = json_loads(json_text, 0, &err);
    if (!root) return rotq_fail(ROTQ_ERR_FORMAT, "%s: line %d column %d: %s", origin, err.line, err.column, err.text);
    rotq_status s = parse(root, origin, out);
    json_decref(root);
    return s;
}

rotq_status rotq_arch_register_file(const char *path) {
    uint8_t *text;
    uint64_t size;
    ROTQ_TRY(rotq_read_file(path, &text, &size));
    rotq_arch a;
    rotq_status s = rotq_arch_from_json((const char *)text, path, &a);
    free(text);
    if (s == ROTQ_OK) s = rotq_arch_register(&a);
    return s;
}
