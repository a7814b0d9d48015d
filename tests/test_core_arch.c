/* Core model plumbing: half/bfloat conversions, the llama2.c loader (against the raw file),
 * the Q/K permutation, architecture binding errors and JSON architecture descriptions. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "arch/arch.h"
#include "testutil.h"

/* Reference rounding: the nearest representable value by exhaustive search over all halfs. */
static void test_half(void) {
    int bad = 0;
    for (uint32_t h = 0; h < 65536; h++) {
        float f = rotq_f16_to_f32((uint16_t)h);
        if (isnan(f)) continue;
        if (rotq_f32_to_f16(f) != h) bad++;
    }
    CHECK(bad == 0, "%d halfs do not round-trip", bad);
    /* Sorted table of finite positive half values to find nearest-even neighbours independently. */
    static float pos[31744];
    for (uint32_t h = 0; h < 31744; h++) pos[h] = rotq_f16_to_f32((uint16_t)h);
    srand(1);
    bad = 0;
    for (int it = 0; it < 200000; it++) {
        float f = ldexpf((float)rand() / (float)RAND_MAX, (rand() % 40) - 28);
        uint32_t lo = 0, hi = 31743;
        while (hi - lo > 1) { uint32_t mid = (lo + hi) / 2; if (pos[mid] <= f) lo = mid; else hi = mid; }
        double dl = (double)f - pos[lo], dh = (double)pos[hi] - f;
        uint32_t want = dl < dh ? lo : dh < dl ? hi : (lo % 2 == 0 ? lo : hi);
        if (f >= 65520.0f) want = 0x7c00;
        if (rotq_f32_to_f16(f) != want) bad++;
    }
    CHECK(bad == 0, "%d random floats round differently from nearest-even", bad);
    /* bf16: ties to even on the 16 dropped bits */
    CHECK(rotq_f32_to_bf16(1.0f) == 0x3f80, "bf16(1)");
    float tie; uint32_t u = 0x3f808000u; memcpy(&tie, &u, 4);
    CHECK(rotq_f32_to_bf16(tie) == 0x3f80, "tie rounds to even");
    u = 0x3f818000u; memcpy(&tie, &u, 4);
    CHECK(rotq_f32_to_bf16(tie) == 0x3f82, "tie rounds up to even");
    CHECK(isnan(rotq_bf16_to_f32(rotq_f32_to_bf16(NAN))), "bf16 keeps nan");
}

static void test_permute(void) {
    rotq_model *m = rotq_model_new();
    int64_t shape[2] = {12, 3};  /* 2 heads of dim 6 */
    float *w = malloc(36 * sizeof *w);
    for (int i = 0; i < 36; i++) w[i] = (float)i;
    CHECK(rotq_model_add_tensor(m, "w", ROTQ_F32, 2, shape, w, 36 * 4, true) == ROTQ_OK, "add");
    rotq_tensor *t = rotq_model_find(m, "w");
    CHECK(rotq_permute_qk_rows(t, 2, true) == ROTQ_OK, "permute");
    const float *p = t->data;
    /* GGUF row h*6 + 2i + j holds HF row h*6 + 3j + i */
    int bad = 0;
    for (int h = 0; h < 2; h++)
        for (int i = 0; i < 3; i++)
            for (int j = 0; j < 2; j++)
                if (p[(h * 6 + 2 * i + j) * 3] != (float)((h * 6 + 3 * j + i) * 3)) bad++;
    CHECK(bad == 0, "permutation rows");
    CHECK(rotq_permute_qk_rows(t, 2, false) == ROTQ_OK, "unpermute");
    p = t->data;
    for (int i = 0; i < 36; i++) bad += p[i] != (float)i;
    CHECK(bad == 0, "permute round trip");
    CHECK(rotq_permute_qk_rows(t, 5, false) != ROTQ_OK, "12 rows into 5 heads is refused");
    rotq_model_free(m);
}

