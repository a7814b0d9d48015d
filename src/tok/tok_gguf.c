/* Loader for GGUF tokenizer metadata (tokenizer.ggml.*), with llama.cpp's meaning of each key. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/model.h"
#include "tok/tok.h"

/* GGUF token types (llama.cpp's llama_token_type). */
enum { TT_NORMAL = 1, TT_UNKNOWN = 2, TT_CONTROL = 3, TT_USER_DEFINED = 4, TT_UNUSED = 5, TT_BYTE = 6 };

static const rotq_meta *meta_array(const rotq_model *m, const char *key, bool strings, uint64_t n, rotq_status *s) {
    const rotq_meta *kv = rotq_model_meta(m, key);
    *s = ROTQ_OK;
    if (!kv) return NULL;
    if (kv->type != ROTQ_META_ARRAY || (strings != (kv->arr_type == ROTQ_META_STRING)) || !kv->arr ||
        (n && kv->n != n)) {
        *s = rotq_fail(ROTQ_ERR_FORMAT, "%s: GGUF key %s is not an array of %llu %s", m->source_path, key,
                       (unsigned long long)n, strings ? "strings" : "numbers");
        return NULL;
    }
    return kv;
}

static rotq_status load_merges(const rotq_model *m, rotq_tokenizer *t, const rotq_meta *merges) {
    char **str = merges->arr;
    rotq_tok_buf tmp = {0};
    rotq_status s = ROTQ_OK;
    for (uint64_t i = 0; i < merges->n && s == ROTQ_OK; i++) {
        const char *a = str[i];
        size_t len = merges->arr_str_len ? merges->arr_str_len[i] : strlen(a);
        const char *sp = memchr(a, ' ', len);
        if (!sp || memchr(sp + 1, ' ', len - (size_t)(sp + 1 - a))) {
            s = rotq_fail(ROTQ_ERR_FORMAT, "%s: tokenizer.ggml.merges[%llu] '%.*s' is not two tokens", m->source_path,
                          (unsigned long long)i, (int)(len > 100 ? 100 : len), a);
            break;
        }
        size_t al = (size_t)(sp - a), bl = len - al - 1;
        tmp.n = 0;
        s = rotq_tok_buf_put(&tmp, a, al);
        if (s == ROTQ_OK) s = rotq_tok_buf_put(&tmp, sp + 1, bl);
        if (s != ROTQ_OK) break;
        int32_t ia = rotq_tok_lookup(t, a, al), ib = rotq_tok_lookup(t, sp + 1, bl), im = rotq_tok_lookup(t, tmp.p, tmp.n);
        if (ia < 0 || ib < 0 || im < 0) {
            s = rotq_fail(ROTQ_ERR_FORMAT, "%s: tokenizer.ggml.merges[%llu] '%.*s' uses a token missing from the vocabulary",
                          m->source_path, (unsigned long long)i, (int)(len > 100 ? 100 : len), a);
            break;
        }
        s = rotq_tok_pairmap_put(&t->merges, ia, ib, (int32_t)i, im);
    }
    rotq_tok_buf_free(&tmp);
    return s;
}

/* Token texts llama.cpp treats as control tokens whatever type the GGUF gives them (end-of-turn,
 * end-of-generation and fill-in-the-middle markers); it then cuts them out of raw text too. */
static bool llamacpp_control_text(const char *p, size_t n) {
    static const char *const names[] = {
        "<|eot_id|>", "<|im_end|>", "<|end|>", "<end_of_turn>", "<|endoftext|>", "<|end_of_text|>", "<EOT>",
        "_<EOT>", "[EOT]", "[EOS]", "<\xEF\xBD\x9C" "end\xE2\x96\x81" "of\xE2\x96\x81" "sentence\xEF\xBD\x9C>",
        "<end_of_utterance>", "<|eom_id|>", "<|return|>", "<|call|>", "<|flush|>", "<|calls|>", "</s>", "<eos>",
        "<turn|>", "<|tool_response>", "[e~[",
        "<|fim_prefix|>", "<fim-prefix>", "<fim_prefix>", "<PRE>", "\xE2\x96\x81<PRE>", "<|code_prefix|>", "<|prefix|>",
        "<|fim_suffix|>", "<fim-suffix>", "<fim_suffix>", "<SUF>", "\xE2\x96\x81<SUF>", "<|code_suffix|>", "<|suffix|>",
        "<|fim_middle|>", "<fim-middle>", "<fim_middle>", "<MID>", "\xE2\x96\x81<MID>", "<|code_middle|>", "<|middle|>",
        "<|fim_pad|>", "<fim-pad>", "<fim_pad>", "<PAD>", "[PAD]",
        "<|fim_repo|>", "<|repo_name|>", "<fim-repo>", "<REPO>", "<reponame>", "<|file_sep|>",
        "<\xEF\xBD\x9C" "fim\xE2\x96\x81" "begin\xEF\xBD\x9C>", "<\xEF\xBD\x9C" "fim\xE2\x96\x81" "hole\xEF\xBD\x9C>",
        "<\xEF\xBD\x9C" "fim\xE2\x96\x81" "end\xEF\xBD\x9C>",
    };
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        if (strlen(names[i]) == n && memcmp(names[i], p, n) == 0) return true;
    return false;
}

