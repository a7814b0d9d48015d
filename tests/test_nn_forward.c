/* The runner's own invariants, on a small random Llama model built in memory:
 *  - the KV cache path (prompt, then token by token, then in chunks) equals one full forward;
 *  - hook points sit where rotations must go: an orthogonal R applied by a hook and undone in
 *    the weights (or by a later hook) leaves the logits unchanged — Q/K after RoPE, V, the
 *    down_proj input, the o_proj input; a non-orthogonal change does change them;
 *  - hooks are called in the documented order with the documented roles and shapes; a failing
 *    hook stops the forward with its status;
 *  - attention against a direct triple loop (blocks, GQA, cache offset); exp/log-sum-exp against libm;
 *  - bad ids and a full cache are errors, not crashes.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "arch/arch.h"
#include "nn/nn.h"
#include "testutil.h"

enum { D = 32, FF = 48, L = 2, NH = 4, NKV = 2, HD = 8, V = 50, T = 24 };

static uint64_t rng_state = 0x9E3779B97F4A7C15ull;
static double urand(void) { /* xorshift64*, uniform in [0, 1) */
    rng_state ^= rng_state >> 12; rng_state ^= rng_state << 25; rng_state ^= rng_state >> 27;
    return (double)((rng_state * 2685821657736338717ull) >> 11) / 9007199254740992.0;
}
static double nrand(void) { return sqrt(-2.0 * log(urand() + 1e-300)) * cos(2 * M_PI * urand()); }

static rotq_model *make_model(void) {
    static const tu_llama_shape shape = {.d = D, .ff = FF, .layers = L, .heads = NH, .kv_heads = NKV, .head_dim = HD, .vocab = V};
    return tu_random_llama(&shape, 0x9E3779B97F4A7C15ull); /* the same random model every time */
}

static float ids_logits[T * V];
static const int32_t ids[T] = {1, 7, 33, 12, 5, 49, 0, 3, 3, 18, 27, 44, 9, 10, 31, 2, 8, 40, 22, 16, 6, 35, 13, 47};

static void full_logits(rotq_runner *r, float *logits) {
    float hidden[T * D];
    CHECK(rotq_nn_forward(r, ids, T, NULL, hidden) == ROTQ_OK, "%s", rotq_last_error());
    CHECK(rotq_nn_logits(r, hidden, T, logits) == ROTQ_OK, "%s", rotq_last_error());
}

static double max_diff(const float *a, const float *b, int64_t n) {
    double m = 0;
    for (int64_t i = 0; i < n; i++) m = fmax(m, fabs((double)a[i] - b[i]));
    return m;
}

/* ---- KV cache ---- */

static void test_cache(rotq_runner *r) {
    const int64_t splits[][8] = {{5, 1, 1, 1, 1, 1, 1, 13}, {3, 3, 3, 3, 3, 3, 3, 3}, {1, 23, 0}, {24, 0}};
    for (size_t c = 0; c < sizeof splits / sizeof splits[0]; c++) {
        rotq_kv_cache *cache;
        CHECK(rotq_kv_cache_new(r, T, &cache) == ROTQ_OK, "%s", rotq_last_error());
        float logits[T * V], hidden[T * D];
        int64_t at = 0;
        for (int k = 0; k < 8 && at < T && splits[c][k]; k++) {
            int64_t n = splits[c][k];
            CHECK(rotq_nn_forward(r, ids + at, n, cache, hidden) == ROTQ_OK, "%s", rotq_last_error());
            rotq_nn_logits(r, hidden, n, logits + at * V);
            at += n;
        }
        CHECK(at == T && cache->n == T, "split %zu covers %lld tokens", c, (long long)at);
        double d = max_diff(logits, ids_logits, T * V);
        CHECK(d < 2e-5, "cached forward (split %zu) differs from the full one by %g", c, d);
        /* one more token does not fit */
        int32_t one = 4;
        CHECK(rotq_nn_forward(r, &one, 1, cache, hidden) == ROTQ_ERR_ARG, "a full cache must refuse more tokens");
        rotq_kv_cache_free(cache);
    }
}

/* ---- hooks ---- */

