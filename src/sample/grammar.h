/*
 * grammar.h - grammar-constrained decoding for format="json": whatever the
 * logits, the generated text is one valid JSON object.
 *
 * Basic usage (with generate.h):
 *
 *     air_json_grammar *g = NULL;
 *     int32_t eos[] = {eos_id};
 *     if (air_json_grammar_new(tok, eos, 1, &g)) fprintf(stderr, "%s\n", air_last_error());
 *     air_json_grammar_reset(g);                     // before each response
 *     air_json_grammar_set_budget(g, opt.max_tokens); // optional: close in time
 *     opt.constrain = air_json_grammar_constrain;
 *     opt.user = g;
 *     air_generate(e, kv, prompt, n_prompt, &opt, &ids, &n_ids, NULL);
 *     air_json_grammar_constrain(g, ids, n_ids, NULL); // sees the last token
 *     if (air_json_grammar_result(g) != AIR_JSON_COMPLETE) ...
 *     air_json_grammar_free(g);
 *
 * Construction precomputes the bytes of every token (the rule is in
 * docs/json-mode.md) and a trie of them; each constrain call walks the trie
 * with the byte-level JSON automaton of json_fsm.h from the current state,
 * skipping every subtree whose prefix is rejected.
 *
 * Thread safety: a grammar holds the state of one response; use one per
 * concurrent generation. The tokenizer is only read during air_json_grammar_new.
 */
#ifndef AIR_SAMPLE_GRAMMAR_H
#define AIR_SAMPLE_GRAMMAR_H

#include <stddef.h>
#include <stdint.h>

#include "airllm.h"
#include "sample/json_fsm.h"
#include "sample/schema.h"
#include "text/tokenizer.h"

typedef struct air_json_grammar air_json_grammar;

/* Precomputes, for every token id, the bytes it decodes to. Tokens that
 * decode to nothing, special tokens other than the EOS ids, and tokens whose
 * bytes can never appear in JSON text are always banned. eos_ids[n_eos]
 * (copied; may be NULL when n_eos is 0): tokens that end generation, allowed
 * only once the object is complete. Returns AIR_OK and *out (free with
 * air_json_grammar_free), or AIR_ERR_INVALID_ARG / AIR_ERR_NOMEM. The
 * grammar starts in the start state. */
air_status air_json_grammar_new(const air_tokenizer *tok, const int32_t *eos_ids, int n_eos,
                                air_json_grammar **out);

/* NULL is a no-op. */
void air_json_grammar_free(air_json_grammar *g);

/* Back to the start state for a new response; also turns the budget off. */
void air_json_grammar_reset(air_json_grammar *g);

/* Constrains responses to a compiled JSON schema (borrowed: keep it alive
 * while set), or back to any JSON object with NULL. Resets the state (and
 * the budget) like air_json_grammar_reset. */
void air_json_grammar_set_schema(air_json_grammar *g, const air_schema *schema);

/* Length-aware mode: at most `remaining_tokens` more tokens will be
 * generated after the tokens already passed to constrain (so call it right
 * after reset with max_tokens). From then on a token is allowed only if the
 * text can still be completed with the tokens left after it (counting one
 * token per byte of the shortest completion); when the budget is smaller
 * than that, only the tokens that get closest to the end are allowed.
 * A budget of at least 2 guarantees a complete object. Negative: off. */
void air_json_grammar_set_budget(air_json_grammar *g, int remaining_tokens);

/* The generate.h constrain callback (g is the air_json_grammar). Advances the
 * state over generated[n_seen..n) (generated[0..n) is the whole response so
 * far; if n is smaller than what was seen, the state is rebuilt from
 * generated[0..n)), fills allowed[n_vocab] (1 = allowed), and returns 1 when
 * generation must end: the object is complete, or a token that the mask
 * banned was generated anyway, or nothing can follow. Returns 0 otherwise.
 * allowed may be NULL to only advance the state: air_generate does not call
 * constrain after the last token when it stops at max_tokens, so call
 * air_json_grammar_constrain(g, ids, n_ids, NULL) before reading
 * air_json_grammar_result. */
int air_json_grammar_constrain(void *g, const int32_t *generated, int n, uint8_t *allowed);

/* Where the response stands: AIR_JSON_COMPLETE, AIR_JSON_PREFIX, or
 * AIR_JSON_INVALID if a banned token was passed to constrain. */
air_json_result air_json_grammar_result(const air_json_grammar *g);

/* Number of ids covered (the tokenizer's vocabulary size). */
int32_t air_json_grammar_n_vocab(const air_json_grammar *g);

/* The bytes token `id` contributes to the text (*len bytes, owned by the
 * grammar), or NULL for a banned or EOS token. */
const uint8_t *air_json_grammar_token_bytes(const air_json_grammar *g, int32_t id, size_t *len);

/* 1 if the budget guarantee holds for this vocabulary: every byte that a
 * shortest completion may need exists as a one-byte token. */
int air_json_grammar_budget_exact(const air_json_grammar *g);

#endif
