/*
 * fuzz_grammar.c - fuzz entry point for JSON mode.
 *
 * 1. The input as text through the JSON automaton: never crashes, and when it
 *    says "complete", cJSON parses the text as an object (a differential
 *    check against an independent parser).
 * 2. The input as a token sequence through the grammar over a small
 *    byte-level vocabulary (all 256 bytes plus multi-byte JSON pieces, an
 *    EOS): two input bytes pick a token; a token the mask bans is passed
 *    anyway when the first byte's top bit is set (if its bytes are invalid
 *    there, the grammar must then say "invalid" and end; if only the budget
 *    banned it, the response goes on), else skipped. When the grammar says "complete", the
 *    bytes of the kept tokens are a complete JSON object for the automaton
 *    and for cJSON. A budget from the first byte exercises the closing mode.
 */
#include <cjson/cJSON.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "sample/grammar.h"
#include "sample/json_fsm.h"
#include "text/tokenizer.h"

static int parses_as_object(const uint8_t *data, size_t size) {
    char *s = malloc(size + 1);
    if (!s)
        return 1;
    memcpy(s, data, size);
    s[size] = 0;
    const char *end = NULL;
    cJSON *j = cJSON_ParseWithLengthOpts(s, size + 1, &end, 1);
    int ok = j && cJSON_IsObject(j);
    cJSON_Delete(j);
    free(s);
    return ok;
}

/* GPT-2 byte-level alphabet: the vocabulary string of byte b. */
static void byte_piece(int b, char *out) {
    int printable = (b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174);
    int cp = b;
    if (!printable) {
        int n = 0;
        for (int x = 0; x < b; x++)
            n += !((x >= 33 && x <= 126) || (x >= 161 && x <= 172) || (x >= 174));
        cp = 256 + n;
    }
    if (cp < 0x80) {
        out[0] = (char)cp;
        out[1] = 0;
    } else {
        out[0] = (char)(0xC0 | (cp >> 6));
        out[1] = (char)(0x80 | (cp & 0x3F));
        out[2] = 0;
    }
}

/* Multi-byte pieces, written in bytes and mapped to the alphabet. */
static const char *const extra[] = {
    "{\"",    "\":",      "\": ",     "\":\"", "\",\"",   "\"}",  "\"]",     "}}",       "]]",
    "[[",     "{}",       "[]",       " \"",   ", ",      ",\n",  "\n  ",    "    ",     "true",
    "false",  "null",     "tr",       "ue",    "0.",      "1e",   "-0",      "12",       ".5",
    "e+",     "E-",       "\\u",      "\\n",   "\\\"",    "d83d", "\\ude00", "\xC3\xA9", "\xE2\x82",
    "\xAC\"", "\xF0\x9F", "\x98\x80", "caf",   "\"key\"", "[{",   "}]",      "\t\r\n",   "abc\"def",
};

static air_tokenizer *small_tokenizer(void) {
    enum { N_EXTRA = sizeof extra / sizeof *extra };
    char *tokens[256 + N_EXTRA + 1];
    int n = 0;
    for (int b = 0; b < 256; b++) {
        tokens[n] = malloc(4);
        byte_piece(b, tokens[n++]);
    }
    for (int i = 0; i < N_EXTRA; i++) {
        size_t len = strlen(extra[i]);
        char *p = malloc(len * 2 + 1);
        size_t k = 0;
        for (size_t j = 0; j < len; j++) {
            char tmp[4];
            byte_piece((uint8_t)extra[i][j], tmp);
            memcpy(p + k, tmp, strlen(tmp));
            k += strlen(tmp);
        }
        p[k] = 0;
        tokens[n++] = p;
    }
    tokens[n] = malloc(8);
    memcpy(tokens[n++], "<eos>", 6);
    int32_t *types = malloc(sizeof(int32_t) * (size_t)n);
    for (int i = 0; i < n; i++)
        types[i] = i == n - 1 ? AIR_TOK_TYPE_CONTROL : AIR_TOK_TYPE_NORMAL;
    air_tokenizer *tok = NULL;
    const char *merges[1] = {NULL};
    if (air_tokenizer_from_arrays(AIR_TOK_BPE_BYTELEVEL, (const char *const *)tokens, NULL, types,
                                  n, merges, 0, "gpt2", -1, n - 1, 0, &tok) != AIR_OK)
        tok = NULL;
    for (int i = 0; i < n; i++)
        free(tokens[i]);
    free(types);
    return tok;
}

/* Built once per process: the fuzzer calls the entry point many times. */
static air_tokenizer *g_tok;
static air_json_grammar *g_gram;

static void grammar_run(const uint8_t *data, size_t size) {
    if (!g_tok) {
        g_tok = small_tokenizer();
        int32_t eos = g_tok ? air_tokenizer_vocab_size(g_tok) - 1 : 0;
        if (!g_tok || air_json_grammar_new(g_tok, &eos, 1, &g_gram) != AIR_OK)
            abort(); /* the harness itself is broken */
    }
    if (size < 1)
        return;
    int32_t nv = air_json_grammar_n_vocab(g_gram);
    uint8_t *allowed = malloc((size_t)nv);
    int32_t *gen = malloc(sizeof(int32_t) * (size / 2 + 1));
    uint8_t *text = malloc(size * 8 + 1);
    if (!allowed || !gen || !text)
        goto out;
    air_json_grammar_reset(g_gram);
    if (data[0] & 1)
        air_json_grammar_set_budget(g_gram, 2 + data[0] / 4);
    int n = 0, forced = 0, stopped = 0;
    air_json_fsm fsm;
    air_jf_init(&fsm);
    size_t tl = 0;
    for (size_t i = 1; i + 1 < size; i += 2) {
        if (air_json_grammar_constrain(g_gram, gen, n, allowed)) {
            stopped = 1;
            break;
        }
        int32_t id = (int32_t)(((unsigned)data[i] << 8 | data[i + 1]) % (unsigned)nv);
        size_t len = 0;
        const uint8_t *b = air_json_grammar_token_bytes(g_gram, id, &len);
        if (!allowed[id]) {
            if (!(data[i] & 0x80))
                continue;
            /* banned by the budget only (the text stays valid), or invalid */
            air_json_fsm x = fsm;
            forced = !(b && air_jf_feed(&x, b, len));
        }
        gen[n++] = id;
        if (forced)
            break;
        if (!b || !air_jf_feed(&fsm, b, len))
            abort(); /* an allowed token the automaton rejects */
        memcpy(text + tl, b, len);
        tl += len;
    }
    int last = air_json_grammar_constrain(g_gram, gen, n, allowed);
    air_json_result r = air_json_grammar_result(g_gram);
    if (forced && (r != AIR_JSON_INVALID || !last))
        abort(); /* a banned token must end the response as invalid */
    if (!forced) {
        if (r == AIR_JSON_INVALID)
            abort();
        if (air_json_check(text, tl) != r)
            abort();
        if (r == AIR_JSON_COMPLETE && (!last || !parses_as_object(text, tl)))
            abort();
        if (stopped && r != AIR_JSON_COMPLETE)
            abort(); /* only a complete object ends a run of allowed tokens */
    }
out:
    free(allowed);
    free(gen);
    free(text);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    air_json_result r = air_json_check(data, size);
    if (r == AIR_JSON_COMPLETE && !parses_as_object(data, size))
        abort();
    grammar_run(data, size);
    return 0;
}
