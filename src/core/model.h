/* The in-memory model description: the whole data layout in one place (llama2.c style).
 *
 * A model is hyper-parameters + named tensors + the files/metadata to carry to outputs.
 * Tensor data points into a read-only mmap of the source file until a tensor is modified;
 * rotq_tensor_make_owned() then gives it a private heap copy (copy-on-write by hand).
 */
#ifndef ROTQ_CORE_MODEL_H
#define ROTQ_CORE_MODEL_H

#include <stdbool.h>
#include <stdint.h>

#include "core/error.h"
#include "rotq.h"

#define ROTQ_MAX_DIMS 5    /* a vision tower's Conv3d patch embedding has 5 */
#define ROTQ_GGUF_MAX_DIMS 4
#define ROTQ_NAME_MAX 256

struct rotq_arch; /* src/arch/arch.h */

typedef struct rotq_tensor {
    char name[ROTQ_NAME_MAX];      /* canonical HF name, e.g. model.layers.0.self_attn.q_proj.weight */
    rotq_dtype dtype;
    rotq_dtype file_dtype;         /* dtype in the source file (quantized ones are dequantized at load) */
    int32_t n_dims;
    int64_t shape[ROTQ_MAX_DIMS];  /* outermost first (row-major): a linear is [out, in] */
    void *data;                    /* into an mmap (owned == false) or a heap block (owned == true) */
    uint64_t nbytes;
    bool owned;
    bool mapped;                   /* data (or, once owned, the original bytes) lie in one of the model's
                                      read-only file mappings: their pages may be dropped once copied */
    const void *map_src;           /* where in the mapping (NULL when not mapped) */
    int32_t role;                  /* rotq_role, -1 when the architecture gives it none */
    double file_bpw;               /* > 0: storage bits per element in the file when file_dtype cannot say
                                      (compressed-tensors codes and scales) */
    char file_format[48];          /* "" or how the file held it (compressed-tensors W4 g128 pack-quantized) */
    int32_t layer;                 /* -1 for global tensors */
    /* The quantizer's codes for data (a quant/ rotq_qweight), when a quantizer made data: what
     * integer products and exports take. Dropped when anything may change data afterwards. */
    void *codes;
    void (*codes_free)(void *codes);
} rotq_tensor;

/* One read-only file mapping the model's tensors point into. */
typedef struct rotq_mapping {
    void *addr;
    uint64_t size;
} rotq_mapping;

/* GGUF metadata value types (same codes as the GGUF spec). */
typedef enum rotq_meta_type {
    ROTQ_META_U8 = 0, ROTQ_META_I8 = 1, ROTQ_META_U16 = 2, ROTQ_META_I16 = 3, ROTQ_META_U32 = 4,
    ROTQ_META_I32 = 5, ROTQ_META_F32 = 6, ROTQ_META_BOOL = 7, ROTQ_META_STRING = 8,
    ROTQ_META_ARRAY = 9, ROTQ_META_U64 = 10, ROTQ_META_I64 = 11, ROTQ_META_F64 = 12,
} rotq_meta_type;

/* A key/value from GGUF metadata (or synthesized for GGUF output). Owned heap data. */
typedef struct rotq_meta {
    char *key;
    rotq_meta_type type;
    rotq_meta_type arr_type;   /* element type when type == ARRAY */
    uint64_t n;                /* array length (1 for scalars) */
    union { uint64_t u; int64_t i; double f; bool b; } v;  /* scalars, widened */
    char *str;                 /* STRING */
    void *arr;                 /* ARRAY of numbers: n packed elements of arr_type;
                                  ARRAY of strings: n (char *) */
    uint64_t *arr_str_len;     /* ARRAY of strings: byte length of each (strings may hold NULs) */
} rotq_meta;

/* A small file carried from input to output untouched (tokenizer.json, tokenizer.bin, ...). */
typedef struct rotq_blob {
    char name[64];
    uint8_t *data;
    uint64_t size;
} rotq_blob;

/* An online rotation the runner applies at a hook point (and that outputs record in "rotq"). */
typedef struct rotq_online_rotation {
    bool on;
    int64_t size;
    bool dense;                    /* no exact Hadamard: a seeded random orthogonal matrix */
    uint64_t seed;                 /* for dense ones */
    int64_t block;                 /* > 0: block-diagonal, one rotation of this size per block of the row */
    bool random_signs;             /* Hadamard with signs seeded from seed (layerwise sites) */
} rotq_online_rotation;

