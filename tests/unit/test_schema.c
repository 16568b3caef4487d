/*
 * test_schema.c - JSON Schema constrained decoding: the compiler's errors
 * (each names the keyword), the schema automaton on valid and invalid texts,
 * the shortest completion, and random-logit generations through the Qwen3
 * tokenizer (151k tokens) for every schema in fixtures/schema/schemas.json:
 * each decoded output must be accepted by the schema automaton and parse
 * with cJSON. (python/tests/test_schema.py validates model outputs with the
 * jsonschema package.) Also prints the schema mask time per token.
 */
#include <cjson/cJSON.h>
#include <stdint.h>
#include <time.h>

#include "sample/grammar.h"
#include "sample/schema.h"
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

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static char *read_all(const char *path) {
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *b = malloc((size_t)n + 1);
    if (b && fread(b, 1, (size_t)n, f) != (size_t)n) {
        free(b);
        b = NULL;
    }
    if (b)
        b[n] = 0;
    fclose(f);
    return b;
}

/* ------------------------------------------------------------------------- */
/* Compiler errors                                                            */
/* ------------------------------------------------------------------------- */

static void expect_error(const char *schema, air_status want, const char *needle1,
                         const char *needle2, int *bad) {
    air_schema *s = NULL;
    air_status st = air_schema_compile_text(schema, &s);
    const char *msg = air_last_error();
    if (st != want || s || !strstr(msg, needle1) || (needle2 && !strstr(msg, needle2))) {
        fprintf(stderr, "schema %s: status %d (want %d), message: %s\n", schema, st, want, msg);
        (*bad)++;
    }
    air_schema_free(s);
}

TEST(errors_name_the_keyword) {
    int bad = 0;
    expect_error("{\"type\":\"object\",\"properties\":{\"a\":{\"type\":\"string\",\"pattern\":\"x\"}}}",
                 AIR_ERR_UNSUPPORTED, "\"pattern\"", "#/properties/a", &bad);
    expect_error("{\"type\":\"object\",\"properties\":{\"d\":{\"type\":\"string\",\"format\":\"date\"}}}",
                 AIR_ERR_UNSUPPORTED, "\"format\"", "#/properties/d", &bad);
    expect_error("{\"oneOf\":[{\"type\":\"object\"}]}", AIR_ERR_UNSUPPORTED, "\"oneOf\"", "#", &bad);
    expect_error("{\"type\":\"object\",\"properties\":{\"n\":{\"type\":\"integer\",\"minimum\":3}}}",
                 AIR_ERR_UNSUPPORTED, "\"minimum\"", NULL, &bad);
    expect_error("{\"type\":\"object\",\"patternProperties\":{}}", AIR_ERR_UNSUPPORTED,
                 "\"patternProperties\"", NULL, &bad);
    expect_error("{\"type\":\"object\",\"properties\":{\"a\":{\"$ref\":\"other.json#/x\"}}}",
                 AIR_ERR_UNSUPPORTED, "$ref", "other.json", &bad);
    expect_error("{\"type\":\"object\",\"properties\":{\"a\":{\"$ref\":\"#/$defs/missing\"}}}",
                 AIR_ERR_UNSUPPORTED, "$ref", "missing", &bad);
    expect_error("{\"type\":\"object\",\"additionalProperties\":{\"type\":\"string\"}}",
                 AIR_ERR_UNSUPPORTED, "additionalProperties", NULL, &bad);
    expect_error("{\"type\":\"object\",\"properties\":{\"t\":{\"type\":\"array\",\"items\":[{}]}}}",
                 AIR_ERR_UNSUPPORTED, "items", "tuple", &bad);
    expect_error("{\"type\":\"object\",\"properties\":{\"a\":{\"anyOf\":[{\"type\":\"object\"},"
                 "{\"type\":\"object\",\"properties\":{}}]}}}",
                 AIR_ERR_UNSUPPORTED, "anyOf", "'{'", &bad);
    expect_error("{\"type\":\"string\"}", AIR_ERR_UNSUPPORTED, "root", NULL, &bad);
    expect_error("{\"type\":\"object\",\"required\":[\"x\"],\"properties\":{}}", AIR_ERR_INVALID_ARG,
                 "\"x\"", NULL, &bad);
    expect_error("{\"type\":\"object\",\"properties\":{\"a\":{\"type\":\"array\",\"minItems\":3,"
                 "\"maxItems\":2}}}",
                 AIR_ERR_INVALID_ARG, "maxItems", NULL, &bad);
    expect_error("{\"type\":\"object\",\"properties\":{\"a\":{\"type\":\"strin\"}}}",
                 AIR_ERR_INVALID_ARG, "strin", NULL, &bad);
    expect_error("{\"type\":\"object\",\"properties\":{\"a\":{\"enum\":[]}}}", AIR_ERR_INVALID_ARG,
                 "enum", NULL, &bad);
    expect_error("{\"$defs\":{\"n\":{\"type\":\"object\",\"properties\":{\"c\":{\"$ref\":\"#/$defs/n\"}},"
                 "\"required\":[\"c\"]}},\"$ref\":\"#/$defs/n\"}",
                 AIR_ERR_INVALID_ARG, "recurse", NULL, &bad);
    expect_error("{\"$ref\":\"#\"}", AIR_ERR_LIMIT, "$ref", NULL, &bad);
    expect_error("not json", AIR_ERR_INVALID_ARG, "not valid JSON", NULL, &bad);
    ASSERT_EQ_INT(bad, 0);
}

