/* rotq hadamard N: how rotq builds an exact Hadamard matrix of order N, checked; optionally saved. */
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

static const char *help =
    "usage: rotq hadamard N [--write FILE [--force]] [--seed S] [--dtype f64|f32] [--json]\n"
    "       rotq hadamard --list MAX\n"
    "\n"
    "Prints how an exact Hadamard matrix of order N is constructed (Sylvester, Paley I/II over GF(p^k),\n"
    "twin prime powers, Goethals–Seidel from searched sequences, Kronecker products) and the split\n"
    "N = K·2^m the fast transform uses, then checks it: H_K·H_Kᵀ = K·I exactly, and the rotation\n"
    "R = D·(H_K ⊗ H_2^m)/√N orthogonal in double. Exits 1 when no exact Hadamard of order N is known,\n"
    "saying what rotq uses instead.\n"
    "  --write FILE   save R as safetensors (tensor \"rotation\", [N, N]); random signs D with --seed.\n"
    "                 N is at most K·2^m with K <= 4096 (the dense matrix needs 8·N² bytes)\n"
    "  --force        replace an existing FILE\n"
    "  --seed S       seed of the random signs (default: no signs, D = I)\n"
    "  --dtype T      f64 (default) or f32 for --write\n"
    "  --json         print a JSON object on stdout\n"
    "  --list MAX     list the multiples of 4 up to MAX without a known construction\n";

static bool parse_i64(const char *s, int64_t *out) {
    char *end;
    long long v = strtoll(s, &end, 10);
    if (!*s || *end || v < 0) return false;
    *out = v;
    return true;
}

static int list_unknown(int64_t max, bool as_json) {
    int64_t cap = max / 4 + 1;
    int64_t *orders = malloc(sizeof(int64_t) * (size_t)cap);
    if (!orders) return cli_error("hadamard", "out of memory");
    int64_t c = rotq_hadamard_unknown_orders(max, orders, cap);
    if (as_json) {
        json_t *arr = json_array();
        for (int64_t i = 0; i < c; i++) json_array_append_new(arr, json_integer(orders[i]));
        json_t *j = json_pack("{s:I, s:o}", "max", (json_int_t)max, "unknown", arr);
        char *t = json_dumps(j, 0);
        puts(t);
        free(t);
        json_decref(j);
    } else {
        printf("multiples of 4 up to %lld without a known construction: %lld\n", (long long)max, (long long)c);
        for (int64_t i = 0; i < c; i++) printf("%lld%s", (long long)orders[i], i + 1 < c ? " " : "\n");
    }
    free(orders);
    return 0;
}

/* Orthogonality of the fast transform: dense check when small, else random rows through
 * forward, norm and inverse. Returns the worst deviation seen. */
static double check_rotation(const rotq_rotation *R, const char **how) {
    int64_t n = rotq_rotation_size(R);
    if (n <= 2048) {
        double *D = malloc(sizeof(double) * (size_t)(n * n));
        if (!D || rotq_rotation_to_dense_f64(R, D) != ROTQ_OK) { free(D); return INFINITY; }
        double e = rotq_orthogonality_error(D, n);
        free(D);
        *how = "max |RᵀR - I|";
        return e;
    }
    int64_t rows = 4;
    double *x = malloc(sizeof(double) * (size_t)(rows * n)), *y = malloc(sizeof(double) * (size_t)(rows * n));
    if (!x || !y) { free(x); free(y); return INFINITY; }
    /* standard normals by Box–Muller over a splitmix64 stream */
    uint64_t state = 1;
    for (int64_t i = 0; i < rows * n; i++) {
        uint64_t a = cli_splitmix64(&state) >> 11, b = cli_splitmix64(&state) >> 11;
        double u = ((double)a + 1.0) / 9007199254740993.0, v = (double)b / 9007199254740992.0;
        y[i] = x[i] = sqrt(-2.0 * log(u)) * cos(6.283185307179586 * v);
    }
    double worst = 0;
    rotq_rotation_apply_rows_f64(R, y, rows, false);
    for (int64_t r = 0; r < rows; r++) {
        double a = 0, b = 0;
        for (int64_t i = 0; i < n; i++) { a += x[r * n + i] * x[r * n + i]; b += y[r * n + i] * y[r * n + i]; }
        worst = fmax(worst, fabs(sqrt(b / a) - 1));
    }
    rotq_rotation_apply_rows_f64(R, y, rows, true);
    for (int64_t i = 0; i < rows * n; i++) worst = fmax(worst, fabs(y[i] - x[i]));
    free(x);
    free(y);
    *how = "max norm change / inverse error on random rows";
    return worst;
}

