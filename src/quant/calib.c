/* Calibration for GPTQ: random windows of the calibration text, run layer by layer through the
 * model while it is being quantized (QuaRot's gptq_fwrd, "true sequential"):
 *
 *   for each layer l, with X [nsamples, T, d] the residual stream entering l:
 *     A  H_qkv  from norm(X)                          → quantize q, k, v
 *     B  H_o    from attention(X) with quantized qkv  → quantize o
 *     C  X ← X + o(attention(X));  H_gu from norm(X)  → quantize gate, up
 *     D  H_down from swiglu(gate, up) (after R4)      → quantize down
 *     E  X ← X + down(...)                              (layer l+1's input)
 *
 * Every stage runs the layer's own steps (nn/layer.c: the forward pass's definition of a layer,
 * transforms included), so online rotations (R3, R4) shape the Hessians exactly as they shape
 * inference. Activations stay float here (QuaRot
 * configures activation quantizers only after GPTQ). H = 2·XᵀX / N over all N calibration tokens,
 * each window's XᵀX formed by ssyrk in float and summed in double.
 *
 * GPTAQ and Qronos walk two streams side by side: the quantized one above, whose runner also
 * quantizes activations and the KV cache as the options say (X̃; not with calib_float_acts), and a
 * float one through the layer's original weights with the online rotations only (X). H comes from X̃, the cross term G = 2·XᵀX̃ / N
 * from both, each window's product by sgemm and summed in double. */
#include <cblas.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/files.h"
#include "core/dist.h"
#include "quant/quant.h"
#include "rotate/rotate.h"
#include "core/clock.h"

rotq_status rotq_calib_windows(const int32_t *ids, int64_t n, int64_t nsamples, int64_t ctx, uint64_t seed,
                               int32_t **out) {
    *out = NULL;
    if (nsamples <= 0 || ctx <= 0)
        return rotq_fail(ROTQ_ERR_ARG, "calib: %lld windows of %lld tokens", (long long)nsamples, (long long)ctx);
    if (n < ctx)
        return rotq_fail(ROTQ_ERR_ARG, "calib: the calibration text has %lld tokens, fewer than one window of %lld",
                         (long long)n, (long long)ctx);
    int32_t *w = malloc((size_t)(nsamples * ctx) * sizeof *w);
    if (!w) return rotq_fail(ROTQ_ERR_NOMEM, "calib: out of memory for %lld x %lld tokens", (long long)nsamples, (long long)ctx);
    rotq_rng rng;
    rotq_rng_seed(&rng, rotq_seed_derive(seed, ROTQ_SEED_CALIB_WINDOWS, 0));
    int64_t starts = n - ctx + 1;
    for (int64_t s = 0; s < nsamples; s++) {
        int64_t i = (int64_t)(rotq_rng_uniform(&rng) * (double)starts);
        if (i >= starts) i = starts - 1;
        memcpy(w + s * ctx, ids + i, (size_t)ctx * sizeof *w);
    }
    *out = w;
    return ROTQ_OK;
}

int rotq_quant_layer_linears(const rotq_model *m, int32_t l, rotq_role *roles, rotq_tensor **tensors) {
    static const rotq_role order[] = {ROLE_QKV, ROLE_Q, ROLE_K, ROLE_V, ROLE_O, ROLE_GATE_UP, ROLE_GATE, ROLE_UP, ROLE_DOWN};
    int n = 0;
    for (size_t i = 0; i < sizeof order / sizeof order[0]; i++) {
        rotq_tensor *t = rotq_model_role(m, order[i], l);
        if (!t) continue;
        roles[n] = order[i];
        tensors[n] = t;
        n++;
    }
    return n;
}

/* ---- the layer walk ---------------------------------------------------------------------------- */

