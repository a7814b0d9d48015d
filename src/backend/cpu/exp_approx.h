/* The exp kernel shared by the softmax code of layers.c and the fused attention of attention_avx2.c,
 * so both round alike. Include it after `#pragma GCC optimize("no-trapping-math")` (see layers.c):
 * its clamps must not count as control flow, or the loops that call it stay scalar. */
#ifndef ROTQ_NN_EXP_APPROX_H
#define ROTQ_NN_EXP_APPROX_H
#include <stdint.h>
#include <string.h>

/* exp(x) to ~1 ulp for x in [-87, 88] (results below e^-87 flush to e^-87 ≈ 1.6e-38, which a
 * softmax sum cannot notice). Written branch-free so that the compiler vectorizes it:
 * x = n·ln2 + r with |r| ≤ ln2/2, e^r by its degree-6 Taylor polynomial (error < 2e-7 relative),
 * 2^n put straight into the exponent bits. */
static inline float exp_approx(float x) {
    x = x < -87.0f ? -87.0f : x;
    x = x > 88.0f ? 88.0f : x;
    const float round_magic = 12582912.0f; /* 1.5·2^23: adding it rounds to an integer */
    float n = (x * 1.44269504088896341f + round_magic) - round_magic;
    float r = x - n * 0.693145751953125f;  /* ln2 split in two so n·ln2_hi is exact */
    r = r - n * 1.428606765330187e-06f;
    float p = 1.0f / 720.0f;
    p = p * r + 1.0f / 120.0f;
    p = p * r + 1.0f / 24.0f;
    p = p * r + 1.0f / 6.0f;
    p = p * r + 0.5f;
    p = p * r + 1.0f;
    p = p * r + 1.0f;
    int32_t bits = ((int32_t)n + 127) << 23;
    float scale;
    memcpy(&scale, &bits, sizeof scale);
    return p * scale;
}

#endif
