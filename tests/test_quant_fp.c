/* Float number formats (MXFP4, NVFP4, FP8) against plain references written here: every element
 * value enumerated from the formats' definitions (E2M1's eight magnitudes listed, E4M3's 127 from
 * sign/exponent/mantissa), rounding as a search for the nearest value (ties to the even code), the
 * scales as loops over powers of two. Checked: all 16 E2M1 and 256 E4M3 codes, ties, saturation,
 * scale overflow and underflow, zero blocks, NaN/Inf refused; the activation quantizer and weight RTN
 * (with and without the clip search) equal to the reference bit for bit; GPTQ on every new grid
 * (and on 3- and 2-bit groups) leaves less layer-output error than RTN on the same grid; presets. */
#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "backend/backend.h"
#include "core/minifloat.h"
#include "quant/quant.h"
#include "testutil.h"

static unsigned long long rs = 0x9E3779B97F4A7C15ull;
static double urand(void) {
    rs ^= rs >> 12; rs ^= rs << 25; rs ^= rs >> 27;
    return (double)((rs * 2685821657736338717ull) >> 11) / 9007199254740992.0;
}
static double nrand(void) { return sqrt(-2.0 * log(urand() + 1e-300)) * cos(2 * M_PI * urand()); }

/* ---- the reference ----------------------------------------------------------------------------- */

/* non-negative finite values in code order (the magnitude bits of the code are the index) */
static int e2m1_values(double *v) {
    static const double t[8] = {0, 0.5, 1, 1.5, 2, 3, 4, 6};
    memcpy(v, t, sizeof t);
    return 8;
}
static int e4m3_values(double *v) {
    int n = 0;
    for (int e = 0; e < 16; e++)
        for (int m = 0; m < 8; m++) {
            if (e == 15 && m == 7) continue; /* S.1111.111 is NaN */
            v[n++] = e == 0 ? m / 8.0 * pow(2, -6) : (1 + m / 8.0) * pow(2, e - 7);
        }
    return n;
}

typedef struct ref_fmt { double v[128]; int n; } ref_fmt;
static ref_fmt E2M1, E4M3;

/* nearest value by search; an exact tie takes the even index (the even code); beyond the top: the top */
static double ref_round(double x, const ref_fmt *f) {
    double a = fabs(x), best = 0, bd = INFINITY;
    for (int i = 0; i < f->n; i++) {
        double d = fabs(a - f->v[i]);
        if (d < bd || (d == bd && i % 2 == 0)) { bd = d; best = f->v[i]; }
    }
    return x < 0 ? -best : best;
}

static double pow2(int e) { return ldexp(1.0, e); }
/* e with 2^e <= a < 2^(e+1), by stepping */
static int ref_floor_log2(double a) {
    int e = 0;
    while (pow2(e) > a) e--;
    while (pow2(e + 1) <= a) e++;
    return e;
}
static int clampe(int e) { return e < -127 ? -127 : e > 127 ? 127 : e; }
/* OCP MX: 2^(floor(log2 amax) - 2) */
static double ref_mx_scale(double amax) { return amax > 0 ? pow2(clampe(ref_floor_log2(amax) - 2)) : 1.0; }
/* the search's candidate: the smallest power of two at or above target */
static double ref_mx_ceil(double target) {
    if (!(target > 0)) return 1.0;
    int e = -140;
    while (pow2(e) < target) e++;
    return pow2(clampe(e));
}
static double ref_nv_ts(double amax) { return amax > 0 ? (double)(float)(amax / (6.0 * 448.0)) : 1.0; }
static double ref_nv_scale(double a, double ts) {
    if (!(a > 0)) return ts;
    double s = ref_round(a / 6.0 / ts, &E4M3);
    return ts * (s < pow2(-9) ? pow2(-9) : s);
}

/* ---- codes and rounding -------------------------------------------------------------------------- */

