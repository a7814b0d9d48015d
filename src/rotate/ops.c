/* Weight operations built on rotations (the seed framework's AutoOperation): rotate a linear's
 * input (W ← W·R), its output (W ← Rᵀ·W, b ← Rᵀ·b), an embedding's output (E ← E·R), and centre
 * outputs — in double, stored back in the tensor's float dtype, chunk by chunk so a large tensor
 * never needs a full double copy.
 *
 * Everything reduces to "apply R to contiguous rows": W·R acts on each row of W, and Rᵀ·W on each
 * column w_j as (w_jᵀ·R)ᵀ, so the output side gathers panels of columns into rows.
 * Quantized tensors are dequantized and come back as F32 (rotq has no way to requantize here).
 */
#include <stdlib.h>
#include <string.h>

#include "arch/arch.h"
#include "rotate/rotate.h"

#define CHUNK_ELEMS (INT64_C(1) << 22) /* doubles per working buffer (32 MiB) */
#define PANEL 64                       /* columns gathered per output-side pass */

rotq_rotate_opts rotq_rotate_defaults(void) {
    rotq_rotate_opts o = {0};
    return o;
}

static void read_span(const rotq_tensor *t, int64_t at, int64_t count, double *dst) {
    switch (t->dtype) {
    case ROTQ_F64: memcpy(dst, (const double *)t->data + at, sizeof(double) * (size_t)count); break;
    case ROTQ_F32: { const float *s = (const float *)t->data + at; for (int64_t i = 0; i < count; i++) dst[i] = s[i]; break; }
    case ROTQ_F16: { const uint16_t *s = (const uint16_t *)t->data + at; for (int64_t i = 0; i < count; i++) dst[i] = rotq_f16_to_f32(s[i]); break; }
    case ROTQ_BF16: { const uint16_t *s = (const uint16_t *)t->data + at; for (int64_t i = 0; i < count; i++) dst[i] = rotq_bf16_to_f32(s[i]); break; }
    default: break;
    }
}

/* Same rounding as rotq_tensor_set_f64: double → float → 16-bit. */
static void write_span(rotq_tensor *t, int64_t at, int64_t count, const double *src) {
    switch (t->dtype) {
    case ROTQ_F64: memcpy((double *)t->data + at, src, sizeof(double) * (size_t)count); break;
    case ROTQ_F32: { float *d = (float *)t->data + at; for (int64_t i = 0; i < count; i++) d[i] = (float)src[i]; break; }
    case ROTQ_F16: { uint16_t *d = (uint16_t *)t->data + at; for (int64_t i = 0; i < count; i++) d[i] = rotq_f32_to_f16((float)src[i]); break; }
    case ROTQ_BF16: { uint16_t *d = (uint16_t *)t->data + at; for (int64_t i = 0; i < count; i++) d[i] = rotq_f32_to_bf16((float)src[i]); break; }
    default: break;
    }
}

/* Makes the tensor writable in a float dtype: owned copy; quantized data becomes F32. */
static rotq_status prepare(rotq_tensor *t) {
    if (t->dtype == ROTQ_F32 || t->dtype == ROTQ_F16 || t->dtype == ROTQ_BF16 || t->dtype == ROTQ_F64)
        return rotq_tensor_make_owned(t);
    int64_t n = rotq_tensor_numel(t);
    float *f = malloc(sizeof(float) * (size_t)(n ? n : 1));
    if (!f) return rotq_fail(ROTQ_ERR_NOMEM, "rotate: out of memory dequantizing %s", t->name);
    rotq_status st = rotq_tensor_to_f32(t, f);
    if (st == ROTQ_OK) st = rotq_tensor_set_f32(t, f, ROTQ_F32);
    free(f);
    return st;
}

