/* Online rotations (R3 on Q/K after RoPE, R4 before down_proj) as runner hooks, chained in front
 * of any other hooks (e.g. fake quantization, which must see the rotated activations). */
#ifndef ROTQ_ROTATE_ONLINE_H
#define ROTQ_ROTATE_ONLINE_H
#include "nn/nn.h"
#include "rotate/rotate.h"

typedef struct rotq_online {
    rotq_rotation *r3, *r4;   /* NULL when the model has none */
    rotq_hooks next;          /* called after the rotation at each hook point */
} rotq_online;

/* Builds the model's recorded online rotations (m->rot); *out is NULL-free even when none. */
rotq_status rotq_online_new(const rotq_model *m, rotq_online **out);
void rotq_online_free(rotq_online *o);
/* Hooks that rotate, then call `next` (may be NULL). `o` must outlive the runner using them. */
rotq_hooks rotq_online_hooks(rotq_online *o, const rotq_hooks *next);
/* Convenience: builds the online rotations of the runner's model and installs them. */
rotq_status rotq_online_install(rotq_runner *r, const rotq_hooks *next, rotq_online **out);
#endif
