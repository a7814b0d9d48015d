/* GGUF v2/v3 reader and v3 writer.
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

#include "io/record.h"
#include "arch/arch.h"
#include "core/model.h"
#include "tok/tok.h"

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "rotq's GGUF reader assumes a little-endian host"
#endif

#define GGUF_MAGIC 0x46554747u /* "GGUF" read as a little-endian u32 */
#define GGUF_DEFAULT_ALIGNMENT 32
/* Far above any real model (hundreds to a few thousand tensors, tens of keys): beyond this a
 * header lies (and name lookups, linear in the tensor count, would crawl). */
#define GGUF_MAX_KEYS (1u << 20)
#define GGUF_MAX_TENSORS (1u << 16)
#define GGUF_MAX_DIM ((int64_t)1 << 40)
/* ggml's own name limit; llama.cpp refuses longer tensor names. */
#define GGML_MAX_NAME 64

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

/* Bytes of one scalar of a fixed-size meta type, 0 for string/array/unknown. */
static uint64_t meta_scalar_size(uint32_t t) {
    switch (t) {
    case ROTQ_META_U8: case ROTQ_META_I8: case ROTQ_META_BOOL: return 1;
    case ROTQ_META_U16: case ROTQ_META_I16: return 2;
    case ROTQ_META_U32: case ROTQ_META_I32: case ROTQ_META_F32: return 4;
    case ROTQ_META_U64: case ROTQ_META_I64: case ROTQ_META_F64: return 8;
    default: return 0;
    }
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
        uint64_t sz = meta_scalar_size(type);
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
    if (et != ROTQ_META_STRING && !meta_scalar_size(et))
        return rotq_fail(ROTQ_ERR_FORMAT, "%s: key %s is an array of unknown type %u (GGUF types are 0..12)", r->path, key, et);
    kv->arr_type = (rotq_meta_type)et;
    /* Each element takes at least its size (a string at least its 8-byte length). */
    uint64_t min_elem = et == ROTQ_META_STRING ? 8 : meta_scalar_size(et);
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

static bool dtype_is_int(rotq_dtype dt) {
    return dt == ROTQ_I8 || dt == ROTQ_I16 || dt == ROTQ_I32 || dt == ROTQ_I64;
}

/* Types held as they are in the mapping (no conversion at load). */
static bool dtype_kept_in_place(rotq_dtype dt) { return rotq_dtype_is_float(dt) || dtype_is_int(dt); }

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
    if (ti->n_dims < 1 || ti->n_dims > ROTQ_MAX_DIMS)
        return rotq_fail(ROTQ_ERR_FORMAT, "%s: tensor %s has %u dimensions (GGUF allows 1..%d)", r->path, name,
                         ti->n_dims, ROTQ_MAX_DIMS);
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

/* GGUF names → HF names through the architecture's templates; notes each tensor's role/layer. */
static rotq_status rename_tensors(rotq_model *m, const char *path) {
    char hf[ROTQ_NAME_MAX];
    int64_t unknown = 0;
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
        } else if (unknown++ < 4) {
            rotq_log(ROTQ_LOG_WARN, "%s: tensor %s has no role in architecture %s; kept under its GGUF name\n",
                    path, t->name, m->arch->name);
        }
    }
    if (unknown > 4)
        rotq_log(ROTQ_LOG_WARN, "%s: %lld more tensors without a role kept under their GGUF names\n", path,
                (long long)(unknown - 4));
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

/* ------------------------------------------------------------------------------------------ */
/* writing                                                                                    */

typedef struct out_buf {
    uint8_t *p;
    size_t n, cap;
    bool oom;
} out_buf;

static void put(out_buf *b, const void *data, size_t n) {
    if (b->oom) return;
    if (b->n + n > b->cap) {
        size_t cap = b->cap ? b->cap : 4096;
        while (cap < b->n + n) cap *= 2;
        uint8_t *p = realloc(b->p, cap);
        if (!p) { b->oom = true; return; }
        b->p = p;
        b->cap = cap;
    }
    memcpy(b->p + b->n, data, n);
    b->n += n;
}

