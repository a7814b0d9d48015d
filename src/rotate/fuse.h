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

/* The rotation an online site uses (plain Hadamard, or the recorded dense fallback). */
rotq_status rotq_online_rotation_make(const rotq_online_rotation *spec, struct rotq_rotation **out);

/* Scales column j of a linear weight [out, in] by s[j] (in double, stored in its dtype). */
rotq_status rotq_scale_linear_input(rotq_tensor *w, const double *s);
#endif
