#include "core/error.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

static _Thread_local char last_error[2048];

const char *rotq_last_error(void) { return last_error; }
void rotq_clear_error(void) { last_error[0] = 0; }

rotq_status rotq_fail(rotq_status s, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(last_error, sizeof last_error, fmt, ap);
    va_end(ap);
    return s;
}

rotq_status rotq_fail_context(rotq_status s, const char *fmt, ...) {
    char prefix[1024], old[sizeof last_error];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(prefix, sizeof prefix, fmt, ap);
    va_end(ap);
    memcpy(old, last_error, sizeof old);
    snprintf(last_error, sizeof last_error, "%s: %s", prefix, old);
    return s;
}

/* Set once by the program before it calls anything else (the only global the library keeps). */
static rotq_log_fn log_fn;
static void *log_ctx;

void rotq_log_set(rotq_log_fn fn, void *ctx) {
    log_fn = fn;
    log_ctx = ctx;
}

void rotq_log(rotq_log_level level, const char *fmt, ...) {
    if (!log_fn) return;
    char line[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    size_t n = strlen(line);
    if (n && line[n - 1] == '\n') line[n - 1] = '\0';
    log_fn(log_ctx, level, line);
}

const char *rotq_log_level_name(rotq_log_level level) {
    switch (level) {
    case ROTQ_LOG_ERROR: return "error";
    case ROTQ_LOG_WARN: return "warning";
    case ROTQ_LOG_INFO: return "info";
    }
    return "?";
}

const char *rotq_status_name(rotq_status s) {
    switch (s) {
    case ROTQ_OK: return "ok";
    case ROTQ_ERR_IO: return "i/o error";
    case ROTQ_ERR_FORMAT: return "bad file format";
    case ROTQ_ERR_UNSUPPORTED: return "unsupported";
    case ROTQ_ERR_ARG: return "invalid argument";
    case ROTQ_ERR_NOMEM: return "out of memory";
    case ROTQ_ERR_NUMERIC: return "numeric error";
    case ROTQ_ERR_NOT_FOUND: return "not found";
    case ROTQ_ERR_CANCELLED: return "cancelled";
    }
    return "unknown status";
}
