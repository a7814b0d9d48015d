/* Element types: one table of per-format traits (name, block geometry, dequantization), GGUF's
 * ggml_type numbering, and the ggml block formats' dequantizers.
 *
 * Layouts follow the GGUF/ggml block definitions. The arithmetic is written so that each
 * float32 result is rounded exactly where the reference (PyPI gguf, ggml) rounds it: one
 * operation per statement, so no compiler may fuse a multiply and an add into an FMA.
 */
#include <math.h>
#include <stdint.h>
#include <string.h>
#include <strings.h>

#include "core/model.h"

static inline float half_at(const uint8_t *p) { return rotq_f16_to_f32((uint16_t)(p[0] | (p[1] << 8))); }

static inline float f32_at(const uint8_t *p) {
    float f;
    memcpy(&f, p, 4);
    return f;
}

/* Q4_0: f16 d, 16 bytes of nibbles; low nibbles are elements 0..15, high nibbles 16..31. */
static void deq_q4_0(const uint8_t *b, float *y) {
    const float d = half_at(b);
    const uint8_t *qs = b + 2;
    for (int j = 0; j < 16; j++) {
        y[j] = d * (float)((qs[j] & 0x0F) - 8);
        y[j + 16] = d * (float)((qs[j] >> 4) - 8);
    }
}

/* Q4_1: f16 d, f16 m, nibbles as Q4_0; y = d*q + m. */
static void deq_q4_1(const uint8_t *b, float *y) {
    const float d = half_at(b), m = half_at(b + 2);
    const uint8_t *qs = b + 4;
    for (int j = 0; j < 16; j++) {
        float lo = d * (float)(qs[j] & 0x0F);
        float hi = d * (float)(qs[j] >> 4);
        y[j] = lo + m;
        y[j + 16] = hi + m;
    }
}

/* Q5_0: f16 d, 32 high bits (u32, bit i for element i), nibbles as Q4_0; q - 16. */
static void deq_q5_0(const uint8_t *b, float *y) {
    const float d = half_at(b);
    const uint32_t qh = (uint32_t)b[2] | ((uint32_t)b[3] << 8) | ((uint32_t)b[4] << 16) | ((uint32_t)b[5] << 24);
    const uint8_t *qs = b + 6;
    for (int j = 0; j < 16; j++) {
        int lo = (qs[j] & 0x0F) | (int)(((qh >> j) & 1u) << 4);
        int hi = (qs[j] >> 4) | (int)(((qh >> (j + 16)) & 1u) << 4);
        y[j] = d * (float)(lo - 16);
        y[j + 16] = d * (float)(hi - 16);
    }
}

/* Q5_1: f16 d, f16 m, high bits, nibbles; y = d*q + m. */
static void deq_q5_1(const uint8_t *b, float *y) {
    const float d = half_at(b), m = half_at(b + 2);
    const uint32_t qh = (uint32_t)b[4] | ((uint32_t)b[5] << 8) | ((uint32_t)b[6] << 16) | ((uint32_t)b[7] << 24);
    const uint8_t *qs = b + 8;
    for (int j = 0; j < 16; j++) {
        int lo = (qs[j] & 0x0F) | (int)(((qh >> j) & 1u) << 4);
        int hi = (qs[j] >> 4) | (int)(((qh >> (j + 16)) & 1u) << 4);
        float plo = d * (float)lo;
        float phi = d * (float)hi;
        y[j] = plo + m;
        y[j + 16] = phi + m;
    }
}

/* Q8_0: f16 d, 32 int8. */
static void deq_q8_0(const uint8_t *b, float *y) {
    const float d = half_at(b);
    for (int j = 0; j < 32; j++) y[j] = (float)(int8_t)b[2 + j] * d;
}

/* Q2_K: 16 bytes of (min<<4 | scale), 64 bytes of 2-bit values, f16 d, f16 dmin.
 * Element 128*c + 32*s + j is bits 2s..2s+1 of qs[32*c + j]; scale/min index = element / 16. */
