/*
 * tokenizer_internal.h - the pieces of the tokenizer, shared by its files.
 *
 * Data flow of encode (mirrors HF tokenizers, TokenizerImpl::encode):
 *
 *   text --lossy UTF-8--> split on non-normalized added tokens (trie)
 *        --> each other segment: normalizers (normalize.c)
 *        --> split on normalized added tokens
 *        --> pre-tokenizers, depth-first (pretok.c)
 *        --> BPE on each piece (bpe.c, with a word cache)
 *        --> post-processor (BOS/EOS templates)
 *
 * decode: ids -> token strings -> decoder chain (decoder.c) -> text.
 *
 * Every component is a flat list of steps (HF "Sequence" nodes are flattened
 * when loading), so a tokenizer can be built from JSON (tokenizer.c) or from
 * GGUF-style arrays (tokenizer_arrays.c) with the same structures.
 */
#ifndef AIR_TEXT_TOKENIZER_INTERNAL_H
#define AIR_TEXT_TOKENIZER_INTERNAL_H

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>
#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

#include "text/tokenizer.h"
#include "util/error.h"

/* ========================================================================= */
/* Arena and growable vectors (tokenizer_util.c)                             */
/* ========================================================================= */
typedef struct tk_arena_chunk tk_arena_chunk;
typedef struct {
    tk_arena_chunk *head;
} tk_arena;

void *tk_arena_alloc(tk_arena *a, size_t n);                 /* 8-aligned, NULL on OOM */
char *tk_arena_strdup(tk_arena *a, const char *s, size_t n); /* NUL-terminated copy */
void tk_arena_free(tk_arena *a);

typedef struct {
    int32_t *v;
    size_t n, cap;
} tk_ids;
int tk_ids_push(tk_ids *a, int32_t x); /* 0 ok, -1 OOM */
int tk_ids_append(tk_ids *a, const int32_t *x, size_t n);

typedef struct {
    char *p;
    size_t n, cap;
} tk_bytes;
int tk_bytes_append(tk_bytes *b, const void *s, size_t n);
int tk_bytes_reserve(tk_bytes *b, size_t extra);

/* ========================================================================= */
/* UTF-8 and Unicode properties (tokenizer_util.c)                           */
/* ========================================================================= */
/* Decodes one code point of valid UTF-8 at s[0..]; returns its byte length. */
static inline int tk_utf8_next(const unsigned char *s, uint32_t *cp) {
    unsigned c = s[0];
    if (c < 0x80) {
        *cp = c;
        return 1;
    }
    if (c < 0xE0) {
        *cp = ((c & 0x1Fu) << 6) | (s[1] & 0x3Fu);
        return 2;
    }
    if (c < 0xF0) {
        *cp = ((c & 0x0Fu) << 12) | ((s[1] & 0x3Fu) << 6) | (s[2] & 0x3Fu);
        return 3;
    }
    *cp = ((c & 0x07u) << 18) | ((s[1] & 0x3Fu) << 12) | ((s[2] & 0x3Fu) << 6) | (s[3] & 0x3Fu);
    return 4;
}
static inline int tk_utf8_len(unsigned char c) {
    return c < 0x80 ? 1 : c < 0xE0 ? 2 : c < 0xF0 ? 3 : 4;
}
int tk_utf8_encode(uint32_t cp, char *out); /* returns 1..4 */

/* Length of the longest valid UTF-8 prefix of s. */
size_t tk_utf8_valid_prefix(const unsigned char *s, size_t n);
/* Appends s with every maximal invalid subsequence replaced by U+FFFD
 * (Unicode "substitution of maximal subparts": Python errors="replace",
 * Rust from_utf8_lossy). */
int tk_utf8_lossy_append(tk_bytes *out, const char *s, size_t n);

int tk_is_whitespace(uint32_t cp);  /* Rust char::is_whitespace (White_Space) */
int tk_is_numeric(uint32_t cp);     /* Rust char::is_numeric (Nd, Nl, No) */
int tk_is_punctuation(uint32_t cp); /* ASCII punctuation or Unicode P* */
int tk_is_word(uint32_t cp);        /* Rust regex \w (Unicode) */

/* ========================================================================= */
/* JSON (tokenizer_json.c): a fast arena DOM, enough for tokenizer.json      */
/* ========================================================================= */
enum { TJ_NULL, TJ_FALSE, TJ_TRUE, TJ_NUM, TJ_STR, TJ_ARR, TJ_OBJ };
typedef struct tj_key {
    const char *s;
    uint32_t n;
} tj_key;
typedef struct tj_val tj_val;
struct tj_val {
    uint8_t type;
    uint32_t n; /* string length, or number of items */
    union {
        const char *s; /* TJ_STR: NUL-terminated, may contain NULs (use n) */
        double num;
        tj_val *items; /* TJ_ARR / TJ_OBJ */
    } u;
    tj_key *keys; /* TJ_OBJ */
};
typedef struct {
    tk_arena arena;
    tj_val *root;
} tj_doc;

