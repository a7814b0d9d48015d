/* Weight RTN against a plain reference written here: the grid listed point by point and each weight
 * sent to its nearest point by search (no division, no rounding function), the clip search as an
 * explicit loop over shrink ratios. Also: values already on the grid come back unchanged (with and
 * without the clip search, per channel and in groups), 2..8 bits, zero rows, and errors. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/model.h"
#include "quant/quant.h"
#include "testutil.h"

static uint64_t rs = 0x243F6A8885A308D3ull;
static double urand(void) {
    rs ^= rs >> 12; rs ^= rs << 25; rs ^= rs >> 27;
    return (double)((rs * 2685821657736338717ull) >> 11) / 9007199254740992.0;
}
static double nrand(void) { return sqrt(-2.0 * log(urand() + 1e-300)) * cos(2 * M_PI * urand()); }

/* nearest of the grid points scale·(k - zero), k in [kmin, kmax] */
static double nearest(double x, double scale, double zero, int kmin, int kmax) {
    double best = scale * (kmin - zero), bd = fabs(x - best);
    for (int k = kmin + 1; k <= kmax; k++) {
        double g = scale * (k - zero), d = fabs(x - g);
        if (d < bd) { bd = d; best = g; }
    }
    return best;
}

/* The reference grid of a segment at shrink p: sym [-2^(b-1), 2^(b-1)-1]·max|x|/(2^(b-1)-1), asym
 * [0, 2^b-1] over [min, max] (both ranges holding 0), as the GPTQ/QuaRot code defines them. */
static void ref_grid(const double *x, int n, int bits, bool asym, double p, double *scale, double *zero, int *kmin,
                     int *kmax) {
    double lo = 0, hi = 0;
    for (int i = 0; i < n; i++) { lo = fmin(lo, x[i]); hi = fmax(hi, x[i]); }
    if (!asym) {
        int maxq = (1 << (bits - 1)) - 1;
        double m = fmax(fmax(-lo, hi), 1e-5);
        *scale = p * m / maxq;
        *zero = 0;
        *kmin = -maxq - 1;
        *kmax = maxq;
    } else {
        int maxq = (1 << bits) - 1;
        if (lo == 0 && hi == 0) { lo = -1; hi = 1; }
        *scale = p == 1.0 ? fmax(hi - lo, 1e-5) / maxq : (p * hi - p * lo) / maxq;
        *zero = nearbyint(-p * lo / *scale);
        *kmin = 0;
        *kmax = maxq;
    }
}

static void ref_quant_segment(const double *x, double *out, int n, int bits, bool asym, bool mse) {
    double s, z;
    int kmin, kmax;
    ref_grid(x, n, bits, asym, 1.0, &s, &z, &kmin, &kmax);
    if (mse) {
        double best = INFINITY;
        for (int i = 0; i < 80; i++) {
            double p = 1.0 - i / 100.0, s1, z1, err = 0;
            int a, b;
            ref_grid(x, n, bits, asym, p, &s1, &z1, &a, &b);
            for (int j = 0; j < n; j++) err += pow(fabs(nearest(x[j], s1, z1, a, b) - x[j]), 2.4);
            if (err < best) { best = err; s = s1; z = z1; }
        }
    }
    for (int j = 0; j < n; j++) out[j] = nearest(x[j], s, z, kmin, kmax);
}

/* The codes RTN returns: in range, the zero code of a symmetric grid 2^(b-1), decoding to exactly
 * the floats it left; as int8 (symmetric, per row, <= 7 bits) scale·q gives them back too. */
