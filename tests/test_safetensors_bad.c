/* Corrupt Hugging Face folders: every lie a safetensors header, an index or a config can tell must
 * end in an error that names the file, never a crash (run under ASan/UBSan too). Ends with a short
 * deterministic fuzz loop over a valid small file and its index. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "core/model.h"

static int failures;
#define CHECK(cond, ...)                                                   \
    do {                                                                   \
        if (!(cond)) {                                                     \
            failures++;                                                    \
            fprintf(stderr, "FAIL %s:%d: ", __FILE__, __LINE__);           \
            fprintf(stderr, __VA_ARGS__);                                  \
            fprintf(stderr, "\n");                                         \
        }                                                                  \
    } while (0)

static char root[256];

/* A tiny tied Llama: hidden 8, 1 layer, 2 heads of 4, 1 KV head, MLP 16, vocab 16. */
static const char *CONFIG =
    "{\"architectures\": [\"LlamaForCausalLM\"], \"model_type\": \"llama\", \"hidden_size\": 8,\n"
    " \"intermediate_size\": 16, \"num_hidden_layers\": 1, \"num_attention_heads\": 2,\n"
    " \"num_key_value_heads\": 1, \"vocab_size\": 16, \"max_position_embeddings\": 32,\n"
    " \"rms_norm_eps\": 1e-5, \"rope_theta\": 10000.0, \"tie_word_embeddings\": true}\n";

typedef struct spec { const char *name; int64_t rows, cols; } spec; /* cols 0: a vector */
static const spec TENSORS[] = {
    {"model.embed_tokens.weight", 16, 8},
    {"model.layers.0.input_layernorm.weight", 8, 0},
    {"model.layers.0.self_attn.q_proj.weight", 8, 8},
    {"model.layers.0.self_attn.k_proj.weight", 4, 8},
    {"model.layers.0.self_attn.v_proj.weight", 4, 8},
    {"model.layers.0.self_attn.o_proj.weight", 8, 8},
    {"model.layers.0.post_attention_layernorm.weight", 8, 0},
    {"model.layers.0.mlp.gate_proj.weight", 16, 8},
    {"model.layers.0.mlp.up_proj.weight", 16, 8},
    {"model.layers.0.mlp.down_proj.weight", 8, 16},
    {"model.norm.weight", 8, 0},
};
#define N_TENSORS ((int)(sizeof TENSORS / sizeof TENSORS[0]))

static float value_at(int t, int64_t i) { return (float)((t * 31 + i * 7) % 13) * 0.125f - 0.75f; }

typedef struct buf { uint8_t *p; size_t n, cap; } buf;
static void put(buf *b, const void *d, size_t n) {
    if (b->n + n > b->cap) {
        b->cap = (b->n + n) * 2;
        b->p = realloc(b->p, b->cap);
        if (!b->p) abort();
    }
    memcpy(b->p + b->n, d, n);
    b->n += n;
}
static void putf(buf *b, const char *fmt, ...) {
    char tmp[1024];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(tmp, sizeof tmp, fmt, ap);
    va_end(ap);
    put(b, tmp, (size_t)n);
}

/* Builds a safetensors file holding TENSORS[first..first+count) as F32, header padded to 8 and
 * then by `misalign` more spaces (a legal file whose data no longer start on a 4-byte boundary). */
static buf make_file_pad(int first, int count, int misalign) {
    buf h = {0}, d = {0};
    putf(&h, "{\"__metadata__\":{\"format\":\"pt\"}");
    for (int t = first; t < first + count; t++) {
        int64_t n = TENSORS[t].rows * (TENSORS[t].cols ? TENSORS[t].cols : 1);
        if (TENSORS[t].cols)
            putf(&h, ",\"%s\":{\"dtype\":\"F32\",\"shape\":[%lld,%lld],", TENSORS[t].name, (long long)TENSORS[t].rows,
                 (long long)TENSORS[t].cols);
        else
            putf(&h, ",\"%s\":{\"dtype\":\"F32\",\"shape\":[%lld],", TENSORS[t].name, (long long)TENSORS[t].rows);
        putf(&h, "\"data_offsets\":[%zu,%zu]}", d.n, d.n + (size_t)n * 4);
        for (int64_t i = 0; i < n; i++) {
            float v = value_at(t, i);
            put(&d, &v, 4);
        }
    }
    putf(&h, "}");
    while (h.n % 8) put(&h, " ", 1);
    for (int i = 0; i < misalign; i++) put(&h, " ", 1);
    buf f = {0};
    uint8_t len8[8];
    for (int i = 0; i < 8; i++) len8[i] = (uint8_t)((uint64_t)h.n >> (8 * i));
    put(&f, len8, 8);
    put(&f, h.p, h.n);
    put(&f, d.p, d.n);
    free(h.p);
    free(d.p);
    return f;
}

