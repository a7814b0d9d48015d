/* Model description: construction, lookup, mappings and carried files. */
#include "core/model.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

rotq_model *rotq_model_new(void) {
    rotq_model *m = calloc(1, sizeof *m);
    if (!m) return NULL;
    m->hp.bos_id = m->hp.eos_id = -1;
    return m;
}

void rotq_meta_free(rotq_meta *kv) {
    free(kv->key);
    free(kv->str);
    if (kv->type == ROTQ_META_ARRAY && kv->arr_type == ROTQ_META_STRING && kv->arr) {
        char **s = kv->arr;
        for (uint64_t i = 0; i < kv->n; i++) free(s[i]);
    }
    free(kv->arr);
    free(kv->arr_str_len);
    memset(kv, 0, sizeof *kv);
}

void rotq_model_drop_codes(rotq_model *m) {
    for (int64_t i = 0; i < m->n_tensors; i++) rotq_tensor_set_codes(&m->tensors[i], NULL, NULL);
}

void rotq_model_free(rotq_model *m) {
    if (!m) return;
    rotq_model_free(m->vision); /* before the mappings its tensors point into */
    rotq_model_drop_codes(m);
    for (int64_t i = 0; i < m->n_tensors; i++)
        if (m->tensors[i].owned) free(m->tensors[i].data);
    free(m->tensors);
    for (int32_t i = 0; i < m->n_maps; i++) munmap(m->maps[i].addr, m->maps[i].size);
    if (m->hf_config) json_decref((json_t *)m->hf_config);
    for (int64_t i = 0; i < m->n_meta; i++) rotq_meta_free(&m->meta[i]);
    free(m->meta);
    for (int32_t i = 0; i < m->n_blobs; i++) free(m->blobs[i].data);
    free(m);
}

rotq_tensor *rotq_model_find(const rotq_model *m, const char *name) {
    for (int64_t i = 0; i < m->n_tensors; i++)
        if (strcmp(m->tensors[i].name, name) == 0) return &m->tensors[i];
    return NULL;
}

rotq_status rotq_model_add_tensor(rotq_model *m, const char *name, rotq_dtype dt, int32_t n_dims,
                                  const int64_t *shape, void *data, uint64_t nbytes, bool owned) {
    if (strlen(name) >= ROTQ_NAME_MAX)
        return rotq_fail(ROTQ_ERR_FORMAT, "tensor name too long (%zu bytes): %.64s...", strlen(name), name);
    if (n_dims < 0 || n_dims > ROTQ_MAX_DIMS)
        return rotq_fail(ROTQ_ERR_FORMAT, "tensor %s: %d dimensions (rotq handles 0..%d)", name, n_dims, ROTQ_MAX_DIMS);
    int64_t numel = 1;
    for (int32_t d = 0; d < n_dims; d++) {
        if (shape[d] <= 0 || shape[d] > ((int64_t)1 << 40))
            return rotq_fail(ROTQ_ERR_FORMAT, "tensor %s: dimension %d is %lld", name, d, (long long)shape[d]);
        if (numel > INT64_MAX / shape[d])
            return rotq_fail(ROTQ_ERR_FORMAT, "tensor %s: element count overflows", name);
        numel *= shape[d];
    }
    uint64_t want = rotq_dtype_nbytes(dt, numel);
    if (want == 0 || want != nbytes)
        return rotq_fail(ROTQ_ERR_FORMAT, "tensor %s: %s x %lld elements needs %llu bytes, file gives %llu",
                         name, rotq_dtype_name(dt), (long long)numel, (unsigned long long)want,
                         (unsigned long long)nbytes);
    if (rotq_model_find(m, name))
        return rotq_fail(ROTQ_ERR_FORMAT, "tensor %s appears twice", name);
    if (m->n_tensors == m->cap_tensors) {
        int64_t cap = m->cap_tensors ? 2 * m->cap_tensors : 64;
        rotq_tensor *t = realloc(m->tensors, (size_t)cap * sizeof *t);
        if (!t) return rotq_fail(ROTQ_ERR_NOMEM, "out of memory adding tensor %s", name);
        m->tensors = t;
        m->cap_tensors = cap;
    }
    rotq_tensor *t = &m->tensors[m->n_tensors++];
    memset(t, 0, sizeof *t);
    snprintf(t->name, sizeof t->name, "%s", name);
    t->dtype = dt;
    t->file_dtype = dt;
    t->n_dims = n_dims;
    for (int32_t d = 0; d < n_dims; d++) t->shape[d] = shape[d];
    t->data = data;
    t->nbytes = nbytes;
    t->owned = owned;
    for (int32_t i = 0; !owned && i < m->n_maps; i++) {
        uintptr_t a = (uintptr_t)m->maps[i].addr, p = (uintptr_t)data;
        if (p >= a && p - a <= m->maps[i].size && nbytes <= m->maps[i].size - (p - a)) {
            t->mapped = true;
            t->map_src = data;
        }
    }
    t->role = -1;
    t->layer = -1;
    return ROTQ_OK;
}

