/* The rotq command-line tool: one function per command, a thin layer over the library. */
#ifndef ROTQ_CLI_H
#define ROTQ_CLI_H
#include <stdbool.h>
#include <stdint.h>

#include "rotq.h"

typedef struct rotq_command {
    const char *name;
    int (*run)(int argc, char **argv); /* argv[0] is the command name */
    const char *summary;
    bool parallel;                     /* splits its work across the ranks of mpirun (rotq_dist_*) */
} rotq_command;

int cmd_info(int argc, char **argv);
int cmd_convert(int argc, char **argv);
int cmd_hadamard(int argc, char **argv);
int cmd_tokenize(int argc, char **argv);
int cmd_rotate(int argc, char **argv);
int cmd_verify(int argc, char **argv);
int cmd_ppl(int argc, char **argv);
int cmd_generate(int argc, char **argv);
int cmd_eval(int argc, char **argv), cmd_quantize(int argc, char **argv), cmd_learn(int argc, char **argv);

/* A seeded stream of well-mixed 64-bit words (splitmix64), for test inputs a command makes up. */
uint64_t cli_splitmix64(uint64_t *state);
/* Monotonic seconds, for the timings reports print. */
double cli_now_s(void);
/* --allow-unused, accepted by every command that loads a model (main takes it out of argv). */
extern bool cli_allow_unused;
/* Exit codes: 0 success, 1 an error (bad input, failed work), 2 a usage error (unknown option, bad
 * or missing value), 3 a check that ran and failed (verify: the models differ), 128+N a signal. */
/* Prints "rotq <cmd>: error: ..." on stderr and returns 1. */
int cli_error(const char *cmd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Prints a usage error and returns 1 like cli_error; main turns the command's exit code into 2. */
int cli_usage(const char *cmd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
extern bool cli_usage_error;
/* Parses an integer option value strictly (all digits, lo <= x <= hi): 0, or 1 after a usage error. */
int cli_int(const char *cmd, const char *opt, const char *v, int64_t lo, int64_t hi, int64_t *out);
/* The usage error for an option nobody recognised (naming flags given a value). */
int cli_unknown(const char *cmd, const char *arg);
/* True when arg is an option ("-x", "--name...", not "-" and not an argument after "--"). */
bool cli_is_option(const char *arg);
/* True when arg is the on/off flag `name` exactly ("--json=1" is not: flags take no value). */
bool cli_flag(const char *arg, const char *name);
/* main: the arguments after "--", which are positional whatever they look like. */
void cli_set_positional_only(const char *const *args, int n);
/* Prints a session's transform list (rotq_session_transforms), its first line after `label` and
 * the next ones indented under it. */
void cli_print_transforms(const char *label, const char *list);
/* Same, with the library's last error appended. */
int cli_lib_error(const char *cmd, rotq_status s);
/* The value of option argv[*i] ("--opt VALUE" or "--opt=VALUE"), advancing *i; NULL if missing. */
const char *cli_value(int argc, char **argv, int *i);
/* True when argv[i] is the option `name` (with or without "=value"). */
bool cli_is(const char *arg, const char *name);
bool cli_wants_help(int argc, char **argv);
/* Before any heavy work: rotq_output_check's policy for out (not the input, folder exists and is
 * writable, no link/device, existing output only with --force). 0, or 1 with the error printed. */
int cli_check_output(const char *cmd, const char *in, const char *out, rotq_output_kind kind, bool force);
/* A model output: a GGUF file (--to gguf, or a name ending in .gguf) or an HF folder. */
rotq_output_kind cli_model_output_kind(const char *out, rotq_format format);
/* Loads a model (registering --arch-file first); prints the error and returns 1 on failure. */
int cli_load(const char *cmd, const char *path, const char *arch_file, const char *tokenizer, rotq_model **m);
/* Parses one rotation option (--r1 --r2 --r3 --r4 --seed) at argv[*i] into ro: 1 when consumed,
 * 0 when argv[*i] is not one, -1 (error printed) when its value is bad. In cmd_rotate.c. */
int cli_rotate_option(const char *cmd, int argc, char **argv, int *i, rotq_rotate_options *ro);
int cmd_stats(int argc, char **argv);
/* Reads a text to score, NUL-terminated: *format 0 picks wikitext (1: rows joined as the papers do)
 * for files named wiki.*.raw, else plain bytes (2), and is set to the choice. 1 on error (printed). */
int cli_read_text(const char *cmd, const char *path, int *format, char **text, uint64_t *len);
#endif
