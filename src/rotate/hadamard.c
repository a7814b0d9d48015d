/* Exact Hadamard matrices, constructed (docs/hadamard.md lists the orders each method reaches).
 *
 *  - Sylvester: H_2M = [[H_M, H_M], [H_M, -H_M]].
 *  - Paley I:  q ≡ 3 (mod 4) a prime power, order q+1, from the quadratic character of GF(q).
 *  - Paley II: q ≡ 1 (mod 4) a prime power, order 2(q+1).
 *  - Twin prime powers q, q+2 (Stanton–Sprott difference set), order q(q+2)+1.
 *  - Goethals–Seidel array on four circulants of order t whose periodic autocorrelations sum to
 *    zero, order 4t. The circulants come from sequences found by rotq_search_gs_quadruple (constant
 *    on the orbits of a multiplier), or from Turyn-type sequences TT(n) (rotq_search_turyn) through
 *    base sequences and T-sequences of length t = 3n-1. Those searches ran once; their results are
 *    the tables below, with the arguments that reproduce them (test_hadamard re-runs the cheap ones).
 *  - Kronecker products of any of these.
 * GF(p^k) for k > 1 uses the first monic irreducible polynomial found by trial division.
 */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rotate/rotate.h"

/* ---- number theory ----------------------------------------------------------------------------- */

static bool prime_power(int64_t q, int64_t *p_out, int *k_out) {
    if (q < 2) return false;
    int64_t p = 0;
    for (int64_t d = 2; d * d <= q; d++)
        if (q % d == 0) { p = d; break; }
    if (p == 0) p = q;
    int k = 0;
    while (q % p == 0) { q /= p; k++; }
    if (q != 1) return false;
    if (p_out) *p_out = p;
    if (k_out) *k_out = k;
    return true;
}

static bool is_pow2(int64_t n) { return n > 0 && (n & (n - 1)) == 0; }
static int log2_exact(int64_t n) { int m = 0; while ((INT64_C(1) << m) < n) m++; return m; }

/* ---- finite fields GF(p^k): element = Σ digit_i·p^i, digit_i the coefficient of x^i ----------- */

#define GF_MAX_K 20

typedef struct gf {
    int64_t p, q;
    int k;
    int64_t poly[GF_MAX_K]; /* f(x) = x^k + Σ poly[i]·x^i, irreducible over GF(p) */
} gf;

/* Remainder of a (degree da, coefficients low first) modulo monic g (degree dg), mod p. */
static bool poly_divides(const int64_t *a, int da, const int64_t *g, int dg, int64_t p) {
    int64_t r[2 * GF_MAX_K + 1];
    memcpy(r, a, sizeof(int64_t) * (size_t)(da + 1));
    for (int d = da; d >= dg; d--) {
        int64_t c = r[d] % p;
        if (c == 0) continue;
        for (int i = 0; i <= dg; i++) r[d - dg + i] = ((r[d - dg + i] - c * g[i]) % p + p) % p;
    }
    for (int i = 0; i < dg; i++) if (r[i] % p) return false;
    return true;
}

static bool poly_irreducible(const int64_t *f, int k, int64_t p) {
    int64_t g[GF_MAX_K + 1];
    for (int d = 1; d <= k / 2; d++) {
        int64_t count = 1;
        for (int i = 0; i < d; i++) count *= p;
        for (int64_t c = 0; c < count; c++) {
            int64_t v = c;
            for (int i = 0; i < d; i++) { g[i] = v % p; v /= p; }
            g[d] = 1;
            if (poly_divides(f, k, g, d, p)) return false;
        }
    }
    return true;
}

static bool gf_init(gf *F, int64_t q) {
    int64_t p;
    int k;
    if (!prime_power(q, &p, &k) || k > GF_MAX_K) return false;
    F->p = p;
    F->q = q;
    F->k = k;
    if (k == 1) return true;
    int64_t f[GF_MAX_K + 1];
    f[k] = 1;
    for (int64_t c = 0; c < q; c++) {
        int64_t v = c;
        for (int i = 0; i < k; i++) { f[i] = v % p; v /= p; }
        if (f[0] == 0) continue;
        if (poly_irreducible(f, k, p)) {
            memcpy(F->poly, f, sizeof(int64_t) * (size_t)k);
            return true;
        }
    }
    return false; /* cannot happen: irreducible polynomials exist for every degree */
}

static int64_t gf_mul(const gf *F, int64_t a, int64_t b) {
    if (F->k == 1) return a * b % F->p;
    int64_t da[GF_MAX_K], db[GF_MAX_K], pr[2 * GF_MAX_K] = {0};
    for (int i = 0; i < F->k; i++) { da[i] = a % F->p; a /= F->p; db[i] = b % F->p; b /= F->p; }
    for (int i = 0; i < F->k; i++)
        for (int j = 0; j < F->k; j++) pr[i + j] = (pr[i + j] + da[i] * db[j]) % F->p;
    for (int d = 2 * F->k - 2; d >= F->k; d--) {
        int64_t c = pr[d];
        if (!c) continue;
        for (int i = 0; i < F->k; i++) pr[d - F->k + i] = ((pr[d - F->k + i] - c * F->poly[i]) % F->p + F->p) % F->p;
    }
    int64_t r = 0;
    for (int i = F->k - 1; i >= 0; i--) r = r * F->p + pr[i];
    return r;
}

