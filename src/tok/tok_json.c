/* Loader for Hugging Face tokenizer.json (+ tokenizer_config.json for BOS/EOS and add_bos). */
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "tok/tok.h"

typedef struct ctx {
    const char *where;
    rotq_tokenizer *t;
    bool saw_bytelevel;
    char bos_name[256];   /* from the post-processor template, resolved after the vocabulary */
    bool template_bos;
} ctx;

static const char *str_or(json_t *o, const char *key, const char *dflt) {
    json_t *v = json_object_get(o, key);
    return json_is_string(v) ? json_string_value(v) : dflt;
}

static bool bool_or(json_t *o, const char *key, bool dflt) {
    json_t *v = json_object_get(o, key);
    return json_is_boolean(v) ? json_is_true(v) : dflt;
}

static char *dup_str(const char *s, size_t n) {
    char *p = malloc(n + 1);
    if (!p) return NULL;
    memcpy(p, s, n);
    p[n] = 0;
    return p;
}

/* A {"String": s} or {"Regex": r} pattern. */
static rotq_status read_pattern(ctx *c, json_t *pat, const char *what, char **lit, size_t *lit_len, void **re) {
    json_t *sv = json_object_get(pat, "String"), *rv = json_object_get(pat, "Regex");
    if (json_is_string(sv)) {
        *lit_len = json_string_length(sv);
        *lit = dup_str(json_string_value(sv), *lit_len);
        return *lit ? ROTQ_OK : rotq_fail(ROTQ_ERR_NOMEM, "%s: out of memory", c->where);
    }
    if (json_is_string(rv)) {
        rotq_status s = rotq_tok_regex_compile(json_string_value(rv), json_string_length(rv), re);
        return s == ROTQ_OK ? s : rotq_fail_context(s, "%s: %s: ", c->where, what);
    }
    return rotq_fail(ROTQ_ERR_FORMAT, "%s: %s has no String or Regex pattern", c->where, what);
}

/* ---- normalizers --------------------------------------------------------------------------- */

static rotq_status push_norm(ctx *c, rotq_tok_norm *n) {
    rotq_tokenizer *t = c->t;
    rotq_tok_norm *p = realloc(t->norms, (size_t)(t->n_norms + 1) * sizeof *p);
    if (!p) {
        rotq_tok_norm_clear(n);
        return rotq_fail(ROTQ_ERR_NOMEM, "%s: out of memory", c->where);
    }
    t->norms = p;
    t->norms[t->n_norms++] = *n;
    return ROTQ_OK;
}

static rotq_status read_normalizer(ctx *c, json_t *o, int depth) {
    if (!o || json_is_null(o)) return ROTQ_OK;
    if (depth > 8) return rotq_fail(ROTQ_ERR_FORMAT, "%s: normalizers nested too deep", c->where);
    const char *type = str_or(o, "type", "");
    rotq_tok_norm n = {0};
    if (strcmp(type, "Sequence") == 0) {
        json_t *list = json_object_get(o, "normalizers");
        size_t i;
        json_t *v;
        json_array_foreach(list, i, v) ROTQ_TRY(read_normalizer(c, v, depth + 1));
        return ROTQ_OK;
    }
    if (strcmp(type, "NFC") == 0) n.kind = ROTQ_NORM_NFC;
    else if (strcmp(type, "NFD") == 0) n.kind = ROTQ_NORM_NFD;
    else if (strcmp(type, "NFKC") == 0) n.kind = ROTQ_NORM_NFKC;
    else if (strcmp(type, "NFKD") == 0) n.kind = ROTQ_NORM_NFKD;
    else if (strcmp(type, "Lowercase") == 0) n.kind = ROTQ_NORM_LOWERCASE;
    else if (strcmp(type, "Strip") == 0) {
        n.kind = ROTQ_NORM_STRIP;
        n.left = bool_or(o, "strip_left", true);
        n.right = bool_or(o, "strip_right", true);
    } else if (strcmp(type, "Prepend") == 0) {
        n.kind = ROTQ_NORM_PREPEND;
        const char *p = str_or(o, "prepend", NULL);
        if (!p) return rotq_fail(ROTQ_ERR_FORMAT, "%s: Prepend normalizer without \"prepend\"", c->where);
        n.a_len = strlen(p);
        if (!(n.a = dup_str(p, n.a_len))) return rotq_fail(ROTQ_ERR_NOMEM, "%s: out of memory", c->where);
    } else if (strcmp(type, "Replace") == 0) {
        n.kind = ROTQ_NORM_REPLACE;
        json_t *content = json_object_get(o, "content");
        if (!json_is_string(content)) return rotq_fail(ROTQ_ERR_FORMAT, "%s: Replace normalizer without \"content\"", c->where);
        rotq_status s = read_pattern(c, json_object_get(o, "pattern"), "Replace normalizer", &n.a, &n.a_len, &n.re);
        if (s == ROTQ_OK) {
            n.b_len = json_string_length(content);
            if (!(n.b = dup_str(json_string_value(content), n.b_len))) s = rotq_fail(ROTQ_ERR_NOMEM, "%s: out of memory", c->where);
        }
        if (s != ROTQ_OK) {
            rotq_tok_norm_clear(&n);
            return s;
        }
    } else {
        return rotq_fail(ROTQ_ERR_UNSUPPORTED, "%s: normalizer type '%s' is not supported", c->where, type);
    }
    return push_norm(c, &n);
}