/* A random orthogonal n×n matrix (Gram–Schmidt of a Gaussian one), row-major. */
static float *orthogonal(int n) {
    double *a = malloc((size_t)n * n * sizeof *a);
    for (int i = 0; i < n * n; i++) a[i] = nrand();
    for (int i = 0; i < n; i++) {
        for (int j = 0; j < i; j++) {
            double dot = 0;
            for (int k = 0; k < n; k++) dot += a[i * n + k] * a[j * n + k];
            for (int k = 0; k < n; k++) a[i * n + k] -= dot * a[j * n + k];
        }
        double nn = 0;
        for (int k = 0; k < n; k++) nn += a[i * n + k] * a[i * n + k];
        for (int k = 0; k < n; k++) a[i * n + k] /= sqrt(nn);
    }
    float *f = malloc((size_t)n * n * sizeof *f);
    for (int i = 0; i < n * n; i++) f[i] = (float)a[i];
    free(a);
    return f;
}

/* rows of x [rows, n] ← x · R (transpose: x · Rᵀ) */
static void right_mul(float *x, int64_t rows, int n, const float *R, bool transpose) {
    float *tmp = malloc((size_t)n * sizeof *tmp);
    for (int64_t r = 0; r < rows; r++) {
        float *v = x + r * n;
        for (int j = 0; j < n; j++) {
            double s = 0;
            for (int k = 0; k < n; k++) s += (double)v[k] * (transpose ? R[j * n + k] : R[k * n + j]);
            tmp[j] = (float)s;
        }
        memcpy(v, tmp, (size_t)n * sizeof *tmp);
    }
    free(tmp);
}

typedef struct {
    const float *R_head, *R_ff, *R_o;
    int mode;  /* 1 qk, 2 v (+ undo at o input), 3 down input, 4 o input, 5 scale q only */
    int calls;
    char trace[512];
    int fail_at;
} hook_ctx;

static rotq_status h_qk(void *c, int32_t layer, float *q, float *k, int64_t t, int64_t pos0, int64_t nh, int64_t nkv, int64_t hd) {
    hook_ctx *h = c;
    (void)layer; (void)pos0;
    CHECK(nh == NH && nkv == NKV && hd == HD, "qk hook shapes %lld %lld %lld", (long long)nh, (long long)nkv, (long long)hd);
    size_t o = strlen(h->trace);
    snprintf(h->trace + o, sizeof h->trace - o, "qk%d ", layer);
    if (h->mode == 1) { right_mul(q, t * nh, HD, h->R_head, false); right_mul(k, t * nkv, HD, h->R_head, false); }
    if (h->mode == 5) for (int64_t i = 0; i < t * nh * hd; i++) q[i] *= 1.5f;
    return ++h->calls == h->fail_at ? ROTQ_ERR_NUMERIC : ROTQ_OK;
}

static rotq_status h_v(void *c, int32_t layer, float *v, int64_t t, int64_t pos0, int64_t nkv, int64_t hd) {
    hook_ctx *h = c;
    (void)pos0;
    size_t o = strlen(h->trace);
    snprintf(h->trace + o, sizeof h->trace - o, "v%d ", layer);
    if (h->mode == 2) right_mul(v, t * nkv, (int)hd, h->R_head, false);
    return ++h->calls == h->fail_at ? ROTQ_ERR_NUMERIC : ROTQ_OK;
}

static rotq_status h_down(void *c, int32_t layer, float *x, int64_t rows, int64_t cols) {
    hook_ctx *h = c;
    CHECK(cols == FF, "down hook width %lld", (long long)cols);
    size_t o = strlen(h->trace);
    snprintf(h->trace + o, sizeof h->trace - o, "down%d ", layer);
    if (h->mode == 3) right_mul(x, rows, FF, h->R_ff, false);
    return ++h->calls == h->fail_at ? ROTQ_ERR_NUMERIC : ROTQ_OK;
}

static rotq_status h_lin(void *c, int32_t layer, rotq_role role, float *x, int64_t rows, int64_t cols) {
    hook_ctx *h = c;
    size_t o = strlen(h->trace);
    snprintf(h->trace + o, sizeof h->trace - o, "%s%d ", rotq_role_name(role), layer);
    int64_t want = role == ROLE_O ? NH * HD : role == ROLE_DOWN ? FF : D;
    CHECK(cols == want && rows == T, "linear hook %s: [%lld, %lld]", rotq_role_name(role), (long long)rows, (long long)cols);
    if (role == ROLE_O && h->mode == 2) right_mul(x, rows * NH, HD, h->R_head, true); /* undo V's rotation per head */
    if (role == ROLE_O && h->mode == 4) right_mul(x, rows, NH * HD, h->R_o, false);
    return ++h->calls == h->fail_at ? ROTQ_ERR_NUMERIC : ROTQ_OK;
}