rotq_status rotq_model_add_blob(rotq_model *m, const char *name, const void *data, uint64_t size) {
    if (m->n_blobs >= ROTQ_MAX_BLOBS) return rotq_fail(ROTQ_ERR_ARG, "too many carried files (adding %s)", name);
    rotq_blob *b = &m->blobs[m->n_blobs];
    snprintf(b->name, sizeof b->name, "%s", name);
    b->data = malloc(size ? size : 1);
    if (!b->data) return rotq_fail(ROTQ_ERR_NOMEM, "out of memory reading %s", name);
    if (size) memcpy(b->data, data, size);
    b->size = size;
    m->n_blobs++;
    return ROTQ_OK;
}

const rotq_blob *rotq_model_blob(const rotq_model *m, const char *name) {
    for (int32_t i = 0; i < m->n_blobs; i++)
        if (strcmp(m->blobs[i].name, name) == 0) return &m->blobs[i];
    return NULL;
}

/* ---- typed reads of metadata values (one set for every reader: hparams, tokenizers, export) ---- */

bool rotq_meta_int(const rotq_meta *kv, int64_t *out) {
    if (!kv) return false;
    switch (kv->type) {
    case ROTQ_META_U8: case ROTQ_META_U16: case ROTQ_META_U32: case ROTQ_META_U64:
        if (kv->v.u > INT64_MAX) return false;
        *out = (int64_t)kv->v.u;
        return true;
    case ROTQ_META_I8: case ROTQ_META_I16: case ROTQ_META_I32: case ROTQ_META_I64:
        *out = kv->v.i;
        return true;
    default:
        return false;
    }
}

bool rotq_meta_number(const rotq_meta *kv, double *out) {
    if (!kv) return false;
    switch (kv->type) {
    case ROTQ_META_U8: case ROTQ_META_U16: case ROTQ_META_U32: case ROTQ_META_U64: *out = (double)kv->v.u; return true;
    case ROTQ_META_I8: case ROTQ_META_I16: case ROTQ_META_I32: case ROTQ_META_I64: *out = (double)kv->v.i; return true;
    case ROTQ_META_F32: case ROTQ_META_F64: *out = kv->v.f; return true;
    case ROTQ_META_BOOL: *out = kv->v.b; return true;
    default: return false;
    }
}

bool rotq_meta_bool(const rotq_meta *kv, bool dflt) {
    if (!kv) return dflt;
    if (kv->type == ROTQ_META_BOOL) return kv->v.b;
    int64_t v;
    return rotq_meta_int(kv, &v) ? v != 0 : dflt;
}

