/* rotq rotate IN OUT: fuse norms, apply R1–R4, write a model that computes the same function. */
#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "cli.h"

static const char *help =
    "usage: rotq rotate IN OUT [options]\n"
    "\n"
    "Fuses the norms into the linears and applies the QuaRot rotations, then writes OUT (an HF folder,\n"
    "or GGUF when OUT ends in .gguf). Fused rotations (R1, R2) give an ordinary checkpoint any tool\n"
    "runs; online ones (R3, R4) are recorded in OUT (\"rotq\" in config.json / rotq.* in GGUF) and\n"
    "applied by rotq's own runner.\n"
    "  --r1 KIND          residual stream: random-hadamard (default), hadamard, orthogonal, none, or a\n"
    "                     .safetensors file holding the matrix\n"
    "  --r2 KIND          per-head V->O rotation, same kinds (default random-hadamard); a folder of learned\n"
    "                     rotations gives each layer its own r2.layerL.safetensors\n"
    "  --rotations D      R1 and R2 from folder D, as rotq learn writes it (= --r1 D --r2 D)\n"
    "  --r3 on|off        online Hadamard on Q/K after RoPE (default on)\n"
    "  --r4 on|off        online Hadamard before down_proj (default on)\n"
    "  --r1-block N       R1 block-diagonal: one Hadamard of size N (any K·2^m dividing hidden) per block\n"
    "                     of N channels (default 0: full width)\n"
    "  --r4-block N       R4 likewise over down_proj's input (online, its inverse fused into down_proj)\n"
    "  --layerwise SITES  layerwise (unfused) rotations: an online rotation in front of the linears' input at\n"
    "                     each site, its inverse fused into their weights; no norm fusion needed. SITES:\n"
    "                     qkv, o, mlp, down, lm_head (comma-separated) or all; down replaces R4 (turned off)\n"
    "  --layerwise-kind K random-hadamard (default), hadamard or orthogonal\n"
    "  --layerwise-block N  each layerwise rotation block-diagonal with blocks of N (default: full width)\n"
    "  --seed N           seed of every random choice (default 0)\n"
    "  --save-rotations D write the fused matrices into folder D (r1, r2.layerL, r4 .safetensors)\n"
    "  --to hf|gguf       output format; --dtype f32|f16|bf16 output dtype (default: the input's)\n"
    "  --shard-size N     HF: largest safetensors shard in bytes (default 5000000000)\n"
    "HF output is written layer by layer as the rotation finishes each one, so memory stays near one\n"
    "layer plus the embeddings; GGUF output is written after the whole model is rotated.\n"
    "  --arch-file F      register a JSON architecture description first\n"
    "  --json             print a JSON summary on stdout\n";

/* A kind by name, or a matrix file — checked now, before any model is loaded, so that a typo
 * ("bogus", "7") is an error at once and names the kinds there are. */
static int parse_kind(const char *cmd, const char *opt, const char *v, rotq_rotation_choice *k, const char **file) {
    *file = NULL;
    struct stat st;
    if (strcmp(v, "random-hadamard") == 0) *k = ROTQ_R_RANDOM_HADAMARD;
    else if (strcmp(v, "hadamard") == 0) *k = ROTQ_R_HADAMARD;
    else if (strcmp(v, "orthogonal") == 0) *k = ROTQ_R_ORTHOGONAL;
    else if (strcmp(v, "none") == 0) *k = ROTQ_R_NONE;
    else if (stat(v, &st) == 0 && S_ISDIR(st.st_mode)) { /* a folder of learned rotations (rotq learn) */
        char path[4096];
        rotq_rotation_folder_file(v, strcmp(opt, "--r1") == 0 ? -1 : 0, path, sizeof path);
        if (stat(path, &st) != 0)
            return cli_usage(cmd, "%s %s: the folder has no %s (a folder of rotations holds r1.safetensors and "
                             "r2.layerL.safetensors, as rotq learn writes them)", opt, v, strrchr(path, '/') + 1);
        *k = ROTQ_R_FILE;
        *file = v;
    } else if (stat(v, &st) == 0 && S_ISREG(st.st_mode)) { *k = ROTQ_R_FILE; *file = v; }
    else return cli_usage(cmd, "%s %s: expected random-hadamard, hadamard, orthogonal, none, a .safetensors file "
                          "holding the matrix, or a folder of learned rotations (%s)", opt, v,
                          stat(v, &st) == 0 ? "not a regular file or folder" : "no such file");
    return 0;
}