static void test_codes(void) {
    const rotq_num_traits *fp4 = rotq_num_traits_of(ROTQ_NUM_MXFP4), *fp8 = rotq_num_traits_of(ROTQ_NUM_FP8);
    CHECK(fp4 && fp8 && rotq_num_traits_of(ROTQ_NUM_INT) == NULL, "traits");
    for (int c = 0; c < 16; c++) {
        double want = (c & 8 ? -1 : 1) * E2M1.v[c & 7], got = rotq_minifloat_value((uint8_t)c, fp4);
        CHECK(got == want, "E2M1 code %d: %g, want %g", c, got, want);
        CHECK(rotq_minifloat_encode(want, fp4) == (c == 8 ? 0 : c), "E2M1 %g encodes to %d", want, rotq_minifloat_encode(want, fp4));
    }
    int nan_codes = 0;
    for (int c = 0; c < 256; c++) {
        double got = rotq_minifloat_value((uint8_t)c, fp8);
        if ((c & 127) == 127) { nan_codes += isnan(got); continue; }
        double want = (c & 128 ? -1 : 1) * E4M3.v[c & 127];
        CHECK(got == want, "E4M3 code %d: %g, want %g", c, got, want);
        CHECK(rotq_minifloat_encode(want, fp8) == (c == 128 ? 0 : c), "E4M3 %g encodes to %d", want, rotq_minifloat_encode(want, fp8));
    }
    CHECK(nan_codes == 2, "E4M3 NaN codes %d", nan_codes);
}

static void check_round(double x, const rotq_num_traits *t, const ref_fmt *f, int *bad) {
    double got = rotq_minifloat_round(x, t), want = ref_round(x, f);
    double back = rotq_minifloat_value(rotq_minifloat_encode(x, t), t);
    if (got != want || back != want) {
        if (*bad < 5) fprintf(stderr, "%s: round(%.17g) = %.17g (code %.17g), want %.17g\n", t->name, x, got, back, want);
        (*bad)++;
    }
}

static void test_rounding(void) {
    const rotq_num_traits *ts[2] = {rotq_num_traits_of(ROTQ_NUM_NVFP4), rotq_num_traits_of(ROTQ_NUM_FP8)};
    const ref_fmt *fs[2] = {&E2M1, &E4M3};
    for (int k = 0; k < 2; k++) {
        int bad = 0, n = 0;
        const ref_fmt *f = fs[k];
        /* every midpoint (a tie), its neighbours, every value, past the top */
        for (int i = 0; i + 1 < f->n; i++) {
            double mid = (f->v[i] + f->v[i + 1]) / 2;
            double xs[5] = {mid, nextafter(mid, 0), nextafter(mid, 1e9), f->v[i], -mid};
            for (int j = 0; j < 5; j++, n++) check_round(xs[j], ts[k], f, &bad);
        }
        double top = f->v[f->n - 1];
        double past[4] = {top * 1.01, top * 1e6, top + (top - f->v[f->n - 2]) / 2, -top * 3};
        for (int j = 0; j < 4; j++, n++) check_round(past[j], ts[k], f, &bad);
        for (int j = 0; j < 20000; j++, n++) check_round((urand() < 0.5 ? -1 : 1) * top * pow(2, -14 * urand()) * 1.2, ts[k], f, &bad);
        CHECK(bad == 0, "%s: %d of %d roundings differ from the nearest-value search", ts[k]->name, bad, n);
        CHECK(isnan(rotq_minifloat_round(NAN, ts[k])), "NaN rounds to NaN");
    }
}

