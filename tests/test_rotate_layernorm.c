/* LayerNorm fusion as identities on small matrices, in double:
 *  - folding a norm's weight g and bias β into a linear: W'·x̂ + b' = W·(g ⊙ x̂ + β) + b;
 *  - centring the stream writers (embedding rows, o_proj/down_proj outputs and biases) makes the
 *    stream x' = x − mean(x), so LayerNorm(x) = RMSNorm(x'), and after folding the next linear
 *    gives the same output from RMSNorm(x') as it did from LayerNorm(x);
 *  - R1 on such a stream (rotq_r1_keep_mean, then the rotation): the effective matrix is
 *    orthogonal and keeps 1 fixed, every site moved by exactly it, the stream stays zero-mean. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "arch/arch.h"
#include "rotate/fuse.h"
#include "rotate/rotate.h"
#include "testutil.h"

static uint64_t st = 0x9E3779B97F4A7C15ULL;
static double urand(void) {
    st ^= st << 13;
    st ^= st >> 7;
    st ^= st << 17;
    return (double)(st >> 11) / 9007199254740992.0 * 2.0 - 1.0;
}

/* Adds an F64 tensor of random values (plus `offset`) with the given role to m; returns its index. */
static int64_t add(rotq_model *m, const char *name, int32_t nd, int64_t d0, int64_t d1, rotq_role role, double offset) {
    int64_t shape[2] = {d0, d1}, n = nd > 1 ? d0 * d1 : d0;
    double *v = malloc((size_t)n * sizeof *v);
    for (int64_t i = 0; i < n; i++) v[i] = urand() + offset;
    CHECK(rotq_model_add_tensor(m, name, ROTQ_F64, nd, shape, v, (uint64_t)n * sizeof *v, true) == ROTQ_OK, "add %s", name);
    rotq_tensor *t = &m->tensors[m->n_tensors - 1];
    t->role = role;
    t->layer = nd > 1 && role != ROLE_EMBED && role != ROLE_POS_EMBED ? 0 : -1;
    if (role == ROLE_O_BIAS) t->layer = 0;
    return m->n_tensors - 1;
}

static double *copy_of(const rotq_model *m, int64_t i) {
    const rotq_tensor *t = &m->tensors[i];
    int64_t n = rotq_tensor_numel(t);
    double *v = malloc((size_t)n * sizeof *v);
    memcpy(v, t->data, (size_t)n * sizeof *v);
    return v;
}

static const double *data(const rotq_model *m, int64_t i) { return m->tensors[i].data; }

static void test_fold(void) {
    enum { N = 10, R = 6 };
    rotq_model *m = rotq_model_new();
    int64_t iw = add(m, "w", 2, R, N, ROLE_Q, 0.0), ib = add(m, "b", 1, R, 0, ROLE_Q_BIAS, 0.0);
    double *W = copy_of(m, iw), *b = copy_of(m, ib), g[N], beta[N], x[N];
    for (int i = 0; i < N; i++) { g[i] = 1.0 + 0.5 * urand(); beta[i] = urand(); x[i] = urand(); }
    CHECK(rotq_fold_norm_into_linear(&m->tensors[iw], &m->tensors[ib], g, beta) == ROTQ_OK, "fold");
    double err = 0.0;
    for (int r = 0; r < R; r++) {
        double want = b[r], got = data(m, ib)[r];
        for (int c = 0; c < N; c++) {
            want += W[r * N + c] * (g[c] * x[c] + beta[c]);
            got += data(m, iw)[r * N + c] * x[c];
        }
        err = fmax(err, fabs(want - got));
    }
    CHECK(err < 1e-12, "W'x + b' = W(g*x + beta) + b: error %g", err);
    free(W);
    free(b);
    rotq_model_free(m);
}

/* LN(x) of one row, weight g, bias beta, eps */
static void layer_norm(const double *x, const double *g, const double *beta, double eps, int n, double *out) {
    double mu = 0.0, var = 0.0;
    for (int i = 0; i < n; i++) mu += x[i] / n;
    for (int i = 0; i < n; i++) var += (x[i] - mu) * (x[i] - mu) / n;
    for (int i = 0; i < n; i++) out[i] = (x[i] - mu) / sqrt(var + eps) * g[i] + beta[i];
}

