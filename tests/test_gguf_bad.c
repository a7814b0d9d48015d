/* Corrupt GGUF files: every lie gets an error naming the file, never a crash (run under ASan
 * too). Ends with a deterministic fuzz loop of byte flips and truncations of a valid file. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/model.h"
#include "gguf_fixture.h"
#include "testutil.h"

static char g_path[4096];

static rotq_status load_bytes(const void *data, size_t n, rotq_format fmt, rotq_model **out) {
    if (!fx_write(g_path, data, n)) {
        fprintf(stderr, "cannot write %s\n", g_path);
        exit(1);
    }
    rotq_load_options o = rotq_load_defaults();
    o.format = fmt;
    return rotq_model_load(g_path, &o, out);
}

/* Loads the bytes and checks the load fails with a message naming the file (and `needle`). */
static void expect_error(const char *what, const fx_buf *b, rotq_format fmt, const char *needle) {
    rotq_model *m = NULL;
    rotq_status s = load_bytes(b->p, b->n, fmt, &m);
    const char *msg = rotq_last_error();
    CHECK(s != ROTQ_OK, "%s: loaded without error", what);
    CHECK(m == NULL, "%s: model returned on error", what);
    CHECK(msg[0] && strstr(msg, "bad.gguf"), "%s: message does not name the file: \"%s\"", what, msg);
    if (needle) CHECK(strstr(msg, needle) != NULL, "%s: message lacks \"%s\": \"%s\"", what, needle, msg);
    if (getenv("ROTQ_TEST_VERBOSE")) printf("  %-28s -> %s\n", what, msg);
    rotq_model_free(m);
}

static void case_model(const char *what, void (*edit)(fx_model *), const char *needle) {
    fx_model *m = malloc(sizeof *m);
    fx_default(m);
    edit(m);
    fx_buf b = fx_serialize(m);
    expect_error(what, &b, ROTQ_FORMAT_GGUF, needle);
    free(b.p);
    fx_free(m);
    free(m);
}

static void e_magic(fx_model *m) { m->magic = 0x46554748u; }
static void e_version4(fx_model *m) { m->version = 4; }
static void e_version1(fx_model *m) { m->version = 1; }
static void e_big_endian(fx_model *m) { m->version = 0x03000000u; }
static void e_absurd_kv(fx_model *m) { m->n_kv_set = true; m->n_kv = (uint64_t)1 << 40; }
static void e_absurd_tensors(fx_model *m) { m->n_tensors_set = true; m->n_tensors = UINT64_MAX; }
static void e_more_kv(fx_model *m) { m->n_kv_set = true; m->n_kv = 40; }
static void e_huge_key(fx_model *m) { m->first_key_len = (uint64_t)1 << 63; }
static void e_ndims5(fx_model *m) { m->t[3].n_dims = 5; m->t[3].ne[2] = m->t[3].ne[3] = m->t[3].ne[4] = 1; }
static void e_ndims0(fx_model *m) { m->t[3].n_dims = 0; }
static void e_dim0(fx_model *m) { m->t[1].ne[0] = 0; }
static void e_overflow(fx_model *m) {
    fx_tensor *t = &m->t[2];
    t->n_dims = 4;
    t->ne[0] = t->ne[1] = t->ne[2] = t->ne[3] = (uint64_t)1 << 40;
}
static void e_overflow_bytes(fx_model *m) {
    fx_tensor *t = &m->t[2];
    t->n_dims = 2;
    t->ne[0] = (uint64_t)1 << 40;
    t->ne[1] = (uint64_t)1 << 22; /* 2^62 elements: x4 bytes overflows */
}
static void e_type99(fx_model *m) { m->t[0].type = 99; }
static void e_type_iq(fx_model *m) { m->t[0].type = 16; }
static void e_offset_past_end(fx_model *m) { m->t[4].offset_set = true; m->t[4].offset = (uint64_t)1 << 32; }
static void e_offset_max(fx_model *m) { m->t[4].offset_set = true; m->t[4].offset = UINT64_MAX - 31; }
static void e_offset_misaligned(fx_model *m) { m->t[4].offset_set = true; m->t[4].offset = 8; }
static void e_overlap(fx_model *m) { m->t[2].offset_set = true; m->t[2].offset = 0; }
static void e_dup_name(fx_model *m) { snprintf(m->t[2].name, sizeof m->t[2].name, "%s", m->t[1].name); m->t[2].type = m->t[1].type; }
static void e_dup_key(fx_model *m) { m->dup_key = true; }
static void e_nested(fx_model *m) { m->nested_array = true; }
static void e_bad_bool(fx_model *m) { m->bad_bool = true; }
static void e_alignment7(fx_model *m) { m->alignment = 7; }
static void e_unknown_arch(fx_model *m) { m->arch = "martian"; }
static void e_no_block_count(fx_model *m) { m->omit_block_count = true; }
static void e_block_beyond(fx_model *m) { m->block_count = 1; }
static void e_partial_block(fx_model *m) {
    fx_tensor *t = fx_find(m, "blk.0.ffn_gate.weight"); /* Q8_0 rows must be whole 32-blocks */
    t->ne[0] = 33;
}
static void e_empty_name(fx_model *m) { m->t[5].name[0] = 0; }
static void e_shape_mismatch(fx_model *m) {
    fx_tensor *t = fx_find(m, "blk.1.attn_output.weight"); /* same bytes, wrong shape for the model */
    t->ne[0] = FX_HIDDEN * 2;
    t->ne[1] = FX_HIDDEN / 2;
}
static void e_collision(fx_model *m) { fx_add(m, "model.norm.weight", FX_F32, 1, FX_HIDDEN, 0); }
static void e_missing_tensor(fx_model *m) {
    fx_tensor *t = fx_find(m, "blk.1.ffn_up.weight");
    free(t->data);
    *t = m->t[--m->n_t];
}

