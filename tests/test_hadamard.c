/* Exact Hadamard matrices: H·Hᵀ = n·I (checked here with the test's own integer product) for every
 * order the library claims up to 256 and for the bases of real model widths; every construction
 * path is exercised; the searches behind the sequence tables are re-run on small sizes and their
 * output checked against the autocorrelation conditions computed here. */
#include <stdlib.h>
#include <string.h>

#include "rotate/rotate.h"
#include "testutil.h"

/* max |H·Hᵀ - n·I| and whether every entry is ±1. */
static int64_t gram_defect(const int8_t *H, int64_t n, bool *pm1) {
    *pm1 = true;
    for (int64_t i = 0; i < n * n; i++)
        if (H[i] != 1 && H[i] != -1) *pm1 = false;
    int64_t worst = 0;
    for (int64_t i = 0; i < n; i++)
        for (int64_t k = 0; k <= i; k++) {
            int64_t s = 0;
            for (int64_t j = 0; j < n; j++) s += (int64_t)H[i * n + j] * H[k * n + j];
            int64_t e = llabs(s - (i == k ? n : 0));
            if (e > worst) worst = e;
        }
    return worst;
}

static void check_order(int64_t n) {
    int8_t *H = NULL;
    rotq_status s = rotq_hadamard_build(n, &H);
    CHECK(s == ROTQ_OK, "build order %lld: %s", (long long)n, rotq_last_error());
    if (s != ROTQ_OK) return;
    bool pm1;
    int64_t d = gram_defect(H, n, &pm1);
    char desc[256];
    rotq_hadamard_describe(n, desc, sizeof desc);
    CHECK(pm1 && d == 0, "order %lld (%s): entries ±1 %d, max |HHᵀ - nI| = %lld", (long long)n, desc, pm1, (long long)d);
    CHECK(rotq_hadamard_defect(H, n) == d, "library defect agrees for %lld", (long long)n);
    free(H);
}

static void test_all_small_orders(void) {
    /* The requirement: 1, 2 and every multiple of 4 up to 256. */
    CHECK(rotq_hadamard_known(1) && rotq_hadamard_known(2), "orders 1 and 2");
    check_order(1);
    check_order(2);
    int missing = 0;
    for (int64_t n = 4; n <= 256; n += 4) {
        if (!rotq_hadamard_known(n)) {
            missing++;
            CHECK(false, "order %lld has no construction", (long long)n);
            continue;
        }
        check_order(n);
    }
    CHECK(missing == 0, "%d multiples of 4 up to 256 missing", missing);
    /* Orders that cannot exist must be refused, not faked. */
    int64_t impossible[] = {0, -4, 3, 6, 10, 12 * 3 + 2, 1000002};
    for (size_t i = 0; i < sizeof impossible / sizeof *impossible; i++)
        CHECK(!rotq_hadamard_known(impossible[i]), "order %lld reported known", (long long)impossible[i]);
    int8_t *H = (int8_t *)1;
    CHECK(rotq_hadamard_build(6, &H) == ROTQ_ERR_UNSUPPORTED && H == NULL, "order 6 refused");
}

/* Each construction (and GF(p^k) with k > 1) reached through a specific order. */
static void test_constructions(void) {
    struct { int64_t n; const char *want; } cases[] = {
        {12, "Paley I q=11"},
        {28, "Paley I q=3^3"},       /* GF(27) */
        {244, "Paley I q=3^5"},      /* GF(243) */
        {52, "Paley II q=5^2"},      /* GF(25) */
        {100, "Paley II q=7^2"},     /* GF(49) */
        {76, "Paley II q=37"},
        {144, "twin prime powers 11·13"},
        {324, "twin prime powers 17·19"},
        {92, "Goethals–Seidel"},
        {156, "Goethals–Seidel"},
        {172, "Goethals–Seidel"},
        {188, "Goethals–Seidel"},
        {236, "Goethals–Seidel"},
        {64, "Sylvester 2^6"},
        {4864, "Paley II q=37 ⊗ Sylvester 2^6"}, /* the example */
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        char d[256];
        CHECK(rotq_hadamard_describe(cases[i].n, d, sizeof d), "describe %lld", (long long)cases[i].n);
        CHECK(strstr(d, cases[i].want) != NULL, "order %lld built as \"%s\", expected \"%s\"", (long long)cases[i].n, d,
              cases[i].want);
        if (cases[i].n <= 400) check_order(cases[i].n);
    }
    /* Bigger orders made only through the searched sequences and Kronecker products. */
    int64_t bigger[] = {376, 472, 368, 464};
    for (size_t i = 0; i < sizeof bigger / sizeof *bigger; i++) {
        CHECK(rotq_hadamard_known(bigger[i]), "order %lld", (long long)bigger[i]);
        check_order(bigger[i]);
    }
}

