/* Sessions: every way of running a model gives the same answer on a rotated model as on the
 * original, because the session — not its caller — puts the recorded online rotations in place.
 *  - random Llama (non-power-of-two sizes), all 16 combinations of R1..R4, rotated in memory and
 *    also saved and reloaded: perplexity within 1e-4 relative, the same greedy tokens, logits
 *    equivalent (rotq_session_compare), statistics recorded at every site
 *  - the bare runner refuses a model with recorded online rotations that are not attached
 *  - the transform list: online rotations first, then the quantizers, at the sites they act
 *  - the reported repro on tinystories-260k (rotate with defaults, save, reload; ppl ~12,600 and
 *    "time time whararar" before the fix), when ../shared is there */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "nn/nn.h"
#include "rotq.h"
#include "testutil.h"

static const tu_llama_shape shape = {.d = 96, .ff = 160, .layers = 2, .heads = 4, .kv_heads = 2, .head_dim = 24, .vocab = 100};
enum { N_IDS = 200, CTX = 48, N_NEW = 12 };

static int32_t ids[N_IDS];

typedef struct answers {
    double ppl;
    int32_t gen[N_NEW];
    int64_t n_gen;
} answers;

static void run_all(rotq_model *m, answers *a, const char *what) {
    rotq_session_options so = rotq_session_defaults();
    so.threads = 2;
    so.stats = true;
    rotq_session *s = NULL;
    CHECK(rotq_session_new(m, &so, &s) == ROTQ_OK, "%s: %s", what, rotq_last_error());
    if (!s) return;
    rotq_ppl_options po = {.ctx = CTX, .protocol = ROTQ_PPL_PAPERS, .bos = ROTQ_BOS_NONE, .bos_id = -1};
    rotq_ppl_result res;
    CHECK(rotq_session_ppl(s, ids, N_IDS, &po, &res) == ROTQ_OK, "%s: %s", what, rotq_last_error());
    CHECK(res.n_windows == N_IDS / CTX && res.n_scored == res.n_windows * (CTX - 1), "%s: %lld windows, %lld scored", what,
          (long long)res.n_windows, (long long)res.n_scored);
    a->ppl = res.ppl;
    CHECK(rotq_session_generate(s, ids, 5, N_NEW, -1, a->gen, &a->n_gen, NULL, NULL, NULL) == ROTQ_OK, "%s: %s", what,
          rotq_last_error());
    CHECK(a->n_gen == N_NEW, "%s: generated %lld tokens", what, (long long)a->n_gen);
    /* statistics: every site of every layer saw its N_IDS × width values */
    for (int32_t l = 0; l < shape.layers; l++)
        for (int site = 0; site < ROTQ_N_SITES; site++) {
            rotq_site_summary st;
            CHECK(rotq_session_site_stats(s, l, (rotq_site)site, &st) == ROTQ_OK, "%s", rotq_last_error());
            CHECK(st.count > 0 && st.max_over_rms >= 1.0 && st.kurtosis > 0 && isfinite(st.kurtosis),
                  "%s: layer %d %s: count %lld, max/rms %g, kurtosis %g", what, l, rotq_site_name(site),
                  (long long)st.count, st.max_over_rms, st.kurtosis);
        }
    rotq_session_free(s);
}

static void check_same(const answers *o, const answers *r, const char *what) {
    double rel = fabs(r->ppl - o->ppl) / o->ppl;
    CHECK(rel < 1e-4, "%s: perplexity %.6f vs %.6f on the original (relative %.2g)", what, r->ppl, o->ppl, rel);
    CHECK(r->n_gen == o->n_gen && memcmp(r->gen, o->gen, sizeof o->gen) == 0, "%s: greedy tokens differ", what);
}

