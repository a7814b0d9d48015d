/* Per-tensor GGUF block types: the mixtures llama.cpp's quantizer names (Q4_K_M, Q3_K_M, Q4_0, ...),
 * as data. A mixture has a base type and rules by tensor kind and layer (more bits for the value
 * projection, the MLP down projection and the output where they matter most); a tensor whose rows
 * are not whole blocks of its type falls back to a 32-block type of about the same bits, as
 * llama.cpp does. User rules (a regex over GGUF tensor names, first match wins) and the embedding
 * and output types override the mixture; the fallback still applies after them. */
#include <stdio.h>
#include <string.h>
#include <strings.h>

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include "arch/arch.h"
#include "quant/quant.h"

/* The tensor kinds the rules speak of. */
typedef enum kind { K_OTHER, K_EMBED, K_OUTPUT, K_ATTN_V, K_ATTN_QKV, K_ATTN_OUT, K_FFN_DOWN } kind;

/* When a rule applies, by the layer index i of n (llama.cpp's counters are the layer index for
 * models with one such tensor per layer). */
typedef enum when { ALWAYS, MORE_BITS, FIRST_16TH, FIRST_8TH, FIRST_2, FIRST_4, GQA_4 } when;

typedef struct rule { kind k; when w; rotq_dtype t; } rule;

typedef struct mixture {
    const char *name;
    rotq_dtype base;
    rule rules[6];  /* the first that applies wins; then the base type */
} mixture;

/* llama.cpp's llama_tensor_get_type for dense models (no MoE/Falcon/70B special cases, no imatrix
 * rules): read from its source and restated as data. */
static const mixture MIXTURES[] = {
    {"Q4_0", ROTQ_Q4_0, {{0}}},
    {"Q4_1", ROTQ_Q4_1, {{0}}},
    {"Q5_0", ROTQ_Q5_0, {{0}}},
    {"Q5_1", ROTQ_Q5_1, {{0}}},
    {"Q8_0", ROTQ_Q8_0, {{0}}},
    {"Q2_K", ROTQ_Q2_K, {{K_ATTN_V, GQA_4, ROTQ_Q4_K}, {K_ATTN_V, ALWAYS, ROTQ_Q3_K}, {K_FFN_DOWN, ALWAYS, ROTQ_Q3_K},
                         {K_ATTN_OUT, ALWAYS, ROTQ_Q3_K}}},
    {"Q2_K_S", ROTQ_Q2_K, {{K_ATTN_V, GQA_4, ROTQ_Q4_K}, {K_FFN_DOWN, FIRST_8TH, ROTQ_Q4_K}}},
    {"Q3_K_S", ROTQ_Q3_K, {{0}}},
    {"Q3_K", ROTQ_Q3_K, {{0}}}, /* a type name alone (not a llama.cpp mixture): that type, the output as above */
    {"Q4_K", ROTQ_Q4_K, {{0}}},
    {"Q5_K", ROTQ_Q5_K, {{0}}},
    {"Q3_K_M", ROTQ_Q3_K, {{K_ATTN_V, FIRST_2, ROTQ_Q5_K}, {K_ATTN_V, ALWAYS, ROTQ_Q4_K}, {K_FFN_DOWN, FIRST_16TH, ROTQ_Q5_K},
                           {K_FFN_DOWN, ALWAYS, ROTQ_Q4_K}, {K_ATTN_OUT, ALWAYS, ROTQ_Q4_K}, {K_ATTN_QKV, ALWAYS, ROTQ_Q4_K}}},
    {"Q3_K_L", ROTQ_Q3_K, {{K_ATTN_V, ALWAYS, ROTQ_Q5_K}, {K_FFN_DOWN, ALWAYS, ROTQ_Q5_K}, {K_ATTN_OUT, ALWAYS, ROTQ_Q5_K},
                           {K_ATTN_QKV, ALWAYS, ROTQ_Q4_K}}},
    {"Q4_K_S", ROTQ_Q4_K, {{K_ATTN_V, FIRST_4, ROTQ_Q5_K}, {K_FFN_DOWN, FIRST_8TH, ROTQ_Q5_K}}},
    {"Q4_K_M", ROTQ_Q4_K, {{K_ATTN_V, MORE_BITS, ROTQ_Q6_K}, {K_FFN_DOWN, MORE_BITS, ROTQ_Q6_K}, {K_ATTN_QKV, ALWAYS, ROTQ_Q5_K}}},
    {"Q5_K_S", ROTQ_Q5_K, {{0}}},
    {"Q5_K_M", ROTQ_Q5_K, {{K_ATTN_V, MORE_BITS, ROTQ_Q6_K}, {K_FFN_DOWN, MORE_BITS, ROTQ_Q6_K}, {K_ATTN_QKV, ALWAYS, ROTQ_Q6_K}}},
    {"Q6_K", ROTQ_Q6_K, {{0}}},
};
static const mixture *find_mixture(const char *name) {
    for (size_t i = 0; i < sizeof MIXTURES / sizeof MIXTURES[0]; i++)
        if (strcasecmp(MIXTURES[i].name, name) == 0) return &MIXTURES[i];
    return NULL;
}

