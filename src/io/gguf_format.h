/* The GGUF format's constants and small helpers shared by the reader (gguf.c) and the writer
 * (gguf_write.c). */
#ifndef ROTQ_IO_GGUF_FORMAT_H
#define ROTQ_IO_GGUF_FORMAT_H
#include <stdbool.h>
#include <stdint.h>

#include "core/model.h"

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "rotq's GGUF reader and writer assume a little-endian host"
#endif

#define GGUF_MAGIC 0x46554747u /* "GGUF" read as a little-endian u32 */
#define GGUF_DEFAULT_ALIGNMENT 32
/* Far above any real model (hundreds to a few thousand tensors, tens of keys): beyond this a
 * header lies (and name lookups, linear in the tensor count, would crawl). */
#define GGUF_MAX_KEYS (1u << 20)
#define GGUF_MAX_TENSORS (1u << 16)
#define GGUF_MAX_DIM ((int64_t)1 << 40)
/* ggml's own name limit; llama.cpp refuses longer tensor names. */
#define GGML_MAX_NAME 64

/* Bytes of one scalar of a fixed-size meta type, 0 for string/array/unknown. */
static inline uint64_t gguf_meta_scalar_size(uint32_t t) {
    switch (t) {
    case ROTQ_META_U8: case ROTQ_META_I8: case ROTQ_META_BOOL: return 1;
    case ROTQ_META_U16: case ROTQ_META_I16: return 2;
    case ROTQ_META_U32: case ROTQ_META_I32: case ROTQ_META_F32: return 4;
    case ROTQ_META_U64: case ROTQ_META_I64: case ROTQ_META_F64: return 8;
    default: return 0;
    }
}

static inline bool gguf_dtype_is_int(rotq_dtype dt) {
    return dt == ROTQ_I8 || dt == ROTQ_I16 || dt == ROTQ_I32 || dt == ROTQ_I64;
}
#endif
