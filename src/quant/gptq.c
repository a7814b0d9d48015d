/* GPTQ (Frantar et al. 2022): quantize the columns of W one at a time, each time spreading the
 * rounding error over the columns not yet quantized through the upper Cholesky factor U of H⁻¹:
 *     q_i = Q(w_i),  e = (w_i - q_i) / U_ii,  w_j -= e · U_ij  (j > i).
 * Updates inside a block of columns are applied at once; the rest of the matrix gets them lazily,
 * one matrix product per block. Every row is independent given U, so rows run in parallel.
 * All arithmetic in double; H⁻¹ through LAPACK's Cholesky routines. */
#include <cblas.h>
#include <lapacke.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "quant/quant.h"

rotq_gptq_options rotq_gptq_defaults(void) {
    return (rotq_gptq_options){.percdamp = 0.01, .act_order = false, .static_groups = false, .block = 128,
                               .qronos_damp = 1e-6, .gptaq_alpha = 0.25, .weighted_scales = false};
}

const char *rotq_wq_method_name(rotq_wq_method m) {
    switch (m) {
    case ROTQ_WQ_RTN: return "rtn";
    case ROTQ_WQ_GPTQ: return "gptq";
    case ROTQ_WQ_GPTAQ: return "gptaq";
    case ROTQ_WQ_QRONOS: return "qronos";
    default: return "none";
    }
}

bool rotq_wq_calibrated(rotq_wq_method m) { return m == ROTQ_WQ_GPTQ || m == ROTQ_WQ_GPTAQ || m == ROTQ_WQ_QRONOS; }

void rotq_gptq_hinv_free(rotq_gptq_hinv *h) {
    if (!h) return;
    free(h->U);
    free(h->perm);
    free(h->dead);
    free(h->hdiag);
    free(h->M);
    free(h->first);
    free(h->H);
    memset(h, 0, sizeof *h);
}

/* act-order: columns by decreasing diagonal, ties by index (a stable argsort of -diag). The key
 * travels with the index, so sorts on several threads share nothing. */
typedef struct diag_key { double d; int64_t i; } diag_key;
static int by_diag_desc(const void *a, const void *b) {
    const diag_key *x = a, *y = b;
    if (x->d > y->d) return -1;
    if (x->d < y->d) return 1;
    return x->i < y->i ? -1 : x->i > y->i;
}

/* Calibration statistics [n, n] hold no NaN/Inf (what names them in the message). */
static rotq_status check_finite(const double *A, int64_t n, const char *what) {
    for (int64_t i = 0; i < n * n; i++)
        if (!isfinite(A[i]))
            return rotq_fail(ROTQ_ERR_NUMERIC, "gptq: %s entry [%lld, %lld] is %g (non-finite calibration activations)", what,
                             (long long)(i / n), (long long)(i % n), A[i]);
    return ROTQ_OK;
}

/* damp_abs < 0: o->percdamp × the mean diagonal (GPTQ's); else added as it is. Of H it changes only
 * the diagonal of dead columns (to 1): rotq_gptq_prepare_asym reads H afterwards. */
