/* The tokenizer object, the encode/decode pipeline and the public entry points. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>
#include <utf8proc.h>

#include "core/model.h"
#include "tok/tok.h"

/* ---- construction -------------------------------------------------------------------------- */

rotq_tokenizer *rotq_tok_new(void) {
    rotq_tokenizer *t = calloc(1, sizeof *t);
    if (!t) return NULL;
    t->unk_id = t->bos_id = t->eos_id = -1;
    for (int i = 0; i < 256; i++) t->byte_id[i] = -1;
    snprintf(t->kind_name, sizeof t->kind_name, "BPE");
    return t;
}

rotq_status rotq_tok_alloc_vocab(rotq_tokenizer *t, int32_t n) {
    if (n <= 0 || n > 16 * 1024 * 1024) return rotq_fail(ROTQ_ERR_FORMAT, "tokenizer: vocabulary of %d tokens", n);
    t->n_vocab = n;
    t->piece = calloc((size_t)n, sizeof *t->piece);
    t->piece_len = calloc((size_t)n, sizeof *t->piece_len);
    t->attr = calloc((size_t)n, sizeof *t->attr);
    if (!t->piece || !t->piece_len || !t->attr) return rotq_fail(ROTQ_ERR_NOMEM, "tokenizer: out of memory (%d tokens)", n);
    return ROTQ_OK;
}

rotq_status rotq_tok_set_piece(rotq_tokenizer *t, int32_t id, const void *text, size_t len) {
    if (id < 0 || id >= t->n_vocab) return rotq_fail(ROTQ_ERR_FORMAT, "tokenizer: token id %d outside 0..%d", id, t->n_vocab - 1);
    if (len > 65536) return rotq_fail(ROTQ_ERR_FORMAT, "tokenizer: token %d is %zu bytes long", id, len);
    char *p = malloc(len + 1);
    if (!p) return rotq_fail(ROTQ_ERR_NOMEM, "tokenizer: out of memory");
    if (len) memcpy(p, text, len);
    p[len] = 0;
    free(t->piece[id]);
    t->piece[id] = p;
    t->piece_len[id] = (uint32_t)len;
    return ROTQ_OK;
}

rotq_status rotq_tok_add_added(rotq_tokenizer *t, const rotq_tok_added *a) {
    if (a->len == 0) return ROTQ_OK; /* an empty added token can never be matched */
    rotq_tok_added *p = realloc(t->added, (size_t)(t->n_added + 1) * sizeof *p);
    if (!p) return rotq_fail(ROTQ_ERR_NOMEM, "tokenizer: out of memory");
    t->added = p;
    rotq_tok_added c = *a;
    c.content = malloc(a->len + 1);
    if (!c.content) return rotq_fail(ROTQ_ERR_NOMEM, "tokenizer: out of memory");
    memcpy(c.content, a->content, a->len);
    c.content[a->len] = 0;
    t->added[t->n_added++] = c;
    return ROTQ_OK;
}

int32_t rotq_tok_lookup(const rotq_tokenizer *t, const void *text, size_t len) {
    return (int32_t)rotq_tok_strmap_get(&t->vocab, text, len);
}

static int added_cmp(const void *a, const void *b) {
    const rotq_tok_added *x = a, *y = b;
    if (x->len != y->len) return x->len > y->len ? -1 : 1;
    return x->id < y->id ? -1 : x->id > y->id;
}

static const char META_SPACE[] = "\xE2\x96\x81"; /* U+2581 ▁ */

/* Byte-level tokens decode through the inverse GPT-2 table; a token with a character outside it
 * decodes to its own text (as HF's ByteLevel decoder does). */
