/* Element types: names, block geometry and byte counts (GGUF's ggml_type numbering). */
#include <stdint.h>
#include <strings.h>

#include "core/model.h"

typedef struct dtype_info {
    const char *name;
    int64_t block_elems;
    uint64_t block_bytes;
} dtype_info;

/* Block layouts as stored in GGUF files. Q8_1 is ggml's runtime-only type (two halves + 32 int8). */
static const dtype_info DTYPES[ROTQ_DTYPE_COUNT] = {
    [ROTQ_F32] = {"f32", 1, 4},
    [ROTQ_F16] = {"f16", 1, 2},
    [ROTQ_Q4_0] = {"q4_0", 32, 2 + 16},
    [ROTQ_Q4_1] = {"q4_1", 32, 2 + 2 + 16},
    [ROTQ_Q5_0] = {"q5_0", 32, 2 + 4 + 16},
    [ROTQ_Q5_1] = {"q5_1", 32, 2 + 2 + 4 + 16},
    [ROTQ_Q8_0] = {"q8_0", 32, 2 + 32},
    [ROTQ_Q8_1] = {"q8_1", 32, 2 + 2 + 32},
    [ROTQ_Q2_K] = {"q2_k", 256, 16 + 64 + 2 + 2},
    [ROTQ_Q3_K] = {"q3_k", 256, 32 + 64 + 12 + 2},
    [ROTQ_Q4_K] = {"q4_k", 256, 2 + 2 + 12 + 128},
    [ROTQ_Q5_K] = {"q5_k", 256, 2 + 2 + 12 + 32 + 128},
    [ROTQ_Q6_K] = {"q6_k", 256, 128 + 64 + 16 + 2},
    [ROTQ_Q8_K] = {"q8_k", 256, 4 + 256 + 32},
    [ROTQ_I8] = {"i8", 1, 1},
    [ROTQ_I16] = {"i16", 1, 2},
    [ROTQ_I32] = {"i32", 1, 4},
    [ROTQ_I64] = {"i64", 1, 8},
    [ROTQ_F64] = {"f64", 1, 8},
    [ROTQ_BF16] = {"bf16", 1, 2},
};

static const dtype_info *info(rotq_dtype dt) {
    if ((int)dt < 0 || (int)dt >= ROTQ_DTYPE_COUNT || !DTYPES[dt].name) return 0;
    return &DTYPES[dt];
}

const char *rotq_dtype_name(rotq_dtype dt) {
    const dtype_info *d = info(dt);
    return d ? d->name : "invalid";
}

rotq_dtype rotq_dtype_from_name(const char *name) {
    if (!name) return ROTQ_DTYPE_INVALID;
    for (int i = 0; i < ROTQ_DTYPE_COUNT; i++)
        if (DTYPES[i].name && strcasecmp(DTYPES[i].name, name) == 0) return (rotq_dtype)i;
    return ROTQ_DTYPE_INVALID;
}

int64_t rotq_dtype_block_size(rotq_dtype dt) {
    const dtype_info *d = info(dt);
    return d ? d->block_elems : 0;
}

uint64_t rotq_dtype_block_bytes(rotq_dtype dt) {
    const dtype_info *d = info(dt);
    return d ? d->block_bytes : 0;
}

uint64_t rotq_dtype_nbytes(rotq_dtype dt, int64_t n) {
    const dtype_info *d = info(dt);
    if (!d || n < 0 || n % d->block_elems != 0) return 0;
    uint64_t blocks = (uint64_t)(n / d->block_elems);
    if (blocks > UINT64_MAX / d->block_bytes) return 0;
    return blocks * d->block_bytes;
}

bool rotq_dtype_is_float(rotq_dtype dt) {
    return dt == ROTQ_F32 || dt == ROTQ_F16 || dt == ROTQ_BF16 || dt == ROTQ_F64;
}
