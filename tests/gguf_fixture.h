/* A tiny llama GGUF built byte by byte for the GGUF tests, independently of rotq's writer, with
 * knobs that make it lie in specific ways. Included by tests/test_gguf_*.c (static functions). */
#ifndef ROTQ_TEST_GGUF_FIXTURE_H
#define ROTQ_TEST_GGUF_FIXTURE_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { FX_HIDDEN = 32, FX_FF = 64, FX_LAYERS = 2, FX_HEADS = 4, FX_KV_HEADS = 2, FX_HEAD_DIM = 8, FX_VOCAB = 16 };
enum { FX_F32 = 0, FX_F16 = 1, FX_Q4_0 = 2, FX_Q8_0 = 8, FX_BF16 = 30 };
#define FX_MAX_TENSORS 32

typedef struct fx_buf {
    uint8_t *p;
    size_t n, cap;
} fx_buf;

static void fx_put(fx_buf *b, const void *d, size_t n) {
    if (b->n + n > b->cap) {
        b->cap = (b->n + n) * 2 + 256;
        b->p = realloc(b->p, b->cap);
        if (!b->p) abort();
    }
    if (n) memcpy(b->p + b->n, d, n);
    b->n += n;
}
static void fx_u32(fx_buf *b, uint32_t v) { fx_put(b, &v, 4); }
static void fx_u64(fx_buf *b, uint64_t v) { fx_put(b, &v, 8); }
static void fx_f32(fx_buf *b, float v) { fx_put(b, &v, 4); }
static void fx_str(fx_buf *b, const char *s) { fx_u64(b, strlen(s)); fx_put(b, s, strlen(s)); }
static void fx_pad(fx_buf *b, size_t align) {
    static const uint8_t z[64];
    while (b->n % align) fx_put(b, z, 1);
}

typedef struct fx_tensor {
    char name[96];
    uint32_t n_dims;
    uint64_t ne[6];        /* innermost first, as GGUF stores them */
    uint32_t type;
    uint8_t *data;
    size_t nbytes;
    bool offset_set;       /* knob: write `offset` instead of the real one */
    uint64_t offset;
} fx_tensor;

typedef struct fx_model {
    uint32_t magic, version;
    bool n_kv_set, n_tensors_set;
    uint64_t n_kv, n_tensors;       /* knobs: lie about the counts */
    uint64_t first_key_len;         /* knob: lie about the first key's length (0 = truthful) */
    const char *arch;
    uint32_t alignment;             /* written as general.alignment when nonzero */
    bool nested_array, bad_bool, dup_key, omit_block_count;
    uint32_t block_count;
    fx_tensor t[FX_MAX_TENSORS];
    int n_t;
    /* reference values the tests compare against (HF convention) */
    float q_hf[FX_LAYERS][FX_HIDDEN * FX_HIDDEN];
    uint16_t k_hf[FX_LAYERS][FX_KV_HEADS * FX_HEAD_DIM * FX_HIDDEN];
} fx_model;

static uint64_t fx_rng_state = 0x9E3779B97F4A7C15ull;
static uint32_t fx_rand(void) {
    fx_rng_state ^= fx_rng_state << 13;
    fx_rng_state ^= fx_rng_state >> 7;
    fx_rng_state ^= fx_rng_state << 17;
    return (uint32_t)(fx_rng_state >> 16);
}
static float fx_randf(void) { return (float)((int32_t)(fx_rand() % 20001) - 10000) / 10000.0f; }
/* A random finite half (exponent 1..29): raw bits, no conversion code needed. */
static uint16_t fx_rand_half(void) {
    uint16_t sign = (uint16_t)((fx_rand() & 1) << 15), exp = (uint16_t)(1 + fx_rand() % 29), man = (uint16_t)(fx_rand() & 0x3ff);
    return (uint16_t)(sign | (exp << 10) | man);
}

static fx_tensor *fx_add(fx_model *m, const char *name, uint32_t type, uint32_t n_dims, uint64_t ne0, uint64_t ne1) {
    fx_tensor *t = &m->t[m->n_t++];
    memset(t, 0, sizeof *t);
    snprintf(t->name, sizeof t->name, "%s", name);
    t->n_dims = n_dims;
    t->ne[0] = ne0;
    t->ne[1] = ne1;
    t->type = type;
    uint64_t n = ne0 * (n_dims > 1 ? ne1 : 1);
    switch (type) {
    case FX_F32: t->nbytes = n * 4; break;
    case FX_F16: case FX_BF16: t->nbytes = n * 2; break;
    case FX_Q8_0: t->nbytes = n / 32 * 34; break;
    case FX_Q4_0: t->nbytes = n / 32 * 18; break;
    }
    t->data = calloc(1, t->nbytes);
    return t;
}

/* llama.cpp's layout: within each head, GGUF row 2i+j holds HF row j*half+i. */
static void fx_permute_to_gguf(const uint8_t *hf, uint8_t *gguf, int64_t rows, int64_t n_head, size_t row_bytes) {
    int64_t hd = rows / n_head, half = hd / 2;
    for (int64_t h = 0; h < n_head; h++)
        for (int64_t i = 0; i < half; i++)
            for (int64_t j = 0; j < 2; j++)
                memcpy(gguf + (size_t)(h * hd + 2 * i + j) * row_bytes, hf + (size_t)(h * hd + j * half + i) * row_bytes, row_bytes);
}

