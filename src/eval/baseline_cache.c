/* Float baselines kept on disk (rotq_baseline_cache_*, rotq.h). A baseline is a pure function of
 * the weights, the token ids, the window settings, the thread count and the code, so a record is
 * keyed by fingerprints of exactly those; the full key is stored in the record and compared, the
 * file name is only its hash. */
#include <dlfcn.h>
#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "core/model.h"

struct rotq_baseline_cache {
    char dir[4096];       /* the cache folder */
    char key[512];        /* the full key, stored in the record and compared */
    int threads;
};

/* 64-bit fingerprint: four independent multiply-xorshift lanes over 8-byte words (memory speed),
 * folded at the end. Detects any change of the bytes; not meant against deliberate collisions. */
typedef struct fp { uint64_t lane[4]; uint64_t n; } fp;

static void fp_init(fp *f) {
    f->lane[0] = 0x9E3779B97F4A7C15ull; f->lane[1] = 0xC2B2AE3D27D4EB4Full;
    f->lane[2] = 0x165667B19E3779F9ull; f->lane[3] = 0xD6E8FEB86659FD93ull;
    f->n = 0;
}

static inline uint64_t mix(uint64_t h, uint64_t w) {
    h ^= w;
    h *= 0xFF51AFD7ED558CCDull;
    return h ^ (h >> 29);
}

static void fp_bytes(fp *f, const void *data, uint64_t size) {
    const unsigned char *p = data;
    uint64_t i = 0, w[4];
    for (; i + 32 <= size; i += 32) {
        memcpy(w, p + i, 32);
        for (int k = 0; k < 4; k++) f->lane[k] = mix(f->lane[k], w[k]);
    }
    for (; i < size; i++) f->lane[i & 3] = mix(f->lane[i & 3], p[i] | 0x100u);
    f->n += size;
}

static uint64_t fp_done(const fp *f) {
    uint64_t h = f->n;
    for (int k = 0; k < 4; k++) h = mix(h * 31 + k, f->lane[k]);
    return mix(h, h >> 17);
}

static void fp_i64(fp *f, int64_t v) { fp_bytes(f, &v, sizeof v); }
static void fp_f64(fp *f, double v) { fp_bytes(f, &v, sizeof v); }

static uint64_t model_fingerprint(const rotq_model *m) {
    fp f;
    fp_init(&f);
    const rotq_hparams *hp = &m->hp;
    fp_bytes(&f, hp->arch, strnlen(hp->arch, sizeof hp->arch));
    int64_t ints[] = {hp->hidden, hp->intermediate, hp->n_layers, hp->n_heads, hp->n_kv_heads, hp->head_dim, hp->vocab,
                      hp->max_pos, hp->rope_scaling, hp->rope_orig_max_pos, hp->rotary_dim, hp->tied_embeddings,
                      hp->mlp_act, m->rot.norms_fused, m->rot.ln_as_rms, hp->sliding_window, hp->sliding_pattern};
    for (size_t i = 0; i < sizeof ints / sizeof ints[0]; i++) fp_i64(&f, ints[i]);
    double reals[] = {hp->norm_eps, hp->rope_theta, hp->rope_factor, hp->rope_low_freq_factor, hp->rope_high_freq_factor,
                      hp->norm_offset, hp->embed_scale, hp->attn_scale, hp->rope_theta_local};
    for (size_t i = 0; i < sizeof reals / sizeof reals[0]; i++) fp_f64(&f, reals[i]);
    for (int64_t i = 0; i < m->n_tensors; i++) {
        const rotq_tensor *t = &m->tensors[i];
        fp_bytes(&f, t->name, strnlen(t->name, sizeof t->name));
        fp_i64(&f, t->dtype);
        for (int32_t d = 0; d < t->n_dims; d++) fp_i64(&f, t->shape[d]);
        fp_bytes(&f, t->data, t->nbytes);
    }
    return fp_done(&f);
}

