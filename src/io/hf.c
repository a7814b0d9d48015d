/* Hugging Face model folders: config.json + model.safetensors (or shards listed by
 * model.safetensors.index.json) + tokenizer files carried untouched. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "arch/arch.h"
#include "core/files.h"
#include "core/model.h"
#include "io/record.h"
#include "io/safetensors.h"
#include "tok/tok.h"

#define DEFAULT_SHARD_BYTES 5000000000ull /* transformers' "5GB" */
#define SINGLE_FILE "model.safetensors"
#define INDEX_FILE "model.safetensors.index.json"

/* Files read as blobs when present, and written back verbatim. */
static const char *const CARRIED[] = {
    "tokenizer.json", "tokenizer_config.json", "generation_config.json", "special_tokens_map.json",
    "tokenizer.model", "vocab.json", "merges.txt", "chat_template.jinja", "added_tokens.json",
    "tokenizer.bin", /* a llama2.c tokenizer carried into an HF folder by an earlier conversion */
    "preprocessor_config.json", "chat_template.json", /* multimodal processors (Qwen2-VL) */
};

static rotq_status join(char *out, const char *dir, const char *name) {
    if (snprintf(out, PATH_MAX, "%s/%s", dir, name) >= PATH_MAX)
        return rotq_fail(ROTQ_ERR_ARG, "%s/%s: path too long", dir, name);
    return ROTQ_OK;
}

static bool is_file(const char *path) {
    struct stat st;
    return stat(path, &st) == 0 && S_ISREG(st.st_mode);
}

/* Parses a JSON file; errors carry Jansson's line and column. */
static rotq_status read_json(const char *path, size_t flags, json_t **out) {
    uint8_t *data;
    uint64_t size;
    ROTQ_TRY(rotq_read_file(path, &data, &size));
    json_error_t err;
    json_t *j = json_loadb((const char *)data, (size_t)size, flags, &err);
    free(data);
    if (!j)
        return rotq_fail(ROTQ_ERR_FORMAT, "%s: invalid JSON at line %d, column %d: %s", path, err.line, err.column, err.text);
    if (!json_is_object(j)) {
        json_decref(j);
        return rotq_fail(ROTQ_ERR_FORMAT, "%s: top level is not a JSON object", path);
    }
    *out = j;
    return ROTQ_OK;
}

/* ---- loading ------------------------------------------------------------------------------- */

static rotq_status find_arch(const char *path, json_t *config, const rotq_arch **out) {
    json_t *archs = json_object_get(config, "architectures");
    const char *id = NULL;
    if (json_is_array(archs) && json_is_string(json_array_get(archs, 0))) {
        id = json_string_value(json_array_get(archs, 0));
        *out = rotq_arch_find_hf(id);
    } else {
        /* Some configs omit "architectures"; model_type usually equals the registry name. */
        json_t *mt = json_object_get(config, "model_type");
        if (!json_is_string(mt))
            return rotq_fail(ROTQ_ERR_FORMAT, "%s: neither \"architectures\" nor \"model_type\" names the architecture", path);
        id = json_string_value(mt);
        *out = rotq_arch_find(id);
    }
    if (*out) return ROTQ_OK;
    char known[512] = "";
    size_t o = 0;
    for (int32_t i = 0; rotq_arch_name(i) && o < sizeof known; i++)
        o += (size_t)snprintf(known + o, sizeof known - o, "%s%s", i ? ", " : "", rotq_arch_name(i));
    return rotq_fail(ROTQ_ERR_UNSUPPORTED,
                     "%s: architecture \"%.100s\" is not registered (known: %s); describe it in a JSON file and pass "
                     "it with --arch-file FILE (see docs/architectures.md)",
                     path, id, known);
}

typedef struct shard_span {
    const char *file;        /* file name inside the folder (borrowed from the index JSON) */
    int64_t first, count;    /* its tensors in m->tensors */
} shard_span;

static int cmp_str(const void *a, const void *b) { return strcmp(*(const char *const *)a, *(const char *const *)b); }

static rotq_status map_and_parse(rotq_model *m, const char *dir, const char *file) {
    char path[PATH_MAX];
    ROTQ_TRY(join(path, dir, file));
    const uint8_t *base;
    uint64_t size;
    ROTQ_TRY(rotq_model_map_file(m, path, &base, &size));
    return rotq_safetensors_parse(m, path, base, size);
}

static const shard_span *span_of(const shard_span *sp, int32_t n, int64_t tensor) {
    for (int32_t i = 0; i < n; i++)
        if (tensor >= sp[i].first && tensor < sp[i].first + sp[i].count) return &sp[i];
    return NULL;
}