/* ------------------------------------------------------------------------- */
/* The automaton on texts                                                     */
/* ------------------------------------------------------------------------- */

typedef struct {
    int schema; /* index in schemas.json */
    const char *text;
    air_json_result want;
} text_case;

static const text_case CASES[] = {
    {0, "{\"name\":\"x\",\"age\":3}", AIR_JSON_COMPLETE},
    {0, "{ \"name\" : \"x\" ,\n \"age\" : -30 , \"email\":\"a@b\" }", AIR_JSON_COMPLETE},
    {0, "{\"name\":\"x\",\"age\":0}", AIR_JSON_COMPLETE},
    {0, "{\"name\":\"x\",\"age\":3", AIR_JSON_PREFIX},
    {0, "{\"age\":3,\"name\":\"x\"}", AIR_JSON_INVALID},   /* schema order */
    {0, "{\"name\":\"x\"}", AIR_JSON_INVALID},             /* age is required */
    {0, "{\"name\":\"x\",\"age\":1.5}", AIR_JSON_INVALID}, /* integer */
    {0, "{\"name\":\"x\",\"age\":1e3}", AIR_JSON_INVALID},
    {0, "{\"name\":\"x\",\"age\":1,\"extra\":1}", AIR_JSON_INVALID},
    {0, "{\"name\":1,\"age\":1}", AIR_JSON_INVALID},
    {0, "{\"nam\":\"x\",\"age\":1}", AIR_JSON_INVALID},
    {0, "{\"name\":\"x\",\"age\":1,}", AIR_JSON_INVALID},
    {1, "{\"unit\":\"celsius\",\"kind\":\"weather\",\"level\":10,\"flag\":true,\"nothing\":null}",
     AIR_JSON_COMPLETE},
    {1, "{\"unit\":\"celsius\",\"kind\":\"weather\",\"level\":1 ,\"flag\":false,\"nothing\":null}",
     AIR_JSON_COMPLETE},
    {1, "{\"unit\":\"kelvin\"", AIR_JSON_INVALID},
    {1, "{\"unit\":\"celsius\",\"kind\":\"weather\",\"level\":4", AIR_JSON_INVALID},
    {1, "{\"unit\":\"celsius\",\"kind\":\"weather\",\"level\":100", AIR_JSON_INVALID},
    {1, "{\"unit\":\"celsius\",\"kind\":\"weather\",\"level\":1.0", AIR_JSON_INVALID},
    {2, "{\"tags\":[\"a\"],\"scores\":[]}", AIR_JSON_COMPLETE},
    {2, "{\"tags\":[\"a\",\"b\",\"c\"],\"scores\":[1,2.5,-3e2,0],\"empty\":[]}", AIR_JSON_COMPLETE},
    {2, "{\"tags\":[]", AIR_JSON_INVALID},
    {2, "{\"tags\":[\"a\",\"b\",\"c\",", AIR_JSON_INVALID},
    {2, "{\"tags\":[\"a\"],\"scores\":[1,2,3,4,5]", AIR_JSON_INVALID},
    {2, "{\"tags\":[\"a\"],\"scores\":[],\"empty\":[1", AIR_JSON_INVALID},
    {3, "{\"a\":null,\"b\":\"s\",\"c\":1.5}", AIR_JSON_COMPLETE},
    {3, "{\"a\":\"s\",\"b\":-4,\"c\":7}", AIR_JSON_COMPLETE},
    {3, "{\"a\":1", AIR_JSON_INVALID},
    {3, "{\"a\":null,\"b\":1.5", AIR_JSON_INVALID},
    {3, "{\"a\":null,\"b\":true", AIR_JSON_INVALID},
    {4, "{\"root\":{\"value\":1,\"children\":[{\"value\":2},{\"value\":3,\"children\":[]}]}}",
     AIR_JSON_COMPLETE},
    {4, "{\"root\":{\"value\":1,\"children\":[{\"value\":2},{\"value\":3},{\"value\":4}]}}",
     AIR_JSON_INVALID},
    {4, "{\"root\":{\"children\":[]}}", AIR_JSON_INVALID},
    {5, "{\"meta\":{\"k\":[1,{\"z\":null}]},\"any\":[true, \"x\"],\"point\":{\"x\":1,\"y\":2}}",
     AIR_JSON_COMPLETE},
    {5, "{\"meta\":{},\"any\":12,\"point\":{\"x\":1,\"y\":2}}", AIR_JSON_COMPLETE},
    {5, "{\"meta\":{},\"any\":-0.5e1 ,\"point\":{\"x\":1,\"y\":2}}", AIR_JSON_COMPLETE},
    {5, "{\"meta\":[]", AIR_JSON_INVALID},
    {5, "{\"meta\":{},\"any\":1,\"point\":{\"x\":1,\"y\":2,\"z\":3}}", AIR_JSON_INVALID},
    {6, "{\"name\":\"get_current_weather\",\"arguments\":{\"location\":\"Paris\",\"unit\":\"celsius\"}}",
     AIR_JSON_COMPLETE},
    {6, "{\"name\":\"get_time\"", AIR_JSON_INVALID},
    {7, "{\"we\\\"ird key\":\"v\",\"\xC3\xBCn\xC3\xAF\":1,\"tab\\tkey\":true}", AIR_JSON_COMPLETE},
    {7, "{\"we\\\"ird key\":\"v\",\"\\u00fcn\\u00ef\":1}", AIR_JSON_INVALID}, /* keys as written */
    {8, "{}", AIR_JSON_COMPLETE},
    {8, "{\"q\":\"\"}", AIR_JSON_COMPLETE},
    {8, "{\"p\":1,\"r\":false}", AIR_JSON_COMPLETE},
    {8, "{\"r\":false,\"p\":1}", AIR_JSON_INVALID},
    {9, "{\"choice\":{\"a\":1}}", AIR_JSON_COMPLETE},
    {9, "{\"choice\":[1,2]}", AIR_JSON_COMPLETE},
    {9, "{\"choice\":1.5}", AIR_JSON_COMPLETE},
    {9, "{\"choice\":-2 }", AIR_JSON_COMPLETE},
    {9, "{\"choice\":10}", AIR_JSON_COMPLETE},
    {9, "{\"choice\":1}", AIR_JSON_INVALID},
    {9, "{\"choice\":100}", AIR_JSON_INVALID},
    {9, "{\"choice\":{\"a\": 1}}", AIR_JSON_INVALID}, /* enum values compact */
    {9, "{\"choice\":nul", AIR_JSON_PREFIX},
    {10, "{\"name\":\"get_time\",\"arguments\":{\"tz\":\"UTC\"}}", AIR_JSON_COMPLETE},
    {10, "{\"name\":\"get_weather\",\"arguments\":{\"location\":\"Lima\"}}", AIR_JSON_COMPLETE},
    {10, "{\"name\":\"get_time\",\"arguments\":{\"location\":\"Lima\"}}", AIR_JSON_INVALID},
    {10, "{\"name\":\"get_date\"", AIR_JSON_INVALID},
    {10, "{\"arguments\":{}}", AIR_JSON_INVALID},
};

