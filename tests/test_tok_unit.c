/* Tokenizer unit tests: the GPT-2 byte table, decode(encode(x)) == x on random text (valid and
 * ill-formed UTF-8), llama2.c merging worked out by hand, corrupt tokenizer files, and encoding
 * from several threads at once. Agreement with the reference libraries is in oracle_tok_*.py. */
#include <jansson.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "testutil.h"
#include "tok/tok.h"

/* ---- an independent statement of GPT-2's byte table (from its published description) -------- */

static uint32_t gpt2_cp(unsigned b) {
    /* '!'..'~', '¡'..'¬', '®'..'ÿ' stay; the other bytes take U+0100, U+0101, ... in byte order */
    unsigned next = 256;
    for (unsigned x = 0; x < 256; x++) {
        bool keep = (x >= 33 && x <= 126) || (x >= 161 && x <= 172) || (x >= 174 && x <= 255);
        if (x == b) return keep ? x : next;
        if (!keep) next++;
    }
    return 0;
}

static size_t put_utf8(uint32_t cp, char *o) {
    if (cp < 0x80) { o[0] = (char)cp; return 1; }
    if (cp < 0x800) { o[0] = (char)(0xC0 | (cp >> 6)); o[1] = (char)(0x80 | (cp & 63)); return 2; }
    if (cp < 0x10000) {
        o[0] = (char)(0xE0 | (cp >> 12)); o[1] = (char)(0x80 | ((cp >> 6) & 63)); o[2] = (char)(0x80 | (cp & 63));
        return 3;
    }
    o[0] = (char)(0xF0 | (cp >> 18)); o[1] = (char)(0x80 | ((cp >> 12) & 63));
    o[2] = (char)(0x80 | ((cp >> 6) & 63)); o[3] = (char)(0x80 | (cp & 63));
    return 4;
}

static void test_byte_table(void) {
    bool seen[512] = {0};
    for (unsigned b = 0; b < 256; b++) {
        uint32_t cp = rotq_tok_byte_to_cp((uint8_t)b);
        CHECK(cp == gpt2_cp(b), "byte %u maps to U+%04X, expected U+%04X", b, cp, gpt2_cp(b));
        CHECK(cp < 512 && !seen[cp], "byte %u: code point U+%04X repeats", b, cp);
        if (cp < 512) seen[cp] = true;
        CHECK(rotq_tok_cp_to_byte(cp) == (int32_t)b, "U+%04X maps back to %d, not %u", cp, rotq_tok_cp_to_byte(cp), b);
    }
    CHECK(rotq_tok_byte_to_cp(' ') == 0x120, "space is Ġ (U+0120)");
    CHECK(rotq_tok_byte_to_cp('\n') == 0x10A, "newline is Ċ (U+010A)");
    CHECK(rotq_tok_cp_to_byte(0x20) == -1 && rotq_tok_cp_to_byte(0x144) == -1, "code points outside the table");
}

/* ---- tokenizers built here ----------------------------------------------------------------- */

static rotq_tokenizer *from_json_value(json_t *root) {
    char *text = json_dumps(root, JSON_COMPACT);
    rotq_tokenizer *t = NULL;
    rotq_status s = rotq_tok_from_json(text, strlen(text), NULL, 0, "test.json", &t);
    CHECK(s == ROTQ_OK, "test tokenizer.json loads: %s", rotq_last_error());
    free(text);
    json_decref(root);
    return t;
}

static json_t *added_token(int id, const char *content) {
    return json_pack("{s:i, s:s, s:b, s:b, s:b, s:b, s:b}", "id", id, "content", content, "single_word", 0, "lstrip", 0,
                     "rstrip", 0, "normalized", 0, "special", 1);
}