bool rotq_meta_arr_int(const rotq_meta *kv, uint64_t i, int64_t *out) {
    const uint8_t *p = kv->arr;
    switch (kv->arr_type) {
    case ROTQ_META_I8: *out = (int8_t)p[i]; return true;
    case ROTQ_META_U8: *out = p[i]; return true;
    case ROTQ_META_I16: { int16_t v; memcpy(&v, p + 2 * i, 2); *out = v; return true; }
    case ROTQ_META_U16: { uint16_t v; memcpy(&v, p + 2 * i, 2); *out = v; return true; }
    case ROTQ_META_I32: { int32_t v; memcpy(&v, p + 4 * i, 4); *out = v; return true; }
    case ROTQ_META_U32: { uint32_t v; memcpy(&v, p + 4 * i, 4); *out = v; return true; }
    case ROTQ_META_I64: { int64_t v; memcpy(&v, p + 8 * i, 8); *out = v; return true; }
    case ROTQ_META_U64: { uint64_t v; memcpy(&v, p + 8 * i, 8); if (v > INT64_MAX) return false; *out = (int64_t)v; return true; }
    default: return false;
    }
}

bool rotq_meta_arr_num(const rotq_meta *kv, uint64_t i, double *out) {
    const uint8_t *p = kv->arr;
    switch (kv->arr_type) {
    case ROTQ_META_F32: { float x; memcpy(&x, p + 4 * i, 4); *out = x; return true; }
    case ROTQ_META_F64: { double x; memcpy(&x, p + 8 * i, 8); *out = x; return true; }
    case ROTQ_META_U64: { uint64_t x; memcpy(&x, p + 8 * i, 8); *out = (double)x; return true; }
    default: {
        int64_t v;
        if (!rotq_meta_arr_int(kv, i, &v)) return false;
        *out = (double)v;
        return true;
    }
    }
}

const rotq_meta *rotq_model_meta(const rotq_model *m, const char *key) {
    for (int64_t i = 0; i < m->n_meta; i++)
        if (m->meta[i].key && strcmp(m->meta[i].key, key) == 0) return &m->meta[i];
    return NULL;
}

rotq_status rotq_model_map_file(rotq_model *m, const char *path, const uint8_t **base, uint64_t *size) {
    if (m->n_maps >= ROTQ_MAX_MAPS) return rotq_fail(ROTQ_ERR_ARG, "%s: too many files mapped (max %d)", path, ROTQ_MAX_MAPS);
    int fd = open(path, O_RDONLY);
    if (fd < 0) return rotq_fail(ROTQ_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        close(fd);
        return rotq_fail(ROTQ_ERR_IO, "%s: not a regular file", path);
    }
    if (st.st_size == 0) {
        close(fd);
        return rotq_fail(ROTQ_ERR_FORMAT, "%s: file is empty", path);
    }
    /* MAP_PRIVATE: writes (never intended) could not reach the input file. */
    void *p = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
    close(fd);
    if (p == MAP_FAILED) return rotq_fail(ROTQ_ERR_IO, "%s: mmap failed: %s", path, strerror(errno));
    m->maps[m->n_maps].addr = p;
    m->maps[m->n_maps].size = (uint64_t)st.st_size;
    m->n_maps++;
    *base = p;
    *size = (uint64_t)st.st_size;
    return ROTQ_OK;
}

int64_t rotq_model_n_tensors(const rotq_model *m) { return m->n_tensors; }
const char *rotq_model_quantization(const rotq_model *m) { return m->quant_desc; }

rotq_status rotq_model_hparams(const rotq_model *m, rotq_hparams *out) {
    *out = m->hp;
    return ROTQ_OK;
}

rotq_status rotq_model_tensor_f32(const rotq_model *m, const char *name, float *out, int64_t n_out) {
    const rotq_tensor *t = rotq_model_find(m, name);
    if (!t) return rotq_fail(ROTQ_ERR_NOT_FOUND, "no tensor named %s", name);
    if (rotq_tensor_numel(t) != n_out)
        return rotq_fail(ROTQ_ERR_ARG, "tensor %s has %lld elements, buffer %lld", name,
                         (long long)rotq_tensor_numel(t), (long long)n_out);
    return rotq_tensor_to_f32(t, out);
}

int64_t rotq_model_n_params(const rotq_model *m) {
    int64_t n = 0;
    for (int64_t i = 0; i < m->n_tensors; i++) n += rotq_tensor_numel(&m->tensors[i]);
    return n;
}
