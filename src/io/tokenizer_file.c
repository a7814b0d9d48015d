/* A tokenizer from a file of any kind: tokenizer.json (tokenizer_config.json beside it read too), a
 * folder holding one, a llama2.c tokenizer.bin, or a GGUF file's tokenizer metadata. Here in io/
 * because a GGUF file is read by the GGUF loader; tok/ builds tokenizers from what is in memory. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "core/model.h"
#include "tok/tok.h"

static bool is_dir(const char *path) {
    struct stat st;
    return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

/* Reads `name` beside `path` (a file in the same folder) when it exists. */
static void read_sibling(const char *path, const char *name, uint8_t **data, uint64_t *size) {
    *data = NULL;
    *size = 0;
    char buf[4096];
    const char *slash = strrchr(path, '/');
    int dir_len = slash ? (int)(slash - path) : 1;
    const char *dir = slash ? path : ".";
    if (snprintf(buf, sizeof buf, "%.*s/%s", dir_len, dir, name) >= (int)sizeof buf) return;
    if (rotq_read_file(buf, data, size) != ROTQ_OK) {
        *data = NULL;
        *size = 0;
        rotq_clear_error();
    }
}

rotq_status rotq_tokenizer_load(const char *path, rotq_tokenizer **out) {
    if (!path || !out) return rotq_fail(ROTQ_ERR_ARG, "rotq_tokenizer_load: NULL argument");
    *out = NULL;
    char buf[4096];
    if (is_dir(path)) {
        for (int k = 0; k < 2; k++) {
            const char *name = k == 0 ? "tokenizer.json" : "tokenizer.bin";
            if (snprintf(buf, sizeof buf, "%s/%s", path, name) >= (int)sizeof buf)
                return rotq_fail(ROTQ_ERR_ARG, "%s: path too long", path);
            struct stat st;
            if (stat(buf, &st) == 0) return rotq_tokenizer_load(buf, out);
        }
        return rotq_fail(ROTQ_ERR_NOT_FOUND, "%s: no tokenizer.json or tokenizer.bin in this folder", path);
    }
    uint8_t *data;
    uint64_t size;
    ROTQ_TRY(rotq_read_file(path, &data, &size));
    size_t i = 0;
    while (i < size && (data[i] == ' ' || data[i] == '\n' || data[i] == '\r' || data[i] == '\t')) i++;
    rotq_status s;
    if (size >= 4 && memcmp(data, "GGUF", 4) == 0) {
        free(data);
        rotq_model *m;
        rotq_load_options lo = rotq_load_defaults();
        lo.format = ROTQ_FORMAT_GGUF;
        lo.allow_unused = true; /* only the tokenizer is read: tensors without a role do not matter */
        ROTQ_TRY(rotq_model_load(path, &lo, &m));
        s = rotq_tokenizer_from_model(m, out);
        rotq_model_free(m);
        return s;
    }
    if (i < size && data[i] == '{') {
        uint8_t *cfg;
        uint64_t cfg_size;
        read_sibling(path, "tokenizer_config.json", &cfg, &cfg_size);
        s = rotq_tok_from_json((const char *)data, size, (const char *)cfg, cfg_size, path, out);
        free(cfg);
    } else {
        s = rotq_tok_from_llama2c(data, size, path, out);
    }
    free(data);
    return s;
}
