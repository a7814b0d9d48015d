/* The fast Hadamard rotation equals the dense product x·R, with R built here from its definition
 * R[a·M+b][c·M+d] = s[a·M+b]·H_K[a][c]·H_M[b][d]/√n (H_M from the test's own Sylvester recursion,
 * H_K the library's base, verified Hadamard by test_hadamard). Every base order K up to 256 and
 * several m, every available kernel (scalar, AVX2), forward and inverse, float and double. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "rotate/rotate.h"
#include "testutil.h"

static uint64_t lcg = 88172645463325252ULL;
static double urand(void) { /* xorshift, independent of the library's generator */
    lcg ^= lcg << 13;
    lcg ^= lcg >> 7;
    lcg ^= lcg << 17;
    return (double)(lcg >> 11) / 9007199254740992.0 * 2.0 - 1.0;
}

static double *dense_reference(const rotq_rotation *R) {
    int64_t n = R->n, K = R->K, M = n / K;
    int8_t *HM = malloc((size_t)(M * M));
    HM[0] = 1;
    for (int64_t s = 1; s < M; s *= 2)
        for (int64_t i = 0; i < s; i++)
            for (int64_t j = 0; j < s; j++) {
                HM[i * M + j + s] = HM[i * M + j];
                HM[(i + s) * M + j] = HM[i * M + j];
                HM[(i + s) * M + j + s] = (int8_t)-HM[i * M + j];
            }
    double *D = malloc(sizeof(double) * (size_t)(n * n));
    double sc = 1.0 / sqrt((double)n);
    for (int64_t a = 0; a < K; a++)
        for (int64_t b = 0; b < M; b++)
            for (int64_t c = 0; c < K; c++)
                for (int64_t d = 0; d < M; d++)
                    D[(a * M + b) * n + c * M + d] = R->signs[a * M + b] * R->base[a * K + c] * HM[b * M + d] * sc;
    free(HM);
    return D;
}

/* ‖got - want‖ / ‖want‖ over `rows` rows, want = x·D (or x·Dᵀ). */
static double rel_err_f32(const float *x, const float *got, const double *D, int64_t n, int64_t rows, bool inverse) {
    double num = 0, den = 0;
    for (int64_t r = 0; r < rows; r++)
        for (int64_t j = 0; j < n; j++) {
            double w = 0;
            for (int64_t i = 0; i < n; i++) w += (double)x[r * n + i] * (inverse ? D[j * n + i] : D[i * n + j]);
            double e = got[r * n + j] - w;
            num += e * e;
            den += w * w;
        }
    return sqrt(num / den);
}

static double rel_err_f64(const double *x, const double *got, const double *D, int64_t n, int64_t rows, bool inverse) {
    double num = 0, den = 0;
    for (int64_t r = 0; r < rows; r++)
        for (int64_t j = 0; j < n; j++) {
            double w = 0;
            for (int64_t i = 0; i < n; i++) w += x[r * n + i] * (inverse ? D[j * n + i] : D[i * n + j]);
            double e = got[r * n + j] - w;
            num += e * e;
            den += w * w;
        }
    return sqrt(num / den);
}

static rotq_isa isas[2];
static int n_isas;

