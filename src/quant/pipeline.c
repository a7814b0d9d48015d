/* Quantization settings (defaults, presets, description) and the whole-model weight pass. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "quant/quant.h"
#include "rotate/online.h"
#include "arch/arch.h"
#include "core/files.h"
#include "core/clock.h"

rotq_quant_options rotq_quant_defaults(void) {
    rotq_quant_options o;
    memset(&o, 0, sizeof o);
    o.w_method = ROTQ_WQ_NONE;
    o.w_bits = 16;
    o.w_group = -1;
    o.w_clip_norm = 2.4;
    o.w_types.embed_type = o.w_types.output_type = ROTQ_DTYPE_INVALID;
    o.gptq = rotq_gptq_defaults();
    o.act = (rotq_act_format){.bits = 16, .asym = false, .clip = 1.0f, .group = -1, .range = ROTQ_SYM_SIGNED};
    o.k = o.v = (rotq_act_format){.bits = 16, .asym = false, .clip = 1.0f, .group = -1};
    o.nsamples = 128;
    o.calib_ctx = 2048;
    o.seed = 0;
    o.calib_cache_mb = 4096;
    return o;
}

/* A float-format quantizer of activations or the KV cache: by max (the format's own scale rule),
 * its block as the group (per token for FP8, per head for its KV). */
static rotq_act_format fp_act(rotq_num_format f) {
    return (rotq_act_format){.bits = rotq_num_traits_of(f)->bits, .num = f, .clip = 1.0f, .group = rotq_num_format_block(f)};
}

/* Presets follow QuaRot's paper settings: weights symmetric per channel with the clip search,
 * activations symmetric per token (clip 0.9 at 4 bits), KV asymmetric per head (clip 0.95 at 4),
 * with one departure: the activation grid puts each token's largest magnitude on −2^(b−1) (signed
 * range, all 2^b levels used) instead of QuaRot's ±(2^(b−1)−1), which leaves −2^(b−1) unused —
 * better on every model and seed measured (docs/results.md, issue 21); --a-range maxq is QuaRot's. */
rotq_status rotq_quant_preset(rotq_quant_options *o, const char *name) {
    int wb, ab, kvb;
    int64_t wg = -1;
    bool wasym = false;
    rotq_num_format wf = ROTQ_NUM_INT, af = ROTQ_NUM_INT, kvf = ROTQ_NUM_INT;
    if (strcmp(name, "w4a16") == 0) { wb = 4; ab = 16; kvb = 16; }
    else if (strcmp(name, "w4a8") == 0) { wb = 4; ab = 8; kvb = 16; }
    else if (strcmp(name, "w4a8kv8") == 0) { wb = 4; ab = 8; kvb = 8; }
    else if (strcmp(name, "w8a8") == 0) { wb = 8; ab = 8; kvb = 16; }
    else if (strcmp(name, "w4a4") == 0) { wb = 4; ab = 4; kvb = 16; }
    else if (strcmp(name, "w4a4kv4") == 0) { wb = 4; ab = 4; kvb = 4; }
    /* float formats (weights, activations and KV in the format; -kv8: KV in FP8 E4M3 per head) */
    else if (strcmp(name, "mxfp4") == 0) { wb = ab = kvb = 4; wf = af = kvf = ROTQ_NUM_MXFP4; }
    else if (strcmp(name, "mxfp4-kv8") == 0) { wb = ab = 4; kvb = 8; wf = af = ROTQ_NUM_MXFP4; kvf = ROTQ_NUM_FP8; }
    else if (strcmp(name, "nvfp4") == 0) { wb = ab = kvb = 4; wf = af = kvf = ROTQ_NUM_NVFP4; }
    else if (strcmp(name, "nvfp4-kv8") == 0) { wb = ab = 4; kvb = 8; wf = af = ROTQ_NUM_NVFP4; kvf = ROTQ_NUM_FP8; }
    else if (strcmp(name, "w4a8-fp8") == 0) { wb = 4; ab = 8; kvb = 16; af = ROTQ_NUM_FP8; }
    /* weight-only below 4 bits: groups of 128 with a zero point, as the GPTQ paper's 3/2-bit rows */
    else if (strcmp(name, "w3a16g128") == 0) { wb = 3; ab = 16; kvb = 16; wg = 128; wasym = true; }
    else if (strcmp(name, "w2a16g128") == 0) { wb = 2; ab = 16; kvb = 16; wg = 128; wasym = true; }
    else return rotq_fail(ROTQ_ERR_ARG, "quant: unknown preset %s (%s)", name, ROTQ_PRESETS);
    if (o->w_method == ROTQ_WQ_NONE) o->w_method = ROTQ_WQ_RTN;
    o->w_bits = wb;
    o->w_asym = wasym;
    o->w_group = wg;
    o->w_clip = true;
    o->w_num = wf;
    o->act = af != ROTQ_NUM_INT ? fp_act(af)
                                : (rotq_act_format){.bits = ab, .asym = false, .clip = ab <= 4 ? 0.9f : 1.0f, .group = -1, .range = ROTQ_SYM_SIGNED};
    o->k = o->v = kvf != ROTQ_NUM_INT ? fp_act(kvf)
                                      : (rotq_act_format){.bits = kvb, .asym = true, .clip = kvb <= 4 ? 0.95f : 1.0f, .group = -1};
    return ROTQ_OK;
}

