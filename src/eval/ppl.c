/* Perplexity: windows over one token stream, next-token negative log-likelihood summed in double. */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "eval/eval.h"
#include "core/clock.h"
#include "core/dist.h"

/* Rows of lm_head output held at once: [rows, vocab] floats (25 MB for a 49k vocabulary). */
#define LOGIT_ROWS 128

/* Adds -log p(win[s+1] | win[..s]) for rows s in [s0, s1) of hidden [L, d]. */
static rotq_status score_rows(const rotq_runner *r, const float *hidden, const int32_t *win, int64_t s0, int64_t s1,
                              float *logits, double *lse, double *nll) {
    int64_t d = r->hp.hidden, V = r->hp.vocab;
    for (int64_t a = s0; a < s1; a += LOGIT_ROWS) {
        int64_t rows = s1 - a < LOGIT_ROWS ? s1 - a : LOGIT_ROWS;
        ROTQ_TRY(rotq_nn_logits(r, hidden + a * d, rows, logits));
        r->be->logsumexp_rows(logits, rows, V, lse);
        for (int64_t i = 0; i < rows; i++) {
            double term = lse[i] - (double)logits[i * V + win[a + i + 1]];
            if (term != term || term > 1e30)
                return rotq_fail(ROTQ_ERR_NUMERIC, "ppl: log-likelihood is not finite at window row %lld",
                                 (long long)(a + i));
            *nll += term;
        }
    }
    return ROTQ_OK;
}

rotq_status rotq_ppl_eval(rotq_runner *r, const int32_t *ids, int64_t n, const rotq_ppl_options *o, rotq_ppl_result *out) {
    memset(out, 0, sizeof *out);
    int64_t ctx = o->ctx;
    if (ctx < 2) return rotq_fail(ROTQ_ERR_ARG, "ppl: window length %lld must be at least 2", (long long)ctx);
    if (n < 0) return rotq_fail(ROTQ_ERR_ARG, "ppl: negative token count");
    bool llamacpp = o->protocol == ROTQ_PPL_LLAMACPP;
    bool bos_first = llamacpp ? o->add_bos : o->bos == ROTQ_BOS_FIRST;
    bool bos_window = llamacpp ? o->add_bos : o->bos == ROTQ_BOS_EVERY;
    if ((bos_first || bos_window) && (o->bos_id < 0 || o->bos_id >= r->hp.vocab))
        return rotq_fail(ROTQ_ERR_ARG, "ppl: the BOS policy needs a BOS token, and the model's (%d) is unknown or "
                         "outside the vocabulary", o->bos_id);

    /* The stream the windows cut: the text, after one BOS when the policy puts it first. */
    int64_t n_stream = n + (bos_first ? 1 : 0);
    int32_t *stream = malloc((size_t)(n_stream > 0 ? n_stream : 1) * sizeof *stream);
    if (!stream) return rotq_fail(ROTQ_ERR_NOMEM, "ppl: out of memory for %lld tokens", (long long)n_stream);
    if (bos_first) stream[0] = o->bos_id;
    if (n) memcpy(stream + (bos_first ? 1 : 0), ids, (size_t)n * sizeof *ids);

    /* papers + every: each window is BOS + ctx-1 text tokens; otherwise ctx stream tokens. */
    bool papers_every = !llamacpp && bos_window;
    int64_t step = papers_every ? ctx - 1 : ctx;
    int64_t available = n_stream / step;
    int64_t n_windows = o->max_windows > 0 && o->max_windows < available ? o->max_windows : available;
    out->n_windows_available = available;
    out->n_stream = n_stream;
    if (n_windows == 0) {
        free(stream);
        return rotq_fail(ROTQ_ERR_ARG, "ppl: the text has %lld tokens, fewer than one window of %lld", (long long)n_stream,
                         (long long)ctx);
    }

    int64_t d = r->hp.hidden;
    int32_t *win = malloc((size_t)ctx * sizeof *win);
    float *hidden = malloc((size_t)(ctx * d) * sizeof(float));
    float *logits = malloc((size_t)(LOGIT_ROWS * r->hp.vocab) * sizeof(float));
    double *lse = malloc(LOGIT_ROWS * sizeof(double));
    rotq_status s = ROTQ_OK;
    if (!win || !hidden || !logits || !lse) { s = rotq_fail(ROTQ_ERR_NOMEM, "ppl: out of memory for a window"); goto done; }

    double t0 = rotq_now_s(), nll = 0.0;
    int64_t scored = 0, rank = rotq_dist_rank_get(), ranks = rotq_dist_size_get();
    /* several processes: each takes every ranks-th window; the sums are reduced below */
    for (int64_t w = rank; w < n_windows; w += ranks) {
        if (papers_every) {
            win[0] = o->bos_id;
            memcpy(win + 1, stream + w * step, (size_t)(ctx - 1) * sizeof *win);
        } else {
            memcpy(win, stream + w * step, (size_t)ctx * sizeof *win);
            if (llamacpp && bos_window) win[0] = o->bos_id;
        }
        if ((s = rotq_nn_forward(r, win, ctx, NULL, hidden)) != ROTQ_OK) goto done;
        /* rows whose next-token prediction counts */
        int64_t first = llamacpp ? ctx / 2 : 0;
        if ((s = score_rows(r, hidden, win, first, ctx - 1, logits, lse, &nll)) != ROTQ_OK) goto done;
        scored += ctx - 1 - first;
        out->n_windows = w + 1;
        out->n_processed += ctx;
        if (o->progress) o->progress(o->progress_ctx, w + 1, n_windows, nll, scored, rotq_now_s() - t0);
    }
    if (ranks > 1) {
        int64_t counts[2] = {scored, out->n_processed};
        if ((s = rotq_dist_sum_f64(&nll, 1)) != ROTQ_OK || (s = rotq_dist_sum_i64(counts, 2)) != ROTQ_OK) goto done;
        scored = counts[0], out->n_processed = counts[1], out->n_windows = n_windows;
    }
    out->seconds = rotq_now_s() - t0;
    out->nll = nll;
    out->n_scored = scored;
    out->ppl = exp(nll / (double)scored);
done:
    free(stream);
    free(win);
    free(hidden);
    free(logits);
    free(lse);
    return s;
}

rotq_status rotq_text_join_rows(const uint8_t *data, uint64_t size, char **out, uint64_t *out_len) {
    *out = NULL;
    *out_len = 0;
    /* worst case: every byte a row ("x\n" + "\n\n" per byte) */
    uint64_t cap = size * 4 + 1;
    char *s = malloc(cap);
    if (!s) return rotq_fail(ROTQ_ERR_NOMEM, "text: out of memory for %llu bytes", (unsigned long long)size);
    uint64_t o = 0, i = 0;
    bool first = true;
    while (i < size) {
        uint64_t j = i;
        while (j < size && data[j] != '\n') j++;
        uint64_t end = j;
        if (end > i && data[end - 1] == '\r') end--;
        if (!first) { s[o++] = '\n'; s[o++] = '\n'; }
        first = false;
        memcpy(s + o, data + i, end - i);
        o += end - i;
        /* a row is a line with its "\n"; an empty line is an empty row, as in the HF dataset */
        if (end > i) s[o++] = '\n';
        i = j < size ? j + 1 : j;
    }
    s[o] = 0;
    *out = s;
    *out_len = o;
    return ROTQ_OK;
}
