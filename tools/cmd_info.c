/* rotq info MODEL: what a model is, in numbers, and where rotq would rotate it. */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

static const char *format_name(rotq_format f) {
    switch (f) {
    case ROTQ_FORMAT_HF: return "hf";
    case ROTQ_FORMAT_GGUF: return "gguf";
    case ROTQ_FORMAT_LLAMA2C: return "llama2c";
    default: return "?";
    }
}

static const char *help =
    "usage: rotq info MODEL [--json] [--tensors] [--arch-file FILE] [--tokenizer FILE]\n"
    "\n"
    "MODEL is a Hugging Face folder (config.json + safetensors), a GGUF file or a llama2.c\n"
    "checkpoint. Prints the architecture, dimensions, dtypes, parameter count, whether the\n"
    "embeddings are tied, and each rotation site with its size.\n"
    "  --json         machine-readable output on stdout\n"
    "  --tensors      list every tensor (name, role, layer, dtype, shape)\n"
    "  --arch-file F  register a JSON architecture description first (docs/architectures.md)\n"
    "  --tokenizer F  llama2.c: tokenizer.bin path (default: beside the model)\n";

typedef struct site { const char *name, *where; int64_t n; } site;

static void print_text(const char *path, const rotq_model *m, const rotq_hparams *hp, const rotq_model_layout *lay,
                       int64_t n_tensors, const int64_t *file_dtype_count, double bpw, const site *sites, int n_sites,
                       char (*how)[192], const char *norm_name, bool list) {
    printf("model          %s (%s)\n", path, format_name(lay->source_format));
    printf("architecture   %s\n", hp->arch);
    printf("dimensions     hidden %lld, intermediate %lld, layers %lld, heads %lld, kv heads %lld, head dim %lld\n",
           (long long)hp->hidden, (long long)hp->intermediate, (long long)hp->n_layers, (long long)hp->n_heads,
           (long long)hp->n_kv_heads, (long long)hp->head_dim);
    printf("vocabulary     %lld tokens, context %lld\n", (long long)hp->vocab, (long long)hp->max_pos);
    printf("norm           %s, eps %g\n", norm_name, hp->norm_eps);
    if (lay->positions == ROTQ_POS_LEARNED)
        printf("positions      learned table (row = position + %d), no RoPE\n", (int)lay->pos_offset);
    else
        printf("rope           theta %g, rotary dim %lld%s\n", hp->rope_theta, (long long)hp->rotary_dim,
               hp->rope_scaling == 2 ? ", llama3 scaling" : hp->rope_scaling == 1 ? ", linear scaling" : "");
    if (hp->mlp_act == ROTQ_MLP_GEGLU)
        printf("mlp            gated, gelu (tanh) · up (GeGLU)\n");
    else if (hp->mlp_act != ROTQ_MLP_SWIGLU)
        printf("mlp            plain, %s\n", hp->mlp_act == ROTQ_MLP_RELU ? "relu" : hp->mlp_act == ROTQ_MLP_GELU ? "gelu" : "gelu (tanh)");
    if (hp->sliding_window > 0) {
        if (hp->sliding_pattern > 0)
            printf("attention      sliding window %lld on local layers, every %d-th layer global; local rope theta %g\n",
                   (long long)hp->sliding_window, hp->sliding_pattern, hp->rope_theta_local);
        else
            printf("attention      sliding window %lld on every layer\n", (long long)hp->sliding_window);
    }
    if (lay->qk_norm || lay->sandwich_norms || hp->norm_offset != 0 || hp->embed_scale > 0 || hp->attn_scale > 0)
        printf("details       %s%s%s%s%s\n", lay->qk_norm ? " q/k norms;" : "", lay->sandwich_norms ? " sandwich norms;" : "",
               hp->norm_offset != 0 ? " norms (1 + w);" : "", hp->embed_scale > 0 ? " embedding x sqrt(hidden);" : "",
               hp->attn_scale > 0 ? " own query scale;" : "");
    printf("embeddings     %s\n", hp->tied_embeddings ? "tied (lm_head = embedding)" : "untied");
    printf("parameters     %lld in %lld tensors\n", (long long)rotq_model_n_params(m), (long long)n_tensors);
    printf("dtypes         ");
    for (int d = 0; d < ROTQ_DTYPE_COUNT; d++)
        if (file_dtype_count[d]) printf("%s x%lld  ", rotq_dtype_name((rotq_dtype)d), (long long)file_dtype_count[d]);
    printf("(in the file, %.2f bits per weight)\n", bpw);
    if (rotq_model_quantization(m)[0]) printf("quantization   %s\n", rotq_model_quantization(m));
    printf("rotation sites\n");
    for (int s = 0; s < n_sites; s++)
        printf("  %-3s %-36s size %-6lld %s\n", sites[s].name, sites[s].where, (long long)sites[s].n,
               s == 0 && !lay->fused_r1 ? "not fusable here (sandwich norms): use --r1 none and --layerwise" : how[s]);
    if (list) {
        printf("tensors\n");
        for (int64_t i = 0; i < n_tensors; i++) {
            rotq_tensor_info t;
            if (rotq_model_tensor_info(m, i, &t) != ROTQ_OK) continue;
            printf("  %-52s %-14s %-5s %-5s %5.2f bpw [", t.name, t.role_name[0] ? t.role_name : "-", rotq_dtype_name(t.dtype),
                   t.file_format[0] ? "codes" : rotq_dtype_name(t.file_dtype), t.file_bits_per_weight);
            for (int d = 0; d < t.n_dims; d++) printf("%s%lld", d ? ", " : "", (long long)t.shape[d]);
            printf(t.file_format[0] ? "]  %s\n" : "]\n", t.file_format);
        }
    }
}

