/* Sessions: a loaded model made runnable. The one place that composes the runner's transforms, in
 * the order the computation needs them:
 *
 *   1. the model's recorded online rotations (R3, R4) — always, first: they are part of its function
 *   2. run-time quantizers: activations at linear inputs, K after RoPE (and R3), V
 *   3. integer products where the weights sit on a grid the codes can express
 *   4. statistics, when asked (after the online rotations: what a quantizer would be given, or with
 *      quantizers on, what they produced)
 *
 * and the entry points every command uses: logits, perplexity, greedy generation, comparison. */
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/clock.h"
#include "eval/eval.h"
#include "eval/stats.h"
#include "eval/verify.h"
#include "io/image.h"
#include "quant/quant.h"
#include "rotate/online.h"

struct rotq_session {
    const rotq_model *m;
    rotq_runner *r;
    rotq_fakequant fq;            /* run-time quantizers (referenced by the runner's transforms) */
    rotq_runner *vr;              /* the vision tower's runner, when m has one */
    rotq_fakequant vfq;           /* ... and its activation quantizers (no KV cache there) */
    rotq_quant_options vq;
    bool vq_on;
    int vision_threads;
    rotq_quant_options fileq;     /* the file's own activation scheme (compressed-tensors), when no options say */
    rotq_int_linears *ints;       /* weight codes when products run in integers */
    rotq_act_stats stats;         /* when options.stats */
    bool has_stats;
    char products[512];
    char transforms[2048];
};

rotq_session_options rotq_session_defaults(void) {
    rotq_session_options o;
    memset(&o, 0, sizeof o);
    return o;
}

/* Integer products need a symmetric per-channel weight grid and per-token activation codes; the
 * reason they do not run is kept for the report. */
static void choose_products(rotq_session *s, const rotq_quant_options *q, bool float_products) {
    snprintf(s->products, sizeof s->products, "float");
    if (!q || float_products) return;
    bool w_ok = q->w_method != ROTQ_WQ_NONE && !rotq_quant_has_types(q) && q->w_bits < 16 && !q->w_asym && q->w_group <= 0 &&
                q->w_num == ROTQ_NUM_INT;
    bool a_ok = rotq_act_on(&q->act) && q->act.group <= 0 && q->act.num == ROTQ_NUM_INT;
    if (!w_ok || !a_ok) {
        snprintf(s->products, sizeof s->products,
                 "float (integer products need per-channel symmetric integer weights and per-token integer activations)");
        return;
    }
    if (rotq_int_linears_build(s->r, q->w_bits, &s->ints) == ROTQ_OK && rotq_fakequant_use_ints(&s->fq, s->ints) == ROTQ_OK) {
        int64_t n = rotq_int_linears_count(s->ints), from = rotq_int_linears_from_codes(s->ints);
        snprintf(s->products, sizeof s->products, "int (%lld linears: exact int32 sums of W%d x A%d codes, scaled once; "
                 "weight codes %s)", (long long)n, q->w_bits, q->act.bits,
                 from == n ? "as quantized" : from == 0 ? "recovered from the stored weights" : "partly recovered");
        return;
    }
    snprintf(s->products, sizeof s->products, "float (%s)", rotq_last_error());
    rotq_int_linears_free(s->ints);
    s->ints = NULL;
}

