/* The backend seam: every op of every backend built in (today the CPU one, the reference) against
 * plain double-precision loops written here from the ops' definitions in backend/backend.h. A new
 * backend is added to `backends` below and must pass the same checks. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "backend/backend.h"
#include "backend/cpu/caps.h"
#include "rotq.h"
#include "rotate/rotate.h"
#include "testutil.h"

static unsigned long long rng = 7;
static float nr(void) { return (float)tu_nrand(&rng); }
static float *randv(int64_t n, float scale) {
    float *x = malloc(sizeof(float) * (size_t)(n > 0 ? n : 1));
    for (int64_t i = 0; i < n; i++) x[i] = scale * nr();
    return x;
}
/* max |a - b| / max(1, max |b|) */
static double rel_err(const float *a, const double *b, int64_t n) {
    double e = 0, m = 1;
    for (int64_t i = 0; i < n; i++) {
        e = fmax(e, fabs((double)a[i] - b[i]));
        m = fmax(m, fabs(b[i]));
    }
    return e / m;
}

static void check_memory(const rotq_backend *be) {
    float host[37], back[37];
    for (int i = 0; i < 37; i++) host[i] = nr();
    float *dev = be->alloc(sizeof host);
    CHECK(dev && be->upload(dev, host, sizeof host) == ROTQ_OK && be->download(back, dev, sizeof back) == ROTQ_OK &&
              !memcmp(host, back, sizeof host),
          "%s: upload/download round trip", be->name);
    be->release(dev);
}

static void check_linear(const rotq_backend *be) {
    const int64_t shapes[][3] = {{1, 96, 160}, {7, 64, 33}, {130, 96, 160}};
    for (size_t c = 0; c < 3; c++) {
        int64_t T = shapes[c][0], n_in = shapes[c][1], n_out = shapes[c][2];
        float *x = randv(T * n_in, 1), *w = randv(n_out * n_in, 0.1f), *b = randv(n_out, 1), *out = randv(T * n_out, 1);
        double *ref = malloc(sizeof(double) * (size_t)(T * n_out));
        for (int acc = 0; acc < 2; acc++)
            for (int bias = 0; bias < 2; bias++) {
                for (int64_t i = 0; i < T * n_out; i++) out[i] = 0.5f;
                for (int64_t t = 0; t < T; t++)
                    for (int64_t o = 0; o < n_out; o++) {
                        double s = (acc ? 0.5 : 0.0) + (bias ? b[o] : 0.0);
                        for (int64_t i = 0; i < n_in; i++) s += (double)x[t * n_in + i] * w[o * n_in + i];
                        ref[t * n_out + o] = s;
                    }
                be->linear(out, x, w, bias ? b : NULL, T, n_in, n_out, acc);
                double e = rel_err(out, ref, T * n_out);
                CHECK(e < 1e-5, "%s linear T=%lld %lldx%lld acc=%d bias=%d: %.3g", be->name, (long long)T, (long long)n_in,
                      (long long)n_out, acc, bias, e);
            }
        free(x), free(w), free(b), free(out), free(ref);
    }
}

static void check_norms(const rotq_backend *be) {
    const int64_t T = 5, d = 96;
    float *x = randv(T * d, 3), *w = randv(d, 1), *b = randv(d, 1), *out = randv(T * d, 1);
    double ref[5 * 96];
    for (int layer = 0; layer < 2; layer++) {
        float offset = layer ? 0.0f : 1.0f, eps = 1e-5f;
        for (int64_t t = 0; t < T; t++) {
            double mean = 0, ss = 0;
            for (int64_t i = 0; i < d; i++) mean += x[t * d + i] / (double)d;
            for (int64_t i = 0; i < d; i++) {
                double c = x[t * d + i] - (layer ? mean : 0);
                ss += c * c / (double)d;
            }
            for (int64_t i = 0; i < d; i++)
                ref[t * d + i] = (x[t * d + i] - (layer ? mean : 0)) / sqrt(ss + eps) * (w[i] + offset) + (layer ? b[i] : 0);
        }
        if (layer) be->layernorm(out, x, w, b, offset, eps, T, d);
        else be->rmsnorm(out, x, w, offset, eps, T, d);
        CHECK(rel_err(out, ref, T * d) < 1e-5, "%s %s: %.3g", be->name, layer ? "layernorm" : "rmsnorm", rel_err(out, ref, T * d));
    }
    for (int64_t i = 0; i < T * d; i++) ref[i] = (double)out[i] + b[i % d];
    be->add_rows(out, b, T, d);
    CHECK(rel_err(out, ref, T * d) < 1e-6, "%s add_rows", be->name);
    free(x), free(w), free(b), free(out);
}

