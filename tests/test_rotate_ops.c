/* Weight operations against dense products computed here in double: W·R, Rᵀ·W (+ bias), E·R, their
 * block-diagonal, row-subset (fused qkv) and inverse forms, centring — for F64/F32/F16/BF16 (and a
 * quantized tensor, which comes back as F32) — and the invariance they exist for: the rotated layer
 * fed the rotated input gives the original output. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "arch/arch.h"
#include "rotate/rotate.h"
#include "testutil.h"

static uint64_t st = 0x2545F4914F6CDD1DULL;
static double urand(void) {
    st ^= st << 13;
    st ^= st >> 7;
    st ^= st << 17;
    return (double)(st >> 11) / 9007199254740992.0 * 2.0 - 1.0;
}

static rotq_tensor make(const char *name, rotq_dtype dt, int32_t nd, int64_t d0, int64_t d1, int32_t role) {
    rotq_tensor t;
    memset(&t, 0, sizeof t);
    snprintf(t.name, sizeof t.name, "%s", name);
    t.dtype = dt;
    t.n_dims = nd;
    t.shape[0] = d0;
    t.shape[1] = nd > 1 ? d1 : 0;
    int64_t n = nd > 1 ? d0 * d1 : d0;
    t.nbytes = rotq_dtype_nbytes(dt, n);
    t.data = malloc(t.nbytes);
    t.owned = true;
    t.role = role;
    t.layer = 0;
    for (int64_t i = 0; i < n; i++) {
        double v = urand();
        switch (dt) {
        case ROTQ_F64: ((double *)t.data)[i] = v; break;
        case ROTQ_F32: ((float *)t.data)[i] = (float)v; break;
        case ROTQ_F16: ((uint16_t *)t.data)[i] = rotq_f32_to_f16((float)v); break;
        case ROTQ_BF16: ((uint16_t *)t.data)[i] = rotq_f32_to_bf16((float)v); break;
        default: break;
        }
    }
    return t;
}

static double *values(const rotq_tensor *t) {
    double *v = malloc(sizeof(double) * (size_t)rotq_tensor_numel(t));
    rotq_tensor_to_f64(t, v);
    return v;
}

static double *dense(const rotq_rotation *R) {
    double *D = malloc(sizeof(double) * (size_t)(R->n * R->n));
    rotq_rotation_to_dense_f64(R, D);
    return D;
}

/* Storage precision of each dtype relative to the largest value. */
static double tol_of(rotq_dtype dt) {
    return dt == ROTQ_F64 ? 1e-12 : dt == ROTQ_F32 ? 2e-7 : dt == ROTQ_F16 ? 1e-3 : 8e-3;
}

static const rotq_dtype DTS[4] = {ROTQ_F64, ROTQ_F32, ROTQ_F16, ROTQ_BF16};

/* W ← W·R; y = W·x equals W'·(Rᵀx), i.e. the input row rotated as x·R. */
static void test_linear_input(const rotq_rotation *R) {
    int64_t out = 24, in = R->n;
    double *D = dense(R);
    for (int k = 0; k < 4; k++) {
        rotq_tensor W = make("lin.weight", DTS[k], 2, out, in, ROLE_Q);
        double *W0 = values(&W);
        CHECK(rotq_op_rotate(&W, NULL, ROTQ_ROTATE_INPUT, R, NULL) == ROTQ_OK, "rotate_input: %s", rotq_last_error());
        double *W1 = values(&W);
        double err = 0, scale = 0;
        for (int64_t o = 0; o < out; o++)
            for (int64_t j = 0; j < in; j++) {
                double want = 0;
                for (int64_t i = 0; i < in; i++) want += W0[o * in + i] * D[i * in + j];
                err = fmax(err, fabs(W1[o * in + j] - want));
                scale = fmax(scale, fabs(want));
            }
        CHECK(err <= 1.01 * tol_of(DTS[k]) * scale, "W·R %s (%s): max error %.3g of %.3g", rotq_dtype_name(DTS[k]), R->desc, err, scale);
        /* invariance */
        double x[4096], xr[4096], y0 = 0, y1 = 0, num = 0, den = 0;
        for (int64_t i = 0; i < in; i++) x[i] = urand();
        for (int64_t j = 0; j < in; j++) { xr[j] = 0; for (int64_t i = 0; i < in; i++) xr[j] += x[i] * D[i * in + j]; }
        for (int64_t o = 0; o < out; o++) {
            y0 = y1 = 0;
            for (int64_t i = 0; i < in; i++) { y0 += W0[o * in + i] * x[i]; y1 += W1[o * in + i] * xr[i]; }
            num += (y1 - y0) * (y1 - y0);
            den += y0 * y0;
        }
        CHECK(sqrt(num / den) < 20 * tol_of(DTS[k]), "linear(x) not invariant under input rotation (%s): %.3g",
              rotq_dtype_name(DTS[k]), sqrt(num / den));
        free(W0); free(W1); free(W.data);
    }
    free(D);
}