/* The widths of real models: n = K·2^m with an exact base of order K, verified here. */
static void test_model_sizes(void) {
    int64_t sizes[] = {576, 896, 1536, 2048, 3584, 4864, 5632, 8960, 11008, 13824, 14336, 18944, 27648, 28672, 29568};
    for (size_t i = 0; i < sizeof sizes / sizeof *sizes; i++) {
        int64_t n = sizes[i], K = 0;
        int32_t m = -1;
        bool ok = rotq_hadamard_split(n, &K, &m);
        CHECK(ok && K << m == n, "split %lld -> K=%lld m=%d", (long long)n, (long long)K, m);
        if (!ok) continue;
        CHECK(K == 1 || K % 4 == 0, "base order %lld", (long long)K);
        if (K > 1) check_order(K);
    }
    int64_t K;
    int32_t m;
    CHECK(rotq_hadamard_split(29568, &K, &m) && K == 924 && m == 5, "29568 = 924·32 (K=%lld)", (long long)K);
    CHECK(rotq_hadamard_split(18944, &K, &m) && K == 148 && m == 7, "18944 = 148·128 (K=%lld)", (long long)K);
    CHECK(!rotq_hadamard_split(4 * 3 * 3 * 3 * 3 * 3 * 5 + 2, &K, &m), "odd-times-2 sizes have no split");
}

/* Orders the docs list as unknown really are refused, and the listing is consistent. */
static void test_unknown_listing(void) {
    int64_t list[512];
    int64_t c = rotq_hadamard_unknown_orders(1024, list, 512);
    CHECK(c >= 0 && c < 256, "unknown count %lld", (long long)c);
    for (int64_t i = 0; i < c && i < 512; i++) {
        CHECK(list[i] > 256, "order %lld ≤ 256 listed unknown", (long long)list[i]);
        CHECK(!rotq_hadamard_known(list[i]), "listed %lld is known", (long long)list[i]);
    }
}

/* Σ_q Σ_i x_q[i]·x_q[(i+s) mod t] for 0 < s < t: how many shifts are not zero. */
static int periodic_failures(const int8_t *x, int32_t t) {
    int bad = 0;
    for (int32_t sh = 1; sh < t; sh++) {
        int sum = 0;
        for (int q = 0; q < 4; q++)
            for (int32_t i = 0; i < t; i++) sum += x[q * t + i] * x[q * t + (i + sh) % t];
        if (sum) bad++;
    }
    return bad;
}

/* N_X + N_Y + 2N_Z + 2N_W (aperiodic) for 0 < s < n: how many shifts are not zero. */
static int turyn_failures(const int8_t *x, int32_t n) {
    const int8_t *X = x, *Y = x + n, *Z = x + 2 * n, *W = x + 3 * n;
    int bad = 0;
    for (int32_t sh = 1; sh < n; sh++) {
        int sum = 0;
        for (int32_t i = 0; i + sh < n; i++) sum += X[i] * X[i + sh] + Y[i] * Y[i + sh] + 2 * Z[i] * Z[i + sh];
        for (int32_t i = 0; i + sh < n - 1; i++) sum += 2 * W[i] * W[i + sh];
        if (sum) bad++;
    }
    return bad;
}

