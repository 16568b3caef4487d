/*
 * test_tokenizer.c - unit tests of the tokenizer: building from GGUF-style
 * arrays (checked against HF goldens), error messages for bad or unsupported
 * tokenizer.json, invalid UTF-8, streaming decode, config parsing, API edge
 * cases and concurrent encoding.
 */
#include <pthread.h>

#include "test_tokenizer_common.h"

static const tj_val *corpus;
static tt_json corpus_doc;

/* ------------------------------------------------------------------------- */
/* from_arrays                                                                */
/* ------------------------------------------------------------------------- */
static void check_arrays(const char *name, air_tok_family fam) {
    char p[256];
    snprintf(p, sizeof p, "tokenizers/arrays/%s.json.gz", name);
    tt_json aj, gj;
    const tj_val *a = tt_read_gz_json(test_data(p), &aj);
    snprintf(p, sizeof p, "tokenizers/goldens/%s.json.gz", name);
    const tj_val *gold = tt_read_gz_json(test_data(p), &gj);
    if (!a || !gold) {
        fprintf(stderr, "cannot read the %s arrays or goldens\n", name);
        t_cur_failed = 1;
        return;
    }
    const tj_val *toks = tj_get(a, "tokens"), *types = tj_get(a, "types");
    const tj_val *scores = tj_get(a, "scores"), *merges = tj_get(a, "merges");
    int32_t n = (int32_t)toks->n;
    const char **tv = malloc((size_t)n * sizeof *tv);
    int32_t *ty = malloc((size_t)n * sizeof *ty);
    float *sc = scores ? malloc((size_t)n * sizeof *sc) : NULL;
    for (int32_t i = 0; i < n; i++) {
        tv[i] = toks->u.items[i].u.s;
        ty[i] = (int32_t)types->u.items[i].u.num;
        if (sc)
            sc[i] = (float)scores->u.items[i].u.num;
    }
    int32_t nm = merges ? (int32_t)merges->n : 0;
    const char **mv = malloc(((size_t)nm + 1) * sizeof *mv);
    for (int32_t i = 0; i < nm; i++)
        mv[i] = merges->u.items[i].u.s;
    air_tokenizer *t = NULL;
    air_status st = air_tokenizer_from_arrays(
        fam, tv, sc, ty, n, merges ? mv : NULL, nm, tj_get(a, "pre")->u.s,
        (int32_t)tj_get(a, "bos_id")->u.num, (int32_t)tj_get(a, "eos_id")->u.num,
        (int)tj_get(a, "add_bos")->u.num, &t);
    if (st) {
        fprintf(stderr, "from_arrays(%s): %s\n", name, air_last_error());
        t_cur_failed = 1;
    } else {
        char label[64];
        snprintf(label, sizeof label, "%s(from_arrays)", name);
        /* a subset of the corpus: every case up to 20 KB */
        if (tt_check_goldens(t, gold, corpus, label, 20000, 0))
            t_cur_failed = 1;
        air_tokenizer_free(t);
    }
    free(tv);
    free(ty);
    free(sc);
    free(mv);
    tt_json_free(&aj);
    tt_json_free(&gj);
}

TEST(from_arrays_llama3_1) {
    check_arrays("llama3_1", AIR_TOK_BPE_BYTELEVEL);
}
TEST(from_arrays_llama2) {
    check_arrays("llama2", AIR_TOK_BPE_SPM);
}

