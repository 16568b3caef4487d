/*
 * test_grammar.c - JSON mode: the byte automaton on a corpus of valid and
 * invalid texts, the shortest-completion count, the token byte rule, and
 * sampled generations from random logits through real tokenizers (llama3_1:
 * byte-level BPE, llama2: SentencePiece) whose decoded text must parse with
 * cJSON as an object every time. Also prints the mask time per token.
 */
#include <cjson/cJSON.h>
#include <stdint.h>
#include <time.h>

#include "model/forward.h"
#include "model/kvcache.h"
#include "runtime/generate.h"
#include "sample/grammar.h"
#include "sample/json_fsm.h"
#include "source/source.h"
#include "store/store.h"
#include "test.h"
#include "text/tokenizer.h"

#if defined(__SANITIZE_ADDRESS__)
#define UNDER_SANITIZER 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define UNDER_SANITIZER 1
#endif
#endif
#ifndef UNDER_SANITIZER
#define UNDER_SANITIZER 0
#endif

/* ------------------------------------------------------------------------- */
/* The automaton alone                                                        */
/* ------------------------------------------------------------------------- */

static air_json_result check_str(const char *s) {
    return air_json_check((const uint8_t *)s, strlen(s));
}

static const char *complete_cases[] = {
    "{}",
    "{\"a\":1}",
    "{ \"a\" : 1 }",
    "{\"a\":[]}",
    "{\"a\":[1,2,3],\"b\":{\"c\":null}}",
    "{\"a\":true,\"b\":false,\"c\":null}",
    "{\"n\":0}",
    "{\"n\":-0}",
    "{\"n\":-0.0}",
    "{\"n\":0.5e10}",
    "{\"n\":1E+2}",
    "{\"n\":1e-2}",
    "{\"n\":123456789012345678901234567890}",
    "{\"n\":-12.25E-007}",
    "{\"n\":[0,1,-1,10,0.0,1.5e3]}",
    "{\"s\":\"\\\"\\\\\\/\\b\\f\\n\\r\\t\"}",
    "{\"s\":\"\\u0041\\u00e9\\uFFFF\"}",
    "{\"s\":\"\\ud83d\\ude00\"}",
    "{\"s\":\"\\uD800\\uDC00\"}",
    "{\"s\":\"\\uDBFF\\uDFFF\"}",
    "{\"s\":\"caf\xC3\xA9\"}",
    "{\"s\":\"\xE2\x82\xAC \xF0\x9F\x98\x80 \xED\x9F\xBF \xEE\x80\x80 \xF4\x8F\xBF\xBF\"}",
    "{\"s\":\"\x7F\"}",
    "{\"\":\"\"}",
    "{\"a\":{\"b\":{\"c\":{}}}}",
    "{\"a\":[[[[]]]]}",
    "{\n  \"a\": 1,\n  \"b\": [\n    2\n  ]\n}",
    "{\"a\":1\t,\r\n\"b\":2}",
    "{\"a\":\"x y\"}",
    "{\"a\":[{},[],\"\",0,true]}",
};

static const char *prefix_cases[] = {
    "",
    "{",
    "{\"a",
    "{\"a\"",
    "{\"a\":",
    "{\"a\":-",
    "{\"a\":1",
    "{\"a\":1.",
    "{\"a\":1.5e",
    "{\"a\":1.5e+",
    "{\"a\":tr",
    "{\"a\":\"\\",
    "{\"a\":\"\\u00",
    "{\"a\":\"\\uD83D",
    "{\"a\":\"\\uD83D\\",
    "{\"a\":\"\\uD83D\\u",
    "{\"a\":\"\\uD83D\\uDE",
    "{\"a\":\"\xE2",
    "{\"a\":\"\xE2\x82",
    "{\"a\":\"\xF0\x9F\x98",
    "{\"a\":[1,",
    "{\"a\":[1,[",
    "{\"a\":1,",
    "{\"a\":1,\"b\"",
};

