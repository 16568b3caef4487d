/*
 * gguf.h - reader for GGUF model files (llama.cpp's single-file format).
 *
 * air_gguf_open() maps the file read-only and parses, with every count,
 * length and offset checked against the file size:
 *
 *     header (magic "GGUF", version 2 or 3, tensor count, metadata count)
 *     metadata: key -> typed value (integers, floats, bool, string, arrays,
 *               arrays of arrays)
 *     tensor table: name, dims, GGML type, offset into the data section
 *     padding to general.alignment (default 32), then the data section
 *
 * Everything returned by the accessors below (strings, arrays, tensor infos,
 * raw tensor bytes) is owned by the air_gguf and stays valid until
 * air_gguf_close(). An open air_gguf is immutable: several threads may read
 * it at once.
 *
 * On top of the raw format this module knows the llama / qwen2 / qwen3
 * conventions: metadata -> air_hparams, GGUF tensor names -> the
 * architecture-neutral names of model/arch.h, tokenizer arrays, and the
 * undoing of the Q/K row permutation that the llama converter applies.
 *
 * Shapes: GGUF lists dims fastest-varying first, so a weight with
 * ne = {n_in, n_out} is a row-major (n_out, n_in) matrix, the arch.h order.
 */
#ifndef AIR_SOURCE_GGUF_H
#define AIR_SOURCE_GGUF_H

#include <stddef.h>
#include <stdint.h>

#include "airllm.h"
#include "model/arch.h"

/* ------------------------------------------------------------------------- */
/* GGML tensor types and GGUF value types (numbers as in the file format)    */
/* ------------------------------------------------------------------------- */
enum {
    AIR_GGML_F32 = 0,
    AIR_GGML_F16 = 1,
    AIR_GGML_Q4_0 = 2,
    AIR_GGML_Q4_1 = 3,
    AIR_GGML_Q5_0 = 6,
    AIR_GGML_Q5_1 = 7,
    AIR_GGML_Q8_0 = 8,
    AIR_GGML_Q8_1 = 9,
    AIR_GGML_Q2_K = 10,
    AIR_GGML_Q3_K = 11,
    AIR_GGML_Q4_K = 12,
    AIR_GGML_Q5_K = 13,
    AIR_GGML_Q6_K = 14,
    AIR_GGML_MXFP4 = 39, /* gpt-oss experts: E8M0 scale + 32 e2m1 codes */
    AIR_GGML_Q8_K = 15,
    AIR_GGML_I8 = 24,
    AIR_GGML_I16 = 25,
    AIR_GGML_I32 = 26,
    AIR_GGML_I64 = 27,
    AIR_GGML_F64 = 28,
    AIR_GGML_BF16 = 30,
    AIR_GGML_TYPE_MAX = 64 /* bound of the type tables */
};

enum {
    AIR_GGUF_UINT8 = 0,
    AIR_GGUF_INT8 = 1,
    AIR_GGUF_UINT16 = 2,
    AIR_GGUF_INT16 = 3,
    AIR_GGUF_UINT32 = 4,
    AIR_GGUF_INT32 = 5,
    AIR_GGUF_FLOAT32 = 6,
    AIR_GGUF_BOOL = 7,
    AIR_GGUF_STRING = 8,
    AIR_GGUF_ARRAY = 9,
    AIR_GGUF_UINT64 = 10,
    AIR_GGUF_INT64 = 11,
    AIR_GGUF_FLOAT64 = 12,
};

/* Name of a GGML type ("Q4_K"), "?" if unknown. */
const char *air_ggml_type_name(int type);
/* Elements per block and bytes per block; 0 for an unknown type. */
int air_ggml_block_size(int type);
int air_ggml_type_size(int type);
/* 1 if air_ggml_dequantize() handles the type. */
int air_ggml_can_dequantize(int type);
/* Converts n elements of `type` (n a multiple of the block size) at src to
 * fp32. Bit-exact with the gguf Python package's dequantizers. Returns
 * AIR_ERR_UNSUPPORTED for types it does not know, AIR_ERR_INVALID_ARG if n is
 * not a whole number of blocks. */
air_status air_ggml_dequantize(int type, const void *src, float *dst, int64_t n);

/* ------------------------------------------------------------------------- */
/* Opening                                                                   */
/* ------------------------------------------------------------------------- */
typedef struct air_gguf air_gguf;

/* Opens and parses `path` (mapped read-only). On failure *out is NULL and
 * the error names the file, what is wrong and the byte offset. */
air_status air_gguf_open(const char *path, air_gguf **out);
/* Same, from memory (fuzzing, tests). `data` is borrowed: it must stay valid
 * and unchanged until air_gguf_close(). */