static void check_rope(const rotq_backend *be) {
    const int64_t T = 6, nh = 3, hd = 24, half = 8, pos0 = 11; /* partial rotary: 16 of 24 dims */
    rotq_hparams hp = {.head_dim = hd, .rotary_dim = 2 * half, .rope_theta = 10000.0};
    float inv[8], cos_t[6 * 8], sin_t[6 * 8];
    rotq_rope_inv_freq(&hp, inv);
    rotq_rope_tables(inv, half, pos0, T, cos_t, sin_t);
    float *x = randv(T * nh * hd, 1);
    double ref[6 * 3 * 24];
    for (int64_t t = 0; t < T; t++)
        for (int64_t h = 0; h < nh; h++) {
            const float *xh = x + (t * nh + h) * hd;
            double *rh = ref + (t * nh + h) * hd;
            for (int64_t i = 0; i < hd; i++) rh[i] = xh[i];
            for (int64_t i = 0; i < half; i++) {
                double ang = (double)(pos0 + t) * pow(10000.0, -2.0 * (double)i / (double)(2 * half));
                rh[i] = xh[i] * cos(ang) - xh[i + half] * sin(ang);
                rh[i + half] = xh[i + half] * cos(ang) + xh[i] * sin(ang);
            }
        }
    be->rope(x, cos_t, sin_t, T, nh, hd, half);
    CHECK(rel_err(x, ref, T * nh * hd) < 1e-5, "%s rope: %.3g", be->name, rel_err(x, ref, T * nh * hd));
    free(x);
}

static void check_attention(const rotq_backend *be) {
    /* T, pos0, nh, nkv, hd, sliding window (0: none) */
    const int64_t cases[][6] = {{1, 40, 8, 2, 64, 0}, {33, 0, 4, 4, 24, 0}, {70, 9, 6, 2, 16, 0},
                                {70, 9, 6, 2, 16, 13}, {1, 40, 8, 2, 64, 7}, {90, 0, 4, 1, 32, 64}};
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        int64_t T = cases[c][0], pos0 = cases[c][1], nh = cases[c][2], nkv = cases[c][3], hd = cases[c][4], win = cases[c][5];
        int64_t nk = pos0 + T, qb = rotq_attention_block(T, nh, nk);
        float scale = 1.0f / sqrtf((float)hd);
        float *q = randv(T * nh * hd, 1), *k = randv(nk * nkv * hd, 1), *v = randv(nk * nkv * hd, 1);
        float *out = randv(T * nh * hd, 1), *scores = randv(nh * qb * nk, 0), *work = randv(2 * T * nh * hd, 0);
        double *ref = calloc((size_t)(T * nh * hd), sizeof(double)), *p = malloc(sizeof(double) * (size_t)nk);
        for (int64_t t = 0; t < T; t++)
            for (int64_t h = 0; h < nh; h++) {
                int64_t g = h / (nh / nkv), n = pos0 + t + 1, j0 = win > 0 && n > win ? n - win : 0;
                double mx = -INFINITY, sum = 0;
                for (int64_t j = 0; j < j0; j++) p[j] = 0;
                for (int64_t j = j0; j < n; j++) {
                    double s = 0;
                    for (int64_t i = 0; i < hd; i++) s += (double)q[(t * nh + h) * hd + i] * k[(j * nkv + g) * hd + i];
                    p[j] = s * scale;
                    mx = fmax(mx, p[j]);
                }
                for (int64_t j = j0; j < n; j++) sum += p[j] = exp(p[j] - mx);
                for (int64_t j = j0; j < n; j++)
                    for (int64_t i = 0; i < hd; i++) ref[(t * nh + h) * hd + i] += p[j] / sum * v[(j * nkv + g) * hd + i];
            }
        be->attention(out, q, k, v, scores, work, T, pos0, nh, nkv, hd, scale, qb, win);
        double e = rel_err(out, ref, T * nh * hd);
        CHECK(e < 2e-5, "%s attention T=%lld pos0=%lld %lld/%lld heads hd %lld window %lld: %.3g", be->name, (long long)T,
              (long long)pos0, (long long)nh, (long long)nkv, (long long)hd, (long long)win, e);
        free(q), free(k), free(v), free(out), free(scores), free(work), free(ref), free(p);
    }
}