/* What rotation did to this model, beyond the weights (read by nn/ and written by io/). */
typedef struct rotq_rotation_record {
    rotq_online_rotation r3;       /* Q and K after RoPE, per head */
    rotq_online_rotation r4;       /* down_proj input */
    rotq_online_rotation lw[ROTQ_LW_SITES]; /* layerwise: in front of each linear input site */
    char r1[96], r2[96];           /* how the fused rotations were made ("" when none) */
    bool norms_fused;
    bool ln_as_rms;                /* LayerNorm fused into a centred stream: norms now run as RMSNorm
                                      (weight 1, plus any bias left in the norm) */
} rotq_rotation_record;

/* Whether r records any online rotation (R3, R4, a layerwise site): a runner must apply them. */
static inline bool rotq_record_has_online(const rotq_rotation_record *r) {
    bool on = r->r3.on || r->r4.on;
    for (int s = 0; s < ROTQ_LW_SITES; s++) on |= r->lw[s].on;
    return on;
}

/* A vision tower's input side (Qwen2-VL): how an image becomes patches, and the prompt's marker tokens. */
typedef struct rotq_vision_config {
    int64_t patch, temporal_patch, merge, channels;  /* 14, 2, 2, 3: a patch row holds channels·temporal·patch² values */
    int64_t out_hidden;                        /* the merger's output width (the language model's hidden size) */
    int64_t min_pixels, max_pixels;            /* the resize keeps height·width within these */
    double mean[3], std[3];                    /* per-channel normalisation after scaling to [0, 1] */
    int32_t image_token, vision_start, vision_end; /* ids in the language model's vocabulary (-1: unknown) */
    int64_t window;                            /* > 0 (Qwen2.5-VL): windows of window×window merged patches ... */
    uint64_t full_layers[4];                   /* ... in every layer but these (bit l: layer l attends to the whole image) */
} rotq_vision_config;

#define ROTQ_MAX_BLOBS 16
#define ROTQ_MAX_MAPS 64

struct rotq_model {
    rotq_hparams hp;
    const struct rotq_arch *arch;  /* matched registry entry */
    rotq_format source_format;
    char source_path[4096];

    rotq_tensor *tensors;
    int64_t n_tensors, cap_tensors;

    rotq_mapping maps[ROTQ_MAX_MAPS];
    int32_t n_maps;

    void *hf_config;               /* json_t* of config.json (loaded or synthesized), owned */
    rotq_meta *meta;               /* GGUF metadata as loaded (tokenizer.* etc.) */
    int64_t n_meta;
    rotq_blob blobs[ROTQ_MAX_BLOBS];
    int32_t n_blobs;
    rotq_rotation_record rot;
    char quant_desc[1024];          /* how the weights were quantized (GGUF: rotq.quantization), or "" */

    /* A multimodal checkpoint's vision tower: a model of its own (arch->vision_tower, its own
     * hyper-parameters, tensors and rotation record) whose tensor data lie in this model's mappings;
     * written back with this model's tensors. NULL for text-only models. */
    struct rotq_model *vision;
    rotq_vision_config vis;         /* with vision: the image side and the prompt's marker ids */
    /* Activations the file says its runtime quantizes (compressed-tensors' dynamic per-token input
     * activations): sessions without quantizers of their own apply these. bits 0: none. */
    rotq_act_format file_act;
    int32_t file_w_bits;            /* ... and the integer grid its weights are on (0: float weights) */
    int64_t file_w_group;           /* columns per scale (<= 0: per output channel) */
};

/* Every tensor a writer stores: the model's own, then its vision tower's (rotq_model.vision). */
static inline int64_t rotq_model_n_stored(const rotq_model *m) {
    return m->n_tensors + (m->vision ? m->vision->n_tensors : 0);
}
static inline rotq_tensor *rotq_model_stored(const rotq_model *m, int64_t i) {
    return i < m->n_tensors ? &m->tensors[i] : &m->vision->tensors[i - m->n_tensors];
}
static inline int64_t rotq_model_stored_index(const rotq_model *m, const rotq_tensor *t) {
    return t >= m->tensors && t < m->tensors + m->n_tensors ? t - m->tensors : m->n_tensors + (t - m->vision->tensors);
}

