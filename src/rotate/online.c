#include "rotate/online.h"

#include <stdlib.h>

#include "rotate/fuse.h"

rotq_status rotq_online_new(const rotq_model *m, rotq_online **out) {
    rotq_online *o = calloc(1, sizeof *o);
    if (!o) return rotq_fail(ROTQ_ERR_NOMEM, "out of memory");
    rotq_status s = ROTQ_OK;
    if (m->rot.r3.on) {
        if (m->rot.r3.size != m->hp.head_dim)
            s = rotq_fail(ROTQ_ERR_FORMAT, "%s: recorded R3 size %lld differs from head dim %lld", m->source_path,
                          (long long)m->rot.r3.size, (long long)m->hp.head_dim);
        else s = rotq_online_rotation_make(&m->rot.r3, &o->r3);
    }
    if (s == ROTQ_OK && m->rot.r4.on) {
        if (m->rot.r4.size != m->hp.intermediate)
            s = rotq_fail(ROTQ_ERR_FORMAT, "%s: recorded R4 size %lld differs from intermediate size %lld", m->source_path,
                          (long long)m->rot.r4.size, (long long)m->hp.intermediate);
        else s = rotq_online_rotation_make(&m->rot.r4, &o->r4);
    }
    if (s != ROTQ_OK) { rotq_online_free(o); return s; }
    *out = o;
    return ROTQ_OK;
}

void rotq_online_free(rotq_online *o) {
    if (!o) return;
    rotq_rotation_free(o->r3);
    rotq_rotation_free(o->r4);
    free(o);
}

static rotq_status on_linear_input(void *ctx, int32_t layer, rotq_role role, float *x, int64_t rows, int64_t cols) {
    rotq_online *o = ctx;
    return o->next.linear_input ? o->next.linear_input(o->next.ctx, layer, role, x, rows, cols) : ROTQ_OK;
}

static rotq_status on_qk(void *ctx, int32_t layer, float *q, float *k, int64_t T, int64_t pos0, int64_t nh, int64_t nkv, int64_t hd) {
    rotq_online *o = ctx;
    if (o->r3) {
        ROTQ_TRY(rotq_rotation_apply_rows(o->r3, q, T * nh, false));
        ROTQ_TRY(rotq_rotation_apply_rows(o->r3, k, T * nkv, false));
    }
    return o->next.qk_rope ? o->next.qk_rope(o->next.ctx, layer, q, k, T, pos0, nh, nkv, hd) : ROTQ_OK;
}

static rotq_status on_v(void *ctx, int32_t layer, float *v, int64_t T, int64_t pos0, int64_t nkv, int64_t hd) {
    rotq_online *o = ctx;
    return o->next.v ? o->next.v(o->next.ctx, layer, v, T, pos0, nkv, hd) : ROTQ_OK;
}

static rotq_status on_down(void *ctx, int32_t layer, float *x, int64_t rows, int64_t cols) {
    rotq_online *o = ctx;
    if (o->r4) ROTQ_TRY(rotq_rotation_apply_rows(o->r4, x, rows, false));
    return o->next.down_input ? o->next.down_input(o->next.ctx, layer, x, rows, cols) : ROTQ_OK;
}

static rotq_status on_linear(void *ctx, int32_t layer, rotq_role role, const float *x, int64_t rows, int64_t n_in,
                             float *out, int64_t n_out, const float *b, bool accumulate, bool *done) {
    rotq_online *o = ctx;
    return o->next.linear ? o->next.linear(o->next.ctx, layer, role, x, rows, n_in, out, n_out, b, accumulate, done)
                          : ROTQ_OK;
}

rotq_hooks rotq_online_hooks(rotq_online *o, const rotq_hooks *next) {
    if (next) o->next = *next;
    return (rotq_hooks){.ctx = o, .linear_input = on_linear_input, .qk_rope = on_qk, .v = on_v, .down_input = on_down,
                        .linear = on_linear};
}

rotq_status rotq_online_install(rotq_runner *r, const rotq_hooks *next, rotq_online **out) {
    ROTQ_TRY(rotq_online_new(r->model, out));
    rotq_hooks h = rotq_online_hooks(*out, next);
    rotq_runner_set_hooks(r, &h);
    return ROTQ_OK;
}
