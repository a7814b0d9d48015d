/* The training-mode forward: the same logits as inference, bit for bit, and a record of what each
 * layer's backward needs — every saved tensor checked against an independent double-precision
 * recomputation from the weights and the other saved tensors (norm rstd, RoPE'd q/k, attention
 * through the saved log-sum-exp, residuals, MLP pre-activations), the online rotations between a
 * site's raw and transformed values (k = k_raw·R3 per head, ff = ff_raw·R4), and fake quantization
 * within half a grid step. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "nn/nn.h"
#include "quant/quant.h"
#include "rotate/fuse.h"
#include "rotate/online.h"
#include "rotate/rotate.h"
#include "testutil.h"

static const tu_llama_shape shape = {.d = 96, .ff = 160, .layers = 2, .heads = 4, .kv_heads = 2, .head_dim = 24, .vocab = 90};
enum { T = 20 };
static int32_t ids[T];

static double rel(const float *a, const double *b, int64_t n) {
    double e = 0, m = 1e-30;
    for (int64_t i = 0; i < n; i++) e = fmax(e, fabs(a[i] - b[i])), m = fmax(m, fabs(b[i]));
    return e / m;
}

/* y [T, n_out] = x [T, n_in]·Wᵀ (+ base) in double */
static void dlinear(double *y, const float *x, const float *w, int64_t n_in, int64_t n_out, const float *base) {
    for (int64_t t = 0; t < T; t++)
        for (int64_t o = 0; o < n_out; o++) {
            double s = base ? base[t * n_out + o] : 0.0;
            for (int64_t i = 0; i < n_in; i++) s += (double)x[t * n_in + i] * w[o * n_in + i];
            y[t * n_out + o] = s;
        }
}

static void dapply(double *y, const float *x, const double *R, int64_t rows, int64_t n) {
    for (int64_t r = 0; r < rows; r++)
        for (int64_t j = 0; j < n; j++) {
            double s = 0;
            for (int64_t i = 0; i < n; i++) s += (double)x[r * n + i] * R[i * n + j];
            y[r * n + j] = s;
        }
}