static void check_codes(const rotq_qweight *c, const float *q, int rows, int cols, int bits, bool asym, int group) {
    CHECK(c && c->rows == rows && c->cols == cols && c->bits == bits && c->asym == asym &&
              c->group == (group > 0 && group < cols ? group : cols), "codes' shape");
    if (!c) return;
    float *back = malloc(sizeof(float) * (size_t)(rows * cols));
    rotq_qweight_dequantize(c, back);
    CHECK(!memcmp(back, q, sizeof(float) * (size_t)(rows * cols)), "W%d%s g%d: codes do not decode to RTN's weights", bits,
          asym ? " asym" : "", group);
    int bad = 0, ng = (cols + (int)c->group - 1) / (int)c->group;
    for (int i = 0; i < rows * cols; i++) bad += c->u[i] >= (1 << bits);
    for (int i = 0; i < rows * ng; i++) bad += asym ? (c->zero[i] < 0 || c->zero[i] >= (1 << bits)) : c->zero[i] != 1 << (bits - 1);
    CHECK(bad == 0, "W%d%s: %d codes or zero points off the grid", bits, asym ? " asym" : "", bad);
    int8_t *i8 = malloc((size_t)(rows * cols));
    float *sc = malloc(sizeof(float) * (size_t)rows);
    rotq_status st = rotq_qweight_int8(c, 0, rows, i8, sc);
    if (!asym && group <= 0 && bits <= 7) {
        double worst = 0;
        for (int i = 0; i < rows * cols; i++) worst = fmax(worst, fabs((double)sc[i / cols] * i8[i] - q[i]) / (fabs(q[i]) + 1e-30));
        CHECK(st == ROTQ_OK && worst < 1e-6, "W%d int8 codes: %s, worst relative %.3g", bits, rotq_last_error(), worst);
    } else {
        CHECK(st == ROTQ_ERR_UNSUPPORTED, "W%d%s g%d: int8 codes must be refused", bits, asym ? " asym" : "", group);
    }
    free(back), free(i8), free(sc);
}

static void check_against_reference(int rows, int cols, int bits, bool asym, int group, bool mse) {
    float *w = malloc(sizeof(float) * (size_t)(rows * cols));
    double *x = malloc(sizeof(double) * (size_t)cols), *ref = malloc(sizeof(double) * (size_t)cols);
    for (int i = 0; i < rows * cols; i++) w[i] = (float)(nrand() * (i % 7 == 0 ? 3.0 : 0.5) + (asym ? 0.3 : 0.0));
    float *q = malloc(sizeof(float) * (size_t)(rows * cols));
    memcpy(q, w, sizeof(float) * (size_t)(rows * cols));
    rotq_wq_format f = rotq_wq_format_make(bits, asym, group, mse);
    rotq_qweight *codes = NULL;
    CHECK(rotq_rtn_quantize(q, rows, cols, &f, &codes) == ROTQ_OK, "%s", rotq_last_error());
    check_codes(codes, q, rows, cols, bits, asym, group);
    rotq_qweight_free(codes);
    int g = group > 0 ? group : cols, bad = 0;
    double worst = 0;
    for (int r = 0; r < rows; r++) {
        for (int c = 0; c < cols; c++) x[c] = w[r * cols + c];
        for (int c0 = 0; c0 < cols; c0 += g) {
            int n = cols - c0 < g ? cols - c0 : g;
            ref_quant_segment(x + c0, ref + c0, n, bits, asym, mse);
        }
        for (int c = 0; c < cols; c++) {
            double d = fabs((double)q[r * cols + c] - (double)(float)ref[c]);
            worst = fmax(worst, d);
            bad += d > 0;
        }
    }
    CHECK(bad == 0, "RTN %d-bit %s group %d%s: %d of %d weights differ from the reference (worst %g)", bits,
          asym ? "asym" : "sym", group, mse ? " clip-search" : "", bad, rows * cols, worst);
    free(w); free(x); free(ref); free(q);
}

/* Rows built from grid points: k·2^-5 for k in the grid, with both ends present so the scale the
 * quantizer derives is exactly 2^-5. Quantizing must return every value unchanged. */