/* ---- model construction (used by the format readers) ---- */
rotq_model *rotq_model_new(void);
/* Appends a tensor; data is borrowed (mmap) unless owned. Checks the shape/byte count agree. */
rotq_status rotq_model_add_tensor(rotq_model *m, const char *name, rotq_dtype dt, int32_t n_dims,
                                  const int64_t *shape, void *data, uint64_t nbytes, bool owned);
rotq_tensor *rotq_model_find(const rotq_model *m, const char *name);
rotq_status rotq_model_add_blob(rotq_model *m, const char *name, const void *data, uint64_t size);
const rotq_blob *rotq_model_blob(const rotq_model *m, const char *name);
const rotq_meta *rotq_model_meta(const rotq_model *m, const char *key);
/* Typed reads of a value (false when kv is NULL or of another kind): any integer type fitting
 * int64; any number (integers, floats, bool) as a double; a bool (an integer counts, `dflt` when
 * absent); element i of an integer array; element i of a numeric array as a double. */
bool rotq_meta_int(const rotq_meta *kv, int64_t *out);
bool rotq_meta_number(const rotq_meta *kv, double *out);
bool rotq_meta_bool(const rotq_meta *kv, bool dflt);
bool rotq_meta_arr_int(const rotq_meta *kv, uint64_t i, int64_t *out);
bool rotq_meta_arr_num(const rotq_meta *kv, uint64_t i, double *out);
/* mmaps `path` read-only, records it in the model, returns the base address and size. */
rotq_status rotq_model_map_file(rotq_model *m, const char *path, const uint8_t **base, uint64_t *size);
void rotq_meta_free(rotq_meta *kv);

/* ---- tensors ---- */
int64_t rotq_tensor_numel(const rotq_tensor *t);
/* Gives the tensor a private heap copy of its data (no-op when already owned). */
rotq_status rotq_tensor_make_owned(rotq_tensor *t);
/* Replaces the tensor's data with `n` float32 values converted to `dt` (F32/F16/BF16). */
rotq_status rotq_tensor_set_f32(rotq_tensor *t, const float *src, rotq_dtype dt);
/* Makes `data` (a malloc'd block of the same nbytes/dtype) the tensor's storage. When the old bytes
 * came from a file mapping, their pages are released (madvise: they re-read from the file if touched
 * again), so a copied tensor is not held twice. */
void rotq_tensor_adopt(rotq_tensor *t, void *data);
/* Releases the resident pages wholly inside [p, p+n) of a read-only file mapping (never call it on
 * anything else: on anonymous memory it would zero the data). */
void rotq_mapping_drop(const void *p, uint64_t n);
/* Releases the mapped source pages of a tensor (no-op unless it came from a file mapping). */
void rotq_tensor_drop_source(const rotq_tensor *t);
/* Frees the tensor's data (owned) or drops its mapped pages; data becomes NULL (streaming writers). */
void rotq_tensor_release(rotq_tensor *t);
/* Converts the tensor to float32 / float64 into caller memory of numel elements. */
rotq_status rotq_tensor_to_f32(const rotq_tensor *t, float *dst);
rotq_status rotq_tensor_to_f64(const rotq_tensor *t, double *dst);
/* Replaces data from doubles (rounded once into the tensor's current float dtype). */
rotq_status rotq_tensor_set_f64(rotq_tensor *t, const double *src);
/* Reshapes/reallocates to a new float dtype and shape with fresh owned storage (zeroed). */
rotq_status rotq_tensor_realloc(rotq_tensor *t, rotq_dtype dt, int32_t n_dims, const int64_t *shape);

/* ---- dtypes ---- */
/* Bytes for n elements of dt (block types need n % block == 0); 0 when impossible. */
uint64_t rotq_dtype_nbytes(rotq_dtype dt, int64_t n);
int64_t rotq_dtype_block_size(rotq_dtype dt);   /* elements per block (1 for plain types) */
uint64_t rotq_dtype_block_bytes(rotq_dtype dt); /* bytes per block; 0 when unknown */
bool rotq_dtype_is_float(rotq_dtype dt);        /* F32/F16/BF16/F64 */