static int64_t gf_sub(const gf *F, int64_t a, int64_t b) {
    if (F->k == 1) return (a - b + F->p) % F->p;
    int64_t r = 0, scale = 1;
    for (int i = 0; i < F->k; i++) {
        int64_t d = (a % F->p - b % F->p + F->p) % F->p;
        r += d * scale;
        scale *= F->p;
        a /= F->p;
        b /= F->p;
    }
    return r;
}

/* chi[x] = quadratic character of x (0, +1 square, -1 non-square). */
static int8_t *gf_chi(const gf *F) {
    int8_t *chi = malloc((size_t)F->q);
    if (!chi) return NULL;
    for (int64_t x = 0; x < F->q; x++) chi[x] = -1;
    for (int64_t x = 1; x < F->q; x++) chi[gf_mul(F, x, x)] = 1;
    chi[0] = 0;
    return chi;
}

/* q×q matrix Q[a][b] = chi(a - b). */
static int8_t *jacobsthal(int64_t q) {
    gf F;
    if (!gf_init(&F, q)) return NULL;
    int8_t *chi = gf_chi(&F);
    int8_t *Q = malloc((size_t)(q * q));
    if (!chi || !Q) { free(chi); free(Q); return NULL; }
    for (int64_t a = 0; a < q; a++)
        for (int64_t b = 0; b < q; b++) Q[a * q + b] = chi[gf_sub(&F, a, b)];
    free(chi);
    return Q;
}

/* ---- direct constructions (H is n·n, row-major) ------------------------------------------------ */

static void build_sylvester(int8_t *H, int64_t n) {
    H[0] = 1;
    for (int64_t s = 1; s < n; s *= 2)
        for (int64_t i = 0; i < s; i++)
            for (int64_t j = 0; j < s; j++) {
                int8_t v = H[i * n + j];
                H[i * n + j + s] = v;
                H[(i + s) * n + j] = v;
                H[(i + s) * n + j + s] = (int8_t)-v;
            }
}

/* Paley I: H = I + S, S = [[0, 1ᵀ], [-1, Q]] skew (chi(-1) = -1 when q ≡ 3 mod 4). */
static bool build_paley1(int8_t *H, int64_t q) {
    int8_t *Q = jacobsthal(q);
    if (!Q) return false;
    int64_t n = q + 1;
    for (int64_t i = 0; i < n; i++)
        for (int64_t j = 0; j < n; j++) {
            int s;
            if (i == 0) s = j == 0 ? 0 : 1;
            else if (j == 0) s = -1;
            else s = Q[(i - 1) * q + (j - 1)];
            H[i * n + j] = (int8_t)(s + (i == j));
        }
    free(Q);
    return true;
}

/* Paley II: C = [[0, 1ᵀ], [1, Q]] symmetric conference matrix; each 0 becomes [[1,-1],[-1,-1]],
 * each ±1 becomes ±[[1,1],[1,-1]]. */
static bool build_paley2(int8_t *H, int64_t q) {
    int8_t *Q = jacobsthal(q);
    if (!Q) return false;
    int64_t c = q + 1, n = 2 * c;
    for (int64_t i = 0; i < c; i++)
        for (int64_t j = 0; j < c; j++) {
            int s;
            if (i == 0) s = j == 0 ? 0 : 1;
            else if (j == 0) s = 1;
            else s = Q[(i - 1) * q + (j - 1)];
            int8_t *o = H + 2 * i * n + 2 * j;
            if (s == 0) { o[0] = 1; o[1] = -1; o[n] = -1; o[n + 1] = -1; }
            else { o[0] = (int8_t)s; o[1] = (int8_t)s; o[n] = (int8_t)s; o[n + 1] = (int8_t)-s; }
        }
    free(Q);
    return true;
}

/* Twin prime powers q1, q2 = q1+2: D = {(x,y): x,y ≠ 0, chi(x)chi(y) = 1} ∪ {(x, 0)} is a
 * (v, (v-1)/2, (v-3)/4) difference set in GF(q1)×GF(q2), v = q1·q2; H = [[1, 1ᵀ], [1, M]] with
 * M[g][h] = +1 when h - g ∈ D, else -1. */