static void check_on_grid(int bits, bool asym, int group, bool mse) {
    enum { R = 6, C = 96 };
    float w[R * C], q[R * C];
    int g = group > 0 ? group : C;
    for (int r = 0; r < R; r++)
        for (int c0 = 0; c0 < C; c0 += g) {
            int lo, hi;
            if (asym) { int z = (int)(urand() * ((1 << bits) - 1)); lo = -z; hi = (1 << bits) - 1 - z; }
            else { hi = (1 << (bits - 1)) - 1; lo = -hi; }
            for (int c = c0; c < c0 + g && c < C; c++) {
                int k = c == c0 ? lo : c == c0 + 1 ? hi : lo + (int)(urand() * (hi - lo + 1));
                if (k > hi) k = hi;
                w[r * C + c] = (float)ldexp(k, -5);
            }
        }
    memcpy(q, w, sizeof q);
    rotq_wq_format f = rotq_wq_format_make(bits, asym, group, mse);
    CHECK(rotq_rtn_quantize(q, R, C, &f, NULL) == ROTQ_OK, "%s", rotq_last_error());
    int changed = 0;
    for (int i = 0; i < R * C; i++) changed += q[i] != w[i];
    CHECK(changed == 0, "%d-bit %s group %d%s: %d values already on the grid moved", bits, asym ? "asym" : "sym", group,
          mse ? " clip-search" : "", changed);
}

static void check_distinct_levels(void) {
    /* every row of a per-channel b-bit result holds at most 2^b distinct values */
    enum { R = 8, C = 300 };
    static float w[R * C];
    for (int bits = 2; bits <= 8; bits++) {
        for (int i = 0; i < R * C; i++) w[i] = (float)nrand();
        rotq_wq_format f = rotq_wq_format_make(bits, bits % 2 == 0, -1, false);
        CHECK(rotq_rtn_quantize(w, R, C, &f, NULL) == ROTQ_OK, "%s", rotq_last_error());
        for (int r = 0; r < R; r++) {
            float seen[256];
            int n = 0;
            for (int c = 0; c < C; c++) {
                int k = 0;
                while (k < n && seen[k] != w[r * C + c]) k++;
                if (k == n && n < 256) seen[n++] = w[r * C + c];
            }
            CHECK(n <= (1 << bits), "%d-bit row %d has %d distinct values", bits, r, n);
            CHECK(bits < 6 || n > (1 << bits) / 4, "%d-bit row %d uses only %d levels", bits, r, n);
        }
    }
}

static void check_edges(void) {
    float z[2 * 16] = {0};
    for (int asym = 0; asym < 2; asym++) {
        rotq_wq_format f = rotq_wq_format_make(4, asym, -1, true);
        CHECK(rotq_rtn_quantize(z, 2, 16, &f, NULL) == ROTQ_OK, "%s", rotq_last_error());
        int nz = 0;
        for (int i = 0; i < 32; i++) nz += z[i] != 0.0f;
        CHECK(nz == 0, "an all-zero row must stay zero (%s, %d nonzero)", asym ? "asym" : "sym", nz);
    }
    /* a row with one large weight keeps it (it sets the scale), small ones round to 0 */
    float o[16];
    for (int i = 0; i < 16; i++) o[i] = 1e-4f * (float)(i - 8);
    o[5] = 1000.0f;
    rotq_wq_format f = rotq_wq_format_make(4, false, -1, false);
    CHECK(rotq_rtn_quantize(o, 1, 16, &f, NULL) == ROTQ_OK, "%s", rotq_last_error());
    CHECK(fabsf(o[5] - 1000.0f) < 1e-3f && o[0] == 0.0f, "outlier row: %g %g", (double)o[5], (double)o[0]);

    float bad[4] = {1, 2, NAN, 3};
    CHECK(rotq_rtn_quantize(bad, 1, 4, &f, NULL) == ROTQ_ERR_NUMERIC, "NaN weight must be ROTQ_ERR_NUMERIC");
    CHECK(strstr(rotq_last_error(), "non-finite") != NULL, "message: %s", rotq_last_error());
    float inf[4] = {1, INFINITY, 0, 3};
    CHECK(rotq_rtn_quantize(inf, 2, 2, &f, NULL) == ROTQ_ERR_NUMERIC, "Inf weight must be ROTQ_ERR_NUMERIC");
    rotq_wq_format b9 = rotq_wq_format_make(9, false, -1, false), b1 = rotq_wq_format_make(1, false, -1, false);
    CHECK(rotq_rtn_quantize(o, 1, 16, &b9, NULL) == ROTQ_ERR_ARG, "9 bits must be refused");
    CHECK(rotq_rtn_quantize(o, 1, 16, &b1, NULL) == ROTQ_ERR_ARG, "1 bit must be refused");
}

