/* Learned rotations on tiny random models of every built-in family (Llama, Qwen2 with biases, Phi-3
 * with fused qkv/gate_up, OPT with LayerNorm, ReLU and learned positions):
 *  - the whole model's backward: dL/dR1, dL/dR2 and dL/d(embedding) against central finite
 *    differences of the forward, with the W16A4KV4 quantizers (lm_head's input too) and without any.
 *    The straight-through estimator is the derivative of a quantizer whose rounding offsets are
 *    frozen at the point of evaluation, so the differences run with the offsets recorded by the
 *    first forward added back (same values there, same derivative as the estimator says);
 *  - the learner's forward is the rotated model's: R1/R2 written as files and fused by rotq_rotate_model
 *    give the same logits through the real quantizers (8-bit, so that rounding near ties cannot flip);
 *  - the Cayley step: orthogonal to rounding, a descent step, α = min(lr, 1/‖W‖₁), first order R − αRW. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <cblas.h>

#include "learn/learn.h"
#include "quant/quant.h"
#include "rotate/online.h"
#include "rotate/rotate.h"
#include "testutil.h"

static const tu_llama_shape shape = {.d = 32, .ff = 48, .layers = 2, .heads = 4, .kv_heads = 2, .head_dim = 8, .vocab = 50};
enum { T = 12 };
static int32_t ids[T], targets[T];

/* ---- a quantizer with frozen rounding offsets ------------------------------------------------------- */
typedef struct frozen {
    rotq_hooks real;
    float *delta, *save;
    int64_t cap, used, cursor;
    bool replay;
} frozen;

static rotq_status fz_do(frozen *f, float *x, int64_t n, int kind, int32_t layer, rotq_role role, const int64_t *dims) {
    if (f->replay) {
        for (int64_t i = 0; i < n; i++) x[i] += f->delta[f->cursor + i];
        f->cursor += n;
        return ROTQ_OK;
    }
    if (f->used + n > f->cap) {
        f->cap = 2 * (f->used + n);
        f->delta = realloc(f->delta, (size_t)f->cap * sizeof(float));
    }
    f->save = realloc(f->save, (size_t)n * sizeof(float));
    memcpy(f->save, x, (size_t)n * sizeof(float));
    rotq_status s = ROTQ_OK;
    if (kind == 0 && f->real.linear_input) s = f->real.linear_input(f->real.ctx, layer, role, x, dims[0], dims[1]);
    if (kind == 1 && f->real.qk_rope) s = f->real.qk_rope(f->real.ctx, layer, f->save /* q: untouched */, x, dims[0], 0, dims[1], dims[2], dims[3]);
    if (kind == 2 && f->real.v) s = f->real.v(f->real.ctx, layer, x, dims[0], 0, dims[2], dims[3]);
    for (int64_t i = 0; i < n; i++) f->delta[f->used + i] = x[i] - f->save[i];
    f->used += n;
    return s;
}
static rotq_status fz_lin(void *c, int32_t layer, rotq_role role, float *x, int64_t rows, int64_t cols) {
    int64_t dims[4] = {rows, cols, 0, 0};
    return fz_do(c, x, rows * cols, 0, layer, role, dims);
}
static rotq_status fz_qk(void *c, int32_t layer, float *q, float *k, int64_t T_, int64_t pos0, int64_t nh, int64_t nkv, int64_t hd) {
    (void)q, (void)pos0;
    int64_t dims[4] = {T_, nh, nkv, hd};
    return fz_do(c, k, T_ * nkv * hd, 1, layer, ROLE_K, dims);
}
static rotq_status fz_v(void *c, int32_t layer, float *v, int64_t T_, int64_t pos0, int64_t nkv, int64_t hd) {
    (void)pos0;
    int64_t dims[4] = {T_, 0, nkv, hd};
    return fz_do(c, v, T_ * nkv * hd, 2, layer, ROLE_V, dims);
}

static double *random_rotations(int64_t n, int64_t count, uint64_t seed) {
    double *R = malloc((size_t)(count * n * n) * sizeof(double));
    for (int64_t i = 0; i < count; i++) {
        rotq_rotation *rot = NULL;
        CHECK(rotq_rotation_random_orthogonal(n, seed + (uint64_t)i, &rot) == ROTQ_OK, "%s", rotq_last_error());
        rotq_rotation_to_dense_f64(rot, R + i * n * n);
        rotq_rotation_free(rot);
    }
    return R;
}