static const char *invalid_cases[] = {
    " {}",
    "\n{}",
    "[]",
    "\"a\"",
    "1",
    "{}}",
    "{} ",
    "{}x",
    "{,}",
    "{\"a\":1,}",
    "{\"a\"}",
    "{\"a\" 1}",
    "{a:1}",
    "{'a':1}",
    "{\"a\":[1,]}",
    "{\"a\":[,1]}",
    "{\"a\":[1 2]}",
    "{\"a\":]",
    "{\"a\":[}",
    "{\"a\":{]",
    "{\"a\":01}",
    "{\"a\":-01}",
    "{\"a\":00}",
    "{\"a\":1.}",
    "{\"a\":.5}",
    "{\"a\":+1}",
    "{\"a\":1e}",
    "{\"a\":1e+}",
    "{\"a\":1.e5}",
    "{\"a\":--1}",
    "{\"a\":-}",
    "{\"a\":0x10}",
    "{\"a\":1.5.2}",
    "{\"a\":1e5.2}",
    "{\"a\":1e5e2}",
    "{\"a\":Infinity}",
    "{\"a\":NaN}",
    "{\"a\":tru}",
    "{\"a\":True}",
    "{\"a\":nul}",
    "{\"a\":truex}",
    "{\"a\":\"\\x\"}",
    "{\"a\":\"\\U0041\"}",
    "{\"a\":\"\\u004\"}",
    "{\"a\":\"\\u00G0\"}",
    "{\"a\":\"\\'\"}",
    "{\"a\":\"\t\"}",
    "{\"a\":\"\n\"}",
    "{\"a\":\"\x01\"}",
    "{\"a\":\"\\uDC00\"}",
    "{\"a\":\"\\uD800\"}",
    "{\"a\":\"\\uD800x\"}",
    "{\"a\":\"\\uD800\\n\"}",
    "{\"a\":\"\\uD800\\u0041\"}",
    "{\"a\":\"\\uD800\\uD800\"}",
    "{\"a\":\"\x80\"}",
    "{\"a\":\"\xC0\x80\"}",
    "{\"a\":\"\xC1\xBF\"}",
    "{\"a\":\"\xE0\x80\x80\"}",
    "{\"a\":\"\xE0\x9F\xBF\"}",
    "{\"a\":\"\xED\xA0\x80\"}",
    "{\"a\":\"\xF0\x80\x80\x80\"}",
    "{\"a\":\"\xF0\x8F\xBF\xBF\"}",
    "{\"a\":\"\xF4\x90\x80\x80\"}",
    "{\"a\":\"\xF5\x80\x80\x80\"}",
    "{\"a\":\"\xFF\"}",
    "{\"a\":\"\xC3\"}",
    "{\"a\":\"\xE2\x82\"}",
    "{\"a\":\"\xC3\x41\"}",
    "{\"a\":\"\xE2\x82\xAC\xAC\"}",
    "{\"a\":1}\n",
    "{\"a\":1} {}",
    "{\"a\"\xC2\xA0:1}",
    "{\"a\":\xC2\xA0 1}",
    "{\"a\":1,,\"b\":2}",
    "{\"a\"::1}",
    "{\"a\":1:2}",
    "{\"a\":[1}",
    "{\"a\":{\"b\":1]}",
    "{/*c*/}",
};

TEST(automaton_corpus) {
    for (size_t i = 0; i < sizeof complete_cases / sizeof *complete_cases; i++)
        if (check_str(complete_cases[i]) != AIR_JSON_COMPLETE)
            T_FAIL("complete case %zu not accepted: %s", i, complete_cases[i]);
    for (size_t i = 0; i < sizeof prefix_cases / sizeof *prefix_cases; i++)
        if (check_str(prefix_cases[i]) != AIR_JSON_PREFIX)
            T_FAIL("prefix case %zu not a prefix: %s", i, prefix_cases[i]);
    for (size_t i = 0; i < sizeof invalid_cases / sizeof *invalid_cases; i++)
        if (check_str(invalid_cases[i]) != AIR_JSON_INVALID)
            T_FAIL("invalid case %zu accepted: %s", i, invalid_cases[i]);
}

/* Every complete case also parses with cJSON (the automaton is not looser
 * than an independent parser on the valid side). */
TEST(complete_cases_parse_with_cjson) {
    for (size_t i = 0; i < sizeof complete_cases / sizeof *complete_cases; i++) {
        const char *end = NULL;
        cJSON *j = cJSON_ParseWithOpts(complete_cases[i], &end, 1);
        if (!j || !cJSON_IsObject(j))
            T_FAIL("cJSON rejects complete case %zu: %s", i, complete_cases[i]);
        cJSON_Delete(j);
    }
}

static int depth_text(int depth, char *buf) {
    int n = 0;
    buf[n++] = '{';
    buf[n++] = '"';
    buf[n++] = 'a';
    buf[n++] = '"';
    buf[n++] = ':';
    for (int i = 1; i < depth; i++)
        buf[n++] = '[';
    buf[n++] = '0';
    for (int i = 1; i < depth; i++)
        buf[n++] = ']';
    buf[n++] = '}';
    buf[n] = 0;
    return n;
}

TEST(depth_and_whitespace_limits) {
    char buf[256];
    depth_text(AIR_JSON_MAX_DEPTH, buf);
    ASSERT_EQ_INT(check_str(buf), AIR_JSON_COMPLETE);
    depth_text(AIR_JSON_MAX_DEPTH + 1, buf);
    ASSERT_EQ_INT(check_str(buf), AIR_JSON_INVALID);
    /* whitespace runs: AIR_JSON_MAX_WS bytes pass, one more fails */
    char ws[128];
    snprintf(ws, sizeof ws, "{%*s\"a\":1}", AIR_JSON_MAX_WS, "");
    ASSERT_EQ_INT(check_str(ws), AIR_JSON_COMPLETE);
    snprintf(ws, sizeof ws, "{%*s\"a\":1}", AIR_JSON_MAX_WS + 1, "");
    ASSERT_EQ_INT(check_str(ws), AIR_JSON_INVALID);
    snprintf(ws, sizeof ws, "{\"a\":1%*s}", AIR_JSON_MAX_WS, "");
    ASSERT_EQ_INT(check_str(ws), AIR_JSON_COMPLETE);
    snprintf(ws, sizeof ws, "{\"a\":1%*s}", AIR_JSON_MAX_WS + 1, "");
    ASSERT_EQ_INT(check_str(ws), AIR_JSON_INVALID);
    /* a run is per gap: many gaps of the maximum are fine */
    snprintf(ws, sizeof ws, "{%*s\"a\"%*s:%*s1%*s}", AIR_JSON_MAX_WS, "", AIR_JSON_MAX_WS, "",
             AIR_JSON_MAX_WS, "", AIR_JSON_MAX_WS, "");
    ASSERT_EQ_INT(check_str(ws), AIR_JSON_COMPLETE);
    /* spaces inside strings are not limited */
    snprintf(ws, sizeof ws, "{\"%*s\":1}", 100, "");
    ASSERT_EQ_INT(check_str(ws), AIR_JSON_COMPLETE);
}