static void check_equivalent(rotq_model *a, rotq_model *b, const char *what) {
    rotq_session *sa = NULL, *sb = NULL;
    CHECK(rotq_session_new(a, NULL, &sa) == ROTQ_OK && rotq_session_new(b, NULL, &sb) == ROTQ_OK, "%s", rotq_last_error());
    rotq_verify_result v;
    if (sa && sb) {
        CHECK(rotq_session_compare(sa, sb, ids, 64, &v) == ROTQ_OK, "%s", rotq_last_error());
        CHECK(v.max_abs_dlogit < 1e-3 * v.max_abs_logit && v.mean_kl < 1e-6, "%s: max|dlogit| %g of %g, KL %g", what,
              v.max_abs_dlogit, v.max_abs_logit, v.mean_kl);
    }
    rotq_session_free(sa);
    rotq_session_free(sb);
}

static void test_combinations(void) {
    rotq_model *orig = tu_random_llama(&shape, 21);
    answers o;
    run_all(orig, &o, "original");
    int with_online = 0;
    for (int c = 0; c < 16; c++) {
        rotq_rotate_options ro = rotq_rotate_options_default();
        ro.r1 = c & 1 ? ROTQ_R_RANDOM_HADAMARD : ROTQ_R_NONE;
        ro.r2 = c & 2 ? ROTQ_R_RANDOM_HADAMARD : ROTQ_R_NONE;
        ro.r3 = c & 4;
        ro.r4 = c & 8;
        ro.seed = 5;
        char what[96];
        snprintf(what, sizeof what, "R1 %s R2 %s R3 %s R4 %s", c & 1 ? "on" : "off", c & 2 ? "on" : "off",
                 c & 4 ? "on" : "off", c & 8 ? "on" : "off");
        rotq_model *m = tu_random_llama(&shape, 21);
        CHECK(rotq_rotate_model(m, &ro) == ROTQ_OK, "%s: %s", what, rotq_last_error());
        answers r;
        run_all(m, &r, what);
        check_same(&o, &r, what);
        check_equivalent(orig, m, what);

        /* the same through a file: the record of R3/R4 must come back and be applied */
        char dir[512], what_file[128];
        snprintf(dir, sizeof dir, "%s/rot-%d", tu_tmpdir(), c);
        snprintf(what_file, sizeof what_file, "%s, saved and reloaded", what);
        rotq_save_options so = rotq_save_defaults();
        CHECK(rotq_model_save(m, dir, &so) == ROTQ_OK, "%s", rotq_last_error());
        rotq_model *back = NULL;
        rotq_load_options lo = rotq_load_defaults();
        CHECK(rotq_model_load(dir, &lo, &back) == ROTQ_OK, "%s", rotq_last_error());
        if (back) {
            run_all(back, &r, what_file);
            check_same(&o, &r, what_file);
        }

        /* the bare runner must refuse what it would compute wrongly */
        if (c & 12) {
            with_online++;
            rotq_runner *run = NULL;
            CHECK(rotq_runner_new(back ? back : m, 1, &run) == ROTQ_OK, "%s", rotq_last_error());
            float hidden[8 * 96];
            CHECK(run && rotq_nn_forward(run, ids, 8, NULL, hidden) == ROTQ_ERR_ARG &&
                      strstr(rotq_last_error(), "online rotations"),
                  "%s: a runner without its online rotations ran (%s)", what, rotq_last_error());
            rotq_runner_free(run);
        }
        rotq_model_free(back);
        rotq_model_free(m);
    }
    CHECK(with_online == 12, "%d combinations with online rotations", with_online);
    rotq_model_free(orig);
}

