/* The CPU backend's op table: the reference implementation of every op (tests/test_backend.c
 * checks each against plain double loops; other backends are checked against this one). */
#include <stdlib.h>
#include <string.h>

#include "backend/backend.h"

/* kernels of this folder without a declaration of their own elsewhere */
rotq_status rotq_cpu_fwht_rows(const rotq_fwht_plan *p, float *x, int64_t rows);

static void *host_alloc(size_t bytes) { return malloc(bytes ? bytes : 1); }
static void host_release(void *p) { free(p); }
static rotq_status host_copy(void *dst, const void *src, size_t bytes) {
    memcpy(dst, src, bytes);
    return ROTQ_OK;
}

static const rotq_backend cpu = {
    .name = "cpu",
    .alloc = host_alloc,
    .release = host_release,
    .upload = host_copy,
    .download = host_copy,
    .linear = rotq_linear_forward,
    .int_linear = rotq_igemm_forward,
    .rmsnorm = rotq_rmsnorm_forward,
    .layernorm = rotq_layernorm_forward,
    .add_rows = rotq_add_rows,
    .rope = rotq_rope_forward,
    .attention = rotq_attention_forward_ws,
    .swiglu = rotq_swiglu_forward,
    .geglu = rotq_geglu_forward,
    .add = rotq_add_forward,
    .activation = rotq_act_forward,
    .logsumexp_rows = rotq_logsumexp_rows,
    .fwht_rows = rotq_cpu_fwht_rows,
    .act_quant = rotq_act_quantize,
};

const rotq_backend *rotq_backend_cpu(void) { return &cpu; }

rotq_status rotq_backend_get(const char *name, const rotq_backend **out) {
    *out = NULL;
    if (name && strcmp(name, "cpu") == 0) {
        *out = &cpu;
        return ROTQ_OK;
    }
    return rotq_fail(ROTQ_ERR_UNSUPPORTED, "backend %s is not built into this rotq (available: cpu)", name ? name : "(null)");
}
