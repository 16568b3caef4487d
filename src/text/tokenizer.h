/*
 * tokenizer.h - text <-> token ids, exactly as the Hugging Face `tokenizers`
 * library does it, in C (no Python at run time).
 *
 * A tokenizer is read from a model's own tokenizer.json (+ optional
 * tokenizer_config.json), or built from arrays (GGUF vocabularies). It
 * supports the BPE model in both of its families:
 *   - byte-level BPE (GPT-2, Llama 3, Qwen2/2.5/3, DeepSeek-V3): Split
 *     pre-tokenizers with PCRE2 regexes, ByteLevel pre-tokenizer/decoder;
 *   - SentencePiece-style BPE (Llama 2, Mistral, Gemma): Metaspace or
 *     Prepend+Replace normalizers, byte_fallback, fuse_unk.
 *
 * Basic usage:
 *
 *     air_tokenizer *tok = NULL;
 *     if (air_tokenizer_load("dir/tokenizer.json", "dir/tokenizer_config.json", &tok))
 *         fprintf(stderr, "%s\n", air_last_error());
 *     int32_t *ids; size_t n;
 *     air_tokenizer_encode(tok, "Hello", 5, 1, &ids, &n);   // [BOS, 9906]
 *     char *text;
 *     air_tokenizer_decode(tok, ids, n, 1, &text);          // "Hello"
 *     free(ids); free(text);
 *     air_tokenizer_free(tok);
 *
 * Thread safety: a loaded tokenizer is immutable except for an internal,
 * lock-free, insert-only word cache; encode/decode may be called from many
 * threads at once. An air_detok belongs to one thread at a time.
 *
 * Input text that is not valid UTF-8 is decoded lossily first: every maximal
 * invalid subsequence becomes U+FFFD, exactly like Python's
 * bytes.decode("utf-8", "replace") (and Rust's String::from_utf8_lossy), so
 * the ids are those HF gives for the lossily decoded string.
 *
 * See docs/tokenizer.md for the supported components and the exactness tests.
 */
#ifndef AIR_TEXT_TOKENIZER_H
#define AIR_TEXT_TOKENIZER_H

#include <stddef.h>
#include <stdint.h>

#include "airllm.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct air_tokenizer air_tokenizer;

/* Reads tokenizer.json (and tokenizer_config.json; config_path may be NULL).
 * Returns AIR_OK and *out (free with air_tokenizer_free), or an error whose
 * message names the file and the JSON path of the problem. */
air_status air_tokenizer_load(const char *tokenizer_json_path, const char *tokenizer_config_path,
                              air_tokenizer **out);

/* Same from memory. `json` need not be NUL-terminated; config_json (NUL-
 * terminated) may be NULL. */
air_status air_tokenizer_load_from_memory(const char *json, size_t len, const char *config_json,
                                          air_tokenizer **out);

/* Frees the tokenizer. NULL is a no-op. */
void air_tokenizer_free(air_tokenizer *tok);

/* Encodes `len` bytes of text. add_special: apply the post-processor (BOS
 * etc.) like HF add_special_tokens=True. On success *ids is malloc'd (caller
 * frees, non-NULL even when *n_ids is 0). */
air_status air_tokenizer_encode(const air_tokenizer *tok, const char *text, size_t len,
                                int add_special, int32_t **ids, size_t *n_ids);

/* Flags of air_tokenizer_encode_ex. */
enum {
    AIR_TOK_ADD_SPECIAL = 1, /* apply the post-processor (BOS etc.) */
    /* do not recognize special added tokens in the text: "<|im_start|>" typed
     * by a user is encoded as ordinary text (HF encode_special_tokens = True);
     * non-special added tokens are still matched */
    AIR_TOK_SPLIT_SPECIAL = 2
};

/* air_tokenizer_encode with flags (AIR_TOK_*). */
air_status air_tokenizer_encode_ex(const air_tokenizer *tok, const char *text, size_t len,
                                   unsigned flags, int32_t **ids, size_t *n_ids);

/* Decodes ids to text like HF Tokenizer.decode (ids outside the vocabulary
 * are skipped, as HF does). skip_special: drop special added tokens. On
 * success *text is a malloc'd NUL-terminated string the caller frees. */
air_status air_tokenizer_decode(const air_tokenizer *tok, const int32_t *ids, size_t n,
                                int skip_special, char **text);

/* Same, also returning the length (decoded text may contain NUL bytes). */
air_status air_tokenizer_decode_n(const air_tokenizer *tok, const int32_t *ids, size_t n,
                                  int skip_special, char **text, size_t *len);

/* Number of ids: 1 + the largest id of the model vocabulary and the added
 * tokens. */
int32_t air_tokenizer_vocab_size(const air_tokenizer *tok);

/* Raw vocabulary string of `id` (the added token's content for added tokens),
 * owned by the tokenizer; NULL if out of range or unused. */
const char *air_tokenizer_id_to_token(const air_tokenizer *tok, int32_t id);

