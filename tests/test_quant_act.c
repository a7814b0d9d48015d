/* Activation and KV-cache fake quantization against a plain reference written here (per row or
 * group: the range, the grid listed point by point, nearest point by search), on edge cases (zero
 * rows, one huge outlier, values near FLT_MAX, clipping, NaN/Inf → a clear error), and the hooks:
 * which tensors they touch (K but never Q, V, every linear input but lm_head by default), and that
 * KV is quantized per head. */
#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "quant/quant.h"
#include "testutil.h"

static uint64_t rs = 0x13198A2E03707344ull;
static double urand(void) {
    rs ^= rs >> 12; rs ^= rs << 25; rs ^= rs >> 27;
    return (double)((rs * 2685821657736338717ull) >> 11) / 9007199254740992.0;
}
static double nrand(void) { return sqrt(-2.0 * log(urand() + 1e-300)) * cos(2 * M_PI * urand()); }

/* QuaRot's ActQuantizer semantics in float32: range [min(x,0), max(x,0)]·clip; symmetric scale
 * max|range|/(2^(b-1)-1) (1 when the row is 0), asymmetric (max-min)/(2^b-1) with an integer zero. */
static void ref_segment(const float *x, float *out, int n, int bits, bool asym, float clip) {
    float lo = 0, hi = 0;
    for (int i = 0; i < n; i++) { lo = fminf(lo, x[i]); hi = fmaxf(hi, x[i]); }
    lo *= clip;
    hi *= clip;
    float scale, zero = 0;
    int kmin, kmax;
    if (!asym) {
        int maxq = (1 << (bits - 1)) - 1;
        float m = fmaxf(-lo, hi);
        scale = m == 0 ? 1.0f : m / (float)maxq;
        kmin = -maxq - 1;
        kmax = maxq;
    } else {
        int maxq = (1 << bits) - 1;
        if (lo == 0 && hi == 0) { lo = -1; hi = 1; }
        scale = (hi - lo) / (float)maxq;
        zero = nearbyintf(-lo / scale);
        kmin = 0;
        kmax = maxq;
    }
    for (int i = 0; i < n; i++) {
        /* nearest integer k of the grid to x/scale, by search */
        float v = x[i] / scale;
        int best = kmin;
        double bd = INFINITY;
        for (int k = kmin; k <= kmax; k++) {
            double d = fabs((double)v + zero - k);
            if (d < bd) { bd = d; best = k; }
        }
        out[i] = ((float)best - zero) * scale;
    }
}

static void check_reference(int rows, int cols, int bits, bool asym, float clip, int group) {
    float *x = malloc(sizeof(float) * (size_t)(rows * cols)), *q = malloc(sizeof(float) * (size_t)(rows * cols));
    float *ref = malloc(sizeof(float) * (size_t)cols);
    for (int i = 0; i < rows * cols; i++) x[i] = (float)(nrand() * (i % 13 == 0 ? 8 : 1) + (asym ? 0.5 : 0));
    memcpy(q, x, sizeof(float) * (size_t)(rows * cols));
    rotq_act_format f = {.bits = bits, .asym = asym, .clip = clip, .group = group};
    CHECK(rotq_act_quantize(q, rows, cols, &f) == ROTQ_OK, "%s", rotq_last_error());
    int g = group > 0 ? group : cols, bad = 0;
    for (int r = 0; r < rows; r++) {
        for (int c0 = 0; c0 < cols; c0 += g) {
            int n = cols - c0 < g ? cols - c0 : g;
            ref_segment(x + r * cols + c0, ref + c0, n, bits, asym, clip);
        }
        for (int c = 0; c < cols; c++) bad += q[r * cols + c] != ref[c];
    }
    CHECK(bad == 0, "act %d-bit %s clip %.2f group %d: %d of %d values differ from the reference", bits,
          asym ? "asym" : "sym", (double)clip, group, bad, rows * cols);
    free(x); free(q); free(ref);
}

