/* safetensors files: 8-byte little-endian header length, a JSON header
 * {name: {dtype, shape, data_offsets: [begin, end]}, "__metadata__": {...}}, then the data block.
 * Every number in the header is checked against the file before a tensor points into it. */
#include "io/safetensors.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define MAX_DIM ((int64_t)1 << 40) /* same bound as rotq_model_add_tensor: no real tensor is wider */
#define CHUNK_ELEMS 65536          /* conversion scratch size; a multiple of every block size */

typedef struct st_dtype {
    const char *name;
    rotq_dtype dt;  /* ROTQ_DTYPE_INVALID: a valid safetensors type rotq does not handle */
    uint32_t size;
} st_dtype;

static const st_dtype ST_DTYPES[] = {
    {"F64", ROTQ_F64, 8}, {"F32", ROTQ_F32, 4}, {"F16", ROTQ_F16, 2}, {"BF16", ROTQ_BF16, 2},
    {"I64", ROTQ_I64, 8}, {"I32", ROTQ_I32, 4}, {"I16", ROTQ_I16, 2}, {"I8", ROTQ_I8, 1},
    {"U8", ROTQ_DTYPE_INVALID, 1}, {"U16", ROTQ_DTYPE_INVALID, 2}, {"U32", ROTQ_DTYPE_INVALID, 4},
    {"U64", ROTQ_DTYPE_INVALID, 8}, {"BOOL", ROTQ_DTYPE_INVALID, 1},
    {"F8_E4M3", ROTQ_DTYPE_INVALID, 1}, {"F8_E5M2", ROTQ_DTYPE_INVALID, 1},
    {"F8_E8M0", ROTQ_DTYPE_INVALID, 1}, {"C64", ROTQ_DTYPE_INVALID, 8},
};
#define N_ST_DTYPES (sizeof ST_DTYPES / sizeof ST_DTYPES[0])

const char *rotq_safetensors_dtype_name(rotq_dtype dt) {
    for (size_t i = 0; i < N_ST_DTYPES; i++)
        if (ST_DTYPES[i].dt == dt && dt != ROTQ_DTYPE_INVALID) return ST_DTYPES[i].name;
    return NULL;
}

static const st_dtype *find_dtype(const char *name) {
    for (size_t i = 0; i < N_ST_DTYPES; i++)
        if (strcmp(ST_DTYPES[i].name, name) == 0) return &ST_DTYPES[i];
    return NULL;
}

/* ---- reading ------------------------------------------------------------------------------- */

typedef struct st_entry {
    const char *name;  /* borrowed from the parsed header */
    rotq_dtype dt;
    uint32_t elem_size;
    int32_t n_dims;
    int64_t shape[ROTQ_MAX_DIMS];
    uint64_t begin, end;
} st_entry;

static int by_offset(const void *a, const void *b) {
    const st_entry *x = a, *y = b;
    if (x->begin != y->begin) return x->begin < y->begin ? -1 : 1;
    if (x->end != y->end) return x->end < y->end ? -1 : 1;
    return 0;
}