static double loss_now(rotq_runner *r, frozen *f) {
    static float hidden[T * 64], dh[T * 64];
    f->cursor = 0;
    double L = NAN;
    CHECK(rotq_nn_forward(r, ids, T, NULL, hidden) == ROTQ_OK, "%s", rotq_last_error());
    CHECK(rotq_nn_loss_backward(r, ROTQ_LOSS_CE, hidden, NULL, targets, T, dh, &L, NULL) == ROTQ_OK, "%s", rotq_last_error());
    return L;
}

/* Directional derivative of the loss along E (unit Frobenius norm) by central differences; p points
 * at the parameters (double, n values), sync refreshes what the forward reads. */
static double fd_dir(rotq_runner *r, frozen *f, double *p, const double *E, int64_t n, rotq_learned *lr, float *pf) {
    /* small enough that few ReLU kinks are crossed, large enough for float32 forwards */
    double eps = r->hp.mlp_act == ROTQ_MLP_RELU ? 3e-4 : 1e-3, v[2];
    double *keep = malloc((size_t)n * sizeof(double));
    memcpy(keep, p, (size_t)n * sizeof(double));
    for (int k = 0; k < 2; k++) {
        for (int64_t i = 0; i < n; i++) p[i] = keep[i] + (k ? -eps : eps) * E[i];
        if (lr) rotq_learned_sync(lr);
        else
            for (int64_t i = 0; i < n; i++) pf[i] = (float)p[i];
        v[k] = loss_now(r, f);
    }
    memcpy(p, keep, (size_t)n * sizeof(double));
    if (lr) rotq_learned_sync(lr);
    else
        for (int64_t i = 0; i < n; i++) pf[i] = (float)p[i];
    free(keep);
    return (v[0] - v[1]) / (2 * eps);
}

static void check_grad(const char *what, rotq_runner *r, frozen *f, double *p, const double *G, int64_t n, rotq_learned *lr,
                       float *pf) {
    double gn = 0;
    for (int64_t i = 0; i < n; i++) gn += G[i] * G[i];
    gn = sqrt(gn);
    CHECK(gn > 1e-6, "%s: the gradient is zero", what);
    unsigned long long st = 99;
    double *E = malloc((size_t)n * sizeof(double));
    for (int dir = 0; dir < 3; dir++) {
        double en = 0, an = 0;
        for (int64_t i = 0; i < n; i++) E[i] = dir == 0 ? G[i] : tu_nrand(&st), en += E[i] * E[i];
        for (int64_t i = 0; i < n; i++) E[i] /= sqrt(en), an += G[i] * E[i];
        double num = fd_dir(r, f, p, E, n, lr, pf);
        CHECK(fabs(an - num) <= 2e-2 * fabs(num) + 2e-3 * gn, "%s, %s direction: backward %.6g, finite differences %.6g (|grad| %.3g)",
              what, dir == 0 ? "gradient" : "random", an, num, gn);
    }
    free(E);
}

