/* Small floating-point formats: the traits table and the arithmetic every quantizer shares. */
#include "core/minifloat.h"

#include <float.h>
#include <math.h>
#include <string.h>

#include "core/error.h"

/* E2M1: 1 mantissa bit, exponent bias 1 (normals 1..6, subnormal 0.5); E4M3 (OCP fn): 3 mantissa
 * bits, bias 7 (normals 2^-6..448, subnormals down to 2^-9, S.1111.111 is NaN). */
static const rotq_num_traits traits[] = {
    [ROTQ_NUM_MXFP4] = {"mxfp4", 4, 1, 0, 6.0, 32, ROTQ_SCALE_E8M0},
    [ROTQ_NUM_NVFP4] = {"nvfp4", 4, 1, 0, 6.0, 16, ROTQ_SCALE_E4M3_TENSOR},
    [ROTQ_NUM_FP8] = {"fp8", 8, 3, -6, 448.0, 0, ROTQ_SCALE_FLOAT},
};
static const rotq_num_traits e4m3 = {"e4m3", 8, 3, -6, 448.0, 0, ROTQ_SCALE_FLOAT};

const rotq_num_traits *rotq_num_traits_of(rotq_num_format f) {
    return f > ROTQ_NUM_INT && f <= ROTQ_NUM_FP8 ? &traits[f] : NULL;
}

const char *rotq_num_format_name(rotq_num_format f) {
    const rotq_num_traits *t = rotq_num_traits_of(f);
    return t ? t->name : f == ROTQ_NUM_INT ? "int" : "?";
}

rotq_status rotq_num_format_parse(const char *name, rotq_num_format *out) {
    if (name && strcmp(name, "int") == 0) { *out = ROTQ_NUM_INT; return ROTQ_OK; }
    for (int f = ROTQ_NUM_MXFP4; f <= ROTQ_NUM_FP8; f++)
        if (name && strcmp(name, traits[f].name) == 0) { *out = (rotq_num_format)f; return ROTQ_OK; }
    return rotq_fail(ROTQ_ERR_ARG, "number format \"%s\" (int, mxfp4, nvfp4 or fp8)", name ? name : "(null)");
}

int64_t rotq_num_format_block(rotq_num_format f) {
    const rotq_num_traits *t = rotq_num_traits_of(f);
    return t ? t->block : 0;
}

int32_t rotq_num_format_bits(rotq_num_format f) {
    const rotq_num_traits *t = rotq_num_traits_of(f);
    return t ? t->bits : 0;
}

/* floor(log2 a) for a > 0, exactly */
static int floor_log2(double a) {
    int e;
    frexp(a, &e);
    return e - 1;
}

uint8_t rotq_minifloat_encode(double v, const rotq_num_traits *t) {
    double r = rotq_minifloat_round(v, t), a = fabs(r);
    if (!(a > 0.0)) return 0;
    uint32_t mag;
    int E = floor_log2(a);
    if (E < t->emin) mag = (uint32_t)ldexp(a, t->mbits - t->emin);
    else mag = (uint32_t)(E - t->emin + 1) << t->mbits | (uint32_t)(ldexp(a, t->mbits - E) - ldexp(1.0, t->mbits));
    return (uint8_t)((r < 0 ? 1u << (t->bits - 1) : 0u) | mag);
}

double rotq_minifloat_value(uint8_t code, const rotq_num_traits *t) {
    uint32_t ebits = (uint32_t)(t->bits - 1 - t->mbits);
    uint32_t ef = (code >> t->mbits) & ((1u << ebits) - 1), mant = code & ((1u << t->mbits) - 1);
    double a = ef == 0 ? ldexp((double)mant, t->emin - t->mbits)
                       : ldexp((double)((1u << t->mbits) + mant), (int)ef - 1 + t->emin - t->mbits);
    if (a > t->max) a = NAN; /* E4M3's S.1111.111 */
    return (code >> (t->bits - 1)) & 1 ? -a : a;
}

double rotq_e4m3_scale(double s) {
    double r = rotq_minifloat_round(s, &e4m3);
    return r < 0x1p-9 ? 0x1p-9 : r;
}

double rotq_num_tensor_scale(const rotq_num_traits *t, double amax) {
    if (!t || t->scale != ROTQ_SCALE_E4M3_TENSOR || !(amax > 0.0) || !isfinite(amax)) return 1.0;
    float ts = (float)(amax / (t->max * 448.0));
    return ts > 0.0f ? (double)ts : (double)FLT_MIN;
}

double rotq_num_scale(const rotq_num_traits *t, double amax, double p, double ts, bool spec, bool f32) {
    double a = p * amax;
    if (!(a > 0.0)) return t->scale == ROTQ_SCALE_E4M3_TENSOR ? ts : 1.0; /* all zero: any scale decodes it */
    switch (t->scale) {
    case ROTQ_SCALE_E8M0: {
        int e;
        if (spec) e = floor_log2(a) - floor_log2(t->max);
        else {
            /* ceil(log2(a/max)): frexp gives y = m·2^k, m in [0.5, 1); exactly a power of two when m = 0.5 */
            double m = frexp(a / t->max, &e);
            if (m == 0.5) e -= 1;
        }
        e = e < -127 ? -127 : e > 127 ? 127 : e;
        return ldexp(1.0, e);
    }
    case ROTQ_SCALE_E4M3_TENSOR: return ts * rotq_e4m3_scale(a / t->max / ts);
    default: {
        double s = a / t->max;
        if (f32) s = (float)s;
        return s > 0.0 ? s : (double)FLT_MIN;
    }
    }
}