/* ---- pre-tokenizers ------------------------------------------------------------------------ */

static rotq_status push_pre(ctx *c, rotq_tok_pre *p) {
    rotq_tokenizer *t = c->t;
    if (c->saw_bytelevel) {
        rotq_tok_pre_clear(p);
        return rotq_fail(ROTQ_ERR_UNSUPPORTED, "%s: a pre-tokenizer after ByteLevel is not supported", c->where);
    }
    rotq_tok_pre *q = realloc(t->pres, (size_t)(t->n_pres + 1) * sizeof *q);
    if (!q) {
        rotq_tok_pre_clear(p);
        return rotq_fail(ROTQ_ERR_NOMEM, "%s: out of memory", c->where);
    }
    t->pres = q;
    t->pres[t->n_pres++] = *p;
    if (p->kind == ROTQ_PRE_BYTELEVEL) c->saw_bytelevel = true;
    return ROTQ_OK;
}

static rotq_status read_behavior(ctx *c, const char *b, rotq_tok_split_behavior *out) {
    static const struct { const char *name; rotq_tok_split_behavior b; } names[] = {
        {"Isolated", ROTQ_SPLIT_ISOLATED}, {"Removed", ROTQ_SPLIT_REMOVED},
        {"MergedWithPrevious", ROTQ_SPLIT_MERGED_PREV}, {"MergedWithNext", ROTQ_SPLIT_MERGED_NEXT},
        {"Contiguous", ROTQ_SPLIT_CONTIGUOUS},
    };
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        if (strcmp(b, names[i].name) == 0) {
            *out = names[i].b;
            return ROTQ_OK;
        }
    return rotq_fail(ROTQ_ERR_UNSUPPORTED, "%s: split behavior '%s' is not supported", c->where, b);
}

static rotq_status read_metaspace_fields(ctx *c, json_t *o, rotq_tok_pre *p) {
    const char *r = str_or(o, "replacement", "\xE2\x96\x81");
    size_t rl = strlen(r);
    if (rl == 0 || rl >= sizeof p->replacement)
        return rotq_fail(ROTQ_ERR_FORMAT, "%s: Metaspace replacement '%s' is not one character", c->where, r);
    memcpy(p->replacement, r, rl);
    p->replacement_len = rl;
    const char *scheme = str_or(o, "prepend_scheme", NULL);
    if (scheme) {
        if (strcmp(scheme, "always") == 0) p->prepend = ROTQ_PREPEND_ALWAYS;
        else if (strcmp(scheme, "first") == 0) p->prepend = ROTQ_PREPEND_FIRST;
        else if (strcmp(scheme, "never") == 0) p->prepend = ROTQ_PREPEND_NEVER;
        else return rotq_fail(ROTQ_ERR_UNSUPPORTED, "%s: Metaspace prepend_scheme '%s'", c->where, scheme);
    } else {
        p->prepend = bool_or(o, "add_prefix_space", true) ? ROTQ_PREPEND_ALWAYS : ROTQ_PREPEND_NEVER;
    }
    p->split = bool_or(o, "split", true);
    return ROTQ_OK;
}