static void test_llama2c(void) {
    const char *path = tu_shared("models/tinystories-260k/model.bin");
    if (!path) return;
    char mpath[4096];
    snprintf(mpath, sizeof mpath, "%s", path);
    rotq_model *m;
    rotq_status s = rotq_model_load(mpath, NULL, &m);
    CHECK(s == ROTQ_OK, "load tinystories: %s", rotq_last_error());
    if (s != ROTQ_OK) return;
    rotq_hparams hp;
    rotq_model_hparams(m, &hp);
    CHECK(hp.hidden == 64 && hp.intermediate == 172 && hp.n_layers == 5 && hp.n_heads == 8 && hp.n_kv_heads == 4 &&
              hp.head_dim == 8 && hp.vocab == 512 && hp.max_pos == 512 && hp.tied_embeddings,
          "hparams %lld %lld %lld %lld %lld %lld", (long long)hp.hidden, (long long)hp.intermediate, (long long)hp.n_layers,
          (long long)hp.n_heads, (long long)hp.n_kv_heads, (long long)hp.vocab);
    CHECK(strcmp(hp.arch, "llama") == 0, "arch %s", hp.arch);
    CHECK(rotq_model_blob(m, "tokenizer.bin") != NULL, "tokenizer.bin carried");
    /* Independent read of the raw file: layer-1 wk starts after header, embedding, 5 norms, 5 wq, 1 wk. */
    FILE *f = fopen(mpath, "rb");
    int64_t off = 7 * 4 + (512 * 64 + 5 * 64 + 5 * 64 * 64 + 1 * 32 * 64) * 4;
    float raw[32 * 64];
    fseek(f, (long)off, SEEK_SET);
    CHECK(fread(raw, 4, 32 * 64, f) == 32 * 64, "read raw");
    fclose(f);
    rotq_tensor *k1 = rotq_model_find(m, "model.layers.1.self_attn.k_proj.weight");
    CHECK(k1 && k1->role == ROLE_K && k1->layer == 1, "k_proj role/layer");
    int bad = 0;
    const float *k = k1->data;
    for (int h = 0; h < 4; h++)
        for (int i = 0; i < 4; i++)
            for (int j = 0; j < 2; j++)
                for (int c = 0; c < 64; c++)
                    bad += k[(h * 8 + j * 4 + i) * 64 + c] != raw[(h * 8 + 2 * i + j) * 64 + c];
    CHECK(bad == 0, "k_proj rows converted from interleaved to rotate-half (%d mismatches)", bad);
    rotq_tensor *emb = rotq_model_find(m, "model.embed_tokens.weight");
    CHECK(emb && !emb->owned, "unmodified weights stay in the mmap");
    rotq_model_free(m);

    /* Truncated copy: clear error naming the file */
    char bad_path[512];
    snprintf(bad_path, sizeof bad_path, "%s/trunc.bin", tu_tmpdir());
    uint8_t *data;
    uint64_t size;
    CHECK(rotq_read_file(mpath, &data, &size) == ROTQ_OK, "read");
    CHECK(rotq_write_file_atomic(bad_path, data, size - 100) == ROTQ_OK, "write truncated");
    s = rotq_model_load(bad_path, NULL, &m);
    CHECK(s == ROTQ_ERR_FORMAT && strstr(rotq_last_error(), "trunc.bin"), "truncated llama2.c refused: %s", rotq_last_error());
    /* A header that lies about its dimensions */
    int32_t *hdr = (int32_t *)(void *)data;
    hdr[0] = 1 << 30;
    CHECK(rotq_write_file_atomic(bad_path, data, size) == ROTQ_OK, "write lying header");
    s = rotq_model_load(bad_path, NULL, &m);
    CHECK(s == ROTQ_ERR_FORMAT && strstr(rotq_last_error(), "trunc.bin"), "absurd header refused: %s", rotq_last_error());
    free(data);
    /* The input itself may not be the output */
    CHECK(rotq_path_check_distinct(mpath, mpath) == ROTQ_ERR_ARG, "same path refused");
}

