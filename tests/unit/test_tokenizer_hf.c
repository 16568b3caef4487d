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

/* ------------------------------------------------------------------------- */
/* Unicode sweep: every code point of planes 0-2 (and samples beyond) in a few
 * contexts; the generator stored one FNV-1a hash of HF's ids per chunk of 64
 * code points. Under sanitizers every 8th chunk only (it is ~8 MB of text). */
/* ------------------------------------------------------------------------- */
#if defined(__SANITIZE_ADDRESS__)
#define SWEEP_STRIDE 8
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define SWEEP_STRIDE 8
#endif
#endif
#ifndef SWEEP_STRIDE
#define SWEEP_STRIDE 1
#endif

static uint64_t fnv64(const int32_t *ids, size_t n) {
    uint64_t h = 0xcbf29ce484222325ULL;
    for (size_t i = 0; i < n; i++)
        for (int k = 0; k < 4; k++) {
            h ^= (uint8_t)((uint32_t)ids[i] >> (8 * k));
            h *= 0x100000001b3ULL;
        }
    return h;
}

static int sweep_cp(uint32_t c) {
    return !(c >= 0xD800 && c <= 0xDFFF) &&
           (c < 0x30000 || (c >= 0xE0000 && c < 0xE0200) || c % 4096 == 0);
}

static void check_sweep(const char *name) {
    tt_json sj;
    const tj_val *sw = tt_read_gz_json(test_data("tokenizers/unicode_sweep.json.gz"), &sj);
    ASSERT_TRUE(sw != NULL);
    const tj_val *hs = tj_get(tj_get(sw, "tokenizers"), name);
    ASSERT_TRUE(hs != NULL);
    size_t block = (size_t)tj_get(sw, "block")->u.num;
    air_tokenizer *t = NULL;
    air_status st = tt_load_real(name, &t);
    if (st) {
        tt_json_free(&sj);
        T_FAIL("loading %s: %s", name, air_last_error());
    }
    uint32_t *cps = malloc(0x110000 * sizeof *cps);
    size_t ncp = 0;
    for (uint32_t c = 0; c < 0x110000; c++)
        if (sweep_cp(c))
            cps[ncp++] = c;
    tk_bytes text = {0};
    int bad = 0, checked = 0;
    for (size_t k = 0; k * block < ncp && k < hs->n; k += SWEEP_STRIDE) {
        text.n = 0;
        for (size_t i = k * block; i < ncp && i < (k + 1) * block; i++) {
            char u[4];
            int l = tk_utf8_encode(cps[i], u);
            /* "a%sb %s%s1%s x %s's%s\n%s " */
            const char *lit[8] = {"a", "b ", "", "1", " x ", "'s", "\n", " "};
            for (int r = 0; r < 7; r++) {
                tk_bytes_append(&text, lit[r], strlen(lit[r]));
                tk_bytes_append(&text, u, (size_t)l);
            }
            tk_bytes_append(&text, lit[7], 1);
        }
        int32_t *ids;
        size_t n;
        if (air_tokenizer_encode(t, text.p, text.n, 0, &ids, &n) != AIR_OK) {
            bad++;
            continue;
        }
        char hex[17];
        snprintf(hex, sizeof hex, "%016llx", (unsigned long long)fnv64(ids, n));
        free(ids);
        checked++;
        if (strcmp(hex, hs->u.items[k].u.s) != 0) {
            if (bad < 10)
                fprintf(stderr, "%s: code points U+%04X..U+%04X encode differently from HF\n", name,
                        cps[k * block], cps[(k + 1) * block < ncp ? (k + 1) * block - 1 : ncp - 1]);
            bad++;
        }
    }
    fprintf(stderr, "  %s: %d chunks of %zu code points checked, %d differ\n", name, checked, block,
            bad);
    free(text.p);
    free(cps);
    air_tokenizer_free(t);
    tt_json_free(&sj);
    ASSERT_EQ_INT(bad, 0);
}

