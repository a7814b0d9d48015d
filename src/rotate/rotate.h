/* Rotations: exact Hadamard matrices of many orders, random orthogonal matrices, the fast transform
 * that applies them to rows, and the weight operations built on them (docs/hadamard.md).
 *
 * Conventions, used by every function below:
 *  - A rotation R is an n×n orthogonal matrix and activations are rows: x ← x·R ("apply"),
 *    x ← x·Rᵀ ("inverse"). Weights are [out, in] row-major: W ← W·R rotates a linear's input,
 *    W ← Rᵀ·W (b ← Rᵀ·b) its output, E ← E·R an embedding's output.
 *  - A Hadamard rotation of size n = K·M, M = 2^m, is R = D·(H_K ⊗ H_M)/√n where D = diag(signs)
 *    (identity when unsigned), H_M is Sylvester's (H_1 = [1], H_2M = [[H_M, H_M], [H_M, -H_M]]) and
 *    H_K the constructed base matrix. Row index i = a·M + b (a < K, b < M), so
 *    R[a·M+b][c·M+d] = s[a·M+b] · H_K[a][c] · H_M[b][d] / √n. K is the smallest factor of n with
 *    n/K a power of two for which an exact Hadamard matrix of order K is known.
 *  - Random numbers come from rotq's own generator (xoshiro256** seeded by splitmix64, normals by
 *    Marsaglia's polar method with a libm-free logarithm), so a seed gives the same bytes everywhere.
 */
#ifndef ROTQ_ROTATE_H
#define ROTQ_ROTATE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "backend/backend.h"
#include "core/model.h"

/* ---- random numbers (rng.c) ------------------------------------------------------------------ */

typedef struct rotq_rng {
    uint64_t s[4];
    double spare;      /* second normal of the last polar pair */
    bool has_spare;
} rotq_rng;

void rotq_rng_seed(rotq_rng *r, uint64_t seed);      /* state = 4 splitmix64 outputs of seed */
uint64_t rotq_rng_next(rotq_rng *r);                 /* xoshiro256** */
double rotq_rng_uniform(rotq_rng *r);                /* [0, 1), 53 random bits */
double rotq_rng_normal(rotq_rng *r);                 /* standard normal */
/* n signs ±1: sign i is + when bit 63 of the i-th output of a generator seeded with seed is 0. */
void rotq_rng_signs(uint64_t seed, int8_t *out, int64_t n);
/* Every seeded choice derives its seed from the user's one here, so that each site draws its own
 * stream and a result names the seed it came from. (The values keep the files rotq wrote before:
 * R1 and the calibration windows take the seed itself, R2 of layer l seed+1+l, R3/R4 seed+0x5eed3/4.) */
typedef enum rotq_seed_site {
    ROTQ_SEED_R1 = 0, ROTQ_SEED_R2, ROTQ_SEED_R3, ROTQ_SEED_R4, ROTQ_SEED_CALIB_WINDOWS,
    ROTQ_SEED_LAYERWISE,       /* index: the site (rotq_lw_site) */
    ROTQ_SEED_VISION,          /* a vision tower's base seed, from which its own R1/R2/R4 derive */
} rotq_seed_site;
uint64_t rotq_seed_derive(uint64_t seed, rotq_seed_site site, int64_t index);
/* Natural logarithm from +, -, *, / only (identical on every IEEE-754 machine); x > 0 finite. */
double rotq_rng_log(double x);

/* ---- exact Hadamard matrices (hadamard.c) ----------------------------------------------------- */

/* The searches that produced the built-in sequence tables (kept to re-derive or extend them).
 * Goethals–Seidel quadruple: four ±1 sequences of length t whose periodic autocorrelations sum
 * to 0 at every nonzero shift (out: 4·t); with multiplier h > 1 each sequence is constant on the
 * orbits of i ↦ i·h (mod t), which shrinks the search enormously when solutions of that shape
 * exist. Turyn-type TT(n): X, Y, Z of length n and W of length n-1 with
 * N_X + N_Y + 2N_Z + 2N_W = 0 for the aperiodic autocorrelations (out: 4n-1, X|Y|Z|W).
 * Both run seeded simulated annealing; ROTQ_ERR_NOT_FOUND when max_flips moves run out. */
rotq_status rotq_search_gs_quadruple(int32_t t, int32_t multiplier, uint64_t seed, int64_t max_flips, int8_t *out);
rotq_status rotq_search_turyn(int32_t n, uint64_t seed, int64_t max_flips, int8_t *out);

/* The built-in tables, entry i (false past the end); out may be NULL to read only the sizes.
 * GS: four sequences of length t (out: 4t); Turyn: TT(n) as X|Y|Z|W (out: 4n-1). */
bool rotq_hadamard_table_gs(int32_t i, int32_t *t, int32_t *multiplier, uint64_t *seed, int8_t *out);
bool rotq_hadamard_table_turyn(int32_t i, int32_t *n, uint64_t *seed, int8_t *out);

/* ---- rotations (building, applying, saving them and the Hadamard orders are public: rotq.h) -- */

typedef enum rotq_rotation_kind {
    ROTQ_ROT_HADAMARD = 0,   /* D·(H_K ⊗ H_{2^m})/√n, applied in O(n log n + nK) per row */
    ROTQ_ROT_DENSE = 1,      /* any orthogonal matrix, applied as a dense product */
} rotq_rotation_kind;