rotq_wq_format rotq_wq_format_from_options(const rotq_quant_options *o) {
    rotq_wq_format f = rotq_wq_format_make(o->w_bits, o->w_asym, o->w_group, o->w_clip);
    rotq_wq_format_set_search(&f, o->w_scale, o->w_clip_norm);
    f.scale_fp16 = o->w_scale_fp16 || o->w_scale_store == ROTQ_SCALE_F16;
    f.scale_store = o->w_scale_store;
    f.sym_range = o->w_sym_range;
    const rotq_num_traits *t = rotq_num_traits_of(o->w_num);
    f.num = o->w_num;
    if (t) { /* a float format fixes the element width; its block is the default group */
        f.bits = t->bits;
        if (f.group <= 0 && t->block > 0) f.group = t->block;
        f.scale_fp16 = false;
    }
    return f;
}

rotq_wq_format rotq_wq_format_for_dtype(const rotq_quant_options *o, rotq_dtype t) {
    rotq_block_grid g;
    if (!rotq_dtype_grid(t, &g)) return rotq_wq_format_from_options(o);
    rotq_wq_format f = rotq_wq_format_make(g.bits, g.asym, g.group, o->w_clip);
    rotq_wq_format_set_search(&f, o->w_scale, o->w_clip_norm);
    f.super_groups = g.super_groups;
    f.super_max = g.super_max;
    f.scale_mant_bits = g.scale_mant_bits;
    f.min_max = g.min_max;
    f.scale_fp16 = g.super_groups == 0; /* a super-block format rounds d, not the group scales */
    f.sym_range = g.asym ? ROTQ_SYM_MAXQ : ROTQ_SYM_SIGNED; /* a float16 d (Q4_0, Q5_0, Q8_0) or sub-scale (Q3_K, Q6_K) of either sign */
    f.dtype = t;
    return f;
}

bool rotq_wq_format_for_tensor(const rotq_quant_options *o, const rotq_dtype *types, int64_t i, rotq_wq_format *f) {
    if (types) {
        if (types[i] == ROTQ_DTYPE_INVALID) return false;
        *f = rotq_wq_format_for_dtype(o, types[i]);
        return true;
    }
    *f = rotq_wq_format_from_options(o);
    return o->w_method != ROTQ_WQ_NONE && o->w_bits < 16;
}