/* Byte-level BPE: every byte, a few merges, two special tokens, the GPT-2 regex. */
static rotq_tokenizer *make_bytelevel(void) {
    json_t *vocab = json_object();
    char ch[8];
    int n = 0;
    for (unsigned b = 0; b < 256; b++) {
        ch[put_utf8(gpt2_cp(b), ch)] = 0;
        json_object_set_new(vocab, ch, json_integer(n++));
    }
    static const char *merges[][2] = {{"\xC4\xA0", "t"}, {"h", "e"}, {"\xC4\xA0t", "he"}, {"i", "n"},
                                      {"\xC4\xA0", "a"}, {"e", "r"}, {"\xC4\xA0", "\xC4\xA0"}};
    json_t *mlist = json_array();
    for (size_t i = 0; i < sizeof merges / sizeof merges[0]; i++) {
        char both[32];
        snprintf(both, sizeof both, "%s%s", merges[i][0], merges[i][1]);
        if (!json_object_get(vocab, both)) json_object_set_new(vocab, both, json_integer(n++));
        json_array_append_new(mlist, json_pack("[s,s]", merges[i][0], merges[i][1]));
    }
    json_t *added = json_pack("[o,o]", added_token(n, "<|endoftext|>"), added_token(n + 1, "<|im_start|>"));
    json_t *root = json_pack("{s:o, s:n, s:{s:s, s:b, s:b, s:b}, s:{s:s}, s:{s:s, s:o, s:o}}", "added_tokens", added,
                             "normalizer", "pre_tokenizer", "type", "ByteLevel", "add_prefix_space", 0, "trim_offsets", 1,
                             "use_regex", 1, "decoder", "type", "ByteLevel", "model", "type", "BPE", "vocab", vocab,
                             "merges", mlist);
    return from_json_value(root);
}

/* SentencePiece-style BPE: ▁ via Metaspace, byte fallback, <unk>. */
static rotq_tokenizer *make_spm_json(void) {
    json_t *vocab = json_object();
    int n = 0;
    json_object_set_new(vocab, "<unk>", json_integer(n++));
    json_object_set_new(vocab, "<s>", json_integer(n++));
    json_object_set_new(vocab, "</s>", json_integer(n++));
    char name[16];
    for (unsigned b = 0; b < 256; b++) {
        snprintf(name, sizeof name, "<0x%02X>", b);
        json_object_set_new(vocab, name, json_integer(n++));
    }
    const char *pieces[] = {"\xE2\x96\x81", "a", "b", "e", "h", "t", "x", "\xC3\xA9", "\xE2\x96\x81t", "he",
                            "\xE2\x96\x81the"};
    for (size_t i = 0; i < sizeof pieces / sizeof pieces[0]; i++) json_object_set_new(vocab, pieces[i], json_integer(n++));
    json_t *mlist = json_pack("[s,s,s]", "\xE2\x96\x81 t", "h e", "\xE2\x96\x81t he");
    json_t *meta = json_pack("{s:s, s:s, s:s, s:b}", "type", "Metaspace", "replacement", "\xE2\x96\x81", "prepend_scheme",
                             "first", "split", 0);
    json_t *dec = json_pack("{s:s, s:[{s:s}, o]}", "type", "Sequence", "decoders", "type", "ByteFallback", json_deep_copy(meta));
    json_t *added = json_pack("[o,o]", added_token(1, "<s>"), added_token(2, "</s>"));
    json_t *root = json_pack("{s:o, s:o, s:o, s:{s:s, s:s, s:b, s:b, s:o, s:o}}", "added_tokens", added, "pre_tokenizer",
                             meta, "decoder", dec, "model", "type", "BPE", "unk_token", "<unk>", "byte_fallback", 1,
                             "fuse_unk", 1, "vocab", vocab, "merges", mlist);
    return from_json_value(root);
}

static uint64_t rng_state = 0x9E3779B97F4A7C15ull;
static uint32_t rnd(void) {
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return (uint32_t)(rng_state >> 11);
}

/* Random well-formed UTF-8: ASCII (letters, spaces, newlines, digits, punctuation), 2-, 3- and
 * 4-byte characters, and now and then a special token's text. */
static size_t random_utf8(char *out, size_t cap, bool no_leading_space) {
    static const char *specials[] = {"<|endoftext|>", "<|im_start|>", "<s>"};
    size_t n = 0;
    while (n + 16 < cap) {
        uint32_t r = rnd() % 100, cp;
        if (r < 3) {
            const char *sp = specials[rnd() % 3];
            memcpy(out + n, sp, strlen(sp));
            n += strlen(sp);
            continue;
        }
        if (r < 50) cp = "abcdeht xyz  \n\t0123.,'!"[rnd() % 24];
        else if (r < 70) cp = 0x80 + rnd() % (0x800 - 0x80);
        else if (r < 90) { do cp = 0x800 + rnd() % (0x10000 - 0x800); while (cp >= 0xD800 && cp < 0xE000); }
        else cp = 0x10000 + rnd() % (0x110000 - 0x10000);
        if (n == 0 && no_leading_space && (cp == ' ' || cp == '\t' || cp == '\n')) cp = 'a';
        n += put_utf8(cp, out + n);
    }
    return n;
}