static rotq_status prepare(double *H, int64_t n, const rotq_gptq_options *o, double damp_abs, rotq_gptq_hinv *out) {
    memset(out, 0, sizeof *out);
    if (n <= 0 || n > (1 << 20)) return rotq_fail(ROTQ_ERR_ARG, "gptq: Hessian of size %lld", (long long)n);
    if (!(o->percdamp >= 0) || !isfinite(o->percdamp))
        return rotq_fail(ROTQ_ERR_ARG, "gptq: dampening %g must be a finite non-negative fraction", o->percdamp);
    ROTQ_TRY(check_finite(H, n, "Hessian"));
    out->n = n;
    out->U = malloc((size_t)(n * n) * sizeof(double));
    out->perm = malloc((size_t)n * sizeof(int64_t));
    out->dead = calloc((size_t)n, sizeof(bool));
    out->hdiag = malloc((size_t)n * sizeof(double));
    double *diag = malloc((size_t)n * sizeof(double));
    if (!out->U || !out->perm || !out->dead || !out->hdiag || !diag) {
        free(diag);
        rotq_gptq_hinv_free(out);
        return rotq_fail(ROTQ_ERR_NOMEM, "gptq: out of memory for a %lld x %lld Hessian", (long long)n, (long long)n);
    }
    /* a column no calibration token ever touched: H_ii = 1 keeps H invertible, its weights go to 0 */
    for (int64_t i = 0; i < n; i++) {
        out->hdiag[i] = H[i * n + i];
        if (H[i * n + i] == 0.0) {
            out->dead[i] = true;
            out->n_dead++;
            H[i * n + i] = 1.0;
        }
        diag[i] = H[i * n + i];
        out->perm[i] = i;
    }
    if (o->act_order) {
        diag_key *keys = malloc((size_t)n * sizeof *keys);
        if (!keys) {
            free(diag);
            rotq_gptq_hinv_free(out);
            return rotq_fail(ROTQ_ERR_NOMEM, "gptq: out of memory sorting %lld columns", (long long)n);
        }
        for (int64_t i = 0; i < n; i++) keys[i] = (diag_key){diag[i], i};
        qsort(keys, (size_t)n, sizeof *keys, by_diag_desc);
        for (int64_t i = 0; i < n; i++) out->perm[i] = keys[i].i;
        free(keys);
    }
    /* U ← H permuted, dampened */
    double mean = 0.0;
    for (int64_t i = 0; i < n; i++) mean += diag[i];
    mean /= (double)n;
    out->damp = damp_abs < 0 ? o->percdamp * mean : damp_abs;
    double *A = out->U;
    for (int64_t i = 0; i < n; i++)
        for (int64_t j = 0; j < n; j++) A[i * n + j] = H[out->perm[i] * n + out->perm[j]];
    for (int64_t i = 0; i < n; i++) A[i * n + i] += out->damp;
    free(diag);

    /* (H + damp·I)⁻¹ = (L Lᵀ)⁻¹, then its upper Cholesky factor */
    lapack_int info = LAPACKE_dpotrf(LAPACK_ROW_MAJOR, 'L', (lapack_int)n, A, (lapack_int)n);
    if (info == 0) info = LAPACKE_dpotri(LAPACK_ROW_MAJOR, 'L', (lapack_int)n, A, (lapack_int)n);
    if (info != 0) {
        rotq_gptq_hinv_free(out);
        return rotq_fail(ROTQ_ERR_NUMERIC, "gptq: the dampened Hessian (%lld x %lld) is not positive definite "
                         "(LAPACK info %d); raise the dampening", (long long)n, (long long)n, (int)info);
    }
    for (int64_t i = 0; i < n; i++)
        for (int64_t j = i + 1; j < n; j++) A[i * n + j] = A[j * n + i];
    info = LAPACKE_dpotrf(LAPACK_ROW_MAJOR, 'U', (lapack_int)n, A, (lapack_int)n);
    if (info != 0) {
        rotq_gptq_hinv_free(out);
        return rotq_fail(ROTQ_ERR_NUMERIC, "gptq: the inverse Hessian (%lld x %lld) lost positive definiteness "
                         "(LAPACK info %d); raise the dampening", (long long)n, (long long)n, (int)info);
    }
    for (int64_t i = 0; i < n; i++)
        for (int64_t j = 0; j < i; j++) A[i * n + j] = 0.0;
    return ROTQ_OK;
}

rotq_status rotq_gptq_prepare(double *H, int64_t n, const rotq_gptq_options *o, rotq_gptq_hinv *out) {
    return prepare(H, n, o, -1.0, out);
}

/* Largest eigenvalue of the symmetric positive semi-definite H by power iteration from the all-ones
 * vector (deterministic; Qronos' damping scale needs its order of magnitude, not digits). */
static double top_eigenvalue(const double *H, int64_t n, int iters) {
    double *v = malloc((size_t)n * sizeof(double)), *u = malloc((size_t)n * sizeof(double)), lam = 0.0;
    if (!v || !u) { free(v); free(u); return -1.0; }
    for (int64_t i = 0; i < n; i++) v[i] = 1.0 / sqrt((double)n);
    for (int it = 0; it < iters; it++) {
        cblas_dgemv(CblasRowMajor, CblasNoTrans, (blasint)n, (blasint)n, 1.0, H, (blasint)n, v, 1, 0.0, u, 1);
        double norm = cblas_dnrm2((blasint)n, u, 1);
        lam = norm;
        if (!(norm > 0)) break;
        for (int64_t i = 0; i < n; i++) v[i] = u[i] / norm;
    }
    free(v);
    free(u);
    return lam;
}

