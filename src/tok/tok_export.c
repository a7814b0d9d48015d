/* Carrying a tokenizer across formats on save.
 *
 * A model read from GGUF (tokenizer.ggml.*) or llama2.c (tokenizer.bin) gets Hugging Face tokenizer
 * files; one read from an HF folder (tokenizer.json) or llama2.c gets llama.cpp's tokenizer.* keys.
 * Both directions start from rotq's own loaded tokenizer, so what is written tokenizes as the source
 * did; the rest (token types, pre-tokenizer name, special ids) comes from the source files.
 */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/model.h"
#include "tok/tok.h"

/* GGUF token types (llama.cpp's llama_token_type). */
enum { TT_NORMAL = 1, TT_UNKNOWN = 2, TT_CONTROL = 3, TT_USER_DEFINED = 4, TT_UNUSED = 5, TT_BYTE = 6 };

static const char META_SPACE[] = "\xE2\x96\x81"; /* U+2581 ▁ */

typedef enum { SRC_JSON, SRC_GGUF, SRC_LLAMA2C } src_kind;

/* Everything either target needs, gathered once from the model. */
typedef struct xtok {
    rotq_tokenizer *t;
    src_kind src;
    const char *where;
    bool spm;                 /* GGUF "llama" (scores) rather than "gpt2" (merges) */
    int32_t n;                /* tokens written: the tokenizer's, padded to the model's vocabulary */
    char **text;              /* token text as both targets store it (▁ for spaces in SPM vocabularies) */
    uint32_t *len;
    int32_t *type;            /* TT_* */
    float *score;             /* SPM merge priority per token */
    int32_t *added;           /* per id: index into t->added, or -1 */
    int32_t (*merges)[2];     /* rank order */
    int64_t n_merges;
    int32_t bos, eos, unk, pad;
    bool add_bos, add_eos, add_space_prefix, ignore_merges;
    char pre[32];             /* llama.cpp pre-tokenizer name (gpt2) */
    char *chat_template;
} xtok;

