/* Rotation handles: Hadamard and dense ones, Haar-random orthogonal matrices, files.
 *
 * Random orthogonal matrices use rotq's own generator and a plain Householder QR in double with a
 * fixed order of operations (each column's update is sequential; OpenMP only splits columns), so a
 * seed gives the same bytes on every machine — LAPACK's blocked kernels differ between CPUs.
 */
#include <cblas.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "io/safetensors.h"
#include "rotate/rotate.h"

#define DENSE_MAX_N 16384 /* an n·n double matrix: 2 GiB at this size */

void rotq_rotation_free(rotq_rotation *R) {
    if (!R) return;
    free(R->base);
    free(R->signs);
    free(R->kstep_fwd);
    free(R->kstep_inv);
    free(R->scaled_signs);
    free(R->scaled_signs_f64);
    free(R->dense);
    free(R->dense_f32);
    free(R);
}

static rotq_status nomem(const char *what, int64_t n) {
    return rotq_fail(ROTQ_ERR_NOMEM, "rotation: out of memory for %s (n=%lld)", what, (long long)n);
}

/* ---- Hadamard rotations ------------------------------------------------------------------------ */

rotq_status rotq_rotation_hadamard(int64_t n, bool random_signs, uint64_t seed, rotq_rotation **out) {
    *out = NULL;
    if (n < 1 || n > INT32_MAX)
        return rotq_fail(ROTQ_ERR_ARG, "rotation: size %lld out of range", (long long)n);
    int64_t K;
    int32_t m;
    if (!rotq_hadamard_split(n, &K, &m)) {
        int64_t odd = n;
        while (odd % 2 == 0) odd /= 2;
        return rotq_fail(ROTQ_ERR_UNSUPPORTED,
                         "rotation: no exact Hadamard matrix of order %lld is known (it needs one of order %lld·2^j, "
                         "j ≥ 2, dividing n)%s",
                         (long long)n, (long long)odd, n % 4 ? "; orders above 2 must be multiples of 4" : "");
    }
    if (K > ROTQ_HADAMARD_MAX_BASE)
        return rotq_fail(ROTQ_ERR_UNSUPPORTED,
                         "rotation: order %lld = %lld·2^%d needs a %lld×%lld base matrix (%.1f GB with its transform steps); "
                         "rotq builds bases up to order %d", (long long)n, (long long)K, m, (long long)K, (long long)K,
                         (double)K * (double)K * 9.0 / 1e9, ROTQ_HADAMARD_MAX_BASE);
    rotq_rotation *R = calloc(1, sizeof *R);
    if (!R) return nomem("the handle", n);
    R->kind = ROTQ_ROT_HADAMARD;
    R->n = n;
    R->K = K;
    R->m = m;
    R->exact = true;
    R->seeded = random_signs;
    R->seed = random_signs ? seed : 0;
    rotq_status st = rotq_hadamard_build(K, &R->base);
    if (st != ROTQ_OK) { rotq_rotation_free(R); return st; }
    R->signs = malloc((size_t)n);
    R->scaled_signs = malloc(sizeof(float) * (size_t)n);
    R->scaled_signs_f64 = malloc(sizeof(double) * (size_t)n);
    R->kstep_fwd = malloc(sizeof(float) * (size_t)(K * K));
    R->kstep_inv = malloc(sizeof(float) * (size_t)(K * K));
    if (!R->signs || !R->scaled_signs || !R->scaled_signs_f64 || !R->kstep_fwd || !R->kstep_inv) {
        rotq_rotation_free(R);
        return nomem("the Hadamard rotation", n);
    }
    if (random_signs) rotq_rng_signs(seed, R->signs, n);
    else memset(R->signs, 1, (size_t)n);
    double scale = 1.0 / sqrt((double)n);
    for (int64_t i = 0; i < n; i++) {
        R->scaled_signs_f64[i] = R->signs[i] * scale;
        R->scaled_signs[i] = (float)R->scaled_signs_f64[i];
    }
    for (int64_t c = 0; c < K; c++)
        for (int64_t a = 0; a < K; a++) {
            R->kstep_fwd[c * K + a] = R->base[a * K + c];
            R->kstep_inv[c * K + a] = R->base[c * K + a];
        }
    char base_desc[160] = "";
    if (K > 1) rotq_hadamard_describe(K, base_desc, sizeof base_desc);
    char shape[200];
    if (K == 1) snprintf(shape, sizeof shape, "Sylvester 2^%d", m);
    else if (m == 0) snprintf(shape, sizeof shape, "%s", base_desc);
    else snprintf(shape, sizeof shape, "%s ⊗ Sylvester 2^%d", base_desc, m);
    if (random_signs)
        snprintf(R->desc, sizeof R->desc, "Hadamard %lld = %s, random signs seed %llu", (long long)n, shape,
                 (unsigned long long)seed);
    else
        snprintf(R->desc, sizeof R->desc, "Hadamard %lld = %s", (long long)n, shape);
    *out = R;
    return ROTQ_OK;
}

