/* GGUF v2/v3 reader (the v3 writer is gguf_write.c).
 *
 * Layout (little-endian): "GGUF", u32 version, u64 n_tensors, u64 n_kv, n_kv x (string key,
 * u32 type, value), n_tensors x (string name, u32 n_dims, u64 ne[n_dims] innermost first,
 * u32 ggml_type, u64 offset), padding to general.alignment, tensor data (offsets relative to
 * the data section, each aligned). Strings are u64 length + bytes (no NUL).
 *
 * The reader trusts nothing: every count, length, dimension and offset is checked against the
 * file before use. Float tensors point into the mmap; block-quantized ones are dequantized to
 * owned F32. llama.cpp's Q/K row permutation is undone so the model is held in HF convention.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "io/gguf_format.h"
#include "io/record.h"
#include "arch/arch.h"
#include "core/model.h"


/* ------------------------------------------------------------------------------------------ */
/* reading                                                                                    */

typedef struct gguf_reader {
    const uint8_t *base;
    uint64_t size, pos;
    const char *path;
} gguf_reader;

/* `what` and `name` describe the field for the error message (name may be ""). */
static rotq_status need(gguf_reader *r, uint64_t n, const char *what, const char *name) {
    if (n > r->size - r->pos)
        return rotq_fail(ROTQ_ERR_FORMAT, "%s: truncated: %s%s%s needs %llu bytes at offset %llu, file has %llu",
                         r->path, what, name[0] ? " " : "", name, (unsigned long long)n,
                         (unsigned long long)r->pos, (unsigned long long)r->size);
    return ROTQ_OK;
}

static rotq_status rd(gguf_reader *r, void *out, uint64_t n, const char *what, const char *name) {
    ROTQ_TRY(need(r, n, what, name));
    memcpy(out, r->base + r->pos, n);
    r->pos += n;
    return ROTQ_OK;
}

static rotq_status rd_u32(gguf_reader *r, uint32_t *v, const char *what, const char *name) {
    return rd(r, v, 4, what, name);
}

static rotq_status rd_u64(gguf_reader *r, uint64_t *v, const char *what, const char *name) {
    return rd(r, v, 8, what, name);
}

/* A string in place (not NUL-terminated). */
static rotq_status rd_str(gguf_reader *r, const uint8_t **p, uint64_t *len, const char *what, const char *name) {
    ROTQ_TRY(rd_u64(r, len, what, name));
    ROTQ_TRY(need(r, *len, what, name));
    *p = r->base + r->pos;
    r->pos += *len;
    return ROTQ_OK;
}

static char *dup_bytes(const uint8_t *p, uint64_t len) {
    char *s = malloc(len + 1);
    if (!s) return NULL;
    if (len) memcpy(s, p, len);
    s[len] = 0;
    return s;
}

static const char *meta_type_name(uint32_t t) {
    static const char *names[] = {"u8", "i8", "u16", "i16", "u32", "i32", "f32", "bool",
                                  "string", "array", "u64", "i64", "f64"};
    return t < sizeof names / sizeof names[0] ? names[t] : "unknown";
}


/* Widens one little-endian scalar at p into kv->v. */
static void widen_scalar(rotq_meta *kv, uint32_t t, const uint8_t *p) {
    switch (t) {
    case ROTQ_META_U8: kv->v.u = p[0]; break;
    case ROTQ_META_I8: kv->v.i = (int8_t)p[0]; break;
    case ROTQ_META_BOOL: kv->v.b = p[0] != 0; break;
    case ROTQ_META_U16: { uint16_t x; memcpy(&x, p, 2); kv->v.u = x; break; }
    case ROTQ_META_I16: { int16_t x; memcpy(&x, p, 2); kv->v.i = x; break; }
    case ROTQ_META_U32: { uint32_t x; memcpy(&x, p, 4); kv->v.u = x; break; }
    case ROTQ_META_I32: { int32_t x; memcpy(&x, p, 4); kv->v.i = x; break; }
    case ROTQ_META_F32: { float x; memcpy(&x, p, 4); kv->v.f = x; break; }
    case ROTQ_META_U64: { uint64_t x; memcpy(&x, p, 8); kv->v.u = x; break; }
    case ROTQ_META_I64: { int64_t x; memcpy(&x, p, 8); kv->v.i = x; break; }
    case ROTQ_META_F64: { double x; memcpy(&x, p, 8); kv->v.f = x; break; }
    default: break;
    }
}

