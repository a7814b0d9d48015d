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

/* Marks the public API: the shared library exports these symbols and nothing else (it is built
 * with -fvisibility=hidden). */
#if defined(__GNUC__)
#define ROTQ_API __attribute__((visibility("default")))
#else
#define ROTQ_API
#endif

typedef enum rotq_status {
    ROTQ_OK = 0,
    ROTQ_ERR_IO,          /* a file could not be opened, read, written or renamed */
    ROTQ_ERR_FORMAT,      /* a file is corrupt or lies about its contents */
    ROTQ_ERR_UNSUPPORTED, /* valid input rotq does not handle (dtype, architecture, option) */
    ROTQ_ERR_ARG,         /* a caller passed an invalid argument or impossible size */
    ROTQ_ERR_NOMEM,       /* allocation failed */
    ROTQ_ERR_NUMERIC,     /* NaN/Inf or a numerically impossible request */
    ROTQ_ERR_NOT_FOUND,   /* a named tensor, key or file does not exist */
    ROTQ_ERR_CANCELLED,   /* rotq_cancel() was called (a signal): the work stopped, temporaries removed */
} rotq_status;

/* Asks every running rotq operation to stop at its next check point (between tensors, layers,
 * windows) with ROTQ_ERR_CANCELLED, removing its temporary outputs. Async-signal-safe: meant for a
 * SIGINT/SIGTERM handler. Sticky for the life of the process. */
ROTQ_API void rotq_cancel(void);
ROTQ_API bool rotq_cancel_requested(void);

/* Text of the last error raised on this thread ("" when none). */
ROTQ_API const char *rotq_last_error(void);
ROTQ_API const char *rotq_status_name(rotq_status s);

/* Logging: the library prints nothing. Warnings (a fallback taken, something dropped on export)
 * and progress lines (with the options' verbose flags) go to this callback, one line per call
 * without a trailing newline; none is set by default, so they are dropped. Set it once, before
 * other calls (it is process-wide); it may be called from several threads at once (progress of
 * parallel loops), so it must be thread-safe (stdio is). */
typedef enum rotq_log_level { ROTQ_LOG_ERROR = 0, ROTQ_LOG_WARN, ROTQ_LOG_INFO } rotq_log_level;
typedef void (*rotq_log_fn)(void *ctx, rotq_log_level level, const char *line);
ROTQ_API void rotq_log_set(rotq_log_fn fn, void *ctx);
ROTQ_API const char *rotq_log_level_name(rotq_log_level level);

/* Whole files: read into a malloc'd buffer (free() it; a NUL follows the data), or written
 * atomically (path.tmp-PID-XXXXXX, fsync, rename: readers see the old file or the new one, never a
 * part). The writer never writes through a symbolic link or onto a device, FIFO or socket; it
 * replaces an existing regular file (check with rotq_output_check first when that is not wanted). */
ROTQ_API rotq_status rotq_read_file(const char *path, uint8_t **data, uint64_t *size);
ROTQ_API rotq_status rotq_write_file_atomic(const char *path, const void *data, uint64_t size);

/* The one output policy of every writer and command. A path may be written when it does not
 * exist yet and its folder does, or when `overwrite` is set and it is a regular file (a file
 * output) or a model folder (a folder output: it holds config.json and no subfolders). Refused
 * with a message naming the path: a symbolic link (give the target's own path), a device node,
 * FIFO or socket, a file where a folder goes or the reverse, a non-empty folder that is not a
 * model, a missing or read-only folder, and the input itself (`input`, may be NULL).
 * Temporaries are named PATH.tmp-PID-XXXXXX; writing PATH first removes those left behind by a
 * process that no longer runs (killed), with a warning. */
typedef enum rotq_output_kind { ROTQ_OUTPUT_FILE, ROTQ_OUTPUT_FOLDER } rotq_output_kind;
ROTQ_API rotq_status rotq_output_check(const char *path, rotq_output_kind kind, bool overwrite, const char *input);

/* Element types. The first block matches GGUF's ggml_type numbering so files map 1:1. */
typedef enum rotq_dtype {
    ROTQ_F32 = 0, ROTQ_F16 = 1, ROTQ_Q4_0 = 2, ROTQ_Q4_1 = 3, ROTQ_Q5_0 = 6, ROTQ_Q5_1 = 7,
    ROTQ_Q8_0 = 8, ROTQ_Q8_1 = 9, ROTQ_Q2_K = 10, ROTQ_Q3_K = 11, ROTQ_Q4_K = 12, ROTQ_Q5_K = 13,
    ROTQ_Q6_K = 14, ROTQ_Q8_K = 15, ROTQ_I8 = 24, ROTQ_I16 = 25, ROTQ_I32 = 26, ROTQ_I64 = 27,
    ROTQ_F64 = 28, ROTQ_BF16 = 30,
    ROTQ_DTYPE_COUNT = 64,
    ROTQ_DTYPE_INVALID = -1,
} rotq_dtype;

ROTQ_API const char *rotq_dtype_name(rotq_dtype t);
/* Storage bits per element (4.5 for Q4_0, 6.5625 for Q6_K, 16 for F16); 0 when unknown. */
ROTQ_API double rotq_dtype_bits_per_weight(rotq_dtype t);
/* Parses "f32", "F16", "bf16", "q4_0", ... ; ROTQ_DTYPE_INVALID when unknown. */
ROTQ_API rotq_dtype rotq_dtype_from_name(const char *name);

/* ---- models ------------------------------------------------------------------------------ */

typedef struct rotq_model rotq_model;

typedef enum rotq_format {
    ROTQ_FORMAT_AUTO = 0, ROTQ_FORMAT_HF, ROTQ_FORMAT_GGUF, ROTQ_FORMAT_LLAMA2C,
} rotq_format;

typedef struct rotq_load_options {
    rotq_format format;       /* AUTO: detect from the path (folder → HF, magic bytes otherwise) */
    const char *arch_file;    /* optional JSON architecture description to register first */
    const char *tokenizer;    /* llama2.c: path of tokenizer.bin (default: beside the model) */
    bool allow_unused;        /* load even when the architecture gives some tensors no role (they would be
                                 ignored by every computation: a warning names them); default: refuse */
} rotq_load_options;

typedef struct rotq_save_options {
    rotq_format format;       /* HF or GGUF (AUTO: GGUF when the path ends in .gguf) */
    rotq_dtype dtype;         /* F32, F16, BF16; ROTQ_DTYPE_INVALID keeps each tensor's float type */
    uint64_t shard_bytes;     /* HF: largest shard (0 = 5 GB, as transformers) */
    bool overwrite;           /* replace an existing output (rotq_output_check's policy); default false */
} rotq_save_options;

ROTQ_API rotq_load_options rotq_load_defaults(void);
ROTQ_API rotq_save_options rotq_save_defaults(void);