static rotq_status read_pretokenizer(ctx *c, json_t *o, int depth) {
    if (!o || json_is_null(o)) return ROTQ_OK;
    if (depth > 8) return rotq_fail(ROTQ_ERR_FORMAT, "%s: pre-tokenizers nested too deep", c->where);
    const char *type = str_or(o, "type", "");
    rotq_tok_pre p = {0};
    if (strcmp(type, "Sequence") == 0) {
        json_t *list = json_object_get(o, "pretokenizers");
        size_t i;
        json_t *v;
        json_array_foreach(list, i, v) ROTQ_TRY(read_pretokenizer(c, v, depth + 1));
        return ROTQ_OK;
    }
    if (strcmp(type, "Split") == 0) {
        p.kind = ROTQ_PRE_SPLIT;
        rotq_status s = read_pattern(c, json_object_get(o, "pattern"), "Split pre-tokenizer", &p.literal,
                                     &p.literal_len, &p.re);
        if (s == ROTQ_OK) s = read_behavior(c, str_or(o, "behavior", "Isolated"), &p.behavior);
        p.invert = bool_or(o, "invert", false);
        if (s != ROTQ_OK) {
            rotq_tok_pre_clear(&p);
            return s;
        }
    } else if (strcmp(type, "ByteLevel") == 0) {
        p.kind = ROTQ_PRE_BYTELEVEL;
        p.add_prefix_space = bool_or(o, "add_prefix_space", true);
        if (bool_or(o, "use_regex", true))
            ROTQ_TRY(rotq_tok_regex_compile(ROTQ_TOK_GPT2_PATTERN, strlen(ROTQ_TOK_GPT2_PATTERN), &p.re));
    } else if (strcmp(type, "Digits") == 0) {
        p.kind = ROTQ_PRE_DIGITS;
        p.individual_digits = bool_or(o, "individual_digits", false);
    } else if (strcmp(type, "Metaspace") == 0) {
        p.kind = ROTQ_PRE_METASPACE;
        ROTQ_TRY(read_metaspace_fields(c, o, &p));
    } else if (strcmp(type, "Whitespace") == 0) {
        p.kind = ROTQ_PRE_WHITESPACE;
        static const char pat[] = "\\w+|[^\\w\\s]+";
        ROTQ_TRY(rotq_tok_regex_compile(pat, strlen(pat), &p.re));
    } else if (strcmp(type, "WhitespaceSplit") == 0) {
        p.kind = ROTQ_PRE_WHITESPACE_SPLIT;
    } else {
        return rotq_fail(ROTQ_ERR_UNSUPPORTED, "%s: pre-tokenizer type '%s' is not supported", c->where, type);
    }
    return push_pre(c, &p);
}

/* ---- decoder and post-processor ------------------------------------------------------------ */

static void read_decoder(ctx *c, json_t *o, int depth) {
    if (!o || json_is_null(o) || depth > 8) return;
    const char *type = str_or(o, "type", "");
    rotq_tokenizer *t = c->t;
    if (strcmp(type, "Sequence") == 0) {
        size_t i;
        json_t *v;
        json_array_foreach(json_object_get(o, "decoders"), i, v) read_decoder(c, v, depth + 1);
    } else if (strcmp(type, "Metaspace") == 0) {
        rotq_tok_pre p = {0};
        if (read_metaspace_fields(c, o, &p) != ROTQ_OK) {
            rotq_clear_error();
            return;
        }
        t->spm_escape_spaces = true;
        if (p.prepend != ROTQ_PREPEND_NEVER) t->decode_strip_space = true;
    } else if (strcmp(type, "Replace") == 0) {
        json_t *pat = json_object_get(json_object_get(o, "pattern"), "String");
        if (json_is_string(pat) && strcmp(json_string_value(pat), "\xE2\x96\x81") == 0 &&
            strcmp(str_or(o, "content", ""), " ") == 0)
            t->spm_escape_spaces = true;
    } else if (strcmp(type, "ByteFallback") == 0) {
        t->decode_bytes = true;
    } else if (strcmp(type, "Strip") == 0) {
        json_t *start = json_object_get(o, "start");
        if (strcmp(str_or(o, "content", " "), " ") == 0 && json_is_integer(start) && json_integer_value(start) >= 1)
            t->decode_strip_space = true;
    }
}