/* W ← Rᵀ·W, b ← Rᵀ·b: the output row y·R equals the rotated layer's output. */
static void test_linear_output(const rotq_rotation *R) {
    int64_t out = R->n, in = 20;
    double *D = dense(R);
    for (int k = 0; k < 4; k++) {
        rotq_tensor W = make("o.weight", DTS[k], 2, out, in, ROLE_O);
        rotq_tensor b = make("o.bias", DTS[k], 1, out, 0, ROLE_O_BIAS);
        double *W0 = values(&W), *b0 = values(&b);
        CHECK(rotq_op_rotate(&W, &b, ROTQ_ROTATE_OUTPUT, R, NULL) == ROTQ_OK, "rotate_output: %s", rotq_last_error());
        double *W1 = values(&W), *b1 = values(&b);
        double err = 0, scale = 0;
        for (int64_t j = 0; j < out; j++) {
            for (int64_t c = 0; c < in; c++) {
                double want = 0;
                for (int64_t i = 0; i < out; i++) want += D[i * out + j] * W0[i * in + c];
                err = fmax(err, fabs(W1[j * in + c] - want));
                scale = fmax(scale, fabs(want));
            }
            double wb = 0;
            for (int64_t i = 0; i < out; i++) wb += D[i * out + j] * b0[i];
            err = fmax(err, fabs(b1[j] - wb));
        }
        CHECK(err <= 1.01 * tol_of(DTS[k]) * scale, "Rᵀ·W %s: max error %.3g of %.3g", rotq_dtype_name(DTS[k]), err, scale);
        double x[64], y0[4096], num = 0, den = 0;
        for (int64_t c = 0; c < in; c++) x[c] = urand();
        for (int64_t i = 0; i < out; i++) { y0[i] = b0[i]; for (int64_t c = 0; c < in; c++) y0[i] += W0[i * in + c] * x[c]; }
        for (int64_t j = 0; j < out; j++) {
            double want = 0, y1 = b1[j];
            for (int64_t i = 0; i < out; i++) want += y0[i] * D[i * out + j];
            for (int64_t c = 0; c < in; c++) y1 += W1[j * in + c] * x[c];
            num += (y1 - want) * (y1 - want);
            den += want * want;
        }
        CHECK(sqrt(num / den) < 20 * tol_of(DTS[k]), "output rotation: y·R != rotated layer (%s): %.3g", rotq_dtype_name(DTS[k]),
              sqrt(num / den));
        free(W0); free(b0); free(W1); free(b1); free(W.data); free(b.data);
    }
    free(D);
}

