/*
 * gguf.c - GGUF parser: header, metadata, tensor table; tensor access.
 *
 * Data flow: air_gguf_open() maps the file read-only (air_gguf_open_memory()
 * borrows a buffer instead) and parse() walks it once with a bounds-checked
 * cursor: header -> metadata key/values -> tensor infos -> padding to the
 * alignment -> data section. Every count is checked against the bytes left
 * before anything is allocated for it, every size is computed with overflow
 * checks, and every tensor must lie inside the file. Errors name the file,
 * the problem and the byte offset.
 *
 * Parsed metadata is copied out of the file into an arena owned by the
 * air_gguf: strings become NUL-terminated, numeric arrays become aligned
 * native arrays (the host must be little-endian, as the files are). Tensor
 * bytes are not copied: air_gguf_tensor_data() points into the mapping.
 * Keys and tensor names are found through small open-addressing hash tables.
 *
 * The llama/qwen conventions on top of this (hparams, names, Q/K
 * permutation) live in gguf_model.c and use only the accessors of gguf.h.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "source/gguf.h"
#include "util/error.h"

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "the GGUF reader assumes a little-endian host"
#endif

#define GGUF_MAX_DEPTH 8 /* nesting of arrays of arrays */
#define GGUF_DEFAULT_ALIGNMENT 32

/* ------------------------------------------------------------------------- */
/* The parsed file                                                           */
/* ------------------------------------------------------------------------- */
typedef struct arena_chunk {
    struct arena_chunk *next;
    size_t used, cap;
    _Alignas(16) unsigned char data[];
} arena_chunk;

typedef struct {
    int64_t *slots; /* index + 1, 0 = empty */
    uint64_t mask;
} name_index;

struct air_gguf {
    char *path; /* for messages; "<memory>" for air_gguf_open_memory() */
    const uint8_t *base;
    size_t size;
    int mapped;
    uint32_t version, alignment;
    uint64_t data_off;
    int64_t n_kv;
    const char **keys;
    air_gguf_value *vals;
    int64_t n_tensors;
    air_gguf_tensor *tensors;
    name_index kv_index, tensor_index;
    const int32_t *tok_types; /* token_type converted to int32 when stored otherwise */
    const float *tok_scores;  /* scores converted to float when stored as float64 */
    arena_chunk *arena;
};

/* ------------------------------------------------------------------------- */
/* Arena: every parsed string and array lives here until close.              */
/* ------------------------------------------------------------------------- */
static void *arena_alloc(air_gguf *g, size_t n) {
    n = (n + 15) & ~(size_t)15;
    if (n == 0)
        n = 16;
    arena_chunk *c = g->arena;
    if (!c || c->cap - c->used < n) {
        size_t cap = n > (64u << 10) ? n : (64u << 10);
        arena_chunk *nc = malloc(sizeof *nc + cap);
        if (!nc)
            return NULL;
        nc->used = 0;
        nc->cap = cap;
        if (c && cap == n) { /* big one-off: keep the current chunk in front */
            nc->next = c->next;
            c->next = nc;
            nc->used = n;
            return nc->data;
        }
        nc->next = c;
        g->arena = c = nc;
    }
    void *p = c->data + c->used;
    c->used += n;
    return p;
}

static void arena_free(air_gguf *g) {
    arena_chunk *c = g->arena;
    while (c) {
        arena_chunk *n = c->next;
        free(c);
        c = n;
    }
    g->arena = NULL;
}

/* ------------------------------------------------------------------------- */
/* Name index (FNV-1a, open addressing, stores index + 1).                   */
/* ------------------------------------------------------------------------- */
static uint64_t hash_str(const char *s) {
    uint64_t h = 1469598103934665603ull;
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 1099511628211ull;
    return h;
}

static int index_init(air_gguf *g, name_index *ix, int64_t n) {
    uint64_t cap = 16;
    while (cap < (uint64_t)n * 2)
        cap <<= 1;
    ix->slots = arena_alloc(g, cap * sizeof *ix->slots);
    if (!ix->slots)
        return 0;
    memset(ix->slots, 0, cap * sizeof *ix->slots);
    ix->mask = cap - 1;
    return 1;
}

/* Returns the slot holding `name` or the empty slot where it would go. */
static int64_t *index_slot(const name_index *ix, const char *name,
                           const char *(*name_of)(const air_gguf *, int64_t), const air_gguf *g) {
    uint64_t i = hash_str(name) & ix->mask;
    for (;;) {
        int64_t *s = &ix->slots[i];
        if (*s == 0 || strcmp(name_of(g, *s - 1), name) == 0)
            return s;
        i = (i + 1) & ix->mask;
    }
}