static rotq_status read_value(gguf_reader *r, rotq_meta *kv, uint32_t type) {
    const char *key = kv->key;
    kv->type = (rotq_meta_type)type;
    kv->n = 1;
    if (type == ROTQ_META_STRING) {
        const uint8_t *p;
        uint64_t len;
        ROTQ_TRY(rd_str(r, &p, &len, "string value of key", key));
        if (!(kv->str = dup_bytes(p, len))) return rotq_fail(ROTQ_ERR_NOMEM, "%s: out of memory reading key %s", r->path, key);
        return ROTQ_OK;
    }
    if (type != ROTQ_META_ARRAY) {
        uint64_t sz = gguf_meta_scalar_size(type);
        if (!sz)
            return rotq_fail(ROTQ_ERR_FORMAT, "%s: key %s has unknown value type %u (GGUF types are 0..12)", r->path, key, type);
        ROTQ_TRY(need(r, sz, "value of key", key));
        if (type == ROTQ_META_BOOL && r->base[r->pos] > 1)
            return rotq_fail(ROTQ_ERR_FORMAT, "%s: key %s is a bool holding %u (must be 0 or 1)", r->path, key, r->base[r->pos]);
        widen_scalar(kv, type, r->base + r->pos);
        r->pos += sz;
        return ROTQ_OK;
    }
    uint32_t et;
    uint64_t n;
    ROTQ_TRY(rd_u32(r, &et, "array element type of key", key));
    ROTQ_TRY(rd_u64(r, &n, "array length of key", key));
    if (et == ROTQ_META_ARRAY)
        return rotq_fail(ROTQ_ERR_UNSUPPORTED, "%s: key %s is an array of arrays (nested GGUF arrays are not supported)", r->path, key);
    if (et != ROTQ_META_STRING && !gguf_meta_scalar_size(et))
        return rotq_fail(ROTQ_ERR_FORMAT, "%s: key %s is an array of unknown type %u (GGUF types are 0..12)", r->path, key, et);
    kv->arr_type = (rotq_meta_type)et;
    /* Each element takes at least its size (a string at least its 8-byte length). */
    uint64_t min_elem = et == ROTQ_META_STRING ? 8 : gguf_meta_scalar_size(et);
    if (n > (r->size - r->pos) / min_elem)
        return rotq_fail(ROTQ_ERR_FORMAT, "%s: key %s claims %llu %s elements but only %llu bytes remain",
                         r->path, key, (unsigned long long)n, meta_type_name(et), (unsigned long long)(r->size - r->pos));
    if (et != ROTQ_META_STRING) {
        uint64_t bytes = n * min_elem;
        if (!(kv->arr = malloc(bytes ? bytes : 1))) return rotq_fail(ROTQ_ERR_NOMEM, "%s: out of memory reading key %s", r->path, key);
        if (et == ROTQ_META_BOOL)
            for (uint64_t i = 0; i < n; i++)
                if (r->base[r->pos + i] > 1)
                    return rotq_fail(ROTQ_ERR_FORMAT, "%s: key %s[%llu] is a bool holding %u", r->path, key,
                                     (unsigned long long)i, r->base[r->pos + i]);
        if (bytes) memcpy(kv->arr, r->base + r->pos, bytes);
        r->pos += bytes;
        kv->n = n;
        return ROTQ_OK;
    }
    char **strs = calloc(n ? n : 1, sizeof *strs);
    uint64_t *lens = calloc(n ? n : 1, sizeof *lens);
    kv->arr = strs;
    kv->arr_str_len = lens;
    if (!strs || !lens) return rotq_fail(ROTQ_ERR_NOMEM, "%s: out of memory reading key %s", r->path, key);
    kv->n = n; /* entries are NULL until read: rotq_meta_free copes with a partial array */
    for (uint64_t i = 0; i < n; i++) {
        const uint8_t *p;
        ROTQ_TRY(rd_str(r, &p, &lens[i], "string array element of key", key));
        if (!(strs[i] = dup_bytes(p, lens[i]))) return rotq_fail(ROTQ_ERR_NOMEM, "%s: out of memory reading key %s", r->path, key);
    }
    return ROTQ_OK;
}