static void test_scales(void) {
    const rotq_num_traits *mx = rotq_num_traits_of(ROTQ_NUM_MXFP4), *nv = rotq_num_traits_of(ROTQ_NUM_NVFP4);
    int bad = 0;
    for (int j = 0; j < 5000; j++) {
        double a = pow(2, 60 * urand() - 30) * (1 + urand()), p = 0.2 + 0.8 * urand();
        if (rotq_num_scale(mx, a, 1.0, 1.0, true, false) != ref_mx_scale(a)) bad++;
        if (rotq_num_scale(mx, a, p, 1.0, false, false) != ref_mx_ceil(p * a / 6.0)) bad++;
        double ts = ref_nv_ts(a * (1 + 10 * urand()));
        if (rotq_num_tensor_scale(nv, a) != ref_nv_ts(a)) bad++;
        if (rotq_num_scale(nv, a, p, ts, false, false) != ref_nv_scale(p * a, ts)) bad++;
    }
    CHECK(bad == 0, "%d scales differ from the reference", bad);
    /* exact powers of two and the clamps of E8M0; E4M3's saturation and its floor */
    CHECK(rotq_num_scale(mx, 4.0, 1.0, 1.0, true, false) == 1.0 && rotq_num_scale(mx, 6.0, 1.0, 1.0, false, false) == 1.0,
          "MX scale of 4 (spec) and 6 (ceil)");
    CHECK(rotq_num_scale(mx, pow(2, -140), 1.0, 1.0, true, false) == pow2(-127), "E8M0 underflow clamps to 2^-127");
    CHECK(rotq_num_scale(mx, pow(2, 200), 1.0, 1.0, true, false) == pow2(127), "E8M0 overflow clamps to 2^127");
    CHECK(rotq_e4m3_scale(1e6) == 448.0 && rotq_e4m3_scale(1e-9) == pow2(-9) && rotq_e4m3_scale(464) == 448.0 &&
              rotq_e4m3_scale(0.0) == pow2(-9), "E4M3 scale saturation and floor");
    CHECK(rotq_num_scale(mx, 0.0, 1.0, 1.0, true, false) > 0 && rotq_num_scale(nv, 0.0, 1.0, 0.5, true, false) == 0.5,
          "a zero block still has a scale");
}

/* ---- activations --------------------------------------------------------------------------------- */

/* the reference fake quantization of one row (group g) in format k */
static void ref_act_row(const float *x, float *y, int n, int g, rotq_num_format k) {
    double amax = 0;
    for (int i = 0; i < n; i++) amax = fmax(amax, fabs(x[i]));
    double ts = k == ROTQ_NUM_NVFP4 ? ref_nv_ts(amax) : 1.0;
    const ref_fmt *f = k == ROTQ_NUM_FP8 ? &E4M3 : &E2M1;
    for (int g0 = 0; g0 < n; g0 += g) {
        int m = n - g0 < g ? n - g0 : g;
        double gm = 0;
        for (int i = 0; i < m; i++) gm = fmax(gm, fabs(x[g0 + i]));
        double s = k == ROTQ_NUM_MXFP4 ? ref_mx_scale(gm) : k == ROTQ_NUM_NVFP4 ? ref_nv_scale(gm, ts)
                                                          : (gm > 0 ? (double)(float)(gm / 448.0) : 1.0);
        for (int i = 0; i < m; i++) {
            double v = s * ref_round(x[g0 + i] / s, f);
            y[g0 + i] = (float)(v > FLT_MAX ? FLT_MAX : v < -FLT_MAX ? -FLT_MAX : v); /* saturate, never ±Inf */
        }
    }
}

