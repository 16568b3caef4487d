/*
 * airllm.h - public API of airllm.c
 *
 * airllm.c runs large language models whose weights do not fit in memory:
 * the model is split once into one file per transformer layer (the "layer
 * store"), and every forward pass streams the layers through memory, reading
 * layer i+1 while layer i computes.
 *
 * Basic usage:
 *
 *     air_model_params mp = air_model_default_params();
 *     air_model *m = NULL;
 *     if (air_model_open("path/to/hf-dir", &mp, &m) != AIR_OK) {
 *         fprintf(stderr, "%s\n", air_last_error());
 *         return 1;
 *     }
 *     ...
 *     air_model_close(m);
 *
 * Thread safety: functions that take an air_model may be called from several
 * threads; generation calls on one model are serialized internally. The last
 * error message is thread-local.
 *
 * Ownership: every pointer returned by the library says in its comment who
 * frees it. Closing or freeing NULL is a no-op. Functions return an air_status
 * (0 = AIR_OK on success).
 */
#ifndef AIRLLM_H
#define AIRLLM_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ------------------------------------------------------------------------- */
/* Status codes: one table, which also generates air_strerror().            */
/* ------------------------------------------------------------------------- */
#define AIR_STATUS_TABLE(X)                                                    \
    X(AIR_OK, 0, "success")                                                    \
    X(AIR_ERR_INVALID_ARG, 1, "invalid argument")                              \
    X(AIR_ERR_IO, 2, "input/output error")                                     \
    X(AIR_ERR_FORMAT, 3, "malformed or corrupt input")                         \
    X(AIR_ERR_UNSUPPORTED, 4, "unsupported model or feature")                  \
    X(AIR_ERR_NOMEM, 5, "out of memory")                                       \
    X(AIR_ERR_NOT_FOUND, 6, "not found")                                       \
    X(AIR_ERR_NETWORK, 7, "network error")                                     \
    X(AIR_ERR_AUTH, 8, "access denied (authentication required)")              \
    X(AIR_ERR_ABORTED, 9, "aborted by the caller")                             \
    X(AIR_ERR_LIMIT, 10, "limit exceeded")                                     \
    X(AIR_ERR_INTERNAL, 11, "internal error")

typedef enum {
#define AIR_X_ENUM(name, value, text) name = value,
    AIR_STATUS_TABLE(AIR_X_ENUM)
#undef AIR_X_ENUM
} air_status;

/* Static description of a status code. Never NULL. */
const char *air_strerror(air_status status);

/* Detailed message of the last error on this thread (what was wrong, where,
 * what to do). Owned by the library, valid until the next failing call on
 * this thread. Empty string when no error happened. */
const char *air_last_error(void);

#ifdef __cplusplus
}
#endif
#endif /* AIRLLM_H */
