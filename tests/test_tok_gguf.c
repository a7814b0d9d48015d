/* GGUF tokenizer metadata (tokenizer.ggml.*) read into tokenizers: small vocabularies built here,
 * ids worked out by hand from llama.cpp's rules, and malformed metadata that must be refused. */
#include <stdlib.h>
#include <string.h>

#include "core/model.h"
#include "testutil.h"
#include "tok/tok.h"

static rotq_meta *meta_add(rotq_model *m, const char *key, rotq_meta_type type) {
    m->meta = realloc(m->meta, (size_t)(m->n_meta + 1) * sizeof *m->meta);
    rotq_meta *kv = &m->meta[m->n_meta++];
    memset(kv, 0, sizeof *kv);
    kv->key = strdup(key);
    kv->type = type;
    kv->n = 1;
    return kv;
}

static void meta_str(rotq_model *m, const char *key, const char *v) { meta_add(m, key, ROTQ_META_STRING)->str = strdup(v); }
static void meta_u32(rotq_model *m, const char *key, uint32_t v) { meta_add(m, key, ROTQ_META_U32)->v.u = v; }

static void meta_strs(rotq_model *m, const char *key, const char *const *v, uint64_t n) {
    rotq_meta *kv = meta_add(m, key, ROTQ_META_ARRAY);
    kv->arr_type = ROTQ_META_STRING;
    kv->n = n;
    char **s = calloc(n, sizeof *s);
    kv->arr_str_len = calloc(n, sizeof *kv->arr_str_len);
    for (uint64_t i = 0; i < n; i++) {
        s[i] = strdup(v[i]);
        kv->arr_str_len[i] = strlen(v[i]);
    }
    kv->arr = s;
}

static void meta_nums(rotq_model *m, const char *key, rotq_meta_type t, const void *v, uint64_t n) {
    rotq_meta *kv = meta_add(m, key, ROTQ_META_ARRAY);
    kv->arr_type = t;
    kv->n = n;
    kv->arr = malloc(n * 4);
    memcpy(kv->arr, v, n * 4);
}

/* ---- gpt2 / byte-level ---------------------------------------------------------------------- */

static char *byte_char(unsigned b) { /* GPT-2's printable stand-in for each byte, as UTF-8 */
    unsigned next = 256, cp = 0;
    for (unsigned x = 0; x < 256; x++) {
        bool keep = (x >= 33 && x <= 126) || (x >= 161 && x <= 172) || (x >= 174 && x <= 255);
        if (x == b) { cp = keep ? x : next; break; }
        if (!keep) next++;
    }
    char *s = calloc(4, 1);
    if (cp < 0x80) s[0] = (char)cp;
    else { s[0] = (char)(0xC0 | (cp >> 6)); s[1] = (char)(0x80 | (cp & 63)); }
    return s;
}

typedef struct { const char *model, *pre; const char *merge_extra; bool bad_types; bool numeric_tokens; } gpt2_opts;

/* ids 0..255 the bytes, 256 Ġt, 257 he, 258 Ġthe, 259 <|endoftext|> (control) */
static rotq_model *gpt2_model(gpt2_opts o) {
    rotq_model *m = rotq_model_new();
    snprintf(m->source_path, sizeof m->source_path, "test.gguf");
    const char *tok[260];
    char *own[256];
    for (unsigned b = 0; b < 256; b++) tok[b] = own[b] = byte_char(b);
    tok[256] = "\xC4\xA0t";
    tok[257] = "he";
    tok[258] = "\xC4\xA0the";
    tok[259] = "<|endoftext|>";
    int32_t types[260];
    for (int i = 0; i < 260; i++) types[i] = 1;
    types[259] = 3;
    const char *merges[4] = {"\xC4\xA0 t", "h e", "\xC4\xA0t he", o.merge_extra};
    meta_str(m, "tokenizer.ggml.model", o.model ? o.model : "gpt2");
    if (o.pre) meta_str(m, "tokenizer.ggml.pre", o.pre);
    if (o.numeric_tokens) meta_nums(m, "tokenizer.ggml.tokens", ROTQ_META_I32, types, 260);
    else meta_strs(m, "tokenizer.ggml.tokens", tok, 260);
    meta_nums(m, "tokenizer.ggml.token_type", ROTQ_META_I32, types, o.bad_types ? 259 : 260);
    meta_strs(m, "tokenizer.ggml.merges", merges, o.merge_extra ? 4 : 3);
    meta_u32(m, "tokenizer.ggml.bos_token_id", 259);
    meta_u32(m, "tokenizer.ggml.eos_token_id", 259);
    for (unsigned b = 0; b < 256; b++) free(own[b]);
    return m;
}