static int cmp_meta_key(const void *a, const void *b) {
    return strcmp((*(const rotq_meta *const *)a)->key, (*(const rotq_meta *const *)b)->key);
}

/* One tensor as described in the header (name points into the mapping). */
typedef struct gguf_tinfo {
    const uint8_t *name;
    uint64_t name_len;
    uint32_t n_dims;
    int64_t ne[ROTQ_MAX_DIMS]; /* innermost first, as in the file */
    int64_t numel;
    uint32_t type;
    uint64_t offset, nbytes;
} gguf_tinfo;

static int cmp_tinfo_offset(const void *a, const void *b) {
    const gguf_tinfo *x = *(const gguf_tinfo *const *)a, *y = *(const gguf_tinfo *const *)b;
    return x->offset < y->offset ? -1 : x->offset > y->offset;
}

static int cmp_tinfo_name(const void *a, const void *b) {
    const gguf_tinfo *x = *(const gguf_tinfo *const *)a, *y = *(const gguf_tinfo *const *)b;
    uint64_t n = x->name_len < y->name_len ? x->name_len : y->name_len;
    int c = memcmp(x->name, y->name, n);
    if (c) return c;
    return x->name_len < y->name_len ? -1 : x->name_len > y->name_len;
}

/* ggml types that exist but that rotq cannot dequantize, for a precise message. */
static const char *ggml_other_type_name(uint32_t t) {
    switch (t) {
    case 16: return "IQ2_XXS"; case 17: return "IQ2_XS"; case 18: return "IQ3_XXS"; case 19: return "IQ1_S";
    case 20: return "IQ4_NL"; case 21: return "IQ3_S"; case 22: return "IQ2_S"; case 23: return "IQ4_XS";
    case 29: return "IQ1_M"; case 34: return "TQ1_0"; case 35: return "TQ2_0"; case 39: return "MXFP4";
    case 40: return "NVFP4"; case 41: return "Q1_0";
    default: return NULL;
    }
}


/* Types held as they are in the mapping (no conversion at load). */
static bool dtype_kept_in_place(rotq_dtype dt) { return rotq_dtype_is_float(dt) || gguf_dtype_is_int(dt); }

