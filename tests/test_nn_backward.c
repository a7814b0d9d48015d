/* Every backward against central finite differences of an independent double-precision forward:
 * each op alone (linear with bias, RMSNorm and LayerNorm with their weights and offsets, RoPE, causal
 * GQA attention, SwiGLU, ReLU/GELU/GELU-tanh, the embedding, cross-entropy and KL over lm_head),
 * checked along random directions so that every input moves at once. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "nn/nn.h"
#include "testutil.h"

static unsigned long long st = 12345;
static void fill(double *x, int64_t n, double scale) {
    for (int64_t i = 0; i < n; i++) x[i] = scale * tu_nrand(&st);
}
static float *to_f(const double *x, int64_t n) {
    float *f = malloc((size_t)n * sizeof *f);
    for (int64_t i = 0; i < n; i++) f[i] = (float)x[i];
    return f;
}
static double dotfd(const float *g, const double *u, int64_t n) {
    double s = 0;
    for (int64_t i = 0; i < n; i++) s += g[i] * u[i];
    return s;
}

/* A scalar function of one input array: L = Σ w·f(x) with fixed random weights w (the "dout"). */
typedef double (*scalar_fn)(const double *x, void *ctx);

/* Central difference of f along u at x, eps = 1e-5 in double. */
static double fd(scalar_fn f, void *ctx, const double *x, const double *u, int64_t n) {
    double *xp = malloc((size_t)n * sizeof *xp);
    double eps = 1e-5, v[2];
    for (int k = 0; k < 2; k++) {
        for (int64_t i = 0; i < n; i++) xp[i] = x[i] + (k ? -eps : eps) * u[i];
        v[k] = f(xp, ctx);
    }
    free(xp);
    return (v[0] - v[1]) / (2 * eps);
}

static void check_dir(const char *what, const float *grad, scalar_fn f, void *ctx, const double *x, int64_t n) {
    for (int rep = 0; rep < 3; rep++) {
        double *u = malloc((size_t)n * sizeof *u);
        fill(u, n, 1.0);
        double a = dotfd(grad, u, n), num = fd(f, ctx, x, u, n);
        CHECK(fabs(a - num) <= 2e-4 * (fabs(num) + 1e-2 * sqrt((double)n)), "%s: analytic %.8g, finite differences %.8g", what, a, num);
        free(u);
    }
}

/* ---- linear ----------------------------------------------------------------------------------- */
enum { T = 7, NI = 10, NO = 6 };
typedef struct { const double *x, *w, *b, *dy; int which; } lin_ctx;
static double lin_f(const double *v, void *c_) {
    lin_ctx *c = c_;
    const double *x = c->which == 0 ? v : c->x, *w = c->which == 1 ? v : c->w, *b = c->which == 2 ? v : c->b;
    double L = 0;
    for (int t = 0; t < T; t++)
        for (int o = 0; o < NO; o++) {
            double y = b[o];
            for (int i = 0; i < NI; i++) y += x[t * NI + i] * w[o * NI + i];
            L += c->dy[t * NO + o] * y;
        }
    return L;
}
static void test_linear(void) {
    double x[T * NI], w[NO * NI], b[NO], dy[T * NO];
    fill(x, T * NI, 1), fill(w, NO * NI, 0.3), fill(b, NO, 0.1), fill(dy, T * NO, 1);
    float *xf = to_f(x, T * NI), *wf = to_f(w, NO * NI), *dyf = to_f(dy, T * NO);
    float dx[T * NI], dw[NO * NI] = {0}, db[NO] = {0};
    rotq_linear_backward(dx, dw, db, dyf, xf, wf, T, NI, NO, false);
    lin_ctx c = {x, w, b, dy, 0};
    check_dir("linear dx", dx, lin_f, &c, x, T * NI);
    c.which = 1;
    check_dir("linear dw", dw, lin_f, &c, w, NO * NI);
    c.which = 2;
    check_dir("linear db", db, lin_f, &c, b, NO);
    free(xf), free(wf), free(dyf);
}

