/*
 * store.h - the layer store: a model split into one file per layer.
 *
 *   <store>/manifest.json       written last: format, hparams, files, checksums;
 *                               sealed by its own checksum
 *   <store>/embed.bin           token embeddings (read row by row, each row
 *                               verified against its checksum)
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

#define AIR_STORE_VERSION 2

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
    int *built; /* if not NULL: set to 1 when this call wrote the store, 0 when it found
                   it complete (perhaps after waiting for another process) */
    int (*should_abort)(void *user); /* polled before each tensor; may be NULL */
    void *abort_user;
    /* part = 1: only units first_unit..last_unit (-1 the embeddings, n_layer
     * the head), recorded in their own manifest (air_store_manifest_name);
     * what one rank of a pipeline needs. 0: the whole store. */
    int part, first_unit, last_unit;
    uint64_t buffer_budget; /* bytes of unit buffers the split may hold (one unit filling while
                               the one before is written takes two); 0: half of the memory
                               available (cgroup limits included) */
} air_split_options;

/* The manifest file of the units first..last of a store of n_layer layers:
 * "manifest.json" for the whole store (-1..n_layer), else
 * "manifest-units-<first>-<last>.json". */
void air_store_manifest_name(int first, int last, int n_layer, char *buf, size_t size);

/* Bytes the unit file of `unit` will take for these hyper-parameters and
 * compression (weights in bf16 where the source format is not known yet):
 * what a pipeline plans its layer ranges with, before any split. */
uint64_t air_store_unit_estimate(const air_hparams *hp, air_compression c, int unit);

/* Writes the layer store for `src` into `dir` unless a complete store for the
 * same source content and compression is already there (then returns at
 * once). Unit files already there for the same content (the model id in
 * their header) are kept, so an interrupted split resumes and a change of
 * the tokenizer files alone only refreshes the copies and the manifest. The
 * manifest is written last. The split holds an exclusive lock on `dir`; a
 * second process splitting the same store reports that it waits (through
 * the progress callback, label "waiting ...", rate -1) and then uses the
 * finished store. When should_abort returns non-zero, returns
 * AIR_ERR_ABORTED before the next tensor, leaving only complete unit files. */
air_status air_store_split(air_source *src, const char *dir, const air_split_options *opt);

/* 1 if dir holds a manifest (complete or not, current or not). */
int air_store_exists(const char *dir);

/* Whether dir holds a complete store of the current format for a source
 * with this fingerprint: *current = 1 if so; 0 when it is missing, of an
 * older format version or of other source content (split it again). A
 * manifest that is corrupt is an error that says how to rebuild. */
air_status air_store_check(const char *dir, const char *fingerprint, int *current);
/* The same for the units first..last (a part, or the whole store when it is
 * complete and current). */
air_status air_store_check_part(const char *dir, const char *fingerprint, int first, int last,
                                int n_layer, int *current);

/* Bytes on disk of every file in a store folder: what `airllm list` and
 * `airllm pull` report. */
uint64_t air_store_disk_bytes(const char *dir);

typedef struct air_store air_store;

air_status air_store_open(const char *dir, air_store **out);
/* Opens the units first..last only (-1: the embeddings, n_layer: the head),
 * from the whole store's manifest when it is there, else from the part's. A
 * unit outside the range is absent: air_store_has_unit says 0, its bytes are
 * 0, and the embeddings of a store without unit -1 cannot be read. */
air_status air_store_open_part(const char *dir, int first, int last, air_store **out);
int air_store_has_unit(const air_store *s, int unit);
void air_store_close(air_store *s);

const air_hparams *air_store_hparams(const air_store *s);
air_compression air_store_compression(const air_store *s);
const char *air_store_dir(const air_store *s);
/* Streamed units: n_layer + 1 (the head is the last). */
int air_store_n_units(const air_store *s);
const char *air_store_unit_path(const air_store *s, int unit);
uint64_t air_store_unit_bytes(const air_store *s, int unit);
/* The first `bytes` of one unit (its whole file, or the dense part of a
 * mixture-of-experts layer) through air_lf_load_prefix, checked to be that
 * unit of this store. */
air_status air_store_load_unit(const air_store *s, int unit, void *buf, uint64_t cap,
                               uint64_t bytes, int flags, air_layer *out); /* AIR_LF_* flags */
/* Total bytes of all streamed units (present ones). */
uint64_t air_store_total_bytes(const air_store *s);

/* Reads the embedding rows of `n` token ids into out (n, n_embd) fp32, each
 * verified against its row checksum. An id outside the vocabulary is an
 * error. */
air_status air_store_embed_rows(air_store *s, const int32_t *ids, int n, float *out);

/* Manifest <-> hparams (manifest.c). */
struct cJSON;
struct cJSON *air_hparams_to_json(const air_hparams *hp);
air_status air_hparams_from_json(const struct cJSON *j, const char *path, air_hparams *hp);

/* The manifest's own checksum (manifest.c): "checksum" is its first member,
 * the XXH3-64 of the text with those 16 hex digits read as '0'.
 * air_manifest_new starts a manifest object with the placeholder;
 * air_manifest_print prints and seals it (free the text). */
struct cJSON *air_manifest_new(void);
char *air_manifest_print(const struct cJSON *m);
/* Parses and verifies a manifest text: format, version, checksum. On
 * AIR_ERR_FORMAT with *old_version set, the store is of another format
 * version (rebuild it); any other error is corruption. */
air_status air_manifest_parse(const char *text, size_t len, const char *path, struct cJSON **out,
                              int *old_version);

/* The model id of a store: XXH3-64 of the format version, the compression,
 * the source fingerprint's entries that shape the unit files (weights and
 * config, not the tokenizer files) and the hparams. Every unit file carries
 * it. */
uint64_t air_store_model_id(const char *fingerprint, air_compression c, const air_hparams *hp);

#endif