/* Online rotations come first at their sites, quantizers after them, each where it acts. */
static void test_transform_order(void) {
    rotq_model *m = tu_random_llama(&shape, 3);
    rotq_rotate_options ro = rotq_rotate_options_default();
    CHECK(rotq_rotate_model(m, &ro) == ROTQ_OK, "%s", rotq_last_error());
    rotq_quant_options q = rotq_quant_defaults();
    CHECK(rotq_quant_preset(&q, "w4a4kv4") == ROTQ_OK, "%s", rotq_last_error());
    rotq_quant_report rep;
    CHECK(rotq_quantize_weights(m, &q, NULL, 0, &rep) == ROTQ_OK, "%s", rotq_last_error());
    rotq_session_options so = rotq_session_defaults();
    so.quant = &q;
    rotq_session *s = NULL;
    CHECK(rotq_session_new(m, &so, &s) == ROTQ_OK, "%s", rotq_last_error());
    if (s) {
        const char *t = rotq_session_transforms(s);
        const char *want[] = {"linear_input: fake-quant A4 sym per-token clip 0.90",
                              "linear: integer product",
                              "qk_rope: R3 online Hadamard 24 -> fake-quant K4 asym per-head clip 0.95",
                              "v: fake-quant V4 asym per-head clip 0.95",
                              "down_input: R4 online Hadamard 160"};
        const char *at = t;
        for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
            const char *p = strstr(at, want[i]);
            CHECK(p != NULL, "transform list lacks (in order) \"%s\":\n%s", want[i], t);
            if (p) at = p;
        }
        CHECK(strncmp(rotq_session_products(s), "int (", 5) == 0, "products: %s", rotq_session_products(s));
        /* quantized but equivalent in spirit: a sane perplexity */
        rotq_ppl_options po = {.ctx = CTX, .protocol = ROTQ_PPL_PAPERS, .bos = ROTQ_BOS_NONE, .bos_id = -1};
        rotq_ppl_result res;
        CHECK(rotq_session_ppl(s, ids, N_IDS, &po, &res) == ROTQ_OK && isfinite(res.ppl) && res.ppl > 1,
              "quantized ppl %g: %s", res.ppl, rotq_last_error());
    }
    rotq_session_free(s);
    /* a float session of an unrotated model lists nothing */
    rotq_model *f = tu_random_llama(&shape, 3);
    CHECK(rotq_session_new(f, NULL, &s) == ROTQ_OK, "%s", rotq_last_error());
    if (s) CHECK(strncmp(rotq_session_transforms(s), "none", 4) == 0, "float session: %s", rotq_session_transforms(s));
    rotq_session_free(s);
    rotq_model_free(f);
    rotq_model_free(m);
}

/* The repro of the runtime issue: `rotq rotate M R` with defaults, then perplexity and greedy
 * generation on R — through files, as a user does. */