static bool build_twin(int8_t *H, int64_t q1) {
    int64_t q2 = q1 + 2, v = q1 * q2, n = v + 1;
    gf F1, F2;
    if (!gf_init(&F1, q1) || !gf_init(&F2, q2)) return false;
    int8_t *c1 = gf_chi(&F1), *c2 = gf_chi(&F2);
    int8_t *inD = malloc((size_t)v);
    if (!c1 || !c2 || !inD) { free(c1); free(c2); free(inD); return false; }
    for (int64_t x = 0; x < q1; x++)
        for (int64_t y = 0; y < q2; y++) inD[x * q2 + y] = (y == 0) || (x != 0 && c1[x] * c2[y] == 1);
    for (int64_t i = 0; i < n; i++) { H[i] = 1; H[i * n] = 1; }
    for (int64_t g = 0; g < v; g++)
        for (int64_t h = 0; h < v; h++) {
            int64_t dx = gf_sub(&F1, h / q2, g / q2), dy = gf_sub(&F2, h % q2, g % q2);
            H[(g + 1) * n + (h + 1)] = inD[dx * q2 + dy] ? 1 : -1;
        }
    free(c1);
    free(c2);
    free(inD);
    return true;
}

/* Goethals–Seidel array on circulants A, B, C, D (first rows s[0..3], length t), R the reversal:
 *   [  A    BR   CR   DR  ]
 *   [ -BR   A    DᵀR -CᵀR ]
 *   [ -CR  -DᵀR  A    BᵀR ]
 *   [ -DR   CᵀR -BᵀR  A   ]
 * Circulant X[i][j] = x[(j-i) mod t]; (XR)[i][j] = x[(t-1-i-j) mod t]; (XᵀR)[i][j] = x[(i+j+1) mod t]. */
static void build_goethals_seidel(int8_t *H, const int8_t *const s[4], int64_t t) {
    static const int8_t blk_seq[4][4] = {{0, 1, 2, 3}, {1, 0, 3, 2}, {2, 3, 0, 1}, {3, 2, 1, 0}};
    static const int8_t blk_sign[4][4] = {{1, 1, 1, 1}, {-1, 1, 1, -1}, {-1, -1, 1, 1}, {-1, 1, -1, 1}};
    /* 0: circulant, 1: X·R, 2: Xᵀ·R */
    static const int8_t blk_form[4][4] = {{0, 1, 1, 1}, {1, 0, 2, 2}, {1, 2, 0, 2}, {1, 2, 2, 0}};
    int64_t n = 4 * t;
    for (int bi = 0; bi < 4; bi++)
        for (int bj = 0; bj < 4; bj++) {
            const int8_t *x = s[blk_seq[bi][bj]];
            int sign = blk_sign[bi][bj], form = blk_form[bi][bj];
            for (int64_t i = 0; i < t; i++)
                for (int64_t j = 0; j < t; j++) {
                    int64_t idx = form == 0 ? j - i : form == 1 ? t - 1 - i - j : i + j + 1;
                    idx = ((idx % t) + t) % t;
                    H[(bi * t + i) * n + bj * t + j] = (int8_t)(sign * x[idx]);
                }
        }
}

/* ---- searched sequence tables ------------------------------------------------------------------ */

/* Four ±1 sequences of length t whose periodic autocorrelations sum to zero, as hex: bit i of
 * sequence q (bit i%4 of digit i/4) set means -1. Each found by
 * rotq_search_gs_quadruple(t, multiplier, seed, ...): constant on the orbits of i ↦ i·multiplier. */
typedef struct gs_entry { int32_t t, multiplier; uint64_t seed; const char *hex[4]; } gs_entry;
static const gs_entry gs_table[] = {
    {39, 29, 1, {"4340aa3934", "d360a8a914", "c22382dd31", "21473e76a5"}},
    {43, 7, 1, {"831ac6358c1", "7f1f801f8f6", "bda8cf315b5", "ae5276e4a75"}},
    {65, 9, 1, {"b3ad3fd24dc6f2971", "c441eded1ce156650", "54c1ea3dd4b50ce40", "0f1a8048ab3bad181"}},
    {73, 2, 1,
     {"f531d8b097247c22be1",
      "61b87604736b0aa97b1",
      "0aec47a589796433ae1",
      "8ecfaf5f6cdf93dd410"}},
    {93, 5, 1,
     {"e2e8ecf01a62ca52d3ac0671",
      "cde9c30c8c225c6510a44560",
      "7b63aff0fe674213b11a6211",
      "54f6d005483fe8e07e271460"}},
    {113, 16, 1,
     {"2d017b17a0662944b90986b431c71",
      "22dfdea707a8a72e227c789a015e0",
      "7243bfb7bedea4d364fd140ec8e70",
      "265fdea706a8af26a97c30ba114e0"}},
    {119, 8, 1,
     {"c2e3321c8856ac0206f3d71a551b05",
      "ed7cf1fd71aad21d913036e22d6512",
      "aadf28194b97cc5a32e9d09810fb55",
      "badd08194b97c45a30e8509814e351"}},
    {133, 4, 1,
     {"2fe0b9f1add124285323900b17515e82a1",
      "4c5c22dbb27a6a3fa72a49ec70bfff4d31",
      "c61fa356560057f1e5e9b388dab2653ed0",
      "63f41ba839b14610d60891e7676522c7b1"}},
    {163, 38, 1,
     {"312d91126dddeb731e00eb5a2199ac25e719bd553",
      "7925991664d3e3d00e05535829f52ba3e201a9505",
      "0612afaf030c11a3b416cc20c62784cf197645a76",
      "373e36a96f9c3a733a02ae42c418ac2c0f5f5c973"}},
};

