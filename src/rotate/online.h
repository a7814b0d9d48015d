/* Online rotations (R3 on Q/K after RoPE, R4 before down_proj): part of a rotated model's function,
 * applied by the runner as its first transforms. A session attaches them when it is made; the
 * runner refuses to run a model that records them until they are attached. */
#ifndef ROTQ_ROTATE_ONLINE_H
#define ROTQ_ROTATE_ONLINE_H
#include "nn/nn.h"
#include "rotate/rotate.h"

/* Builds the online rotations the runner's model records (m->rot) and appends them to the runner,
 * which owns them from then on. A model without any is marked attached and gets no transform.
 * ROTQ_ERR_FORMAT when a recorded size disagrees with the model; ROTQ_ERR_ARG when called twice or
 * after other transforms (rotq_runner_add_transform keeps online rotations first: quantizers see
 * rotated values). */
rotq_status rotq_online_attach(rotq_runner *r);
#endif
