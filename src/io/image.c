/* Images for a vision tower: PNG (libpng) and JPEG (libjpeg) decoded to 8-bit RGB, then turned into
 * the patch rows Qwen2-VL's image processor makes — resized with Pillow's bicubic filter (bit-exact:
 * its fixed-point coefficients and two passes), scaled to [0, 1], normalised per channel, and cut
 * into temporal × patch × patch blocks in merge order. transformers' reference is its PIL backend
 * (Qwen2VLImageProcessorPil); transparency is composited onto white first, as it does. */
#include <errno.h>
#include <math.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jpeglib.h>
#include <png.h>

#include "io/image.h"

struct rotq_image {
    int64_t width, height;
    uint8_t *rgb; /* [height, width, 3] */
};

void rotq_image_free(rotq_image *img) {
    if (!img) return;
    free(img->rgb);
    free(img);
}

void rotq_image_size(const rotq_image *img, int64_t *width, int64_t *height) {
    *width = img->width;
    *height = img->height;
}

const uint8_t *rotq_image_rgb(const rotq_image *img) { return img->rgb; }

#define MAX_SIDE 65535 /* Pillow's (and PNG's practical) limit; keeps every product in range */

rotq_status rotq_image_from_rgb(const uint8_t *rgb, int64_t width, int64_t height, rotq_image **out) {
    *out = NULL;
    if (width <= 0 || height <= 0 || width > MAX_SIDE || height > MAX_SIDE)
        return rotq_fail(ROTQ_ERR_ARG, "image: %lld×%lld pixels is not a size rotq takes (1..%d a side)", (long long)width,
                         (long long)height, MAX_SIDE);
    rotq_image *img = calloc(1, sizeof *img);
    if (img) img->rgb = malloc((size_t)(width * height * 3));
    if (!img || !img->rgb) {
        rotq_image_free(img);
        return rotq_fail(ROTQ_ERR_NOMEM, "image: out of memory for %lld×%lld pixels", (long long)width, (long long)height);
    }
    img->width = width;
    img->height = height;
    if (rgb) memcpy(img->rgb, rgb, (size_t)(width * height * 3));
    *out = img;
    return ROTQ_OK;
}

/* Pillow's Image.alpha_composite of a pixel over opaque white (8-bit fixed point, its rounding). */
static uint8_t over_white(uint8_t c, uint8_t a) {
    if (a == 0) return 255;
    const uint32_t PREC = 7;
    uint32_t blend = 255u * (255u - a), outa255 = a * 255u + blend;
    uint32_t coef1 = a * 255u * 255u * (1u << PREC) / outa255, coef2 = 255u * (1u << PREC) - coef1;
    uint32_t tmp = c * coef1 + 255u * coef2 + (0x80u << PREC);
    return (uint8_t)((((tmp >> 8) + tmp) >> 8) >> PREC);
}

/* ---- PNG ---- */

static rotq_status load_png(const char *path, rotq_image **out) {
    png_image pi;
    memset(&pi, 0, sizeof pi);
    pi.version = PNG_IMAGE_VERSION;
    if (!png_image_begin_read_from_file(&pi, path))
        return rotq_fail(ROTQ_ERR_FORMAT, "%s: not a readable PNG: %s", path, pi.message);
    if (pi.format & PNG_FORMAT_FLAG_LINEAR) {
        png_image_free(&pi);
        return rotq_fail(ROTQ_ERR_UNSUPPORTED, "%s: 16-bit PNG; rotq reads 8-bit PNGs (convert it first)", path);
    }
    bool alpha = (pi.format & PNG_FORMAT_FLAG_ALPHA) != 0;
    pi.format = PNG_FORMAT_RGBA; /* 8-bit input: no gamma conversion, palettes and grey expanded */
    rotq_status s = rotq_image_from_rgb(NULL, pi.width, pi.height, out);
    uint8_t *rgba = s == ROTQ_OK ? malloc(PNG_IMAGE_SIZE(pi)) : NULL;
    if (s == ROTQ_OK && !rgba) s = rotq_fail(ROTQ_ERR_NOMEM, "%s: out of memory", path);
    if (s == ROTQ_OK && !png_image_finish_read(&pi, NULL, rgba, 0, NULL))
        s = rotq_fail(ROTQ_ERR_FORMAT, "%s: PNG data is damaged: %s", path, pi.message);
    png_image_free(&pi);
    if (s == ROTQ_OK) {
        int64_t n = (*out)->width * (*out)->height;
        for (int64_t i = 0; i < n; i++)
            for (int c = 0; c < 3; c++)
                (*out)->rgb[3 * i + c] = alpha ? over_white(rgba[4 * i + c], rgba[4 * i + 3]) : rgba[4 * i + c];
    }
    free(rgba);
    if (s != ROTQ_OK) {
        rotq_image_free(*out);
        *out = NULL;
    }
    return s;
}