/* Turyn-type TT(n): X, Y, Z (length n), W (length n-1), '+' = 1, '-' = -1. Found by
 * rotq_search_turyn(n, seed, ...). */
typedef struct tt_entry { int32_t n; uint64_t seed; const char *seq[4]; } tt_entry;
static const tt_entry tt_table[] = {
    {8, 1, {"-+--++++", "+-+++++-", "---++-+-", "++-+++-"}},
    {10, 1, {"+-------+-", "--++-+---+", "+++---+--+", "-++-+-+++"}},
    {16, 1, {"++-+-++--++++---", "+-+++--+-+++----", "----++-+-+---+--", "-+--+--+++-++++"}},
    {20, 1, {"++--++-++++-+++++-++", "-+---++++-++-+-+-+--", "+-+-++-++----+-+++--", "----+++-+++++--++-+"}},
};

#define N_GS (sizeof gs_table / sizeof gs_table[0])
#define N_TT (sizeof tt_table / sizeof tt_table[0])

static void decode_hex(const char *hex, int8_t *out, int64_t len) {
    for (int64_t i = 0; i < len; i++) {
        char c = hex[i / 4];
        int v = c >= 'a' ? c - 'a' + 10 : c - '0';
        out[i] = (v >> (i % 4)) & 1 ? -1 : 1;
    }
}

static void decode_pm(const char *str, int8_t *out, int64_t len) {
    for (int64_t i = 0; i < len; i++) out[i] = str[i] == '-' ? -1 : 1;
}

static const gs_entry *gs_find(int64_t t) {
    for (size_t i = 0; i < N_GS; i++) if (gs_table[i].t == t) return &gs_table[i];
    return NULL;
}

static const tt_entry *tt_find(int64_t t) {
    for (size_t i = 0; i < N_TT; i++) if (3 * (int64_t)tt_table[i].n - 1 == t) return &tt_table[i];
    return NULL;
}

/* TT(n) → base sequences (Z|W, Z|-W, X, Y) → T-sequences T1 = (Z, 0), T2 = (0, W, 0),
 * T3 = (0, (X+Y)/2), T4 = (0, (X-Y)/2) of length t = 3n-1 → the four ±1 sequences
 * S_j = Σ_i E[j][i]·T_i for a 4×4 Hadamard E (disjoint supports keep them ±1). */
static bool tt_to_quadruple(const tt_entry *e, int8_t *out /* 4·t */) {
    static const int8_t E[4][4] = {{1, 1, 1, 1}, {1, -1, 1, -1}, {1, 1, -1, -1}, {1, -1, -1, 1}};
    int64_t n = e->n, t = 3 * n - 1;
    int8_t *X = malloc((size_t)(4 * n)), *T = calloc((size_t)(4 * t), 1);
    if (!X || !T) { free(X); free(T); return false; }
    int8_t *Y = X + n, *Z = X + 2 * n, *W = X + 3 * n;
    decode_pm(e->seq[0], X, n);
    decode_pm(e->seq[1], Y, n);
    decode_pm(e->seq[2], Z, n);
    decode_pm(e->seq[3], W, n - 1);
    for (int64_t i = 0; i < n; i++) T[0 * t + i] = Z[i];
    for (int64_t i = 0; i < n - 1; i++) T[1 * t + n + i] = W[i];
    for (int64_t i = 0; i < n; i++) {
        T[2 * t + 2 * n - 1 + i] = (int8_t)((X[i] + Y[i]) / 2);
        T[3 * t + 2 * n - 1 + i] = (int8_t)((X[i] - Y[i]) / 2);
    }
    for (int j = 0; j < 4; j++)
        for (int64_t p = 0; p < t; p++) {
            int v = 0;
            for (int i = 0; i < 4; i++) v += E[j][i] * T[i * t + p];
            out[j * t + p] = (int8_t)v;
        }
    free(X);
    free(T);
    return true;
}

bool rotq_hadamard_table_gs(int32_t i, int32_t *t, int32_t *multiplier, uint64_t *seed, int8_t *out) {
    if (i < 0 || (size_t)i >= N_GS) return false;
    const gs_entry *e = &gs_table[i];
    *t = e->t;
    *multiplier = e->multiplier;
    *seed = e->seed;
    if (out)
        for (int j = 0; j < 4; j++) decode_hex(e->hex[j], out + j * e->t, e->t);
    return true;
}

