/* Helpers for writing architecture descriptions in C (used by the built-ins). */
#ifndef ROTQ_ARCH_BUILTIN_H
#define ROTQ_ARCH_BUILTIN_H
#include "arch/arch.h"

#define ROTQ_STANDARD_OPS 6
extern const char *const rotq_arch_standard_ops[ROTQ_STANDARD_OPS];

void rotq_arch_add_tensor(rotq_arch *a, rotq_role role, const char *hf, const char *gguf, bool optional);
void rotq_arch_add_group(rotq_arch *a, rotq_role norm, int32_t n, const rotq_role *linears);
void rotq_arch_set_ops(rotq_arch *a, const char *const *ops, int32_t n);
void rotq_arch_default_keys(rotq_config_keys *k);
void rotq_arch_llama_like(rotq_arch *a);
#endif