/* Loads every shard the index names (each mapped once, in file-name order) and checks that the
 * weight_map agrees with the shards' own headers. */
static rotq_status load_sharded(rotq_model *m, const char *dir, const char *index_path) {
    json_t *idx;
    ROTQ_TRY(read_json(index_path, JSON_REJECT_DUPLICATES, &idx));
    rotq_status s = ROTQ_OK;
    const char **files = NULL;
    shard_span *spans = NULL;
    json_t *wm = json_object_get(idx, "weight_map");
    if (!json_is_object(wm) || json_object_size(wm) == 0) {
        s = rotq_fail(ROTQ_ERR_FORMAT, "%s: no \"weight_map\" object (or it is empty)", index_path);
        goto out;
    }
    size_t n_entries = json_object_size(wm), n_files = 0;
    files = calloc(n_entries, sizeof *files);
    if (!files) {
        s = rotq_fail(ROTQ_ERR_NOMEM, "%s: out of memory", index_path);
        goto out;
    }
    const char *name;
    json_t *v;
    json_object_foreach(wm, name, v) {
        const char *f = json_string_value(v);
        if (!f || !*f || strchr(f, '/') || strcmp(f, ".") == 0 || strcmp(f, "..") == 0) {
            s = rotq_fail(ROTQ_ERR_FORMAT, "%s: weight_map entry for %s is not a plain file name in the folder", index_path, name);
            goto out;
        }
        files[n_files++] = f;
    }
    qsort(files, n_files, sizeof *files, cmp_str);
    size_t u = 0;
    for (size_t i = 0; i < n_files; i++)
        if (u == 0 || strcmp(files[u - 1], files[i]) != 0) files[u++] = files[i];
    n_files = u;
    if (n_files + (size_t)m->n_maps > ROTQ_MAX_MAPS) {
        s = rotq_fail(ROTQ_ERR_UNSUPPORTED, "%s: %zu shards; rotq maps at most %d files", index_path, n_files, ROTQ_MAX_MAPS);
        goto out;
    }
    spans = calloc(n_files, sizeof *spans);
    if (!spans) {
        s = rotq_fail(ROTQ_ERR_NOMEM, "%s: out of memory", index_path);
        goto out;
    }
    for (size_t i = 0; i < n_files; i++) {
        spans[i].file = files[i];
        spans[i].first = m->n_tensors;
        char path[PATH_MAX];
        if ((s = join(path, dir, files[i])) != ROTQ_OK) goto out;
        if (!is_file(path)) {
            s = rotq_fail(ROTQ_ERR_NOT_FOUND, "%s: weight_map names shard %s, which does not exist", index_path, files[i]);
            goto out;
        }
        int64_t before = m->n_tensors;
        if ((s = map_and_parse(m, dir, files[i])) != ROTQ_OK) goto out;
        spans[i].count = m->n_tensors - before;
    }
    json_object_foreach(wm, name, v) {
        const char *f = json_string_value(v);
        rotq_tensor *t = rotq_model_find(m, name);
        if (!t) {
            s = rotq_fail(ROTQ_ERR_FORMAT, "%s: weight_map places tensor %s in %s, which has no such tensor", index_path,
                          name, f);
            goto out;
        }
        const shard_span *sp = span_of(spans, (int32_t)n_files, t - m->tensors);
        if (!sp || strcmp(sp->file, f) != 0) {
            s = rotq_fail(ROTQ_ERR_FORMAT, "%s: weight_map places tensor %s in %s, but it is in %s", index_path, name, f,
                          sp ? sp->file : "?");
            goto out;
        }
    }
out:
    free(files);
    free(spans);
    json_decref(idx);
    return s;
}

static rotq_status read_carried(rotq_model *m, const char *dir) {
    for (size_t i = 0; i < sizeof CARRIED / sizeof CARRIED[0]; i++) {
        char path[PATH_MAX];
        ROTQ_TRY(join(path, dir, CARRIED[i]));
        if (!is_file(path)) continue;
        uint8_t *data;
        uint64_t size;
        ROTQ_TRY(rotq_read_file(path, &data, &size));
        rotq_status s = rotq_model_add_blob(m, CARRIED[i], data, size);
        free(data);
        ROTQ_TRY(s);
    }
    return ROTQ_OK;
}

/* transformers 5 may name a multimodal checkpoint's parts model.language_model.* and model.visual.*;
 * rotq keeps (and writes) the names Qwen2-VL checkpoints carry: model.*, visual.*, lm_head.* */
