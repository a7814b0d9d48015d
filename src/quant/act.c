/* Per-token dynamic quantization of activations (QuaRot's ActQuantizer), and the hook that applies
 * it at the input of every linear. Scales are computed in float32 from each row's own range, so
 * nothing is calibrated: a token's outliers only cost that token precision. */
#include <float.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "backend/cpu/grid.h"
#include "quant/quant.h"

int32_t rotq_act_code_max(const rotq_act_format *f) {
    return (1 << f->bits) - 1; /* asymmetric codes [0, 2^b-1]; symmetric ones offset by 2^(b-1) into the same */
}

rotq_status rotq_act_codes(const float *x, int64_t rows, int64_t cols, const rotq_act_format *f, uint8_t *u, float *scale,
                           int32_t *zero) {
    ROTQ_TRY(rotq_act_format_check(f, "activation"));
    if (!rotq_act_on(f) || (f->group > 0 && f->group < cols) || f->num != ROTQ_NUM_INT)
        return rotq_fail(ROTQ_ERR_ARG, "quant: activation codes need a per-token integer format of 2..8 bits");
    int32_t maxq = grid_maxq(f);
    int64_t first_bad = INT64_MAX;
#pragma omp parallel for schedule(static) reduction(min : first_bad) if (rows * cols > 65536)
    for (int64_t r = 0; r < rows; r++) {
        const float *xr = x + r * cols;
        float sc, lo, hi;
        if (!segment_grid(xr, cols, maxq, f->asym, f->clip, f->range, &sc, &lo, &hi) || !(fabs((double)sc) * (maxq + 1) < FLT_MAX)) {
            if (r < first_bad) first_bad = r;
            continue;
        }
        /* u = q − lo: q in [lo, hi] as quant_segment rounds it, so that x_fq = scale·(u − zero) */
        uint8_t *ur = u + r * cols;
        for (int64_t i = 0; i < cols; i++) ur[i] = (uint8_t)(int32_t)(grid_round(xr[i], sc, lo, hi) - lo);
        scale[r] = sc;
        zero[r] = (int32_t)-lo;
    }
    if (first_bad != INT64_MAX)
        return rotq_fail(ROTQ_ERR_NUMERIC, "quant: activation row %lld holds a value that is not finite (or near FLT_MAX); "
                         "cannot quantize it", (long long)first_bad);
    return ROTQ_OK;
}

static rotq_status fq_linear_input(void *ctx, int32_t layer, rotq_role role, float *x, int64_t rows, int64_t cols) {
    rotq_fakequant *fq = ctx;
    if (!rotq_act_on(&fq->act) || (role == ROLE_LM_HEAD && !fq->act_lm_head)) return ROTQ_OK;
    /* a vision tower's ends (the image's patches, the merger) stay float like its weights there */
    if (role == ROLE_PATCH_EMBED || role == ROLE_MERGER_UP || role == ROLE_MERGER_DOWN) return ROTQ_OK;
    if (fq->ints && layer >= 0 && role != ROLE_LM_HEAD) return rotq_fakequant_int_input(fq, layer, x, rows, cols);
    rotq_status s = rotq_fakequant_backend(fq)->act_quant(x, rows, cols, &fq->act);
    if (s != ROTQ_OK) return rotq_fail_context(s, "layer %d, input of %s", layer, rotq_role_name(role));
    fq->calls++;
    return ROTQ_OK;
}

/* kv.c */
rotq_status rotq_fakequant_qk(void *ctx, int32_t layer, float *q, float *k, int64_t T, int64_t pos0, int64_t nh,
                              int64_t nkv, int64_t hd);
rotq_status rotq_fakequant_v(void *ctx, int32_t layer, float *v, int64_t T, int64_t pos0, int64_t nkv, int64_t hd);

rotq_hooks rotq_fakequant_hooks(rotq_fakequant *fq) {
    return (rotq_hooks){.ctx = fq, .linear_input = fq_linear_input, .qk_rope = rotq_fakequant_qk, .v = rotq_fakequant_v,
                        .linear = rotq_fakequant_int_product};
}


rotq_status rotq_fakequant_attach(rotq_runner *r, rotq_fakequant *fq) {
    fq->be = r->be;
    rotq_transform t = {.kind = ROTQ_TF_FAKE_QUANT};
    if (rotq_act_on(&fq->act)) {
        rotq_act_format_describe(t.name, sizeof t.name, "fake-quant A", &fq->act, "per-token", -1);
        if (fq->act_lm_head) strncat(t.name, " (lm_head too)", sizeof t.name - strlen(t.name) - 1);
        t.hooks = (rotq_hooks){.ctx = fq, .linear_input = fq_linear_input};
        ROTQ_TRY(rotq_runner_add_transform(r, &t));
    }
    if (rotq_act_on(&fq->k)) {
        rotq_act_format_describe(t.name, sizeof t.name, "fake-quant K", &fq->k, "per-head", r->hp.head_dim);
        t.hooks = (rotq_hooks){.ctx = fq, .qk_rope = rotq_fakequant_qk};
        ROTQ_TRY(rotq_runner_add_transform(r, &t));
    }
    if (rotq_act_on(&fq->v)) {
        rotq_act_format_describe(t.name, sizeof t.name, "fake-quant V", &fq->v, "per-head", r->hp.head_dim);
        t.hooks = (rotq_hooks){.ctx = fq, .v = rotq_fakequant_v};
        ROTQ_TRY(rotq_runner_add_transform(r, &t));
    }
    if (fq->ints) {
        rotq_transform p = {.kind = ROTQ_TF_INT_PRODUCT};
        snprintf(p.name, sizeof p.name, "integer product (exact int32 sums of weight x A%d codes)", fq->act.bits);
        p.hooks = (rotq_hooks){.ctx = fq, .linear = rotq_fakequant_int_product};
        ROTQ_TRY(rotq_runner_add_transform(r, &p));
    }
    return ROTQ_OK;
}
