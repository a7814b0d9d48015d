/* Weight grids: scale/zero per row or group (GPTQ/QuaRot find_params, with its MSE clip search) and
 * round-to-nearest over a whole matrix. Computed in double; the result is rounded once to float. */
#include <cblas.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/model.h"
#include "quant/quant.h"

rotq_wq_format rotq_wq_format_make(int32_t bits, bool asym, int64_t group, bool mse) {
    return (rotq_wq_format){.bits = bits, .asym = asym, .group = group, .mse = mse, .search = ROTQ_WSCALE_CLIP, .norm = 2.4,
                            .grid = 100, .maxshrink = 0.8, .dtype = ROTQ_DTYPE_INVALID, .tensor_scale = 1.0};
}

rotq_wq_format rotq_wq_format_bind(const rotq_wq_format *f, const float *w, int64_t n) {
    rotq_wq_format b = *f;
    const rotq_num_traits *t = rotq_num_traits_of(f->num);
    b.tensor_scale = 1.0;
    if (t && t->scale == ROTQ_SCALE_E4M3_TENSOR) {
        double amax = 0.0;
        for (int64_t i = 0; i < n; i++) amax = fmax(amax, fabs((double)w[i]));
        b.tensor_scale = rotq_num_tensor_scale(t, amax);
    }
    return b;
}

void rotq_wq_format_set_search(rotq_wq_format *f, rotq_w_scale search, double clip_norm) {
    f->search = search;
    if (search == ROTQ_WSCALE_MSE) {
        /* Brevitas' weight MSE: 20 ranges from max/20 to max, squared error */
        f->norm = 2.0;
        f->grid = 20;
        f->maxshrink = 1.0;
    } else {
        f->norm = clip_norm;
        f->grid = 100;
        f->maxshrink = 0.8;
    }
}

rotq_status rotq_wq_format_check(const rotq_wq_format *f) {
    if (f->bits < 2 || f->bits > 8)
        return rotq_fail(ROTQ_ERR_ARG, "quant: weight bits %d outside 2..8", f->bits);
    if (f->mse && (!(f->norm > 0) || f->grid < 1 || !(f->maxshrink > 0 && f->maxshrink <= 1)))
        return rotq_fail(ROTQ_ERR_ARG, "quant: clip search needs norm > 0, grid >= 1, 0 < maxshrink <= 1 (got %g, %d, %g)",
                         f->norm, f->grid, f->maxshrink);
    if ((unsigned)f->search > ROTQ_WSCALE_HESSIAN)
        return rotq_fail(ROTQ_ERR_ARG, "quant: scale search %d (clip, mse or hessian)", (int)f->search);
    if (f->mse && f->search == ROTQ_WSCALE_HESSIAN && f->min_max > 0)
        return rotq_fail(ROTQ_ERR_UNSUPPORTED, "quant: the Hessian scale search needs an integer grid (not float group mins, as Q4_K/Q5_K)");
    if ((unsigned)f->sym_range > ROTQ_SYM_HALF)
        return rotq_fail(ROTQ_ERR_ARG, "quant: symmetric range convention %d (maxq, full, signed or half)", (int)f->sym_range);
    if ((unsigned)f->scale_store > ROTQ_SCALE_BF16)
        return rotq_fail(ROTQ_ERR_ARG, "quant: scale storage %d (double, f32, f16 or bf16)", (int)f->scale_store);
    if (f->min_max > 0 && (!f->asym || f->super_groups <= 0))
        return rotq_fail(ROTQ_ERR_ARG, "quant: float group mins need an asymmetric super-block grid");
    if (f->num != ROTQ_NUM_INT) {
        const rotq_num_traits *t = rotq_num_traits_of(f->num);
        if (!t) return rotq_fail(ROTQ_ERR_ARG, "quant: weight number format %d (int, mxfp4, nvfp4 or fp8)", (int)f->num);
        if (f->asym || f->super_groups > 0 || f->dtype != ROTQ_DTYPE_INVALID)
            return rotq_fail(ROTQ_ERR_ARG, "quant: %s weights are symmetric, without zero points or GGUF block types", t->name);
        if (f->bits != t->bits)
            return rotq_fail(ROTQ_ERR_ARG, "quant: %s weights have %d-bit elements (got %d bits)", t->name, t->bits, f->bits);
        if (!(f->tensor_scale > 0.0))
            return rotq_fail(ROTQ_ERR_ARG, "quant: %s needs a positive tensor scale (got %g)", t->name, f->tensor_scale);
    }
    return ROTQ_OK;
}

