/* GPTQ against a plain, unblocked version of the paper's algorithm written here (own matrix
 * inverse and Cholesky, one column at a time); invariants (a diagonal Hessian gives exactly RTN; the
 * lazy-update block size does not change the result; dead columns are zeroed); the point of it all
 * (layer output error ‖XWᵀ - XQᵀ‖ below RTN's on correlated inputs); errors; and the calibration
 * walk: after rotq_gptq_model on a random model, every linear equals GPTQ of its original weights
 * with the Hessian a plain forward of the final model gives at that linear's input (hooks
 * included) — which is what "sequential" means, since each input depends only on weights
 * quantized before it. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "arch/arch.h"
#include "quant/quant.h"
#include "testutil.h"

static uint64_t rs = 0xA4093822299F31D0ull;
static double urand(void) {
    rs ^= rs >> 12; rs ^= rs << 25; rs ^= rs >> 27;
    return (double)((rs * 2685821657736338717ull) >> 11) / 9007199254740992.0;
}
static double nrand(void) { return sqrt(-2.0 * log(urand() + 1e-300)) * cos(2 * M_PI * urand()); }

/* ---- the plain reference ------------------------------------------------------------------------ */

/* inverse of a symmetric positive definite A [n, n] by Gauss–Jordan with partial pivoting */
static void invert(const double *A, double *inv, int n) {
    double *M = malloc(sizeof(double) * (size_t)(n * 2 * n));
    for (int i = 0; i < n; i++)
        for (int j = 0; j < 2 * n; j++) M[i * 2 * n + j] = j < n ? A[i * n + j] : (j - n == i);
    for (int c = 0; c < n; c++) {
        int p = c;
        for (int r = c + 1; r < n; r++) if (fabs(M[r * 2 * n + c]) > fabs(M[p * 2 * n + c])) p = r;
        for (int j = 0; j < 2 * n; j++) { double t = M[c * 2 * n + j]; M[c * 2 * n + j] = M[p * 2 * n + j]; M[p * 2 * n + j] = t; }
        double d = M[c * 2 * n + c];
        for (int j = 0; j < 2 * n; j++) M[c * 2 * n + j] /= d;
        for (int r = 0; r < n; r++) {
            if (r == c) continue;
            double f = M[r * 2 * n + c];
            for (int j = 0; j < 2 * n; j++) M[r * 2 * n + j] -= f * M[c * 2 * n + j];
        }
    }
    for (int i = 0; i < n; i++) for (int j = 0; j < n; j++) inv[i * n + j] = M[i * 2 * n + n + j];
    free(M);
}

/* upper U with UᵀU = A */
static void cholesky_upper(const double *A, double *U, int n) {
    memset(U, 0, sizeof(double) * (size_t)(n * n));
    for (int i = 0; i < n; i++) {
        double s = A[i * n + i];
        for (int k = 0; k < i; k++) s -= U[k * n + i] * U[k * n + i];
        U[i * n + i] = sqrt(s);
        for (int j = i + 1; j < n; j++) {
            double t = A[i * n + j];
            for (int k = 0; k < i; k++) t -= U[k * n + i] * U[k * n + j];
            U[i * n + j] = t / U[i * n + i];
        }
    }
}

/* GPTQ one column at a time. Dynamic groups take their range from the weights as they stood at
 * the start of the current block of `block` columns, as the reference implementation does. */