/* A vision tower (rotq_model_vision): its shape, rotation sites and what it was rotated with. */
static json_t *vision_section(const rotq_model *v, const rotq_vision_info *vi, bool text) {
    rotq_hparams hp;
    rotq_model_hparams(v, &hp);
    rotq_model_layout lay;
    if (rotq_model_layout_get(v, &lay) != ROTQ_OK) return NULL;
    struct { const char *name, *where; int64_t n; } sites[] = {
        {"R1", "vision residual stream (fused)", hp.hidden}, {"R2", "per head, qkv's v -> proj (fused)", hp.head_dim},
        {"R4", "fc2 input (online)", hp.intermediate}};
    json_t *js = json_array();
    if (text) {
        printf("vision tower   %s: hidden %lld, mlp %lld (%s), layers %lld, heads %lld (head dim %lld), %s\n", hp.arch,
               (long long)hp.hidden, (long long)hp.intermediate, hp.mlp_act == ROTQ_MLP_SWIGLU ? "swiglu" : "quick gelu",
               (long long)hp.n_layers, (long long)hp.n_heads, (long long)hp.head_dim,
               lay.norm == ROTQ_NORM_LAYER ? "layernorm" : "rmsnorm (or a layernorm fused into one)");
        printf("  patches      %lldx%lld pixels x %lld frames, %lldx%lld merged into one token of %lld; images resized to "
               "%lld..%lld pixels\n", (long long)vi->patch, (long long)vi->patch, (long long)vi->temporal_patch, (long long)vi->merge,
               (long long)vi->merge, (long long)vi->out_hidden, (long long)vi->min_pixels, (long long)vi->max_pixels);
        printf("  parameters   %lld in %lld tensors; image token %d\n", (long long)rotq_model_n_params(v),
               (long long)rotq_model_n_tensors(v), vi->image_token);
    }
    for (size_t s = 0; s < sizeof sites / sizeof sites[0]; s++) {
        char how[192];
        bool exact = rotq_hadamard_describe(sites[s].n, how, sizeof how);
        if (text) printf("  %-3s %-36s size %-6lld %s\n", sites[s].name, sites[s].where, (long long)sites[s].n,
                         exact ? how : "no exact Hadamard known: random orthogonal (fused) / dense (online)");
        json_array_append_new(js, json_pack("{s:s, s:s, s:I, s:b}", "site", sites[s].name, "where", sites[s].where, "size",
                                            (json_int_t)sites[s].n, "exact_hadamard", exact));
    }
    return json_pack("{s:s, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:i, s:I, s:o}", "architecture", hp.arch, "hidden",
                     (json_int_t)hp.hidden, "intermediate", (json_int_t)hp.intermediate, "layers", (json_int_t)hp.n_layers,
                     "heads", (json_int_t)hp.n_heads, "patch", (json_int_t)vi->patch, "temporal_patch",
                     (json_int_t)vi->temporal_patch, "merge", (json_int_t)vi->merge, "parameters",
                     (json_int_t)rotq_model_n_params(v), "image_token", vi->image_token, "tensors",
                     (json_int_t)rotq_model_n_tensors(v), "rotation_sites", js);
}