rotq_status rotq_session_new(const rotq_model *m, const rotq_session_options *o, rotq_session **out) {
    *out = NULL;
    rotq_session_options def = rotq_session_defaults();
    if (!o) o = &def;
    if (o->quant) ROTQ_TRY(rotq_quant_options_check(o->quant));
    rotq_session *s = calloc(1, sizeof *s);
    if (!s) return rotq_fail(ROTQ_ERR_NOMEM, "session: out of memory");
    rotq_session_options with_file;
    if (!o->quant && rotq_act_on(&m->file_act)) {
        /* a file that says its runtime quantizes activations (compressed-tensors W8A8, ...) runs so here too */
        s->fileq = rotq_quant_defaults();
        s->fileq.act = m->file_act;
        if (m->file_w_bits > 0) { /* the weights' grid: integer products from the codes the stored weights hold */
            s->fileq.w_method = ROTQ_WQ_RTN;
            s->fileq.w_bits = m->file_w_bits;
            s->fileq.w_group = m->file_w_group > 0 ? m->file_w_group : -1;
        }
        with_file = *o;
        with_file.quant = &s->fileq;
        o = &with_file;
    }
    s->m = m;
    rotq_status st = rotq_runner_new(m, o->threads, &s->r);
    if (st == ROTQ_OK) st = rotq_online_attach(s->r);
    snprintf(s->products, sizeof s->products, "float");
    if (st == ROTQ_OK && o->quant) {
        /* fakequant_attach adds a transform only where a quantizer is on */
        s->fq = rotq_quant_fakequant(o->quant, m);
        choose_products(s, o->quant, o->float_products);
        st = rotq_fakequant_attach(s->r, &s->fq);
    }
    if (st == ROTQ_OK && m->vision) {
        /* the vision tower runs (and takes its float copies of weights) only when an image comes */
        s->vision_threads = o->threads;
        s->vq_on = o->quant != NULL;
        if (o->quant) s->vq = *o->quant;
    }
    if (st == ROTQ_OK && o->stats) {
        st = rotq_act_stats_init(&s->stats, m->hp.n_layers);
        s->has_stats = st == ROTQ_OK;
        rotq_transform t = rotq_act_stats_transform(&s->stats);
        if (st == ROTQ_OK) st = rotq_runner_add_transform(s->r, &t);
    }
    if (st != ROTQ_OK) { rotq_session_free(s); return st; }
    rotq_runner_describe(s->r, s->transforms, sizeof s->transforms);
    *out = s;
    return ROTQ_OK;
}

void rotq_session_free(rotq_session *s) {
    if (!s) return;
    rotq_runner_free(s->r);
    rotq_fakequant_release(&s->fq);
    rotq_runner_free(s->vr);
    rotq_fakequant_release(&s->vfq);
    rotq_int_linears_free(s->ints);
    if (s->has_stats) rotq_act_stats_free(&s->stats);
    free(s);
}

const char *rotq_session_transforms(const rotq_session *s) { return s->transforms; }
const char *rotq_session_products(const rotq_session *s) { return s->products; }
int rotq_session_threads(const rotq_session *s) { return s->r->threads; }
int rotq_threads_resolve(int threads) { return threads > 0 ? threads : omp_get_max_threads(); }

rotq_status rotq_session_logits(rotq_session *s, const int32_t *ids, int64_t T, float *logits) {
    if (!ids || !logits || T <= 0) return rotq_fail(ROTQ_ERR_ARG, "session: logits of %lld tokens", (long long)T);
    float *hidden = malloc((size_t)(T * s->r->hp.hidden) * sizeof *hidden);
    if (!hidden) return rotq_fail(ROTQ_ERR_NOMEM, "session: out of memory for %lld tokens", (long long)T);
    rotq_status st = rotq_nn_forward(s->r, ids, T, NULL, hidden);
    if (st == ROTQ_OK) st = rotq_nn_logits(s->r, hidden, T, logits);
    free(hidden);
    return st;
}

rotq_status rotq_session_ppl(rotq_session *s, const int32_t *ids, int64_t n, const rotq_ppl_options *o,
                             rotq_ppl_result *out) {
    return rotq_ppl_eval(s->r, ids, n, o, out);
}

static int32_t argmax(const float *x, int64_t n) {
    int64_t best = 0;
    for (int64_t i = 1; i < n; i++)
        if (x[i] > x[best]) best = i;
    return (int32_t)best;
}

/* Greedy steps from the prompt's logits: up to n_new tokens into out (logits_out, when given, gets the logits
 * each was chosen from), each fed back through the KV cache — as a token, or (pos given: M-RoPE prompts) as
 * its embedding in x [1, d] at position *pos in all three components, *pos advancing. */
