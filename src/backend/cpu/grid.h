/* Integer grids of activation rows, as QuaRot's ActQuantizer computes them in float32: shared by the
 * CPU's fake quantization (quant_rows.c) and the integer codes (quant/act.c), so that the codes are
 * exactly the fake-quantized values over the scale. */
#ifndef ROTQ_BACKEND_CPU_GRID_H
#define ROTQ_BACKEND_CPU_GRID_H
#include <math.h>
#include <stdbool.h>
#include <stdint.h>

#include "core/model.h"

/* Round half to even of v, |v| <= 2^22, without a libm call: adding 1.5·2^23 leaves no fraction
 * bits, and the FPU's default rounding is to nearest even. */
static inline float round_even(float v) { return (v + 0x1.8p23f) - 0x1.8p23f; }

/* The integer x rounds to on a grid of `scale` over [lo, hi]. Clamping before rounding equals
 * rounding before clamping: the bounds are integers. Fake quantization and integer codes both go
 * through here, so the codes are exactly the fake-quantized values over the scale. */
static inline float grid_round(float x, float scale, float lo, float hi) {
    float v = x / scale;
    v = v < lo ? lo : v > hi ? hi : v;
    return round_even(v);
}

/* Largest grid integer: 2^b − 1 asymmetric, 2^(b−1) − 1 symmetric. */
static inline int32_t grid_maxq(const rotq_act_format *f) { return f->asym ? (1 << f->bits) - 1 : (1 << (f->bits - 1)) - 1; }

/* The grid of one segment: scale, and the integer range [lo, hi] its values round into (lo = -zero
 * for asymmetric grids). False when the segment holds NaN/Inf. */
static inline bool segment_grid(const float *x, int64_t n, int32_t maxq, bool asym, float clip, rotq_sym_range range,
                                float *scale_out, float *lo_out, float *hi_out) {
    float mn = 0.0f, mx = 0.0f;
    bool finite = true;
    for (int64_t i = 0; i < n; i++) {
        float v = x[i];
        finite &= isfinite(v);
        mn = v < mn ? v : mn;
        mx = v > mx ? v : mx;
    }
    if (!finite) return false;
    mn *= clip;
    mx *= clip;
    float scale, lo, hi;
    if (!asym) {
        float m = -mn > mx ? -mn : mx;
        /* FULL and SIGNED put the range on −(maxq+1); SIGNED's negative scale when the largest
         * magnitude is positive brings it there too; HALF on ±(maxq + ½), rounding to the ends (rotq_sym_range) */
        float levels = range == ROTQ_SYM_MAXQ ? (float)maxq : range == ROTQ_SYM_HALF ? (float)maxq + 0.5f : (float)maxq + 1.0f;
        scale = m == 0.0f ? 1.0f : m / levels;
        if (range == ROTQ_SYM_SIGNED && mx > -mn) scale = -scale;
        lo = -(float)maxq - 1.0f;
        hi = (float)maxq;
    } else {
        if (mn == 0.0f && mx == 0.0f) { mn = -1.0f; mx = 1.0f; }
        float range = mx - mn;
        /* a range past FLT_MAX (values near ±FLT_MAX of both signs) is formed in double */
        scale = isfinite(range) ? range / (float)maxq : (float)(((double)mx - (double)mn) / maxq);
        float zero = nearbyintf(-mn / scale);
        lo = -zero;
        hi = (float)maxq - zero;
    }
    *scale_out = scale;
    *lo_out = lo;
    *hi_out = hi;
    return true;
}

#endif
