/* Quantization simulation: integer grids applied and undone in float ("fake quantization"), so a
 * float runner measures what a W4A4KV4 deployment would compute.
 *
 *   weights      RTN (per channel or group-wise, optional MSE clip search) and GPTQ (rtn.c, gptq.c)
 *   activations  per-token dynamic quantization at every linear input (act.c)
 *   KV cache     K after RoPE (and R3) and V, per head (kv.c)
 *   calibration  random windows, layer-by-layer Hessians through the partly quantized model (calib.c)
 *   pipeline     options, presets and the whole-model entry point (pipeline.c)
 *
 * Grids follow the GPTQ/QuaRot code: symmetric b-bit integers are [-2^(b-1), 2^(b-1)-1] with
 * scale = max|x| / (2^(b-1)-1); asymmetric ones are [0, 2^b-1] with scale = (max-min) / (2^b-1) and
 * zero = round(-min/scale). Weight ranges always include 0. Rounding is half-to-even (torch.round).
 */
#ifndef ROTQ_QUANT_QUANT_H
#define ROTQ_QUANT_QUANT_H

#include <math.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/minifloat.h"
#include "nn/nn.h"

/* ---- weight grids (rtn.c) ------------------------------------------------------------------ */

typedef struct rotq_wq_format {
    int32_t bits;     /* 2..8 */
    bool asym;
    int64_t group;    /* input columns per scale; <= 0: one scale per output row */
    bool mse;         /* search the clip ratio minimizing sum |w - q(w)|^norm (QuaRot --w_clip) */
    rotq_w_scale search; /* which search (rotq_wq_format_set_search sets norm, grid, maxshrink to match);
                         HESSIAN is rotq_wq_params_hessian's, rotq_wq_params then searches as CLIP */
    double norm;      /* 2.4 as QuaRot */
    int32_t grid;     /* 100: ratios 1, 0.99, ... */
    double maxshrink; /* 0.8: ratios 1 - i/grid for i < floor(maxshrink·grid) (1 down to 0.21) */
    bool scale_fp16;  /* scales rounded to float16 (what GGUF blocks store), the clip search included */
    rotq_scale_store scale_store;    /* or to another dtype a file stores them in (compressed-tensors) */
    int32_t scale_mant_bits;         /* > 0 (with scale_fp16): scales keep this many mantissa bits */
    int32_t super_groups, super_max; /* > 0: every super_groups groups share a float16 d and the group
                                        scales become d·sc, integer sc <= super_max (Q6_K: 16, 127) */
    int32_t min_max;  /* > 0 (asym, with super_groups): float group mins, w = s·u − mn, mn >= 0 stored as
                         dmin·m with integer m <= min_max and a float16 dmin per super-block (Q4_K: 63) */
    rotq_sym_range sym_range; /* symmetric grids: the range on ±maxq (MAXQ), on −(maxq+1) (FULL), or
                         on −(maxq+1) with the scale's sign putting the largest magnitude there (SIGNED:
                         Q4_0, Q5_0, Q8_0, Q3_K and Q6_K sub-scales, whose stored scale may be negative) */
    rotq_dtype dtype; /* the block type whose grid this is (its codes pack into it), or ROTQ_DTYPE_INVALID */
    rotq_num_format num; /* INT, or a float format: codes are its elements, scales encoded as it says
                         (core/minifloat.h); symmetric, no super-blocks */
    double tensor_scale; /* NVFP4: the matrix's float32 scale (rotq_wq_format_bind sets it), else 1 */
} rotq_wq_format;

/* f for one matrix w [n values]: NVFP4's tensor scale from max |w| (a copy; other formats as given). */
rotq_wq_format rotq_wq_format_bind(const rotq_wq_format *f, const float *w, int64_t n);

/* The weight format of quantization options (bits, grid, group, clip search). */
rotq_wq_format rotq_wq_format_from_options(const rotq_quant_options *o);
/* Block type t's own grid (bits, groups, zero, scale and min encoding), o's clip search. */
rotq_wq_format rotq_wq_format_for_dtype(const rotq_quant_options *o, rotq_dtype t);
/* The format tensor i of m takes: types[i]'s grid when a plan gives it one (types may be NULL), else
 * o's scalar format; false when the tensor stays float. */
bool rotq_wq_format_for_tensor(const rotq_quant_options *o, const rotq_dtype *types, int64_t i, rotq_wq_format *f);
/* The super-block step of formats with super_groups: the ng group scales of one row (already
 * chosen, e.g. by the clip search) become d·round(s/d), d = float16(max s / super_max) per block;
 * with min_max the mins mn likewise on their own dmin (mn may be NULL otherwise). */
