/*
 * fileio.h - small file helpers shared by the parsers and the store.
 */
#ifndef AIR_UTIL_FILEIO_H
#define AIR_UTIL_FILEIO_H

#include <stddef.h>
#include <stdint.h>

#include "airllm.h"

/* Reads a whole file into a NUL-terminated buffer (the NUL is not counted in
 * *len). Caller frees *data with free(). */
air_status air_read_file(const char *path, char **data, size_t *len);

/* Writes `len` bytes to `path` atomically: a temp file in the same folder,
 * fsync, rename. A failure never leaves a partial `path`. */
air_status air_write_file_atomic(const char *path, const void *data, size_t len);

/* 1 if the path exists (file or folder). */
int air_path_exists(const char *path);

/* mkdir -p. */
air_status air_mkdirs(const char *path);

/* Joins a and b with one '/', into a new string the caller frees. */
char *air_path_join(const char *a, const char *b);

#endif