static void check_size(int64_t n, bool signs, int64_t rows) {
    rotq_rotation *R = NULL;
    rotq_status s = rotq_rotation_hadamard(n, signs, 7 + (uint64_t)n, &R);
    CHECK(s == ROTQ_OK, "rotation %lld: %s", (long long)n, rotq_last_error());
    if (s != ROTQ_OK) return;
    double *D = dense_reference(R);
    /* the library's own dense form must be the same matrix */
    double *L = malloc(sizeof(double) * (size_t)(n * n));
    rotq_rotation_to_dense_f64(R, L);
    CHECK(memcmp(L, D, sizeof(double) * (size_t)(n * n)) == 0, "to_dense_f64 differs from the definition (n=%lld)", (long long)n);
    free(L);
    float *x = malloc(sizeof(float) * (size_t)(rows * n)), *y = malloc(sizeof(float) * (size_t)(rows * n));
    double *xd = malloc(sizeof(double) * (size_t)(rows * n)), *yd = malloc(sizeof(double) * (size_t)(rows * n));
    for (int64_t i = 0; i < rows * n; i++) xd[i] = x[i] = (float)urand();
    for (int k = 0; k < n_isas; k++) {
        rotq_fwht_set_isa(isas[k]);
        for (int inv = 0; inv < 2; inv++) {
            memcpy(y, x, sizeof(float) * (size_t)(rows * n));
            CHECK(rotq_rotation_apply_rows(R, y, rows, inv) == ROTQ_OK, "apply");
            double e = rel_err_f32(x, y, D, n, rows, inv);
            CHECK(e < 1e-6, "n=%lld K=%lld m=%d %s %s: relative error %.3g", (long long)n, (long long)R->K, R->m,
                  rotq_isa_name(isas[k]), inv ? "inverse" : "forward", e);
        }
    }
    rotq_fwht_set_isa(ROTQ_ISA_AUTO);
    for (int inv = 0; inv < 2; inv++) {
        memcpy(yd, xd, sizeof(double) * (size_t)(rows * n));
        rotq_rotation_apply_rows_f64(R, yd, rows, inv);
        double e = rel_err_f64(xd, yd, D, n, rows, inv);
        CHECK(e < 1e-13, "n=%lld double %s: relative error %.3g", (long long)n, inv ? "inverse" : "forward", e);
    }
    free(x); free(y); free(xd); free(yd); free(D);
    rotq_rotation_free(R);
}

static void test_every_base(void) {
    /* every K that is the base of some n (non-powers of two ≤ 256) with m ∈ {0, 1, 3, 4, 5, 6}, plus K
     * of real model widths; n kept ≤ 2048 so the dense reference stays cheap */
    int cases = 0;
    for (int64_t K = 12; K <= 256; K += 4) {
        if ((K & (K - 1)) == 0) continue;
        int64_t k2;
        int32_t m2;
        if (!rotq_hadamard_split(K, &k2, &m2) || k2 != K) continue; /* e.g. 24 = 12·2: base 12 */
        int32_t ms[] = {0, 1, 3, 4, 5, 6};
        for (int i = 0; i < 6; i++) {
            int64_t n = K << ms[i];
            if (n > 2048) continue;
            check_size(n, (i % 2) == 0, n <= 1024 ? 3 : 1);
            cases++;
        }
    }
    CHECK(cases >= 100, "only %d base/m cases", cases);
    int64_t model_bases[] = {36 * 16, 28 * 32, 12 * 128, 76 * 8, 44 * 8, 140 * 8, 148 * 8, 924};
    for (size_t i = 0; i < sizeof model_bases / sizeof *model_bases; i++) check_size(model_bases[i], true, 1);
}

static void test_powers_of_two(void) {
    for (int32_t m = 0; m <= 12; m++) check_size(INT64_C(1) << m, m % 2 == 1, m <= 10 ? 3 : 1);
}

/* Above the dense reference's reach: kernels agree with each other and with the double path, the
 * inverse undoes the forward, and norms are kept. Batches big enough for the OpenMP path. */