static void put_u32(out_buf *b, uint32_t v) { put(b, &v, 4); }
static void put_u64(out_buf *b, uint64_t v) { put(b, &v, 8); }
static void put_str(out_buf *b, const char *s, uint64_t len) { put_u64(b, len); put(b, s, (size_t)len); }

typedef struct kv_writer {
    out_buf buf;
    uint64_t count;
} kv_writer;

static void kv_key(kv_writer *w, const char *key, uint32_t type) {
    put_str(&w->buf, key, strlen(key));
    put_u32(&w->buf, type);
    w->count++;
}

static void kv_string(kv_writer *w, const char *key, const char *v) {
    kv_key(w, key, ROTQ_META_STRING);
    put_str(&w->buf, v, strlen(v));
}

static void kv_u32(kv_writer *w, const char *key, uint32_t v) {
    kv_key(w, key, ROTQ_META_U32);
    put_u32(&w->buf, v);
}

static void kv_f32(kv_writer *w, const char *key, float v) {
    kv_key(w, key, ROTQ_META_F32);
    put(&w->buf, &v, 4);
}

/* Writes one scalar of type t from a widened value. */
static void put_scalar(out_buf *b, uint32_t t, const rotq_meta *kv) {
    switch (t) {
    case ROTQ_META_U8: { uint8_t x = (uint8_t)kv->v.u; put(b, &x, 1); break; }
    case ROTQ_META_I8: { int8_t x = (int8_t)kv->v.i; put(b, &x, 1); break; }
    case ROTQ_META_BOOL: { uint8_t x = kv->v.b ? 1 : 0; put(b, &x, 1); break; }
    case ROTQ_META_U16: { uint16_t x = (uint16_t)kv->v.u; put(b, &x, 2); break; }
    case ROTQ_META_I16: { int16_t x = (int16_t)kv->v.i; put(b, &x, 2); break; }
    case ROTQ_META_U32: { uint32_t x = (uint32_t)kv->v.u; put(b, &x, 4); break; }
    case ROTQ_META_I32: { int32_t x = (int32_t)kv->v.i; put(b, &x, 4); break; }
    case ROTQ_META_F32: { float x = (float)kv->v.f; put(b, &x, 4); break; }
    case ROTQ_META_U64: put(b, &kv->v.u, 8); break;
    case ROTQ_META_I64: put(b, &kv->v.i, 8); break;
    case ROTQ_META_F64: put(b, &kv->v.f, 8); break;
    default: break;
    }
}

/* Copies a loaded key/value verbatim. */
static rotq_status kv_copy(kv_writer *w, const rotq_meta *kv) {
    if (kv->type == ROTQ_META_STRING) {
        kv_string(w, kv->key, kv->str ? kv->str : "");
        return ROTQ_OK;
    }
    if (kv->type != ROTQ_META_ARRAY) {
        if (!meta_scalar_size(kv->type))
            return rotq_fail(ROTQ_ERR_ARG, "metadata key %s has invalid type %d", kv->key, (int)kv->type);
        kv_key(w, kv->key, kv->type);
        put_scalar(&w->buf, kv->type, kv);
        return ROTQ_OK;
    }
    uint64_t es = meta_scalar_size(kv->arr_type);
    if (kv->arr_type != ROTQ_META_STRING && !es)
        return rotq_fail(ROTQ_ERR_ARG, "metadata key %s is an array of invalid type %d", kv->key, (int)kv->arr_type);
    kv_key(w, kv->key, ROTQ_META_ARRAY);
    put_u32(&w->buf, kv->arr_type);
    put_u64(&w->buf, kv->n);
    if (kv->arr_type == ROTQ_META_STRING) {
        char **s = kv->arr;
        for (uint64_t i = 0; i < kv->n; i++) {
            const char *str = s && s[i] ? s[i] : "";
            put_str(&w->buf, str, kv->arr_str_len ? kv->arr_str_len[i] : strlen(str));
        }
    } else if (kv->n) {
        put(&w->buf, kv->arr, (size_t)(kv->n * es));
    }
    return ROTQ_OK;
}

