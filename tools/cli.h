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
} rotq_command;

int cmd_info(int argc, char **argv);
int cmd_convert(int argc, char **argv);
int cmd_hadamard(int argc, char **argv);
int cmd_tokenize(int argc, char **argv);
int cmd_rotate(int argc, char **argv);
int cmd_verify(int argc, char **argv);
int cmd_ppl(int argc, char **argv);
int cmd_generate(int argc, char **argv);
int cmd_eval(int argc, char **argv), cmd_quantize(int argc, char **argv);

/* A seeded stream of well-mixed 64-bit words (splitmix64), for test inputs a command makes up. */
uint64_t cli_splitmix64(uint64_t *state);
/* Monotonic seconds, for the timings reports print. */
double cli_now_s(void);
/* --allow-unused, accepted by every command that loads a model (main takes it out of argv). */
extern bool cli_allow_unused;
/* Prints "rotq <cmd>: error: ..." on stderr and returns the exit code 1. */
int cli_error(const char *cmd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
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
/* Before any heavy work: out is not the input, and its folder exists and is writable. 0, or 1
 * with the error printed. */
int cli_check_output(const char *cmd, const char *in, const char *out);
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