typedef struct walk {
    rotq_model *m;
    rotq_runner *r;
    const rotq_quant_options *o;
    const rotq_dtype *types;      /* per-tensor block types, or NULL: o's scalar format for all */
    int64_t ns, T, d, qd, kvd, ff, half;
    float *X;                     /* [ns, T, d] residual stream */
    float *store[ROTQ_LAYER_STEPS]; /* [ns, T, cols] a step's output kept to resume from, or NULL (recomputed) */
    rotq_layer_io io;             /* one window's buffers (x points into X) */
    float *gram;
    double *H;
    rotq_quant_report *rep;
    double t_quant;
    /* the float stream of the asymmetric fits (rf == NULL: GPTQ) */
    rotq_runner *rf;              /* online rotations only; its layer l reads the copies in fw */
    float *Xf;                    /* [ns, T, d] */
    rotq_layer_io iof;
    float *fw;                    /* one layer's linears as they were before quantization */
    double *G;                    /* [n, n] cross term */
    char losses[160];             /* this layer's loss per input group, for the progress line */
} walk;

/* H += xᵀx for x [T, n] (upper triangle) */
static void gram_add(walk *c, const float *x, int64_t n) {
    cblas_ssyrk(CblasRowMajor, CblasUpper, CblasTrans, (blasint)n, (blasint)c->T, 1.0f, x, (blasint)n, 0.0f, c->gram,
                (blasint)n);
    double *H = c->H;
    const float *g = c->gram;
#pragma omp parallel for schedule(static) if (n >= 256)
    for (int64_t i = 0; i < n; i++)
        for (int64_t j = i; j < n; j++) H[i * n + j] += g[i * n + j];
}

/* G += x_fᵀ x̃ for the float and quantized inputs [T, n] of one window (a full matrix) */
static void cross_add(walk *c, const float *xf, const float *xq, int64_t n) {
    cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, (blasint)n, (blasint)n, (blasint)c->T, 1.0f, xf, (blasint)n, xq,
                (blasint)n, 0.0f, c->gram, (blasint)n);
    double *G = c->G;
    const float *g = c->gram;
#pragma omp parallel for schedule(static) if (n >= 256)
    for (int64_t i = 0; i < n * n; i++) G[i] += g[i];
}

/* GPTQ on the tensors of layer l (-1: global ones) playing roles[0..n_roles) that read the input
 * whose Hessian c->H has summed: 2/N scaling and the lower triangle first. */
static rotq_status quantize_readers(walk *c, int32_t l, int64_t n, const rotq_role *roles, int n_roles) {
    double t0 = rotq_now_s();
    double *H = c->H, scale = 2.0 / (double)(c->ns * c->T);
    for (int64_t i = 0; i < n; i++) {
        for (int64_t j = i; j < n; j++) H[i * n + j] *= scale;
        for (int64_t j = 0; j < i; j++) H[i * n + j] = H[j * n + i];
    }
    rotq_gptq_hinv hinv;
    rotq_status s;
    /* the Hessian scale search reads H as measured; prepare() takes it as scratch */
    double *Hm = NULL;
    if (c->o->w_clip && c->o->w_scale == ROTQ_WSCALE_HESSIAN) {
        if (!(Hm = malloc((size_t)(n * n) * sizeof *Hm))) return rotq_fail(ROTQ_ERR_NOMEM, "calib: out of memory for a Hessian copy");
        memcpy(Hm, H, (size_t)(n * n) * sizeof *Hm);
    }
    if (c->rf && l >= 0) {
        for (int64_t i = 0; i < n * n; i++) c->G[i] *= scale;
        s = rotq_gptq_prepare_asym(H, c->G, n, &c->o->gptq, c->o->w_method, &hinv);
    } else {
        s = rotq_gptq_prepare(H, n, &c->o->gptq, &hinv);
    }
    if (s != ROTQ_OK) {
        free(Hm);
        return l >= 0 ? rotq_fail_context(s, "layer %d, %s input", l, rotq_role_name(roles[0]))
                      : rotq_fail_context(s, "%s input", rotq_role_name(roles[0]));
    }
    hinv.H = Hm;
    hinv.rtn = c->o->w_method == ROTQ_WQ_RTN;
    double group_loss = 0.0;
    for (int i = 0; i < n_roles && s == ROTQ_OK; i++) {
        rotq_tensor *t = rotq_model_role(c->m, roles[i], l);
        rotq_wq_format fmt;
        if (!t || !rotq_wq_format_for_tensor(c->o, c->types, t - c->m->tensors, &fmt)) continue;
        int64_t rows = rotq_tensor_numel(t) / n;
        double loss = 0.0;
        rotq_qweight *codes = NULL;
        s = rotq_gptq_quantize((float *)t->data, rows, n, &hinv, &fmt, &c->o->gptq, &loss, &codes);
        if (s != ROTQ_OK) { s = rotq_fail_context(s, "%s", t->name); break; }
        rotq_tensor_set_codes(t, codes, (void (*)(void *))rotq_qweight_free);
        if (l >= 0) c->rep->n_linears++; /* the decoder linears; the output matrix is counted in n_params only */
        c->rep->n_params += rows * n;
        c->rep->gptq_loss += loss;
        group_loss += loss;
    }
    size_t used = strlen(c->losses);
    if (l >= 0 && used < sizeof c->losses)
        snprintf(c->losses + used, sizeof c->losses - used, "%s%s %.4g", used ? ", " : "", rotq_role_name(roles[0]), group_loss);
    c->rep->n_dead += hinv.n_dead;
    rotq_gptq_hinv_free(&hinv);
    c->t_quant += rotq_now_s() - t0;
    return s;
}

