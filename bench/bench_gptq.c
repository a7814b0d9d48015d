/* Weight-quantization kernels on SmolLM2-135M's shapes (30 layers of q 576×576, k/v 192×576,
 * o 576×576, gate/up 1536×576, down 576×1536): RTN with and without the clip search, and GPTQ
 * (H⁻¹ preparation and the column sweep) from random positive definite Hessians.
 * usage: bench_gptq [layers (default 30)] [threads]. The calibration forward, which dominates a
 * real GPTQ run, is timed by rotq eval/quantize themselves (see bench/RESULTS.md). */
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cblas.h>

#include "quant/quant.h"
#include "core/clock.h"

static uint64_t rs = 88172645463325252ull;
static double nrand(void) {
    double u1, u2;
    rs ^= rs << 13; rs ^= rs >> 7; rs ^= rs << 17;
    u1 = (double)(rs >> 11) / 9007199254740992.0 + 1e-300;
    rs ^= rs << 13; rs ^= rs >> 7; rs ^= rs << 17;
    u2 = (double)(rs >> 11) / 9007199254740992.0;
    return sqrt(-2 * log(u1)) * cos(2 * M_PI * u2);
}

/* H = 2/N XᵀX of N correlated rows */
static double *make_h(int n, int N) {
    float *X = malloc(sizeof(float) * (size_t)N * n);
    for (int64_t i = 0; i < (int64_t)N * n; i++) X[i] = (float)(nrand() * (i % n < 8 ? 10 : 1));
    float *G = malloc(sizeof(float) * (size_t)n * n);
    cblas_ssyrk(CblasRowMajor, CblasUpper, CblasTrans, n, N, 2.0f / N, X, n, 0.0f, G, n);
    double *H = malloc(sizeof(double) * (size_t)n * n);
    for (int i = 0; i < n; i++)
        for (int j = 0; j < n; j++) H[i * n + j] = i <= j ? G[i * n + j] : G[j * n + i];
    free(X);
    free(G);
    return H;
}

int main(int argc, char **argv) {
    int layers = argc > 1 ? atoi(argv[1]) : 30;
    if (argc > 2) { omp_set_num_threads(atoi(argv[2])); openblas_set_num_threads(atoi(argv[2])); }
    struct { int rows, cols, count; const char *name; } lin[] = {
        {576, 576, 2, "q,o"}, {192, 576, 2, "k,v"}, {1536, 576, 2, "gate,up"}, {576, 1536, 1, "down"},
    };
    double t_rtn = 0, t_clip = 0, t_prep = 0, t_gptq = 0;
    int64_t params = 0;
    for (size_t k = 0; k < sizeof lin / sizeof lin[0]; k++) {
        int rows = lin[k].rows, cols = lin[k].cols;
        int64_t n = (int64_t)rows * cols;
        float *w = malloc(sizeof(float) * (size_t)n), *q = malloc(sizeof(float) * (size_t)n);
        for (int64_t i = 0; i < n; i++) w[i] = (float)(0.05 * nrand());
        double *H = make_h(cols, 4096), *Hc = malloc(sizeof(double) * (size_t)cols * cols);
        rotq_wq_format plain = rotq_wq_format_make(4, false, -1, false), clip = rotq_wq_format_make(4, false, -1, true);
        rotq_gptq_options o = rotq_gptq_defaults();
        /* one layer's worth of each, scaled by layers × count */
        double t0 = rotq_now_s();
        memcpy(q, w, sizeof(float) * (size_t)n);
        rotq_rtn_quantize(q, rows, cols, &plain, NULL);
        double t1 = rotq_now_s();
        memcpy(q, w, sizeof(float) * (size_t)n);
        rotq_rtn_quantize(q, rows, cols, &clip, NULL);
        double t2 = rotq_now_s();
        memcpy(Hc, H, sizeof(double) * (size_t)cols * cols);
        rotq_gptq_hinv h;
        if (rotq_gptq_prepare(Hc, cols, &o, &h) != ROTQ_OK) { fprintf(stderr, "%s\n", rotq_last_error()); return 1; }
        double t3 = rotq_now_s();
        memcpy(q, w, sizeof(float) * (size_t)n);
        rotq_gptq_quantize(q, rows, cols, &h, &clip, &o, NULL, NULL);
        double t4 = rotq_now_s();
        rotq_gptq_hinv_free(&h);
        int c = lin[k].count;
        /* q/k/v share one H⁻¹, gate/up another: prepare counts once per input */
        int preps = k == 1 ? 0 : k == 0 ? 2 : 1;
        printf("%-8s %4d x %4d: rtn %7.2f ms  rtn+clip %8.2f ms  prepare %7.2f ms  gptq+clip %8.2f ms\n", lin[k].name,
               rows, cols, 1e3 * (t1 - t0), 1e3 * (t2 - t1), 1e3 * (t3 - t2), 1e3 * (t4 - t3));
        t_rtn += c * (t1 - t0);
        t_clip += c * (t2 - t1);
        t_prep += preps * (t3 - t2);
        t_gptq += c * (t4 - t3);
        params += c * n;
        free(w); free(q); free(H); free(Hc);
    }
    printf("SmolLM2-135M shapes, %d layers, %lld weights, %d threads:\n", layers, (long long)(params * layers),
           omp_get_max_threads());
    printf("  RTN            %8.2f s\n", layers * t_rtn);
    printf("  RTN clip       %8.2f s\n", layers * t_clip);
    printf("  GPTQ prepare   %8.2f s (dampening, Cholesky, inverse, Cholesky)\n", layers * t_prep);
    printf("  GPTQ sweep     %8.2f s (clip search included)\n", layers * t_gptq);
    return 0;
}