/* A TemplateProcessing that starts with a special token adds it as BOS (Llama-2/3 style). */
static void read_post_processor(ctx *c, json_t *o, int depth) {
    if (!o || json_is_null(o) || depth > 8) return;
    const char *type = str_or(o, "type", "");
    if (strcmp(type, "Sequence") == 0) {
        size_t i;
        json_t *v;
        json_array_foreach(json_object_get(o, "processors"), i, v) read_post_processor(c, v, depth + 1);
        return;
    }
    if (strcmp(type, "TemplateProcessing") != 0) return;
    json_t *first = json_array_get(json_object_get(o, "single"), 0);
    json_t *st = json_object_get(first, "SpecialToken");
    const char *name = str_or(st, "id", NULL);
    if (!name) return;
    json_t *ids = json_object_get(json_object_get(json_object_get(o, "special_tokens"), name), "ids");
    json_t *id = json_array_get(ids, 0);
    if (json_is_integer(id) && json_integer_value(id) >= 0 && json_integer_value(id) < c->t->n_vocab) {
        c->t->bos_id = (int32_t)json_integer_value(id);
        c->template_bos = true;
    } else {
        snprintf(c->bos_name, sizeof c->bos_name, "%s", name);
        c->template_bos = true;
    }
}

/* ---- model --------------------------------------------------------------------------------- */

static rotq_status read_vocab_size(ctx *c, json_t *model, json_t *added, int32_t *n) {
    int64_t max_id = -1;
    const char *key;
    json_t *v;
    json_t *vocab = json_object_get(model, "vocab");
    if (!json_is_object(vocab)) return rotq_fail(ROTQ_ERR_FORMAT, "%s: model.vocab is not an object", c->where);
    json_object_foreach(vocab, key, v) {
        if (!json_is_integer(v) || json_integer_value(v) < 0)
            return rotq_fail(ROTQ_ERR_FORMAT, "%s: vocab entry '%s' has no valid id", c->where, key);
        if (json_integer_value(v) > max_id) max_id = json_integer_value(v);
    }
    size_t i;
    json_array_foreach(added, i, v) {
        json_t *id = json_object_get(v, "id");
        if (!json_is_integer(id) || json_integer_value(id) < 0)
            return rotq_fail(ROTQ_ERR_FORMAT, "%s: added_tokens[%zu] has no valid id", c->where, i);
        if (json_integer_value(id) > max_id) max_id = json_integer_value(id);
    }
    if (max_id < 0 || max_id >= 16 * 1024 * 1024)
        return rotq_fail(ROTQ_ERR_FORMAT, "%s: vocabulary ids up to %lld", c->where, (long long)max_id);
    *n = (int32_t)(max_id + 1);
    return ROTQ_OK;
}