/* A tiny in-memory model bound against a JSON-described architecture with its own tensor names. */
static void test_arch_json(void) {
    const char *desc =
        "{\"name\": \"tinyjson\", \"hf_architectures\": [\"TinyJsonForCausalLM\"],"
        " \"tensors\": {\"embed\": {\"hf\": \"emb\"}, \"attn_norm\": {\"hf\": \"l{L}.n1\"}, \"q\": {\"hf\": \"l{L}.q\"},"
        "  \"k\": {\"hf\": \"l{L}.k\"}, \"v\": {\"hf\": \"l{L}.v\"}, \"o\": {\"hf\": \"l{L}.o\"}, \"mlp_norm\": {\"hf\": \"l{L}.n2\"},"
        "  \"gate\": {\"hf\": \"l{L}.g\"}, \"up\": {\"hf\": \"l{L}.u\"}, \"down\": {\"hf\": \"l{L}.d\"}, \"final_norm\": {\"hf\": \"norm\"},"
        "  \"lm_head\": {\"hf\": \"head\", \"optional\": true}},"
        " \"norm_groups\": [{\"norm\": \"attn_norm\", \"linears\": [\"q\", \"k\", \"v\"]}, {\"norm\": \"mlp_norm\", \"linears\": [\"gate\", \"up\"]},"
        "  {\"norm\": \"final_norm\", \"linears\": [\"lm_head\"]}]}";
    rotq_arch a;
    CHECK(rotq_arch_from_json(desc, "test.json", &a) == ROTQ_OK, "parse: %s", rotq_last_error());
    CHECK(a.n_tensors == 12 && a.n_groups == 3 && a.n_ops == 6, "parsed counts %d %d %d", a.n_tensors, a.n_groups, a.n_ops);
    CHECK(rotq_arch_register(&a) == ROTQ_OK, "register");
    CHECK(rotq_arch_find_hf("TinyJsonForCausalLM") != NULL, "found by HF id");

    rotq_model *m = rotq_model_new();
    m->arch = rotq_arch_find("tinyjson");
    rotq_hparams *hp = &m->hp;
    hp->hidden = 8; hp->intermediate = 16; hp->n_layers = 1; hp->n_heads = 2; hp->n_kv_heads = 1; hp->head_dim = 4;
    hp->rotary_dim = 4; hp->tied_embeddings = true;
    struct { const char *n; int64_t r, c; } ts[] = {{"emb", 10, 8}, {"l0.n1", 8, 0}, {"l0.q", 8, 8}, {"l0.k", 4, 8}, {"l0.v", 4, 8},
                                                   {"l0.o", 8, 8}, {"l0.n2", 8, 0}, {"l0.g", 16, 8}, {"l0.u", 16, 8}, {"l0.d", 8, 16}, {"norm", 8, 0}};
    for (size_t i = 0; i < sizeof ts / sizeof ts[0]; i++) {
        int64_t shape[2] = {ts[i].r, ts[i].c};
        int nd = ts[i].c ? 2 : 1;
        int64_t n = ts[i].r * (ts[i].c ? ts[i].c : 1);
        rotq_model_add_tensor(m, ts[i].n, ROTQ_F32, nd, shape, calloc((size_t)n, 4), (uint64_t)n * 4, true);
    }
    CHECK(rotq_model_bind_arch(m) == ROTQ_OK, "bind: %s", rotq_last_error());
    CHECK(hp->vocab == 10, "vocab from the embedding");
    CHECK(rotq_model_role(m, ROLE_DOWN, 0) == rotq_model_find(m, "l0.d"), "role lookup");
    /* A wrong shape is reported with the tensor name and both shapes */
    rotq_model_find(m, "l0.k")->shape[0] = 8;
    rotq_model_find(m, "l0.k")->shape[1] = 4;
    CHECK(rotq_model_bind_arch(m) == ROTQ_ERR_FORMAT && strstr(rotq_last_error(), "l0.k"), "shape mismatch: %s", rotq_last_error());
    rotq_model_free(m);

    CHECK(rotq_arch_from_json("{\"name\": \"x\", \"hf_architectures\": [\"X\"], \"tensors\": {\"bogus\": {\"hf\": \"a\"}}}", "bad.json", &a) ==
              ROTQ_ERR_FORMAT && strstr(rotq_last_error(), "bogus"), "unknown role: %s", rotq_last_error());
    CHECK(rotq_arch_from_json("{\"name\": ", "broken.json", &a) == ROTQ_ERR_FORMAT && strstr(rotq_last_error(), "broken.json"),
          "broken JSON: %s", rotq_last_error());
    CHECK(rotq_arch_from_json("{\"base\": \"llama\", \"name\": \"llama-alias\", \"hf_architectures\": [\"AliasForCausalLM\"]}", "alias.json", &a) ==
              ROTQ_OK && a.n_tensors == rotq_arch_find("llama")->n_tensors, "base inherits tables: %s", rotq_last_error());
}

int main(void) {
    test_half();
    test_permute();
    test_llama2c();
    test_arch_json();
    return tu_finish("test_core_arch");
}