static bool round_trip(const rotq_tokenizer *t, const char *text, size_t len, const char *what) {
    int32_t *ids;
    int64_t n;
    rotq_status s = rotq_tokenizer_encode(t, text, len, false, &ids, &n);
    CHECK(s == ROTQ_OK, "%s: encode failed: %s", what, rotq_last_error());
    if (s != ROTQ_OK) return false;
    bool in_range = true;
    for (int64_t i = 0; i < n; i++) in_range = in_range && ids[i] >= 0 && ids[i] < rotq_tokenizer_n_vocab(t);
    CHECK(in_range, "%s: ids outside the vocabulary", what);
    char *back;
    size_t back_len;
    s = rotq_tokenizer_decode(t, ids, n, false, &back, &back_len);
    CHECK(s == ROTQ_OK, "%s: decode failed: %s", what, rotq_last_error());
    bool same = s == ROTQ_OK && back_len == len && memcmp(back, text, len) == 0;
    if (s == ROTQ_OK) free(back);
    free(ids);
    return same;
}

static void test_round_trips(void) {
    rotq_tokenizer *bl = make_bytelevel(), *spm = make_spm_json();
    if (!bl || !spm) return;
    static char buf[8192];
    int bad_bl = 0, bad_raw = 0, bad_spm = 0;
    for (int iter = 0; iter < 300; iter++) {
        size_t n = random_utf8(buf, 64 + rnd() % 4000, false);
        if (!round_trip(bl, buf, n, "byte-level, UTF-8")) bad_bl++;
        n = random_utf8(buf, 64 + rnd() % 2000, true);
        if (!round_trip(spm, buf, n, "sentencepiece-style, UTF-8")) bad_spm++;
        /* any bytes at all: byte-level maps each byte, so even ill-formed input comes back whole */
        n = 1 + rnd() % 3000;
        for (size_t i = 0; i < n; i++) buf[i] = (char)rnd();
        if (!round_trip(bl, buf, n, "byte-level, random bytes")) bad_raw++;
    }
    CHECK(bad_bl == 0, "byte-level: %d of 300 UTF-8 texts did not come back", bad_bl);
    CHECK(bad_raw == 0, "byte-level: %d of 300 random byte strings did not come back", bad_raw);
    CHECK(bad_spm == 0, "sentencepiece-style: %d of 300 UTF-8 texts did not come back", bad_spm);

    /* the merges do what they say: " the" is one token, "<|im_start|>" one special token */
    int32_t *ids;
    int64_t n;
    if (rotq_tokenizer_encode(bl, "in the<|im_start|>x", 19, false, &ids, &n) == ROTQ_OK) {
        CHECK(n == 4, "'in the<|im_start|>x' gives %lld tokens, expected in / Ġthe / <|im_start|> / x", (long long)n);
        if (n == 4) {
            CHECK(ids[1] == rotq_tok_lookup(bl, "\xC4\xA0the", 5), "Ġthe merged");
            CHECK(ids[2] == rotq_tok_lookup(bl, "<|im_start|>", 12) && rotq_tokenizer_is_special(bl, ids[2]), "special");
        }
        free(ids);
    }
    /* byte fallback: é is a piece, ж (D0 B6) is not and becomes <0xD0><0xB6> */
    if (rotq_tokenizer_encode(spm, "the \xC3\xA9\xD0\xB6", 8, false, &ids, &n) == ROTQ_OK) {
        int32_t want[] = {rotq_tok_lookup(spm, "\xE2\x96\x81the", 6), rotq_tok_lookup(spm, "\xE2\x96\x81", 3),
                          rotq_tok_lookup(spm, "\xC3\xA9", 2), rotq_tok_lookup(spm, "<0xD0>", 6),
                          rotq_tok_lookup(spm, "<0xB6>", 6)};
        CHECK(n == 5 && memcmp(ids, want, sizeof want) == 0, "'the éж' → ▁the ▁ é <0xD0> <0xB6> (%lld tokens)", (long long)n);
        free(ids);
    }
    rotq_tokenizer_free(bl);
    rotq_tokenizer_free(spm);
}