static void legacy_name(char *name) {
    static const char *const from[] = {"model.language_model.", "model.visual."}, *const to[] = {"model.", "visual."};
    for (int i = 0; i < 2; i++) {
        size_t n = strlen(from[i]);
        if (strncmp(name, from[i], n) == 0) {
            memmove(name + strlen(to[i]), name + n, strlen(name + n) + 1);
            memcpy(name, to[i], strlen(to[i]));
        }
    }
}

/* Reads the image processor's settings a multimodal folder carries (preprocessor_config.json). */
static rotq_status read_preprocessor(rotq_model *m, const char *dir) {
    const rotq_blob *b = rotq_model_blob(m, "preprocessor_config.json");
    if (!b) return ROTQ_OK;
    json_error_t err;
    json_t *j = json_loadb((const char *)b->data, (size_t)b->size, 0, &err);
    if (!json_is_object(j)) {
        json_decref(j);
        return rotq_fail(ROTQ_ERR_FORMAT, "%s/preprocessor_config.json: invalid JSON at line %d: %s", dir, err.line, err.text);
    }
    rotq_vision_config *v = &m->vis;
    rotq_status s = ROTQ_OK;
    struct { const char *key; int64_t *dst; } ints[] = {
        {"min_pixels", &v->min_pixels}, {"max_pixels", &v->max_pixels}, {"patch_size", &v->patch},
        {"temporal_patch_size", &v->temporal_patch}, {"merge_size", &v->merge}};
    json_t *size = json_object_get(j, "size");
    for (size_t i = 0; i < sizeof ints / sizeof ints[0]; i++) {
        json_t *x = json_object_get(j, ints[i].key);
        if (x && !json_is_null(x)) {
            if (!json_is_integer(x) || json_integer_value(x) <= 0)
                s = rotq_fail(ROTQ_ERR_FORMAT, "%s/preprocessor_config.json: %s is not a positive integer", dir, ints[i].key);
            else *ints[i].dst = json_integer_value(x);
        }
    }
    /* transformers 5 states the pixel bounds as size.shortest_edge / size.longest_edge */
    if (json_is_object(size) && !json_object_get(j, "min_pixels") && json_is_integer(json_object_get(size, "shortest_edge")))
        v->min_pixels = json_integer_value(json_object_get(size, "shortest_edge"));
    if (json_is_object(size) && !json_object_get(j, "max_pixels") && json_is_integer(json_object_get(size, "longest_edge")))
        v->max_pixels = json_integer_value(json_object_get(size, "longest_edge"));
    const char *arrays[] = {"image_mean", "image_std"};
    for (int a = 0; a < 2 && s == ROTQ_OK; a++) {
        json_t *x = json_object_get(j, arrays[a]);
        if (!x) continue;
        if (!json_is_array(x) || json_array_size(x) != 3) {
            s = rotq_fail(ROTQ_ERR_FORMAT, "%s/preprocessor_config.json: %s must list 3 numbers", dir, arrays[a]);
            break;
        }
        for (size_t c = 0; c < 3; c++) (a ? v->std : v->mean)[c] = json_number_value(json_array_get(x, c));
    }
    json_t *rs = json_object_get(j, "resample"), *dn = json_object_get(j, "do_normalize"), *dr = json_object_get(j, "do_resize");
    if (s == ROTQ_OK && ((rs && (!json_is_integer(rs) || json_integer_value(rs) != 3)) || json_is_false(dn) || json_is_false(dr)))
        s = rotq_fail(ROTQ_ERR_UNSUPPORTED, "%s/preprocessor_config.json: rotq resizes with bicubic resampling (3) and "
                      "normalises, as Qwen2-VL's processor does; this one asks otherwise", dir);
    for (int c = 0; s == ROTQ_OK && c < 3; c++)
        if (!(v->std[c] > 0)) s = rotq_fail(ROTQ_ERR_FORMAT, "%s/preprocessor_config.json: image_std must be positive", dir);
    if (s == ROTQ_OK && v->min_pixels > v->max_pixels)
        s = rotq_fail(ROTQ_ERR_FORMAT, "%s/preprocessor_config.json: min_pixels %lld above max_pixels %lld", dir,
                      (long long)v->min_pixels, (long long)v->max_pixels);
    json_decref(j);
    return s;
}

/* A multimodal checkpoint: moves the vision tower's tensors (arch->vision_prefix) into a model of
 * their own, described by the registered architecture arch->vision, with vision_config's settings. */