static rotq_status check_rot(const rotq_tensor *t, const rotq_rotation *R, int64_t len, bool block, const char *what) {
    if (!R) return rotq_fail(ROTQ_ERR_ARG, "%s %s: no rotation given", what, t->name);
    if (block ? (len % R->n != 0) : (len != R->n))
        return rotq_fail(ROTQ_ERR_ARG, "%s %s: dimension %lld does not match the rotation size %lld%s", what, t->name,
                         (long long)len, (long long)R->n, block ? " (block-diagonal: must be a multiple)" : "");
    return ROTQ_OK;
}

/* x ← x·R (or x·Rᵀ) for every row of a [rows, cols] tensor, cols a multiple of R->n. */
static rotq_status rotate_rows(rotq_tensor *t, int64_t rows, int64_t cols, const rotq_rotation *R, bool inverse) {
    ROTQ_TRY(prepare(t));
    if (rows <= 0 || cols <= 0) return ROTQ_OK;
    int64_t chunk_rows = CHUNK_ELEMS / cols;
    if (chunk_rows < 1) chunk_rows = 1;
    if (chunk_rows > rows) chunk_rows = rows;
    double *buf = malloc(sizeof(double) * (size_t)(chunk_rows * cols));
    if (!buf) return rotq_fail(ROTQ_ERR_NOMEM, "rotate %s: out of memory", t->name);
    rotq_status st = ROTQ_OK;
    for (int64_t r0 = 0; r0 < rows && st == ROTQ_OK; r0 += chunk_rows) {
        int64_t nr = rows - r0 < chunk_rows ? rows - r0 : chunk_rows;
        read_span(t, r0 * cols, nr * cols, buf);
        st = rotq_rotation_apply_rows_f64(R, buf, nr * cols / R->n, inverse);
        if (st == ROTQ_OK) write_span(t, r0 * cols, nr * cols, buf);
    }
    free(buf);
    return st;
}

rotq_status rotq_rotate_linear_input(rotq_tensor *W, const rotq_rotation *R, const rotq_rotate_opts *o) {
    rotq_rotate_opts d = rotq_rotate_defaults();
    if (!o) o = &d;
    if (!W || W->n_dims != 2) return rotq_fail(ROTQ_ERR_ARG, "rotate_input %s: a linear weight [out, in] is 2-D", W ? W->name : "(null)");
    ROTQ_TRY(check_rot(W, R, W->shape[1], o->block_diag, "rotate_input"));
    return rotate_rows(W, W->shape[0], W->shape[1], R, o->inverse);
}

rotq_status rotq_rotate_embedding_output(rotq_tensor *E, const rotq_rotation *R, const rotq_rotate_opts *o) {
    rotq_rotate_opts d = rotq_rotate_defaults();
    if (!o) o = &d;
    if (!E || E->n_dims != 2) return rotq_fail(ROTQ_ERR_ARG, "rotate embedding %s: an embedding [vocab, d] is 2-D", E ? E->name : "(null)");
    ROTQ_TRY(check_rot(E, R, E->shape[1], o->block_diag, "rotate embedding"));
    return rotate_rows(E, E->shape[0], E->shape[1], R, o->inverse);
}

static rotq_status row_range(const rotq_tensor *t, const rotq_rotate_opts *o, int64_t rows, int64_t *rb, int64_t *re) {
    *rb = o->row_begin;
    *re = o->row_end ? o->row_end : rows;
    if (*rb < 0 || *re > rows || *rb >= *re)
        return rotq_fail(ROTQ_ERR_ARG, "%s: row range [%lld, %lld) outside [0, %lld)", t->name, (long long)o->row_begin,
                         (long long)o->row_end, (long long)rows);
    return ROTQ_OK;
}

