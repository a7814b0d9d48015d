/* Cost of the fake quantizers per token: activation rows (per token, dynamic) in INT4 (the
 * baseline, QuaRot's per-token grid), MXFP4, NVFP4 and FP8, at SmolLM2's widths; and weight RTN with
 * the clip search on one 576×1536 matrix in each format. Rounds interleaved, median of the rounds.
 *
 * usage: bench_fake_quant [--threads T] [--rounds N] [--tokens N]
 * Prints ns per token (activations) and ms per matrix (weights), each with its ratio to INT4 measured
 * in the same rounds. */
#include <cblas.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend/backend.h"
#include "core/clock.h"
#include "quant/quant.h"

static unsigned long long rs = 88172645463325252ull;
static double nrand(void) {
    double u[2];
    for (int i = 0; i < 2; i++) {
        rs ^= rs << 13; rs ^= rs >> 7; rs ^= rs << 17;
        u[i] = ((rs >> 11) + 0.5) / 9007199254740992.0;
    }
    return sqrt(-2 * log(u[0])) * cos(6.283185307179586 * u[1]);
}

static int cmp(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}
static double median(double *v, int n) { qsort(v, (size_t)n, sizeof *v, cmp); return v[n / 2]; }

enum { N_FMT = 4, MAX_ROUNDS = 64 };

int main(int argc, char **argv) {
    int threads = 1, rounds = 9;
    int64_t tokens = 2048;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--threads") && i + 1 < argc) threads = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--rounds") && i + 1 < argc) rounds = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--tokens") && i + 1 < argc) tokens = atoll(argv[++i]);
        else { fprintf(stderr, "usage: bench_fake_quant [--threads T] [--rounds N] [--tokens N]\n"); return 2; }
    }
    if (rounds < 1 || rounds > MAX_ROUNDS) rounds = 9;
    omp_set_num_threads(threads);
    openblas_set_num_threads(threads);
    const char *names[N_FMT] = {"int4", "mxfp4", "nvfp4", "fp8"};
    rotq_act_format fa[N_FMT] = {
        {.bits = 4, .clip = 0.9f, .group = -1, .range = ROTQ_SYM_SIGNED},
        {.bits = 4, .num = ROTQ_NUM_MXFP4, .clip = 1.0f, .group = 32},
        {.bits = 4, .num = ROTQ_NUM_NVFP4, .clip = 1.0f, .group = 16},
        {.bits = 8, .num = ROTQ_NUM_FP8, .clip = 1.0f, .group = -1},
    };
    printf("# bench_fake_quant: %d threads, %lld tokens, median of %d interleaved rounds\n", threads, (long long)tokens, rounds);
    printf("%-10s %6s | %12s %8s\n", "format", "width", "ns/token", "vs int4");
    const int64_t widths[2] = {576, 1536};
    for (int wi = 0; wi < 2; wi++) {
        int64_t n = widths[wi];
        float *x = malloc(sizeof(float) * (size_t)(tokens * n)), *y = malloc(sizeof(float) * (size_t)(tokens * n));
        for (int64_t i = 0; i < tokens * n; i++) x[i] = (float)(nrand() * (i % 97 == 0 ? 20 : 1));
        double t[N_FMT][MAX_ROUNDS];
        for (int r = 0; r < rounds; r++)
            for (int f = 0; f < N_FMT; f++) {
                memcpy(y, x, sizeof(float) * (size_t)(tokens * n));
                double t0 = rotq_now_s();
                if (rotq_act_quantize(y, tokens, n, &fa[f]) != ROTQ_OK) { fprintf(stderr, "%s\n", rotq_last_error()); return 1; }
                t[f][r] = rotq_now_s() - t0;
            }
        double base = median(t[0], rounds);
        for (int f = 0; f < N_FMT; f++) {
            double m = median(t[f], rounds);
            printf("%-10s %6lld | %12.1f %7.2fx\n", names[f], (long long)n, m / tokens * 1e9, m / base);
        }
        free(x);
        free(y);
    }
    /* weights: RTN with the clip search, per channel (int4, fp8) or per block */
    int64_t rows = 1536, cols = 576;
    float *w = malloc(sizeof(float) * (size_t)(rows * cols)), *q = malloc(sizeof(float) * (size_t)(rows * cols));
    for (int64_t i = 0; i < rows * cols; i++) w[i] = (float)(nrand() * 0.02);
    rotq_wq_format fw[N_FMT];
    rotq_num_format nums[N_FMT] = {ROTQ_NUM_INT, ROTQ_NUM_MXFP4, ROTQ_NUM_NVFP4, ROTQ_NUM_FP8};
    for (int f = 0; f < N_FMT; f++) {
        int64_t blk = rotq_num_format_block(nums[f]);
        fw[f] = rotq_wq_format_make(f == 3 ? 8 : 4, false, blk > 0 ? blk : -1, true);
        fw[f].num = nums[f];
    }
    int wr = rounds < 5 ? rounds : 5;
    double t[N_FMT][MAX_ROUNDS];
    for (int r = 0; r < wr; r++)
        for (int f = 0; f < N_FMT; f++) {
            memcpy(q, w, sizeof(float) * (size_t)(rows * cols));
            double t0 = rotq_now_s();
            if (rotq_rtn_quantize(q, rows, cols, &fw[f], NULL) != ROTQ_OK) { fprintf(stderr, "%s\n", rotq_last_error()); return 1; }
            t[f][r] = rotq_now_s() - t0;
        }
    printf("\n%-10s %10s | %12s %8s\n", "format", "matrix", "RTN+clip ms", "vs int4");
    double base = median(t[0], wr);
    for (int f = 0; f < N_FMT; f++) {
        double m = median(t[f], wr);
        printf("%-10s %4lldx%-5lld | %12.1f %7.2fx\n", names[f], (long long)rows, (long long)cols, m * 1e3, m / base);
    }
    free(w);
    free(q);
    return 0;
}
