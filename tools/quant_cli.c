/* The options rotq eval and rotq quantize share (quant_cli.h): rotation, weight, activation, KV and
 * calibration settings, the text and windows, the output; and the weight pass with its progress. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "nn_cli.h"
#include "quant_cli.h"

const char *quant_cli_help =
    "rotation (in memory, as rotq rotate; any --rN implies --rotate):\n"
    "  --rotate           QuaRot: random-Hadamard R1 and R2, online R3 and R4\n"
    "  --r1 KIND, --r2 KIND  random-hadamard (default), hadamard, orthogonal, none, or a .safetensors file\n"
    "  --rotations D      learned R1 and R2 from folder D (rotq learn's output)\n"
    "  --r3 on|off, --r4 on|off  online Hadamards on Q/K after RoPE and before down_proj (default on)\n"
    "  --layerwise SITES  layerwise rotations at qkv, o, mlp, down, lm_head or all (as rotq rotate; with or\n"
    "                     without --rotate); --layerwise-kind K, --layerwise-block N\n"
    "  --r1-block N, --r4-block N  block-diagonal R1 (fused) / R4 (online): one Hadamard of size N on each\n"
    "                     block of N channels (e.g. a float format's block, 32 or 16; default: full width)\n"
    "  --seed N           seed of the rotations and of the calibration windows (default 0)\n"
    "weights (lm_head and embeddings stay float unless a GGUF mixture gives them a type):\n"
    "  --w-bits N         2..8 bits, or 16: float (the default)\n"
    "  --w-dtype F        the weights' number format: int (the default, --w-bits), mxfp4 (E2M1, power-of-two\n"
    "                     scale per 32), nvfp4 (E2M1, E4M3 scale per 16 x a float32 tensor scale), fp8 (E4M3)\n"
    "  --w-quant M        rtn (default); gptq: each layer fitted to its own float inputs (--calib);\n"
    "                     gptaq, qronos: each layer fitted, on the inputs the quantized network gives it (activations\n"
    "                     and KV quantized as set here), to the float network's output (two calibration streams)\n"
    "  --calib-acts quant|float  GPTAQ/Qronos: the quantized stream's activations and KV quantized as set\n"
    "                     here (quant, the default) or float, only its weights quantized (Brevitas' default)\n"
    "  --qronos-damp F    Qronos: damping as a fraction of the Hessian's largest eigenvalue (default 1e-6)\n"
    "  --gptaq-alpha A    GPTAQ: move each row a fraction A of the way to its least-squares target (default 0.25)\n"
    "  --w-group G        input columns per scale (-1: per output channel, the default)\n"
    "  --w-asym           asymmetric grid (default symmetric)\n"
    "  --w-clip / --no-w-clip  search the clip ratio minimizing sum |w-q|^2.4 per row/group (QuaRot)\n"
    "  --w-clip-norm P    the clip search's error sum |w-q|^P (default 2.4 as QuaRot; 2: L2)\n"
    "  --w-scale S        how each row's (or group's) scale is searched, for every --w-quant: clip (QuaRot's\n"
    "                     ranges 1, 0.99 .. 0.21 by sum |w-q|^2.4, the default), mse (Brevitas' ranges 0.05 ..\n"
    "                     1 by sum (w-q)^2), hessian (QuaRot's ranges by (w-q) H (w-q)^T, H the layer input's\n"
    "                     Hessian: the output error GPTQ measures; needs --calib, RTN included)\n"
    "  --w-scale-fp16     round the scales to float16, the clip search included (as GGUF blocks store them)\n"
    "  --w-range maxq|full|signed|half  where a symmetric grid puts a row's range t: scale t/7 at 4 bits (maxq,\n"
    "                     QuaRot, the default), t/8 with +t clipped to +7 (full, Brevitas), t/8 with the\n"
    "                     scale's sign putting the largest magnitude on -8 (signed, llama.cpp's Q4_0), or t/7.5\n"
    "                     (half: compressed-tensors' (q_max - q_min)/2)\n"
    "  --w-scale-store D  round the weight scales to D (double: the default, f32, f16, bf16) before the codes are\n"
    "                     chosen, as a file storing them in D needs (compressed-tensors export sets it)\n"
    "  --w-grid MIX       per-tensor GGUF block types of mixture MIX (as quantize writes gguf:MIX), each on its\n"
    "                     type's own grid, weights kept as float (exactly what that GGUF export holds)\n"
    "  --pure             every matrix the mixture's base type (no per-tensor mixture rules)\n"
    "  --tensor-type RE=T tensors whose GGUF name matches regex RE take type T (repeatable, first match\n"
    "                     wins, before the mixture; T f32/f16 keeps them float)\n"
    "  --embedding-type T, --output-type T  the token embedding's and the output matrix's type\n"
    "  --act-order        GPTQ: columns by decreasing Hessian diagonal (static groups with --w-group)\n"
    "  --weighted-scales / --no-weighted-scales  GPTQ: the clip search weights each input column's error by\n"
    "                     the Hessian diagonal (default on for GGUF mixtures, off otherwise)\n"
    "  --static-groups / --no-static-groups  GPTQ group scales from the unmodified weights\n"
    "  --percdamp F       GPTQ dampening, fraction of the mean Hessian diagonal (default 0.01)\n"
    "  --gptq-block N     GPTQ lazy-update block (default 128)\n"
    "activations (per token, dynamic, at every linear input; R4 before down_proj's):\n"
    "  --a-bits N         2..8 (16: float)   --a-asym   --a-clip R (range x R, default 1)\n"
    "  --a-group G        columns per scale within a token (default: the whole row)\n"
    "  --a-range maxq|full|signed|half  symmetric activation grids' range, as --w-range (default signed: each\n"
    "                     token's largest magnitude on -2^(b-1); maxq is QuaRot's ActQuantizer)\n"
    "  --a-lm-head        quantize lm_head's input too (default float)\n"
    "  --a-dtype F        int (the default, --a-bits), mxfp4, nvfp4 (a token is its own tensor) or fp8 (per token)\n"
    "KV cache (K after RoPE and R3, V after v_proj; Q stays float):\n"
    "  --kv-bits N        both K and V (--k-bits/--v-bits separately)\n"
    "  --kv-asym / --kv-sym  --kv-clip R  --kv-group G (default head_dim: per head)  --kv-range (with --kv-sym)\n"
    "  --kv-dtype F       int (the default), mxfp4, nvfp4 or fp8 (blocks of the format, or per head for fp8)\n"
    "presets (applied first, other options override): --preset w4a16|w4a8|w4a8kv8|w8a8|w4a4|w4a4kv4\n"
    "  float formats: mxfp4, nvfp4 (weights, activations and KV), mxfp4-kv8, nvfp4-kv8 (KV in fp8),\n"
    "  w4a8-fp8 (int4 weights, fp8 activations); below 4 bits: w3a16g128, w2a16g128 (asym groups of 128)\n"
    "  weights sym per-channel clip-search; activations sym per-token, clip 0.9 at 4 bits, signed range;\n"
    "  KV asym per-head, clip 0.95 at 4 bits (QuaRot's paper settings)\n"
    "calibration (GPTQ):\n"
    "  --calib FILE       calibration text (keep it apart from the evaluation text)\n"
    "  --nsamples N       random windows (default 128)   --calib-ctx N  tokens each (default 2048)\n"
    "  --calib-cache-mb N memory for layer activations kept rather than recomputed (default 4096)\n"
    "  --threads N        BLAS/OpenMP threads (default: all)\n"
    "  --arch-file F      register a JSON architecture first; --tokenizer F  llama2.c tokenizer.bin\n";

static int parse_range(const char *cmd, const char *opt, const char *v, rotq_sym_range *out) {
    if (v && strcmp(v, "maxq") == 0) *out = ROTQ_SYM_MAXQ;
    else if (v && strcmp(v, "full") == 0) *out = ROTQ_SYM_FULL;
    else if (v && strcmp(v, "signed") == 0) *out = ROTQ_SYM_SIGNED;
    else if (v && strcmp(v, "half") == 0) *out = ROTQ_SYM_HALF;
    else return cli_usage(cmd, "%s %s: expected maxq, full, signed or half", opt, v ? v : "(nothing)");
    return 0;
}

/* --w-dtype/--a-dtype/--kv-dtype: a number format; a float one fixes the element bits and (unless a
 * group is given) takes its block as the group */
