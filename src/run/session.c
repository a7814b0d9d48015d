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
#include "quant/quant.h"
#include "rotate/online.h"

struct rotq_session {
    const rotq_model *m;
    rotq_runner *r;
    rotq_fakequant fq;            /* run-time quantizers (referenced by the runner's transforms) */
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
    while (st == ROTQ_OK && *n_out < n_new) {
        int32_t next = argmax(logits, V);
        out[(*n_out)++] = next;
        if ((on_token && !on_token(ctx, next)) || next == stop_id || *n_out == n_new) break;
        st = rotq_nn_forward(s->r, &next, 1, cache, hidden);
        if (st == ROTQ_OK) st = rotq_nn_logits(r, hidden, 1, logits);
    }
    rotq_kv_cache_free(cache);
    free(hidden);
    free(logits);
    return st;
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