static void test_activations(void) {
    enum { ROWS = 37, COLS = 200 };
    rotq_num_format ks[3] = {ROTQ_NUM_MXFP4, ROTQ_NUM_NVFP4, ROTQ_NUM_FP8};
    float *x = malloc(sizeof(float) * ROWS * COLS), *y = malloc(sizeof(float) * ROWS * COLS), *r = malloc(sizeof(float) * COLS);
    for (int k = 0; k < 3; k++) {
        for (int i = 0; i < ROWS * COLS; i++) x[i] = (float)(nrand() * (urand() < 0.02 ? 40 : 1) * pow(10, (i / COLS) % 7 - 3));
        for (int c = 0; c < COLS; c++) x[5 * COLS + c] = 0.0f;                       /* a zero row */
        for (int c = 0; c < 32; c++) x[6 * COLS + c] = 0.0f;                         /* a zero block */
        x[7 * COLS + 3] = 3e38f;                                                     /* near FLT_MAX */
        x[10 * COLS + 40] = -FLT_MAX;                                                /* at it */
        for (int c = 0; c < COLS; c++) x[8 * COLS + c] = (float)(1e-40 * nrand());  /* subnormal floats */
        memcpy(y, x, sizeof(float) * ROWS * COLS);
        rotq_act_format f = {.bits = rotq_num_format_bits(ks[k]), .num = ks[k], .clip = 1.0f, .group = rotq_num_format_block(ks[k])};
        CHECK(rotq_act_quantize(y, ROWS, COLS, &f) == ROTQ_OK, "%s: %s", rotq_num_format_name(ks[k]), rotq_last_error());
        int g = f.group > 0 ? (int)f.group : COLS, bad = 0, nonfinite = 0;
        for (int row = 0; row < ROWS; row++) {
            ref_act_row(x + row * COLS, r, COLS, g, ks[k]);
            for (int c = 0; c < COLS; c++) {
                bad += memcmp(&r[c], &y[row * COLS + c], sizeof(float)) != 0 && !(r[c] == 0 && y[row * COLS + c] == 0);
                nonfinite += !isfinite(y[row * COLS + c]);
            }
        }
        CHECK(bad == 0 && nonfinite == 0, "%s activations: %d values differ from the reference, %d not finite",
              rotq_num_format_name(ks[k]), bad, nonfinite);
        int zeros = 0;
        for (int c = 0; c < COLS; c++) zeros += y[5 * COLS + c] == 0.0f;
        CHECK(zeros == COLS, "%s: a zero row stays zero", rotq_num_format_name(ks[k]));
        /* NaN and Inf are refused by name */
        memcpy(y, x, sizeof(float) * ROWS * COLS);
        y[9 * COLS + 17] = k == 1 ? INFINITY : NAN;
        CHECK(rotq_act_quantize(y, ROWS, COLS, &f) == ROTQ_ERR_NUMERIC && strstr(rotq_last_error(), "row 9 column 17"),
              "%s: a non-finite activation: %s", rotq_num_format_name(ks[k]), rotq_last_error());
    }
    /* bad formats: asymmetric, wrong bits */
    rotq_act_format f = {.bits = 4, .num = ROTQ_NUM_MXFP4, .asym = true, .clip = 1.0f};
    CHECK(rotq_act_format_check(&f, "activation") == ROTQ_ERR_ARG, "asymmetric MXFP4 accepted");
    f = (rotq_act_format){.bits = 4, .num = ROTQ_NUM_FP8, .clip = 1.0f};
    CHECK(rotq_act_format_check(&f, "activation") == ROTQ_ERR_ARG && strstr(rotq_last_error(), "8-bit"), "FP8 at 4 bits: %s",
          rotq_last_error());
    free(x); free(y); free(r);
}

/* ---- weights --------------------------------------------------------------------------------------- */

static rotq_wq_format fp_format(rotq_num_format k, bool search) {
    const rotq_num_traits *t = rotq_num_traits_of(k);
    rotq_wq_format f = rotq_wq_format_make(t->bits, false, t->block > 0 ? t->block : -1, search);
    f.num = k;
    return f;
}

/* RTN reference: each group's scale by the format's rule, or the first of the clip search's
 * ratios 1, 0.99, ..., 0.21 of least Σ|w − q|^2.4 */