ROTQ_API rotq_status rotq_model_load(const char *path, const rotq_load_options *opts, rotq_model **out);
/* Writes atomically (temporary name, then rename); refuses to write onto the input path. */
ROTQ_API rotq_status rotq_model_save(const rotq_model *m, const char *path, const rotq_save_options *opts);
ROTQ_API void rotq_model_free(rotq_model *m);

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
    int32_t mlp_act;          /* rotq_mlp_kind; the GELU and ReLU kinds are not gated (up → act → down) */
    int32_t bos_id, eos_id;   /* -1 when unknown */
    /* Gemma-style details (zero for the other built-ins) */
    double norm_offset;       /* added to every norm weight: 1 for (1 + w) norms as HF stores them,
                                 0 once a file folded it in (llama.cpp's Gemma GGUFs) */
    double embed_scale;       /* the token embedding is multiplied by this (Gemma: sqrt(hidden)); 0 = 1 */
    double attn_scale;        /* scale of q·k (Gemma: query_pre_attn_scalar^-1/2); 0 = head_dim^-1/2 */
    int64_t sliding_window;   /* > 0: local layers attend to the last sliding_window positions */
    int32_t sliding_pattern;  /* every sliding_pattern-th layer (1-based) is global, the others local;
                                 0 with a window: every layer local */
    double rope_theta_local;  /* RoPE base of the local layers (0: rope_theta), without scaling */
    int32_t mrope_section[3]; /* multimodal RoPE (Qwen2-VL): rotary frequencies turned by the temporal, height and
                                 width position components, in this many pairs each (all 0: plain RoPE) */
} rotq_hparams;

/* SwiGLU and GeGLU are gated (down(act(gate)·up)); the others are plain (down(act(up))), OPT/GPT style. */
typedef enum rotq_mlp_kind {
    ROTQ_MLP_SWIGLU = 0, ROTQ_MLP_GELU = 1 /* exact, erf */, ROTQ_MLP_RELU = 2, ROTQ_MLP_GELU_TANH = 3,
    ROTQ_MLP_GEGLU = 4 /* gated like SwiGLU with the tanh GELU: down(gelu_tanh(gate)·up) (Gemma) */,
    ROTQ_MLP_QUICK_GELU = 5 /* plain, x·sigmoid(1.702·x) (CLIP-style vision towers: Qwen2-VL) */
} rotq_mlp_kind;
typedef enum rotq_norm_kind { ROTQ_NORM_RMS = 0, ROTQ_NORM_LAYER = 1 } rotq_norm_kind;
/* Positions: RoPE on q/k, or a learned table added to the token embedding (OPT; row pos + offset). */
typedef enum rotq_pos_kind { ROTQ_POS_ROPE = 0, ROTQ_POS_LEARNED = 1 } rotq_pos_kind;

ROTQ_API rotq_status rotq_model_hparams(const rotq_model *m, rotq_hparams *out);

/* How the model computes, beyond its sizes. */
typedef struct rotq_model_layout {
    rotq_format source_format;   /* the file it was loaded from */
    rotq_norm_kind norm;         /* as run now (a fused LayerNorm model runs RMSNorm) */
    rotq_pos_kind positions;
    int32_t pos_offset;          /* learned positions: row = position + offset */
    bool online_r3, online_r4;   /* recorded online rotations a session applies */
    bool qk_norm;                /* per-head RMSNorm of q and k before RoPE (Qwen3, Gemma 3) */
    bool sandwich_norms;         /* norms on o_proj's and down_proj's outputs (Gemma 3) */
    bool fused_r1;               /* a fused R1 can keep the function (false: sandwich norms, or no rotate_r1 op) */
} rotq_model_layout;
ROTQ_API rotq_status rotq_model_layout_get(const rotq_model *m, rotq_model_layout *out);
ROTQ_API int64_t rotq_model_n_tensors(const rotq_model *m);
/* How m's weights were quantized (set by rotq_quant_model, read back from GGUF rotq.quantization), or "". */
ROTQ_API const char *rotq_model_quantization(const rotq_model *m);

typedef struct rotq_tensor_info {
    const char *name;         /* canonical (HF) name */
    rotq_dtype dtype;         /* as held now (float after a rotation changed it) */
    rotq_dtype file_dtype;    /* as stored in the file it came from */
    int32_t n_dims;
    int64_t shape[5];         /* outermost first, row-major (5: a vision tower's Conv3d patch embedding) */
    int32_t role;             /* the architecture's role, -1 when none */
    const char *role_name;    /* "attn_q", "mlp_down", ... ("" when none) */
    int32_t layer;            /* layer index, -1 for global tensors */
    double file_bits_per_weight; /* storage bits per element in the file, scales included (a packed
                                    compressed-tensors weight: 4.5 for 4 bits with a float32 scale per 64) */
    const char *file_format;  /* "" or how the file held it ("compressed-tensors pack-quantized W4 g128") */
} rotq_tensor_info;

ROTQ_API rotq_status rotq_model_tensor_info(const rotq_model *m, int64_t i, rotq_tensor_info *out);
/* Copies tensor `name` to float32 (dequantizing when needed). `out` holds n_elements floats. */
ROTQ_API rotq_status rotq_model_tensor_f32(const rotq_model *m, const char *name, float *out, int64_t n_out);
ROTQ_API int64_t rotq_model_n_params(const rotq_model *m);

/* Checks that `out` does not name the same file or folder as `in` (neither needs to exist yet):
 * rotq never writes onto its input. */
ROTQ_API rotq_status rotq_path_check_distinct(const char *in, const char *out);

/* ---- architectures ----------------------------------------------------------------------- */

/* Registers the architecture described by a JSON file (see docs/architectures.md). */
ROTQ_API rotq_status rotq_arch_register_file(const char *path);
/* Names of the registered architectures, NULL past the end. */
ROTQ_API const char *rotq_arch_name(int32_t i);

/* ---- rotation ------------------------------------------------------------------------------ */

typedef enum rotq_rotation_choice {
    ROTQ_R_NONE = 0,
    ROTQ_R_HADAMARD,           /* H/sqrt(n), exact Hadamard of order n (falls back with a warning) */
    ROTQ_R_RANDOM_HADAMARD,    /* diag(±1)·H/sqrt(n), seeded signs (QuaRot) */
    ROTQ_R_ORTHOGONAL,         /* Haar-random orthogonal, seeded */
    ROTQ_R_FILE,               /* a matrix loaded from a file */
} rotq_rotation_choice;

/* Layerwise (unfused) rotations: an online rotation in front of a linear's input and its inverse
 * fused into that linear's weight, W ← W·R — no norm fusion needed, so it works where fusion cannot
 * reach. The sites are the runner's linear inputs (a shared input is rotated once for all of its
 * linears): */
typedef enum rotq_lw_site {
    ROTQ_LW_QKV = 0,           /* q/k/v_proj's input (after the attention norm) */
    ROTQ_LW_O,                 /* o_proj's input (the heads' output) */
    ROTQ_LW_MLP,               /* gate/up_proj's input (after the MLP norm) */
    ROTQ_LW_DOWN,              /* down_proj's input (what R4 rotates: not both) */
    ROTQ_LW_LM_HEAD,           /* lm_head's input (a tied embedding is untied first) */
    ROTQ_LW_SITES
} rotq_lw_site;
ROTQ_API const char *rotq_lw_site_name(rotq_lw_site s); /* "qkv", "o", "mlp", "down", "lm_head" */
ROTQ_API int rotq_lw_site_from_name(const char *name);  /* the site, or -1 when name is none of those */