static void check_edges(void) {
    rotq_act_format s4 = {.bits = 4, .asym = false, .clip = 1.0f, .group = -1};
    rotq_act_format a4 = {.bits = 4, .asym = true, .clip = 1.0f, .group = -1};
    /* all-zero rows stay zero, and do not disturb their neighbours */
    float z[3 * 8] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, -7, -5, -3, -1, 0, 2, 4, 7};
    CHECK(rotq_act_quantize(z, 3, 8, &s4) == ROTQ_OK, "%s", rotq_last_error());
    for (int i = 0; i < 16; i++) CHECK(z[i] == 0.0f, "zero row value %d became %g", i, (double)z[i]);
    for (int i = 16; i < 24; i++) CHECK(z[i] == (float)(int)z[i], "row 3 holds integers on the 4-bit grid: %g", (double)z[i]);
    CHECK(z[16] == -7.0f && z[21] == 2.0f && z[23] == 7.0f, "row 3 %g %g %g", (double)z[16], (double)z[21], (double)z[23]);
    float za[8] = {0};
    CHECK(rotq_act_quantize(za, 1, 8, &a4) == ROTQ_OK, "%s", rotq_last_error());
    for (int i = 0; i < 8; i++) CHECK(za[i] == 0.0f, "asym zero row value %d became %g", i, (double)za[i]);

    /* one huge outlier: it survives (to float rounding), everything else in its row rounds to 0 */
    float o[64];
    for (int i = 0; i < 64; i++) o[i] = (float)nrand();
    o[17] = 1e30f;
    CHECK(rotq_act_quantize(o, 1, 64, &s4) == ROTQ_OK, "%s", rotq_last_error());
    CHECK(fabs(o[17] / 1e30 - 1) < 1e-6, "outlier came back as %g", (double)o[17]);
    int nz = 0;
    for (int i = 0; i < 64; i++) nz += i != 17 && o[i] != 0.0f;
    CHECK(nz == 0, "%d small values survived next to a 1e30 outlier", nz);

    /* values near ±FLT_MAX: the asymmetric range overflows float, the result must stay finite */
    float big[4] = {FLT_MAX, -FLT_MAX, 1.0f, -0.5f * FLT_MAX};
    CHECK(rotq_act_quantize(big, 1, 4, &a4) == ROTQ_OK, "%s", rotq_last_error());
    for (int i = 0; i < 4; i++) CHECK(isfinite(big[i]), "FLT_MAX row value %d became %g", i, (double)big[i]);
    CHECK(fabs(big[0] / FLT_MAX - 1) < 0.1 && fabs(big[1] / FLT_MAX + 1) < 0.1, "ends %g %g", (double)big[0], (double)big[1]);

    /* clipping: with ratio 0.5 the largest value lands on the top of a grid over half the range */
    float c[5] = {-1.0f, 0.25f, 0.5f, 0.75f, 1.0f};
    rotq_act_format s4c = s4;
    s4c.clip = 0.5f;
    CHECK(rotq_act_quantize(c, 1, 5, &s4c) == ROTQ_OK, "%s", rotq_last_error());
    CHECK(c[4] == 0.5f && c[0] == -0.5f * 8 / 7, "clipped ends %g %g", (double)c[4], (double)c[0]);

    /* NaN / Inf: a clear error naming the row, nothing quantized silently */
    float bad[3 * 4] = {1, 2, 3, 4, 5, 6, NAN, 8, 9, 10, 11, 12};
    CHECK(rotq_act_quantize(bad, 3, 4, &s4) == ROTQ_ERR_NUMERIC, "NaN activation must be ROTQ_ERR_NUMERIC");
    CHECK(strstr(rotq_last_error(), "row 1") && strstr(rotq_last_error(), "column 2"), "message: %s", rotq_last_error());
    float inf[4] = {1, 2, 3, -INFINITY};
    CHECK(rotq_act_quantize(inf, 1, 4, &a4) == ROTQ_ERR_NUMERIC, "-Inf activation must be ROTQ_ERR_NUMERIC");
    /* bad settings */
    rotq_act_format b9 = {.bits = 9, .clip = 1.0f}, c0 = {.bits = 4, .clip = 0.0f}, c2 = {.bits = 4, .clip = 1.5f};
    CHECK(rotq_act_quantize(o, 1, 64, &b9) == ROTQ_ERR_ARG, "9 bits must be refused");
    CHECK(rotq_act_quantize(o, 1, 64, &c0) == ROTQ_ERR_ARG, "clip 0 must be refused");
    CHECK(rotq_act_quantize(o, 1, 64, &c2) == ROTQ_ERR_ARG, "clip 1.5 must be refused");
    /* 16 bits: off, untouched */
    float keep[3] = {0.1f, 0.2f, 0.3f};
    rotq_act_format off = {.bits = 16, .clip = 1.0f};
    CHECK(rotq_act_quantize(keep, 1, 3, &off) == ROTQ_OK && keep[1] == 0.2f, "16 bits must leave values alone");
}

