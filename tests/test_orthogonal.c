/* Random numbers and random orthogonal matrices: the generator matches the test's own
 * implementation of splitmix64, xoshiro256** and the polar method; Q is orthogonal to 1e-10 and is exactly the
 * Q-factor (positive diagonal R) of the Gaussian matrix the test regenerates itself; the same seed
 * gives the same bytes (twice, and with 1 or 2 threads); files round-trip and corrupt ones are
 * refused; sizes without an exact Hadamard fall back to a random orthogonal matrix. */
#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

#include "rotate/rotate.h"
#include "testutil.h"

/* ---- the test's own generator (written from the published algorithm descriptions) ---- */
typedef struct { uint64_t s[4]; } ref_rng;
static uint64_t ref_splitmix(uint64_t *x) {
    uint64_t z = (*x += 0x9E3779B97F4A7C15ULL);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
}
static void ref_seed(ref_rng *r, uint64_t seed) { for (int i = 0; i < 4; i++) r->s[i] = ref_splitmix(&seed); }
static uint64_t ref_rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }
static uint64_t ref_next(ref_rng *r) {
    const uint64_t out = ref_rotl(r->s[1] * 5, 7) * 9, t = r->s[1] << 17;
    r->s[2] ^= r->s[0]; r->s[3] ^= r->s[1]; r->s[1] ^= r->s[2]; r->s[0] ^= r->s[3];
    r->s[2] ^= t; r->s[3] = ref_rotl(r->s[3], 45);
    return out;
}
/* Normals in pairs by the polar method, with libm's log. */
static void ref_normals(uint64_t seed, double *z, int64_t count) {
    ref_rng r;
    ref_seed(&r, seed);
    for (int64_t i = 0; i < count;) {
        double u = (double)(ref_next(&r) >> 11) / 9007199254740992.0 * 2 - 1;
        double v = (double)(ref_next(&r) >> 11) / 9007199254740992.0 * 2 - 1;
        double s = u * u + v * v;
        if (s >= 1 || s == 0) continue;
        double f = sqrt(-2 * log(s) / s);
        z[i++] = u * f;
        if (i < count) z[i++] = v * f;
    }
}

static void test_rng(void) {
    ref_rng a;
    rotq_rng b;
    ref_seed(&a, 20261123);
    rotq_rng_seed(&b, 20261123);
    int diff = 0;
    for (int i = 0; i < 10000; i++) diff += ref_next(&a) != rotq_rng_next(&b);
    CHECK(diff == 0, "%d of 10000 xoshiro256** outputs differ", diff);
    /* the libm-free logarithm: within 2 ulp of libm's over many magnitudes */
    double worst = 0;
    for (int i = 1; i < 200000; i++) {
        double x = ldexp(1.0 + i / 200000.0, (i % 80) - 60);
        double e = fabs(rotq_rng_log(x) - log(x)) / fmax(fabs(log(x)), 1e-300);
        if (e > worst) worst = e;
    }
    CHECK(worst < 4.5e-16, "rotq_rng_log relative error %.3g", worst);
    CHECK(rotq_rng_log(1.0) == 0.0, "log 1 = 0");
    /* normals: same stream as the reference polar method (up to libm's last bit) */
    double z[2000];
    ref_normals(77, z, 2000);
    rotq_rng r;
    rotq_rng_seed(&r, 77);
    double m = 0, v = 0, dev = 0;
    for (int i = 0; i < 2000; i++) {
        double g = rotq_rng_normal(&r);
        dev = fmax(dev, fabs(g - z[i]));
        m += g;
        v += g * g;
    }
    CHECK(dev < 1e-13, "normals differ from the reference polar method by %.3g", dev);
    rotq_rng_seed(&r, 5);
    m = v = 0;
    for (int i = 0; i < 200000; i++) { double g = rotq_rng_normal(&r); m += g; v += g * g; }
    m /= 200000; v = v / 200000 - m * m;
    CHECK(fabs(m) < 0.01 && fabs(v - 1) < 0.02, "normal mean %.4f variance %.4f", m, v);
    int8_t s[1000];
    rotq_rng_signs(9, s, 1000);
    ref_seed(&a, 9);
    diff = 0;
    int plus = 0;
    for (int i = 0; i < 1000; i++) { diff += s[i] != ((ref_next(&a) >> 63) ? -1 : 1); plus += s[i] > 0; }
    CHECK(diff == 0 && plus > 430 && plus < 570, "signs: %d differ, %d plus", diff, plus);
}

