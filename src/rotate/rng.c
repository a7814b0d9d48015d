/* rotq's own random numbers: the same seed gives the same bits on every machine and compiler.
 *
 * xoshiro256** (Blackman & Vigna) seeded with four splitmix64 outputs; normals by Marsaglia's polar
 * method. libm's log may differ between C libraries in the last bit, so the polar method uses
 * rotq_rng_log, built from correctly rounded IEEE operations only (the build never enables
 * -ffast-math, and -std=c11 keeps GCC from contracting a*b+c into an FMA).
 */
#include <math.h>
#include <string.h>

#include "rotate/rotate.h"

static uint64_t splitmix64(uint64_t *state) {
    uint64_t z = (*state += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

static inline uint64_t rotl64(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

void rotq_rng_seed(rotq_rng *r, uint64_t seed) {
    uint64_t st = seed;
    for (int i = 0; i < 4; i++) r->s[i] = splitmix64(&st);
    r->spare = 0.0;
    r->has_spare = false;
}

uint64_t rotq_rng_next(rotq_rng *r) {
    uint64_t *s = r->s;
    uint64_t result = rotl64(s[1] * 5, 7) * 9;
    uint64_t t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl64(s[3], 45);
    return result;
}

double rotq_rng_uniform(rotq_rng *r) { return (double)(rotq_rng_next(r) >> 11) * 0x1.0p-53; }

double rotq_rng_log(double x) {
    /* x = f·2^e with f in [√½, √2); ln f = 2·atanh(t), t = (f-1)/(f+1), |t| < 0.1716: the odd
     * series to t^31 is below 1e-24 relative. ln 2 split in two parts so e·ln2 stays exact. */
    static const double ln2_hi = 6.93147180369123816490e-01; /* 0x3fe62e42fee00000 */
    static const double ln2_lo = 1.90821492927058770002e-10; /* 0x3dea39ef35793c76 */
    int e;
    double f = frexp(x, &e); /* exact: only moves the exponent */
    if (f < 0.70710678118654752440) {
        f *= 2.0;
        e -= 1;
    }
    double t = (f - 1.0) / (f + 1.0);
    double t2 = t * t;
    double sum = 0.0;
    for (int k = 31; k >= 3; k -= 2) sum = (sum + 1.0 / k) * t2;
    double lnf = 2.0 * t + 2.0 * t * sum;
    return ((double)e * ln2_lo + lnf) + (double)e * ln2_hi;
}

double rotq_rng_normal(rotq_rng *r) {
    if (r->has_spare) {
        r->has_spare = false;
        return r->spare;
    }
    for (;;) {
        double u = 2.0 * rotq_rng_uniform(r) - 1.0;
        double v = 2.0 * rotq_rng_uniform(r) - 1.0;
        double s = u * u + v * v;
        if (s >= 1.0 || s == 0.0) continue;
        double f = sqrt(-2.0 * rotq_rng_log(s) / s); /* sqrt is correctly rounded by IEEE-754 */
        r->spare = v * f;
        r->has_spare = true;
        return u * f;
    }
}

void rotq_rng_signs(uint64_t seed, int8_t *out, int64_t n) {
    rotq_rng r;
    rotq_rng_seed(&r, seed);
    for (int64_t i = 0; i < n; i++) out[i] = (rotq_rng_next(&r) >> 63) ? -1 : 1;
}

uint64_t rotq_seed_derive(uint64_t seed, rotq_seed_site site, int64_t index) {
    switch (site) {
    case ROTQ_SEED_R2: return seed + 1 + (uint64_t)index;
    case ROTQ_SEED_R3: return seed + 0x5eed3;
    case ROTQ_SEED_R4: return seed + 0x5eed4;
    case ROTQ_SEED_LAYERWISE: return seed + 0x1a7e0 + (uint64_t)index;
    case ROTQ_SEED_VISION: return seed + 0x7151a0;
    case ROTQ_SEED_R1:
    case ROTQ_SEED_CALIB_WINDOWS:
    default: return seed;
    }
}