/* ---- dense rotations ----------------------------------------------------------------------------- */

double rotq_orthogonality_error(const double *R, int64_t n) {
    const int64_t bs = 256;
    double *C = malloc(sizeof(double) * (size_t)(n * (n < bs ? n : bs)));
    if (!C) return INFINITY;
    double worst = 0.0;
    for (int64_t j0 = 0; j0 < n; j0 += bs) {
        int64_t nb = n - j0 < bs ? n - j0 : bs;
        /* C = Rᵀ·R[:, j0:j0+nb] (n × nb) */
        cblas_dgemm(CblasRowMajor, CblasTrans, CblasNoTrans, (int)n, (int)nb, (int)n, 1.0, R, (int)n, R + j0, (int)n,
                    0.0, C, (int)nb);
        for (int64_t i = 0; i < n; i++)
            for (int64_t j = 0; j < nb; j++) {
                double e = fabs(C[i * nb + j] - (i == j0 + j ? 1.0 : 0.0));
                if (!(e <= worst)) worst = e; /* NaN propagates as the worst */
            }
    }
    free(C);
    return worst;
}

static rotq_status dense_handle(int64_t n, double *owned, rotq_rotation **out) {
    rotq_rotation *R = calloc(1, sizeof *R);
    float *f = malloc(sizeof(float) * (size_t)(n * n));
    if (!R || !f) { free(R); free(f); free(owned); return nomem("a dense rotation", n); }
    for (int64_t i = 0; i < n * n; i++) f[i] = (float)owned[i];
    R->kind = ROTQ_ROT_DENSE;
    R->n = n;
    R->K = 1;
    R->exact = true;
    R->dense = owned;
    R->dense_f32 = f;
    *out = R;
    return ROTQ_OK;
}

rotq_status rotq_rotation_from_dense(int64_t n, const double *Rm, double tol, rotq_rotation **out) {
    *out = NULL;
    if (n < 1 || n > DENSE_MAX_N || !Rm)
        return rotq_fail(ROTQ_ERR_ARG, "rotation: dense size %lld out of range [1, %d]", (long long)n, DENSE_MAX_N);
    double err = rotq_orthogonality_error(Rm, n);
    if (!(err <= tol))
        return rotq_fail(ROTQ_ERR_NUMERIC, "rotation: the %lld×%lld matrix is not orthogonal (max |RᵀR - I| = %.3g > %.3g)",
                         (long long)n, (long long)n, err, tol);
    double *copy = malloc(sizeof(double) * (size_t)(n * n));
    if (!copy) return nomem("a dense rotation", n);
    memcpy(copy, Rm, sizeof(double) * (size_t)(n * n));
    ROTQ_TRY(dense_handle(n, copy, out));
    snprintf((*out)->desc, sizeof (*out)->desc, "dense %lld×%lld", (long long)n, (long long)n);
    return ROTQ_OK;
}

/* Σ a[i]·b[i] with four interleaved partial sums combined as (s0+s1)+(s2+s3): the order is fixed
 * by the code (no -ffast-math, no FMA contraction under -std=c11), so every build computes the same
 * bits, and the four chains hide the add latency. */
static double dot4(const double *a, const double *b, int64_t len) {
    double s0 = 0.0, s1 = 0.0, s2 = 0.0, s3 = 0.0;
    int64_t i = 0;
    for (; i + 4 <= len; i += 4) {
        s0 += a[i] * b[i];
        s1 += a[i + 1] * b[i + 1];
        s2 += a[i + 2] * b[i + 2];
        s3 += a[i + 3] * b[i + 3];
    }
    for (; i < len; i++) s0 += a[i] * b[i];
    return (s0 + s1) + (s2 + s3);
}