static uint64_t fnv1a(const void *p, size_t n) {
    const uint8_t *b = p;
    uint64_t h = 1469598103934665603ULL;
    for (size_t i = 0; i < n; i++) { h ^= b[i]; h *= 1099511628211ULL; }
    return h;
}

static void test_random_orthogonal(void) {
    int64_t sizes[] = {1, 2, 17, 64, 257};
    for (size_t k = 0; k < sizeof sizes / sizeof *sizes; k++) {
        int64_t n = sizes[k];
        uint64_t seed = 1000 + k;
        rotq_rotation *Q = NULL;
        CHECK(rotq_rotation_random_orthogonal(n, seed, &Q) == ROTQ_OK, "random orthogonal %lld: %s", (long long)n, rotq_last_error());
        if (!Q) continue;
        const double *q = Q->dense;
        double orth = 0;
        for (int64_t i = 0; i < n; i++)
            for (int64_t j = 0; j < n; j++) {
                double s = 0;
                for (int64_t l = 0; l < n; l++) s += q[l * n + i] * q[l * n + j];
                orth = fmax(orth, fabs(s - (i == j)));
            }
        CHECK(orth < 1e-10, "n=%lld ‖QᵀQ - I‖max = %.3g", (long long)n, orth);
        CHECK(fabs(rotq_orthogonality_error(q, n) - orth) < 1e-12, "library orthogonality error agrees");
        /* R = Qᵀ·G must be upper triangular with a positive diagonal: Q is G's unique Q-factor. */
        double *z = malloc(sizeof(double) * (size_t)(n * n));
        ref_normals(seed, z, n * n); /* G[i][j] = z[j·n + i] */
        double lower = 0, scale = 0;
        int nonpos = 0;
        for (int64_t kk = 0; kk < n; kk++)
            for (int64_t j = 0; j < n; j++) {
                double r = 0;
                for (int64_t i = 0; i < n; i++) r += q[i * n + kk] * z[j * n + i];
                scale = fmax(scale, fabs(r));
                if (kk > j) lower = fmax(lower, fabs(r));
                if (kk == j && !(r > 0)) nonpos++;
            }
        CHECK(lower < 1e-10 * scale && nonpos == 0, "n=%lld QᵀG lower part %.3g, %d non-positive diagonal", (long long)n,
              lower, nonpos);
        free(z);
        /* same seed → same bytes, whatever ran in between and however many threads */
        uint64_t h1 = fnv1a(q, sizeof(double) * (size_t)(n * n));
        rotq_rotation *other = NULL, *again = NULL;
        rotq_rotation_random_orthogonal(n + 3, seed, &other);
        int threads = omp_get_max_threads();
        omp_set_num_threads(threads > 1 ? 1 : 2);
        rotq_rotation_random_orthogonal(n, seed, &again);
        omp_set_num_threads(threads);
        CHECK(again && fnv1a(again->dense, sizeof(double) * (size_t)(n * n)) == h1, "n=%lld not byte-identical on regeneration",
              (long long)n);
        rotq_rotation *diff = NULL;
        rotq_rotation_random_orthogonal(n, seed + 1, &diff);
        if (n > 1) CHECK(diff && fnv1a(diff->dense, sizeof(double) * (size_t)(n * n)) != h1, "another seed, same matrix");
        rotq_rotation_free(other);
        rotq_rotation_free(again);
        rotq_rotation_free(diff);
        rotq_rotation_free(Q);
    }
    /* above 512 the column updates run on OpenMP threads: still the same bytes for 1 or 2 threads */
    {
        rotq_rotation *a = NULL, *b = NULL;
        int threads = omp_get_max_threads();
        omp_set_num_threads(1);
        rotq_rotation_random_orthogonal(520, 42, &a);
        omp_set_num_threads(2);
        rotq_rotation_random_orthogonal(520, 42, &b);
        omp_set_num_threads(threads);
        CHECK(a && b && memcmp(a->dense, b->dense, sizeof(double) * 520 * 520) == 0, "threaded QR is not byte-identical");
        CHECK(a && rotq_orthogonality_error(a->dense, 520) < 1e-10, "n=520 orthogonality");
        rotq_rotation_free(a);
        rotq_rotation_free(b);
    }
    /* Haar: the first column is g_0/‖g_0‖, so E[Q00] = 0 (a sign-biased QR would not give that) */
    double mean = 0;
    for (int s = 0; s < 400; s++) {
        rotq_rotation *Q = NULL;
        rotq_rotation_random_orthogonal(4, 50000 + s, &Q);
        mean += Q->dense[0] / 400;
        rotq_rotation_free(Q);
    }
    CHECK(fabs(mean) < 0.1, "mean Q00 %.3f", mean);
    rotq_rotation *Q = NULL;
    CHECK(rotq_rotation_random_orthogonal(0, 1, &Q) != ROTQ_OK && !Q, "size 0 refused");
}