static void check_clip_helps(void) {
    /* heavy tails: the clip search must not raise the L2.4 error, and must lower it here */
    enum { R = 16, C = 256 };
    static float w[R * C], a[R * C], b[R * C];
    for (int i = 0; i < R * C; i++) w[i] = (float)(nrand() * (urand() < 0.01 ? 20 : 1));
    memcpy(a, w, sizeof w);
    memcpy(b, w, sizeof w);
    rotq_wq_format plain = rotq_wq_format_make(4, false, -1, false), mse = rotq_wq_format_make(4, false, -1, true);
    rotq_rtn_quantize(a, R, C, &plain, NULL);
    rotq_rtn_quantize(b, R, C, &mse, NULL);
    double ea = 0, eb = 0;
    for (int i = 0; i < R * C; i++) {
        ea += pow(fabs((double)a[i] - w[i]), 2.4);
        eb += pow(fabs((double)b[i] - w[i]), 2.4);
    }
    CHECK(eb < 0.9 * ea, "clip search error %g vs plain %g", eb, ea);
}

/* Block-format scales: float16 scales (Q4_0's) are float16 values; Q6_K's super-block step makes
 * every group scale d·sc with d float16, sc an integer in [1, 127], the largest exactly 127, and
 * moves each scale by at most half a step of d; the codes then decode to those scales exactly. */
static void check_block_scales(void) {
    enum { R = 8, C = 512 };
    static float w[R * C], ref[R * C];
    for (int i = 0; i < R * C; i++) ref[i] = w[i] = (float)(nrand() * (i % 97 == 0 ? 8 : 1) * 0.02);
    rotq_wq_format f16 = rotq_wq_format_make(4, false, 32, true);
    f16.scale_fp16 = true;
    rotq_qweight *q = NULL;
    CHECK(rotq_rtn_quantize(w, R, C, &f16, &q) == ROTQ_OK, "rtn fp16");
    for (int64_t g = 0; q && g < R * C / 32; g++)
        CHECK((double)rotq_f16_to_f32(rotq_f32_to_f16((float)q->scale[g])) == q->scale[g], "group %lld scale %.9g not float16", (long long)g, q->scale[g]);
    rotq_qweight_free(q);

    /* Q4_1's grid: asymmetric, scales of 7 mantissa bits, so the stored min −d·z is a float16 */
    rotq_wq_format q41 = rotq_wq_format_make(4, true, 32, true);
    q41.scale_fp16 = true;
    q41.scale_mant_bits = 7;
    memcpy(w, ref, sizeof w);
    CHECK(rotq_rtn_quantize(w, R, C, &q41, &q) == ROTQ_OK, "rtn q4_1 grid");
    for (int64_t g = 0; q && g < R * C / 32; g++) {
        double d = q->scale[g], m = -d * q->zero[g];
        int e;
        double frac = frexp(d, &e);
        CHECK(ldexp(frac, 7) == nearbyint(ldexp(frac, 7)), "group %lld: scale %.9g has more than 7 mantissa bits", (long long)g, d);
        CHECK((double)rotq_f16_to_f32(rotq_f32_to_f16((float)m)) == m && q->zero[g] >= 0 && q->zero[g] <= 15,
              "group %lld: min %.9g (zero %d) is not a float16", (long long)g, m, q->zero[g]);
    }
    rotq_qweight_free(q);

    double s[32], before[32];
    for (int g = 0; g < 32; g++) before[g] = s[g] = 1e-3 * (1 + 3 * urand());
    rotq_wq_format k6 = rotq_wq_format_make(6, false, 16, true);
    k6.super_groups = 16;
    k6.super_max = 127;
    rotq_wq_super_scales(&k6, s, NULL, 32);
    for (int b = 0; b < 2; b++) {
        double mx = 0, d;
        for (int g = 0; g < 16; g++) mx = fmax(mx, s[16 * b + g]);
        d = mx / 127;
        CHECK((double)rotq_f16_to_f32(rotq_f32_to_f16((float)d)) == d, "super-block %d: d %.9g not float16", b, d);
        for (int g = 0; g < 16; g++) {
            double sc = s[16 * b + g] / d;
            CHECK(sc == nearbyint(sc) && sc >= 1 && sc <= 127 && d * sc == s[16 * b + g], "super-block %d group %d: sc %.9g", b, g, sc);
            CHECK(fabs(s[16 * b + g] - before[16 * b + g]) <= 0.5 * d * (1 + 1e-9) + 1e-3 * 4 * 0x1p-11, "group %d moved %.3g (d %.3g)", g,
                  s[16 * b + g] - before[16 * b + g], d);
        }
    }
    memcpy(w, ref, sizeof w);
    CHECK(rotq_rtn_quantize(w, R, C, &k6, &q) == ROTQ_OK, "rtn q6_k grid");
    float back[R * C];
    if (q) rotq_qweight_dequantize(q, back);
    CHECK(q && memcmp(back, w, sizeof back) == 0, "the codes decode to the quantized weights");
    rotq_qweight_free(q);
}