static const char *kv_name(const air_gguf *g, int64_t i) {
    return g->keys[i];
}
static const char *tensor_name(const air_gguf *g, int64_t i) {
    return g->tensors[i].name;
}

/* ------------------------------------------------------------------------- */
/* Bounds-checked cursor                                                     */
/* ------------------------------------------------------------------------- */
typedef struct {
    air_gguf *g;
    const uint8_t *p;
    size_t size, off;
} cursor;

static air_status bad(const cursor *c, size_t at, const char *fmt, ...) AIR_PRINTF(3, 4);
static air_status bad(const cursor *c, size_t at, const char *fmt, ...) {
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return air_err(AIR_ERR_FORMAT, "%s: byte %zu: %s", c->g->path, at, msg);
}

static air_status need(const cursor *c, size_t n, const char *what) {
    if (n > c->size - c->off)
        return bad(c, c->off,
                   "%s needs %zu bytes but only %zu are left in the file (%zu bytes); the file is "
                   "truncated or not a GGUF file",
                   what, n, c->size - c->off, c->size);
    return AIR_OK;
}

static air_status rd_u32(cursor *c, uint32_t *v, const char *what) {
    air_status st = need(c, 4, what);
    if (st)
        return st;
    memcpy(v, c->p + c->off, 4);
    c->off += 4;
    return AIR_OK;
}

static air_status rd_u64(cursor *c, uint64_t *v, const char *what) {
    air_status st = need(c, 8, what);
    if (st)
        return st;
    memcpy(v, c->p + c->off, 8);
    c->off += 8;
    return AIR_OK;
}

/* Reads a GGUF string (u64 length + bytes) into a NUL-terminated arena copy. */
static air_status rd_str(cursor *c, const char **out, uint64_t *len_out, const char *what) {
    size_t at = c->off;
    uint64_t len;
    air_status st = rd_u64(c, &len, what);
    if (st)
        return st;
    if (len > c->size - c->off)
        return bad(c, at,
                   "%s has length %llu but only %zu bytes are left in the file; the file is "
                   "truncated or corrupt",
                   what, (unsigned long long)len, c->size - c->off);
    char *s = arena_alloc(c->g, (size_t)len + 1);
    if (!s)
        return air_err(AIR_ERR_NOMEM, "%s: out of memory reading %s", c->g->path, what);
    memcpy(s, c->p + c->off, (size_t)len);
    s[len] = 0;
    c->off += (size_t)len;
    *out = s;
    if (len_out)
        *len_out = len;
    return AIR_OK;
}

/* Bytes of one scalar of a numeric GGUF value type; 0 for string / array /
 * unknown. */
static size_t scalar_size(uint32_t t) {
    switch (t) {
    case AIR_GGUF_UINT8:
    case AIR_GGUF_INT8:
    case AIR_GGUF_BOOL:
        return 1;
    case AIR_GGUF_UINT16:
    case AIR_GGUF_INT16:
        return 2;
    case AIR_GGUF_UINT32:
    case AIR_GGUF_INT32:
    case AIR_GGUF_FLOAT32:
        return 4;
    case AIR_GGUF_UINT64:
    case AIR_GGUF_INT64:
    case AIR_GGUF_FLOAT64:
        return 8;
    default:
        return 0;
    }
}

static const char *value_type_name(uint32_t t) {
    static const char *names[] = {"uint8",  "int8",    "uint16", "int16",  "uint32",
                                  "int32",  "float32", "bool",   "string", "array",
                                  "uint64", "int64",   "float64"};
    return t < sizeof names / sizeof *names ? names[t] : "unknown";
}

/* Decodes one scalar of type t at p into v. */
static void scalar_decode(uint32_t t, const uint8_t *p, air_gguf_value *v) {
    v->type = (int)t;
    switch (t) {
    case AIR_GGUF_UINT8:
        v->v.u64 = p[0];
        break;
    case AIR_GGUF_BOOL:
        v->v.u64 = p[0] != 0;
        break;
    case AIR_GGUF_INT8:
        v->v.i64 = (int8_t)p[0];
        break;
    case AIR_GGUF_UINT16: {
        uint16_t x;
        memcpy(&x, p, 2);
        v->v.u64 = x;
        break;
    }
    case AIR_GGUF_INT16: {
        int16_t x;
        memcpy(&x, p, 2);
        v->v.i64 = x;
        break;
    }
    case AIR_GGUF_UINT32: {
        uint32_t x;
        memcpy(&x, p, 4);
        v->v.u64 = x;
        break;
    }
    case AIR_GGUF_INT32: {
        int32_t x;
        memcpy(&x, p, 4);
        v->v.i64 = x;
        break;
    }
    case AIR_GGUF_FLOAT32: {
        float x;
        memcpy(&x, p, 4);
        v->v.f64 = x;
        break;
    }
    case AIR_GGUF_UINT64: {
        uint64_t x;
        memcpy(&x, p, 8);
        v->v.u64 = x;
        break;
    }
    case AIR_GGUF_INT64: {
        int64_t x;
        memcpy(&x, p, 8);
        v->v.i64 = x;
        break;
    }
    case AIR_GGUF_FLOAT64: {
        double x;
        memcpy(&x, p, 8);
        v->v.f64 = x;
        break;
    }
    }
}

