/* Rotate and save in one pass: with an HF output each tensor is written as soon as the rotation
 * has finished it (rotq_rotate_model_streamed), then released. */
#include "core/model.h"
#include "rotate/fuse.h"

typedef struct stream_sink {
    const char *path;
    rotq_dtype dtype;
    uint64_t shard_bytes;
    rotq_hf_writer *w;
} stream_sink;

/* Opens the folder at the first finished tensor (every tensor exists by then: untying is global),
 * writes each tensor and releases it. */
static rotq_status sink_tensor(void *user, rotq_model *m, rotq_tensor *t) {
    stream_sink *k = user;
    if (!k->w) ROTQ_TRY(rotq_hf_writer_open(m, k->path, k->dtype, k->shard_bytes, &k->w));
    ROTQ_TRY(rotq_hf_writer_put(k->w, m, rotq_model_stored_index(m, t)));
    rotq_tensor_release(t);
    return ROTQ_OK;
}

rotq_status rotq_rotate_save(rotq_model *m, const rotq_rotate_options *ropts, const char *path, const rotq_save_options *sopts) {
    rotq_save_options o = sopts ? *sopts : rotq_save_defaults();
    rotq_format fmt = ROTQ_FORMAT_AUTO;
    ROTQ_TRY(rotq_save_check(m, path, &o, &fmt));
    if (fmt != ROTQ_FORMAT_HF) { /* checked above: rotq_model_save would check (and warn) again */
        ROTQ_TRY(rotq_rotate_model(m, ropts));
        return rotq_save_gguf(m, path, o.dtype);
    }
    stream_sink k = {.path = path, .dtype = o.dtype, .shard_bytes = o.shard_bytes};
    rotq_status s = rotq_rotate_model_streamed(m, ropts, sink_tensor, &k);
    if (s == ROTQ_OK && !k.w) s = rotq_hf_writer_open(m, path, o.dtype, o.shard_bytes, &k.w); /* a model with no tensors */
    if (s != ROTQ_OK) {
        rotq_hf_writer_abort(k.w);
        return s;
    }
    return rotq_hf_writer_finish(k.w, m);
}