static rotq_status split_vision(rotq_model *m, const char *dir, const json_t *config) {
    const rotq_arch *va = rotq_arch_find(m->arch->vision);
    if (!va || !va->vision_tower)
        return rotq_fail(ROTQ_ERR_UNSUPPORTED, "%s: architecture %s names vision tower \"%s\", which is not registered as one",
                         dir, m->arch->name, m->arch->vision);
    rotq_model *v = rotq_model_new();
    if (!v) return rotq_fail(ROTQ_ERR_NOMEM, "out of memory");
    m->vision = v;
    v->arch = va;
    v->source_format = ROTQ_FORMAT_HF;
    snprintf(v->source_path, sizeof v->source_path, "%s (vision tower)", dir);
    ROTQ_TRY(rotq_hparams_vision_from_hf(va, json_object_get(config, "vision_config"), dir, m->hp.hidden, &v->hp, &m->vis));
    ROTQ_TRY(read_preprocessor(m, dir));
    int64_t ids[3] = {-1, -1, -1};
    const char *keys[3] = {"image_token_id", "vision_start_token_id", "vision_end_token_id"};
    for (int i = 0; i < 3; i++) {
        json_t *x = json_object_get(config, keys[i]);
        if (json_is_integer(x)) ids[i] = json_integer_value(x);
        if (ids[i] < -1 || ids[i] >= (int64_t)1 << 30) return rotq_fail(ROTQ_ERR_FORMAT, "%s: config.json %s is out of range", dir, keys[i]);
    }
    m->vis.image_token = (int32_t)ids[0];
    m->vis.vision_start = (int32_t)ids[1];
    m->vis.vision_end = (int32_t)ids[2];
    v->vis = m->vis;
    size_t plen = strlen(m->arch->vision_prefix);
    int64_t kept = 0;
    for (int64_t i = 0; i < m->n_tensors; i++) {
        rotq_tensor *t = &m->tensors[i];
        legacy_name(t->name);
        if (strncmp(t->name, m->arch->vision_prefix, plen) != 0) {
            m->tensors[kept++] = *t;
            continue;
        }
        if (v->n_tensors == v->cap_tensors) {
            int64_t cap = v->cap_tensors ? 2 * v->cap_tensors : 64;
            rotq_tensor *nt = realloc(v->tensors, (size_t)cap * sizeof *nt);
            if (!nt) return rotq_fail(ROTQ_ERR_NOMEM, "out of memory");
            v->tensors = nt;
            v->cap_tensors = cap;
        }
        v->tensors[v->n_tensors++] = *t; /* data stays in m's mappings; v maps nothing */
    }
    m->n_tensors = kept;
    if (v->n_tensors == 0)
        return rotq_fail(ROTQ_ERR_FORMAT, "%s: architecture %s has a vision tower but no tensor is named %s*", dir,
                         m->arch->name, m->arch->vision_prefix);
    return ROTQ_OK;
}

rotq_status rotq_load_hf(const char *dir, rotq_model *m) {
    char path[PATH_MAX];
    ROTQ_TRY(join(path, dir, "config.json"));
    if (!is_file(path)) return rotq_fail(ROTQ_ERR_NOT_FOUND, "%s: no config.json, so not a Hugging Face model folder", dir);
    json_t *config;
    ROTQ_TRY(read_json(path, 0, &config));
    const rotq_arch *arch;
    rotq_status s = find_arch(path, config, &arch);
    if (s != ROTQ_OK) {
        json_decref(config);
        return s;
    }
    if (m->hf_config) json_decref((json_t *)m->hf_config);
    m->hf_config = config; /* the model owns it from here on */
    ROTQ_TRY(rotq_hparams_from_hf_config(arch, config, path, &m->hp));
    m->arch = arch;
    m->source_format = ROTQ_FORMAT_HF;
    if (!m->source_path[0]) snprintf(m->source_path, sizeof m->source_path, "%s", dir);

    char single[PATH_MAX], index[PATH_MAX];
    ROTQ_TRY(join(single, dir, SINGLE_FILE));
    ROTQ_TRY(join(index, dir, INDEX_FILE));
    if (is_file(single)) {
        ROTQ_TRY(map_and_parse(m, dir, SINGLE_FILE));
    } else if (is_file(index)) {
        ROTQ_TRY(load_sharded(m, dir, index));
    } else {
        char bin[PATH_MAX];
        ROTQ_TRY(join(bin, dir, "pytorch_model.bin"));
        return rotq_fail(ROTQ_ERR_NOT_FOUND, "%s: neither %s nor %s found%s", dir, SINGLE_FILE, INDEX_FILE,
                         is_file(bin) ? " (pytorch_model.bin is not read: convert it to safetensors first)" : "");
    }
    ROTQ_TRY(read_carried(m, dir));
    ROTQ_TRY(rotq_ct_read(m, dir, config));
    return arch->vision[0] ? split_vision(m, dir, config) : ROTQ_OK;
}

