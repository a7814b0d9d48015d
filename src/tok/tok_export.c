/* Carrying a tokenizer across formats on save: gathering what both targets need (tok_export.h). */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tok/tok_export.h"

void rotq_xtok_free(xtok *x) {
    for (int32_t i = 0; x->text && i < x->n; i++) free(x->text[i]);
    free(x->text);
    free(x->len);
    free(x->type);
    free(x->score);
    free(x->added);
    free(x->merges);
    free(x->chat_template);
    rotq_tokenizer_free(x->t);
    memset(x, 0, sizeof *x);
}

/* ---- reading the source ---------------------------------------------------------------------- */

static int32_t meta_id(const rotq_model *m, const char *key, int32_t n) {
    int64_t v;
    return rotq_meta_int(rotq_model_meta(m, key), &v) && v >= 0 && v < n ? (int32_t)v : -1;
}

/* "bos_token": "<s>" or {"content": "<s>", ...} in tokenizer_config.json, as an id. */
static int32_t config_token(const xtok *x, json_t *cfg, const char *key) {
    json_t *v = json_object_get(cfg, key);
    if (json_is_object(v)) v = json_object_get(v, "content");
    if (!json_is_string(v)) return -1;
    return rotq_tok_lookup(x->t, json_string_value(v), json_string_length(v));
}

char *rotq_xtok_dup(const void *p, size_t n) {
    char *s = malloc(n + 1);
    if (s) {
        if (n) memcpy(s, p, n);
        s[n] = 0;
    }
    return s;
}

/* The regexes a tokenizer.json pre-tokenizer applies, in llama.cpp's terms (each splits off its
 * matches, "Isolated"). False when a step has no such equivalent. */
static bool json_pre_regexes(json_t *o, const char **list, int *n, int max, int depth) {
    if (!o || json_is_null(o)) return true;
    if (depth > 8) return false;
    const char *type = json_string_value(json_object_get(o, "type"));
    if (!type) return false;
    if (strcmp(type, "Sequence") == 0) {
        size_t i;
        json_t *v;
        json_array_foreach(json_object_get(o, "pretokenizers"), i, v)
            if (!json_pre_regexes(v, list, n, max, depth + 1)) return false;
        return true;
    }
    if (*n >= max) return false;
    if (strcmp(type, "Split") == 0) {
        const char *re = json_string_value(json_object_get(json_object_get(o, "pattern"), "Regex"));
        const char *behavior = json_string_value(json_object_get(o, "behavior"));
        if (!re || !behavior || strcmp(behavior, "Isolated") != 0 || json_is_true(json_object_get(o, "invert")))
            return false;
        list[(*n)++] = re;
        return true;
    }
    if (strcmp(type, "Digits") == 0) {
        list[(*n)++] = json_is_true(json_object_get(o, "individual_digits")) ? "\\p{N}" : "\\p{N}+";
        return true;
    }
    if (strcmp(type, "ByteLevel") == 0) {
        if (json_is_true(json_object_get(o, "add_prefix_space"))) return false; /* llama.cpp adds no space */
        json_t *use_regex = json_object_get(o, "use_regex");
        if (!use_regex || json_is_true(use_regex)) list[(*n)++] = ROTQ_TOK_GPT2_PATTERN;
        return true;
    }
    return false;
}

/* Picks the llama.cpp pre-tokenizer name whose regexes are exactly the tokenizer.json's, preferring one
 * whose merge rule (whole-word vocabulary hits) agrees too. */