static void deq_q2_k(const uint8_t *b, float *y) {
    const uint8_t *scales = b, *qs = b + 16;
    const float d = half_at(b + 80), dmin = half_at(b + 82);
    for (int c = 0; c < 2; c++)
        for (int s = 0; s < 4; s++)
            for (int j = 0; j < 32; j++) {
                int e = 128 * c + 32 * s + j;
                uint8_t sc = scales[e / 16];
                float dl = d * (float)(sc & 0x0F);
                float ml = dmin * (float)(sc >> 4);
                float p = dl * (float)((qs[32 * c + j] >> (2 * s)) & 3);
                y[e] = p - ml;
            }
}

/* Q3_K: 32 bytes high-bit mask, 64 bytes of 2-bit values, 12 bytes of 6-bit scales, f16 d.
 * Element 32*s + j (s = 0..7) takes bit s of hmask[j]; a clear bit subtracts 4. */
static void deq_q3_k(const uint8_t *b, float *y) {
    const uint8_t *hmask = b, *qs = b + 32, *sc = b + 96;
    const float d = half_at(b + 108);
    int8_t scale[16];
    for (int i = 0; i < 16; i++) {
        int low = (i < 8 ? sc[i] : sc[i - 8] >> 4) & 0x0F;
        int high = (sc[8 + (i % 4)] >> (2 * (i / 4))) & 3;
        scale[i] = (int8_t)((low | (high << 4)) - 32);
    }
    for (int c = 0; c < 2; c++)
        for (int s = 0; s < 4; s++)
            for (int j = 0; j < 32; j++) {
                int e = 128 * c + 32 * s + j;
                int q = (qs[32 * c + j] >> (2 * s)) & 3;
                if (!((hmask[j] >> (e / 32)) & 1)) q -= 4;
                float dl = d * (float)scale[e / 16];
                y[e] = dl * (float)q;
            }
}

/* The 12-byte packing of eight 6-bit scales and eight 6-bit mins shared by Q4_K and Q5_K. */
static void k_scale_min(const uint8_t *s, uint8_t sc[8], uint8_t mn[8]) {
    for (int k = 0; k < 4; k++) {
        sc[k] = s[k] & 0x3F;
        mn[k] = s[4 + k] & 0x3F;
        sc[4 + k] = (uint8_t)((s[8 + k] & 0x0F) | ((s[k] >> 2) & 0x30));
        mn[4 + k] = (uint8_t)((s[8 + k] >> 4) | ((s[4 + k] >> 2) & 0x30));
    }
}

/* Q4_K: f16 d, f16 dmin, scales, 128 bytes of nibbles. Sub-block g = 2c + h (32 elements)
 * takes nibble h of qs[32c + j]; y = (d*sc)*q - dmin*m. */
static void deq_q4_k(const uint8_t *b, float *y) {
    const float d = half_at(b), dmin = half_at(b + 2);
    uint8_t sc[8], mn[8];
    k_scale_min(b + 4, sc, mn);
    const uint8_t *qs = b + 16;
    for (int g = 0; g < 8; g++) {
        float dl = d * (float)sc[g];
        float ml = dmin * (float)mn[g];
        for (int j = 0; j < 32; j++) {
            int q = (qs[32 * (g / 2) + j] >> (4 * (g % 2))) & 0x0F;
            float p = dl * (float)q;
            y[32 * g + j] = p - ml;
        }
    }
}

/* Q5_K: as Q4_K plus 32 bytes of high bits: sub-block g takes bit g of qh[j]. */
static void deq_q5_k(const uint8_t *b, float *y) {
    const float d = half_at(b), dmin = half_at(b + 2);
    uint8_t sc[8], mn[8];
    k_scale_min(b + 4, sc, mn);
    const uint8_t *qh = b + 16, *qs = b + 48;
    for (int g = 0; g < 8; g++) {
        float dl = d * (float)sc[g];
        float ml = dmin * (float)mn[g];
        for (int j = 0; j < 32; j++) {
            int q = ((qs[32 * (g / 2) + j] >> (4 * (g % 2))) & 0x0F) | (((qh[j] >> g) & 1) << 4);
            float p = dl * (float)q;
            y[32 * g + j] = p - ml;
        }
    }
}

/* Q6_K: 128 bytes low nibbles, 64 bytes 2-bit highs, 16 int8 scales, f16 d.
 * Element 128c + 64h + j (j < 64) takes nibble h of ql[64c + j]; element 128c + 32s + j
 * (j < 32) takes bits 2s.. of qh[32c + j]; q - 32; scale index = element / 16. */