/* ---- saving -------------------------------------------------------------------------------- */

static const char *torch_dtype_name(rotq_dtype dt) {
    switch (dt) {
    case ROTQ_F32: return "float32";
    case ROTQ_F16: return "float16";
    case ROTQ_BF16: return "bfloat16";
    case ROTQ_F64: return "float64";
    default: return NULL;
    }
}

static rotq_status write_new_file(const char *path, const void *data, uint64_t size) {
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL, 0644);
    if (fd < 0) return rotq_fail(ROTQ_ERR_IO, "%s: cannot create: %s", path, strerror(errno));
    const uint8_t *p = data;
    while (size) {
        ssize_t w = write(fd, p, size > (1u << 30) ? (1u << 30) : (size_t)size);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) {
            int e = errno;
            close(fd);
            return rotq_fail(ROTQ_ERR_IO, "%s: write failed: %s", path, strerror(e));
        }
        p += w;
        size -= (uint64_t)w;
    }
    if (fsync(fd) != 0) {
        int e = errno;
        close(fd);
        return rotq_fail(ROTQ_ERR_IO, "%s: cannot flush: %s", path, strerror(e));
    }
    if (close(fd) != 0) return rotq_fail(ROTQ_ERR_IO, "%s: cannot close: %s", path, strerror(errno));
    return ROTQ_OK;
}

static rotq_status write_json(const char *path, json_t *j, size_t flags) {
    char *txt = json_dumps(j, flags);
    if (!txt) return rotq_fail(ROTQ_ERR_NOMEM, "%s: cannot serialize JSON", path);
    size_t len = strlen(txt);
    char *buf = realloc(txt, len + 2);
    if (!buf) {
        free(txt);
        return rotq_fail(ROTQ_ERR_NOMEM, "%s: out of memory", path);
    }
    buf[len] = '\n';
    rotq_status s = write_new_file(path, buf, len + 1);
    free(buf);
    return s;
}

/* config.json: the loaded (or synthesized) config with dtype and tying set to what is written. */
static rotq_status write_config(const rotq_model *m, const char *tmp, rotq_dtype written) {
    json_t *cfg = m->hf_config ? json_deep_copy((json_t *)m->hf_config) : NULL;
    if (!cfg && m->arch) cfg = rotq_hparams_to_hf_config(m->arch, &m->hp);
    if (!cfg) return rotq_fail(ROTQ_ERR_ARG, "%s: the model has no config.json and no architecture to build one", tmp);
    const char *tname = torch_dtype_name(written);
    int rc = 0;
    if (tname) {
        rc |= json_object_set_new(cfg, "torch_dtype", json_string(tname));
        if (json_object_get(cfg, "dtype")) rc |= json_object_set_new(cfg, "dtype", json_string(tname));
    }
    rc |= json_object_set_new(cfg, "tie_word_embeddings", json_boolean(m->hp.tied_embeddings));
    /* online rotations (and how fused ones were made) travel as "rotq" for rotq's own runner */
    json_t *record = rotq_record_to_json(&m->rot);
    if (record) rc |= json_object_set_new(cfg, "rotq", record);
    else json_object_del(cfg, "rotq");
    json_t *vrecord = m->vision ? rotq_record_to_json(&m->vision->rot) : NULL; /* the vision tower's, beside it */
    if (vrecord) rc |= json_object_set_new(cfg, "rotq_vision", vrecord);
    else json_object_del(cfg, "rotq_vision");
    char path[PATH_MAX];
    rotq_status s = rc ? rotq_fail(ROTQ_ERR_NOMEM, "%s: out of memory building config.json", tmp) : join(path, tmp, "config.json");
    if (s == ROTQ_OK) s = write_json(path, cfg, JSON_INDENT(2));
    json_decref(cfg);
    return s;
}

/* Names this writer produces itself: a carried blob of that name is not copied over them. */
static bool is_generated_name(const char *name) {
    size_t n = strlen(name);
    return strcmp(name, "config.json") == 0 || strcmp(name, INDEX_FILE) == 0 ||
           (strncmp(name, "model", 5) == 0 && n > 12 && strcmp(name + n - 12, ".safetensors") == 0);
}