static buf make_file(int first, int count) { return make_file_pad(first, count, 0); }

/* A file with a hand-written header (data block of data_len bytes of 0x3c). */
static buf raw_file(const char *header, size_t data_len) {
    buf f = {0};
    size_t hl = strlen(header);
    uint8_t len8[8];
    for (int i = 0; i < 8; i++) len8[i] = (uint8_t)((uint64_t)hl >> (8 * i));
    put(&f, len8, 8);
    put(&f, header, hl);
    for (size_t i = 0; i < data_len; i++) put(&f, "\x3c", 1);
    return f;
}

static void write_file(const char *dir, const char *name, const void *data, size_t n) {
    char p[1024];
    if (snprintf(p, sizeof p, "%s/%s", dir, name) >= (int)sizeof p) exit(1);
    unlink(p); /* truncating instead makes ext4 flush the old contents: 4 ms a call */
    FILE *f = fopen(p, "wb");
    if (!f || fwrite(data, 1, n, f) != n) {
        fprintf(stderr, "cannot write %s\n", p);
        exit(1);
    }
    fclose(f);
}

static void fresh_dir(const char *dir) {
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0) exit(1);
    if (mkdir(dir, 0755) != 0) exit(1);
}

/* Loading `dir` must fail with a message containing `needle` (the file at fault). */
static void expect_fail(const char *label, const char *dir, const char *needle) {
    rotq_model *m = (rotq_model *)1;
    rotq_status s = rotq_model_load(dir, NULL, &m);
    const char *err = rotq_last_error();
    CHECK(s != ROTQ_OK, "%s: loaded although corrupt", label);
    CHECK(m == NULL, "%s: failed load left a model", label);
    CHECK(needle == NULL || strstr(err, needle), "%s: message does not name %s: \"%s\"", label, needle, err);
    if (s == ROTQ_OK && m) rotq_model_free(m);
    printf("  %-34s -> %s\n", label, err);
}

/* One model.safetensors with the given content under a valid config. */
static void case_single(const char *label, buf f, const char *needle) {
    char dir[512];
    snprintf(dir, sizeof dir, "%s/case", root);
    fresh_dir(dir);
    write_file(dir, "config.json", CONFIG, strlen(CONFIG));
    write_file(dir, "model.safetensors", f.p, f.n);
    expect_fail(label, dir, needle);
    free(f.p);
}

static void case_header(const char *label, const char *header, size_t data_len, const char *needle) {
    case_single(label, raw_file(header, data_len), needle);
}

static void check_valid_load(const char *dir, bool expect_mapped) {
    rotq_model *m = NULL;
    rotq_status s = rotq_model_load(dir, NULL, &m);
    CHECK(s == ROTQ_OK, "valid folder %s does not load: %s", dir, rotq_last_error());
    if (s != ROTQ_OK) return;
    CHECK(m->n_tensors == N_TENSORS, "valid folder: %lld tensors, wrote %d", (long long)m->n_tensors, N_TENSORS);
    for (int t = 0; t < N_TENSORS; t++) {
        const rotq_tensor *x = rotq_model_find(m, TENSORS[t].name);
        CHECK(x && x->dtype == ROTQ_F32 && x->shape[0] == TENSORS[t].rows, "valid folder: tensor %s wrong", TENSORS[t].name);
        if (!x) continue;
        const float *v = x->data;
        int64_t n = rotq_tensor_numel(x), bad = 0;
        for (int64_t i = 0; i < n; i++) bad += v[i] != value_at(t, i);
        CHECK(bad == 0, "valid folder: tensor %s has %lld wrong values", TENSORS[t].name, (long long)bad);
        CHECK(x->owned == !expect_mapped, "valid folder: tensor %s %s", TENSORS[t].name,
              expect_mapped ? "was copied instead of mapped" : "unaligned in the file but not copied");
        CHECK((uintptr_t)x->data % 4 == 0, "tensor %s: data not aligned for float", TENSORS[t].name);
    }
    rotq_model_free(m);
}

