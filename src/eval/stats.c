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
    return ROTQ_OK;
}

rotq_transform rotq_act_stats_transform(rotq_act_stats *st) {
    rotq_transform t = {.name = "statistics (max/rms, kurtosis) of every linear input", .kind = ROTQ_TF_STATS};
    t.hooks = (rotq_hooks){.ctx = st, .linear_input = on_linear};
    return t;
}

double rotq_site_max_over_rms(const rotq_site_stats *s) {
    return s->count && s->sum2 > 0 ? s->max_abs / sqrt(s->sum2 / (double)s->count) : 0;
}

double rotq_site_kurtosis(const rotq_site_stats *s) {
    if (!s->count || s->sum2 <= 0) return 0;
    double m2 = s->sum2 / (double)s->count;
    return s->sum4 / (double)s->count / (m2 * m2);
}