static air_status parse_value(cursor *c, uint32_t type, air_gguf_value *v, const char *key,
                              int depth);

static air_status parse_array(cursor *c, air_gguf_value *v, const char *key, int depth) {
    size_t at = c->off;
    uint32_t et;
    uint64_t n;
    air_status st;
    if ((st = rd_u32(c, &et, "array element type")) || (st = rd_u64(c, &n, "array length")))
        return st;
    v->type = AIR_GGUF_ARRAY;
    v->arr_type = (int)et;
    v->arr_n = n;
    size_t left = c->size - c->off;
    size_t es = scalar_size(et);
    if (es) {
        if (n > left / es)
            return bad(c, at,
                       "key '%s': array of %llu %s values (%zu bytes each) does not fit in the "
                       "%zu bytes left in the file",
                       key, (unsigned long long)n, value_type_name(et), es, left);
        void *a = arena_alloc(c->g, (size_t)n * es);
        if (!a)
            return air_err(AIR_ERR_NOMEM, "%s: out of memory reading key '%s'", c->g->path, key);
        memcpy(a, c->p + c->off, (size_t)n * es);
        c->off += (size_t)n * es;
        v->arr = a;
        return AIR_OK;
    }
    if (et == AIR_GGUF_STRING) {
        if (n > left / 8)
            return bad(c, at,
                       "key '%s': array of %llu strings cannot fit in the %zu bytes left in the "
                       "file",
                       key, (unsigned long long)n, left);
        const char **a = arena_alloc(c->g, (size_t)n * sizeof *a);
        if (!a)
            return air_err(AIR_ERR_NOMEM, "%s: out of memory reading key '%s'", c->g->path, key);
        for (uint64_t i = 0; i < n; i++)
            if ((st = rd_str(c, &a[i], NULL, "array string")))
                return air_err_context(st, "key '%s', element %llu", key, (unsigned long long)i);
        v->arr = a;
        return AIR_OK;
    }
    if (et == AIR_GGUF_ARRAY) {
        if (depth >= GGUF_MAX_DEPTH)
            return bad(c, at, "key '%s': arrays nested deeper than %d levels", key, GGUF_MAX_DEPTH);
        if (n > left / 12) /* each element: u32 type + u64 length at least */
            return bad(
                c, at,
                "key '%s': array of %llu arrays cannot fit in the %zu bytes left in the file", key,
                (unsigned long long)n, left);
        air_gguf_value *a = arena_alloc(c->g, (size_t)n * sizeof *a);
        if (!a)
            return air_err(AIR_ERR_NOMEM, "%s: out of memory reading key '%s'", c->g->path, key);
        memset(a, 0, (size_t)n * sizeof *a);
        for (uint64_t i = 0; i < n; i++)
            if ((st = parse_value(c, AIR_GGUF_ARRAY, &a[i], key, depth + 1)))
                return st;
        v->arr = a;
        return AIR_OK;
    }
    return bad(c, at, "key '%s': unknown array element type %u (known: 0..12)", key, et);
}

static air_status parse_value(cursor *c, uint32_t type, air_gguf_value *v, const char *key,
                              int depth) {
    size_t es = scalar_size(type);
    air_status st;
    if (es) {
        if ((st = need(c, es, "metadata value")))
            return air_err_context(st, "key '%s'", key);
        scalar_decode(type, c->p + c->off, v);
        c->off += es;
        return AIR_OK;
    }
    if (type == AIR_GGUF_STRING) {
        v->type = AIR_GGUF_STRING;
        if ((st = rd_str(c, &v->str, &v->str_len, "string value")))
            return air_err_context(st, "key '%s'", key);
        return AIR_OK;
    }
    if (type == AIR_GGUF_ARRAY)
        return parse_array(c, v, key, depth);
    return bad(c, c->off - 4, "key '%s': unknown value type %u (known: 0..12)", key, type);
}