static rotq_status decode_bytelevel(const char *p, size_t n, rotq_tok_buf *out) {
    for (size_t i = 0; i < n;) {
        uint32_t cp;
        size_t cl = rotq_tok_utf8_decode((const uint8_t *)p + i, n - i, &cp);
        int32_t b = cl ? rotq_tok_cp_to_byte(cp) : -1;
        if (b < 0) {
            out->n = 0;
            return rotq_tok_buf_put(out, p, n);
        }
        uint8_t c = (uint8_t)b;
        ROTQ_TRY(rotq_tok_buf_put(out, &c, 1));
        i += cl;
    }
    return ROTQ_OK;
}

static int hex_digit(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    return -1;
}

/* The byte of a "<0xNN>" piece, or -1. */
static int byte_piece(const char *p, size_t n) {
    if (n != 6 || p[0] != '<' || p[1] != '0' || p[2] != 'x' || p[5] != '>') return -1;
    int h = hex_digit(p[3]), l = hex_digit(p[4]);
    return h < 0 || l < 0 ? -1 : h * 16 + l;
}

/* Every pair of adjacent characters (bytes for byte-level) inside a vocabulary token. */
static rotq_status build_bigrams(rotq_tokenizer *t) {
    for (int32_t id = 0; id < t->n_vocab; id++) {
        if (!t->piece[id] || (t->attr[id] & ROTQ_TOKA_ADDED)) continue;
        const uint8_t *p = t->byte_level ? t->dec[id] : (const uint8_t *)t->piece[id];
        size_t n = t->byte_level ? t->dec_len[id] : t->piece_len[id];
        int32_t prev = -1;
        for (size_t i = 0; i < n;) {
            uint32_t cp;
            size_t cl = t->byte_level ? 1 : rotq_tok_utf8_decode(p + i, n - i, &cp);
            if (t->byte_level) cp = p[i];
            else if (!cl) { cp = 0x110000u + p[i]; cl = 1; } /* never equal to a decoded character */
            if (prev >= 0) ROTQ_TRY(rotq_tok_pairmap_put(&t->bigrams, prev, (int32_t)cp, 0, 0));
            prev = (int32_t)cp;
            i += cl;
        }
    }
    return ROTQ_OK;
}

