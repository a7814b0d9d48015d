/* The two merge models: BPE by merge rank (Hugging Face `tokenizers`, GGUF "gpt2") and
 * SentencePiece-style BPE by piece score (llama2.c, GGUF "llama"). */
#include <stdlib.h>
#include <string.h>

#include "tok/tok.h"

static rotq_status scratch_arrays(rotq_tok_scratch *sc, size_t sym_bytes, size_t heap_bytes) {
    if (sym_bytes > sc->sym_cap) {
        void *p = realloc(sc->sym, sym_bytes);
        if (!p) return rotq_fail(ROTQ_ERR_NOMEM, "tokenizer: out of memory (%zu bytes of symbols)", sym_bytes);
        sc->sym = p;
        sc->sym_cap = sym_bytes;
    }
    if (heap_bytes > sc->heap_cap) {
        void *p = realloc(sc->heap, heap_bytes);
        if (!p) return rotq_fail(ROTQ_ERR_NOMEM, "tokenizer: out of memory (%zu bytes of merge queue)", heap_bytes);
        sc->heap = p;
        sc->heap_cap = heap_bytes;
    }
    return ROTQ_OK;
}

/* ---- BPE by rank --------------------------------------------------------------------------- */

typedef struct bpe_sym {
    int32_t id, prev, next;
    uint32_t len; /* bytes covered; 0 once merged into its left neighbour */
} bpe_sym;

typedef struct bpe_merge {
    int32_t rank, pos, merged;
} bpe_merge;

/* Lowest rank first, then leftmost, as HF's merge queue orders them. */
static bool bpe_before(const bpe_merge *a, const bpe_merge *b) {
    return a->rank != b->rank ? a->rank < b->rank : a->pos < b->pos;
}

static void bpe_heap_push(bpe_merge *h, size_t *n, bpe_merge m) {
    size_t i = (*n)++;
    while (i > 0) {
        size_t p = (i - 1) / 2;
        if (!bpe_before(&m, &h[p])) break;
        h[i] = h[p];
        i = p;
    }
    h[i] = m;
}

static bpe_merge bpe_heap_pop(bpe_merge *h, size_t *n) {
    bpe_merge top = h[0], last = h[--*n];
    size_t i = 0;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= *n) break;
        if (c + 1 < *n && bpe_before(&h[c + 1], &h[c])) c++;
        if (!bpe_before(&h[c], &last)) break;
        h[i] = h[c];
        i = c;
    }
    if (*n) h[i] = last;
    return top;
}

/* Adds the symbols of one character that is not in the vocabulary: its <0xNN> byte tokens when
 * byte fallback is on and all exist, else <unk> (fused with a preceding <unk> when asked). */
static void bpe_unknown(const rotq_tokenizer *t, const uint8_t *c, size_t cl, bpe_sym *sym, size_t *ns,
                        int32_t *pending_unk, uint32_t *pending_len) {
    if (t->byte_fallback) {
        bool all = true;
        for (size_t k = 0; k < cl; k++) all = all && t->byte_id[c[k]] >= 0;
        if (all) {
            for (size_t k = 0; k < cl; k++) sym[(*ns)++] = (bpe_sym){t->byte_id[c[k]], 0, 0, 1};
            return;
        }
    }
    if (t->unk_id < 0) return; /* HF drops it */
    if (*pending_unk >= 0 && t->fuse_unk) {
        *pending_len += (uint32_t)cl;
        return;
    }
    if (*pending_unk >= 0) sym[(*ns)++] = (bpe_sym){*pending_unk, 0, 0, *pending_len};
    *pending_unk = t->unk_id;
    *pending_len = (uint32_t)cl;
}