/* GPTQ on every tensor reading a layer's group input (the fused and the separate forms) */
static rotq_status quantize_group(walk *c, int32_t l, int64_t n, rotq_role group) {
    rotq_role roles[4];
    int n_roles = 0;
    if (group == ROLE_QKV || group == ROLE_Q) roles[n_roles++] = ROLE_QKV, roles[n_roles++] = ROLE_Q, roles[n_roles++] = ROLE_K, roles[n_roles++] = ROLE_V;
    else if (group == ROLE_GATE_UP || group == ROLE_GATE || group == ROLE_UP)
        roles[n_roles++] = ROLE_GATE_UP, roles[n_roles++] = ROLE_GATE, roles[n_roles++] = ROLE_UP;
    else roles[n_roles++] = group;
    return quantize_readers(c, l, n, roles, n_roles);
}

/* The float stream reads layer l's linears as they are before any of them is quantized. */
static void keep_float_layer(walk *c, int32_t l) {
    rotq_layer_weights *w = &c->rf->layers[l];
    const rotq_hparams *hp = &c->rf->hp;
    int64_t d = hp->hidden, qd = c->qd, kvd = c->kvd, ff = hp->intermediate;
    struct { const float **p; int64_t n; } mats[] = {
        {&w->wq, qd * d}, {&w->wk, kvd * d}, {&w->wv, kvd * d}, {&w->wo, d * qd},
        {&w->wgate, ff * d}, {&w->wup, ff * d}, {&w->wdown, d * ff},
    };
    float *dst = c->fw;
    for (size_t i = 0; i < sizeof mats / sizeof mats[0]; i++) {
        if (!*mats[i].p) continue;
        memcpy(dst, *mats[i].p, (size_t)mats[i].n * sizeof(float));
        *mats[i].p = dst;
        dst += mats[i].n;
    }
}

/* Layer l, true-sequential: the layer's own steps (nn/layer.c) run window by window up to each step
 * that leaves a linear group's input; that input's Hessian is summed over every window, the group is
 * quantized, and the walk goes on with the quantized weights. A window resumes after the last step
 * that added to its residual stream, or after a stored output when one is kept. */