int main(void) {
    snprintf(g_path, sizeof g_path, "%s/bad.gguf", tu_tmpdir());

    /* The untouched fixture loads: the cases below fail because of their one lie. */
    fx_model *good = malloc(sizeof *good);
    fx_default(good);
    fx_buf valid = fx_serialize(good);
    rotq_model *m = NULL;
    rotq_status s = load_bytes(valid.p, valid.n, ROTQ_FORMAT_AUTO, &m);
    CHECK(s == ROTQ_OK, "valid fixture does not load: %s", rotq_last_error());
    rotq_model_free(m);

    case_model("wrong magic", e_magic, "magic");
    case_model("version 4", e_version4, "version 4");
    case_model("version 1", e_version1, "version 1");
    case_model("big-endian", e_big_endian, "big-endian");
    case_model("absurd n_kv", e_absurd_kv, "metadata keys");
    case_model("absurd n_tensors", e_absurd_tensors, "tensors");
    case_model("n_kv past the keys", e_more_kv, NULL);
    case_model("huge key length", e_huge_key, "truncated");
    case_model("n_dims 5", e_ndims5, "5 dimensions");
    case_model("n_dims 0", e_ndims0, "0 dimensions");
    case_model("zero dimension", e_dim0, "dimension 0 is 0");
    case_model("element count overflow", e_overflow, "overflows");
    case_model("byte count overflow", e_overflow_bytes, "overflow");
    case_model("unknown type 99", e_type99, "type 99");
    case_model("IQ2_XXS type", e_type_iq, "IQ2_XXS");
    case_model("offset past end", e_offset_past_end, "past the end");
    case_model("offset near 2^64", e_offset_max, "past the end");
    case_model("misaligned offset", e_offset_misaligned, "alignment");
    case_model("overlapping tensors", e_overlap, "overlap");
    case_model("duplicate tensor name", e_dup_name, "twice");
    case_model("duplicate key", e_dup_key, "twice");
    case_model("nested array", e_nested, "nested");
    case_model("bool holding 7", e_bad_bool, "bool");
    case_model("alignment 7", e_alignment7, "alignment");
    case_model("unknown architecture", e_unknown_arch, "--arch-file");
    case_model("no block_count", e_no_block_count, "block_count");
    case_model("tensor beyond block_count", e_block_beyond, "block");
    case_model("partial quant block", e_partial_block, "blocks");
    case_model("empty tensor name", e_empty_name, "empty name");
    case_model("wrong tensor shape", e_shape_mismatch, NULL);
    case_model("missing tensor", e_missing_tensor, "up_proj");
    case_model("GGUF and HF name collide", e_collision, "model.norm.weight");

    /* Truncated at every byte of the header and at a spread of points in the data. */
    int truncations = 0;
    for (size_t cut = 0; cut < valid.n; cut += cut < 2048 ? 1 : 97) {
        fx_buf b = {valid.p, cut, 0};
        expect_error("truncated", &b, ROTQ_FORMAT_GGUF, NULL);
        truncations++;
    }
    /* Auto-detection on a few short files still reports an error naming the file. */
    for (size_t cut = 0; cut < 64; cut += 7) {
        fx_buf b = {valid.p, cut, 0};
        expect_error("truncated (auto)", &b, ROTQ_FORMAT_AUTO, NULL);
    }
    printf("truncations checked: %d\n", truncations);

    /* Fuzz: deterministic flips, splices of large values and truncations. Must never crash;
     * a mutated file may load (a flipped weight byte is still a valid file). */
    clock_t t0 = clock();
    int iters = getenv("ROTQ_FUZZ_ITERS") ? atoi(getenv("ROTQ_FUZZ_ITERS")) : 2000, loaded = 0;
    uint8_t *buf = malloc(valid.n);
    /* header = everything before the tensor data: most mutations go there */
    uint64_t header_bytes = valid.n;
    for (int i = 0; i < good->n_t; i++) header_bytes -= (good->t[i].nbytes + 31) / 32 * 32;
    fx_rng_state = getenv("ROTQ_FUZZ_SEED") ? strtoull(getenv("ROTQ_FUZZ_SEED"), NULL, 10) | 1 : 12345;
    for (int it = 0; it < iters; it++) {
        memcpy(buf, valid.p, valid.n);
        size_t n = valid.n;
        int op = (int)(fx_rand() % 10);
        int flips = 1 + (int)(fx_rand() % 4);
        for (int f = 0; f < flips; f++) {
            size_t at = (fx_rand() % 5 ? fx_rand() % header_bytes : fx_rand() % n);
            if (op < 6) buf[at] ^= (uint8_t)(1u << (fx_rand() % 8));
            else if (op < 8) {
                static const uint64_t big[] = {0, 1, 0x7f, 0xff, 0xffff, 0xffffffffull, 0x80000000ull, UINT64_MAX, (uint64_t)1 << 62};
                uint64_t v = big[fx_rand() % (sizeof big / sizeof big[0])];
                size_t w = fx_rand() % 2 ? 4 : 8;
                if (at + w <= n) memcpy(buf + at, &v, w);
            } else {
                buf[at] = (uint8_t)fx_rand();
            }
        }
        if (op == 9) n = fx_rand() % n;
        rotq_model *fm = NULL;
        rotq_status fs = load_bytes(buf, n, ROTQ_FORMAT_GGUF, &fm);
        if (fs == ROTQ_OK) loaded++;
        else CHECK(strstr(rotq_last_error(), "bad.gguf"), "fuzz %d: message does not name the file: %s", it, rotq_last_error());
        rotq_model_free(fm);
    }
    printf("fuzz: %d iterations, %d mutants loaded, %.2f s cpu\n", iters, loaded, (double)(clock() - t0) / CLOCKS_PER_SEC);

    free(buf);
    free(valid.p);
    fx_free(good);
    free(good);
    return tu_finish("test_gguf_bad");
}