static void pick_pre_name(xtok *x, json_t *root) {
    static const struct { const char *name; bool ignore_merges; } names[] = {
        {"gpt-2", false}, {"smollm", false}, {"llama-bpe", true}, {"dbrx", false}, {"qwen2", false},
        {"falcon", false}, {"default", false},
    };
    const char *list[16];
    int n = 0;
    bool ok = json_pre_regexes(json_object_get(root, "pre_tokenizer"), list, &n, 16, 0);
    int best = -1;
    for (size_t k = 0; ok && k < sizeof names / sizeof names[0]; k++) {
        const char *const *re = rotq_tok_pre_regexes(names[k].name);
        int c = 0;
        while (re && re[c] && c < n && strcmp(re[c], list[c]) == 0) c++;
        if (!re || re[c] || c != n) continue;
        if (names[k].ignore_merges == x->ignore_merges) {
            best = (int)k;
            break;
        }
        if (best < 0) best = (int)k;
    }
    if (best < 0) {
        snprintf(x->pre, sizeof x->pre, "gpt-2");
        rotq_log(ROTQ_LOG_WARN, "%s: the tokenizer.json pre-tokenizer matches no llama.cpp pre-tokenizer; "
                        "writing tokenizer.ggml.pre \"gpt-2\" (llama.cpp may split text differently)\n", x->where);
        return;
    }
    snprintf(x->pre, sizeof x->pre, "%s", names[best].name);
    if (names[best].ignore_merges != x->ignore_merges)
        rotq_log(ROTQ_LOG_WARN, "%s: tokenizer.json has ignore_merges %s, llama.cpp's \"%s\" does not\n",
                x->where, x->ignore_merges ? "on" : "off", x->pre);
    json_t *norm = json_object_get(root, "normalizer");
    if (norm && !json_is_null(norm))
        rotq_log(ROTQ_LOG_WARN, "%s: the tokenizer.json normalizer (%s) has no GGUF equivalent; dropped\n",
                x->where, json_string_value(json_object_get(norm, "type")) ? json_string_value(json_object_get(norm, "type")) : "?");
}

/* llama.cpp's converter marks added tokens that look special as control even when not flagged. */
static bool looks_special(const char *p, size_t n) {
    static const char *const names[] = {"<pad>", "<mask>", "<cls>", "<sep>", "<eos>", "<bos>", "<unk>", "<s>", "</s>"};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        if (strlen(names[i]) == n && memcmp(names[i], p, n) == 0) return true;
    return n >= 4 && memcmp(p, "<|", 2) == 0 && memcmp(p + n - 2, "|>", 2) == 0;
}

/* tokenizer_config.json's chat_template: a string, or a list of {name, template} (take "default"). */
static char *config_chat_template(json_t *cfg) {
    json_t *v = json_object_get(cfg, "chat_template");
    if (json_is_array(v)) {
        size_t i;
        json_t *e, *pick = NULL;
        json_array_foreach(v, i, e) {
            const char *name = json_string_value(json_object_get(e, "name"));
            if (!pick || (name && strcmp(name, "default") == 0)) pick = json_object_get(e, "template");
        }
        v = pick;
    }
    return json_is_string(v) ? rotq_xtok_dup(json_string_value(v), json_string_length(v)) : NULL;
}

rotq_status rotq_xtok_oom(const xtok *x) { return rotq_fail(ROTQ_ERR_NOMEM, "%s: out of memory exporting the tokenizer", x->where); }

/* Token text as the targets store it. llama2.c pieces hold real spaces and wrap BOS/EOS in newlines. */
static rotq_status set_texts(xtok *x, const rotq_model *m) {
    rotq_tokenizer *t = x->t;
    x->n = t->n_vocab;
    if (m->hp.vocab > x->n && m->hp.vocab <= 16 * 1024 * 1024) x->n = (int32_t)m->hp.vocab; /* embedding rows */
    else if (m->hp.vocab > 0 && m->hp.vocab < x->n)
        rotq_log(ROTQ_LOG_WARN, "%s: the tokenizer has %d tokens, the model's vocabulary %lld rows\n", x->where,
                x->n, (long long)m->hp.vocab);
    if (!(x->text = calloc((size_t)x->n, sizeof *x->text)) || !(x->len = calloc((size_t)x->n, sizeof *x->len)))
        return rotq_xtok_oom(x);
    rotq_tok_buf b = {0};
    for (int32_t id = 0; id < x->n; id++) {
        b.n = 0;
        const char *p = id < t->n_vocab ? t->piece[id] : NULL;
        size_t n = p ? t->piece_len[id] : 0;
        rotq_status s = ROTQ_OK;
        if (!p) {
            char pad[32];
            int k = snprintf(pad, sizeof pad, "[PAD%d]", id);
            s = rotq_tok_buf_put(&b, pad, (size_t)k);
        } else if (x->src == SRC_LLAMA2C && (id == t->bos_id || id == t->eos_id || id == t->unk_id)) {
            while (n && *p == '\n') p++, n--;
            while (n && p[n - 1] == '\n') n--;
            s = rotq_tok_buf_put(&b, p, n);
        } else if (x->src == SRC_LLAMA2C) {
            for (size_t i = 0; i < n && s == ROTQ_OK; i++)
                s = p[i] == ' ' ? rotq_tok_buf_put(&b, META_SPACE, 3) : rotq_tok_buf_put(&b, p + i, 1);
        } else {
            s = rotq_tok_buf_put(&b, p, n);
        }
        if (s == ROTQ_OK && !(x->text[id] = rotq_xtok_dup(b.p ? (const char *)b.p : "", b.n))) s = rotq_xtok_oom(x);
        if (s != ROTQ_OK) {
            rotq_tok_buf_free(&b);
            return s;
        }
        x->len[id] = (uint32_t)b.n;
    }
    rotq_tok_buf_free(&b);
    return ROTQ_OK;
}

