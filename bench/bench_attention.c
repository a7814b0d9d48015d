/* The fused AVX2 attention against the BLAS path (ROTQ_ATTENTION=blas) of rotq_attention_forward_ws on
 * SmolLM2-135M shapes (9 heads, 3 KV heads, head_dim 64, scale 1/8): a 2048-token window from
 * position 0, and one decoding step at position 2047.
 *
 * usage: bench_attention [--threads N] [--reps R]
 * GFLOP/s counts only the useful causal work, 4·nh·hd per (query, visible key) pair. The two paths
 * run in alternating blocks (3 each, of at least R calls and 0.2 s) with a pause after the BLAS
 * block, whose threads spin on after each call; best and median per path are printed, and the
 * ratios of the bests and of the medians. Run with OMP_WAIT_POLICY=passive.
 */
#include <cblas.h>
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "backend/cpu/caps.h"
#include "nn/nn.h"

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static uint64_t rs = 0x9E3779B97F4A7C15ull;
static float next_normalish(void) { /* sum of uniforms: cheap, bell-shaped, unit variance */
    float s = 0;
    for (int i = 0; i < 4; i++) {
        rs ^= rs >> 12; rs ^= rs << 25; rs ^= rs >> 27;
        s += (float)((rs * 2685821657736338717ull) >> 40) / 16777216.0f - 0.5f;
    }
    return s * 1.7320508f;
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

#define BLOCKS 3
#define BLOCK_SECONDS 0.2
#define MAX_CALLS 30000

int main(int argc, char **argv) {
    int threads = 2, reps = 5;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--threads") && i + 1 < argc) threads = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--reps") && i + 1 < argc) reps = atoi(argv[++i]);
        else { fprintf(stderr, "usage: bench_attention [--threads N] [--reps R]\n"); return 2; }
    }
    if (reps < 1 || reps * BLOCKS > MAX_CALLS || threads < 1) { fprintf(stderr, "bench_attention: bad arguments\n"); return 2; }
    if (!rotq_attention_fused_supported(64)) { fprintf(stderr, "bench_attention: no AVX2+FMA\n"); return 1; }
    omp_set_num_threads(threads);
    openblas_set_num_threads(threads);
    const int64_t nh = 9, nkv = 3, hd = 64;
    const float scale = 0.125f;
    printf("# bench_attention: nh=%lld nkv=%lld hd=%lld, %d threads, %d alternating blocks of >= %d calls and %.1f s\n",
           (long long)nh, (long long)nkv, (long long)hd, threads, BLOCKS, reps, BLOCK_SECONDS);
    printf("%-16s | %9s %9s %8s | %9s %9s %8s | %6s %6s\n", "shape", "blas ms", "median", "GFLOP/s", "fused ms", "median",
           "GFLOP/s", "ratio", "median");
    const int64_t shapes[][2] = {{2048, 0}, {1, 2047}}; /* T, pos0 */
    for (size_t si = 0; si < sizeof shapes / sizeof *shapes; si++) {
        int64_t T = shapes[si][0], pos0 = shapes[si][1], nk = pos0 + T;
        int64_t qb = rotq_attention_block(T, nh, nk);
        size_t nq = (size_t)(T * nh * hd), nkvf = (size_t)(nk * nkv * hd);
        float *q = malloc(sizeof(float) * nq), *k = malloc(sizeof(float) * nkvf), *v = malloc(sizeof(float) * nkvf);
        float *out = malloc(sizeof(float) * nq), *ref = malloc(sizeof(float) * nq);
        float *scores = malloc(sizeof(float) * (size_t)(nh * qb * nk)), *work = malloc(sizeof(float) * 2 * nq);
        if (!q || !k || !v || !out || !ref || !scores || !work) { fprintf(stderr, "out of memory\n"); return 1; }
        for (size_t i = 0; i < nq; i++) q[i] = next_normalish();
        for (size_t i = 0; i < nkvf; i++) { k[i] = next_normalish(); v[i] = next_normalish(); }

        static double tb[MAX_CALLS], tf[MAX_CALLS];
        int nb = 0, nf = 0;
        for (int block = 0; block < BLOCKS; block++) {
            { rotq_cpu_caps c_ = *rotq_cpu_caps_get(); c_.attention_fused = false; rotq_cpu_caps_set(&c_); }
            double start = now();
            for (int r = 0; (r < reps || now() - start < BLOCK_SECONDS) && nb < MAX_CALLS * (block + 1) / BLOCKS; r++) {
                double t0 = now();
                rotq_attention_forward_ws(ref, q, k, v, scores, work, T, pos0, nh, nkv, hd, scale, qb, 0);
                tb[nb++] = now() - t0;
            }
            rotq_cpu_caps_set(NULL);
            nanosleep(&(struct timespec){.tv_nsec = 300000000}, NULL);
            start = now();
            for (int r = 0; (r < reps || now() - start < BLOCK_SECONDS) && nf < MAX_CALLS * (block + 1) / BLOCKS; r++) {
                double t0 = now();
                rotq_attention_forward_ws(out, q, k, v, scores, work, T, pos0, nh, nkv, hd, scale, qb, 0);
                tf[nf++] = now() - t0;
            }
        }
        double worst = 0, mag = 0;
        for (size_t i = 0; i < nq; i++) { worst = fmax(worst, fabs(out[i] - ref[i])); mag = fmax(mag, fabs(ref[i])); }
        qsort(tb, (size_t)nb, sizeof *tb, cmp_double);
        qsort(tf, (size_t)nf, sizeof *tf, cmp_double);
        /* query t sees pos0 + t + 1 keys */
        double pairs = (double)T * (double)pos0 + (double)T * (double)(T + 1) / 2;
        double gflop = 4.0 * (double)nh * (double)hd * pairs / 1e9;
        char name[32];
        snprintf(name, sizeof name, "T=%lld pos0=%lld", (long long)T, (long long)pos0);
        printf("%-16s | %9.3f %9.3f %8.1f | %9.3f %9.3f %8.1f | %5.2fx %5.2fx   (max diff %.1e rel, %d/%d calls)\n", name,
               tb[0] * 1e3, tb[nb / 2] * 1e3, gflop / tb[0], tf[0] * 1e3, tf[nf / 2] * 1e3, gflop / tf[0], tb[0] / tf[0],
               tb[nb / 2] / tf[nf / 2], worst / mag, nb, nf);
        fflush(stdout);
        free(q); free(k); free(v); free(out); free(ref); free(scores); free(work);
    }
    return 0;
}