int32_t rotq_wq_maxq(const rotq_wq_format *f) { return f->asym ? (1 << f->bits) - 1 : (1 << (f->bits - 1)) - 1; }

#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#define QUANT_KERNEL __attribute__((target_clones("avx2", "default")))
#else
#define QUANT_KERNEL
#endif

/* round half to even for |v| < 2^51, as nearbyint() in the default rounding mode, without the libm
 * call (which keeps loops from vectorizing): adding 1.5·2^52 leaves no fraction bits */
static inline __attribute__((always_inline)) double round_even(double v) {
    return (v + 6755399441055744.0) - 6755399441055744.0;
}

static inline __attribute__((always_inline)) double bits_to_double(uint64_t u) { double d; memcpy(&d, &u, sizeof d); return d; }
static inline __attribute__((always_inline)) uint64_t double_to_bits(double d) { uint64_t u; memcpy(&u, &d, sizeof u); return u; }

/* e^2.4 for e >= 0, to about 1e-15 relative, in plain arithmetic the compiler vectorizes (pow()
 * is a libm call per element and made the clip search 10x slower). e^2.4 = e²·exp(0.4·ln e):
 * ln e = k·ln2 + ln m with m in [1, 2), ln m = 2·atanh((m-1)/(m+1)) by its series to t^15 after
 * scaling m into [√½, √2);
 * exp(y) = 2^n·exp(r), |r| <= ln2/2, by Taylor to r^13. */
static inline __attribute__((always_inline)) double pow_2_4(double e) {
    uint64_t u = double_to_bits(e);
    double k = bits_to_double((u >> 52) | 0x4330000000000000ull) - 4503599627370496.0 - 1023.0;
    double m = bits_to_double((u & 0x000fffffffffffffull) | 0x3ff0000000000000ull);
    /* ln m = ln(m/√2) + ln2/2 with m/√2 in [√½, √2): no compare-and-select, which GCC 12
     * would not vectorize here */
    m *= 0.70710678118654752440;
    k += 0.5;
    double t = (m - 1.0) / (m + 1.0), t2 = t * t;
    double p = 1.0 / 15;
    p = p * t2 + 1.0 / 13; p = p * t2 + 1.0 / 11; p = p * t2 + 1.0 / 9; p = p * t2 + 1.0 / 7;
    p = p * t2 + 1.0 / 5; p = p * t2 + 1.0 / 3; p = p * t2 + 1.0;
    double lnm = 2.0 * t * p;
    const double ln2_hi = 6.93147180369123816490e-01, ln2_lo = 1.90821492927058770002e-10;
    double y = 0.4 * (k * ln2_hi + (k * ln2_lo + lnm));
    double n = round_even(y * 1.4426950408889634);
    double r = (y - n * ln2_hi) - n * ln2_lo;
    double x = 1.0 / 6227020800.0;                     /* 1/13! */
    x = x * r + 1.0 / 479001600; x = x * r + 1.0 / 39916800; x = x * r + 1.0 / 3628800;
    x = x * r + 1.0 / 362880; x = x * r + 1.0 / 40320; x = x * r + 1.0 / 5040; x = x * r + 1.0 / 720;
    x = x * r + 1.0 / 120; x = x * r + 1.0 / 24; x = x * r + 1.0 / 6; x = x * r + 0.5; x = x * r + 1.0;
    x = x * r + 1.0;
    double two_n = bits_to_double((double_to_bits(n + 4503599627370496.0 + 1023.0) & 0x7ffull) << 52);
    /* e = 0 (and subnormal e) come out as 0 through e·e: no select, which would stop vectorizing */
    return e * e * x * two_n;
}