TEST(from_arrays_options) {
    /* Gemma-style SPM: no "▁" prefix; EOS appended */
    tt_json aj;
    const tj_val *a = tt_read_gz_json(test_data("tokenizers/arrays/llama2.json.gz"), &aj);
    ASSERT_TRUE(a != NULL);
    const tj_val *toks = tj_get(a, "tokens"), *types = tj_get(a, "types");
    const tj_val *scores = tj_get(a, "scores");
    int32_t n = (int32_t)toks->n;
    const char **tv = malloc((size_t)n * sizeof *tv);
    int32_t *ty = malloc((size_t)n * sizeof *ty);
    float *sc = malloc((size_t)n * sizeof *sc);
    for (int32_t i = 0; i < n; i++) {
        tv[i] = toks->u.items[i].u.s;
        ty[i] = (int32_t)types->u.items[i].u.num;
        sc[i] = (float)scores->u.items[i].u.num;
    }
    air_tok_array_opts o = air_tok_array_default_opts();
    o.bos_id = 1;
    o.eos_id = 2;
    o.add_eos = 1;
    o.add_space_prefix = 0;
    air_tokenizer *t = NULL;
    air_status st =
        air_tokenizer_from_arrays_ex(AIR_TOK_BPE_SPM, tv, sc, ty, n, NULL, 0, NULL, &o, &t);
    free(tv);
    free(ty);
    free(sc);
    tt_json_free(&aj);
    ASSERT_OK(st);
    int32_t *ids;
    size_t m;
    ASSERT_OK(air_tokenizer_encode(t, "Hello world", 11, 1, &ids, &m));
    /* <s> "Hello" "▁world" </s>: no leading "▁" */
    ASSERT_EQ_INT(m, 4);
    ASSERT_EQ_INT(ids[0], 1);
    ASSERT_EQ_STR(air_tokenizer_id_to_token(t, ids[1]), "Hello");
    ASSERT_EQ_STR(air_tokenizer_id_to_token(t, ids[2]), "\xe2\x96\x81world");
    ASSERT_EQ_INT(ids[3], 2);
    char *text;
    ASSERT_OK(air_tokenizer_decode(t, ids, m, 1, &text));
    ASSERT_EQ_STR(text, "Hello world");
    free(text);
    free(ids);
    ASSERT_EQ_STR(air_tokenizer_bos_token(t), "<s>");
    ASSERT_EQ_STR(air_tokenizer_eos_token(t), "</s>");
    ASSERT_TRUE(air_tokenizer_is_special(t, 1));
    air_tokenizer_free(t);
}

TEST(from_arrays_errors) {
    const char *toks[] = {"a", "b", "ab"};
    const char *bad_merges[] = {"a c"};
    air_tokenizer *t = NULL;
    ASSERT_ERR(air_tokenizer_from_arrays(AIR_TOK_BPE_BYTELEVEL, toks, NULL, NULL, 3, bad_merges, 1,
                                         "gpt2", -1, -1, 0, &t),
               AIR_ERR_FORMAT, "merges[0]");
    ASSERT_ERR(air_tokenizer_from_arrays(AIR_TOK_BPE_BYTELEVEL, toks, NULL, NULL, 3, NULL, 0,
                                         "no-such-pre", -1, -1, 0, &t),
               AIR_ERR_UNSUPPORTED, "no-such-pre");
    const char *merges[] = {"a b"};
    ASSERT_OK(air_tokenizer_from_arrays(AIR_TOK_BPE_BYTELEVEL, toks, NULL, NULL, 3, merges, 1,
                                        "gpt2", -1, -1, 0, &t));
    int32_t *ids;
    size_t n;
    ASSERT_OK(air_tokenizer_encode(t, "abba", 4, 1, &ids, &n));
    /* "abba" -> "ab" + "b" + "a" */
    ASSERT_EQ_INT(n, 3);
    ASSERT_EQ_INT(ids[0], 2);
    ASSERT_EQ_INT(ids[1], 1);
    ASSERT_EQ_INT(ids[2], 0);
    free(ids);
    air_tokenizer_free(t);
}

/* ------------------------------------------------------------------------- */
/* Errors                                                                     */
/* ------------------------------------------------------------------------- */
#define MINI_MODEL                                                                                 \
    "\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0, \"b\": 1, \"ab\": 2}, \"merges\": [\"a " \
    "b\"]}"

static air_status load_str(const char *js, air_tokenizer **t) {
    return air_tokenizer_load_from_memory(js, strlen(js), NULL, t);
}

