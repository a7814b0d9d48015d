/* rotq tokenize: text → token ids with a model's tokenizer (or ids → text with --decode). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli.h"

static const char *help =
    "usage: rotq tokenize MODEL (--text FILE | --string TEXT) [--bos] [--json|--ids] [--decode [--skip-special]]\n"
    "       rotq tokenize --tokenizer TOKENIZER (--text FILE | --string TEXT) [...]\n"
    "\n"
    "Tokenizes text with the tokenizer the model carries (tokenizer.json, GGUF metadata or llama2.c\n"
    "tokenizer.bin), or with a tokenizer file on its own. Prints the ids separated by spaces.\n"
    "  --text FILE       the text to tokenize, read as bytes ('-' for stdin)\n"
    "  --string TEXT     the text given inline\n"
    "  --bos             prepend the BOS token (off by default; --json reports the model's default)\n"
    "  --ids             ids only, one line (the default)\n"
    "  --json            {\"ids\": [...], \"n_tokens\", \"seconds\", \"tokenizer\", \"bos\", \"eos\", ...}\n"
    "  --decode          the input holds ids (spaces, commas or a JSON array): print their text\n"
    "  --skip-special    with --decode: leave out BOS/EOS/control tokens\n"
    "  --tokenizer F     with MODEL: llama2.c tokenizer.bin path; alone: a tokenizer.json/.bin/GGUF\n"
    "  --arch-file F     register a JSON architecture description first\n";

static int read_all(const char *path, char **data, size_t *size) {
    FILE *f = strcmp(path, "-") == 0 ? stdin : fopen(path, "rb");
    if (!f) return cli_error("tokenize", "%s: %s", path, strerror(errno));
    size_t cap = 1 << 16, n = 0;
    char *p = malloc(cap);
    while (p) {
        if (n == cap) {
            char *q = realloc(p, cap * 2);
            if (!q) break;
            p = q;
            cap *= 2;
        }
        size_t got = fread(p + n, 1, cap - n, f);
        n += got;
        if (got == 0) break;
    }
    bool err = ferror(f);
    if (f != stdin) fclose(f);
    if (!p) return cli_error("tokenize", "%s: out of memory", path);
    if (err) {
        free(p);
        return cli_error("tokenize", "%s: read error", path);
    }
    *data = p;
    *size = n;
    return 0;
}

static int decode_ids(const rotq_tokenizer *tok, const char *text, size_t len, bool skip_special) {
    int64_t n = 0, cap = 1024;
    int32_t *ids = malloc((size_t)cap * sizeof *ids);
    if (!ids) return cli_error("tokenize", "out of memory");
    for (size_t i = 0; i < len;) {
        if (text[i] == '-' || (text[i] >= '0' && text[i] <= '9')) {
            char num[32];
            size_t k = 0;
            while (i < len && k < sizeof num - 1 && (text[i] == '-' || (text[i] >= '0' && text[i] <= '9'))) num[k++] = text[i++];
            num[k] = 0;
            char *end;
            long v = strtol(num, &end, 10);
            if (*end || v < INT32_MIN || v > INT32_MAX) {
                free(ids);
                return cli_error("tokenize", "--decode: '%s' is not a token id", num);
            }
            if (n == cap) {
                int32_t *q = realloc(ids, (size_t)(cap *= 2) * sizeof *ids);
                if (!q) {
                    free(ids);
                    return cli_error("tokenize", "out of memory");
                }
                ids = q;
            }
            ids[n++] = (int32_t)v;
        } else if (strchr(" \t\r\n,[]", text[i])) {
            i++;
        } else {
            free(ids);
            return cli_error("tokenize", "--decode: unexpected character '%c' in the id list", text[i]);
        }
    }
    char *out;
    size_t out_len;
    rotq_status s = rotq_tokenizer_decode(tok, ids, n, skip_special, &out, &out_len);
    free(ids);
    if (s != ROTQ_OK) return cli_lib_error("tokenize", s);
    fwrite(out, 1, out_len, stdout);
    free(out);
    return 0;
}

int cmd_tokenize(int argc, char **argv) {
    if (cli_wants_help(argc, argv)) { fputs(help, stdout); return 0; }
    const char *model_path = NULL, *tok_path = NULL, *text_path = NULL, *inline_text = NULL, *arch_file = NULL;
    bool bos = false, as_json = false, decode = false, skip_special = false;
    for (int i = 1; i < argc; i++) {
        if (cli_is(argv[i], "--text")) {
            if (!(text_path = cli_value(argc, argv, &i))) return cli_usage("tokenize", "--text needs a file");
        } else if (cli_is(argv[i], "--string")) {
            if (!(inline_text = cli_value(argc, argv, &i))) return cli_usage("tokenize", "--string needs a text");
        } else if (cli_is(argv[i], "--tokenizer")) {
            if (!(tok_path = cli_value(argc, argv, &i))) return cli_usage("tokenize", "--tokenizer needs a file");
        } else if (cli_is(argv[i], "--arch-file")) {
            if (!(arch_file = cli_value(argc, argv, &i))) return cli_usage("tokenize", "--arch-file needs a file");
        } else if (strcmp(argv[i], "--bos") == 0) {
            bos = true;
        } else if (strcmp(argv[i], "--json") == 0) {
            as_json = true;
        } else if (strcmp(argv[i], "--ids") == 0) {
            as_json = false;
        } else if (strcmp(argv[i], "--decode") == 0) {
            decode = true;
        } else if (strcmp(argv[i], "--skip-special") == 0) {
            skip_special = true;
        } else if (cli_is_option(argv[i])) {
            return cli_unknown("tokenize", argv[i]);
        } else if (!model_path) {
            model_path = argv[i];
        } else {
            return cli_usage("tokenize", "unexpected argument %s", argv[i]);
        }
    }
    if ((!model_path && !tok_path) || (!text_path == !inline_text)) {
        fputs(help, stderr);
        return 2;
    }

    rotq_tokenizer *tok = NULL;
    rotq_status s;
    if (model_path) {
        rotq_model *m;
        if (cli_load("tokenize", model_path, arch_file, tok_path, &m)) return 1;
        s = rotq_tokenizer_from_model(m, &tok);
        rotq_model_free(m);
    } else {
        s = rotq_tokenizer_load(tok_path, &tok);
    }
    if (s != ROTQ_OK) return cli_lib_error("tokenize", s);

    char *text = NULL;
    size_t len = 0;
    if (inline_text) {
        len = strlen(inline_text);
    } else if (read_all(text_path, &text, &len)) {
        rotq_tokenizer_free(tok);
        return 1;
    }
    const char *src = inline_text ? inline_text : text;
    int rc = 0;
    if (decode) {
        rc = decode_ids(tok, src, len, skip_special);
    } else {
        int32_t *ids;
        int64_t n;
        double t0 = cli_now_s();
        s = rotq_tokenizer_encode(tok, src, len, bos, &ids, &n);
        double dt = cli_now_s() - t0;
        if (s != ROTQ_OK) {
            rc = cli_lib_error("tokenize", s);
        } else {
            if (as_json)
                printf("{\"tokenizer\": \"%s\", \"n_vocab\": %lld, \"bos\": %d, \"eos\": %d, \"add_bos_default\": %s, "
                       "\"bytes\": %zu, \"n_tokens\": %lld, \"seconds\": %.6f, \"ids\": [",
                       rotq_tokenizer_kind(tok), (long long)rotq_tokenizer_n_vocab(tok), rotq_tokenizer_bos(tok),
                       rotq_tokenizer_eos(tok), rotq_tokenizer_add_bos_default(tok) ? "true" : "false", len,
                       (long long)n, dt);
            for (int64_t i = 0; i < n; i++) printf(i ? (as_json ? ", %d" : " %d") : "%d", ids[i]);
            printf(as_json ? "]}\n" : "\n");
            free(ids);
        }
    }
    free(text);
    rotq_tokenizer_free(tok);
    return rc;
}
