/* rotq_igemm_forward (igemm.h): an AVX2 integer kernel, with plain C loops for other CPUs.
 *
 * Weight layout. Output columns are grouped in panels of PANEL (= 8·PANEL_VECS) columns, inputs in
 * steps of 4 (n_in padded to a multiple of 4, n_out to PANEL, both with zeros). A panel is stored
 * step after step; a step holds PANEL_VECS 32-byte vectors, vector j covering columns 8j..8j+7 with
 * byte 4c+i = q[8j+c][4·step+i]. Activations are repacked per group of MR rows as [step][row]
 * 4-byte words u[t][4·step .. 4·step+3].
 *
 * Fast path (2·u_max·max|q| ≤ 32767): vpmaddubsw of a broadcast activation word with a weight
 * vector gives, in int16 lane 2c, u[k]q[c][k] + u[k+1]q[c][k+1], and in lane 2c+1 the other pair of
 * the same column. Those are summed in int16 for as many steps as cannot overflow (a whole row
 * when the panel's weights allow it), then vpmaddwd with ones folds the two lanes of a column into
 * its int32 sum. The inner step is inline assembly, as gcc spills its 16 live registers. Exact path (8-bit codes): the same
 * layout widened to int16 and multiplied with vpmaddwd, summed in int32.
 *
 * Work is split into tiles of (a block of row groups) × (a range of panels); inside a tile each
 * panel (L1-resident) meets every row group of the block (L2-resident) in turn.
 */
#include <immintrin.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

#include "backend/cpu/caps.h"
#include "backend/igemm.h"

/* AVX2 without FMA: the epilogue must round after its multiply and after its add, as the
 * reference does, so no fused multiply-add may be generated whatever the contraction flags. */
#define AVX2 __attribute__((target("avx2")))

#define PANEL_VECS 2                 /* weight vectors per step: 8 columns each */
#define PANEL (8 * PANEL_VECS)       /* output columns per panel */
#define MR 6                         /* activation rows per micro-kernel */
#define GROUPS_PER_TILE 16           /* row groups per tile: MR·16 rows of activations stay in L2 */
_Static_assert(PANEL_VECS == 2 && MR == 6, "the kernels' assembly is written for 6 rows x 2 vectors");

struct rotq_igemm_weights {
    int64_t n_out, n_in;
    int64_t steps;    /* ceil(n_in / 4) */
    int64_t n_panels; /* ceil(n_out / PANEL) */
    int8_t *packed;   /* [n_panels][steps][PANEL][4] */
    int32_t *qsum;    /* [n_panels·PANEL]: Σ_i q[o][i], zero past n_out */
    float *sw;        /* [n_panels·PANEL], zero past n_out */
    int32_t *lane_l1; /* [n_panels]: max over columns and int16 lanes of Σ |q| (see forward_avx2) */
    int32_t qmax;     /* max |q| */
};