/* col ← (I - tau·v·vᵀ)·col on rows k.., v = (1, vk[k+1..n-1]). */
static void reflect(const double *vk, double tau, double *col, int64_t k, int64_t n) {
    double w = (col[k] + dot4(vk + k + 1, col + k + 1, n - k - 1)) * tau;
    col[k] -= w;
    for (int64_t i = k + 1; i < n; i++) col[i] -= w * vk[i];
}

#define QR_BLOCK 32 /* reflectors applied to a column while it sits in cache */

/* Householder QR of A (column j at A + j·n), then Q·diag(sign R_kk) written row-major to out.
 * Blocked only in the order columns are visited: every column still receives the reflectors one by
 * one in the unblocked order, so the result does not depend on the block size or thread count. */
static rotq_status haar_from_gaussian(double *A, int64_t n, double *out) {
    double *tau = calloc((size_t)n, sizeof(double)), *dsgn = calloc((size_t)n, sizeof(double));
    double *Q = calloc((size_t)(n * n), sizeof(double));
    if (!tau || !dsgn || !Q) { free(tau); free(dsgn); free(Q); return nomem("the QR factorisation", n); }
    for (int64_t k0 = 0; k0 < n; k0 += QR_BLOCK) {
        int64_t k1 = k0 + QR_BLOCK < n ? k0 + QR_BLOCK : n;
        for (int64_t k = k0; k < k1; k++) {
            double *ak = A + k * n;
            for (int64_t r = k0; r < k; r++)
                if (tau[r] != 0.0) reflect(A + r * n, tau[r], ak, r, n);
            double alpha = ak[k], xnorm2 = 0.0;
            for (int64_t i = k + 1; i < n; i++) xnorm2 += ak[i] * ak[i];
            if (xnorm2 == 0.0) {
                tau[k] = 0.0;
                dsgn[k] = alpha < 0.0 ? -1.0 : 1.0;
                continue;
            }
            double beta = -copysign(sqrt(alpha * alpha + xnorm2), alpha);
            tau[k] = (beta - alpha) / beta;
            double scale = 1.0 / (alpha - beta);
            for (int64_t i = k + 1; i < n; i++) ak[i] *= scale;
            ak[k] = beta;
            dsgn[k] = beta < 0.0 ? -1.0 : 1.0;
        }
#pragma omp parallel for schedule(static) if (n - k1 >= 256)
        for (int64_t j = k1; j < n; j++)
            for (int64_t r = k0; r < k1; r++)
                if (tau[r] != 0.0) reflect(A + r * n, tau[r], A + j * n, r, n);
    }
    /* Q = H_0·H_1·…·H_{n-1}·I, accumulated from the last reflector; H_k leaves columns j < k alone. */
    for (int64_t j = 0; j < n; j++) Q[j * n + j] = 1.0;
    for (int64_t k1 = n; k1 > 0; k1 -= QR_BLOCK) {
        int64_t k0 = k1 - QR_BLOCK > 0 ? k1 - QR_BLOCK : 0;
#pragma omp parallel for schedule(static) if (n - k0 >= 256)
        for (int64_t j = k0; j < n; j++)
            for (int64_t r = (j < k1 - 1 ? j : k1 - 1); r >= k0; r--)
                if (tau[r] != 0.0) reflect(A + r * n, tau[r], Q + j * n, r, n);
    }
    /* Q·diag(d) makes the factorisation unique (R_kk > 0), which makes Q Haar-distributed. */
    for (int64_t i = 0; i < n; i++)
        for (int64_t j = 0; j < n; j++) out[i * n + j] = Q[j * n + i] * dsgn[j];
    free(tau);
    free(dsgn);
    free(Q);
    return ROTQ_OK;
}