typedef struct rotq_rotate_options {
    rotq_rotation_choice r1, r2;  /* fused rotations: residual stream, per head V->O */
    const char *r1_file, *r2_file; /* a .safetensors matrix, or a folder of learned rotations
                                      (r1.safetensors, r2.layerL.safetensors: rotq_learn_rotations) */
    bool r3, r4;               /* online Hadamards: Q/K after RoPE, down_proj input */
    uint32_t layerwise;        /* layerwise rotations at the sites with bit (1 << rotq_lw_site) set */
    rotq_rotation_choice layerwise_kind; /* HADAMARD, RANDOM_HADAMARD (seeded signs; NONE means this) or
                                  ORTHOGONAL (dense, seeded) */
    int64_t layerwise_block;   /* > 0: each layerwise rotation block-diagonal with blocks of this size */
    int64_t r1_block, r4_block; /* > 0: R1 (fused) or R4 (online) block-diagonal, one Hadamard of this size
                                  (any K·2^m dividing the width, e.g. a format's block of 32 or 16) on each
                                  block of the stream or of down_proj's input; 0: full width */
    bool fuse_norms;           /* fold norm weights into the linears they feed (needed by R1) */
    uint64_t seed;
    const char *save_rotations; /* folder to write the fused matrices into (NULL: don't) */
    bool verbose;              /* progress and warnings on stderr */
} rotq_rotate_options;

ROTQ_API rotq_rotate_options rotq_rotate_options_default(void);  /* QuaRot: random Hadamard R1/R2, R3+R4 on, seed 0 */
/* Runs the architecture's registered operations in order over the model, in place. */
ROTQ_API rotq_status rotq_rotate_model(rotq_model *m, const rotq_rotate_options *opts);
/* rotq_rotate_model then rotq_model_save, in one pass: with an HF output each tensor is written as
 * soon as it is final (the global ones, then layer by layer) and its memory released, so peak memory
 * stays near one layer plus the embeddings rather than the whole model. Afterwards the model's
 * tensor data are gone: m is good only for rotq_model_free. GGUF output (whose header records the
 * rotation) rotates the whole model first, then writes. */
ROTQ_API rotq_status rotq_rotate_save(rotq_model *m, const rotq_rotate_options *ropts, const char *path, const rotq_save_options *sopts);


/* ---- rotations and Hadamard matrices ---------------------------------------------------------- */

/* An n×n orthogonal matrix R acting on rows: x ← x·R ("apply"), x ← x·Rᵀ ("inverse"). A Hadamard
 * rotation of size n = K·2^m is diag(signs)·(H_K ⊗ H_{2^m})/√n, applied in O(n log n + nK) per row
 * (docs/hadamard.md). Random numbers come from rotq's own generator: a seed gives the same bytes on
 * every machine. */
typedef struct rotq_rotation rotq_rotation;

/* Hadamard rotation of size n: random signs from seed when `random_signs`, else all +1.
 * ROTQ_ERR_UNSUPPORTED (with the reason) when no exact Hadamard of order n is known. */
ROTQ_API rotq_status rotq_rotation_hadamard(int64_t n, bool random_signs, uint64_t seed, rotq_rotation **out);
/* Haar-random orthogonal matrix (Householder QR of a Gaussian matrix, diag(R) made positive). */
ROTQ_API rotq_status rotq_rotation_random_orthogonal(int64_t n, uint64_t seed, rotq_rotation **out);
/* Rotation from a caller's n·n row-major matrix (copied); checks it is orthogonal to `tol`. */
ROTQ_API rotq_status rotq_rotation_from_dense(int64_t n, const double *R, double tol, rotq_rotation **out);
ROTQ_API void rotq_rotation_free(rotq_rotation *R);
ROTQ_API int64_t rotq_rotation_size(const rotq_rotation *R);
ROTQ_API const char *rotq_rotation_describe(const rotq_rotation *R);   /* how it was made */
/* The rotation as an n·n row-major matrix of doubles (caller's memory). */
ROTQ_API rotq_status rotq_rotation_to_dense_f64(const rotq_rotation *R, double *out);
/* x ← x·R (inverse: x ← x·Rᵀ) for `rows` contiguous rows of n values, in place. */
ROTQ_API rotq_status rotq_rotation_apply_rows(const rotq_rotation *R, float *x, int64_t rows, bool inverse);
ROTQ_API rotq_status rotq_rotation_apply_rows_f64(const rotq_rotation *R, double *x, int64_t rows, bool inverse);
/* Files: safetensors with one tensor "rotation", F32 or F64, [n, n], the matrix as applied;
 * loading checks orthogonality (tolerance 1e-4). */
ROTQ_API rotq_status rotq_rotation_save(const rotq_rotation *R, const char *path, rotq_dtype dtype);
ROTQ_API rotq_status rotq_rotation_load(const char *path, rotq_rotation **out);
/* A folder of rotations (rotq rotate --save-rotations, rotq learn) keeps R1 in DIR/r1.safetensors
 * (layer < 0) and layer L's R2 in DIR/r2.layerL.safetensors: that file's path for `layer`. */
ROTQ_API void rotq_rotation_folder_file(const char *dir, int32_t layer, char *out, size_t size);
/* max |RᵀR - I| entry of an n·n row-major matrix, computed in double. */
ROTQ_API double rotq_orthogonality_error(const double *R, int64_t n);

/* True when rotq can construct an exact Hadamard matrix of order n. */
ROTQ_API bool rotq_hadamard_known(int64_t n);
/* Writes how order n is built, e.g. "Paley II q=37 ⊗ Sylvester 2^6"; false (and "") if unknown. */
ROTQ_API bool rotq_hadamard_describe(int64_t n, char *buf, size_t size);
/* n = K·2^m with the smallest K of known order (K = 1 for powers of two); false when none. */
ROTQ_API bool rotq_hadamard_split(int64_t n, int64_t *K, int32_t *m);
/* The ±1 Hadamard matrix of order n (at most ROTQ_HADAMARD_MAX_ORDER) as a malloc'd row-major
 * n·n array: free() it. */
#define ROTQ_HADAMARD_MAX_ORDER 65536
ROTQ_API rotq_status rotq_hadamard_build(int64_t n, int8_t **out);
/* max |H·Hᵀ - n·I| entry (0 for a Hadamard matrix), in exact integer arithmetic. */
ROTQ_API int64_t rotq_hadamard_defect(const int8_t *H, int64_t n);
/* Orders that are multiples of 4 in [4, max] with no known construction, written to out (up to
 * cap); returns how many there are. */
ROTQ_API int64_t rotq_hadamard_unknown_orders(int64_t max, int64_t *out, int64_t cap);