static int parse_num(const char *cmd, const char *opt, const char *v, rotq_num_format *out) {
    if (rotq_num_format_parse(v, out) != ROTQ_OK) return cli_usage(cmd, "%s %s: expected int, mxfp4, nvfp4 or fp8", opt, v ? v : "(nothing)");
    return 0;
}

static void act_num(rotq_act_format *f, rotq_num_format num) {
    if (num == ROTQ_NUM_INT && f->num != ROTQ_NUM_INT) f->group = -1; /* back to an integer grid: per token / per head */
    f->num = num;
    if (num == ROTQ_NUM_INT) return;
    f->bits = rotq_num_format_bits(num);
    f->asym = false;
    f->clip = 1.0f;
    f->group = rotq_num_format_block(num) > 0 ? rotq_num_format_block(num) : -1;
}

static int parse_f(const char *cmd, const char *opt, const char *v, double lo, double hi, double *out) {
    char *end;
    errno = 0;
    double x = v ? strtod(v, &end) : 0;
    if (!v || *end || errno || !(x >= lo && x <= hi)) return cli_usage(cmd, "%s needs a number from %g to %g", opt, lo, hi);
    *out = x;
    return 0;
}

/* A weight, activation, KV-cache or calibration option at argv[*i]: 1 when consumed (into c->q),
 * 0 when argv[*i] is another option, -1 after printing why its value is bad. */