static void ref_gptq(const float *w_in, float *q_out, int rows, int n, const double *H_in, const rotq_wq_format *f,
                     double percdamp, bool act_order, bool static_groups, int block) {
    double *H = malloc(sizeof(double) * (size_t)(n * n)), *Hp = malloc(sizeof(double) * (size_t)(n * n));
    double *Hi = malloc(sizeof(double) * (size_t)(n * n)), *U = malloc(sizeof(double) * (size_t)(n * n));
    double *W = malloc(sizeof(double) * (size_t)(rows * n)), *snap = malloc(sizeof(double) * (size_t)(rows * n));
    double *S = malloc(sizeof(double) * (size_t)(rows * n)), *Z = malloc(sizeof(double) * (size_t)(rows * n));
    int *perm = malloc(sizeof(int) * (size_t)n);
    bool *dead = calloc((size_t)n, sizeof(bool));
    memcpy(H, H_in, sizeof(double) * (size_t)(n * n));
    int g = f->group > 0 && f->group < n ? (int)f->group : 0, maxq = rotq_wq_maxq(f);
    double *row = malloc(sizeof(double) * (size_t)n);
    for (int r = 0; r < rows; r++) {
        for (int c = 0; c < n; c++) row[c] = w_in[r * n + c];
        if (!g) rotq_wq_params(row, n, f, &S[r * n], &Z[r * n]);
    }
    for (int i = 0; i < n; i++) if (H[i * n + i] == 0) { dead[i] = true; H[i * n + i] = 1; }
    for (int r = 0; r < rows; r++)
        for (int c = 0; c < n; c++) W[r * n + c] = dead[c] ? 0.0 : w_in[r * n + c];
    if (static_groups && g)
        for (int r = 0; r < rows; r++)
            for (int c0 = 0; c0 < n; c0 += g)
                rotq_wq_params(W + r * n + c0, n - c0 < g ? n - c0 : g, f, &S[r * n + c0 / g], &Z[r * n + c0 / g]);
    for (int i = 0; i < n; i++) perm[i] = i;
    if (act_order) /* insertion sort: decreasing diagonal, ties by index */
        for (int i = 1; i < n; i++)
            for (int j = i; j > 0 && H[perm[j] * n + perm[j]] > H[perm[j - 1] * n + perm[j - 1]]; j--) {
                int t = perm[j]; perm[j] = perm[j - 1]; perm[j - 1] = t;
            }
    double mean = 0;
    for (int i = 0; i < n; i++) mean += H[i * n + i] / n;
    for (int i = 0; i < n; i++)
        for (int j = 0; j < n; j++) Hp[i * n + j] = H[perm[i] * n + perm[j]] + (i == j ? percdamp * mean : 0);
    invert(Hp, Hi, n);
    cholesky_upper(Hi, U, n);
    /* W in processing order */
    for (int r = 0; r < rows; r++) {
        for (int c = 0; c < n; c++) row[c] = W[r * n + perm[c]];
        memcpy(W + r * n, row, sizeof(double) * (size_t)n);
    }
    double *cur_s = malloc(sizeof(double) * (size_t)rows), *cur_z = malloc(sizeof(double) * (size_t)rows);
    for (int i = 0; i < n; i++) {
        if (i % block == 0) memcpy(snap, W, sizeof(double) * (size_t)(rows * n));
        for (int r = 0; r < rows; r++) {
            double s = S[r * n], z = Z[r * n];
            if (g && static_groups) { s = S[r * n + perm[i] / g]; z = Z[r * n + perm[i] / g]; }
            else if (g) {
                if (i % g == 0) rotq_wq_params(snap + r * n + i, n - i < g ? n - i : g, f, &cur_s[r], &cur_z[r]);
                s = cur_s[r];
                z = cur_z[r];
            }
            double x = W[r * n + i], q = rotq_wq_qdq(x, s, z, maxq, f->asym), e = (x - q) / U[i * n + i];
            W[r * n + i] = q;
            for (int j = i + 1; j < n; j++) W[r * n + j] -= e * U[i * n + j];
        }
    }
    for (int r = 0; r < rows; r++)
        for (int c = 0; c < n; c++) q_out[r * n + perm[c]] = (float)W[r * n + c];
    free(H); free(Hp); free(Hi); free(U); free(W); free(snap); free(S); free(Z); free(perm); free(dead); free(row);
    free(cur_s); free(cur_z);
}

/* ---- data ---------------------------------------------------------------------------------------- */

/* X [N, n] with strongly correlated columns of very different scales (like LLM activations) */
static float *correlated(int N, int n, int dead_col) {
    float *X = malloc(sizeof(float) * (size_t)(N * n));
    double *mix = malloc(sizeof(double) * (size_t)(n * n)), *z = malloc(sizeof(double) * (size_t)n);
    for (int i = 0; i < n * n; i++) mix[i] = nrand() / sqrt(n) + (i % (n + 1) == 0 ? 1.0 : 0.0);
    for (int t = 0; t < N; t++) {
        for (int i = 0; i < n; i++) z[i] = nrand() * (i < 4 ? 6.0 : 1.0);
        for (int j = 0; j < n; j++) {
            double s = 0;
            for (int i = 0; i < n; i++) s += z[i] * mix[i * n + j];
            X[t * n + j] = j == dead_col ? 0.0f : (float)s;
        }
    }
    free(mix); free(z);
    return X;
}

static double *hessian(const float *X, int N, int n) {
    double *H = calloc((size_t)(n * n), sizeof(double));
    for (int t = 0; t < N; t++)
        for (int i = 0; i < n; i++)
            for (int j = 0; j < n; j++) H[i * n + j] += 2.0 * X[t * n + i] * X[t * n + j] / N;
    return H;
}

static float *random_w(int rows, int n) {
    float *w = malloc(sizeof(float) * (size_t)(rows * n));
    for (int i = 0; i < rows * n; i++) w[i] = (float)(nrand() * 0.1);
    return w;
}

