/* compressed-tensors export (the format vLLM and transformers load quantized checkpoints in): an HF folder
 * whose quantized linears hold the codes rotq's quantizer chose (rotq_qweight), described by config.json's
 * quantization_config (the layout: io/ct.c, which reads such folders back).
 *   pack-quantized  weight-only: X.weight_packed int32 [out, ceil(in·b/32)], X.weight_scale [out, groups] in
 *                   the model's float dtype, X.weight_shape int64 [2]
 *   int-quantized   with quantized activations (dynamic per token): X.weight int8 [out, in], X.weight_scale */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "arch/arch.h"
#include "quant/quant.h"

#define CT_VERSION "0.20.1" /* the compressed-tensors release this layout was checked against */

static bool is_linear_role(int32_t r) {
    return r == ROLE_Q || r == ROLE_K || r == ROLE_V || r == ROLE_QKV || r == ROLE_O || r == ROLE_GATE || r == ROLE_UP ||
           r == ROLE_GATE_UP || r == ROLE_DOWN || r == ROLE_LM_HEAD;
}

/* "X.weight" → "X" (false when the name does not end so). */
static bool module_name(const char *name, char *out, size_t size) {
    size_t n = strlen(name);
    if (n < 8 || strcmp(name + n - 7, ".weight") != 0 || n - 7 >= size) return false;
    memcpy(out, name, n - 7);
    out[n - 7] = 0;
    return true;
}

static void store_scale(rotq_dtype dt, void *dst, int64_t i, double v) {
    if (dt == ROTQ_F32) ((float *)dst)[i] = (float)v;
    else if (dt == ROTQ_F16) ((uint16_t *)dst)[i] = rotq_f32_to_f16((float)v);
    else ((uint16_t *)dst)[i] = rotq_f32_to_bf16((float)v);
}

static double load_scale(rotq_dtype dt, const void *src, int64_t i) {
    if (dt == ROTQ_F32) return ((const float *)src)[i];
    if (dt == ROTQ_F16) return rotq_f16_to_f32(((const uint16_t *)src)[i]);
    return rotq_bf16_to_f32(((const uint16_t *)src)[i]);
}

/* ---- writing ---- */

typedef struct ct_export {
    rotq_tensor *t;       /* the tensors written, in order */
    int64_t n, cap;
} ct_export;

static rotq_status ex_add(ct_export *e, const rotq_tensor *like, const char *name, rotq_dtype dt, int32_t nd,
                          const int64_t *shape, void *data, bool owned) {
    if (e->n == e->cap) {
        int64_t cap = e->cap ? 2 * e->cap : 64;
        rotq_tensor *nt = realloc(e->t, (size_t)cap * sizeof *nt);
        if (!nt) {
            if (owned) free(data);
            return rotq_fail(ROTQ_ERR_NOMEM, "compressed-tensors: out of memory");
        }
        e->t = nt;
        e->cap = cap;
    }
    rotq_tensor *t = &e->t[e->n++];
    memset(t, 0, sizeof *t);
    snprintf(t->name, sizeof t->name, "%s", name);
    t->dtype = t->file_dtype = dt;
    t->n_dims = nd;
    for (int d = 0; d < nd; d++) t->shape[d] = shape[d];
    t->data = data;
    t->nbytes = rotq_dtype_nbytes(dt, rotq_tensor_numel(t));
    t->owned = owned;
    t->role = like ? like->role : -1;
    t->layer = like ? like->layer : -1;
    return ROTQ_OK;
}

static void ex_free(ct_export *e) {
    for (int64_t i = 0; i < e->n; i++)
        if (e->t[i].owned) free(e->t[i].data);
    free(e->t);
}