static rotq_status set_types(xtok *x, const rotq_model *m) {
    rotq_tokenizer *t = x->t;
    if (!(x->type = malloc((size_t)x->n * sizeof *x->type)) || !(x->added = malloc((size_t)x->n * sizeof *x->added)))
        return rotq_xtok_oom(x);
    for (int32_t id = 0; id < x->n; id++) x->added[id] = -1;
    for (int32_t i = 0; i < t->n_added; i++) x->added[t->added[i].id] = i;
    const rotq_meta *tt = x->src == SRC_GGUF ? rotq_model_meta(m, "tokenizer.ggml.token_type") : NULL;
    bool from_meta = tt && tt->type == ROTQ_META_ARRAY && tt->arr && tt->n == (uint64_t)t->n_vocab;
    for (int32_t id = 0; id < x->n; id++) {
        int64_t v;
        uint8_t attr = id < t->n_vocab ? t->attr[id] : 0;
        int32_t type;
        if (id >= t->n_vocab || !t->piece[id]) type = TT_UNUSED;
        else if (from_meta && rotq_meta_arr_int(tt, (uint64_t)id, &v) && v >= TT_NORMAL && v <= TT_BYTE) type = (int32_t)v;
        else if (attr & ROTQ_TOKA_ADDED) {
            const rotq_tok_added *a = &t->added[x->added[id]];
            if (!a->special && !looks_special(x->text[id], x->len[id])) type = TT_USER_DEFINED;
            else type = x->spm && id == x->unk ? TT_UNKNOWN : TT_CONTROL;
        } else if (x->spm && id == x->unk) type = TT_UNKNOWN;
        else if ((attr & ROTQ_TOKA_BYTE) && x->spm) type = TT_BYTE;
        else if (x->src == SRC_LLAMA2C && (id == x->bos || id == x->eos)) type = TT_CONTROL;
        else type = TT_NORMAL;
        x->type[id] = type;
    }
    return ROTQ_OK;
}

typedef struct ranked { int32_t rank, l, r; } ranked;

static int ranked_cmp(const void *a, const void *b) {
    const ranked *p = a, *q = b;
    return (p->rank > q->rank) - (p->rank < q->rank);
}

/* The tokenizer's BPE merges in rank order (the pair map keeps each pair's first rank). */
rotq_status rotq_xtok_merges_from_pairs(xtok *x) {
    const rotq_tok_pairmap *pm = &x->t->merges;
    ranked *r = malloc((pm->count ? pm->count : 1) * sizeof *r);
    if (!r) return rotq_xtok_oom(x);
    int64_t n = 0;
    for (uint64_t k = 0; k < pm->cap; k++) {
        if (!pm->keys[k]) continue;
        uint64_t key = pm->keys[k] - 1;
        r[n++] = (ranked){pm->rank[k], (int32_t)(key >> 32), (int32_t)(uint32_t)key};
    }
    qsort(r, (size_t)n, sizeof *r, ranked_cmp);
    free(x->merges);
    if (!(x->merges = malloc((size_t)(n ? n : 1) * sizeof *x->merges))) {
        free(r);
        return rotq_xtok_oom(x);
    }
    for (int64_t i = 0; i < n; i++) {
        x->merges[i][0] = r[i].l;
        x->merges[i][1] = r[i].r;
    }
    x->n_merges = n;
    free(r);
    return ROTQ_OK;
}

/* SPM scores for a vocabulary that only has BPE merges: a merged piece's score is minus the rank of the
 * first merge producing it, so llama.cpp's highest-score-first order is the merges' order. */
rotq_status rotq_xtok_scores_from_merges(xtok *x) {
    if (!(x->score = malloc((size_t)x->n * sizeof *x->score))) return rotq_xtok_oom(x);
    const rotq_tok_pairmap *pm = &x->t->merges;
    for (int32_t id = 0; id < x->n; id++) x->score[id] = -1e9f;
    for (uint64_t k = 0; k < pm->cap; k++)
        if (pm->keys[k] && pm->merged[k] >= 0 && pm->merged[k] < x->n && -(float)pm->rank[k] > x->score[pm->merged[k]])
            x->score[pm->merged[k]] = -(float)pm->rank[k];
    return ROTQ_OK;
}