static rotq_status greedy_steps(rotq_session *s, rotq_kv_cache *cache, float *logits, float *hidden, float *x, int64_t *pos,
                                int64_t n_new, int32_t stop_id, int32_t *out, int64_t *n_out, float *logits_out,
                                rotq_token_fn on_token, void *ctx) {
    int64_t V = s->r->hp.vocab;
    rotq_status st = ROTQ_OK;
    while (st == ROTQ_OK && *n_out < n_new) {
        int32_t next = argmax(logits, V);
        if (logits_out) memcpy(logits_out + *n_out * V, logits, sizeof(float) * (size_t)V);
        out[(*n_out)++] = next;
        if ((on_token && !on_token(ctx, next)) || next == stop_id || *n_out == n_new) break;
        if (pos) {
            int64_t p3[3] = {*pos, *pos, *pos};
            (*pos)++;
            rotq_runner_embed(s->r, &next, 1, 0, x);
            st = rotq_nn_forward_embeds(s->r, x, p3, 1, cache, hidden);
        } else {
            st = rotq_nn_forward(s->r, &next, 1, cache, hidden);
        }
        if (st == ROTQ_OK) st = rotq_nn_logits(s->r, hidden, 1, logits);
    }
    return st;
}

rotq_status rotq_session_generate(rotq_session *s, const int32_t *prompt, int64_t n_prompt, int64_t n_new,
                                  int32_t stop_id, int32_t *out, int64_t *n_out, double *prompt_seconds,
                                  rotq_token_fn on_token, void *ctx) {
    *n_out = 0;
    if (prompt_seconds) *prompt_seconds = 0.0;
    if (!prompt || n_prompt <= 0 || n_new < 0)
        return rotq_fail(ROTQ_ERR_ARG, "generate: a prompt of %lld tokens, %lld to generate", (long long)n_prompt,
                         (long long)n_new);
    const rotq_runner *r = s->r;
    int64_t d = r->hp.hidden, V = r->hp.vocab, cap = n_prompt + n_new;
    if (r->hp.max_pos > 0 && cap > r->hp.max_pos)
        return rotq_fail(ROTQ_ERR_ARG, "generate: %lld prompt + %lld new tokens exceed the model's %lld positions",
                         (long long)n_prompt, (long long)n_new, (long long)r->hp.max_pos);
    if (n_new == 0) return ROTQ_OK;
    rotq_kv_cache *cache = NULL;
    float *hidden = malloc((size_t)(n_prompt * d) * sizeof *hidden), *logits = malloc((size_t)V * sizeof *logits);
    rotq_status st = hidden && logits ? rotq_kv_cache_new(r, cap, &cache) : rotq_fail(ROTQ_ERR_NOMEM, "generate: out of memory");
    /* the prompt in one pass, then one token at a time through the KV cache */
    double t0 = rotq_now_s();
    if (st == ROTQ_OK) st = rotq_nn_forward(s->r, prompt, n_prompt, cache, hidden);
    if (st == ROTQ_OK) st = rotq_nn_logits(r, hidden + (n_prompt - 1) * d, 1, logits);
    if (prompt_seconds) *prompt_seconds = rotq_now_s() - t0;
    if (st == ROTQ_OK) st = greedy_steps(s, cache, logits, hidden, NULL, NULL, n_new, stop_id, out, n_out, NULL, on_token, ctx);
    rotq_kv_cache_free(cache);
    free(hidden);
    free(logits);
    return st;
}

/* Qwen2-VL's M-RoPE positions of a prompt whose image tokens are ids[img0 .. img0 + n_img): text before the
 * image counts up in all three components; image token (h, w) of a gh×gw grid (merged units) sits at
 * (s, s + h, s + w) after the text start s; text after continues from s + max(gh, gw), as transformers does. */
static int64_t mrope_positions(int64_t T, int64_t img0, int64_t n_img, int64_t gh, int64_t gw, int64_t *pos3) {
    int64_t next = 0;
    for (int64_t t = 0; t < T; t++) {
        int64_t p[3];
        if (t >= img0 && t < img0 + n_img) {
            int64_t i = t - img0, st = img0;
            p[0] = st + i / (gh * gw), p[1] = st + i % (gh * gw) / gw, p[2] = st + i % gw;
            if (t == img0 + n_img - 1) next = st + (gh > gw ? gh : gw); /* transformers: + max(h, w) (merged units) */
        } else {
            p[0] = p[1] = p[2] = next++;
        }
        for (int c = 0; c < 3; c++) pos3[c * T + t] = p[c];
    }
    return next;
}