static void check_record(rotq_runner *r, const rotq_activations *a, const char *what, bool online, bool quant) {
    const rotq_hparams *hp = &r->hp;
    int64_t d = hp->hidden, nh = hp->n_heads, nkv = hp->n_kv_heads, hd = hp->head_dim, ff = hp->intermediate;
    int64_t qd = nh * hd, kvd = nkv * hd, half = hp->rotary_dim / 2;
    double *y = malloc(sizeof(double) * T * (qd > ff ? (qd > d ? qd : d) : ff));
    double *y2 = malloc(sizeof(double) * T * ff);
    for (int32_t l = 0; l < hp->n_layers; l++) {
        const rotq_layer_acts *s = &a->layers[l];
        const rotq_layer_weights *w = &r->layers[l];
        /* input: the embeddings, then the previous layer's output */
        if (l == 0)
            for (int64_t i = 0; i < T * d; i++) y[i] = r->embed[(int64_t)ids[i / d] * d + i % d];
        else dlinear(y, a->layers[l - 1].ff, w[-1].wdown, ff, d, a->layers[l - 1].x_mid);
        CHECK(rel(s->x_in, y, T * d) < 1e-5, "%s layer %d: x_in", what, l);
        /* RMSNorm: rstd and the normed rows */
        double e_rstd = 0, e_xn = 0;
        for (int64_t t = 0; t < T; t++) {
            double ss = 0;
            for (int64_t i = 0; i < d; i++) ss += (double)s->x_in[t * d + i] * s->x_in[t * d + i];
            double rs = 1 / sqrt(ss / d + hp->norm_eps);
            e_rstd = fmax(e_rstd, fabs(s->rstd_attn[t] - rs) / rs);
            for (int64_t i = 0; i < d; i++)
                e_xn = fmax(e_xn, fabs(s->xn_attn_raw[t * d + i] - s->x_in[t * d + i] * rs * (w->attn_norm[i] + r->norm_offset)));
        }
        CHECK(e_rstd < 1e-6 && e_xn < 1e-4, "%s layer %d: rstd %.3g, normed %.3g", what, l, e_rstd, e_xn);
        /* q_raw, k_raw: products then RoPE (in double) */
        const float *wq[2] = {w->wq, w->wk};
        const float *got[2] = {s->q_raw, s->k_raw};
        int64_t heads[2] = {nh, nkv};
        for (int j = 0; j < 2; j++) {
            dlinear(y, s->xn_attn, wq[j], d, heads[j] * hd, NULL);
            for (int64_t t = 0; t < T; t++)
                for (int64_t h = 0; h < heads[j]; h++) {
                    double *v = y + (t * heads[j] + h) * hd;
                    for (int64_t i = 0; i < half; i++) {
                        double ang = (double)t * pow(hp->rope_theta, -2.0 * (double)i / (double)hp->rotary_dim);
                        double a0 = v[i], a1 = v[i + half];
                        v[i] = a0 * cos(ang) - a1 * sin(ang);
                        v[i + half] = a1 * cos(ang) + a0 * sin(ang);
                    }
                }
            CHECK(rel(got[j], y, T * heads[j] * hd) < 1e-5, "%s layer %d: %s after RoPE", what, l, j ? "k" : "q");
        }
        /* transforms: R3 on each head of q and k; K fake quantization; V untouched by R3 */
        if (online && !quant) {
            rotq_rotation *R3 = NULL;
            CHECK(rotq_online_rotation_make(&r->model->rot.r3, &R3) == ROTQ_OK, "%s", rotq_last_error());
            double *D = malloc(sizeof(double) * hd * hd);
            rotq_rotation_to_dense_f64(R3, D);
            dapply(y, s->k_raw, D, T * nkv, hd);
            CHECK(rel(s->k, y, T * kvd) < 1e-5, "%s layer %d: k = k_raw·R3", what, l);
            free(D);
            rotq_rotation_free(R3);
        } else if (!online && !quant) {
            CHECK(!memcmp(s->k, s->k_raw, sizeof(float) * T * kvd) && !memcmp(s->q, s->q_raw, sizeof(float) * T * qd),
                  "%s layer %d: no transform, yet q/k changed", what, l);
        }
        /* attention through the saved log-sum-exp: att_t = Σ_j exp(scale·q_t·k_j − lse_t)·v_j */
        double e_att = 0, m_att = 1e-30, e_norm = 0;
        for (int64_t t = 0; t < T; t++)
            for (int64_t h = 0; h < nh; h++) {
                int64_t g = h / (nh / nkv);
                double out[64] = {0}, psum = 0;
                for (int64_t j = 0; j <= t; j++) {
                    double sc = 0;
                    for (int64_t i = 0; i < hd; i++) sc += (double)s->q[(t * nh + h) * hd + i] * s->k[(j * nkv + g) * hd + i];
                    double p = exp(sc * r->attn_scale - s->lse[h * T + t]);
                    psum += p;
                    for (int64_t i = 0; i < hd; i++) out[i] += p * s->v[(j * nkv + g) * hd + i];
                }
                e_norm = fmax(e_norm, fabs(psum - 1));
                for (int64_t i = 0; i < hd; i++) {
                    e_att = fmax(e_att, fabs(s->att_raw[(t * nh + h) * hd + i] - out[i]));
                    m_att = fmax(m_att, fabs(out[i]));
                }
            }
        CHECK(e_norm < 1e-4 && e_att / m_att < 1e-4, "%s layer %d: attention via lse (Σp-1 %.3g, att %.3g)", what, l, e_norm,
              e_att / m_att);
        /* residual after attention, MLP pre-activations, SwiGLU */
        dlinear(y, s->att, w->wo, qd, d, s->x_in);
        CHECK(rel(s->x_mid, y, T * d) < 1e-5, "%s layer %d: x_mid", what, l);
        dlinear(y, s->xn_mlp, w->wgate, d, ff, NULL);
        dlinear(y2, s->xn_mlp, w->wup, d, ff, NULL);
        CHECK(rel(s->gate, y, T * ff) < 1e-5 && rel(s->up, y2, T * ff) < 1e-5, "%s layer %d: gate/up", what, l);
        for (int64_t i = 0; i < T * ff; i++) y[i] = y[i] / (1 + exp(-y[i])) * y2[i];
        CHECK(rel(s->ff_raw, y, T * ff) < 1e-4, "%s layer %d: silu(gate)·up", what, l);
        if (online && !quant) {
            rotq_rotation *R4 = NULL;
            CHECK(rotq_online_rotation_make(&r->model->rot.r4, &R4) == ROTQ_OK, "%s", rotq_last_error());
            double *D = malloc(sizeof(double) * ff * ff);
            rotq_rotation_to_dense_f64(R4, D);
            dapply(y, s->ff_raw, D, T, ff);
            CHECK(rel(s->ff, y, T * ff) < 1e-5, "%s layer %d: ff = ff_raw·R4", what, l);
            free(D);
            rotq_rotation_free(R4);
        }
        if (quant) {
            /* A4 per token, clip 0.9: within half a step of the clipped raw value, and changed */
            double worst = 0;
            int changed = 0;
            for (int64_t t = 0; t < T; t++) {
                double mx = 0;
                for (int64_t i = 0; i < d; i++) mx = fmax(mx, fabs(s->xn_mlp_raw[t * d + i]));
                double step = 0.9 * mx / 7;
                for (int64_t i = 0; i < d; i++) {
                    double x = fmin(fmax(s->xn_mlp_raw[t * d + i], -8 * step), 7 * step);
                    worst = fmax(worst, fabs(s->xn_mlp[t * d + i] - x) / step);
                    changed += s->xn_mlp[t * d + i] != s->xn_mlp_raw[t * d + i];
                }
            }
            CHECK(worst <= 0.5 + 1e-4 && changed > T * d / 2, "%s layer %d: A4 fake quant off by %.3g steps, %d changed", what,
                  l, worst, changed);
        }
    }
    /* the final norm's input is the last layer's output */
    const rotq_layer_acts *s = &a->layers[hp->n_layers - 1];
    dlinear(y, s->ff, r->layers[hp->n_layers - 1].wdown, ff, d, s->x_mid);
    CHECK(rel(a->x_final, y, T * d) < 1e-5, "%s: x_final", what);
    free(y);
    free(y2);
}