rotq_status rotq_tok_finish(rotq_tokenizer *t, const char *where) {
    /* added tokens own their ids' text */
    for (int32_t i = 0; i < t->n_added; i++) {
        rotq_tok_added *a = &t->added[i];
        if (a->id < 0 || a->id >= t->n_vocab)
            return rotq_fail(ROTQ_ERR_FORMAT, "%s: added token '%s' has id %d outside the vocabulary (%d)", where,
                             a->content, a->id, t->n_vocab);
        if (!t->piece[a->id]) ROTQ_TRY(rotq_tok_set_piece(t, a->id, a->content, a->len));
        t->attr[a->id] |= ROTQ_TOKA_ADDED | (a->special ? ROTQ_TOKA_SPECIAL : 0);
    }
    if (t->n_added) qsort(t->added, (size_t)t->n_added, sizeof *t->added, added_cmp);
    for (int32_t id = 0; id < t->n_vocab; id++)
        if (t->piece[id]) ROTQ_TRY(rotq_tok_strmap_put(&t->vocab, t->piece[id], t->piece_len[id], id));
    if (t->unk_id >= t->n_vocab) t->unk_id = -1;
    if (t->unk_id >= 0) t->attr[t->unk_id] |= ROTQ_TOKA_UNKNOWN;

    for (int b = 0; b < 256; b++) {
        if (t->byte_level) {
            uint8_t enc[4];
            size_t el = rotq_tok_utf8_encode(rotq_tok_byte_to_cp((uint8_t)b), enc);
            t->byte_utf8[b][0] = (uint8_t)el;
            memcpy(t->byte_utf8[b] + 1, enc, el);
            t->byte_id[b] = rotq_tok_lookup(t, enc, el);
        } else {
            char name[8];
            snprintf(name, sizeof name, "<0x%02X>", b);
            t->byte_id[b] = rotq_tok_lookup(t, name, 6);
            if (t->byte_id[b] >= 0) t->attr[t->byte_id[b]] |= ROTQ_TOKA_BYTE;
        }
    }

    t->dec = calloc((size_t)t->n_vocab, sizeof *t->dec);
    t->dec_len = calloc((size_t)t->n_vocab, sizeof *t->dec_len);
    if (!t->dec || !t->dec_len) return rotq_fail(ROTQ_ERR_NOMEM, "%s: out of memory", where);
    rotq_tok_buf b = {0};
    rotq_status s = ROTQ_OK;
    for (int32_t id = 0; id < t->n_vocab && s == ROTQ_OK; id++) {
        const char *p = t->piece[id];
        size_t n = t->piece_len[id];
        b.n = 0;
        if (!p) continue;
        int byte = byte_piece(p, n);
        if (t->attr[id] & ROTQ_TOKA_ADDED) {
            s = rotq_tok_buf_put(&b, p, n);
        } else if (t->byte_level) {
            s = decode_bytelevel(p, n, &b);
        } else if ((t->attr[id] & ROTQ_TOKA_BYTE) && byte >= 0 && t->decode_bytes) {
            uint8_t c = (uint8_t)byte;
            s = rotq_tok_buf_put(&b, &c, 1);
        } else {
            for (size_t i = 0; i < n && s == ROTQ_OK;) {
                if (t->spm_escape_spaces && i + 3 <= n && memcmp(p + i, META_SPACE, 3) == 0) {
                    s = rotq_tok_buf_put(&b, " ", 1);
                    i += 3;
                } else {
                    s = rotq_tok_buf_put(&b, p + i, 1);
                    i++;
                }
            }
        }
        if (s != ROTQ_OK) break;
        t->dec[id] = malloc(b.n + 1);
        if (!t->dec[id]) s = rotq_fail(ROTQ_ERR_NOMEM, "%s: out of memory", where);
        else {
            if (b.n) memcpy(t->dec[id], b.p, b.n);
            t->dec_len[id] = (uint32_t)b.n;
        }
    }
    rotq_tok_buf_free(&b);
    if (s == ROTQ_OK) s = build_bigrams(t);
    if (t->bos_id >= t->n_vocab) t->bos_id = -1;
    if (t->eos_id >= t->n_vocab) t->eos_id = -1;
    return s;
}

void rotq_tokenizer_free(rotq_tokenizer *t) {
    if (!t) return;
    for (int32_t i = 0; i < t->n_vocab; i++) {
        free(t->piece ? t->piece[i] : NULL);
        free(t->dec ? t->dec[i] : NULL);
    }
    free(t->piece);
    free(t->piece_len);
    free(t->score);
    free(t->attr);
    free(t->dec);
    free(t->dec_len);
    rotq_tok_strmap_free(&t->vocab);
    rotq_tok_pairmap_free(&t->merges);
    rotq_tok_pairmap_free(&t->bigrams);
    for (int32_t i = 0; i < t->n_norms; i++) rotq_tok_norm_clear(&t->norms[i]);
    free(t->norms);
    for (int32_t i = 0; i < t->n_pres; i++) rotq_tok_pre_clear(&t->pres[i]);
    free(t->pres);
    for (int32_t i = 0; i < t->n_added; i++) free(t->added[i].content);
    free(t->added);
    free(t);
}

void rotq_tok_scratch_free(rotq_tok_scratch *sc) {
    rotq_tok_buf_free(&sc->a);
    rotq_tok_buf_free(&sc->b);
    rotq_tok_buf_free(&sc->mapped);
    free(sc->tmp.w);
    free(sc->spans.w);
    if (sc->match_data) pcre2_match_data_free(sc->match_data);
    free(sc->sym);
    free(sc->heap);
    memset(sc, 0, sizeof *sc);
}

/* ---- added tokens -------------------------------------------------------------------------- */

