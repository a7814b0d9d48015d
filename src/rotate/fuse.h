/* Registered rotation operations and the state they share while rotating one model. */
#ifndef ROTQ_ROTATE_FUSE_H
#define ROTQ_ROTATE_FUSE_H
#include "arch/arch.h"

typedef struct rotq_rotate_ctx {
    rotq_model *m;
    const rotq_rotate_options *opt;
    int64_t params_added;     /* e.g. by untying embeddings */
} rotq_rotate_ctx;

typedef rotq_status (*rotq_op_fn)(rotq_rotate_ctx *ctx);

/* Adds an operation under `name` (replacing a same-named one) so architectures can list it. */
rotq_status rotq_op_register(const char *name, rotq_op_fn fn);
rotq_op_fn rotq_op_find(const char *name);

rotq_status rotq_op_untie_embeddings(rotq_rotate_ctx *ctx);
rotq_status rotq_op_fuse_norms(rotq_rotate_ctx *ctx);

/* The rotation an online site uses (plain Hadamard, or the recorded dense fallback). */
struct rotq_rotation;
rotq_status rotq_online_rotation_make(const rotq_online_rotation *spec, struct rotq_rotation **out);

/* Scales column j of a linear weight [out, in] by s[j] (in double, stored in its dtype). */
rotq_status rotq_scale_linear_input(rotq_tensor *w, const double *s);
#endif
