/* The "rotq" record: what rotation did to a model beyond its weights (online R3/R4, how R1/R2
 * were made). Written into config.json as "rotq" and into GGUF as the JSON string "rotq.record". */
#include <jansson.h>
#include <string.h>

#include "io/record.h"

static json_t *online_json(const rotq_online_rotation *r) {
    json_t *j = json_pack("{s:s, s:I, s:I}", "kind", r->dense ? "orthogonal" : "hadamard", "size", (json_int_t)r->size, "seed",
                          (json_int_t)r->seed);
    if (j && r->block > 0) json_object_set_new(j, "block", json_integer((json_int_t)r->block));
    if (j && r->random_signs) json_object_set_new(j, "random_signs", json_true());
    return j;
}

void *rotq_record_to_json(const rotq_rotation_record *r) {
    bool lw = false;
    for (int i = 0; i < ROTQ_LW_SITES; i++) lw |= r->lw[i].on;
    if (!r->norms_fused && !r->r3.on && !r->r4.on && !r->r1[0] && !r->r2[0] && !lw) return NULL;
    json_t *j = json_object();
    json_object_set_new(j, "version", json_integer(1));
    json_object_set_new(j, "norms_fused", json_boolean(r->norms_fused));
    /* a LayerNorm model whose stream fuse_norms centred: its norms run as RMSNorm from here on */
    if (r->ln_as_rms) json_object_set_new(j, "norm", json_string("rms"));
    if (r->r1[0]) json_object_set_new(j, "r1", json_string(r->r1));
    if (r->r2[0]) json_object_set_new(j, "r2", json_string(r->r2));
    if (r->r3.on) json_object_set_new(j, "r3", online_json(&r->r3));
    if (r->r4.on) json_object_set_new(j, "r4", online_json(&r->r4));
    if (lw) {
        json_t *l = json_object();
        for (int i = 0; i < ROTQ_LW_SITES; i++)
            if (r->lw[i].on) json_object_set_new(l, rotq_lw_site_name((rotq_lw_site)i), online_json(&r->lw[i]));
        json_object_set_new(j, "layerwise", l);
    }
    return j;
}

static rotq_status online_from(json_t *o, const char *site, const char *origin, rotq_online_rotation *r) {
    if (!o) return ROTQ_OK;
    json_t *kind = json_object_get(o, "kind"), *size = json_object_get(o, "size"), *seed = json_object_get(o, "seed");
    if (!json_is_string(kind) || !json_is_integer(size) || json_integer_value(size) <= 0 || json_integer_value(size) > (1 << 24))
        return rotq_fail(ROTQ_ERR_FORMAT, "%s: rotq record %s needs \"kind\" and a positive \"size\"", origin, site);
    const char *k = json_string_value(kind);
    if (strcmp(k, "hadamard") != 0 && strcmp(k, "orthogonal") != 0)
        return rotq_fail(ROTQ_ERR_FORMAT, "%s: rotq record %s has unknown kind \"%s\"", origin, site, k);
    r->on = true;
    r->dense = strcmp(k, "orthogonal") == 0;
    r->size = json_integer_value(size);
    r->seed = json_is_integer(seed) ? (uint64_t)json_integer_value(seed) : 0;
    json_t *block = json_object_get(o, "block");
    if (block && (!json_is_integer(block) || json_integer_value(block) <= 0 || r->size % json_integer_value(block) != 0))
        return rotq_fail(ROTQ_ERR_FORMAT, "%s: rotq record %s \"block\" must be a positive divisor of its size %lld", origin, site,
                         (long long)r->size);
    r->block = block ? json_integer_value(block) : 0;
    r->random_signs = json_is_true(json_object_get(o, "random_signs"));
    return ROTQ_OK;
}

rotq_status rotq_record_from_json(const void *json, const char *origin, rotq_rotation_record *r) {
    const json_t *j = json;
    memset(r, 0, sizeof *r);
    if (!j) return ROTQ_OK;
    if (!json_is_object(j)) return rotq_fail(ROTQ_ERR_FORMAT, "%s: the \"rotq\" record must be an object", origin);
    json_t *v = json_object_get(j, "version");
    if (!json_is_integer(v) || json_integer_value(v) != 1)
        return rotq_fail(ROTQ_ERR_UNSUPPORTED, "%s: rotq record version is not 1 (written by a newer rotq?)", origin);
    r->norms_fused = json_is_true(json_object_get(j, "norms_fused"));
    json_t *norm = json_object_get(j, "norm");
    if (norm) {
        if (!json_is_string(norm) || (strcmp(json_string_value(norm), "rms") != 0 && strcmp(json_string_value(norm), "layer") != 0))
            return rotq_fail(ROTQ_ERR_FORMAT, "%s: rotq record \"norm\" must be \"rms\" or \"layer\"", origin);
        r->ln_as_rms = strcmp(json_string_value(norm), "rms") == 0;
    }
    json_t *s1 = json_object_get(j, "r1"), *s2 = json_object_get(j, "r2");
    if (json_is_string(s1)) snprintf(r->r1, sizeof r->r1, "%s", json_string_value(s1));
    if (json_is_string(s2)) snprintf(r->r2, sizeof r->r2, "%s", json_string_value(s2));
    ROTQ_TRY(online_from(json_object_get(j, "r3"), "r3", origin, &r->r3));
    ROTQ_TRY(online_from(json_object_get(j, "r4"), "r4", origin, &r->r4));
    json_t *l = json_object_get(j, "layerwise");
    if (l && !json_is_object(l)) return rotq_fail(ROTQ_ERR_FORMAT, "%s: rotq record \"layerwise\" must be an object", origin);
    const char *key;
    json_t *site;
    json_object_foreach(l, key, site) {
        int i = rotq_lw_site_from_name(key);
        if (i < 0)
            return rotq_fail(ROTQ_ERR_FORMAT, "%s: rotq record: unknown layerwise site \"%s\" (qkv, o, mlp, down, lm_head)", origin, key);
        ROTQ_TRY(online_from(site, key, origin, &r->lw[i]));
    }
    return ROTQ_OK;
}

char *rotq_record_to_string(const rotq_rotation_record *r) {
    json_t *j = rotq_record_to_json(r);
    if (!j) return NULL;
    char *s = json_dumps(j, JSON_COMPACT | JSON_SORT_KEYS);
    json_decref(j);
    return s;
}

rotq_status rotq_record_from_string(const char *text, const char *origin, rotq_rotation_record *r) {
    json_error_t err;
    json_t *j = json_loads(text, 0, &err);
    if (!j) return rotq_fail(ROTQ_ERR_FORMAT, "%s: rotq.record is not JSON: %s", origin, err.text);
    rotq_status s = rotq_record_from_json(j, origin, r);
    json_decref(j);
    return s;
}