static rotq_status read_tensor_info(gguf_reader *r, gguf_tinfo *ti, uint64_t index, uint32_t alignment) {
    char name[ROTQ_NAME_MAX];
    snprintf(name, sizeof name, "#%llu", (unsigned long long)index);
    ROTQ_TRY(rd_str(r, &ti->name, &ti->name_len, "name of tensor", name));
    if (ti->name_len == 0) return rotq_fail(ROTQ_ERR_FORMAT, "%s: tensor #%llu has an empty name", r->path, (unsigned long long)index);
    if (ti->name_len >= ROTQ_NAME_MAX)
        return rotq_fail(ROTQ_ERR_FORMAT, "%s: tensor #%llu name is %llu bytes long (rotq allows %d)", r->path,
                         (unsigned long long)index, (unsigned long long)ti->name_len, ROTQ_NAME_MAX - 1);
    if (memchr(ti->name, 0, ti->name_len))
        return rotq_fail(ROTQ_ERR_FORMAT, "%s: tensor #%llu name contains a NUL byte", r->path, (unsigned long long)index);
    memcpy(name, ti->name, ti->name_len);
    name[ti->name_len] = 0;

    ROTQ_TRY(rd_u32(r, &ti->n_dims, "dimension count of tensor", name));
    if (ti->n_dims < 1 || ti->n_dims > ROTQ_GGUF_MAX_DIMS)
        return rotq_fail(ROTQ_ERR_FORMAT, "%s: tensor %s has %u dimensions (GGUF allows 1..%d)", r->path, name,
                         ti->n_dims, ROTQ_GGUF_MAX_DIMS);
    ti->numel = 1;
    for (uint32_t d = 0; d < ti->n_dims; d++) {
        uint64_t ne;
        ROTQ_TRY(rd_u64(r, &ne, "dimensions of tensor", name));
        if (ne == 0 || ne > (uint64_t)GGUF_MAX_DIM)
            return rotq_fail(ROTQ_ERR_FORMAT, "%s: tensor %s dimension %u is %llu (must be 1..2^40)", r->path, name, d,
                             (unsigned long long)ne);
        if (ti->numel > INT64_MAX / (int64_t)ne)
            return rotq_fail(ROTQ_ERR_FORMAT, "%s: tensor %s element count overflows 64 bits", r->path, name);
        ti->ne[d] = (int64_t)ne;
        ti->numel *= (int64_t)ne;
    }
    ROTQ_TRY(rd_u32(r, &ti->type, "type of tensor", name));
    rotq_dtype dt = (rotq_dtype)ti->type;
    uint64_t bb = ti->type < ROTQ_DTYPE_COUNT ? rotq_dtype_block_bytes(dt) : 0;
    if (bb == 0) {
        const char *other = ggml_other_type_name(ti->type);
        if (other)
            return rotq_fail(ROTQ_ERR_UNSUPPORTED, "%s: tensor %s has ggml type %u (%s), which rotq cannot dequantize",
                             r->path, name, ti->type, other);
        return rotq_fail(ROTQ_ERR_FORMAT, "%s: tensor %s has unknown ggml type %u", r->path, name, ti->type);
    }
    if (dt == ROTQ_Q8_1)
        return rotq_fail(ROTQ_ERR_UNSUPPORTED, "%s: tensor %s has type q8_1, a ggml runtime type never stored in model files",
                         r->path, name);
    int64_t be = rotq_dtype_block_size(dt);
    if (ti->ne[0] % be != 0)
        return rotq_fail(ROTQ_ERR_FORMAT, "%s: tensor %s rows of %lld elements are not whole %s blocks of %lld", r->path,
                         name, (long long)ti->ne[0], rotq_dtype_name(dt), (long long)be);
    ti->nbytes = rotq_dtype_nbytes(dt, ti->numel);
    if (ti->nbytes == 0)
        return rotq_fail(ROTQ_ERR_FORMAT, "%s: tensor %s byte size overflows", r->path, name);
    ROTQ_TRY(rd_u64(r, &ti->offset, "data offset of tensor", name));
    if (ti->offset % alignment != 0)
        return rotq_fail(ROTQ_ERR_FORMAT, "%s: tensor %s offset %llu is not a multiple of the alignment %u", r->path, name,
                         (unsigned long long)ti->offset, alignment);
    return ROTQ_OK;
}

/* Checks every tensor lies inside the data section and no two overlap or share a name. */
static rotq_status check_tensor_layout(const char *path, gguf_tinfo *ti, uint64_t n, uint64_t data_size) {
    gguf_tinfo **order = malloc((n ? n : 1) * sizeof *order);
    if (!order) return rotq_fail(ROTQ_ERR_NOMEM, "%s: out of memory", path);
    rotq_status s = ROTQ_OK;
    for (uint64_t i = 0; i < n; i++) {
        order[i] = &ti[i];
        if (ti[i].offset > data_size || ti[i].nbytes > data_size - ti[i].offset) {
            s = rotq_fail(ROTQ_ERR_FORMAT, "%s: tensor %.*s (%llu bytes at offset %llu) runs past the end of the data section (%llu bytes)",
                          path, (int)ti[i].name_len, (const char *)ti[i].name, (unsigned long long)ti[i].nbytes,
                          (unsigned long long)ti[i].offset, (unsigned long long)data_size);
            goto out;
        }
    }
    qsort(order, n, sizeof *order, cmp_tinfo_offset);
    for (uint64_t i = 1; i < n; i++) {
        const gguf_tinfo *a = order[i - 1], *b = order[i];
        if (a->offset + a->nbytes > b->offset) {
            s = rotq_fail(ROTQ_ERR_FORMAT, "%s: tensors %.*s [%llu, %llu) and %.*s [%llu, ...) overlap", path,
                          (int)a->name_len, (const char *)a->name, (unsigned long long)a->offset,
                          (unsigned long long)(a->offset + a->nbytes), (int)b->name_len, (const char *)b->name,
                          (unsigned long long)b->offset);
            goto out;
        }
    }
    qsort(order, n, sizeof *order, cmp_tinfo_name);
    for (uint64_t i = 1; i < n; i++)
        if (cmp_tinfo_name(&order[i - 1], &order[i]) == 0) {
            s = rotq_fail(ROTQ_ERR_FORMAT, "%s: tensor %.*s appears twice", path, (int)order[i]->name_len,
                          (const char *)order[i]->name);
            goto out;
        }
out:
    free(order);
    return s;
}