/* general.* keys rotq writes itself (or that no longer hold after dequantization). */
static bool general_key_regenerated(const char *key) {
    static const char *const skip[] = {"general.architecture", "general.name", "general.alignment",
                                       "general.file_type", "general.quantization_version"};
    for (size_t i = 0; i < sizeof skip / sizeof skip[0]; i++)
        if (strcmp(key, skip[i]) == 0) return true;
    return false;
}

/* One tensor of the output file. */
typedef struct out_tensor {
    const rotq_tensor *t;
    char name[ROTQ_NAME_MAX];
    rotq_dtype dtype;
    uint64_t nbytes, offset;
    int64_t permute_heads; /* 0: write rows as they are */
} out_tensor;

static rotq_dtype output_dtype(const rotq_tensor *t, rotq_dtype requested) {
    if (dtype_is_int(t->dtype)) return t->dtype;
    if (requested == ROTQ_DTYPE_INVALID) {
        if (t->dtype == ROTQ_F32 || t->dtype == ROTQ_F16 || t->dtype == ROTQ_BF16) return t->dtype;
        return ROTQ_F32; /* f64 and block types */
    }
    /* llama.cpp keeps 1-D tensors (norms, biases) in F32 whatever the weight type. */
    if (t->n_dims == 1) return ROTQ_F32;
    return requested;
}

static int cmp_out_name(const void *a, const void *b) {
    return strcmp(((const out_tensor *)a)->name, ((const out_tensor *)b)->name);
}

static rotq_status plan_tensors(const rotq_model *m, const char *path, rotq_dtype dtype, out_tensor **out, int64_t *n_out) {
    out_tensor *ot = calloc((size_t)(m->n_tensors ? m->n_tensors : 1), sizeof *ot);
    if (!ot) return rotq_fail(ROTQ_ERR_NOMEM, "%s: out of memory", path);
    int64_t n = 0;
    for (int64_t i = 0; i < m->n_tensors; i++) {
        const rotq_tensor *t = &m->tensors[i];
        out_tensor *o = &ot[n];
        if (!rotq_arch_hf_to_gguf(m->arch, t->name, m->hp.n_layers, o->name, sizeof o->name)) {
            if (strlen(t->name) >= GGML_MAX_NAME) {
                rotq_log(ROTQ_LOG_WARN, "%s: tensor %s has no GGUF name in architecture %s; not written\n",
                        path, t->name, m->arch->name);
                continue;
            }
            rotq_log(ROTQ_LOG_WARN, "%s: tensor %s has no role in architecture %s; written under its own name\n",
                    path, t->name, m->arch->name);
            snprintf(o->name, sizeof o->name, "%s", t->name);
        }
        if (strlen(o->name) >= GGML_MAX_NAME) {
            rotq_status s = rotq_fail(ROTQ_ERR_ARG, "%s: GGUF tensor name %s is longer than ggml's %d-byte limit", path,
                                      o->name, GGML_MAX_NAME - 1);
            free(ot);
            return s;
        }
        o->t = t;
        o->dtype = output_dtype(t, dtype);
        o->nbytes = rotq_dtype_nbytes(o->dtype, rotq_tensor_numel(t));
        if (m->arch->gguf_permute_qk) {
            if (t->role == ROLE_Q || t->role == ROLE_Q_BIAS) o->permute_heads = m->hp.n_heads;
            if (t->role == ROLE_K || t->role == ROLE_K_BIAS) o->permute_heads = m->hp.n_kv_heads;
        }
        if (o->nbytes == 0) {
            rotq_status s = rotq_fail(ROTQ_ERR_UNSUPPORTED, "%s: cannot write tensor %s (%s) as %s", path, t->name,
                                      rotq_dtype_name(t->dtype), rotq_dtype_name(o->dtype));
            free(ot);
            return s;
        }
        n++;
    }
    /* Two HF names mapping to one GGUF name would silently shadow a tensor. */
    out_tensor *sorted = malloc((size_t)(n ? n : 1) * sizeof *sorted);
    if (!sorted) { free(ot); return rotq_fail(ROTQ_ERR_NOMEM, "%s: out of memory", path); }
    memcpy(sorted, ot, (size_t)n * sizeof *sorted);
    qsort(sorted, (size_t)n, sizeof *sorted, cmp_out_name);
    for (int64_t i = 1; i < n; i++)
        if (strcmp(sorted[i - 1].name, sorted[i].name) == 0) {
            rotq_status s = rotq_fail(ROTQ_ERR_ARG, "%s: tensors %s and %s would both be written as %s", path,
                                      sorted[i - 1].t->name, sorted[i].t->name, sorted[i].name);
            free(sorted);
            free(ot);
            return s;
        }
    free(sorted);
    *out = ot;
    *n_out = n;
    return ROTQ_OK;
}

