/*
 * error.h - internal error reporting.
 *
 * Library code never prints and never exits: a failing function records a
 * detailed, thread-local message with air_err() and returns its status code:
 *
 *     if (off + len > size)
 *         return air_err(AIR_ERR_FORMAT, "%s: tensor '%s' ends at byte %zu, past "
 *                        "the end of the file (%zu bytes); the file is truncated",
 *                        path, name, off + len, size);
 *
 * Messages say what was wrong, where (file, tensor, offset, line) and what to do.
 */
#ifndef AIR_UTIL_ERROR_H
#define AIR_UTIL_ERROR_H

#include "airllm.h"

#if defined(__GNUC__)
#define AIR_PRINTF(a, b) __attribute__((format(printf, a, b)))
#else
#define AIR_PRINTF(a, b)
#endif

/* Records the message for `status` and returns `status`. */
air_status air_err(air_status status, const char *fmt, ...) AIR_PRINTF(2, 3);

/* Prefixes the current message with more context ("loading layer 3: ...")
 * and returns `status`. */
air_status air_err_context(air_status status, const char *fmt, ...) AIR_PRINTF(2, 3);

/* Clears the thread's last error. */
void air_err_clear(void);

#endif