static int run_gptq(float *w, int rows, int n, const double *H_in, const rotq_wq_format *f, double percdamp,
                    bool act_order, bool static_groups, int block, int64_t *dead) {
    double *H = malloc(sizeof(double) * (size_t)(n * n));
    memcpy(H, H_in, sizeof(double) * (size_t)(n * n));
    rotq_gptq_options o = {.percdamp = percdamp, .act_order = act_order, .static_groups = static_groups, .block = block};
    rotq_gptq_hinv h;
    rotq_status s = rotq_gptq_prepare(H, n, &o, &h);
    rotq_qweight *codes = NULL;
    if (s == ROTQ_OK) s = rotq_gptq_quantize(w, rows, n, &h, f, &o, NULL, &codes);
    if (s == ROTQ_OK) {
        /* the codes GPTQ returns decode to exactly the floats it left (none for act-order with
         * dynamic groups, whose groups are not contiguous columns) */
        bool scattered = f->group > 0 && f->group < n && act_order && !static_groups;
        CHECK(scattered ? !codes : codes != NULL, "codes %s for group %lld act-order %d static %d",
              codes ? "returned" : "missing", (long long)f->group, act_order, static_groups);
        if (codes) {
            float *back = malloc(sizeof(float) * (size_t)(rows * n));
            rotq_qweight_dequantize(codes, back);
            CHECK(!memcmp(back, w, sizeof(float) * (size_t)(rows * n)), "GPTQ codes do not decode to its weights");
            int32_t top = (1 << f->bits) - 1;
            int bad = 0;
            for (int64_t i = 0; i < (int64_t)rows * n; i++) bad += codes->u[i] > top;
            CHECK(bad == 0, "%d GPTQ codes above %d", bad, top);
            free(back);
        }
        rotq_qweight_free(codes);
    }
    if (s == ROTQ_OK && dead) *dead = h.n_dead;
    if (s == ROTQ_OK) rotq_gptq_hinv_free(&h);
    free(H);
    return s;
}

static double max_abs_diff(const float *a, const float *b, int n) {
    double m = 0;
    for (int i = 0; i < n; i++) m = fmax(m, fabs((double)a[i] - b[i]));
    return m;
}

/* ---- tests --------------------------------------------------------------------------------------- */

static void check_reference(int rows, int n, int bits, bool asym, int group, bool mse, bool act_order, bool static_groups,
                            int block) {
    float *X = correlated(4 * n, n, n / 3);
    double *H = hessian(X, 4 * n, n);
    float *w = random_w(rows, n), *q = malloc(sizeof(float) * (size_t)(rows * n)), *ref = malloc(sizeof(float) * (size_t)(rows * n));
    memcpy(q, w, sizeof(float) * (size_t)(rows * n));
    rotq_wq_format f = rotq_wq_format_make(bits, asym, group, mse);
    int64_t dead = -1;
    CHECK(run_gptq(q, rows, n, H, &f, 0.01, act_order, static_groups, block, &dead) == ROTQ_OK, "%s", rotq_last_error());
    ref_gptq(w, ref, rows, n, H, &f, 0.01, act_order, static_groups, block);
    double d = max_abs_diff(q, ref, rows * n);
    CHECK(d < 1e-6, "GPTQ %d-bit %s group %d%s%s%s block %d differs from the plain reference by %g", bits,
          asym ? "asym" : "sym", group, mse ? " clip" : "", act_order ? " act-order" : "",
          static_groups ? " static" : "", block, d);
    CHECK(dead == 1, "one dead column expected, got %lld", (long long)dead);
    for (int r = 0; r < rows; r++) CHECK(q[r * n + n / 3] == 0.0f, "dead column weight of row %d is %g", r, (double)q[r * n + n / 3]);
    free(X); free(H); free(w); free(q); free(ref);
}

static void check_diagonal_is_rtn(void) {
    enum { R = 12, N = 48 };
    double H[N * N] = {0};
    for (int i = 0; i < N; i++) H[i * N + i] = 0.5 + urand();
    for (int variant = 0; variant < 4; variant++) {
        rotq_wq_format f = rotq_wq_format_make(variant % 2 ? 3 : 4, variant >= 2, variant >= 2 ? 16 : -1, variant == 1);
        float *w = random_w(R, N), a[R * N], b[R * N];
        memcpy(a, w, sizeof a);
        memcpy(b, w, sizeof b);
        CHECK(run_gptq(a, R, N, H, &f, 0.01, variant == 3, variant == 3, 128, NULL) == ROTQ_OK, "%s", rotq_last_error());
        CHECK(rotq_rtn_quantize(b, R, N, &f, NULL) == ROTQ_OK, "%s", rotq_last_error());
        double d = max_abs_diff(a, b, R * N);
        CHECK(d == 0, "diagonal Hessian: GPTQ must equal RTN (variant %d), differs by %g", variant, d);
        free(w);
    }
}