static const char *base_name(const char *path) {
    const char *s = strrchr(path, '/');
    return s ? s + 1 : path;
}

static rotq_status check_u32(const char *path, const char *what, int64_t v) {
    if (v < 0 || v > (int64_t)UINT32_MAX)
        return rotq_fail(ROTQ_ERR_ARG, "%s: %s is %lld, which GGUF stores as u32", path, what, (long long)v);
    return ROTQ_OK;
}

static rotq_status write_metadata(const rotq_model *m, const char *path, const out_tensor *ot, int64_t n_out, kv_writer *w) {
    const rotq_hparams *hp = &m->hp;
    const char *a = m->arch->gguf_write_id;
    char key[192];
    kv_string(w, "general.architecture", a);
    const rotq_meta *name = rotq_model_meta(m, "general.name");
    if (name && name->type == ROTQ_META_STRING && name->str) {
        kv_string(w, "general.name", name->str);
    } else {
        char stem[256];
        snprintf(stem, sizeof stem, "%.200s", base_name(m->source_path[0] ? m->source_path : path));
        char *dot = strrchr(stem, '.');
        if (dot && dot != stem) *dot = 0;
        kv_string(w, "general.name", stem[0] ? stem : "model");
    }
    kv_u32(w, "general.alignment", GGUF_DEFAULT_ALIGNMENT);
    /* llama_ftype: 0 all F32, 1 mostly F16, 32 mostly BF16 — only when the matrices agree. */
    rotq_dtype mat = ROTQ_DTYPE_INVALID;
    bool uniform = true;
    for (int64_t i = 0; i < n_out; i++) {
        if (ot[i].t->n_dims < 2) continue;
        if (mat == ROTQ_DTYPE_INVALID) mat = ot[i].dtype;
        else if (mat != ot[i].dtype) uniform = false;
    }
    if (uniform && (mat == ROTQ_F32 || mat == ROTQ_F16 || mat == ROTQ_BF16))
        kv_u32(w, "general.file_type", mat == ROTQ_F32 ? 0 : mat == ROTQ_F16 ? 1 : 32);
    for (int64_t i = 0; i < m->n_meta; i++) {
        const rotq_meta *kv = &m->meta[i];
        if (strncmp(kv->key, "general.", 8) == 0 && !general_key_regenerated(kv->key)) ROTQ_TRY(kv_copy(w, kv));
    }

    struct { const char *suffix; int64_t v; } ints[] = {
        {"context_length", hp->max_pos}, {"embedding_length", hp->hidden}, {"block_count", hp->n_layers},
        {"feed_forward_length", hp->intermediate}, {"attention.head_count", hp->n_heads},
        {"attention.head_count_kv", hp->n_kv_heads}, {"rope.dimension_count", hp->rotary_dim},
        {"vocab_size", hp->vocab},
    };
    for (size_t i = 0; i < sizeof ints / sizeof ints[0]; i++) {
        if (ints[i].v == 0 && strcmp(ints[i].suffix, "vocab_size") == 0) continue; /* unknown: optional key */
        snprintf(key, sizeof key, "%s.%s", a, ints[i].suffix);
        ROTQ_TRY(check_u32(path, key, ints[i].v));
        kv_u32(w, key, (uint32_t)ints[i].v);
    }
    if (hp->n_heads > 0 && hp->head_dim * hp->n_heads != hp->hidden) {
        ROTQ_TRY(check_u32(path, "head_dim", hp->head_dim));
        snprintf(key, sizeof key, "%s.attention.key_length", a);
        kv_u32(w, key, (uint32_t)hp->head_dim);
        snprintf(key, sizeof key, "%s.attention.value_length", a);
        kv_u32(w, key, (uint32_t)hp->head_dim);
    }
    snprintf(key, sizeof key, "%s.attention.%s", a,
             m->arch->norm == ROTQ_NORM_LAYER ? "layer_norm_epsilon" : "layer_norm_rms_epsilon");
    kv_f32(w, key, (float)hp->norm_eps);
    snprintf(key, sizeof key, "%s.rope.freq_base", a);
    kv_f32(w, key, (float)hp->rope_theta);
    if (hp->rope_scaling == 1) {
        snprintf(key, sizeof key, "%s.rope.scaling.type", a);
        kv_string(w, key, "linear");
        snprintf(key, sizeof key, "%s.rope.scaling.factor", a);
        kv_f32(w, key, (float)hp->rope_factor);
    } else if (hp->rope_scaling == 2) {
        rotq_log(ROTQ_LOG_WARN, "%s: llama3 RoPE scaling is not written (llama.cpp needs a rope_freqs tensor)\n", path);
    }

    bool tokenizer = false;
    for (int64_t i = 0; i < m->n_meta; i++)
        if (strncmp(m->meta[i].key, "tokenizer.", 10) == 0) {
            ROTQ_TRY(kv_copy(w, &m->meta[i]));
            tokenizer = true;
        }
    if (!tokenizer) { /* a tokenizer.json or llama2.c tokenizer.bin becomes tokenizer.* keys (tok_export.c) */
        rotq_meta *tk = NULL;
        int64_t n_tk = 0;
        rotq_status ts = rotq_tok_export_gguf_meta(m, path, &tk, &n_tk);
        for (int64_t i = 0; i < n_tk && ts == ROTQ_OK; i++) ts = kv_copy(w, &tk[i]);
        rotq_tok_export_meta_free(tk, n_tk);
        ROTQ_TRY(ts);
    }
    char *record = rotq_record_to_string(&m->rot); /* online rotations for rotq's own runner */
    if (record) kv_string(w, "rotq.record", record);
    free(record);
    if (w->buf.oom) return rotq_fail(ROTQ_ERR_NOMEM, "%s: out of memory building the header", path);
    return ROTQ_OK;
}