static bool is_space_cp(uint32_t cp) {
    return (cp >= 9 && cp <= 13) || cp == 0x20 || cp == 0x85 || cp == 0xA0 || cp == 0x1680 ||
           (cp >= 0x2000 && cp <= 0x200A) || cp == 0x2028 || cp == 0x2029 || cp == 0x202F || cp == 0x205F ||
           cp == 0x3000;
}

/* Rust's char::is_alphanumeric (letters and numbers) or '_': what HF's single_word looks at. */
static bool is_word_cp(uint32_t cp) {
    if (cp == '_') return true;
    utf8proc_category_t c = utf8proc_category((utf8proc_int32_t)cp);
    return (c >= UTF8PROC_CATEGORY_LU && c <= UTF8PROC_CATEGORY_LO) ||
           (c >= UTF8PROC_CATEGORY_ND && c <= UTF8PROC_CATEGORY_NO);
}

/* The character ending at s[end) (not before `lo`); false when none or ill-formed. */
static bool char_before(const uint8_t *s, size_t lo, size_t end, uint32_t *cp, size_t *start) {
    if (end <= lo) return false;
    size_t k = end - 1;
    while (k > lo && (s[k] & 0xC0) == 0x80 && end - k < 4) k--;
    if (rotq_tok_utf8_decode(s + k, end - k, cp) != end - k) return false;
    *start = k;
    return true;
}

/* Leftmost-longest match of an added token (of the given `normalized` class) at or after `from`. */
static int32_t find_added(const rotq_tokenizer *t, const uint8_t *s, size_t n, size_t from, bool normalized,
                          size_t *at) {
    for (size_t i = from; i < n; i++) {
        for (int32_t k = 0; k < t->n_added; k++) { /* sorted longest first */
            const rotq_tok_added *a = &t->added[k];
            if (a->normalized != normalized || a->len > n - i || (uint8_t)a->content[0] != s[i]) continue;
            if (memcmp(s + i, a->content, a->len) == 0) {
                *at = i;
                return k;
            }
        }
    }
    return -1;
}

typedef struct piece_span {
    size_t start, end;
    int32_t token; /* -1 for text */
} piece_span;

typedef struct span_list {
    piece_span *v;
    size_t n, cap;
} span_list;

static rotq_status span_push(span_list *l, size_t s, size_t e, int32_t tok) {
    if (tok < 0 && e <= s) return ROTQ_OK;
    if (l->n == l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 16;
        piece_span *p = realloc(l->v, cap * sizeof *p);
        if (!p) return rotq_fail(ROTQ_ERR_NOMEM, "tokenizer: out of memory");
        l->v = p;
        l->cap = cap;
    }
    l->v[l->n++] = (piece_span){s, e, tok};
    return ROTQ_OK;
}

/* Cuts text into added-token matches and the text between them, as HF's AddedVocabulary does
 * (single_word, lstrip and rstrip included). */
static rotq_status split_added(const rotq_tokenizer *t, const uint8_t *s, size_t n, bool normalized, span_list *out) {
    out->n = 0;
    size_t pos = 0, text_start = 0;
    bool any = false;
    for (int32_t k = 0; k < t->n_added && !any; k++) any = t->added[k].normalized == normalized;
    while (any && pos < n) {
        size_t at;
        int32_t k = find_added(t, s, n, pos, normalized, &at);
        if (k < 0) break;
        const rotq_tok_added *a = &t->added[k];
        size_t start = at, stop = at + a->len;
        pos = stop;
        if (a->single_word) {
            uint32_t cp;
            size_t k2;
            bool left_word = char_before(s, 0, start, &cp, &k2) && is_word_cp(cp);
            bool right_word = rotq_tok_utf8_decode(s + stop, n - stop, &cp) && is_word_cp(cp);
            if (left_word || right_word) continue;
        }
        if (a->lstrip) {
            uint32_t cp;
            size_t k2;
            while (char_before(s, text_start, start, &cp, &k2) && is_space_cp(cp)) start = k2;
        }
        if (a->rstrip) {
            while (stop < n) {
                uint32_t cp;
                size_t cl = rotq_tok_utf8_decode(s + stop, n - stop, &cp);
                if (!cl || !is_space_cp(cp)) break;
                stop += cl;
            }
            pos = stop;
        }
        ROTQ_TRY(span_push(out, text_start, start, -1));
        ROTQ_TRY(span_push(out, start, stop, a->id));
        text_start = stop;
    }
    return span_push(out, text_start, n, -1);
}

