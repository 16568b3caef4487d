/*
 * layerfile.h - one file of the layer store: a header, a tensor table and
 * 4 KiB-aligned tensor data, checksummed.
 *
 *   [0, 64)                 air_lf_header
 *   [64, 64 + 80*n)         air_lf_entry[n]
 *   ... zero padding to header_bytes (a multiple of 4096)
 *   [header_bytes, +data)   tensors, each at a 4096-aligned offset,
 *                           zero padding to a multiple of 4096
 *
 * All integers little-endian. header_xxh3 covers the whole header region
 * [0, header_bytes) (with header_xxh3 itself read as 0): the header fields,
 * the entries and the padding; data_xxh3 covers the data section; each entry
 * also has its own tensor checksum so a partial read (one tensor, e.g. one
 * expert, or the row checksums of the embeddings) can be verified alone.
 * Every file says what it is: its unit, the model's layer count and the
 * store's model id, all checked on load. Whole files are multiples of 4096
 * bytes so they can be read with O_DIRECT. See docs/layer-store.md.
 */
#ifndef AIR_STORE_LAYERFILE_H
#define AIR_STORE_LAYERFILE_H

#include <stddef.h>
#include <stdint.h>

#include "airllm.h"
#include "kernels/ops.h"
#include "util/xxh3.h"

#define AIR_LF_MAGIC "AIRLAYER"
#define AIR_LF_VERSION 2
#define AIR_LF_ALIGN 4096
#define AIR_LF_MAX_TENSORS 32 /* tensors bound in one air_layer (the dense part) */
#define AIR_LF_MAX_ENTRIES 16384 /* table entries of one file (MoE layers: 3 per expert) */
#define AIR_LF_NAME 32
/* Entry dtype of a table of XXH3-64 checksums, one u64 per row of the tensor
 * before it (embed.bin: "tok_embd.rows"). Not a kernel dtype. */
#define AIR_LF_DT_ROWSUM 64

typedef struct {
    char magic[8];
    uint32_t version;
    uint32_t n_tensors;
    uint64_t header_bytes;
    uint64_t data_bytes;
    uint64_t data_xxh3;
    uint64_t header_xxh3; /* of [0, header_bytes) with this field as 0 */
    int32_t unit;         /* layer index; -1 embeddings; n_layer head */
    uint32_t n_layer;     /* of the model the file belongs to */
    uint64_t model_id;    /* of the store the file belongs to (manifest "model_id") */
} air_lf_header;
_Static_assert(sizeof(air_lf_header) == 64, "layer file header is 64 bytes");

typedef struct {
    char name[AIR_LF_NAME]; /* neutral name, NUL-padded */
    uint32_t dtype;         /* air_dtype */
    uint32_t n_dims;
    int64_t shape[2];
    uint64_t offset; /* from the start of the data section */
    uint64_t nbytes;
    uint64_t xxh3; /* of this tensor's nbytes */
} air_lf_entry;
_Static_assert(sizeof(air_lf_entry) == 80, "layer file entry is 80 bytes");

/* A tensor ready for the kernels: points into a loaded layer buffer. */
typedef struct {
    const char *name;
    air_dtype dtype;
    int n_dims;
    int64_t shape[2];
    const void *data;
    uint64_t nbytes;
} air_tensor;

/* A loaded layer file: tensor views into `buf`. */
typedef struct {
    int unit;
    int n;
    air_tensor t[AIR_LF_MAX_TENSORS];
} air_layer;

/* What a file must be: checked against its header on every load. */
typedef struct {
    int32_t unit;
    uint32_t n_layer;
    uint64_t model_id;
    uint64_t header_xxh3; /* the exact header the manifest recorded; 0: any */
} air_lf_ident;

/* What a header check found. */
typedef struct {
    uint64_t file_bytes;
    uint64_t header_bytes;
    uint64_t header_xxh3;
    uint32_t n_tensors;
} air_lf_info;

/* Finds a tensor in a loaded layer; NULL if absent. */
const air_tensor *air_layer_get(const air_layer *l, const char *name);

/* --- writing ------------------------------------------------------------- */
typedef struct {
    air_lf_header h;
    air_lf_entry *e; /* grown as tensors are added */
    uint32_t e_cap;
    void *data; /* data section, grown as tensors are added */
    uint64_t cap;
    /* checksums made so far (air_lf_builder_sum_next) */
    uint32_t n_summed; /* entries with their checksum */
    uint64_t summed_to; /* data bytes fed to data_sum */
    int summed;         /* all made, data_xxh3 included */
    air_xxh3_state data_sum;
} air_lf_builder;

void air_lf_builder_init(air_lf_builder *b, const air_lf_ident *id);
/* Starts a new file in a builder already used, keeping its buffers. */
void air_lf_builder_reset(air_lf_builder *b, const air_lf_ident *id);
/* Makes room for data_bytes of data section at once (before the first
 * tensor is added), so that adding tensors never moves the data. */
air_status air_lf_builder_reserve(air_lf_builder *b, uint64_t data_bytes);
/* Bytes of data section a tensor of nbytes takes (4096-aligned). */
uint64_t air_lf_data_bytes(uint64_t nbytes);
/* Reserves room for a tensor and returns where to write its bytes (its
 * alignment padding is zeroed; the caller writes all nbytes). */
