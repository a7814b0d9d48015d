/* Images into a vision tower's patches (io/image.c). */
#ifndef ROTQ_IO_IMAGE_H
#define ROTQ_IO_IMAGE_H
#include "core/model.h"

/* The RGB pixels [height, width, 3]. */
const uint8_t *rotq_image_rgb(const rotq_image *img);
/* Pillow's Image.resize(..., BICUBIC) of 8-bit RGB src [h, w, 3] into dst [nh, nw, 3], bit for bit. */
rotq_status rotq_image_resize_bicubic(const uint8_t *src, int64_t w, int64_t h, int64_t nw, int64_t nh, uint8_t *dst);
/* Qwen2-VL's smart_resize: height and width multiples of patch·merge with min_pixels <= h·w <= max_pixels. */
rotq_status rotq_image_smart_size(const rotq_vision_config *v, int64_t h, int64_t w, int64_t *nh, int64_t *nw);
/* The processor's pixel_values of one image: patches [grid_t·grid_h·grid_w, 3·Tp·P·P] (malloc'd) and grid. */
rotq_status rotq_image_patches(const rotq_vision_config *v, const rotq_image *img, float **patches, int64_t grid[3]);
#endif