/* The bytes of the code that computes perplexities (the shared library, or the executable rotq is
 * linked into): a record is reused only by the very code that computed it, since any change to a
 * kernel may move the last bits of a perplexity. */
static uint64_t code_fingerprint(void) {
    static _Thread_local uint64_t cached;
    if (cached) return cached;
    fp f;
    fp_init(&f);
    Dl_info info;
    const char *path = dladdr((void *)code_fingerprint, &info) && info.dli_fname && *info.dli_fname ? info.dli_fname
                                                                                                    : "/proc/self/exe";
    FILE *fh = fopen(path, "rb");
    if (!fh) fh = fopen("/proc/self/exe", "rb");
    if (fh) {
        unsigned char buf[1 << 16];
        size_t got;
        while ((got = fread(buf, 1, sizeof buf, fh)) > 0) fp_bytes(&f, buf, got);
        fclose(fh);
    }
    cached = fp_done(&f) | 1;
    return cached;
}

static void make_key(const rotq_model *m, const int32_t *ids, int64_t n, const rotq_ppl_options *po, int threads,
                     char *key, size_t size) {
    fp f;
    fp_init(&f);
    fp_bytes(&f, ids, (uint64_t)n * sizeof *ids);
    const char *bos[] = {"none", "first", "every"};
    snprintf(key, size, "rotq %s (code %016llx, %d threads) float32 baseline | weights %016llx | %lld token ids %016llx | %s protocol, ctx %lld, "
             "BOS %s%s (id %d), max windows %lld", ROTQ_VERSION, (unsigned long long)code_fingerprint(), threads,
             (unsigned long long)model_fingerprint(m), (long long)n,
             (unsigned long long)fp_done(&f), po->protocol == ROTQ_PPL_LLAMACPP ? "llama.cpp" : "papers",
             (long long)po->ctx, bos[po->bos], po->add_bos ? " add" : "", po->bos_id, (long long)po->max_windows);
}

static bool cache_dir(const char *arg, char *buf, size_t size) {
    const char *env = getenv("ROTQ_CACHE_DIR"), *xdg = getenv("XDG_CACHE_HOME"), *home = getenv("HOME");
    if (!arg && env && *env) arg = env;
    if (arg) {
        if (strcmp(arg, "off") == 0) return false;
        snprintf(buf, size, "%s", arg);
    } else if (xdg && *xdg) snprintf(buf, size, "%s/rotq", xdg);
    else if (home && *home) snprintf(buf, size, "%s/.cache/rotq", home);
    else return false;
    return true;
}

rotq_status rotq_baseline_cache_open(const char *dir, const rotq_model *m, const int32_t *ids, int64_t n,
                                     const rotq_ppl_options *po, int threads, rotq_baseline_cache **out) {
    *out = NULL;
    if (rotq_record_has_online(&m->rot)) return ROTQ_OK; /* records describe plain float models */
    rotq_baseline_cache *c = calloc(1, sizeof *c);
    if (!c) return rotq_fail(ROTQ_ERR_NOMEM, "out of memory");
    if (!cache_dir(dir, c->dir, sizeof c->dir)) { free(c); return ROTQ_OK; }
    c->threads = threads;
    make_key(m, ids, n, po, threads, c->key, sizeof c->key);
    *out = c;
    return ROTQ_OK;
}

void rotq_baseline_cache_free(rotq_baseline_cache *c) { free(c); }
const char *rotq_baseline_cache_dir(const rotq_baseline_cache *c) { return c ? c->dir : NULL; }

static void record_path(const char *dir, const char *key, char *path, size_t size) {
    fp f;
    fp_init(&f);
    fp_bytes(&f, key, strlen(key));
    snprintf(path, size, "%s/baseline-%016llx.json", dir, (unsigned long long)fp_done(&f));
}