static void ref_rtn(const float *w, float *out, int rows, int cols, rotq_num_format k, bool search) {
    const ref_fmt *f = k == ROTQ_NUM_FP8 ? &E4M3 : &E2M1;
    double amax = 0;
    for (int i = 0; i < rows * cols; i++) amax = fmax(amax, fabs(w[i]));
    double ts = k == ROTQ_NUM_NVFP4 ? ref_nv_ts(amax) : 1.0;
    int g = k == ROTQ_NUM_MXFP4 ? 32 : k == ROTQ_NUM_NVFP4 ? 16 : cols;
    double top = k == ROTQ_NUM_FP8 ? 448.0 : 6.0;
    for (int r = 0; r < rows; r++)
        for (int g0 = 0; g0 < cols; g0 += g) {
            const float *x = w + r * cols + g0;
            int m = cols - g0 < g ? cols - g0 : g;
            double gm = 0;
            for (int i = 0; i < m; i++) gm = fmax(gm, fabs(x[i]));
            double s = k == ROTQ_NUM_MXFP4 ? ref_mx_scale(gm) : k == ROTQ_NUM_NVFP4 ? ref_nv_scale(gm, ts) : (gm > 0 ? gm / top : 1.0);
            if (search) {
                double best = INFINITY;
                for (int i = 0; i < 80; i++) {
                    double p = 1.0 - i / 100.0;
                    double c = k == ROTQ_NUM_MXFP4 ? (gm > 0 ? ref_mx_ceil(p * gm / 6.0) : 1.0)
                             : k == ROTQ_NUM_NVFP4 ? ref_nv_scale(p * gm, ts) : (gm > 0 ? p * gm / top : 1.0);
                    double err = 0;
                    for (int j = 0; j < m; j++) err += pow(fabs(c * ref_round(x[j] / c, f) - x[j]), 2.4);
                    if (err < best) { best = err; s = c; }
                }
            }
            for (int j = 0; j < m; j++) out[r * cols + g0 + j] = (float)(s * ref_round(x[j] / s, f));
        }
}

static void test_weights_rtn(void) {
    enum { ROWS = 24, COLS = 160 };
    rotq_num_format ks[3] = {ROTQ_NUM_MXFP4, ROTQ_NUM_NVFP4, ROTQ_NUM_FP8};
    float *w = malloc(sizeof(float) * ROWS * COLS), *q = malloc(sizeof(float) * ROWS * COLS), *r = malloc(sizeof(float) * ROWS * COLS);
    for (int k = 0; k < 3; k++)
        for (int search = 0; search < 2; search++) {
            for (int i = 0; i < ROWS * COLS; i++) w[i] = (float)(nrand() * 0.05 * (urand() < 0.01 ? 20 : 1));
            for (int c = 0; c < COLS; c++) w[3 * COLS + c] = 0.0f; /* a zero row */
            memcpy(q, w, sizeof(float) * ROWS * COLS);
            rotq_wq_format f = fp_format(ks[k], search);
            rotq_qweight *codes = NULL;
            CHECK(rotq_rtn_quantize(q, ROWS, COLS, &f, &codes) == ROTQ_OK, "%s", rotq_last_error());
            ref_rtn(w, r, ROWS, COLS, ks[k], search);
            int bad = 0;
            for (int i = 0; i < ROWS * COLS; i++) bad += q[i] != r[i];
            CHECK(bad == 0, "%s RTN%s: %d weights differ from the reference", rotq_num_format_name(ks[k]), search ? " (clip search)" : "", bad);
            if (codes) {
                float *back = malloc(sizeof(float) * ROWS * COLS);
                rotq_qweight_dequantize(codes, back);
                CHECK(!memcmp(back, q, sizeof(float) * ROWS * COLS), "%s: codes decode to the weights", rotq_num_format_name(ks[k]));
                int top = 0;
                for (int i = 0; i < ROWS * COLS; i++) top = codes->u[i] > top ? codes->u[i] : top;
                CHECK(top < (1 << f.bits), "%s: code %d past %d bits", rotq_num_format_name(ks[k]), top, f.bits);
                int8_t c8[COLS];
                float sc;
                CHECK(rotq_qweight_int8(codes, 0, 1, c8, &sc) == ROTQ_ERR_UNSUPPORTED, "float codes refused by integer products");
                free(back);
            }
            rotq_qweight_free(codes);
        }
    w[5] = INFINITY;
    rotq_wq_format f = fp_format(ROTQ_NUM_MXFP4, true);
    CHECK(rotq_rtn_quantize(w, ROWS, COLS, &f, NULL) == ROTQ_ERR_NUMERIC && strstr(rotq_last_error(), "non-finite"), "Inf weight: %s",
          rotq_last_error());
    f.asym = true;
    w[5] = 0;
    CHECK(rotq_rtn_quantize(w, ROWS, COLS, &f, NULL) == ROTQ_ERR_ARG, "asymmetric MXFP4 weights accepted");
    free(w); free(q); free(r);
}

