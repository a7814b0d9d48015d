/* rotq_igemm_forward against rotq_igemm_forward_ref bit for bit (AVX2 kernel and the portable
 * loops, forced with ROTQ_IGEMM_ISA=scalar), over odd shapes, 4- and 8-bit codes, zero points,
 * bias and accumulate; extreme codes over long rows that would overflow int16 partial sums if the
 * kernel widened too late; and against an independent double computation on dequantized values. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "backend/cpu/caps.h"
#include "backend/igemm.h"
#include "testutil.h"

static uint64_t rs = 0x243F6A8885A308D3ull;
static uint32_t next_u32(void) {
    rs ^= rs >> 12; rs ^= rs << 25; rs ^= rs >> 27;
    return (uint32_t)((rs * 2685821657736338717ull) >> 32);
}
static int32_t irand(int32_t lo, int32_t hi) { return lo + (int32_t)(next_u32() % (uint32_t)(hi - lo + 1)); }
static float frand(float lo, float hi) { return lo + (hi - lo) * (float)(next_u32() >> 8) / 16777216.0f; }

typedef enum { CODES_RANDOM, CODES_MAX_NEG, CODES_MAX_POS } codes;

typedef struct {
    int64_t T, n_in, n_out;
    int32_t u_max, q_lo, q_hi; /* u in [0, u_max], q in [q_lo, q_hi] */
    int32_t z;                 /* zero point; -1: random in [0, u_max] per row */
    bool bias, accumulate;
    codes fill;                /* extremes: every u = u_max, every q = q_lo or q_hi */
} igemm_case;

static int64_t count_mismatches(const float *a, const float *b, int64_t n, int64_t *first) {
    int64_t bad = 0;
    *first = -1;
    for (int64_t i = 0; i < n; i++)
        if (memcmp(&a[i], &b[i], sizeof(float)) != 0) {
            if (*first < 0) *first = i;
            bad++;
        }
    return bad;
}

static void run_case(const igemm_case *k) {
    int64_t T = k->T, n_in = k->n_in, n_out = k->n_out;
    uint8_t *u = malloc((size_t)(T * n_in));
    int8_t *q = malloc((size_t)(n_out * n_in));
    float *s = malloc(sizeof(float) * (size_t)T), *sw = malloc(sizeof(float) * (size_t)n_out);
    int32_t *z = malloc(sizeof(int32_t) * (size_t)T);
    float *b = k->bias ? malloc(sizeof(float) * (size_t)n_out) : NULL;
    size_t ybytes = sizeof(float) * (size_t)(T * n_out);
    float *y0 = malloc(ybytes), *y_ref = malloc(ybytes), *y_fast = malloc(ybytes), *y_port = malloc(ybytes);
    for (int64_t i = 0; i < T * n_in; i++) u[i] = (uint8_t)(k->fill == CODES_RANDOM ? irand(0, k->u_max) : k->u_max);
    for (int64_t i = 0; i < n_out * n_in; i++)
        q[i] = (int8_t)(k->fill == CODES_RANDOM ? irand(k->q_lo, k->q_hi) : k->fill == CODES_MAX_NEG ? k->q_lo : k->q_hi);
    for (int64_t t = 0; t < T; t++) {
        s[t] = frand(1e-3f, 0.2f);
        z[t] = k->z >= 0 ? k->z : irand(0, k->u_max);
    }
    for (int64_t o = 0; o < n_out; o++) sw[o] = frand(1e-3f, 0.05f);
    if (b)
        for (int64_t o = 0; o < n_out; o++) b[o] = frand(-1, 1);
    for (int64_t i = 0; i < T * n_out; i++) y0[i] = frand(-2, 2);
    memcpy(y_ref, y0, ybytes);
    memcpy(y_fast, y0, ybytes);
    memcpy(y_port, y0, ybytes);

    rotq_igemm_weights *w = NULL;
    CHECK(rotq_igemm_pack(q, sw, n_out, n_in, &w) == ROTQ_OK, "pack %lld x %lld", (long long)n_out, (long long)n_in);
    if (!w) return;
    CHECK(rotq_igemm_n_out(w) == n_out && rotq_igemm_n_in(w) == n_in, "sizes");
    rotq_igemm_forward_ref(y_ref, u, s, z, T, n_in, q, sw, n_out, b, k->accumulate);
    rotq_igemm_forward(y_fast, u, s, z, T, k->u_max, w, b, k->accumulate);
    rotq_cpu_caps port = *rotq_cpu_caps_get();
    port.igemm_avx2 = false;
    rotq_cpu_caps_set(&port);
    rotq_igemm_forward(y_port, u, s, z, T, k->u_max, w, b, k->accumulate);
    rotq_cpu_caps_set(NULL);

    char what[200];
    snprintf(what, sizeof what, "T=%lld n_in=%lld n_out=%lld u<=%d q in [%d,%d] z=%d bias=%d acc=%d fill=%d", (long long)T,
             (long long)n_in, (long long)n_out, k->u_max, k->q_lo, k->q_hi, k->z, k->bias, k->accumulate, (int)k->fill);
    int64_t first;
    int64_t bad = count_mismatches(y_fast, y_ref, T * n_out, &first);
    CHECK(bad == 0, "%s: %lld of %lld outputs differ from the reference, first [%lld]: %.9g vs %.9g", what, (long long)bad,
          (long long)(T * n_out), (long long)first, first >= 0 ? y_fast[first] : 0.0, first >= 0 ? y_ref[first] : 0.0);
    bad = count_mismatches(y_port, y_ref, T * n_out, &first);
    CHECK(bad == 0, "%s: portable path: %lld outputs differ, first [%lld]", what, (long long)bad, (long long)first);

    /* Independent: the float product of the dequantized operands, in double; the error is relative
     * to Σ|terms| (an exact 0 from the integers may be 1e-18 in double). */
    double worst = 0;
    for (int64_t t = 0; t < T; t++)
        for (int64_t o = 0; o < n_out; o++) {
            double dot = 0, mag = 0;
            for (int64_t i = 0; i < n_in; i++) {
                double term = ((double)s[t] * (u[t * n_in + i] - z[t])) * ((double)sw[o] * q[o * n_in + i]);
                dot += term;
                mag += fabs(term);
            }
            double bo = b ? b[o] : 0, yo = k->accumulate ? y0[t * n_out + o] : 0;
            double want = dot + bo + yo;
            double err = fabs(y_fast[t * n_out + o] - want) / (mag + fabs(bo) + fabs(yo) + 1e-30);
            if (err > worst) worst = err;
        }
    CHECK(worst <= 1e-5, "%s: relative error %.3g against the double product", what, worst);

    rotq_igemm_free(w);
    free(u); free(q); free(s); free(sw); free(z); free(b);
    free(y0); free(y_ref); free(y_fast); free(y_port);
}

