/* rotq_rotate_model: runs the architecture's registered operations in order. R1 and R2 are fused
 * into the weights; R3 and R4 are recorded as online rotations (R4's inverse fused into down_proj). */
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "core/files.h"
#include "rotate/fuse.h"
#include "rotate/rotate.h"

#define MAX_OPS 32
static struct { char name[32]; rotq_op_fn fn; } op_table[MAX_OPS];
static int32_t n_op_table;
static pthread_mutex_t op_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_once_t op_once = PTHREAD_ONCE_INIT;

static rotq_status op_rotate_r1(rotq_rotate_ctx *ctx);
static rotq_status op_rotate_r2(rotq_rotate_ctx *ctx);
static rotq_status op_online_r4(rotq_rotate_ctx *ctx);
static rotq_status op_online_r3(rotq_rotate_ctx *ctx);

static void add_op_unlocked(const char *name, rotq_op_fn fn) {
    for (int32_t i = 0; i < n_op_table; i++)
        if (strcmp(op_table[i].name, name) == 0) { op_table[i].fn = fn; return; }
    if (n_op_table < MAX_OPS) {
        snprintf(op_table[n_op_table].name, sizeof op_table[0].name, "%s", name);
        op_table[n_op_table++].fn = fn;
    }
}

static void register_builtin_ops(void) {
    add_op_unlocked("untie_embeddings", rotq_op_untie_embeddings);
    add_op_unlocked("fuse_norms", rotq_op_fuse_norms);
    add_op_unlocked("rotate_r1", op_rotate_r1);
    add_op_unlocked("rotate_r2", op_rotate_r2);
    add_op_unlocked("online_r4", op_online_r4);
    add_op_unlocked("online_r3", op_online_r3);
}

rotq_status rotq_op_register(const char *name, rotq_op_fn fn) {
    pthread_once(&op_once, register_builtin_ops);
    if (!name || !*name || strlen(name) >= sizeof op_table[0].name || !fn)
        return rotq_fail(ROTQ_ERR_ARG, "an operation needs a name (< %zu bytes) and a function", sizeof op_table[0].name);
    pthread_mutex_lock(&op_lock);
    bool full = n_op_table >= MAX_OPS && !rotq_op_find(name);
    if (!full) add_op_unlocked(name, fn);
    pthread_mutex_unlock(&op_lock);
    return full ? rotq_fail(ROTQ_ERR_ARG, "operation registry full (%d)", MAX_OPS) : ROTQ_OK;
}

rotq_op_fn rotq_op_find(const char *name) {
    pthread_once(&op_once, register_builtin_ops);
    for (int32_t i = 0; i < n_op_table; i++)
        if (strcmp(op_table[i].name, name) == 0) return op_table[i].fn;
    return NULL;
}

rotq_rotate_options rotq_rotate_options_default(void) {
    return (rotq_rotate_options){.r1 = ROTQ_R_RANDOM_HADAMARD, .r2 = ROTQ_R_RANDOM_HADAMARD, .r3 = true, .r4 = true,
                                 .fuse_norms = true, .seed = 0};
}

/* The rotation a fused site asks for; sizes with no exact Hadamard fall back to a random
 * orthogonal matrix with a warning. */