/* ---- encode -------------------------------------------------------------------------------- */

/* Word → ids memo for one encode call: text repeats its words, so most skip the merge loop. */
typedef struct word_cache {
    rotq_tok_strmap map;    /* word bytes → (offset into ids) * 256 + count */
    rotq_tok_ids ids;
    uint8_t **blocks;       /* key storage that never moves (the map borrows the keys) */
    size_t n_blocks, used;
} word_cache;

#define CACHE_BLOCK 65536
#define CACHE_MAX_WORD 255

static void cache_free(word_cache *c) {
    rotq_tok_strmap_free(&c->map);
    free(c->ids.p);
    for (size_t i = 0; i < c->n_blocks; i++) free(c->blocks[i]);
    free(c->blocks);
}

static rotq_status cache_put(word_cache *c, const uint8_t *w, size_t n, const int32_t *ids, int64_t count) {
    if (!c->n_blocks || c->used + n > CACHE_BLOCK) {
        uint8_t **bl = realloc(c->blocks, (c->n_blocks + 1) * sizeof *bl);
        if (!bl) return rotq_fail(ROTQ_ERR_NOMEM, "tokenizer: out of memory");
        c->blocks = bl;
        if (!(bl[c->n_blocks] = malloc(CACHE_BLOCK))) return rotq_fail(ROTQ_ERR_NOMEM, "tokenizer: out of memory");
        c->n_blocks++;
        c->used = 0;
    }
    uint8_t *key = c->blocks[c->n_blocks - 1] + c->used;
    memcpy(key, w, n);
    c->used += n;
    int64_t off = c->ids.n;
    for (int64_t i = 0; i < count; i++) ROTQ_TRY(rotq_tok_ids_push(&c->ids, ids[i]));
    return rotq_tok_strmap_put(&c->map, key, n, off * 256 + count);
}

typedef struct encoder {
    const rotq_tokenizer *t;
    rotq_tok_scratch sc;
    rotq_tok_buf norm, frag;
    rotq_tok_words words;
    word_cache cache;
    span_list spans2;
    rotq_tok_ids *out;
} encoder;

static rotq_status encode_chunk(encoder *e, const uint8_t *w, size_t n) {
    if (n <= CACHE_MAX_WORD) {
        int64_t v = rotq_tok_strmap_get(&e->cache.map, w, n);
        if (v >= 0) {
            for (int64_t i = 0; i < v % 256; i++) ROTQ_TRY(rotq_tok_ids_push(e->out, e->cache.ids.p[v / 256 + i]));
            return ROTQ_OK;
        }
    }
    int64_t before = e->out->n;
    ROTQ_TRY(rotq_tok_bpe_word(e->t, w, n, e->out, &e->sc));
    if (n <= CACHE_MAX_WORD && e->out->n - before < 256)
        ROTQ_TRY(cache_put(&e->cache, w, n, e->out->p + before, e->out->n - before));
    return ROTQ_OK;
}

/* The end of the chunk that starts at `start`: the first safe cut at least ROTQ_TOK_CUT_MIN bytes on. */
static size_t chunk_end(const rotq_tokenizer *t, const uint8_t *w, size_t n, size_t start) {
    for (size_t p = start + ROTQ_TOK_CUT_MIN; p < n; p++) {
        if (!t->byte_level && (w[p] & 0xC0) == 0x80) continue;
        if (rotq_tok_safe_cut(t, w, n, p)) return p;
    }
    return n;
}

