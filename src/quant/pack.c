/* Weights as GGUF blocks: a quantizer run on a block type's own grid (rotq_wq_format_for_dtype: its
 * bits, its groups along the input, its zero, its scale and min encoding: float16, or the K-quants'
 * float16 d and dmin times small integers) leaves codes whose decoded values are the block type's
 * values exactly; packing them writes the codes GPTQ (or RTN) chose, bit for bit. */
#include <stdlib.h>
#include <string.h>

#include "core/model.h"
#include "quant/quant.h"

/* One tensor: checks that its codes sit on t's grid, packs them, and checks that the blocks decode
 * to the values the tensor holds now (what the quantizer simulated) before replacing them. */
static rotq_status pack_tensor(rotq_tensor *x, rotq_dtype t, const rotq_block_grid *grid) {
    const rotq_qweight *q = x->codes;
    int32_t bits = grid->bits;
    int64_t block = rotq_dtype_block_size(t);
    if (q->bits != bits || q->asym != grid->asym || q->group != grid->group || q->cols % block)
        return rotq_fail(ROTQ_ERR_ARG, "%s: quantized as %d-bit %s with groups of %lld over %lld columns, not on the %s grid (%d-bit %s, groups of %d, rows of whole blocks of %lld)",
                         x->name, q->bits, q->asym ? "asym" : "sym", (long long)q->group, (long long)q->cols, rotq_dtype_name(t), bits, grid->asym ? "asym" : "sym",
                         grid->group, (long long)block);
    int64_t rows = q->rows, cols = q->cols, nb = cols / block, ng = cols / grid->group;
    if ((grid->min_max > 0) != (q->mn != NULL))
        return rotq_fail(ROTQ_ERR_ARG, "%s: %s, the %s grid %s", x->name, q->mn ? "quantized with group mins" : "quantized without group mins",
                         rotq_dtype_name(t), grid->min_max > 0 ? "has them" : "has none");
    for (int64_t g = 0; !grid->asym && g < rows * ng; g++)
        if (q->zero[g] != 1 << (bits - 1))
            return rotq_fail(ROTQ_ERR_ARG, "%s: group %lld has zero code %d, not %d", x->name, (long long)g, q->zero[g], 1 << (bits - 1));
    uint64_t row_bytes = (uint64_t)nb * rotq_dtype_block_bytes(t), total = row_bytes * (uint64_t)rows;
    uint8_t *blocks = malloc(total ? total : 1);
    float *check = malloc((size_t)cols * sizeof *check), *now = malloc((size_t)cols * sizeof *now);
    rotq_status s = blocks && check && now ? ROTQ_OK : rotq_fail(ROTQ_ERR_NOMEM, "%s: out of memory packing", x->name);
    rotq_tensor row_view = *x;
    for (int64_t r = 0; s == ROTQ_OK && r < rows; r++) {
        s = rotq_block_pack(t, q->u + r * cols, q->scale + r * ng, q->zero + r * ng, q->mn ? q->mn + r * ng : NULL, cols,
                            blocks + (uint64_t)r * row_bytes);
        if (s == ROTQ_OK) s = rotq_dequantize(t, blocks + (uint64_t)r * row_bytes, check, cols);
        row_view.data = (uint8_t *)x->data + (uint64_t)r * (x->nbytes / (uint64_t)rows);
        row_view.nbytes = x->nbytes / (uint64_t)rows;
        row_view.n_dims = 1;
        row_view.shape[0] = cols;
        if (s == ROTQ_OK) s = rotq_tensor_to_f32(&row_view, now);
        if (s == ROTQ_OK && memcmp(check, now, (size_t)cols * sizeof *now) != 0)
            s = rotq_fail(ROTQ_ERR_NUMERIC, "%s row %lld: the %s blocks do not decode to the quantized weights", x->name, (long long)r, rotq_dtype_name(t));
    }
    free(check);
    free(now);
    if (s != ROTQ_OK) {
        free(blocks);
        return rotq_fail_context(s, "pack");
    }
    rotq_tensor_set_codes(x, NULL, NULL);
    rotq_tensor_adopt(x, blocks);
    x->mapped = false;
    x->map_src = NULL;
    x->dtype = t;
    x->nbytes = total;
    return ROTQ_OK;
}

rotq_status rotq_model_pack_weights(rotq_model *m, int64_t *n_packed) {
    int64_t n = 0;
    for (int64_t i = 0; i < m->n_tensors; i++) {
        rotq_tensor *x = &m->tensors[i];
        const rotq_qweight *q = x->codes;
        rotq_block_grid grid;
        if (!q || !rotq_dtype_grid(q->dtype, &grid)) continue; /* no codes, or not on a block grid: stays float */
        ROTQ_TRY(pack_tensor(x, q->dtype, &grid));
        n++;
    }
    if (n_packed) *n_packed = n;
    return ROTQ_OK;
}