static int mixture_usage(const char *cmd, const char *flag, const char *v) {
    char names[512];
    rotq_mixture_names(names, sizeof names);
    return cli_usage(cmd, "%s %s: not a GGUF mixture or type rotq writes (%s)", flag, v, names);
}

static int quant_option(const char *cmd, int argc, char **argv, int *ip, quant_cli *c) {
    int i = *ip;
    const char *a = argv[i], *v;
    int64_t n = 0;
    double f = 0.0;
    if (false) {
        } else if (cli_is(a, "--w-bits")) {
            if (cli_int(cmd, "--w-bits", cli_value(argc, argv, &i), 2, 16, &n)) return -1;
            if (n > 8 && n != 16) return -cli_usage(cmd, "--w-bits %lld: weights take 2..8 bits, or 16 for float", (long long)n);
            c->q.w_bits = (int32_t)n;
            if (c->q.w_method == ROTQ_WQ_NONE) c->q.w_method = ROTQ_WQ_RTN;
        } else if (cli_is(a, "--w-dtype")) {
            if (parse_num(cmd, a, cli_value(argc, argv, &i), &c->q.w_num)) return -1;
            if (c->q.w_num != ROTQ_NUM_INT) {
                c->q.w_bits = rotq_num_format_bits(c->q.w_num);
                c->q.w_asym = false;
                if (c->q.w_method == ROTQ_WQ_NONE) c->q.w_method = ROTQ_WQ_RTN;
            }
        } else if (cli_is(a, "--a-dtype")) {
            rotq_num_format nf;
            if (parse_num(cmd, a, cli_value(argc, argv, &i), &nf)) return -1;
            act_num(&c->q.act, nf);
        } else if (cli_is(a, "--kv-dtype")) {
            rotq_num_format nf;
            if (parse_num(cmd, a, cli_value(argc, argv, &i), &nf)) return -1;
            act_num(&c->q.k, nf);
            act_num(&c->q.v, nf);
        } else if (cli_is(a, "--w-quant")) {
            if (!(v = cli_value(argc, argv, &i))) return -cli_usage(cmd, "--w-quant needs rtn, gptq, gptaq or qronos");
            int m = ROTQ_WQ_RTN; /* the library's names */
            while (m <= ROTQ_WQ_QRONOS && strcmp(v, rotq_wq_method_name((rotq_wq_method)m)) != 0) m++;
            if (m > ROTQ_WQ_QRONOS) return -cli_usage(cmd, "--w-quant %s: expected rtn, gptq, gptaq or qronos", v);
            c->q.w_method = (rotq_wq_method)m;
        } else if (cli_is(a, "--calib-acts")) {
            v = cli_value(argc, argv, &i);
            if (v && strcmp(v, "quant") == 0) c->q.calib_float_acts = false;
            else if (v && strcmp(v, "float") == 0) c->q.calib_float_acts = true;
            else return -cli_usage(cmd, "--calib-acts %s: expected quant or float", v ? v : "(nothing)");
        } else if (cli_is(a, "--gptaq-alpha")) {
            if (parse_f(cmd, "--gptaq-alpha", cli_value(argc, argv, &i), 0, 1, &f)) return -1;
            c->q.gptq.gptaq_alpha = f;
        } else if (cli_is(a, "--qronos-damp")) {
            if (parse_f(cmd, "--qronos-damp", cli_value(argc, argv, &i), 0, 1, &f)) return -1;
            c->q.gptq.qronos_damp = f;
        } else if (cli_is(a, "--w-scale-store")) {
            v = cli_value(argc, argv, &i);
            if (v && strcmp(v, "double") == 0) c->q.w_scale_store = ROTQ_SCALE_DOUBLE;
            else if (v && strcmp(v, "f32") == 0) c->q.w_scale_store = ROTQ_SCALE_F32;
            else if (v && strcmp(v, "f16") == 0) c->q.w_scale_store = ROTQ_SCALE_F16;
            else if (v && strcmp(v, "bf16") == 0) c->q.w_scale_store = ROTQ_SCALE_BF16;
            else return -cli_usage(cmd, "--w-scale-store needs double, f32, f16 or bf16");
        } else if (cli_is(a, "--w-group")) {
            if (cli_int(cmd, "--w-group", cli_value(argc, argv, &i), -1, 1 << 24, &n)) return -1;
            if (n == 0) return -cli_usage(cmd, "--w-group 0: use -1 for per-channel scales");
            c->q.w_group = n;
            c->group_set = true;
        } else if (cli_flag(a, "--w-asym")) c->q.w_asym = true;
        else if (cli_flag(a, "--w-sym")) c->q.w_asym = false;
        else if (cli_flag(a, "--w-clip")) { c->q.w_clip = true; c->clip_set = true; }
        else if (cli_flag(a, "--no-w-clip")) { c->q.w_clip = false; c->clip_set = true; }
        else if (cli_flag(a, "--w-scale-fp16")) c->q.w_scale_fp16 = true;
        else if (cli_is(a, "--w-clip-norm")) {
            if (parse_f(cmd, "--w-clip-norm", cli_value(argc, argv, &i), 0.5, 8, &f)) return -1;
            c->q.w_clip_norm = f;
            c->q.w_clip = true;
            c->clip_set = true;
        }
        else if (cli_is(a, "--w-scale")) {
            v = cli_value(argc, argv, &i);
            int k = ROTQ_WSCALE_CLIP; /* the library's names */
            while (v && k <= ROTQ_WSCALE_HESSIAN && strcmp(v, rotq_w_scale_name((rotq_w_scale)k)) != 0) k++;
            if (!v || k > ROTQ_WSCALE_HESSIAN) return -cli_usage(cmd, "--w-scale %s: expected clip, mse or hessian", v ? v : "(nothing)");
            c->q.w_scale = (rotq_w_scale)k;
            c->q.w_clip = true;
            c->clip_set = true;
        }
        else if (cli_is(a, "--w-range")) {
            if (parse_range(cmd, a, cli_value(argc, argv, &i), &c->q.w_sym_range)) return -1;
        }
        else if (cli_is(a, "--w-grid")) {
            if (!(v = cli_value(argc, argv, &i))) return -cli_usage(cmd, "--w-grid needs a GGUF mixture or type (Q4_K_M, Q4_0, ...)");
            if (rotq_quant_set_mixture(&c->q, v) != ROTQ_OK) return -mixture_usage(cmd, "--w-grid", v);
        } else if (cli_flag(a, "--pure")) c->q.w_types.pure = true;
        else if (cli_flag(a, "--plan") && strcmp(cmd, "quantize") == 0) c->plan_only = true;
        else if (cli_is(a, "--tensor-type")) {
            const char *eq = (v = cli_value(argc, argv, &i)) ? strrchr(v, '=') : NULL;
            if (!eq || eq == v) return -cli_usage(cmd, "--tensor-type needs REGEX=TYPE (e.g. 'attn_v\\.weight$=q6_k')");
            char pat[sizeof c->q.w_types.rules[0].pattern];
            if ((size_t)(eq - v) >= sizeof pat) return -cli_usage(cmd, "--tensor-type %s: the pattern is too long", v);
            memcpy(pat, v, (size_t)(eq - v));
            pat[eq - v] = 0;
            rotq_status st = rotq_quant_add_type_rule(&c->q, pat, rotq_dtype_from_name(eq + 1));
            if (st != ROTQ_OK) return -cli_lib_error(cmd, st);
        } else if (cli_is(a, "--embedding-type") || cli_is(a, "--output-type")) {
            rotq_dtype t = (v = cli_value(argc, argv, &i)) ? rotq_dtype_from_name(v) : ROTQ_DTYPE_INVALID;
            if (!rotq_dtype_block_written(t) && t != ROTQ_F32 && t != ROTQ_F16) return -cli_usage(cmd, "%s %s: expected a GGUF block type rotq writes (%s) or f32/f16", a, v ? v : "",
                                                            ROTQ_BLOCK_TYPES_WRITTEN);
            if (cli_is(a, "--embedding-type")) c->q.w_types.embed_type = t;
            else c->q.w_types.output_type = t;
            if (c->q.w_method == ROTQ_WQ_NONE) c->q.w_method = ROTQ_WQ_RTN; /* a type plan, as the library's setters */
        }
        else if (cli_flag(a, "--act-order")) c->q.gptq.act_order = true;
        else if (cli_flag(a, "--weighted-scales")) { c->q.gptq.weighted_scales = true; c->weighted_set = true; }
        else if (cli_flag(a, "--no-weighted-scales")) { c->q.gptq.weighted_scales = false; c->weighted_set = true; }
        else if (cli_flag(a, "--static-groups")) { c->q.gptq.static_groups = true; c->static_groups_set = true; }
        else if (cli_flag(a, "--no-static-groups")) { c->q.gptq.static_groups = false; c->static_groups_set = true; }
        else if (cli_is(a, "--percdamp")) {
            if (parse_f(cmd, "--percdamp", cli_value(argc, argv, &i), 0, 1e3, &f)) return -1;
            c->q.gptq.percdamp = f;
        } else if (cli_is(a, "--gptq-block")) {
            if (cli_int(cmd, "--gptq-block", cli_value(argc, argv, &i), 1, 1 << 20, &n)) return -1;
            c->q.gptq.block = n;
        } else if (cli_is(a, "--a-bits")) {
            if (cli_int(cmd, "--a-bits", cli_value(argc, argv, &i), 2, 16, &n)) return -1;
            c->q.act.bits = (int32_t)n;
        } else if (cli_flag(a, "--a-asym")) c->q.act.asym = true;
        else if (cli_flag(a, "--a-sym")) c->q.act.asym = false;
        else if (cli_is(a, "--a-clip")) {
            if (parse_f(cmd, "--a-clip", cli_value(argc, argv, &i), 1e-6, 1, &f)) return -1;
            c->q.act.clip = (float)f;
        } else if (cli_is(a, "--a-range")) {
            if (parse_range(cmd, a, cli_value(argc, argv, &i), &c->q.act.range)) return -1;
        } else if (cli_is(a, "--a-group")) {
            if (cli_int(cmd, "--a-group", cli_value(argc, argv, &i), -1, 1 << 24, &n)) return -1;
            c->q.act.group = n;
        } else if (cli_flag(a, "--a-lm-head")) c->q.act_lm_head = true;
        else if (cli_is(a, "--kv-bits") || cli_is(a, "--k-bits") || cli_is(a, "--v-bits")) {
            if (cli_int(cmd, a, cli_value(argc, argv, &i), 2, 16, &n)) return -1;
            if (a[2] != 'v' || a[3] == 'v') c->q.k.bits = (int32_t)n;
            if (a[2] != 'k' || a[3] == 'v') c->q.v.bits = (int32_t)n;
        } else if (cli_flag(a, "--kv-asym")) c->q.k.asym = c->q.v.asym = true;
        else if (cli_flag(a, "--kv-sym")) c->q.k.asym = c->q.v.asym = false;
        else if (cli_is(a, "--kv-clip")) {
            if (parse_f(cmd, "--kv-clip", cli_value(argc, argv, &i), 1e-6, 1, &f)) return -1;
            c->q.k.clip = c->q.v.clip = (float)f;
        } else if (cli_is(a, "--kv-range")) {
            if (parse_range(cmd, a, cli_value(argc, argv, &i), &c->q.k.range)) return -1;
            c->q.v.range = c->q.k.range;
        } else if (cli_is(a, "--kv-group")) {
            if (cli_int(cmd, "--kv-group", cli_value(argc, argv, &i), -1, 1 << 24, &n)) return -1;
            c->q.k.group = c->q.v.group = n;
        } else if (cli_is(a, "--calib")) {
            if (!(c->calib = cli_value(argc, argv, &i))) return -cli_usage(cmd, "--calib needs a file");
        } else if (cli_is(a, "--nsamples")) {
            if (cli_int(cmd, "--nsamples", cli_value(argc, argv, &i), 1, 1 << 20, &c->q.nsamples)) return -1;
        } else if (cli_is(a, "--calib-ctx")) {
            if (cli_int(cmd, "--calib-ctx", cli_value(argc, argv, &i), 2, 1 << 20, &c->q.calib_ctx)) return -1;
        } else if (cli_is(a, "--calib-cache-mb")) {
            if (cli_int(cmd, "--calib-cache-mb", cli_value(argc, argv, &i), 0, 1 << 30, &c->q.calib_cache_mb)) return -1;
        } else if (cli_is(a, "--threads")) {
            int t;
            if (nn_cli_threads(cmd, cli_value(argc, argv, &i), &t)) return -1;
            c->q.threads = t;
    } else {
        return 0;
    }
    *ip = i;
    return 1;
}

