/* Learned rotations, the pieces tests reach into: the rotations as transforms of a runner (each
 * quantizer sees its input through R and hands its output back through Rᵀ, and the backward
 * accumulates dL/dR), and the Cayley step on the orthogonal group. rotq_learn_rotations (rotq.h)
 * drives them. */
#ifndef ROTQ_LEARN_LEARN_H
#define ROTQ_LEARN_LEARN_H
#include <stdbool.h>
#include <stdint.h>

#include "nn/nn.h"
#include "quant/quant.h"

/* The trainable rotations and their gradients. Matrices are n×n row-major doubles acting on rows
 * (x ← x·R), with float copies the forward uses. */
typedef struct rotq_learned {
    int64_t d, head_dim, n_layers;
    double *r1, *g1;            /* [d, d] R1 and dL/dR1 (NULL: no R1) */
    double *r2, *g2;            /* [n_layers, hd, hd] R2 per layer and dL/dR2 (NULL: no R2) */
    float *r1f, *r2f;
    /* where the rotations act: at a quantizer's input, since elsewhere they cancel exactly */
    bool at_stream;             /* R1: the inputs of q/k/v and of gate/up (activations quantized) */
    bool at_lm_head;            /* R1: lm_head's input (activations quantized there too) */
    bool at_o;                  /* R2: o_proj's input per head (activations quantized) */
    bool at_v;                  /* R2: V per head (the V cache quantized) */
    float *tmp;                 /* scratch rows */
    int64_t tmp_cap;

    /* Weights quantized in the loop (rotq_learned_quantize_weights): the decoder products run on
     * effective weights rebuilt from the frozen ones at every sync — Q(W·R1) for q/k/gate/up,
     * Q(R2ᵀ·W_v·R1) per head for v, Q(R1ᵀ·W_o·R2) for o, Q(R1ᵀ·W_down) for down (its output
     * rotated back by R1ᵀ into the runner's stream) — with the straight-through estimator on Q. */
    bool wq;
    const rotq_runner *r;       /* the frozen weights */
    rotq_wq_format wf;
    float *weff;                /* [n_layers] × (q, k, v, o, gate, up, down) */
    int64_t off[7], stride;     /* offsets of each role within a layer, layer stride */
    float *pv;                  /* [n_layers, kvd, d] W_v·R1 (before R2 and rounding) */
    float *mo;                  /* [n_layers, d, qd] W_o·R2 per head */
    float *bv;                  /* [n_layers, kvd] v's bias in R2's basis (NULL: no bias) */
    bool freeze_weights;        /* tests: the next build records Q(P) − P, later builds add it back to P */
    float *wdelta;
} rotq_learned;

/* Rotations for a runner's model (R1 when r1 != NULL, R2 per layer when r2 != NULL; copied) placed at
 * the quantizers fq turns on. */
rotq_status rotq_learned_new(const rotq_runner *r, const rotq_fakequant *fq, const double *r1, const double *r2,
                             rotq_learned **out);
void rotq_learned_free(rotq_learned *lr);
/* Refreshes the float copies (and the effective weights) after r1/r2 changed. */
rotq_status rotq_learned_sync(rotq_learned *lr);
/* Puts the weights in the loop, quantized with f (round to nearest; f's search as given) on r's
 * frozen weights; call before rotq_learned_attach. */
rotq_status rotq_learned_quantize_weights(rotq_learned *lr, const rotq_runner *r, const rotq_wq_format *f);
void rotq_learned_zero_grad(rotq_learned *lr);
/* Attaches: online rotations (already attached), then "R (learned) in", fq's quantizers, "R (learned)
 * out" — so each quantizer sits between a rotation and its inverse. lr must outlive r. */
rotq_status rotq_learned_attach(rotq_runner *r, rotq_learned *lr, rotq_fakequant *fq);

/* The two transforms rotq_learned_attach adds around the quantizers (for callers that put others
 * between them). */
void rotq_learned_transforms(rotq_learned *lr, rotq_transform *in, rotq_transform *out);

/* One Cayley SGD step on the orthogonal group (Li et al. 2020, as SpinQuant's optimizer):
 * M ← μ·M + G; W = ½(RᵀM − MᵀR) (skew); α = min(lr, 1/(‖W‖₁ + 1e-8)) (‖·‖₁ the largest column sum);
 * R ← R·(I + α/2·W)⁻¹(I − α/2·W), solved exactly in double so R stays orthogonal to rounding;
 * M ← R_old·W (momentum carried to the new point). m may be NULL when momentum is 0. Returns α in
 * *alpha. */
rotq_status rotq_cayley_step(double *R, const double *G, double *M, int64_t n, double lr, double momentum, double *alpha);
#endif
