/* Architectures as data.
 *
 * An architecture says: which file identifiers it matches, the role of every tensor (with its HF
 * and GGUF name templates, "{L}" standing for the layer index), which norm feeds which linears
 * (the seed framework's NormLinearIterator), its hyper-parameter conventions, and the ordered list
 * of registered operations that rotating it runs (the seed framework's RotateOperationRegistry).
 * Descriptions come from C tables (llama.c, qwen2.c, phi3.c) or from JSON (arch_file.c).
 */
#ifndef ROTQ_ARCH_H
#define ROTQ_ARCH_H

#include <stdbool.h>
#include <stdint.h>

#include "core/model.h"

typedef enum rotq_role {
    ROLE_EMBED = 0, ROLE_POS_EMBED,
    ROLE_ATTN_NORM, ROLE_ATTN_NORM_BIAS,
    ROLE_Q, ROLE_Q_BIAS, ROLE_K, ROLE_K_BIAS, ROLE_V, ROLE_V_BIAS,
    ROLE_QKV, ROLE_QKV_BIAS,          /* fused [q; k; v] rows (Phi-3) */
    ROLE_O, ROLE_O_BIAS,
    ROLE_MLP_NORM, ROLE_MLP_NORM_BIAS,
    ROLE_GATE, ROLE_GATE_BIAS, ROLE_UP, ROLE_UP_BIAS,
    ROLE_GATE_UP,                     /* fused [gate; up] rows (Phi-3) */
    ROLE_DOWN, ROLE_DOWN_BIAS,
    ROLE_FINAL_NORM, ROLE_FINAL_NORM_BIAS,
    ROLE_LM_HEAD, ROLE_LM_HEAD_BIAS,
    ROLE_Q_NORM, ROLE_K_NORM,         /* per-head RMSNorm of q and k before RoPE [head_dim] (Qwen3, Gemma 3) */
    ROLE_POST_ATTN_NORM,              /* sandwich norms: norm of o_proj's / down_proj's output before */
    ROLE_POST_MLP_NORM,               /* it joins the residual stream [hidden] (Gemma 2/3) */
    /* a vision tower (Qwen2-VL): the patch embedding [hidden, C, Tp, P, P] (a linear of each flattened
     * patch, writing the tower's residual stream) and the patch merger's two linears, which read the
     * final norm's output of merge² neighbouring patches side by side and write the language model's stream */
    ROLE_PATCH_EMBED, ROLE_MERGER_UP, ROLE_MERGER_UP_BIAS, ROLE_MERGER_DOWN, ROLE_MERGER_DOWN_BIAS,
    ROLE_COUNT
} rotq_role;

const char *rotq_role_name(rotq_role r);
rotq_role rotq_role_from_name(const char *name);  /* ROLE_COUNT when unknown */

/* rotq_norm_kind, rotq_mlp_kind and rotq_pos_kind are public (rotq.h). */

#define ROTQ_ARCH_MAX_IDS 8
#define ROTQ_ARCH_MAX_TENSORS 32
#define ROTQ_ARCH_MAX_GROUPS 8
#define ROTQ_ARCH_MAX_LINEARS 4
#define ROTQ_ARCH_MAX_OPS 16

typedef struct rotq_arch_tensor {
    rotq_role role;
    char hf[128];         /* HF name template */
    char gguf[64];        /* GGUF name template ("" when the role has no GGUF tensor) */
    bool per_layer;
    bool optional;        /* absent in some checkpoints (biases, lm_head when tied) */
} rotq_arch_tensor;

/* (norm, [linears]): the norm's output feeds exactly these linears' inputs. */
typedef struct rotq_norm_group {
    rotq_role norm;
    rotq_role linears[ROTQ_ARCH_MAX_LINEARS];
    int32_t n_linears;
} rotq_norm_group;