static void fx_default(fx_model *m) {
    memset(m, 0, sizeof *m);
    fx_rng_state = 0x9E3779B97F4A7C15ull;
    m->magic = 0x46554747u;
    m->version = 3;
    m->arch = "llama";
    m->block_count = FX_LAYERS;
    float *f;
    f = (float *)fx_add(m, "token_embd.weight", FX_F32, 2, FX_HIDDEN, FX_VOCAB)->data;
    for (int i = 0; i < FX_HIDDEN * FX_VOCAB; i++) f[i] = fx_randf();
    for (int L = 0; L < FX_LAYERS; L++) {
        char name[96];
        snprintf(name, sizeof name, "blk.%d.attn_norm.weight", L);
        f = (float *)fx_add(m, name, FX_F32, 1, FX_HIDDEN, 0)->data;
        for (int i = 0; i < FX_HIDDEN; i++) f[i] = 1.0f + fx_randf() / 8;

        snprintf(name, sizeof name, "blk.%d.attn_q.weight", L);
        fx_tensor *t = fx_add(m, name, FX_F32, 2, FX_HIDDEN, FX_HIDDEN);
        for (int i = 0; i < FX_HIDDEN * FX_HIDDEN; i++) m->q_hf[L][i] = fx_randf();
        fx_permute_to_gguf((const uint8_t *)m->q_hf[L], t->data, FX_HIDDEN, FX_HEADS, FX_HIDDEN * 4);

        snprintf(name, sizeof name, "blk.%d.attn_k.weight", L);
        t = fx_add(m, name, FX_F16, 2, FX_HIDDEN, FX_KV_HEADS * FX_HEAD_DIM);
        for (int i = 0; i < FX_KV_HEADS * FX_HEAD_DIM * FX_HIDDEN; i++) m->k_hf[L][i] = fx_rand_half();
        fx_permute_to_gguf((const uint8_t *)m->k_hf[L], t->data, FX_KV_HEADS * FX_HEAD_DIM, FX_KV_HEADS, FX_HIDDEN * 2);

        snprintf(name, sizeof name, "blk.%d.attn_v.weight", L);
        t = fx_add(m, name, FX_BF16, 2, FX_HIDDEN, FX_KV_HEADS * FX_HEAD_DIM);
        uint16_t *h = (uint16_t *)t->data;
        for (size_t i = 0; i < t->nbytes / 2; i++) h[i] = (uint16_t)(0x3c00 + (fx_rand() % 0x800) - 0x400);

        snprintf(name, sizeof name, "blk.%d.attn_output.weight", L);
        f = (float *)fx_add(m, name, FX_F32, 2, FX_HIDDEN, FX_HIDDEN)->data;
        for (int i = 0; i < FX_HIDDEN * FX_HIDDEN; i++) f[i] = fx_randf();

        snprintf(name, sizeof name, "blk.%d.ffn_norm.weight", L);
        f = (float *)fx_add(m, name, FX_F32, 1, FX_HIDDEN, 0)->data;
        for (int i = 0; i < FX_HIDDEN; i++) f[i] = 1.0f + fx_randf() / 8;

        snprintf(name, sizeof name, "blk.%d.ffn_gate.weight", L);
        t = fx_add(m, name, FX_Q8_0, 2, FX_HIDDEN, FX_FF);
        for (size_t b = 0; b < t->nbytes / 34; b++) {
            uint16_t d = fx_rand_half();
            memcpy(t->data + b * 34, &d, 2);
            for (int j = 0; j < 32; j++) t->data[b * 34 + 2 + j] = (uint8_t)fx_rand();
        }

        snprintf(name, sizeof name, "blk.%d.ffn_up.weight", L);
        t = fx_add(m, name, FX_Q4_0, 2, FX_HIDDEN, FX_FF);
        for (size_t b = 0; b < t->nbytes / 18; b++) {
            uint16_t d = fx_rand_half();
            memcpy(t->data + b * 18, &d, 2);
            for (int j = 0; j < 16; j++) t->data[b * 18 + 2 + j] = (uint8_t)fx_rand();
        }

        snprintf(name, sizeof name, "blk.%d.ffn_down.weight", L);
        f = (float *)fx_add(m, name, FX_F32, 2, FX_FF, FX_HIDDEN)->data;
        for (int i = 0; i < FX_FF * FX_HIDDEN; i++) f[i] = fx_randf();
    }
    f = (float *)fx_add(m, "output_norm.weight", FX_F32, 1, FX_HIDDEN, 0)->data;
    for (int i = 0; i < FX_HIDDEN; i++) f[i] = 1.0f;
}

static void fx_free(fx_model *m) {
    for (int i = 0; i < m->n_t; i++) free(m->t[i].data);
    m->n_t = 0;
}

static fx_tensor *fx_find(fx_model *m, const char *name) {
    for (int i = 0; i < m->n_t; i++)
        if (strcmp(m->t[i].name, name) == 0) return &m->t[i];
    return NULL;
}