static void deq_q6_k(const uint8_t *b, float *y) {
    const uint8_t *ql = b, *qh = b + 128;
    const int8_t *scales = (const int8_t *)(b + 192);
    const float d = half_at(b + 208);
    for (int e = 0; e < 256; e++) {
        int c = e / 128, r = e % 128;
        int low = (ql[64 * c + (r % 64)] >> (4 * (r / 64))) & 0x0F;
        int high = (qh[32 * c + (r % 32)] >> (2 * (r / 32))) & 3;
        int q = (low | (high << 4)) - 32;
        float dl = d * (float)scales[e / 16];
        y[e] = dl * (float)q;
    }
}

/* Q8_K: f32 d, 256 int8, 16 int16 block sums (not needed to dequantize). */
static void deq_q8_k(const uint8_t *b, float *y) {
    const float d = f32_at(b);
    for (int j = 0; j < 256; j++) y[j] = d * (float)(int8_t)b[4 + j];
}

typedef void (*block_fn)(const uint8_t *block, float *y);
/* The inverse for the formats rotq writes: a block's unsigned codes u (zero at 2^(bits-1), as the
 * symmetric weight grid numbers them) and its group scales (one per `group` elements) into the
 * block; false when the scales are not what the format can store (checked, never rounded here). */
typedef bool (*pack_fn)(const uint8_t *u, const double *scales, const int32_t *zeros, const double *mins, uint8_t *block);

static bool half_of(double s, uint16_t *h) {
    *h = rotq_f32_to_f16((float)s);
    return (double)rotq_f16_to_f32(*h) == s;
}

static void put_half(uint8_t *b, uint16_t h) {
    b[0] = (uint8_t)(h & 0xFF);
    b[1] = (uint8_t)(h >> 8);
}

/* Legacy 32-blocks: the low nibbles of codes j and j + 16 share byte j (16 bytes) ... */
static void put_nibbles(uint8_t *qs, const uint8_t *u) {
    for (int j = 0; j < 16; j++) qs[j] = (uint8_t)((u[j] & 0x0F) | (u[j + 16] & 0x0F) << 4);
}

/* ... and Q5_0/Q5_1's fifth bits go to a little-endian 32-bit mask. */
static void put_fifth_bits(uint8_t *qh, const uint8_t *u) {
    uint32_t m = 0;
    for (int j = 0; j < 32; j++) m |= (uint32_t)((u[j] >> 4) & 1) << j;
    for (int k = 0; k < 4; k++) qh[k] = (uint8_t)(m >> (8 * k));
}

/* Q2_K/Q3_K's low two bits of 256 codes: element 128c + 32s + j at bits 2s of qs[32c + j] (64 bytes,
 * zeroed by the caller). */
static void put_2bit_planes(uint8_t *qs, const uint8_t *u) {
    for (int e = 0; e < 256; e++) qs[32 * (e / 128) + e % 32] |= (uint8_t)((u[e] & 3) << (2 * ((e % 128) / 32)));
}

static bool pack_q4_0(const uint8_t *u, const double *scales, const int32_t *zeros, const double *mins, uint8_t *b) {
    (void)mins;
    (void)zeros;
    uint16_t d;
    if (!half_of(scales[0], &d)) return false;
    put_half(b, d);
    put_nibbles(b + 2, u);
    return true;
}

static bool pack_q5_0(const uint8_t *u, const double *scales, const int32_t *zeros, const double *mins, uint8_t *b) {
    (void)mins;
    (void)zeros;
    uint16_t d;
    if (!half_of(scales[0], &d)) return false;
    put_half(b, d);
    put_fifth_bits(b + 2, u);
    put_nibbles(b + 6, u);
    return true;
}

static bool pack_q8_0(const uint8_t *u, const double *scales, const int32_t *zeros, const double *mins, uint8_t *b) {
    (void)mins;
    (void)zeros;
    uint16_t d;
    if (!half_of(scales[0], &d)) return false;
    put_half(b, d);
    for (int j = 0; j < 32; j++) b[2 + j] = (uint8_t)(int8_t)((int)u[j] - 128);
    return true;
}

/* Q4_1/Q5_1 store y = d·q + m with d, m float16: the asymmetric grid d·(u − z) with m = −d·z, which
 * is a float16 when d carries few enough mantissa bits (the quantizer's scale_mant_bits). */