/* HF config.json keys for each hyper-parameter: alternatives separated by '|'. */
typedef struct rotq_config_keys {
    char hidden[64], intermediate[64], n_layers[64], n_heads[64], n_kv_heads[64], head_dim[64],
        vocab[64], max_pos[96], norm_eps[96], rope_theta[64], tied[64],
        act[64],                                /* activation name (plain MLPs only) */
        sliding_window[64], sliding_pattern[64], rope_local_theta[64], attn_scalar[64], layer_types[32],
        softcaps[96];                           /* soft-capping keys: refused unless null */
} rotq_config_keys;

typedef struct rotq_arch {
    char name[32];                              /* registry name, also written to outputs */
    char hf_ids[ROTQ_ARCH_MAX_IDS][64];         /* config.json "architectures" values */
    int32_t n_hf_ids;
    char gguf_ids[ROTQ_ARCH_MAX_IDS][32];       /* GGUF general.architecture values */
    int32_t n_gguf_ids;
    char gguf_write_id[32];                     /* general.architecture written on export */
    char hf_write_id[64];                       /* "architectures"[0] written on export */
    char hf_model_type[32];                     /* config.json "model_type" written on export */

    rotq_arch_tensor tensors[ROTQ_ARCH_MAX_TENSORS];
    int32_t n_tensors;
    rotq_norm_group groups[ROTQ_ARCH_MAX_GROUPS];
    int32_t n_groups;

    rotq_norm_kind norm;
    double norm_offset;                         /* 1.0 for (1+w) norms (Gemma style), else 0 */
    rotq_mlp_kind mlp;                          /* default; plain MLPs read keys.act from the config */
    rotq_pos_kind pos;
    int32_t pos_offset;                         /* learned positions: row of position p is p + offset */
    /* config.json keys that must be true when present, and one that must equal the hidden size
     * when present (variants the description does not cover are refused, naming the key) */
    char require_true[4][48];
    int32_t n_require_true;
    char require_eq_hidden[48];
    bool gguf_permute_qk;                       /* llama.cpp permutes Q/K rows for this arch */
    bool default_tied;                          /* tie_word_embeddings default when absent */
    bool gguf_norm_shift;                       /* llama.cpp's converter stores w + norm_offset (Gemma) */
    bool embed_scale_sqrt;                      /* the embedding output is scaled by sqrt(hidden) (Gemma) */
    int32_t default_sliding_pattern;            /* when the file does not say (llama.cpp hard-codes 6 for gemma3) */
    double default_rope_local_theta;            /* likewise (10000 for gemma3) */
    rotq_config_keys keys;

    /* multimodal: a language model whose checkpoint also holds a vision tower (tensors under
     * vision_prefix, hyper-parameters in config.json's vision_config) described by the registered
     * architecture `vision`; a tower itself is `vision_tower`: bidirectional attention over patches,
     * no token embedding or lm_head but ROLE_PATCH_EMBED and the merger */
    char vision[32], vision_prefix[32];
    bool vision_tower;

    char ops[ROTQ_ARCH_MAX_OPS][32];            /* ordered registered operation names */
    int32_t n_ops;
} rotq_arch;

/* ---- registry (filled at start-up from built-ins, plus user registrations) ---- */
rotq_status rotq_arch_register(const rotq_arch *a);    /* copies `a`; replaces a same-named one */
const rotq_arch *rotq_arch_find(const char *name);
const rotq_arch *rotq_arch_find_hf(const char *hf_id);
const rotq_arch *rotq_arch_find_gguf(const char *gguf_id);
/* Parses a JSON description (see docs/architectures.md); `origin` names it in errors. */
rotq_status rotq_arch_from_json(const char *json_text, const char *origin, rotq_arch *out);

/* Built-in descriptions (src/arch/llama.c, qwen2.c, qwen3.c, gemma3.c, phi3.c, opt.c). */
void rotq_arch_llama(rotq_arch *a);
void rotq_arch_qwen2(rotq_arch *a);
void rotq_arch_qwen3(rotq_arch *a);
void rotq_arch_gemma3(rotq_arch *a);
void rotq_arch_phi3(rotq_arch *a);
void rotq_arch_opt(rotq_arch *a);
void rotq_arch_qwen2_vl(rotq_arch *a);
void rotq_arch_qwen2_vl_vision(rotq_arch *a);
void rotq_arch_qwen2_5_vl(rotq_arch *a);
void rotq_arch_qwen2_5_vl_vision(rotq_arch *a);