static rotq_status write_blobs(const rotq_model *m, const char *tmp) {
    for (int32_t i = 0; i < m->n_blobs; i++) {
        const rotq_blob *b = &m->blobs[i];
        if (!b->name[0] || strchr(b->name, '/') || b->name[0] == '.')
            return rotq_fail(ROTQ_ERR_ARG, "carried file name \"%s\" is not a plain file name", b->name);
        if (is_generated_name(b->name)) continue;
        char path[PATH_MAX];
        ROTQ_TRY(join(path, tmp, b->name));
        ROTQ_TRY(write_new_file(path, b->data, b->size));
    }
    return ROTQ_OK;
}

static void fsync_dir(const char *dir) {
    int fd = open(dir, O_RDONLY | O_DIRECTORY);
    if (fd >= 0) {
        fsync(fd);
        close(fd);
    }
}

/* An HF folder being written: the layout of every tensor (shard, offset, dtype) is fixed when it is
 * opened, each shard's header is written then, and tensors are written at their offsets in any order
 * as they become final (a streamed rotation frees each one right after). */
struct rotq_hf_writer {
    char dir[PATH_MAX], tmp[PATH_MAX];
    rotq_dtype want, majority;
    int64_t n, n_shards;
    int64_t *shard_of;
    uint64_t *offset, *nbytes;
    rotq_dtype *out_dt;
    bool *done;
    char (*files)[64];
};

static void writer_free(rotq_hf_writer *w) {
    if (!w) return;
    free(w->shard_of);
    free(w->offset);
    free(w->nbytes);
    free(w->out_dt);
    free(w->done);
    free(w->files);
    free(w);
}

void rotq_hf_writer_abort(rotq_hf_writer *w) {
    if (!w) return;
    rotq_tmp_remove_folder(w->tmp);
    writer_free(w);
}

/* Plans shards of at most shard_bytes (a larger tensor alone), creates each shard with its header. */
static rotq_status plan_and_create(rotq_hf_writer *w, const rotq_model *m, uint64_t shard_bytes) {
    int64_t n = w->n;
    uint64_t per_dtype[ROTQ_DTYPE_COUNT] = {0}, fill = 0;
    w->n_shards = n ? 1 : 0;
    for (int64_t i = 0; i < n; i++) {
        const rotq_tensor *t = rotq_model_stored(m, i);
        rotq_dtype dt = rotq_safetensors_out_dtype(t, w->want);
        if (!rotq_safetensors_dtype_name(dt))
            return rotq_fail(ROTQ_ERR_UNSUPPORTED, "tensor %s: safetensors cannot hold %s", t->name, rotq_dtype_name(dt));
        w->out_dt[i] = dt;
        w->nbytes[i] = rotq_dtype_nbytes(dt, rotq_tensor_numel(t));
        if (fill > 0 && fill + w->nbytes[i] > shard_bytes) {
            w->n_shards++;
            fill = 0;
        }
        fill += w->nbytes[i];
        w->shard_of[i] = w->n_shards - 1;
        if (rotq_dtype_is_float(dt)) per_dtype[dt] += w->nbytes[i];
    }
    w->majority = ROTQ_DTYPE_INVALID;
    for (int d = 0; d < ROTQ_DTYPE_COUNT; d++)
        if (per_dtype[d] && (w->majority == ROTQ_DTYPE_INVALID || per_dtype[d] > per_dtype[w->majority])) w->majority = (rotq_dtype)d;
    if (w->n_shards > 99999)
        return rotq_fail(ROTQ_ERR_ARG, "%lld shards of %llu bytes: choose a larger shard size", (long long)w->n_shards,
                         (unsigned long long)shard_bytes);
    w->files = calloc((size_t)(w->n_shards ? w->n_shards : 1), sizeof *w->files);
    int64_t *idx = malloc(sizeof(int64_t) * (size_t)(n ? n : 1));
    uint64_t *offs = malloc(sizeof(uint64_t) * (size_t)(n ? n : 1));
    rotq_status s = w->files && idx && offs ? ROTQ_OK : rotq_fail(ROTQ_ERR_NOMEM, "out of memory planning %lld tensors", (long long)n);
    for (int64_t sh = 0, i = 0; s == ROTQ_OK && sh < w->n_shards; sh++) {
        if (w->n_shards == 1) snprintf(w->files[sh], sizeof w->files[sh], "%s", SINGLE_FILE);
        else snprintf(w->files[sh], sizeof w->files[sh], "model-%05lld-of-%05lld.safetensors", (long long)sh + 1, (long long)w->n_shards);
        int64_t first = i, k = 0;
        for (; i < n && w->shard_of[i] == sh; i++) idx[k++] = i;
        char path[PATH_MAX];
        uint8_t *head = NULL;
        uint64_t hlen = 0;
        if ((s = join(path, w->tmp, w->files[sh])) != ROTQ_OK) break;
        if ((s = rotq_safetensors_layout(m, idx, k, w->want, path, &head, &hlen, offs)) != ROTQ_OK) break;
        for (int64_t j = 0; j < k; j++) w->offset[first + j] = offs[j];
        s = write_new_file(path, head, hlen); /* the data follow at their offsets */
        free(head);
    }
    free(idx);
    free(offs);
    return s;
}

