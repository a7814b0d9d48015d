/* Integer matrix products for simulated low-bit linears (W4A4, W4A8): unsigned activation codes
 * times signed weight codes, summed exactly in int32, then scaled to float.
 *
 * A per-token activation row quantized to scale s and zero z holds x[i] = s·(u[i] − z) with
 * u in [0, u_max]; a weight row quantized per output channel holds w[o][i] = sw[o]·q[o][i]. So
 *
 *     x · w[o] = s·sw[o]·(Σ_i u[i]·q[o][i] − z·Σ_i q[o][i])
 *
 * and the sum is an exact integer: the same number the fake-quantized float product approximates,
 * and what a deployed W4A4 kernel computes. Symmetric codes are stored offset (u = q + 2^(b-1),
 * z = 2^(b-1)) so one unsigned kernel serves both grids.
 */
#ifndef ROTQ_BACKEND_IGEMM_H
#define ROTQ_BACKEND_IGEMM_H

#include <stdbool.h>
#include <stdint.h>

#include "core/error.h"

typedef struct rotq_igemm_weights rotq_igemm_weights; /* packed for the kernel; opaque */

/* Packs q [n_out, n_in] (row-major, |q| <= 127) with scales sw [n_out]. Copies; q may be freed. */
rotq_status rotq_igemm_pack(const int8_t *q, const float *sw, int64_t n_out, int64_t n_in, rotq_igemm_weights **out);
void rotq_igemm_free(rotq_igemm_weights *w);
int64_t rotq_igemm_n_out(const rotq_igemm_weights *w);
int64_t rotq_igemm_n_in(const rotq_igemm_weights *w);

/* y [T, n_out] = (or += when accumulate) for every t, o:
 *     (s[t] · sw[o]) · (float)(Σ_i u[t][i]·q[o][i] − z[t]·Σ_i q[o][i])   (+ b[o] when b)
 * u [T, n_in] row-major codes, every u <= u_max <= 255; s [T], z [T]; b may be NULL.
 * Exact in the integer part for every input in range; multithreaded (OpenMP) inside, so it must
 * not be called from within an OpenMP parallel region. */
void rotq_igemm_forward(float *y, const uint8_t *u, const float *s, const int32_t *z, int64_t T, int32_t u_max,
                        const rotq_igemm_weights *w, const float *b, bool accumulate);

/* The same on unpacked weights with plain loops: the reference the kernel is tested against. */
void rotq_igemm_forward_ref(float *y, const uint8_t *u, const float *s, const int32_t *z, int64_t T, int64_t n_in,
                            const int8_t *q, const float *sw, int64_t n_out, const float *b, bool accumulate);

#endif