/* One quantized linear as the scheme's tensors. */
static rotq_status ex_linear(ct_export *e, const rotq_tensor *t, const rotq_qweight *q, bool packed, rotq_dtype sdt) {
    char base[ROTQ_NAME_MAX], name[ROTQ_NAME_MAX + 16];
    module_name(t->name, base, sizeof base);
    int64_t rows = q->rows, cols = q->cols, group = q->group > 0 && q->group < cols ? q->group : cols;
    int64_t ng = (cols + group - 1) / group;
    int32_t b = q->bits, half = 1 << (b - 1);
    /* the codes as signed values q = u − zero, checked to lie on the b-bit grid */
    for (int64_t r = 0; r < rows; r++)
        for (int64_t c = 0; c < cols; c++) {
            int32_t v = (int32_t)q->u[r * cols + c] - q->zero[r * ng + c / group];
            if (v < -half || v >= half)
                return rotq_fail(ROTQ_ERR_ARG, "compressed-tensors: %s holds code %d outside the %d-bit signed grid", t->name, v, b);
        }
    if (packed) {
        int64_t words = (cols * b + 31) / 32;
        uint32_t *p = calloc((size_t)(rows * words), sizeof *p);
        if (!p) return rotq_fail(ROTQ_ERR_NOMEM, "compressed-tensors: out of memory packing %s", t->name);
        for (int64_t r = 0; r < rows; r++)
            for (int64_t c = 0; c < cols; c++) {
                uint32_t v = (uint32_t)((int32_t)q->u[r * cols + c] - q->zero[r * ng + c / group] + half);
                int64_t bit = c * b, w = bit / 32;
                int off = (int)(bit % 32);
                p[r * words + w] |= v << off;
                if (off + b > 32) p[r * words + w + 1] |= v >> (32 - off);
            }
        snprintf(name, sizeof name, "%s.weight_packed", base);
        ROTQ_TRY(ex_add(e, t, name, ROTQ_I32, 2, (int64_t[]){rows, words}, p, true));
        int64_t *shape = malloc(2 * sizeof *shape);
        if (!shape) return rotq_fail(ROTQ_ERR_NOMEM, "compressed-tensors: out of memory");
        shape[0] = rows, shape[1] = cols;
        snprintf(name, sizeof name, "%s.weight_shape", base);
        ROTQ_TRY(ex_add(e, NULL, name, ROTQ_I64, 1, (int64_t[]){2}, shape, true));
    } else {
        int8_t *w = malloc((size_t)(rows * cols));
        if (!w) return rotq_fail(ROTQ_ERR_NOMEM, "compressed-tensors: out of memory for %s", t->name);
        for (int64_t r = 0; r < rows; r++)
            for (int64_t c = 0; c < cols; c++) w[r * cols + c] = (int8_t)((int32_t)q->u[r * cols + c] - q->zero[r * ng + c / group]);
        ROTQ_TRY(ex_add(e, t, t->name, ROTQ_I8, 2, (int64_t[]){rows, cols}, w, true));
    }
    void *s = malloc((size_t)rotq_dtype_nbytes(sdt, rows * ng));
    if (!s) return rotq_fail(ROTQ_ERR_NOMEM, "compressed-tensors: out of memory");
    for (int64_t i = 0; i < rows * ng; i++) {
        store_scale(sdt, s, i, q->scale[i]);
        if (load_scale(sdt, s, i) != q->scale[i]) {
            free(s);
            return rotq_fail(ROTQ_ERR_ARG, "compressed-tensors: %s: scale %.9g is not a %s value (quantize with the scales "
                             "rounded to the output dtype: rotq_quant_options.w_scale_store)", t->name, q->scale[i],
                             rotq_dtype_name(sdt));
        }
    }
    snprintf(name, sizeof name, "%s.weight_scale", base);
    return ex_add(e, NULL, name, sdt, 2, (int64_t[]){rows, ng}, s, true);
}

static json_t *ct_args(int32_t bits, int64_t group, bool activations) {
    json_t *a = json_pack("{s:i, s:s, s:b, s:b, s:o, s:o, s:o}", "num_bits", bits, "type", "int", "symmetric", 1, "dynamic",
                          activations, "actorder", json_null(), "block_structure", json_null(), "observer",
                          activations ? json_null() : json_string("minmax"));
    json_object_set_new(a, "strategy", json_string(activations ? "token" : group > 0 ? "group" : "channel"));
    json_object_set_new(a, "group_size", group > 0 ? json_integer(group) : json_null());
    return a;
}

