/* What this CPU can run, probed once: the kernels ask here instead of calling cpuid or reading the
 * environment on every call. The environment overrides (for comparisons in tests and benchmarks)
 * are read once, at the probe:
 *   ROTQ_ATTENTION=blas     the BLAS attention instead of the fused kernel
 *   ROTQ_IGEMM_ISA=scalar   the portable integer-product loops
 *   ROTQ_FWHT_ISA=scalar    the portable Hadamard-transform loops
 * rotq_cpu_caps_set replaces the choice at run time (tests); it is not thread-safe against running
 * kernels and is meant for single-threaded test drivers. */
#ifndef ROTQ_BACKEND_CAPS_H
#define ROTQ_BACKEND_CAPS_H
#include <stdbool.h>

typedef struct rotq_cpu_caps {
    bool avx2;              /* the CPU has AVX2 (the integer kernel needs no FMA) */
    bool avx2_fma;          /* ... and FMA */
    bool attention_fused;   /* use the fused AVX2 attention where head_dim allows */
    bool igemm_avx2;        /* use the AVX2 integer-product kernel */
    bool fwht_avx2;         /* use the AVX2 Hadamard row kernel */
} rotq_cpu_caps;

/* The choice in force (probed on first use). */
const rotq_cpu_caps *rotq_cpu_caps_get(void);
/* The CPU as probed, with the environment's overrides. */
rotq_cpu_caps rotq_cpu_caps_probe(void);
/* Replaces the choice (NULL: back to the probe). A kernel the CPU cannot run is not chosen: its flag
 * is cleared when the CPU lacks what it needs. */
void rotq_cpu_caps_set(const rotq_cpu_caps *c);
#endif