/* Σ_t ‖(W − Q) x_t‖² over the calibration inputs */
static double output_error(const float *W, const float *Q, const float *X, int rows, int n, int N) {
    double e = 0;
    for (int t = 0; t < N; t++)
        for (int r = 0; r < rows; r++) {
            double d = 0;
            for (int c = 0; c < n; c++) d += ((double)W[r * n + c] - Q[r * n + c]) * X[t * n + c];
            e += d * d;
        }
    return e;
}

static void test_gptq_grids(void) {
    enum { ROWS = 48, N = 256, T = 768 };
    /* correlated inputs with a few strong channels, as a layer sees them */
    float *X = malloc(sizeof(float) * T * N);
    double *mix = malloc(sizeof(double) * N * 8);
    for (int i = 0; i < N * 8; i++) mix[i] = nrand();
    for (int t = 0; t < T; t++) {
        double z[8];
        for (int j = 0; j < 8; j++) z[j] = nrand();
        for (int c = 0; c < N; c++) {
            double v = 0.3 * nrand();
            for (int j = 0; j < 8; j++) v += mix[c * 8 + j] * z[j] / 3;
            X[t * N + c] = (float)(v * (c % 37 == 0 ? 6 : 1));
        }
    }
    double *H0 = calloc((size_t)N * N, sizeof(double));
    for (int t = 0; t < T; t++)
        for (int i = 0; i < N; i++)
            for (int j = 0; j < N; j++) H0[i * N + j] += 2.0 * X[t * N + i] * X[t * N + j] / T;
    float *W = malloc(sizeof(float) * ROWS * N), *Qr = malloc(sizeof(float) * ROWS * N), *Qg = malloc(sizeof(float) * ROWS * N);
    for (int i = 0; i < ROWS * N; i++) W[i] = (float)(nrand() * 0.05);
    struct { const char *name; rotq_wq_format f; } cases[5] = {
        {"mxfp4", fp_format(ROTQ_NUM_MXFP4, true)},
        {"nvfp4", fp_format(ROTQ_NUM_NVFP4, true)},
        {"fp8", fp_format(ROTQ_NUM_FP8, true)},
        {"int3 asym g128", rotq_wq_format_make(3, true, 128, true)},
        {"int2 asym g128", rotq_wq_format_make(2, true, 128, true)},
    };
    for (int k = 0; k < 5; k++) {
        memcpy(Qr, W, sizeof(float) * ROWS * N);
        memcpy(Qg, W, sizeof(float) * ROWS * N);
        CHECK(rotq_rtn_quantize(Qr, ROWS, N, &cases[k].f, NULL) == ROTQ_OK, "%s", rotq_last_error());
        double *H = malloc(sizeof(double) * N * N);
        memcpy(H, H0, sizeof(double) * N * N);
        rotq_gptq_options o = rotq_gptq_defaults();
        rotq_gptq_hinv h;
        rotq_qweight *codes = NULL;
        rotq_status s = rotq_gptq_prepare(H, N, &o, &h);
        if (s == ROTQ_OK) s = rotq_gptq_quantize(Qg, ROWS, N, &h, &cases[k].f, &o, NULL, &codes);
        CHECK(s == ROTQ_OK, "%s: %s", cases[k].name, rotq_last_error());
        if (s == ROTQ_OK) rotq_gptq_hinv_free(&h);
        double er = output_error(W, Qr, X, ROWS, N, T), eg = output_error(W, Qg, X, ROWS, N, T);
        CHECK(eg < 0.9 * er, "%s: GPTQ's layer-output error %g is not below RTN's %g", cases[k].name, eg, er);
        if (codes) {
            float *back = malloc(sizeof(float) * ROWS * N);
            rotq_qweight_dequantize(codes, back);
            CHECK(!memcmp(back, Qg, sizeof(float) * ROWS * N), "%s: GPTQ's codes decode to its weights", cases[k].name);
            free(back);
        }
        rotq_qweight_free(codes);
        free(H);
        printf("%-15s layer-output error: RTN %.4g, GPTQ %.4g (%.2fx)\n", cases[k].name, er, eg, er / eg);
    }
    free(X); free(mix); free(H0); free(W); free(Qr); free(Qg);
}