static bool min_of(double d, int32_t z, uint16_t *dh, uint16_t *mh) {
    return half_of(d, dh) && half_of(-d * (double)z, mh);
}

static bool pack_q4_1(const uint8_t *u, const double *scales, const int32_t *zeros, const double *mins, uint8_t *b) {
    (void)mins;
    uint16_t d, m;
    if (!min_of(scales[0], zeros[0], &d, &m)) return false;
    put_half(b, d);
    put_half(b + 2, m);
    put_nibbles(b + 4, u);
    return true;
}

static bool pack_q5_1(const uint8_t *u, const double *scales, const int32_t *zeros, const double *mins, uint8_t *b) {
    (void)mins;
    uint16_t d, m;
    if (!min_of(scales[0], zeros[0], &d, &m)) return false;
    put_half(b, d);
    put_half(b + 2, m);
    put_fifth_bits(b + 4, u);
    put_nibbles(b + 8, u);
    return true;
}

/* The K-quants store group scales as d·sc (and mins as dmin·m) with one float16 d (dmin) per block;
 * the quantizer makes the largest |sc| exactly `top` (rotq_wq_super_scales), so d = largest |v| / top.
 * The integers go to sc[]; false unless every value is d times an integer k with lo <= |k| <= top
 * (k < 0 only when is_signed). A block whose values are all 0 (mins only) stores d = 0. */
static bool super_ints(const double *v, int n, int lo, int top, bool is_signed, uint16_t *dh, int *sc) {
    double vmax = 0.0;
    for (int g = 0; g < n; g++) vmax = fabs(v[g]) > vmax ? fabs(v[g]) : vmax;
    double d = vmax / top;
    if (!half_of(d, dh)) return false;
    for (int g = 0; g < n; g++) {
        double k = d > 0 ? v[g] / d : 0.0;
        if (k != nearbyint(k) || fabs(k) < lo || fabs(k) > top || (k < 0 && !is_signed) || d * k != v[g]) return false;
        sc[g] = (int)k;
    }
    return true;
}

/* Q6_K (the layout deq_q6_k reads): 16 groups of 16, scales d·sc, sc int8 (the quantizer uses ±1..127). */
static bool pack_q6_k(const uint8_t *u, const double *scales, const int32_t *zeros, const double *mins, uint8_t *b) {
    (void)zeros;
    (void)mins;
    uint16_t dh;
    int sc[16];
    if (!super_ints(scales, 16, 1, 127, true, &dh, sc)) return false;
    memset(b, 0, 192);
    for (int g = 0; g < 16; g++) b[192 + g] = (uint8_t)(int8_t)sc[g];
    for (int e = 0; e < 256; e++) {
        int c = e / 128, r = e % 128;
        b[64 * c + (r % 64)] |= (uint8_t)((u[e] & 0x0F) << (4 * (r / 64)));
        b[128 + 32 * c + (r % 32)] |= (uint8_t)(((u[e] >> 4) & 3) << (2 * (r / 32)));
    }
    put_half(b + 208, dh);
    return true;
}

/* Q3_K (deq_q3_k's layout): 16 groups of 16, codes u = q + 4 (3 bits: 2 in qs, the high one in hmask),
 * scales d·sc with sc stored as sc + 32 in 6 bits (the quantizer uses ±1..31). */
static bool pack_q3_k(const uint8_t *u, const double *scales, const int32_t *zeros, const double *mins, uint8_t *b) {
    (void)zeros;
    (void)mins;
    uint16_t dh;
    int sc[16];
    if (!super_ints(scales, 16, 1, 31, true, &dh, sc)) return false;
    memset(b, 0, 110);
    uint8_t *hmask = b, *qs = b + 32, *scb = b + 96;
    for (int i = 0; i < 16; i++) {
        int v = sc[i] + 32;
        scb[i % 8] |= (uint8_t)((v & 0x0F) << (i < 8 ? 0 : 4));
        scb[8 + i % 4] |= (uint8_t)(((v >> 4) & 3) << (2 * (i / 4)));
    }
    put_2bit_planes(qs, u);
    for (int e = 0; e < 256; e++)
        if (u[e] & 4) hmask[e % 32] |= (uint8_t)(1u << (e / 32));
    put_half(b + 108, dh);
    return true;
}

