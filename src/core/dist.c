/* The communicator: single process, or MPI when built with ROTQ_MPI and started by mpirun. MPI takes
 * int counts: large buffers go in chunks. */
#include <stdlib.h>
#include <string.h>

#include "core/dist.h"
#include "rotq.h"

#ifdef ROTQ_WITH_MPI
#include <mpi.h>
#endif

static int g_rank = 0, g_size = 1;
#ifdef ROTQ_WITH_MPI
static int g_mpi = 0; /* this process called MPI_Init */
#endif

#define CHUNK (1 << 26) /* elements per MPI call */

int rotq_dist_rank_get(void) { return g_rank; }
int rotq_dist_size_get(void) { return g_size; }
int rotq_dist_rank(void) { return g_rank; }
int rotq_dist_size(void) { return g_size; }

const char *rotq_dist_backend(void) {
#ifdef ROTQ_WITH_MPI
    return g_mpi ? "mpi" : "single (built with MPI)";
#else
    return "single";
#endif
}

rotq_status rotq_dist_init(int *argc, char ***argv) {
#ifdef ROTQ_WITH_MPI
    /* only under a launcher: a plain `rotq ...` stays a single process without MPI's start-up */
    if (!getenv("OMPI_COMM_WORLD_SIZE") && !getenv("PMI_SIZE") && !getenv("PMIX_RANK")) return ROTQ_OK;
    int provided = 0;
    if (MPI_Init_thread(argc, argv, MPI_THREAD_FUNNELED, &provided) != MPI_SUCCESS)
        return rotq_fail(ROTQ_ERR_IO, "MPI_Init failed");
    g_mpi = 1;
    MPI_Comm_rank(MPI_COMM_WORLD, &g_rank);
    MPI_Comm_size(MPI_COMM_WORLD, &g_size);
    return ROTQ_OK;
#else
    (void)argc, (void)argv;
    return ROTQ_OK;
#endif
}

void rotq_dist_finalize(void) {
#ifdef ROTQ_WITH_MPI
    if (g_mpi) MPI_Finalize();
    g_mpi = 0;
#endif
}

#ifdef ROTQ_WITH_MPI
static rotq_status reduce_bcast(void *x, int64_t n, MPI_Datatype t, size_t elem, MPI_Op op) {
    for (int64_t i = 0; i < n; i += CHUNK) {
        int k = (int)(n - i < CHUNK ? n - i : CHUNK);
        char *p = (char *)x + (size_t)i * elem;
        int rc = MPI_Reduce(g_rank == 0 ? MPI_IN_PLACE : p, g_rank == 0 ? p : NULL, k, t, op, 0, MPI_COMM_WORLD);
        if (rc == MPI_SUCCESS) rc = MPI_Bcast(p, k, t, 0, MPI_COMM_WORLD);
        if (rc != MPI_SUCCESS) return rotq_fail(ROTQ_ERR_IO, "MPI reduction of %lld values failed (rank %d of %d)", (long long)n, g_rank, g_size);
    }
    return ROTQ_OK;
}
#endif

rotq_status rotq_dist_sum_f64(double *x, int64_t n) {
#ifdef ROTQ_WITH_MPI
    if (g_mpi && g_size > 1) return reduce_bcast(x, n, MPI_DOUBLE, sizeof *x, MPI_SUM);
#endif
    (void)x, (void)n;
    return ROTQ_OK;
}

rotq_status rotq_dist_sum_i64(int64_t *x, int64_t n) {
#ifdef ROTQ_WITH_MPI
    if (g_mpi && g_size > 1) return reduce_bcast(x, n, MPI_INT64_T, sizeof *x, MPI_SUM);
#endif
    (void)x, (void)n;
    return ROTQ_OK;
}

rotq_status rotq_dist_max_f64(double *x, int64_t n) {
#ifdef ROTQ_WITH_MPI
    if (g_mpi && g_size > 1) return reduce_bcast(x, n, MPI_DOUBLE, sizeof *x, MPI_MAX);
#endif
    (void)x, (void)n;
    return ROTQ_OK;
}

rotq_status rotq_dist_bcast(void *p, size_t bytes, int root) {
#ifdef ROTQ_WITH_MPI
    if (g_mpi && g_size > 1)
        for (size_t i = 0; i < bytes; i += CHUNK) {
            int k = (int)(bytes - i < CHUNK ? bytes - i : CHUNK);
            if (MPI_Bcast((char *)p + i, k, MPI_BYTE, root, MPI_COMM_WORLD) != MPI_SUCCESS)
                return rotq_fail(ROTQ_ERR_IO, "MPI broadcast of %zu bytes failed", bytes);
        }
#endif
    (void)p, (void)bytes, (void)root;
    return ROTQ_OK;
}

rotq_status rotq_dist_send(const void *p, size_t bytes, int to) {
#ifdef ROTQ_WITH_MPI
    if (g_mpi)
        for (size_t i = 0; i < bytes; i += CHUNK) {
            int k = (int)(bytes - i < CHUNK ? bytes - i : CHUNK);
            if (MPI_Send((const char *)p + i, k, MPI_BYTE, to, 0, MPI_COMM_WORLD) != MPI_SUCCESS)
                return rotq_fail(ROTQ_ERR_IO, "MPI send of %zu bytes to rank %d failed", bytes, to);
        }
    return ROTQ_OK;
#endif
    (void)p, (void)bytes;
    return rotq_fail(ROTQ_ERR_ARG, "send to rank %d: a single process has no other rank", to);
}

rotq_status rotq_dist_recv(void *p, size_t bytes, int from) {
#ifdef ROTQ_WITH_MPI
    if (g_mpi)
        for (size_t i = 0; i < bytes; i += CHUNK) {
            int k = (int)(bytes - i < CHUNK ? bytes - i : CHUNK);
            if (MPI_Recv((char *)p + i, k, MPI_BYTE, from, 0, MPI_COMM_WORLD, MPI_STATUS_IGNORE) != MPI_SUCCESS)
                return rotq_fail(ROTQ_ERR_IO, "MPI receive of %zu bytes from rank %d failed", bytes, from);
        }
    return ROTQ_OK;
#endif
    (void)p, (void)bytes;
    return rotq_fail(ROTQ_ERR_ARG, "receive from rank %d: a single process has no other rank", from);
}

rotq_status rotq_dist_barrier(void) {
#ifdef ROTQ_WITH_MPI
    if (g_mpi && g_size > 1 && MPI_Barrier(MPI_COMM_WORLD) != MPI_SUCCESS) return rotq_fail(ROTQ_ERR_IO, "MPI barrier failed");
#endif
    return ROTQ_OK;
}
