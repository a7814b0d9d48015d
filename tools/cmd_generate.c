/* rotq generate MODEL --prompt TEXT: greedy continuation through the KV cache, as a sanity check. */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli.h"
#include "nn_cli.h"

static const char *help =
    "usage: rotq generate MODEL --prompt TEXT [-n N] [--bos auto|yes|no] [--ignore-eos] [--threads N]\n"
    "                     [--ids 1,2,3] [--print-ids] [--json] [--image FILE] [--logits-out FILE]\n"
    "\n"
    "Greedy decoding (the most likely token at each step) in float32, with a KV cache.\n"
    "  --prompt TEXT   prompt text (tokenized with the model's tokenizer)\n"
    "  -n N            tokens to generate (default 64; stops early at EOS unless --ignore-eos)\n"
    "  --bos B         prepend BOS: auto (the tokenizer's default), yes or no\n"
    "  --ids L         prompt as comma-separated token ids instead of text\n"
    "  --print-ids     print the generated ids (one line, comma-separated) instead of text\n"
    "  --threads N     threads for BLAS and OpenMP (default: all)\n"
    "  --json          prompt, continuation, ids and speed as JSON on stdout\n"
    "  --image FILE    a PNG or JPEG for a model with a vision tower (Qwen2-VL): it goes where the prompt says\n"
    "                  <|image_pad|>, else before the prompt as <|vision_start|><|image_pad|><|vision_end|>\n"
    "  --logits-out F  write the logits each token was chosen from (float32, [tokens, vocab]) to F\n"
    "  --arch-file F   register a JSON architecture description first\n"
    "  --tokenizer F   llama2.c: tokenizer.bin path (default: beside the model)\n";

typedef struct stream_state {
    const rotq_tokenizer *tok;
    bool print;
} stream_state;

/* Prints each token as it comes (special tokens left out). */
static bool stream_token(void *ctx, int32_t id) {
    stream_state *st = ctx;
    const char *bytes;
    size_t len;
    if (st->print && rotq_tokenizer_piece(st->tok, id, &bytes, &len) == ROTQ_OK && !rotq_tokenizer_is_special(st->tok, id)) {
        fwrite(bytes, 1, len, stdout);
        fflush(stdout);
    }
    return true;
}

typedef struct gen_args {
    const char *path, *prompt, *ids_list, *arch_file, *tokenizer, *image, *logits_out;
    int64_t n_new;
    int threads, bos_mode; /* bos_mode: 0 auto, 1 yes, 2 no */
    bool ignore_eos, print_ids, as_json;
} gen_args;

/* 0, or the exit code after printing why. */
static int parse_args(const char *cmd, int argc, char **argv, gen_args *g) {
    *g = (gen_args){.n_new = 64};
    const char *v;
    for (int i = 1; i < argc; i++) {
        char *end;
        if (cli_is(argv[i], "--prompt")) {
            if (!(g->prompt = cli_value(argc, argv, &i))) return cli_usage(cmd, "--prompt needs a text");
        } else if (cli_is(argv[i], "-n") || cli_is(argv[i], "--n-predict")) {
            v = cli_value(argc, argv, &i);
            g->n_new = v ? strtoll(v, &end, 10) : -1;
            if (!v || *end || g->n_new < 0 || g->n_new > (1 << 20)) return cli_usage(cmd, "-n needs a token count");
        } else if (cli_is(argv[i], "--bos")) {
            if (!(v = cli_value(argc, argv, &i))) return cli_usage(cmd, "--bos needs auto, yes or no");
            if (strcmp(v, "auto") == 0) g->bos_mode = 0;
            else if (strcmp(v, "yes") == 0) g->bos_mode = 1;
            else if (strcmp(v, "no") == 0) g->bos_mode = 2;
            else return cli_usage(cmd, "--bos %s: expected auto, yes or no", v);
        } else if (cli_flag(argv[i], "--ignore-eos")) {
            g->ignore_eos = true;
        } else if (cli_flag(argv[i], "--print-ids")) {
            g->print_ids = true;
        } else if (cli_flag(argv[i], "--json")) {
            g->as_json = true;
        } else if (cli_is(argv[i], "--ids")) {
            if (!(g->ids_list = cli_value(argc, argv, &i))) return cli_usage(cmd, "--ids needs a list");
        } else if (cli_is(argv[i], "--threads")) {
            if (nn_cli_threads(cmd, cli_value(argc, argv, &i), &g->threads)) return 1;
        } else if (cli_is(argv[i], "--arch-file")) {
            if (!(g->arch_file = cli_value(argc, argv, &i))) return cli_usage(cmd, "--arch-file needs a file");
        } else if (cli_is(argv[i], "--image")) {
            if (!(g->image = cli_value(argc, argv, &i))) return cli_usage(cmd, "--image needs a PNG or JPEG file");
        } else if (cli_is(argv[i], "--logits-out")) {
            if (!(g->logits_out = cli_value(argc, argv, &i))) return cli_usage(cmd, "--logits-out needs a file");
        } else if (cli_is(argv[i], "--tokenizer")) {
            if (!(g->tokenizer = cli_value(argc, argv, &i))) return cli_usage(cmd, "--tokenizer needs a file");
        } else if (cli_is_option(argv[i])) {
            return cli_unknown(cmd, argv[i]);
        } else if (!g->path) {
            g->path = argv[i];
        } else {
            return cli_usage(cmd, "one model at a time (got %s and %s)", g->path, argv[i]);
        }
    }
    if (!g->path) { fputs(help, stderr); return 2; }
    if (!g->prompt && !g->ids_list) return cli_usage(cmd, "--prompt TEXT (or --ids) is required");
    if (g->prompt && g->ids_list) return cli_usage(cmd, "--prompt and --ids exclude each other");

    return 0;
}