static void test_large_and_batches(void) {
    int64_t sizes[] = {16384, 32768, 18944, 28672, 29568};
    for (size_t k = 0; k < sizeof sizes / sizeof *sizes; k++) {
        int64_t n = sizes[k], rows = 4;
        rotq_rotation *R = NULL;
        if (rotq_rotation_hadamard(n, true, 5, &R) != ROTQ_OK) { CHECK(false, "rotation %lld", (long long)n); continue; }
        float *x = malloc(sizeof(float) * (size_t)(rows * n)), *y = malloc(sizeof(float) * (size_t)(rows * n));
        double *yd = malloc(sizeof(double) * (size_t)(rows * n));
        for (int64_t i = 0; i < rows * n; i++) { x[i] = (float)urand(); yd[i] = x[i]; }
        rotq_rotation_apply_rows_f64(R, yd, rows, false);
        for (int k2 = 0; k2 < n_isas; k2++) {
            rotq_fwht_set_isa(isas[k2]);
            memcpy(y, x, sizeof(float) * (size_t)(rows * n));
            rotq_rotation_apply_rows(R, y, rows, false);
            double num = 0, den = 0, nx = 0, ny = 0;
            for (int64_t i = 0; i < rows * n; i++) {
                num += (y[i] - yd[i]) * (y[i] - yd[i]);
                den += yd[i] * yd[i];
                nx += (double)x[i] * x[i];
                ny += (double)y[i] * y[i];
            }
            CHECK(sqrt(num / den) < 1e-6, "n=%lld %s vs double: %.3g", (long long)n, rotq_isa_name(isas[k2]), sqrt(num / den));
            CHECK(fabs(ny / nx - 1) < 1e-5, "n=%lld norm ratio %.8f", (long long)n, ny / nx);
            rotq_rotation_apply_rows(R, y, rows, true);
            double back = 0;
            for (int64_t i = 0; i < rows * n; i++) back = fmax(back, fabs(y[i] - x[i]));
            CHECK(back < 1e-5, "n=%lld %s inverse∘forward max error %.3g", (long long)n, rotq_isa_name(isas[k2]), back);
        }
        rotq_fwht_set_isa(ROTQ_ISA_AUTO);
        free(x); free(y); free(yd);
        rotq_rotation_free(R);
    }
    /* a batch large enough for the threaded path equals row-by-row application */
    int64_t n = 1536, rows = 200;
    rotq_rotation *R = NULL;
    rotq_rotation_hadamard(n, true, 11, &R);
    float *a = malloc(sizeof(float) * (size_t)(rows * n)), *b = malloc(sizeof(float) * (size_t)(rows * n));
    for (int64_t i = 0; i < rows * n; i++) a[i] = b[i] = (float)urand();
    rotq_rotation_apply_rows(R, a, rows, false);
    for (int64_t r = 0; r < rows; r++) rotq_rotation_apply_rows(R, b + r * n, 1, false);
    CHECK(memcmp(a, b, sizeof(float) * (size_t)(rows * n)) == 0, "batched and per-row results differ");
    free(a); free(b);
    rotq_rotation_free(R);
}

/* A dense rotation goes through BLAS; same contract. */
static void test_dense_apply(void) {
    int64_t n = 40, rows = 5;
    rotq_rotation *R = NULL;
    CHECK(rotq_rotation_random_orthogonal(n, 3, &R) == ROTQ_OK, "random orthogonal");
    float *x = malloc(sizeof(float) * (size_t)(rows * n)), *y = malloc(sizeof(float) * (size_t)(rows * n));
    for (int64_t i = 0; i < rows * n; i++) x[i] = (float)urand();
    for (int inv = 0; inv < 2; inv++) {
        memcpy(y, x, sizeof(float) * (size_t)(rows * n));
        rotq_rotation_apply_rows(R, y, rows, inv);
        CHECK(rel_err_f32(x, y, R->dense, n, rows, inv) < 1e-6, "dense apply %s", inv ? "inverse" : "forward");
    }
    free(x); free(y);
    rotq_rotation_free(R);
}

static void test_isa_switch(void) {
    CHECK(rotq_fwht_set_isa(ROTQ_ISA_SCALAR) == ROTQ_OK && rotq_fwht_isa() == ROTQ_ISA_SCALAR, "force scalar");
    rotq_fwht_set_isa(ROTQ_ISA_AUTO);
    CHECK(rotq_fwht_set_isa(ROTQ_ISA_AVX512) == ROTQ_ERR_UNSUPPORTED, "no AVX-512 kernel is built");
    float f[8] = {1, 2, 3, 4, 5, 6, 7, 8};
    rotq_fwht_f32(f, 3); /* first output is the sum; H_8 row 7 = (+,-,-,+,-,+,+,-) */
    CHECK(f[0] == 36 && f[7] == 1 - 2 - 3 + 4 - 5 + 6 + 7 - 8, "fwht of 1..8: %g %g", f[0], f[7]);
}

int main(void) {
    isas[n_isas++] = ROTQ_ISA_SCALAR;
    if (rotq_fwht_set_isa(ROTQ_ISA_AVX2) == ROTQ_OK) isas[n_isas++] = ROTQ_ISA_AVX2;
    else fprintf(stderr, "note: this CPU has no AVX2+FMA; only the scalar kernel is tested\n");
    rotq_fwht_set_isa(ROTQ_ISA_AUTO);
    test_isa_switch();
    test_powers_of_two();
    test_every_base();
    test_large_and_batches();
    test_dense_apply();
    return tu_finish("test_fwht");
}