rotq_status rotq_site_rotation_make(rotq_rotation_choice c, const char *file, int64_t n, uint64_t seed, const char *site,
                                    int32_t layer, rotq_rotation **out) {
    rotq_status s;
    switch (c) {
    case ROTQ_R_HADAMARD:
    case ROTQ_R_RANDOM_HADAMARD:
        if (rotq_hadamard_known(n)) return rotq_rotation_hadamard(n, c == ROTQ_R_RANDOM_HADAMARD, seed, out);
        rotq_log(ROTQ_LOG_WARN, "%s: no exact Hadamard matrix of order %lld is known; using a random orthogonal matrix (seed %llu)\n",
                site, (long long)n, (unsigned long long)seed);
        return rotq_rotation_random_orthogonal(n, seed, out);
    case ROTQ_R_ORTHOGONAL: return rotq_rotation_random_orthogonal(n, seed, out);
    case ROTQ_R_FILE: {
        /* a folder of learned rotations holds r1.safetensors and r2.layerL.safetensors */
        char path[4096];
        struct stat st;
        if (stat(file, &st) == 0 && S_ISDIR(st.st_mode)) {
            rotq_rotation_folder_file(file, layer, path, sizeof path);
            if (stat(path, &st) != 0)
                return rotq_fail(ROTQ_ERR_ARG, "%s: folder %s has no %s (a folder of rotations holds r1.safetensors and "
                                 "r2.layerL.safetensors, as rotq learn writes them)", site, file, strrchr(path, '/') + 1);
            file = path;
        }
        s = rotq_rotation_load(file, out);
        if (s != ROTQ_OK) return s;
        if ((*out)->n != n) {
            int64_t got = (*out)->n;
            rotq_rotation_free(*out);
            *out = NULL;
            return rotq_fail(ROTQ_ERR_ARG, "%s: %s holds a %lld×%lld rotation but the site needs %lld", site, file, (long long)got,
                             (long long)got, (long long)n);
        }
        return ROTQ_OK;
    }
    default: return rotq_fail(ROTQ_ERR_ARG, "%s: no rotation requested", site);
    }
}

/* Into the --save-rotations folder: R1 (layer -1) and R2 per layer under the folder layout
 * (rotq_rotation_folder_file); R4 (layer -2) as r4.safetensors. */
static rotq_status save_rotation(const rotq_rotate_options *o, const rotq_rotation *R, int32_t layer) {
    if (!o->save_rotations) return ROTQ_OK;
    char path[4096];
    if (layer == -2) snprintf(path, sizeof path, "%s/r4.safetensors", o->save_rotations);
    else rotq_rotation_folder_file(o->save_rotations, layer, path, sizeof path);
    return rotq_rotation_save(R, path, ROTQ_F64);
}

/* A block size for a site of width n: 0 (full width) or a divisor of n. */
static rotq_status check_block(const rotq_model *m, const char *site, int64_t block, int64_t n, const char *what) {
    if (block < 0 || (block > 0 && n % block != 0))
        return rotq_fail(ROTQ_ERR_ARG, "%s: %s block %lld does not divide the %s width %lld", m->source_path, site, (long long)block,
                         what, (long long)n);
    return ROTQ_OK;
}

static bool reads_stream(int32_t role) {
    return role == ROLE_Q || role == ROLE_K || role == ROLE_V || role == ROLE_QKV || role == ROLE_GATE || role == ROLE_UP ||
           role == ROLE_GATE_UP || role == ROLE_LM_HEAD;
}

static bool in_call(const rotq_rotate_ctx *ctx, const rotq_tensor *t) {
    return t->layer < 0 ? ctx->globals : t->layer >= ctx->layer_begin && t->layer < ctx->layer_end;
}