air_status air_gguf_open_memory(const void *data, size_t size, air_gguf **out);
/* Closing NULL is a no-op. */
void air_gguf_close(air_gguf *g);

/* The path given to air_gguf_open() ("<memory>" for air_gguf_open_memory()). */
const char *air_gguf_path(const air_gguf *g);
uint32_t air_gguf_version(const air_gguf *g);
/* general.alignment, 32 when absent. */
uint32_t air_gguf_alignment(const air_gguf *g);
/* Byte offset of the data section in the file. */
uint64_t air_gguf_data_offset(const air_gguf *g);

/* ------------------------------------------------------------------------- */
/* Metadata                                                                  */
/* ------------------------------------------------------------------------- */
typedef struct air_gguf_value {
    int type; /* AIR_GGUF_* */
    union {
        uint64_t u64; /* unsigned integers and bool */
        int64_t i64;  /* signed integers */
        double f64;   /* FLOAT32 and FLOAT64 */
    } v;
    const char *str; /* STRING: NUL-terminated (may hold inner NULs) */
    uint64_t str_len;
    /* ARRAY: arr_n elements of arr_type, at arr:
     *   numeric / bool: a packed native array (uint8_t, int16_t, float, ...;
     *                   bool is uint8_t), aligned for its type
     *   STRING: const char *const * (NUL-terminated strings)
     *   ARRAY:  const air_gguf_value * (nested arrays) */
    int arr_type;
    uint64_t arr_n;
    const void *arr;
} air_gguf_value;

int64_t air_gguf_n_kv(const air_gguf *g);
const char *air_gguf_key_at(const air_gguf *g, int64_t i);
const air_gguf_value *air_gguf_value_at(const air_gguf *g, int64_t i);
/* The value of `key`, NULL if absent. */
const air_gguf_value *air_gguf_get(const air_gguf *g, const char *key);

/* Typed lookups: return 1 and set *v, or 0 if absent or of a type that does
 * not convert (get_u32: any integer type whose value fits; get_i32 also;
 * get_f32: FLOAT32 / FLOAT64; get_bool: BOOL or an integer). */
int air_gguf_get_u32(const air_gguf *g, const char *key, uint32_t *v);
int air_gguf_get_i32(const air_gguf *g, const char *key, int32_t *v);
int air_gguf_get_f32(const air_gguf *g, const char *key, float *v);
int air_gguf_get_bool(const air_gguf *g, const char *key, int *v);
/* A STRING value, NULL if absent or not a string. */
const char *air_gguf_get_str(const air_gguf *g, const char *key);
/* An ARRAY value: returns 1 and sets *type, *n, *data as in air_gguf_value. */
int air_gguf_get_arr(const air_gguf *g, const char *key, int *type, uint64_t *n, const void **data);

/* ------------------------------------------------------------------------- */
/* Tensors                                                                   */
/* ------------------------------------------------------------------------- */
typedef struct {
    const char *name;
    int ggml_type;   /* AIR_GGML_* */
    int n_dims;      /* 1..4 */
    int64_t ne[4];   /* ne[0] fastest-varying; unused dims are 1 */
    uint64_t offset; /* from the start of the data section */
    uint64_t size;   /* bytes */
} air_gguf_tensor;

int64_t air_gguf_n_tensors(const air_gguf *g);
const air_gguf_tensor *air_gguf_tensor_at(const air_gguf *g, int64_t i);
/* NULL if absent. */
const air_gguf_tensor *air_gguf_find_tensor(const air_gguf *g, const char *name);
/* Product of ne. */
int64_t air_gguf_tensor_nelements(const air_gguf_tensor *t);
/* The tensor's raw bytes inside the mapping (t->size of them). */
const void *air_gguf_tensor_data(const air_gguf *g, const air_gguf_tensor *t);

/* Dequantizes the whole tensor to fp32 (product of ne floats) into dst. */
air_status air_gguf_dequantize(const air_gguf *g, const air_gguf_tensor *t, float *dst);
/* Dequantizes rows [row0, row0 + n_rows) (a row is ne[0] elements) into dst. */
air_status air_gguf_dequantize_rows(const air_gguf *g, const air_gguf_tensor *t, int64_t row0,
                                    int64_t n_rows, float *dst);

/* ------------------------------------------------------------------------- */
/* Model conventions                                                         */
/* ------------------------------------------------------------------------- */
/* Fills hp from general.architecture ("llama", "qwen2", "qwen3", "gemma2",
 * "gemma3") and the
 * {arch}.* keys; tensors decide tie_embeddings / attn_bias / qk_norm. */