rotq_status rotq_rotation_random_orthogonal(int64_t n, uint64_t seed, rotq_rotation **out) {
    *out = NULL;
    if (n < 1 || n > DENSE_MAX_N)
        return rotq_fail(ROTQ_ERR_UNSUPPORTED, "rotation: random orthogonal size %lld out of range [1, %d]", (long long)n,
                         DENSE_MAX_N);
    double *A = malloc(sizeof(double) * (size_t)(n * n));
    double *Rm = malloc(sizeof(double) * (size_t)(n * n));
    if (!A || !Rm) { free(A); free(Rm); return nomem("a random orthogonal matrix", n); }
    rotq_rng rng;
    rotq_rng_seed(&rng, seed);
    for (int64_t i = 0; i < n * n; i++) A[i] = rotq_rng_normal(&rng); /* column j = normals j·n .. j·n+n-1 */
    rotq_status st = haar_from_gaussian(A, n, Rm);
    free(A);
    if (st != ROTQ_OK) { free(Rm); return st; }
    ROTQ_TRY(dense_handle(n, Rm, out));
    (*out)->seeded = true;
    (*out)->seed = seed;
    snprintf((*out)->desc, sizeof (*out)->desc, "random orthogonal %lld, seed %llu", (long long)n, (unsigned long long)seed);
    return ROTQ_OK;
}

rotq_status rotq_rotation_for_size(int64_t n, uint64_t seed, bool *fallback, rotq_rotation **out) {
    *out = NULL;
    if (fallback) *fallback = false;
    int64_t K;
    int32_t m;
    if (n >= 1 && rotq_hadamard_split(n, &K, &m)) return rotq_rotation_hadamard(n, true, seed, out);
    ROTQ_TRY(rotq_rotation_random_orthogonal(n, seed, out));
    (*out)->exact = false;
    if (fallback) *fallback = true;
    char d[sizeof (*out)->desc];
    snprintf(d, sizeof d, "%s (no exact Hadamard of order %lld known)", (*out)->desc, (long long)n);
    memcpy((*out)->desc, d, sizeof d);
    return ROTQ_OK;
}

rotq_status rotq_rotation_to_dense_f64(const rotq_rotation *R, double *out) {
    if (!R || !out) return rotq_fail(ROTQ_ERR_ARG, "rotation: to_dense with NULL argument");
    int64_t n = R->n;
    if (R->kind == ROTQ_ROT_DENSE) {
        memcpy(out, R->dense, sizeof(double) * (size_t)(n * n));
        return ROTQ_OK;
    }
    int64_t K = R->K, M = n / K;
    /* R[a·M+b][c·M+d] = s[a·M+b] · H_K[a][c] · (-1)^popcount(b & d) / √n */
    for (int64_t i = 0; i < n; i++) {
        int64_t a = i / M, b = i % M;
        for (int64_t j = 0; j < n; j++) {
            int64_t c = j / M, d = j % M;
            int sgn = R->base[a * K + c] * ((__builtin_popcountll((unsigned long long)(b & d)) & 1) ? -1 : 1);
            out[i * n + j] = sgn * R->scaled_signs_f64[i];
        }
    }
    return ROTQ_OK;
}

/* ---- files ------------------------------------------------------------------------------------- */