static int parse_onoff(const char *cmd, const char *opt, const char *v, bool *out) {
    if (v && strcmp(v, "on") == 0) *out = true;
    else if (v && strcmp(v, "off") == 0) *out = false;
    else return cli_usage(cmd, "%s expects on or off", opt);
    return 0;
}

int cli_rotate_option(const char *cmd, int argc, char **argv, int *i, rotq_rotate_options *ro) {
    const char *a = argv[*i], *v;
    if (cli_is(a, "--r1") || cli_is(a, "--r2")) {
        if (!(v = cli_value(argc, argv, i))) return -cli_usage(cmd, "%s needs a kind", a);
        bool r1 = a[3] == '1';
        return parse_kind(cmd, r1 ? "--r1" : "--r2", v, r1 ? &ro->r1 : &ro->r2, r1 ? &ro->r1_file : &ro->r2_file) ? -1 : 1;
    }
    if (cli_is(a, "--rotations")) { /* a folder rotq learn wrote: its R1 and per-layer R2 */
        struct stat st;
        if (!(v = cli_value(argc, argv, i))) return -cli_usage(cmd, "--rotations needs a folder");
        if (stat(v, &st) != 0 || !S_ISDIR(st.st_mode))
            return -cli_usage(cmd, "--rotations %s: not a folder (rotq learn writes one: r1.safetensors, r2.layerL.safetensors)", v);
        if (parse_kind(cmd, "--r1", v, &ro->r1, &ro->r1_file) || parse_kind(cmd, "--r2", v, &ro->r2, &ro->r2_file)) return -1;
        return 1;
    }
    if (cli_is(a, "--r1-block") || cli_is(a, "--r4-block")) {
        int64_t n;
        if (cli_int(cmd, a, cli_value(argc, argv, i), 0, 1 << 24, &n)) return -1;
        if (a[3] == '1') ro->r1_block = n;
        else ro->r4_block = n;
        return 1;
    }
    if (cli_is(a, "--layerwise")) { /* sites by name, comma-separated, or all */
        if (!(v = cli_value(argc, argv, i))) return -cli_usage(cmd, "--layerwise needs sites (qkv,o,mlp,down,lm_head) or all");
        uint32_t mask = 0;
        char list[256];
        snprintf(list, sizeof list, "%s", v);
        for (char *save = NULL, *t = strtok_r(list, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
            if (strcmp(t, "all") == 0) { mask |= (1u << ROTQ_LW_SITES) - 1; continue; }
            int k = rotq_lw_site_from_name(t);
            if (k < 0) return -cli_usage(cmd, "--layerwise %s: unknown site %s (qkv, o, mlp, down, lm_head or all)", v, t);
            mask |= 1u << k;
        }
        ro->layerwise = mask;
        if (mask >> ROTQ_LW_DOWN & 1) ro->r4 = false; /* down_proj's layerwise rotation takes R4's place */
        return 1;
    }
    if (cli_is(a, "--layerwise-kind")) {
        v = cli_value(argc, argv, i);
        if (v && strcmp(v, "hadamard") == 0) ro->layerwise_kind = ROTQ_R_HADAMARD;
        else if (v && strcmp(v, "random-hadamard") == 0) ro->layerwise_kind = ROTQ_R_RANDOM_HADAMARD;
        else if (v && strcmp(v, "orthogonal") == 0) ro->layerwise_kind = ROTQ_R_ORTHOGONAL;
        else return -cli_usage(cmd, "--layerwise-kind %s: expected random-hadamard, hadamard or orthogonal", v ? v : "(nothing)");
        return 1;
    }
    if (cli_is(a, "--layerwise-block")) {
        int64_t n;
        if (cli_int(cmd, a, cli_value(argc, argv, i), 0, 1 << 24, &n)) return -1;
        ro->layerwise_block = n;
        return 1;
    }
    if (cli_is(a, "--r3")) return parse_onoff(cmd, "--r3", cli_value(argc, argv, i), &ro->r3) ? -1 : 1;
    if (cli_is(a, "--r4")) return parse_onoff(cmd, "--r4", cli_value(argc, argv, i), &ro->r4) ? -1 : 1;
    if (cli_is(a, "--seed")) {
        char *end;
        if (!(v = cli_value(argc, argv, i))) return -cli_usage(cmd, "--seed needs a number");
        errno = 0;
        ro->seed = strtoull(v, &end, 10);
        if (*end || errno || v[0] == '-') return -cli_usage(cmd, "--seed %s: expected a non-negative integer", v);
        return 1;
    }
    return 0;
}

int cmd_rotate(int argc, char **argv) {
    if (cli_wants_help(argc, argv)) { fputs(help, stdout); return 0; }
    const char *in = NULL, *out = NULL, *arch_file = NULL, *v;
    bool as_json = false;
    rotq_rotate_options ro = rotq_rotate_options_default();
    rotq_save_options so = rotq_save_defaults();
    ro.verbose = true;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        int used = cli_rotate_option("rotate", argc, argv, &i, &ro);
        if (used < 0) return 1;
        if (used) continue;
        if (cli_is(a, "--save-rotations")) {
            if (!(ro.save_rotations = cli_value(argc, argv, &i))) return cli_usage("rotate", "--save-rotations needs a folder");
        } else if (cli_is(a, "--to")) {
            if (!(v = cli_value(argc, argv, &i))) return cli_usage("rotate", "--to needs hf or gguf");
            if (strcmp(v, "hf") == 0) so.format = ROTQ_FORMAT_HF;
            else if (strcmp(v, "gguf") == 0) so.format = ROTQ_FORMAT_GGUF;
            else return cli_usage("rotate", "--to %s: expected hf or gguf", v);
        } else if (cli_is(a, "--dtype")) {
            if (!(v = cli_value(argc, argv, &i))) return cli_usage("rotate", "--dtype needs f32, f16 or bf16");
            so.dtype = rotq_dtype_from_name(v);
            if (so.dtype != ROTQ_F32 && so.dtype != ROTQ_F16 && so.dtype != ROTQ_BF16)
                return cli_usage("rotate", "--dtype %s: expected f32, f16 or bf16", v);
        } else if (cli_is(a, "--shard-size")) {
            int64_t sb;
            if (cli_int("rotate", "--shard-size", cli_value(argc, argv, &i), 1, INT64_MAX, &sb)) return 1;
            so.shard_bytes = (uint64_t)sb;
        } else if (cli_is(a, "--arch-file")) {
            if (!(arch_file = cli_value(argc, argv, &i))) return cli_usage("rotate", "--arch-file needs a file");
        } else if (cli_flag(a, "--json")) as_json = true;
        else if (cli_flag(a, "--quiet")) ro.verbose = false;
        else if (cli_flag(a, "--force")) so.overwrite = true;
        else if (cli_is_option(a)) return cli_unknown("rotate", a);
        else if (!in) in = a;
        else if (!out) out = a;
        else return cli_usage("rotate", "unexpected argument %s", a);
    }
    if (!in || !out) { fputs(help, stderr); return 2; }
    if (ro.save_rotations && mkdir(ro.save_rotations, 0755) != 0 && errno != EEXIST)
        return cli_error("rotate", "cannot create %s: %s", ro.save_rotations, strerror(errno));
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    /* Refuse a bad output path before doing the work. */
    if (cli_check_output("rotate", in, out, cli_model_output_kind(out, so.format), so.overwrite)) return 1;
    rotq_status s;
    rotq_model *m;
    if (cli_load("rotate", in, arch_file, NULL, &m)) return 1;
    s = rotq_rotate_save(m, &ro, out, &so); /* HF output: written layer by layer as each is final */
    rotq_model_free(m);
    if (s != ROTQ_OK) return cli_lib_error("rotate", s);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    double secs = (double)(t1.tv_sec - t0.tv_sec) + 1e-9 * (double)(t1.tv_nsec - t0.tv_nsec);
    if (as_json) {
        json_t *j = json_pack("{s:s, s:s, s:f}", "input", in, "output", out, "seconds", secs);
        char *text = json_dumps(j, 0);
        puts(text);
        free(text);
        json_decref(j);
    }
    else fprintf(stderr, "rotq rotate: wrote %s in %.2f s\n", out, secs);
    return 0;
}
