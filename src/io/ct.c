/* compressed-tensors folders read back (the format vLLM and transformers load quantized checkpoints in; the
 * writer is quant/ct_export.c, which holds the layout):
 *   pack-quantized  weight-only: X.weight_packed int32 [out, ceil(in·b/32)] (element i of a row at bit i·b
 *                   of the row's words, as an unsigned code q + 2^(b-1)), X.weight_scale [out, groups],
 *                   X.weight_shape int64 [2]
 *   int-quantized   with quantized activations: X.weight int8 [out, in] holding q, X.weight_scale
 * The weight is q·scale (symmetric: no zero point); rotq keeps it exactly, in float32. Activations, when the
 * scheme has them, are quantized by the runtime per token, dynamically, with scale max|x| / ((q_max − q_min)/2):
 * the model keeps that scheme (file_act), which sessions apply. */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/model.h"

/* ---- reading ---- */

/* One QuantizationArgs: its bits, and for weights the group (0: per channel; group may be NULL for activations). */
static rotq_status ct_read_args(const json_t *a, const char *path, bool activations, int32_t *bits, int64_t *group) {
    const char *what = activations ? "input_activations" : "weights";
    const char *type = json_string_value(json_object_get(a, "type"));
    const char *strategy = json_string_value(json_object_get(a, "strategy"));
    json_t *nb = json_object_get(a, "num_bits"), *gs = json_object_get(a, "group_size");
    if (!json_is_integer(nb) || json_integer_value(nb) < 2 || json_integer_value(nb) > 8 || !type || strcmp(type, "int") != 0 ||
        !json_is_true(json_object_get(a, "symmetric")) || !strategy)
        return rotq_fail(ROTQ_ERR_UNSUPPORTED, "%s: quantization_config %s: rotq reads symmetric integer schemes of 2..8 bits", path,
                         what);
    *bits = (int32_t)json_integer_value(nb);
    if (group) *group = 0;
    if (activations) {
        if (strcmp(strategy, "token") != 0 || !json_is_true(json_object_get(a, "dynamic")))
            return rotq_fail(ROTQ_ERR_UNSUPPORTED, "%s: quantization_config input_activations: rotq runs dynamic per-token "
                             "activations (strategy token, dynamic true), not %s", path, strategy);
    } else if (strcmp(strategy, "group") == 0) {
        if (!json_is_integer(gs) || json_integer_value(gs) <= 0)
            return rotq_fail(ROTQ_ERR_FORMAT, "%s: quantization_config weights: strategy group without a group_size", path);
        *group = json_integer_value(gs);
    } else if (strcmp(strategy, "channel") != 0) {
        return rotq_fail(ROTQ_ERR_UNSUPPORTED, "%s: quantization_config weights strategy %s (rotq reads channel and group)", path,
                         strategy);
    }
    return ROTQ_OK;
}

/* Dequantizes q [rows, cols] (signed values) by scales [rows, ng] into t (float32). */
static rotq_status ct_dequant(rotq_tensor *t, const int8_t *qv, int64_t rows, int64_t cols, const rotq_tensor *scale, int32_t code_bits,
                              const char *path) {
    int64_t ng = scale->n_dims == 2 ? scale->shape[1] : 1;
    rotq_dtype sdt = scale->dtype;
    if ((sdt != ROTQ_F32 && sdt != ROTQ_F16 && sdt != ROTQ_BF16) || scale->shape[0] != rows || ng <= 0 || cols % ng)
        return rotq_fail(ROTQ_ERR_FORMAT, "%s: %s does not fit [%lld, groups] float scales for %lld columns", path, scale->name,
                         (long long)rows, (long long)cols);
    int64_t group = cols / ng;
    float *w = malloc(sizeof(float) * (size_t)(rows * cols)), *sc = malloc(sizeof(float) * (size_t)(rows * ng));
    rotq_status s = w && sc ? rotq_tensor_to_f32(scale, sc) : rotq_fail(ROTQ_ERR_NOMEM, "%s: out of memory dequantizing %s", path, t->name);
    /* q·scale in float32: exact (a small integer times a float16/bfloat16/float32 scale), the weight the file
     * encodes — what transformers computes in float32; a bfloat16 runtime would round it to its dtype */
    for (int64_t r = 0; s == ROTQ_OK && r < rows; r++)
        for (int64_t c = 0; c < cols; c++) w[r * cols + c] = (float)qv[r * cols + c] * sc[r * ng + c / group];
    free(sc);
    if (s != ROTQ_OK) {
        free(w);
        return s;
    }
    s = rotq_tensor_realloc(t, ROTQ_F32, 2, (int64_t[]){rows, cols});
    if (s == ROTQ_OK) s = rotq_tensor_set_f32(t, w, ROTQ_F32);
    t->file_dtype = sdt;
    t->file_bpw = (double)code_bits + rotq_dtype_bits_per_weight(sdt) * (double)ng / (double)cols;
    free(w);
    return s;
}