static rotq_status read_metadata(gguf_reader *r, rotq_model *m, uint64_t n_kv) {
    rotq_meta *grown = realloc(m->meta, (size_t)(m->n_meta + (int64_t)n_kv + 1) * sizeof *grown);
    if (!grown) return rotq_fail(ROTQ_ERR_NOMEM, "%s: out of memory for %llu metadata keys", r->path, (unsigned long long)n_kv);
    m->meta = grown;
    int64_t first = m->n_meta;
    for (uint64_t i = 0; i < n_kv; i++) {
        char idx[32];
        snprintf(idx, sizeof idx, "#%llu", (unsigned long long)i);
        const uint8_t *kp;
        uint64_t klen;
        uint32_t type;
        ROTQ_TRY(rd_str(r, &kp, &klen, "metadata key", idx));
        if (klen == 0) return rotq_fail(ROTQ_ERR_FORMAT, "%s: metadata key #%llu is empty", r->path, (unsigned long long)i);
        if (memchr(kp, 0, klen))
            return rotq_fail(ROTQ_ERR_FORMAT, "%s: metadata key #%llu contains a NUL byte", r->path, (unsigned long long)i);
        rotq_meta *kv = &m->meta[m->n_meta];
        memset(kv, 0, sizeof *kv);
        if (!(kv->key = dup_bytes(kp, klen))) return rotq_fail(ROTQ_ERR_NOMEM, "%s: out of memory", r->path);
        m->n_meta++; /* from here the model owns (and frees) this entry, even half-read */
        ROTQ_TRY(rd_u32(r, &type, "value type of key", kv->key));
        ROTQ_TRY(read_value(r, kv, type));
    }
    /* Duplicate keys make "the" value ambiguous: refuse them. */
    int64_t n = m->n_meta - first;
    if (n > 1) {
        rotq_meta **sorted = malloc((size_t)n * sizeof *sorted);
        if (!sorted) return rotq_fail(ROTQ_ERR_NOMEM, "%s: out of memory", r->path);
        for (int64_t i = 0; i < n; i++) sorted[i] = &m->meta[first + i];
        qsort(sorted, (size_t)n, sizeof *sorted, cmp_meta_key);
        for (int64_t i = 1; i < n; i++)
            if (strcmp(sorted[i - 1]->key, sorted[i]->key) == 0) {
                rotq_status s = rotq_fail(ROTQ_ERR_FORMAT, "%s: metadata key %s appears twice", r->path, sorted[i]->key);
                free(sorted);
                return s;
            }
        free(sorted);
    }
    return ROTQ_OK;
}

static rotq_status meta_alignment(const rotq_model *m, const char *path, uint32_t *alignment) {
    *alignment = GGUF_DEFAULT_ALIGNMENT;
    const rotq_meta *kv = rotq_model_meta(m, "general.alignment");
    if (!kv) return ROTQ_OK;
    uint64_t a;
    switch (kv->type) {
    case ROTQ_META_U8: case ROTQ_META_U16: case ROTQ_META_U32: case ROTQ_META_U64: a = kv->v.u; break;
    case ROTQ_META_I8: case ROTQ_META_I16: case ROTQ_META_I32: case ROTQ_META_I64:
        a = kv->v.i < 0 ? 0 : (uint64_t)kv->v.i;
        break;
    default:
        return rotq_fail(ROTQ_ERR_FORMAT, "%s: general.alignment has type %s, not an integer", path, meta_type_name(kv->type));
    }
    /* Power of two and a multiple of 8 (GGUF spec), so every float tensor is naturally aligned. */
    if (a < 8 || a > (1u << 30) || (a & (a - 1)))
        return rotq_fail(ROTQ_ERR_FORMAT, "%s: general.alignment is %llu (must be a power of two >= 8)", path, (unsigned long long)a);
    *alignment = (uint32_t)a;
    return ROTQ_OK;
}

