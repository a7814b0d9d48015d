/* safetensors: one file's header parsing (tensors point into the file's mmap) and writing.
 * Used by the Hugging Face folder reader/writer in hf.c and by rotation files (rotate/orthogonal.c). */
#ifndef ROTQ_IO_SAFETENSORS_H
#define ROTQ_IO_SAFETENSORS_H

#include <stdint.h>
#include <stdio.h>

#include <jansson.h>

#include "core/model.h"

/* Largest header rotq accepts (the reference implementation's own limit is 100 MB). */
#define ROTQ_SAFETENSORS_MAX_HEADER (100u * 1000u * 1000u)

/* "F32" etc. for dtypes safetensors can hold, NULL otherwise. */
const char *rotq_safetensors_dtype_name(rotq_dtype dt);

/* Parses the safetensors file mapped at base[0..size) and appends its tensors to m, sorted by
 * their position in the file. Data point into the mapping (an aligned heap copy only when the
 * file places a tensor at an address its element type cannot be read from). `path` names the
 * file in errors. */
rotq_status rotq_safetensors_parse(rotq_model *m, const char *path, const uint8_t *base, uint64_t size);
/* The same, also giving the "__metadata__" object (a new reference, NULL when absent) to *metadata. */
rotq_status rotq_safetensors_parse_meta(rotq_model *m, const char *path, const uint8_t *base, uint64_t size,
                                        json_t **metadata);

/* The dtype tensor t is written as when the caller asks for `want` (ROTQ_DTYPE_INVALID: keep float
 * types, dequantize block types to F32; integer tensors are always kept). */
rotq_dtype rotq_safetensors_out_dtype(const rotq_tensor *t, rotq_dtype want);

/* Writes tensors idx[0..n) of m to `path` (a new file) converted to `want`, streaming one chunk
 * at a time; flushes and fsyncs it. */
rotq_status rotq_safetensors_write(const rotq_model *m, const int64_t *idx, int64_t n, rotq_dtype want,
                                   const char *path);

/* The layout of a file holding tensors idx[0..n) converted to `want`: its first bytes (length
 * prefix and JSON header, malloc'd into *head) and each tensor's byte offset in the file. */
rotq_status rotq_safetensors_layout(const rotq_model *m, const int64_t *idx, int64_t n, rotq_dtype want, const char *path,
                                    uint8_t **head, uint64_t *head_len, uint64_t *file_offsets);

/* Writes tensor t converted to `out` at byte `off` of the open file fd (pwrite; conversion spread
 * over OpenMP threads, bitwise when out is its dtype). */
rotq_status rotq_safetensors_pwrite_tensor(int fd, uint64_t off, const rotq_tensor *t, rotq_dtype out, double add,
                                           const char *path);

#endif