/* Q2_K (deq_q2_k's layout): 16 groups of 16, 2-bit codes, a byte per group holding sc (low nibble)
 * and m (high nibble), float16 d and dmin. */
static bool pack_q2_k(const uint8_t *u, const double *scales, const int32_t *zeros, const double *mins, uint8_t *b) {
    (void)zeros;
    uint16_t dh, mh;
    int sc[16], mn[16];
    if (!super_ints(scales, 16, 1, 15, false, &dh, sc) || !super_ints(mins, 16, 0, 15, false, &mh, mn)) return false;
    memset(b, 0, 84);
    for (int g = 0; g < 16; g++) b[g] = (uint8_t)(sc[g] | mn[g] << 4);
    put_2bit_planes(b + 16, u);
    put_half(b + 80, dh);
    put_half(b + 82, mh);
    return true;
}

/* The 12 bytes of Q4_K/Q5_K scales and mins (the inverse of k_scale_min). */
static void k_scale_min_put(const int sc[8], const int mn[8], uint8_t *s) {
    for (int k = 0; k < 4; k++) {
        s[k] = (uint8_t)(sc[k] | (sc[4 + k] >> 4) << 6);
        s[4 + k] = (uint8_t)(mn[k] | (mn[4 + k] >> 4) << 6);
        s[8 + k] = (uint8_t)((sc[4 + k] & 0x0F) | (mn[4 + k] & 0x0F) << 4);
    }
}

/* Q4_K/Q5_K (deq_q4_k/deq_q5_k): 8 groups of 32, 6-bit sc and m, float16 d and dmin; Q5_K's fifth
 * code bit of element 32g + j is bit g of qh[j]. */
static bool pack_k_min(const uint8_t *u, const double *scales, const double *mins, uint8_t *b, bool five) {
    uint16_t dh, mh;
    int sc[8], mn[8];
    if (!super_ints(scales, 8, 1, 63, false, &dh, sc) || !super_ints(mins, 8, 0, 63, false, &mh, mn)) return false;
    put_half(b, dh);
    put_half(b + 2, mh);
    k_scale_min_put(sc, mn, b + 4);
    uint8_t *qh = b + 16, *qs = b + (five ? 48 : 16);
    if (five) memset(qh, 0, 32);
    memset(qs, 0, 128);
    for (int g = 0; g < 8; g++)
        for (int j = 0; j < 32; j++) {
            uint8_t v = u[32 * g + j];
            qs[32 * (g / 2) + j] |= (uint8_t)((v & 0x0F) << (4 * (g % 2)));
            if (five && (v & 0x10)) qh[j] |= (uint8_t)(1u << g);
        }
    return true;
}

static bool pack_q4_k(const uint8_t *u, const double *scales, const int32_t *zeros, const double *mins, uint8_t *b) {
    (void)zeros;
    return pack_k_min(u, scales, mins, b, false);
}

static bool pack_q5_k(const uint8_t *u, const double *scales, const int32_t *zeros, const double *mins, uint8_t *b) {
    (void)zeros;
    return pack_k_min(u, scales, mins, b, true);
}

/* One row per element type: its name, block geometry, and how a block becomes float32. */
typedef struct dtype_info {
    const char *name;
    int64_t block_elems;
    uint64_t block_bytes;
    block_fn dequantize;      /* block formats (NULL for the plain ones, converted elementwise) */
    /* the block formats rotq writes: codes of code_bits, one scale per `group` elements, stored as
     * float16 (super_max 0) or as d·sc with one float16 d per block and 1 <= sc <= super_max */
    pack_fn pack;
    int32_t code_bits, group, super_max;
    bool asym;                /* Q4_1/Q5_1: a float16 min, i.e. asymmetric codes ... */
    int32_t scale_mant_bits;  /* ... with scales of this many mantissa bits, so min = −d·z is a float16 */
    int32_t min_max;          /* Q2_K/Q4_K/Q5_K: unsigned codes, group mins dmin·m with m <= min_max */
} dtype_info;