/* Σ |qdq(x) - x|^2.4 over one row segment; integers of the grid in [klo, khi] (zero folded in). */
QUANT_KERNEL
static double grid_error_24(const double *x, int64_t n, double scale, double klo, double khi) {
    double err = 0.0;
#pragma omp simd reduction(+ : err)
    for (int64_t i = 0; i < n; i++) {
        /* |x/scale| <= maxq/shrink < 2^11 here: round_even applies */
        double q = round_even(x[i] / scale);
        q = q < klo ? klo : q > khi ? khi : q;
        err += pow_2_4(fabs(scale * q - x[i]));
    }
    return err;
}

/* Σ w_i |qdq(x_i) - x_i|^2.4: each column weighted by its importance (the Hessian diagonal) */
QUANT_KERNEL
static double grid_error_24w(const double *x, const double *w, int64_t n, double scale, double klo, double khi) {
    double err = 0.0;
#pragma omp simd reduction(+ : err)
    for (int64_t i = 0; i < n; i++) {
        double q = round_even(x[i] / scale);
        q = q < klo ? klo : q > khi ? khi : q;
        err += w[i] * pow_2_4(fabs(scale * q - x[i]));
    }
    return err;
}

/* the same for any norm, through pow(); w (may be NULL) weights the columns */
static double grid_error(const double *x, const double *w, int64_t n, double scale, double klo, double khi, double norm) {
    if (norm == 2.4) return w ? grid_error_24w(x, w, n, scale, klo, khi) : grid_error_24(x, n, scale, klo, khi);
    double err = 0.0;
    for (int64_t i = 0; i < n; i++) {
        double q = nearbyint(x[i] / scale);
        q = q < klo ? klo : q > khi ? khi : q;
        err += (w ? w[i] : 1.0) * pow(fabs(scale * q - x[i]), norm);
    }
    return err;
}

/* Σ w_i |qdq(x_i) − x_i|^2.4 on a float format's elements at `scale` (w may be NULL): one chunk,
 * in loops the compiler vectorizes */
QUANT_KERNEL
static double fp_error_24(const double *x, const double *w, int64_t n, double scale, rotq_num_traits t) {
    double err = 0.0;
    if (w) {
#pragma omp simd reduction(+ : err)
        for (int64_t i = 0; i < n; i++) err += w[i] * pow_2_4(fabs(scale * rotq_minifloat_round(x[i] / scale, &t) - x[i]));
    } else {
#pragma omp simd reduction(+ : err)
        for (int64_t i = 0; i < n; i++) err += pow_2_4(fabs(scale * rotq_minifloat_round(x[i] / scale, &t) - x[i]));
    }
    return err;
}

/* the same for any norm, in chunks, stopping once the sum reaches `bound` (as grid_error_bounded) */
static double fp_grid_error(const double *x, const double *w, int64_t n, double scale, const rotq_num_traits *t, double norm,
                            double bound) {
    enum { CHUNK = 128 };
    double err = 0.0;
    for (int64_t i0 = 0; i0 < n && err < bound; i0 += CHUNK) {
        int64_t k = n - i0 < CHUNK ? n - i0 : CHUNK;
        if (norm == 2.4) { err += fp_error_24(x + i0, w ? w + i0 : NULL, k, scale, *t); continue; }
        for (int64_t i = i0; i < i0 + k; i++)
            err += (w ? w[i] : 1.0) * pow(fabs(scale * rotq_minifloat_round(x[i] / scale, t) - x[i]), norm);
    }
    return err;
}

/* The scale a block format stores: float16, never 0 (a block of zeros still decodes) nor infinite;
 * with mant_bits > 0 also rounded to that many mantissa bits (Q4_1's min = −d·z stays a float16). */