/* ---- quantization ---------------------------------------------------------------------------- */

/* Integer grids as the GPTQ/QuaRot code defines them: symmetric b-bit integers are
 * [-2^(b-1), 2^(b-1)-1] with scale = max|x| / (2^(b-1)-1); asymmetric ones [0, 2^b-1] with
 * scale = (max-min) / (2^b-1) and zero = round(-min/scale); rounding half-to-even. */

/* Activations (per token, dynamic, at every linear input) and the KV cache (per head). */
/* Where a symmetric b-bit grid puts its range t (a weight row's or group's max |w| after the clip
 * search's shrink, an activation row's max |x| × clip): the conventions of the field differ by one level, and GPTQ feels it.
 *   MAXQ   scale t/(2^(b-1)-1): ±t on ±7 at 4 bits, −8 unused at the range (QuaRot, GPTQ)
 *   FULL   scale t/2^(b-1): −t on −8, +t clipped to +7 (Brevitas' int quantizers, narrow_range off)
 *   SIGNED scale ±t/2^(b-1), its sign putting the largest magnitude on −8 exactly (llama.cpp's
 *          Q4_0 d, Q3_K and Q6_K sub-scales)
 *   HALF   scale t/(2^(b-1) − ½): compressed-tensors' (q_max − q_min)/2 (vLLM's and llm-compressor's
 *          dynamic activations; t/127.5 at 8 bits) */
typedef enum rotq_sym_range { ROTQ_SYM_MAXQ = 0, ROTQ_SYM_FULL, ROTQ_SYM_SIGNED, ROTQ_SYM_HALF } rotq_sym_range;
/* How a weight quantizer stores its scales: in double (the default), or rounded to the dtype a file
 * keeps them in (compressed-tensors' weight_scale), the clip search included. */
typedef enum rotq_scale_store { ROTQ_SCALE_DOUBLE = 0, ROTQ_SCALE_F32, ROTQ_SCALE_F16, ROTQ_SCALE_BF16 } rotq_scale_store;

/* Number formats of a quantizer's elements and scales (one traits table, src/core/minifloat.c):
 *   INT    the integer grids above; one float32 scale per row or group (float16 in GGUF blocks)
 *   MXFP4  OCP MX: E2M1 elements ±{0, 0.5, 1, 1.5, 2, 3, 4, 6}, one E8M0 (power of two) scale per
 *          block of 32, by default the spec's 2^(floor(log2 max|x|) − 2)
 *   NVFP4  E2M1 elements, one E4M3 scale per block of 16 (max|x|/6, rounded to E4M3) times one float32
 *          scale per tensor (max|W|/(6·448); for activations per token: a token is its own tensor)
 *   FP8    E4M3 elements (max 448, OCP's "fn": no infinities), one float32 scale per row or group
 * Elements round to nearest, ties to the even code, saturating at the format's largest value. */
typedef enum rotq_num_format { ROTQ_NUM_INT = 0, ROTQ_NUM_MXFP4, ROTQ_NUM_NVFP4, ROTQ_NUM_FP8 } rotq_num_format;
ROTQ_API const char *rotq_num_format_name(rotq_num_format f);       /* "int", "mxfp4", "nvfp4", "fp8" */
ROTQ_API rotq_status rotq_num_format_parse(const char *name, rotq_num_format *out);
/* The block a format's scales cover (32, 16; 0: the caller's group, e.g. per token or per channel). */
ROTQ_API int64_t rotq_num_format_block(rotq_num_format f);
/* Bits per element of a float format (4 or 8; 0 for INT, whose bits are the caller's). */
ROTQ_API int32_t rotq_num_format_bits(rotq_num_format f);

typedef struct rotq_act_format {
    int32_t bits;     /* 2..8; 0 or >= 16: off */
    rotq_num_format num; /* INT (bits, asym, range apply) or a float format (bits follow from it: 4 or 8) */
    bool asym;
    float clip;       /* range × clip, in (0, 1] */
    int64_t group;    /* columns per scale within a row; <= 0: the whole row (per token) */
    rotq_sym_range range; /* symmetric grids' range convention (MAXQ: QuaRot's ActQuantizer; the
                             presets and rotq_quant_defaults take SIGNED for activations) */
} rotq_act_format;

typedef struct rotq_gptq_options {
    double percdamp;   /* 0.01: damp = percdamp · mean(diag H) */
    bool act_order;    /* columns by decreasing H_ii */
    bool static_groups;/* group scales from the weights before any update (GPTQ --static-groups) */
    int64_t block;     /* lazy-update block (128) */
    double qronos_damp;/* Qronos: damping × H's largest eigenvalue (1e-6, as its authors) */
    double gptaq_alpha;/* GPTAQ: how far toward the least-squares target, w + α(w* − w), in [0, 1]
                          (0.25: the full step overshoots where the quantized stream lost information) */
    bool weighted_scales; /* the clip search before GPTQ weights each column's error by H_ii (as
                             llama.cpp's importance matrix weights its scale search) */
} rotq_gptq_options;
ROTQ_API rotq_gptq_options rotq_gptq_defaults(void);

/* Weight quantizers: round to nearest; GPTQ (each layer fitted to its own float inputs); GPTAQ and
 * Qronos (each layer fitted on the inputs the quantized network gives it, activations and KV cache
 * quantized as the options say, to the float network's output: calibration carries both streams). */
typedef enum rotq_wq_method { ROTQ_WQ_NONE = 0, ROTQ_WQ_RTN, ROTQ_WQ_GPTQ, ROTQ_WQ_GPTAQ, ROTQ_WQ_QRONOS } rotq_wq_method;
/* How a weight row's (or group's) scale is chosen, by RTN, GPTQ, GPTAQ and Qronos alike:
 *   CLIP     QuaRot's clip search: the range shrunk by 1, 0.99, ..., 0.21, the ratio of least
 *            Σ|w − q(w)|^p (p = w_clip_norm, 2.4)
 *   MSE      Brevitas' L2 search: the range shrunk by 0.05, 0.10, ..., 1, the ratio of least Σ(w − q(w))²
 *            (symmetric grids exactly as Brevitas; asymmetric ones shrink both ends together, where
 *            Brevitas searches the zero point apart)
 *   HESSIAN  the error GPTQ itself measures: ratios as CLIP, the least (w − q(w)) H (w − q(w))ᵀ over the
 *            row or group with H the layer input's Hessian (2XᵀX/N) from calibration (RTN too then
 *            calibrates; groups then take static scales) */
typedef enum rotq_w_scale { ROTQ_WSCALE_CLIP = 0, ROTQ_WSCALE_MSE, ROTQ_WSCALE_HESSIAN } rotq_w_scale;
/* "clip", "mse", "hessian". */
ROTQ_API const char *rotq_w_scale_name(rotq_w_scale s);
/* "rtn", "gptq", "gptaq", "qronos" ("none"). */
ROTQ_API const char *rotq_wq_method_name(rotq_wq_method m);
/* True for the methods that need calibration text (GPTQ, GPTAQ, Qronos). */
ROTQ_API bool rotq_wq_calibrated(rotq_wq_method m);