/* Block layouts as stored in GGUF files. Q8_1 is ggml's runtime-only type (two halves + 32 int8). */
static const dtype_info DTYPES[ROTQ_DTYPE_COUNT] = {
    [ROTQ_F32] = {"f32", 1, 4},
    [ROTQ_F16] = {"f16", 1, 2},
    [ROTQ_Q4_0] = {"q4_0", 32, 2 + 16, deq_q4_0, pack_q4_0, 4, 32, 0},
    [ROTQ_Q4_1] = {"q4_1", 32, 2 + 2 + 16, deq_q4_1, pack_q4_1, 4, 32, 0, true, 7},
    [ROTQ_Q5_0] = {"q5_0", 32, 2 + 4 + 16, deq_q5_0, pack_q5_0, 5, 32, 0},
    [ROTQ_Q5_1] = {"q5_1", 32, 2 + 2 + 4 + 16, deq_q5_1, pack_q5_1, 5, 32, 0, true, 6},
    [ROTQ_Q8_0] = {"q8_0", 32, 2 + 32, deq_q8_0, pack_q8_0, 8, 32, 0},
    [ROTQ_Q8_1] = {"q8_1", 32, 2 + 2 + 32},
    [ROTQ_Q2_K] = {"q2_k", 256, 16 + 64 + 2 + 2, deq_q2_k, pack_q2_k, 2, 16, 15, true, 0, 15},
    [ROTQ_Q3_K] = {"q3_k", 256, 32 + 64 + 12 + 2, deq_q3_k, pack_q3_k, 3, 16, 31},
    [ROTQ_Q4_K] = {"q4_k", 256, 2 + 2 + 12 + 128, deq_q4_k, pack_q4_k, 4, 32, 63, true, 0, 63},
    [ROTQ_Q5_K] = {"q5_k", 256, 2 + 2 + 12 + 32 + 128, deq_q5_k, pack_q5_k, 5, 32, 63, true, 0, 63},
    [ROTQ_Q6_K] = {"q6_k", 256, 128 + 64 + 16 + 2, deq_q6_k, pack_q6_k, 6, 16, 127},
    [ROTQ_Q8_K] = {"q8_k", 256, 4 + 256 + 32, deq_q8_k},
    [ROTQ_I8] = {"i8", 1, 1},
    [ROTQ_I16] = {"i16", 1, 2},
    [ROTQ_I32] = {"i32", 1, 4},
    [ROTQ_I64] = {"i64", 1, 8},
    [ROTQ_F64] = {"f64", 1, 8},
    [ROTQ_BF16] = {"bf16", 1, 2},
};

static const dtype_info *info(rotq_dtype dt) {
    if ((int)dt < 0 || (int)dt >= ROTQ_DTYPE_COUNT || !DTYPES[dt].name) return 0;
    return &DTYPES[dt];
}

double rotq_dtype_bits_per_weight(rotq_dtype dt) {
    const dtype_info *d = info(dt);
    return d ? 8.0 * (double)d->block_bytes / (double)d->block_elems : 0.0;
}

const char *rotq_dtype_name(rotq_dtype dt) {
    const dtype_info *d = info(dt);
    return d ? d->name : "invalid";
}

rotq_dtype rotq_dtype_from_name(const char *name) {
    if (!name) return ROTQ_DTYPE_INVALID;
    for (int i = 0; i < ROTQ_DTYPE_COUNT; i++)
        if (DTYPES[i].name && strcasecmp(DTYPES[i].name, name) == 0) return (rotq_dtype)i;
    return ROTQ_DTYPE_INVALID;
}

int64_t rotq_dtype_block_size(rotq_dtype dt) {
    const dtype_info *d = info(dt);
    return d ? d->block_elems : 0;
}

uint64_t rotq_dtype_block_bytes(rotq_dtype dt) {
    const dtype_info *d = info(dt);
    return d ? d->block_bytes : 0;
}

uint64_t rotq_dtype_nbytes(rotq_dtype dt, int64_t n) {
    const dtype_info *d = info(dt);
    if (!d || n < 0 || n % d->block_elems != 0) return 0;
    uint64_t blocks = (uint64_t)(n / d->block_elems);
    if (blocks > UINT64_MAX / d->block_bytes) return 0;
    return blocks * d->block_bytes;
}

bool rotq_dtype_is_float(rotq_dtype dt) {
    return dt == ROTQ_F32 || dt == ROTQ_F16 || dt == ROTQ_BF16 || dt == ROTQ_F64;
}