/* The K-quants' grid with float mins (Q4_K: 8 groups of 32 per super-block, 6-bit sc and m; Q2_K:
 * 16 of 16, 4-bit): every group scale is d·sc and min dmin·m with float16 d, dmin per super-block,
 * integer sc in 1..top and m in 0..top; the codes are the nearest grid points; the floats left are
 * s·u − mn. */
static void check_min_grid(rotq_dtype dt, int bits, int group, int top) {
    enum { R = 6, C = 512 };
    static float w[R * C], back[R * C];
    for (int i = 0; i < R * C; i++) w[i] = (float)(nrand() * 0.02 + (i % 7 == 0 ? 0.03 : 0.0));
    static float orig[R * C];
    memcpy(orig, w, sizeof w);
    rotq_wq_format f = rotq_wq_format_make(bits, true, group, true);
    f.super_groups = 256 / group;
    f.super_max = f.min_max = top;
    rotq_qweight *q = NULL;
    CHECK(rotq_rtn_quantize(w, R, C, &f, &q) == ROTQ_OK && q && q->mn, "rtn on the %d-bit min grid: %s", bits, rotq_last_error());
    if (!q) return;
    int64_t ng = C / group, maxq = (1 << bits) - 1;
    for (int64_t r = 0; r < R; r++)
        for (int64_t b = 0; b < ng / f.super_groups; b++) {
            double smax = 0, mmax = 0;
            for (int g = 0; g < f.super_groups; g++) {
                smax = fmax(smax, q->scale[r * ng + b * f.super_groups + g]);
                mmax = fmax(mmax, q->mn[r * ng + b * f.super_groups + g]);
            }
            double d = smax / top, dm = mmax / top;
            CHECK((double)rotq_f16_to_f32(rotq_f32_to_f16((float)d)) == d && (double)rotq_f16_to_f32(rotq_f32_to_f16((float)dm)) == dm,
                  "row %lld block %lld: d %.9g, dmin %.9g are float16", (long long)r, (long long)b, d, dm);
            for (int g = 0; g < f.super_groups; g++) {
                int64_t gi = r * ng + b * f.super_groups + g;
                double sc = q->scale[gi] / d, m = dm > 0 ? q->mn[gi] / dm : 0;
                CHECK(sc == nearbyint(sc) && sc >= 1 && sc <= top && m == nearbyint(m) && m >= 0 && m <= top && q->zero[gi] == 0,
                      "group %lld: sc %.9g, m %.9g on the grid", (long long)gi, sc, m);
            }
        }
    rotq_qweight_dequantize(q, back);
    CHECK(memcmp(back, w, sizeof w) == 0, "the codes decode to the weights left");
    int worse = 0;
    for (int64_t i = 0; i < R * C; i++) {
        int64_t gi = (i / C) * ng + (i % C) / group;
        double s = q->scale[gi], mn = q->mn[gi], x = orig[i], e = fabs(s * q->u[i] - mn - x);
        CHECK(q->u[i] <= maxq, "code %d of %d bits", q->u[i], bits);
        for (int du = -1; du <= 1; du += 2) {
            int64_t u = (int64_t)q->u[i] + du;
            if (u >= 0 && u <= maxq && fabs(s * (double)u - mn - x) < e - 1e-12) worse++;
        }
    }
    CHECK(worse == 0, "%d codes are not the nearest grid point", worse);
    /* packed into the type's blocks, they decode (rotq's dequantizer, llama.cpp's layout) to the same floats */
    static uint8_t blocks[R * C];
    static float dec[R * C];
    rotq_status st = ROTQ_OK;
    uint64_t row_bytes = rotq_dtype_nbytes(dt, C);
    for (int64_t r = 0; r < R && st == ROTQ_OK; r++) {
        st = rotq_block_pack(dt, q->u + r * C, q->scale + r * ng, q->zero + r * ng, q->mn + r * ng, C, blocks + r * row_bytes);
        if (st == ROTQ_OK) st = rotq_dequantize(dt, blocks + r * row_bytes, dec + r * C, C);
    }
    CHECK(st == ROTQ_OK && memcmp(dec, w, sizeof dec) == 0, "%s blocks decode to the quantized weights (%s)", rotq_dtype_name(dt),
          rotq_last_error());
    rotq_qweight_free(q);
}

