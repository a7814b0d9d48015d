/* W4A4KV4 perplexity through rotq's public API alone: load a model, score a text in float, rotate
 * it as QuaRot does (fused R1/R2, online R3/R4), quantize the weights (4-bit RTN, per channel, clip
 * search), and score it again with 4-bit activations and KV cache.
 *
 *   build:  cmake --build build --target example_w4a4kv4   (links the shared library)
 *   run:    build/examples/example_w4a4kv4 MODEL TEXT [CTX] [MAX_WINDOWS]
 *
 * Prints the settings, the transforms the quantized session runs, and both perplexities. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rotq.h"

static int fail(const char *what, rotq_status s) {
    fprintf(stderr, "example: %s: %s (%s)\n", what, rotq_last_error(), rotq_status_name(s));
    return 1;
}

static void on_log(void *ctx, rotq_log_level level, const char *line) {
    (void)ctx;
    if (level != ROTQ_LOG_INFO) fprintf(stderr, "rotq %s: %s\n", rotq_log_level_name(level), line);
}

/* Perplexity of m with the run-time quantizers of q (NULL: float). */
static rotq_status score(const rotq_model *m, const rotq_quant_options *q, const int32_t *ids, int64_t n,
                         const rotq_ppl_options *po, rotq_ppl_result *res) {
    rotq_session_options so = rotq_session_defaults();
    so.quant = q;
    rotq_session *s = NULL;
    rotq_status st = rotq_session_new(m, &so, &s);
    if (st != ROTQ_OK) return st;
    if (q) printf("transforms:\n%s\nproducts: %s\n", rotq_session_transforms(s), rotq_session_products(s));
    st = rotq_session_ppl(s, ids, n, po, res);
    rotq_session_free(s);
    return st;
}

int main(int argc, char **argv) {
    if (argc < 3) {
        fprintf(stderr, "usage: %s MODEL TEXT [CTX] [MAX_WINDOWS]\n", argv[0]);
        return 2;
    }
    int64_t ctx = argc > 3 ? atoll(argv[3]) : 2048, max_windows = argc > 4 ? atoll(argv[4]) : 0;
    rotq_log_set(on_log, NULL);

    rotq_model *m = NULL;
    rotq_tokenizer *tok = NULL;
    uint8_t *text = NULL;
    uint64_t len = 0;
    int32_t *ids = NULL;
    int64_t n = 0;
    rotq_status s;
    if ((s = rotq_model_load(argv[1], NULL, &m)) != ROTQ_OK) return fail(argv[1], s);
    if ((s = rotq_tokenizer_from_model(m, &tok)) != ROTQ_OK) return fail("tokenizer", s);
    if ((s = rotq_read_file(argv[2], &text, &len)) != ROTQ_OK) return fail(argv[2], s);
    if ((s = rotq_tokenizer_encode(tok, (const char *)text, len, false, &ids, &n)) != ROTQ_OK) return fail("encode", s);

    /* the papers' protocol: non-overlapping windows, BOS as the tokenizer adds it */
    rotq_hparams hp;
    rotq_model_hparams(m, &hp);
    if (hp.max_pos > 0 && ctx > hp.max_pos) ctx = hp.max_pos;
    bool bos = rotq_tokenizer_add_bos_default(tok);
    rotq_ppl_options po = {.ctx = ctx, .protocol = ROTQ_PPL_PAPERS, .bos = bos ? ROTQ_BOS_FIRST : ROTQ_BOS_NONE,
                           .bos_id = rotq_tokenizer_bos(tok), .max_windows = max_windows};

    rotq_ppl_result base, quant;
    if ((s = score(m, NULL, ids, n, &po, &base)) != ROTQ_OK) return fail("float perplexity", s);

    rotq_rotate_options ro = rotq_rotate_options_default(); /* random-Hadamard R1/R2, R3+R4, seed 0 */
    if ((s = rotq_rotate_model(m, &ro)) != ROTQ_OK) return fail("rotate", s);
    rotq_quant_options q = rotq_quant_defaults();
    if ((s = rotq_quant_preset(&q, "w4a4kv4")) != ROTQ_OK) return fail("preset", s);
    rotq_quant_report rep;
    if ((s = rotq_quantize_weights(m, &q, NULL, 0, &rep)) != ROTQ_OK) return fail("quantize", s);
    if ((s = score(m, &q, ids, n, &po, &quant)) != ROTQ_OK) return fail("W4A4KV4 perplexity", s);

    char desc[512];
    rotq_quant_describe(&q, desc, sizeof desc);
    printf("model: %s (%s), text: %s, %lld tokens, windows of %lld (%lld scored), BOS %s\n", argv[1], hp.arch, argv[2],
           (long long)n, (long long)ctx, (long long)quant.n_windows, bos ? "first" : "none");
    printf("quantization: %s; %lld linears\n", desc, (long long)rep.n_linears);
    printf("float perplexity %.6f\n", base.ppl);
    printf("W4A4KV4 perplexity %.6f\n", quant.ppl);

    free(ids);
    free(text);
    rotq_tokenizer_free(tok);
    rotq_model_free(m);
    return 0;
}