/* Reads one header entry into e; `data_size` is the length of the data block. */
static rotq_status parse_entry(const char *path, const char *name, json_t *v, uint64_t data_size, st_entry *e) {
    memset(e, 0, sizeof *e);
    e->name = name;
    if (!json_is_object(v))
        return rotq_fail(ROTQ_ERR_FORMAT, "%s: tensor %s: header entry is not an object", path, name);
    json_t *jdt = json_object_get(v, "dtype"), *jshape = json_object_get(v, "shape"),
           *joff = json_object_get(v, "data_offsets");
    if (!json_is_string(jdt) || !json_is_array(jshape) || !json_is_array(joff))
        return rotq_fail(ROTQ_ERR_FORMAT, "%s: tensor %s: needs string \"dtype\", array \"shape\" and array \"data_offsets\"",
                         path, name);
    const st_dtype *d = find_dtype(json_string_value(jdt));
    if (!d)
        return rotq_fail(ROTQ_ERR_FORMAT, "%s: tensor %s: unknown dtype \"%.32s\"", path, name, json_string_value(jdt));
    if (d->dt == ROTQ_DTYPE_INVALID)
        return rotq_fail(ROTQ_ERR_UNSUPPORTED, "%s: tensor %s: dtype %s is not supported (rotq reads F32, F16, BF16, F64, I8-I64)",
                         path, name, d->name);
    e->dt = d->dt;
    e->elem_size = d->size;

    size_t nd = json_array_size(jshape);
    if (nd > ROTQ_MAX_DIMS)
        return rotq_fail(ROTQ_ERR_UNSUPPORTED, "%s: tensor %s: %zu dimensions (rotq handles at most %d)", path, name,
                         nd, ROTQ_MAX_DIMS);
    e->n_dims = (int32_t)nd;
    uint64_t numel = 1;
    for (size_t i = 0; i < nd; i++) {
        json_t *x = json_array_get(jshape, i);
        if (!json_is_integer(x))
            return rotq_fail(ROTQ_ERR_FORMAT, "%s: tensor %s: shape[%zu] is not an integer", path, name, i);
        json_int_t s = json_integer_value(x);
        if (s <= 0 || s > MAX_DIM)
            return rotq_fail(ROTQ_ERR_FORMAT, "%s: tensor %s: shape[%zu] = %lld is out of range (1..2^40)", path, name, i,
                             (long long)s);
        if (numel > (uint64_t)INT64_MAX / (uint64_t)s)
            return rotq_fail(ROTQ_ERR_FORMAT, "%s: tensor %s: element count of the shape overflows 64 bits", path, name);
        numel *= (uint64_t)s;
        e->shape[i] = s;
    }
    if (numel > UINT64_MAX / d->size)
        return rotq_fail(ROTQ_ERR_FORMAT, "%s: tensor %s: byte size of the shape overflows 64 bits", path, name);
    uint64_t nbytes = numel * d->size;

    if (json_array_size(joff) != 2 || !json_is_integer(json_array_get(joff, 0)) ||
        !json_is_integer(json_array_get(joff, 1)))
        return rotq_fail(ROTQ_ERR_FORMAT, "%s: tensor %s: data_offsets must be two integers", path, name);
    json_int_t b = json_integer_value(json_array_get(joff, 0)), en = json_integer_value(json_array_get(joff, 1));
    if (b < 0 || en < b || (uint64_t)en > data_size)
        return rotq_fail(ROTQ_ERR_FORMAT, "%s: tensor %s: data_offsets [%lld, %lld] outside the data block of %llu bytes",
                         path, name, (long long)b, (long long)en, (unsigned long long)data_size);
    if ((uint64_t)(en - b) != nbytes)
        return rotq_fail(ROTQ_ERR_FORMAT, "%s: tensor %s: data_offsets span %llu bytes but %s x %llu elements need %llu",
                         path, name, (unsigned long long)(en - b), d->name, (unsigned long long)numel,
                         (unsigned long long)nbytes);
    e->begin = (uint64_t)b;
    e->end = (uint64_t)en;
    return ROTQ_OK;
}

