/* Streamed rotation (rotq_rotate_save: operations per layer, each tensor written when final and
 * freed) writes the same bytes as rotating the whole model and saving it, for tied and untied
 * embeddings, one file or shards, F32 or BF16 output. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "core/model.h"
#include "testutil.h"

enum { HID = 96, INTER = 160, HEADS = 4, KV = 2, VOCAB = 50, LAYERS = 3 };

static uint64_t rs = 0x9E3779B97F4A7C15ull;
static float frand(void) {
    rs ^= rs << 13, rs ^= rs >> 7, rs ^= rs << 17;
    return (float)((double)(rs >> 11) / 9007199254740992.0 - 0.5);
}

typedef struct spec { char name[96]; int64_t d0, d1; } spec;

/* A small Llama HF folder with F32 random weights (norm weights around 1). */
static void write_model(const char *dir, bool tied) {
    spec sp[64];
    int n = 0;
    const int64_t hd = HID / HEADS;
    snprintf(sp[n].name, sizeof sp[n].name, "model.embed_tokens.weight"), sp[n].d0 = VOCAB, sp[n++].d1 = HID;
    for (int l = 0; l < LAYERS; l++) {
        const char *names[9] = {"input_layernorm", "self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "self_attn.o_proj",
                                "post_attention_layernorm", "mlp.gate_proj", "mlp.up_proj", "mlp.down_proj"};
        const int64_t d0[9] = {HID, HEADS * hd, KV * hd, KV * hd, HID, HID, INTER, INTER, HID};
        const int64_t d1[9] = {0, HID, HID, HID, HEADS * hd, 0, HID, HID, INTER};
        for (int k = 0; k < 9; k++) {
            snprintf(sp[n].name, sizeof sp[n].name, "model.layers.%d.%s.weight", l, names[k]);
            sp[n].d0 = d0[k];
            sp[n++].d1 = d1[k];
        }
    }
    snprintf(sp[n].name, sizeof sp[n].name, "model.norm.weight"), sp[n].d0 = HID, sp[n++].d1 = 0;
    if (!tied) snprintf(sp[n].name, sizeof sp[n].name, "lm_head.weight"), sp[n].d0 = VOCAB, sp[n++].d1 = HID;
    char *hdr = malloc(65536);
    size_t len = (size_t)snprintf(hdr, 65536, "{");
    uint64_t off = 0;
    for (int i = 0; i < n; i++) {
        uint64_t nb = (uint64_t)sp[i].d0 * (uint64_t)(sp[i].d1 ? sp[i].d1 : 1) * 4;
        if (sp[i].d1)
            len += (size_t)snprintf(hdr + len, 65536 - len, "%s\"%s\":{\"dtype\":\"F32\",\"shape\":[%lld,%lld],\"data_offsets\":[%llu,%llu]}",
                                    i ? "," : "", sp[i].name, (long long)sp[i].d0, (long long)sp[i].d1, (unsigned long long)off,
                                    (unsigned long long)(off + nb));
        else
            len += (size_t)snprintf(hdr + len, 65536 - len, "%s\"%s\":{\"dtype\":\"F32\",\"shape\":[%lld],\"data_offsets\":[%llu,%llu]}",
                                    i ? "," : "", sp[i].name, (long long)sp[i].d0, (unsigned long long)off, (unsigned long long)(off + nb));
        off += nb;
    }
    len += (size_t)snprintf(hdr + len, 65536 - len, "}");
    while (len % 8) hdr[len++] = ' ';
    mkdir(dir, 0755);
    char path[4096];
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    FILE *f = fopen(path, "wb");
    uint8_t l8[8];
    for (int i = 0; i < 8; i++) l8[i] = (uint8_t)((uint64_t)len >> (8 * i));
    fwrite(l8, 1, 8, f);
    fwrite(hdr, 1, len, f);
    for (int i = 0; i < n; i++) {
        int64_t cnt = sp[i].d0 * (sp[i].d1 ? sp[i].d1 : 1);
        for (int64_t j = 0; j < cnt; j++) {
            float v = sp[i].d1 ? 0.1f * frand() : 1.0f + 0.5f * frand();
            fwrite(&v, 4, 1, f);
        }
    }
    fclose(f);
    free(hdr);
    snprintf(path, sizeof path, "%s/config.json", dir);
    f = fopen(path, "w");
    fprintf(f, "{\"architectures\":[\"LlamaForCausalLM\"],\"model_type\":\"llama\",\"hidden_size\":%d,\"intermediate_size\":%d,"
               "\"num_hidden_layers\":%d,\"num_attention_heads\":%d,\"num_key_value_heads\":%d,\"vocab_size\":%d,"
               "\"max_position_embeddings\":64,\"rms_norm_eps\":1e-5,\"rope_theta\":10000.0,\"tie_word_embeddings\":%s,"
               "\"torch_dtype\":\"float32\"}\n",
            HID, INTER, LAYERS, HEADS, KV, VOCAB, tied ? "true" : "false");
    fclose(f);
}