static void test_center_then_fold(void) {
    enum { N = 12, V = 5, K = 7, R = 4 };
    const double eps = 1e-5;
    rotq_model *m = rotq_model_new();
    int64_t ie = add(m, "embed", 2, V, N, ROLE_EMBED, 0.7), io = add(m, "o", 2, N, K, ROLE_O, 0.2);
    int64_t iob = add(m, "o.bias", 1, N, 0, ROLE_O_BIAS, -0.4);
    int64_t iq = add(m, "q", 2, R, N, ROLE_Q, 0.0), iqb = add(m, "q.bias", 1, R, 0, ROLE_Q_BIAS, 0.0);
    double *E = copy_of(m, ie), *O = copy_of(m, io), *ob = copy_of(m, iob), *Q = copy_of(m, iq), *qb = copy_of(m, iqb);
    double g[N], beta[N], a[K];
    for (int i = 0; i < N; i++) { g[i] = 1.0 + 0.4 * urand(); beta[i] = 0.3 * urand(); }
    for (int i = 0; i < K; i++) a[i] = urand();
    rotq_rotate_opts ro = rotq_rotate_defaults();
    CHECK(rotq_center_output(&m->tensors[ie], NULL, &ro) == ROTQ_OK, "centre embedding");
    CHECK(rotq_center_output(&m->tensors[io], &m->tensors[iob], &ro) == ROTQ_OK, "centre o_proj");
    CHECK(rotq_fold_norm_into_linear(&m->tensors[iq], &m->tensors[iqb], g, beta) == ROTQ_OK, "fold");
    double stream_err = 0.0, out_err = 0.0;
    for (int v = 0; v < V; v++) {
        double x[N], xc[N], ln[N], ss = 0.0, mu = 0.0;
        for (int i = 0; i < N; i++) {
            x[i] = E[v * N + i] + ob[i];
            xc[i] = data(m, ie)[v * N + i] + data(m, iob)[i];
            for (int k = 0; k < K; k++) {
                x[i] += O[i * K + k] * a[k];
                xc[i] += data(m, io)[i * K + k] * a[k];
            }
        }
        for (int i = 0; i < N; i++) mu += x[i] / N;
        for (int i = 0; i < N; i++) { stream_err = fmax(stream_err, fabs(xc[i] - (x[i] - mu))); ss += xc[i] * xc[i] / N; }
        layer_norm(x, g, beta, eps, N, ln);
        for (int r = 0; r < R; r++) {
            double want = qb[r], got = data(m, iqb)[r];
            for (int i = 0; i < N; i++) {
                want += Q[r * N + i] * ln[i];
                got += data(m, iq)[r * N + i] * xc[i] / sqrt(ss + eps); /* RMSNorm, weight 1 */
            }
            out_err = fmax(out_err, fabs(want - got));
        }
    }
    CHECK(stream_err < 1e-12, "centred writers give x - mean(x): error %g", stream_err);
    CHECK(out_err < 1e-12, "q(RMSNorm(x')) with folded g, beta = q(LayerNorm(x)): error %g", out_err);
    free(E); free(O); free(ob); free(Q); free(qb);
    rotq_model_free(m);
}

static double row_mean_max(const double *x, int64_t rows, int64_t n) {
    double worst = 0.0;
    for (int64_t r = 0; r < rows; r++) {
        double s = 0.0;
        for (int64_t i = 0; i < n; i++) s += x[r * n + i];
        worst = fmax(worst, fabs(s / (double)n));
    }
    return worst;
}