static rotq_status parse_header(rotq_model *m, const char *path, const uint8_t *base, uint64_t size, json_t *h,
                                uint64_t data_start) {
    uint64_t data_size = size - data_start;
    size_t cap = json_object_size(h);
    st_entry *es = calloc(cap ? cap : 1, sizeof *es);
    if (!es) return rotq_fail(ROTQ_ERR_NOMEM, "%s: out of memory for %zu header entries", path, cap);
    size_t n = 0;
    rotq_status s = ROTQ_OK;
    const char *key;
    json_t *v;
    json_object_foreach(h, key, v) {
        if (strcmp(key, "__metadata__") == 0) {
            if (!json_is_object(v)) {
                s = rotq_fail(ROTQ_ERR_FORMAT, "%s: \"__metadata__\" is not an object", path);
                goto out;
            }
            continue;
        }
        s = parse_entry(path, key, v, data_size, &es[n]);
        if (s != ROTQ_OK) goto out;
        n++;
    }
    /* Sorting by position gives the file's order and makes the overlap check one pass. */
    qsort(es, n, sizeof *es, by_offset);
    for (size_t i = 1; i < n; i++)
        if (es[i].begin < es[i - 1].end) {
            s = rotq_fail(ROTQ_ERR_FORMAT, "%s: tensors %s [%llu, %llu) and %s [%llu, %llu) overlap", path, es[i - 1].name,
                          (unsigned long long)es[i - 1].begin, (unsigned long long)es[i - 1].end, es[i].name,
                          (unsigned long long)es[i].begin, (unsigned long long)es[i].end);
            goto out;
        }
    for (size_t i = 0; i < n; i++) {
        const st_entry *e = &es[i];
        uint64_t nbytes = e->end - e->begin;
        const uint8_t *p = base + data_start + e->begin;
        if (rotq_model_find(m, e->name)) {
            s = rotq_fail(ROTQ_ERR_FORMAT, "%s: tensor %s is already defined by an earlier shard", path, e->name);
            goto out;
        }
        void *data = (void *)p;
        bool owned = false;
        /* The format does not promise alignment; an unaligned tensor gets an aligned copy so that
         * every reader may cast its data to the element type. */
        if ((uintptr_t)p % e->elem_size != 0) {
            data = malloc(nbytes);
            if (!data) {
                s = rotq_fail(ROTQ_ERR_NOMEM, "%s: out of memory copying unaligned tensor %s", path, e->name);
                goto out;
            }
            memcpy(data, p, nbytes);
            owned = true;
        }
        s = rotq_model_add_tensor(m, e->name, e->dt, e->n_dims, e->shape, data, nbytes, owned);
        if (s != ROTQ_OK) {
            if (owned) free(data);
            s = rotq_fail_context(s, "%s", path);
            goto out;
        }
    }
out:
    free(es);
    return s;
}

rotq_status rotq_safetensors_parse(rotq_model *m, const char *path, const uint8_t *base, uint64_t size) {
    return rotq_safetensors_parse_meta(m, path, base, size, NULL);
}

rotq_status rotq_safetensors_parse_meta(rotq_model *m, const char *path, const uint8_t *base, uint64_t size,
                                        json_t **metadata) {
    if (metadata) *metadata = NULL;
    if (size < 8)
        return rotq_fail(ROTQ_ERR_FORMAT, "%s: %llu bytes is too short for a safetensors file (8-byte header length first)",
                         path, (unsigned long long)size);
    uint64_t hlen = 0;
    for (int i = 7; i >= 0; i--) hlen = (hlen << 8) | base[i];
    if (hlen > size - 8)
        return rotq_fail(ROTQ_ERR_FORMAT, "%s: header length %llu runs past the end of the file (%llu bytes)", path,
                         (unsigned long long)hlen, (unsigned long long)size);
    if (hlen > ROTQ_SAFETENSORS_MAX_HEADER)
        return rotq_fail(ROTQ_ERR_FORMAT, "%s: header length %llu is larger than the %u-byte limit", path,
                         (unsigned long long)hlen, ROTQ_SAFETENSORS_MAX_HEADER);
    if (hlen < 2 || base[8] != '{')
        return rotq_fail(ROTQ_ERR_FORMAT, "%s: header does not start with a JSON object (not a safetensors file?)", path);
    json_error_t err;
    json_t *h = json_loadb((const char *)base + 8, (size_t)hlen, JSON_REJECT_DUPLICATES, &err);
    if (!h)
        return rotq_fail(ROTQ_ERR_FORMAT, "%s: header JSON is invalid at line %d, column %d: %s", path, err.line,
                         err.column, err.text);
    rotq_status s = json_is_object(h) ? parse_header(m, path, base, size, h, 8 + hlen)
                                      : rotq_fail(ROTQ_ERR_FORMAT, "%s: header is not a JSON object", path);
    if (s == ROTQ_OK && metadata) *metadata = json_incref(json_object_get(h, "__metadata__"));
    json_decref(h);
    return s;
}

