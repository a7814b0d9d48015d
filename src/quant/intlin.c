/* Integer products for the simulated W4A4/W4A8 runs: the decoder linears' weights as codes (their
 * quantizer's, or recovered from dequantized values for a checkpoint loaded from disk), and the fake-quant hook mode that hands each linear the codes of its
 * input instead of fake-quantized floats. The result is the exact integer sum a deployed kernel
 * forms, scaled once; the float path rounds every product and partial sum. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "backend/igemm.h"
#include "quant/quant.h"

enum { SLOT_Q, SLOT_K, SLOT_V, SLOT_O, SLOT_GATE, SLOT_UP, SLOT_DOWN, N_SLOTS };

struct rotq_int_linears {
    int64_t n_layers, n_linears;
    int64_t n_from_codes;   /* linears packed from their quantizer's codes (the others: recovered) */
    rotq_igemm_weights **w; /* [n_layers][N_SLOTS], NULL where the model has no such linear */
};

static int slot_of(rotq_role role) {
    switch (role) {
    case ROLE_Q: return SLOT_Q;
    case ROLE_K: return SLOT_K;
    case ROLE_V: return SLOT_V;
    case ROLE_O: return SLOT_O;
    case ROLE_GATE: return SLOT_GATE;
    case ROLE_UP: return SLOT_UP;
    case ROLE_DOWN: return SLOT_DOWN;
    default: return -1;
    }
}

/* Codes of one row on the symmetric grid [-2^(b-1), 2^(b-1)-1]: w[i] = s·q[i]. The largest |q| is
 * unknown (a clipped row may not reach the grid's end), so each candidate k gives s = max|w|/k
 * and is kept when every value sits on that grid to float precision. Any k that fits gives the
 * same products. */
static bool row_codes(const float *w, int64_t n, int32_t bits, int8_t *q, float *s) {
    int32_t qmin = -(1 << (bits - 1)), qmax = (1 << (bits - 1)) - 1;
    double m = 0.0;
    for (int64_t i = 0; i < n; i++) m = fmax(m, fabs((double)w[i]));
    if (!isfinite(m)) return false;
    if (m == 0.0) {
        memset(q, 0, (size_t)n);
        *s = 1.0f;
        return true;
    }
    for (int32_t k = -qmin; k >= 1; k--) {
        double sc = m / k, tol = 4e-6 * m;
        bool ok = true;
        for (int64_t i = 0; i < n && ok; i++) {
            double c = nearbyint((double)w[i] / sc);
            if (c < qmin || c > qmax || fabs(c * sc - (double)w[i]) > tol) ok = false;
            else q[i] = (int8_t)c;
        }
        if (ok) {
            *s = (float)sc;
            return true;
        }
    }
    return false;
}

/* The quantizer's codes for a slot's rows, when the tensor carries codes of these bits: the tensor
 * of the slot's role, or its fused form (Phi-3's qkv and gate_up, rows at an offset). */
static const rotq_qweight *slot_codes(const rotq_runner *r, int32_t l, int slot, int32_t bits, int64_t *row0) {
    const rotq_hparams *hp = &r->hp;
    int64_t qd = hp->n_heads * hp->head_dim, kvd = hp->n_kv_heads * hp->head_dim;
    static const rotq_role own[N_SLOTS] = {ROLE_Q, ROLE_K, ROLE_V, ROLE_O, ROLE_GATE, ROLE_UP, ROLE_DOWN};
    const rotq_tensor *t = rotq_model_role(r->model, own[slot], l);
    *row0 = 0;
    if (!t && slot <= SLOT_V) {
        t = rotq_model_role(r->model, ROLE_QKV, l);
        *row0 = slot == SLOT_Q ? 0 : slot == SLOT_K ? qd : qd + kvd;
    } else if (!t && (slot == SLOT_GATE || slot == SLOT_UP)) {
        t = rotq_model_role(r->model, ROLE_GATE_UP, l);
        *row0 = slot == SLOT_GATE ? 0 : hp->intermediate;
    }
    const rotq_qweight *c = t ? t->codes : NULL;
    return c && c->bits == bits ? c : NULL;
}