TEST(errors) {
    air_tokenizer *t = NULL;
    ASSERT_ERR(load_str("{\"model\": {", &t), AIR_ERR_FORMAT, "line 1");
    ASSERT_ERR(load_str("{\n  \"model\": [1,,2]}", &t), AIR_ERR_FORMAT, "line 2, column 15");
    ASSERT_ERR(load_str("{" MINI_MODEL ", \"pre_tokenizer\": {\"type\": \"Sequence\", "
                        "\"pretokenizers\": [{\"type\": \"Digits\"}, {\"type\": "
                        "\"UnicodeScripts\"}]}}",
                        &t),
               AIR_ERR_UNSUPPORTED,
               "pre_tokenizer.pretokenizers[1]: unknown pre-tokenizer type "
               "\"UnicodeScripts\"");
    ASSERT_ERR(load_str("{" MINI_MODEL ", \"normalizer\": {\"type\": \"Sequence\", "
                        "\"normalizers\": [{\"type\": \"Precompiled\"}]}}",
                        &t),
               AIR_ERR_UNSUPPORTED,
               "normalizer.normalizers[0]: unknown normalizer type "
               "\"Precompiled\"");
    ASSERT_ERR(load_str("{" MINI_MODEL ", \"decoder\": {\"type\": \"CTC\"}}", &t),
               AIR_ERR_UNSUPPORTED, "decoder: unknown decoder type \"CTC\"");
    ASSERT_ERR(load_str("{" MINI_MODEL ", \"post_processor\": {\"type\": \"Sequence\", "
                        "\"processors\": [{\"type\": \"Magic\"}]}}",
                        &t),
               AIR_ERR_UNSUPPORTED,
               "post_processor.processors[0]: unknown post-processor type "
               "\"Magic\"");
    ASSERT_ERR(load_str("{\"model\": {\"type\": \"Unigram\", \"vocab\": []}}", &t),
               AIR_ERR_UNSUPPORTED, "model \"Unigram\"");
    ASSERT_ERR(load_str("{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0}, \"merges\": "
                        "[\"a b\"]}}",
                        &t),
               AIR_ERR_FORMAT, "model.merges[0]");
    ASSERT_ERR(load_str("{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0}, \"merges\": "
                        "[\"a\"]}}",
                        &t),
               AIR_ERR_FORMAT, "two tokens");
    ASSERT_ERR(load_str("{" MINI_MODEL ", \"pre_tokenizer\": {\"type\": \"Split\", \"pattern\": "
                        "{\"Regex\": \"(unclosed\"}, \"behavior\": \"Isolated\"}}",
                        &t),
               AIR_ERR_UNSUPPORTED, "cannot compile regex");
    ASSERT_ERR(load_str("{" MINI_MODEL ", \"pre_tokenizer\": {\"type\": \"Split\", \"pattern\": "
                        "{\"Regex\": \"a\"}, \"behavior\": \"Sideways\"}}",
                        &t),
               AIR_ERR_FORMAT, "unknown split behavior");
    /* found by fuzzing: invalid UTF-8 inside JSON strings reached PCRE2 */
    ASSERT_ERR(load_str("{" MINI_MODEL ", \"normalizer\": {\"type\": \"Prepend\", "
                        "\"prepend\": \"\xff\"}}",
                        &t),
               AIR_ERR_FORMAT, "not valid UTF-8");
    /* found by fuzzing: a malformed TemplateProcessing after a special token
     * leaked the ids collected so far (the ASan build checks for leaks) */
#define TP_BOS                                                                                     \
    "\"post_processor\": {\"type\": \"TemplateProcessing\", \"special_tokens\": "                  \
    "{\"<s>\": {\"id\": \"<s>\", \"ids\": [0]}}, \"single\": [\"<s>\", "
    ASSERT_ERR(load_str("{" MINI_MODEL ", " TP_BOS "\"$A\", \"$A\"]}}", &t), AIR_ERR_FORMAT,
               "two sequences");
    ASSERT_ERR(load_str("{" MINI_MODEL ", " TP_BOS "{\"SpecialToken\": {}}]}}", &t), AIR_ERR_FORMAT,
               "SpecialToken without an id");
    ASSERT_ERR(load_str("{" MINI_MODEL ", " TP_BOS "7]}}", &t), AIR_ERR_FORMAT,
               "bad template piece");
#undef TP_BOS
    const char *bad_tok[] = {"a", "\xc3"};
    ASSERT_ERR(air_tokenizer_from_arrays(AIR_TOK_BPE_BYTELEVEL, bad_tok, NULL, NULL, 2, NULL, 0,
                                         "gpt2", -1, -1, 0, &t),
               AIR_ERR_FORMAT, "token 1 is not valid UTF-8");
    ASSERT_ERR(air_tokenizer_load("/no/such/tokenizer.json", NULL, &t), AIR_ERR_NOT_FOUND,
               "/no/such/tokenizer.json");
    ASSERT_TRUE(t == NULL);
}

/* ------------------------------------------------------------------------- */
/* Behaviour                                                                  */
/* ------------------------------------------------------------------------- */
static air_tokenizer *qwen, *llama2;