/* Layer index of a GGUF per-layer name "blk.N.*", -1 otherwise. */
static int64_t gguf_block_index(const char *name) {
    if (strncmp(name, "blk.", 4) != 0) return -1;
    int64_t v = 0;
    const char *p = name + 4;
    if (*p < '0' || *p > '9') return -1;
    for (; *p >= '0' && *p <= '9'; p++) {
        if (v > (INT64_MAX - 9) / 10) return -1;
        v = v * 10 + (*p - '0');
    }
    return *p == '.' ? v : -1;
}

static rotq_status add_tensor(rotq_model *m, const char *path, const gguf_tinfo *ti, const uint8_t *data) {
    char name[ROTQ_NAME_MAX];
    memcpy(name, ti->name, ti->name_len);
    name[ti->name_len] = 0;
    int64_t shape[ROTQ_MAX_DIMS];
    for (uint32_t d = 0; d < ti->n_dims; d++) shape[d] = ti->ne[ti->n_dims - 1 - d];
    rotq_dtype dt = (rotq_dtype)ti->type;
    rotq_status s;
    if (dtype_kept_in_place(dt)) {
        s = rotq_model_add_tensor(m, name, dt, (int32_t)ti->n_dims, shape, (void *)data, ti->nbytes, false);
    } else {
        if ((uint64_t)ti->numel > SIZE_MAX / sizeof(float))
            return rotq_fail(ROTQ_ERR_NOMEM, "%s: tensor %s is too large to dequantize", path, name);
        float *f = malloc((size_t)ti->numel * sizeof(float));
        if (!f)
            return rotq_fail(ROTQ_ERR_NOMEM, "%s: out of memory dequantizing tensor %s (%lld elements)", path, name,
                             (long long)ti->numel);
        s = rotq_dequantize(dt, data, f, ti->numel);
        rotq_mapping_drop(data, ti->nbytes); /* the quantized bytes are not read again */
        if (s == ROTQ_OK)
            s = rotq_model_add_tensor(m, name, ROTQ_F32, (int32_t)ti->n_dims, shape, f, (uint64_t)ti->numel * 4, true);
        if (s == ROTQ_OK) m->tensors[m->n_tensors - 1].file_dtype = dt; /* `info` reports what the file held */
        else free(f);
    }
    if (s != ROTQ_OK) return rotq_fail_context(s, "%s", path);
    return ROTQ_OK;
}

static int cmp_tensor_name(const void *a, const void *b) {
    return strcmp((*(const rotq_tensor *const *)a)->name, (*(const rotq_tensor *const *)b)->name);
}

/* Does `name` expand from template `tmpl` ("{L}" = a layer index below n_layers)? Parses the
 * index from the name instead of trying every layer, so a lying block_count costs nothing. */
static bool match_template(const char *tmpl, const char *name, int64_t n_layers, int64_t *layer) {
    const char *l = strstr(tmpl, "{L}");
    *layer = -1;
    if (!l) return strcmp(tmpl, name) == 0;
    size_t pre = (size_t)(l - tmpl);
    if (strncmp(name, tmpl, pre) != 0) return false;
    const char *p = name + pre;
    if (*p < '0' || *p > '9' || (p[0] == '0' && p[1] >= '0' && p[1] <= '9')) return false;
    int64_t v = 0;
    for (; *p >= '0' && *p <= '9'; p++) {
        v = v * 10 + (*p - '0');
        if (v >= n_layers) return false;
    }
    char rest[ROTQ_NAME_MAX];
    rotq_arch_expand(l + 3, (int32_t)v, rest, sizeof rest);
    if (strcmp(p, rest) != 0) return false;
    *layer = v;
    return true;
}

/* GGUF names → HF names through the architecture's templates; notes each tensor's role/layer. A
 * tensor no template matches keeps its GGUF name and no role (rotq_model_check_claimed names it). */