static rotq_status rotate_bias(rotq_tensor *b, int64_t rb, int64_t re, const rotq_rotation *R, bool inverse, bool block) {
    if (b->n_dims != 1 || b->shape[0] < re)
        return rotq_fail(ROTQ_ERR_ARG, "rotate_output bias %s: shape does not cover rows [%lld, %lld)", b->name,
                         (long long)rb, (long long)re);
    ROTQ_TRY(check_rot(b, R, re - rb, block, "rotate_output bias"));
    ROTQ_TRY(prepare(b));
    int64_t len = re - rb;
    double *v = malloc(sizeof(double) * (size_t)len);
    if (!v) return rotq_fail(ROTQ_ERR_NOMEM, "rotate %s: out of memory", b->name);
    read_span(b, rb, len, v);
    rotq_status st = rotq_rotation_apply_rows_f64(R, v, len / R->n, inverse);
    if (st == ROTQ_OK) write_span(b, rb, len, v);
    free(v);
    return st;
}

rotq_status rotq_rotate_linear_output(rotq_tensor *W, rotq_tensor *bias, const rotq_rotation *R, const rotq_rotate_opts *o) {
    rotq_rotate_opts d = rotq_rotate_defaults();
    if (!o) o = &d;
    if (!W || W->n_dims < 2)
        return rotq_fail(ROTQ_ERR_ARG, "rotate_output %s: a weight [out, ...] needs 2+ dimensions", W ? W->name : "(null)");
    int64_t rows = W->shape[0], cols = rotq_tensor_numel(W) / (rows ? rows : 1), rb, re;
    ROTQ_TRY(row_range(W, o, rows, &rb, &re));
    int64_t len = re - rb;
    ROTQ_TRY(check_rot(W, R, len, o->block_diag, "rotate_output"));
    ROTQ_TRY(prepare(W));
    double *panel = malloc(sizeof(double) * (size_t)(PANEL * len));
    double *line = malloc(sizeof(double) * PANEL);
    if (!panel || !line) { free(panel); free(line); return rotq_fail(ROTQ_ERR_NOMEM, "rotate_output %s: out of memory", W->name); }
    rotq_status st = ROTQ_OK;
    for (int64_t j0 = 0; j0 < cols && st == ROTQ_OK; j0 += PANEL) {
        int64_t pw = cols - j0 < PANEL ? cols - j0 : PANEL;
        /* panel row p = column j0+p of W restricted to rows [rb, re) */
        for (int64_t i = 0; i < len; i++) {
            read_span(W, (rb + i) * cols + j0, pw, line);
            for (int64_t p = 0; p < pw; p++) panel[p * len + i] = line[p];
        }
        st = rotq_rotation_apply_rows_f64(R, panel, pw * len / R->n, o->inverse);
        if (st != ROTQ_OK) break;
        for (int64_t i = 0; i < len; i++) {
            for (int64_t p = 0; p < pw; p++) line[p] = panel[p * len + i];
            write_span(W, (rb + i) * cols + j0, pw, line);
        }
    }
    free(panel);
    free(line);
    if (st == ROTQ_OK && bias) st = rotate_bias(bias, rb, re, R, o->inverse, o->block_diag);
    return st;
}