/* ---- writing ------------------------------------------------------------------------------- */

static bool is_int_dtype(rotq_dtype dt) { return dt == ROTQ_I8 || dt == ROTQ_I16 || dt == ROTQ_I32 || dt == ROTQ_I64; }

rotq_dtype rotq_safetensors_out_dtype(const rotq_tensor *t, rotq_dtype want) {
    if (is_int_dtype(t->dtype)) return t->dtype;
    if (want != ROTQ_DTYPE_INVALID) return want;
    return rotq_dtype_is_float(t->dtype) ? t->dtype : ROTQ_F32;
}

/* Source elements [i, i+k) to float32. Block types: i and k are multiples of the block size. */
static rotq_status load_f32(const rotq_tensor *t, int64_t i, int64_t k, float *dst) {
    switch (t->dtype) {
    case ROTQ_F32: memcpy(dst, (const float *)t->data + i, (size_t)k * 4); return ROTQ_OK;
    case ROTQ_F16: { const uint16_t *s = (const uint16_t *)t->data + i; for (int64_t j = 0; j < k; j++) dst[j] = rotq_f16_to_f32(s[j]); return ROTQ_OK; }
    case ROTQ_BF16: { const uint16_t *s = (const uint16_t *)t->data + i; for (int64_t j = 0; j < k; j++) dst[j] = rotq_bf16_to_f32(s[j]); return ROTQ_OK; }
    case ROTQ_F64: { const double *s = (const double *)t->data + i; for (int64_t j = 0; j < k; j++) dst[j] = (float)s[j]; return ROTQ_OK; }
    default: break;
    }
    int64_t block = rotq_dtype_block_size(t->dtype);
    uint64_t bb = rotq_dtype_block_bytes(t->dtype);
    if (block <= 0 || bb == 0)
        return rotq_fail(ROTQ_ERR_UNSUPPORTED, "tensor %s: cannot convert %s to float", t->name, rotq_dtype_name(t->dtype));
    const uint8_t *src = (const uint8_t *)t->data + (uint64_t)(i / block) * bb;
    rotq_status s = rotq_dequantize(t->dtype, src, dst, k);
    return s == ROTQ_OK ? s : rotq_fail_context(s, "tensor %s", t->name);
}

/* The JSON header for tensors idx[0..n), padded with spaces to a multiple of 8 bytes. */
static rotq_status build_header(const rotq_model *m, const int64_t *idx, int64_t n, rotq_dtype want, char **out,
                                uint64_t *out_len, uint64_t *offsets, const char *path) {
    json_t *h = json_object();
    if (!h) return rotq_fail(ROTQ_ERR_NOMEM, "%s: out of memory", path);
    rotq_status s = ROTQ_OK;
    json_t *meta = json_pack("{s:s}", "format", "pt");
    if (!meta || json_object_set_new(h, "__metadata__", meta) != 0) {
        s = rotq_fail(ROTQ_ERR_NOMEM, "%s: out of memory", path);
        goto out;
    }
    uint64_t off = 0;
    for (int64_t i = 0; i < n; i++) {
        const rotq_tensor *t = rotq_model_stored(m, idx[i]);
        rotq_dtype dt = rotq_safetensors_out_dtype(t, want);
        const char *dname = rotq_safetensors_dtype_name(dt);
        if (!dname) {
            s = rotq_fail(ROTQ_ERR_UNSUPPORTED, "%s: tensor %s: safetensors cannot hold %s", path, t->name,
                          rotq_dtype_name(dt));
            goto out;
        }
        uint64_t nb = rotq_dtype_nbytes(dt, rotq_tensor_numel(t));
        json_t *shape = json_array(), *e = json_object();
        bool ok = shape && e;
        for (int32_t d = 0; ok && d < t->n_dims; d++) ok = json_array_append_new(shape, json_integer(t->shape[d])) == 0;
        if (!ok) {
            json_decref(shape);
            json_decref(e);
            s = rotq_fail(ROTQ_ERR_NOMEM, "%s: out of memory", path);
            goto out;
        }
        /* The _new setters take the reference even when they fail, so e alone needs releasing. */
        ok = json_object_set_new(e, "shape", shape) == 0;
        ok = ok && json_object_set_new(e, "dtype", json_string(dname)) == 0;
        ok = ok && json_object_set_new(e, "data_offsets", json_pack("[I,I]", (json_int_t)off, (json_int_t)(off + nb))) == 0;
        if (!ok) {
            json_decref(e);
            s = rotq_fail(ROTQ_ERR_NOMEM, "%s: out of memory", path);
            goto out;
        }
        /* Fails on a name that is not UTF-8, as well as on lack of memory. */
        if (json_object_set_new(h, t->name, e) != 0) {
            s = rotq_fail(ROTQ_ERR_FORMAT, "%s: cannot write header entry for tensor %s (name not UTF-8?)", path, t->name);
            goto out;
        }
        if (offsets) offsets[i] = off;
        off += nb;
    }
    char *txt = json_dumps(h, JSON_COMPACT);
    if (!txt) {
        s = rotq_fail(ROTQ_ERR_NOMEM, "%s: out of memory serializing the header", path);
        goto out;
    }
    size_t len = strlen(txt), padded = (len + 7) & ~(size_t)7;
    char *buf = realloc(txt, padded + 1);
    if (!buf) {
        free(txt);
        s = rotq_fail(ROTQ_ERR_NOMEM, "%s: out of memory", path);
        goto out;
    }
    memset(buf + len, ' ', padded - len);
    buf[padded] = 0;
    *out = buf;
    *out_len = padded;
out:
    json_decref(h);
    return s;
}

