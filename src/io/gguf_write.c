/* GGUF v3 writer: metadata (the model's own keys, regenerated general.* and architecture keys, the
 * tokenizer as tokenizer.* keys, the rotation record as rotq.*), tensor infos with llama.cpp's names
 * and Q/K permutation, aligned data. Written to a temporary name and renamed. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "arch/arch.h"
#include "core/files.h"
#include "core/model.h"
#include "io/gguf_format.h"
#include "io/record.h"
#include "tok/tok.h"

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
        if (!gguf_meta_scalar_size(kv->type))
            return rotq_fail(ROTQ_ERR_ARG, "metadata key %s has invalid type %d", kv->key, (int)kv->type);
        kv_key(w, kv->key, kv->type);
        put_scalar(&w->buf, kv->type, kv);
        return ROTQ_OK;
    }
    uint64_t es = gguf_meta_scalar_size(kv->arr_type);
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
    double add;            /* added to every value (a norm's (1 + w) convention, rotq_norm_export_shift) */
} out_tensor;

static rotq_dtype output_dtype(const rotq_tensor *t, rotq_dtype requested) {
    if (gguf_dtype_is_int(t->dtype)) return t->dtype;
    if (rotq_dtype_grid(t->dtype, NULL)) return t->dtype; /* blocks a quantizer packed (rotq_model_pack_weights) */
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
        o->add = rotq_norm_export_shift(m, t, ROTQ_FORMAT_GGUF);
        if (o->add != 0) o->dtype = ROTQ_F32;
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
    if (m->arch->embed_scale_sqrt && hp->attn_scale > 0) {
        /* llama.cpp's gemma3 graph scales q by 1/sqrt(head_dim) (27B, 62 layers: 1/sqrt(hidden/heads)) */
        double want = hp->n_layers == 62 ? 1.0 / sqrt((double)hp->hidden / (double)hp->n_heads) : 1.0 / sqrt((double)hp->head_dim);
        if (fabs(hp->attn_scale - want) > 1e-6 * want)
            return rotq_fail(ROTQ_ERR_UNSUPPORTED, "%s: query scale %g (query_pre_attn_scalar %g) differs from the %g llama.cpp "
                             "uses for %s; GGUF cannot record it", path, hp->attn_scale,
                             1.0 / (hp->attn_scale * hp->attn_scale), want, a);
    }
    if (hp->sliding_window > 0) {
        ROTQ_TRY(check_u32(path, "sliding_window", hp->sliding_window));
        snprintf(key, sizeof key, "%s.attention.sliding_window", a);
        kv_u32(w, key, (uint32_t)hp->sliding_window);
        /* llama.cpp reads no pattern or local base for gemma3 (it hard-codes 6 and 10000): refuse others */
        if (m->arch->default_sliding_pattern && (hp->sliding_pattern != m->arch->default_sliding_pattern ||
                                                 hp->rope_theta_local != m->arch->default_rope_local_theta))
            return rotq_fail(ROTQ_ERR_UNSUPPORTED, "%s: sliding pattern %d / local RoPE base %g differ from the %d / %g that "
                             "llama.cpp assumes for %s; GGUF cannot record them", path, hp->sliding_pattern,
                             hp->rope_theta_local, m->arch->default_sliding_pattern, m->arch->default_rope_local_theta, a);
    }
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
    if (m->quant_desc[0]) kv_string(w, "rotq.quantization", m->quant_desc);
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
    if (o->dtype == t->dtype && o->add == 0) return ROTQ_OK;
    int64_t n = rotq_tensor_numel(t);
    uint8_t *f = malloc((size_t)n * sizeof(float) + 1);
    rotq_status s = f ? rotq_dequantize(t->dtype, *bytes, (float *)(void *)f, n)
                      : rotq_fail(ROTQ_ERR_NOMEM, "%s: out of memory converting tensor %s", path, t->name);
    for (int64_t i = 0; s == ROTQ_OK && o->add != 0 && i < n; i++) {
        float v;
        memcpy(&v, f + 4 * i, 4);
        v = (float)((double)v + o->add);
        memcpy(f + 4 * i, &v, 4);
    }
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

rotq_status rotq_gguf_writable(const rotq_model *m, const char *path) {
    if (!m->arch) return rotq_fail(ROTQ_ERR_ARG, "%s: the model has no architecture bound", path);
    if (!m->arch->gguf_write_id[0])
        return rotq_fail(ROTQ_ERR_UNSUPPORTED, "%s: architecture %s has no GGUF form rotq writes (%s); save it as a "
                         "Hugging Face folder instead", path, m->arch->name,
                         m->vision ? "llama.cpp splits a vision-language model into a text GGUF and an mmproj file"
                                   : "llama.cpp does not run it");
    return ROTQ_OK;
}

rotq_status rotq_save_gguf(const rotq_model *m, const char *path, rotq_dtype dtype) {
    if (!m || !path) return rotq_fail(ROTQ_ERR_ARG, "rotq_save_gguf: NULL argument");
    ROTQ_TRY(rotq_gguf_writable(m, path));
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

    if ((s = rotq_output_target_ok(path, ROTQ_OUTPUT_FILE)) != ROTQ_OK || (s = rotq_tmp_create(path, false, tmp, &fd)) != ROTQ_OK) goto fail;
    tmp_exists = true;
    if ((s = write_all(fd, path, hdr.p, hdr.n)) != ROTQ_OK) goto fail;
    uint64_t pos = hdr.n, data_start = (hdr.n + GGUF_DEFAULT_ALIGNMENT - 1) / GGUF_DEFAULT_ALIGNMENT * GGUF_DEFAULT_ALIGNMENT;
    if ((s = write_zeros(fd, path, data_start - pos)) != ROTQ_OK) goto fail;
    pos = 0;
    for (int64_t i = 0; i < n_out; i++) {
        if ((s = rotq_check_cancel(path)) != ROTQ_OK || (s = write_zeros(fd, path, ot[i].offset - pos)) != ROTQ_OK) goto fail;
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
    if ((s = rotq_check_cancel(path)) != ROTQ_OK) goto fail;
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