static void test_keep_mean(rotq_rotation *R, const char *what) {
    enum { N = 12, V = 6, P = 5, K = 8, RQ = 3 };
    rotq_model *m = rotq_model_new();
    m->hp.hidden = N;
    int64_t ie = add(m, "embed", 2, V, N, ROLE_EMBED, 0.5), ip = add(m, "pos", 2, P, N, ROLE_POS_EMBED, -0.3);
    int64_t io = add(m, "o", 2, N, K, ROLE_O, 0.2), iob = add(m, "o.bias", 1, N, 0, ROLE_O_BIAS, 0.1);
    int64_t iq = add(m, "q", 2, RQ, N, ROLE_Q, 0.0), ifb = add(m, "final_norm.bias", 1, N, 0, ROLE_FINAL_NORM_BIAS, 0.2);
    rotq_rotate_opts ro = rotq_rotate_defaults();
    CHECK(rotq_center_output(&m->tensors[ie], NULL, &ro) == ROTQ_OK, "centre");
    CHECK(rotq_center_output(&m->tensors[ip], NULL, &ro) == ROTQ_OK, "centre");
    CHECK(rotq_center_output(&m->tensors[io], &m->tensors[iob], &ro) == ROTQ_OK, "centre");
    double *E = copy_of(m, ie), *O = copy_of(m, io), *ob = copy_of(m, iob), *Q = copy_of(m, iq), *fb = copy_of(m, ifb);
    rotq_rotation *eff = NULL;
    CHECK(rotq_r1_keep_mean(m, R, &eff) == ROTQ_OK, "%s: keep mean", what);
    if (!eff) { CHECK(eff != NULL, "%s: effective rotation", what); rotq_model_free(m); return; }
    CHECK(rotq_op_rotate(&m->tensors[ie], NULL, ROTQ_ROTATE_OUTPUT, R, &ro) == ROTQ_OK, "rotate");
    CHECK(rotq_op_rotate(&m->tensors[ip], NULL, ROTQ_ROTATE_OUTPUT, R, &ro) == ROTQ_OK, "rotate");
    CHECK(rotq_op_rotate(&m->tensors[io], &m->tensors[iob], ROTQ_ROTATE_OUTPUT, R, &ro) == ROTQ_OK, "rotate");
    CHECK(rotq_op_rotate(&m->tensors[iq], NULL, ROTQ_ROTATE_INPUT, R, &ro) == ROTQ_OK, "rotate");
    CHECK(rotq_op_rotate(&m->tensors[ifb], NULL, ROTQ_ROTATE_OUTPUT, R, &ro) == ROTQ_OK, "rotate");

    double M[N * N];
    CHECK(rotq_rotation_to_dense_f64(eff, M) == ROTQ_OK, "dense");
    CHECK(rotq_orthogonality_error(M, N) < 1e-12, "%s: effective R1 orthogonal (%g)", what, rotq_orthogonality_error(M, N));
    double fix = 0.0;
    for (int i = 0; i < N; i++) {
        double s = 0.0;
        for (int j = 0; j < N; j++) s += M[i * N + j];
        fix = fmax(fix, fabs(s - 1.0));
    }
    CHECK(fix < 1e-12, "%s: effective R1 maps 1 to 1 (error %g)", what, fix);
    /* every site moved by exactly M: E·M, Q·M, Mᵀ·O, Mᵀ·b (b as a row: b·M) */
    double err = 0.0;
    for (int r = 0; r < V; r++)
        for (int j = 0; j < N; j++) {
            double s = 0.0;
            for (int i = 0; i < N; i++) s += E[r * N + i] * M[i * N + j];
            err = fmax(err, fabs(s - data(m, ie)[r * N + j]));
        }
    for (int r = 0; r < RQ; r++)
        for (int j = 0; j < N; j++) {
            double s = 0.0;
            for (int i = 0; i < N; i++) s += Q[r * N + i] * M[i * N + j];
            err = fmax(err, fabs(s - data(m, iq)[r * N + j]));
        }
    for (int j = 0; j < N; j++) {
        double s = 0.0, sb = 0.0;
        for (int i = 0; i < N; i++) { s += ob[i] * M[i * N + j]; sb += fb[i] * M[i * N + j]; }
        err = fmax(err, fmax(fabs(s - data(m, iob)[j]), fabs(sb - data(m, ifb)[j])));
        for (int k = 0; k < K; k++) {
            double w = 0.0;
            for (int i = 0; i < N; i++) w += M[i * N + j] * O[i * K + k];
            err = fmax(err, fabs(w - data(m, io)[j * K + k]));
        }
    }
    CHECK(err < 1e-12, "%s: sites moved by the effective R1 (error %g)", what, err);
    /* the stream stays zero-mean: embedding rows, o_proj columns and bias */
    double mean = fmax(row_mean_max(data(m, ie), V, N), row_mean_max(data(m, ip), P, N));
    mean = fmax(mean, row_mean_max(data(m, iob), 1, N));
    for (int k = 0; k < K; k++) {
        double s = 0.0;
        for (int i = 0; i < N; i++) s += data(m, io)[i * K + k];
        mean = fmax(mean, fabs(s / N));
    }
    CHECK(mean < 1e-12, "%s: rotated stream writers stay zero-mean (worst mean %g)", what, mean);
    rotq_rotation_free(eff);
    free(E); free(O); free(ob); free(Q); free(fb);
    rotq_model_free(m);
}

int main(void) {
    test_fold();
    test_center_then_fold();
    rotq_rotation *R = NULL;
    CHECK(rotq_rotation_random_orthogonal(12, 5, &R) == ROTQ_OK, "orthogonal");
    if (R) test_keep_mean(R, "random orthogonal");
    rotq_rotation_free(R);
    CHECK(rotq_rotation_hadamard(12, true, 9, &R) == ROTQ_OK, "hadamard");
    if (R) test_keep_mean(R, "random Hadamard 12");
    rotq_rotation_free(R);
    return tu_finish("test_rotate_layernorm");
}