/* Every tensor of a and b: same names, shapes, dtypes and bytes. */
static int compare(const char *a_path, const char *b_path) {
    rotq_model *a = NULL, *b = NULL;
    int bad = 0;
    if (rotq_model_load(a_path, NULL, &a) != ROTQ_OK || rotq_model_load(b_path, NULL, &b) != ROTQ_OK) {
        fprintf(stderr, "load: %s\n", rotq_last_error());
        bad = 1;
    } else {
        bad += a->n_tensors != b->n_tensors;
        for (int64_t i = 0; i < a->n_tensors; i++) {
            const rotq_tensor *x = &a->tensors[i], *y = rotq_model_find(b, x->name);
            if (!y || y->dtype != x->dtype || y->nbytes != x->nbytes || memcmp(x->data, y->data, x->nbytes) != 0) {
                fprintf(stderr, "tensor %s differs\n", x->name);
                bad++;
            }
        }
    }
    rotq_model_free(a);
    rotq_model_free(b);
    return bad;
}

static void run_case(bool tied, rotq_dtype dt, uint64_t shard) {
    char in[4096], whole[4096], streamed[4096];
    const char *tmp = tu_tmpdir();
    snprintf(in, sizeof in, "%s/in-%d-%d-%llu", tmp, tied, (int)dt, (unsigned long long)shard);
    snprintf(whole, sizeof whole, "%s.whole", in);
    snprintf(streamed, sizeof streamed, "%s.streamed", in);
    write_model(in, tied);
    rotq_rotate_options ro = rotq_rotate_options_default();
    rotq_save_options so = rotq_save_defaults();
    so.dtype = dt;
    so.shard_bytes = shard;
    rotq_model *m;
    CHECK(rotq_model_load(in, NULL, &m) == ROTQ_OK, "load: %s", rotq_last_error());
    CHECK(rotq_rotate_model(m, &ro) == ROTQ_OK, "rotate: %s", rotq_last_error());
    CHECK(rotq_model_save(m, whole, &so) == ROTQ_OK, "save: %s", rotq_last_error());
    rotq_model_free(m);
    CHECK(rotq_model_load(in, NULL, &m) == ROTQ_OK, "load: %s", rotq_last_error());
    CHECK(rotq_rotate_save(m, &ro, streamed, &so) == ROTQ_OK, "rotate_save: %s", rotq_last_error());
    for (int64_t i = 0; i < m->n_tensors; i++) CHECK(m->tensors[i].data == NULL, "tensor %s still held", m->tensors[i].name);
    rotq_model_free(m);
    CHECK(compare(whole, streamed) == 0, "tied %d dtype %d shard %llu: streamed output differs", tied, (int)dt,
          (unsigned long long)shard);
    char cw[4200], cs[4200];
    snprintf(cw, sizeof cw, "%s/config.json", whole);
    snprintf(cs, sizeof cs, "%s/config.json", streamed);
    uint8_t *x = NULL, *y = NULL;
    uint64_t nx = 0, ny = 0;
    CHECK(rotq_read_file(cw, &x, &nx) == ROTQ_OK && rotq_read_file(cs, &y, &ny) == ROTQ_OK && nx == ny && memcmp(x, y, nx) == 0,
          "config.json differs");
    free(x);
    free(y);
    if (shard) {
        snprintf(cs, sizeof cs, "%s/model.safetensors.index.json", streamed);
        struct stat st;
        CHECK(stat(cs, &st) == 0, "sharded output has an index");
    }
}

int main(void) {
    run_case(false, ROTQ_DTYPE_INVALID, 0);
    run_case(true, ROTQ_DTYPE_INVALID, 0);   /* untie happens in the global step */
    run_case(false, ROTQ_BF16, 100000);       /* several shards */
    run_case(true, ROTQ_F16, 150000);
    return tu_finish("test_rotate_stream");
}