static rotq_status encode_word(encoder *e, const uint8_t *w, size_t n) {
    const rotq_tokenizer *t = e->t;
    if (t->ignore_merges) { /* a word that is itself a token is taken whole */
        int32_t id;
        if (t->byte_level) {
            e->sc.mapped.n = 0;
            for (size_t i = 0; i < n; i++) ROTQ_TRY(rotq_tok_buf_put(&e->sc.mapped, t->byte_utf8[w[i]] + 1, t->byte_utf8[w[i]][0]));
            id = rotq_tok_lookup(t, e->sc.mapped.p, e->sc.mapped.n);
        } else {
            id = rotq_tok_lookup(t, w, n);
        }
        if (id >= 0) return rotq_tok_ids_push(e->out, id);
    }
    for (size_t start = 0; start < n;) {
        size_t end = n <= ROTQ_TOK_CUT_MIN ? n : chunk_end(t, w, n, start);
        ROTQ_TRY(encode_chunk(e, w + start, end - start));
        start = end;
    }
    return ROTQ_OK;
}

/* One stretch of normalized text without added tokens. `first`: it starts the input;
 * `after_added`: it starts the input or follows an added token. */
static rotq_status encode_plain(encoder *e, const uint8_t *s, size_t n, bool first, bool after_added) {
    const rotq_tokenizer *t = e->t;
    if (n == 0) return ROTQ_OK;
    if (t->model == ROTQ_TOK_SPM) {
        e->frag.n = 0;
        const char *space = t->spm_escape_spaces ? META_SPACE : " ";
        size_t space_len = t->spm_escape_spaces ? 3 : 1;
        bool prefix = (t->spm_prefix == ROTQ_SPM_PREFIX_TEXT_START && first) ||
                      (t->spm_prefix == ROTQ_SPM_PREFIX_AFTER_SPECIAL && after_added);
        if (prefix) ROTQ_TRY(rotq_tok_buf_put(&e->frag, space, space_len));
        for (size_t i = 0; i < n; i++) {
            if (s[i] == ' ') ROTQ_TRY(rotq_tok_buf_put(&e->frag, space, space_len));
            else ROTQ_TRY(rotq_tok_buf_put(&e->frag, s + i, 1));
        }
        return rotq_tok_spm_text(t, e->frag.p, e->frag.n, e->out, &e->sc);
    }
    e->frag.n = 0;
    ROTQ_TRY(rotq_tok_buf_put(&e->frag, s, n));
    e->words.n = 0;
    if (!e->words.cap) {
        e->words.w = malloc(64 * sizeof *e->words.w);
        if (!e->words.w) return rotq_fail(ROTQ_ERR_NOMEM, "tokenizer: out of memory");
        e->words.cap = 64;
    }
    e->words.w[e->words.n++] = (rotq_tok_word){0, n, first};
    ROTQ_TRY(rotq_tok_pretokenize(t->pres, t->n_pres, &e->frag, &e->words, &e->sc));
    for (size_t i = 0; i < e->words.n; i++) ROTQ_TRY(encode_word(e, e->frag.p + e->words.w[i].off, e->words.w[i].len));
    return ROTQ_OK;
}

/* A stretch of raw text between non-normalized added tokens: normalize, then cut out the
 * added tokens that match normalized text. */
static rotq_status encode_segment(encoder *e, const uint8_t *s, size_t n, bool first, bool after_added) {
    const rotq_tokenizer *t = e->t;
    const uint8_t *text = s;
    size_t len = n;
    if (t->n_norms) {
        e->norm.n = 0;
        ROTQ_TRY(rotq_tok_normalize(t->norms, t->n_norms, s, n, &e->norm, &e->sc));
        text = e->norm.p;
        len = e->norm.n;
    }
    ROTQ_TRY(split_added(t, text, len, true, &e->spans2));
    /* encode_plain reuses e->frag, never e->norm, so `text` stays valid through the loop */
    for (size_t i = 0; i < e->spans2.n; i++) {
        piece_span sp = e->spans2.v[i];
        if (sp.token >= 0) {
            ROTQ_TRY(rotq_tok_ids_push(e->out, sp.token));
            after_added = true;
        } else {
            ROTQ_TRY(encode_plain(e, text + sp.start, sp.end - sp.start, first && sp.start == 0, after_added));
            after_added = false;
        }
    }
    return ROTQ_OK;
}