static rotq_status write_all(int fd, const char *path, const void *data, uint64_t n) {
    const uint8_t *p = data;
    while (n) {
        ssize_t w = write(fd, p, n > (1u << 30) ? (1u << 30) : (size_t)n);
        if (w < 0) {
            if (errno == EINTR) continue;
            return rotq_fail(ROTQ_ERR_IO, "%s: write failed: %s", path, strerror(errno));
        }
        p += w;
        n -= (uint64_t)w;
    }
    return ROTQ_OK;
}

static rotq_status write_zeros(int fd, const char *path, uint64_t n) {
    static const uint8_t zeros[64];
    while (n) {
        uint64_t k = n < sizeof zeros ? n : sizeof zeros;
        ROTQ_TRY(write_all(fd, path, zeros, k));
        n -= k;
    }
    return ROTQ_OK;
}

/* Produces the bytes of one output tensor: the model's own bytes when nothing changes,
 * otherwise a converted (and, for Q/K, re-permuted) copy in *scratch. The model is untouched. */
static rotq_status tensor_output_bytes(const out_tensor *o, const char *path, uint8_t **scratch, const void **bytes) {
    const rotq_tensor *t = o->t;
    *scratch = NULL;
    *bytes = t->data;
    rotq_tensor work = *t; /* a private copy: permuting it never touches the model's data */
    if (o->permute_heads) {
        work.data = malloc(t->nbytes ? t->nbytes : 1);
        if (!work.data) return rotq_fail(ROTQ_ERR_NOMEM, "%s: out of memory copying tensor %s", path, t->name);
        memcpy(work.data, t->data, t->nbytes);
        work.owned = true;
        rotq_status s = rotq_permute_qk_rows(&work, o->permute_heads, true);
        if (s != ROTQ_OK) {
            free(work.data);
            return rotq_fail_context(s, "%s", path);
        }
        *scratch = work.data;
        *bytes = work.data;
    }
    if (o->dtype == t->dtype) return ROTQ_OK;
    int64_t n = rotq_tensor_numel(t);
    uint8_t *f = malloc((size_t)n * sizeof(float) + 1);
    rotq_status s = f ? rotq_dequantize(t->dtype, *bytes, (float *)(void *)f, n)
                      : rotq_fail(ROTQ_ERR_NOMEM, "%s: out of memory converting tensor %s", path, t->name);
    free(*scratch);
    *scratch = NULL;
    if (s != ROTQ_OK) {
        free(f);
        return f ? rotq_fail_context(s, "%s: tensor %s", path, t->name) : s;
    }
    /* Narrowing in place is safe front to back: element i is read (bytes 4i..) before any write reaches it. */
    if (o->dtype == ROTQ_F16 || o->dtype == ROTQ_BF16) {
        for (int64_t i = 0; i < n; i++) {
            float v;
            memcpy(&v, f + 4 * i, 4);
            uint16_t h = o->dtype == ROTQ_F16 ? rotq_f32_to_f16(v) : rotq_f32_to_bf16(v);
            memcpy(f + 2 * i, &h, 2);
        }
    } else if (o->dtype != ROTQ_F32) {
        free(f);
        return rotq_fail(ROTQ_ERR_UNSUPPORTED, "%s: cannot write tensor %s as %s", path, t->name, rotq_dtype_name(o->dtype));
    }
    *scratch = f;
    *bytes = f;
    return ROTQ_OK;
}