rotq_status rotq_rotation_save(const rotq_rotation *R, const char *path, rotq_dtype dtype) {
    if (!R || !path) return rotq_fail(ROTQ_ERR_ARG, "rotation save: NULL argument");
    if (dtype != ROTQ_F32 && dtype != ROTQ_F64)
        return rotq_fail(ROTQ_ERR_UNSUPPORTED, "%s: rotations are saved as F32 or F64, not %s", path, rotq_dtype_name(dtype));
    int64_t n = R->n;
    if (n > DENSE_MAX_N)
        return rotq_fail(ROTQ_ERR_UNSUPPORTED, "%s: a dense %lld×%lld rotation is too large to write", path, (long long)n,
                         (long long)n);
    size_t es = dtype == ROTQ_F64 ? 8 : 4;
    uint64_t data_bytes = (uint64_t)(n * n) * es;

    json_t *root = json_object(), *meta = json_object(), *t = json_object();
    json_object_set_new(meta, "format", json_string("rotq-rotation"));
    json_object_set_new(meta, "rotq.kind", json_string(R->kind == ROTQ_ROT_HADAMARD ? "hadamard" : "dense"));
    json_object_set_new(meta, "rotq.description", json_string(R->desc));
    json_object_set_new(meta, "rotq.exact", json_string(R->exact ? "true" : "false"));
    if (R->seeded) {
        char s[32];
        snprintf(s, sizeof s, "%llu", (unsigned long long)R->seed);
        json_object_set_new(meta, "rotq.seed", json_string(s));
    }
    json_object_set_new(root, "__metadata__", meta);
    json_object_set_new(t, "dtype", json_string(dtype == ROTQ_F64 ? "F64" : "F32"));
    json_object_set_new(t, "shape", json_pack("[II]", (json_int_t)n, (json_int_t)n));
    json_object_set_new(t, "data_offsets", json_pack("[II]", (json_int_t)0, (json_int_t)data_bytes));
    json_object_set_new(root, "rotation", t);
    char *hdr = json_dumps(root, JSON_COMPACT | JSON_SORT_KEYS);
    json_decref(root);
    if (!hdr) return rotq_fail(ROTQ_ERR_NOMEM, "%s: cannot format the header", path);
    size_t hlen = strlen(hdr), padded = (hlen + 7) / 8 * 8;
    uint64_t total = 8 + padded + data_bytes;
    uint8_t *buf = malloc((size_t)total);
    double *Rd = malloc(sizeof(double) * (size_t)(n * n));
    if (!buf || !Rd) { free(hdr); free(buf); free(Rd); return nomem("the file image", n); }
    uint64_t hl = padded;
    for (int i = 0; i < 8; i++) buf[i] = (uint8_t)(hl >> (8 * i)); /* little-endian u64 */
    memcpy(buf + 8, hdr, hlen);
    memset(buf + 8 + hlen, ' ', padded - hlen);
    free(hdr);
    rotq_status st = rotq_rotation_to_dense_f64(R, Rd);
    if (st == ROTQ_OK) {
        uint8_t *d = buf + 8 + padded;
        for (int64_t i = 0; i < n * n; i++) {
            if (dtype == ROTQ_F64) memcpy(d + 8 * i, &Rd[i], 8);
            else { float f = (float)Rd[i]; memcpy(d + 4 * i, &f, 4); }
        }
        st = rotq_write_file_atomic(path, buf, total);
    }
    free(Rd);
    free(buf);
    return st;
}

static const char *meta_str(json_t *meta, const char *key) {
    json_t *v = meta ? json_object_get(meta, key) : NULL;
    return json_is_string(v) ? json_string_value(v) : NULL;
}

/* When the file says it holds a Hadamard rotation, rebuild the fast form and keep it if every
 * entry agrees with the file; otherwise the caller keeps the dense matrix. */
static bool try_fast_form(json_t *meta, int64_t n, const double *Rm, double tol, rotq_rotation **out) {
    const char *kind = meta_str(meta, "rotq.kind"), *seed = meta_str(meta, "rotq.seed");
    if (!kind || strcmp(kind, "hadamard") != 0) return false;
    rotq_rotation *H = NULL;
    uint64_t s = seed ? strtoull(seed, NULL, 10) : 0;
    if (rotq_rotation_hadamard(n, seed != NULL, s, &H) != ROTQ_OK) { rotq_clear_error(); return false; }
    /* row i of R is e_i·R: compare chunk by chunk without a second n·n matrix */
    const int64_t chunk = 64;
    double *D = malloc(sizeof(double) * (size_t)(chunk * n));
    bool same = D != NULL;
    for (int64_t r0 = 0; same && r0 < n; r0 += chunk) {
        int64_t nr = n - r0 < chunk ? n - r0 : chunk;
        memset(D, 0, sizeof(double) * (size_t)(nr * n));
        for (int64_t r = 0; r < nr; r++) D[r * n + r0 + r] = 1.0;
        same = rotq_rotation_apply_rows_f64(H, D, nr, false) == ROTQ_OK;
        for (int64_t i = 0; same && i < nr * n; i++) same = fabs(D[i] - Rm[r0 * n + i]) <= tol;
    }
    free(D);
    if (!same) { rotq_rotation_free(H); return false; }
    *out = H;
    return true;
}

void rotq_rotation_folder_file(const char *dir, int32_t layer, char *out, size_t size) {
    if (layer < 0) snprintf(out, size, "%s/r1.safetensors", dir);
    else snprintf(out, size, "%s/r2.layer%d.safetensors", dir, layer);
}