/* ---- norms ------------------------------------------------------------------------------------- */
enum { D = 12 };
typedef struct { const double *x, *w, *b, *dy; double offset, eps; bool center; int which; } norm_ctx;
static double norm_f(const double *v, void *c_) {
    norm_ctx *c = c_;
    const double *x = c->which == 0 ? v : c->x, *w = c->which == 1 ? v : c->w, *b = c->which == 2 ? v : c->b;
    double L = 0;
    for (int t = 0; t < T; t++) {
        double mu = 0, ss = 0;
        if (c->center)
            for (int i = 0; i < D; i++) mu += x[t * D + i] / D;
        for (int i = 0; i < D; i++) ss += (x[t * D + i] - mu) * (x[t * D + i] - mu);
        double r = 1 / sqrt(ss / D + c->eps);
        for (int i = 0; i < D; i++) L += c->dy[t * D + i] * ((x[t * D + i] - mu) * r * (w[i] + c->offset) + b[i]);
    }
    return L;
}
static void test_norms(void) {
    for (int center = 0; center < 2; center++)
        for (int off = 0; off < 2; off++) {
            double x[T * D], w[D], b[D], dy[T * D];
            fill(x, T * D, 1), fill(w, D, 0.5), fill(b, D, 0.3), fill(dy, T * D, 1);
            for (int i = 0; i < D; i++) x[i] += 2.0; /* a row with a large mean */
            float *xf = to_f(x, T * D), *wf = to_f(w, D), *dyf = to_f(dy, T * D), rstd[T];
            double eps = 1e-5;
            for (int t = 0; t < T; t++) {
                double mu = 0, ss = 0;
                if (center)
                    for (int i = 0; i < D; i++) mu += x[t * D + i] / D;
                for (int i = 0; i < D; i++) ss += (x[t * D + i] - mu) * (x[t * D + i] - mu);
                rstd[t] = (float)(1 / sqrt(ss / D + eps));
            }
            float dx[T * D] = {0}, dw[D] = {0}, db[D] = {0};
            (center ? rotq_layernorm_backward : rotq_rmsnorm_backward)(dx, dw, db, dyf, xf, rstd, wf, off ? 1.0f : 0.0f, T, D);
            norm_ctx c = {x, w, b, dy, off ? 1.0 : 0.0, eps, center, 0};
            const char *nm = center ? "layernorm" : "rmsnorm";
            char what[64];
            snprintf(what, sizeof what, "%s%s dx", nm, off ? " (1+w)" : ""), check_dir(what, dx, norm_f, &c, x, T * D);
            c.which = 1, snprintf(what, sizeof what, "%s dw", nm), check_dir(what, dw, norm_f, &c, w, D);
            c.which = 2, snprintf(what, sizeof what, "%s db", nm), check_dir(what, db, norm_f, &c, b, D);
            free(xf), free(wf), free(dyf);
        }
}

/* ---- RoPE ---------------------------------------------------------------------------------------- */
enum { NH = 4, NKV = 2, HD = 6, HALF = 2 };
typedef struct { const float *c, *s; const double *dy; } rope_ctx;
static double rope_f(const double *x, void *c_) {
    rope_ctx *c = c_;
    double L = 0;
    for (int t = 0; t < T; t++)
        for (int h = 0; h < NH; h++) {
            const double *v = x + (t * NH + h) * HD;
            const double *g = c->dy + (t * NH + h) * HD;
            for (int i = 0; i < HD; i++) {
                double y = v[i];
                if (i < HALF) y = v[i] * c->c[t * HALF + i] - v[i + HALF] * c->s[t * HALF + i];
                else if (i < 2 * HALF) y = v[i] * c->c[t * HALF + i - HALF] + v[i - HALF] * c->s[t * HALF + i - HALF];
                L += g[i] * y;
            }
        }
    return L;
}
static void test_rope(void) {
    float inv[HALF] = {1.0f, 0.1f}, cs[T * HALF], sn[T * HALF];
    rotq_rope_tables(inv, HALF, 3, T, cs, sn);
    double x[T * NH * HD], dy[T * NH * HD];
    fill(x, T * NH * HD, 1), fill(dy, T * NH * HD, 1);
    float *g = to_f(dy, T * NH * HD);
    rotq_rope_backward(g, cs, sn, T, NH, HD, HALF); /* partial rotary: dims 4, 5 pass through */
    rope_ctx c = {cs, sn, dy};
    check_dir("rope", g, rope_f, &c, x, T * NH * HD);
    free(g);
}