rotq_status rotq_tok_bpe_word(const rotq_tokenizer *t, const uint8_t *w, size_t n, rotq_tok_ids *out,
                              rotq_tok_scratch *sc) {
    if (n == 0) return ROTQ_OK;
    if (n > (size_t)INT32_MAX / 4) return rotq_fail(ROTQ_ERR_ARG, "tokenizer: word of %zu bytes", n);
    /* at most one symbol per byte, and one queued merge per symbol and per merge done */
    ROTQ_TRY(scratch_arrays(sc, n * sizeof(bpe_sym), 3 * n * sizeof(bpe_merge)));
    bpe_sym *sym = sc->sym;
    size_t ns = 0;
    int32_t pending_unk = -1;
    uint32_t pending_len = 0;
    for (size_t i = 0; i < n;) {
        size_t cl = t->byte_level ? 1 : rotq_tok_utf8_len(w + i, n - i);
        int32_t id = t->byte_level ? t->byte_id[w[i]] : rotq_tok_lookup(t, w + i, cl);
        if (id >= 0) {
            if (pending_unk >= 0) {
                sym[ns++] = (bpe_sym){pending_unk, 0, 0, pending_len};
                pending_unk = -1;
            }
            sym[ns++] = (bpe_sym){id, 0, 0, (uint32_t)cl};
        } else {
            bpe_unknown(t, w + i, cl, sym, &ns, &pending_unk, &pending_len);
        }
        i += cl;
    }
    if (pending_unk >= 0) sym[ns++] = (bpe_sym){pending_unk, 0, 0, pending_len};
    for (size_t i = 0; i < ns; i++) {
        sym[i].prev = (int32_t)i - 1;
        sym[i].next = i + 1 < ns ? (int32_t)i + 1 : -1;
    }

    bpe_merge *heap = sc->heap;
    size_t nh = 0;
    int32_t rank, merged;
    for (size_t i = 0; i + 1 < ns; i++)
        if (rotq_tok_pairmap_get(&t->merges, sym[i].id, sym[i + 1].id, &rank, &merged))
            bpe_heap_push(heap, &nh, (bpe_merge){rank, (int32_t)i, merged});
    while (nh) {
        bpe_merge top = bpe_heap_pop(heap, &nh);
        bpe_sym *cur = &sym[top.pos];
        if (cur->len == 0 || cur->next < 0) continue;
        int32_t right = cur->next;
        /* stale entries are recognized as HF does: the pair now there must merge into the same id */
        if (!rotq_tok_pairmap_get(&t->merges, cur->id, sym[right].id, &rank, &merged) || merged != top.merged) continue;
        cur->id = top.merged;
        cur->len += sym[right].len;
        cur->next = sym[right].next;
        sym[right].len = 0;
        if (cur->next >= 0) sym[cur->next].prev = top.pos;
        if (cur->prev >= 0 && rotq_tok_pairmap_get(&t->merges, sym[cur->prev].id, cur->id, &rank, &merged))
            bpe_heap_push(heap, &nh, (bpe_merge){rank, cur->prev, merged});
        if (cur->next >= 0 && rotq_tok_pairmap_get(&t->merges, cur->id, sym[cur->next].id, &rank, &merged))
            bpe_heap_push(heap, &nh, (bpe_merge){rank, top.pos, merged});
    }
    for (int32_t i = ns ? 0 : -1; i >= 0; i = sym[i].next) ROTQ_TRY(rotq_tok_ids_push(out, sym[i].id));
    return ROTQ_OK;
}

/* ---- where long words may be cut ----------------------------------------------------------- */

/* The code point of the well-formed character ending at s[p) (0 when none). */
static bool cp_before(const uint8_t *s, size_t p, uint32_t *cp) {
    size_t k = p - 1;
    while (k > 0 && (s[k] & 0xC0) == 0x80 && p - k < 4) k--;
    return rotq_tok_utf8_decode(s + k, p - k, cp) == p - k;
}

bool rotq_tok_safe_cut(const rotq_tokenizer *t, const uint8_t *s, size_t n, size_t p) {
    int32_t rank, merged;
    if (p == 0 || p >= n) return false;
    if (t->byte_level) return !rotq_tok_pairmap_get(&t->bigrams, s[p - 1], s[p], &rank, &merged);
    uint32_t a, b;
    size_t bl = rotq_tok_utf8_decode(s + p, n - p, &b);
    if (!bl || !cp_before(s, p, &a)) return false;
    if (t->model == ROTQ_TOK_BPE) {
        /* a character outside the vocabulary becomes <0xNN>/<unk> symbols, whose text is not the
           character's: only cut between characters that are symbols of their own */
        uint8_t enc[4];
        size_t al = rotq_tok_utf8_encode(a, enc);
        if (rotq_tok_lookup(t, enc, al) < 0 || rotq_tok_lookup(t, s + p, bl) < 0) return false;
    }
    return !rotq_tok_pairmap_get(&t->bigrams, (int32_t)a, (int32_t)b, &rank, &merged);
}

/* ---- SentencePiece-style BPE by score ------------------------------------------------------ */

typedef struct spm_sym {
    uint32_t start, len; /* bytes of the fragment; len 0 once merged away */
    int32_t prev, next;
} spm_sym;

typedef struct spm_bigram {
    float score;
    int32_t left, right;
    uint32_t len;
} spm_bigram;

/* Highest score first, then leftmost (llama2.c takes the first pair with the strictly best score). */
static bool spm_before(const spm_bigram *a, const spm_bigram *b) {
    return a->score != b->score ? a->score > b->score : a->left < b->left;
}

static void spm_heap_push(spm_bigram *h, size_t *n, spm_bigram m) {
    size_t i = (*n)++;
    while (i > 0) {
        size_t p = (i - 1) / 2;
        if (!spm_before(&m, &h[p])) break;
        h[i] = h[p];
        i = p;
    }
    h[i] = m;
}