/* Per-tensor GGUF block types: a mixture as llama.cpp's quantizer names them (Q4_K_M: Q4_K with
 * Q6_K for half the value and down projections and the output, ...), its rules restated as data,
 * with llama.cpp's fallback for rows that are not whole blocks (Q4_K → Q5_0, Q6_K → Q8_0, ...). */
#define ROTQ_MAX_TYPE_RULES 32
typedef struct rotq_type_rule {
    char pattern[128];         /* a regular expression over GGUF tensor names (blk.3.attn_v.weight) */
    rotq_dtype type;           /* a block type, or f32/f16: kept float */
} rotq_type_rule;
typedef struct rotq_type_plan {
    char mixture[16];          /* "": none; else a name rotq_quant_set_mixture takes */
    bool pure;                 /* every matrix the mixture's base type (llama.cpp --pure) */
    rotq_dtype embed_type, output_type; /* ROTQ_DTYPE_INVALID: the mixture's choice */
    int32_t n_rules;           /* user rules, first match wins, before the mixture (llama.cpp --tensor-type) */
    rotq_type_rule rules[ROTQ_MAX_TYPE_RULES];
} rotq_type_plan;

typedef struct rotq_quant_options {
    /* weights */
    rotq_wq_method w_method;
    int32_t w_bits;            /* 2..8 bits, or 16: weights stay float (9..15 are refused) */
    bool w_asym;
    int64_t w_group;           /* <= 0: per output channel */
    bool w_clip;               /* search the scale (off: the row's or group's full range) */
    rotq_w_scale w_scale;      /* how (CLIP, QuaRot's, by default) */
    double w_clip_norm;        /* CLIP's error Σ|w − q|^p: 2.4 (QuaRot's, default), 2 (L2) */
    bool w_scale_fp16;         /* scales rounded to float16, as GGUF blocks store them */
    rotq_scale_store w_scale_store; /* scales rounded to a file's dtype (compressed-tensors export) */
    rotq_sym_range w_sym_range;/* symmetric grids' range convention (MAXQ, QuaRot's) */
    rotq_num_format w_num;     /* INT, or a float format (MXFP4, NVFP4, FP8: w_bits follows from it) */
    rotq_type_plan w_types;    /* with a mixture or rules: each matrix on its block type's own grid (bits,
                                  groups, scale and min encoding), the embedding and output included when
                                  the plan gives them a type; w_bits, w_asym, w_group are then unused */
    rotq_gptq_options gptq;
    /* activations and KV cache (runtime: see rotq_fakequant) */
    rotq_act_format act;
    rotq_act_format k, v;
    bool act_lm_head;
    /* calibration (GPTQ) */
    int64_t nsamples;          /* windows */
    int64_t calib_ctx;         /* tokens per window */
    uint64_t seed;
    int64_t calib_cache_mb;    /* memory for stage outputs kept instead of recomputed (4096) */
    bool calib_float_acts;     /* GPTAQ/Qronos: the quantized stream keeps activations and KV float (only
                                  the weights quantized so far differ), as Brevitas' default */
    int threads;               /* 0: all */
    bool verbose;              /* per-layer progress on stderr */
} rotq_quant_options;

typedef struct rotq_quant_report {
    int64_t n_linears;         /* linears quantized */
    int64_t n_params;          /* weights quantized */
    int64_t n_dead;            /* GPTQ: input columns with zero Hessian diagonal, summed */
    double gptq_loss;          /* Σ over linears of GPTQ's loss */
    double calib_seconds;      /* forward work of calibration (Hessians, layer outputs) */
    double quant_seconds;      /* RTN or GPTQ proper (params, Cholesky, updates) */
    int64_t calib_tokens;
} rotq_quant_report;

/* Defaults: nothing quantized; GPTQ knobs as the reference; 128 × 2048 calibration, seed 0. */
ROTQ_API rotq_quant_options rotq_quant_defaults(void);
/* The GGUF block types rotq writes. */
#define ROTQ_BLOCK_TYPES_WRITTEN "Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, Q2_K, Q3_K, Q4_K, Q5_K and Q6_K"
/* Quantized GGUF export. rotq_quant_set_mixture names the per-tensor types (Q4_0, Q4_1, Q5_0, Q5_1,
 * Q8_0, Q2_K, Q2_K_S, Q3_K_S, Q3_K_M, Q3_K_L, Q4_K_S, Q4_K_M, Q5_K_S, Q5_K_M, Q6_K) and
 * rotq_quant_add_type_rule adds overrides; RTN or GPTQ then run on each tensor's own block grid, so they
 * choose the codes the file will hold. After rotq_quant_model, rotq_model_pack_weights turns every
 * weight with codes on a block grid into its blocks (checking they decode to exactly the quantized
 * values); the model is then saved as GGUF (other tensors keep their float type). */
ROTQ_API rotq_status rotq_quant_set_mixture(rotq_quant_options *o, const char *name);
ROTQ_API rotq_status rotq_quant_add_type_rule(rotq_quant_options *o, const char *pattern, rotq_dtype t);
/* The mixture names, comma-separated (the length needed is returned, as snprintf). */
ROTQ_API size_t rotq_mixture_names(char *out, size_t size);
/* The block type each of m's tensors takes under o (types[m's tensor count], in the order
 * rotq_model_tensor_info numbers them); ROTQ_DTYPE_INVALID: not quantized. */
ROTQ_API rotq_status rotq_quant_tensor_types(const rotq_model *m, const rotq_quant_options *o, rotq_dtype *types);
ROTQ_API bool rotq_quant_has_types(const rotq_quant_options *o);
/* Whether o quantizes any weights (a type plan, or RTN/GPTQ below 16 bits). */
ROTQ_API bool rotq_quant_has_weights(const rotq_quant_options *o);
/* Whether o's weight pass needs calibration text: GPTQ, GPTAQ, Qronos, or any quantizer whose
 * scales come from the Hessian search. */
ROTQ_API bool rotq_quant_calibrated(const rotq_quant_options *o);
/* Whether t is a GGUF block type rotq writes (ROTQ_BLOCK_TYPES_WRITTEN). */
ROTQ_API bool rotq_dtype_block_written(rotq_dtype t);
ROTQ_API rotq_status rotq_model_pack_weights(rotq_model *m, int64_t *n_packed);
/* compressed-tensors export (what vLLM and transformers load): after rotq_quant_model with symmetric integer
 * weights (one bit width and group for every linear), writes the HF folder `dir` with each quantized linear's
 * codes and scales — pack-quantized when q quantizes no activations, int-quantized with q's activations as
 * dynamic per-token integers (q->act must be symmetric, per token, clip 1, range ROTQ_SYM_HALF: what the
 * runtime computes) — lm_head in "ignore". Scales are stored in o->dtype (or the model's float dtype): quantize
 * with w_scale_store set to it so they are exactly the scales the codes were chosen with. Models with online
 * rotations or KV-cache quantization are refused (runtimes apply neither). rotq reads such folders back. */