rotq_status rotq_center_output(rotq_tensor *t, rotq_tensor *bias, const rotq_rotate_opts *o) {
    rotq_rotate_opts d = rotq_rotate_defaults();
    if (!o) o = &d;
    if (!t || t->n_dims < 1) return rotq_fail(ROTQ_ERR_ARG, "center_output: no tensor");
    bool embedding = t->role == ROLE_EMBED || t->role == ROLE_POS_EMBED;
    ROTQ_TRY(prepare(t));
    if (embedding || t->n_dims == 1) {
        /* each row (an embedding vector, or the whole bias) loses its mean over the features */
        int64_t cols = t->shape[t->n_dims - 1], rows = rotq_tensor_numel(t) / (cols ? cols : 1);
        double *v = malloc(sizeof(double) * (size_t)(cols ? cols : 1));
        if (!v) return rotq_fail(ROTQ_ERR_NOMEM, "center_output %s: out of memory", t->name);
        for (int64_t r = 0; r < rows; r++) {
            read_span(t, r * cols, cols, v);
            double s = 0.0;
            for (int64_t i = 0; i < cols; i++) s += v[i];
            s /= (double)cols;
            for (int64_t i = 0; i < cols; i++) v[i] -= s;
            write_span(t, r * cols, cols, v);
        }
        free(v);
        return ROTQ_OK;
    }
    int64_t rows = t->shape[0], cols = rotq_tensor_numel(t) / (rows ? rows : 1), rb, re;
    ROTQ_TRY(row_range(t, o, rows, &rb, &re));
    int64_t len = re - rb;
    double *mean = calloc((size_t)cols, sizeof(double)), *line = malloc(sizeof(double) * (size_t)cols);
    if (!mean || !line) { free(mean); free(line); return rotq_fail(ROTQ_ERR_NOMEM, "center_output %s: out of memory", t->name); }
    for (int64_t i = rb; i < re; i++) {
        read_span(t, i * cols, cols, line);
        for (int64_t j = 0; j < cols; j++) mean[j] += line[j];
    }
    for (int64_t j = 0; j < cols; j++) mean[j] /= (double)len;
    for (int64_t i = rb; i < re; i++) {
        read_span(t, i * cols, cols, line);
        for (int64_t j = 0; j < cols; j++) line[j] -= mean[j];
        write_span(t, i * cols, cols, line);
    }
    free(mean);
    free(line);
    if (bias) {
        if (bias->n_dims != 1 || bias->shape[0] < re)
            return rotq_fail(ROTQ_ERR_ARG, "center_output bias %s: shape does not cover rows [%lld, %lld)", bias->name,
                             (long long)rb, (long long)re);
        ROTQ_TRY(prepare(bias));
        double *b = malloc(sizeof(double) * (size_t)len);
        if (!b) return rotq_fail(ROTQ_ERR_NOMEM, "center_output %s: out of memory", bias->name);
        read_span(bias, rb, len, b);
        double s = 0.0;
        for (int64_t i = 0; i < len; i++) s += b[i];
        s /= (double)len;
        for (int64_t i = 0; i < len; i++) b[i] -= s;
        write_span(bias, rb, len, b);
        free(b);
    }
    return ROTQ_OK;
}

rotq_status rotq_op_rotate(rotq_tensor *t, rotq_tensor *bias, rotq_rotate_side side, const rotq_rotation *R,
                           const rotq_rotate_opts *o) {
    if (!t) return rotq_fail(ROTQ_ERR_ARG, "rotate: no tensor");
    rotq_rotate_opts d = rotq_rotate_defaults();
    if (!o) o = &d;
    if (side == ROTQ_CENTER_OUTPUT) return rotq_center_output(t, bias, o);
    if (side != ROTQ_ROTATE_INPUT && side != ROTQ_ROTATE_OUTPUT)
        return rotq_fail(ROTQ_ERR_ARG, "rotate %s: unknown side %d", t->name, (int)side);
    bool embedding = t->role == ROLE_EMBED || t->role == ROLE_POS_EMBED;
    if (t->n_dims == 1) {
        /* a bias (or any vector on the output side) on its own: b ← Rᵀ·b */
        if (side != ROTQ_ROTATE_OUTPUT) return rotq_fail(ROTQ_ERR_ARG, "rotate_input %s: a 1-D tensor has no input side", t->name);
        int64_t rb, re;
        ROTQ_TRY(row_range(t, o, t->shape[0], &rb, &re));
        return rotate_bias(t, rb, re, R, o->inverse, o->block_diag);
    }
    if (embedding) {
        /* E ← E·R: the embedding's output; the same product is the input side of a head tied to it */
        if (bias) return rotq_fail(ROTQ_ERR_ARG, "rotate embedding %s: embeddings have no bias", t->name);
        return rotq_rotate_embedding_output(t, R, o);
    }
    if (side == ROTQ_ROTATE_INPUT) {
        if (t->n_dims != 2) return rotq_fail(ROTQ_ERR_ARG, "rotate_input %s: %d-D weights are not handled", t->name, t->n_dims);
        return rotq_rotate_linear_input(t, R, o);
    }
    return rotq_rotate_linear_output(t, bias, R, o);
}