bool rotq_hadamard_table_turyn(int32_t i, int32_t *n, uint64_t *seed, int8_t *out) {
    if (i < 0 || (size_t)i >= N_TT) return false;
    const tt_entry *e = &tt_table[i];
    *n = e->n;
    *seed = e->seed;
    if (out)
        for (int j = 0; j < 4; j++) decode_pm(e->seq[j], out + j * e->n, j == 3 ? e->n - 1 : e->n);
    return true;
}

/* ---- recipes: which construction builds order n ----------------------------------------------- */

typedef enum rkind { R_NONE, R_ONE, R_SYLVESTER, R_PALEY1, R_PALEY2, R_TWIN, R_GS, R_TT, R_KRON } rkind;

typedef struct recipe {
    rkind kind;
    int64_t n, a, b; /* PALEY: a = q; TWIN: a = q; GS/TT: a = t; KRON: a ⊗ b */
} recipe;

static bool find_direct(int64_t n, recipe *r) {
    r->n = n;
    if (n == 1) { r->kind = R_ONE; return true; }
    if (is_pow2(n)) { r->kind = R_SYLVESTER; return true; }
    if (n % 4) return false;
    if ((n - 1) % 4 == 3 && prime_power(n - 1, NULL, NULL)) { r->kind = R_PALEY1; r->a = n - 1; return true; }
    if ((n / 2 - 1) % 4 == 1 && prime_power(n / 2 - 1, NULL, NULL)) { r->kind = R_PALEY2; r->a = n / 2 - 1; return true; }
    for (int64_t q = 3; q * (q + 2) + 1 <= n; q += 2)
        if (q * (q + 2) + 1 == n && prime_power(q, NULL, NULL) && prime_power(q + 2, NULL, NULL)) {
            r->kind = R_TWIN; r->a = q; return true;
        }
    if (gs_find(n / 4)) { r->kind = R_GS; r->a = n / 4; return true; }
    if (tt_find(n / 4)) { r->kind = R_TT; r->a = n / 4; return true; }
    return false;
}

static bool find_recipe(int64_t n, recipe *r);

static bool order_known(int64_t n) {
    recipe r;
    return find_recipe(n, &r);
}

static bool find_recipe(int64_t n, recipe *r) {
    memset(r, 0, sizeof *r);
    if (n < 1 || n > INT32_MAX) return false;
    if (find_direct(n, r)) return true;
    if (n % 4) return false;
    /* Largest power-of-two factor first, so descriptions read "base ⊗ Sylvester 2^m". */
    for (int64_t p2 = n & -n; p2 >= 2; p2 /= 2) {
        recipe d;
        if (find_direct(n / p2, &d)) { r->kind = R_KRON; r->n = n; r->a = n / p2; r->b = p2; return true; }
    }
    for (int64_t a = 4; a * a <= n; a += 4) {
        if (n % a) continue;
        int64_t b = n / a;
        if (b % 4 && b != 2) continue;
        if (order_known(a) && order_known(b)) { r->kind = R_KRON; r->n = n; r->a = a; r->b = b; return true; }
    }
    return false;
}

bool rotq_hadamard_known(int64_t n) { return order_known(n); }

static void describe_q(char *buf, size_t size, int64_t q) {
    int64_t p = q;
    int k = 1;
    prime_power(q, &p, &k);
    if (k == 1) snprintf(buf, size, "%lld", (long long)q);
    else snprintf(buf, size, "%lld^%d", (long long)p, k);
}

static void describe_recipe(const recipe *r, char *buf, size_t size) {
    char qs[48], sa[256], sb[256];
    switch (r->kind) {
    case R_ONE: snprintf(buf, size, "[1]"); break;
    case R_SYLVESTER: snprintf(buf, size, "Sylvester 2^%d", log2_exact(r->n)); break;
    case R_PALEY1: describe_q(qs, sizeof qs, r->a); snprintf(buf, size, "Paley I q=%s", qs); break;
    case R_PALEY2: describe_q(qs, sizeof qs, r->a); snprintf(buf, size, "Paley II q=%s", qs); break;
    case R_TWIN: snprintf(buf, size, "twin prime powers %lld·%lld", (long long)r->a, (long long)(r->a + 2)); break;
    case R_GS: snprintf(buf, size, "Goethals–Seidel t=%lld (searched sequences)", (long long)r->a); break;
    case R_TT:
        snprintf(buf, size, "Goethals–Seidel t=%lld (T-sequences from Turyn-type TT(%lld))", (long long)r->a,
                 (long long)(r->a + 1) / 3);
        break;
    case R_KRON: {
        recipe ra, rb;
        find_recipe(r->a, &ra);
        find_recipe(r->b, &rb);
        describe_recipe(&ra, sa, sizeof sa);
        describe_recipe(&rb, sb, sizeof sb);
        snprintf(buf, size, "%s ⊗ %s", sa, sb);
        break;
    }
    default: snprintf(buf, size, "none"); break;
    }
}