ROTQ_API rotq_status rotq_save_compressed_tensors(rotq_model *m, const char *dir, const rotq_quant_options *q,
                                                  const rotq_save_options *o);
#define ROTQ_PRESETS "w4a16, w4a8, w4a8kv8, w8a8, w4a4, w4a4kv4, mxfp4, mxfp4-kv8, nvfp4, nvfp4-kv8, w4a8-fp8, w3a16g128, w2a16g128"
/* Applies a named preset (ROTQ_PRESETS) over o; ROTQ_ERR_ARG when unknown. */
ROTQ_API rotq_status rotq_quant_preset(rotq_quant_options *o, const char *name);
ROTQ_API rotq_status rotq_quant_options_check(const rotq_quant_options *o);
/* "W4 gptq sym per-channel clip-search / A4 sym per-token clip 0.90 / K4 V4 asym per-head clip 0.95" */
ROTQ_API void rotq_quant_describe(const rotq_quant_options *o, char *out, size_t size);
/* Whether o quantizes anything at run time (activations or the KV cache). */
ROTQ_API bool rotq_quant_has_runtime(const rotq_quant_options *o);
/* Quantizes every decoder linear's weights in place (lm_head and embeddings stay float): RTN
 * directly, GPTQ layer by layer from calibration windows run through the model (online rotations
 * applied, activations in float, earlier layers already quantized — as QuaRot's gptq_fwrd). The
 * linears become owned float32 tensors. calib may be NULL for RTN. */
ROTQ_API rotq_status rotq_quantize_weights(rotq_model *m, const rotq_quant_options *o, const int32_t *calib, int64_t n_calib,
                                  rotq_quant_report *rep);

/* ---- learned rotations (learn/learn.c; docs/learned-rotations.md) --------------------------------
 * SpinQuant's optimisation: R1 (residual stream) and one R2 per layer (per head, V → O) learned by
 * Cayley SGD on the orthogonal group through the fake-quantized network, the weights frozen. The
 * network computes with the rotations applied where they matter — each quantizer sees its input
 * through the rotation and hands back its output through the inverse — so a step costs one
 * forward and one backward of the frozen model plus O(T·n²) per quantized site. */

typedef enum rotq_lr_schedule { ROTQ_LR_COSINE = 0, ROTQ_LR_CONSTANT, ROTQ_LR_LINEAR } rotq_lr_schedule;
typedef enum rotq_learn_loss {
    ROTQ_LEARN_CE = 0,         /* next-token cross-entropy of the quantized model (SpinQuant) */
    ROTQ_LEARN_KL,             /* KL(float model ‖ quantized model) over next-token distributions */
} rotq_learn_loss;

typedef struct rotq_learn_step {
    int64_t step, steps;       /* 1-based */
    double loss;               /* mean over the step's sequences */
    double lr;                 /* the schedule's rate */
    double alpha;              /* R1's Cayley step length: min(lr, 1/‖W‖₁) (R2's when R1 is not learned) */
    double grad_norm;          /* ‖∇R1‖_F of the step (R2's summed when R1 is not learned) */
    double orth_err;           /* largest max|RᵀR − I| over the learned rotations after the step */
    double seconds, tokens_per_s, eta_s;
} rotq_learn_step;

typedef struct rotq_learn_options {
    rotq_rotate_options rot;   /* the starting R1/R2 (random Hadamard: QuaRot's) and R3/R4; a rotation
                                  set to none is left out, not learned */
    bool learn_r1, learn_r2;   /* which of them move (both) */
    rotq_quant_options quant;  /* the quantizers on while learning: activations, K, V (weights stay float) */
    int64_t steps;             /* 100 */
    int64_t batch;             /* sequences per step: 8 */
    int64_t seq_len;           /* tokens per sequence: 2048 */
    int64_t n_seqs;            /* windows drawn from the text (seeded; used in turn): 800 */
    double lr;                 /* 1.5 */
    rotq_lr_schedule schedule; /* cosine to 0 */
    double momentum;           /* 0 */
    rotq_learn_loss loss;      /* CE */
    int threads;               /* 0: all */
    void (*progress)(void *ctx, const rotq_learn_step *s);  /* after each step (may be NULL) */
    void *progress_ctx;
} rotq_learn_options;

typedef struct rotq_learn_report {
    int64_t steps, tokens;     /* steps taken, tokens seen */
    double first_loss, last_loss;
    double orth_err;           /* largest max|RᵀR − I| at the end */
    double seconds;            /* everything: preparing the model, the steps, writing */
    double step_seconds;       /* the steps alone (forward, backward, Cayley updates) */
} rotq_learn_report;

/* SpinQuant's recipe: lr 1.5, cosine, momentum 0, 100 steps of 8 × 2048 tokens from 800 windows, CE,
 * W16A4KV4 (QuaRot's activation and KV settings), starting from QuaRot's random Hadamards, seed 0. */
ROTQ_API rotq_learn_options rotq_learn_defaults(void);
/* ROTQ_ERR_UNSUPPORTED naming what the training backward lacks for this model (sandwich norms, GeGLU,
 * sliding windows, a scaled embedding: Gemma 3), before any work. */
ROTQ_API rotq_status rotq_learn_supported(const rotq_model *m);
/* Learns the rotations for m (the original model, not rotated: it is changed in place into the
 * model training runs on — norms fused, embeddings untied, R3/R4 — so free it afterwards) from the
 * tokens ids [n_ids] (never the evaluation text), and writes out_dir atomically: r1.safetensors,
 * r2.layerL.safetensors (rotq_rotation_save's format, F64) and learn.json (settings, loss per step).
 * rotq_rotate_model / rotq eval take them back with r1 = r2 = ROTQ_R_FILE naming out_dir, and
 * the same R3/R4 and seed. out_dir must not exist. */
ROTQ_API rotq_status rotq_learn_rotations(rotq_model *m, const rotq_learn_options *o, const int32_t *ids, int64_t n_ids,
                                          const char *out_dir, rotq_learn_report *rep);

/* ---- perplexity ------------------------------------------------------------------------------ */

typedef enum rotq_bos_policy {
    ROTQ_BOS_NONE = 0,   /* the text alone */
    ROTQ_BOS_FIRST,      /* one BOS before the whole text */
    ROTQ_BOS_EVERY,      /* each window starts with BOS, which takes one of its ctx positions */
} rotq_bos_policy;

typedef enum rotq_ppl_protocol {
    /* QuaRot/SpinQuant/GPTQ: non-overlapping windows of ctx tokens, every token after the first
     * of a window scored, the tail shorter than a window dropped. */
    ROTQ_PPL_PAPERS = 0,
    /* llama.cpp's perplexity tool: the stream is tokenized with BOS when the vocabulary adds one;
     * windows of ctx tokens whose first token is replaced by BOS (when it adds one); only the
     * predictions of the second half (rows ctx/2 .. ctx-2) are scored. */
    ROTQ_PPL_LLAMACPP,
} rotq_ppl_protocol;

