#include "eval/stats.h"

#include <math.h>
#include <stdlib.h>


const char *rotq_site_name(int site) {
    static const char *names[ROTQ_N_SITES] = {"attn_in", "o_in", "mlp_in", "down_in"};
    return site >= 0 && site < ROTQ_N_SITES ? names[site] : "?";
}

rotq_status rotq_act_stats_init(rotq_act_stats *st, int64_t n_layers) {
    st->n_layers = n_layers;
    st->s = calloc((size_t)(n_layers * ROTQ_N_SITES), sizeof *st->s);
    return st->s ? ROTQ_OK : rotq_fail(ROTQ_ERR_NOMEM, "out of memory for statistics");
}

void rotq_act_stats_free(rotq_act_stats *st) {
    free(st->s);
    st->s = NULL;
}

static int site_of(rotq_role role) {
    switch (role) {
    case ROLE_Q: case ROLE_QKV: return ROTQ_SITE_ATTN_IN;
    case ROLE_O: return ROTQ_SITE_O_IN;
    case ROLE_GATE: case ROLE_GATE_UP: case ROLE_UP: return ROTQ_SITE_MLP_IN;
    case ROLE_DOWN: return ROTQ_SITE_DOWN_IN;
    default: return -1;
    }
}

static rotq_status on_linear(void *ctx, int32_t layer, rotq_role role, float *x, int64_t rows, int64_t cols) {
    rotq_act_stats *h = ctx;
    int site = site_of(role);
    if (site >= 0 && layer >= 0 && layer < h->n_layers) {
        rotq_site_stats *s = &h->s[layer * ROTQ_N_SITES + site];
        double s2 = 0, s4 = 0, mx = s->max_abs;
        for (int64_t i = 0; i < rows * cols; i++) {
            double v = x[i], v2 = v * v;
            s2 += v2;
            s4 += v2 * v2;
            if (fabs(v) > mx) mx = fabs(v);
        }
        s->sum2 += s2;
        s->sum4 += s4;
        s->max_abs = mx;
        s->count += rows * cols;
    }
    return h->next.linear_input ? h->next.linear_input(h->next.ctx, layer, role, x, rows, cols) : ROTQ_OK;
}

static rotq_status on_qk(void *ctx, int32_t l, float *q, float *k, int64_t T, int64_t p, int64_t nh, int64_t nkv, int64_t hd) {
    rotq_act_stats *h = ctx;
    return h->next.qk_rope ? h->next.qk_rope(h->next.ctx, l, q, k, T, p, nh, nkv, hd) : ROTQ_OK;
}

static rotq_status on_v(void *ctx, int32_t l, float *v, int64_t T, int64_t p, int64_t nkv, int64_t hd) {
    rotq_act_stats *h = ctx;
    return h->next.v ? h->next.v(h->next.ctx, l, v, T, p, nkv, hd) : ROTQ_OK;
}

static rotq_status on_down(void *ctx, int32_t l, float *x, int64_t rows, int64_t cols) {
    rotq_act_stats *h = ctx;
    return h->next.down_input ? h->next.down_input(h->next.ctx, l, x, rows, cols) : ROTQ_OK;
}

static rotq_status on_product(void *ctx, int32_t l, rotq_role role, const float *x, int64_t rows, int64_t n_in, float *out,
                              int64_t n_out, const float *b, bool accumulate, bool *done) {
    rotq_act_stats *h = ctx;
    return h->next.linear ? h->next.linear(h->next.ctx, l, role, x, rows, n_in, out, n_out, b, accumulate, done) : ROTQ_OK;
}

rotq_hooks rotq_act_stats_hooks(rotq_act_stats *st, const rotq_hooks *next) {
    st->next = next ? *next : (rotq_hooks){0};
    return (rotq_hooks){.ctx = st, .linear_input = on_linear, .qk_rope = on_qk, .v = on_v, .down_input = on_down,
                        .linear = on_product};
}

double rotq_site_max_over_rms(const rotq_site_stats *s) {
    return s->count && s->sum2 > 0 ? s->max_abs / sqrt(s->sum2 / (double)s->count) : 0;
}

double rotq_site_kurtosis(const rotq_site_stats *s) {
    if (!s->count || s->sum2 <= 0) return 0;
    double m2 = s->sum2 / (double)s->count;
    return s->sum4 / (double)s->count / (m2 * m2);
}