/* Follows the shortest completion byte by byte: from every prefix (of the
 * complete cases and the prefix cases), some byte of the documented set lowers
 * min_close by exactly one, until the text is complete. */
static int completes_in_min_close(const uint8_t *p, size_t n) {
    static const uint8_t set[] = {'{', '"', ':', '0', '}', ']', '\\', 'u',  'D',
                                  'C', 'r', 'e', 'a', 'l', 's', 0x80, 0x90, 0xA0};
    air_json_fsm s;
    air_jf_init(&s);
    if (!air_jf_feed(&s, p, n))
        return -1;
    int need = air_jf_min_close(&s);
    for (int k = 0; k < need; k++) {
        int c0 = air_jf_min_close(&s), moved = 0;
        for (size_t i = 0; i < sizeof set && !moved; i++) {
            air_json_fsm x = s;
            if (air_jf_step(&x, set[i]) && air_jf_min_close(&x) == c0 - 1) {
                s = x;
                moved = 1;
            }
        }
        if (!moved)
            return 0;
    }
    return s.mode == AIR_JF_DONE;
}

TEST(min_close_is_exact) {
    const char **lists[2] = {complete_cases, prefix_cases};
    size_t counts[2] = {sizeof complete_cases / sizeof *complete_cases,
                        sizeof prefix_cases / sizeof *prefix_cases};
    for (int l = 0; l < 2; l++)
        for (size_t i = 0; i < counts[l]; i++) {
            const uint8_t *p = (const uint8_t *)lists[l][i];
            size_t n = strlen(lists[l][i]);
            for (size_t k = 0; k <= n; k++)
                if (completes_in_min_close(p, k) != 1)
                    T_FAIL("shortest completion fails after %zu bytes of %s", k, lists[l][i]);
        }
    char buf[256];
    int n = depth_text(AIR_JSON_MAX_DEPTH, buf);
    for (int k = 0; k <= n; k++)
        ASSERT_EQ_INT(completes_in_min_close((const uint8_t *)buf, (size_t)k), 1);
}

/* ------------------------------------------------------------------------- */
/* Real tokenizers                                                            */
/* ------------------------------------------------------------------------- */

static const char *tmp_dir;

/* Gunzips tokenizers/<name>/{tokenizer,tokenizer_config}.json.gz into the
 * scratch folder and loads them. */
static air_tokenizer *load_tok(const char *name) {
    char dst[4096], cmd[9000], js[4200], cfg[4200];
    snprintf(dst, sizeof dst, "%s/%s", tmp_dir, name);
    snprintf(cmd, sizeof cmd, "mkdir -p '%s'", dst);
    if (system(cmd) != 0)
        return NULL;
    const char *files[2] = {"tokenizer.json", "tokenizer_config.json"};
    for (int i = 0; i < 2; i++) {
        char rel[512];
        snprintf(rel, sizeof rel, "tokenizers/%s/%s.gz", name, files[i]);
        snprintf(cmd, sizeof cmd, "gzip -dc '%s' > '%s/%s'", test_data(rel), dst, files[i]);
        if (system(cmd) != 0) {
            fprintf(stderr, "cannot gunzip %s\n", test_data(rel));
            return NULL;
        }
    }
    snprintf(js, sizeof js, "%s/tokenizer.json", dst);
    snprintf(cfg, sizeof cfg, "%s/tokenizer_config.json", dst);
    air_tokenizer *tok = NULL;
    if (air_tokenizer_load(js, cfg, &tok) != AIR_OK) {
        fprintf(stderr, "loading %s: %s\n", js, air_last_error());
        return NULL;
    }
    return tok;
}

static air_tokenizer *tok_llama3, *tok_llama2;
static air_json_grammar *gram_llama3, *gram_llama2;

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static int setup(void) {
    tok_llama3 = load_tok("llama3_1");
    tok_llama2 = load_tok("llama2");
    if (!tok_llama3 || !tok_llama2)
        return 0;
    int32_t eos3[2] = {air_tokenizer_eos_id(tok_llama3),
                       air_tokenizer_token_to_id(tok_llama3, "<|eot_id|>")};
    int32_t eos2[1] = {air_tokenizer_eos_id(tok_llama2)};
    double t0 = now_s();
    if (air_json_grammar_new(tok_llama3, eos3, 2, &gram_llama3) != AIR_OK) {
        fprintf(stderr, "grammar llama3_1: %s\n", air_last_error());
        return 0;
    }
    double t1 = now_s();
    if (air_json_grammar_new(tok_llama2, eos2, 1, &gram_llama2) != AIR_OK) {
        fprintf(stderr, "grammar llama2: %s\n", air_last_error());
        return 0;
    }
    fprintf(stderr, "grammar construction: llama3_1 %.0f ms, llama2 %.0f ms\n", (t1 - t0) * 1e3,
            (now_s() - t1) * 1e3);
    return 1;
}