static void check_elementwise(const rotq_backend *be) {
    const int64_t n = 40000; /* spans several OpenMP chunks */
    float *g = randv(n, 3), *u = randv(n, 1), *x = malloc(sizeof(float) * n);
    double *ref = malloc(sizeof(double) * n);
    for (int64_t i = 0; i < n; i++) ref[i] = (double)g[i] / (1 + exp(-(double)g[i])) * u[i];
    float *g2 = malloc(sizeof(float) * n);
    memcpy(g2, g, sizeof(float) * n);
    be->swiglu(g, u, n);
    CHECK(rel_err(g, ref, n) < 1e-5, "%s swiglu: %.3g", be->name, rel_err(g, ref, n));
    for (int64_t i = 0; i < n; i++) {
        double v = g2[i];
        ref[i] = 0.5 * v * (1 + tanh(sqrt(2 / M_PI) * (v + 0.044715 * v * v * v))) * u[i];
    }
    be->geglu(g2, u, n);
    CHECK(rel_err(g2, ref, n) < 1e-5, "%s geglu: %.3g", be->name, rel_err(g2, ref, n));
    for (int64_t i = 0; i < n; i++) ref[i] = (double)g2[i] + u[i];
    be->add(g2, u, n);
    CHECK(rel_err(g2, ref, n) < 1e-7, "%s add: %.3g", be->name, rel_err(g2, ref, n));
    free(g2);
    const rotq_mlp_kind kinds[] = {ROTQ_MLP_RELU, ROTQ_MLP_GELU, ROTQ_MLP_GELU_TANH};
    for (int k = 0; k < 3; k++) {
        for (int64_t i = 0; i < n; i++) {
            double v = x[i] = 3 * nr();
            ref[i] = kinds[k] == ROTQ_MLP_RELU ? fmax(v, 0)
                   : kinds[k] == ROTQ_MLP_GELU ? 0.5 * v * (1 + erf(v / sqrt(2.0)))
                                               : 0.5 * v * (1 + tanh(sqrt(2 / M_PI) * (v + 0.044715 * v * v * v)));
        }
        be->activation(kinds[k], x, n);
        CHECK(rel_err(x, ref, n) < 1e-6, "%s activation %d: %.3g", be->name, (int)kinds[k], rel_err(x, ref, n));
    }
    const int64_t rows = 9, V = 5000;
    float *l = randv(rows * V, 4);
    double lse[9];
    be->logsumexp_rows(l, rows, V, lse);
    for (int64_t r = 0; r < rows; r++) {
        double mx = -INFINITY, s = 0;
        for (int64_t i = 0; i < V; i++) mx = fmax(mx, l[r * V + i]);
        for (int64_t i = 0; i < V; i++) s += exp(l[r * V + i] - mx);
        CHECK(fabs(lse[r] - (mx + log(s))) < 1e-5, "%s logsumexp row %lld: %.9g vs %.9g", be->name, (long long)r, lse[r],
              mx + log(s));
    }
    free(g), free(u), free(x), free(ref), free(l);
}