static air_schema *schemas[16];
static cJSON *schema_json[16];
static int n_schemas;

static int load_schemas(void) {
    char *txt = read_all(test_data("schema/schemas.json"));
    cJSON *arr = txt ? cJSON_Parse(txt) : NULL;
    free(txt);
    if (!cJSON_IsArray(arr))
        return 0;
    const cJSON *s;
    cJSON_ArrayForEach(s, arr) {
        if (n_schemas >= 16)
            break;
        schema_json[n_schemas] = cJSON_Duplicate(s, 1);
        if (air_schema_compile(s, &schemas[n_schemas]) != AIR_OK) {
            fprintf(stderr, "schema %d: %s\n", n_schemas, air_last_error());
            cJSON_Delete(arr);
            return 0;
        }
        n_schemas++;
    }
    cJSON_Delete(arr);
    return 1;
}

TEST(texts_against_schemas) {
    ASSERT_TRUE(n_schemas == 11);
    int bad = 0;
    for (size_t i = 0; i < sizeof CASES / sizeof CASES[0]; i++) {
        const text_case *c = &CASES[i];
        air_json_result r =
            air_schema_check(schemas[c->schema], (const uint8_t *)c->text, strlen(c->text));
        if (r != c->want) {
            fprintf(stderr, "schema %d, %s: got %d, want %d\n", c->schema, c->text, r, c->want);
            bad++;
        }
    }
    ASSERT_EQ_INT(bad, 0);
}