static int bytes_are(const air_json_grammar *g, const air_tokenizer *tok, const char *piece,
                     const char *want, size_t want_len) {
    int32_t id = air_tokenizer_token_to_id(tok, piece);
    size_t len = 0;
    const uint8_t *b = air_json_grammar_token_bytes(g, id, &len);
    if (!want)
        return id >= 0 && b == NULL;
    return id >= 0 && b && len == want_len && memcmp(b, want, len) == 0;
}

TEST(token_bytes_rule) {
    if (!gram_llama3 || !gram_llama2)
        T_FAIL("tokenizers not loaded");
    /* byte-level: "Ġ" is a space, "Ċ" a newline */
    ASSERT_TRUE(bytes_are(gram_llama3, tok_llama3, "\xC4\xA0{", " {", 2));
    ASSERT_TRUE(bytes_are(gram_llama3, tok_llama3, "\xC4\x8A", "\n", 1));
    ASSERT_TRUE(bytes_are(gram_llama3, tok_llama3, "{\"", "{\"", 2));
    /* a byte-level token that is a lone UTF-8 lead byte keeps its byte */
    ASSERT_TRUE(bytes_are(gram_llama3, tok_llama3, "\xC3\xA2", "\xE2", 1));
    /* special tokens are banned; EOS has no bytes */
    ASSERT_TRUE(bytes_are(gram_llama3, tok_llama3, "<|begin_of_text|>", NULL, 0));
    ASSERT_TRUE(bytes_are(gram_llama3, tok_llama3, "<|eot_id|>", NULL, 0));
    /* SentencePiece: marker -> space (kept even where the lone decode strips
     * it), byte fallback -> the byte */
    ASSERT_TRUE(bytes_are(gram_llama2, tok_llama2, "\xE2\x96\x81{", " {", 2));
    ASSERT_TRUE(bytes_are(gram_llama2, tok_llama2, "\xE2\x96\x81", " ", 1));
    ASSERT_TRUE(bytes_are(gram_llama2, tok_llama2, "<0x0A>", "\n", 1));
    ASSERT_TRUE(bytes_are(gram_llama2, tok_llama2, "<0xE2>", "\xE2", 1));
    ASSERT_TRUE(bytes_are(gram_llama2, tok_llama2, "{", "{", 1));
    ASSERT_TRUE(bytes_are(gram_llama2, tok_llama2, "<0x01>", NULL, 0)); /* never in JSON */
    ASSERT_TRUE(bytes_are(gram_llama2, tok_llama2, "<s>", NULL, 0));
    ASSERT_TRUE(air_json_grammar_budget_exact(gram_llama3));
    ASSERT_TRUE(air_json_grammar_budget_exact(gram_llama2));
}

/* The first mask allows exactly the tokens starting with '{' that form a
 * valid prefix; after a complete object, constrain ends the generation. */
TEST(mask_start_and_end) {
    if (!gram_llama3)
        T_FAIL("tokenizer not loaded");
    air_json_grammar *g = gram_llama3;
    int32_t nv = air_json_grammar_n_vocab(g);
    uint8_t *allowed = malloc((size_t)nv);
    air_json_grammar_reset(g);
    ASSERT_EQ_INT(air_json_grammar_constrain(g, NULL, 0, allowed), 0);
    int n_allowed = 0, bad = 0;
    for (int32_t t = 0; t < nv; t++) {
        size_t len;
        const uint8_t *b = air_json_grammar_token_bytes(g, t, &len);
        int ok = b && air_json_check(b, len) != AIR_JSON_INVALID;
        n_allowed += allowed[t];
        bad += ok != allowed[t];
    }
    ASSERT_EQ_INT(bad, 0);
    ASSERT_TRUE(n_allowed > 1);
    ASSERT_TRUE(allowed[air_tokenizer_token_to_id(tok_llama3, "{")]);
    ASSERT_TRUE(!allowed[air_tokenizer_token_to_id(tok_llama3, "\xC4\xA0{")]);
    int32_t ids[64];
    size_t n_ids = 0;
    int32_t *enc;
    size_t n_enc;
    const char *text = "{\"name\": \"caf\xC3\xA9 \xF0\x9F\x98\x80\", \"n\": [1, 2.5e3, true]}";
    ASSERT_OK(air_tokenizer_encode(tok_llama3, text, strlen(text), 0, &enc, &n_enc));
    for (size_t i = 0; i < n_enc && i < 64; i++)
        ids[n_ids++] = enc[i];
    free(enc);
    for (size_t i = 1; i < n_ids; i++) {
        ASSERT_EQ_INT(air_json_grammar_constrain(g, ids, (int)i, allowed), 0);
        ASSERT_TRUE(allowed[ids[i]]);
    }
    ASSERT_EQ_INT(air_json_grammar_constrain(g, ids, (int)n_ids, allowed), 1);
    ASSERT_EQ_INT(air_json_grammar_result(g), AIR_JSON_COMPLETE);
    ASSERT_TRUE(allowed[air_tokenizer_eos_id(tok_llama3)]);
    /* a banned token passed anyway: the result is invalid and generation ends */
    air_json_grammar_reset(g);
    int32_t bad_ids[1] = {air_tokenizer_token_to_id(tok_llama3, "}")};
    ASSERT_EQ_INT(air_json_grammar_constrain(g, bad_ids, 1, allowed), 1);
    ASSERT_EQ_INT(air_json_grammar_result(g), AIR_JSON_INVALID);
    /* a shorter history rebuilds the state */
    ASSERT_EQ_INT(air_json_grammar_constrain(g, ids, 0, allowed), 0);
    ASSERT_EQ_INT(air_json_grammar_result(g), AIR_JSON_PREFIX);
    ASSERT_EQ_INT(air_json_grammar_constrain(g, ids, 2, allowed), 0);
    ASSERT_EQ_INT(air_json_grammar_result(g), AIR_JSON_PREFIX);
    free(allowed);
}