static void test_fallback(void) {
    int64_t sizes[] = {6, 10, 30};
    for (size_t k = 0; k < sizeof sizes / sizeof *sizes; k++) {
        bool fb = false;
        rotq_rotation *R = NULL;
        CHECK(rotq_rotation_hadamard(sizes[k], true, 1, &R) == ROTQ_ERR_UNSUPPORTED && !R, "no Hadamard of order %lld",
              (long long)sizes[k]);
        CHECK(rotq_rotation_for_size(sizes[k], 4, &fb, &R) == ROTQ_OK, "for_size %lld", (long long)sizes[k]);
        CHECK(R && fb && !R->exact && R->kind == ROTQ_ROT_DENSE, "fallback flagged for %lld", (long long)sizes[k]);
        if (R) CHECK(rotq_orthogonality_error(R->dense, R->n) < 1e-10, "fallback orthogonal");
        rotq_rotation_free(R);
    }
    int64_t unknown[4];
    if (rotq_hadamard_unknown_orders(2048, unknown, 4) > 0) {
        bool fb = false;
        rotq_rotation *R = NULL;
        CHECK(rotq_rotation_for_size(unknown[0], 4, &fb, &R) == ROTQ_OK && fb, "unknown multiple of 4 (%lld) falls back",
              (long long)unknown[0]);
        rotq_rotation_free(R);
    }
    bool fb = true;
    rotq_rotation *R = NULL;
    CHECK(rotq_rotation_for_size(1536, 4, &fb, &R) == ROTQ_OK && !fb && R->kind == ROTQ_ROT_HADAMARD && R->exact, "1536 exact");
    rotq_rotation_free(R);
}

/* Writes a one-tensor safetensors file by hand (the format users bring). */
static void write_st(const char *path, const char *name, const char *dtype, const char *shape, const void *data,
                     size_t bytes, int64_t off_end_delta, uint64_t hdr_len_override) {
    char hdr[512];
    int len = snprintf(hdr, sizeof hdr, "{\"%s\":{\"dtype\":\"%s\",\"shape\":%s,\"data_offsets\":[0,%lld]}}", name, dtype,
                       shape, (long long)bytes + (long long)off_end_delta);
    uint64_t hl = hdr_len_override ? hdr_len_override : (uint64_t)len;
    FILE *f = fopen(path, "wb");
    for (int i = 0; i < 8; i++) fputc((int)((hl >> (8 * i)) & 0xff), f);
    fwrite(hdr, 1, (size_t)len, f);
    fwrite(data, 1, bytes, f);
    fclose(f);
}