/* After a successful load every tensor must lie inside one of the model's file mappings. */
static bool tensors_inside_maps(const rotq_model *m) {
    for (int64_t i = 0; i < m->n_tensors; i++) {
        const rotq_tensor *t = &m->tensors[i];
        if (t->owned) continue;
        bool inside = false;
        for (int32_t k = 0; k < m->n_maps && !inside; k++) {
            const uint8_t *a = m->maps[k].addr, *p = t->data;
            inside = p >= a && p + t->nbytes <= a + m->maps[k].size;
        }
        if (!inside) return false;
    }
    return true;
}

static uint64_t rng_state = 0x9E3779B97F4A7C15ull;
static uint64_t rnd(void) {
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return rng_state;
}

/* Mutates a copy of `src`: byte flips biased to the header, JSON-significant bytes, truncation,
 * length-prefix changes. */
static size_t mutate(const buf *src, uint8_t *out, size_t header_end) {
    size_t n = src->n;
    memcpy(out, src->p, n);
    static const char interesting[] = "{}[]\",:-0123456789e.E \\";
    int k = 1 + (int)(rnd() % 4);
    for (int j = 0; j < k; j++) {
        uint64_t r = rnd();
        size_t pos = (r >> 8) % (r % 5 == 0 ? n : header_end);
        switch (r % 8) {
        case 0: out[pos] ^= (uint8_t)(1u << ((r >> 40) % 8)); break;
        case 1: case 2: case 3: out[pos] = (uint8_t)interesting[(r >> 32) % (sizeof interesting - 1)]; break;
        case 4: out[pos] = (uint8_t)(r >> 48); break;
        case 5: n = (r >> 16) % (n + 1); break;
        case 6: out[(r >> 24) % 8] = (uint8_t)(r >> 48); break; /* header length */
        case 7: if (pos + 1 < n) memmove(out + pos, out + pos + 1, n - pos - 1), n--; break;
        }
        if (n == 0) break;
    }
    return n;
}

static void fuzz(const char *dir, const char *file, const buf *valid, size_t header_end, int iters, int *n_ok) {
    uint8_t *tmp = malloc(valid->n);
    for (int it = 0; it < iters; it++) {
        size_t n = mutate(valid, tmp, header_end);
        write_file(dir, file, tmp, n);
        rotq_model *m = NULL;
        rotq_status s = rotq_model_load(dir, NULL, &m);
        if (s == ROTQ_OK) {
            (*n_ok)++;
            CHECK(tensors_inside_maps(m), "fuzz %s #%d: a tensor points outside its file", file, it);
            rotq_model_free(m);
        } else {
            CHECK(m == NULL && rotq_last_error()[0], "fuzz %s #%d: error without message", file, it);
        }
    }
    free(tmp);
}