static void check_block_invariance(void) {
    enum { R = 10, N = 70 };
    float *X = correlated(200, N, -1);
    double *H = hessian(X, 200, N);
    const int blocks[] = {1, 7, 32, 128};
    for (int v = 0; v < 3; v++) {
        rotq_wq_format f = rotq_wq_format_make(4, v == 1, v == 2 ? 10 : -1, v == 1);
        float *w = random_w(R, N), base[R * N];
        memcpy(base, w, sizeof base);
        CHECK(run_gptq(base, R, N, H, &f, 0.01, v == 2, v == 2, blocks[0], NULL) == ROTQ_OK, "%s", rotq_last_error());
        for (int b = 1; b < 4; b++) {
            float q[R * N];
            memcpy(q, w, sizeof q);
            CHECK(run_gptq(q, R, N, H, &f, 0.01, v == 2, v == 2, blocks[b], NULL) == ROTQ_OK, "%s", rotq_last_error());
            double d = max_abs_diff(q, base, R * N);
            CHECK(d < 1e-6, "variant %d: block %d differs from block 1 by %g", v, blocks[b], d);
        }
        free(w);
    }
    free(X); free(H);
}

static double output_error(const float *X, int N, const float *w, const float *q, int rows, int n) {
    double e = 0;
    for (int t = 0; t < N; t++)
        for (int r = 0; r < rows; r++) {
            double s = 0;
            for (int i = 0; i < n; i++) s += (double)X[t * n + i] * ((double)w[r * n + i] - q[r * n + i]);
            e += s * s;
        }
    return sqrt(e);
}

static void check_beats_rtn(void) {
    enum { R = 24, N = 64, T = 512 };
    float *X = correlated(T, N, -1);
    double *H = hessian(X, T, N);
    for (int v = 0; v < 5; v++) {
        int bits = v == 4 ? 3 : 4;
        rotq_wq_format f = rotq_wq_format_make(bits, v == 1, v == 2 ? 16 : -1, v == 3);
        float *w = random_w(R, N), g[R * N], r[R * N];
        memcpy(g, w, sizeof g);
        memcpy(r, w, sizeof r);
        CHECK(run_gptq(g, R, N, H, &f, 0.01, v == 3, false, 128, NULL) == ROTQ_OK, "%s", rotq_last_error());
        rotq_rtn_quantize(r, R, N, &f, NULL);
        double eg = output_error(X, T, w, g, R, N), er = output_error(X, T, w, r, R, N);
        CHECK(eg < 0.8 * er, "variant %d: GPTQ layer error %g not below RTN's %g", v, eg, er);
        free(w);
    }
    free(X); free(H);
}

static void check_errors(void) {
    enum { N = 8 };
    double H[N * N] = {0};
    for (int i = 0; i < N; i++) H[i * N + i] = -1.0;  /* negative definite: no Cholesky */
    rotq_gptq_options o = rotq_gptq_defaults();
    rotq_gptq_hinv h;
    CHECK(rotq_gptq_prepare(H, N, &o, &h) == ROTQ_ERR_NUMERIC, "a negative definite Hessian must fail");
    CHECK(strstr(rotq_last_error(), "positive definite") != NULL, "message: %s", rotq_last_error());
    for (int i = 0; i < N; i++) H[i * N + i] = 1.0;
    H[3 * N + 5] = NAN;
    CHECK(rotq_gptq_prepare(H, N, &o, &h) == ROTQ_ERR_NUMERIC, "a NaN Hessian must fail");
    H[3 * N + 5] = 0.0;
    CHECK(rotq_gptq_prepare(H, N, &o, &h) == ROTQ_OK, "%s", rotq_last_error());
    float w[2 * N] = {0}, w7[2 * 7] = {0};
    w[3] = INFINITY;
    rotq_wq_format f = rotq_wq_format_make(4, false, -1, false);
    CHECK(rotq_gptq_quantize(w, 2, N, &h, &f, &o, NULL, NULL) == ROTQ_ERR_NUMERIC, "an infinite weight must fail");
    CHECK(rotq_gptq_quantize(w7, 2, 7, &h, &f, &o, NULL, NULL) == ROTQ_ERR_ARG, "a shape mismatch must fail");
    rotq_gptq_hinv_free(&h);
}

/* ---- the calibration walk on a random model ------------------------------------------------------ */

enum { D = 32, FF = 48, L = 2, NH = 4, NKV = 2, HD = 8, V = 64, NS = 3, TW = 20 };

static rotq_model *make_model(void) {
    static const tu_llama_shape shape = {.d = D, .ff = FF, .layers = L, .heads = NH, .kv_heads = NKV, .head_dim = HD, .vocab = V};
    return tu_random_llama(&shape, 0xA4093822299F31D0ull);
}

/* Hooks standing in for online rotations: a fixed orthogonal matrix before down_proj, K scaled
 * after RoPE; with a capture of every linear input (in double) when `capture` is set. */
typedef struct hook_state {
    double R[FF * FF];
    bool capture;
    double H[L][4][FF * FF]; /* per layer: qkv, o, gate/up, down inputs */
    int64_t tokens;
    float *raw[L][4];        /* when set: every input row appended, in order (the asymmetric walk) */
    int64_t n_raw[L][4];
} hook_state;