static void test_tinystories_repro(void) {
    char model[512], text_path[512];
    const char *p1 = tu_shared("models/tinystories-260k/model.bin");
    if (!p1) return;
    snprintf(model, sizeof model, "%s", p1);
    const char *p2 = tu_shared("data/tinystories/valid-excerpt.txt");
    if (!p2) return;
    snprintf(text_path, sizeof text_path, "%s", p2);
    rotq_load_options lo = rotq_load_defaults();
    rotq_model *m = NULL, *r = NULL;
    CHECK(rotq_model_load(model, &lo, &m) == ROTQ_OK, "%s", rotq_last_error());
    CHECK(rotq_model_load(model, &lo, &r) == ROTQ_OK, "%s", rotq_last_error());
    if (!m || !r) return;
    rotq_rotate_options ro = rotq_rotate_options_default();
    char dir[512];
    snprintf(dir, sizeof dir, "%s/tinystories-rotated", tu_tmpdir());
    rotq_save_options so = rotq_save_defaults();
    CHECK(rotq_rotate_save(r, &ro, dir, &so) == ROTQ_OK, "%s", rotq_last_error());
    rotq_model_free(r);
    r = NULL;
    CHECK(rotq_model_load(dir, &lo, &r) == ROTQ_OK, "%s", rotq_last_error());
    rotq_tokenizer *tok = NULL;
    CHECK(rotq_tokenizer_from_model(m, &tok) == ROTQ_OK, "%s", rotq_last_error());
    uint8_t *text = NULL;
    uint64_t len = 0;
    CHECK(rotq_read_file(text_path, &text, &len) == ROTQ_OK, "%s", rotq_last_error());
    int32_t *tids = NULL, *prompt = NULL;
    int64_t n = 0, n_prompt = 0;
    CHECK(rotq_tokenizer_encode(tok, (const char *)text, len, false, &tids, &n) == ROTQ_OK, "%s", rotq_last_error());
    const char *p = "Once upon a time";
    CHECK(rotq_tokenizer_encode(tok, p, strlen(p), true, &prompt, &n_prompt) == ROTQ_OK, "%s", rotq_last_error());
    double ppl[2];
    int32_t gen[2][32];
    int64_t n_gen[2];
    rotq_model *models[2] = {m, r};
    for (int i = 0; i < 2 && r && tids && prompt; i++) {
        rotq_session *s = NULL;
        CHECK(rotq_session_new(models[i], NULL, &s) == ROTQ_OK, "%s", rotq_last_error());
        rotq_ppl_options po = {.ctx = 256, .protocol = ROTQ_PPL_PAPERS, .bos = ROTQ_BOS_FIRST, .bos_id = rotq_tokenizer_bos(tok)};
        rotq_ppl_result res = {0};
        CHECK(s && rotq_session_ppl(s, tids, n, &po, &res) == ROTQ_OK, "%s", rotq_last_error());
        ppl[i] = res.ppl;
        CHECK(s && rotq_session_generate(s, prompt, n_prompt, 32, -1, gen[i], &n_gen[i], NULL, NULL, NULL) == ROTQ_OK, "%s",
              rotq_last_error());
        rotq_session_free(s);
    }
    if (r && tids && prompt) {
        CHECK(fabs(ppl[1] - ppl[0]) / ppl[0] < 1e-4 && ppl[0] < 30, "tinystories: rotated ppl %.5f, original %.5f", ppl[1],
              ppl[0]);
        CHECK(n_gen[0] == n_gen[1] && memcmp(gen[0], gen[1], sizeof gen[0]) == 0, "tinystories: greedy continuations differ");
        fprintf(stderr, "tinystories-260k: ppl %.5f original, %.5f rotated (R1-R4 defaults, saved and reloaded)\n", ppl[0],
                ppl[1]);
    }
    free(tids);
    free(prompt);
    free(text);
    rotq_tokenizer_free(tok);
    rotq_model_free(r);
    rotq_model_free(m);
}

/* Block-diagonal R1 (fused) and R4 (online): the rotated model computes the original function, in
 * memory and through a file (the record keeps R4's block); R1 is block-diagonal with an orthogonal
 * block of the size asked; blocks that do not divide the width, and LayerNorm models, are refused. */