bool rotq_hadamard_describe(int64_t n, char *buf, size_t size) {
    recipe r;
    if (size) buf[0] = 0;
    if (!find_recipe(n, &r)) return false;
    describe_recipe(&r, buf, size);
    return true;
}

static bool build_recipe(const recipe *r, int8_t *H) {
    int64_t n = r->n;
    switch (r->kind) {
    case R_ONE: H[0] = 1; return true;
    case R_SYLVESTER: build_sylvester(H, n); return true;
    case R_PALEY1: return build_paley1(H, r->a);
    case R_PALEY2: return build_paley2(H, r->a);
    case R_TWIN: return build_twin(H, r->a);
    case R_GS:
    case R_TT: {
        int64_t t = r->a;
        int8_t *seq = malloc((size_t)(4 * t));
        if (!seq) return false;
        if (r->kind == R_GS) {
            const gs_entry *e = gs_find(t);
            for (int j = 0; j < 4; j++) decode_hex(e->hex[j], seq + j * t, t);
        } else if (!tt_to_quadruple(tt_find(t), seq)) {
            free(seq);
            return false;
        }
        const int8_t *s[4] = {seq, seq + t, seq + 2 * t, seq + 3 * t};
        build_goethals_seidel(H, s, t);
        free(seq);
        return true;
    }
    case R_KRON: {
        recipe ra, rb;
        if (!find_recipe(r->a, &ra) || !find_recipe(r->b, &rb)) return false;
        int64_t a = r->a, b = r->b;
        int8_t *A = malloc((size_t)(a * a)), *B = malloc((size_t)(b * b));
        bool ok = A && B && build_recipe(&ra, A) && build_recipe(&rb, B);
        if (ok)
            for (int64_t i = 0; i < a; i++)
                for (int64_t k = 0; k < a; k++)
                    for (int64_t j = 0; j < b; j++)
                        for (int64_t l = 0; l < b; l++)
                            H[(i * b + j) * n + k * b + l] = (int8_t)(A[i * a + k] * B[j * b + l]);
        free(A);
        free(B);
        return ok;
    }
    default: return false;
    }
}

rotq_status rotq_hadamard_build(int64_t n, int8_t **out) {
    *out = NULL;
    recipe r;
    if (!find_recipe(n, &r))
        return rotq_fail(ROTQ_ERR_UNSUPPORTED, "hadamard: no construction of an exact Hadamard matrix of order %lld is known to rotq",
                         (long long)n);
    if (n > ROTQ_HADAMARD_MAX_ORDER)
        return rotq_fail(ROTQ_ERR_UNSUPPORTED, "hadamard: order %lld is too large to build as a dense matrix (limit %d)",
                         (long long)n, ROTQ_HADAMARD_MAX_ORDER);
    int8_t *H = malloc((size_t)(n * n));
    if (!H) return rotq_fail(ROTQ_ERR_NOMEM, "hadamard: out of memory for order %lld", (long long)n);
    if (!build_recipe(&r, H)) {
        free(H);
        return rotq_fail(ROTQ_ERR_NOMEM, "hadamard: out of memory building order %lld", (long long)n);
    }
    *out = H;
    return ROTQ_OK;
}

bool rotq_hadamard_split(int64_t n, int64_t *K, int32_t *m) {
    if (n < 1) return false;
    int32_t e = 0;
    int64_t odd = n;
    while (odd % 2 == 0) { odd /= 2; e++; }
    if (odd == 1) { *K = 1; *m = e; return true; }
    for (int32_t j = 2; j <= e; j++)
        if (order_known(odd << j)) { *K = odd << j; *m = e - j; return true; }
    return false;
}

int64_t rotq_hadamard_defect(const int8_t *H, int64_t n) {
    int64_t worst = 0;
    for (int64_t i = 0; i < n; i++)
        for (int64_t k = i; k < n; k++) {
            int64_t d = 0;
            const int8_t *a = H + i * n, *b = H + k * n;
            for (int64_t j = 0; j < n; j++) d += a[j] * b[j];
            if (i == k) d -= n;
            if (d < 0) d = -d;
            if (d > worst) worst = d;
        }
    return worst;
}

int64_t rotq_hadamard_unknown_orders(int64_t max, int64_t *out, int64_t cap) {
    int64_t count = 0;
    for (int64_t n = 4; n <= max; n += 4)
        if (!order_known(n)) {
            if (count < cap) out[count] = n;
            count++;
        }
    return count;
}

/* ---- the searches behind the tables ------------------------------------------------------------ */

/* Simulated annealing on E = Σ_s c(s)², c(s) = Σ_q w_q·corr_q(s) over the constrained shifts 1..S.
 * A move flips one or two entries; each flip updates every c(s) in O(S). Restarts from a fresh
 * random point every 5·10^7 moves. Acceptance tests -T·ln(u) > ΔE with rotq_rng_log, so a run
 * repeats bit for bit on any machine. */