int cmd_hadamard(int argc, char **argv) {
    if (cli_wants_help(argc, argv)) { fputs(help, stdout); return 0; }
    const char *write = NULL, *v;
    int64_t n = -1, list_max = -1, seed = 0;
    bool have_seed = false, as_json = false, force = false;
    rotq_dtype dtype = ROTQ_F64;
    for (int i = 1; i < argc; i++) {
        if (cli_is(argv[i], "--write")) {
            if (!(write = cli_value(argc, argv, &i))) return cli_usage("hadamard", "--write needs a file");
        } else if (cli_is(argv[i], "--seed")) {
            if (!(v = cli_value(argc, argv, &i)) || !parse_i64(v, &seed))
                return cli_usage("hadamard", "--seed needs a non-negative integer");
            have_seed = true;
        } else if (cli_is(argv[i], "--dtype")) {
            if (!(v = cli_value(argc, argv, &i))) return cli_usage("hadamard", "--dtype needs f64 or f32");
            dtype = rotq_dtype_from_name(v);
            if (dtype != ROTQ_F64 && dtype != ROTQ_F32) return cli_usage("hadamard", "--dtype %s: expected f64 or f32", v);
        } else if (cli_is(argv[i], "--list")) {
            if (!(v = cli_value(argc, argv, &i)) || !parse_i64(v, &list_max) || list_max > 1000000)
                return cli_usage("hadamard", "--list needs a maximum order (at most 1000000)");
        } else if (cli_flag(argv[i], "--json")) {
            as_json = true;
        } else if (cli_flag(argv[i], "--force")) {
            force = true;
        } else if (cli_is_option(argv[i])) {
            return cli_unknown("hadamard", argv[i]);
        } else if (n < 0) {
            if (!parse_i64(argv[i], &n) || n < 1) return cli_usage("hadamard", "N must be a positive integer, not %s", argv[i]);
        } else {
            return cli_usage("hadamard", "unexpected argument %s", argv[i]);
        }
    }
    if (list_max >= 0) return list_unknown(list_max, as_json);
    if (n < 1) { fputs(help, stderr); return 2; }
    if (write && cli_check_output("hadamard", NULL, write, ROTQ_OUTPUT_FILE, force)) return 1;

    int64_t K;
    int32_t m;
    if (!rotq_hadamard_split(n, &K, &m)) {
        int64_t odd = n;
        int e = 0;
        while (odd % 2 == 0) { odd /= 2; e++; }
        const char *why = n % 4 && n > 2 ? "Hadamard matrices only exist for orders 1, 2 and multiples of 4"
                                         : "no construction in rotq reaches it";
        const char *instead = "instead rotq uses a seeded random orthogonal matrix (Haar) for rotations fused into "
                              "weights, and applies it as a dense online rotation (O(N^2) per row) for R3/R4";
        if (as_json) {
            json_t *j = json_pack("{s:I, s:b, s:s, s:s}", "n", (json_int_t)n, "known", 0, "reason", why, "fallback", instead);
            char *t = json_dumps(j, 0);
            puts(t);
            free(t);
            json_decref(j);
        }
        return cli_error("hadamard", "no exact Hadamard matrix of order %lld = %lld·2^%d is known (%s); %s", (long long)n,
                         (long long)odd, e, why, instead);
    }

    rotq_rotation *R = NULL;
    rotq_status s = rotq_rotation_hadamard(n, have_seed, (uint64_t)seed, &R);
    if (s != ROTQ_OK) return cli_lib_error("hadamard", s);
    char full[256], base[256] = "[1]";
    rotq_hadamard_describe(n, full, sizeof full);
    if (K > 1) rotq_hadamard_describe(K, base, sizeof base);
    /* the base H_K, built as the rotation builds it, checked in exact integers */
    int64_t defect = 0;
    if (K > 1) {
        int8_t *H = NULL;
        if ((s = rotq_hadamard_build(K, &H)) != ROTQ_OK) { rotq_rotation_free(R); return cli_lib_error("hadamard", s); }
        defect = rotq_hadamard_defect(H, K);
        free(H);
    }
    const char *how = "";
    double orth = check_rotation(R, &how);
    bool ok = defect == 0 && orth < 1e-10;
    if (ok && write) {
        s = rotq_rotation_save(R, write, dtype);
        if (s != ROTQ_OK) { rotq_rotation_free(R); return cli_lib_error("hadamard", s); }
    }
    /* the transform's view: base ⊗ Sylvester */
    char split[320];
    if (K == 1) snprintf(split, sizeof split, "Sylvester 2^%d", m);
    else if (m == 0) snprintf(split, sizeof split, "%s", base);
    else snprintf(split, sizeof split, "%s ⊗ Sylvester 2^%d", base, m);
    if (as_json) {
        json_t *j = json_pack("{s:I, s:b, s:s, s:s, s:I, s:i, s:s, s:b, s:f, s:s}", "n", (json_int_t)n, "known", 1,
                              "construction", full, "transform", split, "K", (json_int_t)K, "m", m, "base", base,
                              "base_exact", defect == 0, "orthogonality_error", orth, "check", how);
        if (have_seed) json_object_set_new(j, "seed", json_integer(seed));
        json_object_set_new(j, "written", write && ok ? json_string(write) : json_null());
        char *t = json_dumps(j, 0);
        puts(t);
        free(t);
        json_decref(j);
    } else {
        printf("order %lld: %s\n", (long long)n, full);
        if (strcmp(full, split) != 0) printf("fast transform: %s (K=%lld, m=%d)\n", split, (long long)K, m);
        else printf("fast transform: K=%lld, m=%d\n", (long long)K, m);
        if (K > 1) printf("check: H_%lld·H_%lldᵀ = %lld·I %s\n", (long long)K, (long long)K, (long long)K,
                          defect == 0 ? "exactly" : "FAILS");
        printf("check: %s = %.2e%s\n", how, orth, have_seed ? " (with random signs)" : "");
        if (ok && write) printf("wrote %s (%s, %s)\n", write, rotq_dtype_name(dtype), rotq_rotation_describe(R));
    }
    rotq_rotation_free(R);
    if (!ok) return cli_error("hadamard", "order %lld failed its check", (long long)n);
    return 0;
}