/* ---- presets and options ------------------------------------------------------------------------ */

static void test_presets(void) {
    rotq_quant_options o = rotq_quant_defaults();
    CHECK(rotq_quant_preset(&o, "nvfp4") == ROTQ_OK && o.w_num == ROTQ_NUM_NVFP4 && o.act.num == ROTQ_NUM_NVFP4 &&
              o.act.group == 16 && o.k.num == ROTQ_NUM_NVFP4 && o.w_bits == 4, "nvfp4 preset");
    CHECK(rotq_quant_options_check(&o) == ROTQ_OK, "%s", rotq_last_error());
    rotq_wq_format f = rotq_wq_format_from_options(&o);
    CHECK(f.num == ROTQ_NUM_NVFP4 && f.group == 16 && f.bits == 4, "nvfp4 weight format: group %lld bits %d", (long long)f.group, f.bits);
    o = rotq_quant_defaults();
    CHECK(rotq_quant_preset(&o, "mxfp4-kv8") == ROTQ_OK && o.k.num == ROTQ_NUM_FP8 && o.k.bits == 8 && o.act.group == 32, "mxfp4-kv8");
    o = rotq_quant_defaults();
    CHECK(rotq_quant_preset(&o, "w4a8-fp8") == ROTQ_OK && o.w_num == ROTQ_NUM_INT && o.act.num == ROTQ_NUM_FP8 && o.act.bits == 8,
          "w4a8-fp8");
    o = rotq_quant_defaults();
    CHECK(rotq_quant_preset(&o, "w2a16g128") == ROTQ_OK && o.w_bits == 2 && o.w_group == 128 && o.w_asym && !rotq_act_on(&o.act),
          "w2a16g128");
    CHECK(rotq_quant_preset(&o, "fp3") == ROTQ_ERR_ARG && strstr(rotq_last_error(), "mxfp4"), "unknown preset: %s", rotq_last_error());
    o = rotq_quant_defaults();
    rotq_quant_preset(&o, "mxfp4");
    CHECK(rotq_quant_set_mixture(&o, "Q4_0") == ROTQ_OK && rotq_quant_options_check(&o) == ROTQ_ERR_ARG &&
              strstr(rotq_last_error(), "integer grids"), "MXFP4 weights with GGUF types: %s", rotq_last_error());
    rotq_num_format nf;
    CHECK(rotq_num_format_parse("nvfp4", &nf) == ROTQ_OK && nf == ROTQ_NUM_NVFP4 && rotq_num_format_parse("fp4", &nf) == ROTQ_ERR_ARG,
          "format names");
}

int main(void) {
    E2M1.n = e2m1_values(E2M1.v);
    E4M3.n = e4m3_values(E4M3.v);
    CHECK(E4M3.n == 127 && E4M3.v[126] == 448.0 && E4M3.v[1] == pow(2, -9), "E4M3 enumeration: %d values, top %g", E4M3.n, E4M3.v[126]);
    test_codes();
    test_rounding();
    test_scales();
    test_activations();
    test_weights_rtn();
    test_gptq_grids();
    test_presets();
    return tu_finish("test_quant_fp");
}
