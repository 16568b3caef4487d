/* test_chat_files.c - which chat template a model folder uses, against
 * transformers.
 *
 * tests/fixtures/chat/folders/ holds tokenizer folders written by transformers'
 * save_pretrained (5.x: chat_template.jinja, additional_chat_templates/) and
 * the older layouts (a template list in tokenizer_config.json,
 * chat_template.json); folder_goldens.json has what
 * AutoTokenizer.from_pretrained(folder).apply_chat_template renders for each
 * (tests/gen/gen_chat_goldens.py). We must find the same template and render
 * the same bytes, copy the files into a layer store, and a model whose folder
 * was saved by transformers 5.x must prompt exactly as transformers does.
 */
#include <cjson/cJSON.h>
#include <sys/stat.h>

#include "airllm.h"
#include "test.h"
#include "text/chat.h"
#include "text/chat_files.h"
#include "util/fileio.h"

static cJSON *load_json(const char *rel) {
    char *text = NULL;
    size_t n = 0;
    if (air_read_file(test_data(rel), &text, &n) != AIR_OK)
        return NULL;
    cJSON *j = cJSON_ParseWithLength(text, n);
    free(text);
    return j;
}

static const char *str_or_null(const cJSON *o, const char *k) {
    const cJSON *v = cJSON_GetObjectItem(o, k);
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

/* Renders one golden record from folder `dir`; 1 if it agrees. */
static int check_record(const char *dir, const cJSON *rec, const cJSON *cases) {
    const cJSON *c = cJSON_GetObjectItem(cases, str_or_null(rec, "case"));
    const cJSON *tools = cJSON_GetObjectItem(c, "tools");
    int add_gen = cJSON_IsTrue(cJSON_GetObjectItem(rec, "add_generation_prompt"));
    const char *want = str_or_null(rec, "expected");
    char *tmpl = NULL, *out = NULL;
    const char *origin = NULL;
    air_status st = air_chat_template_find(dir, tools != NULL, &tmpl, &origin);
    if (st == AIR_OK && tmpl)
        st = air_chat_render(tmpl, cJSON_GetObjectItem(c, "messages"), tools, add_gen,
                             str_or_null(rec, "bos_token"), str_or_null(rec, "eos_token"), NULL,
                             &out);
    int ok;
    if (!want) /* transformers failed: so must we, with the reason */
        ok = st == AIR_ERR_FORMAT && strstr(air_last_error(), "default") != NULL;
    else
        ok = st == AIR_OK && out && strcmp(out, want) == 0;
    if (!ok)
        fprintf(stderr, "  %s / %s / add_gen=%d: %s\n    got: %.200s\n    want: %.200s\n", dir,
                str_or_null(rec, "case"), add_gen, st ? air_last_error() : "rendered",
                out ? out : "(none)", want ? want : str_or_null(rec, "error"));
    free(tmpl);
    free(out);
    return ok;
}

TEST(folders_render_like_transformers) {
    cJSON *g = load_json("chat/folder_goldens.json");
    cJSON *cases = load_json("chat/cases.json");
    ASSERT_TRUE(g && cases);
    setenv("AIR_FAKE_DATE", "2024-07-26T10:30:00", 1);
    int n = 0, bad = 0;
    const cJSON *rec;
    cJSON_ArrayForEach(rec, cJSON_GetObjectItem(g, "records")) {
        char rel[256];
        snprintf(rel, sizeof rel, "chat/folders/%s", str_or_null(rec, "folder"));
        bad += !check_record(test_data(rel), rec, cases);
        n++;
    }
    fprintf(stderr, "  %d records, %d disagree\n", n, bad);
    ASSERT_TRUE(n >= 40);
    ASSERT_EQ_INT(bad, 0);
    cJSON_Delete(g);
    cJSON_Delete(cases);
}

TEST(where_the_template_came_from) {
    char *t = NULL;
    const char *origin = NULL;
    ASSERT_OK(air_chat_template_find(test_data("chat/folders/v5_jinja"), 0, &t, &origin));
    ASSERT_EQ_STR(origin, "chat_template.jinja");
    free(t);
    ASSERT_OK(air_chat_template_find(test_data("chat/folders/jinja_over_config"), 0, &t, &origin));
    ASSERT_EQ_STR(origin, "chat_template.jinja");
    free(t);
    ASSERT_OK(air_chat_template_find(test_data("chat/folders/config_list"), 1, &t, &origin));
    ASSERT_EQ_STR(origin, "tokenizer_config.json");
    free(t);
    ASSERT_OK(air_chat_template_find(test_data("chat/folders/json_only"), 0, &t, &origin));
    ASSERT_EQ_STR(origin, "chat_template.json");
    free(t);
    /* a folder without any template */
    const char *empty = test_tmp("chat-files-empty");
    ASSERT_OK(air_chat_template_find(empty, 0, &t, &origin));
    ASSERT_TRUE(t == NULL && origin == NULL);
    ASSERT_TRUE(!air_chat_template_files_exist(empty));
    /* a malformed list is an error, not a silent fallback */
    char p[4200];
    snprintf(p, sizeof p, "%s/tokenizer_config.json", empty);
    const char *bad = "{\"chat_template\": [{\"name\": \"default\"}]}";
    ASSERT_OK(air_write_file_atomic(p, bad, strlen(bad)));
    ASSERT_ERR(air_chat_template_find(empty, 0, &t, &origin), AIR_ERR_FORMAT, "tokenizer_config");
}

TEST(files_copied_keep_the_choice) {
    const char *src = test_data("chat/folders/v5_multi");
    ASSERT_TRUE(air_chat_template_files_exist(src));
    const char *dst = test_tmp("chat-files-copy");
    /* the files a store copies: listed, then copied one by one */
    air_status lst = AIR_OK;
    char **rel = air_chat_template_files(src, &lst);
    ASSERT_OK(lst);
    ASSERT_TRUE(rel && rel[0]);
    for (int i = 0; rel[i]; i++) {
        char from[4300], to[4300], *data = NULL;
        size_t len = 0;
        snprintf(from, sizeof from, "%s/%s", src, rel[i]);
        snprintf(to, sizeof to, "%s/%s", dst, rel[i]);
        if (strchr(rel[i], '/')) {
            char sub[4300];
            snprintf(sub, sizeof sub, "%s/%s", dst, AIR_CHAT_NAMED_DIR);
            ASSERT_OK(air_mkdirs(sub));
        }
        ASSERT_OK(air_read_file(from, &data, &len));
        ASSERT_OK(air_write_file_atomic(to, data, len));
        free(data);
    }
    air_chat_template_files_free(rel);
    for (int tools = 0; tools < 2; tools++) {
        char *a = NULL, *b = NULL;
        const char *oa, *ob;
        ASSERT_OK(air_chat_template_find(src, tools, &a, &oa));
        ASSERT_OK(air_chat_template_find(dst, tools, &b, &ob));
        ASSERT_TRUE(a && b && strcmp(a, b) == 0);
        free(a);
        free(b);
    }
}

/* The tiny_chat model with its tokenizer saved by transformers 5.x (the
 * template only in chat_template.jinja) prompts and answers as transformers
 * does with the original folder. */
TEST(model_saved_by_transformers_5_uses_chat_template_jinja) {
    char dir[4200], from[4200], to[4300];
    snprintf(dir, sizeof dir, "%s", test_tmp("chat-files-model"));
    static const char *const model_files[] = {"config.json",
                                              "generation_config.json",
                                              "model.safetensors.index.json",
                                              "model-00001-of-00002.safetensors",
                                              "model-00002-of-00002.safetensors",
                                              NULL};
    static const char *const tok_files[] = {"tokenizer.json", "tokenizer_config.json",
                                            "chat_template.jinja", NULL};
    char *data = NULL;
    size_t n = 0;
    for (int i = 0; model_files[i]; i++) {
        snprintf(from, sizeof from, "%s/%s", test_data("models/tiny_chat"), model_files[i]);
        snprintf(to, sizeof to, "%s/src/%s", dir, model_files[i]);
        ASSERT_OK(air_read_file(from, &data, &n));
        ASSERT_OK(air_mkdirs(strcat(strcpy(from, dir), "/src")));
        ASSERT_OK(air_write_file_atomic(to, data, n));
        free(data);
    }
    for (int i = 0; tok_files[i]; i++) {
        snprintf(from, sizeof from, "%s/%s", test_data("chat/folders/v5_jinja"), tok_files[i]);
        snprintf(to, sizeof to, "%s/src/%s", dir, tok_files[i]);
        ASSERT_OK(air_read_file(from, &data, &n));
        ASSERT_OK(air_write_file_atomic(to, data, n));
        free(data);
    }
    /* the 5.x layout: no template in tokenizer_config.json */
    snprintf(to, sizeof to, "%s/src/tokenizer_config.json", dir);
    ASSERT_OK(air_read_file(to, &data, &n));
    ASSERT_TRUE(strstr(data, "chat_template") == NULL);
    free(data);

    cJSON *golden = load_json("models/tiny_chat/golden.json");
    ASSERT_TRUE(golden != NULL);
    air_model_params mp = air_model_default_params();
    mp.compression = "none";
    snprintf(to, sizeof to, "%s/cache", dir);
    mp.cache_dir = to;
    air_model *m = NULL;
    snprintf(from, sizeof from, "%s/src", dir);
    ASSERT_OK(air_model_open(from, &mp, &m));
    air_model_info info;
    air_model_get_info(m, &info);
    ASSERT_TRUE(info.has_chat_template);
    /* the template file went into the store with the tokenizer */
    snprintf(from, sizeof from, "%s/chat_template.jinja", info.store_dir);
    ASSERT_TRUE(air_path_exists(from));
    const cJSON *conv;
    cJSON_ArrayForEach(conv, cJSON_GetObjectItem(golden, "conversations")) {
        air_message msgs[8];
        int k = 0;
        const cJSON *e;
        cJSON_ArrayForEach(e, cJSON_GetObjectItem(conv, "messages")) msgs[k++] =
            (air_message){.role = str_or_null(e, "role"), .content = str_or_null(e, "content")};
        air_gen_params gp = air_gen_default_params();
        gp.temperature = 0;
        gp.max_tokens = 24;
        air_result r;
        ASSERT_OK(air_chat(m, msgs, k, &gp, &r));
        ASSERT_EQ_INT(r.prompt_tokens, cJSON_GetArraySize(cJSON_GetObjectItem(conv, "prompt_ids")));
        ASSERT_EQ_STR(r.text, str_or_null(conv, "greedy_text"));
        air_result_free(&r);
    }
    air_model_close(m);
    cJSON_Delete(golden);
}

int main(void) {
    RUN(folders_render_like_transformers);
    RUN(where_the_template_came_from);
    RUN(files_copied_keep_the_choice);
    RUN(model_saved_by_transformers_5_uses_chat_template_jinja);
    return test_summary();
}
