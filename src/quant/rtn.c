/* Weight grids: scale/zero per row or group (GPTQ/QuaRot find_params, with its MSE clip search) and
 * round-to-nearest over a whole matrix. Computed in double; the result is rounded once to float. */
#include <math.h>
#include <stdlib.h>

#include "quant/quant.h"

rotq_wq_format rotq_wq_format_make(int32_t bits, bool asym, int64_t group, bool mse) {
    return (rotq_wq_format){.bits = bits, .asym = asym, .group = group, .mse = mse, .norm = 2.4, .grid = 100,
                            .maxshrink = 0.8};
}

rotq_status rotq_wq_format_check(const rotq_wq_format *f) {
    if (f->bits < 2 || f->bits > 8)
        return rotq_fail(ROTQ_ERR_ARG, "quant: weight bits %d outside 2..8", f->bits);
    if (f->mse && (!(f->norm > 0) || f->grid < 1 || !(f->maxshrink > 0 && f->maxshrink <= 1)))
        return rotq_fail(ROTQ_ERR_ARG, "quant: clip search needs norm > 0, grid >= 1, 0 < maxshrink <= 1 (got %g, %d, %g)",
                         f->norm, f->grid, f->maxshrink);
    return ROTQ_OK;
}

int32_t rotq_wq_maxq(const rotq_wq_format *f) { return f->asym ? (1 << f->bits) - 1 : (1 << (f->bits - 1)) - 1; }

/* Σ |qdq(x) - x|^norm over one row segment. */
static double grid_error(const double *x, int64_t n, int64_t stride, double scale, double zero, int32_t maxq, bool asym,
                         double norm) {
    double err = 0.0;
    bool square = norm == 2.0;
    for (int64_t i = 0; i < n; i++) {
        double v = x[i * stride];
        double e = fabs(rotq_wq_qdq(v, scale, zero, maxq, asym) - v);
        if (e == 0.0) continue;
        err += square ? e * e : pow(e, norm);
    }
    return err;
}

void rotq_wq_params(const double *x, int64_t n, int64_t stride, const rotq_wq_format *f, double *scale, double *zero) {
    /* the range always holds 0, so a row of one sign still represents 0 exactly */
    double xmin = 0.0, xmax = 0.0;
    for (int64_t i = 0; i < n; i++) {
        double v = x[i * stride];
        if (v < xmin) xmin = v;
        if (v > xmax) xmax = v;
    }
    int32_t maxq = rotq_wq_maxq(f);
    double s, z;
    if (!f->asym) {
        xmax = fmax(-xmin, xmax);
        if (xmax < 1e-5) xmax = 1e-5;
        s = xmax / maxq;
        z = 0.0;
    } else {
        if (xmin == 0.0 && xmax == 0.0) { xmin = -1.0; xmax = 1.0; }
        s = fmax(xmax - xmin, 1e-5) / maxq;
        z = nearbyint(-xmin / s);
    }
    if (f->mse) {
        /* shrink the range by p = 1, 0.99, ...; keep the first p of least error (as the reference) */
        double best = INFINITY;
        int32_t steps = (int32_t)(f->maxshrink * f->grid);
        for (int32_t i = 0; i < steps; i++) {
            double p = 1.0 - (double)i / f->grid;
            double s1, z1;
            if (!f->asym) {
                s1 = p * xmax / maxq;
                z1 = 0.0;
            } else {
                double lo = p * xmin, hi = p * xmax;
                s1 = (hi - lo) / maxq;
                z1 = nearbyint(-lo / s1);
            }
            double err = grid_error(x, n, stride, s1, z1, maxq, f->asym, f->norm);
            if (err < best) { best = err; s = s1; z = z1; }
        }
    }
    *scale = s;
    *zero = z;
}

rotq_status rotq_rtn_quantize(float *w, int64_t rows, int64_t cols, const rotq_wq_format *f) {
    ROTQ_TRY(rotq_wq_format_check(f));
    if (rows <= 0 || cols <= 0) return rotq_fail(ROTQ_ERR_ARG, "quant: RTN of a %lld x %lld matrix", (long long)rows, (long long)cols);
    for (int64_t i = 0; i < rows * cols; i++)
        if (!isfinite(w[i]))
            return rotq_fail(ROTQ_ERR_NUMERIC, "quant: weight [%lld, %lld] is %g; cannot quantize a non-finite weight",
                             (long long)(i / cols), (long long)(i % cols), (double)w[i]);
    int64_t group = f->group > 0 && f->group < cols ? f->group : cols;
    int32_t maxq = rotq_wq_maxq(f);
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
            for (int64_t g0 = 0; g0 < cols; g0 += group) {
                int64_t n = cols - g0 < group ? cols - g0 : group;
                double s, z;
                rotq_wq_params(row + g0, n, 1, f, &s, &z);
                for (int64_t c = g0; c < g0 + n; c++) wr[c] = (float)rotq_wq_qdq(row[c], s, z, maxq, f->asym);
            }
        }
        free(row);
    }
    if (nomem) return rotq_fail(ROTQ_ERR_NOMEM, "quant: out of memory for a row of %lld weights", (long long)cols);
    return ROTQ_OK;
}