int quant_cli_parse(const char *cmd, int argc, char **argv, quant_cli *c) {
    memset(c, 0, sizeof *c);
    c->q = rotq_quant_defaults();
    c->ro = rotq_rotate_options_default();
    c->ctx = 2048;
    c->out_dtype = -1;
    c->pack = false;
    c->baseline = "original";
    /* the preset first, so that every other option overrides it wherever it stands */
    for (int i = 1; i < argc; i++)
        if (cli_is(argv[i], "--preset")) {
            const char *v = cli_value(argc, argv, &i);
            if (!v) return cli_usage(cmd, "--preset needs a name");
            rotq_status s = rotq_quant_preset(&c->q, v);
            if (s != ROTQ_OK) return cli_lib_error(cmd, s);
            c->preset = v;
        }
    bool layerwise = false;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = NULL;
        int used;
        if (cli_is(a, "--preset")) { cli_value(argc, argv, &i); }
        else if (cli_flag(a, "--rotate")) c->rotate = true;
        else if ((used = cli_rotate_option(cmd, argc, argv, &i, &c->ro)) != 0) {
            if (used < 0) return 1;
            if (cli_is(a, "--seed")) c->q.seed = c->ro.seed; /* calibration windows too */
            else if (strncmp(a, "--layerwise", 11) == 0) layerwise = true;
            else c->rotate = true;                         /* any --rN implies --rotate */
        } else if ((used = quant_option(cmd, argc, argv, &i, c)) != 0) {
            if (used < 0) return 1;
        } else if (cli_is(a, "--text")) {
            if (!(c->text = cli_value(argc, argv, &i))) return cli_usage(cmd, "--text needs a file");
        } else if (cli_is(a, "--ctx")) {
            if (cli_int(cmd, "--ctx", cli_value(argc, argv, &i), 2, 1 << 20, &c->ctx)) return 1;
            c->ctx_given = true;
        } else if (cli_is(a, "--bos")) {
            if (!(c->bos_arg = cli_value(argc, argv, &i)) ||
                (strcmp(c->bos_arg, "none") && strcmp(c->bos_arg, "first") && strcmp(c->bos_arg, "every")))
                return cli_usage(cmd, "--bos needs none, first or every");
        } else if (cli_is(a, "--max-windows")) {
            if (cli_int(cmd, "--max-windows", cli_value(argc, argv, &i), 1, INT64_MAX, &c->max_windows)) return 1;
        } else if (cli_is(a, "--text-format")) {
            if (!(v = cli_value(argc, argv, &i))) return cli_usage(cmd, "--text-format needs auto, wikitext or plain");
            if (strcmp(v, "auto") == 0) c->text_format = 0;
            else if (strcmp(v, "wikitext") == 0) c->text_format = 1;
            else if (strcmp(v, "plain") == 0) c->text_format = 2;
            else return cli_usage(cmd, "--text-format %s: expected auto, wikitext or plain", v);
        } else if (cli_is(a, "--baseline")) {
            if (!(v = cli_value(argc, argv, &i)) || (strcmp(v, "original") && strcmp(v, "rotated") && strcmp(v, "none")))
                return cli_usage(cmd, "--baseline needs original, rotated or none");
            c->baseline = v;
        } else if (cli_flag(a, "--no-baseline")) c->baseline = "none";
        else if (cli_is(a, "--compare-rotations") && strcmp(cmd, "eval") == 0) {
            if (!(c->compare = cli_value(argc, argv, &i))) return cli_usage(cmd, "--compare-rotations needs a list (none,full,block)");
        } else if (cli_is(a, "--baseline-cache")) {
            if (!(c->baseline_cache = cli_value(argc, argv, &i))) return cli_usage(cmd, "--baseline-cache needs a folder or off");
        } else if (cli_is(a, "--products")) {
            if (!(v = cli_value(argc, argv, &i)) || (strcmp(v, "int") && strcmp(v, "float")))
                return cli_usage(cmd, "--products needs int or float");
            c->float_products = strcmp(v, "float") == 0;
        }
        else if (cli_flag(a, "--json")) c->json = true;
        else if (cli_flag(a, "--quiet")) c->quiet = true;
        else if (cli_flag(a, "--force") && strcmp(cmd, "quantize") == 0) c->force = true;
        else if (cli_is(a, "--arch-file")) {
            if (!(c->arch_file = cli_value(argc, argv, &i))) return cli_usage(cmd, "--arch-file needs a file");
        } else if (cli_is(a, "--tokenizer")) {
            if (!(c->tokenizer = cli_value(argc, argv, &i))) return cli_usage(cmd, "--tokenizer needs a file");
        } else if (cli_is(a, "--format") && strcmp(cmd, "quantize") == 0 && (v = cli_value(argc, argv, &i)) &&
                   strncmp(v, "compressed-tensors:", 19) == 0) {
            /* integer weights (and dynamic per-token activations) as vLLM and transformers load them */
            static const char *const schemes[] = {"w4a16", "w8a16", "w4a8", "w8a8", "w4a4"};
            c->ct_scheme = NULL;
            for (size_t k = 0; k < sizeof schemes / sizeof *schemes; k++)
                if (strcmp(v + 19, schemes[k]) == 0) c->ct_scheme = schemes[k];
            if (!c->ct_scheme) return cli_usage(cmd, "--format %s: compressed-tensors schemes are w4a16, w8a16, w4a8, w8a8, w4a4", v);
            c->q.w_bits = c->ct_scheme[1] - '0';
            if (c->q.w_method == ROTQ_WQ_NONE) c->q.w_method = ROTQ_WQ_RTN;
            int ab = atoi(c->ct_scheme + 3);
            c->q.act = ab < 16 ? (rotq_act_format){.bits = ab, .clip = 1.0f, .group = -1, .range = ROTQ_SYM_HALF}
                               : (rotq_act_format){.bits = 16, .clip = 1.0f, .group = -1, .range = ROTQ_SYM_SIGNED};
            c->out_format = 1;
        } else if (cli_is(a, "--format") && strcmp(cmd, "quantize") == 0) {
            if (!v || strncmp(v, "gguf:", 5) != 0)
                return cli_usage(cmd, "--format needs gguf:MIX, a GGUF mixture or type (gguf:Q4_K_M, gguf:Q4_0, ...), or "
                                 "compressed-tensors:SCHEME");
            if (rotq_quant_set_mixture(&c->q, v + 5) != ROTQ_OK) return mixture_usage(cmd, "--format", v);
            c->pack = true;
            c->out_format = 2;
        } else if (cli_is(a, "--to")) {
            if (!(v = cli_value(argc, argv, &i))) return cli_usage(cmd, "--to needs hf or gguf");
            if (strcmp(v, "hf") == 0) c->out_format = 1;
            else if (strcmp(v, "gguf") == 0) c->out_format = 2;
            else return cli_usage(cmd, "--to %s: expected hf or gguf", v);
        } else if (cli_is(a, "--dtype")) {
            if (!(v = cli_value(argc, argv, &i))) return cli_usage(cmd, "--dtype needs f32, f16 or bf16");
            rotq_dtype dt = rotq_dtype_from_name(v);
            if (dt != ROTQ_F32 && dt != ROTQ_F16 && dt != ROTQ_BF16) return cli_usage(cmd, "--dtype %s: expected f32, f16 or bf16", v);
            c->out_dtype = dt;
        } else if (cli_is_option(a)) {
            return cli_unknown(cmd, a);
        } else if (c->n_positional < 2) {
            c->positional[c->n_positional++] = a;
        } else {
            return cli_usage(cmd, "unexpected argument %s", a);
        }
    }
    /* layerwise rotations alone: no fused rotations, no norm fusion, no R3/R4 (with --rotate or any
     * --rN they come on top of QuaRot's) */
    if (layerwise && !c->rotate) {
        c->ro.r1 = c->ro.r2 = ROTQ_R_NONE;
        c->ro.r3 = c->ro.r4 = false;
        c->ro.fuse_norms = false;
    }
    if (layerwise) c->rotate = true;
    /* a type plan puts each tensor on its block type's own grid (over any preset or --w-bits) */
    if (rotq_quant_has_types(&c->q)) {
        if (c->out_format == 1 && c->pack) return cli_usage(cmd, "--format gguf:... writes a GGUF file, not --to hf");
        if (!c->clip_set) c->q.w_clip = true;
        if (!c->weighted_set) c->q.gptq.weighted_scales = true;
    }
    if (c->pack) c->ro.r3 = c->ro.r4 = false; /* stock llama.cpp runs fused rotations only */
    if (c->ct_scheme) {
        /* vLLM and transformers run fused rotations only; weight-only schemes take groups of 128 by default */
        c->ro.r3 = c->ro.r4 = false;
        if (c->out_format == 2) return cli_usage(cmd, "--format %s writes a Hugging Face folder, not --to gguf", c->ct_scheme);
        if (!c->group_set && c->ct_scheme[3] == '1') c->q.w_group = 128;
        if (c->q.w_asym) return cli_usage(cmd, "compressed-tensors export writes symmetric weights (drop --w-asym)");
        if ((c->q.k.bits > 0 && c->q.k.bits < 16) || (c->q.v.bits > 0 && c->q.v.bits < 16))
            return cli_usage(cmd, "compressed-tensors export carries no KV-cache quantization (vLLM sets its own)");
    }
    if (c->q.w_types.pure && !c->q.w_types.mixture[0]) return cli_usage(cmd, "--pure needs a mixture (--format gguf:MIX or --w-grid MIX)");
    if (c->q.gptq.act_order && c->q.w_group > 0 && !c->static_groups_set) c->q.gptq.static_groups = true;
    if (rotq_wq_calibrated(c->q.w_method) && !rotq_quant_has_weights(&c->q))
        return cli_usage(cmd, "--w-quant %s needs --w-bits (or a --preset, or a GGUF mixture)", rotq_wq_method_name(c->q.w_method));
    if (rotq_wq_calibrated(c->q.w_method) && !c->calib)
        return cli_usage(cmd, "--w-quant %s needs calibration text: --calib FILE", rotq_wq_method_name(c->q.w_method));
    if (rotq_quant_calibrated(&c->q) && rotq_quant_has_weights(&c->q) && !c->calib)
        return cli_usage(cmd, "--w-scale hessian needs calibration text: --calib FILE");
    rotq_status s = rotq_quant_options_check(&c->q);
    if (s != ROTQ_OK) return cli_lib_error(cmd, s);
    return 0;
}