static rotq_status walk_layer(walk *c, int32_t l) {
    int64_t T = c->T, d = c->d;
    if (c->rf) keep_float_layer(c, l);
    int first = 0; /* the first step not yet folded into X */
    for (int s = 0; s < ROTQ_LAYER_STEPS; s++) {
        const rotq_step_info *info = rotq_layer_step_info((rotq_layer_step)s);
        bool last = s == ROTQ_LAYER_STEPS - 1;
        if (!info->feeds_linear && !last) continue;
        int64_t cols = 0;
        rotq_role group = ROLE_COUNT;
        const float *x = rotq_layer_step_output(c->r, l, (rotq_layer_step)s, &c->io, &cols, &group);
        if (x) memset(c->H, 0, (size_t)(cols * cols) * sizeof(double));
        if (x && c->rf) memset(c->G, 0, (size_t)(cols * cols) * sizeof(double));
        int64_t fcols;
        rotq_role fgroup;
        const float *xf = c->rf ? rotq_layer_step_output(c->rf, l, (rotq_layer_step)s, &c->iof, &fcols, &fgroup) : NULL;
        /* a stored output of an earlier step of this stretch lets the windows start after it */
        int resume = first;
        for (int k = s - 1; k >= first; k--)
            if (c->store[k]) { resume = k + 1; break; }
        /* several processes: each runs every ranks-th window; the sums are reduced before the quantizer */
        for (int64_t w = rotq_dist_rank_get(); w < c->ns; w += rotq_dist_size_get()) {
            c->io.x = c->X + w * T * d;
            if (resume > first) {
                int64_t kc;
                rotq_role kg;
                float *kept = rotq_layer_step_output(c->r, l, (rotq_layer_step)(resume - 1), &c->io, &kc, &kg);
                memcpy(kept, c->store[resume - 1] + w * T * kc, (size_t)(T * kc) * sizeof(float));
            }
            for (int k = resume; k <= s; k++) ROTQ_TRY(rotq_layer_step_run(c->r, l, (rotq_layer_step)k, &c->io));
            if (c->rf) { /* the float stream keeps no stored outputs: it runs from the stream */
                c->iof.x = c->Xf + w * T * d;
                for (int k = first; k <= s; k++) ROTQ_TRY(rotq_layer_step_run(c->rf, l, (rotq_layer_step)k, &c->iof));
            }
            if (!x) continue;
            gram_add(c, x, cols);
            if (xf) cross_add(c, xf, x, cols);
            if (c->store[s]) memcpy(c->store[s] + w * T * cols, x, (size_t)(T * cols) * sizeof(float));
        }
        for (int k = first; k <= s; k++)
            if (rotq_layer_step_info((rotq_layer_step)k)->updates_stream) first = k + 1;
        if (x) ROTQ_TRY(rotq_dist_sum_f64(c->H, cols * cols));
        if (x && c->rf) ROTQ_TRY(rotq_dist_sum_f64(c->G, cols * cols));
        if (x) ROTQ_TRY(quantize_group(c, l, cols, group));
    }
    return ROTQ_OK;
}

/* The output matrix by GPTQ too, when the plan gives an untied one a type
 * (rotq_quant_gptq_head): its Hessian from the final-normed states of the quantized network over the
 * same windows. */
static rotq_status quantize_head(walk *c) {
    rotq_tensor *head = rotq_quant_gptq_head(c->m, c->o, c->types);
    if (!head) return ROTQ_OK;
    if (head->dtype != ROTQ_F32 || !head->owned) return rotq_fail(ROTQ_ERR_ARG, "calib: %s is not an owned float32 tensor", head->name);
    int64_t T = c->T, d = c->d;
    memset(c->H, 0, (size_t)(d * d) * sizeof(double));
    for (int64_t w = rotq_dist_rank_get(); w < c->ns; w += rotq_dist_size_get()) {
        rotq_runner_norm(c->r, c->io.xn, c->X + w * T * d, c->r->final_norm, c->r->final_norm_b, T);
        ROTQ_TRY(rotq_runner_linear_input(c->r, -1, ROLE_LM_HEAD, c->io.xn, T, d));
        gram_add(c, c->io.xn, d);
    }
    ROTQ_TRY(rotq_dist_sum_f64(c->H, d * d));
    const rotq_role head_role = ROLE_LM_HEAD;
    return quantize_readers(c, -1, d, &head_role, 1);
}