rotq_status rotq_quant_options_check(const rotq_quant_options *o) {
    bool typed = rotq_quant_has_types(o);
    if (!typed && o->w_method != ROTQ_WQ_NONE && (o->w_bits < 2 || (o->w_bits > 8 && o->w_bits != 16)))
        return rotq_fail(ROTQ_ERR_ARG, "quant: %d-bit weights (2..8 bits, or 16 for float)", o->w_bits);
    if (typed && o->w_num != ROTQ_NUM_INT)
        return rotq_fail(ROTQ_ERR_ARG, "quant: GGUF block types are integer grids; %s weights cannot take them",
                         rotq_num_format_name(o->w_num));
    if (!typed && o->w_method != ROTQ_WQ_NONE && o->w_bits < 16) {
        rotq_wq_format f = rotq_wq_format_from_options(o);
        ROTQ_TRY(rotq_wq_format_check(&f));
        if (o->w_group == 0) return rotq_fail(ROTQ_ERR_ARG, "quant: weight group 0 (use -1 for per channel)");
    }
    if ((unsigned)o->w_scale > ROTQ_WSCALE_HESSIAN) return rotq_fail(ROTQ_ERR_ARG, "quant: weight scale search %d", (int)o->w_scale);
    if (rotq_quant_calibrated(o) && (typed || o->w_bits < 16)) {
        if (o->nsamples <= 0 || o->calib_ctx <= 1)
            return rotq_fail(ROTQ_ERR_ARG, "quant: GPTQ needs calibration windows (got %lld of %lld tokens)",
                             (long long)o->nsamples, (long long)o->calib_ctx);
        if (o->gptq.block <= 0) return rotq_fail(ROTQ_ERR_ARG, "quant: GPTQ block %lld", (long long)o->gptq.block);
        if (!(o->gptq.percdamp >= 0 && o->gptq.percdamp < 1e6))
            return rotq_fail(ROTQ_ERR_ARG, "quant: GPTQ dampening %g", o->gptq.percdamp);
        if (!(o->gptq.gptaq_alpha >= 0 && o->gptq.gptaq_alpha <= 1))
            return rotq_fail(ROTQ_ERR_ARG, "quant: GPTAQ alpha %g outside [0, 1]", o->gptq.gptaq_alpha);
        if (!(o->gptq.qronos_damp >= 0 && o->gptq.qronos_damp < 1e6))
            return rotq_fail(ROTQ_ERR_ARG, "quant: Qronos damping %g", o->gptq.qronos_damp);
    }
    ROTQ_TRY(rotq_act_format_check(&o->act, "activation"));
    ROTQ_TRY(rotq_act_format_check(&o->k, "K cache"));
    ROTQ_TRY(rotq_act_format_check(&o->v, "V cache"));
    return ROTQ_OK;
}

/* a symmetric grid's range convention as descriptions say it ("" for QuaRot's and asymmetric grids) */
static const char *range_desc(bool asym, rotq_sym_range r) {
    if (asym || r == ROTQ_SYM_MAXQ) return "";
    return r == ROTQ_SYM_FULL ? " range t/(2^(b-1))" : r == ROTQ_SYM_HALF ? " range t/(2^(b-1)-1/2)" : " signed range t/(2^(b-1))";
}

size_t rotq_act_format_describe(char *out, size_t size, const char *name, const rotq_act_format *f, const char *unit,
                                int64_t unit_cols) {
    if (!rotq_act_on(f)) return (size_t)snprintf(out, size, "%s float", name);
    char grp[48];
    if (f->group > 0 && f->group != unit_cols) snprintf(grp, sizeof grp, "groups of %lld", (long long)f->group);
    else snprintf(grp, sizeof grp, "%s", unit);
    if (f->num != ROTQ_NUM_INT)
        return (size_t)snprintf(out, size, "%s %s %s%s", name, rotq_num_format_name(f->num), grp,
                                f->clip < 1.0f ? " clip" : "");
    return (size_t)snprintf(out, size, "%s%d %s %s clip %.2f%s", name, f->bits, f->asym ? "asym" : "sym", grp, (double)f->clip,
                            range_desc(f->asym, f->range));
}

static const char *scale_desc(rotq_w_scale s) {
    return s == ROTQ_WSCALE_MSE ? "MSE scale search" : s == ROTQ_WSCALE_HESSIAN ? "Hessian scale search" : "clip-search";
}

const char *rotq_w_scale_name(rotq_w_scale s) {
    switch (s) {
    case ROTQ_WSCALE_CLIP: return "clip";
    case ROTQ_WSCALE_MSE: return "mse";
    case ROTQ_WSCALE_HESSIAN: return "hessian";
    }
    return "?";
}

