/* rotq verify A B: the same tokens through two models; max |Δlogit|, mean KL and each perplexity. */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "nn_cli.h"

static const char *help =
    "usage: rotq verify A B [--text FILE] [--tokens N] [--seed S] [--threads N] [--json] [--arch-file F]\n"
    "\n"
    "Runs the same tokens through models A and B (each with its recorded online rotations) and\n"
    "reports max |logit_A - logit_B|, the mean KL divergence KL(A || B) per position and each\n"
    "model's perplexity: once on seeded random token ids, and once on the start of FILE (tokenized\n"
    "with A's tokenizer) when --text is given. Exit 0 when every case is equivalent, i.e.\n"
    "max |Δlogit| < 1e-3 · max |logit| and mean KL < 1e-6; exit 3 when they differ (1 is an error,\n"
    "2 a usage error).\n"
    "  --text FILE  also compare on the start of FILE\n"
    "  --tokens N   tokens per case (2 to 1048576, default 256, capped at the model's context)\n"
    "  --seed S     seed of the random ids (default 0)\n"
    "  --threads N  threads for BLAS and OpenMP (default: all)\n"
    "  --json       print the cases as JSON on stdout\n"
    "  --arch-file F register a JSON architecture description first (for both models)\n";

typedef struct { const char *name; int32_t *ids; int64_t n; rotq_verify_result res; } verify_case;
typedef struct { rotq_model *m; rotq_session *s; } loaded;

static int load(const char *path, const char *arch_file, int threads, loaded *l) {
    if (cli_load("verify", path, arch_file, NULL, &l->m)) return 1;
    rotq_session_options so = rotq_session_defaults();
    so.threads = threads;
    rotq_status s = rotq_session_new(l->m, &so, &l->s);
    return s == ROTQ_OK ? 0 : cli_lib_error("verify", s);
}

static void unload(loaded *l) {
    rotq_session_free(l->s);
    rotq_model_free(l->m);
}

int cmd_verify(int argc, char **argv) {
    if (cli_wants_help(argc, argv)) { fputs(help, stdout); return 0; }
    const char *pa = NULL, *pb = NULL, *text = NULL, *arch_file = NULL;
    int64_t T = 256;
    uint64_t seed = 0;
    int threads = 0;
    bool as_json = false;
    for (int i = 1; i < argc; i++) {
        if (cli_is(argv[i], "--text")) { if (!(text = cli_value(argc, argv, &i))) return cli_usage("verify", "--text needs a file"); }
        else if (cli_is(argv[i], "--tokens")) {
            if (cli_int("verify", "--tokens", cli_value(argc, argv, &i), 2, 1 << 20, &T)) return 1;
        } else if (cli_is(argv[i], "--seed")) {
            int64_t sv;
            if (cli_int("verify", "--seed", cli_value(argc, argv, &i), 0, INT64_MAX, &sv)) return 1;
            seed = (uint64_t)sv;
        } else if (cli_is(argv[i], "--threads")) {
            if (nn_cli_threads("verify", cli_value(argc, argv, &i), &threads)) return 1;
        } else if (cli_is(argv[i], "--arch-file")) {
            if (!(arch_file = cli_value(argc, argv, &i))) return cli_usage("verify", "--arch-file needs a file");
        } else if (cli_flag(argv[i], "--json")) as_json = true;
        else if (cli_is_option(argv[i])) return cli_unknown("verify", argv[i]);
        else if (!pa) pa = argv[i];
        else if (!pb) pb = argv[i];
        else return cli_usage("verify", "unexpected argument %s", argv[i]);
    }
    if (!pa || !pb) { fputs(help, stderr); return 2; }
    loaded a = {0}, b = {0};
    if (load(pa, arch_file, threads, &a) || load(pb, arch_file, threads, &b)) { unload(&a); unload(&b); return 1; }
    rotq_hparams hp;
    rotq_model_hparams(a.m, &hp);
    if (T > hp.max_pos) T = hp.max_pos;

    verify_case cases[2];
    int n_cases = 0;
    int32_t *rnd = malloc((size_t)T * sizeof *rnd);
    uint64_t state = seed;
    for (int64_t t = 0; t < T; t++) rnd[t] = (int32_t)(cli_splitmix64(&state) % (uint64_t)hp.vocab);
    cases[n_cases++] = (verify_case){.name = "random ids", .ids = rnd, .n = T};
    int rc = 0;
    if (text) {
        uint8_t *data;
        uint64_t size;
        rotq_tokenizer *tok = NULL;
        rotq_status s = rotq_read_file(text, &data, &size);
        if (s == ROTQ_OK) {
            s = rotq_tokenizer_from_model(a.m, &tok);
            int32_t *ids = NULL;
            int64_t n = 0;
            /* Only the start of the text is needed; cut at a generous byte budget. */
            size_t len = size > (uint64_t)T * 16 ? (size_t)T * 16 : (size_t)size;
            if (s == ROTQ_OK) s = rotq_tokenizer_encode(tok, (const char *)data, len, rotq_tokenizer_add_bos_default(tok), &ids, &n);
            if (s == ROTQ_OK) cases[n_cases++] = (verify_case){.name = "text", .ids = ids, .n = n < T ? n : T};
            else free(ids);
            rotq_tokenizer_free(tok);
            free(data);
        }
        if (s != ROTQ_OK) rc = cli_lib_error("verify", s);
    }
    bool all_ok = true;
    json_t *j = json_object(), *jc = json_array();
    json_object_set_new(j, "a", json_string(pa));
    json_object_set_new(j, "b", json_string(pb));
    for (int c = 0; !rc && c < n_cases; c++) {
        rotq_status s = rotq_session_compare(a.s, b.s, cases[c].ids, cases[c].n, &cases[c].res);
        if (s != ROTQ_OK) { rc = cli_lib_error("verify", s); break; }
        const rotq_verify_result *r = &cases[c].res;
        bool ok = r->max_abs_dlogit < 1e-3 * r->max_abs_logit && r->mean_kl < 1e-6;
        all_ok &= ok;
        json_array_append_new(jc, json_pack("{s:s, s:I, s:f, s:f, s:f, s:f, s:f, s:b}", "case", cases[c].name, "tokens",
                                            (json_int_t)r->n_tokens, "max_abs_dlogit", r->max_abs_dlogit, "max_abs_logit",
                                            r->max_abs_logit, "mean_kl", r->mean_kl, "ppl_a", r->ppl_a, "ppl_b", r->ppl_b,
                                            "equivalent", ok));
        if (!as_json)
            printf("%-10s %4lld tokens  max|Δlogit| %.3g (max|logit| %.3g)  mean KL %.3g  ppl A %.4f  B %.4f  %s\n", cases[c].name,
                   (long long)r->n_tokens, r->max_abs_dlogit, r->max_abs_logit, r->mean_kl, r->ppl_a, r->ppl_b,
                   ok ? "equivalent" : "DIFFERENT");
    }
    json_object_set_new(j, "cases", jc);
    json_object_set_new(j, "equivalent", json_boolean(all_ok && !rc));
    if (as_json && !rc) {
        char *s = json_dumps(j, JSON_INDENT(2));
        puts(s);
        free(s);
    }
    json_decref(j);
    for (int c = 0; c < n_cases; c++) free(cases[c].ids);
    unload(&a);
    unload(&b);
    return rc ? rc : all_ok ? 0 : 3;
}
