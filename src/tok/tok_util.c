/* Containers, hashing, UTF-8 helpers and the GPT-2 byte table used by the tokenizers. */
#include <stdlib.h>
#include <string.h>

#include "tok/tok.h"

rotq_status rotq_tok_buf_reserve(rotq_tok_buf *b, size_t extra) {
    if (b->n + extra <= b->cap) return ROTQ_OK;
    size_t cap = b->cap ? b->cap : 256;
    while (cap < b->n + extra) {
        if (cap > SIZE_MAX / 2) return rotq_fail(ROTQ_ERR_NOMEM, "tokenizer: buffer of %zu bytes too large", b->n + extra);
        cap *= 2;
    }
    uint8_t *p = realloc(b->p, cap);
    if (!p) return rotq_fail(ROTQ_ERR_NOMEM, "tokenizer: out of memory (%zu bytes)", cap);
    b->p = p;
    b->cap = cap;
    return ROTQ_OK;
}

rotq_status rotq_tok_buf_put(rotq_tok_buf *b, const void *data, size_t n) {
    ROTQ_TRY(rotq_tok_buf_reserve(b, n));
    if (n) memcpy(b->p + b->n, data, n);
    b->n += n;
    return ROTQ_OK;
}

void rotq_tok_buf_free(rotq_tok_buf *b) {
    free(b->p);
    memset(b, 0, sizeof *b);
}

rotq_status rotq_tok_ids_push(rotq_tok_ids *v, int32_t id) {
    if (v->n == v->cap) {
        int64_t cap = v->cap ? v->cap * 2 : 64;
        int32_t *p = realloc(v->p, (size_t)cap * sizeof *p);
        if (!p) return rotq_fail(ROTQ_ERR_NOMEM, "tokenizer: out of memory (%lld ids)", (long long)cap);
        v->p = p;
        v->cap = cap;
    }
    v->p[v->n++] = id;
    return ROTQ_OK;
}

/* 64-bit FNV-1a, then a final mix so that the low bits (the table index) depend on every byte. */
uint64_t rotq_tok_hash(const void *data, size_t n) {
    const uint8_t *p = data;
    uint64_t h = 0xcbf29ce484222325ull;
    for (size_t i = 0; i < n; i++) h = (h ^ p[i]) * 0x100000001b3ull;
    h ^= h >> 33;
    h *= 0xff51afd7ed558ccdull;
    h ^= h >> 33;
    return h;
}

static rotq_status strmap_grow(rotq_tok_strmap *m) {
    uint64_t cap = m->cap ? m->cap * 2 : 1024;
    rotq_tok_strmap g = {0};
    g.keys = calloc(cap, sizeof *g.keys);
    g.lens = calloc(cap, sizeof *g.lens);
    g.vals = calloc(cap, sizeof *g.vals);
    if (!g.keys || !g.lens || !g.vals) {
        rotq_tok_strmap_free(&g);
        return rotq_fail(ROTQ_ERR_NOMEM, "tokenizer: out of memory (map of %llu)", (unsigned long long)cap);
    }
    g.cap = cap;
    for (uint64_t i = 0; i < m->cap; i++) {
        if (!m->keys[i]) continue;
        uint64_t j = rotq_tok_hash(m->keys[i], m->lens[i]) & (cap - 1);
        while (g.keys[j]) j = (j + 1) & (cap - 1);
        g.keys[j] = m->keys[i];
        g.lens[j] = m->lens[i];
        g.vals[j] = m->vals[i];
    }
    g.count = m->count;
    rotq_tok_strmap_free(m);
    *m = g;
    return ROTQ_OK;
}

/* Empty keys are stored with a non-NULL pointer, so a NULL key pointer always means an empty slot. */
static const uint8_t EMPTY_KEY[1] = {0};

rotq_status rotq_tok_strmap_put(rotq_tok_strmap *m, const void *key, size_t len, int64_t val) {
    if (len > UINT32_MAX) return rotq_fail(ROTQ_ERR_ARG, "tokenizer: key of %zu bytes", len);
    if ((m->count + 1) * 4 > m->cap * 3) ROTQ_TRY(strmap_grow(m));
    uint64_t j = rotq_tok_hash(key, len) & (m->cap - 1);
    while (m->keys[j]) {
        if (m->lens[j] == len && memcmp(m->keys[j], key, len) == 0) {
            m->vals[j] = val;
            return ROTQ_OK;
        }
        j = (j + 1) & (m->cap - 1);
    }
    m->keys[j] = len ? key : EMPTY_KEY;
    m->lens[j] = (uint32_t)len;
    m->vals[j] = val;
    m->count++;
    return ROTQ_OK;
}

int64_t rotq_tok_strmap_get(const rotq_tok_strmap *m, const void *key, size_t len) {
    if (!m->cap) return -1;
    uint64_t j = rotq_tok_hash(key, len) & (m->cap - 1);
    while (m->keys[j]) {
        if (m->lens[j] == len && memcmp(m->keys[j], key, len) == 0) return m->vals[j];
        j = (j + 1) & (m->cap - 1);
    }
    return -1;
}

void rotq_tok_strmap_free(rotq_tok_strmap *m) {
    free(m->keys);
    free(m->lens);
    free(m->vals);
    memset(m, 0, sizeof *m);
}

static uint64_t pair_key(int32_t l, int32_t r) { return (((uint64_t)(uint32_t)l << 32) | (uint32_t)r) + 1; }

static uint64_t pair_slot(uint64_t key, uint64_t cap) {
    uint64_t h = key * 0x9e3779b97f4a7c15ull;
    return (h ^ (h >> 29)) & (cap - 1);
}