/* The shortest completion never exceeds what a real completion needs, and
 * from a complete text's every prefix some byte lowers it by exactly one
 * until it reaches 0 at a complete text. */
TEST(min_close_walks_down) {
    int bad = 0;
    for (size_t i = 0; i < sizeof CASES / sizeof CASES[0]; i++) {
        const text_case *c = &CASES[i];
        if (c->want != AIR_JSON_COMPLETE)
            continue;
        const air_schema *S = schemas[c->schema];
        size_t n = strlen(c->text);
        for (size_t k = 0; k < n; k++) {
            air_sc_state s;
            air_sc_init(&s, S);
            air_sc_feed(S, &s, (const uint8_t *)c->text, k);
            int m = air_sc_min_close(S, &s);
            if (m > (int)(n - k)) {
                fprintf(stderr, "%s at %zu: shortest completion %d > %zu left\n", c->text, k, m,
                        n - k);
                bad++;
                continue;
            }
            /* greedy descent: some byte must lower the count by one */
            char path[512];
            size_t np = 0;
            for (int steps = 0; m > 0 && steps < 400; steps++) {
                int found = 0;
                for (unsigned b = 0; b < 256 && !found; b++) {
                    air_sc_state x;
                    air_sc_copy(&x, &s);
                    if (air_sc_step(S, &x, b) && air_sc_min_close(S, &x) == m - 1) {
                        air_sc_copy(&s, &x);
                        found = 1;
                        path[np++ % 500] = (char)b;
                    }
                }
                if (!found) {
                    fprintf(stderr, "%s at %zu: no byte lowers the completion %d after %.*s\n",
                            c->text, k, m, (int)(np < 500 ? np : 500), path);
                    bad++;
                    break;
                }
                m--;
            }
            if (m == 0 && s.f.mode != AIR_JF_DONE) {
                fprintf(stderr, "%s at %zu: completion 0 but not done\n", c->text, k);
                bad++;
            }
        }
    }
    ASSERT_EQ_INT(bad, 0);
}

/* ------------------------------------------------------------------------- */
/* Generations through a 151k-token vocabulary                                */
/* ------------------------------------------------------------------------- */

