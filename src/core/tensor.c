/* Tensor data access: float conversions and copy-on-write ownership. */
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "core/model.h"

int64_t rotq_tensor_numel(const rotq_tensor *t) {
    int64_t n = 1;
    for (int32_t d = 0; d < t->n_dims; d++) n *= t->shape[d];
    return n;
}

/* Only whole pages inside the tensor's own bytes are dropped; a read-only private file mapping
 * refills dropped pages from the file, so this never loses data (it only saves resident memory). */
void rotq_mapping_drop(const void *p, uint64_t n) {
    if (!p || n == 0) return;
    uintptr_t pg = (uintptr_t)sysconf(_SC_PAGESIZE);
    uintptr_t a = ((uintptr_t)p + pg - 1) & ~(pg - 1), b = ((uintptr_t)p + n) & ~(pg - 1);
    if (b > a) madvise((void *)a, b - a, MADV_DONTNEED);
}

void rotq_tensor_drop_source(const rotq_tensor *t) {
    if (t->mapped) rotq_mapping_drop(t->map_src, t->nbytes);
}

void rotq_tensor_adopt(rotq_tensor *t, void *data) {
    if (t->owned) free(t->data);
    t->data = data;
    t->owned = true;
    rotq_tensor_drop_source(t);
}

void rotq_tensor_set_codes(rotq_tensor *t, void *codes, void (*codes_free)(void *)) {
    if (t->codes && t->codes_free) t->codes_free(t->codes);
    t->codes = codes;
    t->codes_free = codes ? codes_free : NULL;
}

void rotq_tensor_release(rotq_tensor *t) {
    rotq_tensor_set_codes(t, NULL, NULL);
    if (t->owned) free(t->data);
    else rotq_tensor_drop_source(t);
    t->data = NULL;
    t->owned = false;
}

rotq_status rotq_tensor_make_owned(rotq_tensor *t) {
    if (t->owned) return ROTQ_OK;
    void *p = malloc(t->nbytes ? t->nbytes : 1);
    if (!p) return rotq_fail(ROTQ_ERR_NOMEM, "out of memory copying tensor %s (%llu bytes)", t->name,
                             (unsigned long long)t->nbytes);
    memcpy(p, t->data, t->nbytes);
    rotq_tensor_adopt(t, p);
    return ROTQ_OK;
}

rotq_status rotq_tensor_to_f32(const rotq_tensor *t, float *dst) {
    int64_t n = rotq_tensor_numel(t);
    switch (t->dtype) {
    case ROTQ_F32: memcpy(dst, t->data, (size_t)n * 4); return ROTQ_OK;
    case ROTQ_F16: { const uint16_t *s = t->data; for (int64_t i = 0; i < n; i++) dst[i] = rotq_f16_to_f32(s[i]); return ROTQ_OK; }
    case ROTQ_BF16: { const uint16_t *s = t->data; for (int64_t i = 0; i < n; i++) dst[i] = rotq_bf16_to_f32(s[i]); return ROTQ_OK; }
    case ROTQ_F64: { const double *s = t->data; for (int64_t i = 0; i < n; i++) dst[i] = (float)s[i]; return ROTQ_OK; }
    default: break;
    }
    rotq_status s = rotq_dequantize(t->dtype, t->data, dst, n);
    return s == ROTQ_OK ? s : rotq_fail_context(s, "tensor %s", t->name);
}

rotq_status rotq_tensor_to_f64(const rotq_tensor *t, double *dst) {
    int64_t n = rotq_tensor_numel(t);
    switch (t->dtype) {
    case ROTQ_F64: memcpy(dst, t->data, (size_t)n * 8); return ROTQ_OK;
    case ROTQ_F32: { const float *s = t->data; for (int64_t i = 0; i < n; i++) dst[i] = s[i]; return ROTQ_OK; }
    case ROTQ_F16: { const uint16_t *s = t->data; for (int64_t i = 0; i < n; i++) dst[i] = rotq_f16_to_f32(s[i]); return ROTQ_OK; }
    case ROTQ_BF16: { const uint16_t *s = t->data; for (int64_t i = 0; i < n; i++) dst[i] = rotq_bf16_to_f32(s[i]); return ROTQ_OK; }
    default: return rotq_fail(ROTQ_ERR_UNSUPPORTED, "tensor %s: %s is not a float type", t->name, rotq_dtype_name(t->dtype));
    }
}

rotq_status rotq_tensor_realloc(rotq_tensor *t, rotq_dtype dt, int32_t n_dims, const int64_t *shape) {
    if (!rotq_dtype_is_float(dt)) return rotq_fail(ROTQ_ERR_ARG, "tensor %s: cannot store as %s", t->name, rotq_dtype_name(dt));
    int64_t n = 1;
    for (int32_t d = 0; d < n_dims; d++) n *= shape[d];
    uint64_t nb = rotq_dtype_nbytes(dt, n);
    void *p = calloc(1, nb ? nb : 1);
    if (!p) return rotq_fail(ROTQ_ERR_NOMEM, "out of memory for tensor %s", t->name);
    rotq_tensor_drop_source(t);
    t->mapped = false;
    t->map_src = NULL;
    if (t->owned) free(t->data);
    t->data = p;
    t->owned = true;
    t->nbytes = nb;
    t->dtype = dt;
    t->n_dims = n_dims;
    for (int32_t d = 0; d < ROTQ_MAX_DIMS; d++) t->shape[d] = d < n_dims ? shape[d] : 0;
    return ROTQ_OK;
}

/* Stores n values into the tensor's float dtype; the tensor becomes owned first. */
static rotq_status store(rotq_tensor *t, const float *sf, const double *sd) {
    if (!rotq_dtype_is_float(t->dtype))
        return rotq_fail(ROTQ_ERR_UNSUPPORTED, "tensor %s: cannot write %s", t->name, rotq_dtype_name(t->dtype));
    ROTQ_TRY(rotq_tensor_make_owned(t));
    int64_t n = rotq_tensor_numel(t);
    for (int64_t i = 0; i < n; i++) {
        double v = sf ? sf[i] : sd[i];
        switch (t->dtype) {
        case ROTQ_F32: ((float *)t->data)[i] = (float)v; break;
        case ROTQ_F64: ((double *)t->data)[i] = v; break;
        case ROTQ_F16: ((uint16_t *)t->data)[i] = rotq_f32_to_f16((float)v); break;
        case ROTQ_BF16: ((uint16_t *)t->data)[i] = rotq_f32_to_bf16((float)v); break;
        default: break;
        }
    }
    return ROTQ_OK;
}

rotq_status rotq_tensor_set_f64(rotq_tensor *t, const double *src) { return store(t, NULL, src); }

rotq_status rotq_tensor_set_f32(rotq_tensor *t, const float *src, rotq_dtype dt) {
    if (dt != t->dtype) {
        int64_t shape[ROTQ_MAX_DIMS];
        memcpy(shape, t->shape, sizeof shape);
        ROTQ_TRY(rotq_tensor_realloc(t, dt, t->n_dims, shape));
    }
    return store(t, src, NULL);
}