rotq_status rotq_tokenizer_encode(const rotq_tokenizer *t, const char *text, size_t len, bool add_bos, int32_t **ids,
                                  int64_t *n) {
    if (!t || !ids || !n || (!text && len)) return rotq_fail(ROTQ_ERR_ARG, "rotq_tokenizer_encode: NULL argument");
    *ids = NULL;
    *n = 0;
    rotq_tok_ids out = {0};
    encoder e = {.t = t, .out = &out};
    span_list spans = {0};
    rotq_status s = ROTQ_OK;
    if (add_bos) {
        if (t->bos_id < 0) s = rotq_fail(ROTQ_ERR_NOT_FOUND, "tokenizer: a BOS token was asked for but the model has none");
        else s = rotq_tok_ids_push(&out, t->bos_id);
    }
    const uint8_t *u = (const uint8_t *)text;
    if (s == ROTQ_OK) s = split_added(t, u, len, false, &spans);
    bool after_added = true;
    for (size_t i = 0; s == ROTQ_OK && i < spans.n; i++) {
        if (spans.v[i].token >= 0) {
            s = rotq_tok_ids_push(&out, spans.v[i].token);
            after_added = true;
        } else {
            s = encode_segment(&e, u + spans.v[i].start, spans.v[i].end - spans.v[i].start, spans.v[i].start == 0,
                               after_added);
            after_added = false;
        }
    }
    free(spans.v);
    free(e.spans2.v);
    free(e.words.w);
    rotq_tok_buf_free(&e.norm);
    rotq_tok_buf_free(&e.frag);
    cache_free(&e.cache);
    rotq_tok_scratch_free(&e.sc);
    if (s != ROTQ_OK) {
        free(out.p);
        return s;
    }
    if (!out.p) out.p = malloc(sizeof(int32_t)); /* a valid pointer even for no tokens */
    if (!out.p) return rotq_fail(ROTQ_ERR_NOMEM, "tokenizer: out of memory");
    *ids = out.p;
    *n = out.n;
    return ROTQ_OK;
}

/* ---- decode -------------------------------------------------------------------------------- */

rotq_status rotq_tokenizer_decode(const rotq_tokenizer *t, const int32_t *ids, int64_t n, bool skip_special,
                                  char **text, size_t *len) {
    if (!t || !text || !len || (!ids && n > 0) || n < 0) return rotq_fail(ROTQ_ERR_ARG, "rotq_tokenizer_decode: bad argument");
    *text = NULL;
    *len = 0;
    rotq_tok_buf b = {0};
    bool first = true;
    for (int64_t i = 0; i < n; i++) {
        int32_t id = ids[i];
        if (id < 0 || id >= t->n_vocab || !t->dec[id]) {
            rotq_tok_buf_free(&b);
            return rotq_fail(ROTQ_ERR_ARG, "tokenizer: token id %d at position %lld is outside the vocabulary (%d)", id,
                             (long long)i, t->n_vocab);
        }
        if (skip_special && (t->attr[id] & ROTQ_TOKA_SPECIAL)) continue;
        const uint8_t *p = t->dec[id];
        size_t pl = t->dec_len[id];
        if (first && t->decode_strip_space && pl && p[0] == ' ' && !(t->attr[id] & ROTQ_TOKA_ADDED)) {
            p++;
            pl--;
        }
        if (!(t->strip_after_special && (t->attr[id] & ROTQ_TOKA_SPECIAL))) first = false;
        rotq_status s = rotq_tok_buf_put(&b, p, pl);
        if (s != ROTQ_OK) {
            rotq_tok_buf_free(&b);
            return s;
        }
    }
    rotq_status s = rotq_tok_buf_put(&b, "", 1); /* NUL-terminated for convenience; not counted */
    if (s != ROTQ_OK) {
        rotq_tok_buf_free(&b);
        return s;
    }
    *text = (char *)b.p;
    *len = b.n - 1;
    return ROTQ_OK;
}