/* ------------------------------------------------------------------------- */
/* Parse                                                                     */
/* ------------------------------------------------------------------------- */
static air_status parse(air_gguf *g) {
    cursor cur = {g, g->base, g->size, 0}, *c = &cur;
    air_status st;

    if (g->size < 4 || memcmp(g->base, "GGUF", 4) != 0)
        return air_err(AIR_ERR_FORMAT,
                       "%s: byte 0: not a GGUF file (the first 4 bytes must be \"GGUF\")", g->path);
    c->off = 4;
    if ((st = rd_u32(c, &g->version, "version")))
        return st;
    if (g->version == 0x02000000u || g->version == 0x03000000u)
        return bad(c, 4,
                   "big-endian GGUF (version field %u read byte-swapped) is not supported; use a "
                   "little-endian file",
                   g->version >> 24);
    if (g->version == 1)
        return bad(c, 4,
                   "GGUF version 1 is not supported (only versions 2 and 3); re-convert "
                   "the model with a current llama.cpp");
    if (g->version != 2 && g->version != 3)
        return bad(c, 4, "unknown GGUF version %u (supported: 2 and 3)", g->version);

    uint64_t n_tensors, n_kv;
    if ((st = rd_u64(c, &n_tensors, "tensor count")) || (st = rd_u64(c, &n_kv, "metadata count")))
        return st;
    /* A key/value takes at least 8 (key length) + 4 (type) + 1 bytes, a
     * tensor info 8 + 4 + 8 + 4 + 8. */
    if (n_kv > (c->size - c->off) / 13)
        return bad(c, 16, "metadata count %llu cannot fit in a %zu-byte file",
                   (unsigned long long)n_kv, c->size);
    g->n_kv = (int64_t)n_kv;
    g->keys = arena_alloc(g, (size_t)n_kv * sizeof *g->keys);
    g->vals = arena_alloc(g, (size_t)n_kv * sizeof *g->vals);
    if (!g->keys || !g->vals || !index_init(g, &g->kv_index, g->n_kv))
        return air_err(AIR_ERR_NOMEM, "%s: out of memory for %llu metadata entries", g->path,
                       (unsigned long long)n_kv);
    memset(g->vals, 0, (size_t)n_kv * sizeof *g->vals);

    for (int64_t i = 0; i < g->n_kv; i++) {
        size_t at = c->off;
        if ((st = rd_str(c, &g->keys[i], NULL, "metadata key")))
            return air_err_context(st, "metadata entry %lld", (long long)i);
        int64_t *slot = index_slot(&g->kv_index, g->keys[i], kv_name, g);
        if (*slot)
            return bad(c, at, "metadata key '%s' appears twice", g->keys[i]);
        *slot = i + 1;
        uint32_t type;
        if ((st = rd_u32(c, &type, "metadata value type")))
            return air_err_context(st, "key '%s'", g->keys[i]);
        if ((st = parse_value(c, type, &g->vals[i], g->keys[i], 0)))
            return st;
    }

    g->alignment = GGUF_DEFAULT_ALIGNMENT;
    const air_gguf_value *al = air_gguf_get(g, "general.alignment");
    if (al) {
        if (al->type != AIR_GGUF_UINT32 || al->v.u64 == 0 || (al->v.u64 & (al->v.u64 - 1)))
            return air_err(AIR_ERR_FORMAT,
                           "%s: general.alignment must be a uint32 power of two, found %s %llu",
                           g->path, value_type_name((uint32_t)al->type),
                           (unsigned long long)al->v.u64);
        g->alignment = (uint32_t)al->v.u64;
    }

    if (n_tensors > (c->size - c->off) / 32)
        return bad(c, 8, "tensor count %llu cannot fit in a %zu-byte file",
                   (unsigned long long)n_tensors, c->size);
    g->n_tensors = (int64_t)n_tensors;
    g->tensors = arena_alloc(g, (size_t)n_tensors * sizeof *g->tensors);
    if (!g->tensors || !index_init(g, &g->tensor_index, g->n_tensors))
        return air_err(AIR_ERR_NOMEM, "%s: out of memory for %llu tensors", g->path,
                       (unsigned long long)n_tensors);

    size_t *info_at = malloc(((size_t)n_tensors + 1) * sizeof *info_at);
    if (!info_at)
        return air_err(AIR_ERR_NOMEM, "%s: out of memory", g->path);
    for (int64_t i = 0; i < g->n_tensors && !st; i++) {
        air_gguf_tensor *t = &g->tensors[i];
        size_t at = info_at[i] = c->off;
        uint32_t nd, type;
        if ((st = rd_str(c, &t->name, NULL, "tensor name"))) {
            st = air_err_context(st, "tensor %lld", (long long)i);
            break;
        }
        int64_t *slot = index_slot(&g->tensor_index, t->name, tensor_name, g);
        if (*slot) {
            st = bad(c, at, "tensor '%s' appears twice", t->name);
            break;
        }
        *slot = i + 1;
        if ((st = rd_u32(c, &nd, "tensor dimension count")))
            break;
        if (nd < 1 || nd > 4) {
            st = bad(c, c->off - 4, "tensor '%s' has %u dimensions (must be 1 to 4)", t->name, nd);
            break;
        }
        t->n_dims = (int)nd;
        int64_t n = 1;
        for (int d = 0; d < 4; d++)
            t->ne[d] = 1;
        for (uint32_t d = 0; d < nd && !st; d++) {
            uint64_t ne;
            if ((st = rd_u64(c, &ne, "tensor dimension")))
                break;
            if (ne > (uint64_t)INT64_MAX || (ne && (uint64_t)n > (uint64_t)INT64_MAX / ne)) {
                st = bad(c, c->off - 8,
                         "tensor '%s': dimension %u is %llu and the element count overflows",
                         t->name, d, (unsigned long long)ne);
                break;
            }
            t->ne[d] = (int64_t)ne;
            n *= (int64_t)ne;
        }
        if (st || (st = rd_u32(c, &type, "tensor type")))
            break;
        int bs = air_ggml_block_size((int)type), ts = air_ggml_type_size((int)type);
        if (!bs || !ts) {
            st = bad(c, c->off - 4, "tensor '%s' has unknown GGML type %u", t->name, type);
            break;
        }
        t->ggml_type = (int)type;
        if (t->ne[0] % bs) {
            st = bad(c, at,
                     "tensor '%s': first dimension %lld is not a multiple of the %s block size %d",
                     t->name, (long long)t->ne[0], air_ggml_type_name(t->ggml_type), bs);
            break;
        }
        uint64_t nb = (uint64_t)n / (uint64_t)bs;
        if (nb > UINT64_MAX / (uint64_t)ts) {
            st = bad(c, at, "tensor '%s': byte size overflows", t->name);
            break;
        }
        t->size = nb * (uint64_t)ts;
        if ((st = rd_u64(c, &t->offset, "tensor offset")))
            break;
        if (t->offset % g->alignment) {
            st =
                bad(c, c->off - 8, "tensor '%s': offset %llu is not a multiple of the alignment %u",
                    t->name, (unsigned long long)t->offset, g->alignment);
            break;
        }
    }
    if (st) {
        free(info_at);
        return st;
    }

    /* Data section: after the tensor table, padded to the alignment. */
    size_t pad = (g->alignment - c->off % g->alignment) % g->alignment;
    g->data_off = (uint64_t)c->off + pad;
    if (g->n_tensors > 0 && g->data_off > g->size) {
        st = bad(c, c->off, "the data section would start at byte %llu, past the end of the file",
                 (unsigned long long)g->data_off);
    }
    uint64_t room = g->data_off <= g->size ? g->size - g->data_off : 0;
    for (int64_t i = 0; i < g->n_tensors && !st; i++) {
        const air_gguf_tensor *t = &g->tensors[i];
        if (t->offset > room || t->size > room - t->offset)
            st = bad(c, info_at[i],
                     "tensor '%s' (%s, %llu bytes at data offset %llu) ends at file byte %llu, "
                     "past the end of the file (%zu bytes); the file is truncated",
                     t->name, air_ggml_type_name(t->ggml_type), (unsigned long long)t->size,
                     (unsigned long long)t->offset,
                     (unsigned long long)(g->data_off + t->offset + t->size), g->size);
    }
    free(info_at);
    return st;
}