static const char *rot_name(rotq_rotation_choice k, const char *file) {
    switch (k) {
    case ROTQ_R_NONE: return "none";
    case ROTQ_R_HADAMARD: return "hadamard";
    case ROTQ_R_RANDOM_HADAMARD: return "random-hadamard";
    case ROTQ_R_ORTHOGONAL: return "orthogonal";
    case ROTQ_R_FILE: return file ? file : "file";
    }
    return "?";
}

void quant_cli_rotation_desc(const quant_cli *c, char *out, size_t size) {
    if (!c->rotate) { snprintf(out, size, "none"); return; }
    char b1[48] = "", b4[48] = "";
    if (c->ro.r1_block > 0) snprintf(b1, sizeof b1, " (blocks of %lld)", (long long)c->ro.r1_block);
    if (c->ro.r4_block > 0 && c->ro.r4) snprintf(b4, sizeof b4, " (blocks of %lld)", (long long)c->ro.r4_block);
    int n = snprintf(out, size, "R1 %s%s, R2 %s, R3 %s, R4 %s%s, seed %llu", rot_name(c->ro.r1, c->ro.r1_file), b1,
                     rot_name(c->ro.r2, c->ro.r2_file), c->ro.r3 ? "on" : "off", c->ro.r4 ? "on" : "off", b4,
                     (unsigned long long)c->ro.seed);
    for (int s = 0, first = 1; s < ROTQ_LW_SITES && n > 0 && (size_t)n < size; s++)
        if (c->ro.layerwise >> s & 1) {
            n += snprintf(out + n, size - (size_t)n, "%s%s", first ? "; layerwise " : ",", rotq_lw_site_name((rotq_lw_site)s));
            first = 0;
        }
}

