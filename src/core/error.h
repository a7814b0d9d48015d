/* Error reporting: set the per-thread message and return the status in one expression. */
#ifndef ROTQ_CORE_ERROR_H
#define ROTQ_CORE_ERROR_H
#include "rotq.h"

/* Records a printf-style message for rotq_last_error() and returns `s`. */
rotq_status rotq_fail(rotq_status s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Prefixes the current message with more context ("file.gguf: " + old message). */
rotq_status rotq_fail_context(rotq_status s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void rotq_clear_error(void);

#define ROTQ_TRY(expr) do { rotq_status rotq_s_ = (expr); if (rotq_s_ != ROTQ_OK) return rotq_s_; } while (0)
#endif
