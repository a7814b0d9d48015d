/* Per-token dynamic fake quantization of activation rows on the CPU (QuaRot's ActQuantizer): each
 * row (or group within it) gets its own scale from its own range, in float32. */
#include <float.h>
#include <math.h>

#include "backend/backend.h"
#include "backend/cpu/grid.h"
#include "core/minifloat.h"

rotq_status rotq_act_format_check(const rotq_act_format *f, const char *what) {
    if (!rotq_act_on(f)) return ROTQ_OK;
    if (f->num != ROTQ_NUM_INT) {
        const rotq_num_traits *t = rotq_num_traits_of(f->num);
        if (!t) return rotq_fail(ROTQ_ERR_ARG, "quant: %s number format %d (int, mxfp4, nvfp4 or fp8)", what, (int)f->num);
        if (f->bits != t->bits || f->asym)
            return rotq_fail(ROTQ_ERR_ARG, "quant: %s in %s: symmetric %d-bit elements (got %d bits%s)", what, t->name, t->bits,
                             f->bits, f->asym ? ", asymmetric" : "");
    }
    if (f->bits < 2 || f->bits > 8)
        return rotq_fail(ROTQ_ERR_ARG, "quant: %s bits %d outside 2..8 (16 = off)", what, f->bits);
    if (!(f->clip > 0.0f && f->clip <= 1.0f))
        return rotq_fail(ROTQ_ERR_ARG, "quant: %s clip ratio %g must be in (0, 1]", what, (double)f->clip);
    if ((unsigned)f->range > ROTQ_SYM_HALF)
        return rotq_fail(ROTQ_ERR_ARG, "quant: %s range convention %d (maxq, full, signed or half)", what, (int)f->range);
    return ROTQ_OK;
}

/* One segment in place; false when it holds NaN/Inf (left untouched then). */
static bool quant_segment(float *x, int64_t n, int32_t maxq, bool asym, float clip, rotq_sym_range range) {
    float scale, lo, hi;
    if (!segment_grid(x, n, maxq, asym, clip, range, &scale, &lo, &hi)) return false;
    if (fabs((double)scale) * (maxq + 1) < FLT_MAX) {
        for (int64_t i = 0; i < n; i++) x[i] = grid_round(x[i], scale, lo, hi) * scale;
    } else {
        /* a grid end beyond FLT_MAX (ranges near it): saturate instead of producing ±Inf */
        for (int64_t i = 0; i < n; i++) {
            double y = (double)grid_round(x[i], scale, lo, hi) * scale;
            x[i] = (float)(y > FLT_MAX ? FLT_MAX : y < -FLT_MAX ? -FLT_MAX : y);
        }
    }
    return true;
}

/* x ← s·round(x/s) on the format's elements: a loop the compiler vectorizes (the traits by value,
 * selects instead of branches; SSE2 has no 64-bit compares, hence the AVX2 clone). A grid whose top
 * s·max passes FLT_MAX (ranges near it) saturates in a second, rarely taken loop: the two-sided clamp
 * would keep the common one from vectorizing. */
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
__attribute__((target_clones("avx2", "default")))
#endif
static void fp_segment(float *restrict x, int64_t n, double s, rotq_num_traits t) {
    if (s * t.max <= FLT_MAX) {
        for (int64_t i = 0; i < n; i++) x[i] = (float)(s * rotq_minifloat_round((double)x[i] / s, &t));
        return;
    }
    for (int64_t i = 0; i < n; i++) {
        double y = s * rotq_minifloat_round((double)x[i] / s, &t);
        x[i] = (float)(y > FLT_MAX ? FLT_MAX : y < -FLT_MAX ? -FLT_MAX : y);
    }
}

/* One row in a float format, in place: groups of `group` with their own scales (NVFP4: and the
 * row's own tensor scale, a token being its own tensor); false when it holds NaN/Inf. */
static bool quant_row_fp(float *x, int64_t cols, int64_t group, const rotq_num_traits *t, float clip) {
    double amax = 0.0;
    bool finite = true;
    for (int64_t i = 0; i < cols; i++) {
        double a = fabs((double)x[i]);
        finite &= isfinite(x[i]);
        amax = a > amax ? a : amax;
    }
    if (!finite) return false;
    double ts = rotq_num_tensor_scale(t, clip * amax);
    for (int64_t g0 = 0; g0 < cols; g0 += group) {
        int64_t n = cols - g0 < group ? cols - g0 : group;
        double gmax = 0.0;
        for (int64_t i = 0; i < n; i++) {
            double a = fabs((double)x[g0 + i]);
            gmax = a > gmax ? a : gmax;
        }
        double s = rotq_num_scale(t, gmax, clip, ts, true, true);
        fp_segment(x + g0, n, s, *t);
    }
    return true;
}

rotq_status rotq_act_quantize(float *x, int64_t rows, int64_t cols, const rotq_act_format *f) {
    if (!rotq_act_on(f)) return ROTQ_OK;
    ROTQ_TRY(rotq_act_format_check(f, "activation"));
    if (rows < 0 || cols <= 0) return rotq_fail(ROTQ_ERR_ARG, "quant: activations of %lld x %lld", (long long)rows, (long long)cols);
    int32_t maxq = grid_maxq(f);
    const rotq_num_traits *t = rotq_num_traits_of(f->num);
    int64_t group = f->group > 0 ? f->group : t && t->block > 0 ? t->block : cols;
    if (group > cols) group = cols;
    int64_t first_bad = INT64_MAX;
#pragma omp parallel for schedule(static) reduction(min : first_bad) if (rows * cols > 65536)
    for (int64_t r = 0; r < rows; r++) {
        float *xr = x + r * cols;
        if (t) {
            if (!quant_row_fp(xr, cols, group, t, f->clip) && r < first_bad) first_bad = r;
            continue;
        }
        for (int64_t g0 = 0; g0 < cols; g0 += group) {
            int64_t n = cols - g0 < group ? cols - g0 : group;
            if (!quant_segment(xr + g0, n, maxq, f->asym, f->clip, f->range) && r < first_bad) first_bad = r;
        }
    }
    if (first_bad != INT64_MAX) {
        const float *xr = x + first_bad * cols;
        int64_t c = 0;
        while (c < cols && isfinite(xr[c])) c++;
        return rotq_fail(ROTQ_ERR_NUMERIC, "quant: activation row %lld column %lld is %g; cannot quantize a "
                         "non-finite activation", (long long)first_bad, (long long)c, c < cols ? (double)xr[c] : 0.0);
    }
    return ROTQ_OK;
}