static rotq_status op_rotate_r1(rotq_rotate_ctx *ctx) {
    rotq_model *m = ctx->m;
    const rotq_rotate_options *o = ctx->opt;
    if (o->r1 == ROTQ_R_NONE) return ROTQ_OK;
    rotq_status s = ROTQ_OK;
    if (ctx->first) {
        if (!m->rot.norms_fused)
            return rotq_fail(ROTQ_ERR_ARG, "%s: R1 needs the norms fused first (the architecture's ops must run fuse_norms before rotate_r1)",
                             m->source_path);
        bool block = o->r1_block > 0 && o->r1_block < m->hp.hidden;
        ROTQ_TRY(check_block(m, "R1", o->r1_block, m->hp.hidden, "hidden"));
        if (block && o->r1 == ROTQ_R_FILE)
            return rotq_fail(ROTQ_ERR_ARG, "%s: a block R1 is built (Hadamard or orthogonal), not read from a file", m->source_path);
        if (block && m->arch->norm == ROTQ_NORM_LAYER)
            return rotq_fail(ROTQ_ERR_UNSUPPORTED, "%s: a block-diagonal R1 on a LayerNorm model is not supported (the fused "
                             "LayerNorm needs R1 to keep the stream's mean)", m->source_path);
        ROTQ_TRY(rotq_site_rotation_make(o->r1, o->r1_file, block ? o->r1_block : m->hp.hidden,
                                         rotq_seed_derive(o->seed, ROTQ_SEED_R1, 0), "R1", -1, &ctx->r1));
        if (block)
            snprintf(m->rot.r1, sizeof m->rot.r1, "block-diagonal, %lld x %.60s", (long long)(m->hp.hidden / o->r1_block), ctx->r1->desc);
        else snprintf(m->rot.r1, sizeof m->rot.r1, "%s", ctx->r1->desc);
        /* fused LayerNorm: R1 must keep the stream zero-mean (fuse.c); such models are never
         * streamed, so this first call sees every tensor */
        rotq_rotation *effective = NULL;
        if (m->rot.ln_as_rms && m->arch->norm == ROTQ_NORM_LAYER)
            s = rotq_r1_keep_mean(m, ctx->r1, o->save_rotations ? &effective : NULL);
        if (s == ROTQ_OK && block && o->save_rotations) s = rotq_rotation_block_expand(ctx->r1, m->hp.hidden, &effective);
        if (s == ROTQ_OK) s = save_rotation(o, effective ? effective : ctx->r1, -1);
        rotq_rotation_free(effective);
        ROTQ_TRY(s);
    }
    const rotq_rotation *R = ctx->r1;
    if (!R) return rotq_fail(ROTQ_ERR_ARG, "%s: rotate_r1 ran on layers before its first call", m->source_path);
    rotq_rotate_opts ro = rotq_rotate_defaults();
    ro.block_diag = R->n < m->hp.hidden;
    for (int64_t i = 0; s == ROTQ_OK && i < m->n_tensors; i++) {
        rotq_tensor *t = &m->tensors[i];
        if (!in_call(ctx, t)) continue;
        if (t->role == ROLE_EMBED || t->role == ROLE_POS_EMBED || t->role == ROLE_ATTN_NORM_BIAS ||
            t->role == ROLE_MLP_NORM_BIAS || t->role == ROLE_FINAL_NORM_BIAS) /* a norm bias lives in the stream basis */
            s = rotq_op_rotate(t, NULL, ROTQ_ROTATE_OUTPUT, R, &ro);
        else if (reads_stream(t->role)) s = rotq_op_rotate(t, NULL, ROTQ_ROTATE_INPUT, R, &ro);
        else if (t->role == ROLE_MERGER_UP) { /* merge² stream-wide blocks side by side: R on each */
            rotq_rotate_opts rb = ro;
            rb.block_diag = true;
            s = rotq_op_rotate(t, NULL, ROTQ_ROTATE_INPUT, R, &rb);
        } else if (t->role == ROLE_PATCH_EMBED) /* a vision tower's first writer */
            s = rotq_op_rotate(t, NULL, ROTQ_ROTATE_OUTPUT, R, &ro);
        else if (t->role == ROLE_O || t->role == ROLE_DOWN) {
            rotq_tensor *b = rotq_model_role(m, t->role == ROLE_O ? ROLE_O_BIAS : ROLE_DOWN_BIAS, t->layer);
            s = rotq_op_rotate(t, b, ROTQ_ROTATE_OUTPUT, R, &ro);
        }
        if (o->verbose && t->layer >= 0 && t->role == ROLE_DOWN)
            rotq_log(ROTQ_LOG_INFO, "R1 layer %d/%lld\n", t->layer + 1, (long long)m->hp.n_layers);
    }
    /* a vision tower's merger writes this model's stream (its output takes the place of token embeddings) */
    rotq_tensor *md = ctx->globals && m->vision ? rotq_model_role(m->vision, ROLE_MERGER_DOWN, -1) : NULL;
    if (s == ROTQ_OK && md) s = rotq_op_rotate(md, rotq_model_role(m->vision, ROLE_MERGER_DOWN_BIAS, -1), ROTQ_ROTATE_OUTPUT, R, &ro);
    return s;
}