static rotq_status read_merges(ctx *c, json_t *merges) {
    rotq_tokenizer *t = c->t;
    size_t i;
    json_t *m;
    char *tmp = NULL;
    size_t tmp_cap = 0;
    rotq_status s = ROTQ_OK;
    json_array_foreach(merges, i, m) {
        const char *a, *b;
        size_t al, bl;
        if (json_is_string(m)) { /* "left right" */
            const char *str = json_string_value(m);
            const char *sp = strchr(str, ' ');
            if (!sp || strchr(sp + 1, ' ')) {
                s = rotq_fail(ROTQ_ERR_FORMAT, "%s: merge %zu '%s' is not two tokens", c->where, i, str);
                break;
            }
            a = str;
            al = (size_t)(sp - str);
            b = sp + 1;
            bl = strlen(b);
        } else if (json_is_array(m) && json_array_size(m) == 2 && json_is_string(json_array_get(m, 0)) &&
                   json_is_string(json_array_get(m, 1))) {
            a = json_string_value(json_array_get(m, 0));
            al = json_string_length(json_array_get(m, 0));
            b = json_string_value(json_array_get(m, 1));
            bl = json_string_length(json_array_get(m, 1));
        } else {
            s = rotq_fail(ROTQ_ERR_FORMAT, "%s: merge %zu is neither \"a b\" nor [a, b]", c->where, i);
            break;
        }
        if (al + bl > tmp_cap) {
            tmp_cap = 2 * (al + bl) + 16;
            char *p = realloc(tmp, tmp_cap);
            if (!p) {
                s = rotq_fail(ROTQ_ERR_NOMEM, "%s: out of memory", c->where);
                break;
            }
            tmp = p;
        }
        memcpy(tmp, a, al);
        memcpy(tmp + al, b, bl);
        int32_t ia = rotq_tok_lookup(t, a, al), ib = rotq_tok_lookup(t, b, bl), im = rotq_tok_lookup(t, tmp, al + bl);
        if (ia < 0 || ib < 0 || im < 0) {
            s = rotq_fail(ROTQ_ERR_FORMAT, "%s: merge %zu ('%.*s' + '%.*s') uses a token missing from the vocabulary",
                          c->where, i, (int)al, a, (int)bl, b);
            break;
        }
        if (i > INT32_MAX) break;
        s = rotq_tok_pairmap_put(&t->merges, ia, ib, (int32_t)i, im);
        if (s != ROTQ_OK) break;
    }
    free(tmp);
    return s;
}

/* "bos_token": "<s>" or {"content": "<s>", ...} in tokenizer_config.json. */
static int32_t config_token(const rotq_tokenizer *t, json_t *cfg, const char *key) {
    json_t *v = json_object_get(cfg, key);
    if (json_is_object(v)) v = json_object_get(v, "content");
    if (!json_is_string(v)) return -1;
    return rotq_tok_lookup(t, json_string_value(v), json_string_length(v));
}