typedef struct split { int32_t l, r, merged; float sm, sl, sr; } split;

static int split_cmp(const void *a, const void *b) {
    const split *p = a, *q = b;
    if (p->sm != q->sm) return p->sm > q->sm ? -1 : 1;
    if (p->merged != q->merged) return p->merged < q->merged ? -1 : 1;
    if (p->sl != q->sl) return p->sl > q->sl ? -1 : 1;
    if (p->sr != q->sr) return p->sr > q->sr ? -1 : 1;
    return (p->l > q->l) - (p->l < q->l);
}

/* BPE merges equivalent to SentencePiece's score order (as HF's LlamaConverter derives them): every
 * split of a normal piece into two normal pieces, ordered by the merged piece's score. */
rotq_status rotq_xtok_merges_from_scores(xtok *x) {
    rotq_tok_strmap map = {0};
    rotq_status s = ROTQ_OK;
    split *v = NULL;
    size_t n = 0, cap = 0;
    for (int32_t id = 0; id < x->n && s == ROTQ_OK; id++)
        if (x->type[id] == TT_NORMAL) s = rotq_tok_strmap_put(&map, x->text[id], x->len[id], id);
    for (int32_t id = 0; id < x->n && s == ROTQ_OK; id++) {
        const uint8_t *p = (const uint8_t *)x->text[id];
        size_t len = x->len[id];
        if (x->type[id] != TT_NORMAL || rotq_tok_strmap_get(&map, p, len) != id) continue;
        for (size_t k = rotq_tok_utf8_len(p, len); k < len; k += rotq_tok_utf8_len(p + k, len - k)) {
            int64_t l = rotq_tok_strmap_get(&map, p, k), r = rotq_tok_strmap_get(&map, p + k, len - k);
            if (l < 0 || r < 0) continue;
            if (n == cap) {
                size_t nc = cap ? 2 * cap : 4096;
                split *q = realloc(v, nc * sizeof *q);
                if (!q) {
                    s = rotq_xtok_oom(x);
                    break;
                }
                v = q;
                cap = nc;
            }
            v[n++] = (split){(int32_t)l, (int32_t)r, id, x->score[id], x->score[l], x->score[r]};
        }
    }
    rotq_tok_strmap_free(&map);
    if (s == ROTQ_OK) {
        if (n) qsort(v, n, sizeof *v, split_cmp);
        free(x->merges);
        if (!(x->merges = malloc((n ? n : 1) * sizeof *x->merges))) s = rotq_xtok_oom(x);
        for (size_t i = 0; s == ROTQ_OK && i < n; i++) {
            x->merges[i][0] = v[i].l;
            x->merges[i][1] = v[i].r;
        }
        x->n_merges = s == ROTQ_OK ? (int64_t)n : 0;
    }
    free(v);
    return s;
}

/* True when the SPM-style tokenizer.json adds the "▁" dummy prefix (Prepend normalizer or Metaspace). */
static bool json_adds_space_prefix(const rotq_tokenizer *t) {
    for (int32_t i = 0; i < t->n_norms; i++)
        if (t->norms[i].kind == ROTQ_NORM_PREPEND && t->norms[i].a_len == 3 && memcmp(t->norms[i].a, META_SPACE, 3) == 0)
            return true;
    for (int32_t i = 0; i < t->n_pres; i++)
        if (t->pres[i].kind == ROTQ_PRE_METASPACE && t->pres[i].prepend != ROTQ_PREPEND_NEVER) return true;
    return false;
}