/* Fused [q; k; v] rows: only the v rows rotate, per head (block-diagonal), bias too. */
static void test_fused_qkv_blocks(void) {
    int64_t hd = 8, heads = 2, in = 70; /* 70 columns: two panels, one partial */
    rotq_rotation *R = NULL;
    rotq_rotation_hadamard(hd, true, 2, &R);
    double *D = dense(R);
    rotq_tensor W = make("qkv.weight", ROTQ_F32, 2, 3 * heads * hd, in, ROLE_QKV);
    rotq_tensor b = make("qkv.bias", ROTQ_F32, 1, 3 * heads * hd, 0, ROLE_QKV_BIAS);
    double *W0 = values(&W), *b0 = values(&b);
    rotq_rotate_opts o = rotq_rotate_defaults();
    o.block_diag = true;
    o.row_begin = 2 * heads * hd;
    o.row_end = 3 * heads * hd;
    CHECK(rotq_op_rotate(&W, &b, ROTQ_ROTATE_OUTPUT, R, &o) == ROTQ_OK, "qkv: %s", rotq_last_error());
    double *W1 = values(&W), *b1 = values(&b);
    double err = 0;
    for (int64_t r = 0; r < 3 * heads * hd; r++) {
        bool v = r >= o.row_begin;
        int64_t blk = v ? o.row_begin + (r - o.row_begin) / hd * hd : 0, j = r - blk;
        for (int64_t c = 0; c <= in; c++) { /* c == in: the bias */
            double want = 0;
            const double *src = c < in ? W0 : b0;
            int64_t stride = c < in ? in : 1, col = c < in ? c : 0;
            if (!v) want = src[r * stride + col];
            else for (int64_t i = 0; i < hd; i++) want += D[i * hd + j] * src[(blk + i) * stride + col];
            double got = c < in ? W1[r * in + c] : b1[r];
            err = fmax(err, fabs(got - want));
        }
    }
    CHECK(err < 1e-6, "fused qkv block rotation error %.3g", err);
    /* inverse undoes it */
    o.inverse = true;
    rotq_op_rotate(&W, &b, ROTQ_ROTATE_OUTPUT, R, &o);
    double *W2 = values(&W);
    err = 0;
    for (int64_t i = 0; i < 3 * heads * hd * in; i++) err = fmax(err, fabs(W2[i] - W0[i]));
    CHECK(err < 1e-6, "inverse output rotation does not undo: %.3g", err);
    free(W0); free(W1); free(W2); free(b0); free(b1); free(W.data); free(b.data); free(D);
    rotq_rotation_free(R);
}

static void test_embedding_and_blocks(void) {
    rotq_rotation *R = NULL;
    rotq_rotation_hadamard(12, true, 3, &R);
    double *D = dense(R);
    /* embedding [vocab, 48] with a per-block R of 12, via the dispatcher */
    rotq_tensor E = make("embed", ROTQ_BF16, 2, 30, 48, ROLE_EMBED);
    double *E0 = values(&E);
    rotq_rotate_opts o = rotq_rotate_defaults();
    o.block_diag = true;
    CHECK(rotq_op_rotate(&E, NULL, ROTQ_ROTATE_OUTPUT, R, &o) == ROTQ_OK, "embedding: %s", rotq_last_error());
    double *E1 = values(&E), err = 0;
    for (int64_t v = 0; v < 30; v++)
        for (int64_t j = 0; j < 48; j++) {
            int64_t blk = j / 12 * 12;
            double want = 0;
            for (int64_t i = 0; i < 12; i++) want += E0[v * 48 + blk + i] * D[i * 12 + (j - blk)];
            err = fmax(err, fabs(E1[v * 48 + j] - want) / fmax(fabs(want), 1.0));
        }
    CHECK(err < 8e-3, "E·(I⊗R) bf16 error %.3g", err);
    /* without block mode the size must match */
    o.block_diag = false;
    CHECK(rotq_op_rotate(&E, NULL, ROTQ_ROTATE_OUTPUT, R, &o) == ROTQ_ERR_ARG, "size mismatch refused");
    free(E0); free(E1); free(E.data); free(D);
    rotq_rotation_free(R);
}