static void fx_key(fx_buf *b, const char *key, uint32_t type) { fx_str(b, key); fx_u32(b, type); }

/* Serializes m (with its knobs) into a fresh buffer. */
static fx_buf fx_serialize(const fx_model *m) {
    fx_buf kv = {0}, b = {0};
    uint64_t n_kv = 0;
    const char *a = m->arch;
    char key[128];
    /* first key, possibly with a lying length */
    fx_u64(&kv, m->first_key_len ? m->first_key_len : strlen("general.architecture"));
    fx_put(&kv, "general.architecture", strlen("general.architecture"));
    fx_u32(&kv, 8);
    fx_str(&kv, a);
    n_kv++;
    if (m->alignment) { fx_key(&kv, "general.alignment", 4); fx_u32(&kv, m->alignment); n_kv++; }
    struct { const char *k; uint32_t v; } ints[] = {
        {"context_length", 256}, {"embedding_length", FX_HIDDEN}, {"block_count", m->block_count},
        {"feed_forward_length", FX_FF}, {"attention.head_count", FX_HEADS}, {"attention.head_count_kv", FX_KV_HEADS},
        {"vocab_size", FX_VOCAB},
    };
    for (size_t i = 0; i < sizeof ints / sizeof ints[0]; i++) {
        if (m->omit_block_count && strcmp(ints[i].k, "block_count") == 0) continue;
        snprintf(key, sizeof key, "%s.%s", a, ints[i].k);
        fx_key(&kv, key, 4);
        fx_u32(&kv, ints[i].v);
        n_kv++;
    }
    snprintf(key, sizeof key, "%s.attention.layer_norm_rms_epsilon", a);
    fx_key(&kv, key, 6); fx_f32(&kv, 1e-5f); n_kv++;
    snprintf(key, sizeof key, "%s.rope.freq_base", a);
    fx_key(&kv, key, 6); fx_f32(&kv, 10000.0f); n_kv++;
    fx_key(&kv, "tokenizer.ggml.model", 8); fx_str(&kv, "gpt2"); n_kv++;
    fx_key(&kv, "tokenizer.ggml.tokens", 9); fx_u32(&kv, 8); fx_u64(&kv, FX_VOCAB);
    for (int i = 0; i < FX_VOCAB; i++) { char tok[16]; snprintf(tok, sizeof tok, "t%d", i); fx_str(&kv, tok); }
    n_kv++;
    fx_key(&kv, "tokenizer.ggml.token_type", 9); fx_u32(&kv, 5); fx_u64(&kv, FX_VOCAB);
    for (int i = 0; i < FX_VOCAB; i++) fx_u32(&kv, 1);
    n_kv++;
    fx_key(&kv, "tokenizer.ggml.add_bos_token", 7); { uint8_t v = m->bad_bool ? 7 : 1; fx_put(&kv, &v, 1); } n_kv++;
    fx_key(&kv, "general.tags", 9); fx_u32(&kv, 8); fx_u64(&kv, 2); fx_str(&kv, "a"); fx_str(&kv, "bb"); n_kv++;
    fx_key(&kv, "general.some_f64", 12); { double v = 0.25; fx_put(&kv, &v, 8); } n_kv++;
    if (m->nested_array) {
        fx_key(&kv, "general.nested", 9); fx_u32(&kv, 9); fx_u64(&kv, 1); fx_u32(&kv, 4); fx_u64(&kv, 1); fx_u32(&kv, 5);
        n_kv++;
    }
    if (m->dup_key) { fx_key(&kv, "general.tags", 4); fx_u32(&kv, 1); n_kv++; }

    fx_u32(&b, m->magic);
    fx_u32(&b, m->version);
    fx_u64(&b, m->n_tensors_set ? m->n_tensors : (uint64_t)m->n_t);
    fx_u64(&b, m->n_kv_set ? m->n_kv : n_kv);
    fx_put(&b, kv.p, kv.n);
    free(kv.p);
    size_t align = m->alignment >= 8 ? m->alignment : 32;
    uint64_t off = 0;
    for (int i = 0; i < m->n_t; i++) {
        const fx_tensor *t = &m->t[i];
        fx_str(&b, t->name);
        fx_u32(&b, t->n_dims);
        for (uint32_t d = 0; d < t->n_dims; d++) fx_u64(&b, t->ne[d]);
        fx_u32(&b, t->type);
        fx_u64(&b, t->offset_set ? t->offset : off);
        off += (t->nbytes + align - 1) / align * align;
    }
    fx_pad(&b, align);
    for (int i = 0; i < m->n_t; i++) {
        fx_put(&b, m->t[i].data, m->t[i].nbytes);
        fx_pad(&b, align);
    }
    return b;
}

static bool fx_write(const char *path, const void *data, size_t n) {
    /* A fresh file each time: truncating and rewriting makes ext4 flush it (auto_da_alloc). */
    remove(path);
    FILE *f = fopen(path, "wb");
    if (!f) return false;
    bool ok = fwrite(data, 1, n, f) == n;
    return fclose(f) == 0 && ok;
}

#endif