typedef struct rotq_ppl_options {
    int64_t ctx;                 /* window length in tokens (> 1) */
    rotq_ppl_protocol protocol;
    rotq_bos_policy bos;         /* papers protocol only */
    bool add_bos;                /* llama.cpp protocol: whether the vocabulary adds BOS */
    int32_t bos_id;              /* needed when a policy inserts BOS */
    int64_t max_windows;         /* 0: every full window */
    /* Called after each window (may be NULL). */
    void (*progress)(void *ctx, int64_t window, int64_t n_windows, double nll, int64_t n_scored, double seconds);
    void *progress_ctx;
} rotq_ppl_options;

typedef struct rotq_ppl_result {
    double ppl;                  /* exp(nll / n_scored) */
    double nll;                  /* summed negative log-likelihood (nats) */
    int64_t n_scored;            /* predictions scored */
    int64_t n_windows;           /* windows evaluated */
    int64_t n_windows_available; /* full windows the text holds */
    int64_t n_stream;            /* tokens in the stream after the BOS policy */
    int64_t n_processed;         /* tokens run through the model */
    double seconds;              /* forward + scoring time */
} rotq_ppl_result;

/* WikiText-2 raw as the papers read it: "\n\n".join(rows). The file's lines (CRLF or LF) are the
 * rows, each given back its "\n" ending. Returns a malloc'ed NUL-terminated string. */
ROTQ_API rotq_status rotq_text_join_rows(const uint8_t *data, uint64_t size, char **out, uint64_t *out_len);

/* Float baselines kept on disk, so that sweeping quantization settings over one model and text
 * does not recompute the same float perplexity each time. A record is keyed by fingerprints of
 * every tensor's bytes (with names, dtypes, shapes and the hyper-parameters the forward reads), of
 * the token ids and of rotq's own code, plus the window settings and the thread count (BLAS
 * summation order); it is written atomically, and one whose numbers disagree is ignored. */
typedef struct rotq_baseline_cache rotq_baseline_cache;
/* The record of one float run of m over ids with po. The folder: `dir`, else $ROTQ_CACHE_DIR,
 * else $XDG_CACHE_HOME/rotq or ~/.cache/rotq; "off" turns the cache off. *out is NULL (and the
 * status ROTQ_OK) when the cache is off or m records online rotations (records describe plain
 * float models); _get, _put and _free accept NULL. */
ROTQ_API rotq_status rotq_baseline_cache_open(const char *dir, const rotq_model *m, const int32_t *ids, int64_t n,
                                     const rotq_ppl_options *po, int threads, rotq_baseline_cache **out);
ROTQ_API void rotq_baseline_cache_free(rotq_baseline_cache *c);
ROTQ_API const char *rotq_baseline_cache_dir(const rotq_baseline_cache *c);
/* A stored result whose key matches exactly; `when` gets the UTC time it was computed. */
ROTQ_API bool rotq_baseline_cache_get(const rotq_baseline_cache *c, rotq_ppl_result *res, char *when, size_t when_size);
/* Stores res atomically; ROTQ_OK or the error. */
ROTQ_API rotq_status rotq_baseline_cache_put(const rotq_baseline_cache *c, const rotq_ppl_result *res);

/* ---- sessions: a model made runnable (EXPERIMENTAL: names and fields may still change) -------- */

typedef struct rotq_session rotq_session;

typedef struct rotq_session_options {
    int threads;                      /* BLAS and OpenMP threads (process-wide); 0: all */
    const rotq_quant_options *quant;  /* run-time quantizers (activations, KV cache) and the weight grid
                                         integer products assume; NULL: float */
    bool float_products;              /* fake-quantized floats through sgemm even where integer codes would do */
    bool stats;                       /* record activation statistics at every linear input */
} rotq_session_options;

ROTQ_API rotq_session_options rotq_session_defaults(void);   /* float, all threads, no statistics */
/* Makes m runnable. Its recorded online rotations (R3/R4) are put in place first, always: no
 * caller can leave them out. Then the run-time quantizers of o->quant (activations at every linear
 * input, K after RoPE and R3, V), integer products where the weights allow them, statistics. m
 * must outlive the session and not change while it runs. */
ROTQ_API rotq_status rotq_session_new(const rotq_model *m, const rotq_session_options *o, rotq_session **out);
ROTQ_API void rotq_session_free(rotq_session *s);
/* What runs at each site, in order, one line per site ("qk_rope: R3 online Hadamard 64 -> ..."). */
ROTQ_API const char *rotq_session_transforms(const rotq_session *s);
/* How quantized linears multiply: "int (...)" or "float (why not int)". */
ROTQ_API const char *rotq_session_products(const rotq_session *s);
ROTQ_API int rotq_session_threads(const rotq_session *s);
/* The thread count a session made with options.threads = `threads` runs with (0: all). */
ROTQ_API int rotq_threads_resolve(int threads);

/* logits [T, vocab] of ids[T] at positions 0..T-1. */
ROTQ_API rotq_status rotq_session_logits(rotq_session *s, const int32_t *ids, int64_t T, float *logits);
/* Perplexity of a token stream ids[n] (tokenized without BOS) with o's protocol and BOS policy. */
ROTQ_API rotq_status rotq_session_ppl(rotq_session *s, const int32_t *ids, int64_t n, const rotq_ppl_options *o,
                             rotq_ppl_result *out);
/* Called with each generated token; return false to stop. */
typedef bool (*rotq_token_fn)(void *ctx, int32_t id);
/* Greedy decoding through a KV cache: up to n_new tokens into out[n_new] (*n_out of them), stopping
 * after stop_id (-1: never) or when on_token (may be NULL) says so. prompt_seconds may be NULL. */
ROTQ_API rotq_status rotq_session_generate(rotq_session *s, const int32_t *prompt, int64_t n_prompt, int64_t n_new,
                                  int32_t stop_id, int32_t *out, int64_t *n_out, double *prompt_seconds,
                                  rotq_token_fn on_token, void *ctx);

/* ---- several processes (mpirun -np N rotq ...) ---------------------------------------------------- */

/* Under mpirun with a build made with -DROTQ_MPI=ON: joins the MPI world (MPI_Init); otherwise this process
 * is rank 0 of 1. Call once, first; rotq_dist_finalize last. Perplexity windows, GPTQ calibration windows
 * and rotation-learning batches are then split across ranks and their sums reduced: every rank ends with
 * the same numbers (the same as one process, up to summation order); only rank 0 should write or print. */
ROTQ_API rotq_status rotq_dist_init(int *argc, char ***argv);
ROTQ_API void rotq_dist_finalize(void);
ROTQ_API int rotq_dist_rank(void);
ROTQ_API int rotq_dist_size(void);
ROTQ_API const char *rotq_dist_backend(void);   /* "single", "mpi" */

/* ---- images, for models with a vision tower (Qwen2-VL) --------------------------------------- */