static rotq_status load(ctx *c, json_t *root, json_t *cfg) {
    rotq_tokenizer *t = c->t;
    json_t *model = json_object_get(root, "model");
    if (!json_is_object(model)) return rotq_fail(ROTQ_ERR_FORMAT, "%s: no \"model\" object", c->where);
    const char *type = str_or(model, "type", json_object_get(model, "merges") ? "BPE" : "");
    if (strcmp(type, "BPE") != 0)
        return rotq_fail(ROTQ_ERR_UNSUPPORTED, "%s: model type '%s' is not supported (BPE only)", c->where, type);
    const char *pre = str_or(model, "continuing_subword_prefix", NULL), *suf = str_or(model, "end_of_word_suffix", NULL);
    if ((pre && *pre) || (suf && *suf)) /* "" is no prefix (Qwen2's tokenizer.json writes that) */
        return rotq_fail(ROTQ_ERR_UNSUPPORTED, "%s: BPE with a subword prefix/suffix is not supported", c->where);
    json_t *added = json_object_get(root, "added_tokens");
    int32_t n = 0;
    ROTQ_TRY(read_vocab_size(c, model, added, &n));
    ROTQ_TRY(rotq_tok_alloc_vocab(t, n));
    const char *key;
    json_t *v;
    json_object_foreach(json_object_get(model, "vocab"), key, v)
        ROTQ_TRY(rotq_tok_set_piece(t, (int32_t)json_integer_value(v), key, strlen(key)));
    size_t i;
    json_array_foreach(added, i, v) {
        json_t *content = json_object_get(v, "content");
        if (!json_is_string(content)) return rotq_fail(ROTQ_ERR_FORMAT, "%s: added_tokens[%zu] has no content", c->where, i);
        rotq_tok_added a = {
            .content = (char *)json_string_value(content), .len = json_string_length(content),
            .id = (int32_t)json_integer_value(json_object_get(v, "id")),
            .special = bool_or(v, "special", false), .lstrip = bool_or(v, "lstrip", false),
            .rstrip = bool_or(v, "rstrip", false), .single_word = bool_or(v, "single_word", false),
            .normalized = bool_or(v, "normalized", !bool_or(v, "special", false)),
        };
        ROTQ_TRY(rotq_tok_add_added(t, &a));
    }
    t->model = ROTQ_TOK_BPE;
    t->byte_fallback = bool_or(model, "byte_fallback", false);
    t->ignore_merges = bool_or(model, "ignore_merges", false);
    t->fuse_unk = bool_or(model, "fuse_unk", false);
    ROTQ_TRY(read_normalizer(c, json_object_get(root, "normalizer"), 0));
    ROTQ_TRY(read_pretokenizer(c, json_object_get(root, "pre_tokenizer"), 0));
    t->byte_level = c->saw_bytelevel;
    read_decoder(c, json_object_get(root, "decoder"), 0);
    read_post_processor(c, json_object_get(root, "post_processor"), 0);
    if (t->byte_level) t->spm_escape_spaces = false;
    snprintf(t->kind_name, sizeof t->kind_name, "%s", t->byte_level ? "byte-level BPE" : "BPE");

    ROTQ_TRY(rotq_tok_finish(t, c->where));
    const char *unk = str_or(model, "unk_token", NULL);
    if (unk) {
        t->unk_id = rotq_tok_lookup(t, unk, strlen(unk));
        if (t->unk_id >= 0) t->attr[t->unk_id] |= ROTQ_TOKA_UNKNOWN;
    }
    ROTQ_TRY(read_merges(c, json_object_get(model, "merges")));

    if (c->bos_name[0]) t->bos_id = rotq_tok_lookup(t, c->bos_name, strlen(c->bos_name));
    t->add_bos = c->template_bos && t->bos_id >= 0;
    if (cfg) {
        int32_t bos = config_token(t, cfg, "bos_token"), eos = config_token(t, cfg, "eos_token");
        if (bos >= 0) t->bos_id = bos;
        if (eos >= 0) t->eos_id = eos;
        json_t *ab = json_object_get(cfg, "add_bos_token");
        if (json_is_boolean(ab)) t->add_bos = json_is_true(ab);
    }
    return ROTQ_OK;
}

rotq_status rotq_tok_from_json(const char *json, size_t len, const char *config_json, size_t config_len,
                               const char *where, rotq_tokenizer **out) {
    *out = NULL;
    json_error_t err;
    json_t *root = json_loadb(json, len, 0, &err);
    if (!root) return rotq_fail(ROTQ_ERR_FORMAT, "%s: not valid JSON (line %d: %s)", where, err.line, err.text);
    json_t *cfg = NULL;
    if (config_json && config_len) {
        cfg = json_loadb(config_json, config_len, 0, &err);
        if (!cfg) {
            json_decref(root);
            return rotq_fail(ROTQ_ERR_FORMAT, "%s: tokenizer_config.json is not valid JSON (line %d: %s)", where,
                             err.line, err.text);
        }
    }
    rotq_tokenizer *t = rotq_tok_new();
    if (!t) {
        json_decref(root);
        json_decref(cfg);
        return rotq_fail(ROTQ_ERR_NOMEM, "%s: out of memory", where);
    }
    ctx c = {.where = where, .t = t};
    rotq_status s = json_is_object(root) ? load(&c, root, cfg)
                                         : rotq_fail(ROTQ_ERR_FORMAT, "%s: the top level is not an object", where);
    json_decref(root);
    json_decref(cfg);
    if (s != ROTQ_OK) {
        rotq_tokenizer_free(t);
        return s;
    }
    *out = t;
    return ROTQ_OK;
}