bool rotq_quant_calibrated(const rotq_quant_options *o) {
    return rotq_wq_calibrated(o->w_method) || (o->w_method == ROTQ_WQ_RTN && o->w_clip && o->w_scale == ROTQ_WSCALE_HESSIAN);
}

static const char *method_label(rotq_wq_method m) {
    return m == ROTQ_WQ_GPTQ ? "GPTQ" : m == ROTQ_WQ_GPTAQ ? "GPTAQ" : m == ROTQ_WQ_QRONOS ? "Qronos" : "RTN";
}

void rotq_quant_describe(const rotq_quant_options *o, char *out, size_t size) {
    size_t n = 0;
#define ROOM (n < size ? size - n : 0)
    if (rotq_quant_has_types(o)) {
        const rotq_type_plan *p = &o->w_types;
        n += (size_t)snprintf(out + n, ROOM, "W %s on each GGUF type's grid: %s%s%s%s", method_label(o->w_method),
                              p->mixture[0] ? p->mixture : "rules only", p->pure ? " pure" : "", o->w_clip ? ", " : "",
                              o->w_clip ? scale_desc(o->w_scale) : "");
        if (p->embed_type != ROTQ_DTYPE_INVALID) n += (size_t)snprintf(out + n, ROOM, ", token_embd %s", rotq_dtype_name(p->embed_type));
        if (p->output_type != ROTQ_DTYPE_INVALID) n += (size_t)snprintf(out + n, ROOM, ", output %s", rotq_dtype_name(p->output_type));
        for (int32_t i = 0; i < p->n_rules; i++)
            n += (size_t)snprintf(out + n, ROOM, ", %s=%s", p->rules[i].pattern, rotq_dtype_name(p->rules[i].type));
        if (rotq_wq_calibrated(o->w_method))
            n += (size_t)snprintf(out + n, ROOM, " (damp %.3g, block %lld%s%s)", o->gptq.percdamp, (long long)o->gptq.block,
                                  o->gptq.act_order ? ", act-order" : "", o->gptq.weighted_scales && o->w_scale != ROTQ_WSCALE_HESSIAN ? ", H-weighted clip search" : "");
    } else if (o->w_method == ROTQ_WQ_NONE || o->w_bits >= 16) {
        n += (size_t)snprintf(out + n, ROOM, "W float");
    } else {
        char grp[48];
        if (o->w_group > 0) snprintf(grp, sizeof grp, "groups of %lld", (long long)o->w_group);
        else snprintf(grp, sizeof grp, "per-channel");
        char clip[64] = "";
        if (o->w_clip && o->w_scale != ROTQ_WSCALE_CLIP) snprintf(clip, sizeof clip, " %s", scale_desc(o->w_scale));
        else if (o->w_clip && o->w_clip_norm == 2.4) snprintf(clip, sizeof clip, " clip-search");
        else if (o->w_clip) snprintf(clip, sizeof clip, " clip-search |w-q|^%g", o->w_clip_norm);
        if (o->w_num != ROTQ_NUM_INT) {
            int64_t g = o->w_group > 0 ? o->w_group : rotq_num_format_block(o->w_num);
            if (g > 0) snprintf(grp, sizeof grp, "blocks of %lld", (long long)g);
            n += (size_t)snprintf(out + n, ROOM, "W %s %s %s%s", rotq_num_format_name(o->w_num), method_label(o->w_method), grp,
                                  o->w_clip ? clip : " max scale");
        } else
            n += (size_t)snprintf(out + n, ROOM, "W%d %s %s %s%s%s", o->w_bits, method_label(o->w_method),
                                  o->w_asym ? "asym" : "sym", grp, clip,
                                  range_desc(o->w_asym, o->w_sym_range));
        if (rotq_wq_calibrated(o->w_method))
            n += (size_t)snprintf(out + n, ROOM, " (damp %.3g, block %lld%s%s%s)", o->gptq.percdamp, (long long)o->gptq.block,
                                  o->gptq.act_order ? ", act-order" : "",
                                  o->gptq.static_groups && o->w_group > 0 ? ", static groups" : "",
                                  o->gptq.weighted_scales && o->w_scale != ROTQ_WSCALE_HESSIAN ? ", H-weighted clip search" : "");
    }
    n += (size_t)snprintf(out + n, ROOM, " / ");
    n += rotq_act_format_describe(out + n, ROOM, "A", &o->act, "per-token", -1);
    if (rotq_act_on(&o->act) && o->act_lm_head) n += (size_t)snprintf(out + n, ROOM, " (lm_head too)");
    n += (size_t)snprintf(out + n, ROOM, " / ");
    n += rotq_act_format_describe(out + n, ROOM, "K", &o->k, "per-head", -1);
    n += (size_t)snprintf(out + n, ROOM, " / ");
    rotq_act_format_describe(out + n, ROOM, "V", &o->v, "per-head", -1);
#undef ROOM
}