rotq_status rotq_gptq_prepare_asym(double *H, const double *G, int64_t n, const rotq_gptq_options *o, rotq_wq_method method,
                                   rotq_gptq_hinv *out) {
    memset(out, 0, sizeof *out);
    if (method != ROTQ_WQ_GPTAQ && method != ROTQ_WQ_QRONOS)
        return rotq_fail(ROTQ_ERR_ARG, "gptq: %s is not an asymmetric fit", rotq_wq_method_name(method));
    if (n <= 0 || n > (1 << 20)) return rotq_fail(ROTQ_ERR_ARG, "gptq: Hessian of size %lld", (long long)n);
    if (method == ROTQ_WQ_GPTAQ && !(o->gptaq_alpha >= 0 && o->gptaq_alpha <= 1))
        return rotq_fail(ROTQ_ERR_ARG, "gptq: GPTAQ alpha %g outside [0, 1]", o->gptaq_alpha);
    if (method == ROTQ_WQ_QRONOS && !(o->qronos_damp >= 0 && isfinite(o->qronos_damp)))
        return rotq_fail(ROTQ_ERR_ARG, "gptq: Qronos damping %g must be a finite non-negative fraction", o->qronos_damp);
    ROTQ_TRY(check_finite(G, n, "cross term"));
    double damp = -1.0; /* GPTAQ: GPTQ's */
    if (method == ROTQ_WQ_QRONOS) {
        ROTQ_TRY(check_finite(H, n, "Hessian"));
        double lam = top_eigenvalue(H, n, 30);
        if (lam < 0) return rotq_fail(ROTQ_ERR_NOMEM, "gptq: out of memory");
        damp = o->qronos_damp * lam;
    }
    ROTQ_TRY(prepare(H, n, o, damp, out));
    const int64_t *perm = out->perm;
    double *Gp = malloc((size_t)(n * n) * sizeof(double)), *T = malloc((size_t)(n * n) * sizeof(double));
    double *first = method == ROTQ_WQ_QRONOS ? malloc((size_t)n * sizeof(double)) : NULL;
    if (!Gp || !T || (method == ROTQ_WQ_QRONOS && !first)) {
        free(Gp); free(T); free(first);
        rotq_gptq_hinv_free(out);
        return rotq_fail(ROTQ_ERR_NOMEM, "gptq: out of memory for a %lld² cross term", (long long)n);
    }
    /* M = (G + λI)(H + λI)⁻¹ in processing order, (H + λI)⁻¹ = UᵀU */
    for (int64_t i = 0; i < n; i++)
        for (int64_t j = 0; j < n; j++) Gp[i * n + j] = G[perm[i] * n + perm[j]] + (i == j ? out->damp : 0.0);
    cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (blasint)n, (blasint)n, (blasint)n, 1.0, Gp, (blasint)n, out->U,
                (blasint)n, 0.0, T, (blasint)n);
    cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (blasint)n, (blasint)n, (blasint)n, 1.0, T, (blasint)n, out->U,
                (blasint)n, 0.0, Gp, (blasint)n);
    free(T);
    if (method == ROTQ_WQ_GPTAQ && o->gptaq_alpha != 1.0) { /* part way: w + α(w* − w), M ← I + α(M − I) */
        for (int64_t i = 0; i < n * n; i++) Gp[i] *= o->gptaq_alpha;
        for (int64_t i = 0; i < n; i++) Gp[i * n + i] += 1.0 - o->gptaq_alpha;
    }
    out->M = Gp;
    if (first) {
        /* the first column's best value with the others as given, x₀ = (w·G[:, p₀] − Σ_{c≠p₀} w_c H[c, p₀]) / H[p₀, p₀],
         * from H and G as measured: prepare() changed H only on dead columns' diagonal (set to 1),
         * which a dead first column needs here too and no other column reads */
        int64_t p0 = perm[0];
        double h00 = H[p0 * n + p0];
        for (int64_t c = 0; c < n; c++) first[c] = (G[perm[c] * n + p0] - (c == 0 ? 0.0 : H[perm[c] * n + p0])) / h00;
        out->first = first;
    }
    return ROTQ_OK;
}