/* Converts the tokenizer's token_type / scores arrays to int32 / float when
 * stored in another numeric type, so the accessor can hand out plain arrays. */
static air_status prepare_tokenizer(air_gguf *g) {
    const air_gguf_value *v = air_gguf_get(g, "tokenizer.ggml.token_type");
    if (v && v->type == AIR_GGUF_ARRAY && v->arr_type != AIR_GGUF_INT32 &&
        scalar_size((uint32_t)v->arr_type) && v->arr_type != AIR_GGUF_FLOAT32 &&
        v->arr_type != AIR_GGUF_FLOAT64) {
        int32_t *a = arena_alloc(g, (size_t)v->arr_n * 4);
        if (!a)
            return air_err(AIR_ERR_NOMEM, "%s: out of memory", g->path);
        size_t es = scalar_size((uint32_t)v->arr_type);
        for (uint64_t i = 0; i < v->arr_n; i++) {
            air_gguf_value x;
            scalar_decode((uint32_t)v->arr_type, (const uint8_t *)v->arr + i * es, &x);
            a[i] = (int32_t)x.v.i64;
        }
        g->tok_types = a;
    }
    v = air_gguf_get(g, "tokenizer.ggml.scores");
    if (v && v->type == AIR_GGUF_ARRAY && v->arr_type == AIR_GGUF_FLOAT64) {
        float *a = arena_alloc(g, (size_t)v->arr_n * 4);
        if (!a)
            return air_err(AIR_ERR_NOMEM, "%s: out of memory", g->path);
        for (uint64_t i = 0; i < v->arr_n; i++)
            a[i] = (float)((const double *)v->arr)[i];
        g->tok_scores = a;
    }
    return AIR_OK;
}