rotq_status rotq_safetensors_layout(const rotq_model *m, const int64_t *idx, int64_t n, rotq_dtype want, const char *path,
                                    uint8_t **head, uint64_t *head_len, uint64_t *file_offsets) {
    char *header = NULL;
    uint64_t hlen = 0;
    ROTQ_TRY(build_header(m, idx, n, want, &header, &hlen, file_offsets, path));
    uint8_t *buf = malloc(8 + hlen);
    if (!buf) {
        free(header);
        return rotq_fail(ROTQ_ERR_NOMEM, "%s: out of memory", path);
    }
    for (int i = 0; i < 8; i++) buf[i] = (uint8_t)(hlen >> (8 * i));
    memcpy(buf + 8, header, hlen);
    free(header);
    for (int64_t i = 0; file_offsets && i < n; i++) file_offsets[i] += 8 + hlen;
    *head = buf;
    *head_len = 8 + hlen;
    return ROTQ_OK;
}

static rotq_status pwrite_all(int fd, const void *data, uint64_t n, uint64_t off, const char *path) {
    const uint8_t *p = data;
    while (n) {
        ssize_t w = pwrite(fd, p, n > (1u << 30) ? (1u << 30) : (size_t)n, (off_t)off);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) return rotq_fail(ROTQ_ERR_IO, "%s: write failed: %s", path, w < 0 ? strerror(errno) : "no progress");
        p += w;
        n -= (uint64_t)w;
        off += (uint64_t)w;
    }
    return ROTQ_OK;
}

#define PWRITE_CHUNK (INT64_C(64) * CHUNK_ELEMS) /* elements converted per write: 4M (16 MiB as F32) */