static rotq_status op_rotate_r2(rotq_rotate_ctx *ctx) {
    rotq_model *m = ctx->m;
    const rotq_rotate_options *o = ctx->opt;
    if (o->r2 == ROTQ_R_NONE) return ROTQ_OK;
    const rotq_hparams *hp = &m->hp;
    int64_t hd = hp->head_dim;
    for (int32_t L = ctx->layer_begin; L < ctx->layer_end; L++) {
        rotq_rotation *R;
        char site[32];
        snprintf(site, sizeof site, "R2 layer %d", L);
        /* one rotation per layer, seeded apart from R1 and from the other layers */
        ROTQ_TRY(rotq_site_rotation_make(o->r2, o->r2_file, hd, rotq_seed_derive(o->seed, ROTQ_SEED_R2, L), site, L, &R));
        rotq_rotate_opts ro = rotq_rotate_defaults();
        ro.block_diag = true;
        rotq_status s;
        rotq_tensor *v = rotq_model_role(m, ROLE_V, L), *qkv = rotq_model_role(m, ROLE_QKV, L);
        if (v) s = rotq_op_rotate(v, rotq_model_role(m, ROLE_V_BIAS, L), ROTQ_ROTATE_OUTPUT, R, &ro);
        else if (qkv) {
            ro.row_begin = (hp->n_heads + hp->n_kv_heads) * hd;  /* the v rows of [q; k; v] */
            ro.row_end = ro.row_begin + hp->n_kv_heads * hd;
            s = rotq_op_rotate(qkv, rotq_model_role(m, ROLE_QKV_BIAS, L), ROTQ_ROTATE_OUTPUT, R, &ro);
            ro.row_begin = ro.row_end = 0;
        } else s = rotq_fail(ROTQ_ERR_FORMAT, "%s: layer %d has no v_proj to rotate", m->source_path, L);
        if (s == ROTQ_OK) s = rotq_op_rotate(rotq_model_role(m, ROLE_O, L), NULL, ROTQ_ROTATE_INPUT, R, &ro);
        if (L == 0) snprintf(m->rot.r2, sizeof m->rot.r2, "%s (layer l: seed + 1 + l)", R->desc);
        if (s == ROTQ_OK) s = save_rotation(o, R, L);
        rotq_rotation_free(R);
        ROTQ_TRY(s);
    }
    return ROTQ_OK;
}

/* The rotation an online site uses: plain Hadamard when one exists, else seeded orthogonal. */
rotq_status rotq_online_rotation_make(const rotq_online_rotation *spec, rotq_rotation **out) {
    int64_t n = spec->block > 0 ? spec->block : spec->size;
    if (!spec->dense) return rotq_rotation_hadamard(n, spec->random_signs, spec->seed, out);
    return rotq_rotation_random_orthogonal(n, spec->seed, out);
}

static void plan_online(rotq_online_rotation *r, int64_t n, int64_t block, uint64_t seed, const char *site) {
    r->on = true;
    r->size = n;
    r->block = block > 0 && block < n ? block : 0;
    int64_t k = r->block ? r->block : n;
    r->dense = !rotq_hadamard_known(k);
    r->seed = seed;
    if (r->dense)
        rotq_log(ROTQ_LOG_WARN, "%s: no exact Hadamard matrix of order %lld is known; using a dense random orthogonal rotation (seed %llu)\n",
                site, (long long)k, (unsigned long long)seed);
}

static rotq_status op_online_r4(rotq_rotate_ctx *ctx) {
    rotq_model *m = ctx->m;
    if (!ctx->opt->r4) return ROTQ_OK;
    if (ctx->first) {
        if (m->rot.r4.on) return rotq_fail(ROTQ_ERR_ARG, "%s: R4 is already applied to this model", m->source_path);
        ROTQ_TRY(check_block(m, "R4", ctx->opt->r4_block, m->hp.intermediate, "intermediate"));
        plan_online(&m->rot.r4, m->hp.intermediate, ctx->opt->r4_block, rotq_seed_derive(ctx->opt->seed, ROTQ_SEED_R4, 0), "R4");
        rotq_status s = rotq_online_rotation_make(&m->rot.r4, &ctx->r4);
        if (s == ROTQ_OK) s = save_rotation(ctx->opt, ctx->r4, -2);
        if (s != ROTQ_OK) {
            m->rot.r4.on = false;
            return s;
        }
    }
    if (!ctx->r4) return rotq_fail(ROTQ_ERR_ARG, "%s: online_r4 ran on layers before its first call", m->source_path);
    rotq_rotate_opts ro = rotq_rotate_defaults();
    ro.block_diag = m->rot.r4.block > 0;
    rotq_status s = ROTQ_OK;
    for (int32_t L = ctx->layer_begin; s == ROTQ_OK && L < ctx->layer_end; L++)
        s = rotq_op_rotate(rotq_model_role(m, ROLE_DOWN, L), NULL, ROTQ_ROTATE_INPUT, ctx->r4, &ro);
    if (s != ROTQ_OK) m->rot.r4.on = false;
    return s;
}