static rotq_status read_json_source(xtok *x, const rotq_model *m) {
    const rotq_blob *json = rotq_model_blob(m, "tokenizer.json"), *cfgb = rotq_model_blob(m, "tokenizer_config.json");
    json_t *root = json_loadb((const char *)json->data, json->size, 0, NULL);
    json_t *cfg = cfgb ? json_loadb((const char *)cfgb->data, cfgb->size, 0, NULL) : NULL;
    rotq_tokenizer *t = x->t;
    x->unk = t->unk_id;
    int32_t id = config_token(x, cfg, "unk_token");
    if (id >= 0) x->unk = id;
    x->pad = config_token(x, cfg, "pad_token");
    if (x->pad < 0 && m->hf_config) {
        json_t *p = json_object_get(m->hf_config, "pad_token_id");
        if (json_is_integer(p) && json_integer_value(p) >= 0 && json_integer_value(p) < t->n_vocab)
            x->pad = (int32_t)json_integer_value(p);
    }
    x->add_eos = json_is_true(json_object_get(cfg, "add_eos_token"));
    x->chat_template = config_chat_template(cfg);
    const rotq_blob *jinja = rotq_model_blob(m, "chat_template.jinja");
    if (!x->chat_template && jinja) x->chat_template = rotq_xtok_dup(jinja->data, jinja->size);
    rotq_status s = ROTQ_OK;
    if (!x->spm) {
        pick_pre_name(x, root);
    } else {
        x->add_space_prefix = json_adds_space_prefix(t);
        for (int32_t i = 0; i < t->n_pres; i++)
            if (t->pres[i].kind != ROTQ_PRE_METASPACE || t->pres[i].split) {
                rotq_log(ROTQ_LOG_WARN, "%s: the tokenizer.json pre-tokenizer splits words, which llama.cpp's "
                                "\"llama\" vocabulary does not; dropped\n", x->where);
                break;
            }
        if (!t->byte_fallback)
            rotq_log(ROTQ_LOG_WARN, "%s: a BPE tokenizer.json without byte_fallback written as llama.cpp's "
                            "\"llama\" (SentencePiece) vocabulary; unknown characters will differ\n", x->where);
    }
    json_decref(root);
    json_decref(cfg);
    return s;
}

static rotq_status read_gguf_source(xtok *x, const rotq_model *m) {
    int32_t n = x->t->n_vocab;
    x->unk = meta_id(m, "tokenizer.ggml.unknown_token_id", n);
    if (x->unk < 0 && x->spm) x->unk = x->t->unk_id;
    x->pad = meta_id(m, "tokenizer.ggml.padding_token_id", n);
    x->add_eos = rotq_meta_bool(rotq_model_meta(m, "tokenizer.ggml.add_eos_token"), false);
    x->add_space_prefix = rotq_meta_bool(rotq_model_meta(m, "tokenizer.ggml.add_space_prefix"), true);
    const rotq_meta *pre = rotq_model_meta(m, "tokenizer.ggml.pre");
    snprintf(x->pre, sizeof x->pre, "%s", pre && pre->type == ROTQ_META_STRING && pre->str ? pre->str : "default");
    const rotq_meta *tmpl = rotq_model_meta(m, "tokenizer.chat_template");
    if (tmpl && tmpl->type == ROTQ_META_STRING && tmpl->str && !(x->chat_template = strdup(tmpl->str))) return rotq_xtok_oom(x);
    return ROTQ_OK;
}

/* Loads the model's tokenizer and everything around it. ROTQ_ERR_NOT_FOUND: the model carries none. */
rotq_status rotq_xtok_load(xtok *x, const rotq_model *m, const char *where) {
    memset(x, 0, sizeof *x);
    x->where = where;
    x->bos = x->eos = x->unk = x->pad = -1;
    if (rotq_model_blob(m, "tokenizer.json")) x->src = SRC_JSON;
    else if (rotq_model_meta(m, "tokenizer.ggml.model")) x->src = SRC_GGUF;
    else if (rotq_model_blob(m, "tokenizer.bin")) x->src = SRC_LLAMA2C;
    else return ROTQ_ERR_NOT_FOUND;
    ROTQ_TRY(rotq_tokenizer_from_model(m, &x->t));
    rotq_tokenizer *t = x->t;
    x->spm = !t->byte_level;
    x->bos = t->bos_id;
    x->eos = t->eos_id;
    x->add_bos = t->add_bos;
    x->ignore_merges = t->ignore_merges;
    if (x->src == SRC_JSON) ROTQ_TRY(read_json_source(x, m));
    else if (x->src == SRC_GGUF) ROTQ_TRY(read_gguf_source(x, m));
    else {
        x->unk = t->unk_id;
        x->add_space_prefix = true;
    }
    ROTQ_TRY(set_texts(x, m));
    ROTQ_TRY(set_types(x, m));
    if (x->spm && t->score) {
        if (!(x->score = malloc((size_t)x->n * sizeof *x->score))) return rotq_xtok_oom(x);
        for (int32_t id = 0; id < x->n; id++) x->score[id] = id < t->n_vocab ? t->score[id] : -1000.0f;
    }
    return ROTQ_OK;
}