typedef struct sa_state {
    int n_seq;
    int32_t len[4], weight[4];
    bool periodic;   /* periodic autocorrelation (all lengths equal) or aperiodic */
    bool turyn;      /* keep Turyn's x_i·x_{n+1-i} = -y_i·y_{n+1-i} (1 < i < n), x_1·x_n = y_1·y_n */
    int32_t S;
    int8_t *x[4];
    int64_t *c;      /* current c(s) */
    int32_t *d;      /* change of c(s) by the pending move */
    /* periodic search with a multiplier h: every sequence is constant on the orbits {i, ih, ih², ...}
     * of Z_t, and a move flips a whole orbit (supplementary difference sets with a multiplier group) */
    int32_t n_orbits;
    int32_t *orbit_start, *orbit_members; /* members of orbit o: orbit_members[orbit_start[o] ..< orbit_start[o+1]] */
} sa_state;

static void sa_flip(sa_state *P, int q, int32_t i) {
    int8_t *x = P->x[q];
    int32_t L = P->len[q], f = -2 * P->weight[q] * x[i];
    if (P->periodic) { /* neighbours i±s walk around the cycle without a division */
        int32_t up = i, down = i;
        for (int32_t s = 1; s <= P->S; s++) {
            if (++up == L) up = 0;
            if (--down < 0) down = L - 1;
            P->d[s] += f * (x[up] + x[down]);
        }
    } else {
        for (int32_t s = 1; s <= P->S; s++) {
            int a = i + s < L ? x[i + s] : 0, b = i - s >= 0 ? x[i - s] : 0;
            P->d[s] += f * (a + b);
        }
    }
    x[i] = (int8_t)-x[i];
}

static void sa_randomize(sa_state *P, rotq_rng *rng) {
    for (int q = 0; q < P->n_seq; q++) {
        if (P->n_orbits) {
            for (int32_t o = 0; o < P->n_orbits; o++) {
                int8_t v = (rotq_rng_next(rng) >> 63) ? -1 : 1;
                for (int32_t k = P->orbit_start[o]; k < P->orbit_start[o + 1]; k++) P->x[q][P->orbit_members[k]] = v;
            }
            continue;
        }
        for (int32_t i = 0; i < P->len[q]; i++) P->x[q][i] = (rotq_rng_next(rng) >> 63) ? -1 : 1;
    }
    if (P->turyn) {
        int32_t n = P->len[0];
        int8_t *X = P->x[0], *Y = P->x[1];
        Y[n - 1] = (int8_t)(X[0] * X[n - 1] * Y[0]);
        for (int32_t i = 1; i < n / 2; i++) Y[n - 1 - i] = (int8_t)(-X[i] * X[n - 1 - i] * Y[i]);
    }
}