size_t rotq_mixture_names(char *out, size_t size) {
    size_t n = 0;
    for (size_t i = 0; i < sizeof MIXTURES / sizeof MIXTURES[0]; i++)
        n += (size_t)snprintf(out + (n < size ? n : size), n < size ? size - n : 0, "%s%s", i ? ", " : "", MIXTURES[i].name);
    return n;
}

static bool more_bits(int64_t i, int64_t n) { return i < n / 8 || i >= 7 * n / 8 || (i - n / 8) % 3 == 2; }

static bool applies(when w, int64_t i, int64_t n, int64_t gqa) {
    switch (w) {
    case ALWAYS: return true;
    case MORE_BITS: return more_bits(i, n);
    case FIRST_16TH: return i < n / 16;
    case FIRST_8TH: return i < n / 8;
    case FIRST_2: return i < 2;
    case FIRST_4: return i < 4;
    case GQA_4: return gqa >= 4;
    }
    return false;
}

/* A 256-block type on rows that are not whole blocks: llama.cpp's fallback of about the same bits. */
static rotq_dtype fallback(rotq_dtype t, int64_t cols) {
    if (cols % rotq_dtype_block_size(t) == 0) return t;
    switch (t) {
    case ROTQ_Q2_K: case ROTQ_Q3_K: t = ROTQ_Q4_0; break;
    case ROTQ_Q4_K: t = ROTQ_Q5_0; break;
    case ROTQ_Q5_K: t = ROTQ_Q5_1; break;
    case ROTQ_Q6_K: t = ROTQ_Q8_0; break;
    default: break;
    }
    return cols % rotq_dtype_block_size(t) == 0 ? t : ROTQ_F16;
}

static kind kind_of(rotq_role r) {
    switch (r) {
    case ROLE_EMBED: return K_EMBED;
    case ROLE_LM_HEAD: return K_OUTPUT;
    case ROLE_V: return K_ATTN_V;
    case ROLE_QKV: return K_ATTN_QKV;
    case ROLE_O: return K_ATTN_OUT;
    case ROLE_DOWN: return K_FFN_DOWN;
    default: return K_OTHER;
    }
}

static bool is_matrix_role(rotq_role r) {
    switch (r) {
    case ROLE_EMBED: case ROLE_LM_HEAD: case ROLE_Q: case ROLE_K: case ROLE_V: case ROLE_QKV: case ROLE_O:
    case ROLE_GATE: case ROLE_UP: case ROLE_GATE_UP: case ROLE_DOWN: return true;
    default: return false;
    }
}