/* mode 0: no quantizer (the rotations act anyway); 1: W16A4KV4; 2: W4A4KV4, weights in the loop */
static void gradients(const char *arch, int mode) {
    bool quant = mode > 0;
    char what[96];
    rotq_model *m = tu_random_model(arch, &shape, 7);
    bool ln = m->arch->norm == ROTQ_NORM_LAYER;
    rotq_rotate_options ro = rotq_rotate_options_default();
    ro.r1 = ro.r2 = ROTQ_R_NONE;
    CHECK(rotq_rotate_model(m, &ro) == ROTQ_OK, "%s: %s", arch, rotq_last_error());
    rotq_runner *r = NULL;
    CHECK(rotq_runner_new(m, 2, &r) == ROTQ_OK && rotq_online_attach(r) == ROTQ_OK, "%s", rotq_last_error());
    double *R1 = ln ? NULL : random_rotations(shape.d, 1, 11), *R2 = random_rotations(shape.head_dim, shape.layers, 21);
    rotq_quant_options q = rotq_quant_defaults();
    if (quant) rotq_quant_preset(&q, "w4a4kv4"), q.w_bits = 16, q.act_lm_head = true;
    rotq_fakequant fq = rotq_quant_fakequant(&q, m);
    rotq_learned *lr = NULL;
    CHECK(rotq_learned_new(r, &fq, R1, R2, &lr) == ROTQ_OK, "%s", rotq_last_error());
    if (!quant) lr->at_stream = lr->at_lm_head = !ln, lr->at_o = lr->at_v = true; /* rotations with nothing between */
    if (mode == 2) {
        rotq_wq_format wf = rotq_wq_format_make(4, false, -1, false);
        lr->freeze_weights = true; /* the straight-through estimator's function: offsets recorded now */
        CHECK(rotq_learned_quantize_weights(lr, r, &wf) == ROTQ_OK, "%s", rotq_last_error());
    }
    rotq_transform in, out;
    rotq_learned_transforms(lr, &in, &out);
    frozen fz = {.real = rotq_fakequant_hooks(&fq)};
    rotq_transform ft = {.name = "frozen quantizers", .kind = ROTQ_TF_FAKE_QUANT,
                         .hooks = {.ctx = &fz, .linear_input = fz_lin, .qk_rope = fz_qk, .v = fz_v}};
    CHECK(rotq_runner_add_transform(r, &in) == ROTQ_OK && rotq_runner_add_transform(r, &ft) == ROTQ_OK &&
          rotq_runner_add_transform(r, &out) == ROTQ_OK, "%s", rotq_last_error());

    rotq_activations *a = NULL;
    CHECK(rotq_activations_new(r, T, &a) == ROTQ_OK, "%s", rotq_last_error());
    int64_t d = shape.d;
    float *hidden = malloc(T * d * sizeof(float)), *dh = malloc(T * d * sizeof(float)), *dx0 = malloc(T * d * sizeof(float));
    double L0;
    rotq_runner_set_training(r, a);
    CHECK(rotq_nn_forward(r, ids, T, NULL, hidden) == ROTQ_OK, "%s", rotq_last_error());
    CHECK(rotq_nn_loss_backward(r, ROTQ_LOSS_CE, hidden, NULL, targets, T, dh, &L0, NULL) == ROTQ_OK, "%s", rotq_last_error());
    CHECK(rotq_nn_backward(r, hidden, dh, dx0) == ROTQ_OK, "%s", rotq_last_error());
    rotq_runner_set_training(r, NULL);
    fz.replay = true;
    CHECK(fabs(loss_now(r, &fz) - L0) < 1e-6, "%s: replaying the frozen offsets reproduces the loss", arch);

    const char *what_mode = mode == 2 ? "W4A4KV4 (+lm_head input)" : quant ? "W16A4KV4 (+lm_head input)" : "no quantizer";
    if (R1) snprintf(what, sizeof what, "%s %s dL/dR1", arch, what_mode), check_grad(what, r, &fz, lr->r1, lr->g1, d * d, lr, NULL);
    snprintf(what, sizeof what, "%s %s dL/dR2", arch, what_mode);
    check_grad(what, r, &fz, lr->r2, lr->g2, shape.layers * shape.head_dim * shape.head_dim, lr, NULL);
    /* the embedding table through dL/dx0 (learned positions, if any, stay put) */
    int64_t ne = (int64_t)shape.vocab * d;
    double *E = calloc((size_t)ne, sizeof(double)), *Ed = malloc((size_t)ne * sizeof(double));
    float *dE = calloc((size_t)ne, sizeof(float));
    rotq_embedding_backward(dE, dx0, ids, T, d);
    for (int64_t i = 0; i < ne; i++) E[i] = dE[i], Ed[i] = r->embed[i];
    snprintf(what, sizeof what, "%s %s dL/dembed", arch, what_mode);
    check_grad(what, r, &fz, Ed, E, ne, NULL, (float *)r->embed);
    free(E), free(Ed), free(dE);

    free(hidden), free(dh), free(dx0), free(fz.delta), free(fz.save), free(R1), free(R2);
    rotq_activations_free(a);
    rotq_runner_free(r);
    rotq_learned_free(lr);
    rotq_fakequant_release(&fq);
    rotq_model_free(m);
}