/* The mask equals a token-by-token check from the same state, for states in
 * every mode (strings take a separate fast path in the mask search). The
 * states are reached by feeding a text's tokens. */
/* A budget of 255 tokens or more leaves the mask as without one: the costs
 * are bytes, and 255 marks a banned token, so a larger budget must not let
 * banned tokens through. */
TEST(large_budget_keeps_the_mask) {
    if (!gram_llama3)
        T_FAIL("tokenizer not loaded");
    air_json_grammar *g = gram_llama3;
    int32_t nv = air_json_grammar_n_vocab(g);
    uint8_t *free_mask = malloc((size_t)nv), *allowed = malloc((size_t)nv);
    air_json_grammar_reset(g);
    air_json_grammar_set_budget(g, -1);
    air_json_grammar_constrain(g, NULL, 0, free_mask);
    const int budgets[] = {254, 255, 256, 257, 300, 100000};
    for (size_t i = 0; i < sizeof budgets / sizeof budgets[0]; i++) {
        air_json_grammar_reset(g);
        air_json_grammar_set_budget(g, budgets[i]);
        ASSERT_EQ_INT(air_json_grammar_constrain(g, NULL, 0, allowed), 0);
        ASSERT_TRUE(memcmp(allowed, free_mask, (size_t)nv) == 0);
    }
    air_json_grammar_set_budget(g, -1);
    free(free_mask);
    free(allowed);
}

TEST(mask_matches_brute_force) {
    if (!gram_llama3 || !gram_llama2)
        T_FAIL("tokenizers not loaded");
    static const char *prefixes[] = {
        "{",
        "{\"k",
        "{\"k\"",
        "{\"k\": ",
        "{\"k\": \"v",
        "{\"k\": \"\\",
        "{\"k\": \"\\u0",
        "{\"k\": \"\\ud83d",
        "{\"k\": [1",
        "{\"k\": [1.",
        "{\"k\": [1e",
        "{\"k\": [-",
        "{\"k\": [0",
        "{\"k\": [tr",
        "{\"k\": [{\"a\": {\"b",
        "{\"k\": []",
        "{\"k\": [], ",
        "{\"k\": \"caf",
        "{\"k\":\"\\\"",
        "{\"k\": 1, \"",
    };
    air_json_grammar *gs[2] = {gram_llama3, gram_llama2};
    for (int k = 0; k < 2; k++) {
        air_json_grammar *g = gs[k];
        int32_t nv = air_json_grammar_n_vocab(g);
        uint8_t *allowed = malloc((size_t)nv);
        int32_t single[256];
        for (int b = 0; b < 256; b++)
            single[b] = -1;
        for (int32_t t = nv - 1; t >= 0; t--) {
            size_t len;
            const uint8_t *b = air_json_grammar_token_bytes(g, t, &len);
            if (b && len == 1)
                single[b[0]] = t;
        }
        for (size_t p = 0; p < sizeof prefixes / sizeof *prefixes; p++) {
            /* one one-byte token per byte (SentencePiece would add a space
             * in front of an encoded text) */
            size_t n_enc = strlen(prefixes[p]);
            int32_t *enc = malloc(sizeof(int32_t) * (n_enc + 1));
            for (size_t i = 0; i < n_enc; i++)
                enc[i] = single[(uint8_t)prefixes[p][i]];
            air_json_fsm s;
            air_jf_init(&s);
            for (size_t i = 0; i < n_enc; i++) {
                size_t len;
                const uint8_t *b = air_json_grammar_token_bytes(g, enc[i], &len);
                ASSERT_TRUE(b && air_jf_feed(&s, b, len));
            }
            air_json_grammar_reset(g);
            ASSERT_EQ_INT(air_json_grammar_constrain(g, enc, (int)n_enc, allowed), 0);
            int mismatches = 0, n_ok = 0;
            for (int32_t t = 0; t < nv; t++) {
                size_t len;
                const uint8_t *b = air_json_grammar_token_bytes(g, t, &len);
                air_json_fsm x = s;
                int ok = b && air_jf_feed(&x, b, len);
                n_ok += ok;
                if (ok != allowed[t] && mismatches++ < 3)
                    fprintf(stderr, "prefix %s: token %d allowed %d, expected %d\n", prefixes[p],
                            (int)t, allowed[t], ok);
            }
            free(enc);
            if (mismatches)
                T_FAIL("%d mask mismatches after %s", mismatches, prefixes[p]);
            ASSERT_TRUE(n_ok > 0);
        }
        free(allowed);
    }
}