/* ---- llama2.c: merging worked out by hand --------------------------------------------------- */

typedef struct { const char *piece; float score; } tb_entry;

static rotq_tokenizer *make_llama2c(const tb_entry *extra, int n_extra) {
    uint8_t *buf = malloc(1 << 16);
    size_t n = 0;
    int32_t max_len = 16;
    memcpy(buf, &max_len, 4);
    n = 4;
    char name[16];
    for (int i = 0; i < 3 + 256 + n_extra; i++) {
        const char *p;
        float score = 0;
        if (i == 0) p = "<unk>";
        else if (i == 1) p = "\n<s>\n";
        else if (i == 2) p = "\n</s>\n";
        else if (i < 259) { snprintf(name, sizeof name, "<0x%02X>", i - 3); p = name; }
        else { p = extra[i - 259].piece; score = extra[i - 259].score; }
        int32_t len = (int32_t)strlen(p);
        memcpy(buf + n, &score, 4);
        memcpy(buf + n + 4, &len, 4);
        memcpy(buf + n + 8, p, (size_t)len);
        n += 8 + (size_t)len;
    }
    rotq_tokenizer *t = NULL;
    rotq_status s = rotq_tok_from_llama2c(buf, n, "test.bin", &t);
    CHECK(s == ROTQ_OK, "hand-made tokenizer.bin loads: %s", rotq_last_error());
    free(buf);
    return t;
}

static void expect_ids(const rotq_tokenizer *t, const char *text, bool bos, const int32_t *want, int64_t n_want) {
    int32_t *ids;
    int64_t n;
    if (rotq_tokenizer_encode(t, text, strlen(text), bos, &ids, &n) != ROTQ_OK) {
        CHECK(false, "encode '%s': %s", text, rotq_last_error());
        return;
    }
    bool same = n == n_want && memcmp(ids, want, (size_t)n * sizeof *ids) == 0;
    CHECK(same, "encode '%s': got %lld ids [%d %d %d ...], want %lld [%d %d %d ...]", text, (long long)n,
          n > 0 ? ids[0] : -1, n > 1 ? ids[1] : -1, n > 2 ? ids[2] : -1, (long long)n_want, want[0],
          n_want > 1 ? want[1] : -1, n_want > 2 ? want[2] : -1);
    free(ids);
}

static void test_llama2c(void) {
    /* ids: 259 " ", 260 a, 261 b, 262 c, 263 ab, 264 bc, 265 " a", 266 " ab", 267 abc */
    tb_entry v1[] = {{" ", -100}, {"a", -100}, {"b", -100}, {"c", -100}, {"ab", -1}, {"bc", -0.5f},
                     {" a", -2}, {" ab", -3}, {"abc", -4}};
    rotq_tokenizer *t = make_llama2c(v1, 9);
    if (!t) return;
    /* " abc": bc (-0.5) beats ab (-1) and " a" (-2); then " a" (-2) beats abc (-4) */
    expect_ids(t, "abc", false, (int32_t[]){265, 264}, 2);
    /* " ab c": ab, then " ab"; " c" and "b " are no pieces */
    expect_ids(t, "ab c", true, (int32_t[]){1, 266, 259, 262}, 4);
    /* é is no piece: its bytes C3 A9 fall back to ids 3 + byte */
    expect_ids(t, "\xC3\xA9", false, (int32_t[]){259, 3 + 0xC3, 3 + 0xA9}, 3);
    expect_ids(t, "", false, (int32_t[]){0}, 0);
    expect_ids(t, "", true, (int32_t[]){1}, 1);
    char *text;
    size_t len;
    if (rotq_tokenizer_decode(t, (int32_t[]){1, 266, 262, 3 + 0x41}, 4, true, &text, &len) == ROTQ_OK) {
        CHECK(len == 4 && memcmp(text, "abcA", 4) == 0, "decode drops the space after BOS, bytes as bytes: '%s'", text);
        free(text);
    }
    rotq_tokenizer_free(t);

    /* a tie: ab and bc score the same, the leftmost pair merges first */
    tb_entry v2[] = {{" ", -100}, {"a", -100}, {"b", -100}, {"c", -100}, {"ab", -1}, {"bc", -1},
                     {" a", -2}, {" ab", -3}, {"abc", -4}};
    t = make_llama2c(v2, 9);
    if (!t) return;
    expect_ids(t, "abc", false, (int32_t[]){266, 262}, 2);
    rotq_tokenizer_free(t);
}