rotq_status rotq_igemm_pack(const int8_t *q, const float *sw, int64_t n_out, int64_t n_in, rotq_igemm_weights **out) {
    *out = NULL;
    if (n_out <= 0 || n_in <= 0) return rotq_fail(ROTQ_ERR_ARG, "igemm: weights of %lld x %lld", (long long)n_out, (long long)n_in);
    int64_t steps = (n_in + 3) / 4, n_panels = (n_out + PANEL - 1) / PANEL;
    size_t packed_bytes = (size_t)(n_panels * steps * PANEL * 4);
    size_t cols = (size_t)(n_panels * PANEL);
    rotq_igemm_weights *w = calloc(1, sizeof *w);
    if (w) {
        w->packed = aligned_alloc(64, (packed_bytes + 63) / 64 * 64);
        w->qsum = calloc(cols, sizeof(int32_t));
        w->sw = calloc(cols, sizeof(float));
        w->lane_l1 = calloc((size_t)n_panels, sizeof(int32_t));
    }
    if (!w || !w->packed || !w->qsum || !w->sw || !w->lane_l1) {
        rotq_igemm_free(w);
        return rotq_fail(ROTQ_ERR_NOMEM, "igemm: out of memory packing %lld x %lld weights", (long long)n_out, (long long)n_in);
    }
    w->n_out = n_out;
    w->n_in = n_in;
    w->steps = steps;
    w->n_panels = n_panels;
    memset(w->packed, 0, packed_bytes);
    memcpy(w->sw, sw, (size_t)n_out * sizeof(float));
    int32_t qmax = 0;
    for (int64_t o = 0; o < n_out; o++) {
        const int8_t *qo = q + o * n_in;
        int8_t *dst = w->packed + (o / PANEL) * steps * PANEL * 4 + (o % PANEL) * 4;
        int32_t sum = 0, lane_l1[2] = {0, 0}; /* lane 0: inputs 4s, 4s+1; lane 1: 4s+2, 4s+3 */
        for (int64_t i = 0; i < n_in; i++) {
            sum += qo[i];
            int32_t mag = qo[i] < 0 ? -qo[i] : qo[i];
            if (mag > qmax) qmax = mag;
            lane_l1[i % 4 / 2] += mag;
            dst[(i / 4) * PANEL * 4 + i % 4] = qo[i];
        }
        w->qsum[o] = sum;
        for (int l = 0; l < 2; l++)
            if (lane_l1[l] > w->lane_l1[o / PANEL]) w->lane_l1[o / PANEL] = lane_l1[l];
    }
    w->qmax = qmax;
    *out = w;
    return ROTQ_OK;
}

void rotq_igemm_free(rotq_igemm_weights *w) {
    if (!w) return;
    free(w->packed);
    free(w->qsum);
    free(w->sw);
    free(w->lane_l1);
    free(w);
}

int64_t rotq_igemm_n_out(const rotq_igemm_weights *w) { return w->n_out; }
int64_t rotq_igemm_n_in(const rotq_igemm_weights *w) { return w->n_in; }

/* ---- shared pieces ------------------------------------------------------------------------------- */

/* What a forward call needs, passed to the tile workers. */
typedef struct {
    float *y;
    const uint8_t *u;
    const float *s;
    const int32_t *z;
    const float *b;
    const rotq_igemm_weights *w;
    int64_t T;
    bool accumulate;
} igemm_call;

/* One output, in exactly the reference's order of operations. */
static inline void store_one(const igemm_call *c, int64_t t, int64_t o, int32_t acc) {
    acc -= c->z[t] * c->w->qsum[o];
    float v = (c->s[t] * c->w->sw[o]) * (float)acc;
    if (c->b) v += c->b[o];
    float *yo = c->y + t * c->w->n_out + o;
    *yo = c->accumulate ? *yo + v : v;
}

/* The 4 codes u[t][4·step ..], zero past n_in, as one word (byte order = memory order). */
static inline int32_t act_word(const uint8_t *row, int64_t step, int64_t n_in) {
    uint8_t bytes[4] = {0, 0, 0, 0};
    int64_t i0 = step * 4, n = n_in - i0 < 4 ? n_in - i0 : 4;
    memcpy(bytes, row + i0, (size_t)n);
    int32_t word;
    memcpy(&word, bytes, sizeof word);
    return word;
}

/* ---- portable path ------------------------------------------------------------------------------- */

static void forward_portable(const igemm_call *c) {
    const rotq_igemm_weights *w = c->w;
    int64_t n_in = w->n_in, steps = w->steps;
#pragma omp parallel for schedule(static)
    for (int64_t t = 0; t < c->T; t++) {
        const uint8_t *ut = c->u + t * n_in;
        for (int64_t p = 0; p < w->n_panels; p++) {
            const int8_t *wp = w->packed + p * steps * PANEL * 4;
            int32_t acc[PANEL] = {0};
            for (int64_t st = 0; st < steps; st++) {
                const int8_t *ws = wp + st * PANEL * 4;
                int64_t n = n_in - st * 4 < 4 ? n_in - st * 4 : 4;
                for (int col = 0; col < PANEL; col++)
                    for (int64_t i = 0; i < n; i++) acc[col] += (int32_t)ut[st * 4 + i] * ws[col * 4 + i];
            }
            int64_t o0 = p * PANEL, n_cols = w->n_out - o0 < PANEL ? w->n_out - o0 : PANEL;
            for (int64_t col = 0; col < n_cols; col++) store_one(c, t, o0 + col, acc[col]);
        }
    }
}