static rotq_status op_online_r3(rotq_rotate_ctx *ctx) {
    rotq_model *m = ctx->m;
    if (!ctx->opt->r3 || !ctx->first) return ROTQ_OK;
    if (m->rot.r3.on) return rotq_fail(ROTQ_ERR_ARG, "%s: R3 is already applied to this model", m->source_path);
    plan_online(&m->rot.r3, m->hp.head_dim, 0, rotq_seed_derive(ctx->opt->seed, ROTQ_SEED_R3, 0), "R3");
    return ROTQ_OK;
}

const char *rotq_lw_site_name(rotq_lw_site s) {
    static const char *const names[ROTQ_LW_SITES] = {"qkv", "o", "mlp", "down", "lm_head"};
    return (unsigned)s < ROTQ_LW_SITES ? names[s] : "?";
}

int rotq_lw_site_from_name(const char *name) {
    for (int s = 0; s < ROTQ_LW_SITES; s++)
        if (name && strcmp(name, rotq_lw_site_name((rotq_lw_site)s)) == 0) return s;
    return -1;
}

int64_t rotq_lw_site_width(const rotq_hparams *hp, int s) {
    return s == ROTQ_LW_O ? hp->n_heads * hp->head_dim : s == ROTQ_LW_DOWN ? hp->intermediate : hp->hidden;
}

bool rotq_lw_site_reads(int s, int32_t role) {
    switch (s) {
    case ROTQ_LW_QKV: return role == ROLE_Q || role == ROLE_K || role == ROLE_V || role == ROLE_QKV;
    case ROTQ_LW_O: return role == ROLE_O;
    case ROTQ_LW_MLP: return role == ROLE_GATE || role == ROLE_UP || role == ROLE_GATE_UP;
    case ROTQ_LW_DOWN: return role == ROLE_DOWN;
    default: return role == ROLE_LM_HEAD;
    }
}

/* Layerwise rotations (after the architecture's operations, so on top of any fused ones): plan and
 * record each site on the first call, then W ← W·R for every linear reading the site. */
static rotq_status op_layerwise(rotq_rotate_ctx *ctx) {
    rotq_model *m = ctx->m;
    const rotq_rotate_options *o = ctx->opt;
    if (ctx->first) {
        if (o->layerwise >> ROTQ_LW_SITES)
            return rotq_fail(ROTQ_ERR_ARG, "%s: layerwise site mask 0x%x names sites past lm_head", m->source_path, o->layerwise);
        if ((o->layerwise >> ROTQ_LW_DOWN & 1) && (o->r4 || m->rot.r4.on))
            return rotq_fail(ROTQ_ERR_ARG, "%s: a layerwise rotation of down_proj's input is R4 itself: turn R4 off or leave "
                             "down out", m->source_path);
        if (o->layerwise_kind == ROTQ_R_FILE)
            return rotq_fail(ROTQ_ERR_UNSUPPORTED, "%s: layerwise rotations are Hadamard or orthogonal, not read from files", m->source_path);
        for (int s = 0; s < ROTQ_LW_SITES; s++) {
            if (!(o->layerwise >> s & 1)) continue;
            rotq_online_rotation *rec = &m->rot.lw[s];
            char site[48];
            snprintf(site, sizeof site, "layerwise %s", rotq_lw_site_name((rotq_lw_site)s));
            if (rec->on) return rotq_fail(ROTQ_ERR_ARG, "%s: the %s rotation is already applied to this model", m->source_path, site);
            int64_t n = rotq_lw_site_width(&m->hp, s);
            ROTQ_TRY(check_block(m, site, o->layerwise_block, n, rotq_lw_site_name((rotq_lw_site)s)));
            plan_online(rec, n, o->layerwise_block, rotq_seed_derive(o->seed, ROTQ_SEED_LAYERWISE, s), site);
            if (o->layerwise_kind == ROTQ_R_ORTHOGONAL) rec->dense = true;
            rec->random_signs = !rec->dense && o->layerwise_kind != ROTQ_R_HADAMARD;
            rotq_status st = rotq_online_rotation_make(rec, &ctx->lw[s]);
            if (st == ROTQ_OK && s == ROTQ_LW_LM_HEAD && !rotq_model_role(m, ROLE_LM_HEAD, -1)) {
                ctx->force_untie = true; /* the embedding reads tokens, lm_head the rotated stream */
                st = rotq_op_untie_embeddings(ctx);
                ctx->force_untie = false;
            }
            if (st != ROTQ_OK) {
                rec->on = false;
                return st;
            }
        }
    }
    for (int s = 0; s < ROTQ_LW_SITES; s++) {
        if (!ctx->lw[s]) continue;
        rotq_rotate_opts ro = rotq_rotate_defaults();
        ro.block_diag = m->rot.lw[s].block > 0;
        for (int64_t i = 0; i < m->n_tensors; i++) {
            rotq_tensor *t = &m->tensors[i];
            if (!rotq_lw_site_reads(s, t->role) || !in_call(ctx, t)) continue;
            rotq_status st = rotq_op_rotate(t, NULL, ROTQ_ROTATE_INPUT, ctx->lw[s], &ro);
            if (st != ROTQ_OK) {
                m->rot.lw[s].on = false;
                return st;
            }
        }
    }
    return ROTQ_OK;
}

