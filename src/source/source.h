/*
 * source.h - a model source: hyper-parameters plus tensors by neutral name.
 *
 * Every input format (HF folder with safetensors, GGUF file) opens into an
 * air_source. The layer store writer asks it for each tensor of each layer by
 * the architecture-neutral names of model/arch.h and never sees the format.
 */
#ifndef AIR_SOURCE_SOURCE_H
#define AIR_SOURCE_SOURCE_H

#include <stddef.h>
#include <stdint.h>

#include "airllm.h"
#include "kernels/ops.h"
#include "model/arch.h"

typedef struct {
    air_dtype dtype;  /* dtype of the bytes read() returns */
    int n_dims;       /* 1 or 2 */
    int64_t shape[2]; /* (n_out, n_in) for matrices, (n) for vectors */
    uint64_t nbytes;
    char src_name[160]; /* the tensor's name in the source, for messages */
} air_src_tensor;

typedef struct air_source air_source;
struct air_source {
    air_hparams hp;
    char *tokenizer_json;   /* path, NULL if none */
    char *tokenizer_config; /* path, NULL if none */
    char *chat_template_dir; /* folder with chat template files (text/chat_files.h), NULL if none */
    char *fingerprint;      /* air_source_fingerprint of the source */
    char *name;             /* short human name of the model */
    /* layer = -1 for whole-model tensors. Returns AIR_ERR_NOT_FOUND if the
     * tensor does not exist (with a message naming the source tensor). */
    air_status (*info)(air_source *s, int layer, const char *neutral, air_src_tensor *out);
    air_status (*read)(air_source *s, int layer, const char *neutral, void *dst);
    /* Optional (NULL: use read): where the bytes read() would give lie in a
     * file: *fd (the source's, open until close) from byte *offset, so that
     * several threads can pread parts of them; *fd = -1 when this tensor has
     * no such place (it is converted on reading: read() it). Counts as read. */
    air_status (*locate)(air_source *s, int layer, const char *neutral, int *fd, uint64_t *offset);
    /* Called when the writer no longer needs anything from `layer` (lets a
     * source delete consumed shards: delete_original). */
    void (*done_with_layer)(air_source *s, int layer);
    /* Set by a source whose done_with_layer deletes what was read: the
     * writer then stores each unit before it reads the next. */
    int deletes_consumed;
    /* Threads read() may use (GGUF: dequantizing rows), set by the split
     * while it reads; NULL: the calling thread alone. */
    struct air_pool *pool;
    void (*close)(air_source *s);
    void *impl;
};

/* For source implementations: allocates a zeroed source with a zeroed impl
 * of impl_size bytes (AIR_ERR_NOMEM if out of memory), and frees the fields
 * every source owns (tokenizer paths, fingerprint, name, impl, the source). */
air_status air_source_alloc(size_t impl_size, air_source **out);
void air_source_free_common(air_source *s);

/* Opens a Hugging Face model folder (config.json + safetensors). */
air_status air_source_open_hfdir(const char *dir, int delete_original, air_source **out);

/* The fingerprint of everything a layer store depends on in a source: a
 * model folder (config, generation config, tokenizer and chat template
 * files, the weights unless with_weights is 0) or a .gguf file
 * (fingerprint.c). Never NULL. */
char *air_source_fingerprint(const char *path, int is_gguf, int with_weights);

/* Closes any source; NULL is a no-op. */
void air_source_close(air_source *s);

#endif