rotq_fakequant rotq_quant_fakequant(const rotq_quant_options *o, const rotq_model *m) {
    rotq_fakequant fq;
    memset(&fq, 0, sizeof fq);
    fq.act = o->act;
    fq.k = o->k;
    fq.v = o->v;
    /* per head, or the float format's own block */
    if (fq.k.group <= 0) fq.k.group = rotq_num_format_block(fq.k.num) > 0 ? rotq_num_format_block(fq.k.num) : m->hp.head_dim;
    if (fq.v.group <= 0) fq.v.group = rotq_num_format_block(fq.v.num) > 0 ? rotq_num_format_block(fq.v.num) : m->hp.head_dim;
    fq.act_lm_head = o->act_lm_head;
    return fq;
}

bool rotq_quant_has_runtime(const rotq_quant_options *o) {
    return rotq_act_on(&o->act) || rotq_act_on(&o->k) || rotq_act_on(&o->v);
}

/* Linear weights become owned float32 so quantization writes them in place and a runner borrows
 * (sees) the result. */
static rotq_status own_f32(rotq_tensor *t) {
    if (t->dtype == ROTQ_F32) return rotq_tensor_make_owned(t);
    int64_t n = rotq_tensor_numel(t);
    float *buf = malloc((size_t)n * sizeof(float));
    if (!buf) return rotq_fail(ROTQ_ERR_NOMEM, "quant: out of memory converting %s", t->name);
    rotq_status s = rotq_tensor_to_f32(t, buf);
    if (s == ROTQ_OK) s = rotq_tensor_set_f32(t, buf, ROTQ_F32);
    free(buf);
    return s;
}

/* With a type plan: the token embedding and an untied lm_head the plan gives a block type, by RTN on
 * that grid (rows along the hidden size, as GGUF stores them), after the decoder linears (whose
 * calibration runs on the float embedding); an lm_head GPTQ already did keeps its codes. */
static rotq_status quantize_globals(rotq_model *m, const rotq_quant_options *o, const rotq_dtype *types, rotq_quant_report *rep) {
    rotq_tensor *ts[2] = {rotq_model_role(m, ROLE_EMBED, -1), rotq_model_role(m, ROLE_LM_HEAD, -1)};
    for (int i = 0; i < 2; i++) {
        rotq_tensor *t = ts[i];
        rotq_wq_format f;
        if (!t || (i == 1 && t == ts[0]) || t->codes || !rotq_wq_format_for_tensor(o, types, t - m->tensors, &f)) continue;
        ROTQ_TRY(own_f32(t));
        rotq_qweight *codes = NULL;
        rotq_status s = rotq_rtn_quantize((float *)t->data, t->shape[0], t->shape[1], &f, &codes);
        if (s != ROTQ_OK) return rotq_fail_context(s, "%s", t->name);
        rotq_tensor_set_codes(t, codes, (void (*)(void *))rotq_qweight_free);
        rep->n_params += t->shape[0] * t->shape[1];
    }
    return ROTQ_OK;
}

rotq_tensor *rotq_quant_gptq_head(const rotq_model *m, const rotq_quant_options *o, const rotq_dtype *types) {
    rotq_tensor *head = rotq_model_role(m, ROLE_LM_HEAD, -1);
    rotq_wq_format f;
    if (!types || !head || head == rotq_model_role(m, ROLE_EMBED, -1) || !rotq_wq_format_for_tensor(o, types, head - m->tensors, &f))
        return NULL;
    return head;
}