static void xtok_free(xtok *x) {
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

static char *dup_bytes(const void *p, size_t n) {
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
    return json_is_string(v) ? dup_bytes(json_string_value(v), json_string_length(v)) : NULL;
}

static rotq_status oom(const xtok *x) { return rotq_fail(ROTQ_ERR_NOMEM, "%s: out of memory exporting the tokenizer", x->where); }

/* Token text as the targets store it. llama2.c pieces hold real spaces and wrap BOS/EOS in newlines. */
static rotq_status set_texts(xtok *x, const rotq_model *m) {
    rotq_tokenizer *t = x->t;
    x->n = t->n_vocab;
    if (m->hp.vocab > x->n && m->hp.vocab <= 16 * 1024 * 1024) x->n = (int32_t)m->hp.vocab; /* embedding rows */
    else if (m->hp.vocab > 0 && m->hp.vocab < x->n)
        rotq_log(ROTQ_LOG_WARN, "%s: the tokenizer has %d tokens, the model's vocabulary %lld rows\n", x->where,
                x->n, (long long)m->hp.vocab);
    if (!(x->text = calloc((size_t)x->n, sizeof *x->text)) || !(x->len = calloc((size_t)x->n, sizeof *x->len)))
        return oom(x);
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
        if (s == ROTQ_OK && !(x->text[id] = dup_bytes(b.p ? (const char *)b.p : "", b.n))) s = oom(x);
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
        return oom(x);
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
static rotq_status merges_from_pairs(xtok *x) {
    const rotq_tok_pairmap *pm = &x->t->merges;
    ranked *r = malloc((pm->count ? pm->count : 1) * sizeof *r);
    if (!r) return oom(x);
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
        return oom(x);
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
static rotq_status scores_from_merges(xtok *x) {
    if (!(x->score = malloc((size_t)x->n * sizeof *x->score))) return oom(x);
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
static rotq_status merges_from_scores(xtok *x) {
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
                    s = oom(x);
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
        if (!(x->merges = malloc((n ? n : 1) * sizeof *x->merges))) s = oom(x);
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
    if (!x->chat_template && jinja) x->chat_template = dup_bytes(jinja->data, jinja->size);
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
    if (tmpl && tmpl->type == ROTQ_META_STRING && tmpl->str && !(x->chat_template = strdup(tmpl->str))) return oom(x);
    return ROTQ_OK;
}

/* Loads the model's tokenizer and everything around it. ROTQ_ERR_NOT_FOUND: the model carries none. */
static rotq_status xtok_load(xtok *x, const rotq_model *m, const char *where) {
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
        if (!(x->score = malloc((size_t)x->n * sizeof *x->score))) return oom(x);
        for (int32_t id = 0; id < x->n; id++) x->score[id] = id < t->n_vocab ? t->score[id] : -1000.0f;
    }
    return ROTQ_OK;
}

/* ---- GGUF metadata --------------------------------------------------------------------------- */

typedef struct meta_list {
    rotq_meta *kv;
    int64_t n, cap;
    bool oom;
} meta_list;

static rotq_meta *meta_add(meta_list *l, const char *key, rotq_meta_type type) {
    if (l->oom) return NULL;
    if (l->n == l->cap) {
        int64_t nc = l->cap ? 2 * l->cap : 16;
        rotq_meta *p = realloc(l->kv, (size_t)nc * sizeof *p);
        if (!p) {
            l->oom = true;
            return NULL;
        }
        l->kv = p;
        l->cap = nc;
    }
    rotq_meta *kv = &l->kv[l->n];
    memset(kv, 0, sizeof *kv);
    kv->type = type;
    kv->n = 1;
    if (!(kv->key = strdup(key))) {
        l->oom = true;
        return NULL;
    }
    l->n++;
    return kv;
}

static void meta_str(meta_list *l, const char *key, const char *v) {
    rotq_meta *kv = meta_add(l, key, ROTQ_META_STRING);
    if (kv && !(kv->str = strdup(v))) l->oom = true;
}

static void meta_u32(meta_list *l, const char *key, int32_t v) {
    if (v < 0) return;
    rotq_meta *kv = meta_add(l, key, ROTQ_META_U32);
    if (kv) kv->v.u = (uint64_t)v;
}

static void meta_flag(meta_list *l, const char *key, bool v) {
    rotq_meta *kv = meta_add(l, key, ROTQ_META_BOOL);
    if (kv) kv->v.b = v;
}

/* An array of n elements of elem_size bytes (arr_type), or of n strings when arr_type is STRING. */
static rotq_meta *meta_array(meta_list *l, const char *key, rotq_meta_type arr_type, uint64_t n, size_t elem_size) {
    rotq_meta *kv = meta_add(l, key, ROTQ_META_ARRAY);
    if (!kv) return NULL;
    kv->arr_type = arr_type;
    kv->n = n;
    if (arr_type == ROTQ_META_STRING) {
        kv->arr = calloc(n ? n : 1, sizeof(char *));
        kv->arr_str_len = calloc(n ? n : 1, sizeof *kv->arr_str_len);
        if (!kv->arr || !kv->arr_str_len) l->oom = true;
    } else if (!(kv->arr = malloc(n ? n * elem_size : 1))) {
        l->oom = true;
    }
    if (l->oom) {
        kv->n = 0; /* nothing to free element-wise */
        return NULL;
    }
    return kv;
}

static void meta_list_free(meta_list *l) {
    for (int64_t i = 0; i < l->n; i++) rotq_meta_free(&l->kv[i]);
    free(l->kv);
    memset(l, 0, sizeof *l);
}

static rotq_status build_gguf_meta(xtok *x, meta_list *l) {
    meta_str(l, "tokenizer.ggml.model", x->spm ? "llama" : "gpt2");
    if (!x->spm) meta_str(l, "tokenizer.ggml.pre", x->pre);
    rotq_meta *tokens = meta_array(l, "tokenizer.ggml.tokens", ROTQ_META_STRING, (uint64_t)x->n, 0);
    for (int32_t i = 0; tokens && i < x->n; i++) {
        char **arr = tokens->arr;
        if (!(arr[i] = dup_bytes(x->text[i], x->len[i]))) l->oom = true;
        tokens->arr_str_len[i] = x->len[i];
    }
    if (x->spm) {
        if (!x->score) ROTQ_TRY(scores_from_merges(x));
        rotq_meta *scores = meta_array(l, "tokenizer.ggml.scores", ROTQ_META_F32, (uint64_t)x->n, 4);
        if (scores) memcpy(scores->arr, x->score, (size_t)x->n * 4);
    }
    rotq_meta *types = meta_array(l, "tokenizer.ggml.token_type", ROTQ_META_I32, (uint64_t)x->n, 4);
    if (types) memcpy(types->arr, x->type, (size_t)x->n * 4);
    if (!x->spm) {
        ROTQ_TRY(merges_from_pairs(x));
        rotq_meta *merges = meta_array(l, "tokenizer.ggml.merges", ROTQ_META_STRING, (uint64_t)x->n_merges, 0);
        for (int64_t i = 0; merges && i < x->n_merges && !l->oom; i++) {
            int32_t a = x->merges[i][0], b = x->merges[i][1];
            size_t n = x->len[a] + 1 + x->len[b];
            char *s = malloc(n + 1);
            if (!s) {
                l->oom = true;
                break;
            }
            memcpy(s, x->text[a], x->len[a]);
            s[x->len[a]] = ' ';
            memcpy(s + x->len[a] + 1, x->text[b], x->len[b]);
            s[n] = 0;
            ((char **)merges->arr)[i] = s;
            merges->arr_str_len[i] = n;
        }
    }
    meta_u32(l, "tokenizer.ggml.bos_token_id", x->bos);
    meta_u32(l, "tokenizer.ggml.eos_token_id", x->eos);
    meta_u32(l, "tokenizer.ggml.unknown_token_id", x->unk);
    meta_u32(l, "tokenizer.ggml.padding_token_id", x->pad);
    meta_flag(l, "tokenizer.ggml.add_bos_token", x->add_bos);
    meta_flag(l, "tokenizer.ggml.add_eos_token", x->add_eos);
    if (x->spm) meta_flag(l, "tokenizer.ggml.add_space_prefix", x->add_space_prefix);
    if (x->chat_template) meta_str(l, "tokenizer.chat_template", x->chat_template);
    return l->oom ? oom(x) : ROTQ_OK;
}

rotq_status rotq_tok_export_gguf_meta(const rotq_model *m, const char *where, rotq_meta **out, int64_t *n_out) {
    *out = NULL;
    *n_out = 0;
    xtok x;
    rotq_status s = xtok_load(&x, m, where);
    if (s == ROTQ_ERR_NOT_FOUND && !x.t) {
        rotq_log(ROTQ_LOG_WARN, "%s: the model carries no tokenizer; the GGUF has no tokenizer metadata\n", where);
        return ROTQ_OK;
    }
    meta_list l = {0};
    if (s == ROTQ_OK) s = build_gguf_meta(&x, &l);
    xtok_free(&x);
    if (s != ROTQ_OK) {
        meta_list_free(&l);
        if (s == ROTQ_ERR_NOMEM) return s;
        rotq_log(ROTQ_LOG_WARN, "%s: tokenizer not written (%s)\n", where, rotq_last_error());
        rotq_clear_error();
        return ROTQ_OK;
    }
    *out = l.kv;
    *n_out = l.n;
    return ROTQ_OK;
}

void rotq_tok_export_meta_free(rotq_meta *kv, int64_t n) {
    for (int64_t i = 0; i < n; i++) rotq_meta_free(&kv[i]);
    free(kv);
}

/* ---- Hugging Face files ---------------------------------------------------------------------- */

/* Builders that record the first failure (allocation or text that is not UTF-8) and go on. */
typedef struct jb {
    bool ok;
    int32_t bad_id;           /* a token whose text JSON cannot hold, or -1 */
} jb;

static json_t *jset(jb *b, json_t *o, const char *key, json_t *v) {
    if (!v || !o || json_object_set_new(o, key, v) != 0) b->ok = false;
    return v;
}

static json_t *jpush(jb *b, json_t *a, json_t *v) {
    if (!v || !a || json_array_append_new(a, v) != 0) b->ok = false;
    return v;
}

static json_t *jtok(jb *b, const xtok *x, int32_t id) {
    json_t *s = json_stringn(x->text[id], x->len[id]);
    if (!s && b->bad_id < 0) b->bad_id = id;
    if (!s) b->ok = false;
    return s;
}

static json_t *jpattern(jb *b, const char *kind, const char *pattern) {
    json_t *o = json_object();
    jset(b, o, kind, json_string(pattern));
    return o;
}

static json_t *jtype(jb *b, const char *type) {
    json_t *o = json_object();
    jset(b, o, "type", json_string(type));
    return o;
}

static bool is_added(const xtok *x, int32_t id) {
    return x->added[id] >= 0 || x->type[id] == TT_CONTROL || x->type[id] == TT_UNKNOWN || x->type[id] == TT_USER_DEFINED;
}

static json_t *added_token(jb *b, const xtok *x, int32_t id, bool with_id) {
    const rotq_tok_added *a = x->added[id] >= 0 ? &x->t->added[x->added[id]] : NULL;
    bool special = a ? a->special : x->type[id] != TT_USER_DEFINED;
    json_t *o = json_object();
    if (with_id) jset(b, o, "id", json_integer(id));
    jset(b, o, "content", jtok(b, x, id));
    jset(b, o, "single_word", json_boolean(a && a->single_word));
    jset(b, o, "lstrip", json_boolean(a && a->lstrip));
    jset(b, o, "rstrip", json_boolean(a && a->rstrip));
    jset(b, o, "normalized", json_boolean(a && a->normalized));
    jset(b, o, "special", json_boolean(special));
    return o;
}

/* BOS/EOS added by a TemplateProcessing post-processor, as HF's Llama/Llama-3 files do. */
static json_t *template_processor(jb *b, const xtok *x) {
    bool bos = x->add_bos && x->bos >= 0, eos = x->add_eos && x->eos >= 0;
    json_t *o = jtype(b, "TemplateProcessing");
    json_t *special = jset(b, o, "special_tokens", json_object());
    const char *seqs[2] = {"A", "B"};
    for (int pair = 0; pair < 2; pair++) {
        json_t *list = jset(b, o, pair ? "pair" : "single", json_array());
        for (int k = 0; k <= pair; k++) {
            for (int part = 0; part < 3; part++) {
                if ((part == 0 && !bos) || (part == 2 && !eos)) continue;
                json_t *item = json_object(), *inner = json_object();
                if (part == 1) jset(b, inner, "id", json_string(seqs[k]));
                else jset(b, inner, "id", jtok(b, x, part == 0 ? x->bos : x->eos));
                jset(b, inner, "type_id", json_integer(k));
                jset(b, item, part == 1 ? "Sequence" : "SpecialToken", inner);
                jpush(b, list, item);
            }
        }
    }
    for (int part = 0; part < 2; part++) {
        int32_t id = part == 0 ? x->bos : x->eos;
        if ((part == 0 && !bos) || (part == 1 && !eos)) continue;
        json_t *e = json_object();
        jset(b, e, "id", jtok(b, x, id));
        json_t *ids = jset(b, e, "ids", json_array());
        jpush(b, ids, json_integer(id));
        json_t *toks = jset(b, e, "tokens", json_array());
        jpush(b, toks, jtok(b, x, id));
        if (b->ok) jset(b, special, x->text[id], e);
        else json_decref(e);
    }
    return o;
}

static json_t *build_tokenizer_json(jb *b, xtok *x) {
    json_t *root = json_object();
    jset(b, root, "version", json_string("1.0"));
    jset(b, root, "truncation", json_null());
    jset(b, root, "padding", json_null());
    json_t *added = jset(b, root, "added_tokens", json_array());
    for (int32_t id = 0; id < x->n && b->ok; id++)
        if (is_added(x, id)) jpush(b, added, added_token(b, x, id, true));

    if (x->spm) {
        /* Llama-2's layout: "▁" prefix and spaces as "▁" in the normalizer, the model on whole text */
        json_t *norm = jset(b, root, "normalizer", jtype(b, "Sequence"));
        json_t *list = jset(b, norm, "normalizers", json_array());
        if (x->add_space_prefix) {
            json_t *p = jpush(b, list, jtype(b, "Prepend"));
            jset(b, p, "prepend", json_string(META_SPACE));
        }
        json_t *r = jpush(b, list, jtype(b, "Replace"));
        jset(b, r, "pattern", jpattern(b, "String", " "));
        jset(b, r, "content", json_string(META_SPACE));
        jset(b, root, "pre_tokenizer", json_null());
    } else {
        jset(b, root, "normalizer", json_null());
        json_t *pre = jset(b, root, "pre_tokenizer", jtype(b, "Sequence"));
        json_t *list = jset(b, pre, "pretokenizers", json_array());
        const char *const *re = rotq_tok_pre_regexes(x->pre);
        for (int k = 0; re && re[k]; k++) {
            json_t *sp = jpush(b, list, jtype(b, "Split"));
            jset(b, sp, "pattern", jpattern(b, "Regex", re[k]));
            jset(b, sp, "behavior", json_string("Isolated"));
            jset(b, sp, "invert", json_false());
        }
        json_t *bl = jpush(b, list, jtype(b, "ByteLevel"));
        jset(b, bl, "add_prefix_space", json_false());
        jset(b, bl, "trim_offsets", json_true());
        jset(b, bl, "use_regex", json_false());
    }

    if ((x->add_bos && x->bos >= 0) || (x->add_eos && x->eos >= 0)) {
        jset(b, root, "post_processor", template_processor(b, x));
    } else if (!x->spm) {
        json_t *pp = jset(b, root, "post_processor", jtype(b, "ByteLevel"));
        jset(b, pp, "add_prefix_space", json_true());
        jset(b, pp, "trim_offsets", json_false());
        jset(b, pp, "use_regex", json_true());
    } else {
        jset(b, root, "post_processor", json_null());
    }

    if (x->spm) {
        json_t *dec = jset(b, root, "decoder", jtype(b, "Sequence"));
        json_t *list = jset(b, dec, "decoders", json_array());
        json_t *r = jpush(b, list, jtype(b, "Replace"));
        jset(b, r, "pattern", jpattern(b, "String", META_SPACE));
        jset(b, r, "content", json_string(" "));
        jpush(b, list, jtype(b, "ByteFallback"));
        jpush(b, list, jtype(b, "Fuse"));
        if (x->add_space_prefix) {
            json_t *st = jpush(b, list, jtype(b, "Strip"));
            jset(b, st, "content", json_string(" "));
            jset(b, st, "start", json_integer(1));
            jset(b, st, "stop", json_integer(0));
        }
    } else {
        json_t *dec = jset(b, root, "decoder", jtype(b, "ByteLevel"));
        jset(b, dec, "add_prefix_space", json_true());
        jset(b, dec, "trim_offsets", json_true());
        jset(b, dec, "use_regex", json_true());
    }

    json_t *model = jset(b, root, "model", jtype(b, "BPE"));
    jset(b, model, "dropout", json_null());
    jset(b, model, "unk_token", x->spm && x->unk >= 0 ? jtok(b, x, x->unk) : json_null());
    jset(b, model, "continuing_subword_prefix", json_null());
    jset(b, model, "end_of_word_suffix", json_null());
    jset(b, model, "fuse_unk", json_boolean(x->spm));
    jset(b, model, "byte_fallback", json_boolean(x->spm));
    jset(b, model, "ignore_merges", json_boolean(!x->spm && x->ignore_merges));
    json_t *vocab = jset(b, model, "vocab", json_object());
    for (int32_t id = 0; id < x->n && b->ok; id++) {
        if (json_object_setn_new(vocab, x->text[id], x->len[id], json_integer(id)) != 0) {
            b->ok = false;
            if (b->bad_id < 0) b->bad_id = id;
        }
    }
    json_t *merges = jset(b, model, "merges", json_array());
    for (int64_t i = 0; i < x->n_merges && b->ok; i++) {
        json_t *pair = jpush(b, merges, json_array());
        jpush(b, pair, jtok(b, x, x->merges[i][0]));
        jpush(b, pair, jtok(b, x, x->merges[i][1]));
    }
    return root;
}

static json_t *special_or_null(jb *b, const xtok *x, int32_t id) { return id >= 0 ? jtok(b, x, id) : json_null(); }

static json_t *build_tokenizer_config(jb *b, const xtok *x, const rotq_model *m) {
    json_t *c = json_object();
    jset(b, c, "add_bos_token", json_boolean(x->add_bos));
    jset(b, c, "add_eos_token", json_boolean(x->add_eos));
    json_t *dec = jset(b, c, "added_tokens_decoder", json_object());
    for (int32_t id = 0; id < x->n && b->ok; id++) {
        if (!is_added(x, id)) continue;
        char key[16];
        snprintf(key, sizeof key, "%d", id);
        jset(b, dec, key, added_token(b, x, id, false));
    }
    jset(b, c, "bos_token", special_or_null(b, x, x->bos));
    jset(b, c, "eos_token", special_or_null(b, x, x->eos));
    jset(b, c, "unk_token", special_or_null(b, x, x->unk));
    jset(b, c, "pad_token", special_or_null(b, x, x->pad));
    if (x->chat_template) jset(b, c, "chat_template", json_string(x->chat_template));
    jset(b, c, "clean_up_tokenization_spaces", json_false());
    if (m->hp.max_pos > 0) jset(b, c, "model_max_length", json_integer(m->hp.max_pos));
    if (x->spm) jset(b, c, "legacy", json_true()); /* "▁" prepended to every text piece, as written */
    jset(b, c, "tokenizer_class", json_string(x->spm ? "LlamaTokenizerFast" : "PreTrainedTokenizerFast"));
    return c;
}

static json_t *build_special_tokens_map(jb *b, const xtok *x) {
    json_t *c = json_object();
    const char *keys[4] = {"bos_token", "eos_token", "unk_token", "pad_token"};
    int32_t ids[4] = {x->bos, x->eos, x->unk, x->pad};
    for (int k = 0; k < 4; k++) {
        if (ids[k] < 0) continue;
        json_t *o = jset(b, c, keys[k], json_object());
        jset(b, o, "content", jtok(b, x, ids[k]));
        jset(b, o, "lstrip", json_false());
        jset(b, o, "normalized", json_false());
        jset(b, o, "rstrip", json_false());
        jset(b, o, "single_word", json_false());
    }
    return c;
}

static rotq_status write_json_file(const char *dir, const char *name, json_t *j) {
    char path[4200];
    if (snprintf(path, sizeof path, "%s/%s", dir, name) >= (int)sizeof path)
        return rotq_fail(ROTQ_ERR_ARG, "%s: path too long", dir);
    char *text = json_dumps(j, JSON_INDENT(2));
    if (!text) return rotq_fail(ROTQ_ERR_NOMEM, "%s: out of memory writing %s", dir, name);
    size_t n = strlen(text);
    text[n] = '\n'; /* the terminating NUL becomes a final newline */
    rotq_status s = rotq_write_file_atomic(path, text, n + 1);
    free(text);
    return s;
}

rotq_status rotq_tok_export_hf(const rotq_model *m, const char *dir) {
    if (rotq_model_blob(m, "tokenizer.json")) return ROTQ_OK; /* carried as it came */
    xtok x;
    rotq_status s = xtok_load(&x, m, dir);
    if (s == ROTQ_ERR_NOT_FOUND && !x.t) return ROTQ_OK; /* no tokenizer to carry */
    if (s == ROTQ_OK && x.spm && !x.score) s = rotq_fail(ROTQ_ERR_UNSUPPORTED, "%s: an SPM vocabulary without scores", dir);
    if (s == ROTQ_OK) s = x.spm ? merges_from_scores(&x) : merges_from_pairs(&x);
    json_t *files[3] = {NULL, NULL, NULL};
    static const char *const names[3] = {"tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"};
    jb b = {.ok = true, .bad_id = -1};
    if (s == ROTQ_OK) {
        files[0] = build_tokenizer_json(&b, &x);
        files[1] = build_tokenizer_config(&b, &x, m);
        files[2] = build_special_tokens_map(&b, &x);
        if (!b.ok)
            s = b.bad_id >= 0 ? rotq_fail(ROTQ_ERR_UNSUPPORTED, "token %d is not valid UTF-8, which tokenizer.json cannot hold", b.bad_id)
                              : oom(&x);
    }
    for (int k = 0; k < 3 && s == ROTQ_OK; k++)
        if (!rotq_model_blob(m, names[k])) s = write_json_file(dir, names[k], files[k]);
    for (int k = 0; k < 3; k++) json_decref(files[k]);
    xtok_free(&x);
    if (s == ROTQ_OK || s == ROTQ_ERR_NOMEM || s == ROTQ_ERR_IO) return s;
    rotq_log(ROTQ_LOG_WARN, "%s: no tokenizer.json written (%s)\n", dir, rotq_last_error());
    rotq_clear_error();
    return ROTQ_OK;
}