static spm_bigram spm_heap_pop(spm_bigram *h, size_t *n) {
    spm_bigram top = h[0], last = h[--*n];
    size_t i = 0;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= *n) break;
        if (c + 1 < *n && spm_before(&h[c + 1], &h[c])) c++;
        if (!spm_before(&h[c], &last)) break;
        h[i] = h[c];
        i = c;
    }
    if (*n) h[i] = last;
    return top;
}

static void spm_try_pair(const rotq_tokenizer *t, const uint8_t *text, const spm_sym *sym, int32_t l, int32_t r,
                         spm_bigram *heap, size_t *nh) {
    if (l < 0 || r < 0) return;
    uint32_t len = sym[l].len + sym[r].len;
    int32_t id = rotq_tok_lookup(t, text + sym[l].start, len);
    if (id < 0) return;
    spm_heap_push(heap, nh, (spm_bigram){t->score ? t->score[id] : 0.0f, l, r, len});
}

/* Length of the "character" starting at p: llama2.c groups a byte with the continuation bytes
 * that follow (4 at most); llama.cpp reads the length from the lead byte. Same on valid UTF-8. */
static size_t spm_char_len(const rotq_tokenizer *t, const uint8_t *p, size_t n) {
    size_t len = 1;
    if (t->llama2c_chars) {
        while (len < n && len < 4 && (p[len] & 0xC0) == 0x80) len++;
        return len;
    }
    static const uint8_t by_high_nibble[16] = {1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 2, 2, 3, 4};
    len = by_high_nibble[p[0] >> 4];
    return len < n ? len : n;
}

rotq_status rotq_tok_spm_fragment(const rotq_tokenizer *t, const uint8_t *text, size_t n, rotq_tok_ids *out,
                                  rotq_tok_scratch *sc) {
    if (n == 0) return ROTQ_OK;
    if (n > (size_t)INT32_MAX / 4) return rotq_fail(ROTQ_ERR_ARG, "tokenizer: text fragment of %zu bytes", n);
    ROTQ_TRY(scratch_arrays(sc, n * sizeof(spm_sym), 3 * n * sizeof(spm_bigram)));
    spm_sym *sym = sc->sym;
    size_t ns = 0;
    for (size_t i = 0; i < n;) {
        size_t cl = spm_char_len(t, text + i, n - i);
        sym[ns] = (spm_sym){(uint32_t)i, (uint32_t)cl, (int32_t)ns - 1, -1};
        if (ns) sym[ns - 1].next = (int32_t)ns;
        ns++;
        i += cl;
    }
    spm_bigram *heap = sc->heap;
    size_t nh = 0;
    for (size_t i = 0; i + 1 < ns; i++) spm_try_pair(t, text, sym, (int32_t)i, (int32_t)i + 1, heap, &nh);
    while (nh) {
        spm_bigram b = spm_heap_pop(heap, &nh);
        spm_sym *l = &sym[b.left], *r = &sym[b.right];
        if (l->len == 0 || r->len == 0 || l->next != b.right || l->len + r->len != b.len) continue; /* stale */
        l->len += r->len;
        r->len = 0;
        l->next = r->next;
        if (l->next >= 0) sym[l->next].prev = b.left;
        spm_try_pair(t, text, sym, l->prev, b.left, heap, &nh);
        spm_try_pair(t, text, sym, b.left, l->next, heap, &nh);
    }
    for (int32_t i = 0; i >= 0; i = sym[i].next) {
        int32_t id = rotq_tok_lookup(t, text + sym[i].start, sym[i].len);
        if (id >= 0) {
            ROTQ_TRY(rotq_tok_ids_push(out, id));
            continue;
        }
        for (uint32_t k = 0; k < sym[i].len; k++) { /* a character outside the vocabulary: its bytes */
            int32_t bid = t->byte_id[text[sym[i].start + k]];
            if (bid < 0) bid = t->unk_id;
            if (bid >= 0) ROTQ_TRY(rotq_tok_ids_push(out, bid));
        }
    }
    return ROTQ_OK;
}

rotq_status rotq_tok_spm_text(const rotq_tokenizer *t, const uint8_t *text, size_t n, rotq_tok_ids *out,
                              rotq_tok_scratch *sc) {
    /* merges never cross a safe cut, so the pieces between cuts are independent problems */
    size_t start = 0, p = 0;
    while (p < n) {
        p += spm_char_len(t, text + p, n - p);
        if (p < n && p - start >= ROTQ_TOK_CUT_MIN && rotq_tok_safe_cut(t, text, n, p)) {
            ROTQ_TRY(rotq_tok_spm_fragment(t, text + start, p - start, out, sc));
            start = p;
        }
    }
    return rotq_tok_spm_fragment(t, text + start, n - start, out, sc);
}