/* Parses JSON; on error records a message with line/column (prefixed by
 * `what`) and returns AIR_ERR_FORMAT. */
air_status tj_parse(const char *s, size_t n, const char *what, tj_doc *doc);
void tj_free(tj_doc *doc);
const tj_val *tj_get(const tj_val *obj, const char *key); /* NULL if absent or not an object */
int tj_is_str(const tj_val *v);

/* ========================================================================= */
/* Hash maps                                                                  */
/* ========================================================================= */
typedef struct {
    union {
        const char *p; /* keys longer than 8 bytes (NUL-terminated when >= 4095) */
        char in[8];    /* shorter keys inline: no second cache miss to compare */
    } k;
    uint32_t hl; /* hash (high 20 bits) | min(length, 4095) (low 12 bits) */
    int32_t v1;  /* value + 1; 0 = empty */
} tk_strslot;    /* 16 bytes: memory latency dominates, keep it small */
typedef struct {
    tk_strslot *slots;
    uint32_t mask, count;
} tk_strmap;
int tk_strmap_init(tk_strmap *m, size_t expected);
/* Inserts or overwrites; key memory must outlive the map. 0 ok, -1 OOM. */
int tk_strmap_put(tk_strmap *m, const char *k, size_t kn, int32_t v);
int32_t tk_strmap_get(const tk_strmap *m, const char *k, size_t kn); /* -1 absent */
/* Starts loading the slot of k into the cache (batched lookups). */
void tk_strmap_prefetch(const tk_strmap *m, const char *k, size_t kn);
void tk_strmap_free(tk_strmap *m);

typedef struct {
    uint64_t key; /* (a << 32) | b; UINT64_MAX = empty */
    int32_t rank;
    int32_t newid;
} tk_pairslot; /* one 16-byte slot: a lookup costs one cache miss */
typedef struct {
    tk_pairslot *slots;
    uint32_t mask, count;
} tk_pairmap;
int tk_pairmap_init(tk_pairmap *m, size_t expected);
/* Inserts or overwrites. 0 ok, -1 OOM. */
int tk_pairmap_put(tk_pairmap *m, int32_t a, int32_t b, int32_t rank, int32_t newid);
static inline uint32_t tk_pair_hash(uint64_t k) {
    k ^= k >> 33;
    k *= 0xff51afd7ed558ccdULL;
    k ^= k >> 33;
    return (uint32_t)k;
}
/* Returns the slot or NULL. */
static inline const tk_pairslot *tk_pairmap_find(const tk_pairmap *m, int32_t a, int32_t b) {
    if (!m->slots)
        return NULL;
    uint64_t k = ((uint64_t)(uint32_t)a << 32) | (uint32_t)b;
    uint32_t i = tk_pair_hash(k) & m->mask;
    for (;;) {
        const tk_pairslot *s = &m->slots[i];
        if (s->key == k)
            return s;
        if (s->key == UINT64_MAX)
            return NULL;
        i = (i + 1) & m->mask;
    }
}
void tk_pairmap_free(tk_pairmap *m);

/* ========================================================================= */
/* Regex / literal patterns (tokenizer_util.c)                               */
/* ========================================================================= */
typedef struct {
    pcre2_code *code; /* NULL for a literal */
    char *lit;        /* literal pattern (Split/Replace "String") */
    size_t lit_len;
    int jit;
} tk_pattern;

/* Compiles a regex (PCRE2, UTF + UCP, JIT) or stores a literal. On error
 * records a message naming `where`. */
air_status tk_pattern_init(tk_pattern *p, const char *src, size_t n, int is_regex,
                           const char *where);
void tk_pattern_free(tk_pattern *p);

typedef struct {
    size_t s, e;
    int match;
} tk_span;
typedef struct {
    tk_span *v;
    size_t n, cap;
} tk_spans;

/* tokenizer_unitab.c (generated): for each class letter of tk_onig_classes
 * ("LMNPS"), the ranges Oniguruma's \p{X} matches beyond PCRE2's. */
extern const char tk_onig_classes[];
extern const char *const tk_onig_extra[];