static void expect(const rotq_tokenizer *t, const char *text, bool bos, const int32_t *want, int64_t n_want) {
    int32_t *ids;
    int64_t n;
    if (rotq_tokenizer_encode(t, text, strlen(text), bos, &ids, &n) != ROTQ_OK) {
        CHECK(false, "encode '%s': %s", text, rotq_last_error());
        return;
    }
    bool same = n == n_want && (n == 0 || memcmp(ids, want, (size_t)n * sizeof *ids) == 0);
    CHECK(same, "encode '%s': %lld ids [%d %d %d %d], want %lld [%d %d %d %d]", text, (long long)n, n > 0 ? ids[0] : -1,
          n > 1 ? ids[1] : -1, n > 2 ? ids[2] : -1, n > 3 ? ids[3] : -1, (long long)n_want, n_want > 0 ? want[0] : -1,
          n_want > 1 ? want[1] : -1, n_want > 2 ? want[2] : -1, n_want > 3 ? want[3] : -1);
    free(ids);
}

static void expect_refused(gpt2_opts o, rotq_status want, const char *what) {
    rotq_model *m = gpt2_model(o);
    rotq_tokenizer *t = NULL;
    rotq_status s = rotq_tokenizer_from_model(m, &t);
    CHECK(s == want && t == NULL, "%s: status %s (%s), expected %s", what, rotq_status_name(s), rotq_last_error(),
          rotq_status_name(want));
    rotq_tokenizer_free(t);
    rotq_model_free(m);
}

static void test_gpt2(void) {
    rotq_model *m = gpt2_model((gpt2_opts){.pre = "gpt2"});
    rotq_tokenizer *t = NULL;
    rotq_status s = rotq_tokenizer_from_model(m, &t);
    CHECK(s == ROTQ_OK, "gpt2 vocabulary loads: %s", rotq_last_error());
    if (t) {
        /* " the" merges whole; the control token is cut out; "the" without the space: t + he */
        expect(t, " the<|endoftext|>the", false, (int32_t[]){258, 259, 't', 257}, 4);
        expect(t, "", true, (int32_t[]){259}, 1);
        CHECK(rotq_tokenizer_bos(t) == 259 && rotq_tokenizer_eos(t) == 259, "bos/eos from metadata");
        CHECK(!rotq_tokenizer_add_bos_default(t), "gpt2 vocabularies add no BOS unless the metadata says so");
        char *text;
        size_t len;
        if (rotq_tokenizer_decode(t, (int32_t[]){258, 259, 't', 257, 0x0A}, 5, false, &text, &len) == ROTQ_OK) {
            CHECK(len == 21 && memcmp(text, " the<|endoftext|>the\n", 21) == 0, "decode: '%s'", text);
            free(text);
        }
    }
    rotq_tokenizer_free(t);
    rotq_model_free(m);

    expect_refused((gpt2_opts){.pre = "no-such-pre"}, ROTQ_ERR_UNSUPPORTED, "unknown pre-tokenizer name");
    expect_refused((gpt2_opts){.model = "bert"}, ROTQ_ERR_UNSUPPORTED, "bert vocabulary");
    expect_refused((gpt2_opts){.merge_extra = "q z"}, ROTQ_ERR_FORMAT, "merge whose result is no token");
    expect_refused((gpt2_opts){.merge_extra = "a b c"}, ROTQ_ERR_FORMAT, "merge of three tokens");
    expect_refused((gpt2_opts){.bad_types = true}, ROTQ_ERR_FORMAT, "token_type of the wrong length");
    expect_refused((gpt2_opts){.numeric_tokens = true}, ROTQ_ERR_FORMAT, "tokens that are not strings");
}