/* ---- hooks ---- */

enum { T = 5, NH = 4, NKV = 2, HD = 8 };

static void check_hooks(void) {
    rotq_fakequant fq;
    memset(&fq, 0, sizeof fq);
    fq.act = (rotq_act_format){.bits = 4, .asym = false, .clip = 1.0f, .group = -1};
    fq.k = (rotq_act_format){.bits = 3, .asym = true, .clip = 1.0f, .group = HD};
    fq.v = (rotq_act_format){.bits = 16, .clip = 1.0f};
    rotq_hooks h = rotq_fakequant_hooks(&fq);
    CHECK(h.linear_input && h.qk_rope && h.v && !h.down_input, "hook set");

    float q[T * NH * HD], k[T * NKV * HD], q0[T * NH * HD], k0[T * NKV * HD], v[T * NKV * HD], v0[T * NKV * HD];
    for (int i = 0; i < T * NH * HD; i++) q[i] = q0[i] = (float)nrand();
    /* head 1 of each token 100x larger: per-head scales keep head 0 precise */
    for (int i = 0; i < T * NKV * HD; i++) k[i] = k0[i] = (float)(nrand() * ((i / HD) % 2 ? 100 : 1));
    for (int i = 0; i < T * NKV * HD; i++) v[i] = v0[i] = (float)nrand();
    CHECK(h.qk_rope(h.ctx, 0, q, k, T, 0, NH, NKV, HD) == ROTQ_OK, "%s", rotq_last_error());
    CHECK(memcmp(q, q0, sizeof q) == 0, "the K hook must leave Q in float");
    float ref[HD];
    int bad = 0;
    for (int seg = 0; seg < T * NKV; seg++) {
        ref_segment(k0 + seg * HD, ref, HD, 3, true, 1.0f);
        for (int i = 0; i < HD; i++) bad += k[seg * HD + i] != ref[i];
    }
    CHECK(bad == 0, "K: %d values differ from per-head reference quantization", bad);
    CHECK(h.v(h.ctx, 0, v, T, 0, NKV, HD) == ROTQ_OK && memcmp(v, v0, sizeof v) == 0, "V at 16 bits must stay float");

    float x[T * 16], x0[T * 16];
    for (int i = 0; i < T * 16; i++) x[i] = x0[i] = (float)nrand();
    CHECK(h.linear_input(h.ctx, -1, ROLE_LM_HEAD, x, T, 16) == ROTQ_OK && memcmp(x, x0, sizeof x) == 0,
          "lm_head's input stays float by default");
    CHECK(h.linear_input(h.ctx, 3, ROLE_DOWN, x, T, 16) == ROTQ_OK && memcmp(x, x0, sizeof x) != 0,
          "down_proj's input is quantized");
    fq.act_lm_head = true;
    memcpy(x, x0, sizeof x);
    CHECK(h.linear_input(h.ctx, -1, ROLE_LM_HEAD, x, T, 16) == ROTQ_OK && memcmp(x, x0, sizeof x) != 0,
          "act_lm_head quantizes lm_head's input");
    /* a NaN reaching a hook: the error names layer and site */
    x[7] = NAN;
    CHECK(h.linear_input(h.ctx, 2, ROLE_O, x, T, 16) == ROTQ_ERR_NUMERIC, "NaN at a hook must fail");
    CHECK(strstr(rotq_last_error(), "layer 2") != NULL, "message: %s", rotq_last_error());
    k[3] = INFINITY;
    CHECK(h.qk_rope(h.ctx, 4, q, k, T, 10, NH, NKV, HD) == ROTQ_ERR_NUMERIC, "Inf in K must fail");
    CHECK(strstr(rotq_last_error(), "K cache") != NULL, "message: %s", rotq_last_error());
}

int main(void) {
    for (int bits = 2; bits <= 8; bits++) {
        check_reference(33, 40, bits, false, 1.0f, -1);
        check_reference(33, 40, bits, true, 1.0f, -1);
    }
    check_reference(20, 64, 4, false, 0.9f, -1);
    check_reference(20, 64, 4, true, 0.95f, -1);
    check_reference(20, 64, 4, true, 0.95f, 16);
    check_reference(20, 70, 4, false, 1.0f, 32);   /* last group partial */
    check_reference(600, 256, 4, false, 0.9f, -1); /* large enough to run threaded */
    check_edges();
    check_hooks();
    return tu_finish("test_quant_act");
}