rotq_status rotq_gptq_model(rotq_model *m, rotq_runner *r, rotq_runner *rf, const int32_t *windows, int64_t ns, int64_t T,
                            const rotq_quant_options *o, const rotq_dtype *types, rotq_quant_report *rep) {
    ROTQ_TRY(rotq_runner_check_ready(r));
    if (rf) ROTQ_TRY(rotq_runner_check_ready(rf));
    if ((rf != NULL) != rotq_wq_asym_fit(o->w_method))
        return rotq_fail(ROTQ_ERR_ARG, "calib: %s %s a float stream", rotq_wq_method_name(o->w_method), rf ? "takes no" : "needs");
    const rotq_hparams *hp = &r->hp;
    walk c;
    memset(&c, 0, sizeof c);
    c.m = m;
    c.r = r;
    c.o = o;
    c.rep = rep;
    c.types = types;
    c.rf = rf;
    for (int64_t i = 0; i < (types ? m->n_tensors : 1); i++) { /* each tensor's format, or the one scalar format */
        rotq_wq_format f;
        if (rotq_wq_format_for_tensor(o, types, i, &f)) ROTQ_TRY(rotq_wq_format_check(&f));
    }
    c.ns = ns;
    c.T = T;
    c.d = hp->hidden;
    c.qd = hp->n_heads * hp->head_dim;
    c.kvd = hp->n_kv_heads * hp->head_dim;
    c.ff = hp->intermediate;
    c.half = hp->rotary_dim / 2;
    if (ns <= 0 || T <= 0) return rotq_fail(ROTQ_ERR_ARG, "calib: %lld windows of %lld tokens", (long long)ns, (long long)T);
    for (int64_t i = 0; i < ns * T; i++)
        if (windows[i] < 0 || windows[i] >= hp->vocab)
            return rotq_fail(ROTQ_ERR_ARG, "calib: token id %d outside the vocabulary (%lld)", windows[i], (long long)hp->vocab);
    int64_t q_block = rotq_attention_block(T, hp->n_heads, T);
    int64_t hmax = c.d > c.qd ? c.d : c.qd;
    if (c.ff > hmax) hmax = c.ff;
    float *cos_t = NULL, *sin_t = NULL, *cos_l = NULL, *sin_l = NULL;
    rotq_layer_io *io = &c.io;
    io->T = T;
    io->pos0 = 0;
    struct { float **p; int64_t n; } bufs[] = {
        {&c.X, ns * T * c.d}, {&io->xn, T * c.d}, {&io->q, T * c.qd}, {&io->k_all, T * c.kvd}, {&io->v_all, T * c.kvd},
        {&io->att, T * c.qd}, {&io->ff1, T * c.ff}, {&io->ff2, T * c.ff}, {&io->scores, hp->n_heads * q_block * T},
        {&io->work, 2 * T * c.qd}, {&cos_t, T * c.half}, {&sin_t, T * c.half}, {&c.gram, hmax * hmax},
        {&cos_l, r->inv_freq_local ? T * c.half : 0}, {&sin_l, r->inv_freq_local ? T * c.half : 0},
    };
    rotq_status s = ROTQ_OK;
    for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++) {
        *bufs[i].p = malloc((size_t)(bufs[i].n > 0 ? bufs[i].n : 1) * sizeof(float));
        if (!*bufs[i].p) {
            s = rotq_fail(ROTQ_ERR_NOMEM, "calib: out of memory for %lld calibration floats", (long long)bufs[i].n);
            goto done;
        }
    }
    io->cos_t = cos_t;
    io->sin_t = sin_t;
    io->cos_l = r->inv_freq_local ? cos_l : NULL;
    io->sin_l = r->inv_freq_local ? sin_l : NULL;
    c.H = malloc((size_t)(hmax * hmax) * sizeof(double));
    if (!c.H) { s = rotq_fail(ROTQ_ERR_NOMEM, "calib: out of memory for a %lld² Hessian", (long long)hmax); goto done; }
    if (rf) {
        /* the float stream's own buffers (its K/V and scratch too: the streams run interleaved) */
        rotq_layer_io *f = &c.iof;
        *f = *io;
        f->xn = f->q = f->k_all = f->v_all = f->att = f->ff1 = f->ff2 = f->scores = f->work = NULL;
        struct { float **p; int64_t n; } fb[] = {
            {&c.Xf, ns * T * c.d}, {&f->xn, T * c.d}, {&f->q, T * c.qd}, {&f->k_all, T * c.kvd}, {&f->v_all, T * c.kvd},
            {&f->att, T * c.qd}, {&f->ff1, T * c.ff}, {&f->ff2, T * c.ff}, {&f->scores, hp->n_heads * q_block * T},
            {&f->work, 2 * T * c.qd}, {&c.fw, 2 * c.d * c.qd + 2 * c.kvd * c.d + 3 * c.ff * c.d},
        };
        for (size_t i = 0; i < sizeof fb / sizeof fb[0]; i++)
            if (!(*fb[i].p = malloc((size_t)(fb[i].n > 0 ? fb[i].n : 1) * sizeof(float)))) {
                s = rotq_fail(ROTQ_ERR_NOMEM, "calib: out of memory for the float stream (%lld floats)", (long long)fb[i].n);
                goto done;
            }
        c.G = malloc((size_t)(hmax * hmax) * sizeof(double));
        if (!c.G) { s = rotq_fail(ROTQ_ERR_NOMEM, "calib: out of memory for a %lld² cross term", (long long)hmax); goto done; }
    }
    /* keeping the attention outputs and the down_proj inputs saves recomputing them when the walk
     * goes on past them (a third of the calibration forward), when they fit in the cache budget */
    double budget = (double)o->calib_cache_mb * 1024.0 * 1024.0;
    double att_bytes = (double)(ns * T * c.qd) * sizeof(float), ff_bytes = (double)(ns * T * c.ff) * sizeof(float);
    if (att_bytes <= budget) c.store[ROTQ_STEP_ATTENTION] = malloc((size_t)att_bytes);
    if (c.store[ROTQ_STEP_ATTENTION]) budget -= att_bytes;
    if (ff_bytes <= budget) c.store[ROTQ_STEP_MLP_HIDDEN] = malloc((size_t)ff_bytes);

    if (r->pos_embed && T > hp->max_pos) {
        s = rotq_fail(ROTQ_ERR_ARG, "calib: windows of %lld tokens exceed the model's %lld learned positions", (long long)T,
                      (long long)hp->max_pos);
        goto done;
    }
    rotq_runner_rope_tables(r, 0, T, cos_t, sin_t, cos_l, sin_l);
    for (int64_t sm = 0; sm < ns; sm++) rotq_runner_embed(r, windows + sm * T, T, 0, c.X + sm * T * c.d);
    if (rf) memcpy(c.Xf, c.X, (size_t)(ns * T * c.d) * sizeof(float));

    double t_start = rotq_now_s();
    for (int32_t l = 0; l < hp->n_layers; l++) {
        double t0 = rotq_now_s(), q0 = c.t_quant, loss0 = rep->gptq_loss;
        c.losses[0] = 0;
        if ((s = rotq_check_cancel("gptq")) != ROTQ_OK || (s = walk_layer(&c, l)) != ROTQ_OK) goto done;
        if (o->verbose)
            rotq_log(ROTQ_LOG_INFO, "%s: layer %d/%lld  %.1f s (quantize %.1f s)  loss %.4g (%s)\n", rotq_wq_method_name(o->w_method),
                     l + 1, (long long)hp->n_layers, rotq_now_s() - t0, c.t_quant - q0, rep->gptq_loss - loss0, c.losses);
    }
    if ((s = quantize_head(&c)) != ROTQ_OK) goto done;
    rep->quant_seconds += c.t_quant;
    rep->calib_seconds += rotq_now_s() - t_start - c.t_quant;
    rep->calib_tokens = ns * T;
done:
    for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++) free(*bufs[i].p);
    free(c.H);
    for (int k = 0; k < ROTQ_LAYER_STEPS; k++) free(c.store[k]);
    if (rf) {
        float *fb[] = {c.Xf, c.iof.xn, c.iof.q, c.iof.k_all, c.iof.v_all, c.iof.att, c.iof.ff1, c.iof.ff2, c.iof.scores, c.iof.work, c.fw};
        for (size_t i = 0; i < sizeof fb / sizeof fb[0]; i++) free(fb[i]);
        free(c.G);
    }
    return s;
}