static double to_fp16_bits(double s, int32_t mant_bits) {
    if (mant_bits > 0 && s > 0) {
        int e;
        double m = frexp(s, &e);
        s = ldexp(nearbyint(ldexp(m, mant_bits)), e - mant_bits);
    }
    double h = rotq_f16_to_f32(rotq_f32_to_f16((float)s));
    if (h < 0x1p-24) h = 0x1p-24;
    if (h > 65504.0) h = 0x1.fcp15; /* 65024: 7 mantissa bits, so −d·z stays finite for small z */
    return h;
}

static double to_fp16(double s) { return to_fp16_bits(s, 0); }

/* A scale as a file stores it (float32 or bfloat16; float16 goes through to_fp16), at least the dtype's
 * smallest normal so that it stays a usable divisor. */
static double to_store(double s, rotq_scale_store st) {
    if (st == ROTQ_SCALE_F32) return fmax((double)(float)s, 0x1p-126);
    if (st == ROTQ_SCALE_BF16) return fmax((double)rotq_bf16_to_f32(rotq_f32_to_bf16((float)s)), 0x1p-126);
    return s;
}

/* grid_error in chunks, stopping once the sum reaches `bound`: a candidate already no better than
 * the best one cannot win (the terms are >= 0), so the search's choice is unchanged and the
 * shrink factors past the optimum cost a fraction of a row (the clip search ran 2x faster). */
static double grid_error_bounded(const double *x, const double *w, int64_t n, double scale, double klo, double khi, double norm,
                                 double bound) {
    enum { CHUNK = 128 };
    double err = 0.0;
    for (int64_t i0 = 0; i0 < n; i0 += CHUNK) {
        err += grid_error(x + i0, w ? w + i0 : NULL, n - i0 < CHUNK ? n - i0 : CHUNK, scale, klo, khi, norm);
        if (err >= bound) break;
    }
    return err;
}

/* The grid with float mins: the range [lo, hi] ∋ 0 shrunk by p = 1, 0.99, ... (as the integer
 * grids' clip search), s = (hi − lo)/maxq, mn = −lo; the error of x on it is that of x + mn on the
 * plain grid [0, maxq]. */
static void params_min(const double *x, const double *w, int64_t n, const rotq_wq_format *f, double lo, double hi, double *scale,
                       double *mn) {
    int32_t maxq = rotq_wq_maxq(f);
    if (lo == 0.0 && hi == 0.0) hi = 1.0;
    double s = (hi - lo) / maxq, m = -lo;
    if (f->mse) {
        enum { CHUNK = 256 };
        double shifted[CHUNK], best = INFINITY;
        int32_t steps = (int32_t)(f->maxshrink * f->grid);
        for (int32_t i = 0; i < steps; i++) {
            double p = 1.0 - (double)i / f->grid;
            double s1 = fmax(p * (hi - lo), 1e-12) / maxq, m1 = -p * lo, err = 0.0;
            for (int64_t c0 = 0; c0 < n && err < best; c0 += CHUNK) {
                int64_t k = n - c0 < CHUNK ? n - c0 : CHUNK;
                for (int64_t c = 0; c < k; c++) shifted[c] = x[c0 + c] + m1;
                err += grid_error_bounded(shifted, w ? w + c0 : NULL, k, s1, 0.0, maxq, f->norm, best - err);
            }
            if (err < best) { best = err; s = s1; m = m1; }
        }
    }
    *scale = s;
    *mn = m;
}

void rotq_wq_params(const double *x, int64_t n, const rotq_wq_format *f, double *scale, double *zero) {
    rotq_wq_params_weighted(x, NULL, n, f, scale, zero);
}

/* A row's or group's range: [xmin, xmax] ∋ 0 (so a row of one sign still represents 0 exactly),
 * and for symmetric grids the side its largest magnitude lies on. */
typedef struct wq_range {
    double xmin, xmax, sign, levels;
} wq_range;