/* GPTQ's sweep over W [rows, cols] (processing order) on the scales S, Z: each column rounded, its
 * error spread over the columns left (none with h->rtn), lazily per block of B. Q (may be NULL)
 * receives the codes; row_loss (zeroed by the caller) Σ (w − q)²/(2·U_ii²) per row. */
static rotq_status gptq_sweep(double *W, int64_t rows, int64_t cols, const rotq_gptq_hinv *h, const rotq_wq_format *f, int64_t B,
                              int64_t group, int64_t n_groups, bool static_groups, double *S, double *Z, uint8_t *Q,
                              double *row_loss, const double *x0, double *Err) {
    int32_t maxq = rotq_wq_maxq(f);
    const double *U = h->U;
    const int64_t *perm = h->perm;
    for (int64_t i1 = 0; i1 < cols; i1 += B) {
        int64_t i2 = i1 + B < cols ? i1 + B : cols, nb = i2 - i1;
        bool nomem_block = false;
#pragma omp parallel
        {
            /* a dynamic group starting inside this block takes its range from the weights as they
             * stood when the block began (the reference reads W, not its working copy W1) */
            double *start = group && !static_groups ? malloc((size_t)(group + nb) * sizeof(double)) : NULL;
            if (group && !static_groups && !start) {
#pragma omp atomic write
                nomem_block = true;
            }
#pragma omp for schedule(static)
            for (int64_t r = 0; r < rows; r++) {
                if (group && !static_groups && !start) continue;
                double *wr = W + r * cols, *er = Err + r * B;
                double s = S[r], z = Z[r];
                if (start) memcpy(start, wr + i1, (size_t)nb * sizeof(double));
                double rl = 0.0;
                for (int64_t i = i1; i < i2; i++) {
                    if (static_groups) {
                        int64_t g = perm[i] / group;
                        s = S[r * n_groups + g];
                        z = Z[r * n_groups + g];
                    } else if (group) {
                        /* a group's scale is set at its first column and kept, across blocks too */
                        double *gs = &S[r * n_groups + i / group], *gz = &Z[r * n_groups + i / group];
                        if (i % group == 0) {
                            int64_t n = cols - i < group ? cols - i : group;
                            /* columns [i, i+n): block-start values inside the block; later ones have
                             * had only earlier blocks' lazy updates, i.e. they too stand as at block start */
                            double *seg = start + nb;
                            for (int64_t c = 0; c < n; c++) seg[c] = i + c < i2 ? start[i - i1 + c] : wr[i + c];
                            rotq_wq_params(seg, n, f, gs, gz);
                        }
                        s = *gs;
                        z = *gz;
                    }
                    double x = wr[i], d = U[i * cols + i];
                    /* Qronos rounds its first column from that column's own best value; the error
                     * it leaves is measured from the target, so the update refits the rest exactly */
                    uint8_t u = rotq_wq_format_encode(f, i == 0 && x0 ? x0[r] : x, s, z, maxq);
                    double q = rotq_wq_format_decode(f, u, s, z, maxq);
                    if (Q) Q[r * cols + i] = u;
                    double e = (x - q) / d;
                    rl += e * e;
                    wr[i] = q;
                    const double *ui = U + i * cols;
                    if (!h->rtn)
                        for (int64_t j = i + 1; j < i2; j++) wr[j] -= e * ui[j];
                    er[i - i1] = e;
                }
                row_loss[r] += rl / 2.0;
            }
            free(start);
        }
        if (nomem_block) return rotq_fail(ROTQ_ERR_NOMEM, "gptq: out of memory for group scratch");
        /* lazy update of every later column: W[:, i2:] -= Err · U[i1:i2, i2:] */
        if (i2 < cols && !h->rtn)
            cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (blasint)rows, (blasint)(cols - i2), (blasint)nb, -1.0,
                        Err, (blasint)B, U + i1 * cols + i2, (blasint)cols, 1.0, W + i2, (blasint)cols);
    }

    return ROTQ_OK;
}