void rotq_wq_super_scales(const rotq_wq_format *f, double *s, double *mn, int64_t ng);

/* bits-bit weight format with the reference search constants. */
rotq_wq_format rotq_wq_format_make(int32_t bits, bool asym, int64_t group, bool mse);
rotq_status rotq_wq_format_check(const rotq_wq_format *f);
/* The search's constants: MSE is Brevitas' (norm 2, ratios 0.05 ... 1); CLIP and HESSIAN QuaRot's
 * ratios 1 ... 0.21 with CLIP's error Σ|w − q|^clip_norm. */
void rotq_wq_format_set_search(rotq_wq_format *f, rotq_w_scale search, double clip_norm);
/* Largest integer of the grid: 2^(b-1)-1 symmetric, 2^b-1 asymmetric. */
int32_t rotq_wq_maxq(const rotq_wq_format *f);

/* Scale and zero for the n values x[0..n) (GPTQ's find_params on one row or group). With
 * f->min_max, *zero receives the group min mn instead (w = s·u − mn). */
void rotq_wq_params(const double *x, int64_t n, const rotq_wq_format *f, double *scale, double *zero);
/* The same with the clip search's error weighted per value by w[0..n) (NULL: unweighted), e.g. by
 * the Hessian diagonal, as llama.cpp weights its scale search by an importance matrix. */
void rotq_wq_params_weighted(const double *x, const double *w, int64_t n, const rotq_wq_format *f, double *scale, double *zero);
/* The grid of x's range shrunk by p (1: the full range), no search (integer grids). */
void rotq_wq_params_ratio(const double *x, int64_t n, const rotq_wq_format *f, double p, double *scale, double *zero);
/* The Hessian search (f->search HESSIAN with f->mse): for every row of W [rows, cols] and group of
 * columns (group <= 0: the whole row), the candidate grid of least (w − q(w)) H_gg (w − q(w))ᵀ, H_gg
 * the group's diagonal block of H [cols, cols]: the layer-output error RTN on that grid leaves
 * (with the other groups exact). S, Z [rows, groups]. Integer grids (no float mins). Uses BLAS:
 * call outside OpenMP regions. */
rotq_status rotq_wq_params_hessian(const double *W, int64_t rows, int64_t cols, int64_t group, const double *H,
                                   const rotq_wq_format *f, double *S, double *Z);
/* The weight grid's encoding: the code of x on a grid of (scale, zero), and the value of a code.
 * Codes are unsigned for both grids: symmetric ones store q + 2^(b-1) with zero code 2^(b-1)
 * (rotq_wq_zero_code), asymmetric ones q itself with the grid's zero, so one layout serves both (as
 * the activation codes do). decode(encode(x)) is the quantize-dequantize round trip. */
static inline uint8_t rotq_wq_encode(double x, double scale, double zero, int32_t maxq, bool asym) {
    double q = nearbyint(x / scale);
    if (asym) {
        q += zero;
        q = q < 0 ? 0 : q > maxq ? maxq : q;
        return (uint8_t)q;
    }
    q = q < -(double)maxq - 1 ? -(double)maxq - 1 : q > maxq ? maxq : q;
    return (uint8_t)(q + maxq + 1);
}
static inline int32_t rotq_wq_zero_code(double zero, int32_t maxq, bool asym) { return asym ? (int32_t)zero : maxq + 1; }
static inline double rotq_wq_decode(uint8_t u, double scale, int32_t zero_code) { return scale * ((double)u - zero_code); }
/* The grid with float mins (f->min_max): u = round((x + mn)/s) in [0, maxq], w = s·u − mn. */
static inline uint8_t rotq_wq_encode_min(double x, double scale, double mn, int32_t maxq) {
    double q = nearbyint((x + mn) / scale);
    q = q < 0 ? 0 : q > maxq ? maxq : q;
    return (uint8_t)q;
}
static inline double rotq_wq_decode_min(uint8_t u, double scale, double mn) { return scale * (double)u - mn; }
/* Any kind of group grid, as f is: z is the zero (integer grids) or the group min (f->min_max);
 * float formats code the element nearest x/scale. */