/* ---- corrupt input: errors, never crashes ---------------------------------------------------- */

static void expect_json_error(const char *json, const char *what) {
    rotq_tokenizer *t = NULL;
    rotq_status s = rotq_tok_from_json(json, strlen(json), NULL, 0, "bad.json", &t);
    CHECK(s != ROTQ_OK && t == NULL, "%s: accepted", what);
    CHECK(s == ROTQ_OK || rotq_last_error()[0], "%s: no error message", what);
}

static void test_corrupt(void) {
    expect_json_error("", "empty file");
    expect_json_error("{\"model\": 3}", "model not an object");
    expect_json_error("{\"model\": {\"type\": \"Unigram\", \"vocab\": []}}", "unsupported model");
    expect_json_error("{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0, \"b\": 1}, \"merges\": [\"a b\"]}}",
                      "merge result missing from the vocabulary");
    expect_json_error("{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": -4}, \"merges\": []}}", "negative id");
    expect_json_error("{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0}, \"merges\": [\"a\"]}}", "one-token merge");
    expect_json_error("{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0}, \"merges\": []}, \"pre_tokenizer\": "
                      "{\"type\": \"Split\", \"pattern\": {\"Regex\": \"(\"}, \"behavior\": \"Isolated\"}}",
                      "regex that does not compile");
    expect_json_error("{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0}, \"merges\": []}, \"added_tokens\": "
                      "[{\"id\": 99999999, \"content\": \"x\"}]}", "added token id far outside");

    /* tokenizer.bin: truncations of a valid file and random garbage */
    tb_entry v[] = {{" ", -1}, {"a", -2}};
    rotq_tokenizer *ok = make_llama2c(v, 2);
    rotq_tokenizer_free(ok);
    uint8_t junk[600];
    int accepted_garbage = 0;
    for (int iter = 0; iter < 200; iter++) {
        size_t n = rnd() % sizeof junk;
        for (size_t i = 0; i < n; i++) junk[i] = (uint8_t)rnd();
        if (iter % 2) { int32_t ml = 8; memcpy(junk, &ml, n >= 4 ? 4 : n); }
        rotq_tokenizer *t = NULL;
        if (rotq_tok_from_llama2c(junk, n, "junk.bin", &t) == ROTQ_OK) {
            accepted_garbage++;
            rotq_tokenizer_free(t);
        }
    }
    CHECK(accepted_garbage == 0, "%d random byte strings were taken for a tokenizer.bin", accepted_garbage);
}

/* ---- several threads, one tokenizer ---------------------------------------------------------- */

static void test_threads(void) {
    rotq_tokenizer *t = make_bytelevel();
    if (!t) return;
    static char text[20000];
    size_t len = random_utf8(text, sizeof text, false);
    int32_t *ref;
    int64_t n_ref;
    if (rotq_tokenizer_encode(t, text, len, false, &ref, &n_ref) != ROTQ_OK) return;
    int mismatches = 0;
#pragma omp parallel for reduction(+ : mismatches)
    for (int k = 0; k < 16; k++) {
        int32_t *ids;
        int64_t n;
        if (rotq_tokenizer_encode(t, text, len, false, &ids, &n) != ROTQ_OK) { mismatches++; continue; }
        if (n != n_ref || memcmp(ids, ref, (size_t)n * sizeof *ids) != 0) mismatches++;
        free(ids);
    }
    CHECK(mismatches == 0, "%d of 16 concurrent encodes differ", mismatches);
    free(ref);
    rotq_tokenizer_free(t);
}

int main(void) {
    test_byte_table();
    test_round_trips();
    test_llama2c();
    test_corrupt();
    test_threads();
    return tu_finish("test_tok_unit");
}
