/* Public load/save entry points: detect the format, call its reader, bind the architecture. */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include <jansson.h>

#include "arch/arch.h"
#include "io/record.h"

rotq_load_options rotq_load_defaults(void) { return (rotq_load_options){.format = ROTQ_FORMAT_AUTO}; }
rotq_save_options rotq_save_defaults(void) { return (rotq_save_options){.format = ROTQ_FORMAT_AUTO, .dtype = ROTQ_DTYPE_INVALID}; }

static rotq_status detect(const char *path, rotq_format *fmt) {
    struct stat st;
    if (stat(path, &st) != 0) return rotq_fail(ROTQ_ERR_IO, "%s: %s", path, strerror(errno));
    if (S_ISDIR(st.st_mode)) { *fmt = ROTQ_FORMAT_HF; return ROTQ_OK; }
    FILE *f = fopen(path, "rb");
    if (!f) return rotq_fail(ROTQ_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    char magic[4] = {0};
    size_t got = fread(magic, 1, 4, f);
    fclose(f);
    if (got == 4 && memcmp(magic, "GGUF", 4) == 0) *fmt = ROTQ_FORMAT_GGUF;
    else if (got == 4 && memcmp(magic, "ak42", 4) == 0)
        return rotq_fail(ROTQ_ERR_UNSUPPORTED, "%s: llama2.c version-1/2 export; rotq reads the legacy (v0) format", path);
    else if (strlen(path) > 12 && strcmp(path + strlen(path) - 12, ".safetensors") == 0)
        return rotq_fail(ROTQ_ERR_ARG, "%s: give the folder holding config.json, not the .safetensors file", path);
    else *fmt = ROTQ_FORMAT_LLAMA2C;
    return ROTQ_OK;
}

/* The "rotq" record a rotated model carries (config.json "rotq" or GGUF "rotq.record"). */
static rotq_status read_record(rotq_model *m) {
    if (m->hf_config && json_object_get(m->hf_config, "rotq"))
        return rotq_record_from_json(json_object_get(m->hf_config, "rotq"), m->source_path, &m->rot);
    const rotq_meta *q = rotq_model_meta(m, "rotq.quantization"); /* how a GGUF export's weights were made */
    if (q && q->type == ROTQ_META_STRING) snprintf(m->quant_desc, sizeof m->quant_desc, "%s", q->str);
    const rotq_meta *kv = rotq_model_meta(m, "rotq.record");
    if (kv && kv->type == ROTQ_META_STRING) return rotq_record_from_string(kv->str, m->source_path, &m->rot);
    if (kv) return rotq_fail(ROTQ_ERR_FORMAT, "%s: rotq.record is not a string", m->source_path);
    return ROTQ_OK;
}

rotq_status rotq_model_load(const char *path, const rotq_load_options *opts, rotq_model **out) {
    rotq_load_options o = opts ? *opts : rotq_load_defaults();
    *out = NULL;
    rotq_clear_error();
    if (o.arch_file) ROTQ_TRY(rotq_arch_register_file(o.arch_file));
    rotq_format fmt = o.format;
    if (fmt == ROTQ_FORMAT_AUTO) ROTQ_TRY(detect(path, &fmt));
    rotq_model *m = rotq_model_new();
    if (!m) return rotq_fail(ROTQ_ERR_NOMEM, "out of memory");
    snprintf(m->source_path, sizeof m->source_path, "%s", path);
    m->source_format = fmt;
    rotq_status s;
    switch (fmt) {
    case ROTQ_FORMAT_HF: s = rotq_load_hf(path, m); break;
    case ROTQ_FORMAT_GGUF: s = rotq_load_gguf(path, m); break;
    case ROTQ_FORMAT_LLAMA2C: s = rotq_load_llama2c(path, o.tokenizer, m); break;
    default: s = rotq_fail(ROTQ_ERR_ARG, "%s: unknown format requested", path);
    }
    if (s == ROTQ_OK) s = rotq_model_bind_arch(m);
    if (s == ROTQ_OK) s = rotq_model_check_claimed(m, o.allow_unused);
    if (s == ROTQ_OK) s = read_record(m);
    if (s == ROTQ_OK && m->vision) s = rotq_model_bind_arch(m->vision);
    if (s == ROTQ_OK && m->vision) s = rotq_model_check_claimed(m->vision, o.allow_unused);
    if (s == ROTQ_OK && m->vision && json_object_get(m->hf_config, "rotq_vision"))
        s = rotq_record_from_json(json_object_get(m->hf_config, "rotq_vision"), m->vision->source_path, &m->vision->rot);
    if (s != ROTQ_OK) {
        rotq_model_free(m);
        return s;
    }
    *out = m;
    return ROTQ_OK;
}

rotq_status rotq_save_check(const rotq_model *m, const char *path, const rotq_save_options *o, rotq_format *fmt) {
    if (o->dtype != ROTQ_DTYPE_INVALID && o->dtype != ROTQ_F32 && o->dtype != ROTQ_F16 && o->dtype != ROTQ_BF16)
        return rotq_fail(ROTQ_ERR_ARG, "%s: output dtype must be f32, f16 or bf16, not %s", path, rotq_dtype_name(o->dtype));
    size_t n = strlen(path);
    *fmt = o->format;
    if (*fmt == ROTQ_FORMAT_AUTO) *fmt = n > 5 && strcmp(path + n - 5, ".gguf") == 0 ? ROTQ_FORMAT_GGUF : ROTQ_FORMAT_HF;
    if (*fmt != ROTQ_FORMAT_GGUF && *fmt != ROTQ_FORMAT_HF)
        return rotq_fail(ROTQ_ERR_UNSUPPORTED, "%s: rotq writes HF folders and GGUF files only", path);
    if (*fmt == ROTQ_FORMAT_GGUF) ROTQ_TRY(rotq_gguf_writable(m, path)); /* before any work */
    ROTQ_TRY(rotq_output_check(path, *fmt == ROTQ_FORMAT_GGUF ? ROTQ_OUTPUT_FILE : ROTQ_OUTPUT_FOLDER, o->overwrite, m->source_path));
    /* Said before the work: an output without a usable tokenizer (none, or one rotq cannot read). */
    rotq_tokenizer *tok = NULL;
    rotq_status ts = rotq_tokenizer_from_model(m, &tok);
    if (ts == ROTQ_OK) rotq_tokenizer_free(tok);
    else if (*fmt == ROTQ_FORMAT_GGUF || ts == ROTQ_ERR_NOT_FOUND)
        rotq_log(ROTQ_LOG_WARN, "%s: written without a tokenizer: %s", path, rotq_last_error());
    else
        rotq_log(ROTQ_LOG_WARN, "%s: the tokenizer cannot be read (%s); its files are copied unchanged, so tools that need text will fail on the output too",
                 path, rotq_last_error());
    rotq_clear_error();
    return ROTQ_OK;
}

rotq_status rotq_model_save(const rotq_model *m, const char *path, const rotq_save_options *opts) {
    rotq_save_options o = opts ? *opts : rotq_save_defaults();
    rotq_format fmt = ROTQ_FORMAT_AUTO;
    ROTQ_TRY(rotq_save_check(m, path, &o, &fmt));
    if (fmt == ROTQ_FORMAT_GGUF) return rotq_save_gguf(m, path, o.dtype);
    return rotq_save_hf(m, path, o.dtype, o.shard_bytes);
}