/* Integer codes and per-row scales of one linear: its quantizer's codes when it left them, else
 * recovered from the float values (a quantized checkpoint loaded from disk). */
static rotq_status pack_linear(const float *w, const rotq_qweight *codes, int64_t row0, int64_t rows, int64_t cols,
                               int32_t bits, const char *what, int32_t layer, rotq_igemm_weights **out) {
    int8_t *q = malloc((size_t)(rows * cols));
    float *s = malloc((size_t)rows * sizeof(float));
    rotq_status st = ROTQ_OK;
    if (!q || !s) st = rotq_fail(ROTQ_ERR_NOMEM, "quant: out of memory for integer weights");
    if (st == ROTQ_OK && codes) {
        st = rotq_qweight_int8(codes, row0, rows, q, s);
        if (st != ROTQ_OK) st = rotq_fail_context(st, "layer %d %s", layer, what);
        if (st == ROTQ_OK) st = rotq_igemm_pack(q, s, rows, cols, out);
        free(q);
        free(s);
        return st;
    }
    int64_t bad = INT64_MAX; /* the first row off the grid */
#pragma omp parallel for schedule(static) reduction(min : bad) if (st == ROTQ_OK && rows * cols > 65536)
    for (int64_t r = 0; r < rows; r++)
        if (st == ROTQ_OK && !row_codes(w + r * cols, cols, bits, q + r * cols, s + r) && r < bad) bad = r;
    if (st == ROTQ_OK && bad != INT64_MAX)
        st = rotq_fail(ROTQ_ERR_UNSUPPORTED, "quant: layer %d %s row %lld is not on a symmetric %d-bit grid with one scale "
                       "per row", layer, what, (long long)bad, bits);
    if (st == ROTQ_OK) st = rotq_igemm_pack(q, s, rows, cols, out);
    free(q);
    free(s);
    return st;
}

rotq_status rotq_int_linears_build(const rotq_runner *r, int32_t w_bits, rotq_int_linears **out) {
    *out = NULL;
    /* 8-bit grids reach −128, outside the codes igemm takes (|q| <= 127) */
    if (w_bits < 2 || w_bits > 7) return rotq_fail(ROTQ_ERR_ARG, "quant: integer weights of %d bits (2..7)", w_bits);
    const rotq_hparams *hp = &r->hp;
    int64_t d = hp->hidden, ff = hp->intermediate, qd = hp->n_heads * hp->head_dim, kvd = hp->n_kv_heads * hp->head_dim;
    rotq_int_linears *il = calloc(1, sizeof *il);
    if (il) il->w = calloc((size_t)(hp->n_layers * N_SLOTS), sizeof *il->w);
    if (!il || !il->w) {
        rotq_int_linears_free(il);
        return rotq_fail(ROTQ_ERR_NOMEM, "quant: out of memory");
    }
    il->n_layers = hp->n_layers;
    for (int32_t l = 0; l < hp->n_layers; l++) {
        const rotq_layer_weights *w = &r->layers[l];
        struct { int slot; const float *p; int64_t rows, cols; const char *what; } lin[N_SLOTS] = {
            {SLOT_Q, w->wq, qd, d, "q_proj"},       {SLOT_K, w->wk, kvd, d, "k_proj"},     {SLOT_V, w->wv, kvd, d, "v_proj"},
            {SLOT_O, w->wo, d, qd, "o_proj"},       {SLOT_GATE, w->wgate, ff, d, "gate_proj"},
            {SLOT_UP, w->wup, ff, d, "up_proj"},    {SLOT_DOWN, w->wdown, d, ff, "down_proj"},
        };
        for (int i = 0; i < N_SLOTS; i++) {
            if (!lin[i].p) continue;
            int64_t row0;
            const rotq_qweight *codes = slot_codes(r, l, lin[i].slot, w_bits, &row0);
            rotq_status s = pack_linear(lin[i].p, codes, row0, lin[i].rows, lin[i].cols, w_bits, lin[i].what, l,
                                        &il->w[l * N_SLOTS + lin[i].slot]);
            il->n_from_codes += codes != NULL;
            if (s != ROTQ_OK) {
                rotq_int_linears_free(il);
                return s;
            }
            il->n_linears++;
        }
    }
    *out = il;
    return ROTQ_OK;
}

