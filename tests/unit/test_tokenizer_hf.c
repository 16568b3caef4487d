/*
 * test_tokenizer_hf.c - exactness against Hugging Face `tokenizers`: the five
 * real tokenizers (llama3_1, qwen3, llama2, deepseek_v3, gemma3) and the
 * synthetic variants, on the hard-case corpus, with goldens made by
 * tests/gen/gen_tokenizer_goldens.py.
 */
#include <dirent.h>

#include "test_tokenizer_common.h"

static const tj_val *corpus;
static tt_json corpus_doc;

#define T_FAIL_NORET(name, st)                                                                     \
    do {                                                                                           \
        fprintf(stderr, "loading %s failed: %s: %s\n", name, air_strerror(st), air_last_error());  \
        t_cur_failed = 1;                                                                          \
    } while (0)

static void check_real(const char *name) {
    air_tokenizer *t = NULL;
    air_status st = tt_load_real(name, &t);
    if (st) {
        T_FAIL_NORET(name, st);
        return;
    }
    char p[256];
    snprintf(p, sizeof p, "tokenizers/goldens/%s.json.gz", name);
    tt_json gj;
    const tj_val *gold = tt_read_gz_json(test_data(p), &gj);
    if (!gold) {
        air_tokenizer_free(t);
        t_cur_failed = 1;
        fprintf(stderr, "cannot read %s\n", p);
        return;
    }
    int bad = tt_check_goldens(t, gold, corpus, name, 0, 0);
    tt_json_free(&gj);
    air_tokenizer_free(t);
    if (bad)
        t_cur_failed = 1;
}

TEST(llama3_1) {
    check_real("llama3_1");
}
TEST(qwen3) {
    check_real("qwen3");
}
TEST(llama2) {
    check_real("llama2");
}
TEST(deepseek_v3) {
    check_real("deepseek_v3");
}
TEST(gemma3) {
    check_real("gemma3");
}

TEST(config_fields) {
    air_tokenizer *t = NULL;
    ASSERT_OK(tt_load_real("qwen3", &t));
    ASSERT_TRUE(air_tokenizer_bos_token(t) == NULL);
    ASSERT_EQ_STR(air_tokenizer_eos_token(t), "<|im_end|>");
    ASSERT_EQ_INT(air_tokenizer_eos_id(t), 151645);
    ASSERT_TRUE(air_tokenizer_chat_template(t) != NULL);
    ASSERT_TRUE(strstr(air_tokenizer_chat_template(t), "<|im_start|>") != NULL);
    ASSERT_EQ_INT(air_tokenizer_vocab_size(t), 151669);
    ASSERT_TRUE(air_tokenizer_is_special(t, 151644));
    ASSERT_TRUE(!air_tokenizer_is_special(t, 151657)); /* <tool_call>: added, not special */
    ASSERT_TRUE(!air_tokenizer_is_special(t, 100));
    ASSERT_EQ_STR(air_tokenizer_id_to_token(t, 151644), "<|im_start|>");
    ASSERT_EQ_STR(air_tokenizer_id_to_token(t, 9707), "Hello");
    ASSERT_EQ_INT(air_tokenizer_token_to_id(t, "Hello"), 9707);
    ASSERT_EQ_INT(air_tokenizer_token_to_id(t, "<|im_start|>"), 151644);
    ASSERT_EQ_INT(air_tokenizer_token_to_id(t, "no such token at all"), -1);
    ASSERT_TRUE(air_tokenizer_id_to_token(t, -1) == NULL);
    ASSERT_TRUE(air_tokenizer_id_to_token(t, 1 << 30) == NULL);
    air_tokenizer_free(t);

    ASSERT_OK(tt_load_real("deepseek_v3", &t)); /* AddedToken objects in the config */
    ASSERT_EQ_STR(air_tokenizer_bos_token(t), "<｜begin▁of▁sentence｜>");
    ASSERT_EQ_INT(air_tokenizer_bos_id(t), 0);
    ASSERT_EQ_INT(air_tokenizer_eos_id(t), 1);
    air_tokenizer_free(t);

    ASSERT_OK(tt_load_real("llama2", &t));
    ASSERT_EQ_STR(air_tokenizer_bos_token(t), "<s>");
    ASSERT_TRUE(air_tokenizer_chat_template(t) == NULL);
    ASSERT_EQ_INT(air_tokenizer_vocab_size(t), 32000);
    air_tokenizer_free(t);
}

TEST(variants) {
    char dir[4096];
    snprintf(dir, sizeof dir, "%s", test_data("tokenizers/variants"));
    DIR *d = opendir(dir);
    ASSERT_TRUE(d != NULL);
    struct dirent *e;
    int count = 0, bad = 0;
    while ((e = readdir(d))) {
        if (!strstr(e->d_name, ".json.gz"))
            continue;
        char p[8192];
        snprintf(p, sizeof p, "%s/%s", dir, e->d_name);
        /* the variant's tokenizer.json is embedded as a string */
        tt_json vj;
        const tj_val *v = tt_read_gz_json(p, &vj);
        if (!v) {
            bad++;
            continue;
        }
        const char *name = tj_get(v, "tokenizer")->u.s;
        const tj_val *js = tj_get(v, "tokenizer_json");
        air_tokenizer *t = NULL;
        air_status st = air_tokenizer_load_from_memory(js->u.s, js->n, NULL, &t);
        if (st) {
            fprintf(stderr, "variant %s: load failed: %s\n", name, air_last_error());
            bad++;
        } else {
            bad += tt_check_goldens(t, v, corpus, name, 0, 0);
            air_tokenizer_free(t);
        }
        tt_json_free(&vj);
        count++;
    }
    closedir(d);
    ASSERT_TRUE(count >= 10);
    ASSERT_EQ_INT(bad, 0);
}

int main(void) {
    corpus = tt_read_gz_json(test_data("tokenizers/corpus.json.gz"), &corpus_doc);
    if (!corpus) {
        fprintf(stderr, "cannot read the corpus (tests/fixtures/tokenizers/corpus.json.gz)\n");
        return 1;
    }
    tt_tmp = strdup(test_tmp("tokenizer_hf"));
    RUN(llama3_1);
    RUN(qwen3);
    RUN(llama2);
    RUN(deepseek_v3);
    RUN(gemma3);
    RUN(config_fields);
    RUN(variants);
    tt_json_free(&corpus_doc);
    free(tt_tmp);
    return test_summary();
}
