/* GGUF load and save on a hand-built tiny llama (tests/gguf_fixture.h): hyper-parameters, shapes
 * turned outermost-first, float tensors left in the mapping, quantized ones dequantized (checked
 * against the block definition computed here), llama.cpp's Q/K permutation undone on load and
 * redone on save, metadata kept, and the writer's refusals. */
#include <dirent.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "arch/arch.h"
#include "core/model.h"
#include "gguf_fixture.h"
#include "testutil.h"

/* fx_rand_half only makes normal halves: value = (1 + man/1024) * 2^(exp-15), exact in float. */
static float normal_half(uint16_t h) {
    int exp = (h >> 10) & 0x1f, man = h & 0x3ff;
    float v = ldexpf(1.0f + (float)man / 1024.0f, exp - 15);
    return (h & 0x8000) ? -v : v;
}

static bool in_mapping(const rotq_model *m, const void *p) {
    for (int i = 0; i < m->n_maps; i++) {
        const uint8_t *a = m->maps[i].addr;
        if ((const uint8_t *)p >= a && (const uint8_t *)p < a + m->maps[i].size) return true;
    }
    return false;
}

static rotq_model *load(const char *path) {
    rotq_model *m = NULL;
    rotq_status s = rotq_model_load(path, NULL, &m);
    CHECK(s == ROTQ_OK, "load %s: %s", path, rotq_last_error());
    return m;
}

static void check_layer_values(const rotq_model *m, fx_model *fx, const char *what) {
    char name[128];
    for (int L = 0; L < FX_LAYERS; L++) {
        snprintf(name, sizeof name, "model.layers.%d.self_attn.q_proj.weight", L);
        const rotq_tensor *q = rotq_model_find(m, name);
        CHECK(q && q->dtype == ROTQ_F32 && q->shape[0] == FX_HIDDEN && q->shape[1] == FX_HIDDEN, "%s: %s", what, name);
        if (q) CHECK(memcmp(q->data, fx->q_hf[L], sizeof fx->q_hf[L]) == 0, "%s: %s is not the HF-order weight", what, name);

        snprintf(name, sizeof name, "model.layers.%d.self_attn.k_proj.weight", L);
        const rotq_tensor *k = rotq_model_find(m, name);
        CHECK(k && k->dtype == ROTQ_F16 && k->shape[0] == FX_KV_HEADS * FX_HEAD_DIM && k->shape[1] == FX_HIDDEN, "%s: %s", what, name);
        if (k) CHECK(memcmp(k->data, fx->k_hf[L], sizeof fx->k_hf[L]) == 0, "%s: %s is not the HF-order weight", what, name);

        snprintf(name, sizeof name, "blk.%d.attn_v.weight", L);
        const fx_tensor *fv = fx_find(fx, name);
        snprintf(name, sizeof name, "model.layers.%d.self_attn.v_proj.weight", L);
        const rotq_tensor *v = rotq_model_find(m, name);
        CHECK(v && v->dtype == ROTQ_BF16 && v->nbytes == fv->nbytes, "%s: %s", what, name);
        if (v) CHECK(memcmp(v->data, fv->data, fv->nbytes) == 0, "%s: %s bytes differ", what, name);

        /* Q8_0: y = d * q per 32-block */
        snprintf(name, sizeof name, "blk.%d.ffn_gate.weight", L);
        const fx_tensor *fg = fx_find(fx, name);
        snprintf(name, sizeof name, "model.layers.%d.mlp.gate_proj.weight", L);
        const rotq_tensor *g = rotq_model_find(m, name);
        CHECK(g && g->dtype == ROTQ_F32 && g->shape[0] == FX_FF && g->shape[1] == FX_HIDDEN, "%s: %s", what, name);
        int bad = 0;
        for (int i = 0; g && i < FX_FF * FX_HIDDEN; i++) {
            const uint8_t *blk = fg->data + (i / 32) * 34;
            uint16_t d;
            memcpy(&d, blk, 2);
            float want = normal_half(d) * (float)(int8_t)blk[2 + i % 32];
            bad += ((const float *)g->data)[i] != want;
        }
        CHECK(bad == 0, "%s: %s: %d Q8_0 values differ from d*q", what, name, bad);

        /* Q4_0: y = d * (nibble - 8); low nibbles are elements 0..15 of the block */
        snprintf(name, sizeof name, "blk.%d.ffn_up.weight", L);
        const fx_tensor *fu = fx_find(fx, name);
        snprintf(name, sizeof name, "model.layers.%d.mlp.up_proj.weight", L);
        const rotq_tensor *u = rotq_model_find(m, name);
        CHECK(u && u->dtype == ROTQ_F32, "%s: %s", what, name);
        bad = 0;
        for (int i = 0; u && i < FX_FF * FX_HIDDEN; i++) {
            const uint8_t *blk = fu->data + (i / 32) * 18;
            uint16_t d;
            memcpy(&d, blk, 2);
            int j = i % 32, nib = j < 16 ? blk[2 + j] & 15 : blk[2 + j - 16] >> 4;
            bad += ((const float *)u->data)[i] != normal_half(d) * (float)(nib - 8);
        }
        CHECK(bad == 0, "%s: %s: %d Q4_0 values differ from d*(q-8)", what, name, bad);
    }
}

