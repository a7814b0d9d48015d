/* llama.cpp's tokenizer.* GGUF keys from a loaded tokenizer (tok_export.h). */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tok/tok_export.h"

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
        if (!(arr[i] = rotq_xtok_dup(x->text[i], x->len[i]))) l->oom = true;
        tokens->arr_str_len[i] = x->len[i];
    }
    if (x->spm) {
        if (!x->score) ROTQ_TRY(rotq_xtok_scores_from_merges(x));
        rotq_meta *scores = meta_array(l, "tokenizer.ggml.scores", ROTQ_META_F32, (uint64_t)x->n, 4);
        if (scores) memcpy(scores->arr, x->score, (size_t)x->n * 4);
    }
    rotq_meta *types = meta_array(l, "tokenizer.ggml.token_type", ROTQ_META_I32, (uint64_t)x->n, 4);
    if (types) memcpy(types->arr, x->type, (size_t)x->n * 4);
    if (!x->spm) {
        ROTQ_TRY(rotq_xtok_merges_from_pairs(x));
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
    return l->oom ? rotq_xtok_oom(x) : ROTQ_OK;
}

rotq_status rotq_tok_export_gguf_meta(const rotq_model *m, const char *where, rotq_meta **out, int64_t *n_out) {
    *out = NULL;
    *n_out = 0;
    xtok x;
    rotq_status s = rotq_xtok_load(&x, m, where);
    if (s != ROTQ_OK && !x.t) { /* none, or unusable: rotq_save_check warned before the work */
        rotq_xtok_free(&x);
        return ROTQ_OK;
    }
    meta_list l = {0};
    if (s == ROTQ_OK) s = build_gguf_meta(&x, &l);
    rotq_xtok_free(&x);
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

