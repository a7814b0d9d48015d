/* rotq — rotate large language models so that they quantize to 4 bits.
 *
 * The whole public API. Handles are opaque; every call that can fail returns a rotq_status and
 * leaves a message naming the file, tensor and value at fault in rotq_last_error() (per thread).
 * Conventions: linear weights are [out, in] row-major (Hugging Face); inside rotq every model is
 * held in the HF convention (rotate-half RoPE), whatever format it came from.
 */
#ifndef ROTQ_H
#define ROTQ_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define ROTQ_VERSION "0.1.0"

typedef enum rotq_status {
    ROTQ_OK = 0,
    ROTQ_ERR_IO,          /* a file could not be opened, read, written or renamed */
    ROTQ_ERR_FORMAT,      /* a file is corrupt or lies about its contents */
    ROTQ_ERR_UNSUPPORTED, /* valid input rotq does not handle (dtype, architecture, option) */
    ROTQ_ERR_ARG,         /* a caller passed an invalid argument or impossible size */
    ROTQ_ERR_NOMEM,       /* allocation failed */
    ROTQ_ERR_NUMERIC,     /* NaN/Inf or a numerically impossible request */
    ROTQ_ERR_NOT_FOUND,   /* a named tensor, key or file does not exist */
} rotq_status;

/* Text of the last error raised on this thread ("" when none). */
const char *rotq_last_error(void);
const char *rotq_status_name(rotq_status s);

/* Element types. The first block matches GGUF's ggml_type numbering so files map 1:1. */
typedef enum rotq_dtype {
    ROTQ_F32 = 0, ROTQ_F16 = 1, ROTQ_Q4_0 = 2, ROTQ_Q4_1 = 3, ROTQ_Q5_0 = 6, ROTQ_Q5_1 = 7,
    ROTQ_Q8_0 = 8, ROTQ_Q8_1 = 9, ROTQ_Q2_K = 10, ROTQ_Q3_K = 11, ROTQ_Q4_K = 12, ROTQ_Q5_K = 13,
    ROTQ_Q6_K = 14, ROTQ_Q8_K = 15, ROTQ_I8 = 24, ROTQ_I16 = 25, ROTQ_I32 = 26, ROTQ_I64 = 27,
    ROTQ_F64 = 28, ROTQ_BF16 = 30,
    ROTQ_DTYPE_COUNT = 64,
    ROTQ_DTYPE_INVALID = -1,
} rotq_dtype;

const char *rotq_dtype_name(rotq_dtype t);
/* Parses "f32", "F16", "bf16", "q4_0", ... ; ROTQ_DTYPE_INVALID when unknown. */
rotq_dtype rotq_dtype_from_name(const char *name);

/* ---- models ------------------------------------------------------------------------------ */

typedef struct rotq_model rotq_model;

typedef enum rotq_format {
    ROTQ_FORMAT_AUTO = 0, ROTQ_FORMAT_HF, ROTQ_FORMAT_GGUF, ROTQ_FORMAT_LLAMA2C,
} rotq_format;

typedef struct rotq_load_options {
    rotq_format format;       /* AUTO: detect from the path (folder → HF, magic bytes otherwise) */
    const char *arch_file;    /* optional JSON architecture description to register first */
    const char *tokenizer;    /* llama2.c: path of tokenizer.bin (default: beside the model) */
} rotq_load_options;

typedef struct rotq_save_options {
    rotq_format format;       /* HF or GGUF (AUTO: GGUF when the path ends in .gguf) */
    rotq_dtype dtype;         /* F32, F16, BF16; ROTQ_DTYPE_INVALID keeps each tensor's float type */
    uint64_t shard_bytes;     /* HF: largest shard (0 = 5 GB, as transformers) */
} rotq_save_options;

rotq_load_options rotq_load_defaults(void);
rotq_save_options rotq_save_defaults(void);

rotq_status rotq_model_load(const char *path, const rotq_load_options *opts, rotq_model **out);
/* Writes atomically (temporary name, then rename); refuses to write onto the input path. */
rotq_status rotq_model_save(const rotq_model *m, const char *path, const rotq_save_options *opts);
void rotq_model_free(rotq_model *m);

/* Hyper-parameters as rotq understands them, whatever file they came from. */
typedef struct rotq_hparams {
    char arch[64];            /* registry name: "llama", "qwen2", "phi3", ... */
    int64_t hidden;           /* residual width */
    int64_t intermediate;     /* MLP width */
    int64_t n_layers;
    int64_t n_heads;
    int64_t n_kv_heads;
    int64_t head_dim;
    int64_t vocab;
    int64_t max_pos;          /* context the model was trained for */
    double norm_eps;
    double rope_theta;
    int32_t rope_scaling;     /* 0 none, 1 linear, 2 llama3 */
    double rope_factor, rope_low_freq_factor, rope_high_freq_factor;
    int64_t rope_orig_max_pos;
    int64_t rotary_dim;       /* dims of each head that RoPE touches (= head_dim unless partial;
                                 0 for learned absolute positions, OPT) */
    bool tied_embeddings;
    int32_t mlp_act;          /* MLP kind (rotq_mlp_kind): 0 SwiGLU, 1 GELU (erf), 2 ReLU, 3 GELU (tanh);
                                 1..3 are not gated (up → act → down) */
    int32_t bos_id, eos_id;   /* -1 when unknown */
} rotq_hparams;

rotq_status rotq_model_hparams(const rotq_model *m, rotq_hparams *out);
int64_t rotq_model_n_tensors(const rotq_model *m);