/* A borrowed (mmapped) tensor gets its own copy; the source bytes stay as they were. */
static void test_copy_on_write(void) {
    static float src[4 * 16];
    for (int i = 0; i < 64; i++) src[i] = (float)urand();
    float before[64];
    memcpy(before, src, sizeof src);
    rotq_tensor W;
    memset(&W, 0, sizeof W);
    snprintf(W.name, sizeof W.name, "borrowed");
    W.dtype = ROTQ_F32; W.n_dims = 2; W.shape[0] = 4; W.shape[1] = 16; W.data = src; W.nbytes = sizeof src;
    W.owned = false; W.role = ROLE_UP;
    rotq_rotation *R = NULL;
    rotq_rotation_hadamard(16, false, 0, &R);
    CHECK(rotq_op_rotate(&W, NULL, ROTQ_ROTATE_INPUT, R, NULL) == ROTQ_OK, "borrowed rotate");
    CHECK(W.owned && W.data != src && memcmp(before, src, sizeof src) == 0, "source buffer modified");
    /* first output column = row sums / 4 (unsigned H_16: first column all ones) */
    double s = 0;
    for (int i = 0; i < 16; i++) s += before[i];
    CHECK(fabs(((float *)W.data)[0] - s / 4) < 1e-5, "H_16 first column");
    free(W.data);
    rotq_rotation_free(R);
}

/* Q8_0 blocks (f16 scale + 32 int8) dequantize, rotate, and come back as F32. */
static void test_quantized(void) {
    uint8_t blocks[2][34];
    float want[64];
    for (int b = 0; b < 2; b++) {
        uint16_t d = rotq_f32_to_f16(0.01f * (b + 1));
        memcpy(blocks[b], &d, 2);
        for (int i = 0; i < 32; i++) {
            int8_t q = (int8_t)(i * 7 - 100 + b);
            blocks[b][2 + i] = (uint8_t)q;
            want[b * 32 + i] = rotq_f16_to_f32(d) * q;
        }
    }
    rotq_tensor W;
    memset(&W, 0, sizeof W);
    snprintf(W.name, sizeof W.name, "q8");
    W.dtype = ROTQ_Q8_0; W.n_dims = 2; W.shape[0] = 2; W.shape[1] = 32; W.data = blocks; W.nbytes = sizeof blocks;
    W.owned = false; W.role = ROLE_DOWN;
    rotq_rotation *R = NULL;
    rotq_rotation_hadamard(32, true, 4, &R);
    double *D = dense(R);
    CHECK(rotq_op_rotate(&W, NULL, ROTQ_ROTATE_INPUT, R, NULL) == ROTQ_OK, "q8_0 rotate: %s", rotq_last_error());
    CHECK(W.dtype == ROTQ_F32, "quantized tensor comes back as F32");
    double err = 0;
    for (int r = 0; r < 2 && W.dtype == ROTQ_F32; r++)
        for (int j = 0; j < 32; j++) {
            double w = 0;
            for (int i = 0; i < 32; i++) w += want[r * 32 + i] * D[i * 32 + j];
            err = fmax(err, fabs(((float *)W.data)[r * 32 + j] - w));
        }
    CHECK(err < 1e-6, "q8_0 rotated error %.3g", err);
    if (W.owned) free(W.data);
    free(D);
    rotq_rotation_free(R);
}