static int count_files(const char *dir) {
    DIR *d = opendir(dir);
    int n = 0;
    for (struct dirent *e; d && (e = readdir(d));)
        if (e->d_name[0] != '.') n++;
    if (d) closedir(d);
    return n;
}

static bool same_file_bytes(const char *path, const fx_buf *b) {
    uint8_t *data;
    uint64_t size;
    if (rotq_read_file(path, &data, &size) != ROTQ_OK) return false;
    bool same = size == b->n && memcmp(data, b->p, size) == 0;
    free(data);
    return same;
}

int main(void) {
    const char *dir = tu_tmpdir();
    char in[4096], out[4096], out16[4096], v2[4096], missing[4096];
    snprintf(in, sizeof in, "%s/tiny.gguf", dir);
    snprintf(out, sizeof out, "%s/saved.gguf", dir);
    snprintf(out16, sizeof out16, "%s/saved16.gguf", dir);
    snprintf(v2, sizeof v2, "%s/tiny-v2.gguf", dir);
    snprintf(missing, sizeof missing, "%s/no/such/dir/x.gguf", dir);

    fx_model *fx = malloc(sizeof *fx);
    fx_default(fx);
    fx_buf file = fx_serialize(fx);
    CHECK(fx_write(in, file.p, file.n), "cannot write %s", in);

    rotq_model *m = load(in);
    if (!m) return tu_finish("test_gguf_io");
    rotq_hparams hp;
    rotq_model_hparams(m, &hp);
    CHECK(strcmp(hp.arch, "llama") == 0, "arch %s", hp.arch);
    CHECK(hp.hidden == FX_HIDDEN && hp.intermediate == FX_FF && hp.n_layers == FX_LAYERS && hp.n_heads == FX_HEADS &&
              hp.n_kv_heads == FX_KV_HEADS && hp.head_dim == FX_HEAD_DIM && hp.vocab == FX_VOCAB && hp.max_pos == 256,
          "hparams %lld %lld %lld %lld %lld %lld %lld %lld", (long long)hp.hidden, (long long)hp.intermediate,
          (long long)hp.n_layers, (long long)hp.n_heads, (long long)hp.n_kv_heads, (long long)hp.head_dim,
          (long long)hp.vocab, (long long)hp.max_pos);
    CHECK(hp.norm_eps == (double)1e-5f && hp.rope_theta == 10000.0, "eps %g theta %g", hp.norm_eps, hp.rope_theta);
    CHECK(hp.tied_embeddings, "no output.weight: embeddings must be tied");
    CHECK(m->n_tensors == 2 + 9 * FX_LAYERS, "%lld tensors", (long long)m->n_tensors);
    CHECK(m->source_format == ROTQ_FORMAT_GGUF, "source format %d", (int)m->source_format);

    const rotq_tensor *e = rotq_model_find(m, "model.embed_tokens.weight");
    CHECK(e && e->n_dims == 2 && e->shape[0] == FX_VOCAB && e->shape[1] == FX_HIDDEN, "embedding shape");
    if (e) {
        CHECK(!e->owned && in_mapping(m, e->data), "F32 embedding was copied instead of mapped");
        CHECK(memcmp(e->data, fx->t[0].data, fx->t[0].nbytes) == 0, "embedding bytes differ");
    }
    const rotq_tensor *v0 = rotq_model_find(m, "model.layers.0.self_attn.v_proj.weight");
    CHECK(v0 && !v0->owned && in_mapping(m, v0->data), "BF16 v_proj was copied instead of mapped");
    const rotq_tensor *n0 = rotq_model_find(m, "model.norm.weight");
    CHECK(n0 && n0->n_dims == 1 && n0->shape[0] == FX_HIDDEN && !n0->owned, "final norm");
    check_layer_values(m, fx, "load");

    const rotq_meta *toks = rotq_model_meta(m, "tokenizer.ggml.tokens");
    CHECK(toks && toks->type == ROTQ_META_ARRAY && toks->arr_type == ROTQ_META_STRING && toks->n == FX_VOCAB, "tokens");
    if (toks && toks->n == FX_VOCAB) {
        char **s = toks->arr;
        CHECK(strcmp(s[11], "t11") == 0 && toks->arr_str_len[11] == 3, "token 11 is %s", s[11]);
    }
    const rotq_meta *tt = rotq_model_meta(m, "tokenizer.ggml.token_type");
    CHECK(tt && tt->arr_type == ROTQ_META_I32 && tt->n == FX_VOCAB && ((int32_t *)tt->arr)[5] == 1, "token types");
    const rotq_meta *bos = rotq_model_meta(m, "tokenizer.ggml.add_bos_token");
    CHECK(bos && bos->type == ROTQ_META_BOOL && bos->v.b, "add_bos_token");
    const rotq_meta *f64 = rotq_model_meta(m, "general.some_f64");
    CHECK(f64 && f64->type == ROTQ_META_F64 && f64->v.f == 0.25, "f64 key");
    const rotq_meta *model = rotq_model_meta(m, "tokenizer.ggml.model");
    CHECK(model && model->type == ROTQ_META_STRING && strcmp(model->str, "gpt2") == 0, "tokenizer model");

    /* Save keeping dtypes: reload gives the same tensors bit for bit, the file keeps the metadata. */
    rotq_status s = rotq_save_gguf(m, out, ROTQ_DTYPE_INVALID);
    CHECK(s == ROTQ_OK, "save: %s", rotq_last_error());
    rotq_model *r = load(out);
    if (r) {
        CHECK(r->n_tensors == m->n_tensors, "reloaded %lld tensors, saved %lld", (long long)r->n_tensors, (long long)m->n_tensors);
        for (int64_t i = 0; i < m->n_tensors; i++) {
            const rotq_tensor *a = &m->tensors[i], *b = rotq_model_find(r, a->name);
            CHECK(b && b->dtype == a->dtype && b->n_dims == a->n_dims && b->nbytes == a->nbytes &&
                      memcmp(b->shape, a->shape, sizeof a->shape) == 0 && memcmp(a->data, b->data, a->nbytes) == 0,
                  "tensor %s differs after save/load", a->name);
        }
        check_layer_values(r, fx, "reload");
        rotq_hparams h2;
        rotq_model_hparams(r, &h2);
        CHECK(h2.hidden == hp.hidden && h2.n_layers == hp.n_layers && h2.n_kv_heads == hp.n_kv_heads &&
                  h2.vocab == hp.vocab && h2.norm_eps == hp.norm_eps && h2.rope_theta == hp.rope_theta &&
                  h2.max_pos == hp.max_pos && h2.tied_embeddings,
              "hparams changed through save/load");
        const rotq_meta *t2 = rotq_model_meta(r, "tokenizer.ggml.tokens");
        CHECK(t2 && t2->n == FX_VOCAB && strcmp(((char **)t2->arr)[15], "t15") == 0, "tokens lost on save");
        const rotq_meta *f2 = rotq_model_meta(r, "general.some_f64");
        CHECK(f2 && f2->type == ROTQ_META_F64 && f2->v.f == 0.25, "general.* key lost on save");
        CHECK(rotq_model_find(r, "lm_head.weight") == NULL, "tied model gained an lm_head");
        /* Saving the reloaded model again reproduces the first output byte for byte. */
        char again[4096];
        snprintf(again, sizeof again, "%s/again.gguf", dir);
        CHECK(rotq_save_gguf(r, again, ROTQ_DTYPE_INVALID) == ROTQ_OK, "second save: %s", rotq_last_error());
        uint8_t *a1, *a2;
        uint64_t n1, n2;
        if (rotq_read_file(out, &a1, &n1) == ROTQ_OK && rotq_read_file(again, &a2, &n2) == ROTQ_OK) {
            CHECK(n1 == n2 && memcmp(a1, a2, n1) == 0, "save(load(save(x))) differs from save(x)");
            CHECK(n1 % 32 == 0, "file size %llu not padded to the alignment", (unsigned long long)n1);
            free(a1);
            free(a2);
        }
        remove(again);
        rotq_model_free(r);
    }

    /* F16 output: matrices in F16, 1-D tensors kept F32 (llama.cpp's convention). */
    s = rotq_save_gguf(m, out16, ROTQ_F16);
    CHECK(s == ROTQ_OK, "save f16: %s", rotq_last_error());
    r = load(out16);
    if (r) {
        for (int64_t i = 0; i < r->n_tensors; i++) {
            const rotq_tensor *t = &r->tensors[i];
            CHECK(t->dtype == (t->n_dims == 1 ? ROTQ_F32 : ROTQ_F16), "f16 save: %s is %s", t->name, rotq_dtype_name(t->dtype));
        }
        const rotq_tensor *q = rotq_model_find(r, "model.layers.1.self_attn.q_proj.weight");
        int bad = 0;
        for (int i = 0; q && i < FX_HIDDEN * FX_HIDDEN; i++) {
            float got = rotq_f16_to_f32(((uint16_t *)q->data)[i]), want = fx->q_hf[1][i];
            bad += fabsf(got - want) > 1e-3f * fmaxf(fabsf(want), 1e-2f);
        }
        CHECK(q && bad == 0, "f16 q_proj: %d values off (permutation or rounding wrong)", bad);
        rotq_model_free(r);
    }

    /* Refusals: onto the input, into a missing folder; no temporary file is left behind. */
    int files_before = count_files(dir);
    s = rotq_save_gguf(m, in, ROTQ_DTYPE_INVALID);
    CHECK(s != ROTQ_OK && strstr(rotq_last_error(), "tiny.gguf"), "saving onto the input was not refused");
    CHECK(same_file_bytes(in, &file), "the input file changed");
    s = rotq_save_gguf(m, missing, ROTQ_DTYPE_INVALID);
    CHECK(s != ROTQ_OK && strstr(rotq_last_error(), "x.gguf"), "saving into a missing folder succeeded");
    s = rotq_save_gguf(m, out, ROTQ_Q4_0);
    CHECK(s == ROTQ_ERR_UNSUPPORTED, "q4_0 output not refused");
    CHECK(count_files(dir) == files_before, "a temporary file was left behind (%d files, expected %d)", count_files(dir), files_before);
    rotq_model_free(m);

    /* GGUF v2 has the same little-endian layout. */
    fx->version = 2;
    fx_buf f2 = fx_serialize(fx);
    CHECK(fx_write(v2, f2.p, f2.n), "write v2");
    m = load(v2);
    if (m) check_layer_values(m, fx, "v2");
    rotq_model_free(m);
    free(f2.p);

    /* A larger alignment moves the data section; offsets stay relative to it. */
    fx->version = 3;
    fx->alignment = 64;
    fx_buf f3 = fx_serialize(fx);
    CHECK(fx_write(v2, f3.p, f3.n), "write aligned");
    m = load(v2);
    if (m) check_layer_values(m, fx, "alignment 64");
    rotq_model_free(m);
    free(f3.p);

    free(file.p);
    fx_free(fx);
    free(fx);
    return tu_finish("test_gguf_io");
}
