/*
 * test_chat_goldens.c - renders every real chat template in
 * tests/fixtures/chat/templates/ with every message set of cases.json and
 * compares with the text transformers' apply_chat_template produced
 * (goldens.json, from tests/gen/gen_chat_goldens.py). Where transformers
 * raised, we must fail too, with the same message.
 */
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "test.h"
#include "text/chat.h"
#include "util/fileio.h"

static cJSON *load_json(const char *rel) {
    char *data = NULL;
    size_t len = 0;
    if (air_read_file(test_data(rel), &data, &len) != AIR_OK) {
        fprintf(stderr, "cannot read %s: %s\n", rel, air_last_error());
        return NULL;
    }
    cJSON *j = cJSON_ParseWithLength(data, len);
    free(data);
    return j;
}

/* Prints where two strings first differ. */
static void show_diff(const char *got, const char *exp) {
    size_t i = 0;
    while (got[i] && got[i] == exp[i])
        i++;
    size_t from = i > 40 ? i - 40 : 0;
    fprintf(stderr,
            "  first difference at byte %zu\n  got:      \"%.80s\"\n  expected: \"%.80s\"\n", i,
            got + from, exp + from);
}

static int n_checked, n_errors_checked;

TEST(goldens_match_transformers) {
    cJSON *manifest = load_json("chat/templates/templates.json");
    cJSON *cases = load_json("chat/cases.json");
    cJSON *goldens = load_json("chat/goldens.json");
    ASSERT_TRUE(manifest && cases && goldens);
    const cJSON *fake = cJSON_GetObjectItem(goldens, "fake_date");
    setenv("AIR_FAKE_DATE", fake->valuestring, 1);
    int failures = 0;
    const cJSON *rec;
    cJSON_ArrayForEach(rec, cJSON_GetObjectItem(goldens, "records")) {
        const char *tname = cJSON_GetObjectItem(rec, "template")->valuestring;
        const char *cname = cJSON_GetObjectItem(rec, "case")->valuestring;
        int add_gen = cJSON_IsTrue(cJSON_GetObjectItem(rec, "add_generation_prompt"));
        const cJSON *info = cJSON_GetObjectItem(manifest, tname);
        const cJSON *c = cJSON_GetObjectItem(cases, cname);
        char rel[512];
        snprintf(rel, sizeof rel, "chat/templates/%s",
                 cJSON_GetObjectItem(info, "file")->valuestring);
        char *tmpl = NULL;
        size_t tlen = 0;
        ASSERT_OK(air_read_file(test_data(rel), &tmpl, &tlen));
        const cJSON *bos = cJSON_GetObjectItem(info, "bos_token");
        const cJSON *eos = cJSON_GetObjectItem(info, "eos_token");
        /* extra variables: the template's own, then the case's */
        cJSON *extra = cJSON_CreateObject();
        const cJSON *e;
        cJSON_ArrayForEach(e, cJSON_GetObjectItem(info, "extra"))
            cJSON_AddItemToObject(extra, e->string, cJSON_Duplicate(e, 1));
        cJSON_ArrayForEach(e, cJSON_GetObjectItem(c, "extra")) {
            cJSON_DeleteItemFromObject(extra, e->string);
            cJSON_AddItemToObject(extra, e->string, cJSON_Duplicate(e, 1));
        }
        char *out = NULL;
        air_status st = air_chat_render(tmpl, cJSON_GetObjectItem(c, "messages"),
                                        cJSON_GetObjectItem(c, "tools"), add_gen,
                                        cJSON_IsString(bos) ? bos->valuestring : NULL,
                                        cJSON_IsString(eos) ? eos->valuestring : NULL, extra, &out);
        cJSON_Delete(extra);
        const cJSON *exp = cJSON_GetObjectItem(rec, "expected");
        const cJSON *err = cJSON_GetObjectItem(rec, "error");
        if (exp) {
            if (st != AIR_OK) {
                fprintf(stderr, "%s / %s / gen=%d: failed: %s\n", tname, cname, add_gen,
                        air_last_error());
                failures++;
            } else if (strcmp(out, exp->valuestring) != 0) {
                fprintf(stderr, "%s / %s / gen=%d: output differs\n", tname, cname, add_gen);
                show_diff(out, exp->valuestring);
                failures++;
            }
        } else {
            if (st == AIR_OK) {
                fprintf(stderr, "%s / %s / gen=%d: rendered, but transformers raised: %s\n", tname,
                        cname, add_gen, err->valuestring);
                failures++;
            } else if (st != AIR_ERR_FORMAT || !strstr(air_last_error(), err->valuestring)) {
                fprintf(stderr, "%s / %s / gen=%d: error \"%s\" (%s) does not contain \"%s\"\n",
                        tname, cname, add_gen, air_last_error(), air_strerror(st),
                        err->valuestring);
                failures++;
            }
            n_errors_checked++;
        }
        n_checked++;
        free(out);
        free(tmpl);
    }
    cJSON_Delete(manifest);
    cJSON_Delete(cases);
    cJSON_Delete(goldens);
    fprintf(stderr, "checked %d renders (%d expected errors), %d failures\n", n_checked,
            n_errors_checked, failures);
    ASSERT_EQ_INT(failures, 0);
}

TEST(parse_once_render_many) {
    cJSON *manifest = load_json("chat/templates/templates.json");
    cJSON *cases = load_json("chat/cases.json");
    cJSON *goldens = load_json("chat/goldens.json");
    ASSERT_TRUE(manifest && cases && goldens);
    char *tmpl = NULL;
    size_t tlen = 0;
    ASSERT_OK(air_read_file(test_data("chat/templates/qwen3.jinja"), &tmpl, &tlen));
    air_chat_template *t = NULL;
    ASSERT_OK(air_chat_template_parse(tmpl, &t));
    int n = 0;
    const cJSON *rec;
    cJSON_ArrayForEach(rec, cJSON_GetObjectItem(goldens, "records")) {
        if (strcmp(cJSON_GetObjectItem(rec, "template")->valuestring, "qwen3") != 0)
            continue;
        const cJSON *exp = cJSON_GetObjectItem(rec, "expected");
        if (!exp)
            continue;
        const cJSON *c = cJSON_GetObjectItem(cases, cJSON_GetObjectItem(rec, "case")->valuestring);
        char *out = NULL;
        ASSERT_OK(air_chat_template_render(
            t, cJSON_GetObjectItem(c, "messages"), cJSON_GetObjectItem(c, "tools"),
            cJSON_IsTrue(cJSON_GetObjectItem(rec, "add_generation_prompt")), NULL, "<|im_end|>",
            cJSON_GetObjectItem(c, "extra"), &out));
        ASSERT_EQ_STR(out, exp->valuestring);
        free(out);
        n++;
    }
    ASSERT_TRUE(n > 10);
    air_chat_template_free(t);
    free(tmpl);
    cJSON_Delete(manifest);
    cJSON_Delete(cases);
    cJSON_Delete(goldens);
}

int main(void) {
    RUN(goldens_match_transformers);
    RUN(parse_once_render_many);
    return test_summary();
}