static void drop_tensor(rotq_model *m, rotq_tensor *t) {
    int64_t i = t - m->tensors;
    if (t->owned) free(t->data);
    memmove(&m->tensors[i], &m->tensors[i + 1], sizeof *t * (size_t)(m->n_tensors - i - 1));
    m->n_tensors--;
}

rotq_status rotq_ct_read(rotq_model *m, const char *path, const void *config) {
    const json_t *qc = json_object_get(config, "quantization_config");
    if (!qc) return ROTQ_OK;
    const char *method = json_string_value(json_object_get(qc, "quant_method"));
    if (!method || strcmp(method, "compressed-tensors") != 0)
        return rotq_fail(ROTQ_ERR_UNSUPPORTED, "%s: quantization_config quant_method \"%.40s\": rotq reads compressed-tensors "
                         "folders (and float checkpoints)", path, method ? method : "?");
    const char *format = json_string_value(json_object_get(qc, "format"));
    const char *status = json_string_value(json_object_get(qc, "quantization_status"));
    if (format && strcmp(format, "dense") == 0) return ROTQ_OK;
    if (!format || (strcmp(format, "pack-quantized") != 0 && strcmp(format, "int-quantized") != 0))
        return rotq_fail(ROTQ_ERR_UNSUPPORTED, "%s: compressed-tensors format \"%.40s\": rotq reads pack-quantized and "
                         "int-quantized (integer codes)", path, format ? format : "?");
    if (status && strcmp(status, "compressed") != 0)
        return rotq_fail(ROTQ_ERR_UNSUPPORTED, "%s: compressed-tensors quantization_status \"%.40s\": rotq reads compressed "
                         "folders", path, status);
    json_t *groups = json_object_get(qc, "config_groups");
    if (!json_is_object(groups) || json_object_size(groups) != 1)
        return rotq_fail(ROTQ_ERR_UNSUPPORTED, "%s: compressed-tensors config_groups: rotq reads one group (one scheme)", path);
    const json_t *g = json_object_iter_value(json_object_iter((json_t *)groups));
    int32_t bits, abits = 16;
    int64_t group;
    ROTQ_TRY(ct_read_args(json_object_get(g, "weights"), path, false, &bits, &group));
    json_t *ia = json_object_get(g, "input_activations");
    if (ia && !json_is_null(ia)) ROTQ_TRY(ct_read_args(ia, path, true, &abits, NULL));
    json_t *kv = json_object_get(qc, "kv_cache_scheme");
    if (kv && !json_is_null(kv))
        return rotq_fail(ROTQ_ERR_UNSUPPORTED, "%s: compressed-tensors kv_cache_scheme: rotq does not read it yet", path);
    int64_t n = 0;
    for (int64_t i = 0; i < m->n_tensors; i++) {
        rotq_tensor *t = &m->tensors[i];
        size_t len = strlen(t->name);
        bool packed = len > 14 && strcmp(t->name + len - 14, ".weight_packed") == 0;
        bool naive = t->dtype == ROTQ_I8 && len > 7 && strcmp(t->name + len - 7, ".weight") == 0;
        if (!packed && !naive) continue;
        char base[ROTQ_NAME_MAX], wname[ROTQ_NAME_MAX + 16], sname[ROTQ_NAME_MAX + 16], shname[ROTQ_NAME_MAX + 16];
        snprintf(base, sizeof base, "%.*s", (int)(len - (packed ? 14 : 7)), t->name);
        snprintf(wname, sizeof wname, "%s.weight", base);
        snprintf(sname, sizeof sname, "%s.weight_scale", base);
        snprintf(shname, sizeof shname, "%s.weight_shape", base);
        if (!rotq_model_find(m, sname)) return rotq_fail(ROTQ_ERR_FORMAT, "%s: %s has no %s", path, t->name, sname);
        int64_t rows, cols;
        int8_t *qv = NULL;
        if (packed) {
            rotq_tensor *sh = rotq_model_find(m, shname);
            if (!sh || sh->n_dims != 1 || sh->shape[0] != 2 || (sh->dtype != ROTQ_I64 && sh->dtype != ROTQ_I32))
                return rotq_fail(ROTQ_ERR_FORMAT, "%s: %s has no int [2] %s", path, t->name, shname);
            rows = sh->dtype == ROTQ_I64 ? ((const int64_t *)sh->data)[0] : ((const int32_t *)sh->data)[0];
            cols = sh->dtype == ROTQ_I64 ? ((const int64_t *)sh->data)[1] : ((const int32_t *)sh->data)[1];
            int64_t words = rows > 0 && cols > 0 && cols < (INT64_C(1) << 32) ? (cols * bits + 31) / 32 : -1;
            if (t->dtype != ROTQ_I32 || t->n_dims != 2 || words < 0 || t->shape[0] != rows || t->shape[1] != words)
                return rotq_fail(ROTQ_ERR_FORMAT, "%s: %s is not int32 [%lld, %lld] for a [%lld, %lld] weight of %d bits", path,
                                 t->name, (long long)rows, (long long)words, (long long)rows, (long long)cols, bits);
            qv = malloc((size_t)(rows * cols));
            if (!qv) return rotq_fail(ROTQ_ERR_NOMEM, "%s: out of memory", path);
            const uint32_t *pw = t->data;
            uint32_t mask = (1u << bits) - 1;
            for (int64_t r = 0; r < rows; r++)
                for (int64_t c = 0; c < cols; c++) {
                    int64_t bit = c * bits, wi = bit / 32;
                    int off = (int)(bit % 32);
                    uint32_t v = pw[r * words + wi] >> off;
                    if (off + bits > 32) v |= pw[r * words + wi + 1] << (32 - off);
                    qv[r * cols + c] = (int8_t)((int32_t)(v & mask) - (1 << (bits - 1)));
                }
            snprintf(t->name, sizeof t->name, "%s", wname); /* the dequantized weight takes its place */
            drop_tensor(m, sh);
        } else {
            if (t->n_dims != 2) return rotq_fail(ROTQ_ERR_FORMAT, "%s: %s is not a 2-D int8 weight", path, t->name);
            rows = t->shape[0], cols = t->shape[1];
            qv = malloc((size_t)(rows * cols));
            if (!qv) return rotq_fail(ROTQ_ERR_NOMEM, "%s: out of memory", path);
            memcpy(qv, t->data, (size_t)(rows * cols));
        }
        rotq_tensor *w = rotq_model_find(m, wname), *sc = rotq_model_find(m, sname);
        rotq_status s = ROTQ_OK;
        if (group > 0 && (sc->n_dims != 2 || sc->shape[1] * group != cols))
            s = rotq_fail(ROTQ_ERR_FORMAT, "%s: %s does not hold one scale per group of %lld of %lld columns", path, sname,
                          (long long)group, (long long)cols);
        if (s == ROTQ_OK) s = ct_dequant(w, qv, rows, cols, sc, packed ? bits : 8, path);
        if (s == ROTQ_OK) {
            if (group > 0) snprintf(w->file_format, sizeof w->file_format, "ct %s W%d g%lld", packed ? "packed" : "int8", bits, (long long)group);
            else snprintf(w->file_format, sizeof w->file_format, "ct %s W%d per channel", packed ? "packed" : "int8", bits);
        }
        free(qv);
        ROTQ_TRY(s);
        drop_tensor(m, rotq_model_find(m, sname));
        i = -1; /* tensors moved: start over (dequantized ones match neither pattern) */
        n++;
    }
    if (abits < 16)
        m->file_act = (rotq_act_format){.bits = abits, .asym = false, .clip = 1.0f, .group = -1, .range = ROTQ_SYM_HALF};
    m->file_w_bits = bits;
    m->file_w_group = group;
    char how[48];
    if (group > 0) snprintf(how, sizeof how, "groups of %lld", (long long)group);
    else snprintf(how, sizeof how, "per channel");
    snprintf(m->quant_desc, sizeof m->quant_desc, "compressed-tensors %s: W%d sym %s (%lld linears, read back to float)%s",
             format, bits, how, (long long)n, abits < 16 ? "; activations: dynamic per token, applied by sessions" : "");
    /* the model now holds float weights: a folder written from it must not claim the file's scheme (an export
     * as compressed-tensors writes its own quantization_config) */
    json_object_del((json_t *)config, "quantization_config");
    return ROTQ_OK;
}