air_status air_lf_builder_add(air_lf_builder *b, const char *name, air_dtype dt, int n_dims,
                              const int64_t shape[2], uint64_t nbytes, void **dst);
/* Checksums as the tensors are done: the next entry without its checksum,
 * if its index is below `upto` (entries are summed in order, each with the
 * padding before it into the data checksum, in one pass over its bytes
 * while they are in cache). Returns 0 when there is none to sum. May run
 * while entries from `upto` on are being written. */
int air_lf_builder_sum_next(air_lf_builder *b, uint32_t upto);
/* Every remaining entry, then the data checksum. air_lf_builder_write does
 * this when it was not done. */
void air_lf_builder_sums(air_lf_builder *b);
/* Checksums (unless made), writes to path atomically (a temp name unique to this process,
 * O_DIRECT where the file system takes it, fsync, rename). */
air_status air_lf_builder_write(air_lf_builder *b, const char *path, air_lf_info *info);
/* air_lf_builder_write in two steps, so that the fsync of one file can run
 * while the next is written: _start checksums (unless made) and writes the
 * temp file (the builder's buffers are free again when it returns);
 * _finish fsyncs, closes and renames it (or removes it on any error). A
 * failed _start leaves nothing behind. */
typedef struct {
    int fd;
    char *tmp;
    const char *path; /* not owned: must outlive _finish */
    air_lf_info info;
} air_lf_pending;
air_status air_lf_builder_write_start(air_lf_builder *b, const char *path, air_lf_pending *pw);
air_status air_lf_write_finish(air_lf_pending *pw, air_lf_info *info);
void air_lf_builder_free(air_lf_builder *b);

/* --- reading ------------------------------------------------------------- */
/* Reads the header region of a layer file (at most a few KiB) and checks it:
 * magic, version, sizes against the file, the header checksum and the
 * identity `want`. The data section is not read. If `entries` is not NULL
 * it receives a copy of the tensor table (AIR_LF_MAX_TENSORS entries). */
air_status air_lf_probe(const char *path, const air_lf_ident *want, air_lf_info *info,
                        air_lf_entry *entries);

/* Reads a whole layer file into buf (AIR_LF_ALIGN-aligned, cap bytes), with
 * O_DIRECT when the file system allows, verifies the checksums and the
 * identity `want`, and binds tensor views into *out. direct: 1 to try
 * O_DIRECT. */
air_status air_lf_load(const char *path, void *buf, uint64_t cap, int direct,
                       const air_lf_ident *want, air_layer *out);

/* Checks a loaded buffer (header, identity, checksums) and binds the views. */
air_status air_lf_bind(const char *path, const void *buf, uint64_t size, const air_lf_ident *want,
                       air_layer *out);

/* The advice every store-corruption error ends with. */
#define AIR_STORE_FIX "to rebuild it, run `airllm rm MODEL` (see `airllm list`) or delete the store folder"


/* --- mixture-of-experts layers ------------------------------------------- *
 * An MoE layer file holds its dense part first (norms, attention, router,
 * shared expert: every tensor whose name does not start with "exp."), then
 * each expert's tensors "exp.<e>.<name>" together, expert after expert. So
 * the dense part is one prefix of the file and each expert one aligned range:
 * both are read and verified (per-tensor checksums) without the rest. */

/* The expert id of a tensor name "exp.<e>.<...>", or -1 for a dense tensor. */
int air_lf_expert_of(const char *name);

/* A file's header and tensor table, read and verified alone. */
typedef struct {
    air_lf_header h;
    air_lf_entry *e; /* h.n_tensors entries; free with air_lf_table_free */
    uint64_t file_bytes;
    uint64_t dense_bytes; /* header + dense tensors: the prefix air_lf_load_prefix reads */
} air_lf_table;

air_status air_lf_read_table(const char *path, air_lf_table *out);
void air_lf_table_free(air_lf_table *t);

/* Reads the first `prefix` bytes of a layer file into buf (cap bytes) and
 * binds its dense tensors; prefix = the file size is air_lf_load(). A shorter
 * prefix must cover every dense tensor; they are verified one by one against
 * their checksums (the whole-data checksum needs the whole file). */
air_status air_lf_load_prefix(const char *path, void *buf, uint64_t cap, uint64_t prefix,
                              int flags, const air_lf_ident *want, air_layer *out);
/* flags: AIR_LF_DIRECT tries O_DIRECT; AIR_LF_DEFER_DATA (a whole file only)
 * leaves the data checksum to air_lf_check_data(), so a reader thread can go
 * on reading while the consumer verifies (the header region and identity
 * are always checked). */
#define AIR_LF_DIRECT 1
#define AIR_LF_DEFER_DATA 2

/* The data checksum of a whole layer file in buf (loaded and bound). */
air_status air_lf_check_data(const char *path, const void *buf);

/* Checks the bytes of one tensor against its table entry's checksum. */
air_status air_lf_verify_entry(const char *path, const air_lf_header *h, const air_lf_entry *e,
                               const void *bytes);

/* Aligned allocation for layer buffers (free with free()). */
void *air_lf_alloc(uint64_t bytes);

#endif