static rotq_status rename_tensors(rotq_model *m, const char *path) {
    char hf[ROTQ_NAME_MAX];
    for (int64_t i = 0; i < m->n_tensors; i++) {
        rotq_tensor *t = &m->tensors[i];
        int64_t blk = gguf_block_index(t->name);
        if (blk >= m->hp.n_layers)
            return rotq_fail(ROTQ_ERR_FORMAT, "%s: tensor %s belongs to block %lld but %s.block_count is %lld", path,
                             t->name, (long long)blk, m->arch->gguf_write_id, (long long)m->hp.n_layers);
        const rotq_arch_tensor *found = NULL;
        int64_t layer = -1;
        for (int32_t k = 0; k < m->arch->n_tensors && !found; k++) {
            const rotq_arch_tensor *at = &m->arch->tensors[k];
            if (at->gguf[0] && at->hf[0] && match_template(at->gguf, t->name, m->hp.n_layers, &layer)) found = at;
        }
        if (found) {
            rotq_arch_expand(found->hf, (int32_t)(layer < 0 ? 0 : layer), hf, sizeof hf);
            snprintf(t->name, sizeof t->name, "%s", hf);
            t->role = found->role;
            t->layer = (int32_t)layer;
        }
    }
    /* A GGUF name kept as is could collide with another tensor's HF name. */
    rotq_tensor **sorted = malloc((size_t)(m->n_tensors ? m->n_tensors : 1) * sizeof *sorted);
    if (!sorted) return rotq_fail(ROTQ_ERR_NOMEM, "%s: out of memory", path);
    for (int64_t i = 0; i < m->n_tensors; i++) sorted[i] = &m->tensors[i];
    qsort(sorted, (size_t)m->n_tensors, sizeof *sorted, cmp_tensor_name);
    rotq_status s = ROTQ_OK;
    for (int64_t i = 1; i < m->n_tensors && s == ROTQ_OK; i++)
        if (strcmp(sorted[i - 1]->name, sorted[i]->name) == 0)
            s = rotq_fail(ROTQ_ERR_FORMAT, "%s: two tensors map to the name %s", path, sorted[i]->name);
    free(sorted);
    return s;
}

/* llama.cpp stores Q/K rows interleaved per head; rotq holds them rotate-half (HF). */
static rotq_status unpermute_qk(rotq_model *m, const char *path) {
    for (int64_t i = 0; i < m->n_tensors; i++) {
        rotq_tensor *t = &m->tensors[i];
        int64_t heads = t->role == ROLE_Q || t->role == ROLE_Q_BIAS   ? m->hp.n_heads
                        : t->role == ROLE_K || t->role == ROLE_K_BIAS ? m->hp.n_kv_heads
                                                                      : 0;
        if (!heads) continue;
        rotq_status s = rotq_permute_qk_rows(t, heads, false);
        if (s != ROTQ_OK) return rotq_fail_context(s, "%s", path);
    }
    return ROTQ_OK;
}