rotq_status rotq_session_generate_image(rotq_session *s, const rotq_image *img, const int32_t *prompt, int64_t n_prompt,
                                        int64_t n_new, int32_t stop_id, int32_t *out, int64_t *n_out, float *logits_out,
                                        double *prompt_seconds, rotq_token_fn on_token, void *ctx) {
    *n_out = 0;
    if (prompt_seconds) *prompt_seconds = 0.0;
    const rotq_model *m = s->m;
    if (!m->vision) return rotq_fail(ROTQ_ERR_UNSUPPORTED, "%s: architecture %s has no vision tower: it cannot read an image",
                                     m->source_path, m->arch ? m->arch->name : "?");
    if (!img || !prompt || n_prompt <= 0 || n_new < 0)
        return rotq_fail(ROTQ_ERR_ARG, "generate: an image, a prompt of %lld tokens, %lld to generate", (long long)n_prompt,
                         (long long)n_new);
    if (!s->vr) {
        /* the vision tower: its own online rotations; activations quantized as the language model's (no KV cache there) */
        rotq_status st = rotq_runner_new(m->vision, s->vision_threads, &s->vr);
        if (st == ROTQ_OK) st = rotq_online_attach(s->vr);
        if (st == ROTQ_OK && s->vq_on) {
            s->vq.k.bits = s->vq.v.bits = 16;
            s->vfq = rotq_quant_fakequant(&s->vq, m->vision);
            st = rotq_fakequant_attach(s->vr, &s->vfq);
        }
        if (st != ROTQ_OK) {
            rotq_runner_free(s->vr);
            s->vr = NULL;
            return st;
        }
    }
    int32_t marker = m->vis.image_token;
    int64_t at = -1;
    for (int64_t t = 0; t < n_prompt; t++)
        if (prompt[t] == marker) {
            if (at >= 0) return rotq_fail(ROTQ_ERR_ARG, "generate: the prompt holds the image token %d more than once (one image per prompt)", marker);
            at = t;
        }
    if (marker < 0) return rotq_fail(ROTQ_ERR_FORMAT, "%s: config.json names no image_token_id", m->source_path);
    if (at < 0) {
        /* no marker: the image goes first, framed as the chat template frames it */
        if (m->vis.vision_start < 0 || m->vis.vision_end < 0)
            return rotq_fail(ROTQ_ERR_ARG, "generate: the prompt has no image token (id %d) to put the image at", marker);
        int32_t *p2 = malloc(sizeof(int32_t) * (size_t)(n_prompt + 3));
        if (!p2) return rotq_fail(ROTQ_ERR_NOMEM, "generate: out of memory");
        p2[0] = m->vis.vision_start, p2[1] = marker, p2[2] = m->vis.vision_end;
        memcpy(p2 + 3, prompt, sizeof(int32_t) * (size_t)n_prompt);
        rotq_status st = rotq_session_generate_image(s, img, p2, n_prompt + 3, n_new, stop_id, out, n_out, logits_out,
                                                     prompt_seconds, on_token, ctx);
        free(p2);
        return st;
    }
    const rotq_runner *r = s->r;
    int64_t d = r->hp.hidden, V = r->hp.vocab, grid[3];
    float *patches = NULL, *feats = NULL, *x = NULL, *hidden = NULL, *logits = NULL;
    int64_t *pos3 = NULL;
    int32_t *ids = NULL;
    rotq_kv_cache *cache = NULL;
    double t0 = rotq_now_s();
    rotq_status st = rotq_image_patches(&m->vis, img, &patches, grid);
    int64_t mm = m->vis.merge * m->vis.merge, n_img = st == ROTQ_OK ? grid[0] * grid[1] * grid[2] / mm : 0;
    int64_t T = n_prompt - 1 + n_img, cap = T + n_new;
    if (st == ROTQ_OK && r->hp.max_pos > 0 && cap > r->hp.max_pos)
        st = rotq_fail(ROTQ_ERR_ARG, "generate: %lld prompt tokens (with %lld for the image) + %lld new exceed the model's %lld "
                       "positions", (long long)T, (long long)n_img, (long long)n_new, (long long)r->hp.max_pos);
    if (st == ROTQ_OK) {
        feats = malloc(sizeof(float) * (size_t)(n_img * d));
        x = malloc(sizeof(float) * (size_t)(T * d));
        hidden = malloc(sizeof(float) * (size_t)(T * d));
        logits = malloc(sizeof(float) * (size_t)V);
        pos3 = malloc(sizeof(int64_t) * (size_t)(3 * (T > 1 ? T : 1)));
        ids = malloc(sizeof(int32_t) * (size_t)T);
        if (!feats || !x || !hidden || !logits || !pos3 || !ids) st = rotq_fail(ROTQ_ERR_NOMEM, "generate: out of memory");
    }
    if (st == ROTQ_OK) st = rotq_nn_vision_forward(s->vr, patches, grid[0], grid[1], grid[2], feats);
    int64_t next = 0;
    if (st == ROTQ_OK) {
        /* the processor's expansion: one marker per merged patch; their embeddings are the tower's output */
        for (int64_t t = 0; t < T; t++) ids[t] = t < at ? prompt[t] : t < at + n_img ? marker : prompt[t - n_img + 1];
        rotq_runner_embed(r, ids, T, 0, x);
        memcpy(x + at * d, feats, sizeof(float) * (size_t)(n_img * d));
        next = mrope_positions(T, at, n_img, grid[1] / m->vis.merge, grid[2] / m->vis.merge, pos3);
        st = rotq_kv_cache_new(r, cap, &cache);
    }
    if (st == ROTQ_OK) st = rotq_nn_forward_embeds(s->r, x, pos3, T, cache, hidden);
    if (st == ROTQ_OK) st = rotq_nn_logits(r, hidden + (T - 1) * d, 1, logits);
    if (prompt_seconds) *prompt_seconds = rotq_now_s() - t0;
    if (st == ROTQ_OK)
        st = greedy_steps(s, cache, logits, hidden, x, &next, n_new, stop_id, out, n_out, logits_out, on_token, ctx);
    rotq_kv_cache_free(cache);
    free(patches), free(feats), free(x), free(hidden), free(logits), free(pos3), free(ids);
    return st;
}

