#include "testutil.h"

#include <math.h>

#include "arch/arch.h"
#include "core/model.h"

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int tu_failures, tu_checks;
static char tmpdir[256];

const char *tu_shared(const char *rel) {
    static char path[4096];
    const char *root = getenv("ROTQ_SHARED");
    snprintf(path, sizeof path, "%s/%s", root ? root : "../shared", rel);
    if (access(path, R_OK) != 0) {
        fprintf(stderr, "skip: shared data %s is absent\n", path);
        return NULL;
    }
    return path;
}

const char *tu_tmpdir(void) {
    if (!tmpdir[0]) {
        snprintf(tmpdir, sizeof tmpdir, "/tmp/rotq-test-XXXXXX");
        if (!mkdtemp(tmpdir)) { perror("mkdtemp"); exit(1); }
    }
    return tmpdir;
}

int tu_finish(const char *name) {
    if (tmpdir[0]) {
        char cmd[512];
        snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
        if (system(cmd) != 0) fprintf(stderr, "warning: could not remove %s\n", tmpdir);
    }
    printf("%s: %d checks, %d failed\n", name, tu_checks, tu_failures);
    return tu_failures ? 1 : 0;
}

static double tu_urand(unsigned long long *st) { /* xorshift64*, uniform in [0, 1) */
    *st ^= *st >> 12; *st ^= *st << 25; *st ^= *st >> 27;
    return (double)((*st * 2685821657736338717ull) >> 11) / 9007199254740992.0;
}

double tu_nrand(unsigned long long *st) { return sqrt(-2.0 * log(tu_urand(st) + 1e-300)) * cos(2 * M_PI * tu_urand(st)); }

static void tu_add(rotq_model *m, unsigned long long *st, const char *tmpl, int32_t layer, int64_t rows, int64_t cols,
                   double scale, double mean) {
    char name[ROTQ_NAME_MAX];
    rotq_arch_expand(tmpl, layer, name, sizeof name);
    int64_t n = rows * (cols ? cols : 1);
    float *p = malloc((size_t)n * sizeof(float));
    for (int64_t i = 0; i < n; i++) p[i] = (float)(mean + scale * tu_nrand(st));
    int64_t shape[2] = {rows, cols};
    if (rotq_model_add_tensor(m, name, ROTQ_F32, cols ? 2 : 1, shape, p, (uint64_t)n * 4, true) != ROTQ_OK) {
        fprintf(stderr, "add %s: %s\n", name, rotq_last_error());
        exit(1);
    }
}

rotq_model *tu_random_llama(const tu_llama_shape *s, unsigned long long seed) {
    unsigned long long st = seed ? seed : 1;
    rotq_model *m = rotq_model_new();
    m->arch = rotq_arch_find("llama");
    rotq_hparams *hp = &m->hp;
    snprintf(hp->arch, sizeof hp->arch, "llama");
    int64_t D = s->d, FF = s->ff, NH = s->heads, NKV = s->kv_heads, HD = s->head_dim, V = s->vocab;
    hp->hidden = D; hp->intermediate = FF; hp->n_layers = s->layers; hp->n_heads = NH; hp->n_kv_heads = NKV;
    hp->head_dim = HD; hp->rotary_dim = HD; hp->vocab = V; hp->max_pos = 128; hp->norm_eps = 1e-5;
    hp->rope_theta = 10000; hp->bos_id = 1; hp->eos_id = 2;
    tu_add(m, &st, "model.embed_tokens.weight", 0, V, D, 1.0, 0);
    for (int32_t l = 0; l < s->layers; l++) {
        tu_add(m, &st, "model.layers.{L}.input_layernorm.weight", l, D, 0, 0.2, 1);
        tu_add(m, &st, "model.layers.{L}.self_attn.q_proj.weight", l, NH * HD, D, 1 / sqrt((double)D), 0);
        tu_add(m, &st, "model.layers.{L}.self_attn.k_proj.weight", l, NKV * HD, D, 1 / sqrt((double)D), 0);
        tu_add(m, &st, "model.layers.{L}.self_attn.v_proj.weight", l, NKV * HD, D, 1 / sqrt((double)D), 0);
        tu_add(m, &st, "model.layers.{L}.self_attn.o_proj.weight", l, D, NH * HD, 1 / sqrt((double)(NH * HD)), 0);
        tu_add(m, &st, "model.layers.{L}.post_attention_layernorm.weight", l, D, 0, 0.2, 1);
        tu_add(m, &st, "model.layers.{L}.mlp.gate_proj.weight", l, FF, D, 1 / sqrt((double)D), 0);
        tu_add(m, &st, "model.layers.{L}.mlp.up_proj.weight", l, FF, D, 1 / sqrt((double)D), 0);
        tu_add(m, &st, "model.layers.{L}.mlp.down_proj.weight", l, D, FF, 1 / sqrt((double)FF), 0);
    }
    tu_add(m, &st, "model.norm.weight", 0, D, 0, 0.2, 1);
    tu_add(m, &st, "lm_head.weight", 0, V, D, 1 / sqrt((double)D), 0);
    if (rotq_model_bind_arch(m) != ROTQ_OK) { fprintf(stderr, "bind: %s\n", rotq_last_error()); exit(1); }
    return m;
}