static wq_range wq_range_of(const double *x, int64_t n, const rotq_wq_format *f) {
    wq_range g = {0.0, 0.0, 1.0, rotq_wq_maxq(f)};
    if (f->num != ROTQ_NUM_INT) { /* float formats: the largest magnitude on the element range */
        for (int64_t i = 0; i < n; i++) g.xmax = fmax(g.xmax, fabs(x[i]));
        g.levels = rotq_num_traits_of(f->num)->max;
        return g;
    }
    for (int64_t i = 0; i < n; i++) {
        double v = x[i];
        if (v < g.xmin) g.xmin = v;
        if (v > g.xmax) g.xmax = v;
    }
    /* the full ranges use the grid's extra level −(maxq+1): steps of max/(maxq+1) instead of
     * max/maxq; a signed scale (Q4_0's float16 d may be negative) puts that level on the side of the
     * largest magnitude, as llama.cpp does, where FULL clips a positive maximum to +maxq (Brevitas) */
    if (!f->asym && f->sym_range != ROTQ_SYM_MAXQ) g.levels += f->sym_range == ROTQ_SYM_HALF ? 0.5 : 1.0;
    if (!f->asym && f->sym_range == ROTQ_SYM_SIGNED) g.sign = g.xmax > -g.xmin ? -1.0 : 1.0;
    if (!f->asym) {
        g.xmax = fmax(-g.xmin, g.xmax);
        if (g.xmax < 1e-5) g.xmax = 1e-5;
    } else if (g.xmin == 0.0 && g.xmax == 0.0) {
        g.xmin = -1.0;
        g.xmax = 1.0;
    }
    return g;
}

/* The grid of the range shrunk by p, as the reference's find_params; base: the unsearched range
 * (p = 1 with GPTQ's 1e-5 floor on an asymmetric range). */
static void wq_candidate(const wq_range *g, const rotq_wq_format *f, double p, bool base, double *s, double *z) {
    if (f->num != ROTQ_NUM_INT) { /* base: the format's own rule; the search: p·max encodable */
        *s = rotq_num_scale(rotq_num_traits_of(f->num), g->xmax, p, f->tensor_scale, base, false);
        *z = 0.0;
        return;
    }
    if (!f->asym) {
        double s1 = p * g->xmax / g->levels;
        if (f->scale_fp16) s1 = to_fp16(s1);
        else s1 = to_store(s1, f->scale_store);
        *s = s1 * g->sign;
        *z = 0.0;
        return;
    }
    int32_t maxq = rotq_wq_maxq(f);
    double lo = p * g->xmin, hi = p * g->xmax;
    double s1 = base ? fmax(hi - lo, 1e-5) / maxq : (hi - lo) / maxq;
    if (f->scale_fp16) s1 = to_fp16_bits(s1, f->scale_mant_bits);
    else s1 = to_store(s1, f->scale_store);
    *s = s1;
    *z = nearbyint(-lo / s1);
}

/* The search's shrink ratios: the i-th of wq_search_steps(f). CLIP and HESSIAN go 1, 0.99, ...
 * (the first ratio of least error kept, as QuaRot); MSE goes up from 1/grid to 1 as Brevitas' grid
 * search (its first least error kept too: ties take the smaller range). */
static int32_t wq_search_steps(const rotq_wq_format *f) { return (int32_t)(f->maxshrink * f->grid); }
static double wq_search_ratio(const rotq_wq_format *f, int32_t i) {
    return f->search == ROTQ_WSCALE_MSE ? (double)(i + 1) / f->grid : 1.0 - (double)i / f->grid;
}