rotq_status rotq_tokenizer_piece(const rotq_tokenizer *t, int32_t id, const char **bytes, size_t *len) {
    if (!t || !bytes || !len) return rotq_fail(ROTQ_ERR_ARG, "rotq_tokenizer_piece: NULL argument");
    if (id < 0 || id >= t->n_vocab || !t->dec[id])
        return rotq_fail(ROTQ_ERR_ARG, "tokenizer: token id %d is outside the vocabulary (%d)", id, t->n_vocab);
    *bytes = (const char *)t->dec[id];
    *len = t->dec_len[id];
    return ROTQ_OK;
}

int32_t rotq_tokenizer_bos(const rotq_tokenizer *t) { return t ? t->bos_id : -1; }
int32_t rotq_tokenizer_eos(const rotq_tokenizer *t) { return t ? t->eos_id : -1; }
int64_t rotq_tokenizer_n_vocab(const rotq_tokenizer *t) { return t ? t->n_vocab : 0; }
bool rotq_tokenizer_add_bos_default(const rotq_tokenizer *t) { return t && t->add_bos && t->bos_id >= 0; }

bool rotq_tokenizer_is_special(const rotq_tokenizer *t, int32_t id) {
    return t && id >= 0 && id < t->n_vocab && (t->attr[id] & ROTQ_TOKA_SPECIAL);
}

const char *rotq_tokenizer_kind(const rotq_tokenizer *t) { return t ? t->kind_name : ""; }

/* ---- loading ------------------------------------------------------------------------------- */

rotq_status rotq_tokenizer_from_model(const rotq_model *m, rotq_tokenizer **out) {
    if (!m || !out) return rotq_fail(ROTQ_ERR_ARG, "rotq_tokenizer_from_model: NULL argument");
    *out = NULL;
    const rotq_blob *json = rotq_model_blob(m, "tokenizer.json");
    rotq_status s;
    if (json) {
        const rotq_blob *cfg = rotq_model_blob(m, "tokenizer_config.json");
        s = rotq_tok_from_json((const char *)json->data, json->size, cfg ? (const char *)cfg->data : NULL,
                               cfg ? cfg->size : 0, "tokenizer.json", out);
    } else if (rotq_model_meta(m, "tokenizer.ggml.model")) {
        s = rotq_tok_from_gguf(m, out);
    } else {
        const rotq_blob *bin = rotq_model_blob(m, "tokenizer.bin");
        if (!bin)
            return rotq_fail(ROTQ_ERR_NOT_FOUND, "%s: the model carries no tokenizer (no tokenizer.json, GGUF "
                             "tokenizer.ggml.* metadata or llama2.c tokenizer.bin)", m->source_path);
        s = rotq_tok_from_llama2c(bin->data, bin->size, "tokenizer.bin", out);
    }
    if (s != ROTQ_OK) return s;
    /* the model's own config knows BOS/EOS when the tokenizer files do not say */
    if ((*out)->bos_id < 0 && m->hp.bos_id >= 0 && m->hp.bos_id < (*out)->n_vocab) (*out)->bos_id = m->hp.bos_id;
    if ((*out)->eos_id < 0 && m->hp.eos_id >= 0 && m->hp.eos_id < (*out)->n_vocab) (*out)->eos_id = m->hp.eos_id;
    return ROTQ_OK;
}
