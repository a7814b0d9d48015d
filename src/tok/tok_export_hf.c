/* Hugging Face tokenizer files (tokenizer.json, tokenizer_config.json, special_tokens_map.json) from a
 * loaded tokenizer (tok_export.h). */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tok/tok_export.h"

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
    rotq_status s = rotq_xtok_load(&x, m, dir);
    if (s == ROTQ_ERR_NOT_FOUND && !x.t) return ROTQ_OK; /* no tokenizer to carry */
    if (s == ROTQ_OK && x.spm && !x.score) s = rotq_fail(ROTQ_ERR_UNSUPPORTED, "%s: an SPM vocabulary without scores", dir);
    if (s == ROTQ_OK) s = x.spm ? rotq_xtok_merges_from_scores(&x) : rotq_xtok_merges_from_pairs(&x);
    json_t *files[3] = {NULL, NULL, NULL};
    static const char *const names[3] = {"tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"};
    jb b = {.ok = true, .bad_id = -1};
    if (s == ROTQ_OK) {
        files[0] = build_tokenizer_json(&b, &x);
        files[1] = build_tokenizer_config(&b, &x, m);
        files[2] = build_special_tokens_map(&b, &x);
        if (!b.ok)
            s = b.bad_id >= 0 ? rotq_fail(ROTQ_ERR_UNSUPPORTED, "token %d is not valid UTF-8, which tokenizer.json cannot hold", b.bad_id)
                              : rotq_xtok_oom(&x);
    }
    for (int k = 0; k < 3 && s == ROTQ_OK; k++)
        if (!rotq_model_blob(m, names[k])) s = write_json_file(dir, names[k], files[k]);
    for (int k = 0; k < 3; k++) json_decref(files[k]);
    rotq_xtok_free(&x);
    if (s == ROTQ_OK || s == ROTQ_ERR_NOMEM || s == ROTQ_ERR_IO) return s;
    rotq_log(ROTQ_LOG_WARN, "%s: no tokenizer.json written (%s)\n", dir, rotq_last_error());
    rotq_clear_error();
    return ROTQ_OK;
}