int cmd_generate(int argc, char **argv) {
    const char *cmd = "generate";
    if (cli_wants_help(argc, argv)) { fputs(help, stdout); return 0; }
    gen_args g;
    int prc = parse_args(cmd, argc, argv, &g);
    if (prc) return prc;
    const char *path = g.path, *prompt = g.prompt, *ids_list = g.ids_list;
    int64_t n_new = g.n_new;
    int bos_mode = g.bos_mode;
    bool ignore_eos = g.ignore_eos, print_ids = g.print_ids, as_json = g.as_json;
    rotq_model *m;
    if (cli_load(cmd, path, g.arch_file, g.tokenizer, &m)) return 1;
    if (g.image && !rotq_model_vision(m, NULL)) {
        rotq_hparams h;
        rotq_model_hparams(m, &h);
        cli_error(cmd, "%s: architecture %s has no vision tower: it cannot read --image", path, h.arch);
        rotq_model_free(m);
        return 1;
    }
    rotq_session *ses = NULL;
    rotq_tokenizer *tok = NULL;
    rotq_image *img = NULL;
    float *logits = NULL;
    int32_t *prompt_ids = NULL, *gen = NULL;
    char *text = NULL;
    int rc = 1;
    int64_t n_prompt = 0;
    rotq_session_options so = rotq_session_defaults();
    so.threads = g.threads;
    rotq_status s = rotq_session_new(m, &so, &ses);
    if (s != ROTQ_OK) { cli_lib_error(cmd, s); goto done; }
    /* ids alone need no tokenizer, unless the text is to be printed */
    if ((!ids_list || !print_ids) && (s = rotq_tokenizer_from_model(m, &tok)) != ROTQ_OK) { cli_lib_error(cmd, s); goto done; }
    if (ids_list) {
        if (nn_cli_parse_ids(cmd, ids_list, &prompt_ids, &n_prompt)) goto done;
    } else {
        bool add_bos = bos_mode == 0 ? rotq_tokenizer_add_bos_default(tok) : bos_mode == 1;
        if ((s = rotq_tokenizer_encode(tok, prompt, strlen(prompt), add_bos, &prompt_ids, &n_prompt)) != ROTQ_OK) {
            cli_lib_error(cmd, s);
            goto done;
        }
        if (n_prompt == 0) { cli_error(cmd, "the prompt tokenizes to nothing (give --bos yes or some text)"); goto done; }
    }
    rotq_hparams hp;
    rotq_model_hparams(m, &hp);
    if (hp.max_pos > 0 && n_prompt + n_new > hp.max_pos) {
        if (n_prompt >= hp.max_pos) {
            cli_error(cmd, "the prompt has %lld tokens, the model only %lld positions", (long long)n_prompt, (long long)hp.max_pos);
            goto done;
        }
        n_new = hp.max_pos - n_prompt;
        fprintf(stderr, "generate: -n reduced to %lld to stay within the model's %lld positions\n", (long long)n_new,
                (long long)hp.max_pos);
    }
    int32_t eos = tok ? rotq_tokenizer_eos(tok) : hp.eos_id;
    if (!(gen = malloc((size_t)(n_new > 0 ? n_new : 1) * sizeof *gen))) { cli_error(cmd, "out of memory"); goto done; }
    if (g.image && (s = rotq_image_load(g.image, &img)) != ROTQ_OK) { cli_lib_error(cmd, s); goto done; }
    if (g.logits_out && !(logits = malloc((size_t)(n_new > 0 ? n_new : 1) * (size_t)hp.vocab * sizeof *logits))) {
        cli_error(cmd, "out of memory for the logits of %lld tokens", (long long)n_new);
        goto done;
    }

    if (!as_json && !print_ids && prompt) { fputs(prompt, stdout); fflush(stdout); }
    stream_state st = {tok, !as_json && !print_ids};
    double t0 = cli_now_s(), t_prompt = 0.0;
    int64_t n_gen = 0;
    if (logits && !img) { cli_error(cmd, "--logits-out is for image prompts (rotq eval and verify score text)"); goto done; }
    if (img)
        s = rotq_session_generate_image(ses, img, prompt_ids, n_prompt, n_new, ignore_eos ? -1 : eos, gen, &n_gen, logits,
                                        &t_prompt, stream_token, &st);
    else
        s = rotq_session_generate(ses, prompt_ids, n_prompt, n_new, ignore_eos ? -1 : eos, gen, &n_gen, &t_prompt,
                                  stream_token, &st);
    if (s != ROTQ_OK) { cli_lib_error(cmd, s); goto done; }
    if (logits && (s = rotq_write_file_atomic(g.logits_out, logits, (uint64_t)n_gen * (uint64_t)hp.vocab * sizeof *logits)) != ROTQ_OK) {
        cli_lib_error(cmd, s);
        goto done;
    }
    double t_total = cli_now_s() - t0, t_gen = t_total - t_prompt;
    double gen_tps = n_gen > 1 && t_gen > 0 ? (double)(n_gen - 1) / t_gen : 0.0;

    if (print_ids && !as_json) {
        for (int64_t i = 0; i < n_gen; i++) printf("%s%d", i ? "," : "", gen[i]);
        putchar('\n');
    } else if (as_json) {
        json_t *j = json_object(), *ja = json_array();
        for (int64_t i = 0; i < n_gen; i++) json_array_append_new(ja, json_integer(gen[i]));
        json_object_set_new(j, "model", json_string(path));
        if (prompt) json_object_set_new(j, "prompt", json_string(prompt));
        json_object_set_new(j, "prompt_tokens", json_integer(n_prompt));
        json_object_set_new(j, "ids", ja);
        if (tok) {
            size_t len;
            if (rotq_tokenizer_decode(tok, gen, n_gen, true, &text, &len) == ROTQ_OK)
                json_object_set_new(j, "text", json_stringn(text, len));
        }
        json_object_set_new(j, "prompt_seconds", json_real(t_prompt));
        json_object_set_new(j, "tokens_per_second", json_real(gen_tps));
        char *js = json_dumps(j, JSON_INDENT(2));
        if (js) { puts(js); free(js); }
        json_decref(j);
    } else {
        putchar('\n');
    }
    fprintf(stderr, "generate: %lld prompt tokens in %.3f s, %lld generated at %.1f tokens/s, peak RSS %.0f MiB\n",
            (long long)n_prompt, t_prompt, (long long)n_gen, gen_tps, nn_cli_peak_rss_mib());
    rc = 0;
done:
    free(prompt_ids);
    free(gen);
    free(logits);
    rotq_image_free(img);
    free(text);
    rotq_tokenizer_free(tok);
    rotq_session_free(ses);
    rotq_model_free(m);
    return rc;
}
