/* Test helper for tests/oracle_gguf_dequant.py: dequantizes a raw buffer of ggml blocks with
 * rotq_dequantize so Python can compare it with the gguf package.
 * usage: tool_dequant TYPE IN.bin OUT.f32   (TYPE: a dtype name such as q4_k, or its ggml number) */
#include <stdio.h>
#include <stdlib.h>

#include "core/model.h"

int main(int argc, char **argv) {
    if (argc != 4) {
        fprintf(stderr, "usage: %s TYPE IN.bin OUT.f32\n", argv[0]);
        return 2;
    }
    rotq_dtype dt = rotq_dtype_from_name(argv[1]);
    if (dt == ROTQ_DTYPE_INVALID) {
        char *end;
        long v = strtol(argv[1], &end, 10);
        if (*end == 0) dt = (rotq_dtype)v;
    }
    int64_t be = rotq_dtype_block_size(dt);
    uint64_t bb = rotq_dtype_block_bytes(dt);
    if (be <= 0 || bb == 0) {
        fprintf(stderr, "unknown type %s\n", argv[1]);
        return 2;
    }
    uint8_t *in;
    uint64_t size;
    if (rotq_read_file(argv[2], &in, &size) != ROTQ_OK) {
        fprintf(stderr, "%s\n", rotq_last_error());
        return 1;
    }
    if (size % bb != 0) {
        fprintf(stderr, "%s: %llu bytes is not a whole number of %llu-byte blocks\n", argv[2],
                (unsigned long long)size, (unsigned long long)bb);
        return 1;
    }
    int64_t n = (int64_t)(size / bb) * be;
    float *out = malloc((size_t)n * sizeof(float) + 1);
    rotq_status s = out ? rotq_dequantize(dt, in, out, n) : ROTQ_ERR_NOMEM;
    if (s == ROTQ_OK) s = rotq_write_file_atomic(argv[3], out, (uint64_t)n * sizeof(float));
    if (s != ROTQ_OK) fprintf(stderr, "%s\n", rotq_last_error());
    free(in);
    free(out);
    return s == ROTQ_OK ? 0 : 1;
}