rotq_status rotq_load_gguf(const char *path, rotq_model *m) {
    const uint8_t *base;
    uint64_t size;
    ROTQ_TRY(rotq_model_map_file(m, path, &base, &size));
    gguf_reader r = {base, size, 0, path};
    uint32_t magic, version;
    uint64_t n_tensors, n_kv;
    ROTQ_TRY(rd_u32(&r, &magic, "magic", ""));
    if (magic != GGUF_MAGIC)
        return rotq_fail(ROTQ_ERR_FORMAT, "%s: not a GGUF file (magic bytes %02x %02x %02x %02x, expected \"GGUF\")", path,
                         base[0], base[1], base[2], base[3]);
    ROTQ_TRY(rd_u32(&r, &version, "version", ""));
    if (version == 1)
        return rotq_fail(ROTQ_ERR_UNSUPPORTED, "%s: GGUF version 1 (32-bit counts) is not supported; rotq reads v2 and v3", path);
    if ((version & 0xffffu) == 0 && (version >> 16) != 0)
        return rotq_fail(ROTQ_ERR_UNSUPPORTED, "%s: big-endian GGUF (version field %#x) is not supported", path, version);
    if (version != 2 && version != 3)
        return rotq_fail(ROTQ_ERR_UNSUPPORTED, "%s: GGUF version %u is not supported (rotq reads v2 and v3)", path, version);
    ROTQ_TRY(rd_u64(&r, &n_tensors, "tensor count", ""));
    ROTQ_TRY(rd_u64(&r, &n_kv, "metadata key count", ""));
    /* Smallest possible entries: a key/value is >= 13 bytes, a tensor info >= 33. */
    if (n_kv > GGUF_MAX_KEYS || n_kv > (size - r.pos) / 13)
        return rotq_fail(ROTQ_ERR_FORMAT, "%s: header claims %llu metadata keys, impossible in a %llu-byte file", path,
                         (unsigned long long)n_kv, (unsigned long long)size);
    if (n_tensors > GGUF_MAX_TENSORS || n_tensors > (size - r.pos) / 33)
        return rotq_fail(ROTQ_ERR_FORMAT, "%s: header claims %llu tensors, impossible in a %llu-byte file", path,
                         (unsigned long long)n_tensors, (unsigned long long)size);
    ROTQ_TRY(read_metadata(&r, m, n_kv));
    uint32_t alignment;
    ROTQ_TRY(meta_alignment(m, path, &alignment));

    gguf_tinfo *ti = calloc(n_tensors ? n_tensors : 1, sizeof *ti);
    if (!ti) return rotq_fail(ROTQ_ERR_NOMEM, "%s: out of memory for %llu tensor infos", path, (unsigned long long)n_tensors);
    rotq_status s = ROTQ_OK;
    for (uint64_t i = 0; i < n_tensors && s == ROTQ_OK; i++) s = read_tensor_info(&r, &ti[i], i, alignment);
    if (s != ROTQ_OK) goto done;
    uint64_t data_start = (r.pos + alignment - 1) / alignment * alignment;
    if (n_tensors > 0 && data_start > size) {
        s = rotq_fail(ROTQ_ERR_FORMAT, "%s: truncated: the data section would start at %llu, past the end (%llu bytes)",
                      path, (unsigned long long)data_start, (unsigned long long)size);
        goto done;
    }
    uint64_t data_size = data_start <= size ? size - data_start : 0;
    if ((s = check_tensor_layout(path, ti, n_tensors, data_size)) != ROTQ_OK) goto done;

    const rotq_meta *archkv = rotq_model_meta(m, "general.architecture");
    if (!archkv || archkv->type != ROTQ_META_STRING) {
        s = rotq_fail(ROTQ_ERR_FORMAT, "%s: GGUF metadata lacks general.architecture (a string)", path);
        goto done;
    }
    const rotq_arch *arch = rotq_arch_find_gguf(archkv->str);
    if (!arch) {
        s = rotq_fail(ROTQ_ERR_UNSUPPORTED,
                      "%s: architecture \"%s\" is not known to rotq; describe it in a JSON file and pass "
                      "--arch-file (see docs/architectures.md)", path, archkv->str);
        goto done;
    }
    for (uint64_t i = 0; i < n_tensors && s == ROTQ_OK; i++)
        s = add_tensor(m, path, &ti[i], base + data_start + ti[i].offset);
    if (s != ROTQ_OK) goto done;
    /* hparams look for the GGUF output tensor to decide tying, so rename only afterwards. */
    if ((s = rotq_hparams_from_gguf(arch, m, path, &m->hp)) != ROTQ_OK) goto done;
    if (m->hp.n_layers > (int64_t)n_tensors) { /* every block holds at least one tensor */
        s = rotq_fail(ROTQ_ERR_FORMAT, "%s: %s.block_count is %lld but the file holds only %llu tensors", path,
                      archkv->str, (long long)m->hp.n_layers, (unsigned long long)n_tensors);
        goto done;
    }
    m->arch = arch;
    if ((s = rename_tensors(m, path)) != ROTQ_OK) goto done;
    if (arch->gguf_permute_qk && (s = unpermute_qk(m, path)) != ROTQ_OK) goto done;
    m->source_format = ROTQ_FORMAT_GGUF;
    if (!m->source_path[0]) snprintf(m->source_path, sizeof m->source_path, "%s", path);
done:
    free(ti);
    return s;
}