static void run_case(bool online, bool quant, const char *what) {
    rotq_model *m = tu_random_llama(&shape, 17);
    if (online) {
        rotq_rotate_options ro = rotq_rotate_options_default();
        CHECK(rotq_rotate_model(m, &ro) == ROTQ_OK, "%s", rotq_last_error());
    }
    rotq_runner *r = NULL;
    CHECK(rotq_runner_new(m, 2, &r) == ROTQ_OK && rotq_online_attach(r) == ROTQ_OK, "%s", rotq_last_error());
    rotq_quant_options q = rotq_quant_defaults();
    rotq_quant_preset(&q, "w4a4kv4");
    q.act.range = ROTQ_SYM_MAXQ; /* the check below is QuaRot's grid */
    rotq_fakequant fq = rotq_quant_fakequant(&q, m);
    if (quant) CHECK(rotq_fakequant_attach(r, &fq) == ROTQ_OK, "%s", rotq_last_error());
    static float h_inf[T * 96], h_tr[T * 96];
    CHECK(rotq_nn_forward(r, ids, T, NULL, h_inf) == ROTQ_OK, "%s", rotq_last_error());
    rotq_activations *a = NULL;
    CHECK(rotq_activations_new(r, T, &a) == ROTQ_OK, "%s", rotq_last_error());
    rotq_runner_set_training(r, a);
    CHECK(rotq_nn_forward(r, ids, T, NULL, h_tr) == ROTQ_OK, "%s", rotq_last_error());
    CHECK(!memcmp(h_inf, h_tr, sizeof h_inf), "%s: training mode changed the forward", what);
    check_record(r, a, what, online, quant);
    /* a training forward takes exactly its window, without a cache */
    CHECK(rotq_nn_forward(r, ids, T - 1, NULL, h_tr) == ROTQ_ERR_ARG, "%s: a shorter window must be refused", what);
    rotq_kv_cache *c = NULL;
    CHECK(rotq_kv_cache_new(r, T, &c) == ROTQ_OK && rotq_nn_forward(r, ids, T, c, h_tr) == ROTQ_ERR_ARG,
          "%s: a KV cache must be refused in training mode", what);
    rotq_kv_cache_free(c);
    rotq_runner_set_training(r, NULL);
    CHECK(rotq_nn_forward(r, ids, T - 1, NULL, h_tr) == ROTQ_OK, "%s: back to inference", what);
    rotq_activations_free(a);
    rotq_runner_free(r);
    if (online && quant) {
        /* the order is enforced: online rotations cannot come after a quantizer */
        rotq_runner *r2 = NULL;
        CHECK(rotq_runner_new(m, 1, &r2) == ROTQ_OK && rotq_fakequant_attach(r2, &fq) == ROTQ_OK, "%s", rotq_last_error());
        CHECK(r2 && rotq_online_attach(r2) == ROTQ_ERR_ARG && strstr(rotq_last_error(), "come first"),
              "online rotations after a quantizer must be refused (%s)", rotq_last_error());
        rotq_runner_free(r2);
    }
    rotq_fakequant_release(&fq);
    rotq_model_free(m);
}

int main(void) {
    for (int t = 0; t < T; t++) ids[t] = (int32_t)((t * 31 + 7) % shape.vocab);
    run_case(false, false, "float");
    run_case(true, false, "rotated R1-R4 (online R3/R4)");
    run_case(true, true, "rotated, W16A4KV4 fake quantization");
    return tu_finish("test_nn_train");
}
