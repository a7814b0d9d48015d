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

/* Whole files: read into a malloc'd buffer (free() it; a NUL follows the data), or written
 * atomically (path.tmp-XXXX, fsync, rename: readers see the old file or the new one, never a part). */
rotq_status rotq_read_file(const char *path, uint8_t **data, uint64_t *size);
rotq_status rotq_write_file_atomic(const char *path, const void *data, uint64_t size);

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

/* ---- quantization ---------------------------------------------------------------------------- */

/* Integer grids as the GPTQ/QuaRot code defines them: symmetric b-bit integers are
 * [-2^(b-1), 2^(b-1)-1] with scale = max|x| / (2^(b-1)-1); asymmetric ones [0, 2^b-1] with
 * scale = (max-min) / (2^b-1) and zero = round(-min/scale); rounding half-to-even. */

/* Activations (per token, dynamic, at every linear input) and the KV cache (per head). */
typedef struct rotq_act_format {
    int32_t bits;     /* 2..8; 0 or >= 16: off */
    bool asym;
    float clip;       /* range × clip, in (0, 1] */
    int64_t group;    /* columns per scale within a row; <= 0: the whole row (per token) */
} rotq_act_format;

typedef struct rotq_gptq_options {
    double percdamp;   /* 0.01: damp = percdamp · mean(diag H) */
    bool act_order;    /* columns by decreasing H_ii */
    bool static_groups;/* group scales from the weights before any update (GPTQ --static-groups) */
    int64_t block;     /* lazy-update block (128) */
} rotq_gptq_options;
rotq_gptq_options rotq_gptq_defaults(void);

typedef enum rotq_wq_method { ROTQ_WQ_NONE = 0, ROTQ_WQ_RTN, ROTQ_WQ_GPTQ } rotq_wq_method;

typedef struct rotq_quant_options {
    /* weights */
    rotq_wq_method w_method;
    int32_t w_bits;            /* >= 16: weights stay float */
    bool w_asym;
    int64_t w_group;           /* <= 0: per output channel */
    bool w_clip;               /* MSE clip search */
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
rotq_quant_options rotq_quant_defaults(void);
/* Applies a named preset (w4a16, w4a8, w4a8kv8, w8a8, w4a4kv4) over o; ROTQ_ERR_ARG when unknown. */
rotq_status rotq_quant_preset(rotq_quant_options *o, const char *name);
rotq_status rotq_quant_options_check(const rotq_quant_options *o);
/* "W4 gptq sym per-channel clip-search / A4 sym per-token clip 0.90 / K4 V4 asym per-head clip 0.95" */
void rotq_quant_describe(const rotq_quant_options *o, char *out, size_t size);
/* Quantizes every decoder linear's weights in place (lm_head and embeddings stay float): RTN
 * directly, GPTQ layer by layer from calibration windows run through the model (online rotations
 * applied, activations in float, earlier layers already quantized — as QuaRot's gptq_fwrd). The
 * linears become owned float32 tensors. calib may be NULL for RTN. */
rotq_status rotq_quantize_weights(rotq_model *m, const rotq_quant_options *o, const int32_t *calib, int64_t n_calib,
                                  rotq_quant_report *rep);

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
rotq_status rotq_text_join_rows(const uint8_t *data, uint64_t size, char **out, uint64_t *out_len);

/* ---- sessions: a model made runnable (EXPERIMENTAL: names and fields may still change) -------- */

typedef struct rotq_session rotq_session;

typedef struct rotq_session_options {
    int threads;                      /* BLAS and OpenMP threads (process-wide); 0: all */
    const rotq_quant_options *quant;  /* run-time quantizers (activations, KV cache) and the weight grid
                                         integer products assume; NULL: float */
    bool float_products;              /* fake-quantized floats through sgemm even where integer codes would do */
    bool stats;                       /* record activation statistics at every linear input */
} rotq_session_options;

rotq_session_options rotq_session_defaults(void);   /* float, all threads, no statistics */
/* Makes m runnable. Its recorded online rotations (R3/R4) are put in place first, always: no
 * caller can leave them out. Then the run-time quantizers of o->quant (activations at every linear
 * input, K after RoPE and R3, V), integer products where the weights allow them, statistics. m
 * must outlive the session and not change while it runs. */
rotq_status rotq_session_new(const rotq_model *m, const rotq_session_options *o, rotq_session **out);
void rotq_session_free(rotq_session *s);
/* What runs at each site, in order, one line per site ("qk_rope: R3 online Hadamard 64 -> ..."). */
const char *rotq_session_transforms(const rotq_session *s);
/* How quantized linears multiply: "int (...)" or "float (why not int)". */
const char *rotq_session_products(const rotq_session *s);
int rotq_session_threads(const rotq_session *s);

/* logits [T, vocab] of ids[T] at positions 0..T-1. */
rotq_status rotq_session_logits(rotq_session *s, const int32_t *ids, int64_t T, float *logits);
/* Perplexity of a token stream ids[n] (tokenized without BOS) with o's protocol and BOS policy. */
rotq_status rotq_session_ppl(rotq_session *s, const int32_t *ids, int64_t n, const rotq_ppl_options *o,
                             rotq_ppl_result *out);
/* Called with each generated token; return false to stop. */
typedef bool (*rotq_token_fn)(void *ctx, int32_t id);
/* Greedy decoding through a KV cache: up to n_new tokens into out[n_new] (*n_out of them), stopping
 * after stop_id (-1: never) or when on_token (may be NULL) says so. prompt_seconds may be NULL. */
rotq_status rotq_session_generate(rotq_session *s, const int32_t *prompt, int64_t n_prompt, int64_t n_new,
                                  int32_t stop_id, int32_t *out, int64_t *n_out, double *prompt_seconds,
                                  rotq_token_fn on_token, void *ctx);

/* Two sessions on the same tokens: the proof that a rotation kept the function. */
typedef struct rotq_verify_result {
    int64_t n_tokens;
    double max_abs_dlogit;   /* max over positions and vocabulary of |logit_a - logit_b| */
    double max_abs_logit;    /* max |logit_a|, to state the difference relative to it */
    double mean_kl;          /* mean over positions of KL(p_a || p_b), nats */
    double ppl_a, ppl_b;     /* perplexity of each on ids[1..T-1] */
} rotq_verify_result;
/* Runs ids[T] through both and compares their next-token distributions. */
rotq_status rotq_session_compare(rotq_session *a, rotq_session *b, const int32_t *ids, int64_t T,
                                 rotq_verify_result *out);

/* Activation statistics (options.stats): the inputs of q/k/v, o_proj, gate/up and down_proj. */
typedef enum rotq_site { ROTQ_SITE_ATTN_IN = 0, ROTQ_SITE_O_IN, ROTQ_SITE_MLP_IN, ROTQ_SITE_DOWN_IN, ROTQ_N_SITES } rotq_site;
const char *rotq_site_name(int site);   /* "attn_in", "o_in", "mlp_in", "down_in" */
typedef struct rotq_site_summary {
    double max_over_rms;      /* max|x| / rms(x) over everything the site saw */
    double kurtosis;          /* E[x^4] / E[x^2]^2 (3 for a Gaussian) */
    double max_abs;
    int64_t count;            /* values seen */
} rotq_site_summary;
rotq_status rotq_session_site_stats(const rotq_session *s, int32_t layer, rotq_site site, rotq_site_summary *out);

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