rotq_status rotq_save_gguf(const rotq_model *m, const char *path, rotq_dtype dtype) {
    if (!m || !path) return rotq_fail(ROTQ_ERR_ARG, "rotq_save_gguf: NULL argument");
    if (!m->arch) return rotq_fail(ROTQ_ERR_ARG, "%s: the model has no architecture bound", path);
    if (!m->arch->gguf_write_id[0])
        return rotq_fail(ROTQ_ERR_UNSUPPORTED, "%s: architecture %s has no GGUF form (llama.cpp does not run it); save it as a "
                         "Hugging Face folder instead", path, m->arch->name);
    if (dtype != ROTQ_DTYPE_INVALID && dtype != ROTQ_F32 && dtype != ROTQ_F16 && dtype != ROTQ_BF16)
        return rotq_fail(ROTQ_ERR_UNSUPPORTED, "%s: GGUF output dtype %s is not supported (f32, f16, bf16)", path,
                         rotq_dtype_name(dtype));
    ROTQ_TRY(rotq_path_check_distinct(m->source_path, path));

    out_tensor *ot = NULL;
    int64_t n_out = 0;
    ROTQ_TRY(plan_tensors(m, path, dtype, &ot, &n_out));
    kv_writer kw = {0};
    out_buf hdr = {0};
    char tmp[PATH_MAX];
    int fd = -1;
    bool tmp_exists = false;
    rotq_status s = write_metadata(m, path, ot, n_out, &kw);
    if (s != ROTQ_OK) goto fail;

    put_u32(&hdr, GGUF_MAGIC);
    put_u32(&hdr, 3);
    put_u64(&hdr, (uint64_t)n_out);
    put_u64(&hdr, kw.count);
    put(&hdr, kw.buf.p, kw.buf.n);
    uint64_t offset = 0;
    for (int64_t i = 0; i < n_out; i++) {
        out_tensor *o = &ot[i];
        put_str(&hdr, o->name, strlen(o->name));
        /* a 0-D (scalar) tensor is written as shape [1]: GGUF readers want at least one dimension */
        put_u32(&hdr, (uint32_t)(o->t->n_dims ? o->t->n_dims : 1));
        if (!o->t->n_dims) put_u64(&hdr, 1);
        for (int32_t d = o->t->n_dims - 1; d >= 0; d--) put_u64(&hdr, (uint64_t)o->t->shape[d]);
        put_u32(&hdr, (uint32_t)o->dtype);
        put_u64(&hdr, offset);
        o->offset = offset;
        offset += (o->nbytes + GGUF_DEFAULT_ALIGNMENT - 1) / GGUF_DEFAULT_ALIGNMENT * GGUF_DEFAULT_ALIGNMENT;
    }
    if (hdr.oom) {
        s = rotq_fail(ROTQ_ERR_NOMEM, "%s: out of memory building the header", path);
        goto fail;
    }

    if (snprintf(tmp, sizeof tmp, "%s.tmp-XXXXXX", path) >= (int)sizeof tmp) {
        s = rotq_fail(ROTQ_ERR_ARG, "%s: path too long", path);
        goto fail;
    }
    fd = mkstemp(tmp);
    if (fd < 0) {
        s = rotq_fail(ROTQ_ERR_IO, "%s: cannot create a temporary file beside it: %s", path, strerror(errno));
        goto fail;
    }
    tmp_exists = true;
    if ((s = write_all(fd, path, hdr.p, hdr.n)) != ROTQ_OK) goto fail;
    uint64_t pos = hdr.n, data_start = (hdr.n + GGUF_DEFAULT_ALIGNMENT - 1) / GGUF_DEFAULT_ALIGNMENT * GGUF_DEFAULT_ALIGNMENT;
    if ((s = write_zeros(fd, path, data_start - pos)) != ROTQ_OK) goto fail;
    pos = 0;
    for (int64_t i = 0; i < n_out; i++) {
        if ((s = write_zeros(fd, path, ot[i].offset - pos)) != ROTQ_OK) goto fail;
        uint8_t *scratch;
        const void *bytes;
        if ((s = tensor_output_bytes(&ot[i], path, &scratch, &bytes)) != ROTQ_OK) goto fail;
        s = write_all(fd, path, bytes, ot[i].nbytes);
        free(scratch);
        if (s != ROTQ_OK) goto fail;
        pos = ot[i].offset + ot[i].nbytes;
    }
    /* GGUF readers expect the last tensor padded too (the file size stays a multiple of the alignment). */
    if ((s = write_zeros(fd, path, offset - pos)) != ROTQ_OK) goto fail;
    if (fchmod(fd, 0644) != 0 || fsync(fd) != 0) {
        s = rotq_fail(ROTQ_ERR_IO, "%s: cannot flush: %s", path, strerror(errno));
        goto fail;
    }
    int rc = close(fd);
    fd = -1;
    if (rc != 0) {
        s = rotq_fail(ROTQ_ERR_IO, "%s: cannot close: %s", path, strerror(errno));
        goto fail;
    }
    if (rename(tmp, path) != 0) {
        s = rotq_fail(ROTQ_ERR_IO, "%s: cannot rename the temporary file into place: %s", path, strerror(errno));
        goto fail;
    }
    free(kw.buf.p);
    free(hdr.p);
    free(ot);
    return ROTQ_OK;
fail:
    if (fd >= 0) close(fd);
    if (tmp_exists) unlink(tmp);
    free(kw.buf.p);
    free(hdr.p);
    free(ot);
    return s;
}