static inline uint8_t rotq_wq_format_encode(const rotq_wq_format *f, double x, double scale, double z, int32_t maxq) {
    if (f->num != ROTQ_NUM_INT) return rotq_minifloat_encode(x / scale, rotq_num_traits_of(f->num));
    return f->min_max > 0 ? rotq_wq_encode_min(x, scale, z, maxq) : rotq_wq_encode(x, scale, z, maxq, f->asym);
}
static inline double rotq_wq_format_decode(const rotq_wq_format *f, uint8_t u, double scale, double z, int32_t maxq) {
    if (f->num != ROTQ_NUM_INT) return scale * rotq_minifloat_value(u, rotq_num_traits_of(f->num));
    return f->min_max > 0 ? rotq_wq_decode_min(u, scale, z) : rotq_wq_decode(u, scale, rotq_wq_zero_code(z, maxq, f->asym));
}
static inline double rotq_wq_format_qdq(const rotq_wq_format *f, double x, double scale, double z, int32_t maxq) {
    return rotq_wq_format_decode(f, rotq_wq_format_encode(f, x, scale, z, maxq), scale, z, maxq);
}
/* round trip of one value through the grid */
static inline double rotq_wq_qdq(double x, double scale, double zero, int32_t maxq, bool asym) {
    return rotq_wq_decode(rotq_wq_encode(x, scale, zero, maxq, asym), scale, rotq_wq_zero_code(zero, maxq, asym));
}

/* A weight matrix as its quantizer left it: w[r][c] = scale[r][g]·(u[r][c] − zero[r][g]) − mn[r][g]
 * with g = c / group (mn only for grids with float mins, else NULL and 0). What fake quantization
 * decodes, integer products multiply and exports pack. */
typedef struct rotq_qweight {
    int64_t rows, cols, group;   /* group: input columns per scale (cols: one scale per row) */
    int32_t bits;
    bool asym;
    uint8_t *u;                  /* [rows, cols] codes */
    double *scale;               /* [rows, cols / group (rounded up)] */
    int32_t *zero;               /* [rows, ...] the code of 0 (0 with float mins) */
    double *mn;                  /* [rows, ...] float group mins (f->min_max), or NULL */
    rotq_dtype dtype;            /* the block type whose grid the codes are on, or ROTQ_DTYPE_INVALID */
    rotq_num_format num;         /* float formats: u are element codes, w = scale·value(u) (zero unused) */
} rotq_qweight;

rotq_status rotq_qweight_new(int64_t rows, int64_t cols, int64_t group, const rotq_wq_format *f, rotq_qweight **out);
/* Stores group g's scale and z (the zero, or the group min when q has mins) as q keeps them. */
static inline void rotq_qweight_set_group(rotq_qweight *q, int64_t g, double scale, double z, int32_t maxq) {
    q->scale[g] = scale;
    if (q->mn) q->mn[g] = z;
    q->zero[g] = q->mn || q->num != ROTQ_NUM_INT ? 0 : rotq_wq_zero_code(z, maxq, q->asym);
}
void rotq_qweight_free(rotq_qweight *q);
/* w [rows, cols] = the decoded codes, rounded once to float: exactly what the quantizer leaves. */
void rotq_qweight_dequantize(const rotq_qweight *q, float *w);
/* The symmetric per-row form integer products take: int8 codes q = u − zero and float scales;
 * ROTQ_ERR_UNSUPPORTED when q is asymmetric, grouped or wider than 7 bits. */
rotq_status rotq_qweight_int8(const rotq_qweight *q, int64_t row0, int64_t rows, int8_t *codes, float *scales);

/* Round-to-nearest of w [rows, cols] in place (row-major, [out, in]). NaN/Inf → ROTQ_ERR_NUMERIC.
 * codes (may be NULL) receives the codes and scales; the floats left in w are their decoding. */
rotq_status rotq_rtn_quantize(float *w, int64_t rows, int64_t cols, const rotq_wq_format *f, rotq_qweight **codes);

/* ---- GPTQ (gptq.c) ---------------------------------------------------------------------------- */

/* H⁻¹ prepared once per input (shared by every linear reading that input). */
typedef struct rotq_gptq_hinv {
    int64_t n;
    double *U;         /* [n, n] upper Cholesky factor of (H + damp·I)⁻¹, columns in `perm` order */
    int64_t *perm;     /* processing order of the columns (identity without act-order) */
    bool *dead;        /* columns whose Hessian diagonal was 0: weights there are zeroed */
    double *hdiag;     /* [n] H's diagonal as given (original column order; 0 for dead columns) */
    int64_t n_dead;
    double damp;       /* added to the diagonal */
    /* the asymmetric fits (rotq_gptq_prepare_asym), NULL for GPTQ: */
    double *M;         /* [n, n] (G + damp·I)(H + damp·I)⁻¹ in processing order: a row's least-squares
                          target w* = w·M, the float layer's output refitted on the quantized inputs */
    double *first;     /* [n] Qronos: the first processed column is rounded from Σ w_c·first[c], the
                          best value for it with every other column as given (processing order) */
    /* set by the caller after prepare (freed with the rest): */
    double *H;         /* [n, n] the Hessian as measured (undamped, original order) for the Hessian
                          scale search, or NULL */
    bool rtn;          /* round every column to nearest, no error feedback (RTN on the searched scales) */
} rotq_gptq_hinv;