/* ---- AVX2 path ------------------------------------------------------------------------------------ */

/* Activation words of rows [t0, t0+MR) as [step][row]; rows past T are zeros. */
static void pack_group_u8(int32_t *dst, const igemm_call *c, int64_t t0) {
    int64_t n_in = c->w->n_in, steps = c->w->steps;
    for (int r = 0; r < MR; r++) {
        int64_t t = t0 + r;
        if (t >= c->T) {
            for (int64_t st = 0; st < steps; st++) dst[st * MR + r] = 0;
            continue;
        }
        const uint8_t *row = c->u + t * n_in;
        int64_t full = n_in / 4;
        for (int64_t st = 0; st < full; st++) memcpy(&dst[st * MR + r], row + st * 4, 4);
        if (full < steps) dst[full * MR + r] = act_word(row, full, n_in);
    }
}

/* The same rows widened to 4 uint16 per word (for the exact path). */
static void pack_group_u16(uint64_t *dst, const igemm_call *c, int64_t t0) {
    int64_t n_in = c->w->n_in, steps = c->w->steps;
    for (int r = 0; r < MR; r++) {
        int64_t t = t0 + r;
        const uint8_t *row = t < c->T ? c->u + t * n_in : NULL;
        for (int64_t st = 0; st < steps; st++) {
            uint64_t word = 0;
            if (row) {
                int32_t w4;
                if (st * 4 + 4 <= n_in) memcpy(&w4, row + st * 4, 4);
                else w4 = act_word(row, st, n_in);
                /* bytes 0..3 (x86 order) to the low bytes of 16-bit lanes 0..3 */
                word = (uint32_t)w4;
                word = (word | word << 16) & 0x0000FFFF0000FFFFull;
                word = (word | word << 8) & 0x00FF00FF00FF00FFull;
            }
            dst[st * MR + r] = word;
        }
    }
}

/* out[r][col] (+)= Σ over steps [0, n_steps) for MR rows × one panel, summed in int16 (stored
 * when `first`, else added): the caller keeps n_steps small enough that no partial sum overflows.
 * One step is inline assembly: its 12 int16 accumulators, 2 weight vectors, 1 broadcast and 1
 * product fill all 16 ymm registers, and gcc 12, given the same with intrinsics, spills
 * accumulators every step (half the speed). */