void rotq_wq_params_weighted(const double *x, const double *w, int64_t n, const rotq_wq_format *f, double *scale, double *zero) {
    if (f->min_max > 0) {
        double xmin = 0.0, xmax = 0.0;
        for (int64_t i = 0; i < n; i++) {
            if (x[i] < xmin) xmin = x[i];
            if (x[i] > xmax) xmax = x[i];
        }
        params_min(x, w, n, f, xmin, xmax, scale, zero);
        return;
    }
    wq_range g = wq_range_of(x, n, f);
    int32_t maxq = rotq_wq_maxq(f);
    double s, z;
    wq_candidate(&g, f, 1.0, true, &s, &z);
    if (f->mse) {
        double best = INFINITY;
        int32_t steps = wq_search_steps(f);
        for (int32_t i = 0; i < steps; i++) {
            double s1, z1;
            wq_candidate(&g, f, wq_search_ratio(f, i), false, &s1, &z1);
            /* round(x/s) + z clamped to [0, maxq], minus z, is round(x/s) clamped to [-z, maxq - z] */
            double err = f->num != ROTQ_NUM_INT ? fp_grid_error(x, w, n, s1, rotq_num_traits_of(f->num), f->norm, best)
                       : f->asym ? grid_error_bounded(x, w, n, s1, -z1, maxq - z1, f->norm, best)
                                 : grid_error_bounded(x, w, n, s1, -(double)maxq - 1.0, maxq, f->norm, best);
            if (err < best) { best = err; s = s1; z = z1; }
        }
    }
    *scale = s;
    *zero = z;
}

void rotq_wq_params_ratio(const double *x, int64_t n, const rotq_wq_format *f, double p, double *scale, double *zero) {
    wq_range g = wq_range_of(x, n, f);
    wq_candidate(&g, f, p, p == 1.0, scale, zero);
}

rotq_status rotq_wq_params_hessian(const double *W, int64_t rows, int64_t cols, int64_t group, const double *H,
                                   const rotq_wq_format *f, double *S, double *Z) {
    if (f->min_max > 0) return rotq_fail(ROTQ_ERR_UNSUPPORTED, "quant: the Hessian scale search needs an integer grid (not float group mins)");
    if (group <= 0 || group > cols) group = cols;
    int64_t ng = (cols + group - 1) / group;
    int32_t maxq = rotq_wq_maxq(f), steps = f->mse ? wq_search_steps(f) : 0;
    double *E = malloc((size_t)(rows * group) * sizeof *E), *F = malloc((size_t)(rows * group) * sizeof *F);
    double *best = malloc((size_t)rows * sizeof *best);
    wq_range *rg = malloc((size_t)rows * sizeof *rg);
    if (!E || !F || !best || !rg) {
        free(E); free(F); free(best); free(rg);
        return rotq_fail(ROTQ_ERR_NOMEM, "quant: out of memory for the Hessian scale search of a %lld x %lld layer",
                         (long long)rows, (long long)cols);
    }
    for (int64_t g0 = 0; g0 < cols; g0 += group) {
        int64_t n = cols - g0 < group ? cols - g0 : group, gi = g0 / group;
#pragma omp parallel for schedule(static)
        for (int64_t r = 0; r < rows; r++) {
            rg[r] = wq_range_of(W + r * cols + g0, n, f);
            wq_candidate(&rg[r], f, 1.0, true, &S[r * ng + gi], &Z[r * ng + gi]);
            best[r] = INFINITY;
        }
        for (int32_t i = 0; i < steps; i++) {
            double p = wq_search_ratio(f, i);
            /* E = w − q(w) on the candidate grid, F = E·H over the group's columns, error Σ E∘F per row */
#pragma omp parallel for schedule(static)
            for (int64_t r = 0; r < rows; r++) {
                double s1, z1;
                wq_candidate(&rg[r], f, p, false, &s1, &z1);
                const double *x = W + r * cols + g0;
                for (int64_t c = 0; c < n; c++) E[r * n + c] = x[c] - rotq_wq_format_qdq(f, x[c], s1, z1, maxq);
            }
            cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (blasint)rows, (blasint)n, (blasint)n, 1.0, E, (blasint)n,
                        H + g0 * cols + g0, (blasint)cols, 0.0, F, (blasint)n);
#pragma omp parallel for schedule(static)
            for (int64_t r = 0; r < rows; r++) {
                double err = 0.0;
                for (int64_t c = 0; c < n; c++) err += E[r * n + c] * F[r * n + c];
                if (err < best[r]) {
                    best[r] = err;
                    wq_candidate(&rg[r], f, p, false, &S[r * ng + gi], &Z[r * ng + gi]);
                }
            }
        }
    }
    free(E); free(F); free(best); free(rg);
    return ROTQ_OK;
}

