/* Throughput of rotq_igemm_forward (4-bit codes: u ≤ 15, |q| ≤ 8) against the same product in float
 * with OpenBLAS (cblas_sgemm, y[T,n_out] = x[T,n_in]·W[n_out,n_in]ᵀ) on the SmolLM2-135M linears.
 *
 * usage: bench_igemm [--threads N] [--tokens T] [--reps R]
 * GFLOP/s counts 2·T·n_in·n_out per call for both (GFLOP-equivalent for the integer product).
 * The two are timed in alternating blocks (3 each, of at least R calls and 0.1 s) so both see the
 * same machine; the best call of each is kept, and the ratio of the medians printed beside that of
 * the bests. Run with OMP_WAIT_POLICY=passive so idle OpenMP threads do not spin through sgemm.
 */
#include <cblas.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "backend/igemm.h"

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static uint64_t rs = 0x9E3779B97F4A7C15ull;
static uint32_t next_u32(void) {
    rs ^= rs >> 12; rs ^= rs << 25; rs ^= rs >> 27;
    return (uint32_t)((rs * 2685821657736338717ull) >> 32);
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

#define BLOCKS 3
#define BLOCK_SECONDS 0.1 /* a block runs at least this long: short ones catch the machine waking up */
#define MAX_CALLS 4096     /* per operation, over all blocks */

int main(int argc, char **argv) {
    int threads = 2, reps = 10;
    int64_t T = 2048;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--threads") && i + 1 < argc) threads = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--tokens") && i + 1 < argc) T = atoll(argv[++i]);
        else if (!strcmp(argv[i], "--reps") && i + 1 < argc) reps = atoi(argv[++i]);
        else { fprintf(stderr, "usage: bench_igemm [--threads N] [--tokens T] [--reps R]\n"); return 2; }
    }
    if (reps < 1 || reps * BLOCKS > MAX_CALLS || T < 1 || threads < 1) { fprintf(stderr, "bench_igemm: bad arguments\n"); return 2; }
    omp_set_num_threads(threads);
    openblas_set_num_threads(threads);
    printf("# bench_igemm: T=%lld, %d threads, u<=15 |q|<=8, best of >= %d calls in %d alternating blocks of >= %.1f s\n", (long long)T,
           threads, BLOCKS * reps, BLOCKS, BLOCK_SECONDS);
    printf("%-12s | %9s %9s | %9s %9s | %6s %6s\n", "n_in->n_out", "sgemm ms", "GFLOP/s", "igemm ms", "GFLOP/s", "ratio",
           "median");
    const int64_t shapes[][2] = {{576, 576}, {576, 192}, {576, 1536}, {1536, 576}};
    for (size_t si = 0; si < sizeof shapes / sizeof *shapes; si++) {
        int64_t n_in = shapes[si][0], n_out = shapes[si][1];
        float *x = malloc(sizeof(float) * (size_t)(T * n_in)), *W = malloc(sizeof(float) * (size_t)(n_out * n_in));
        float *y = malloc(sizeof(float) * (size_t)(T * n_out)), *s = malloc(sizeof(float) * (size_t)T);
        float *sw = malloc(sizeof(float) * (size_t)n_out);
        uint8_t *u = malloc((size_t)(T * n_in));
        int8_t *q = malloc((size_t)(n_out * n_in));
        int32_t *z = malloc(sizeof(int32_t) * (size_t)T);
        if (!x || !W || !y || !s || !sw || !u || !q || !z) { fprintf(stderr, "out of memory\n"); return 1; }
        for (int64_t i = 0; i < T * n_in; i++) {
            u[i] = (uint8_t)(next_u32() % 16);
            x[i] = (float)u[i] - 8;
        }
        for (int64_t i = 0; i < n_out * n_in; i++) {
            q[i] = (int8_t)((int)(next_u32() % 16) - 8);
            W[i] = q[i];
        }
        for (int64_t t = 0; t < T; t++) { s[t] = 0.01f; z[t] = 8; }
        for (int64_t o = 0; o < n_out; o++) sw[o] = 0.02f;
        rotq_igemm_weights *w = NULL;
        if (rotq_igemm_pack(q, sw, n_out, n_in, &w) != ROTQ_OK) { fprintf(stderr, "%s\n", rotq_last_error()); return 1; }

        /* warm-up: pages, caches, thread pools */
        rotq_igemm_forward(y, u, s, z, T, 15, w, NULL, false);
        /* Blocks of calls, alternating: sgemm, a pause, igemm. OpenBLAS's threads spin for a while
         * after each call and would take the second core from igemm's threads if the two were
         * interleaved call by call (OMP_WAIT_POLICY=passive keeps the OpenMP threads from doing
         * the same to sgemm). */
        static double ts[MAX_CALLS], ti[MAX_CALLS];
        int ns = 0, ni = 0;
        for (int block = 0; block < BLOCKS; block++) {
            double start = now();
            for (int k = 0; (k < reps || now() - start < BLOCK_SECONDS) && ns < MAX_CALLS * (block + 1) / BLOCKS; k++) {
                double t0 = now();
                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)T, (int)n_out, (int)n_in, 1.0f, x, (int)n_in, W,
                            (int)n_in, 0.0f, y, (int)n_out);
                ts[ns++] = now() - t0;
            }
            nanosleep(&(struct timespec){.tv_nsec = 300000000}, NULL);
            start = now();
            for (int k = 0; (k < reps || now() - start < BLOCK_SECONDS) && ni < MAX_CALLS * (block + 1) / BLOCKS; k++) {
                double t0 = now();
                rotq_igemm_forward(y, u, s, z, T, 15, w, NULL, false);
                ti[ni++] = now() - t0;
            }
        }
        qsort(ts, (size_t)ns, sizeof *ts, cmp_double);
        qsort(ti, (size_t)ni, sizeof *ti, cmp_double);
        double gflop = 2.0 * (double)T * (double)n_in * (double)n_out / 1e9;
        char name[32];
        snprintf(name, sizeof name, "%lld->%lld", (long long)n_in, (long long)n_out);
        printf("%-12s | %9.3f %9.1f | %9.3f %9.1f | %5.2fx %5.2fx\n", name, ts[0] * 1e3, gflop / ts[0], ti[0] * 1e3, gflop / ti[0],
               ts[0] / ti[0], ts[ns / 2] / ti[ni / 2]);
        fflush(stdout);
        rotq_igemm_free(w);
        free(x); free(W); free(y); free(s); free(sw); free(u); free(q); free(z);
    }
    return 0;
}