bool rotq_baseline_cache_get(const rotq_baseline_cache *c, rotq_ppl_result *res, char *when, size_t when_size) {
    if (!c) return false;
    const char *key = c->key;
    char path[4200];
    record_path(c->dir, key, path, sizeof path);
    json_t *j = json_load_file(path, 0, NULL);
    if (!j) return false;
    const char *k = json_string_value(json_object_get(j, "key"));
    json_t *ppl = json_object_get(j, "perplexity"), *nll = json_object_get(j, "nll");
    bool ok = k && strcmp(k, key) == 0 && json_is_number(ppl) && json_is_number(nll) &&
              json_is_integer(json_object_get(j, "scored")) && json_is_integer(json_object_get(j, "windows"));
    if (ok) {
        memset(res, 0, sizeof *res);
        res->ppl = json_number_value(ppl);
        res->nll = json_number_value(nll);
        res->n_scored = json_integer_value(json_object_get(j, "scored"));
        res->n_windows = json_integer_value(json_object_get(j, "windows"));
        res->n_windows_available = json_integer_value(json_object_get(j, "windows_available"));
        res->n_stream = json_integer_value(json_object_get(j, "stream_tokens"));
        res->n_processed = json_integer_value(json_object_get(j, "processed_tokens"));
        res->seconds = json_number_value(json_object_get(j, "seconds"));
        const char *w = json_string_value(json_object_get(j, "computed"));
        snprintf(when, when_size, "%s", w ? w : "?");
        /* the stored sum must reproduce the stored perplexity: a damaged record is ignored */
        ok = res->n_scored > 0 && res->ppl > 0 && fabs(log(res->ppl) - res->nll / (double)res->n_scored) < 1e-9 * (1 + fabs(log(res->ppl)));
    }
    json_decref(j);
    return ok;
}

rotq_status rotq_baseline_cache_put(const rotq_baseline_cache *c, const rotq_ppl_result *res) {
    if (!c) return ROTQ_OK;
    if (mkdir(c->dir, 0755) != 0 && errno != EEXIST) {
        /* a parent may be missing (~/.cache itself): make it once */
        char parent[4096];
        snprintf(parent, sizeof parent, "%s", c->dir);
        char *slash = strrchr(parent, '/');
        if (slash && slash != parent) {
            *slash = '\0';
            mkdir(parent, 0755);
        }
        if (mkdir(c->dir, 0755) != 0 && errno != EEXIST)
            return rotq_fail(ROTQ_ERR_IO, "cannot create the cache folder %s: %s", c->dir, strerror(errno));
    }
    char path[4200], when[64];
    record_path(c->dir, c->key, path, sizeof path);
    time_t now = time(NULL);
    struct tm tm;
    gmtime_r(&now, &tm);
    strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%SZ", &tm);
    json_t *j = json_object();
    json_object_set_new(j, "key", json_string(c->key));
    json_object_set_new(j, "perplexity", json_real(res->ppl));
    json_object_set_new(j, "nll", json_real(res->nll));
    json_object_set_new(j, "scored", json_integer(res->n_scored));
    json_object_set_new(j, "windows", json_integer(res->n_windows));
    json_object_set_new(j, "windows_available", json_integer(res->n_windows_available));
    json_object_set_new(j, "stream_tokens", json_integer(res->n_stream));
    json_object_set_new(j, "processed_tokens", json_integer(res->n_processed));
    json_object_set_new(j, "seconds", json_real(res->seconds));
    json_object_set_new(j, "threads", json_integer(c->threads));
    json_object_set_new(j, "computed", json_string(when));
    char *text = json_dumps(j, JSON_INDENT(2) | JSON_REAL_PRECISION(17));
    json_decref(j);
    if (!text) return rotq_fail(ROTQ_ERR_NOMEM, "out of memory writing %s", path);
    rotq_status s = rotq_write_file_atomic(path, text, strlen(text));
    free(text);
    return s;
}