/* W [rows, n] ← W · R for every layer's `role` (rotating a linear's input, DESIGN.md). */
static void rotate_weights(rotq_model *m, rotq_role role, int n, const float *R) {
    for (int32_t l = 0; l < L; l++) {
        rotq_tensor *t = rotq_model_role(m, role, l);
        right_mul(t->data, t->shape[0], n, R, false);
    }
}

static void test_hooks(void) {
    float *R_head = orthogonal(HD), *R_ff = orthogonal(FF), *R_o = orthogonal(NH * HD), logits[T * V];
    struct { int mode; rotq_role rotate; int n; const float *R; const char *what; bool invariant; } cases[] = {
        {1, ROLE_COUNT, 0, NULL, "Q and K after RoPE rotated by one R per head", true},
        {2, ROLE_COUNT, 0, NULL, "V rotated per head, undone at the o_proj input", true},
        {3, ROLE_DOWN, FF, NULL, "down_proj input rotated, W_down <- W_down R", true},
        {4, ROLE_O, NH * HD, NULL, "o_proj input rotated, W_o <- W_o R", true},
        {5, ROLE_COUNT, 0, NULL, "Q scaled by 1.5 (not an invariance)", false},
    };
    cases[2].R = R_ff;
    cases[3].R = R_o;
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        rotq_model *m = make_model();
        if (cases[c].R) rotate_weights(m, cases[c].rotate, cases[c].n, cases[c].R);
        rotq_runner *r;
        CHECK(rotq_runner_new(m, 2, &r) == ROTQ_OK, "%s", rotq_last_error());
        hook_ctx h = {R_head, R_ff, R_o, cases[c].mode, 0, "", -1};
        rotq_hooks hooks = {.ctx = &h, .linear_input = h_lin, .qk_rope = h_qk, .v = h_v, .down_input = h_down};
        CHECK(rotq_runner_add_transform(r, &(rotq_transform){.name = "test hooks", .kind = ROTQ_TF_OTHER, .hooks = hooks}) == ROTQ_OK, "%s", rotq_last_error());
        full_logits(r, logits);
        double d = max_diff(logits, ids_logits, T * V);
        if (cases[c].invariant) CHECK(d < 2e-5, "%s: logits moved by %g", cases[c].what, d);
        else CHECK(d > 1e-2, "%s: logits should move, moved by %g", cases[c].what, d);
        if (c == 0) {
            const char *want = "q0 qk0 v0 o0 gate0 down0 down0 q1 qk1 v1 o1 gate1 down1 down1 lm_head-1 ";
            CHECK(strcmp(h.trace, want) == 0, "hook order:\n  got  %s\n  want %s", h.trace, want);
            CHECK(h.calls == 15, "hook calls %d", h.calls);
        }
        rotq_runner_free(r);
        rotq_model_free(m);
    }
    /* a failing hook stops the forward with its status, wherever it sits */
    for (int at = 1; at <= 15; at += 3) {
        rotq_model *m = make_model();
        rotq_runner *r;
        CHECK(rotq_runner_new(m, 2, &r) == ROTQ_OK, "%s", rotq_last_error());
        hook_ctx h = {R_head, R_ff, R_o, 0, 0, "", at};
        rotq_hooks hooks = {.ctx = &h, .linear_input = h_lin, .qk_rope = h_qk, .v = h_v, .down_input = h_down};
        CHECK(rotq_runner_add_transform(r, &(rotq_transform){.name = "test hooks", .kind = ROTQ_TF_OTHER, .hooks = hooks}) == ROTQ_OK, "%s", rotq_last_error());
        float hidden[T * D];
        CHECK(rotq_nn_forward(r, ids, T, NULL, hidden) == ROTQ_ERR_NUMERIC && h.calls == at,
              "hook failing at call %d: forward went on to call %d", at, h.calls);
        rotq_runner_free(r);
        rotq_model_free(m);
    }
    free(R_head);
    free(R_ff);
    free(R_o);
}

/* ---- layers against direct loops ---- */