int cmd_info(int argc, char **argv) {
    if (cli_wants_help(argc, argv)) { fputs(help, stdout); return 0; }
    const char *path = NULL, *arch_file = NULL, *tokenizer = NULL;
    bool as_json = false, list = false;
    for (int i = 1; i < argc; i++) {
        if (cli_flag(argv[i], "--json")) as_json = true;
        else if (cli_flag(argv[i], "--tensors")) list = true;
        else if (cli_is(argv[i], "--arch-file")) { if (!(arch_file = cli_value(argc, argv, &i))) return cli_usage("info", "--arch-file needs a file"); }
        else if (cli_is(argv[i], "--tokenizer")) { if (!(tokenizer = cli_value(argc, argv, &i))) return cli_usage("info", "--tokenizer needs a file"); }
        else if (cli_is_option(argv[i])) return cli_unknown("info", argv[i]);
        else if (!path) path = argv[i];
        else return cli_usage("info", "one model at a time (got %s and %s)", path, argv[i]);
    }
    if (!path) { fputs(help, stderr); return 2; }
    rotq_model *m;
    if (cli_load("info", path, arch_file, tokenizer, &m)) return 1;
    rotq_hparams hps;
    rotq_model_layout lay;
    rotq_model_hparams(m, &hps);
    rotq_status st = rotq_model_layout_get(m, &lay);
    if (st != ROTQ_OK) { rotq_model_free(m); return cli_lib_error("info", st); }
    const rotq_hparams *hp = &hps;
    int64_t n_tensors = rotq_model_n_tensors(m);
    int64_t dtype_count[ROTQ_DTYPE_COUNT] = {0}, file_dtype_count[ROTQ_DTYPE_COUNT] = {0};
    double file_bits = 0.0, numel = 0.0;
    for (int64_t i = 0; i < n_tensors; i++) {
        rotq_tensor_info t;
        if (rotq_model_tensor_info(m, i, &t) != ROTQ_OK) continue;
        double n = 1.0;
        for (int d = 0; d < t.n_dims; d++) n *= (double)t.shape[d];
        numel += n;
        file_bits += n * t.file_bits_per_weight;
        if (t.dtype >= 0 && t.dtype < ROTQ_DTYPE_COUNT) dtype_count[t.dtype]++;
        if (t.file_dtype >= 0 && t.file_dtype < ROTQ_DTYPE_COUNT) file_dtype_count[t.file_dtype]++;
    }
    const char *norm_name = lay.norm == ROTQ_NORM_LAYER ? "layernorm" : "rmsnorm";
    site sites[] = {
        {"R1", "residual stream (fused)", hp->hidden},
        {"R2", "per head, v_proj -> o_proj (fused)", hp->head_dim},
        {"R3", "Q/K after RoPE (online)", hp->head_dim},
        {"R4", "down_proj input (online)", hp->intermediate},
    };
    const int n_sites = 4;

    json_t *j = json_object();
    json_object_set_new(j, "path", json_string(path));
    json_object_set_new(j, "format", json_string(format_name(lay.source_format)));
    json_object_set_new(j, "architecture", json_string(hp->arch));
    json_object_set_new(j, "hidden", json_integer(hp->hidden));
    json_object_set_new(j, "intermediate", json_integer(hp->intermediate));
    json_object_set_new(j, "layers", json_integer(hp->n_layers));
    json_object_set_new(j, "heads", json_integer(hp->n_heads));
    json_object_set_new(j, "kv_heads", json_integer(hp->n_kv_heads));
    json_object_set_new(j, "head_dim", json_integer(hp->head_dim));
    json_object_set_new(j, "vocab", json_integer(hp->vocab));
    json_object_set_new(j, "max_positions", json_integer(hp->max_pos));
    json_object_set_new(j, "norm", json_string(norm_name));
    json_object_set_new(j, "norm_eps", json_real(hp->norm_eps));
    json_object_set_new(j, "rope_theta", json_real(hp->rope_theta));
    json_object_set_new(j, "rotary_dim", json_integer(hp->rotary_dim));
    json_object_set_new(j, "tied_embeddings", json_boolean(hp->tied_embeddings));
    json_object_set_new(j, "mlp", json_string(hp->mlp_act == ROTQ_MLP_SWIGLU ? "swiglu" : hp->mlp_act == ROTQ_MLP_GEGLU ? "geglu"
                                              : hp->mlp_act == ROTQ_MLP_RELU ? "relu" : hp->mlp_act == ROTQ_MLP_GELU ? "gelu" : "gelu_tanh"));
    json_object_set_new(j, "sliding_window", json_integer(hp->sliding_window));
    json_object_set_new(j, "sliding_pattern", json_integer(hp->sliding_pattern));
    json_object_set_new(j, "qk_norm", json_boolean(lay.qk_norm));
    json_object_set_new(j, "sandwich_norms", json_boolean(lay.sandwich_norms));
    json_object_set_new(j, "fused_r1", json_boolean(lay.fused_r1));
    json_object_set_new(j, "parameters", json_integer(rotq_model_n_params(m)));
    json_object_set_new(j, "tensors", json_integer(n_tensors));
    json_t *dts = json_object(), *fdts = json_object();
    for (int d = 0; d < ROTQ_DTYPE_COUNT; d++) {
        if (dtype_count[d]) json_object_set_new(dts, rotq_dtype_name((rotq_dtype)d), json_integer(dtype_count[d]));
        if (file_dtype_count[d]) json_object_set_new(fdts, rotq_dtype_name((rotq_dtype)d), json_integer(file_dtype_count[d]));
    }
    json_object_set_new(j, "dtypes", dts);
    json_object_set_new(j, "file_dtypes", fdts);
    json_object_set_new(j, "file_bits_per_weight", json_real(numel > 0 ? file_bits / numel : 0.0));
    json_object_set_new(j, "quantization", json_string(rotq_model_quantization(m)));
    json_t *js = json_array();
    char how[n_sites][192];
    for (int s = 0; s < n_sites; s++) {
        bool exact = rotq_hadamard_describe(sites[s].n, how[s], sizeof how[s]);
        json_array_append_new(js, json_pack("{s:s, s:s, s:I, s:b, s:s}", "site", sites[s].name, "where", sites[s].where, "size",
                                            (json_int_t)sites[s].n, "exact_hadamard", exact, "hadamard",
                                            exact ? how[s] : "none known: random orthogonal (fused) / dense (online)"));
        if (!exact) snprintf(how[s], sizeof how[s], "no exact Hadamard known: random orthogonal (fused) / dense (online)");
    }
    json_object_set_new(j, "rotation_sites", js);
    if (list) {
        json_t *jt = json_array();
        for (int64_t i = 0; i < n_tensors; i++) {
            rotq_tensor_info t;
            if (rotq_model_tensor_info(m, i, &t) != ROTQ_OK) continue;
            json_t *shape = json_array();
            for (int d = 0; d < t.n_dims; d++) json_array_append_new(shape, json_integer(t.shape[d]));
            json_array_append_new(jt, json_pack("{s:s, s:s, s:i, s:s, s:o, s:f, s:s}", "name", t.name, "role", t.role_name, "layer",
                                                t.layer, "dtype", rotq_dtype_name(t.dtype), "shape", shape, "file_bits_per_weight",
                                                t.file_bits_per_weight, "file_format", t.file_format));
        }
        json_object_set_new(j, "tensor_list", jt);
    }

    rotq_vision_info vi;
    const rotq_model *v = rotq_model_vision(m, &vi);
    if (as_json) {
        json_t *jv = v ? vision_section(v, &vi, false) : NULL;
        if (jv) json_object_set_new(j, "vision", jv);
        char *text = json_dumps(j, JSON_INDENT(2) | JSON_REAL_PRECISION(10));
        puts(text);
        free(text);
    } else {
        print_text(path, m, hp, &lay, n_tensors, file_dtype_count, numel > 0 ? file_bits / numel : 0.0, sites, n_sites, how, norm_name, list);
        if (v) json_decref(vision_section(v, &vi, true));
    }
    json_decref(j);
    rotq_model_free(m);
    return 0;
}