air_status air_gguf_hparams(const air_gguf *g, air_hparams *hp);

/* GGUF tensor name -> arch.h neutral name. "blk.N.<x>" sets *layer = N;
 * whole-model tensors set *layer = -1. Returns 0 (outputs untouched) if the
 * tensor is not one the runtime uses (e.g. rope_freqs.weight). */
int air_gguf_map_name(const char *gguf_name, int *layer, const char **neutral);

/* The reverse: neutral name (+ layer, -1 for whole-model tensors) -> GGUF
 * name in buf. Returns 0 if there is none or buf is too small. */
int air_gguf_tensor_name(int layer, const char *neutral, char *buf, size_t cap);
/* The same for a model of architecture `arch` (an air_arch): gpt-oss names
 * its MLP norm blk.N.post_attention_norm.weight and its router bias
 * blk.N.ffn_gate_inp.bias. */
int air_gguf_arch_tensor_name(int arch, int layer, const char *neutral, char *buf, size_t cap);
/* For a neutral expert tensor name "exp.<e>.w_gate" (w_up, w_down; b_gate,
 * b_up, b_down) of a layer: the stacked GGUF tensor holding it
 * (blk.N.ffn_gate_exps.weight, blk.N.ffn_gate_exps.bias ...) and e.
 * Returns 0 if neutral is not an expert tensor. */
int air_gguf_expert_tensor(int layer, const char *neutral, int *expert, char *buf, size_t cap);

/* 1 if the file's attn_q / attn_k rows are in llama.cpp's interleaved
 * order (architecture "llama"), i.e. need air_gguf_unpermute_qk() before a
 * rotate-half RoPE. */
int air_gguf_qk_permuted(const air_gguf *g);

/* Undoes the converter's row permutation of a Q or K projection: w is the
 * dequantized (n_out, n_in) fp32 matrix (or a bias with n_in = 1), n_head the
 * number of heads it holds (n_head for Q, n_head_kv for K). Within each head
 * of hd = n_out / n_head rows, file row 2*i + s holds original row
 * s * hd/2 + i. In place. AIR_ERR_INVALID_ARG if n_out is not a multiple of
 * 2 * n_head, AIR_ERR_NOMEM if the scratch row block cannot be allocated. */
air_status air_gguf_unpermute_qk(float *w, int n_out, int n_in, int n_head);
/* The same on rows of any format (row_bytes each), e.g. F16 rows. */
air_status air_gguf_unpermute_rows(void *w, int n_out, size_t row_bytes, int n_head);

/* Tokenizer data, ready for air_tokenizer_from_arrays(). Pointers borrowed
 * from the air_gguf. */
typedef struct {
    const char *model;         /* tokenizer.ggml.model: "gpt2", "llama", ...; NULL if absent */
    const char *pre;           /* tokenizer.ggml.pre; NULL if absent */
    const char *const *tokens; /* n_tokens NUL-terminated strings */
    int32_t n_tokens;
    const float *scores;       /* n_tokens, NULL if absent */
    const int32_t *types;      /* n_tokens, NULL if absent */
    const char *const *merges; /* n_merges "a b" strings, NULL if absent */
    int32_t n_merges;
    int32_t bos_id, eos_id, unk_id, pad_id; /* -1 if absent */
    int32_t eot_id, eom_id;                 /* -1 if absent */
    int add_bos, add_eos;                   /* -1 if absent, else 0/1 */
    int add_space_prefix;                   /* -1 if absent, else 0/1 (Gemma: 0) */
    const char *chat_template;              /* NULL if absent */
} air_gguf_tokenizer;

/* AIR_ERR_NOT_FOUND if the file has no tokenizer.ggml.tokens,
 * AIR_ERR_FORMAT if the arrays disagree in length or type. */
air_status air_gguf_tokenizer_info(const air_gguf *g, air_gguf_tokenizer *out);

/* ------------------------------------------------------------------------- */
/* As a model source (source/source.h)                                       */
/* ------------------------------------------------------------------------- */
typedef struct air_source air_source;

/* Opens a GGUF file as an air_source: hparams from the metadata, tensors by
 * neutral name, F32/F16/BF16 as stored and quantized types dequantized to
 * F32, llama Q/K rows already un-permuted. Close with air_source_close(). */
air_status air_source_open_gguf(const char *path, air_source **out);
/* The GGUF file behind a source opened by air_source_open_gguf() (for its
 * tokenizer arrays and chat template), NULL for other sources. Borrowed. */
const air_gguf *air_source_gguf(const air_source *s);

#endif