/* The learner's forward against the model with R1/R2 fused from files. */
static void equals_rotated_model(const char *arch, bool weights) {
    rotq_model *m = tu_random_model(arch, &shape, 8), *m2 = tu_random_model(arch, &shape, 8);
    rotq_rotate_options ro = rotq_rotate_options_default();
    ro.r1 = ro.r2 = ROTQ_R_NONE;
    CHECK(rotq_rotate_model(m, &ro) == ROTQ_OK, "%s", rotq_last_error());
    double *R1 = random_rotations(shape.d, 1, 31), *R2 = random_rotations(shape.head_dim, shape.layers, 41);
    const char *dir = tu_tmpdir();
    char path[512];
    for (int l = -1; l < shape.layers; l++) {
        rotq_rotation *rot = NULL;
        if (l < 0) snprintf(path, sizeof path, "%s/r1.safetensors", dir);
        else snprintf(path, sizeof path, "%s/r2.layer%d.safetensors", dir, l);
        int64_t n = l < 0 ? shape.d : shape.head_dim;
        CHECK(rotq_rotation_from_dense(n, l < 0 ? R1 : R2 + l * n * n, 1e-9, &rot) == ROTQ_OK &&
              rotq_rotation_save(rot, path, ROTQ_F64) == ROTQ_OK, "%s", rotq_last_error());
        rotq_rotation_free(rot);
    }
    rotq_rotate_options rf = rotq_rotate_options_default();
    rf.r1 = rf.r2 = ROTQ_R_FILE;
    rf.r1_file = rf.r2_file = dir;
    CHECK(rotq_rotate_model(m2, &rf) == ROTQ_OK, "%s", rotq_last_error());
    rotq_quant_options q = rotq_quant_defaults();
    rotq_quant_preset(&q, "w4a4kv4");
    q.w_bits = 16, q.act.bits = q.k.bits = q.v.bits = 8;
    if (weights) { /* both sides: 8-bit RTN per row, the rows' full range */
        rotq_quant_options qw = q;
        qw.w_bits = 8, qw.w_method = ROTQ_WQ_RTN, qw.w_clip = false;
        rotq_quant_report rep;
        CHECK(rotq_quantize_weights(m2, &qw, NULL, 0, &rep) == ROTQ_OK, "%s", rotq_last_error());
    }
    rotq_fakequant fq = rotq_quant_fakequant(&q, m), fq2 = rotq_quant_fakequant(&q, m2);
    rotq_runner *r = NULL, *r2 = NULL;
    rotq_learned *lr = NULL;
    CHECK(rotq_runner_new(m, 2, &r) == ROTQ_OK && rotq_online_attach(r) == ROTQ_OK &&
          rotq_learned_new(r, &fq, R1, R2, &lr) == ROTQ_OK, "%s", rotq_last_error());
    rotq_wq_format wf = rotq_wq_format_make(8, false, -1, false);
    if (weights) CHECK(rotq_learned_quantize_weights(lr, r, &wf) == ROTQ_OK, "%s", rotq_last_error());
    CHECK(rotq_learned_attach(r, lr, &fq) == ROTQ_OK, "%s", rotq_last_error());
    CHECK(rotq_runner_new(m2, 2, &r2) == ROTQ_OK && rotq_online_attach(r2) == ROTQ_OK && rotq_fakequant_attach(r2, &fq2) == ROTQ_OK,
          "%s", rotq_last_error());
    int64_t V = shape.vocab, d = shape.d;
    float *h = malloc(T * d * 4), *h2 = malloc(T * d * 4), *lg = malloc(T * V * 4), *lg2 = malloc(T * V * 4);
    CHECK(rotq_nn_forward(r, ids, T, NULL, h) == ROTQ_OK && rotq_nn_forward(r2, ids, T, NULL, h2) == ROTQ_OK, "%s", rotq_last_error());
    rotq_nn_logits(r, h, T, lg), rotq_nn_logits(r2, h2, T, lg2);
    double e = 0, mx = 0;
    for (int64_t i = 0; i < T * V; i++) e = fmax(e, fabs(lg[i] - lg2[i])), mx = fmax(mx, fabs(lg2[i]));
    CHECK(e < 2e-3 * mx, "%s%s: the learner's forward and the fused rotated model differ by %g (max |logit| %g)", arch,
          weights ? " (W8 in the loop)" : "", e, mx);
    /* and the rotations do matter there: the unrotated model gives other logits */
    rotq_runner *r0 = NULL;
    rotq_fakequant fq0 = rotq_quant_fakequant(&q, m);
    CHECK(rotq_runner_new(m, 2, &r0) == ROTQ_OK && rotq_online_attach(r0) == ROTQ_OK && rotq_fakequant_attach(r0, &fq0) == ROTQ_OK, "%s", rotq_last_error());
    CHECK(rotq_nn_forward(r0, ids, T, NULL, h) == ROTQ_OK, "%s", rotq_last_error());
    rotq_nn_logits(r0, h, T, lg);
    double e0 = 0;
    for (int64_t i = 0; i < T * V; i++) e0 = fmax(e0, fabs(lg[i] - lg2[i]));
    CHECK(e0 > 10 * e, "%s: without the rotations the logits should move more (%g vs %g)", arch, e0, e);
    free(h), free(h2), free(lg), free(lg2), free(R1), free(R2);
    rotq_runner_free(r0), rotq_runner_free(r), rotq_runner_free(r2);
    rotq_learned_free(lr);
    rotq_fakequant_release(&fq), rotq_fakequant_release(&fq2), rotq_fakequant_release(&fq0);
    rotq_model_free(m), rotq_model_free(m2);
}