/* The Hessian search for GPTQ, GPTAQ and Qronos: the scales whose sweep leaves the least output
 * error, row by row. Candidates: the clip search's scales, the scales of least RTN output error
 * (S, Z on entry, rotq_wq_params_hessian's), and the range shrunk by 1, 0.95, ..., 0.7; each row keeps
 * the candidate of least loss (its sweep's ½(w − q)H(w − q)ᵀ, rows being independent), so the layer's
 * loss is never above GPTQ's on either search's scales. Worig: the weights in the original column
 * order (dead columns zeroed), whose ranges the candidates shrink. */
static rotq_status gptq_scale_search(double *W, const double *Worig, int64_t rows, int64_t cols, const rotq_gptq_hinv *h,
                                     const rotq_wq_format *f, int64_t B, int64_t group, int64_t n_groups, double *S, double *Z,
                                     uint8_t *Q, double *row_loss, const double *x0, double *Err) {
    static const double ratios[] = {1.0, 0.95, 0.9, 0.85, 0.8, 0.75, 0.7};
    enum { N_CAND = 2 + sizeof ratios / sizeof ratios[0] };
    int64_t gsize = group ? group : cols, ns = rows * n_groups;
    double *W0 = malloc((size_t)(rows * cols) * sizeof *W0), *Wk = malloc((size_t)(rows * cols) * sizeof *Wk);
    double *Sk = malloc((size_t)ns * sizeof *Sk), *Zk = malloc((size_t)ns * sizeof *Zk), *lk = malloc((size_t)rows * sizeof *lk);
    uint8_t *Qk = Q ? malloc((size_t)(rows * cols)) : NULL;
    rotq_status st = ROTQ_OK;
    if (!W0 || !Wk || !Sk || !Zk || !lk || (Q && !Qk)) {
        st = rotq_fail(ROTQ_ERR_NOMEM, "gptq: out of memory for the Hessian scale search of a %lld x %lld layer",
                       (long long)rows, (long long)cols);
        goto done;
    }
    memcpy(W0, W, (size_t)(rows * cols) * sizeof *W0);
    rotq_wq_format fclip = *f;
    rotq_wq_format_set_search(&fclip, ROTQ_WSCALE_CLIP, 2.4);
    for (int64_t r = 0; r < rows; r++) row_loss[r] = INFINITY;
    for (int k = 0; k < N_CAND && st == ROTQ_OK; k++) {
        if (k == 0) { /* S, Z as given: rows take a later candidate's only after this one is swept */
            memcpy(Sk, S, (size_t)ns * sizeof *Sk);
            memcpy(Zk, Z, (size_t)ns * sizeof *Zk);
        } else {
#pragma omp parallel for schedule(static)
            for (int64_t r = 0; r < rows; r++) {
                for (int64_t g = 0; g < n_groups; g++) {
                    int64_t g0 = g * gsize, n = cols - g0 < gsize ? cols - g0 : gsize;
                    const double *x = Worig + r * cols + g0;
                    if (k == 1) rotq_wq_params(x, n, &fclip, &Sk[r * n_groups + g], &Zk[r * n_groups + g]);
                    else rotq_wq_params_ratio(x, n, f, ratios[k - 2], &Sk[r * n_groups + g], &Zk[r * n_groups + g]);
                }
                if (group) rotq_wq_super_scales(f, Sk + r * n_groups, NULL, n_groups);
            }
        }
        memcpy(Wk, W0, (size_t)(rows * cols) * sizeof *Wk);
        memset(lk, 0, (size_t)rows * sizeof *lk);
        st = gptq_sweep(Wk, rows, cols, h, f, B, group, n_groups, group != 0, Sk, Zk, Qk, lk, x0, Err);
        for (int64_t r = 0; st == ROTQ_OK && r < rows; r++) {
            if (!(lk[r] < row_loss[r])) continue;
            row_loss[r] = lk[r];
            memcpy(W + r * cols, Wk + r * cols, (size_t)cols * sizeof *W);
            memcpy(S + r * n_groups, Sk + r * n_groups, (size_t)n_groups * sizeof *S);
            memcpy(Z + r * n_groups, Zk + r * n_groups, (size_t)n_groups * sizeof *Z);
            if (Q) memcpy(Q + r * cols, Qk + r * cols, (size_t)cols);
        }
    }
done:
    free(W0); free(Wk); free(Sk); free(Zk); free(lk); free(Qk);
    return st;
}