int quant_cli_tokenize_file(const char *cmd, const rotq_tokenizer *tok, const char *path, int format, int32_t **ids,
                            int64_t *n, uint64_t *bytes, bool *wikitext) {
    uint64_t len;
    char *text;
    if (cli_read_text(cmd, path, &format, &text, &len)) return 1;
    rotq_status s = rotq_tokenizer_encode(tok, text, len, false, ids, n);
    free(text);
    if (s != ROTQ_OK) return cli_lib_error(cmd, s);
    *bytes = len;
    *wikitext = format == 1;
    return 0;
}

int quant_cli_quantize(const char *cmd, rotq_model *m, const quant_cli *c, const rotq_tokenizer *tok,
                       rotq_quant_report *rep, int64_t *calib_tokens_in_text, double *seconds) {
    double t0 = cli_now_s();
    int32_t *calib = NULL;
    int64_t n_calib = 0;
    *calib_tokens_in_text = 0;
    rotq_quant_options q = c->q;
    q.verbose = !c->quiet;
    if (rotq_quant_calibrated(&q) && rotq_quant_has_weights(&q)) {
        uint64_t bytes;
        bool wt;
        if (quant_cli_tokenize_file(cmd, tok, c->calib, 0, &calib, &n_calib, &bytes, &wt)) return 1;
        *calib_tokens_in_text = n_calib;
    }
    rotq_status s = rotq_quantize_weights(m, &q, calib, n_calib, rep);
    free(calib);
    if (s != ROTQ_OK) return cli_lib_error(cmd, s);
    *seconds = cli_now_s() - t0;
    return 0;
}

