/* Registered rotation operations and the state they share while rotating one model. */
#ifndef ROTQ_ROTATE_FUSE_H
#define ROTQ_ROTATE_FUSE_H
#include "arch/arch.h"

typedef struct rotq_rotate_ctx {
    rotq_model *m;
    const rotq_rotate_options *opt;
    int64_t params_added;     /* e.g. by untying embeddings */
    /* What one call of an operation covers. rotq_rotate_model makes one call per operation with every
     * layer, the globals and first set; a streamed run calls each operation once for the global
     * tensors (first set) and then once per layer, so each layer can be written out and freed. */
    int32_t layer_begin, layer_end; /* layers [begin, end) */
    bool globals;                   /* the global tensors: embeddings, lm_head, final norm */
    bool first;                     /* the run's first call: one-time planning, checks, saved files */
    struct rotq_rotation *r1, *r4;  /* made on the first call, kept for the later ones */
    struct rotq_rotation *lw[ROTQ_LW_SITES]; /* layerwise rotations, likewise */
    bool force_untie;               /* untie even a tied embedding nothing else would make differ */
} rotq_rotate_ctx;

typedef rotq_status (*rotq_op_fn)(rotq_rotate_ctx *ctx);
struct rotq_rotation;

/* Adds an operation under `name` (replacing a same-named one) so architectures can list it. */
rotq_status rotq_op_register(const char *name, rotq_op_fn fn);
rotq_op_fn rotq_op_find(const char *name);

/* Called with each tensor once it is final in a streamed run (global ones first, then layer by layer). */
typedef rotq_status (*rotq_tensor_sink)(void *user, rotq_model *m, rotq_tensor *t);
/* rotq_rotate_model, but layer by layer when every operation of the architecture is a built-in one
 * (else the whole model first), handing each finished tensor to `sink`. */
rotq_status rotq_rotate_model_streamed(rotq_model *m, const rotq_rotate_options *opts, rotq_tensor_sink sink, void *user);

rotq_status rotq_op_untie_embeddings(rotq_rotate_ctx *ctx);
rotq_status rotq_op_fuse_norms(rotq_rotate_ctx *ctx);

/* The rotation a fused site asks for (rotq_rotate_options' kinds; a file, or for ROTQ_R_FILE naming a
 * folder its r1.safetensors (layer < 0) or r2.layerL.safetensors); `site` names it in messages. */
rotq_status rotq_site_rotation_make(rotq_rotation_choice c, const char *file, int64_t n, uint64_t seed, const char *site,
                                    int32_t layer, struct rotq_rotation **out);
/* The n×n block-diagonal rotation with R on each of its n / R->n diagonal blocks (dense: for files). */
rotq_status rotq_rotation_block_expand(const struct rotq_rotation *R, int64_t n, struct rotq_rotation **out);
/* The rotation an online site uses (plain Hadamard, or the recorded dense fallback). */
rotq_status rotq_online_rotation_make(const rotq_online_rotation *spec, struct rotq_rotation **out);
/* A layerwise site's width, and whether a tensor (or the runner's linear input) of role `role` is
 * one of the linears reading it (the runner hands q/k/v's shared input as ROLE_Q or ROLE_QKV). */
int64_t rotq_lw_site_width(const rotq_hparams *hp, int site);
bool rotq_lw_site_reads(int site, int32_t role);

/* Scales column j of a linear weight [out, in] by s[j] (in double, stored in its dtype). */
rotq_status rotq_scale_linear_input(rotq_tensor *w, const double *s);
/* Folds a norm's weight g and bias beta into a linear it feeds: b ← b + W·beta (W before the
 * scaling; skipped when beta or bias is NULL), then W ← W·diag(g). In double. */
rotq_status rotq_fold_norm_into_linear(rotq_tensor *w, rotq_tensor *bias, const double *g, const double *beta);
/* R1 on a model whose LayerNorms were fused (centred stream, norms run as RMSNorm): applies to
 * every residual-stream site the Householder reflection P that maps R·1 back to 1, so that the
 * R applied next makes P·R, which keeps 1 fixed. The rotated stream then stays zero-mean and a
 * LayerNorm of weight 1 still equals RMSNorm on it: the output stays a valid checkpoint of the
 * original architecture. *effective (when asked): P·R as a dense rotation, for saving. */
rotq_status rotq_r1_keep_mean(rotq_model *m, const struct rotq_rotation *R, struct rotq_rotation **effective);
#endif