AVX2 __attribute__((noinline)) static void kernel_u8_chunk(const int32_t *as, const int8_t *ws, int64_t n_steps,
                                                           int32_t out[MR][PANEL], bool first) {
    __m256i c00 = _mm256_setzero_si256(), c01 = c00, c10 = c00, c11 = c00, c20 = c00, c21 = c00;
    __m256i c30 = c00, c31 = c00, c40 = c00, c41 = c00, c50 = c00, c51 = c00;
    for (int64_t st = 0; st < n_steps; st++, ws += PANEL * 4, as += MR) {
        /* Row r: broadcast its word to ymm14; vpmaddubsw (unsigned × signed byte pairs) with each
         * weight vector; add the int16 pair sums into the row's two accumulators. */
#define ROW(offset, x0, x1)                                \
    "vpbroadcastd " #offset "(%[a]), %%ymm14\n\t"          \
    "vpmaddubsw %%ymm12, %%ymm14, %%ymm15\n\t"             \
    "vpaddw %%ymm15, %[" #x0 "], %[" #x0 "]\n\t"           \
    "vpmaddubsw %%ymm13, %%ymm14, %%ymm14\n\t"             \
    "vpaddw %%ymm14, %[" #x1 "], %[" #x1 "]\n\t"
        __asm__("vmovdqu (%[w]), %%ymm12\n\t"
                "vmovdqu 32(%[w]), %%ymm13\n\t"
                ROW(0, c00, c01) ROW(4, c10, c11) ROW(8, c20, c21) ROW(12, c30, c31) ROW(16, c40, c41) ROW(20, c50, c51)
                : [c00] "+x"(c00), [c01] "+x"(c01), [c10] "+x"(c10), [c11] "+x"(c11), [c20] "+x"(c20), [c21] "+x"(c21),
                  [c30] "+x"(c30), [c31] "+x"(c31), [c40] "+x"(c40), [c41] "+x"(c41), [c50] "+x"(c50), [c51] "+x"(c51)
                : [w] "r"(ws), [a] "r"(as), "m"(*(const int8_t(*)[PANEL * 4])ws), "m"(*(const int32_t(*)[MR])as)
                : "xmm12", "xmm13", "xmm14", "xmm15");
#undef ROW
    }
    /* vpmaddwd with ones folds the two int16 lanes of each column into its int32 sum. */
    const __m256i ones = _mm256_set1_epi16(1);
    __m256i *o = (__m256i *)&out[0][0]; /* row r, vector j at o[2r + j] */
    __m256i sums[2 * MR] = {c00, c01, c10, c11, c20, c21, c30, c31, c40, c41, c50, c51};
    for (int i = 0; i < 2 * MR; i++) {
        __m256i v = _mm256_madd_epi16(sums[i], ones);
        _mm256_storeu_si256(o + i, first ? v : _mm256_add_epi32(_mm256_loadu_si256(o + i), v));
    }
}

/* out = the sums over all steps, in chunks of `flush_every` steps. */
AVX2 static void kernel_u8(const int32_t *a, const int8_t *wp, int64_t steps, int64_t flush_every, int32_t out[MR][PANEL]) {
    for (int64_t s0 = 0; s0 < steps; s0 += flush_every)
        kernel_u8_chunk(a + s0 * MR, wp + s0 * PANEL * 4, steps - s0 < flush_every ? steps - s0 : flush_every, out, s0 == 0);
}

/* Exact for any codes: out[r][col] = Σ over all steps, weights sign-extended to int16 and the
 * activation words widened to 4 uint16 (pack_group_u16), products paired by vpmaddwd into int32
 * (at most 2·255·128 each, so the int32 sums are exact as long as the reference's are). Inline
 * assembly for the same reason as kernel_u8_chunk: 12 accumulators, 2 weights, 1 broadcast, 1
 * product. */
