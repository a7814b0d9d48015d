/* KV-cache quantization hooks: K after RoPE (and after R3, which the online hooks apply first) and
 * V as it leaves v_proj, each token's heads quantized separately (group = head_dim by default).
 * Q is never touched: only what a cache would store is quantized. */
#include "quant/quant.h"

rotq_status rotq_fakequant_qk(void *ctx, int32_t layer, float *q, float *k, int64_t T, int64_t pos0, int64_t nh,
                              int64_t nkv, int64_t hd);
rotq_status rotq_fakequant_v(void *ctx, int32_t layer, float *v, int64_t T, int64_t pos0, int64_t nkv, int64_t hd);

static rotq_status quant_heads(rotq_fakequant *fq, const rotq_act_format *f, const char *what, int32_t layer, float *x,
                               int64_t T, int64_t pos0, int64_t nkv, int64_t hd) {
    if (!rotq_act_on(f)) return ROTQ_OK;
    rotq_act_format per_head = *f;
    if (per_head.group <= 0) per_head.group = rotq_num_format_block(f->num) > 0 ? rotq_num_format_block(f->num) : hd;
    rotq_status s = rotq_fakequant_backend(fq)->act_quant(x, T, nkv * hd, &per_head);
    if (s != ROTQ_OK) return rotq_fail_context(s, "layer %d, %s cache (positions %lld..)", layer, what, (long long)pos0);
    fq->calls++;
    return ROTQ_OK;
}

rotq_status rotq_fakequant_qk(void *ctx, int32_t layer, float *q, float *k, int64_t T, int64_t pos0, int64_t nh,
                              int64_t nkv, int64_t hd) {
    (void)q;
    (void)nh;
    rotq_fakequant *fq = ctx;
    return quant_heads(fq, &fq->k, "K", layer, k, T, pos0, nkv, hd);
}

rotq_status rotq_fakequant_v(void *ctx, int32_t layer, float *v, int64_t T, int64_t pos0, int64_t nkv, int64_t hd) {
    rotq_fakequant *fq = ctx;
    return quant_heads(fq, &fq->v, "V", layer, v, T, pos0, nkv, hd);
}