/* Id of a raw vocabulary string or added token; -1 if absent. */
int32_t air_tokenizer_token_to_id(const air_tokenizer *tok, const char *token);

/* 1 if `id` is a special added token (skipped by decode with skip_special). */
int air_tokenizer_is_special(const air_tokenizer *tok, int32_t id);

/* From tokenizer_config.json when given: bos_token / eos_token strings (NULL
 * if none), chat_template (NULL if none; if it is a list of named templates,
 * the one named "default"). Owned by the tokenizer. */
const char *air_tokenizer_bos_token(const air_tokenizer *tok);
const char *air_tokenizer_eos_token(const air_tokenizer *tok);
const char *air_tokenizer_chat_template(const air_tokenizer *tok);

/* Ids of the bos/eos tokens named by tokenizer_config.json (or given to
 * air_tokenizer_from_arrays); -1 if none. */
int32_t air_tokenizer_bos_id(const air_tokenizer *tok);
int32_t air_tokenizer_eos_id(const air_tokenizer *tok);

/* ------------------------------------------------------------------------- */
/* Streaming decoder                                                          */
/* ------------------------------------------------------------------------- */
/* Feed ids one at a time; each push returns the text that became final
 * (possibly ""), never splitting a UTF-8 character: incomplete bytes are held
 * back until a later id completes them. The concatenated output equals
 * air_tokenizer_decode of all ids (the chunks are exactly those of HF's
 * tokenizers.decoders.DecodeStream, including the Metaspace/Strip handling of
 * the first token's leading space). */
typedef struct air_detok air_detok;

/* Returns NULL when out of memory. The tokenizer must outlive the detok. */
air_detok *air_detok_new(const air_tokenizer *tok, int skip_special);

/* *out: the newly completed text, NUL-terminated, owned by the detok, valid
 * until the next call on it. */
air_status air_detok_push(air_detok *d, int32_t id, const char **out);

/* Same, also returning the chunk's length (it may contain NUL bytes). */
air_status air_detok_push_n(air_detok *d, int32_t id, const char **out, size_t *len);

/* Emits what is held back (incomplete UTF-8 becomes U+FFFD as HF does) and
 * resets the stream. */
air_status air_detok_flush(air_detok *d, const char **out);

/* NULL is a no-op. */
void air_detok_free(air_detok *d);

/* ------------------------------------------------------------------------- */
/* Building from arrays (GGUF vocabularies)                                   */
/* ------------------------------------------------------------------------- */
typedef enum { AIR_TOK_BPE_BYTELEVEL, AIR_TOK_BPE_SPM } air_tok_family;

/* GGUF token types. */
enum {
    AIR_TOK_TYPE_NORMAL = 1,
    AIR_TOK_TYPE_UNKNOWN = 2,
    AIR_TOK_TYPE_CONTROL = 3,
    AIR_TOK_TYPE_USER_DEFINED = 4,
    AIR_TOK_TYPE_UNUSED = 5,
    AIR_TOK_TYPE_BYTE = 6
};

/* tokens[n], scores[n] (may be NULL), types[n] (GGUF token types, may be
 * NULL), merges[n_merges] as "a b" strings (byte-level) or NULL (SPM: merge
 * ranks derived from scores, like HF's SentencePiece converter), pre = the
 * GGUF tokenizer.ggml.pre name ("llama-bpe", "qwen2", "smollm", "gpt2",
 * "deepseek-v3", "default", ...; NULL = "default") mapped to the right
 * pre-tokenizer regexes, bos/eos ids (-1 if none), add_bos flag.
 * Control (3) and user-defined (4) tokens become added tokens (control ones
 * special). SPM tokenizers get Llama 2 semantics: a "▁" is prepended and
 * spaces become "▁", byte fallback when <0xXX> tokens exist. */
air_status air_tokenizer_from_arrays(air_tok_family fam, const char *const *tokens,
                                     const float *scores, const int32_t *types, int32_t n,
                                     const char *const *merges, int32_t n_merges, const char *pre,
                                     int32_t bos_id, int32_t eos_id, int add_bos,
                                     air_tokenizer **out);

/* More options for from_arrays (GGUF keys tokenizer.ggml.add_eos_token,
 * add_space_prefix, unknown_token_id). */
typedef struct {
    int add_bos;          /* prepend bos_id when add_special */
    int add_eos;          /* append eos_id when add_special */
    int add_space_prefix; /* SPM only: prepend "▁" (default 1; Gemma: 0) */
    int32_t bos_id, eos_id;
    int32_t unk_id; /* -1: the token typed UNKNOWN, if any */
} air_tok_array_opts;

air_tok_array_opts air_tok_array_default_opts(void);

air_status air_tokenizer_from_arrays_ex(air_tok_family fam, const char *const *tokens,
                                        const float *scores, const int32_t *types, int32_t n,
                                        const char *const *merges, int32_t n_merges,
                                        const char *pre, const air_tok_array_opts *opts,
                                        air_tokenizer **out);

#ifdef __cplusplus
}
#endif
#endif /* AIR_TEXT_TOKENIZER_H */