/* ---- JPEG ---- */

typedef struct jpeg_err {
    struct jpeg_error_mgr mgr;
    jmp_buf jump;
    char msg[JMSG_LENGTH_MAX];
} jpeg_err;

static void jpeg_fail(j_common_ptr c) {
    jpeg_err *e = (jpeg_err *)c->err;
    c->err->format_message(c, e->msg);
    longjmp(e->jump, 1);
}

static void jpeg_quiet(j_common_ptr c, int level) { (void)c, (void)level; }

static rotq_status load_jpeg(const char *path, rotq_image **out) {
    FILE *f = fopen(path, "rb");
    if (!f) return rotq_fail(ROTQ_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    struct jpeg_decompress_struct c;
    jpeg_err e;
    rotq_image *volatile img = NULL;
    c.err = jpeg_std_error(&e.mgr);
    e.mgr.error_exit = jpeg_fail;
    e.mgr.emit_message = jpeg_quiet;
    if (setjmp(e.jump)) {
        jpeg_destroy_decompress(&c);
        fclose(f);
        rotq_image_free(img);
        return rotq_fail(ROTQ_ERR_FORMAT, "%s: JPEG data is damaged: %s", path, e.msg);
    }
    jpeg_create_decompress(&c);
    jpeg_stdio_src(&c, f);
    jpeg_read_header(&c, TRUE);
    rotq_status s = ROTQ_OK;
    if (c.jpeg_color_space == JCS_CMYK || c.jpeg_color_space == JCS_YCCK)
        s = rotq_fail(ROTQ_ERR_UNSUPPORTED, "%s: CMYK JPEG; rotq reads RGB and greyscale JPEGs", path);
    /* libjpeg's defaults (integer DCT, fancy upsampling): what Pillow decodes with */
    c.out_color_space = c.jpeg_color_space == JCS_GRAYSCALE ? JCS_GRAYSCALE : JCS_RGB;
    rotq_image *im = NULL;
    if (s == ROTQ_OK) {
        jpeg_start_decompress(&c);
        s = rotq_image_from_rgb(NULL, c.output_width, c.output_height, &im);
        img = im;
    }
    if (s == ROTQ_OK) {
        int nc = c.output_components;
        JSAMPLE *row = malloc((size_t)c.output_width * (size_t)nc);
        if (!row) s = rotq_fail(ROTQ_ERR_NOMEM, "%s: out of memory", path);
        while (s == ROTQ_OK && c.output_scanline < c.output_height) {
            int64_t y = c.output_scanline;
            jpeg_read_scanlines(&c, &row, 1);
            for (int64_t x = 0; x < (int64_t)c.output_width; x++)
                for (int ch = 0; ch < 3; ch++) im->rgb[(y * im->width + x) * 3 + ch] = row[x * nc + (nc == 1 ? 0 : ch)];
        }
        free(row);
        if (s == ROTQ_OK) jpeg_finish_decompress(&c);
    }
    jpeg_destroy_decompress(&c);
    fclose(f);
    if (s != ROTQ_OK) {
        rotq_image_free(im);
        return s;
    }
    *out = im;
    return ROTQ_OK;
}

rotq_status rotq_image_load(const char *path, rotq_image **out) {
    *out = NULL;
    FILE *f = fopen(path, "rb");
    if (!f) return rotq_fail(ROTQ_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    uint8_t magic[8] = {0};
    size_t got = fread(magic, 1, sizeof magic, f);
    fclose(f);
    if (got == 8 && memcmp(magic, "\x89PNG\r\n\x1a\n", 8) == 0) return load_png(path, out);
    if (got >= 3 && magic[0] == 0xFF && magic[1] == 0xD8 && magic[2] == 0xFF) return load_jpeg(path, out);
    return rotq_fail(ROTQ_ERR_UNSUPPORTED, "%s: not a PNG or JPEG file (rotq reads those two)", path);
}

/* ---- Pillow's bicubic resampling (Resample.c), reproduced for bit-exact pixels ---- */

#define PRECISION_BITS (32 - 8 - 2)

static double bicubic(double x) { /* a = -0.5 */
    const double a = -0.5;
    if (x < 0.0) x = -x;
    if (x < 1.0) return ((a + 2.0) * x - (a + 3.0)) * x * x + 1;
    if (x < 2.0) return (((x - 5) * x + 8) * x - 4) * a;
    return 0.0;
}

/* Per output pixel: the first input pixel, how many, and ksize fixed-point weights. */
static rotq_status coeffs(int64_t in_size, int64_t out_size, int *ksize_out, int64_t **bounds_out, int32_t **kk_out) {
    double scale = (double)in_size / (double)out_size, filterscale = scale < 1.0 ? 1.0 : scale;
    double support = 2.0 * filterscale;
    int ksize = (int)ceil(support) * 2 + 1;
    int64_t *bounds = malloc(sizeof(int64_t) * 2 * (size_t)out_size);
    double *k = malloc(sizeof(double) * (size_t)ksize);
    int32_t *kk = malloc(sizeof(int32_t) * (size_t)(out_size * ksize));
    if (!bounds || !k || !kk) {
        free(bounds), free(k), free(kk);
        return rotq_fail(ROTQ_ERR_NOMEM, "image: out of memory resizing");
    }
    for (int64_t xx = 0; xx < out_size; xx++) {
        double center = (xx + 0.5) * scale, ww = 0.0, ss = 1.0 / filterscale;
        int64_t xmin = (int64_t)(center - support + 0.5), xmax = (int64_t)(center + support + 0.5);
        if (xmin < 0) xmin = 0;
        if (xmax > in_size) xmax = in_size;
        xmax -= xmin;
        int64_t x = 0;
        for (; x < xmax; x++) {
            double w = bicubic(((double)(x + xmin) - center + 0.5) * ss);
            k[x] = w;
            ww += w;
        }
        for (x = 0; x < xmax; x++)
            if (ww != 0.0) k[x] /= ww;
        for (; x < ksize; x++) k[x] = 0;
        for (x = 0; x < ksize; x++)
            kk[xx * ksize + x] = k[x] < 0 ? (int32_t)(-0.5 + k[x] * (1 << PRECISION_BITS)) : (int32_t)(0.5 + k[x] * (1 << PRECISION_BITS));
        bounds[2 * xx] = xmin;
        bounds[2 * xx + 1] = xmax;
    }
    free(k);
    *ksize_out = ksize;
    *bounds_out = bounds;
    *kk_out = kk;
    return ROTQ_OK;
}

static inline uint8_t clip8(int32_t v) {
    int32_t s = v >> PRECISION_BITS; /* arithmetic: floor, as Pillow's lookup table */
    return (uint8_t)(s < 0 ? 0 : s > 255 ? 255 : s);
}

/* One pass of n_out outputs along an axis: dst[o·dstep_o + i·dstep_i + c] from src rows/columns. */
static void pass(const uint8_t *src, uint8_t *dst, int64_t n_out, int64_t n_other, int64_t src_along, int64_t src_across,
                 int64_t dst_along, int64_t dst_across, int ksize, const int64_t *bounds, const int32_t *kk, int64_t shift) {
    for (int64_t j = 0; j < n_other; j++)
        for (int64_t o = 0; o < n_out; o++) {
            const int32_t *k = kk + o * ksize;
            int64_t first = bounds[2 * o] - shift, n = bounds[2 * o + 1];
            for (int c = 0; c < 3; c++) {
                int32_t ss = 1 << (PRECISION_BITS - 1);
                for (int64_t x = 0; x < n; x++) ss += src[(first + x) * src_along + j * src_across + c] * k[x];
                dst[o * dst_along + j * dst_across + c] = clip8(ss);
            }
        }
}

rotq_status rotq_image_resize_bicubic(const uint8_t *src, int64_t w, int64_t h, int64_t nw, int64_t nh, uint8_t *dst) {
    if (w == nw && h == nh) {
        memcpy(dst, src, (size_t)(w * h * 3));
        return ROTQ_OK;
    }
    int kh, kv;
    int64_t *bh = NULL, *bv = NULL;
    int32_t *kkh = NULL, *kkv = NULL;
    rotq_status s = coeffs(w, nw, &kh, &bh, &kkh);
    if (s == ROTQ_OK) s = coeffs(h, nh, &kv, &bv, &kkv);
    if (s != ROTQ_OK) {
        free(bh), free(kkh);
        return s;
    }
    /* Two passes, each rounding to 8 bits. Pillow (13) runs the horizontal one first — over just the rows
     * the vertical one reads — except when the width grows while the height shrinks: then vertical first
     * (found by comparison with Pillow; tests/oracle_qwen2vl.py checks both cases). */
    bool h_pass = w != nw, v_pass = h != nh, v_first = nw > w && nh < h;
    int64_t y0 = bv[0], y1 = bv[2 * nh - 2] + bv[2 * nh - 1];
    uint8_t *tmp = h_pass && v_pass ? malloc((size_t)((v_first ? nh * w : (y1 - y0) * nw) * 3)) : NULL;
    if (h_pass && v_pass && !tmp) s = rotq_fail(ROTQ_ERR_NOMEM, "image: out of memory resizing");
    if (s == ROTQ_OK) {
        if (!v_pass) pass(src, dst, nw, h, 3, w * 3, 3, nw * 3, kh, bh, kkh, 0);
        else if (!h_pass) pass(src, dst, nh, w, w * 3, 3, nw * 3, 3, kv, bv, kkv, 0);
        else if (v_first) {
            pass(src, tmp, nh, w, w * 3, 3, w * 3, 3, kv, bv, kkv, 0);
            pass(tmp, dst, nw, nh, 3, w * 3, 3, nw * 3, kh, bh, kkh, 0);
        } else {
            pass(src + y0 * w * 3, tmp, nw, y1 - y0, 3, w * 3, 3, nw * 3, kh, bh, kkh, 0);
            pass(tmp, dst, nh, nw, nw * 3, 3, nw * 3, 3, kv, bv, kkv, y0);
        }
    }
    free(tmp);
    free(bh), free(bv), free(kkh), free(kkv);
    return s;
}

/* ---- Qwen2-VL's processor ---- */

rotq_status rotq_image_smart_size(const rotq_vision_config *v, int64_t h, int64_t w, int64_t *nh, int64_t *nw) {
    int64_t f = v->patch * v->merge;
    if ((double)(h > w ? h : w) / (double)(h < w ? h : w) > 200)
        return rotq_fail(ROTQ_ERR_ARG, "image: aspect ratio %lld:%lld is beyond 200 (the processor refuses it too)",
                         (long long)w, (long long)h);
    /* Python's round(): half to even */
    int64_t hb = (int64_t)nearbyint((double)h / (double)f) * f, wb = (int64_t)nearbyint((double)w / (double)f) * f;
    if ((double)hb * (double)wb > (double)v->max_pixels) {
        double beta = sqrt((double)h * (double)w / (double)v->max_pixels);
        hb = (int64_t)floor((double)h / beta / (double)f) * f;
        wb = (int64_t)floor((double)w / beta / (double)f) * f;
        if (hb < f) hb = f;
        if (wb < f) wb = f;
    } else if ((double)hb * (double)wb < (double)v->min_pixels) {
        double beta = sqrt((double)v->min_pixels / ((double)h * (double)w));
        hb = (int64_t)ceil((double)h * beta / (double)f) * f;
        wb = (int64_t)ceil((double)w * beta / (double)f) * f;
    }
    if (hb <= 0 || wb <= 0 || hb > MAX_SIDE || wb > MAX_SIDE)
        return rotq_fail(ROTQ_ERR_ARG, "image: %lld×%lld pixels resize to %lld×%lld, which rotq does not take", (long long)w,
                         (long long)h, (long long)wb, (long long)hb);
    *nh = hb;
    *nw = wb;
    return ROTQ_OK;
}

rotq_status rotq_image_patches(const rotq_vision_config *v, const rotq_image *img, float **patches, int64_t grid[3]) {
    *patches = NULL;
    int64_t nh, nw;
    ROTQ_TRY(rotq_image_smart_size(v, img->height, img->width, &nh, &nw));
    uint8_t *px = malloc((size_t)(nh * nw * 3));
    if (!px) return rotq_fail(ROTQ_ERR_NOMEM, "image: out of memory");
    rotq_status s = rotq_image_resize_bicubic(img->rgb, img->width, img->height, nw, nh, px);
    int64_t P = v->patch, M = v->merge, Tp = v->temporal_patch, gh = nh / P, gw = nw / P, C = 3;
    int64_t row = C * Tp * P * P;
    float *out = s == ROTQ_OK ? malloc(sizeof(float) * (size_t)(gh * gw * row)) : NULL;
    if (s == ROTQ_OK && !out) s = rotq_fail(ROTQ_ERR_NOMEM, "image: out of memory for %lld patches", (long long)(gh * gw));
    if (s == ROTQ_OK) {
        /* x / 255 in double rounded to float32, then (x − mean) / std in float32: numpy's order */
        float mean[3], std[3];
        for (int c = 0; c < 3; c++) mean[c] = (float)v->mean[c], std[c] = (float)v->std[c];
        float table[3][256];
        for (int c = 0; c < 3; c++)
            for (int u = 0; u < 256; u++) {
                float scaled = (float)((double)u * (1.0 / 255.0)), centred = scaled - mean[c];
                table[c][u] = centred / std[c];
            }
        /* rows in merge order: (bh, bw) blocks, (mh, mw) inside; a row is [C][Tp][P][P], a still
         * image repeated over the Tp frames */
        int64_t i = 0;
        for (int64_t bh = 0; bh < gh / M; bh++)
            for (int64_t bw = 0; bw < gw / M; bw++)
                for (int64_t mh = 0; mh < M; mh++)
                    for (int64_t mw = 0; mw < M; mw++, i++) {
                        float *o = out + i * row;
                        int64_t y0 = (bh * M + mh) * P, x0 = (bw * M + mw) * P;
                        for (int64_t c = 0; c < C; c++)
                            for (int64_t t = 0; t < Tp; t++)
                                for (int64_t y = 0; y < P; y++)
                                    for (int64_t x = 0; x < P; x++)
                                        *o++ = table[c][px[((y0 + y) * nw + x0 + x) * 3 + c]];
                    }
        grid[0] = 1;
        grid[1] = gh;
        grid[2] = gw;
        *patches = out;
    }
    free(px);
    return s;
}