TEST(unicode_sweep_llama3_1) {
    check_sweep("llama3_1");
}
TEST(unicode_sweep_qwen3) {
    check_sweep("qwen3");
}
TEST(unicode_sweep_deepseek_v3) {
    check_sweep("deepseek_v3");
}

/* Normalizers over the same code points (alone, "a" cp U+0316, cp U+0301). */
TEST(unicode_sweep_normalizers) {
    tt_json sj;
    const tj_val *sw = tt_read_gz_json(test_data("tokenizers/unicode_sweep.json.gz"), &sj);
    ASSERT_TRUE(sw != NULL);
    const tj_val *ns = tj_get(sw, "normalizers");
    size_t block = (size_t)tj_get(sw, "block")->u.num;
    uint32_t *cps = malloc(0x110000 * sizeof *cps);
    size_t ncp = 0;
    for (uint32_t c = 0; c < 0x110000; c++)
        if (sweep_cp(c))
            cps[ncp++] = c;
    int bad = 0;
    for (uint32_t k = 0; ns && k < ns->n; k++) {
        char js[256];
        snprintf(js, sizeof js,
                 "{\"model\": {\"type\": \"BPE\", \"vocab\": {}, \"merges\": []}, "
                 "\"normalizer\": {\"type\": \"%.*s\"}}",
                 (int)ns->keys[k].n, ns->keys[k].s);
        air_tokenizer *t = NULL;
        if (air_tokenizer_load_from_memory(js, strlen(js), NULL, &t) != AIR_OK) {
            fprintf(stderr, "%s\n", air_last_error());
            bad++;
            continue;
        }
        const tj_val *hs = &ns->u.items[k];
        tk_bytes text = {0}, out = {0};
        tk_matcher mt = {0};
        int nb = 0;
        for (size_t c = 0; c * block < ncp && c < hs->n; c += SWEEP_STRIDE) {
            text.n = 0;
            for (size_t i = c * block; i < ncp && i < (c + 1) * block; i++) {
                char u[4];
                size_t l = (size_t)tk_utf8_encode(cps[i], u);
                if (i > c * block)
                    tk_bytes_append(&text, "|", 1);
                tk_bytes_append(&text, u, l);
                tk_bytes_append(&text, "|a", 2);
                tk_bytes_append(&text, u, l);
                tk_bytes_append(&text, "\xcc\x96|", 3);
                tk_bytes_append(&text, u, l);
                tk_bytes_append(&text, "\xcc\x81", 2);
            }
            if (tk_normalize(t, &mt, text.p, text.n, &out, NULL) != AIR_OK) {
                nb++;
                continue;
            }
            uint64_t h = 0xcbf29ce484222325ULL;
            for (size_t i = 0; i < out.n; i++) {
                h ^= (uint8_t)out.p[i];
                h *= 0x100000001b3ULL;
            }
            char hex[17];
            snprintf(hex, sizeof hex, "%016llx", (unsigned long long)h);
            if (strcmp(hex, hs->u.items[c].u.s) != 0) {
                if (nb < 5)
                    fprintf(stderr, "%.*s: code points U+%04X.. normalize differently from HF\n",
                            (int)ns->keys[k].n, ns->keys[k].s, cps[c * block]);
                nb++;
            }
        }
        fprintf(stderr, "  %.*s: %d chunks differ\n", (int)ns->keys[k].n, ns->keys[k].s, nb);
        bad += nb;
        free(text.p);
        free(out.p);
        tk_matcher_free(&mt);
        air_tokenizer_free(t);
    }
    free(cps);
    tt_json_free(&sj);
    ASSERT_TRUE(ns != NULL);
    ASSERT_EQ_INT(bad, 0);
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
    RUN(unicode_sweep_llama3_1);
    RUN(unicode_sweep_qwen3);
    RUN(unicode_sweep_deepseek_v3);
    RUN(unicode_sweep_normalizers);
    RUN(config_fields);
    RUN(variants);
    tt_json_free(&corpus_doc);
    free(tt_tmp);
    return test_summary();
}