static void test_block_rotations(void) {
    rotq_model *orig = tu_random_llama(&shape, 21);
    answers o;
    run_all(orig, &o, "original");
    const int64_t blocks[2][2] = {{32, 32}, {12, 20}};
    for (int k = 0; k < 2; k++) {
        int64_t b1 = blocks[k][0], b4 = blocks[k][1];
        char what[96], dir[512], rots[512];
        snprintf(what, sizeof what, "R1 block %lld, R4 block %lld", (long long)b1, (long long)b4);
        snprintf(rots, sizeof rots, "%s/blockrot-%d", tu_tmpdir(), k);
        mkdir(rots, 0755);
        rotq_rotate_options ro = rotq_rotate_options_default();
        ro.r1_block = b1;
        ro.r4_block = b4;
        ro.seed = 3;
        ro.save_rotations = rots;
        rotq_model *m = tu_random_llama(&shape, 21);
        CHECK(rotq_rotate_model(m, &ro) == ROTQ_OK, "%s: %s", what, rotq_last_error());
        answers r;
        run_all(m, &r, what);
        check_same(&o, &r, what);
        check_equivalent(orig, m, what);
        snprintf(dir, sizeof dir, "%s/blockmodel-%d", tu_tmpdir(), k);
        rotq_save_options so = rotq_save_defaults();
        CHECK(rotq_model_save(m, dir, &so) == ROTQ_OK, "%s", rotq_last_error());
        rotq_model *back = NULL;
        rotq_load_options lo = rotq_load_defaults();
        CHECK(rotq_model_load(dir, &lo, &back) == ROTQ_OK, "%s", rotq_last_error());
        if (back) {
            run_all(back, &r, "block rotations, saved and reloaded");
            check_same(&o, &r, "block rotations, saved and reloaded");
            rotq_session *ses = NULL;
            CHECK(rotq_session_new(back, NULL, &ses) == ROTQ_OK && strstr(rotq_session_transforms(ses), "block-diagonal"),
                  "%s: reloaded transforms: %s", what, ses ? rotq_session_transforms(ses) : rotq_last_error());
            rotq_session_free(ses);
        }
        rotq_model_free(back);
        /* the R1 written is block-diagonal: orthogonal, zero off its blocks, dense within them */
        char path[600];
        rotq_rotation_folder_file(rots, -1, path, sizeof path);
        rotq_rotation *R1 = NULL;
        CHECK(rotq_rotation_load(path, &R1) == ROTQ_OK && rotq_rotation_size(R1) == shape.d, "%s: R1 file %s", what, rotq_last_error());
        if (R1) {
            double *D = malloc(sizeof(double) * shape.d * shape.d);
            rotq_rotation_to_dense_f64(R1, D);
            int off = 0, zero_in = 0;
            for (int i = 0; i < shape.d; i++)
                for (int j = 0; j < shape.d; j++) {
                    bool in = i / b1 == j / b1;
                    off += !in && D[i * shape.d + j] != 0.0;
                    zero_in += in && fabs(D[i * shape.d + j]) < 1e-12;
                }
            CHECK(off == 0 && zero_in == 0 && rotq_orthogonality_error(D, shape.d) < 1e-12,
                  "%s: R1 has %d entries off its blocks, %d zeros in them, orthogonality %g", what, off, zero_in,
                  rotq_orthogonality_error(D, shape.d));
            free(D);
        }
        rotq_rotation_free(R1);
        rotq_model_free(m);
    }
    rotq_model_free(orig);
    rotq_rotate_options ro = rotq_rotate_options_default();
    ro.r1_block = 7;
    rotq_model *m = tu_random_llama(&shape, 21);
    CHECK(rotq_rotate_model(m, &ro) == ROTQ_ERR_ARG && strstr(rotq_last_error(), "does not divide"), "R1 block 7: %s", rotq_last_error());
    rotq_model_free(m);
    ro.r1_block = 0;
    ro.r4_block = 48;
    m = tu_random_llama(&shape, 21);
    CHECK(rotq_rotate_model(m, &ro) == ROTQ_ERR_ARG && strstr(rotq_last_error(), "R4 block 48"), "R4 block 48: %s", rotq_last_error());
    rotq_model_free(m);
    ro.r4_block = 0;
    ro.r1_block = 32;
    m = tu_random_model("opt", &shape, 4);
    CHECK(m && rotq_rotate_model(m, &ro) == ROTQ_ERR_UNSUPPORTED && strstr(rotq_last_error(), "LayerNorm"), "block R1 on OPT: %s",
          rotq_last_error());
    rotq_model_free(m);
}

/* Layerwise rotations, each site alone, all of them, with and without the fused ones (and block-
 * diagonal, orthogonal): the function is kept in memory and through a file; down_proj's site refuses
 * to stack on R4. */