/* fwht_rows through a rotation's plan equals the dense product x·R (and x·Rᵀ). */
static void check_fwht(const rotq_backend *be) {
    const int64_t sizes[] = {8, 24, 172, 576, 1536};
    for (size_t c = 0; c < sizeof sizes / sizeof sizes[0]; c++) {
        int64_t n = sizes[c], rows = 5;
        rotq_rotation *R = NULL;
        CHECK(rotq_rotation_hadamard(n, true, 3, &R) == ROTQ_OK, "%s", rotq_last_error());
        if (!R) continue;
        double *D = malloc(sizeof(double) * (size_t)(n * n)), *ref = malloc(sizeof(double) * (size_t)(rows * n));
        rotq_rotation_to_dense_f64(R, D);
        for (int inv = 0; inv < 2; inv++) {
            float *x = randv(rows * n, 1);
            for (int64_t r = 0; r < rows; r++)
                for (int64_t j = 0; j < n; j++) {
                    double s = 0;
                    for (int64_t i = 0; i < n; i++) s += (double)x[r * n + i] * (inv ? D[j * n + i] : D[i * n + j]);
                    ref[r * n + j] = s;
                }
            rotq_fwht_plan p = {.n = n, .K = R->K, .M = n / R->K, .m = R->m, .kstep = R->K > 1 ? (inv ? R->kstep_inv : R->kstep_fwd) : NULL,
                                .pre = inv ? NULL : R->scaled_signs, .post = inv ? R->scaled_signs : NULL};
            CHECK(be->fwht_rows(&p, x, rows) == ROTQ_OK, "%s", rotq_last_error());
            CHECK(rel_err(x, ref, rows * n) < 1e-5, "%s fwht_rows n=%lld %s: %.3g", be->name, (long long)n,
                  inv ? "inverse" : "forward", rel_err(x, ref, rows * n));
            free(x);
        }
        free(D), free(ref);
        rotq_rotation_free(R);
    }
}

/* act_quant: every value lands on its row's grid, within half a step of the input (clipped range). */
static void check_act_quant(const rotq_backend *be) {
    const int64_t rows = 6, cols = 96;
    for (int asym = 0; asym < 2; asym++) {
        rotq_act_format f = {.bits = 4, .asym = asym, .clip = 0.9f, .group = -1};
        float *x = randv(rows * cols, 2), *y = malloc(sizeof(float) * rows * cols);
        memcpy(y, x, sizeof(float) * rows * cols);
        CHECK(be->act_quant(y, rows, cols, &f) == ROTQ_OK, "%s", rotq_last_error());
        int bad = 0;
        for (int64_t r = 0; r < rows; r++) {
            double mn = 0, mx = 0;
            for (int64_t i = 0; i < cols; i++) mn = fmin(mn, x[r * cols + i]), mx = fmax(mx, x[r * cols + i]);
            mn *= 0.9, mx *= 0.9;
            double scale = asym ? (mx - mn) / 15 : fmax(-mn, mx) / 7, zero = asym ? nearbyint(-mn / scale) : 0;
            for (int64_t i = 0; i < cols; i++) {
                double q = y[r * cols + i] / scale + zero, xv = fmin(fmax(x[r * cols + i], asym ? -zero * scale : -8 * scale),
                                                                      asym ? (15 - zero) * scale : 7 * scale);
                bad += fabs(q - nearbyint(q)) > 1e-3 || fabs(y[r * cols + i] - xv) > 0.5 * scale * (1 + 1e-5);
            }
        }
        CHECK(bad == 0, "%s act_quant %s: %d values off the grid or further than half a step", be->name, asym ? "asym" : "sym", bad);
        x[5] = NAN;
        CHECK(be->act_quant(x, rows, cols, &f) == ROTQ_ERR_NUMERIC, "%s act_quant must refuse NaN", be->name);
        free(x), free(y);
    }
}

int main(void) {
    const rotq_backend *backends[] = {rotq_backend_cpu()};
    const rotq_backend *by_name = NULL;
    CHECK(rotq_backend_get("cpu", &by_name) == ROTQ_OK && by_name == rotq_backend_cpu(), "backend by name");
    CHECK(rotq_backend_get("nonesuch", &by_name) == ROTQ_ERR_UNSUPPORTED && strstr(rotq_last_error(), "available"),
          "an unknown backend is refused naming what exists: %s", rotq_last_error());
    /* every kernel choice of the CPU backend: the probe's, then the portable ones */
    rotq_cpu_caps portable = *rotq_cpu_caps_get();
    portable.attention_fused = portable.igemm_avx2 = portable.fwht_avx2 = false;
    for (int pass = 0; pass < 2; pass++) {
        rotq_cpu_caps_set(pass ? &portable : NULL);
        for (size_t b = 0; b < sizeof backends / sizeof backends[0]; b++) {
            const rotq_backend *be = backends[b];
            check_memory(be);
            check_linear(be);
            check_norms(be);
            check_rope(be);
            check_attention(be);
            check_elementwise(be);
            check_fwht(be);
            check_act_quant(be);
        }
    }
    rotq_cpu_caps_set(NULL);
    return tu_finish("test_backend");
}
