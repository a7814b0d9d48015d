/* Error reporting: set the per-thread message and return the status in one expression; and the
 * log lines the library hands to the caller's callback. */
#ifndef ROTQ_CORE_ERROR_H
#define ROTQ_CORE_ERROR_H
#include "rotq.h"

/* Records a printf-style message for rotq_last_error() and returns `s`. */
rotq_status rotq_fail(rotq_status s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Prefixes the current message with more context ("file.gguf: " + old message). */
rotq_status rotq_fail_context(rotq_status s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void rotq_clear_error(void);
/* A line for the user (no trailing newline needed): passed to the callback set with rotq_log_set,
 * dropped when none is set — the library itself never prints. */
void rotq_log(rotq_log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#define ROTQ_TRY(expr) do { rotq_status rotq_s_ = (expr); if (rotq_s_ != ROTQ_OK) return rotq_s_; } while (0)
#endif