rotq_status rotq_quant_set_mixture(rotq_quant_options *o, const char *name) {
    const mixture *x = name ? find_mixture(name) : NULL;
    if (!x) {
        char names[256];
        rotq_mixture_names(names, sizeof names);
        return rotq_fail(ROTQ_ERR_ARG, "quant: unknown GGUF mixture %s (%s)", name ? name : "(null)", names);
    }
    snprintf(o->w_types.mixture, sizeof o->w_types.mixture, "%s", x->name);
    if (o->w_method == ROTQ_WQ_NONE) o->w_method = ROTQ_WQ_RTN;
    return ROTQ_OK;
}

/* A user rule's regular expression, compiled; ROTQ_ERR_ARG naming the pattern when it is not one. */
static rotq_status compile_rule(const char *pattern, pcre2_code **out) {
    int err;
    PCRE2_SIZE off;
    *out = pcre2_compile((PCRE2_SPTR)pattern, PCRE2_ZERO_TERMINATED, 0, &err, &off, NULL);
    if (*out) return ROTQ_OK;
    PCRE2_UCHAR msg[160];
    pcre2_get_error_message(err, msg, sizeof msg);
    return rotq_fail(ROTQ_ERR_ARG, "quant: tensor type pattern %s: %s at offset %zu", pattern, (const char *)msg, (size_t)off);
}

rotq_status rotq_quant_add_type_rule(rotq_quant_options *o, const char *pattern, rotq_dtype t) {
    rotq_type_plan *p = &o->w_types;
    if (p->n_rules >= ROTQ_MAX_TYPE_RULES) return rotq_fail(ROTQ_ERR_ARG, "quant: more than %d tensor type rules", ROTQ_MAX_TYPE_RULES);
    if (!pattern || !*pattern || strlen(pattern) >= sizeof p->rules[0].pattern)
        return rotq_fail(ROTQ_ERR_ARG, "quant: a tensor type rule needs a pattern of 1..%zu characters", sizeof p->rules[0].pattern - 1);
    if (!rotq_dtype_grid(t, NULL) && t != ROTQ_F32 && t != ROTQ_F16)
        return rotq_fail(ROTQ_ERR_ARG, "quant: tensor type %s for %s: rotq writes %s, or f32/f16 (kept float)", rotq_dtype_name(t), pattern,
                         ROTQ_BLOCK_TYPES_WRITTEN);
    pcre2_code *re;
    ROTQ_TRY(compile_rule(pattern, &re));
    pcre2_code_free(re);
    snprintf(p->rules[p->n_rules].pattern, sizeof p->rules[0].pattern, "%s", pattern);
    p->rules[p->n_rules].type = t;
    p->n_rules++;
    if (o->w_method == ROTQ_WQ_NONE) o->w_method = ROTQ_WQ_RTN;
    return ROTQ_OK;
}

bool rotq_quant_has_types(const rotq_quant_options *o) {
    const rotq_type_plan *p = &o->w_types;
    return o->w_method != ROTQ_WQ_NONE &&
           (p->mixture[0] || p->n_rules > 0 || p->embed_type != ROTQ_DTYPE_INVALID || p->output_type != ROTQ_DTYPE_INVALID);
}

bool rotq_quant_has_weights(const rotq_quant_options *o) {
    return rotq_quant_has_types(o) || (o->w_method != ROTQ_WQ_NONE && o->w_bits < 16);
}

bool rotq_dtype_block_written(rotq_dtype t) { return rotq_dtype_grid(t, NULL); }

/* The GGUF name of tensor t (what user rules match), from its architecture's template. */
static void gguf_name(const rotq_model *m, const rotq_tensor *t, char *out, size_t size) {
    const rotq_arch_tensor *at = m->arch && t->role >= 0 ? rotq_arch_tensor_for(m->arch, (rotq_role)t->role) : NULL;
    if (at && at->gguf[0]) rotq_arch_expand(at->gguf, t->layer, out, size);
    else snprintf(out, size, "%s", t->name);
}