/* One call of every operation of the architecture, in order, over what ctx covers. */
static rotq_status run_ops(rotq_rotate_ctx *ctx) {
    const rotq_model *m = ctx->m;
    for (int32_t i = 0; i < m->arch->n_ops; i++) {
        rotq_op_fn fn = rotq_op_find(m->arch->ops[i]);
        if (!fn)
            return rotq_fail(ROTQ_ERR_UNSUPPORTED, "architecture %s lists operation \"%s\", which is not registered", m->arch->name,
                             m->arch->ops[i]);
        if (ctx->opt->verbose && ctx->first) rotq_log(ROTQ_LOG_INFO, "%s\n", m->arch->ops[i]);
        rotq_status s = fn(ctx);
        if (s != ROTQ_OK) return rotq_fail_context(s, "%s", m->arch->ops[i]);
    }
    if (ctx->opt->layerwise) {
        rotq_status s = op_layerwise(ctx);
        if (s != ROTQ_OK) return rotq_fail_context(s, "layerwise");
    }
    return ROTQ_OK;
}

static void ctx_done(rotq_rotate_ctx *ctx, rotq_status s) {
    rotq_rotation_free(ctx->r1);
    rotq_rotation_free(ctx->r4);
    ctx->r1 = ctx->r4 = NULL;
    for (int s = 0; s < ROTQ_LW_SITES; s++) {
        rotq_rotation_free(ctx->lw[s]);
        ctx->lw[s] = NULL;
    }
    if (s == ROTQ_OK && ctx->opt->verbose && ctx->params_added)
        rotq_log(ROTQ_LOG_INFO, "untied embeddings: %lld parameters added\n", (long long)ctx->params_added);
}

/* R1 asked where it cannot keep the function (rotq_model_layout's fused_r1: the architecture's
 * operations lack rotate_r1, or the model has sandwich norms): refused by name rather than skipped. */
static rotq_status check_r1_op(const rotq_model *m, const rotq_rotate_options *o) {
    if (o->r1 == ROTQ_R_NONE) return ROTQ_OK;
    rotq_model_layout lay;
    ROTQ_TRY(rotq_model_layout_get(m, &lay));
    if (lay.fused_r1) return ROTQ_OK;
    return rotq_fail(ROTQ_ERR_UNSUPPORTED, "%s: R1 cannot be fused into this %s model%s; use --r1 none (and --layerwise "
                     "for the sites R1 would reach)", m->source_path, m->arch->name,
                     lay.sandwich_norms ? " (its sandwich norms sit between o_proj/down_proj and the residual stream, with "
                                          "no linear after them to take R1)" : " (its operations have no rotate_r1)");
}

/* A vision tower, rotated by its own architecture's operations with the same kinds of rotation as the
 * language model (seeded apart; rotations read from files are the language model's, so the tower takes
 * random Hadamards instead; layerwise sites are the language model's). */