static rotq_status h_down(void *ctx, int32_t layer, float *x, int64_t rows, int64_t cols) {
    (void)layer;
    hook_state *s = ctx;
    double y[FF];
    for (int64_t r = 0; r < rows; r++) {
        for (int64_t j = 0; j < cols; j++) {
            y[j] = 0;
            for (int64_t i = 0; i < cols; i++) y[j] += x[r * cols + i] * s->R[i * FF + j];
        }
        for (int64_t j = 0; j < cols; j++) x[r * cols + j] = (float)y[j];
    }
    return ROTQ_OK;
}

static rotq_status h_qk(void *ctx, int32_t layer, float *q, float *k, int64_t T, int64_t pos0, int64_t nh, int64_t nkv,
                        int64_t hd) {
    (void)ctx; (void)layer; (void)q; (void)pos0; (void)nh;
    for (int64_t i = 0; i < T * nkv * hd; i++) k[i] *= 1.5f;
    return ROTQ_OK;
}

static rotq_status h_linear(void *ctx, int32_t layer, rotq_role role, float *x, int64_t rows, int64_t cols) {
    hook_state *s = ctx;
    if (!s->capture || layer < 0) return ROTQ_OK;
    int g = role == ROLE_Q ? 0 : role == ROLE_O ? 1 : role == ROLE_GATE ? 2 : 3;
    if (s->raw[layer][g]) {
        memcpy(s->raw[layer][g] + s->n_raw[layer][g] * cols, x, (size_t)(rows * cols) * sizeof(float));
        s->n_raw[layer][g] += rows;
        return ROTQ_OK;
    }
    for (int64_t t = 0; t < rows; t++)
        for (int64_t i = 0; i < cols; i++)
            for (int64_t j = 0; j < cols; j++) s->H[layer][g][i * cols + j] += (double)x[t * cols + i] * x[t * cols + j];
    return ROTQ_OK;
}

static void check_walk(int64_t cache_mb) {
    rotq_model *m = make_model();
    static hook_state hs;
    memset(&hs, 0, sizeof hs);
    /* a random orthogonal matrix by Gram–Schmidt */
    for (int i = 0; i < FF * FF; i++) hs.R[i] = nrand();
    for (int i = 0; i < FF; i++) {
        for (int k = 0; k < i; k++) {
            double d = 0;
            for (int j = 0; j < FF; j++) d += hs.R[i * FF + j] * hs.R[k * FF + j];
            for (int j = 0; j < FF; j++) hs.R[i * FF + j] -= d * hs.R[k * FF + j];
        }
        double nn = 0;
        for (int j = 0; j < FF; j++) nn += hs.R[i * FF + j] * hs.R[i * FF + j];
        for (int j = 0; j < FF; j++) hs.R[i * FF + j] /= sqrt(nn);
    }
    rotq_hooks hooks = {.ctx = &hs, .linear_input = h_linear, .qk_rope = h_qk, .down_input = h_down};

    /* originals of every linear */
    float *orig[L][7];
    rotq_role roles[L][7];
    int nlin[L];
    for (int l = 0; l < L; l++) {
        rotq_tensor *ts[8];
        nlin[l] = rotq_quant_layer_linears(m, l, roles[l], ts);
        for (int i = 0; i < nlin[l]; i++) {
            orig[l][i] = malloc(ts[i]->nbytes);
            memcpy(orig[l][i], ts[i]->data, ts[i]->nbytes);
        }
    }
    int32_t windows[NS * TW];
    for (int i = 0; i < NS * TW; i++) windows[i] = (int32_t)(urand() * V);

    rotq_quant_options o = rotq_quant_defaults();
    o.w_method = ROTQ_WQ_GPTQ;
    o.w_bits = 4;
    o.w_group = 16;
    o.gptq.act_order = true;
    o.gptq.static_groups = true;
    o.threads = 1;
    o.calib_cache_mb = cache_mb;
    rotq_runner *r;
    CHECK(rotq_runner_new(m, 1, &r) == ROTQ_OK, "%s", rotq_last_error());
    CHECK(rotq_runner_add_transform(r, &(rotq_transform){.name = "test hooks", .kind = ROTQ_TF_OTHER, .hooks = hooks}) == ROTQ_OK, "%s", rotq_last_error());
    rotq_quant_report rep;
    memset(&rep, 0, sizeof rep);
    CHECK(rotq_gptq_model(m, r, NULL, windows, NS, TW, &o, NULL, &rep) == ROTQ_OK, "%s", rotq_last_error());
    CHECK(rep.n_linears == L * 7 && rep.n_params == L * (NH * HD * D + 2 * NKV * HD * D + D * NH * HD + 3 * D * FF),
          "report: %lld linears, %lld weights", (long long)rep.n_linears, (long long)rep.n_params);
    rotq_runner_free(r);

    /* the Hessians a plain forward of the final model sees */
    hs.capture = true;
    CHECK(rotq_runner_new(m, 1, &r) == ROTQ_OK, "%s", rotq_last_error());
    CHECK(rotq_runner_add_transform(r, &(rotq_transform){.name = "test hooks", .kind = ROTQ_TF_OTHER, .hooks = hooks}) == ROTQ_OK, "%s", rotq_last_error());
    float hidden[TW * D];
    for (int s = 0; s < NS; s++)
        CHECK(rotq_nn_forward(r, windows + s * TW, TW, NULL, hidden) == ROTQ_OK, "%s", rotq_last_error());
    rotq_runner_free(r);

    rotq_wq_format f = rotq_wq_format_make(4, false, 16, false);
    for (int l = 0; l < L; l++)
        for (int i = 0; i < nlin[l]; i++) {
            rotq_role role = roles[l][i];
            int g = role == ROLE_Q || role == ROLE_K || role == ROLE_V ? 0 : role == ROLE_O ? 1
                  : role == ROLE_GATE || role == ROLE_UP ? 2 : 3;
            int n = g == 3 ? FF : g == 1 ? NH * HD : D;
            rotq_tensor *t = rotq_model_role(m, role, l);
            int rows = (int)(rotq_tensor_numel(t) / n);
            double *H = malloc(sizeof(double) * (size_t)(n * n));
            for (int k = 0; k < n * n; k++) H[k] = 2.0 * hs.H[l][g][k] / (NS * TW);
            float *want = malloc(sizeof(float) * (size_t)(rows * n));
            memcpy(want, orig[l][i], sizeof(float) * (size_t)(rows * n));
            CHECK(run_gptq(want, rows, n, H, &f, 0.01, true, true, 128, NULL) == ROTQ_OK, "%s", rotq_last_error());
            const float *got = t->data;
            int rows_off = 0;
            for (int rr = 0; rr < rows; rr++)
                rows_off += max_abs_diff(got + rr * n, want + rr * n, n) > 1e-5;
            CHECK(rows_off <= rows / 50, "cache %lld MB: layer %d %s: %d of %d rows differ from GPTQ with the forward's Hessian",
                  (long long)cache_mb, l, rotq_role_name(role), rows_off, rows);
            double moved = max_abs_diff(got, orig[l][i], rows * n);
            CHECK(moved > 1e-3, "layer %d %s was not quantized", l, rotq_role_name(role));
            free(H); free(want); free(orig[l][i]);
        }
    rotq_model_free(m);
}