TEST(invalid_utf8_is_lossy) {
    /* each maximal invalid subsequence counts as one U+FFFD */
    const char *bad = "a\xff"
                      "b\xe2\x82"
                      "c\xed\xa0\x80";
    const char *fixed = "a\xef\xbf\xbd"
                        "b\xef\xbf\xbd"
                        "c\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd";
    int32_t *x, *y;
    size_t nx, ny;
    ASSERT_OK(air_tokenizer_encode(qwen, bad, strlen(bad), 0, &x, &nx));
    ASSERT_OK(air_tokenizer_encode(qwen, fixed, strlen(fixed), 0, &y, &ny));
    ASSERT_EQ_INT(nx, ny);
    for (size_t i = 0; i < nx; i++)
        ASSERT_EQ_INT(x[i], y[i]);
    free(x);
    free(y);
}

TEST(empty_input) {
    int32_t *ids = NULL;
    size_t n = 99;
    ASSERT_OK(air_tokenizer_encode(qwen, "", 0, 1, &ids, &n));
    ASSERT_TRUE(ids != NULL);
    ASSERT_EQ_INT(n, 0);
    free(ids);
    ASSERT_OK(air_tokenizer_encode(llama2, NULL, 0, 1, &ids, &n));
    ASSERT_EQ_INT(n, 1); /* <s> */
    ASSERT_EQ_INT(ids[0], 1);
    free(ids);
    char *text;
    ASSERT_OK(air_tokenizer_decode(qwen, NULL, 0, 0, &text));
    ASSERT_EQ_STR(text, "");
    free(text);
}

TEST(null_args) {
    int32_t *ids;
    size_t n;
    ASSERT_ERR(air_tokenizer_encode(NULL, "x", 1, 0, &ids, &n), AIR_ERR_INVALID_ARG, "NULL");
    ASSERT_ERR(air_tokenizer_encode(qwen, NULL, 3, 0, &ids, &n), AIR_ERR_INVALID_ARG, "NULL");
    ASSERT_EQ_INT(air_tokenizer_vocab_size(NULL), 0);
    ASSERT_TRUE(air_tokenizer_id_to_token(NULL, 0) == NULL);
    ASSERT_EQ_INT(air_tokenizer_token_to_id(qwen, NULL), -1);
    ASSERT_TRUE(air_detok_new(NULL, 0) == NULL);
    air_tokenizer_free(NULL);
    air_detok_free(NULL);
}

/* valid UTF-8 chunks that concatenate to the full decode */
static void stream_all(const air_tokenizer *t, const int32_t *ids, size_t n, char *out,
                       size_t cap) {
    air_detok *d = air_detok_new(t, 0);
    out[0] = 0;
    for (size_t i = 0; i < n; i++) {
        const char *c;
        if (air_detok_push(d, ids[i], &c) != AIR_OK)
            break;
        strncat(out, c, cap - strlen(out) - 1);
    }
    const char *c;
    air_detok_flush(d, &c);
    strncat(out, c, cap - strlen(out) - 1);
    air_detok_free(d);
}

TEST(stream_utf8) {
    /* "é👍🏽" in byte-fallback tokens and in byte-level tokens: no chunk may
     * end inside a character */
    const char *text = " caf\xc3\xa9 \xf0\x9f\x91\x8d\xf0\x9f\x8f\xbd \xe4\xb8\xad\xe6\x96\x87";
    air_tokenizer *ts[2] = {qwen, llama2};
    for (int k = 0; k < 2; k++) {
        int32_t *ids;
        size_t n;
        ASSERT_OK(air_tokenizer_encode(ts[k], text, strlen(text), 0, &ids, &n));
        air_detok *d = air_detok_new(ts[k], 0);
        char all[256] = "";
        for (size_t i = 0; i < n; i++) {
            const char *c;
            ASSERT_OK(air_detok_push(d, ids[i], &c));
            ASSERT_EQ_INT(tk_utf8_valid_prefix((const unsigned char *)c, strlen(c)), strlen(c));
            strcat(all, c);
        }
        const char *c;
        ASSERT_OK(air_detok_flush(d, &c));
        strcat(all, c);
        char *full;
        ASSERT_OK(air_tokenizer_decode(ts[k], ids, n, 0, &full));
        ASSERT_EQ_STR(all, full);
        free(full);
        air_detok_free(d);
        free(ids);
    }
    /* an incomplete character at the end is flushed as U+FFFD; the stream
     * starts over afterwards */
    int32_t e6 = air_tokenizer_token_to_id(llama2, "<0xE6>");
    ASSERT_TRUE(e6 >= 0);
    air_detok *d = air_detok_new(llama2, 0);
    const char *c;
    ASSERT_OK(air_detok_push(d, e6, &c));
    ASSERT_EQ_STR(c, "");
    ASSERT_OK(air_detok_flush(d, &c));
    ASSERT_EQ_STR(c, "\xef\xbf\xbd");
    int32_t hello = air_tokenizer_token_to_id(llama2, "\xe2\x96\x81Hello");
    ASSERT_OK(air_detok_push(d, hello, &c));
    ASSERT_EQ_STR(c, "Hello"); /* first token of a new stream: leading space stripped */
    ASSERT_OK(air_detok_push(d, hello, &c));
    ASSERT_EQ_STR(c, " Hello");
    air_detok_free(d);
    char buf[64];
    int32_t two[2] = {hello, hello};
    stream_all(llama2, two, 2, buf, sizeof buf);
    ASSERT_EQ_STR(buf, "Hello Hello");
}

