/* libFuzzer target for the GGUF reader (not part of the default build; test_gguf_bad runs a
 * short deterministic fuzz loop in CTest). Build, from the repo root after a normal build:
 *   clang -g -O1 -fsanitize=fuzzer,address,undefined -DROTQ_LIBFUZZER -fopenmp -D_GNU_SOURCE \
 *     -Iinclude -Isrc tests/fuzz_gguf.c build/librotq.a -ljansson -lpcre2-8 -llapacke -lopenblas \
 *     -lutf8proc -lm -o fuzz_gguf && ./fuzz_gguf -max_total_time=60 CORPUS_DIR
 * Without -DROTQ_LIBFUZZER it is a plain program that loads each file named on the command line
 * through the same entry point (to replay a crash). The reader maps files, so each input is
 * written to a private temporary file first. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/model.h"

static char fuzz_path[64];

static void remove_fuzz_file(void) { remove(fuzz_path); }

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (!fuzz_path[0]) {
        snprintf(fuzz_path, sizeof fuzz_path, "/tmp/rotq-fuzz-%d.gguf", (int)getpid());
        atexit(remove_fuzz_file); /* libFuzzer ends the process at its time limit */
    }
    remove(fuzz_path);
    FILE *f = fopen(fuzz_path, "wb");
    if (!f) return 0;
    size_t w = fwrite(data, 1, size, f);
    fclose(f);
    if (w != size) return 0;
    rotq_load_options o = rotq_load_defaults();
    o.format = ROTQ_FORMAT_GGUF;
    rotq_model *m = NULL;
    if (rotq_model_load(fuzz_path, &o, &m) == ROTQ_OK) {
        /* exercise the writer too on whatever loaded */
        char out[80];
        snprintf(out, sizeof out, "%s.out.gguf", fuzz_path);
        if (rotq_save_gguf(m, out, ROTQ_DTYPE_INVALID) == ROTQ_OK) remove(out);
        rotq_model_free(m);
    } else if (!rotq_last_error()[0]) {
        __builtin_trap(); /* every failure must explain itself */
    }
    return 0;
}

#ifndef ROTQ_LIBFUZZER
int main(int argc, char **argv) {
    for (int i = 1; i < argc; i++) {
        uint8_t *data;
        uint64_t size;
        if (rotq_read_file(argv[i], &data, &size) != ROTQ_OK) {
            fprintf(stderr, "%s\n", rotq_last_error());
            return 1;
        }
        LLVMFuzzerTestOneInput(data, (size_t)size);
        printf("%s: %s\n", argv[i], rotq_last_error()[0] ? rotq_last_error() : "loaded");
        free(data);
    }
    remove(fuzz_path);
    return 0;
}
#endif