/* Said before any work: every tensor's rows are whole blocks of its type (the plan falls back so
 * they are; a scalar format's groups need no whole blocks). */
static rotq_status check_whole_blocks(const rotq_tensor *t, rotq_dtype ty) {
    if (t->n_dims != 2) return rotq_fail(ROTQ_ERR_FORMAT, "quant: %s is not a matrix", t->name);
    int64_t block = rotq_dtype_grid(ty, NULL) ? rotq_dtype_block_size(ty) : 1;
    if (t->shape[1] % block)
        return rotq_fail(ROTQ_ERR_UNSUPPORTED, "quant: %s has %lld input columns, not whole %s blocks of %lld", t->name,
                         (long long)t->shape[1], rotq_dtype_name(ty), (long long)block);
    return ROTQ_OK;
}

static rotq_status quantize_linears(rotq_model *m, const rotq_quant_options *o, const rotq_dtype *types, const int32_t *calib,
                                    int64_t n_calib, rotq_quant_report *rep);

rotq_status rotq_quantize_weights(rotq_model *m, const rotq_quant_options *o, const int32_t *calib, int64_t n_calib,
                                  rotq_quant_report *rep) {
    memset(rep, 0, sizeof *rep);
    ROTQ_TRY(rotq_quant_options_check(o));
    if (o->w_method == ROTQ_WQ_NONE) return ROTQ_OK;
    if (!m->arch) return rotq_fail(ROTQ_ERR_ARG, "quant: the model has no architecture bound");
    rotq_dtype *types = NULL;
    if (rotq_quant_has_types(o)) {
        types = malloc((size_t)(m->n_tensors ? m->n_tensors : 1) * sizeof *types);
        if (!types) return rotq_fail(ROTQ_ERR_NOMEM, "quant: out of memory");
        rotq_status s = rotq_quant_tensor_types(m, o, types);
        if (s != ROTQ_OK) { free(types); return s; }
    } else if (o->w_bits >= 16) {
        return ROTQ_OK;
    }
    rotq_status s = quantize_linears(m, o, types, calib, n_calib, rep);
    if (s == ROTQ_OK && types) s = quantize_globals(m, o, types, rep);
    free(types);
    bool vision_rtn = false;
    if (s == ROTQ_OK && m->vision) {
        /* the vision tower's block linears (qkv, proj, fc1, fc2) on the same grid by RTN: a calibrated
         * method would need calibration images, and rotq calibrates on text; the patch embedding and the
         * merger stay float, as the token embedding and lm_head do */
        if (types) return rotq_fail(ROTQ_ERR_UNSUPPORTED, "quant: %s: GGUF block mixtures are for language models; "
                                    "a vision tower has no GGUF form rotq writes", m->source_path);
        rotq_quant_options vo = *o;
        vision_rtn = rotq_quant_calibrated(o);
        vo.w_method = ROTQ_WQ_RTN;
        if (vo.w_scale == ROTQ_WSCALE_HESSIAN) vo.w_scale = ROTQ_WSCALE_CLIP;
        rotq_quant_report vr;
        memset(&vr, 0, sizeof vr);
        s = quantize_linears(m->vision, &vo, NULL, NULL, 0, &vr);
        rep->n_linears += vr.n_linears;
        rep->n_params += vr.n_params;
        rep->quant_seconds += vr.quant_seconds;
    }
    if (s == ROTQ_OK) {
        /* what a written file records of its making */
        size_t n = 0, size = sizeof m->quant_desc;
        char *d = m->quant_desc;
        rotq_quant_describe(o, d, size);
        n = strlen(d);
        if (rotq_quant_calibrated(o) && n < size)
            snprintf(d + n, size - n, "; %s calibration %lld windows of %lld tokens, seed %llu", method_label(o->w_method), (long long)o->nsamples,
                     (long long)o->calib_ctx, (unsigned long long)o->seed);
        n = strlen(d);
        if (m->vision && n < size)
            snprintf(d + n, size - n, "; vision tower blocks %s, its patch embedding and merger float", vision_rtn ? "RTN" : "likewise");
    }
    return s;
}

