/* Small floating-point formats (E2M1, E4M3, E8M0) and the number formats built from them (MXFP4,
 * NVFP4, FP8): one traits table, round-to-nearest-even with saturation, codes and scales. Shared by
 * the weight quantizers (quant/) and the activation/KV fake quantizers (backend/cpu), in double. */
#ifndef ROTQ_CORE_MINIFLOAT_H
#define ROTQ_CORE_MINIFLOAT_H
#include <math.h>
#include <stdbool.h>
#include <stdint.h>

#include "rotq.h"

typedef enum rotq_scale_kind {
    ROTQ_SCALE_FLOAT = 0,  /* any positive float (float32) */
    ROTQ_SCALE_E8M0,       /* a power of two 2^e, e in [-127, 127] */
    ROTQ_SCALE_E4M3_TENSOR /* an E4M3 value times one float32 scale per tensor */
} rotq_scale_kind;

/* One number format. Elements are signed minifloats: mbits mantissa bits, smallest normal
 * exponent emin (subnormals below it), largest finite value max; codes are sign << (bits−1) | the
 * magnitude's bits, as the hardware formats lay them out. */
typedef struct rotq_num_traits {
    const char *name;
    int32_t bits;          /* bits per element code */
    int32_t mbits, emin;
    double max;            /* largest element magnitude (6 for E2M1, 448 for E4M3) */
    int64_t block;         /* elements per scale (0: the caller's row or group) */
    rotq_scale_kind scale;
} rotq_num_traits;

/* The traits of a float format (NULL for ROTQ_NUM_INT or an unknown value). */
const rotq_num_traits *rotq_num_traits_of(rotq_num_format f);

/* v rounded to the nearest element (ties to the even code), saturating at ±max; NaN stays NaN.
 * Inline, without libm calls, for the activation quantizers' inner loops: the binade's step 2^(E−mbits)
 * (E the exponent of |v|, at least emin: subnormals share the smallest binade's step) is built from
 * bits, and |v|/step rounds half to even by the 1.5·2^52 trick (an even multiple of the step is an
 * even mantissa, i.e. an even code). */
static inline double rotq_minifloat_round(double v, const rotq_num_traits *t) {
    const double max = t->max;
    const int64_t emin = t->emin, mbits = t->mbits;
    double a = fabs(v);
    a = a > max ? max : a; /* saturate (no branch: the loops calling this vectorize); NaN stays */
    union { double d; uint64_t u; } x = {.d = a}, inv, step;
    int64_t E = (int64_t)((x.u >> 52) & 0x7ff) - 1023;
    E = E < emin ? emin : E;
    inv.u = (uint64_t)(1023 - (E - mbits)) << 52;
    step.u = (uint64_t)(1023 + (E - mbits)) << 52;
    double r = ((a * inv.d + 0x1.8p52) - 0x1.8p52) * step.d;
    r = r > max ? max : r;
    return copysign(r, v);
}
/* The code of v (rounded as above; −0 codes as +0) and the element value of a code. */
uint8_t rotq_minifloat_encode(double v, const rotq_num_traits *t);
double rotq_minifloat_value(uint8_t code, const rotq_num_traits *t);

/* The E4M3 value nearest s >= 0, saturating at 448 and never below the smallest subnormal 2^-9
 * (a block scale of 0 would lose a nonzero block). */
double rotq_e4m3_scale(double s);

/* The tensor scale of NVFP4 for a largest magnitude amax: amax/(6·448) in float32 (1 for 0), so the
 * largest block scale lands on E4M3's 448. 1 for formats without one. */
double rotq_num_tensor_scale(const rotq_num_traits *t, double amax);

/* The scale of one block (or row, or group) whose largest magnitude is amax: p·amax on the element
 * range, encoded as the format stores it. spec: the format's own rule (MXFP4: OCP's
 * 2^(floor(log2 amax) − 2), which may clip up to max·4/3 to max); otherwise the smallest encodable
 * scale at or above p·amax/max for E8M0 (no clipping at the range p·amax), the nearest for E4M3,
 * exact for float scales (float32 when f32). ts: the tensor scale (rotq_num_tensor_scale). */
double rotq_num_scale(const rotq_num_traits *t, double amax, double p, double ts, bool spec, bool f32);

#endif