static void test_layerwise(void) {
    rotq_model *orig = tu_random_llama(&shape, 21);
    answers o;
    run_all(orig, &o, "original");
    struct { uint32_t mask; bool fused; rotq_rotation_choice kind; int64_t block; } cases[] = {
        {1u << ROTQ_LW_QKV, false, ROTQ_R_RANDOM_HADAMARD, 0}, {1u << ROTQ_LW_O, false, ROTQ_R_RANDOM_HADAMARD, 0},
        {1u << ROTQ_LW_MLP, false, ROTQ_R_HADAMARD, 0},         {1u << ROTQ_LW_DOWN, false, ROTQ_R_RANDOM_HADAMARD, 0},
        {1u << ROTQ_LW_LM_HEAD, false, ROTQ_R_ORTHOGONAL, 0},  {31u, false, ROTQ_R_RANDOM_HADAMARD, 0},
        {31u, true, ROTQ_R_RANDOM_HADAMARD, 0},                 {31u, false, ROTQ_R_RANDOM_HADAMARD, 32},
    };
    for (size_t k = 0; k < sizeof cases / sizeof *cases; k++) {
        char what[96];
        snprintf(what, sizeof what, "layerwise 0x%x%s, kind %d, block %lld", cases[k].mask, cases[k].fused ? " + fused R1-R3" : "",
                 (int)cases[k].kind, (long long)cases[k].block);
        rotq_rotate_options ro = rotq_rotate_options_default();
        if (!cases[k].fused) {
            ro.r1 = ro.r2 = ROTQ_R_NONE;
            ro.r3 = false;
            ro.fuse_norms = false;
        }
        ro.r4 = false;
        ro.layerwise = cases[k].mask;
        ro.layerwise_kind = cases[k].kind;
        ro.layerwise_block = cases[k].block;
        ro.seed = 9;
        rotq_model *m = tu_random_llama(&shape, 21);
        CHECK(rotq_rotate_model(m, &ro) == ROTQ_OK, "%s: %s", what, rotq_last_error());
        answers r;
        run_all(m, &r, what);
        check_same(&o, &r, what);
        check_equivalent(orig, m, what);
        char dir[512];
        snprintf(dir, sizeof dir, "%s/layerwise-%zu", tu_tmpdir(), k);
        rotq_save_options so = rotq_save_defaults();
        CHECK(rotq_model_save(m, dir, &so) == ROTQ_OK, "%s", rotq_last_error());
        rotq_model *back = NULL;
        rotq_load_options lo = rotq_load_defaults();
        CHECK(rotq_model_load(dir, &lo, &back) == ROTQ_OK, "%s", rotq_last_error());
        if (back) {
            run_all(back, &r, "layerwise, saved and reloaded");
            check_same(&o, &r, "layerwise, saved and reloaded");
            rotq_session *ses = NULL;
            CHECK(rotq_session_new(back, NULL, &ses) == ROTQ_OK && strstr(rotq_session_transforms(ses), "layerwise"),
                  "%s: reloaded transforms: %s", what, ses ? rotq_session_transforms(ses) : rotq_last_error());
            rotq_session_free(ses);
        }
        rotq_model_free(back);
        rotq_model_free(m);
    }
    rotq_rotate_options ro = rotq_rotate_options_default();
    ro.layerwise = 1u << ROTQ_LW_DOWN; /* R4 is on by default */
    rotq_model *m = tu_random_llama(&shape, 21);
    CHECK(rotq_rotate_model(m, &ro) == ROTQ_ERR_ARG && strstr(rotq_last_error(), "R4 itself"), "layerwise down with R4: %s",
          rotq_last_error());
    rotq_model_free(m);
    rotq_model_free(orig);
}

int main(void) {
    unsigned long long st = 99;
    for (int i = 0; i < N_IDS; i++) ids[i] = (int32_t)(fabs(tu_nrand(&st)) * 1e6) % shape.vocab;
    test_combinations();
    test_transform_order();
    test_block_rotations();
    test_layerwise();
    test_tinystories_repro();
    return tu_finish("test_session");
}