static void test_center_and_errors(void) {
    rotq_tensor W = make("fc.weight", ROTQ_F32, 2, 10, 7, ROLE_UP);
    rotq_tensor b = make("fc.bias", ROTQ_F32, 1, 10, 0, ROLE_UP_BIAS);
    double *W0 = values(&W);
    CHECK(rotq_op_rotate(&W, &b, ROTQ_CENTER_OUTPUT, NULL, NULL) == ROTQ_OK, "center");
    double *W1 = values(&W), *b1 = values(&b), worst = 0, bs = 0;
    for (int c = 0; c < 7; c++) {
        double s = 0, m0 = 0;
        for (int r = 0; r < 10; r++) { s += W1[r * 7 + c]; m0 += W0[r * 7 + c] / 10; }
        worst = fmax(worst, fabs(s));
        worst = fmax(worst, fabs(W1[3 * 7 + c] - (W0[3 * 7 + c] - m0)));
    }
    for (int r = 0; r < 10; r++) bs += b1[r];
    CHECK(worst < 1e-5 && fabs(bs) < 1e-5, "centred columns %.3g, bias sum %.3g", worst, bs);
    rotq_tensor E = make("embed", ROTQ_F16, 2, 5, 16, ROLE_EMBED);
    rotq_op_rotate(&E, NULL, ROTQ_CENTER_OUTPUT, NULL, NULL);
    double *Ev = values(&E), es = 0;
    for (int r = 0; r < 5; r++) { double s = 0; for (int j = 0; j < 16; j++) s += Ev[r * 16 + j]; es = fmax(es, fabs(s)); }
    CHECK(es < 1e-2, "embedding rows centred: %.3g", es);
    /* errors, never crashes */
    rotq_rotation *R = NULL;
    rotq_rotation_hadamard(8, false, 0, &R);
    rotq_rotate_opts o = rotq_rotate_defaults();
    CHECK(rotq_op_rotate(&W, NULL, ROTQ_ROTATE_INPUT, R, &o) == ROTQ_ERR_ARG, "7 columns vs R of 8");
    CHECK(rotq_op_rotate(&b, NULL, ROTQ_ROTATE_INPUT, R, &o) == ROTQ_ERR_ARG, "1-D input side");
    o.row_begin = 4; o.row_end = 40;
    CHECK(rotq_op_rotate(&W, NULL, ROTQ_ROTATE_OUTPUT, R, &o) == ROTQ_ERR_ARG, "row range past the end");
    o.row_begin = 2; o.row_end = 10;
    CHECK(rotq_op_rotate(&W, &b, ROTQ_ROTATE_OUTPUT, R, &o) == ROTQ_OK, "rows [2,10) with bias: %s", rotq_last_error());
    CHECK(rotq_op_rotate(&W, NULL, ROTQ_ROTATE_OUTPUT, NULL, NULL) == ROTQ_ERR_ARG, "no rotation");
    CHECK(rotq_op_rotate(&W, NULL, (rotq_rotate_side)9, R, NULL) == ROTQ_ERR_ARG, "bad side");
    rotq_tensor big = make("x", ROTQ_F32, 1, 8, 0, -1);
    double *v0 = values(&big);
    CHECK(rotq_op_rotate(&big, NULL, ROTQ_ROTATE_OUTPUT, R, NULL) == ROTQ_OK, "lone bias");
    double *v1 = values(&big), s = 0;
    for (int i = 0; i < 8; i++) s += v0[i];
    CHECK(fabs(v1[0] - s / sqrt(8.0)) < 1e-5, "lone bias Rᵀb");
    free(v0); free(v1); free(big.data);
    free(W0); free(W1); free(b1); free(Ev); free(W.data); free(b.data); free(E.data);
    rotq_rotation_free(R);
}

int main(void) {
    rotq_rotation *H = NULL, *Q = NULL, *P = NULL;
    rotq_rotation_hadamard(48, true, 17, &H);   /* K = 12, m = 2 */
    rotq_rotation_random_orthogonal(48, 5, &Q); /* dense */
    rotq_rotation_hadamard(64, false, 0, &P);   /* pure Sylvester */
    const rotq_rotation *rots[3] = {H, Q, P};
    for (int i = 0; i < 3; i++) {
        test_linear_input(rots[i]);
        test_linear_output(rots[i]);
    }
    rotq_rotation_free(H);
    rotq_rotation_free(Q);
    rotq_rotation_free(P);
    test_fused_qkv_blocks();
    test_embedding_and_blocks();
    test_copy_on_write();
    test_quantized();
    test_center_and_errors();
    return tu_finish("test_rotate_ops");
}