/* H [n, n] (symmetric, 2XᵀX/N) is used as scratch. ROTQ_ERR_NUMERIC when not finite or when the
 * dampened Hessian is not positive definite. */
rotq_status rotq_gptq_prepare(double *H, int64_t n, const rotq_gptq_options *o, rotq_gptq_hinv *out);
/* The asymmetric fits of GPTAQ and Qronos: the quantized layer, on its quantized inputs X̃, fitted to
 * the float layer's output on float inputs X, min ‖wX − qX̃‖² per row. H [n, n] = 2X̃ᵀX̃/N (scratch, as
 * above), G [n, n] = 2XᵀX̃/N (G_ij = Σ x_i x̃_j). Column by column this is GPTQ on the least-squares
 * target w* = w(G + λI)(H + λI)⁻¹ (the damping a pull toward w): each rounding followed by the exact
 * refit of the columns left. GPTAQ rounds the first column from w*, damping as GPTQ (percdamp); Qronos
 * rounds it from its best value with the other columns at w, damping qronos_damp × H's largest
 * eigenvalue. method: ROTQ_WQ_GPTAQ or ROTQ_WQ_QRONOS. */
static inline bool rotq_wq_asym_fit(rotq_wq_method m) { return m == ROTQ_WQ_GPTAQ || m == ROTQ_WQ_QRONOS; }
rotq_status rotq_gptq_prepare_asym(double *H, const double *G, int64_t n, const rotq_gptq_options *o, rotq_wq_method method,
                                   rotq_gptq_hinv *out);
void rotq_gptq_hinv_free(rotq_gptq_hinv *h);
/* GPTQ of w [rows, cols] in place. *loss (may be NULL) receives Σ (w - q)² / (2·U_ii²). codes (may be
 * NULL) receives the codes and scales, except for act-order with dynamic groups (a group's scale
 * then covers columns that are not contiguous: *codes stays NULL). */
rotq_status rotq_gptq_quantize(float *w, int64_t rows, int64_t cols, const rotq_gptq_hinv *h, const rotq_wq_format *f,
                               const rotq_gptq_options *o, double *loss, rotq_qweight **codes);

/* ---- activations and KV cache (act.c, kv.c) ------------------------------------------------------ */



/* Fake quantization as runner hooks: inputs of every linear (lm_head only when asked), K after
 * RoPE (Q stays float) and V, per head. Install behind the online rotations (rotq_online_install)
 * so that R3/R4 happen first. */
typedef struct rotq_int_linears rotq_int_linears;

typedef struct rotq_fakequant {
    const rotq_backend *be;    /* the runner's (set by rotq_fakequant_attach; NULL: the CPU's) */
    rotq_act_format act;
    rotq_act_format k, v;      /* group defaults to head_dim when <= 0 */
    bool act_lm_head;
    int64_t calls;             /* hook calls that quantized something */
    /* Integer products (rotq_fakequant_use_ints): decoder linear inputs become codes, multiplied
     * exactly with the weights' codes instead of fake-quantized floats through sgemm. */
    const rotq_int_linears *ints;
    uint8_t *codes;            /* [rows, cols] of the last linear input */
    float *code_scale;         /* [rows] */
    int32_t *code_zero;        /* [rows] */
    int64_t code_cap, code_rows_cap, code_rows, code_cols;
    int32_t code_layer;
    int64_t int_products;      /* products done in integers */
} rotq_fakequant;

/* "A4 sym per-token clip 0.90" after `name`; "groups of G" when f groups within the unit (a group of
 * unit_cols is the unit itself); "float" when off. Returns what snprintf does. */
size_t rotq_act_format_describe(char *out, size_t size, const char *name, const rotq_act_format *f, const char *unit,
                                int64_t unit_cols);
/* The backend fq's quantizers compute with. */
static inline const rotq_backend *rotq_fakequant_backend(const rotq_fakequant *fq) {
    return fq->be ? fq->be : rotq_backend_cpu();
}
/* Hooks of fq; the product hook takes a linear only while fq->ints is set. */
rotq_hooks rotq_fakequant_hooks(rotq_fakequant *fq);
/* Appends fq's quantizers to r as named transforms, one per site where one is on (activations at
 * linear inputs, K after RoPE, V, and the integer product when fq->ints is set); fq stays the
 * caller's and must outlive r. Call after rotq_online_attach. */