void rotq_int_linears_free(rotq_int_linears *il) {
    if (!il) return;
    if (il->w)
        for (int64_t i = 0; i < il->n_layers * N_SLOTS; i++) rotq_igemm_free(il->w[i]);
    free(il->w);
    free(il);
}

int64_t rotq_int_linears_count(const rotq_int_linears *il) { return il ? il->n_linears : 0; }
int64_t rotq_int_linears_from_codes(const rotq_int_linears *il) { return il ? il->n_from_codes : 0; }

rotq_status rotq_fakequant_use_ints(rotq_fakequant *fq, const rotq_int_linears *il) {
    if (il && (!rotq_act_on(&fq->act) || fq->act.group > 0))
        return rotq_fail(ROTQ_ERR_ARG, "quant: integer products need per-token activation quantization");
    fq->ints = il;
    fq->code_layer = -1;
    return ROTQ_OK;
}

void rotq_fakequant_release(rotq_fakequant *fq) {
    free(fq->codes);
    free(fq->code_scale);
    free(fq->code_zero);
    fq->codes = NULL;
    fq->code_scale = NULL;
    fq->code_zero = NULL;
    fq->code_cap = fq->code_rows_cap = 0;
    fq->code_layer = -1;
}

rotq_status rotq_fakequant_int_input(rotq_fakequant *fq, int32_t layer, const float *x, int64_t rows, int64_t cols) {
    if (rows * cols > fq->code_cap) {
        free(fq->codes);
        fq->codes = malloc((size_t)(rows * cols));
        fq->code_cap = fq->codes ? rows * cols : 0;
    }
    if (rows > fq->code_rows_cap) {
        free(fq->code_scale);
        free(fq->code_zero);
        fq->code_scale = malloc((size_t)rows * sizeof(float));
        fq->code_zero = malloc((size_t)rows * sizeof(int32_t));
        fq->code_rows_cap = fq->code_scale && fq->code_zero ? rows : 0;
    }
    if (!fq->code_cap || !fq->code_rows_cap) return rotq_fail(ROTQ_ERR_NOMEM, "quant: out of memory for activation codes");
    fq->code_layer = -1;
    rotq_status s = rotq_act_codes(x, rows, cols, &fq->act, fq->codes, fq->code_scale, fq->code_zero);
    if (s != ROTQ_OK) return rotq_fail_context(s, "layer %d, a linear input", layer);
    fq->code_layer = layer;
    fq->code_rows = rows;
    fq->code_cols = cols;
    fq->calls++;
    return ROTQ_OK;
}

rotq_status rotq_fakequant_int_product(void *ctx, int32_t layer, rotq_role role, const float *x, int64_t rows, int64_t n_in,
                                       float *out, int64_t n_out, const float *b, bool accumulate, bool *done) {
    (void)x;
    rotq_fakequant *fq = ctx;
    int slot = slot_of(role);
    const rotq_int_linears *il = fq->ints;
    if (!il || slot < 0 || layer < 0 || layer >= il->n_layers || !il->w[layer * N_SLOTS + slot]) return ROTQ_OK;
    const rotq_igemm_weights *w = il->w[layer * N_SLOTS + slot];
    /* the codes must be this input's: the runner calls a group's linear_input right before its products */
    if (fq->code_layer != layer || fq->code_rows != rows || fq->code_cols != n_in || rotq_igemm_n_in(w) != n_in ||
        rotq_igemm_n_out(w) != n_out)
        return rotq_fail(ROTQ_ERR_ARG, "quant: layer %d %s: integer product without the codes of its input", layer,
                         rotq_role_name(role));
    rotq_fakequant_backend(fq)->int_linear(out, fq->codes, fq->code_scale, fq->code_zero, rows, rotq_act_code_max(&fq->act), w, b, accumulate);
    fq->int_products++;
    *done = true;
    return ROTQ_OK;
}