const rotq_model *rotq_model_vision(const rotq_model *m, rotq_vision_info *info) {
    if (info && m->vision)
        *info = (rotq_vision_info){.patch = m->vis.patch, .temporal_patch = m->vis.temporal_patch, .merge = m->vis.merge,
                                   .out_hidden = m->vis.out_hidden, .min_pixels = m->vis.min_pixels,
                                   .max_pixels = m->vis.max_pixels, .image_token = m->vis.image_token,
                                   .vision_start = m->vis.vision_start, .vision_end = m->vis.vision_end};
    return m->vision;
}

rotq_status rotq_model_image_patches(const rotq_model *m, const rotq_image *img, float **patches, int64_t *rows,
                                     int64_t *cols, int64_t grid[3]) {
    *patches = NULL;
    if (!m->vision) return rotq_fail(ROTQ_ERR_UNSUPPORTED, "%s: the model has no vision tower", m->source_path);
    ROTQ_TRY(rotq_image_patches(&m->vis, img, patches, grid));
    *rows = grid[0] * grid[1] * grid[2];
    *cols = m->vision->hp.vocab;
    return ROTQ_OK;
}

rotq_status rotq_session_compare(rotq_session *a, rotq_session *b, const int32_t *ids, int64_t T,
                                 rotq_verify_result *out) {
    return rotq_verify_runners(a->r, b->r, ids, T, out);
}

rotq_status rotq_session_site_stats(const rotq_session *s, int32_t layer, rotq_site site, rotq_site_summary *out) {
    if (!s->has_stats) return rotq_fail(ROTQ_ERR_ARG, "session: statistics were not asked for (rotq_session_options.stats)");
    if (layer < 0 || layer >= s->stats.n_layers || (int)site < 0 || site >= ROTQ_N_SITES)
        return rotq_fail(ROTQ_ERR_ARG, "session: no statistics for layer %d, site %d", layer, (int)site);
    const rotq_site_stats *st = &s->stats.s[layer * ROTQ_N_SITES + site];
    *out = (rotq_site_summary){.max_over_rms = rotq_site_max_over_rms(st), .kurtosis = rotq_site_kurtosis(st),
                               .max_abs = st->max_abs, .count = st->count};
    return ROTQ_OK;
}