int main(void) {
    /* Odd shapes: n_in not a multiple of 4, n_out not a multiple of the panel, T not of the row group. */
    const int64_t Ts[] = {1, 2, 3, 5, 6, 7, 13, 17, 64, 203};
    const int64_t n_ins[] = {1, 3, 4, 5, 7, 33, 130, 577, 1031};
    const int64_t n_outs[] = {1, 5, 8, 15, 16, 17, 40, 97};
    const int32_t zs[] = {0, 8, 128, -1};
    int n = 0;
    for (size_t it = 0; it < sizeof Ts / sizeof *Ts; it++)
        for (size_t ii = 0; ii < sizeof n_ins / sizeof *n_ins; ii++) {
            /* a few output counts per (T, n_in) pair, cycling through the options */
            for (int rep = 0; rep < 2; rep++, n++) {
                igemm_case k = {.T = Ts[it], .n_in = n_ins[ii], .n_out = n_outs[(n * 3 + rep) % 8], .fill = CODES_RANDOM};
                switch (n % 4) {
                case 0: k.u_max = 15; k.q_lo = -8; k.q_hi = 7; break;    /* W4A4 */
                case 1: k.u_max = 255; k.q_lo = -8; k.q_hi = 7; break;   /* W4A8 */
                case 2: k.u_max = 255; k.q_lo = -127; k.q_hi = 127; break; /* 8-bit: exact path */
                default: k.u_max = 15; k.q_lo = -127; k.q_hi = 127; break;
                }
                k.z = zs[(n / 2) % 4];
                if (k.z > k.u_max) k.z = k.u_max / 2 + 1;
                k.bias = n % 3 != 0;
                k.accumulate = n % 5 < 2;
                run_case(&k);
            }
        }
    /* SmolLM2-like shapes and a row count spanning several tiles of the threaded split. */
    run_case(&(igemm_case){.T = 200, .n_in = 576, .n_out = 192, .u_max = 15, .q_lo = -8, .q_hi = 7, .z = 8, .bias = true});
    run_case(&(igemm_case){.T = 97, .n_in = 1536, .n_out = 80, .u_max = 15, .q_lo = -8, .q_hi = 7, .z = -1, .accumulate = true});
    run_case(&(igemm_case){.T = 31, .n_in = 576, .n_out = 1536, .u_max = 15, .q_lo = -8, .q_hi = 7, .z = 0});
    /* Just inside the fast path: 2·255·64 = 32640 ≤ 32767, so int16 sums are widened every step. */
    run_case(&(igemm_case){.T = 19, .n_in = 515, .n_out = 37, .u_max = 255, .q_lo = -64, .q_hi = 64, .z = 128, .bias = true});
    run_case(&(igemm_case){.T = 9, .n_in = 515, .n_out = 37, .u_max = 255, .q_lo = -64, .q_hi = 64, .z = 0,
                           .fill = CODES_MAX_NEG});
    /* A whole panel in one int16 chunk when u_max·(a lane's Σ|q|) ≤ 32767: every u = 15 and q = ±4
     * over 1092 inputs puts 546·4·15 = 32760 in each lane (just fits); over 1096, 32880 (must be
     * split). */
    for (int f = CODES_MAX_NEG; f <= CODES_MAX_POS; f++)
        for (int64_t n_in = 1092; n_in <= 1096; n_in += 4)
            run_case(&(igemm_case){.T = 7, .n_in = n_in, .n_out = 20, .u_max = 15, .q_lo = -4, .q_hi = 4, .z = 0, .fill = (codes)f});
    /* Extremes: every product at its largest, over long rows (int16 would overflow after 136 steps). */
    const int64_t long_ins[] = {1536, 4099};
    for (int li = 0; li < 2; li++)
        for (int f = CODES_MAX_NEG; f <= CODES_MAX_POS; f++) {
            run_case(&(igemm_case){.T = 7, .n_in = long_ins[li], .n_out = 19, .u_max = 15, .q_lo = -8, .q_hi = 7, .z = 0,
                                   .fill = (codes)f});
            run_case(&(igemm_case){.T = 7, .n_in = long_ins[li], .n_out = 19, .u_max = 15, .q_lo = -8, .q_hi = 7, .z = 8,
                                   .bias = true, .fill = (codes)f});
            run_case(&(igemm_case){.T = 5, .n_in = long_ins[li], .n_out = 17, .u_max = 255, .q_lo = -127, .q_hi = 127,
                                   .z = 128, .accumulate = true, .fill = (codes)f});
            run_case(&(igemm_case){.T = 5, .n_in = long_ins[li], .n_out = 17, .u_max = 255, .q_lo = -127, .q_hi = 127,
                                   .z = 0, .fill = (codes)f});
        }

    /* A known value by hand: u = [1, 2, 3], q = [[1, -1, 2]], z = 1, s = 0.5, sw = 2, b = 0.25:
     * Σ u·q = 1 − 2 + 6 = 5, Σ q = 2, acc = 5 − 2 = 3, y = (0.5·2)·3 + 0.25 = 3.25. */
    {
        const uint8_t u[3] = {1, 2, 3};
        const int8_t q[3] = {1, -1, 2};
        const float s = 0.5f, sw = 2.0f, b = 0.25f;
        const int32_t z = 1;
        float y = -1;
        rotq_igemm_weights *w = NULL;
        CHECK(rotq_igemm_pack(q, &sw, 1, 3, &w) == ROTQ_OK, "pack 1x3");
        rotq_igemm_forward(&y, u, &s, &z, 1, 3, w, &b, false);
        CHECK(y == 3.25f, "hand example gives %g, want 3.25", y);
        rotq_igemm_forward(&y, u, &s, &z, 1, 3, w, &b, true);
        CHECK(y == 6.5f, "accumulated hand example gives %g, want 6.5", y);
        rotq_igemm_forward(&y, u, &s, &z, 0, 3, w, &b, false); /* no rows: nothing written */
        CHECK(y == 6.5f, "T = 0 wrote %g", y);
        rotq_igemm_free(w);
        w = (rotq_igemm_weights *)&w; /* must be reset to NULL on failure */
        CHECK(rotq_igemm_pack(q, &sw, 0, 3, &w) == ROTQ_ERR_ARG && w == NULL, "empty weights are refused");
    }
    return tu_finish("test_igemm");
}