static air_status open_common(air_gguf *g, air_gguf **out) {
    air_status st = parse(g);
    if (!st)
        st = prepare_tokenizer(g);
    if (st) {
        air_gguf_close(g);
        return st;
    }
    *out = g;
    return AIR_OK;
}

static air_gguf *new_gguf(const char *path) {
    air_gguf *g = calloc(1, sizeof *g);
    if (!g)
        return NULL;
    g->path = strdup(path);
    if (!g->path) {
        free(g);
        return NULL;
    }
    return g;
}

air_status air_gguf_open(const char *path, air_gguf **out) {
    if (!out || !path)
        return air_err(AIR_ERR_INVALID_ARG, "air_gguf_open: NULL argument");
    *out = NULL;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return air_err(errno == ENOENT ? AIR_ERR_NOT_FOUND : AIR_ERR_IO, "%s: cannot open: %s",
                       path, strerror(errno));
    struct stat sb;
    if (fstat(fd, &sb) != 0) {
        int e = errno;
        close(fd);
        return air_err(AIR_ERR_IO, "%s: cannot stat: %s", path, strerror(e));
    }
    if (!S_ISREG(sb.st_mode)) {
        close(fd);
        return air_err(AIR_ERR_INVALID_ARG, "%s: not a regular file", path);
    }
    if (sb.st_size == 0) {
        close(fd);
        return air_err(AIR_ERR_FORMAT, "%s: byte 0: the file is empty, not a GGUF model", path);
    }
    size_t size = (size_t)sb.st_size;
    void *map = mmap(NULL, size, PROT_READ, MAP_PRIVATE, fd, 0);
    int e = errno;
    close(fd);
    if (map == MAP_FAILED)
        return air_err(AIR_ERR_IO, "%s: cannot map %zu bytes: %s", path, size, strerror(e));
    air_gguf *g = new_gguf(path);
    if (!g) {
        munmap(map, size);
        return air_err(AIR_ERR_NOMEM, "%s: out of memory", path);
    }
    g->base = map;
    g->size = size;
    g->mapped = 1;
    return open_common(g, out);
}

air_status air_gguf_open_memory(const void *data, size_t size, air_gguf **out) {
    if (!out || (!data && size))
        return air_err(AIR_ERR_INVALID_ARG, "air_gguf_open_memory: NULL argument");
    *out = NULL;
    air_gguf *g = new_gguf("<memory>");
    if (!g)
        return air_err(AIR_ERR_NOMEM, "out of memory");
    g->base = data ? data : (const void *)"";
    g->size = size;
    return open_common(g, out);
}

void air_gguf_close(air_gguf *g) {
    if (!g)
        return;
    if (g->mapped)
        munmap((void *)g->base, g->size);
    arena_free(g);
    free(g->path);
    free(g);
}

uint32_t air_gguf_version(const air_gguf *g) {
    return g->version;
}
uint32_t air_gguf_alignment(const air_gguf *g) {
    return g->alignment;
}
uint64_t air_gguf_data_offset(const air_gguf *g) {
    return g->data_off;
}
const char *air_gguf_path(const air_gguf *g) {
    return g->path;
}

/* ------------------------------------------------------------------------- */
/* Metadata access                                                           */
/* ------------------------------------------------------------------------- */
int64_t air_gguf_n_kv(const air_gguf *g) {
    return g->n_kv;
}

const char *air_gguf_key_at(const air_gguf *g, int64_t i) {
    return i >= 0 && i < g->n_kv ? g->keys[i] : NULL;
}

const air_gguf_value *air_gguf_value_at(const air_gguf *g, int64_t i) {
    return i >= 0 && i < g->n_kv ? &g->vals[i] : NULL;
}

const air_gguf_value *air_gguf_get(const air_gguf *g, const char *key) {
    if (!g || !key || !g->kv_index.slots)
        return NULL;
    int64_t s = *index_slot(&g->kv_index, key, kv_name, g);
    return s ? &g->vals[s - 1] : NULL;
}

static int is_signed_int(int t) {
    return t == AIR_GGUF_INT8 || t == AIR_GGUF_INT16 || t == AIR_GGUF_INT32 || t == AIR_GGUF_INT64;
}

static int is_unsigned_int(int t) {
    return t == AIR_GGUF_UINT8 || t == AIR_GGUF_UINT16 || t == AIR_GGUF_UINT32 ||
           t == AIR_GGUF_UINT64;
}

