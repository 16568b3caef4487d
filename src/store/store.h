/*
 * store.h - the layer store: a model split into one file per layer.
 *
 *   <store>/manifest.json       written last: format, hparams, files, checksums
 *   <store>/embed.bin           token embeddings (read row by row)
 *   <store>/layer_00000.bin ... one per decoder layer
 *   <store>/head.bin            final norm + lm_head (a copy of the
 *                               embeddings when they are tied)
 *   <store>/tokenizer.json, tokenizer_config.json   copied from the source
 *
 * The runtime streams "units" in a cycle: layers 0..n_layer-1, then the head
 * (unit n_layer). See docs/layer-store.md.
 */
#ifndef AIR_STORE_STORE_H
#define AIR_STORE_STORE_H

#include <stdint.h>

#include "airllm.h"
#include "kernels/pool.h"
#include "model/arch.h"
#include "source/source.h"
#include "store/layerfile.h"

#define AIR_STORE_VERSION 1

typedef enum { AIR_COMP_NONE = 0, AIR_COMP_8BIT = 1, AIR_COMP_4BIT = 2 } air_compression;

/* "none", "8bit", "4bit". */
const char *air_compression_name(air_compression c);
/* Parses "none"/""/NULL, "8bit", "4bit"; returns 0 on an unknown name. */
int air_compression_parse(const char *s, air_compression *c);

typedef void (*air_split_progress_fn)(void *user, const char *label, uint64_t done, uint64_t total,
                                      double rate_bytes_per_s);

typedef struct {
    air_compression compression;
    air_pool *pool; /* for conversion/quantization; may be NULL */
    air_split_progress_fn progress;
    void *progress_user;
    int (*should_abort)(void *user); /* polled before each tensor; may be NULL */
    void *abort_user;
} air_split_options;

/* Writes the layer store for `src` into `dir` unless a complete store for the
 * same source content and compression is already there (then returns at
 * once). An interrupted split resumes: unit files that were completely
 * written are kept. The manifest is written last. When should_abort returns
 * non-zero, returns AIR_ERR_ABORTED before the next tensor, leaving only
 * complete unit files. */
air_status air_store_split(air_source *src, const char *dir, const air_split_options *opt);

/* 1 if dir holds a complete store (a manifest that parses). */
int air_store_exists(const char *dir);

typedef struct air_store air_store;

air_status air_store_open(const char *dir, air_store **out);
void air_store_close(air_store *s);

const air_hparams *air_store_hparams(const air_store *s);
air_compression air_store_compression(const air_store *s);
const char *air_store_dir(const air_store *s);
/* Streamed units: n_layer + 1 (the head is the last). */
int air_store_n_units(const air_store *s);
const char *air_store_unit_path(const air_store *s, int unit);
uint64_t air_store_unit_bytes(const air_store *s, int unit);
/* Total bytes of all streamed units. */
uint64_t air_store_total_bytes(const air_store *s);

/* Reads the embedding rows of `n` token ids into out (n, n_embd) fp32.
 * An id outside the vocabulary is an error. */
air_status air_store_embed_rows(air_store *s, const int32_t *ids, int n, float *out);

/* Manifest <-> hparams (manifest.c). */
struct cJSON;
struct cJSON *air_hparams_to_json(const air_hparams *hp);
air_status air_hparams_from_json(const struct cJSON *j, const char *path, air_hparams *hp);

#endif