/* The norm the model's stream needs: an architecture's LayerNorm equals RMSNorm once fuse_norms has
 * centred the residual stream (recorded in m->rot.ln_as_rms); the runner still runs the LayerNorm the
 * checkpoint holds, which quantized writers make the only exact reading. */
rotq_norm_kind rotq_model_norm_kind(const rotq_model *m);
/* Norm weights and the (1 + w) convention: what to add to tensor t's values when writing it to `format`
 * (ROTQ_FORMAT_HF or ROTQ_FORMAT_GGUF) so that the file holds its format's convention (HF: w with the
 * architecture's offset applied at run time; llama.cpp's Gemma GGUFs: w + offset stored); 0 for other tensors. */
double rotq_norm_export_shift(const rotq_model *m, const rotq_tensor *t, rotq_format format);
/* Whether layer l attends through a sliding window (hp->sliding_window positions) or globally. */
bool rotq_hparams_layer_sliding(const rotq_hparams *hp, int32_t l);
/* The bias role of a norm or linear role (ROLE_COUNT when it has none). */
rotq_role rotq_role_bias(rotq_role r);

const rotq_arch_tensor *rotq_arch_tensor_for(const rotq_arch *a, rotq_role r);
/* Expands a name template for layer L into out. */
void rotq_arch_expand(const char *tmpl, int32_t layer, char *out, size_t out_size);
/* Maps a GGUF tensor name to its HF name through the arch tables (false when no role matches). */
bool rotq_arch_gguf_to_hf(const rotq_arch *a, const char *gguf_name, int64_t n_layers,
                          char *out, size_t out_size);
bool rotq_arch_hf_to_gguf(const rotq_arch *a, const char *hf_name, int64_t n_layers,
                          char *out, size_t out_size);

/* The tensor playing role r in layer L (L ignored for global roles), NULL when absent. */
rotq_tensor *rotq_model_role(const rotq_model *m, rotq_role r, int32_t layer);

/* ---- hyper-parameters ---- */
rotq_status rotq_hparams_from_hf_config(const rotq_arch *a, const void *json_config,
                                        const char *origin, rotq_hparams *hp);
rotq_status rotq_hparams_from_gguf(const rotq_arch *a, const rotq_model *m, const char *origin,
                                   rotq_hparams *hp);
/* A vision tower's hyper-parameters (vision_config; hp->vocab becomes a patch row's width) and image side. */
rotq_status rotq_hparams_vision_from_hf(const rotq_arch *va, const void *vision_config, const char *origin, int64_t out_hidden,
                                        rotq_hparams *hp, rotq_vision_config *vis);
/* Builds a config.json (json_t*) for the model from hp and the arch (used for HF export). */
void *rotq_hparams_to_hf_config(const rotq_arch *a, const rotq_hparams *hp);

/* Assigns role/layer to every tensor, checks every required tensor exists with the shape the
 * hyper-parameters imply, and that no two tensors share a name. Called after every load. */
rotq_status rotq_model_bind_arch(rotq_model *m);
/* Every tensor must have a role: one the architecture does not claim would be ignored by every
 * computation (a Qwen3 checkpoint read as Llama runs without its q_norm/k_norm: wrong logits).
 * ROTQ_ERR_UNSUPPORTED naming them, or with allow_unused a warning. Buffers that carry nothing the
 * config does not (rotary_emb.inv_freq, GGUF rope_freqs) are not counted. */
rotq_status rotq_model_check_claimed(const rotq_model *m, bool allow_unused);

/* llama.cpp's Q/K row permutation (rotate-half <-> interleaved pairs within each head).
 * `to_gguf` chooses the direction. rows = n_head * head_dim; works on any float dtype in place. */
rotq_status rotq_permute_qk_rows(rotq_tensor *t, int64_t n_head, bool to_gguf);

#endif