rotq_status rotq_rotation_load(const char *path, rotq_rotation **out) {
    *out = NULL;
    uint8_t *data = NULL;
    uint64_t size = 0;
    ROTQ_TRY(rotq_read_file(path, &data, &size));
    /* the one safetensors parser checks the header and every offset; tensors point into data */
    rotq_model *file = rotq_model_new();
    json_t *meta = NULL;
    double *Rm = NULL;
    rotq_status st = file ? rotq_safetensors_parse_meta(file, path, data, size, &meta) : rotq_fail(ROTQ_ERR_NOMEM, "out of memory");
    const rotq_tensor *t = NULL;
    if (st == ROTQ_OK) {
        t = rotq_model_find(file, "rotation");
        if (!t && file->n_tensors == 1) t = &file->tensors[0]; /* one tensor under any name */
        if (!t) st = rotq_fail(ROTQ_ERR_NOT_FOUND, "%s: no tensor named \"rotation\" (and %lld tensors in all)", path, (long long)file->n_tensors);
    }
    if (st == ROTQ_OK && t->dtype != ROTQ_F32 && t->dtype != ROTQ_F64)
        st = rotq_fail(ROTQ_ERR_UNSUPPORTED, "%s: rotation dtype %s (F32 or F64 expected)", path, rotq_dtype_name(t->dtype));
    if (st == ROTQ_OK && (t->n_dims != 2 || t->shape[0] != t->shape[1]))
        st = rotq_fail(ROTQ_ERR_FORMAT, "%s: rotation shape must be [n, n]", path);
    int64_t n = st == ROTQ_OK ? t->shape[0] : 0;
    if (st == ROTQ_OK && (n < 1 || n > DENSE_MAX_N))
        st = rotq_fail(ROTQ_ERR_UNSUPPORTED, "%s: rotation size %lld out of range [1, %d]", path, (long long)n, DENSE_MAX_N);
    if (st == ROTQ_OK && !(Rm = malloc(sizeof(double) * (size_t)(n * n)))) st = nomem("the loaded rotation", n);
    for (int64_t i = 0; st == ROTQ_OK && i < n * n; i++) {
        Rm[i] = t->dtype == ROTQ_F64 ? ((const double *)t->data)[i] : ((const float *)t->data)[i];
        if (!isfinite(Rm[i])) st = rotq_fail(ROTQ_ERR_NUMERIC, "%s: rotation entry %lld is not finite", path, (long long)i);
    }
    if (st == ROTQ_OK && !try_fast_form(meta, n, Rm, t->dtype == ROTQ_F64 ? 1e-12 : 1e-6, out)) {
        st = rotq_rotation_from_dense(n, Rm, 1e-4, out);
        if (st != ROTQ_OK) st = rotq_fail_context(st, "%s", path);
        const char *desc = meta_str(meta, "rotq.description");
        if (st == ROTQ_OK) snprintf((*out)->desc, sizeof (*out)->desc, "%s (from %s)", desc ? desc : "dense", path);
    }
    free(Rm);
    json_decref(meta);
    rotq_model_free(file);
    free(data);
    return st;
}

int64_t rotq_rotation_size(const rotq_rotation *R) { return R->n; }
const char *rotq_rotation_describe(const rotq_rotation *R) { return R->desc; }

rotq_status rotq_rotation_block_expand(const rotq_rotation *R, int64_t n, rotq_rotation **out) {
    *out = NULL;
    int64_t b = R->n;
    if (b <= 0 || n % b != 0) return rotq_fail(ROTQ_ERR_ARG, "rotation: a block of %lld does not divide %lld", (long long)b, (long long)n);
    double *B = malloc(sizeof(double) * (size_t)(b * b)), *D = calloc((size_t)(n * n), sizeof(double));
    rotq_status s = B && D ? rotq_rotation_to_dense_f64(R, B) : rotq_fail(ROTQ_ERR_NOMEM, "rotation: out of memory for %lld×%lld", (long long)n, (long long)n);
    for (int64_t k = 0; s == ROTQ_OK && k < n / b; k++)
        for (int64_t i = 0; i < b; i++) memcpy(D + (k * b + i) * n + k * b, B + i * b, sizeof(double) * (size_t)b);
    if (s == ROTQ_OK) s = rotq_rotation_from_dense(n, D, 1e-9, out);
    if (s == ROTQ_OK) snprintf((*out)->desc, sizeof (*out)->desc, "block-diagonal %lld x (%.120s)", (long long)(n / b), R->desc);
    free(B);
    free(D);
    return s;
}