static void cayley(void) {
    enum { N = 24 };
    double *R = random_rotations(N, 1, 5), G[N * N], R0[N * N], W[N * N], A[N * N];
    unsigned long long st = 3;
    for (int i = 0; i < N * N; i++) G[i] = tu_nrand(&st);
    memcpy(R0, R, sizeof R0);
    /* W = ½(RᵀG − GᵀR) and its largest column sum, by hand */
    cblas_dgemm(CblasRowMajor, CblasTrans, CblasNoTrans, N, N, N, 1.0, R, N, G, N, 0.0, A, N);
    double n1 = 0;
    for (int i = 0; i < N; i++)
        for (int j = 0; j < N; j++) W[i * N + j] = 0.5 * (A[i * N + j] - A[j * N + i]);
    for (int j = 0; j < N; j++) {
        double c = 0;
        for (int i = 0; i < N; i++) c += fabs(W[i * N + j]);
        n1 = fmax(n1, c);
    }
    double alpha;
    CHECK(rotq_cayley_step(R, G, NULL, N, 1.5, 0, &alpha) == ROTQ_OK, "%s", rotq_last_error());
    CHECK(fabs(alpha - fmin(1.5, 1 / (n1 + 1e-8))) < 1e-12, "alpha %g, want min(1.5, 1/%g)", alpha, n1);
    CHECK(rotq_orthogonality_error(R, N) < 1e-13, "orthogonal after a step: %g", rotq_orthogonality_error(R, N));
    double descent = 0;
    for (int i = 0; i < N * N; i++) descent += G[i] * (R[i] - R0[i]);
    CHECK(descent < 0, "a descent step: <G, ΔR> = %g", descent);
    /* a small step is R − α·R·W to first order */
    memcpy(R, R0, sizeof R0);
    CHECK(rotq_cayley_step(R, G, NULL, N, 1e-4, 0, &alpha) == ROTQ_OK && alpha == 1e-4, "small step");
    double RW[N * N], err = 0, mv = 0;
    cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, N, N, N, 1.0, R0, N, W, N, 0.0, RW, N);
    for (int i = 0; i < N * N; i++) err = fmax(err, fabs(R[i] - (R0[i] - alpha * RW[i]))), mv = fmax(mv, fabs(alpha * RW[i]));
    CHECK(err < 1e-3 * mv, "first order: |R' − (R − αRW)| = %g against a step of %g", err, mv);
    /* a hundred steps with momentum keep orthogonality */
    double M[N * N] = {0};
    for (int k = 0; k < 100; k++) {
        for (int i = 0; i < N * N; i++) G[i] = tu_nrand(&st);
        CHECK(rotq_cayley_step(R, G, M, N, 1.5, 0.9, &alpha) == ROTQ_OK, "%s", rotq_last_error());
    }
    CHECK(rotq_orthogonality_error(R, N) < 1e-12, "orthogonal after 100 steps: %g", rotq_orthogonality_error(R, N));
    free(R);
}

int main(void) {
    for (int t = 0; t < T; t++) ids[t] = (int32_t)((t * 17 + 3) % shape.vocab), targets[t] = t + 1 < T ? (int32_t)(((t + 1) * 17 + 3) % shape.vocab) : -1;
    const char *archs[] = {"llama", "qwen2", "qwen3", "phi3", "opt"};
    for (int a = 0; a < 5; a++) {
        for (int mode = 0; mode < 3; mode++) gradients(archs[a], mode);
    }
    equals_rotated_model("llama", false);
    equals_rotated_model("qwen2", false);
    equals_rotated_model("llama", true);
    equals_rotated_model("qwen2", true);
    equals_rotated_model("phi3", true);
    equals_rotated_model("qwen3", true);
    cayley();
    return tu_finish("test_learn");
}