/* tokenizer_unitab.c: normalizer exceptions (sorted by code point). */
typedef struct {
    uint32_t cp;
    const char *out; /* HF's result for the code point alone (UTF-8) */
} tk_cpmap;
extern const tk_cpmap *const tk_hf_norm[4]; /* NFC, NFD, NFKC, NFKD barriers */
extern const size_t tk_hf_norm_n[4];
extern const tk_cpmap *const tk_hf_lower; /* Lowercase */
extern const size_t tk_hf_lower_n;
extern const uint32_t *const tk_hf_mark_flip; /* StripAccents: mark status differs */
extern const size_t tk_hf_mark_flip_n;

/* Per-call matching state (match data, JIT stack), lazily created. */
typedef struct {
    pcre2_match_data *md;
    pcre2_match_context *mctx;
    pcre2_jit_stack *jstack;
} tk_matcher;
void tk_matcher_free(tk_matcher *m);

/* HF Pattern::find_matches: spans covering s[0..n) in order, alternating
 * non-match/match, with the onig find_iter semantics for empty matches. */
air_status tk_find_matches(const tk_pattern *p, tk_matcher *mt, const char *s, size_t n,
                           tk_spans *out);

/* ========================================================================= */
/* Components                                                                 */
/* ========================================================================= */
typedef enum {
    TK_NORM_NFC,
    TK_NORM_NFD,
    TK_NORM_NFKC,
    TK_NORM_NFKD,
    TK_NORM_LOWERCASE,
    TK_NORM_STRIP,
    TK_NORM_STRIP_ACCENTS,
    TK_NORM_REPLACE,
    TK_NORM_PREPEND,
    TK_NORM_BYTELEVEL,
    TK_NORM_NMT
} tk_norm_type;
typedef struct {
    tk_norm_type type;
    int left, right; /* Strip */
    tk_pattern pat;  /* Replace */
    char *content;   /* Replace content / Prepend string */
    size_t content_len;
} tk_norm;

typedef enum {
    TK_SPLIT_REMOVED,
    TK_SPLIT_ISOLATED,
    TK_SPLIT_MERGED_PREV,
    TK_SPLIT_MERGED_NEXT,
    TK_SPLIT_CONTIGUOUS
} tk_split_behavior;

typedef enum {
    TK_PRE_SPLIT,
    TK_PRE_BYTELEVEL,
    TK_PRE_METASPACE,
    TK_PRE_DIGITS,
    TK_PRE_PUNCTUATION,
    TK_PRE_WHITESPACE,
    TK_PRE_WHITESPACE_SPLIT,
    TK_PRE_BERT
} tk_pre_type;
enum { TK_PREPEND_ALWAYS, TK_PREPEND_FIRST, TK_PREPEND_NEVER };
typedef struct {
    tk_pre_type type;
    tk_pattern pat;             /* Split / ByteLevel regex */
    tk_split_behavior behavior; /* Split, Punctuation */
    int invert;                 /* Split */
    int add_prefix_space;       /* ByteLevel */
    int use_regex;              /* ByteLevel */
    int individual_digits;      /* Digits */
    uint32_t replacement;       /* Metaspace */
    int prepend_scheme;         /* Metaspace */
    int split;                  /* Metaspace */
} tk_pre;

typedef enum {
    TK_DEC_BYTELEVEL,
    TK_DEC_METASPACE,
    TK_DEC_REPLACE,
    TK_DEC_BYTEFALLBACK,
    TK_DEC_FUSE,
    TK_DEC_STRIP,
    TK_DEC_BPE,
    TK_DEC_WORDPIECE
} tk_dec_type;
typedef struct {
    tk_dec_type type;
    uint32_t ch;        /* Metaspace replacement / Strip content */
    int prepend_scheme; /* Metaspace */
    int start, stop;    /* Strip */
    tk_pattern pat;     /* Replace */
    char *content;      /* Replace content, BPEDecoder suffix, WordPiece prefix */
    size_t content_len;
    int cleanup; /* WordPiece */
} tk_dec;

/* Post-processing: a list of ids to put before and after the sequence. */
typedef struct {
    int32_t *pre, *post;
    size_t n_pre, n_post;
} tk_post;

/* ========================================================================= */
/* BPE model (bpe.c)                                                          */
/* ========================================================================= */
typedef struct tk_cache tk_cache;
typedef struct {
    tk_strmap vocab; /* token string -> id */
    tk_pairmap merges;
    int32_t unk_id;    /* -1 if no unk_token */
    int has_unk_token; /* unk_token set (it must then be in the vocab) */
    int fuse_unk, byte_fallback, ignore_merges;
    char *prefix, *suffix; /* continuing_subword_prefix / end_of_word_suffix; NULL if empty */
    size_t prefix_len, suffix_len;
    int32_t byte_fb[256]; /* "<0xXX>" ids, -1 if absent */
    /* Byte-level fast path: bl_id[b] = id of the byte-level character of b. */
    int32_t bl_id[256];
    int bl_ready;
    tk_cache *cache;
} tk_bpe;