rotq_status rotq_hf_writer_open(const rotq_model *m, const char *dir_in, rotq_dtype dtype, uint64_t shard_bytes, rotq_hf_writer **out) {
    *out = NULL;
    if (dtype != ROTQ_DTYPE_INVALID && dtype != ROTQ_F32 && dtype != ROTQ_F16 && dtype != ROTQ_BF16)
        return rotq_fail(ROTQ_ERR_ARG, "%s: Hugging Face output takes f32, f16 or bf16, not %s", dir_in, rotq_dtype_name(dtype));
    if (shard_bytes == 0) shard_bytes = DEFAULT_SHARD_BYTES;
    rotq_hf_writer *w = calloc(1, sizeof *w);
    if (!w) return rotq_fail(ROTQ_ERR_NOMEM, "out of memory");
    char *dir = w->dir;
    if (snprintf(dir, sizeof w->dir, "%s", dir_in) >= (int)sizeof w->dir - 16) {
        writer_free(w);
        return rotq_fail(ROTQ_ERR_ARG, "%s: path too long", dir_in);
    }
    size_t len = strlen(dir);
    while (len > 1 && dir[len - 1] == '/') dir[--len] = 0;
    /* The policy (exists? replaceable?) was applied by rotq_save_check; here only what holds always. */
    rotq_status s = len ? rotq_path_check_distinct(m->source_path, dir) : rotq_fail(ROTQ_ERR_ARG, "empty output path");
    if (s == ROTQ_OK) s = rotq_output_target_ok(dir, ROTQ_OUTPUT_FOLDER);
    int no_fd;
    if (s == ROTQ_OK) s = rotq_tmp_create(dir, true, w->tmp, &no_fd);
    if (s != ROTQ_OK) {
        w->tmp[0] = 0;
        writer_free(w);
        return s;
    }
    w->want = dtype;
    w->n = rotq_model_n_stored(m);
    size_t cnt = (size_t)(w->n ? w->n : 1);
    w->shard_of = calloc(cnt, sizeof *w->shard_of);
    w->offset = calloc(cnt, sizeof *w->offset);
    w->nbytes = calloc(cnt, sizeof *w->nbytes);
    w->out_dt = calloc(cnt, sizeof *w->out_dt);
    w->done = calloc(cnt, sizeof *w->done);
    s = w->shard_of && w->offset && w->nbytes && w->out_dt && w->done ? plan_and_create(w, m, shard_bytes)
                                                                     : rotq_fail(ROTQ_ERR_NOMEM, "out of memory planning %lld tensors", (long long)w->n);
    if (s != ROTQ_OK) {
        rotq_hf_writer_abort(w);
        return s;
    }
    *out = w;
    return ROTQ_OK;
}

