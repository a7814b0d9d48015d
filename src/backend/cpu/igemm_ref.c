/* The plain reference of rotq_igemm_forward (igemm.h): one int32 dot product per output. */
#include "backend/igemm.h"

void rotq_igemm_forward_ref(float *y, const uint8_t *u, const float *s, const int32_t *z, int64_t T, int64_t n_in,
                            const int8_t *q, const float *sw, int64_t n_out, const float *b, bool accumulate) {
    for (int64_t o = 0; o < n_out; o++) {
        const int8_t *qo = q + o * n_in;
        int32_t qsum = 0;
        for (int64_t i = 0; i < n_in; i++) qsum += qo[i];
        for (int64_t t = 0; t < T; t++) {
            const uint8_t *ut = u + t * n_in;
            int32_t acc = 0;
            for (int64_t i = 0; i < n_in; i++) acc += (int32_t)ut[i] * (int32_t)qo[i];
            acc -= z[t] * qsum;
            float v = (s[t] * sw[o]) * (float)acc;
            if (b) v += b[o];
            y[t * n_out + o] = accumulate ? y[t * n_out + o] + v : v;
        }
    }
}