/* ---- attention -------------------------------------------------------------------------------------- */
typedef struct { const double *q, *k, *v, *dy; int which; double scale; } att_ctx;
/* out [T, NH, HD] in double; lse [NH, T] when asked */
static void att_ref(const double *q, const double *k, const double *v, double scale, double *out, double *lse) {
    for (int h = 0; h < NH; h++)
        for (int t = 0; t < T; t++) {
            int g = h / (NH / NKV);
            double s[T], mx = -INFINITY, sum = 0;
            for (int j = 0; j <= t; j++) {
                s[j] = 0;
                for (int i = 0; i < HD; i++) s[j] += q[(t * NH + h) * HD + i] * k[(j * NKV + g) * HD + i];
                s[j] *= scale;
                mx = fmax(mx, s[j]);
            }
            for (int j = 0; j <= t; j++) sum += exp(s[j] - mx);
            if (lse) lse[h * T + t] = mx + log(sum);
            for (int i = 0; i < HD; i++) {
                double o = 0;
                for (int j = 0; j <= t; j++) o += exp(s[j] - mx) / sum * v[(j * NKV + g) * HD + i];
                out[(t * NH + h) * HD + i] = o;
            }
        }
}
static double att_f(const double *x, void *c_) {
    att_ctx *c = c_;
    double out[T * NH * HD], L = 0;
    att_ref(c->which == 0 ? x : c->q, c->which == 1 ? x : c->k, c->which == 2 ? x : c->v, c->scale, out, NULL);
    for (int i = 0; i < T * NH * HD; i++) L += c->dy[i] * out[i];
    return L;
}
static void test_attention(void) {
    double q[T * NH * HD], k[T * NKV * HD], v[T * NKV * HD], dy[T * NH * HD], out[T * NH * HD], lse[NH * T];
    fill(q, T * NH * HD, 1), fill(k, T * NKV * HD, 1), fill(v, T * NKV * HD, 1), fill(dy, T * NH * HD, 1);
    double scale = 1 / sqrt((double)HD);
    att_ref(q, k, v, scale, out, lse);
    float *qf = to_f(q, T * NH * HD), *kf = to_f(k, T * NKV * HD), *vf = to_f(v, T * NKV * HD), *dyf = to_f(dy, T * NH * HD);
    float *of = to_f(out, T * NH * HD), *lf = to_f(lse, NH * T);
    float dq[T * NH * HD], dk[T * NKV * HD], dv[T * NKV * HD], work[2 * T * T];
    rotq_attention_backward(dq, dk, dv, dyf, of, qf, kf, vf, lf, T, NH, NKV, HD, (float)scale, work);
    att_ctx c = {q, k, v, dy, 0, scale};
    check_dir("attention dq", dq, att_f, &c, q, T * NH * HD);
    c.which = 1, check_dir("attention dk (GQA: two heads per key)", dk, att_f, &c, k, T * NKV * HD);
    c.which = 2, check_dir("attention dv", dv, att_f, &c, v, T * NKV * HD);
    free(qf), free(kf), free(vf), free(dyf), free(of), free(lf);
}

/* ---- MLP activations ------------------------------------------------------------------------------- */
enum { NF = 40 };
typedef struct { const double *g, *u, *dy; int which; int act; } mlp_ctx;
static double act_ref(int act, double x) {
    switch (act) {
    case ROTQ_MLP_RELU: return x > 0 ? x : 0;
    case ROTQ_MLP_GELU: return 0.5 * x * (1 + erf(x / sqrt(2.0)));
    default: return 0.5 * x * (1 + tanh(sqrt(2 / M_PI) * (x + 0.044715 * x * x * x)));
    }
}
static double mlp_f(const double *x, void *c_) {
    mlp_ctx *c = c_;
    double L = 0;
    for (int i = 0; i < NF; i++) {
        if (c->act == ROTQ_MLP_SWIGLU) {
            double g = c->which == 0 ? x[i] : c->g[i], u = c->which == 1 ? x[i] : c->u[i];
            L += c->dy[i] * g / (1 + exp(-g)) * u;
        } else L += c->dy[i] * act_ref(c->act, x[i]);
    }
    return L;
}
static void test_mlp(void) {
    double g[NF], u[NF], dy[NF];
    fill(g, NF, 2), fill(u, NF, 1), fill(dy, NF, 1);
    for (int i = 0; i < NF; i++)
        if (fabs(g[i]) < 1e-3) g[i] = 0.5; /* keep ReLU's kink away from the differences */
    float *gf = to_f(g, NF), *uf = to_f(u, NF), *dyf = to_f(dy, NF), dg[NF], du[NF];
    rotq_swiglu_backward(dg, du, dyf, gf, uf, NF);
    mlp_ctx c = {g, u, dy, 0, ROTQ_MLP_SWIGLU};
    check_dir("swiglu dgate", dg, mlp_f, &c, g, NF);
    c.which = 1, check_dir("swiglu dup", du, mlp_f, &c, u, NF);
    const int acts[] = {ROTQ_MLP_RELU, ROTQ_MLP_GELU, ROTQ_MLP_GELU_TANH};
    const char *names[] = {"relu", "gelu", "gelu_tanh"};
    for (int a = 0; a < 3; a++) {
        rotq_act_backward((rotq_mlp_kind)acts[a], dg, dyf, gf, NF);
        mlp_ctx ca = {g, u, dy, 0, acts[a]};
        check_dir(names[a], dg, mlp_f, &ca, g, NF);
    }
    /* the embedding's backward scatters rows, repeated ids adding up */
    int32_t ids[4] = {2, 0, 2, 1};
    float dx[4 * 3] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12}, dE[3 * 3] = {0};
    rotq_embedding_backward(dE, dx, ids, 4, 3);
    CHECK(dE[6] == 8 && dE[7] == 10 && dE[8] == 12 && dE[0] == 4 && dE[3] == 10, "embedding backward");
    free(gf), free(uf), free(dyf);
}