rotq_status rotq_hf_writer_put(rotq_hf_writer *w, const rotq_model *m, int64_t i) {
    if (i < 0 || i >= w->n) return rotq_fail(ROTQ_ERR_ARG, "%s: tensor %lld was not in the model when the folder was opened", w->dir, (long long)i);
    const rotq_tensor *t = rotq_model_stored(m, i);
    rotq_dtype dt = rotq_safetensors_out_dtype(t, w->want);
    if (w->done[i]) return rotq_fail(ROTQ_ERR_ARG, "%s: tensor %s written twice", w->dir, t->name);
    ROTQ_TRY(rotq_check_cancel(w->dir));
    if (dt != w->out_dt[i] || rotq_dtype_nbytes(dt, rotq_tensor_numel(t)) != w->nbytes[i])
        return rotq_fail(ROTQ_ERR_ARG, "%s: tensor %s changed dtype or shape after the folder was laid out", w->dir, t->name);
    char path[PATH_MAX];
    ROTQ_TRY(join(path, w->tmp, w->files[w->shard_of[i]]));
    int fd = open(path, O_WRONLY | O_CLOEXEC);
    if (fd < 0) return rotq_fail(ROTQ_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    rotq_status s = rotq_safetensors_pwrite_tensor(fd, w->offset[i], t, dt, rotq_norm_export_shift(m, t, ROTQ_FORMAT_HF), path);
    if (close(fd) != 0 && s == ROTQ_OK) s = rotq_fail(ROTQ_ERR_IO, "%s: cannot close: %s", path, strerror(errno));
    if (s == ROTQ_OK) w->done[i] = true;
    if (s == ROTQ_OK && !t->owned) rotq_tensor_drop_source(t); /* written from the mapping: its pages can go */
    return s;
}

static rotq_status finish_files(rotq_hf_writer *w, const rotq_model *m) {
    for (int64_t i = 0; i < w->n; i++)
        if (!w->done[i]) return rotq_fail(ROTQ_ERR_ARG, "%s: tensor %s was never written", w->dir, rotq_model_stored(m, i)->name);
    for (int64_t sh = 0; sh < w->n_shards; sh++) {
        char path[PATH_MAX];
        ROTQ_TRY(join(path, w->tmp, w->files[sh]));
        int fd = open(path, O_WRONLY | O_CLOEXEC);
        if (fd < 0) return rotq_fail(ROTQ_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
        int rc = fsync(fd), e = errno;
        if (close(fd) != 0 || rc != 0) return rotq_fail(ROTQ_ERR_IO, "%s: cannot flush: %s", path, strerror(rc ? e : errno));
    }
    if (w->n_shards > 1) {
        uint64_t total = 0;
        for (int64_t i = 0; i < w->n; i++) total += w->nbytes[i];
        json_t *wm = json_object();
        json_t *index = json_pack("{s:{s:I},s:o}", "metadata", "total_size", (json_int_t)total, "weight_map", wm);
        if (!index) return rotq_fail(ROTQ_ERR_NOMEM, "out of memory building %s", INDEX_FILE);
        rotq_status s = ROTQ_OK;
        for (int64_t i = 0; i < w->n && s == ROTQ_OK; i++)
            if (json_object_set_new(wm, rotq_model_stored(m, i)->name, json_string(w->files[w->shard_of[i]])) != 0)
                s = rotq_fail(ROTQ_ERR_FORMAT, "tensor %s: cannot record it in %s", rotq_model_stored(m, i)->name, INDEX_FILE);
        char path[PATH_MAX];
        if (s == ROTQ_OK && (s = join(path, w->tmp, INDEX_FILE)) == ROTQ_OK) s = write_json(path, index, JSON_INDENT(2));
        json_decref(index);
        ROTQ_TRY(s);
    }
    ROTQ_TRY(write_config(m, w->tmp, w->want != ROTQ_DTYPE_INVALID ? w->want : w->majority));
    ROTQ_TRY(write_blobs(m, w->tmp));
    return rotq_tok_export_hf(m, w->tmp); /* GGUF / llama2.c tokenizer → tokenizer.json */
}

rotq_status rotq_hf_writer_finish(rotq_hf_writer *w, const rotq_model *m) {
    rotq_status s = finish_files(w, m);
    if (s == ROTQ_OK) {
        fsync_dir(w->tmp);
        /* rename() replaces an empty folder atomically and fails on a non-empty one; a model folder the
         * caller chose to replace (rotq_save_check allowed it) is swapped in atomically, then removed. */
        s = rotq_check_cancel(w->dir);
        if (s == ROTQ_OK && rename(w->tmp, w->dir) != 0) {
            if ((errno == ENOTEMPTY || errno == EEXIST) && renameat2(AT_FDCWD, w->tmp, AT_FDCWD, w->dir, RENAME_EXCHANGE) == 0)
                rotq_tmp_remove_folder(w->tmp); /* the old folder now has the temporary's name */
            else s = rotq_fail(ROTQ_ERR_IO, "%s: cannot move %s into place: %s", w->dir, w->tmp, strerror(errno));
        }
    }
    if (s != ROTQ_OK) {
        rotq_hf_writer_abort(w);
        return s;
    }
    char parent[PATH_MAX];
    memcpy(parent, w->dir, sizeof parent);
    char *slash = strrchr(parent, '/');
    if (slash) {
        if (slash == parent) slash[1] = 0;
        else *slash = 0;
        fsync_dir(parent);
    } else {
        fsync_dir(".");
    }
    writer_free(w);
    return ROTQ_OK;
}

rotq_status rotq_save_hf(const rotq_model *m, const char *dir, rotq_dtype dtype, uint64_t shard_bytes) {
    rotq_hf_writer *w;
    ROTQ_TRY(rotq_hf_writer_open(m, dir, dtype, shard_bytes, &w));
    for (int64_t i = 0; i < rotq_model_n_stored(m); i++) {
        rotq_status s = rotq_hf_writer_put(w, m, i);
        if (s != ROTQ_OK) {
            rotq_hf_writer_abort(w);
            return s;
        }
    }
    return rotq_hf_writer_finish(w, m);
}