AVX2 __attribute__((noinline)) static void kernel_u16(const uint64_t *a, const int8_t *wp, int64_t steps,
                                                      int32_t out[MR][PANEL]) {
    for (int j = 0; j < PANEL_VECS; j++) {
        /* lo: columns 8j..8j+3, hi: 8j+4..8j+7; two partial sums per column (inputs 4s,4s+1 and 4s+2,4s+3) */
        __m256i l0 = _mm256_setzero_si256(), h0 = l0, l1 = l0, h1 = l0, l2 = l0, h2 = l0;
        __m256i l3 = l0, h3 = l0, l4 = l0, h4 = l0, l5 = l0, h5 = l0;
        const int8_t *ws = wp + 32 * j;
        const uint64_t *as = a;
        for (int64_t st = 0; st < steps; st++, ws += PANEL * 4, as += MR) {
#define ROW(offset, lo, hi)                                \
    "vpbroadcastq " #offset "(%[a]), %%ymm14\n\t"          \
    "vpmaddwd %%ymm12, %%ymm14, %%ymm15\n\t"               \
    "vpaddd %%ymm15, %[" #lo "], %[" #lo "]\n\t"           \
    "vpmaddwd %%ymm13, %%ymm14, %%ymm14\n\t"               \
    "vpaddd %%ymm14, %[" #hi "], %[" #hi "]\n\t"
            __asm__("vpmovsxbw (%[w]), %%ymm12\n\t"
                    "vpmovsxbw 16(%[w]), %%ymm13\n\t"
                    ROW(0, l0, h0) ROW(8, l1, h1) ROW(16, l2, h2) ROW(24, l3, h3) ROW(32, l4, h4) ROW(40, l5, h5)
                    : [l0] "+x"(l0), [h0] "+x"(h0), [l1] "+x"(l1), [h1] "+x"(h1), [l2] "+x"(l2), [h2] "+x"(h2),
                      [l3] "+x"(l3), [h3] "+x"(h3), [l4] "+x"(l4), [h4] "+x"(h4), [l5] "+x"(l5), [h5] "+x"(h5)
                    : [w] "r"(ws), [a] "r"(as), "m"(*(const int8_t(*)[32])ws), "m"(*(const uint64_t(*)[MR])as)
                    : "xmm12", "xmm13", "xmm14", "xmm15");
#undef ROW
        }
        /* hadd gives columns (0,1,4,5 | 2,3,6,7); the permute restores 0..7. */
        __m256i lo[MR] = {l0, l1, l2, l3, l4, l5}, hi[MR] = {h0, h1, h2, h3, h4, h5};
        for (int r = 0; r < MR; r++)
            _mm256_storeu_si256((__m256i *)&out[r][8 * j], _mm256_permute4x64_epi64(_mm256_hadd_epi32(lo[r], hi[r]), 0xD8));
    }
}

/* Writes the MR × PANEL sums of rows t0.., panel p to y; 8 columns at a time where all exist. */
AVX2 static void epilogue_avx2(const igemm_call *c, int64_t t0, int64_t p, int32_t acc[MR][PANEL]) {
    const rotq_igemm_weights *w = c->w;
    const int64_t n_out = w->n_out, o0 = p * PANEL;
    const int64_t n_cols = n_out - o0 < PANEL ? n_out - o0 : PANEL, n_rows = c->T - t0 < MR ? c->T - t0 : MR;
    const float *s = c->s, *b = c->b;
    const int32_t *z = c->z;
    float *y = c->y + t0 * n_out + o0;
    const bool accumulate = c->accumulate;
    int64_t col = 0;
    for (; col + 8 <= n_cols; col += 8) {
        const __m256i qsum = _mm256_loadu_si256((const __m256i *)(w->qsum + o0 + col));
        const __m256 sw = _mm256_loadu_ps(w->sw + o0 + col);
        const __m256 bias = b ? _mm256_loadu_ps(b + o0 + col) : _mm256_setzero_ps();
        for (int64_t r = 0; r < n_rows; r++) {
            __m256i a = _mm256_loadu_si256((const __m256i *)&acc[r][col]);
            a = _mm256_sub_epi32(a, _mm256_mullo_epi32(_mm256_set1_epi32(z[t0 + r]), qsum));
            /* Separate multiply and add instructions: the reference rounds after each. */
            __m256 v = _mm256_mul_ps(_mm256_mul_ps(_mm256_set1_ps(s[t0 + r]), sw), _mm256_cvtepi32_ps(a));
            if (b) v = _mm256_add_ps(v, bias);
            float *yo = y + r * n_out + col;
            if (accumulate) v = _mm256_add_ps(_mm256_loadu_ps(yo), v);
            _mm256_storeu_ps(yo, v);
        }
    }
    for (; col < n_cols; col++)
        for (int64_t r = 0; r < n_rows; r++) store_one(c, t0 + r, o0 + col, acc[r][col]);
}