rotq_model *tu_random_model(const char *arch, const tu_llama_shape *s, unsigned long long seed) {
    unsigned long long st = seed ? seed : 1;
    rotq_model *m = rotq_model_new();
    m->arch = rotq_arch_find(arch);
    if (!m->arch) { fprintf(stderr, "no architecture %s\n", arch); exit(1); }
    rotq_hparams *hp = &m->hp;
    snprintf(hp->arch, sizeof hp->arch, "%s", arch);
    int64_t D = s->d, FF = s->ff, NH = s->heads, NKV = s->kv_heads, HD = s->head_dim, V = s->vocab;
    bool rope = m->arch->pos == ROTQ_POS_ROPE;
    hp->hidden = D; hp->intermediate = FF; hp->n_layers = s->layers; hp->n_heads = NH; hp->n_kv_heads = NKV;
    hp->head_dim = HD; hp->rotary_dim = rope ? HD : 0; hp->vocab = V; hp->max_pos = 128; hp->norm_eps = 1e-5;
    hp->rope_theta = 10000; hp->bos_id = 1; hp->eos_id = 2; hp->mlp_act = m->arch->mlp;
    for (int32_t i = 0; i < m->arch->n_tensors; i++) {
        const rotq_arch_tensor *t = &m->arch->tensors[i];
        int64_t rows = 0, cols = 0;
        double scale = 1.0, mean = 0.0;
        switch (t->role) {
        case ROLE_EMBED: rows = V, cols = D; break;
        case ROLE_POS_EMBED: rows = 128 + m->arch->pos_offset, cols = D, scale = 0.3; break;
        case ROLE_ATTN_NORM: case ROLE_MLP_NORM: case ROLE_FINAL_NORM: rows = D, scale = 0.2, mean = 1; break;
        case ROLE_ATTN_NORM_BIAS: case ROLE_MLP_NORM_BIAS: case ROLE_FINAL_NORM_BIAS: rows = D, scale = 0.1; break;
        case ROLE_Q: rows = NH * HD, cols = D; break;
        case ROLE_K: case ROLE_V: rows = NKV * HD, cols = D; break;
        case ROLE_QKV: rows = (NH + 2 * NKV) * HD, cols = D; break;
        case ROLE_Q_BIAS: rows = NH * HD, scale = 0.1; break;
        case ROLE_K_BIAS: case ROLE_V_BIAS: rows = NKV * HD, scale = 0.1; break;
        case ROLE_QKV_BIAS: rows = (NH + 2 * NKV) * HD, scale = 0.1; break;
        case ROLE_O: rows = D, cols = NH * HD; break;
        case ROLE_GATE: case ROLE_UP: rows = FF, cols = D; break;
        case ROLE_GATE_UP: rows = 2 * FF, cols = D; break;
        case ROLE_GATE_BIAS: case ROLE_UP_BIAS: rows = FF, scale = 0.1; break;
        case ROLE_DOWN: rows = D, cols = FF; break;
        case ROLE_O_BIAS: case ROLE_DOWN_BIAS: rows = D, scale = 0.1; break;
        case ROLE_LM_HEAD: rows = V, cols = D; break;
        case ROLE_Q_NORM: case ROLE_K_NORM: rows = HD, scale = 0.2, mean = 1; break;
        case ROLE_POST_ATTN_NORM: case ROLE_POST_MLP_NORM: rows = D, scale = 0.2, mean = 1; break;
        default: continue; /* lm_head bias: none */
        }
        if (cols) scale = t->role == ROLE_EMBED ? 1.0 : 1 / sqrt((double)cols);
        int32_t layers = t->per_layer ? s->layers : 1;
        for (int32_t l = 0; l < layers; l++) tu_add(m, &st, t->hf, l, rows, cols, scale, mean);
    }
    if (rotq_model_bind_arch(m) != ROTQ_OK) { fprintf(stderr, "bind %s: %s\n", arch, rotq_last_error()); exit(1); }
    return m;
}