typedef struct rotq_tensor_info {
    const char *name;         /* canonical (HF) name */
    rotq_dtype dtype;
    int32_t n_dims;
    int64_t shape[4];         /* outermost first, row-major */
    int32_t role;             /* rotq_role from the architecture, -1 when none */
    int32_t layer;            /* layer index, -1 for global tensors */
} rotq_tensor_info;

rotq_status rotq_model_tensor_info(const rotq_model *m, int64_t i, rotq_tensor_info *out);
/* Copies tensor `name` to float32 (dequantizing when needed). `out` holds n_elements floats. */
rotq_status rotq_model_tensor_f32(const rotq_model *m, const char *name, float *out, int64_t n_out);
int64_t rotq_model_n_params(const rotq_model *m);

/* ---- architectures ----------------------------------------------------------------------- */

/* Registers the architecture described by a JSON file (see docs/architectures.md). */
rotq_status rotq_arch_register_file(const char *path);
/* Names of the registered architectures, NULL past the end. */
const char *rotq_arch_name(int32_t i);

/* ---- rotation ------------------------------------------------------------------------------ */

typedef enum rotq_rotation_choice {
    ROTQ_R_NONE = 0,
    ROTQ_R_HADAMARD,           /* H/sqrt(n), exact Hadamard of order n (falls back with a warning) */
    ROTQ_R_RANDOM_HADAMARD,    /* diag(±1)·H/sqrt(n), seeded signs (QuaRot) */
    ROTQ_R_ORTHOGONAL,         /* Haar-random orthogonal, seeded */
    ROTQ_R_FILE,               /* a matrix loaded from a file */
} rotq_rotation_choice;

typedef struct rotq_rotate_options {
    rotq_rotation_choice r1, r2;  /* fused rotations: residual stream, per head V->O */
    const char *r1_file, *r2_file;
    bool r3, r4;               /* online Hadamards: Q/K after RoPE, down_proj input */
    bool fuse_norms;           /* fold norm weights into the linears they feed (needed by R1) */
    uint64_t seed;
    const char *save_rotations; /* folder to write the fused matrices into (NULL: don't) */
    bool verbose;              /* progress and warnings on stderr */
} rotq_rotate_options;

rotq_rotate_options rotq_rotate_options_default(void);  /* QuaRot: random Hadamard R1/R2, R3+R4 on, seed 0 */
/* Runs the architecture's registered operations in order over the model, in place. */
rotq_status rotq_rotate_model(rotq_model *m, const rotq_rotate_options *opts);
/* rotq_rotate_model then rotq_model_save, in one pass: with an HF output each tensor is written as
 * soon as it is final (the global ones, then layer by layer) and its memory released, so peak memory
 * stays near one layer plus the embeddings rather than the whole model. Afterwards the model's
 * tensor data are gone: m is good only for rotq_model_free. GGUF output (whose header records the
 * rotation) rotates the whole model first, then writes. */
rotq_status rotq_rotate_save(rotq_model *m, const rotq_rotate_options *ropts, const char *path, const rotq_save_options *sopts);

/* ---- tokenizers ---------------------------------------------------------------------------- */

/* Byte-level BPE (GPT-2/Qwen2/Llama-3/SmolLM2) or SentencePiece-style BPE with byte fallback
 * (Llama-2/Mistral/llama2.c). Read-only once loaded: several threads may encode with one. */
typedef struct rotq_tokenizer rotq_tokenizer;

/* The tokenizer a model carries: its tokenizer.json (+ tokenizer_config.json), GGUF
 * tokenizer.ggml.* metadata, or llama2.c tokenizer.bin. */
rotq_status rotq_tokenizer_from_model(const rotq_model *m, rotq_tokenizer **out);
/* A tokenizer file on its own: tokenizer.json (tokenizer_config.json beside it is read too), a
 * folder holding one, a llama2.c tokenizer.bin, or a GGUF file. */
rotq_status rotq_tokenizer_load(const char *path, rotq_tokenizer **out);
void rotq_tokenizer_free(rotq_tokenizer *tok);

/* Text (UTF-8; ill-formed bytes are tokenized too, never rejected) → ids, malloc'd: free() them.
 * add_bos prepends the BOS token; rotq_tokenizer_add_bos_default() says what the model expects.
 * Added/special tokens written in the text ("<|im_start|>") become their ids, as in HF. */
rotq_status rotq_tokenizer_encode(const rotq_tokenizer *tok, const char *text, size_t len, bool add_bos,
                                  int32_t **ids, int64_t *n);
/* Ids → bytes (malloc'd, NUL-terminated, free() it); skip_special leaves out BOS/EOS/control tokens. */
rotq_status rotq_tokenizer_decode(const rotq_tokenizer *tok, const int32_t *ids, int64_t n, bool skip_special,
                                  char **text, size_t *len);
/* The bytes one token stands for (borrowed; may be part of a UTF-8 character), for streaming. */
rotq_status rotq_tokenizer_piece(const rotq_tokenizer *tok, int32_t id, const char **bytes, size_t *len);
int32_t rotq_tokenizer_bos(const rotq_tokenizer *tok);        /* -1 when none */
int32_t rotq_tokenizer_eos(const rotq_tokenizer *tok);        /* -1 when none */
int64_t rotq_tokenizer_n_vocab(const rotq_tokenizer *tok);
bool rotq_tokenizer_add_bos_default(const rotq_tokenizer *tok);
bool rotq_tokenizer_is_special(const rotq_tokenizer *tok, int32_t id);
const char *rotq_tokenizer_kind(const rotq_tokenizer *tok);   /* "byte-level BPE (smollm)", ... */

#ifdef __cplusplus
}
#endif
#endif /* ROTQ_H */