static void test_files(void) {
    char path[512];
    snprintf(path, sizeof path, "%s/r.safetensors", tu_tmpdir());
    /* Hadamard with signs: saved dense, reloaded in its fast form */
    rotq_rotation *H = NULL, *L = NULL;
    rotq_rotation_hadamard(96, true, 31, &H);
    rotq_dtype dts[2] = {ROTQ_F64, ROTQ_F32};
    for (int k = 0; k < 2; k++) {
        CHECK(rotq_rotation_save(H, path, dts[k]) == ROTQ_OK, "save: %s", rotq_last_error());
        CHECK(rotq_rotation_load(path, &L) == ROTQ_OK, "load: %s", rotq_last_error());
        CHECK(L && L->kind == ROTQ_ROT_HADAMARD && L->n == 96 && memcmp(L->signs, H->signs, 96) == 0,
              "Hadamard comes back in fast form (%s)", rotq_dtype_name(dts[k]));
        rotq_rotation_free(L);
        L = NULL;
    }
    /* random orthogonal: F64 exact, F32 to float precision */
    rotq_rotation *Q = NULL;
    rotq_rotation_random_orthogonal(50, 8, &Q);
    rotq_rotation_save(Q, path, ROTQ_F64);
    CHECK(rotq_rotation_load(path, &L) == ROTQ_OK && L->kind == ROTQ_ROT_DENSE &&
              memcmp(L->dense, Q->dense, sizeof(double) * 2500) == 0, "F64 round trip exact");
    rotq_rotation_free(L);
    rotq_rotation_save(Q, path, ROTQ_F32);
    CHECK(rotq_rotation_load(path, &L) == ROTQ_OK, "F32 load");
    double worst = 0;
    for (int i = 0; L && i < 2500; i++) worst = fmax(worst, fabs(L->dense[i] - Q->dense[i]));
    CHECK(worst < 1e-7, "F32 round trip error %.3g", worst);
    rotq_rotation_free(L);
    CHECK(rotq_rotation_save(Q, path, ROTQ_BF16) == ROTQ_ERR_UNSUPPORTED, "bf16 save refused");
    /* a user's file: any single tensor name, F32, a signed permutation */
    float P[16] = {0, 1, 0, 0, 0, 0, 0, -1, 1, 0, 0, 0, 0, 0, 1, 0};
    write_st(path, "R1", "F32", "[4,4]", P, sizeof P, 0, 0);
    CHECK(rotq_rotation_load(path, &L) == ROTQ_OK && L->n == 4 && L->dense[1] == 1 && L->dense[7] == -1, "user file: %s",
          rotq_last_error());
    rotq_rotation_free(L);
    L = NULL;
    /* corrupt or wrong files: refused with the right status, never a crash */
    float twoI[4] = {2, 0, 0, 2};
    write_st(path, "rotation", "F32", "[2,2]", twoI, sizeof twoI, 0, 0);
    CHECK(rotq_rotation_load(path, &L) == ROTQ_ERR_NUMERIC && !L, "non-orthogonal refused");
    float nan4[4] = {NAN, 0, 0, 1};
    write_st(path, "rotation", "F32", "[2,2]", nan4, sizeof nan4, 0, 0);
    CHECK(rotq_rotation_load(path, &L) == ROTQ_ERR_NUMERIC, "NaN refused");
    write_st(path, "rotation", "I32", "[2,2]", twoI, sizeof twoI, 0, 0);
    CHECK(rotq_rotation_load(path, &L) == ROTQ_ERR_UNSUPPORTED, "I32 refused");
    write_st(path, "rotation", "F32", "[1,4]", twoI, sizeof twoI, 0, 0);
    CHECK(rotq_rotation_load(path, &L) == ROTQ_ERR_FORMAT, "non-square refused");
    write_st(path, "rotation", "F32", "[2,2]", twoI, sizeof twoI, 16, 0);
    CHECK(rotq_rotation_load(path, &L) == ROTQ_ERR_FORMAT, "offsets past the end refused");
    write_st(path, "rotation", "F32", "[2,2]", twoI, sizeof twoI, 0, 1u << 30);
    CHECK(rotq_rotation_load(path, &L) == ROTQ_ERR_FORMAT, "huge header length refused");
    write_st(path, "rotation", "F32", "[2,2]", twoI, 3, 13, 0);
    CHECK(rotq_rotation_load(path, &L) == ROTQ_ERR_FORMAT, "truncated data refused");
    FILE *f = fopen(path, "wb");
    fputs("abc", f);
    fclose(f);
    CHECK(rotq_rotation_load(path, &L) == ROTQ_ERR_FORMAT, "3-byte file refused");
    snprintf(path, sizeof path, "%s/absent.safetensors", tu_tmpdir());
    CHECK(rotq_rotation_load(path, &L) == ROTQ_ERR_IO, "missing file: %s", rotq_last_error());
    double bad[4] = {1, 1, 0, 1};
    CHECK(rotq_rotation_from_dense(2, bad, 1e-8, &L) == ROTQ_ERR_NUMERIC && !L, "from_dense checks orthogonality");
    rotq_rotation_free(Q);
    rotq_rotation_free(H);
}

int main(void) {
    test_rng();
    test_random_orthogonal();
    test_fallback();
    test_files();
    return tu_finish("test_orthogonal");
}
