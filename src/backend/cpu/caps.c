#include "backend/cpu/caps.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

static rotq_cpu_caps current;
static pthread_once_t once = PTHREAD_ONCE_INIT;

static bool env_is(const char *name, const char *value) {
    const char *v = getenv(name);
    return v && strcmp(v, value) == 0;
}

rotq_cpu_caps rotq_cpu_caps_probe(void) {
    rotq_cpu_caps c = {0};
#if defined(__x86_64__) && defined(__GNUC__)
    __builtin_cpu_init();
    c.avx2 = __builtin_cpu_supports("avx2");
    c.avx2_fma = c.avx2 && __builtin_cpu_supports("fma");
#endif
    c.attention_fused = c.avx2_fma && !env_is("ROTQ_ATTENTION", "blas");
    c.igemm_avx2 = c.avx2 && !env_is("ROTQ_IGEMM_ISA", "scalar");
    c.fwht_avx2 = c.avx2_fma && !env_is("ROTQ_FWHT_ISA", "scalar");
    return c;
}

static void probe_once(void) { current = rotq_cpu_caps_probe(); }

const rotq_cpu_caps *rotq_cpu_caps_get(void) {
    pthread_once(&once, probe_once);
    return &current;
}

void rotq_cpu_caps_set(const rotq_cpu_caps *c) {
    pthread_once(&once, probe_once);
    rotq_cpu_caps cpu = rotq_cpu_caps_probe(), want = c ? *c : cpu;
    want.avx2 = cpu.avx2;
    want.avx2_fma = cpu.avx2_fma;
    want.attention_fused &= cpu.avx2_fma;
    want.igemm_avx2 &= cpu.avx2;
    want.fwht_avx2 &= cpu.avx2_fma;
    current = want;
}
