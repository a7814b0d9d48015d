/* Test helper for tests/oracle_qwen2vl.py: what rotq makes of an image, to compare with transformers and Pillow.
 *   tool_vision patches MODEL IMAGE OUT.f32    the processor's pixel_values [rows, cols]; prints "rows cols t h w"
 *   tool_vision features MODEL IMAGE OUT.f32   the vision tower's merged patch embeddings [n, hidden]; prints "n hidden"
 *   tool_vision resize IMAGE W H OUT.rgb       Pillow-exact bicubic resize to W×H (8-bit RGB) */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "io/image.h"
#include "nn/nn.h"
#include "rotate/online.h"

static int fail(void) {
    fprintf(stderr, "tool_vision: %s\n", rotq_last_error());
    return 1;
}

int main(int argc, char **argv) {
    if (argc < 5) {
        fprintf(stderr, "usage: tool_vision patches|features MODEL IMAGE OUT  |  tool_vision resize IMAGE W H OUT\n");
        return 2;
    }
    rotq_image *img = NULL;
    if (strcmp(argv[1], "resize") == 0) {
        if (argc != 6 || rotq_image_load(argv[2], &img) != ROTQ_OK) return argc != 6 ? 2 : fail();
        int64_t w, h, nw = atoll(argv[3]), nh = atoll(argv[4]);
        rotq_image_size(img, &w, &h);
        uint8_t *dst = malloc((size_t)(nw * nh * 3));
        if (!dst || rotq_image_resize_bicubic(rotq_image_rgb(img), w, h, nw, nh, dst) != ROTQ_OK) return fail();
        if (rotq_write_file_atomic(argv[5], dst, (uint64_t)(nw * nh * 3)) != ROTQ_OK) return fail();
        free(dst);
        rotq_image_free(img);
        return 0;
    }
    rotq_model *m;
    if (rotq_model_load(argv[2], NULL, &m) != ROTQ_OK || rotq_image_load(argv[3], &img) != ROTQ_OK) return fail();
    float *patches;
    int64_t rows, cols, grid[3];
    if (rotq_model_image_patches(m, img, &patches, &rows, &cols, grid) != ROTQ_OK) return fail();
    if (strcmp(argv[1], "patches") == 0) {
        if (rotq_write_file_atomic(argv[4], patches, (uint64_t)(rows * cols) * sizeof(float)) != ROTQ_OK) return fail();
        printf("%lld %lld %lld %lld %lld\n", (long long)rows, (long long)cols, (long long)grid[0], (long long)grid[1],
               (long long)grid[2]);
    } else {
        rotq_runner *r;
        if (rotq_runner_new(m->vision, 0, &r) != ROTQ_OK || rotq_online_attach(r) != ROTQ_OK) return fail();
        int64_t n = rows / (m->vis.merge * m->vis.merge), d = m->vis.out_hidden;
        float *out = malloc(sizeof(float) * (size_t)(n * d));
        if (!out || rotq_nn_vision_forward(r, patches, grid[0], grid[1], grid[2], out) != ROTQ_OK) return fail();
        if (rotq_write_file_atomic(argv[4], out, (uint64_t)(n * d) * sizeof(float)) != ROTQ_OK) return fail();
        printf("%lld %lld\n", (long long)n, (long long)d);
        free(out);
        rotq_runner_free(r);
    }
    free(patches);
    rotq_image_free(img);
    rotq_model_free(m);
    return 0;
}