rotq_status rotq_save_compressed_tensors(rotq_model *m, const char *dir, const rotq_quant_options *q, const rotq_save_options *so) {
    rotq_save_options o = so ? *so : rotq_save_defaults();
    o.format = ROTQ_FORMAT_HF;
    rotq_format fmt;
    ROTQ_TRY(rotq_save_check(m, dir, &o, &fmt));
    const char *p = m->source_path;
    if (m->vision)
        return rotq_fail(ROTQ_ERR_UNSUPPORTED, "%s: compressed-tensors export of a vision-language model is not written yet "
                         "(write the quantized floats with --to hf)", p);
    if (rotq_record_has_online(&m->rot))
        return rotq_fail(ROTQ_ERR_UNSUPPORTED, "%s: the model records online rotations (R3/R4 or layerwise); a runtime "
                         "loading compressed-tensors would not apply them: rotate with --r3 off --r4 off (fused only)", p);
    if (rotq_act_on(&q->k) || rotq_act_on(&q->v))
        return rotq_fail(ROTQ_ERR_UNSUPPORTED, "%s: KV-cache quantization is not written into compressed-tensors files "
                         "(vLLM quantizes the cache by its own --kv-cache-dtype)", p);
    bool acts = rotq_act_on(&q->act);
    if (acts && (q->act.num != ROTQ_NUM_INT || q->act.asym || q->act.group > 0 || q->act.clip != 1.0f || q->act.range != ROTQ_SYM_HALF))
        return rotq_fail(ROTQ_ERR_UNSUPPORTED, "%s: compressed-tensors' dynamic activations are symmetric integers per token "
                         "with scale max|x|/((q_max - q_min)/2) and no clipping (--a-range half --a-clip 1)", p);
    rotq_dtype sdt = o.dtype;
    if (sdt == ROTQ_DTYPE_INVALID) {
        const rotq_tensor *e = rotq_model_role(m, ROLE_EMBED, -1);
        sdt = e && (e->dtype == ROTQ_F16 || e->dtype == ROTQ_BF16) ? e->dtype : ROTQ_F32;
    }
    ct_export ex = {0};
    rotq_status s = ROTQ_OK;
    int32_t bits = 0;
    int64_t group = -2, n_quant = 0;
    json_t *ignore = json_array();
    for (int64_t i = 0; s == ROTQ_OK && i < m->n_tensors; i++) {
        const rotq_tensor *t = &m->tensors[i];
        const rotq_qweight *cq = t->codes;
        char mod[ROTQ_NAME_MAX];
        if (cq && t->n_dims == 2 && module_name(t->name, mod, sizeof mod)) {
            int64_t g = cq->group > 0 && cq->group < cq->cols ? cq->group : 0;
            if (cq->asym || cq->num != ROTQ_NUM_INT || cq->mn || cq->dtype != ROTQ_DTYPE_INVALID)
                s = rotq_fail(ROTQ_ERR_UNSUPPORTED, "%s: %s is not on a symmetric integer grid; rotq writes compressed-tensors "
                              "for symmetric integer weights", p, t->name);
            else if ((bits && cq->bits != bits) || (group != -2 && g != group))
                s = rotq_fail(ROTQ_ERR_UNSUPPORTED, "%s: %s has another bit width or group than the other linears; rotq writes "
                              "one scheme per file", p, t->name);
            else if (g > 0 && cq->cols % g)
                s = rotq_fail(ROTQ_ERR_ARG, "%s: %s has %lld input columns, not whole groups of %lld (choose --w-group to "
                              "divide every linear's input width, or -1 per channel)", p, t->name, (long long)cq->cols, (long long)g);
            if (s != ROTQ_OK) break;
            bits = cq->bits, group = g;
            s = ex_linear(&ex, t, cq, !acts, sdt);
            n_quant++;
            continue;
        }
        if (is_linear_role(t->role) && t->n_dims == 2 && module_name(t->name, mod, sizeof mod)) json_array_append_new(ignore, json_string(mod));
        rotq_tensor copy = *t;
        s = ex_add(&ex, t, t->name, t->dtype, t->n_dims, t->shape, t->data, false);
        if (s == ROTQ_OK) ex.t[ex.n - 1] = copy, ex.t[ex.n - 1].owned = false, ex.t[ex.n - 1].codes = NULL;
    }
    if (s == ROTQ_OK && n_quant == 0) s = rotq_fail(ROTQ_ERR_ARG, "%s: no quantized linear to write (quantize the weights first)", p);
    if (s == ROTQ_OK && !rotq_model_role(m, ROLE_LM_HEAD, -1)) json_array_append_new(ignore, json_string("lm_head"));
    json_t *cfg = NULL;
    if (s == ROTQ_OK) {
        const char *format = acts ? "int-quantized" : "pack-quantized";
        json_t *grp = json_pack("{s:[s], s:o, s:o, s:n, s:s}", "targets", "Linear", "weights", ct_args(bits, group, false),
                                "input_activations", acts ? ct_args(q->act.bits, 0, true) : json_null(), "output_activations",
                                "format", format);
        json_t *qc = json_pack("{s:s, s:s, s:s, s:{s:o}, s:o, s:n, s:{}, s:s}", "quant_method", "compressed-tensors", "format",
                               format, "quantization_status", "compressed", "config_groups", "group_0", grp, "ignore", ignore,
                               "kv_cache_scheme", "sparsity_config", "version", CT_VERSION);
        ignore = NULL;
        cfg = m->hf_config ? json_deep_copy(m->hf_config) : rotq_hparams_to_hf_config(m->arch, &m->hp);
        if (!qc || !cfg) s = rotq_fail(ROTQ_ERR_NOMEM, "compressed-tensors: out of memory building quantization_config");
        else {
            json_object_set_new(cfg, "quantization_config", qc);
            if (m->quant_desc[0]) json_object_set_new(cfg, "rotq_quantization", json_string(m->quant_desc));
            qc = NULL;
        }
        json_decref(qc);
    }
    json_decref(ignore);
    if (s == ROTQ_OK) {
        /* the HF writer over the export's tensors and config (everything else — tokenizer, record — is m's) */
        rotq_tensor *keep_t = m->tensors;
        int64_t keep_n = m->n_tensors, keep_cap = m->cap_tensors;
        void *keep_cfg = m->hf_config;
        m->tensors = ex.t, m->n_tensors = ex.n, m->cap_tensors = ex.cap;
        m->hf_config = cfg;
        s = rotq_save_hf(m, dir, o.dtype == ROTQ_DTYPE_INVALID ? ROTQ_DTYPE_INVALID : sdt, o.shard_bytes);
        m->tensors = keep_t, m->n_tensors = keep_n, m->cap_tensors = keep_cap;
        m->hf_config = keep_cfg;
    }
    json_decref(cfg);
    ex_free(&ex);
    return s;
}