struct rotq_rotation {
    rotq_rotation_kind kind;
    int64_t n;
    bool exact;              /* false: no exact Hadamard was known and this is the fallback */
    bool seeded;             /* random signs / random matrix from `seed` */
    uint64_t seed;
    char desc[192];          /* how it was made, for logs and file metadata */

    /* ROTQ_ROT_HADAMARD */
    int64_t K;               /* base order (1 when n is a power of two) */
    int32_t m;               /* n = K·2^m */
    int8_t *base;            /* K·K entries ±1, row-major H_K */
    int8_t *signs;           /* n entries ±1 (all +1 when unsigned) */
    float *kstep_fwd;        /* K·K: kstep_fwd[c·K+a] = H_K[a][c] (the x·H_K step), no scaling */
    float *kstep_inv;        /* K·K: kstep_inv[c·K+a] = H_K[c][a] (the x·H_Kᵀ step) */
    float *scaled_signs;     /* n entries s_i/√n, folded into the first or last pass */
    double *scaled_signs_f64;

    /* ROTQ_ROT_DENSE */
    double *dense;           /* n·n row-major R */
    float *dense_f32;
};

/* Largest base order K a Hadamard rotation builds (K·K int8 plus two K·K float steps: 150 MB); real
 * models need K <= 172. Larger orders are refused with the memory they would take. */
#define ROTQ_HADAMARD_MAX_BASE 4096
/* What rotq uses for "a rotation of size n": the (random-sign) Hadamard rotation when one is
 * known, else a random orthogonal matrix with *fallback set (never an error for lack of one). */
rotq_status rotq_rotation_for_size(int64_t n, uint64_t seed, bool *fallback, rotq_rotation **out);
/* rotq_rotation_apply_rows through a given backend's Hadamard kernel (a runner's online rotations);
 * dense rotations still multiply on the host with BLAS. */
rotq_status rotq_rotation_apply_rows_on(const rotq_backend *be, const rotq_rotation *R, float *x, int64_t rows,
                                        bool inverse);

/* ---- fast transform kernels (fwht.c) ---------------------------------------------------------- */

typedef enum rotq_isa { ROTQ_ISA_AUTO = 0, ROTQ_ISA_SCALAR, ROTQ_ISA_AVX2, ROTQ_ISA_AVX512 } rotq_isa;

/* The instruction set the float kernels use now. */
rotq_isa rotq_fwht_isa(void);
const char *rotq_isa_name(rotq_isa isa);
/* Forces a kernel (tests, benchmarks); AUTO restores detection (env ROTQ_FWHT_ISA=scalar|avx2|
 * avx512 is honoured too). ROTQ_ERR_UNSUPPORTED when this CPU cannot run it. */
rotq_status rotq_fwht_set_isa(rotq_isa isa);

/* ---- weight operations (ops.c) ---------------------------------------------------------------- */

typedef enum rotq_rotate_side {
    ROTQ_ROTATE_INPUT = 0,   /* linear: W ← W·R (a consumer of the rotated stream) */
    ROTQ_ROTATE_OUTPUT = 1,  /* linear: W ← Rᵀ·W, b ← Rᵀ·b; embedding: E ← E·R (a producer) */
    ROTQ_CENTER_OUTPUT = 2,  /* linear: W ← (I - 11ᵀ/d)·W, b ← b - mean(b); embedding: rows centred */
} rotq_rotate_side;

typedef struct rotq_rotate_opts {
    bool inverse;            /* use Rᵀ in place of R */
    bool block_diag;         /* R (size r) acts on each block of r along the rotated dimension */
    int64_t row_begin;       /* OUTPUT of a linear: only rows [row_begin, row_end) (fused qkv) */
    int64_t row_end;         /* 0 = to the end */
} rotq_rotate_opts;

rotq_rotate_opts rotq_rotate_defaults(void);

/* W[out, in] ← W·R (block-diagonal: each block of R->n input columns). */
rotq_status rotq_rotate_linear_input(rotq_tensor *W, const rotq_rotation *R, const rotq_rotate_opts *o);
/* W ← Rᵀ·W over rows [row_begin, row_end), bias likewise (bias may be NULL). */
rotq_status rotq_rotate_linear_output(rotq_tensor *W, rotq_tensor *bias, const rotq_rotation *R,
                                      const rotq_rotate_opts *o);
/* E[vocab, d] ← E·R. */
rotq_status rotq_rotate_embedding_output(rotq_tensor *E, const rotq_rotation *R, const rotq_rotate_opts *o);
/* W[out, in]: column j ← s[j]·column j (in double, stored in the tensor's dtype; OpenMP over rows). */
rotq_status rotq_scale_columns(rotq_tensor *W, const double *s);
/* Removes the mean over the output features (rows [row_begin,row_end) of a linear; each row of an
 * embedding), so a following LayerNorm's centring becomes a no-op. */
rotq_status rotq_center_output(rotq_tensor *t, rotq_tensor *bias, const rotq_rotate_opts *o);

/* One entry for all of the above (the seed framework's AutoOperation): dispatches on the tensor's
 * role (embeddings: ROLE_EMBED / ROLE_POS_EMBED; 1-D tensors: a bias on its own; everything else a
 * linear [out, in]). `R` may be NULL for ROTQ_CENTER_OUTPUT. */
rotq_status rotq_op_rotate(rotq_tensor *t, rotq_tensor *bias, rotq_rotate_side side,
                           const rotq_rotation *R, const rotq_rotate_opts *o);

#endif