/* One super-block's values v[0..n) become d·k, d = float16(max |v| / top), integer k in [lo, top] (the
 * largest magnitude exactly ±top, so a writer finds d again as max |v| / top); signed scales keep
 * their sign with 1 <= |k| <= top; all zero stays zero (d = 0). */
static void super_quantize(double *v, int64_t n, double lo, double top, bool is_signed) {
    double vmax = 0.0;
    for (int64_t g = 0; g < n; g++) vmax = fabs(v[g]) > vmax ? fabs(v[g]) : vmax;
    if (vmax == 0.0 && lo == 0.0) return;
    double d = to_fp16(vmax / top);
    for (int64_t g = 0; g < n; g++) {
        double k = nearbyint(fabs(v[g]) / d);
        k = k < lo ? lo : k > top ? top : k;
        v[g] = d * (is_signed && v[g] < 0 ? -k : k);
    }
}

void rotq_wq_super_scales(const rotq_wq_format *f, double *s, double *mn, int64_t ng) {
    if (f->super_groups <= 0) return;
    for (int64_t g0 = 0; g0 < ng; g0 += f->super_groups) {
        int64_t n = ng - g0 < f->super_groups ? ng - g0 : f->super_groups;
        super_quantize(s + g0, n, 1.0, f->super_max, f->sym_range == ROTQ_SYM_SIGNED);
        if (f->min_max > 0 && mn) super_quantize(mn + g0, n, 0.0, f->min_max, false);
    }
}

/* ---- quantized weights -------------------------------------------------------------------------- */

rotq_status rotq_qweight_new(int64_t rows, int64_t cols, int64_t group, const rotq_wq_format *f, rotq_qweight **out) {
    *out = NULL;
    if (group <= 0 || group > cols) group = cols;
    int64_t ng = (cols + group - 1) / group;
    rotq_qweight *q = calloc(1, sizeof *q);
    if (q) {
        *q = (rotq_qweight){.rows = rows, .cols = cols, .group = group, .bits = f->bits, .asym = f->asym, .dtype = f->dtype,
                            .num = f->num};
        q->u = malloc((size_t)(rows * cols));
        q->scale = malloc((size_t)(rows * ng) * sizeof *q->scale);
        q->zero = malloc((size_t)(rows * ng) * sizeof *q->zero);
        if (f->min_max > 0) q->mn = malloc((size_t)(rows * ng) * sizeof *q->mn);
    }
    if (!q || !q->u || !q->scale || !q->zero || (f->min_max > 0 && !q->mn)) {
        rotq_qweight_free(q);
        return rotq_fail(ROTQ_ERR_NOMEM, "quant: out of memory for the codes of a %lld x %lld matrix", (long long)rows,
                         (long long)cols);
    }
    *out = q;
    return ROTQ_OK;
}

void rotq_qweight_free(rotq_qweight *q) {
    if (!q) return;
    free(q->u);
    free(q->scale);
    free(q->zero);
    free(q->mn);
    free(q);
}

void rotq_qweight_dequantize(const rotq_qweight *q, float *w) {
    int64_t ng = (q->cols + q->group - 1) / q->group;
#pragma omp parallel for schedule(static) if (q->rows * q->cols > 65536)
    for (int64_t r = 0; r < q->rows; r++)
        for (int64_t c = 0; c < q->cols; c++) {
            int64_t g = r * ng + c / q->group;
            uint8_t u = q->u[r * q->cols + c];
            w[r * q->cols + c] = q->num != ROTQ_NUM_INT ? (float)(q->scale[g] * rotq_minifloat_value(u, rotq_num_traits_of(q->num)))
                                 : (float)(rotq_wq_decode(u, q->scale[g], q->zero[g]) - (q->mn ? q->mn[g] : 0.0));
        }
}