static rotq_status rotate_vision(rotq_model *v, const rotq_rotate_options *o) {
    rotq_rotate_options vo = *o;
    vo.seed = rotq_seed_derive(o->seed, ROTQ_SEED_VISION, 0);
    if (vo.r1 == ROTQ_R_FILE) vo.r1 = ROTQ_R_RANDOM_HADAMARD;
    if (vo.r2 == ROTQ_R_FILE) vo.r2 = ROTQ_R_RANDOM_HADAMARD;
    vo.r1_file = vo.r2_file = NULL;
    vo.r1_block = vo.r4_block = 0;
    vo.layerwise = 0;
    vo.save_rotations = NULL;
    if (o->verbose) rotq_log(ROTQ_LOG_INFO, "vision tower (%s)\n", v->arch->name);
    return rotq_rotate_model(v, &vo);
}

rotq_status rotq_rotate_model(rotq_model *m, const rotq_rotate_options *opts) {
    rotq_rotate_options o = opts ? *opts : rotq_rotate_options_default();
    ROTQ_TRY(check_r1_op(m, &o));
    rotq_model_drop_codes(m); /* rotation rewrites weights in place: quantizer codes no longer hold */
    m->quant_desc[0] = 0;     /* nor what they were quantized as */
    rotq_rotate_ctx ctx = {.m = m, .opt = &o, .layer_begin = 0, .layer_end = (int32_t)m->hp.n_layers, .globals = true, .first = true};
    rotq_status s = run_ops(&ctx);
    ctx_done(&ctx, s);
    if (s == ROTQ_OK && m->vision) s = rotate_vision(m->vision, &o);
    return s;
}

/* Operations known to handle one call per layer (ctx ranges); with any other the model is rotated
 * whole first. */
static bool layerwise(rotq_op_fn fn) {
    return fn == rotq_op_untie_embeddings || fn == rotq_op_fuse_norms || fn == op_rotate_r1 || fn == op_rotate_r2 ||
           fn == op_online_r4 || fn == op_online_r3;
}

rotq_status rotq_rotate_model_streamed(rotq_model *m, const rotq_rotate_options *opts, rotq_tensor_sink sink, void *user) {
    rotq_rotate_options o = opts ? *opts : rotq_rotate_options_default();
    ROTQ_TRY(check_r1_op(m, &o));
    rotq_model_drop_codes(m);
    m->quant_desc[0] = 0;
    /* LayerNorm fusion (centring, the mean-keeping R1) works on the whole model at once */
    bool stream = m->hp.n_layers > 0 && rotq_model_norm_kind(m) != ROTQ_NORM_LAYER && !m->vision;
    for (int32_t i = 0; stream && i < m->arch->n_ops; i++) stream = layerwise(rotq_op_find(m->arch->ops[i]));
    if (!stream) {
        ROTQ_TRY(rotq_rotate_model(m, &o));
        for (int64_t i = 0; i < rotq_model_n_stored(m); i++) ROTQ_TRY(sink(user, m, rotq_model_stored(m, i)));
        return ROTQ_OK;
    }
    const int32_t nl = (int32_t)m->hp.n_layers;
    rotq_rotate_ctx ctx = {.m = m, .opt = &o, .layer_begin = 0, .layer_end = 0, .globals = true, .first = true};
    rotq_status s = run_ops(&ctx);
    /* tensors of no layer (or of one the operations never visit) are final after the global calls */
    for (int64_t i = 0; s == ROTQ_OK && i < m->n_tensors; i++)
        if (m->tensors[i].layer < 0 || m->tensors[i].layer >= nl) s = sink(user, m, &m->tensors[i]);
    for (int32_t L = 0; s == ROTQ_OK && L < nl; L++) {
        ctx.globals = ctx.first = false;
        ctx.layer_begin = L;
        ctx.layer_end = L + 1;
        s = rotq_check_cancel("rotate");
        if (s == ROTQ_OK) s = run_ops(&ctx);
        for (int64_t i = 0; s == ROTQ_OK && i < m->n_tensors; i++)
            if (m->tensors[i].layer == L) s = sink(user, m, &m->tensors[i]);
    }
    ctx_done(&ctx, s);
    return s;
}