bool rotq_dtype_grid(rotq_dtype dt, rotq_block_grid *g) {
    const dtype_info *d = info(dt);
    if (!d || !d->pack) return false;
    if (g) *g = (rotq_block_grid){.bits = d->code_bits, .group = d->group, .super_groups = d->super_max ? d->block_elems / d->group : 0,
                                  .super_max = d->super_max, .asym = d->asym, .scale_mant_bits = d->scale_mant_bits,
                                  .min_max = d->min_max};
    return true;
}

rotq_status rotq_block_pack(rotq_dtype dt, const uint8_t *u, const double *scales, const int32_t *zeros, const double *mins,
                            int64_t n, void *dst) {
    const dtype_info *d = info(dt);
    if (!d || !d->pack) return rotq_fail(ROTQ_ERR_UNSUPPORTED, "rotq writes %s blocks, not %s", ROTQ_BLOCK_TYPES_WRITTEN, rotq_dtype_name(dt));
    if (d->min_max && !mins) return rotq_fail(ROTQ_ERR_ARG, "%s: blocks with group mins need the mins", d->name);
    if (n % d->block_elems) return rotq_fail(ROTQ_ERR_ARG, "%s: %lld values are not whole blocks of %lld", d->name, (long long)n, (long long)d->block_elems);
    uint8_t *out = dst;
    int64_t groups_per_block = d->block_elems / d->group;
    for (int64_t b = 0; b < n / d->block_elems; b++) {
        for (int64_t j = 0; j < d->block_elems; j++)
            if (u[b * d->block_elems + j] >> d->code_bits)
                return rotq_fail(ROTQ_ERR_ARG, "%s block %lld: code %d needs more than %d bits", d->name, (long long)b, u[b * d->block_elems + j], d->code_bits);
        if (!d->pack(u + b * d->block_elems, scales + b * groups_per_block, zeros + b * groups_per_block,
                     mins ? mins + b * groups_per_block : NULL, out + (uint64_t)b * d->block_bytes))
            return rotq_fail(ROTQ_ERR_ARG, "%s block %lld: its scales (first %.9g)%s are not what the format stores (float16%s); quantize on its grid",
                             d->name, (long long)b, scales[b * groups_per_block], d->min_max ? " or mins" : "",
                             d->super_max ? " times a small integer" : "");
    }
    return ROTQ_OK;
}

rotq_status rotq_dequantize(rotq_dtype dt, const void *src, float *dst, int64_t n) {
    if (n < 0 || (n > 0 && (!src || !dst)))
        return rotq_fail(ROTQ_ERR_ARG, "rotq_dequantize: bad arguments (n=%lld)", (long long)n);
    const uint8_t *s = src;
    switch (dt) {
    case ROTQ_F32:
        if (n) memcpy(dst, src, (size_t)n * 4);
        return ROTQ_OK;
    case ROTQ_F16:
        for (int64_t i = 0; i < n; i++) dst[i] = half_at(s + 2 * i);
        return ROTQ_OK;
    case ROTQ_BF16:
        for (int64_t i = 0; i < n; i++) dst[i] = rotq_bf16_to_f32((uint16_t)(s[2 * i] | (s[2 * i + 1] << 8)));
        return ROTQ_OK;
    case ROTQ_F64:
        for (int64_t i = 0; i < n; i++) {
            double v;
            memcpy(&v, s + 8 * i, 8);
            dst[i] = (float)v;
        }
        return ROTQ_OK;
    default: break;
    }
    const dtype_info *d = info(dt);
    block_fn fn = d ? d->dequantize : NULL;
    if (!fn)
        return rotq_fail(ROTQ_ERR_UNSUPPORTED, "rotq cannot dequantize type %s (ggml type %d)",
                         rotq_dtype_name(dt), (int)dt);
    const int64_t be = rotq_dtype_block_size(dt);
    const uint64_t bb = rotq_dtype_block_bytes(dt);
    if (n % be != 0)
        return rotq_fail(ROTQ_ERR_ARG, "rotq_dequantize: %lld elements is not a whole number of %s blocks of %lld",
                         (long long)n, rotq_dtype_name(dt), (long long)be);
    const int64_t nb = n / be;
#pragma omp parallel for schedule(static) if (nb > 8192)
    for (int64_t i = 0; i < nb; i++) fn(s + (uint64_t)i * bb, dst + i * be);
    return ROTQ_OK;
}