static void test_gs_search(void) {
    struct { int32_t t, h; } cases[] = {{5, 1}, {7, 1}, {9, 1}, {11, 1}, {13, 1}, {31, 5}, {39, 16}};
    for (size_t k = 0; k < sizeof cases / sizeof *cases; k++) {
        int32_t t = cases[k].t, h = cases[k].h;
        int8_t *x = malloc((size_t)(4 * t));
        rotq_status s = rotq_search_gs_quadruple(t, h, 1234 + k, 200000000, x);
        CHECK(s == ROTQ_OK, "gs search t=%d h=%d: %s", t, h, rotq_last_error());
        if (s == ROTQ_OK) {
            CHECK(periodic_failures(x, t) == 0, "gs quadruple t=%d fails", t);
            int off_orbit = 0;
            for (int q = 0; q < 4; q++)
                for (int32_t i = 0; i < t; i++) off_orbit += x[q * t + i] != x[q * t + (int32_t)((int64_t)i * h % t)];
            CHECK(off_orbit == 0, "t=%d: %d entries break the multiplier symmetry", t, off_orbit);
        }
        free(x);
    }
    int8_t buf[256];
    CHECK(rotq_search_gs_quadruple(31, 1, 1, 10, buf) == ROTQ_ERR_NOT_FOUND, "budget exhaustion reported");
    CHECK(rotq_search_gs_quadruple(30, 5, 1, 10, buf) == ROTQ_ERR_ARG, "multiplier sharing a factor with t refused");
}

static void test_turyn_search(void) {
    int32_t ns[] = {4, 6, 8, 10};
    for (size_t k = 0; k < sizeof ns / sizeof *ns; k++) {
        int32_t n = ns[k];
        int8_t *x = malloc((size_t)(4 * n - 1));
        rotq_status s = rotq_search_turyn(n, 99 + k, 200000000, x);
        CHECK(s == ROTQ_OK, "turyn search n=%d: %s", n, rotq_last_error());
        if (s == ROTQ_OK) CHECK(turyn_failures(x, n) == 0, "TT(%d) fails", n);
        free(x);
    }
    int8_t buf[256];
    CHECK(rotq_search_turyn(1, 1, 10, buf) == ROTQ_ERR_ARG, "bad length refused");
}

/* The tables satisfy their conditions, and the cheap entries are exactly what the recorded search
 * call produces again (provenance). */
static void test_tables(void) {
    int32_t t, h, n;
    uint64_t seed;
    int entries = 0;
    for (int32_t i = 0; rotq_hadamard_table_gs(i, &t, &h, &seed, NULL); i++, entries++) {
        int8_t *x = malloc((size_t)(4 * t)), *y = malloc((size_t)(4 * t));
        rotq_hadamard_table_gs(i, &t, &h, &seed, x);
        CHECK(periodic_failures(x, t) == 0, "GS table t=%d fails its condition", t);
        CHECK(rotq_hadamard_known(4 * t), "order %d from the GS table", 4 * t);
        if (t > 64) check_order(4 * t); /* the orders ≤ 256 were built above */
        if (t <= 43) {
            CHECK(rotq_search_gs_quadruple(t, h, seed, 100000000, y) == ROTQ_OK && memcmp(x, y, (size_t)(4 * t)) == 0,
                  "GS table t=%d is not what its search (h=%d, seed=%llu) gives", t, h, (unsigned long long)seed);
        }
        free(x);
        free(y);
    }
    for (int32_t i = 0; rotq_hadamard_table_turyn(i, &n, &seed, NULL); i++, entries++) {
        int8_t *x = malloc((size_t)(4 * n)), *y = malloc((size_t)(4 * n));
        rotq_hadamard_table_turyn(i, &n, &seed, x);
        CHECK(turyn_failures(x, n) == 0, "TT(%d) table entry fails its condition", n);
        CHECK(rotq_hadamard_known(4 * (3 * n - 1)), "order %d from TT(%d)", 4 * (3 * n - 1), n);
        if (n <= 10) {
            CHECK(rotq_search_turyn(n, seed, 100000000, y) == ROTQ_OK && memcmp(x, y, (size_t)(4 * n - 1)) == 0,
                  "TT(%d) table entry is not what its search gives", n);
        }
        free(x);
        free(y);
    }
    CHECK(entries >= 6, "only %d table entries", entries);
}

int main(void) {
    test_all_small_orders();
    test_constructions();
    test_model_sizes();
    test_unknown_listing();
    test_gs_search();
    test_turyn_search();
    test_tables();
    return tu_finish("test_hadamard");
}
