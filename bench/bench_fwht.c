/* Throughput of the fast Hadamard rotation (x ← x·R on a batch of rows, in place) against a memcpy
 * of the same buffer and against the same rotation as a dense OpenBLAS sgemm.
 *
 * usage: bench_fwht [--threads T] [--rows R] [--reps N] [--quick] [--no-sgemm]
 * GB/s counts the bytes of the rows processed (rows·n·4) per second, for all three. memcpy copies
 * the buffer into a second one with the same threads (OpenMP over rows). sgemm runs where the n×n
 * matrix fits comfortably (n ≤ 8192). Transform and memcpy are timed in interleaved rounds (at least
 * N and 0.5 s, at most 60) and the best round of each is kept; sgemm: best of N+1 (2 for n ≥ 4096).
 */
#include <cblas.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "rotate/rotate.h"
#include "core/clock.h"

static void cpu_model(char *buf, size_t size) {
    snprintf(buf, size, "unknown");
    FILE *f = fopen("/proc/cpuinfo", "r");
    if (!f) return;
    char line[512];
    while (fgets(line, sizeof line, f))
        if (strncmp(line, "model name", 10) == 0) {
            char *p = strchr(line, ':');
            if (p) {
                snprintf(buf, size, "%s", p + 2);
                buf[strcspn(buf, "\n")] = 0;
            }
            break;
        }
    fclose(f);
}

int main(int argc, char **argv) {
    int threads = 2, reps = 3;
    int64_t max_rows = 4096;
    int quick = 0, sgemm = 1;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--threads") && i + 1 < argc) threads = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--rows") && i + 1 < argc) max_rows = atoll(argv[++i]);
        else if (!strcmp(argv[i], "--reps") && i + 1 < argc) reps = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--quick")) quick = 1;
        else if (!strcmp(argv[i], "--no-sgemm")) sgemm = 0;
        else { fprintf(stderr, "usage: bench_fwht [--threads T] [--rows R] [--reps N] [--quick] [--no-sgemm]\n"); return 2; }
    }
    omp_set_num_threads(threads);
    openblas_set_num_threads(threads);
    char model[256];
    cpu_model(model, sizeof model);
    printf("# bench_fwht: %s, %d threads, kernel %s, best of >= %d rounds\n", model, threads, rotq_isa_name(rotq_fwht_isa()), reps);
    printf("# buffer cap 256 MiB per operand: rows = min(%lld, 2^26 / n)\n", (long long)max_rows);
    printf("%-6s %-5s %-3s %-5s | %9s %8s | %8s %6s | %9s %8s %8s\n", "n", "K", "m", "rows", "fwht ms", "GB/s",
           "memcpy", "ratio", "sgemm ms", "GB/s", "speedup");
    int64_t sizes[] = {64, 128, 256, 512, 1024, 2048, 4096, 8192, 16384, 32768,
                       576, 896, 1536, 4864, 5632, 8960, 14336, 18944, 28672};
    int n_sizes = quick ? 7 : (int)(sizeof sizes / sizeof *sizes);
    for (int si = 0; si < n_sizes; si++) {
        int64_t n = sizes[si];
        int64_t rows = max_rows;
        if (rows * n > (INT64_C(1) << 26)) rows = (INT64_C(1) << 26) / n;
        size_t bytes = sizeof(float) * (size_t)(rows * n);
        rotq_rotation *R = NULL;
        if (rotq_rotation_hadamard(n, true, 1, &R) != ROTQ_OK) {
            printf("%-6lld: %s\n", (long long)n, rotq_last_error());
            continue;
        }
        float *x = aligned_alloc(64, bytes), *y = aligned_alloc(64, bytes);
        if (!x || !y) { fprintf(stderr, "out of memory at n=%lld\n", (long long)n); return 1; }
#pragma omp parallel for schedule(static)
        for (int64_t r = 0; r < rows; r++)
            for (int64_t i = 0; i < n; i++) { x[r * n + i] = (float)((r * 31 + i * 17) % 101) * 0.01f - 0.5f; y[r * n + i] = 0; }
        double best_f = 1e30, best_m = 1e30, best_s = 1e30;
        rotq_rotation_apply_rows(R, x, rows, false); /* warm-up: pages, caches, threads */
        /* Interleaved rounds (transform, then memcpy) so both see the same machine; at least `reps`
         * rounds and 0.5 s, at most 60: short figures need many tries on a shared machine. */
        double spent = 0;
        for (int k = 0; k < 60 && (k < reps || spent < 0.5); k++) {
            double t0 = rotq_now_s();
            rotq_rotation_apply_rows(R, x, rows, k % 2 == 1);
            double t1 = rotq_now_s();
#pragma omp parallel for schedule(static)
            for (int64_t r = 0; r < rows; r++) memcpy(y + r * n, x + r * n, sizeof(float) * (size_t)n);
            double t2 = rotq_now_s();
            if (t1 - t0 < best_f) best_f = t1 - t0;
            if (t2 - t1 < best_m) best_m = t2 - t1;
            spent += t2 - t0;
        }
        if (sgemm && n <= 8192) {
            float *Rf = malloc(sizeof(float) * (size_t)(n * n));
            double *Rd = malloc(sizeof(double) * (size_t)(n * n));
            rotq_rotation_to_dense_f64(R, Rd);
            for (int64_t i = 0; i < n * n; i++) Rf[i] = (float)Rd[i];
            free(Rd);
            for (int k = 0; k < (n >= 4096 ? 2 : reps + 1); k++) {
                double t0 = rotq_now_s();
                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)rows, (int)n, (int)n, 1.0f, x, (int)n, Rf, (int)n,
                            0.0f, y, (int)n);
                double t1 = rotq_now_s();
                if (k > 0 && t1 - t0 < best_s) best_s = t1 - t0;
            }
            free(Rf);
        }
        double gb = (double)bytes / 1e9;
        printf("%-6lld %-5lld %-3d %-5lld | %9.3f %8.2f | %8.2f %6.2f |", (long long)n, (long long)R->K, R->m, (long long)rows,
               best_f * 1e3, gb / best_f, gb / best_m, (gb / best_f) / (gb / best_m));
        if (best_s < 1e29) printf(" %9.2f %8.2f %7.1fx\n", best_s * 1e3, gb / best_s, best_s / best_f);
        else printf(" %9s %8s %8s\n", "-", "-", "-");
        fflush(stdout);
        free(x);
        free(y);
        rotq_rotation_free(R);
    }
    return 0;
}
