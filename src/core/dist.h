/* Ranks of a data-parallel run (mpirun -np N rotq ...): who this process is and the collectives the runtime
 * needs. One process (the default build, or a run not started by mpirun) is rank 0 of 1 and every
 * collective is a no-op. Sums are reduced on rank 0 and broadcast, so every rank holds the same bits
 * (the runtime then makes identical choices on every rank: GPTQ codes, Cayley steps). */
#ifndef ROTQ_CORE_DIST_H
#define ROTQ_CORE_DIST_H
#include <stddef.h>
#include <stdint.h>

#include "core/error.h"

int rotq_dist_rank_get(void);
int rotq_dist_size_get(void);
/* x [n] ← Σ over ranks, identical on every rank. */
rotq_status rotq_dist_sum_f64(double *x, int64_t n);
rotq_status rotq_dist_sum_i64(int64_t *x, int64_t n);
/* x [n] ← the largest over ranks. */
rotq_status rotq_dist_max_f64(double *x, int64_t n);
/* bytes from `root` to every rank. */
rotq_status rotq_dist_bcast(void *p, size_t bytes, int root);
rotq_status rotq_dist_send(const void *p, size_t bytes, int to);
rotq_status rotq_dist_recv(void *p, size_t bytes, int from);
rotq_status rotq_dist_barrier(void);
#endif