/* GPTAQ and Qronos through the two-stream walk equal rotq_gptq_prepare_asym on the inputs a plain
 * forward gives: X from the float model, X̃ from the final quantized one (each layer's earlier
 * groups already quantized when a later group's input is formed, so the final model's inputs are
 * the walk's), H = 2X̃ᵀX̃/N and G = 2XᵀX̃/N formed here in double. */
static void check_walk_asym(rotq_wq_method method) {
    rotq_model *m = make_model(), *mf = make_model();
    static hook_state hs;
    memset(&hs, 0, sizeof hs);
    for (int i = 0; i < FF; i++) hs.R[i * FF + (i * 7) % FF] = (i % 3) ? 1.0 : -1.0; /* a signed permutation */
    rotq_hooks hooks = {.ctx = &hs, .linear_input = h_linear, .qk_rope = h_qk, .down_input = h_down};
    rotq_transform tf = {.name = "test hooks", .kind = ROTQ_TF_OTHER, .hooks = hooks};
    int32_t windows[NS * TW];
    for (int i = 0; i < NS * TW; i++) windows[i] = (int32_t)(urand() * V);

    rotq_quant_options o = rotq_quant_defaults();
    o.w_method = method;
    o.w_bits = 4;
    o.w_clip = true;
    o.threads = 1;
    rotq_runner *r, *rf;
    CHECK(rotq_runner_new(m, 1, &r) == ROTQ_OK && rotq_runner_add_transform(r, &tf) == ROTQ_OK, "%s", rotq_last_error());
    CHECK(rotq_runner_new(m, 1, &rf) == ROTQ_OK && rotq_runner_add_transform(rf, &tf) == ROTQ_OK, "%s", rotq_last_error());
    rotq_quant_report rep;
    memset(&rep, 0, sizeof rep);
    CHECK(rotq_gptq_model(m, r, NULL, windows, NS, TW, &o, NULL, &rep) == ROTQ_ERR_ARG, "%s without a float stream must fail",
          rotq_wq_method_name(method));
    CHECK(rotq_gptq_model(m, r, rf, windows, NS, TW, &o, NULL, &rep) == ROTQ_OK, "%s", rotq_last_error());
    CHECK(rep.n_linears == L * 7, "report: %lld linears", (long long)rep.n_linears);
    rotq_runner_free(r);
    rotq_runner_free(rf);

    /* the inputs of both models, row by row */
    float *Xq[L][4], *Xf[L][4];
    for (int pass = 0; pass < 2; pass++) {
        for (int l = 0; l < L; l++)
            for (int g = 0; g < 4; g++) {
                hs.raw[l][g] = malloc(sizeof(float) * (size_t)(NS * TW * FF));
                hs.n_raw[l][g] = 0;
                (pass ? Xf : Xq)[l][g] = hs.raw[l][g];
            }
        hs.capture = true;
        CHECK(rotq_runner_new(pass ? mf : m, 1, &r) == ROTQ_OK && rotq_runner_add_transform(r, &tf) == ROTQ_OK, "%s", rotq_last_error());
        float hidden[TW * D];
        for (int w = 0; w < NS; w++) CHECK(rotq_nn_forward(r, windows + w * TW, TW, NULL, hidden) == ROTQ_OK, "%s", rotq_last_error());
        rotq_runner_free(r);
        hs.capture = false;
    }
    rotq_wq_format f = rotq_wq_format_make(4, false, -1, true);
    int64_t N = NS * TW;
    for (int l = 0; l < L; l++) {
        rotq_role roles[8];
        rotq_tensor *ts[8];
        int nlin = rotq_quant_layer_linears(m, l, roles, ts);
        for (int i = 0; i < nlin; i++) {
            int g = roles[i] == ROLE_Q || roles[i] == ROLE_K || roles[i] == ROLE_V ? 0 : roles[i] == ROLE_O ? 1
                  : roles[i] == ROLE_GATE || roles[i] == ROLE_UP ? 2 : 3;
            int64_t n = g == 3 ? FF : g == 1 ? NH * HD : D;
            CHECK(hs.n_raw[l][g] == N, "layer %d group %d: %lld rows captured", l, g, (long long)hs.n_raw[l][g]);
            double *H = calloc((size_t)(n * n), sizeof(double)), *G = calloc((size_t)(n * n), sizeof(double));
            for (int64_t t = 0; t < N; t++)
                for (int64_t a = 0; a < n; a++)
                    for (int64_t b = 0; b < n; b++) {
                        H[a * n + b] += 2.0 * Xq[l][g][t * n + a] * Xq[l][g][t * n + b] / (double)N;
                        G[a * n + b] += 2.0 * Xf[l][g][t * n + a] * Xq[l][g][t * n + b] / (double)N;
                    }
            rotq_tensor *t = rotq_model_role(m, roles[i], l), *t0 = rotq_model_role(mf, roles[i], l);
            int64_t rows = rotq_tensor_numel(t) / n;
            float *want = malloc(sizeof(float) * (size_t)(rows * n));
            memcpy(want, t0->data, sizeof(float) * (size_t)(rows * n));
            rotq_gptq_hinv h;
            CHECK(rotq_gptq_prepare_asym(H, G, n, &o.gptq, method, &h) == ROTQ_OK, "%s", rotq_last_error());
            CHECK(rotq_gptq_quantize(want, rows, n, &h, &f, &o.gptq, NULL, NULL) == ROTQ_OK, "%s", rotq_last_error());
            rotq_gptq_hinv_free(&h);
            int rows_off = 0;
            for (int64_t rr = 0; rr < rows; rr++) rows_off += max_abs_diff((const float *)t->data + rr * n, want + rr * n, n) > 1e-5;
            CHECK(rows_off <= rows / 50, "%s: layer %d %s: %d of %lld rows differ from the fit on a plain forward's inputs",
                  rotq_wq_method_name(method), l, rotq_role_name(roles[i]), rows_off, (long long)rows);
            CHECK(max_abs_diff(t->data, t0->data, rows * n) > 1e-3, "layer %d %s was not quantized", l, rotq_role_name(roles[i]));
            free(H); free(G); free(want);
        }
    }
    for (int l = 0; l < L; l++)
        for (int g = 0; g < 4; g++) { free(Xq[l][g]); free(Xf[l][g]); hs.raw[l][g] = NULL; }
    rotq_model_free(m);
    rotq_model_free(mf);
}