/* ---- the loss over lm_head ---------------------------------------------------------------------------- */
enum { LV = 30, LD = 8, LT = 5 };
typedef struct { const double *W, *teacher; const int32_t *tg; bool kl; } loss_ctx;
static double loss_f(const double *h, void *c_) {
    loss_ctx *c = c_;
    double L = 0;
    int n = 0;
    for (int t = 0; t < LT; t++) {
        if (c->tg[t] < 0) continue;
        n++;
        double z[LV], zt[LV], mx = -INFINITY, mt = -INFINITY, s = 0, stt = 0;
        for (int v = 0; v < LV; v++) {
            z[v] = zt[v] = 0;
            for (int i = 0; i < LD; i++) z[v] += h[t * LD + i] * c->W[v * LD + i], zt[v] += c->teacher[t * LD + i] * c->W[v * LD + i];
            mx = fmax(mx, z[v]), mt = fmax(mt, zt[v]);
        }
        for (int v = 0; v < LV; v++) s += exp(z[v] - mx), stt += exp(zt[v] - mt);
        double lse = mx + log(s), lset = mt + log(stt);
        if (!c->kl) L += lse - z[c->tg[t]];
        else
            for (int v = 0; v < LV; v++) L += exp(zt[v] - lset) * ((zt[v] - lset) - (z[v] - lse));
    }
    return L / n;
}
static void test_loss(void) {
    tu_llama_shape sh = {.d = LD, .ff = 8, .layers = 1, .heads = 2, .kv_heads = 1, .head_dim = 4, .vocab = LV};
    rotq_model *m = tu_random_llama(&sh, 3);
    rotq_runner *r = NULL;
    CHECK(rotq_runner_new(m, 1, &r) == ROTQ_OK, "%s", rotq_last_error());
    double h[LT * LD], teacher[LT * LD], W[LV * LD];
    fill(h, LT * LD, 1), fill(teacher, LT * LD, 1);
    for (int i = 0; i < LV * LD; i++) W[i] = r->lm_head[i];
    int32_t tg[LT] = {3, 7, -1, 29, 0};
    float *hf = to_f(h, LT * LD), *tf = to_f(teacher, LT * LD), dh[LT * LD];
    for (int kl = 0; kl < 2; kl++) {
        double L;
        int64_t n;
        CHECK(rotq_nn_loss_backward(r, kl ? ROTQ_LOSS_KL : ROTQ_LOSS_CE, hf, tf, tg, LT, dh, &L, &n) == ROTQ_OK, "%s",
              rotq_last_error());
        loss_ctx c = {W, teacher, tg, kl};
        CHECK(n == 4 && fabs(L - loss_f(h, &c)) < 1e-5 * fabs(L) + 1e-6, "%s loss %.8g, reference %.8g", kl ? "KL" : "CE", L,
              loss_f(h, &c));
        check_dir(kl ? "KL dhidden" : "CE dhidden", dh, loss_f, &c, h, LT * LD);
        for (int i = 0; i < LD; i++) CHECK(dh[2 * LD + i] == 0, "an uncounted row has no gradient");
    }
    /* KL of a model against itself is 0 with zero gradient */
    double L;
    CHECK(rotq_nn_loss_backward(r, ROTQ_LOSS_KL, hf, hf, tg, LT, dh, &L, NULL) == ROTQ_OK && fabs(L) < 1e-6, "KL(p‖p) = %g", L);
    int32_t bad[LT] = {0, 0, 0, LV, 0};
    CHECK(rotq_nn_loss_backward(r, ROTQ_LOSS_CE, hf, NULL, bad, LT, dh, &L, NULL) == ROTQ_ERR_ARG, "a target past the vocabulary");
    CHECK(rotq_nn_loss_backward(r, ROTQ_LOSS_KL, hf, NULL, tg, LT, dh, &L, NULL) == ROTQ_ERR_ARG, "KL without a teacher");
    free(hf), free(tf);
    rotq_runner_free(r);
    rotq_model_free(m);
}

int main(void) {
    test_linear();
    test_norms();
    test_rope();
    test_attention();
    test_mlp();
    test_loss();
    return tu_finish("test_nn_backward");
}