typedef struct rotq_image rotq_image;
/* A multimodal checkpoint's vision tower: a model of its own (architecture, hyper-parameters with vocab =
 * a patch row's width, tensors, layout: every rotq_model_* reader takes it), owned by m; NULL for
 * text-only models. info (may be NULL) gets its image side. */
typedef struct rotq_vision_info {
    int64_t patch, temporal_patch, merge;  /* 14, 2, 2 for Qwen2-VL */
    int64_t out_hidden;                    /* the merger's output width (the language model's hidden size) */
    int64_t min_pixels, max_pixels;        /* the resize keeps height·width within these */
    int32_t image_token, vision_start, vision_end;
} rotq_vision_info;
ROTQ_API const rotq_model *rotq_model_vision(const rotq_model *m, rotq_vision_info *info);
/* A PNG (8-bit) or JPEG (RGB or greyscale) file as 8-bit RGB; transparency is composited onto white,
 * as Hugging Face's image processors do. */
ROTQ_API rotq_status rotq_image_load(const char *path, rotq_image **out);
/* An image from rgb [height, width, 3] (copied). */
ROTQ_API rotq_status rotq_image_from_rgb(const uint8_t *rgb, int64_t width, int64_t height, rotq_image **out);
ROTQ_API void rotq_image_free(rotq_image *img);
ROTQ_API void rotq_image_size(const rotq_image *img, int64_t *width, int64_t *height);
/* What the model's image processor makes of img (its pixel_values): patches [rows, cols] (malloc'd: free()
 * it) and the patch grid (frames, height, width). ROTQ_ERR_UNSUPPORTED for models without a vision tower. */
ROTQ_API rotq_status rotq_model_image_patches(const rotq_model *m, const rotq_image *img, float **patches, int64_t *rows,
                                              int64_t *cols, int64_t grid[3]);
/* rotq_session_generate with an image: the prompt holds the model's image token (<|image_pad|>) once,
 * where the image goes (none: <|vision_start|><|image_pad|><|vision_end|> is put before it); it is expanded to one token per merged patch (as the HF processor does), whose
 * embeddings are the vision tower's output, with multimodal RoPE positions. logits_out (may be NULL):
 * [n_new, vocab], the logits each generated token was chosen from. */
ROTQ_API rotq_status rotq_session_generate_image(rotq_session *s, const rotq_image *img, const int32_t *prompt, int64_t n_prompt,
                                                 int64_t n_new, int32_t stop_id, int32_t *out, int64_t *n_out, float *logits_out,
                                                 double *prompt_seconds, rotq_token_fn on_token, void *ctx);

/* Two sessions on the same tokens: the proof that a rotation kept the function. */
typedef struct rotq_verify_result {
    int64_t n_tokens;
    double max_abs_dlogit;   /* max over positions and vocabulary of |logit_a - logit_b| */
    double max_abs_logit;    /* max |logit_a|, to state the difference relative to it */
    double mean_kl;          /* mean over positions of KL(p_a || p_b), nats */
    double ppl_a, ppl_b;     /* perplexity of each on ids[1..T-1] */
} rotq_verify_result;
/* Runs ids[T] through both and compares their next-token distributions. */
ROTQ_API rotq_status rotq_session_compare(rotq_session *a, rotq_session *b, const int32_t *ids, int64_t T,
                                 rotq_verify_result *out);

/* Activation statistics (options.stats): the inputs of q/k/v, o_proj, gate/up and down_proj. */
typedef enum rotq_site { ROTQ_SITE_ATTN_IN = 0, ROTQ_SITE_O_IN, ROTQ_SITE_MLP_IN, ROTQ_SITE_DOWN_IN, ROTQ_N_SITES } rotq_site;
ROTQ_API const char *rotq_site_name(int site);   /* "attn_in", "o_in", "mlp_in", "down_in" */
typedef struct rotq_site_summary {
    double max_over_rms;      /* max|x| / rms(x) over everything the site saw */
    double kurtosis;          /* E[x^4] / E[x^2]^2 (3 for a Gaussian) */
    double max_abs;
    int64_t count;            /* values seen */
} rotq_site_summary;
ROTQ_API rotq_status rotq_session_site_stats(const rotq_session *s, int32_t layer, rotq_site site, rotq_site_summary *out);

/* ---- tokenizers ---------------------------------------------------------------------------- */

/* Byte-level BPE (GPT-2/Qwen2/Llama-3/SmolLM2) or SentencePiece-style BPE with byte fallback
 * (Llama-2/Mistral/llama2.c). Read-only once loaded: several threads may encode with one. */
typedef struct rotq_tokenizer rotq_tokenizer;

/* The tokenizer a model carries: its tokenizer.json (+ tokenizer_config.json), GGUF
 * tokenizer.ggml.* metadata, or llama2.c tokenizer.bin. */
ROTQ_API rotq_status rotq_tokenizer_from_model(const rotq_model *m, rotq_tokenizer **out);
/* A tokenizer file on its own: tokenizer.json (tokenizer_config.json beside it is read too), a
 * folder holding one, a llama2.c tokenizer.bin, or a GGUF file. */
ROTQ_API rotq_status rotq_tokenizer_load(const char *path, rotq_tokenizer **out);
ROTQ_API void rotq_tokenizer_free(rotq_tokenizer *tok);

/* Text (UTF-8; ill-formed bytes are tokenized too, never rejected) → ids, malloc'd: free() them.
 * add_bos prepends the BOS token; rotq_tokenizer_add_bos_default() says what the model expects.
 * Added/special tokens written in the text ("<|im_start|>") become their ids, as in HF. */
ROTQ_API rotq_status rotq_tokenizer_encode(const rotq_tokenizer *tok, const char *text, size_t len, bool add_bos,
                                  int32_t **ids, int64_t *n);
/* Ids → bytes (malloc'd, NUL-terminated, free() it); skip_special leaves out BOS/EOS/control tokens. */
ROTQ_API rotq_status rotq_tokenizer_decode(const rotq_tokenizer *tok, const int32_t *ids, int64_t n, bool skip_special,
                                  char **text, size_t *len);
/* The bytes one token stands for (borrowed; may be part of a UTF-8 character), for streaming. */
ROTQ_API rotq_status rotq_tokenizer_piece(const rotq_tokenizer *tok, int32_t id, const char **bytes, size_t *len);
ROTQ_API int32_t rotq_tokenizer_bos(const rotq_tokenizer *tok);        /* -1 when none */
ROTQ_API int32_t rotq_tokenizer_eos(const rotq_tokenizer *tok);        /* -1 when none */
ROTQ_API int64_t rotq_tokenizer_n_vocab(const rotq_tokenizer *tok);
ROTQ_API bool rotq_tokenizer_add_bos_default(const rotq_tokenizer *tok);
ROTQ_API bool rotq_tokenizer_is_special(const rotq_tokenizer *tok, int32_t id);
ROTQ_API const char *rotq_tokenizer_kind(const rotq_tokenizer *tok);   /* "byte-level BPE (smollm)", ... */

#ifdef __cplusplus
}
#endif
#endif /* ROTQ_H */