/* splitmix64 */
static uint64_t rng_next(uint64_t *s) {
    uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static double rng_unit(uint64_t *s) {
    return (double)(rng_next(s) >> 11) / 9007199254740992.0;
}

/* Draws from softmax(logits) over the allowed tokens (temperature 1, no
 * truncation). w: scratch of nv floats. Logits stay below 20, so exp needs
 * no max subtraction. */
static int32_t draw(const float *logits, const uint8_t *allowed, int32_t nv, float *w,
                    uint64_t *rs) {
    double sum = 0;
    for (int32_t t = 0; t < nv; t++) {
        w[t] = allowed[t] ? expf(logits[t]) : 0.0f;
        sum += w[t];
    }
    if (sum <= 0)
        return -1;
    double u = rng_unit(rs) * sum, c = 0;
    int32_t last = -1;
    for (int32_t t = 0; t < nv; t++)
        if (w[t] > 0) {
            c += w[t];
            last = t;
            if (c >= u)
                return t;
        }
    return last;
}

static int valid_utf8(const unsigned char *s, size_t n) {
    air_json_fsm f;
    memset(&f, 0, sizeof f);
    for (size_t i = 0; i < n; i++) {
        unsigned c = s[i];
        if (c < 0x80)
            continue;
        size_t len = c >= 0xF0 ? 4 : c >= 0xE0 ? 3 : c >= 0xC2 ? 2 : 0;
        if (!len || c > 0xF4 || i + len > n)
            return 0;
        uint32_t cp = c & (0x7F >> len);
        for (size_t k = 1; k < len; k++) {
            if ((s[i + k] & 0xC0) != 0x80)
                return 0;
            cp = (cp << 6) | (s[i + k] & 0x3F);
        }
        if ((len == 3 && cp < 0x800) || (len == 4 && (cp < 0x10000 || cp > 0x10FFFF)) ||
            (cp >= 0xD800 && cp <= 0xDFFF))
            return 0;
        i += len - 1;
    }
    return 1;
}

typedef struct {
    int runs, parsed, objects, eos_stops;
    double mask_s;
    long masks;
    int max_len;
} gen_report;

/* bias: extra logit for tokens whose bytes contain this character (0: none),
 * to push a random model toward whitespace or brackets. */
static void run_generations(const air_tokenizer *tok, air_json_grammar *g, int n_runs,
                            int max_tokens, uint64_t seed, char bias, gen_report *rep) {
    int32_t nv = air_json_grammar_n_vocab(g);
    float *logits = malloc(sizeof(float) * (size_t)nv);
    float *w = malloc(sizeof(float) * (size_t)nv);
    uint8_t *allowed = malloc((size_t)nv);
    int32_t *gen = malloc(sizeof(int32_t) * (size_t)(max_tokens + 1));
    uint8_t *boost = calloc((size_t)nv, 1);
    if (bias)
        for (int32_t t = 0; t < nv; t++) {
            size_t len;
            const uint8_t *b = air_json_grammar_token_bytes(g, t, &len);
            boost[t] = b && memchr(b, bias, len) != NULL;
        }
    int32_t eos = air_tokenizer_eos_id(tok);
    for (int r = 0; r < n_runs; r++) {
        uint64_t rs = seed * 7919 + (uint64_t)r;
        air_json_grammar_reset(g);
        air_json_grammar_set_budget(g, max_tokens);
        int n = 0;
        while (n < max_tokens) {
            /* a random-weight model: logits uniform in [-6, 6) */
            for (int32_t t = 0; t < nv; t++)
                logits[t] = (float)(12.0 * rng_unit(&rs) - 6.0) + (boost[t] ? 8.0f : 0.0f);
            double t0 = now_s();
            int stop = air_json_grammar_constrain(g, gen, n, allowed);
            rep->mask_s += now_s() - t0;
            rep->masks++;
            if (stop)
                break;
            int32_t id = draw(logits, allowed, nv, w, &rs);
            if (id < 0 || id == eos) {
                rep->eos_stops++;
                break;
            }
            gen[n++] = id;
        }
        char *text = NULL;
        size_t len = 0;
        rep->runs++;
        if (air_tokenizer_decode_n(tok, gen, (size_t)n, 1, &text, &len) != AIR_OK)
            continue;
        if (n > rep->max_len)
            rep->max_len = n;
        const char *end = NULL;
        cJSON *j = strlen(text) == len && valid_utf8((const unsigned char *)text, len)
                       ? cJSON_ParseWithOpts(text, &end, 1)
                       : NULL;
        if (j) {
            rep->parsed++;
            rep->objects += cJSON_IsObject(j);
        } else {
            fprintf(stderr, "run %d (seed %llu): not JSON (%d tokens): %s\n", r,
                    (unsigned long long)seed, n, text);
        }
        if (r < 3 && !bias && seed == 1000)
            fprintf(stderr, "  sample: %.300s\n", text);
        cJSON_Delete(j);
        free(text);
    }
    free(logits);
    free(w);
    free(allowed);
    free(gen);
    free(boost);
}

static void report(const char *name, const gen_report *rep) {
    fprintf(stderr,
            "%s: %d generations, %d parse as JSON, %d objects; longest %d tokens; "
            "mask %.3f ms per token (%ld masks)\n",
            name, rep->runs, rep->parsed, rep->objects, rep->max_len,
            rep->masks ? rep->mask_s * 1e3 / (double)rep->masks : 0.0, rep->masks);
}

TEST(random_generations_parse) {
    if (!gram_llama3 || !gram_llama2)
        T_FAIL("tokenizers not loaded");
    int per = UNDER_SANITIZER ? 3 : 25; /* per seed group; 4 groups x 2 tokenizers */
    gen_report r3 = {0}, r2 = {0};
    double t0 = now_s();
    for (uint64_t s = 1; s <= 4; s++) {
        run_generations(tok_llama3, gram_llama3, per, 64, s * 1000, 0, &r3);
        run_generations(tok_llama2, gram_llama2, per, 64, s * 1000, 0, &r2);
    }
    report("llama3_1", &r3);
    report("llama2", &r2);
    fprintf(stderr, "(%.1f s in all, with the random logits and the draws)\n", now_s() - t0);
    ASSERT_EQ_INT(r3.parsed, r3.runs);
    ASSERT_EQ_INT(r3.objects, r3.runs);
    ASSERT_EQ_INT(r2.parsed, r2.runs);
    ASSERT_EQ_INT(r2.objects, r2.runs);
}

/* Random models pushed toward whitespace, brackets or escapes still give
 * valid JSON within the budget, and runs of tiny budgets close at once. */
TEST(biased_generations_parse) {
    if (!gram_llama3 || !gram_llama2)
        T_FAIL("tokenizers not loaded");
    int per = UNDER_SANITIZER ? 1 : 6;
    const char biases[] = {' ', '[', '\\', '"', '{', '\n'};
    gen_report r = {0};
    for (size_t b = 0; b < sizeof biases; b++) {
        run_generations(tok_llama3, gram_llama3, per, 64, 77 + b, biases[b], &r);
        run_generations(tok_llama2, gram_llama2, per, 64, 77 + b, biases[b], &r);
    }
    for (int budget = 2; budget <= 8; budget++) {
        run_generations(tok_llama3, gram_llama3, per, budget, 500 + (uint64_t)budget, '[', &r);
        run_generations(tok_llama2, gram_llama2, per, budget, 500 + (uint64_t)budget, '"', &r);
    }
    report("biased", &r);
    ASSERT_EQ_INT(r.parsed, r.runs);
    ASSERT_EQ_INT(r.objects, r.runs);
}

/* The other vocabularies in the fixtures (Qwen3 and DeepSeek-V3 byte-level,
 * Gemma 3 SentencePiece with whitespace added tokens): a few generations. */
TEST(other_tokenizers) {
    static const char *names[] = {"qwen3", "deepseek_v3", "gemma3"};
    int per = UNDER_SANITIZER ? 1 : 8;
    for (size_t k = 0; k < sizeof names / sizeof *names; k++) {
        air_tokenizer *tok = load_tok(names[k]);
        if (!tok)
            T_FAIL("cannot load %s", names[k]);
        int32_t eos = air_tokenizer_eos_id(tok);
        air_json_grammar *g = NULL;
        double t0 = now_s();
        air_status st = air_json_grammar_new(tok, &eos, eos >= 0 ? 1 : 0, &g);
        if (st != AIR_OK) {
            air_tokenizer_free(tok);
            T_FAIL("%s: %s", names[k], air_last_error());
        }
        fprintf(stderr, "%s: %d tokens, grammar built in %.0f ms\n", names[k],
                (int)air_json_grammar_n_vocab(g), (now_s() - t0) * 1e3);
        gen_report r = {0};
        run_generations(tok, g, per, 64, 4242, 0, &r);
        run_generations(tok, g, per, 48, 4343, '"', &r);
        report(names[k], &r);
        int budget_exact = air_json_grammar_budget_exact(g);
        air_json_grammar_free(g);
        air_tokenizer_free(tok);
        ASSERT_TRUE(budget_exact);
        ASSERT_EQ_INT(r.parsed, r.runs);
        ASSERT_EQ_INT(r.objects, r.runs);
    }
}

/* End to end through air_generate: the random-weight tiny_chat model
 * (byte-level BPE, 512 tokens) with the project's sampler at temperature 1
 * and the grammar as the constrain callback. */
TEST(generate_with_tiny_model) {
    const char *store = test_tmp("grammar-store-tiny_chat");
    air_source *src = NULL;
    ASSERT_OK(air_source_open_hfdir(test_data("models/tiny_chat"), 0, &src));
    air_split_options so = {0};
    air_status st = air_store_split(src, store, &so);
    air_source_close(src);
    ASSERT_OK(st);
    air_engine_options eo;
    air_engine_default_options(&eo);
    eo.n_threads = 1;
    air_engine *e = NULL;
    ASSERT_OK(air_engine_open(store, &eo, &e));
    air_tokenizer *tok = NULL;
    char js[4200], cfg[4200];
    snprintf(js, sizeof js, "%s", test_data("models/tiny_chat/tokenizer.json"));
    snprintf(cfg, sizeof cfg, "%s", test_data("models/tiny_chat/tokenizer_config.json"));
    ASSERT_OK(air_tokenizer_load(js, cfg, &tok));
    int32_t eos[2] = {511, 509}; /* generation_config.json */
    air_json_grammar *g = NULL;
    ASSERT_OK(air_json_grammar_new(tok, eos, 2, &g));
    const air_hparams *hp = air_engine_hparams(e);
    ASSERT_EQ_INT(air_json_grammar_n_vocab(g), hp->n_vocab);
    int32_t prompt[4] = {509, 40, 41, 42};
    int runs = UNDER_SANITIZER ? 3 : 12, parsed = 0;
    for (int r = 0; r < runs; r++) {
        air_kv kv;
        ASSERT_OK(air_kv_init(&kv, hp, 128));
        air_gen_options go = {0};
        go.max_tokens = 40;
        air_sampler_default_params(&go.sampler);
        go.sampler.temperature = 1.0f;
        go.sampler.top_k = 0;
        go.sampler.top_p = 1.0f;
        go.sampler.min_p = 0.0f;
        go.sampler.seed = 100 + (uint64_t)r;
        go.eos_ids = eos;
        go.n_eos = 2;
        go.constrain = air_json_grammar_constrain;
        go.user = g;
        air_json_grammar_reset(g);
        air_json_grammar_set_budget(g, go.max_tokens);
        int32_t *out = NULL;
        int n_out = 0;
        st = air_generate(e, &kv, prompt, 4, &go, &out, &n_out, NULL);
        air_kv_free(&kv);
        if (st != AIR_OK) {
            free(out);
            T_FAIL("generate: %s", air_last_error());
        }
        air_json_grammar_constrain(g, out, n_out, NULL); /* the last token */
        char *text = NULL;
        ASSERT_OK(air_tokenizer_decode(tok, out, (size_t)n_out, 1, &text));
        const char *end = NULL;
        cJSON *j = cJSON_ParseWithOpts(text, &end, 1);
        if (j && cJSON_IsObject(j) && air_json_grammar_result(g) == AIR_JSON_COMPLETE)
            parsed++;
        else
            fprintf(stderr, "run %d: not a JSON object: %s\n", r, text);
        if (r == 0)
            fprintf(stderr, "  tiny_chat sample (%d tokens): %s\n", n_out, text);
        cJSON_Delete(j);
        free(text);
        free(out);
    }
    fprintf(stderr, "tiny_chat via air_generate: %d of %d outputs are JSON objects\n", parsed,
            runs);
    ASSERT_EQ_INT(parsed, runs);
    air_json_grammar_free(g);
    air_tokenizer_free(tok);
    air_engine_close(e);
}

/* Mask time inside a string, where almost the whole vocabulary is walked,
 * from states that all differ (different depths: no cache hits); also the
 * first mask of a response. Printed, not asserted. */
TEST(mask_timing) {
    if (!gram_llama3)
        T_FAIL("tokenizer not loaded");
    air_json_grammar *g = gram_llama3;
    int32_t nv = air_json_grammar_n_vocab(g);
    uint8_t *allowed = malloc((size_t)nv);
    int n_states = UNDER_SANITIZER ? 4 : AIR_JSON_MAX_DEPTH - 1;
    double dt = 0;
    for (int d = 1; d <= n_states; d++) {
        char text[128];
        int k = snprintf(text, sizeof text, "{\"k\":");
        for (int i = 1; i < d; i++)
            text[k++] = '[';
        k += snprintf(text + k, sizeof text - (size_t)k, "\"some text");
        int32_t *enc;
        size_t n_enc;
        ASSERT_OK(air_tokenizer_encode(tok_llama3, text, (size_t)k, 0, &enc, &n_enc));
        air_json_grammar_reset(g);
        double t0 = now_s();
        ASSERT_EQ_INT(air_json_grammar_constrain(g, enc, (int)n_enc, allowed), 0);
        dt += now_s() - t0;
        free(enc);
    }
    fprintf(stderr, "mask (llama3_1, %d tokens, inside a string, uncached): %.3f ms per token\n",
            (int)nv, dt * 1e3 / n_states);
    /* states outside strings walk the trie; the worst are those where a
     * value may start ('"' then string bytes, digits, ...) */
    static const char *outside[] = {"{",          "{\"k\":",     "{\"k\": [",     "{\"k\": [1",
                                    "{\"k\": 1,", "{\"k\": [{}", "{\"k\": [1.5e", "{\"k\": [t"};
    int n_out = (int)(sizeof outside / sizeof *outside);
    double worst = 0;
    dt = 0;
    for (int i = 0; i < n_out; i++) {
        int32_t *enc;
        size_t n_enc;
        ASSERT_OK(
            air_tokenizer_encode(tok_llama3, outside[i], strlen(outside[i]), 0, &enc, &n_enc));
        air_json_grammar_reset(g);
        double t0 = now_s();
        ASSERT_EQ_INT(air_json_grammar_constrain(g, enc, (int)n_enc, allowed), 0);
        double t = now_s() - t0;
        dt += t;
        worst = t > worst ? t : worst;
        free(enc);
    }
    fprintf(stderr,
            "mask (llama3_1, outside strings, uncached): %.3f ms per token, worst %.3f ms\n",
            dt * 1e3 / n_out, worst * 1e3);
    free(allowed);
}

int main(void) {
    tmp_dir = test_tmp("grammar");
    RUN(automaton_corpus);
    RUN(complete_cases_parse_with_cjson);
    RUN(depth_and_whitespace_limits);
    RUN(min_close_is_exact);
    int ok = setup();
    if (!ok)
        fprintf(stderr, "cannot load the tokenizer fixtures\n");
    RUN(token_bytes_rule);
    RUN(mask_start_and_end);
    RUN(large_budget_keeps_the_mask);
    RUN(mask_matches_brute_force);
    RUN(random_generations_parse);
    RUN(biased_generations_parse);
    RUN(mask_timing);
    RUN(other_tokenizers);
    RUN(generate_with_tiny_model);
    air_json_grammar_free(gram_llama3);
    air_json_grammar_free(gram_llama2);
    air_tokenizer_free(tok_llama3);
    air_tokenizer_free(tok_llama2);
    return test_summary();
}
