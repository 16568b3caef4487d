/*
 * safetensors.h - reader for the safetensors format.
 *
 * A file is: u64 little-endian header length N, N bytes of JSON
 *   {"<name>": {"dtype": "BF16", "shape": [..], "data_offsets": [begin, end]}, ...,
 *    "__metadata__": {...}}
 * then the data section; offsets are relative to its start. Every offset and
 * size is checked against the file size when the file is opened.
 */
#ifndef AIR_SOURCE_SAFETENSORS_H
#define AIR_SOURCE_SAFETENSORS_H

#include <stdint.h>

#include "airllm.h"
#include "kernels/ops.h"

#define AIR_ST_MAX_DIMS 8

typedef struct {
    char *name;
    air_dtype dtype;
    char dtype_str[12]; /* as written in the file */
    int n_dims;
    int64_t shape[AIR_ST_MAX_DIMS];
    int64_t numel;
    uint64_t offset; /* absolute byte offset in the file */
    uint64_t nbytes;
} air_st_tensor;

typedef struct {
    char *path;
    int fd;
    uint64_t file_size;
    uint64_t data_start;
    int n_tensors;
    air_st_tensor *tensors;
} air_st_file;

/* Opens and validates a safetensors file. Tensors of a dtype other than F32,
 * F16, BF16 are kept in the table with dtype = AIR_DT_COUNT so that asking for
 * them gives a precise error. Free with air_st_close(). */
air_status air_st_open(const char *path, air_st_file **out);
void air_st_close(air_st_file *f);

/* Finds a tensor by name, NULL if absent. */
const air_st_tensor *air_st_find(const air_st_file *f, const char *name);

/* Reads the raw bytes of a tensor (t->nbytes) into dst. */
air_status air_st_read(const air_st_file *f, const air_st_tensor *t, void *dst);

#endif