static rotq_status pairmap_grow(rotq_tok_pairmap *m) {
    uint64_t cap = m->cap ? m->cap * 2 : 1024;
    rotq_tok_pairmap g = {0};
    g.keys = calloc(cap, sizeof *g.keys);
    g.rank = calloc(cap, sizeof *g.rank);
    g.merged = calloc(cap, sizeof *g.merged);
    if (!g.keys || !g.rank || !g.merged) {
        rotq_tok_pairmap_free(&g);
        return rotq_fail(ROTQ_ERR_NOMEM, "tokenizer: out of memory (merge map of %llu)", (unsigned long long)cap);
    }
    g.cap = cap;
    for (uint64_t i = 0; i < m->cap; i++) {
        if (!m->keys[i]) continue;
        uint64_t j = pair_slot(m->keys[i], cap);
        while (g.keys[j]) j = (j + 1) & (cap - 1);
        g.keys[j] = m->keys[i];
        g.rank[j] = m->rank[i];
        g.merged[j] = m->merged[i];
    }
    g.count = m->count;
    rotq_tok_pairmap_free(m);
    *m = g;
    return ROTQ_OK;
}

rotq_status rotq_tok_pairmap_put(rotq_tok_pairmap *m, int32_t left, int32_t right, int32_t rank, int32_t merged) {
    if ((m->count + 1) * 4 > m->cap * 3) ROTQ_TRY(pairmap_grow(m));
    uint64_t key = pair_key(left, right);
    uint64_t j = pair_slot(key, m->cap);
    while (m->keys[j]) {
        if (m->keys[j] == key) return ROTQ_OK; /* a repeated merge keeps its first (best) rank */
        j = (j + 1) & (m->cap - 1);
    }
    m->keys[j] = key;
    m->rank[j] = rank;
    m->merged[j] = merged;
    m->count++;
    return ROTQ_OK;
}

bool rotq_tok_pairmap_get(const rotq_tok_pairmap *m, int32_t left, int32_t right, int32_t *rank, int32_t *merged) {
    if (!m->cap) return false;
    uint64_t key = pair_key(left, right);
    uint64_t j = pair_slot(key, m->cap);
    while (m->keys[j]) {
        if (m->keys[j] == key) {
            *rank = m->rank[j];
            *merged = m->merged[j];
            return true;
        }
        j = (j + 1) & (m->cap - 1);
    }
    return false;
}

void rotq_tok_pairmap_free(rotq_tok_pairmap *m) {
    free(m->keys);
    free(m->rank);
    free(m->merged);
    memset(m, 0, sizeof *m);
}

size_t rotq_tok_utf8_decode(const uint8_t *p, size_t n, uint32_t *cp) {
    if (n == 0) return 0;
    uint8_t c = p[0];
    if (c < 0x80) {
        *cp = c;
        return 1;
    }
    size_t len;
    uint32_t v, min;
    if (c >= 0xC2 && c <= 0xDF) { len = 2; v = c & 0x1F; min = 0x80; }
    else if (c >= 0xE0 && c <= 0xEF) { len = 3; v = c & 0x0F; min = 0x800; }
    else if (c >= 0xF0 && c <= 0xF4) { len = 4; v = c & 0x07; min = 0x10000; }
    else return 0;
    if (n < len) return 0;
    for (size_t i = 1; i < len; i++) {
        if ((p[i] & 0xC0) != 0x80) return 0;
        v = (v << 6) | (p[i] & 0x3F);
    }
    if (v < min || v > 0x10FFFF || (v >= 0xD800 && v <= 0xDFFF)) return 0;
    *cp = v;
    return len;
}

size_t rotq_tok_utf8_len(const uint8_t *p, size_t n) {
    uint32_t cp;
    size_t len = rotq_tok_utf8_decode(p, n, &cp);
    return len ? len : (n ? 1 : 0);
}

size_t rotq_tok_utf8_encode(uint32_t cp, uint8_t out[4]) {
    if (cp < 0x80) { out[0] = (uint8_t)cp; return 1; }
    if (cp < 0x800) { out[0] = (uint8_t)(0xC0 | (cp >> 6)); out[1] = (uint8_t)(0x80 | (cp & 0x3F)); return 2; }
    if (cp < 0x10000) {
        out[0] = (uint8_t)(0xE0 | (cp >> 12));
        out[1] = (uint8_t)(0x80 | ((cp >> 6) & 0x3F));
        out[2] = (uint8_t)(0x80 | (cp & 0x3F));
        return 3;
    }
    out[0] = (uint8_t)(0xF0 | (cp >> 18));
    out[1] = (uint8_t)(0x80 | ((cp >> 12) & 0x3F));
    out[2] = (uint8_t)(0x80 | ((cp >> 6) & 0x3F));
    out[3] = (uint8_t)(0x80 | (cp & 0x3F));
    return 4;
}

/* GPT-2 keeps the printable Latin-1 bytes as themselves and moves the other 68 bytes, in order,
 * to U+0100.., so that every byte becomes a visible character. */
static bool byte_is_printable(unsigned b) {
    return (b >= 0x21 && b <= 0x7E) || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
}

uint32_t rotq_tok_byte_to_cp(uint8_t b) {
    if (byte_is_printable(b)) return b;
    uint32_t shifted = 0;
    for (unsigned i = 0; i < b; i++)
        if (!byte_is_printable(i)) shifted++;
    return 256 + shifted;
}

int32_t rotq_tok_cp_to_byte(uint32_t cp) {
    if (cp < 256) return byte_is_printable(cp) ? (int32_t)cp : -1;
    if (cp >= 256 + 68) return -1;
    uint32_t k = cp - 256;
    for (unsigned b = 0; b < 256; b++) {
        if (byte_is_printable(b)) continue;
        if (k == 0) return (int32_t)b;
        k--;
    }
    return -1;
}