rotq_status rotq_qweight_int8(const rotq_qweight *q, int64_t row0, int64_t rows, int8_t *codes, float *scales) {
    if (q->num != ROTQ_NUM_INT)
        return rotq_fail(ROTQ_ERR_UNSUPPORTED, "quant: integer products need integer codes (these are %s)", rotq_num_format_name(q->num));
    if (q->asym || q->mn || q->group != q->cols || q->bits > 7)
        return rotq_fail(ROTQ_ERR_UNSUPPORTED, "quant: integer products need symmetric per-row codes of at most 7 bits "
                         "(these are %s, %s, %d bits)", q->asym ? "asymmetric" : "symmetric",
                         q->group != q->cols ? "grouped" : "per row", q->bits);
    if (row0 < 0 || row0 + rows > q->rows) return rotq_fail(ROTQ_ERR_ARG, "quant: codes rows [%lld, %lld) of %lld",
                                                           (long long)row0, (long long)(row0 + rows), (long long)q->rows);
    for (int64_t r = 0; r < rows; r++) {
        const uint8_t *u = q->u + (row0 + r) * q->cols;
        int32_t z = q->zero[row0 + r];
        for (int64_t c = 0; c < q->cols; c++) codes[r * q->cols + c] = (int8_t)((int32_t)u[c] - z);
        scales[r] = (float)q->scale[row0 + r];
    }
    return ROTQ_OK;
}

rotq_status rotq_rtn_quantize(float *w, int64_t rows, int64_t cols, const rotq_wq_format *f_in, rotq_qweight **codes) {
    if (rows <= 0 || cols <= 0) return rotq_fail(ROTQ_ERR_ARG, "quant: RTN of a %lld x %lld matrix", (long long)rows, (long long)cols);
    for (int64_t i = 0; i < rows * cols; i++)
        if (!isfinite(w[i]))
            return rotq_fail(ROTQ_ERR_NUMERIC, "quant: weight [%lld, %lld] is %g; cannot quantize a non-finite weight",
                             (long long)(i / cols), (long long)(i % cols), (double)w[i]);
    rotq_wq_format fb = rotq_wq_format_bind(f_in, w, rows * cols);
    const rotq_wq_format *f = &fb;
    ROTQ_TRY(rotq_wq_format_check(f));
    int64_t group = f->group > 0 && f->group < cols ? f->group : cols, ng = (cols + group - 1) / group;
    int32_t maxq = rotq_wq_maxq(f);
    rotq_qweight *q = NULL;
    ROTQ_TRY(rotq_qweight_new(rows, cols, group, f, &q));
    bool nomem = false;
#pragma omp parallel
    {
        double *row = malloc((size_t)cols * sizeof *row);
        if (!row) {
#pragma omp atomic write
            nomem = true;
        }
#pragma omp for schedule(dynamic, 4)
        for (int64_t r = 0; r < rows; r++) {
            if (!row) continue;
            float *wr = w + r * cols;
            for (int64_t c = 0; c < cols; c++) row[c] = wr[c];
            /* every group's scale first (a super-block format then ties them together), then the codes */
            for (int64_t g0 = 0; g0 < cols; g0 += group) {
                int64_t n = cols - g0 < group ? cols - g0 : group, gi = r * ng + g0 / group;
                double sc, z;
                rotq_wq_params(row + g0, n, f, &sc, &z);
                rotq_qweight_set_group(q, gi, sc, z, maxq);
            }
            rotq_wq_super_scales(f, q->scale + r * ng, q->mn ? q->mn + r * ng : NULL, ng);
            for (int64_t c = 0; c < cols; c++) {
                int64_t gi = r * ng + c / group;
                /* z as stored: the group min, or the zero code (asym: z itself; sym: unused) */
                q->u[r * cols + c] = rotq_wq_format_encode(f, row[c], q->scale[gi], q->mn ? q->mn[gi] : (double)q->zero[gi], maxq);
            }
        }
        free(row);
    }
    if (nomem) {
        rotq_qweight_free(q);
        return rotq_fail(ROTQ_ERR_NOMEM, "quant: out of memory for a row of %lld weights", (long long)cols);
    }
    rotq_qweight_dequantize(q, w);
    if (codes) *codes = q;
    else rotq_qweight_free(q);
    return ROTQ_OK;
}