static rotq_status sa_search(sa_state *P, uint64_t seed, int64_t max_flips, const char *what) {
    int32_t S = P->S;
    P->c = malloc(sizeof(int64_t) * (size_t)(S + 1));
    P->d = malloc(sizeof(int32_t) * (size_t)(S + 1));
    if (!P->c || !P->d) { free(P->c); free(P->d); return rotq_fail(ROTQ_ERR_NOMEM, "%s: out of memory", what); }
    rotq_rng rng;
    rotq_rng_seed(&rng, seed);
    const int64_t restart = 50000000;
    double T0 = 2.0 * P->len[0];
    int64_t moves = 0;
    rotq_status st = ROTQ_ERR_NOT_FOUND;
    while (moves < max_flips) {
        sa_randomize(P, &rng);
        int64_t E = 0;
        for (int32_t s = 1; s <= S; s++) {
            int64_t v = 0;
            for (int q = 0; q < P->n_seq; q++) {
                const int8_t *x = P->x[q];
                int32_t L = P->len[q];
                int64_t a = 0;
                for (int32_t i = 0; i < L; i++) {
                    if (P->periodic) a += x[i] * x[(i + s) % L];
                    else if (i + s < L) a += x[i] * x[i + s];
                }
                v += P->weight[q] * a;
            }
            P->c[s] = v;
            E += v * v;
        }
        double T = T0;
        for (int64_t it = 0; E > 0 && it < restart && moves < max_flips; it++, moves++) {
            uint64_t rnd = rotq_rng_next(&rng);
            int q1, q2 = -1;
            int32_t i1, i2 = -1;
            if (P->turyn) {
                int32_t n = P->len[0], i = (int32_t)((rnd >> 8) % (uint64_t)n);
                switch (rnd & 3) {
                case 0: q1 = 0; i1 = i; q2 = 1; i2 = ((rnd >> 40) & 1) ? i : n - 1 - i; break; /* x_i with a partner y */
                case 1: q1 = 1; i1 = i; q2 = 1; i2 = n - 1 - i; break;                       /* a mirrored y pair */
                case 2: q1 = 2; i1 = i; break;
                default: q1 = 3; i1 = i % (n - 1); break;
                }
                if (q2 == q1 && i2 == i1) q2 = -1;
            } else {
                q1 = (int)((rnd >> 32) % (uint64_t)P->n_seq);
                i1 = (int32_t)((rnd & 0xffffffffu) % (uint64_t)(P->n_orbits ? P->n_orbits : P->len[q1]));
            }
            memset(P->d, 0, sizeof(int32_t) * (size_t)(S + 1));
            if (P->n_orbits) {
                for (int32_t k = P->orbit_start[i1]; k < P->orbit_start[i1 + 1]; k++) sa_flip(P, q1, P->orbit_members[k]);
            } else {
                sa_flip(P, q1, i1);
                if (q2 >= 0) sa_flip(P, q2, i2);
            }
            int64_t dE = 0;
            for (int32_t s = 1; s <= S; s++) dE += (2 * P->c[s] + P->d[s]) * (int64_t)P->d[s];
            if (dE <= 0 || -T * rotq_rng_log(1.0 - rotq_rng_uniform(&rng)) > (double)dE) {
                for (int32_t s = 1; s <= S; s++) P->c[s] += P->d[s];
                E += dE;
            } else if (P->n_orbits) {
                for (int32_t k = P->orbit_start[i1]; k < P->orbit_start[i1 + 1]; k++)
                    P->x[q1][P->orbit_members[k]] = (int8_t)-P->x[q1][P->orbit_members[k]];
            } else {
                if (q2 >= 0) P->x[q2][i2] = (int8_t)-P->x[q2][i2];
                P->x[q1][i1] = (int8_t)-P->x[q1][i1];
            }
            if ((it & 0xffff) == 0xffff) {
                T *= 0.999;
                if (T < T0 / 16) T = T0;
            }
        }
        if (E == 0) { st = ROTQ_OK; break; }
    }
    free(P->c);
    free(P->d);
    if (st != ROTQ_OK) return rotq_fail(st, "%s: nothing found in %lld moves", what, (long long)max_flips);
    return ROTQ_OK;
}

static int64_t gcd64(int64_t a, int64_t b) {
    while (b) { int64_t r = a % b; a = b; b = r; }
    return a;
}

rotq_status rotq_search_gs_quadruple(int32_t t, int32_t multiplier, uint64_t seed, int64_t max_flips, int8_t *out) {
    if (t < 1 || t > 100000) return rotq_fail(ROTQ_ERR_ARG, "gs search: length %d out of range", t);
    if (multiplier < 1 || multiplier >= (t > 1 ? t : 2) || gcd64(multiplier, t) != 1)
        return rotq_fail(ROTQ_ERR_ARG, "gs search: multiplier %d is not a unit modulo %d", multiplier, t);
    if (t == 1) { memset(out, 1, 4); return ROTQ_OK; }
    sa_state P = {.n_seq = 4, .len = {t, t, t, t}, .weight = {1, 1, 1, 1}, .periodic = true, .S = t / 2};
    for (int q = 0; q < 4; q++) P.x[q] = out + q * t;
    int32_t *start = NULL, *members = NULL;
    if (multiplier > 1) {
        start = malloc(sizeof(int32_t) * (size_t)(t + 1));
        members = malloc(sizeof(int32_t) * (size_t)t);
        bool *seen = calloc((size_t)t, 1);
        if (!start || !members || !seen) {
            free(start); free(members); free(seen);
            return rotq_fail(ROTQ_ERR_NOMEM, "gs search: out of memory");
        }
        int32_t k = 0;
        for (int32_t i = 0; i < t; i++) {
            if (seen[i]) continue;
            start[P.n_orbits++] = k;
            int32_t j = i;
            do { seen[j] = true; members[k++] = j; j = (int32_t)((int64_t)j * multiplier % t); } while (j != i);
        }
        start[P.n_orbits] = k;
        free(seen);
        P.orbit_start = start;
        P.orbit_members = members;
    }
    rotq_status st = sa_search(&P, seed, max_flips, "gs search");
    free(start);
    free(members);
    return st;
}

rotq_status rotq_search_turyn(int32_t n, uint64_t seed, int64_t max_flips, int8_t *out) {
    if (n < 2 || n > 100000) return rotq_fail(ROTQ_ERR_ARG, "turyn search: length %d out of range", n);
    /* Every TT(n) of even n found without it satisfied the X/Y mirror relation, so even n are
     * searched within it (2^(n/2) times fewer points); odd n without. */
    sa_state P = {.n_seq = 4, .len = {n, n, n, n - 1}, .weight = {1, 1, 2, 2}, .periodic = false, .turyn = n % 2 == 0, .S = n - 1};
    for (int q = 0; q < 4; q++) P.x[q] = out + q * n;
    return sa_search(&P, seed, max_flips, "turyn search");
}