/* Tiles: a balanced range of row groups × a range of panels. */
static void forward_avx2(const igemm_call *c, int32_t u_max) {
    const rotq_igemm_weights *w = c->w;
    int64_t steps = w->steps;
    int64_t pair_max = 2 * (int64_t)u_max * w->qmax;
    bool fast = pair_max <= 32767;
    /* An int16 lane gathers 2 products per step: after n steps it is at most n·pair_max in size,
     * and never more than u_max·(its column's Σ|q| over those inputs), which bounds a whole
     * panel at once (one chunk) for typical 4-bit weights on rows of up to ~600 inputs. */
    int64_t flush_every = pair_max == 0 ? steps : 32767 / pair_max;
    if (flush_every > steps) flush_every = steps;
    if (flush_every < 1) flush_every = 1;

    int threads = omp_get_max_threads();
    int64_t n_groups = (c->T + MR - 1) / MR;
    int64_t row_tiles = (n_groups + GROUPS_PER_TILE - 1) / GROUPS_PER_TILE;
    /* Few rows (decoding): split the panels too so every thread has work. */
    int64_t col_tiles = 1;
    if (row_tiles < 2 * threads) {
        col_tiles = (2 * threads + row_tiles - 1) / row_tiles;
        if (col_tiles > w->n_panels) col_tiles = w->n_panels;
    }
    int64_t n_tiles = row_tiles * col_tiles;
    size_t word = fast ? sizeof(int32_t) : sizeof(uint64_t);
    size_t group_bytes = (size_t)(steps * MR) * word;
    size_t tile_bytes = ((size_t)GROUPS_PER_TILE * group_bytes + 63) / 64 * 64;
    uint8_t *bufs = aligned_alloc(64, tile_bytes * (size_t)threads);
    if (!bufs) { /* no room for the repacked activations: the slow loops need none */
        forward_portable(c);
        return;
    }
#pragma omp parallel num_threads(threads)
    {
        uint8_t *buf = bufs + tile_bytes * (size_t)omp_get_thread_num();
#pragma omp for schedule(dynamic, 1)
        for (int64_t tile = 0; tile < n_tiles; tile++) {
            int64_t rt = tile / col_tiles, ct = tile % col_tiles;
            int64_t g0 = rt * n_groups / row_tiles, g1 = (rt + 1) * n_groups / row_tiles;
            int64_t p0 = ct * w->n_panels / col_tiles, p1 = (ct + 1) * w->n_panels / col_tiles;
            for (int64_t g = g0; g < g1; g++) {
                if (fast) pack_group_u8((int32_t *)(void *)(buf + (g - g0) * group_bytes), c, g * MR);
                else pack_group_u16((uint64_t *)(void *)(buf + (g - g0) * group_bytes), c, g * MR);
            }
            for (int64_t p = p0; p < p1; p++) {
                const int8_t *wp = w->packed + p * steps * PANEL * 4;
                int64_t chunk = (int64_t)u_max * w->lane_l1[p] <= 32767 ? steps : flush_every;
                for (int64_t g = g0; g < g1; g++) {
                    /* The output lines this group writes, fetched while the kernel runs: the
                     * stores would otherwise wait for them (rows are n_out floats apart). */
                    for (int64_t t = g * MR; t < g * MR + MR && t < c->T; t++)
                        __builtin_prefetch(c->y + t * w->n_out + p * PANEL, 1, 3);
                    int32_t acc[MR][PANEL];
                    const void *a = buf + (g - g0) * group_bytes;
                    if (fast) kernel_u8(a, wp, steps, chunk, acc);
                    else kernel_u16(a, wp, steps, acc);
                    epilogue_avx2(c, g * MR, p, acc);
                }
            }
        }
    }
    free(bufs);
}

static bool use_avx2(void) { return rotq_cpu_caps_get()->igemm_avx2; }

void rotq_igemm_forward(float *y, const uint8_t *u, const float *s, const int32_t *z, int64_t T, int32_t u_max,
                        const rotq_igemm_weights *w, const float *b, bool accumulate) {
    if (T <= 0) return;
    igemm_call c = {y, u, s, z, b, w, T, accumulate};
    if (u_max < 0 || u_max > 255) u_max = 255; /* out of contract: take the exact path */
    if (use_avx2()) forward_avx2(&c, u_max);
    else forward_portable(&c);
}
