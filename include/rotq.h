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
    int64_t rotary_dim;       /* dims of each head that RoPE touches (= head_dim unless partial) */
    bool tied_embeddings;
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

#ifdef __cplusplus
}
#endif
#endif /* ROTQ_H */