static uint64_t rng_next(uint64_t *s) {
    uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static double rng_unit(uint64_t *s) {
    return (double)(rng_next(s) >> 11) / 9007199254740992.0;
}

static air_tokenizer *load_qwen3(void) {
    const char *tmp = test_tmp("schema");
    char cmd[9000], js[4200], cfg[4200];
    const char *files[2] = {"tokenizer.json", "tokenizer_config.json"};
    for (int i = 0; i < 2; i++) {
        char rel[256];
        snprintf(rel, sizeof rel, "tokenizers/qwen3/%s.gz", files[i]);
        snprintf(cmd, sizeof cmd, "gzip -dc '%s' > '%s/%s'", test_data(rel), tmp, files[i]);
        if (system(cmd) != 0)
            return NULL;
    }
    snprintf(js, sizeof js, "%s/tokenizer.json", tmp);
    snprintf(cfg, sizeof cfg, "%s/tokenizer_config.json", tmp);
    air_tokenizer *tok = NULL;
    if (air_tokenizer_load(js, cfg, &tok) != AIR_OK)
        return NULL;
    return tok;
}

TEST(generations_follow_schemas) {
    air_tokenizer *tok = load_qwen3();
    if (!tok)
        T_FAIL("cannot load the qwen3 tokenizer: %s", air_last_error());
    int32_t eos[1] = {air_tokenizer_eos_id(tok)};
    air_json_grammar *g = NULL;
    if (air_json_grammar_new(tok, eos, 1, &g) != AIR_OK) {
        air_tokenizer_free(tok);
        T_FAIL("grammar: %s", air_last_error());
    }
    int32_t nv = air_json_grammar_n_vocab(g);
    float *w = malloc(sizeof(float) * (size_t)nv);
    uint8_t *allowed = malloc((size_t)nv);
    const int max_tokens = 120, per = UNDER_SANITIZER ? 1 : 8;
    int32_t gen[121];
    int runs = 0, good = 0;
    long masks = 0;
    double mask_s = 0;
    for (int si = 0; si < n_schemas; si++) {
        air_json_grammar_set_schema(g, schemas[si]);
        double s0 = mask_s;
        long m0 = masks;
        for (int r = 0; r < per; r++) {
            uint64_t rs = (uint64_t)si * 1000 + (uint64_t)r;
            air_json_grammar_reset(g);
            air_json_grammar_set_budget(g, max_tokens);
            int n = 0;
            while (n < max_tokens) {
                double t0 = now_s();
                int stop = air_json_grammar_constrain(g, gen, n, allowed);
                mask_s += now_s() - t0;
                masks++;
                if (stop)
                    break;
                /* random logits uniform in [-6, 6), drawn with temperature 1 */
                double sum = 0;
                for (int32_t t = 0; t < nv; t++) {
                    w[t] = allowed[t] ? expf((float)(12.0 * rng_unit(&rs) - 6.0)) : 0.0f;
                    sum += w[t];
                }
                double u = rng_unit(&rs) * sum, acc = 0;
                int32_t id = -1;
                for (int32_t t = 0; t < nv && id < 0; t++)
                    if (w[t] > 0 && (acc += w[t]) >= u)
                        id = t;
                if (id < 0 || id == eos[0])
                    break;
                gen[n++] = id;
            }
            air_json_grammar_constrain(g, gen, n, NULL);
            char *text = NULL;
            size_t len = 0;
            runs++;
            if (air_tokenizer_decode_n(tok, gen, (size_t)n, 1, &text, &len) != AIR_OK)
                continue;
            cJSON *j = cJSON_ParseWithOpts(text, NULL, 1);
            int ok = j && air_json_grammar_result(g) == AIR_JSON_COMPLETE &&
                     air_schema_check(schemas[si], (const uint8_t *)text, len) == AIR_JSON_COMPLETE;
            good += ok;
            if (!ok || r == 0)
                fprintf(stderr, "%s schema %d: %s\n", ok ? "  sample" : "BAD", si, text);
            cJSON_Delete(j);
            free(text);
        }
        fprintf(stderr, "  schema %d: %.3f ms per mask on average\n", si,
                masks > m0 ? (mask_s - s0) * 1e3 / (double)(masks - m0) : 0.0);
    }
    fprintf(stderr,
            "qwen3 (%d tokens): %d generations, %d follow their schema; schema mask %.3f ms per "
            "token on average (%ld masks)\n",
            (int)nv, runs, good, masks ? mask_s * 1e3 / (double)masks : 0.0, masks);
    /* uncached masks at every prefix of the valid texts (the cache is
     * cleared by setting the schema again) */
    double sum = 0, worst = 0;
    int n_masks = 0;
    for (size_t i = 0; i < sizeof CASES / sizeof CASES[0] && !UNDER_SANITIZER; i++) {
        const text_case *tc = &CASES[i];
        if (tc->want != AIR_JSON_COMPLETE)
            continue;
        int32_t *ids = NULL;
        size_t n_ids = 0;
        if (air_tokenizer_encode(tok, tc->text, strlen(tc->text), 0, &ids, &n_ids) != AIR_OK)
            continue;
        for (size_t k = 0; k < n_ids; k++) {
            air_json_grammar_set_schema(g, schemas[tc->schema]);
            air_json_grammar_constrain(g, ids, (int)k, NULL);
            double t0 = now_s();
            air_json_grammar_constrain(g, ids, (int)k, allowed);
            double t = now_s() - t0;
            sum += t;
            worst = t > worst ? t : worst;
            n_masks++;
        }
        free(ids);
    }
    fprintf(stderr, "qwen3 uncached schema masks at %d prefixes: %.3f ms on average, worst %.3f ms\n",
            n_masks, n_masks ? sum * 1e3 / n_masks : 0.0, worst * 1e3);
    air_json_grammar_free(g);
    air_tokenizer_free(tok);
    free(w);
    free(allowed);
    ASSERT_EQ_INT(good, runs);
}

int main(void) {
    RUN(errors_name_the_keyword);
    if (!load_schemas())
        fprintf(stderr, "cannot load fixtures/schema/schemas.json\n");
    RUN(texts_against_schemas);
    RUN(min_close_walks_down);
    RUN(generations_follow_schemas);
    for (int i = 0; i < n_schemas; i++) {
        air_schema_free(schemas[i]);
        cJSON_Delete(schema_json[i]);
    }
    return test_summary();
}