rotq_status rotq_fakequant_attach(rotq_runner *r, rotq_fakequant *fq);
/* Frees fq's code buffers (fq itself is the caller's). */
void rotq_fakequant_release(rotq_fakequant *fq);

/* Codes of a per-token format: x_fq[r][i] = scale[r]·(u[r][i] − zero[r]) equals rotq_act_quantize's
 * result; u <= rotq_act_code_max(f). Whole rows only (f->group covering the row). */
rotq_status rotq_act_codes(const float *x, int64_t rows, int64_t cols, const rotq_act_format *f, uint8_t *u, float *scale,
                           int32_t *zero);
int32_t rotq_act_code_max(const rotq_act_format *f);

/* ---- integer products (intlin.c over igemm.h) ----------------------------------------------------- */

/* Every decoder linear of a runner packed as integer codes. Rows of each weight must lie on a
 * symmetric grid of w_bits (2..7) bits with one scale per row (as per-channel RTN and GPTQ leave them):
 * the codes the quantizer attached to the tensor when there are some, else recovered from the
 * float values (so a quantized checkpoint loaded from disk qualifies too). ROTQ_ERR_UNSUPPORTED, naming the first row that is not on such a grid, otherwise. */
rotq_status rotq_int_linears_build(const rotq_runner *r, int32_t w_bits, rotq_int_linears **out);
void rotq_int_linears_free(rotq_int_linears *il);
int64_t rotq_int_linears_count(const rotq_int_linears *il);
/* How many of them came from their quantizer's codes (rotq_tensor.codes) rather than recovered. */
int64_t rotq_int_linears_from_codes(const rotq_int_linears *il);
/* Switches fq to integer products with il (NULL: back to fake quantization); ROTQ_ERR_ARG when
 * fq's activation format has no codes (off, or groups within a row). */
rotq_status rotq_fakequant_use_ints(rotq_fakequant *fq, const rotq_int_linears *il);
/* The hook halves of the integer mode (act.c calls the first; hooks take the second). */
rotq_status rotq_fakequant_int_input(rotq_fakequant *fq, int32_t layer, const float *x, int64_t rows, int64_t cols);
rotq_status rotq_fakequant_int_product(void *ctx, int32_t layer, rotq_role role, const float *x, int64_t rows, int64_t n_in,
                                       float *out, int64_t n_out, const float *b, bool accumulate, bool *done);

/* ---- the pipeline (calib.c, pipeline.c) -------------------------------------------------------- */



/* The fake-quant hooks' settings for this model (KV group = head_dim unless given). */
rotq_fakequant rotq_quant_fakequant(const rotq_quant_options *o, const rotq_model *m);

/* Random windows: nsamples starts uniform in [0, n - ctx), seeded; out [nsamples, ctx], malloc'd. */
rotq_status rotq_calib_windows(const int32_t *ids, int64_t n, int64_t nsamples, int64_t ctx, uint64_t seed,
                               int32_t **out);


/* The GPTQ pass alone over windows [ns, ctx] (calib.c). r: a runner over m whose hooks are the
 * online rotations; every quantized linear must be an owned float32 tensor that r borrows. types:
 * per-tensor block types (rotq_quant_tensor_types) or NULL for o's scalar format everywhere.
 * GPTAQ and Qronos: r also quantizes activations and KV (the quantized stream), and rf is a second
 * runner over m with the online rotations only (the float stream; its layer weights are repointed to
 * float copies as the walk goes); NULL for GPTQ. */
rotq_status rotq_gptq_model(rotq_model *m, rotq_runner *r, rotq_runner *rf, const int32_t *windows, int64_t ns, int64_t ctx,
                            const rotq_quant_options *o, const rotq_dtype *types, rotq_quant_report *rep);

/* The output matrix when GPTQ quantizes it too: untied (a tied one also serves as the embedding, whose
 * rows GPTQ's input statistics say nothing about: RTN does it) and given a type by the plan types. */
rotq_tensor *rotq_quant_gptq_head(const rotq_model *m, const rotq_quant_options *o, const rotq_dtype *types);

/* The decoder linears of layer l as (role, tensor) pairs; returns how many (<= 7). */
int rotq_quant_layer_linears(const rotq_model *m, int32_t l, rotq_role *roles, rotq_tensor **tensors);

#endif