float rotq_f16_to_f32(uint16_t h);
uint16_t rotq_f32_to_f16(float f);               /* round to nearest even, as numpy */
float rotq_bf16_to_f32(uint16_t h);
uint16_t rotq_f32_to_bf16(float f);              /* round to nearest even, NaN kept quiet */

/* Dequantizes n elements of a (possibly block-quantized) buffer to float32. src/io/gguf_quant.c */
rotq_status rotq_dequantize(rotq_dtype dt, const void *src, float *dst, int64_t n);
/* The grid of a block format rotq writes: codes of `bits`, one scale per `group` elements, stored as
 * float16 (super_groups 0) or, per block of super_groups groups, as d·sc with d float16 and integer
 * 1 <= sc <= super_max (the K-quants). false for any other type. */
typedef struct rotq_block_grid {
    int32_t bits, group, super_groups, super_max;
    bool asym;               /* Q4_1/Q5_1: codes with a zero, min = −d·z stored as float16 ... */
    int32_t scale_mant_bits; /* ... which holds when d has at most this many mantissa bits */
    int32_t min_max;         /* > 0 (Q2_K, Q4_K, Q5_K): y = s·u − mn with unsigned codes u and a group
                                min mn = dmin·m, integer 0 <= m <= min_max, one float16 dmin per block */
} rotq_block_grid;
bool rotq_dtype_grid(rotq_dtype dt, rotq_block_grid *g);
/* n codes u (unsigned; zero at 2^(bits-1), or zeros[g] for asymmetric grids) with their group scales
 * (and group mins for min_max grids; NULL otherwise), packed into dt's blocks; ROTQ_ERR_ARG when a
 * scale, min or code is not what the format stores. */
rotq_status rotq_block_pack(rotq_dtype dt, const uint8_t *u, const double *scales, const int32_t *zeros, const double *mins,
                            int64_t n, void *dst);

/* ---- files ---- */
/* Checks that `out` does not name the same file/folder as `in` (both may not exist yet). */
rotq_status rotq_path_check_distinct(const char *in, const char *out);

/* ---- format readers/writers (src/io) ---- */
/* An HF folder's compressed-tensors weights (config.json quantization_config) dequantized in place as the
 * format defines them; the file's activation scheme into m->file_act (src/io/ct.c). */
rotq_status rotq_ct_read(rotq_model *m, const char *path, const void *config);
rotq_status rotq_load_gguf(const char *path, rotq_model *m);
rotq_status rotq_load_hf(const char *dir, rotq_model *m);
rotq_status rotq_load_llama2c(const char *path, const char *tokenizer_path, rotq_model *m);
rotq_status rotq_save_gguf(const rotq_model *m, const char *path, rotq_dtype dtype);
/* Whether rotq can write m as GGUF at all (its architecture has a GGUF form): the error naming why not. */
rotq_status rotq_gguf_writable(const rotq_model *m, const char *path);
rotq_status rotq_save_hf(const rotq_model *m, const char *dir, rotq_dtype dtype, uint64_t shard_bytes);
/* Checks save options for writing m to path (dtype, not onto the input) and resolves the format. */
/* Attaches codes to t (freeing any it had); NULL detaches. */
void rotq_tensor_set_codes(rotq_tensor *t, void *codes, void (*codes_free)(void *));
/* Drops every tensor's codes (before an operation that rewrites weights in place). */
void rotq_model_drop_codes(rotq_model *m);
rotq_status rotq_save_check(const rotq_model *m, const char *path, const rotq_save_options *o, rotq_format *fmt);

/* An HF folder written tensor by tensor (rotq_save_hf is open + put each + finish): open lays out
 * every tensor of m (shards, offsets, dtypes) and writes the shard headers into a temporary folder;
 * put writes tensor i (same dtype/shape as at open) at its place, in any order; finish checks all
 * were written, adds config/index/tokenizer files and renames the folder into place (freeing w);
 * abort removes everything. */
typedef struct rotq_hf_writer rotq_hf_writer;
rotq_status rotq_hf_writer_open(const rotq_model *m, const char *dir, rotq_dtype dtype, uint64_t shard_bytes, rotq_hf_writer **out);
rotq_status rotq_hf_writer_put(rotq_hf_writer *w, const rotq_model *m, int64_t i);
rotq_status rotq_hf_writer_finish(rotq_hf_writer *w, const rotq_model *m);
void rotq_hf_writer_abort(rotq_hf_writer *w);

#endif