int air_gguf_get_u32(const air_gguf *g, const char *key, uint32_t *v) {
    const air_gguf_value *x = air_gguf_get(g, key);
    if (!x)
        return 0;
    if (is_unsigned_int(x->type) && x->v.u64 <= UINT32_MAX) {
        *v = (uint32_t)x->v.u64;
        return 1;
    }
    if (is_signed_int(x->type) && x->v.i64 >= 0 && x->v.i64 <= (int64_t)UINT32_MAX) {
        *v = (uint32_t)x->v.i64;
        return 1;
    }
    return 0;
}

int air_gguf_get_i32(const air_gguf *g, const char *key, int32_t *v) {
    const air_gguf_value *x = air_gguf_get(g, key);
    if (!x)
        return 0;
    if (is_unsigned_int(x->type) && x->v.u64 <= INT32_MAX) {
        *v = (int32_t)x->v.u64;
        return 1;
    }
    if (is_signed_int(x->type) && x->v.i64 >= INT32_MIN && x->v.i64 <= INT32_MAX) {
        *v = (int32_t)x->v.i64;
        return 1;
    }
    return 0;
}

int air_gguf_get_f32(const air_gguf *g, const char *key, float *v) {
    const air_gguf_value *x = air_gguf_get(g, key);
    if (!x)
        return 0;
    if (x->type == AIR_GGUF_FLOAT32 || x->type == AIR_GGUF_FLOAT64)
        *v = (float)x->v.f64;
    else if (is_unsigned_int(x->type))
        *v = (float)x->v.u64;
    else if (is_signed_int(x->type))
        *v = (float)x->v.i64;
    else
        return 0;
    return 1;
}

int air_gguf_get_bool(const air_gguf *g, const char *key, int *v) {
    const air_gguf_value *x = air_gguf_get(g, key);
    if (!x)
        return 0;
    if (x->type == AIR_GGUF_BOOL || is_unsigned_int(x->type))
        *v = x->v.u64 != 0;
    else if (is_signed_int(x->type))
        *v = x->v.i64 != 0;
    else
        return 0;
    return 1;
}

const char *air_gguf_get_str(const air_gguf *g, const char *key) {
    const air_gguf_value *x = air_gguf_get(g, key);
    return x && x->type == AIR_GGUF_STRING ? x->str : NULL;
}

int air_gguf_get_arr(const air_gguf *g, const char *key, int *type, uint64_t *n,
                     const void **data) {
    const air_gguf_value *x = air_gguf_get(g, key);
    if (!x || x->type != AIR_GGUF_ARRAY)
        return 0;
    if (type)
        *type = x->arr_type;
    if (n)
        *n = x->arr_n;
    if (data)
        *data = x->arr;
    return 1;
}

/* ------------------------------------------------------------------------- */
/* Tensors                                                                   */
/* ------------------------------------------------------------------------- */
int64_t air_gguf_n_tensors(const air_gguf *g) {
    return g->n_tensors;
}

const air_gguf_tensor *air_gguf_tensor_at(const air_gguf *g, int64_t i) {
    return i >= 0 && i < g->n_tensors ? &g->tensors[i] : NULL;
}

const air_gguf_tensor *air_gguf_find_tensor(const air_gguf *g, const char *name) {
    if (!g || !name || !g->tensor_index.slots)
        return NULL;
    int64_t s = *index_slot(&g->tensor_index, name, tensor_name, g);
    return s ? &g->tensors[s - 1] : NULL;
}

int64_t air_gguf_tensor_nelements(const air_gguf_tensor *t) {
    return t->ne[0] * t->ne[1] * t->ne[2] * t->ne[3];
}

const void *air_gguf_tensor_data(const air_gguf *g, const air_gguf_tensor *t) {
    return g->base + g->data_off + t->offset;
}

air_status air_gguf_dequantize_rows(const air_gguf *g, const air_gguf_tensor *t, int64_t row0,
                                    int64_t n_rows, float *dst) {
    int64_t n = air_gguf_tensor_nelements(t);
    int64_t rows = t->ne[0] ? n / t->ne[0] : 0;
    if (row0 < 0 || n_rows < 0 || row0 > rows || n_rows > rows - row0)
        return air_err(AIR_ERR_INVALID_ARG,
                       "%s: tensor '%s' has %lld rows; rows %lld..%lld requested", g->path, t->name,
                       (long long)rows, (long long)row0, (long long)(row0 + n_rows));
    uint64_t row_bytes = (uint64_t)t->ne[0] / (uint64_t)air_ggml_block_size(t->ggml_type) *
                         (uint64_t)air_ggml_type_size(t->ggml_type);
    const uint8_t *src = (const uint8_t *)air_gguf_tensor_data(g, t) + (uint64_t)row0 * row_bytes;
    air_status st = air_ggml_dequantize(t->ggml_type, src, dst, n_rows * t->ne[0]);
    if (st)
        return air_err_context(st, "%s: tensor '%s'", g->path, t->name);
    return AIR_OK;
}