/* The clip search weighted by column importance: with all-ones weights it chooses what the plain one
 * does; with uneven weights its weighted error is no larger than the plain choice's (it minimizes
 * that objective over the same candidates), and strictly smaller here for the symmetric grid. */
static double weighted_err(const double *x, const double *w, int n, const rotq_wq_format *f, double s, double z) {
    double e = 0;
    int32_t maxq = rotq_wq_maxq(f);
    for (int i = 0; i < n; i++) e += w[i] * pow(fabs(rotq_wq_qdq(x[i], s, z, maxq, f->asym) - x[i]), 2.4);
    return e;
}

static void check_weighted_scales(void) {
    enum { N = 64 };
    double x[N], ones[N], w[N];
    for (int i = 0; i < N; i++) {
        x[i] = nrand() * (i == 5 ? 6 : 1);
        ones[i] = 1.0;
        w[i] = i == 5 ? 1e-4 : 1.0 + (i % 3); /* the outlier hardly matters: clipping it pays */
    }
    for (int asym = 0; asym < 2; asym++) {
        rotq_wq_format f = rotq_wq_format_make(4, asym, -1, true);
        double s0, z0, s1, z1, s2, z2;
        rotq_wq_params(x, N, &f, &s0, &z0);
        rotq_wq_params_weighted(x, ones, N, &f, &s1, &z1);
        rotq_wq_params_weighted(x, w, N, &f, &s2, &z2);
        CHECK(s0 == s1 && z0 == z1, "all-ones weights change the choice (%.9g vs %.9g)", s0, s1);
        double e0 = weighted_err(x, w, N, &f, s0, z0), e2 = weighted_err(x, w, N, &f, s2, z2);
        CHECK(asym ? e2 <= e0 : e2 < e0, "%s: the weighted search's weighted error %.6g is not below the plain choice's %.6g",
              asym ? "asym" : "sym", e2, e0);
    }
}

int main(void) {
    check_block_scales();
    for (int bits = 2; bits <= 8; bits++) {
        check_against_reference(5, 64, bits, false, -1, false);
        check_against_reference(5, 64, bits, true, -1, false);
    }
    check_against_reference(7, 100, 4, false, 32, false);   /* last group partial */
    check_against_reference(7, 96, 3, true, 16, false);
    check_against_reference(6, 70, 4, false, -1, true);
    check_against_reference(6, 70, 4, true, -1, true);
    check_against_reference(6, 64, 4, true, 16, true);
    for (int bits = 2; bits <= 8; bits++)
        for (int asym = 0; asym < 2; asym++) {
            check_on_grid(bits, asym, -1, false);
            check_on_grid(bits, asym, 32, false);
            check_on_grid(bits, asym, -1, true);
            check_on_grid(bits, asym, 24, true);
        }
    check_distinct_levels();
    check_edges();
    check_clip_helps();
    check_min_grid(ROTQ_Q4_K, 4, 32, 63);
    check_min_grid(ROTQ_Q5_K, 5, 32, 63);
    check_min_grid(ROTQ_Q2_K, 2, 16, 15);
    check_weighted_scales();
    return tu_finish("test_quant_rtn");
}