/* ---- llama / SentencePiece ------------------------------------------------------------------ */

static void test_llama(void) {
    rotq_model *m = rotq_model_new();
    snprintf(m->source_path, sizeof m->source_path, "spm.gguf");
    /* 0 <unk>, 1 <s>, 2 </s>, 3..258 <0xNN>, 259 ▁, 260 a, 261 b, 262 c, 263 ab, 264 ▁a, 265 ▁ab */
    const char *tok[266];
    float score[266];
    int32_t type[266];
    char names[256][8];
    tok[0] = "<unk>", tok[1] = "<s>", tok[2] = "</s>";
    type[0] = 2, type[1] = type[2] = 3;
    for (int b = 0; b < 256; b++) {
        snprintf(names[b], sizeof names[b], "<0x%02X>", b);
        tok[3 + b] = names[b];
        type[3 + b] = 6;
    }
    const char *rest[] = {"\xE2\x96\x81", "a", "b", "c", "ab", "\xE2\x96\x81" "a", "\xE2\x96\x81" "ab"};
    const float rest_score[] = {-100, -100, -100, -100, -1, -2, -3};
    for (int i = 0; i < 7; i++) {
        tok[259 + i] = rest[i];
        score[259 + i] = rest_score[i];
        type[259 + i] = 1;
    }
    for (int i = 0; i < 259; i++) score[i] = 0;
    meta_str(m, "tokenizer.ggml.model", "llama");
    meta_strs(m, "tokenizer.ggml.tokens", tok, 266);
    meta_nums(m, "tokenizer.ggml.scores", ROTQ_META_F32, score, 266);
    meta_nums(m, "tokenizer.ggml.token_type", ROTQ_META_I32, type, 266);
    meta_u32(m, "tokenizer.ggml.bos_token_id", 1);
    meta_u32(m, "tokenizer.ggml.eos_token_id", 2);
    rotq_tokenizer *t = NULL;
    CHECK(rotq_tokenizer_from_model(m, &t) == ROTQ_OK, "llama vocabulary loads: %s", rotq_last_error());
    if (t) {
        /* "▁ab▁c": ab (-1) first, then ▁ab (-3); "b▁" and "▁c" are no pieces */
        expect(t, "ab c", false, (int32_t[]){265, 259, 262}, 3);
        expect(t, "ab c", true, (int32_t[]){1, 265, 259, 262}, 4);
        /* é is no piece: its two bytes */
        expect(t, "\xC3\xA9", false, (int32_t[]){259, 3 + 0xC3, 3 + 0xA9}, 3);
        /* text after a control token gets the dummy prefix again, as llama.cpp does */
        expect(t, "<s>ab", false, (int32_t[]){1, 265}, 2);
        CHECK(rotq_tokenizer_add_bos_default(t), "llama vocabularies add BOS by default");
        char *text;
        size_t len;
        if (rotq_tokenizer_decode(t, (int32_t[]){1, 265, 262, 3 + 'A'}, 4, false, &text, &len) == ROTQ_OK) {
            CHECK(len == 7 && memcmp(text, "<s>abcA", 7) == 0, "decode keeps <s>, drops the prefix space: '%s'", text);
            free(text);
        }
        if (rotq_tokenizer_decode(t, (int32_t[]){1, 265, 259, 262}, 4, true, &text, &len) == ROTQ_OK) {
            CHECK(len == 4 && memcmp(text, "ab c", 4) == 0, "decode(skip_special): '%s'", text);
            free(text);
        }
    }
    rotq_tokenizer_free(t);
    rotq_model_free(m);
}

int main(void) {
    test_gpt2();
    test_llama();
    return tu_finish("test_tok_gguf");
}