air_status air_gguf_dequantize(const air_gguf *g, const air_gguf_tensor *t, float *dst) {
    int64_t rows = t->ne[0] ? air_gguf_tensor_nelements(t) / t->ne[0] : 0;
    return air_gguf_dequantize_rows(g, t, 0, rows, dst);
}

/* ------------------------------------------------------------------------- */
/* Tokenizer arrays                                                          */
/* ------------------------------------------------------------------------- */
static int32_t tok_id(const air_gguf *g, const char *key) {
    int32_t v;
    return air_gguf_get_i32(g, key, &v) && v >= 0 ? v : -1;
}

static int tok_flag(const air_gguf *g, const char *key) {
    int v;
    return air_gguf_get_bool(g, key, &v) ? v : -1;
}

air_status air_gguf_tokenizer_info(const air_gguf *g, air_gguf_tokenizer *out) {
    memset(out, 0, sizeof *out);
    const air_gguf_value *tok = air_gguf_get(g, "tokenizer.ggml.tokens");
    if (!tok)
        return air_err(AIR_ERR_NOT_FOUND,
                       "%s: no tokenizer.ggml.tokens: the file has no vocabulary", g->path);
    if (tok->type != AIR_GGUF_ARRAY || tok->arr_type != AIR_GGUF_STRING || tok->arr_n > INT32_MAX)
        return air_err(AIR_ERR_FORMAT, "%s: tokenizer.ggml.tokens must be an array of strings",
                       g->path);
    out->tokens = tok->arr;
    out->n_tokens = (int32_t)tok->arr_n;

    const air_gguf_value *v = air_gguf_get(g, "tokenizer.ggml.scores");
    if (v) {
        if (v->type != AIR_GGUF_ARRAY || v->arr_n != tok->arr_n ||
            (v->arr_type != AIR_GGUF_FLOAT32 && v->arr_type != AIR_GGUF_FLOAT64))
            return air_err(AIR_ERR_FORMAT,
                           "%s: tokenizer.ggml.scores must be an array of %d floats, like the "
                           "tokens",
                           g->path, out->n_tokens);
        out->scores = v->arr_type == AIR_GGUF_FLOAT32 ? v->arr : g->tok_scores;
    }
    v = air_gguf_get(g, "tokenizer.ggml.token_type");
    if (v) {
        if (v->type != AIR_GGUF_ARRAY || v->arr_n != tok->arr_n ||
            (v->arr_type != AIR_GGUF_INT32 && !g->tok_types))
            return air_err(AIR_ERR_FORMAT,
                           "%s: tokenizer.ggml.token_type must be an array of %d integers, like "
                           "the tokens",
                           g->path, out->n_tokens);
        out->types = v->arr_type == AIR_GGUF_INT32 ? v->arr : g->tok_types;
    }
    v = air_gguf_get(g, "tokenizer.ggml.merges");
    if (v) {
        if (v->type != AIR_GGUF_ARRAY || v->arr_type != AIR_GGUF_STRING || v->arr_n > INT32_MAX)
            return air_err(AIR_ERR_FORMAT, "%s: tokenizer.ggml.merges must be an array of strings",
                           g->path);
        out->merges = v->arr;
        out->n_merges = (int32_t)v->arr_n;
    }
    out->model = air_gguf_get_str(g, "tokenizer.ggml.model");
    out->pre = air_gguf_get_str(g, "tokenizer.ggml.pre");
    out->bos_id = tok_id(g, "tokenizer.ggml.bos_token_id");
    out->eos_id = tok_id(g, "tokenizer.ggml.eos_token_id");
    out->unk_id = tok_id(g, "tokenizer.ggml.unknown_token_id");
    out->pad_id = tok_id(g, "tokenizer.ggml.padding_token_id");
    out->eot_id = tok_id(g, "tokenizer.ggml.eot_token_id");
    out->eom_id = tok_id(g, "tokenizer.ggml.eom_token_id");
    out->add_bos = tok_flag(g, "tokenizer.ggml.add_bos_token");
    out->add_eos = tok_flag(g, "tokenizer.ggml.add_eos_token");
    out->add_space_prefix = tok_flag(g, "tokenizer.ggml.add_space_prefix");
    out->chat_template = air_gguf_get_str(g, "tokenizer.chat_template");
    const int32_t ids[] = {out->bos_id, out->eos_id, out->unk_id,
                           out->pad_id, out->eot_id, out->eom_id};
    for (size_t i = 0; i < sizeof ids / sizeof *ids; i++)
        if (ids[i] >= out->n_tokens)
            return air_err(AIR_ERR_FORMAT,
                           "%s: special token id %d is outside the vocabulary of %d tokens",
                           g->path, ids[i], out->n_tokens);
    return AIR_OK;
}