/* Fills byte_fb and bl_id from the vocabulary. */
void tk_bpe_build_byte_tables(tk_bpe *m);
/* Tokenizes one pre-tokenized piece; byte_level: s is raw bytes to be seen
 * through the GPT-2 byte->char map. Appends ids. */
air_status tk_bpe_word(const tk_bpe *m, const char *s, size_t n, int byte_level, tk_ids *out);
tk_cache *tk_cache_new(size_t capacity);
void tk_cache_free(tk_cache *c);
void tk_bpe_free(tk_bpe *m);

/* GPT-2 byte <-> unicode map. */
uint32_t tk_byte_to_char(unsigned char b);
int tk_char_to_byte(uint32_t cp); /* -1 if not a byte-level char */

/* ========================================================================= */
/* Added tokens                                                               */
/* ========================================================================= */
typedef struct {
    int32_t id;
    char *content;
    size_t len;
    char *norm; /* normalized content (== content when unchanged) */
    size_t norm_len;
    uint8_t special, lstrip, rstrip, single_word, normalized;
} tk_added;

typedef struct {
    /* node -> children in a pair map keyed (node, byte) -> child */
    tk_pairmap edges;
    int32_t *term; /* per node: index into the added array, -1 */
    int32_t n_nodes, cap_nodes;
    uint8_t first[256];
} tk_trie;

/* ========================================================================= */
/* The tokenizer                                                              */
/* ========================================================================= */
struct air_tokenizer {
    tk_arena arena;
    tk_bpe bpe;
    int32_t n_ids;          /* vocab size incl. added tokens */
    size_t n_vocab_entries; /* entries of the model vocabulary (HF get_vocab_size) */
    char **tok_str;         /* [n_ids] raw strings (NULL for holes) */
    uint32_t *tok_len;      /* [n_ids] */
    char **dec_str;         /* [n_ids] string fed to the decoder */
    uint32_t *dec_len;
    uint8_t *special; /* [n_ids] */
    tk_added *added;
    size_t n_added;
    tk_strmap added_map; /* content -> id */
    tk_trie trie_raw, trie_norm;
    int has_trie_raw, has_trie_norm;

    tk_norm *norm;
    size_t n_norm;
    tk_pre *pre;
    size_t n_pre;
    tk_post post;
    int has_post;
    tk_dec *dec;
    size_t n_dec;
    int has_decoder;

    char *bos_token, *eos_token, *chat_template;
    int32_t bos_id, eos_id;
};

/* Per-call scratch state of encode (one per call: encode is reentrant). */
#define TK_MAX_PRE 16
typedef struct {
    tk_matcher mt;
    tk_spans spans[TK_MAX_PRE];
    tk_bytes bufs[TK_MAX_PRE];
} tk_work;
void tk_work_free(tk_work *w);

/* normalize.c: runs the normalizer list on s, result in *out (reset first).
 * *lead_moved (may be NULL) is set when a normalizer removed the leading
 * characters, so the result no longer starts at the segment's first original
 * byte (HF offsets_original().0 != 0). */
air_status tk_normalize(const air_tokenizer *t, tk_matcher *mt, const char *s, size_t n,
                        tk_bytes *out, int *lead_moved);
/* pretok.c: runs the pre-tokenizers on one piece of normalized text and BPEs
 * the resulting words into out. at_origin: the piece starts at offset 0 of
 * the original input (Metaspace prepend_scheme "first"). */
air_status tk_pretok_and_bpe(const air_tokenizer *t, tk_work *w, const char *s, size_t n,
                             int at_origin, tk_ids *out);
/* Applies a split behavior to spans in place (HF NormalizedString::split);
 * removed spans are dropped. */
void tk_apply_behavior(tk_spans *sp, tk_split_behavior b, int invert);
/* decoder.c: decodes ids into *out (NUL-terminated). */
air_status tk_decode_ids(const air_tokenizer *t, const int32_t *ids, size_t n, int skip_special,
                         tk_bytes *out);

/* tokenizer.c: finalization shared by the JSON and array builders (fills the
 * id tables, added-token tries, byte tables, cache). */
air_status tk_finalize(air_tokenizer *t);
air_tokenizer *tk_alloc(void);
/* Adds an added token (copied into the arena). */
air_status tk_add_added(air_tokenizer *t, int32_t id, const char *content, size_t len, int special,
                        int lstrip, int rstrip, int single_word, int normalized, size_t *cap);

#endif