/* The Hessian search with a diagonal H is the clip search with squared errors weighted by that
 * diagonal (the same ratios): (w − q) D (w − q)ᵀ = Σ d_i e_i². Ties aside (checked by value), the
 * same scales; and with H = c·I, RTN through GPTQ's path without feedback (hinv.rtn) equals plain
 * RTN on the L2 clip search. */
static void check_hessian_search(void) {
    enum { R = 10, N = 64 };
    double *H = calloc(N * N, sizeof(double)), d[N], W[R * N], S[R * 4], Z[R * 4];
    for (int i = 0; i < N; i++) H[i * N + i] = d[i] = 0.2 + 2 * urand();
    for (int variant = 0; variant < 4; variant++) {
        int group = variant >= 2 ? 16 : -1, ng = group > 0 ? N / group : 1;
        rotq_wq_format f = rotq_wq_format_make(variant % 2 ? 3 : 4, variant == 1 || variant == 3, group, true);
        if (variant == 2) f.sym_range = ROTQ_SYM_SIGNED;
        rotq_wq_format fl2 = f;
        rotq_wq_format_set_search(&f, ROTQ_WSCALE_HESSIAN, 2.4);
        rotq_wq_format_set_search(&fl2, ROTQ_WSCALE_CLIP, 2.0);
        for (int i = 0; i < R * N; i++) W[i] = nrand() * 0.1 * (urand() < 0.03 ? 6 : 1);
        CHECK(rotq_wq_params_hessian(W, R, N, group, H, &f, S, Z) == ROTQ_OK, "%s", rotq_last_error());
        int32_t maxq = rotq_wq_maxq(&f);
        for (int r = 0; r < R; r++)
            for (int g = 0; g < ng; g++) {
                int n = N / ng;
                const double *x = W + r * N + g * n;
                double s2, z2, e1 = 0, e2 = 0;
                rotq_wq_params_weighted(x, d + g * n, n, &fl2, &s2, &z2);
                for (int c = 0; c < n; c++) {
                    double a = x[c] - rotq_wq_qdq(x[c], S[r * ng + g], Z[r * ng + g], maxq, f.asym);
                    double b = x[c] - rotq_wq_qdq(x[c], s2, z2, maxq, f.asym);
                    e1 += d[g * n + c] * a * a;
                    e2 += d[g * n + c] * b * b;
                }
                CHECK((S[r * ng + g] == s2 && Z[r * ng + g] == z2) || fabs(e1 - e2) <= 1e-12 * e2,
                      "variant %d row %d group %d: Hessian search scale %g (error %.17g), weighted L2 clip search %g (%.17g)",
                      variant, r, g, S[r * ng + g], e1, s2, e2);
            }
    }
    /* RTN on the Hessian-searched scales through GPTQ's path, H = 3·I: plain RTN with the L2 search */
    for (int i = 0; i < N * N; i++) H[i] = i % (N + 1) == 0 ? 3.0 : 0.0;
    float *w = random_w(R, N), a[R * N], b[R * N];
    memcpy(a, w, sizeof a);
    memcpy(b, w, sizeof b);
    rotq_wq_format f = rotq_wq_format_make(4, false, -1, true), fl2 = f;
    rotq_wq_format_set_search(&f, ROTQ_WSCALE_HESSIAN, 2.4);
    rotq_wq_format_set_search(&fl2, ROTQ_WSCALE_CLIP, 2.0);
    double *Hs = malloc(sizeof(double) * N * N);
    memcpy(Hs, H, sizeof(double) * N * N);
    rotq_gptq_options o = rotq_gptq_defaults();
    rotq_gptq_hinv h;
    CHECK(rotq_gptq_prepare(Hs, N, &o, &h) == ROTQ_OK, "%s", rotq_last_error());
    memcpy(Hs, H, sizeof(double) * N * N);
    h.H = Hs;
    h.rtn = true;
    CHECK(rotq_gptq_quantize(a, R, N, &h, &f, &o, NULL, NULL) == ROTQ_OK, "%s", rotq_last_error());
    CHECK(rotq_rtn_quantize(b, R, N, &fl2, NULL) == ROTQ_OK, "%s", rotq_last_error());
    CHECK(max_abs_diff(a, b, R * N) == 0, "RTN on Hessian-searched scales (H = 3I) differs from the L2 clip search by %g",
          max_abs_diff(a, b, R * N));
    /* without the Hessian, the search is refused by name */
    h.H = NULL;
    memcpy(a, w, sizeof a);
    CHECK(rotq_gptq_quantize(a, R, N, &h, &f, &o, NULL, NULL) == ROTQ_ERR_ARG && strstr(rotq_last_error(), "Hessian"),
          "Hessian search without H: %s", rotq_last_error());
    h.H = Hs;
    rotq_gptq_hinv_free(&h);
    free(w);
    free(H);
}

int main(void) {
    check_reference(9, 40, 4, false, -1, false, false, false, 128);
    check_reference(9, 40, 4, true, -1, true, false, false, 128);
    check_reference(9, 40, 3, false, -1, false, true, false, 128);
    check_reference(9, 72, 4, false, 16, false, false, false, 128);   /* dynamic groups inside one block */
    check_reference(9, 72, 4, false, 16, false, false, false, 24);    /* groups straddling blocks */
    check_reference(9, 72, 4, true, 16, true, true, true, 32);        /* act-order + static groups */
    check_reference(9, 72, 4, false, 16, false, true, false, 20);     /* act-order, dynamic groups */
    check_reference(5, 200, 2, false, -1, false, false, false, 64);   /* several blocks, lazy updates */
    check_diagonal_is_rtn();
    check_block_invariance();
    check_beats_rtn();
    check_errors();
    check_hessian_search();
    check_walk(0);    /* every stage recomputed */
    check_walk(4096); /* attention and down_proj inputs kept */
    check_walk_asym(ROTQ_WQ_GPTAQ);
    check_walk_asym(ROTQ_WQ_QRONOS);
    return tu_finish("test_quant_gptq");
}