int main(void) {
    snprintf(root, sizeof root, "%s/rotq-stbad-XXXXXX", getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
    if (!mkdtemp(root)) {
        perror("mkdtemp");
        return 1;
    }
    char dir[512];
    snprintf(dir, sizeof dir, "%s/valid", root);
    fresh_dir(dir);
    write_file(dir, "config.json", CONFIG, strlen(CONFIG));
    buf valid = make_file(0, N_TENSORS);
    write_file(dir, "model.safetensors", valid.p, valid.n);
    check_valid_load(dir, true);
    buf odd = make_file_pad(0, N_TENSORS, 1);
    write_file(dir, "model.safetensors", odd.p, odd.n);
    check_valid_load(dir, false);
    free(odd.p);
    write_file(dir, "model.safetensors", valid.p, valid.n);
    uint64_t hlen = 0;
    for (int i = 7; i >= 0; i--) hlen = (hlen << 8) | valid.p[i];

    printf("corrupt single files:\n");
    buf t;
    t = valid; t.p = malloc(valid.n); memcpy(t.p, valid.p, valid.n); t.n = 5;
    case_single("truncated inside length", t, "model.safetensors");
    t.p = malloc(valid.n); memcpy(t.p, valid.p, valid.n); t.n = 8 + (size_t)hlen / 2;
    case_single("truncated inside header", t, "model.safetensors");
    t.p = malloc(valid.n); memcpy(t.p, valid.p, valid.n); t.n = valid.n - 100;
    case_single("truncated inside data", t, "model.safetensors");
    t.p = malloc(valid.n); memcpy(t.p, valid.p, valid.n);
    for (int i = 0; i < 8; i++) t.p[i] = (uint8_t)((uint64_t)(valid.n - 7) >> (8 * i));
    case_single("header length > file", t, "model.safetensors");
    t.p = malloc(valid.n); memcpy(t.p, valid.p, valid.n);
    for (int i = 0; i < 8; i++) t.p[i] = 0xff;
    case_single("header length 2^64-1", t, "model.safetensors");
    t.p = malloc(valid.n); memcpy(t.p, valid.p, valid.n); t.p[8 + 15] = ','; /* {"__metadata__",{ */
    case_single("broken JSON", t, "line 1");
    case_single("empty file", (buf){malloc(1), 0, 1}, "model.safetensors");
    case_header("header not an object", "[1,2,3] ", 0, "model.safetensors");
    case_header("offsets out of range",
                "{\"a\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[0,16]},"
                "\"b\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[16,32]}}", 24, "model.safetensors");
    case_header("negative offset", "{\"a\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[-16,0]}}", 64,
                "model.safetensors");
    case_header("offsets reversed", "{\"a\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[16,0]}}", 64,
                "model.safetensors");
    case_header("overlapping tensors",
                "{\"a\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[0,16]},"
                "\"b\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[8,24]}}", 24, "overlap");
    case_header("dtype x shape != span", "{\"a\":{\"dtype\":\"F16\",\"shape\":[4],\"data_offsets\":[0,16]}}", 16,
                "model.safetensors");
    case_header("unknown dtype F8_E9", "{\"a\":{\"dtype\":\"F8_E9\",\"shape\":[4],\"data_offsets\":[0,4]}}", 4,
                "F8_E9");
    case_header("unsupported dtype BOOL", "{\"a\":{\"dtype\":\"BOOL\",\"shape\":[4],\"data_offsets\":[0,4]}}", 4,
                "model.safetensors");
    case_header("absurd dimension", "{\"a\":{\"dtype\":\"F32\",\"shape\":[2199023255552],\"data_offsets\":[0,4]}}", 4,
                "model.safetensors");
    case_header("negative dimension", "{\"a\":{\"dtype\":\"F32\",\"shape\":[-4],\"data_offsets\":[0,16]}}", 16,
                "model.safetensors");
    case_header("shape product overflows",
                "{\"a\":{\"dtype\":\"F32\",\"shape\":[1099511627776,1099511627776,1099511627776],\"data_offsets\":[0,16]}}",
                16, "overflow");
    case_header("byte size wraps to span",  /* 2^62 F32 elements: 2^64 bytes would wrap to 0 */
                "{\"a\":{\"dtype\":\"F32\",\"shape\":[1073741824,1073741824,4],\"data_offsets\":[0,0]}}", 0,
                "model.safetensors");
    case_header("shape not integers", "{\"a\":{\"dtype\":\"F32\",\"shape\":[4.0],\"data_offsets\":[0,16]}}", 16,
                "model.safetensors");
    case_header("too many dimensions", "{\"a\":{\"dtype\":\"F32\",\"shape\":[1,1,1,1,1,1],\"data_offsets\":[0,4]}}", 4,
                "model.safetensors");
    case_header("duplicate key", "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},"
                "\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}", 8, "model.safetensors");
    case_header("missing data_offsets", "{\"a\":{\"dtype\":\"F32\",\"shape\":[1]}}", 4, "model.safetensors");
    /* A valid file whose tensors do not make a whole model: the architecture check refuses it. */
    case_single("missing tensors", make_file(0, N_TENSORS - 2), NULL);

    printf("bad configs:\n");
    snprintf(dir, sizeof dir, "%s/case", root);
    fresh_dir(dir);
    write_file(dir, "model.safetensors", valid.p, valid.n);
    write_file(dir, "config.json", "{\"architectures\": [\"LlamaForCausalLM\"],\n  \"hidden_size\": 8,,}", 60);
    expect_fail("config.json broken JSON", dir, "config.json");
    const char *alien = "{\"architectures\": [\"AlienForCausalLM\"], \"hidden_size\": 8}";
    write_file(dir, "config.json", alien, strlen(alien));
    expect_fail("unknown architecture", dir, "AlienForCausalLM");
    CHECK(strstr(rotq_last_error(), "--arch-file") != NULL, "unknown architecture: no hint at --arch-file");
    char cfg_path[600];
    snprintf(cfg_path, sizeof cfg_path, "%s/config.json", dir);
    unlink(cfg_path);
    expect_fail("no config.json", dir, "config.json");

    printf("sharded folders:\n");
    buf s1 = make_file(0, 5), s2 = make_file(5, N_TENSORS - 5);
    buf idx = {0};
    putf(&idx, "{\"metadata\":{\"total_size\":0},\"weight_map\":{");
    for (int i = 0; i < N_TENSORS; i++)
        putf(&idx, "%s\"%s\":\"model-0000%d-of-00002.safetensors\"", i ? "," : "", TENSORS[i].name, i < 5 ? 1 : 2);
    putf(&idx, "}}");
    char sdir[512];
    snprintf(sdir, sizeof sdir, "%s/sharded", root);
    fresh_dir(sdir);
    write_file(sdir, "config.json", CONFIG, strlen(CONFIG));
    write_file(sdir, "model-00001-of-00002.safetensors", s1.p, s1.n);
    write_file(sdir, "model-00002-of-00002.safetensors", s2.p, s2.n);
    write_file(sdir, "model.safetensors.index.json", idx.p, idx.n);
    check_valid_load(sdir, true);

    /* Each case edits a copy of the index text: (what to find, what to put instead). */
    struct { const char *label, *from, *to, *needle; } icases[] = {
        {"index names a missing shard", "model-00002-of-00002", "model-00003-of-00003", "does not exist"},
        {"index path escapes the folder", "model-00002-of-00002", "../../etc/x", "index.json"},
        {"index names absent tensor", "model.norm.weight", "model.norm.bias", "no such tensor"},
        {"index places tensor wrongly", "model-00001-of-00002.safetensors\",\"model.layers.0.self_attn.v_proj",
         "model-00002-of-00002.safetensors\",\"model.layers.0.self_attn.v_proj", "index.json"},
        {"index broken JSON", "\"weight_map\":{", "\"weight_map\":{{", "index.json"},
        {"index without weight_map", "weight_map", "weight_mop", "weight_map"},
    };
    for (size_t c = 0; c < sizeof icases / sizeof icases[0]; c++) {
        char *text = malloc(idx.n + 64), *hit;
        memcpy(text, idx.p, idx.n);
        text[idx.n] = 0;
        hit = strstr(text, icases[c].from);
        if (!hit) {
            CHECK(0, "test bug: %s not in index", icases[c].from);
            free(text);
            continue;
        }
        char out[4096];
        snprintf(out, sizeof out, "%.*s%s%s", (int)(hit - text), text, icases[c].to, hit + strlen(icases[c].from));
        write_file(sdir, "model.safetensors.index.json", out, strlen(out));
        expect_fail(icases[c].label, sdir, icases[c].needle);
        free(text);
    }
    /* The same tensor in both shards. */
    buf dup = make_file(4, N_TENSORS - 4);
    write_file(sdir, "model.safetensors.index.json", idx.p, idx.n);
    write_file(sdir, "model-00002-of-00002.safetensors", dup.p, dup.n);
    expect_fail("tensor in two shards", sdir, "model-00002-of-00002.safetensors");
    free(dup.p);

    printf("fuzzing...\n");
    clock_t t0 = clock();
    snprintf(dir, sizeof dir, "%s/valid", root);
    int ok_single = 0, ok_index = 0;
    fuzz(dir, "model.safetensors", &valid, 8 + (size_t)hlen, 2000, &ok_single);
    write_file(sdir, "model-00002-of-00002.safetensors", s2.p, s2.n);
    fuzz(sdir, "model.safetensors.index.json", &idx, idx.n, 300, &ok_index);
    printf("fuzz: 2000 safetensors mutations (%d still loadable), 300 index mutations (%d loadable), %.2f s CPU\n",
           ok_single, ok_index, (double)(clock() - t0) / CLOCKS_PER_SEC);

    free(valid.p);
    free(s1.p);
    free(s2.p);
    free(idx.p);
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", root);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", root);
    if (failures) {
        fprintf(stderr, "%d failure(s)\n", failures);
        return 1;
    }
    printf("ok\n");
    return 0;
}
