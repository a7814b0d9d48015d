#include "rotate/online.h"

#include "rotate/fuse.h"

#include <stdio.h>
#include <stdlib.h>

typedef struct online {
    rotq_rotation *r;           /* one rotation of the rows at its site */
    const rotq_backend *be;     /* the runner's */
    int site;                   /* layerwise: the rotq_lw_site whose linear input this rotates */
} online;

static void online_free(void *ctx) {
    online *o = ctx;
    if (!o) return;
    rotq_rotation_free(o->r);
    free(o);
}

/* R3: every head of Q and K, after RoPE (q·kᵀ keeps its value since R3 is orthogonal). */
static rotq_status on_qk(void *ctx, int32_t layer, float *q, float *k, int64_t T, int64_t pos0, int64_t nh, int64_t nkv,
                         int64_t hd) {
    (void)layer, (void)pos0, (void)hd;
    online *o = ctx;
    ROTQ_TRY(rotq_rotation_apply_rows_on(o->be, o->r, q, T * nh, false));
    return rotq_rotation_apply_rows_on(o->be, o->r, k, T * nkv, false);
}

/* R4: down_proj's input (its weight holds R4ᵀ already). */
static rotq_status on_down(void *ctx, int32_t layer, float *x, int64_t rows, int64_t cols) {
    (void)layer;
    online *o = ctx;
    return rotq_rotation_apply_rows_on(o->be, o->r, x, rows * cols / o->r->n, false); /* a block rotation: per block */
}

/* Layerwise: the input of the site's linears, as the runner hands each shared input once. */
static rotq_status on_linear_input(void *ctx, int32_t layer, rotq_role role, float *x, int64_t rows, int64_t cols) {
    (void)layer;
    online *o = ctx;
    if (!rotq_lw_site_reads(o->site, role)) return ROTQ_OK;
    return rotq_rotation_apply_rows_on(o->be, o->r, x, rows * cols / o->r->n, false);
}

/* Backward (training): the rotation's transpose on dL/d(output), row by row of its size. */
static rotq_status online_grad(void *ctx, rotq_grad_site site, int32_t layer, rotq_role role, float *g, const float *raw,
                               const float *post, int64_t rows, int64_t cols) {
    (void)site, (void)layer, (void)role, (void)raw, (void)post;
    online *o = ctx;
    return rotq_rotation_apply_rows_on(o->be, o->r, g, rows * cols / o->r->n, true);
}

/* One recorded rotation as a transform at its site: qk (R3, every head of Q and K) or down_input (R4). */
static rotq_status attach_one(rotq_runner *r, const rotq_online_rotation *rec, int lw_site, bool qk, int64_t want,
                              const char *name, const char *where) {
    const rotq_model *m = r->model;
    if (rec->size != want)
        return rotq_fail(ROTQ_ERR_FORMAT, "%s: recorded %s size %lld differs from the model's %s width %lld", m->source_path,
                         name, (long long)rec->size, where, (long long)want);
    online *o = calloc(1, sizeof *o);
    if (!o) return rotq_fail(ROTQ_ERR_NOMEM, "out of memory");
    o->be = r->be;
    o->site = lw_site;
    rotq_status s = rotq_online_rotation_make(rec, &o->r);
    if (s != ROTQ_OK) { free(o); return s; }
    rotq_transform t = {.kind = ROTQ_TF_ONLINE_ROTATION, .release = online_free};
    t.hooks = (rotq_hooks){.ctx = o, .grad = online_grad};
    if (lw_site >= 0) t.hooks.linear_input = on_linear_input;
    else if (qk) t.hooks.qk_rope = on_qk;
    else t.hooks.down_input = on_down;
    if (rec->block > 0)
        snprintf(t.name, sizeof t.name, "%s %s %lld, block-diagonal (%lld blocks)", name,
                 rec->dense ? "online orthogonal" : "online Hadamard", (long long)rec->block, (long long)(rec->size / rec->block));
    else
        snprintf(t.name, sizeof t.name, "%s %s %lld", name, rec->dense ? "online orthogonal" : "online Hadamard",
                 (long long)rec->size);
    s = rotq_runner_add_transform(r, &t);
    if (s != ROTQ_OK) online_free(o);
    return s;
}

rotq_status rotq_online_attach(rotq_runner *r) {
    if (r->online_attached) return rotq_fail(ROTQ_ERR_ARG, "online rotations attached twice to one runner");
    const rotq_model *m = r->model;
    if (m->rot.r3.on) ROTQ_TRY(attach_one(r, &m->rot.r3, -1, true, m->hp.head_dim, "R3", "head"));
    if (m->rot.r4.on) ROTQ_TRY(attach_one(r, &m->rot.r4, -1, false, m->hp.intermediate, "R4", "intermediate"));
    for (int s = 0; s < ROTQ_LW_SITES; s++) {
        if (!m->rot.lw[s].on) continue;
        char name[48];
        snprintf(name, sizeof name, "layerwise %s:", rotq_lw_site_name((rotq_lw_site)s));
        ROTQ_TRY(attach_one(r, &m->rot.lw[s], s, false, rotq_lw_site_width(&m->hp, s), name, "input"));
    }
    r->online_attached = true;
    return ROTQ_OK;
}