static rotq_status quantize_linears(rotq_model *m, const rotq_quant_options *o, const rotq_dtype *types, const int32_t *calib,
                                    int64_t n_calib, rotq_quant_report *rep) {
    rotq_model_drop_codes(m);
    int64_t L = m->hp.n_layers;
    for (int32_t l = 0; l < L; l++) {
        rotq_role roles[8];
        rotq_tensor *ts[8];
        int n = rotq_quant_layer_linears(m, l, roles, ts);
        for (int i = 0; i < n; i++) {
            rotq_wq_format f;
            if (!rotq_wq_format_for_tensor(o, types, ts[i] - m->tensors, &f)) continue;
            ROTQ_TRY(check_whole_blocks(ts[i], f.dtype));
            ROTQ_TRY(own_f32(ts[i]));
        }
    }

    if (!rotq_quant_calibrated(o)) {
        double t0 = rotq_now_s();
        for (int32_t l = 0; l < L; l++) {
            rotq_role roles[8];
            rotq_tensor *ts[8];
            int n = rotq_quant_layer_linears(m, l, roles, ts);
            ROTQ_TRY(rotq_check_cancel("rtn"));
            if (o->verbose && l)
                rotq_log(ROTQ_LOG_INFO, "rtn: layer %d/%lld  %.1f s so far%s", l, (long long)L, rotq_now_s() - t0, o->w_clip ? " (clip search)" : "");
            for (int i = 0; i < n; i++) {
                rotq_wq_format f;
                if (!rotq_wq_format_for_tensor(o, types, ts[i] - m->tensors, &f)) continue;
                rotq_qweight *codes = NULL;
                rotq_status s = rotq_rtn_quantize((float *)ts[i]->data, ts[i]->shape[0], ts[i]->shape[1], &f, &codes);
                if (s != ROTQ_OK) return rotq_fail_context(s, "%s", ts[i]->name);
                rotq_tensor_set_codes(ts[i], codes, (void (*)(void *))rotq_qweight_free);
                rep->n_linears++;
                rep->n_params += ts[i]->shape[0] * ts[i]->shape[1];
            }
        }
        rep->quant_seconds = rotq_now_s() - t0;
        return ROTQ_OK;
    }

    /* GPTQ, and RTN on Hessian-searched scales, through calibration (an untied output matrix with
     * a type too: it becomes float32 before the runner borrows it) */
    rotq_tensor *head = rotq_quant_gptq_head(m, o, types);
    if (head) ROTQ_TRY(own_f32(head));
    int64_t ctx = o->calib_ctx;
    if (m->hp.max_pos > 0 && ctx > m->hp.max_pos) ctx = m->hp.max_pos;
    if (!calib) return rotq_fail(ROTQ_ERR_ARG, "quant: GPTQ needs calibration tokens");
    int32_t *windows = NULL;
    ROTQ_TRY(rotq_calib_windows(calib, n_calib, o->nsamples, ctx, o->seed, &windows));
    rotq_runner *r = NULL, *rf = NULL;
    bool asym = rotq_wq_asym_fit(o->w_method);
    /* the asymmetric fits: the quantized stream quantizes activations and KV as the options say, a
     * second runner carries the float stream */
    rotq_fakequant fq = rotq_quant_fakequant(o, m);
    rotq_status s = rotq_runner_new(m, o->threads, &r);
    if (s == ROTQ_OK) s = rotq_online_attach(r);
    if (s == ROTQ_OK && asym && !o->calib_float_acts) s = rotq_fakequant_attach(r, &fq);
    if (s == ROTQ_OK && asym) s = rotq_runner_new(m, o->threads, &rf);
    if (s == ROTQ_OK && asym) s = rotq_online_attach(rf);
    if (s == ROTQ_OK) s = rotq_gptq_model(m, r, rf, windows, o->nsamples, ctx, o, types, rep);
    rotq_runner_free(r);
    rotq_runner_free(rf);
    rotq_fakequant_release(&fq);
    free(windows);
    return s;
}