rotq_status rotq_gptq_quantize(float *w, int64_t rows, int64_t cols, const rotq_gptq_hinv *h, const rotq_wq_format *f_in,
                               const rotq_gptq_options *o, double *loss, rotq_qweight **codes) {
    if (codes) *codes = NULL;
    rotq_wq_format fb = rotq_wq_format_bind(f_in, w, rows * cols); /* NVFP4's tensor scale from the weights as given */
    const rotq_wq_format *f = &fb;
    ROTQ_TRY(rotq_wq_format_check(f));
    if (h->n != cols)
        return rotq_fail(ROTQ_ERR_ARG, "gptq: weights have %lld input columns, the Hessian %lld", (long long)cols,
                         (long long)h->n);
    if (rows <= 0 || o->block <= 0) return rotq_fail(ROTQ_ERR_ARG, "gptq: %lld rows, block %lld", (long long)rows, (long long)o->block);
    for (int64_t i = 0; i < rows * cols; i++)
        if (!isfinite(w[i]))
            return rotq_fail(ROTQ_ERR_NUMERIC, "gptq: weight [%lld, %lld] is %g; cannot quantize a non-finite weight",
                             (long long)(i / cols), (long long)(i % cols), (double)w[i]);
    int64_t group = f->group > 0 && f->group < cols ? f->group : 0;
    int64_t n_groups = group ? (cols + group - 1) / group : 1;
    /* a super-block format ties each row's group scales together: they are all chosen up front; so
     * are a block type's (its codes must come back, act-order or not, to be packed) */
    bool hessian = f->mse && f->search == ROTQ_WSCALE_HESSIAN;
    if (hessian && !h->H) return rotq_fail(ROTQ_ERR_ARG, "gptq: the Hessian scale search needs the layer's Hessian");
    bool static_groups = group && (o->static_groups || f->super_groups > 0 || f->dtype != ROTQ_DTYPE_INVALID || hessian);
    int64_t B = o->block < cols ? o->block : cols;
    int32_t maxq = rotq_wq_maxq(f);
    const int64_t *perm = h->perm;
    const double *hw = o->weighted_scales ? h->hdiag : NULL; /* clip search weighted by H's diagonal */

    /* W in processing order; per-row scales as the reference takes them: per channel from the
     * weights as given, static groups after dead columns are zeroed, dynamic groups on the fly */
    double *W = malloc((size_t)(rows * cols) * sizeof(double));
    double *Err = malloc((size_t)(rows * B) * sizeof(double));
    double *S = calloc((size_t)(rows * n_groups), sizeof(double));
    double *Z = calloc((size_t)(rows * n_groups), sizeof(double)); /* zero, or the group min (f->min_max) */
    double *row_loss = calloc((size_t)rows, sizeof(double));
    /* codes in processing order; a dynamic group under act-order spans scattered columns: no codes */
    bool act_order = false;
    for (int64_t c = 0; c < cols && !act_order; c++) act_order = perm[c] != c;
    bool with_codes = codes && !(group && !static_groups && act_order);
    uint8_t *Q = with_codes ? malloc((size_t)(rows * cols)) : NULL;
    /* the Hessian search reads the weights as given (dead columns zeroed) in the original order */
    double *Worig = hessian ? malloc((size_t)(rows * cols) * sizeof(double)) : NULL;
    bool nomem = !W || !Err || !S || !Z || !row_loss || (with_codes && !Q) || (hessian && !Worig);
    if (!nomem) {
#pragma omp parallel
        {
            double *orig = malloc((size_t)cols * sizeof(double));
            if (!orig) {
#pragma omp atomic write
                nomem = true;
            }
#pragma omp for schedule(static)
            for (int64_t r = 0; r < rows; r++) {
                if (!orig) continue;
                for (int64_t c = 0; c < cols; c++) orig[c] = w[r * cols + c];
                if (!group && !hessian) rotq_wq_params_weighted(orig, hw, cols, f, &S[r], &Z[r]);
                for (int64_t c = 0; c < cols; c++)
                    if (h->dead[c]) orig[c] = 0.0;
                if (static_groups && !hessian) {
                    for (int64_t g = 0; g < n_groups; g++) {
                        int64_t g0 = g * group, n = cols - g0 < group ? cols - g0 : group;
                        rotq_wq_params_weighted(orig + g0, hw ? hw + g0 : NULL, n, f, &S[r * n_groups + g], &Z[r * n_groups + g]);
                    }
                    rotq_wq_super_scales(f, S + r * n_groups, f->min_max > 0 ? Z + r * n_groups : NULL, n_groups);
                }
                if (Worig) memcpy(Worig + r * cols, orig, (size_t)cols * sizeof(double));
                for (int64_t c = 0; c < cols; c++) W[r * cols + c] = orig[perm[c]];
            }
            free(orig);
        }
    }
    if (hessian && !nomem) {
        rotq_status hs = rotq_wq_params_hessian(Worig, rows, cols, group, h->H, f, S, Z);
        if (hs != ROTQ_OK) {
            free(W); free(Err); free(S); free(Z); free(row_loss); free(Q); free(Worig);
            return hs;
        }
        if (group)
            for (int64_t r = 0; r < rows; r++) rotq_wq_super_scales(f, S + r * n_groups, NULL, n_groups);
    }
    if (nomem) {
        free(W); free(Err); free(S); free(Z); free(row_loss); free(Q); free(Worig);
        return rotq_fail(ROTQ_ERR_NOMEM, "gptq: out of memory for a %lld x %lld layer", (long long)rows, (long long)cols);
    }
    /* the asymmetric fits: Qronos' first value from the weights as given, then every row moves to
     * its least-squares target w·M (dead columns stay 0) */
    double *x0 = NULL;
    if (h->first) {
        x0 = malloc((size_t)rows * sizeof(double));
        if (!x0) nomem = true;
        for (int64_t r = 0; x0 && r < rows; r++) {
            const double *wr = W + r * cols;
            double acc = 0.0;
            for (int64_t c = 0; c < cols; c++) acc += wr[c] * h->first[c];
            x0[r] = acc;
        }
    }
    if (h->M && !nomem) {
        double *T = malloc((size_t)(rows * cols) * sizeof(double));
        if (!T) nomem = true;
        else {
            cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (blasint)rows, (blasint)cols, (blasint)cols, 1.0, W,
                        (blasint)cols, h->M, (blasint)cols, 0.0, T, (blasint)cols);
            for (int64_t r = 0; r < rows; r++)
                for (int64_t c = 0; c < cols; c++) W[r * cols + c] = h->dead[perm[c]] ? 0.0 : T[r * cols + c];
            free(T);
        }
    }
    if (nomem) {
        free(W); free(Err); free(S); free(Z); free(row_loss); free(Q); free(x0); free(Worig);
        return rotq_fail(ROTQ_ERR_NOMEM, "gptq: out of memory for a %lld x %lld layer", (long long)rows, (long long)cols);
    }

    rotq_status sw = ROTQ_OK;
    if (hessian && !h->rtn)
        sw = gptq_scale_search(W, Worig, rows, cols, h, f, B, group, n_groups, S, Z, Q, row_loss, x0, Err);
    else
        sw = gptq_sweep(W, rows, cols, h, f, B, group, n_groups, static_groups, S, Z, Q, row_loss, x0, Err);
    free(Worig);
    if (sw != ROTQ_OK) {
        free(W); free(Err); free(S); free(Z); free(row_loss); free(Q); free(x0);
        return sw;
    }

    /* back to the original column order, rounded once to float */
    double total = 0.0;
    for (int64_t r = 0; r < rows; r++) {
        total += row_loss[r];
        for (int64_t c = 0; c < cols; c++) w[r * cols + perm[c]] = (float)W[r * cols + c];
    }
    if (loss) *loss = total;
    rotq_status st = ROTQ_OK;
    if (Q) {
        /* the codes in the original column order, with the scales they were taken on */
        rotq_qweight *qw = NULL;
        st = rotq_qweight_new(rows, cols, group ? group : cols, f, &qw);
        for (int64_t r = 0; st == ROTQ_OK && r < rows; r++) {
            for (int64_t c = 0; c < cols; c++) qw->u[r * cols + perm[c]] = Q[r * cols + c];
            for (int64_t g = 0; g < n_groups; g++)
                rotq_qweight_set_group(qw, r * n_groups + g, S[r * n_groups + g], Z[r * n_groups + g], maxq);
        }
        if (st == ROTQ_OK) *codes = qw;
    }
    free(W); free(Err); free(S); free(Z); free(row_loss); free(Q); free(x0);
    return st;
}