static void test_attention(void) {
    const int64_t nh = 6, nkv = 2, hd = 8, Tq = 150, pos0 = 37, nk = pos0 + Tq;
    float *q = malloc(sizeof(float) * Tq * nh * hd), *k = malloc(sizeof(float) * nk * nkv * hd);
    float *v = malloc(sizeof(float) * nk * nkv * hd), *out = malloc(sizeof(float) * Tq * nh * hd);
    for (int64_t i = 0; i < Tq * nh * hd; i++) q[i] = (float)nrand();
    for (int64_t i = 0; i < nk * nkv * hd; i++) { k[i] = (float)nrand(); v[i] = (float)nrand(); }
    int64_t blocks[] = {Tq, 64, 7};
    for (int b = 0; b < 3; b++) {
        float *scores = malloc(sizeof(float) * nh * blocks[b] * nk), *work = malloc(sizeof(float) * 2 * Tq * nh * hd);
        if (b == 1) rotq_attention_forward(out, q, k, v, scores, Tq, pos0, nh, nkv, hd, 0.35f, blocks[b], 0);
        else rotq_attention_forward_ws(out, q, k, v, scores, work, Tq, pos0, nh, nkv, hd, 0.35f, blocks[b], 0);
        double worst = 0;
        for (int64_t t = 0; t < Tq; t++)
            for (int64_t h = 0; h < nh; h++) {
                int64_t g = h / (nh / nkv), last = pos0 + t;
                double s[512], mx = -1e300, sum = 0;
                for (int64_t j = 0; j <= last; j++) {
                    double dot = 0;
                    for (int64_t i = 0; i < hd; i++) dot += (double)q[(t * nh + h) * hd + i] * k[(j * nkv + g) * hd + i];
                    s[j] = 0.35 * dot;
                    mx = fmax(mx, s[j]);
                }
                for (int64_t j = 0; j <= last; j++) sum += (s[j] = exp(s[j] - mx));
                for (int64_t i = 0; i < hd; i++) {
                    double o = 0;
                    for (int64_t j = 0; j <= last; j++) o += s[j] / sum * v[(j * nkv + g) * hd + i];
                    worst = fmax(worst, fabs(o - out[(t * nh + h) * hd + i]));
                }
            }
        CHECK(worst < 1e-5, "attention (query block %lld) vs direct loops: %g", (long long)blocks[b], worst);
        free(scores);
        free(work);
    }
    free(q); free(k); free(v); free(out);
}

static void test_exp(void) {
    float x[2001];
    double worst = 0;
    for (int i = 0; i < 2001; i++) x[i] = -87.0f + 0.0874f * (float)i; /* [-87, 87.8] */
    float y[2001];
    memcpy(y, x, sizeof x);
    rotq_exp_shift_sum(y, 2001, 0.0f);
    for (int i = 0; i < 2001; i++) worst = fmax(worst, fabs(y[i] - exp((double)x[i])) / exp((double)x[i]));
    CHECK(worst < 4e-7, "exp approximation relative error %g", worst);
    /* softmax use: shifted by the maximum, summed */
    memcpy(y, x, sizeof x);
    double sum = rotq_exp_shift_sum(y, 2001, x[2000]), ref_sum = 0;
    for (int i = 0; i < 2001; i++) ref_sum += exp((double)x[i] - x[2000]);
    CHECK(fabs(sum - ref_sum) / ref_sum < 1e-6, "exp sum %g vs %g", sum, ref_sum);
    float row[3000];
    double lse, ref = 0, mx = -1e300;
    for (int i = 0; i < 3000; i++) { row[i] = (float)(8 * nrand()); mx = fmax(mx, row[i]); }
    for (int i = 0; i < 3000; i++) ref += exp(row[i] - mx);
    ref = mx + log(ref);
    rotq_logsumexp_rows(row, 1, 3000, &lse);
    CHECK(fabs(lse - ref) < 1e-5, "log-sum-exp %.9g vs %.9g", lse, ref);
}

int main(void) {
    rotq_model *m = make_model();
    rotq_runner *r;
    CHECK(rotq_runner_new(m, 2, &r) == ROTQ_OK, "%s", rotq_last_error());
    CHECK(rotq_runner_owned_bytes(r) == 0, "float32 weights should be borrowed, %llu bytes copied",
          (unsigned long long)rotq_runner_owned_bytes(r));
    full_logits(r, ids_logits);
    test_cache(r);
    int32_t bad[2] = {3, V};
    float hidden[2 * D];
    CHECK(rotq_nn_forward(r, bad, 2, NULL, hidden) == ROTQ_ERR_ARG, "id %d past the vocabulary must be refused", V);
    bad[1] = -1;
    CHECK(rotq_nn_forward(r, bad, 2, NULL, hidden) == ROTQ_ERR_ARG, "a negative id must be refused");
    rotq_runner_free(r);
    rotq_model_free(m);

    test_hooks();
    test_attention();
    test_exp();
    return tu_finish("test_nn_forward");
}