rotq_status rotq_safetensors_pwrite_tensor(int fd, uint64_t off, const rotq_tensor *t, rotq_dtype out, double add,
                                           const char *path) {
    if (out == t->dtype && add == 0) return pwrite_all(fd, t->data, t->nbytes, off, path); /* bitwise copy */
    if (out != ROTQ_F32 && out != ROTQ_F16 && out != ROTQ_BF16)
        return rotq_fail(ROTQ_ERR_UNSUPPORTED, "tensor %s: cannot write as %s", t->name, rotq_dtype_name(out));
    const int64_t n = rotq_tensor_numel(t), block = rotq_dtype_block_size(t->dtype);
    if (block <= 0 || n % block != 0)
        return rotq_fail(ROTQ_ERR_UNSUPPORTED, "tensor %s: %lld elements of %s cannot be converted", t->name,
                         (long long)n, rotq_dtype_name(t->dtype));
    const int64_t chunk = n < PWRITE_CHUNK ? n : PWRITE_CHUNK;
    float *fbuf = malloc((size_t)chunk * sizeof(float));
    uint16_t *hbuf = out == ROTQ_F32 ? NULL : malloc((size_t)chunk * sizeof(uint16_t));
    if (!fbuf || (out != ROTQ_F32 && !hbuf)) {
        free(fbuf);
        free(hbuf);
        return rotq_fail(ROTQ_ERR_NOMEM, "%s: out of memory", path);
    }
    rotq_status st = ROTQ_OK;
    for (int64_t i = 0; i < n && st == ROTQ_OK; i += chunk) {
        const int64_t k = n - i < chunk ? n - i : chunk, pieces = (k + CHUNK_ELEMS - 1) / CHUNK_ELEMS;
        bool failed = false;
        /* pieces of CHUNK_ELEMS (a multiple of every block size) are converted on separate threads */
#pragma omp parallel for schedule(static) if (pieces > 1)
        for (int64_t q = 0; q < pieces; q++) {
            const int64_t b = q * CHUNK_ELEMS, e = k - b < CHUNK_ELEMS ? k - b : CHUNK_ELEMS;
            if (load_f32(t, i + b, e, fbuf + b) != ROTQ_OK) {
#pragma omp atomic write
                failed = true;
                continue;
            }
            if (add != 0)
                for (int64_t j = b; j < b + e; j++) fbuf[j] = (float)((double)fbuf[j] + add);
            if (out == ROTQ_F16)
                for (int64_t j = b; j < b + e; j++) hbuf[j] = rotq_f32_to_f16(fbuf[j]);
            else if (out == ROTQ_BF16)
                for (int64_t j = b; j < b + e; j++) hbuf[j] = rotq_f32_to_bf16(fbuf[j]);
        }
        if (failed) {
            st = rotq_fail(ROTQ_ERR_UNSUPPORTED, "tensor %s: cannot convert %s to float", t->name, rotq_dtype_name(t->dtype));
            break;
        }
        if (out == ROTQ_F32) st = pwrite_all(fd, fbuf, (uint64_t)k * 4, off + (uint64_t)i * 4, path);
        else st = pwrite_all(fd, hbuf, (uint64_t)k * 2, off + (uint64_t)i * 2, path);
    }
    free(fbuf);
    free(hbuf);
    return st;
}

rotq_status rotq_safetensors_write(const rotq_model *m, const int64_t *idx, int64_t n, rotq_dtype want,
                                   const char *path) {
    uint8_t *head = NULL;
    uint64_t hlen = 0, *offs = malloc(sizeof(uint64_t) * (size_t)(n ? n : 1));
    if (!offs) return rotq_fail(ROTQ_ERR_NOMEM, "%s: out of memory", path);
    rotq_status s = rotq_safetensors_layout(m, idx, n, want, path, &head, &hlen, offs);
    if (s != ROTQ_OK) {
        free(offs);
        return s;
    }
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
    if (fd < 0) s = rotq_fail(ROTQ_ERR_IO, "%s: cannot create: %s", path, strerror(errno));
    if (s == ROTQ_OK) s = pwrite_all(fd, head, hlen, 0, path);
    for (int64_t i = 0; i < n && s == ROTQ_OK; i++) {
        const rotq_tensor *t = rotq_model_stored(m, idx[i]);
        s = rotq_safetensors_pwrite_tensor(fd, offs[i], t, rotq_safetensors_out_dtype(t, want), 0, path);
    }
    if (s == ROTQ_OK && fsync(fd) != 0) s = rotq_fail(ROTQ_ERR_IO, "%s: cannot flush: %s", path, strerror(errno));
    if (fd >= 0 && close(fd) != 0 && s == ROTQ_OK) s = rotq_fail(ROTQ_ERR_IO, "%s: cannot close: %s", path, strerror(errno));
    free(head);
    free(offs);
    return s;
}