TEST(config_variants) {
    const char *cfg = "{\"bos_token\": {\"__type\": \"AddedToken\", \"content\": \"ab\"}, "
                      "\"eos_token\": \"b\", \"chat_template\": [{\"name\": \"tool_use\", "
                      "\"template\": \"T\"}, {\"name\": \"default\", \"template\": \"D\"}]}";
    const char *js = "{" MINI_MODEL "}";
    air_tokenizer *t = NULL;
    ASSERT_OK(air_tokenizer_load_from_memory(js, strlen(js), cfg, &t));
    ASSERT_EQ_STR(air_tokenizer_bos_token(t), "ab");
    ASSERT_EQ_INT(air_tokenizer_bos_id(t), 2);
    ASSERT_EQ_STR(air_tokenizer_eos_token(t), "b");
    ASSERT_EQ_INT(air_tokenizer_eos_id(t), 1);
    ASSERT_EQ_STR(air_tokenizer_chat_template(t), "D");
    /* no decoder: tokens joined with spaces, as HF does */
    int32_t ids[3] = {2, 0, 7};
    char *text;
    ASSERT_OK(air_tokenizer_decode(t, ids, 3, 0, &text));
    ASSERT_EQ_STR(text, "ab a");
    free(text);
    air_tokenizer_free(t);
    ASSERT_ERR(air_tokenizer_load_from_memory(js, strlen(js), "{bad", &t), AIR_ERR_FORMAT,
               "tokenizer_config.json");
}

static void *encode_thread(void *arg) {
    const char *text = "Hello world, this is a thread-safety test with repeated words words words "
                       "and numbers 12345 and 日本語.";
    int32_t *ids;
    size_t n;
    long sum = 0;
    for (int r = 0; r < 200; r++) {
        if (air_tokenizer_encode(qwen, text, strlen(text), 1, &ids, &n) != AIR_OK)
            return (void *)-1L;
        for (size_t i = 0; i < n; i++)
            sum += ids[i] * (long)(i + 1);
        free(ids);
    }
    *(long *)arg = sum;
    return NULL;
}

TEST(concurrent_encode) {
    pthread_t th[4];
    long sums[4] = {0};
    for (int i = 0; i < 4; i++)
        pthread_create(&th[i], NULL, encode_thread, &sums[i]);
    for (int i = 0; i < 4; i++)
        pthread_join(th[i], NULL);
    ASSERT_TRUE(sums[0] != 0);
    for (int i = 1; i < 4; i++)
        ASSERT_EQ_INT(sums[i], sums[0]);
}

int main(void) {
    corpus = tt_read_gz_json(test_data("tokenizers/corpus.json.gz"), &corpus_doc);
    if (!corpus) {
        fprintf(stderr, "cannot read the corpus (tests/fixtures/tokenizers/corpus.json.gz)\n");
        return 1;
    }
    tt_tmp = strdup(test_tmp("tokenizer_unit"));
    if (tt_load_real("qwen3", &qwen) || tt_load_real("llama2", &llama2)) {
        fprintf(stderr, "cannot load the qwen3/llama2 fixtures: %s\n", air_last_error());
        return 1;
    }
    RUN(from_arrays_llama3_1);
    RUN(from_arrays_llama2);
    RUN(from_arrays_options);
    RUN(from_arrays_errors);
    RUN(errors);
    RUN(invalid_utf8_is_lossy);
    RUN(empty_input);
    RUN(null_args);
    RUN(stream_utf8);
    RUN(config_variants);
    RUN(concurrent_encode);
    air_tokenizer_free(qwen);
    air_tokenizer_free(llama2);
    tt_json_free(&corpus_doc);
    free(tt_tmp);
    return test_summary();
}
