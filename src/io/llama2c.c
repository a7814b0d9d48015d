/* llama2.c checkpoints (legacy v0 header): 7 int32 then float32 weights in a fixed order.
 * Q/K rows come interleaved-pair RoPE (like GGUF) and are converted to the HF rotate-half layout. */
#include <jansson.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "arch/arch.h"

typedef struct { int32_t dim, hidden_dim, n_layers, n_heads, n_kv_heads, vocab_size, seq_len; } llama2c_header;

rotq_status rotq_load_llama2c(const char *path, const char *tokenizer_path, rotq_model *m) {
    const uint8_t *base;
    uint64_t size;
    ROTQ_TRY(rotq_model_map_file(m, path, &base, &size));
    llama2c_header h;
    if (size < sizeof h) return rotq_fail(ROTQ_ERR_FORMAT, "%s: %llu bytes is too short for a llama2.c header", path, (unsigned long long)size);
    memcpy(&h, base, sizeof h);
    bool shared = h.vocab_size > 0;
    int64_t vocab = h.vocab_size < 0 ? -(int64_t)h.vocab_size : h.vocab_size;
    if (h.dim <= 0 || h.hidden_dim <= 0 || h.n_layers <= 0 || h.n_heads <= 0 || h.n_kv_heads <= 0 || vocab <= 0 ||
        h.seq_len <= 0 || h.dim > (1 << 16) || h.hidden_dim > (1 << 18) || h.n_layers > 1024 || vocab > (1 << 22) ||
        h.seq_len > (1 << 22) || h.dim % h.n_heads || h.n_heads % h.n_kv_heads || (h.dim / h.n_heads) % 2)
        return rotq_fail(ROTQ_ERR_FORMAT,
                         "%s: not a llama2.c checkpoint (header dim %d, hidden %d, layers %d, heads %d, kv heads %d, vocab %d, seq %d)",
                         path, h.dim, h.hidden_dim, h.n_layers, h.n_heads, h.n_kv_heads, h.vocab_size, h.seq_len);
    int64_t d = h.dim, hd = d / h.n_heads, kv = hd * h.n_kv_heads, ff = h.hidden_dim, L = h.n_layers;
    /* Byte count the header implies, so a truncated or padded file is caught before any pointer is made. */
    int64_t floats = vocab * d + L * (d + d * d + 2 * kv * d + d * d + d + 3 * ff * d) + d + (int64_t)h.seq_len * hd;
    if (!shared) floats += vocab * d;
    uint64_t want = sizeof h + (uint64_t)floats * 4;
    if (size != want)
        return rotq_fail(ROTQ_ERR_FORMAT, "%s: header (dim %d, %d layers, vocab %lld%s) implies %llu bytes, file has %llu", path, h.dim,
                         h.n_layers, (long long)vocab, shared ? ", shared classifier" : "", (unsigned long long)want, (unsigned long long)size);

    const rotq_arch *a = rotq_arch_find("llama");
    m->arch = a;
    m->source_format = ROTQ_FORMAT_LLAMA2C;
    rotq_hparams *hp = &m->hp;
    memset(hp, 0, sizeof *hp);
    snprintf(hp->arch, sizeof hp->arch, "llama");
    hp->hidden = d; hp->intermediate = ff; hp->n_layers = L; hp->n_heads = h.n_heads; hp->n_kv_heads = h.n_kv_heads;
    hp->head_dim = hd; hp->rotary_dim = hd; hp->vocab = vocab; hp->max_pos = h.seq_len;
    hp->norm_eps = 1e-5; hp->rope_theta = 10000.0; hp->tied_embeddings = shared;
    hp->bos_id = 1; hp->eos_id = 2;

    float *p = (float *)(void *)(base + sizeof h);
    char name[ROTQ_NAME_MAX];
#define ADD(tmpl, layer, rows, cols)                                                                     \
    do {                                                                                                 \
        int64_t shape_[2] = {(rows), (cols)};                                                            \
        int nd_ = shape_[1] ? 2 : 1;                                                                     \
        rotq_arch_expand((tmpl), (layer), name, sizeof name);                                            \
        uint64_t n_ = (uint64_t)shape_[0] * (uint64_t)(shape_[1] ? shape_[1] : 1);                       \
        ROTQ_TRY(rotq_model_add_tensor(m, name, ROTQ_F32, nd_, shape_, p, n_ * 4, false));               \
        p += n_;                                                                                         \
    } while (0)
    /* Weights are stored grouped by kind across layers, not layer by layer. */
    ADD("model.embed_tokens.weight", 0, vocab, d);
    for (int32_t l = 0; l < L; l++) ADD("model.layers.{L}.input_layernorm.weight", l, d, 0);
    for (int32_t l = 0; l < L; l++) ADD("model.layers.{L}.self_attn.q_proj.weight", l, d, d);
    for (int32_t l = 0; l < L; l++) ADD("model.layers.{L}.self_attn.k_proj.weight", l, kv, d);
    for (int32_t l = 0; l < L; l++) ADD("model.layers.{L}.self_attn.v_proj.weight", l, kv, d);
    for (int32_t l = 0; l < L; l++) ADD("model.layers.{L}.self_attn.o_proj.weight", l, d, d);
    for (int32_t l = 0; l < L; l++) ADD("model.layers.{L}.post_attention_layernorm.weight", l, d, 0);
    for (int32_t l = 0; l < L; l++) ADD("model.layers.{L}.mlp.gate_proj.weight", l, ff, d);
    for (int32_t l = 0; l < L; l++) ADD("model.layers.{L}.mlp.down_proj.weight", l, d, ff);
    for (int32_t l = 0; l < L; l++) ADD("model.layers.{L}.mlp.up_proj.weight", l, ff, d);
    ADD("model.norm.weight", 0, d, 0);
    p += (int64_t)h.seq_len * hd; /* legacy freq_cis_real/imag tables: recomputed, not loaded */
    if (!shared) ADD("lm_head.weight", 0, vocab, d);
#undef ADD
    for (int32_t l = 0; l < L; l++) {
        rotq_arch_expand("model.layers.{L}.self_attn.q_proj.weight", l, name, sizeof name);
        ROTQ_TRY(rotq_permute_qk_rows(rotq_model_find(m, name), h.n_heads, false));
        rotq_arch_expand("model.layers.{L}.self_attn.k_proj.weight", l, name, sizeof name);
        ROTQ_TRY(rotq_permute_qk_rows(rotq_model_find(m, name), h.n_kv_heads, false));
    }
    m->hf_config = rotq_hparams_to_hf_config(a, hp);

    /* tokenizer.bin travels with the model as a carried file. */
    char tok[4096];
    if (tokenizer_path) snprintf(tok, sizeof tok, "%s", tokenizer_path);
    else {
        char copy[4096];
        snprintf(copy, sizeof copy, "%s", path);
        snprintf(tok, sizeof tok, "%s/tokenizer.bin", dirname(copy));
    }
    uint8_t *data;
    uint64_t tsize;
    if (rotq_read_file(tok, &data, &tsize) == ROTQ_OK) {
        rotq_status s = rotq_model_add_blob(m, "tokenizer.bin", data, tsize);
        free(data);
        ROTQ_TRY(s);
    } else if (tokenizer_path) {
        return rotq_fail(ROTQ_ERR_IO, "%s: cannot read the tokenizer given", tok);
    }
    rotq_clear_error();
    return ROTQ_OK;
}