/* The pre-tokenizer names for which llama.cpp takes a word whole when it is a vocabulary entry. */
static bool pre_ignores_merges(const char *pre) {
    static const char *const names[] = {"llama-bpe", "llama3", "llama-v3", "falcon3", "falcon-h1", "pixtral"};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        if (strcmp(pre, names[i]) == 0) return true;
    return false;
}

static rotq_status load(const rotq_model *m, rotq_tokenizer *t) {
    const char *where = m->source_path;
    const rotq_meta *model = rotq_model_meta(m, "tokenizer.ggml.model");
    if (!model || model->type != ROTQ_META_STRING || !model->str)
        return rotq_fail(ROTQ_ERR_FORMAT, "%s: tokenizer.ggml.model is not a string", where);
    bool bpe = strcmp(model->str, "gpt2") == 0;
    if (!bpe && strcmp(model->str, "llama") != 0)
        return rotq_fail(ROTQ_ERR_UNSUPPORTED, "%s: tokenizer model '%s' is not supported (gpt2 and llama are)", where,
                         model->str);
    rotq_status s;
    const rotq_meta *tokens = meta_array(m, "tokenizer.ggml.tokens", true, 0, &s);
    ROTQ_TRY(s);
    if (!tokens) return rotq_fail(ROTQ_ERR_FORMAT, "%s: no tokenizer.ggml.tokens", where);
    if (tokens->n == 0 || tokens->n > 16 * 1024 * 1024)
        return rotq_fail(ROTQ_ERR_FORMAT, "%s: tokenizer.ggml.tokens has %llu entries", where, (unsigned long long)tokens->n);
    const rotq_meta *scores = meta_array(m, "tokenizer.ggml.scores", false, tokens->n, &s);
    ROTQ_TRY(s);
    const rotq_meta *types = meta_array(m, "tokenizer.ggml.token_type", false, tokens->n, &s);
    ROTQ_TRY(s);
    const rotq_meta *merges = meta_array(m, "tokenizer.ggml.merges", true, 0, &s);
    ROTQ_TRY(s);
    if (bpe && !merges) return rotq_fail(ROTQ_ERR_FORMAT, "%s: a gpt2 tokenizer without tokenizer.ggml.merges", where);
    if (!bpe && !scores) return rotq_fail(ROTQ_ERR_FORMAT, "%s: a llama tokenizer without tokenizer.ggml.scores", where);

    int32_t n = (int32_t)tokens->n;
    ROTQ_TRY(rotq_tok_alloc_vocab(t, n));
    char **str = tokens->arr;
    for (int32_t i = 0; i < n; i++) {
        size_t len = tokens->arr_str_len ? tokens->arr_str_len[i] : strlen(str[i]);
        ROTQ_TRY(rotq_tok_set_piece(t, i, str[i], len));
    }
    if (scores) {
        if (!(t->score = malloc((size_t)n * sizeof *t->score))) return rotq_fail(ROTQ_ERR_NOMEM, "%s: out of memory", where);
        for (int32_t i = 0; i < n; i++) {
            double v;
            if (!rotq_meta_arr_num(scores, (uint64_t)i, &v)) return rotq_fail(ROTQ_ERR_FORMAT, "%s: tokenizer.ggml.scores is not numeric", where);
            t->score[i] = (float)v;
        }
    }
    /* control, user-defined and unknown tokens are cut out of the raw text (llama.cpp, parse_special) */
    for (int32_t i = 0; types && i < n; i++) {
        double v;
        if (!rotq_meta_arr_num(types, (uint64_t)i, &v)) return rotq_fail(ROTQ_ERR_FORMAT, "%s: tokenizer.ggml.token_type is not numeric", where);
        int tt = (int)v;
        if (tt == TT_NORMAL && llamacpp_control_text(t->piece[i], t->piece_len[i])) tt = TT_CONTROL;
        if (tt == TT_CONTROL || tt == TT_USER_DEFINED || tt == TT_UNKNOWN) {
            rotq_tok_added a = {.content = t->piece[i], .len = t->piece_len[i], .id = i,
                                .special = tt != TT_USER_DEFINED, .normalized = false};
            ROTQ_TRY(rotq_tok_add_added(t, &a));
        }
        if (tt == TT_UNUSED) t->attr[i] |= ROTQ_TOKA_SPECIAL;
    }

    int64_t v;
    if (rotq_meta_int(rotq_model_meta(m, "tokenizer.ggml.bos_token_id"), &v) && v >= 0 && v < n) t->bos_id = (int32_t)v;
    if (rotq_meta_int(rotq_model_meta(m, "tokenizer.ggml.eos_token_id"), &v) && v >= 0 && v < n) t->eos_id = (int32_t)v;
    if (rotq_meta_int(rotq_model_meta(m, "tokenizer.ggml.unknown_token_id"), &v) && v >= 0 && v < n) t->unk_id = (int32_t)v;
    t->add_bos = rotq_meta_bool(rotq_model_meta(m, "tokenizer.ggml.add_bos_token"), !bpe);

    if (bpe) {
        const rotq_meta *pre = rotq_model_meta(m, "tokenizer.ggml.pre");
        const char *pre_name = pre && pre->type == ROTQ_META_STRING && pre->str ? pre->str : "default";
        const char *const *regexes = rotq_tok_pre_regexes(pre_name);
        if (!regexes)
            return rotq_fail(ROTQ_ERR_UNSUPPORTED, "%s: pre-tokenizer '%s' (tokenizer.ggml.pre) is not known", where, pre_name);
        int32_t count = 0;
        while (regexes[count]) count++;
        if (!(t->pres = calloc((size_t)count, sizeof *t->pres))) return rotq_fail(ROTQ_ERR_NOMEM, "%s: out of memory", where);
        for (int32_t k = 0; k < count; k++) {
            t->pres[k].kind = ROTQ_PRE_SPLIT;
            t->pres[k].behavior = ROTQ_SPLIT_ISOLATED;
            t->n_pres = k + 1;
            ROTQ_TRY(rotq_tok_regex_compile(regexes[k], strlen(regexes[k]), &t->pres[k].re));
        }
        t->model = ROTQ_TOK_BPE;
        t->byte_level = true;
        t->ignore_merges = pre_ignores_merges(pre_name);
        t->unk_id = -1; /* byte-level covers every byte; llama.cpp emits no <unk> */
        snprintf(t->kind_name, sizeof t->kind_name, "byte-level BPE (%.14s)", pre_name);
        ROTQ_TRY(rotq_tok_finish(t, where));
        ROTQ_TRY(load_merges(m, t, merges));
    } else {
        bool prefix = rotq_meta_bool(rotq_model_meta(m, "tokenizer.ggml.add_space_prefix"), true);
        t->model = ROTQ_TOK_SPM;
        t->spm_escape_spaces = true;
        t->decode_bytes = true;
        t->spm_prefix = prefix ? ROTQ_SPM_PREFIX_AFTER_SPECIAL : ROTQ_SPM_PREFIX_NONE;
        t->decode_strip_space = prefix;
        t->strip_after_special = true;
        if (t->unk_id < 0) t->unk_id = 0;
        snprintf(t->kind_name, sizeof t->kind_name, "SentencePiece BPE");
        ROTQ_TRY(rotq_tok_finish(t, where));
    }
    return ROTQ_OK;
}

rotq_status rotq_tok_from_gguf(const rotq_model *m, rotq_tokenizer **out) {
    *out = NULL;
    rotq_tokenizer *t = rotq_tok_new();
    if (!t) return rotq_fail(ROTQ_ERR_NOMEM, "%s: out of memory", m->source_path);
    rotq_status s = load(m, t);
    if (s != ROTQ_OK) {
        rotq_tokenizer_free(t);
        return s;
    }
    *out = t;
    return ROTQ_OK;
}