rotq_status rotq_quant_tensor_types(const rotq_model *m, const rotq_quant_options *o, rotq_dtype *types) {
    const rotq_type_plan *p = &o->w_types;
    const mixture *x = p->mixture[0] ? find_mixture(p->mixture) : NULL;
    if (p->mixture[0] && !x) return rotq_fail(ROTQ_ERR_ARG, "quant: unknown GGUF mixture %s", p->mixture);
    if (p->n_rules < 0 || p->n_rules > ROTQ_MAX_TYPE_RULES)
        return rotq_fail(ROTQ_ERR_ARG, "quant: %d tensor type rules (at most %d)", p->n_rules, ROTQ_MAX_TYPE_RULES);
    /* the user's rules, compiled once for every tensor name */
    pcre2_code *re[ROTQ_MAX_TYPE_RULES] = {0};
    pcre2_match_data *md = pcre2_match_data_create(1, NULL);
    rotq_status st = md ? ROTQ_OK : rotq_fail(ROTQ_ERR_NOMEM, "quant: out of memory for the tensor type rules");
    for (int32_t r = 0; r < p->n_rules && st == ROTQ_OK; r++) st = compile_rule(p->rules[r].pattern, &re[r]);
    const rotq_tensor *embed = rotq_model_role(m, ROLE_EMBED, -1), *head = rotq_model_role(m, ROLE_LM_HEAD, -1);
    bool tied = embed && (!head || head == embed);
    int64_t n = m->hp.n_layers, gqa = m->hp.n_kv_heads > 0 ? m->hp.n_heads / m->hp.n_kv_heads : 1;
    for (int64_t i = 0; i < m->n_tensors && st == ROTQ_OK; i++) {
        const rotq_tensor *t = &m->tensors[i];
        types[i] = ROTQ_DTYPE_INVALID;
        if (t->role < 0 || !is_matrix_role((rotq_role)t->role) || t->n_dims != 2) continue;
        kind k = kind_of((rotq_role)t->role);
        if (k == K_EMBED && tied) k = K_OUTPUT; /* one tensor serves both: the output's type, as llama.cpp */
        int64_t cols = t->shape[1];
        rotq_dtype ty = ROTQ_DTYPE_INVALID;
        /* the embedding and output types first, then the user's rules, then the mixture */
        if (t->role == ROLE_EMBED && p->embed_type != ROTQ_DTYPE_INVALID) ty = p->embed_type;
        else if (k == K_OUTPUT && p->output_type != ROTQ_DTYPE_INVALID) ty = p->output_type;
        char name[ROTQ_NAME_MAX];
        gguf_name(m, t, name, sizeof name);
        for (int32_t r = 0; r < p->n_rules && ty == ROTQ_DTYPE_INVALID; r++)
            if (pcre2_match(re[r], (PCRE2_SPTR)name, strlen(name), 0, 0, md, NULL) >= 0) ty = p->rules[r].type;
        if (ty == ROTQ_DTYPE_INVALID && x) {
            ty = x->base;
            if (p->pure) {
                /* every matrix the base type */
            } else if (k == K_OUTPUT) {
                /* llama.cpp: Q6_K unless the rows are not whole blocks of the base type (then Q8_0) */
                ty = cols % rotq_dtype_block_size(x->base) || x->base == ROTQ_Q8_0 ? ROTQ_Q8_0 : ROTQ_Q6_K;
            } else {
                for (int r = 0; r < 6 && x->rules[r].t; r++)
                    if (x->rules[r].k == k && applies(x->rules[r].w, t->layer, n, gqa)) { ty = x->rules[r].t; break; }
            }
        }
        if (ty == ROTQ_DTYPE_INVALID) continue;
        if (rotq_dtype_grid(ty, NULL)) ty = fallback(ty, cols);
        types[i] = rotq_dtype_grid(ty, NULL) ? ty : ROTQ_DTYPE_INVALID; /* f32/f16: kept float */
    }
    for (int32_t r = 0; r < p->n_rules; r++) pcre2_code_free(re[r]);
    pcre2_match_data_free(md);
    return st;
}
