/*
 * test_tool_calls.c - tool-call parsing per model family against the goldens
 * in fixtures/tool_calls/cases.json (texts in; content and calls out,
 * malformed calls included), whole and streamed in pieces of every size
 * from 1 to 8 bytes; and the format recognised from real chat templates.
 */
#include <cjson/cJSON.h>
#include <ctype.h>

#include "test.h"
#include "text/tool_calls.h"

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

typedef struct {
    char content[4096];
    size_t len;
    int n_calls;
    int bad_index;
} sink_log;

static int on_content(void *u, const char *piece) {
    sink_log *l = u;
    size_t n = strlen(piece);
    if (l->len + n < sizeof l->content) {
        memcpy(l->content + l->len, piece, n + 1);
        l->len += n;
    }
    return 0;
}

static int on_call(void *u, int index, const char *id, const char *name, const char *args) {
    sink_log *l = u;
    if (index != l->n_calls || !id || !name || !args)
        l->bad_index = 1;
    l->n_calls++;
    return 0;
}

static int all_space(const char *s) {
    for (; *s; s++)
        if (!isspace((unsigned char)*s))
            return 0;
    return 1;
}

/* Runs one case with pieces of `step` bytes (0: whole). Returns 0 if it matches. */
static int run_case(const cJSON *c, int step) {
    air_tc_format f = air_tc_format_parse(cJSON_GetObjectItem(c, "format")->valuestring);
    const char *text = cJSON_GetObjectItem(c, "text")->valuestring;
    const char *want_content = cJSON_GetObjectItem(c, "content")->valuestring;
    const cJSON *want_calls = cJSON_GetObjectItem(c, "calls");
    sink_log log = {0};
    air_tc_sink sink = {on_content, on_call, &log};
    air_tc_parser *p = NULL;
    if (air_tc_parser_new(f, 42, &sink, &p) != AIR_OK)
        return 1;
    size_t n = strlen(text);
    for (size_t i = 0; i < n;) {
        size_t k = step ? (size_t)step : n;
        if (k > n - i)
            k = n - i;
        air_tc_push(p, text + i, k);
        i += k;
    }
    air_tc_finish(p);
    int bad = 0;
    if (strcmp(air_tc_content(p), want_content) != 0) {
        fprintf(stderr, "step %d: content \"%s\", want \"%s\"\n", step, air_tc_content(p),
                want_content);
        bad = 1;
    }
    /* what streamed is the content (plus spaces dropped once calls were found) */
    if (strcmp(log.content, want_content) != 0 && !(want_content[0] == 0 && all_space(log.content))) {
        fprintf(stderr, "step %d: streamed content \"%s\", want \"%s\"\n", step, log.content,
                want_content);
        bad = 1;
    }
    const cJSON *calls = air_tc_calls(p);
    if (cJSON_GetArraySize(calls) != cJSON_GetArraySize(want_calls) ||
        log.n_calls != cJSON_GetArraySize(want_calls) || log.bad_index) {
        fprintf(stderr, "step %d: %d calls (%d streamed), want %d\n", step,
                cJSON_GetArraySize(calls), log.n_calls, cJSON_GetArraySize(want_calls));
        bad = 1;
    } else {
        for (int i = 0; i < cJSON_GetArraySize(calls); i++) {
            const cJSON *got = cJSON_GetArrayItem(calls, i), *want = cJSON_GetArrayItem(want_calls, i);
            const cJSON *fn = cJSON_GetObjectItem(got, "function");
            const char *id = cJSON_GetObjectItem(got, "id")->valuestring;
            const cJSON *want_id = cJSON_GetObjectItem(want, "id");
            cJSON *args = cJSON_Parse(cJSON_GetObjectItem(fn, "arguments")->valuestring);
            int ok = strcmp(cJSON_GetObjectItem(got, "type")->valuestring, "function") == 0 &&
                     strcmp(cJSON_GetObjectItem(fn, "name")->valuestring,
                            cJSON_GetObjectItem(want, "name")->valuestring) == 0 &&
                     args && cJSON_Compare(args, cJSON_GetObjectItem(want, "arguments"), 1);
            if (want_id)
                ok = ok && strcmp(id, want_id->valuestring) == 0;
            else {
                ok = ok && strlen(id) == 9;
                for (const char *q = id; *q; q++)
                    ok = ok && isalnum((unsigned char)*q);
            }
            if (!ok) {
                char *s = cJSON_PrintUnformatted(got);
                fprintf(stderr, "step %d: call %d is %s\n", step, i, s);
                free(s);
                bad = 1;
            }
            cJSON_Delete(args);
        }
    }
    air_tc_parser_free(p);
    return bad;
}

TEST(goldens_whole_and_streamed) {
    char *txt = read_all(test_data("tool_calls/cases.json"));
    cJSON *cases = txt ? cJSON_Parse(txt) : NULL;
    free(txt);
    ASSERT_TRUE(cJSON_IsArray(cases));
    int bad = 0, n = 0;
    const cJSON *c;
    cJSON_ArrayForEach(c, cases) {
        for (int step = 0; step <= 8; step++)
            if (run_case(c, step)) {
                fprintf(stderr, "  case %d: %s\n", n, cJSON_GetObjectItem(c, "text")->valuestring);
                bad++;
                break;
            }
        n++;
    }
    cJSON_Delete(cases);
    ASSERT_TRUE(n >= 30);
    ASSERT_EQ_INT(bad, 0);
}

TEST(ids_differ) {
    char a[10], b[10], c[10];
    air_tc_call_id(1, 0, a);
    air_tc_call_id(1, 1, b);
    air_tc_call_id(2, 0, c);
    ASSERT_TRUE(strcmp(a, b) != 0 && strcmp(a, c) != 0 && strlen(a) == 9);
}

static air_tc_format fmt_of(const char *file) {
    char rel[256];
    snprintf(rel, sizeof rel, "chat/templates/%s", file);
    char *t = read_all(test_data(rel));
    air_tc_format f = t ? air_tc_format_from_template(t) : AIR_TC_NONE;
    free(t);
    return f;
}

TEST(format_from_templates) {
    ASSERT_EQ_INT(fmt_of("llama_3_1_8b_instruct.jinja"), AIR_TC_LLAMA3);
    ASSERT_EQ_INT(fmt_of("llama_3_2_11b_vision_instruct.jinja"), AIR_TC_LLAMA3);
    ASSERT_EQ_INT(fmt_of("qwen2_5_7b_instruct.jinja"), AIR_TC_HERMES);
    ASSERT_EQ_INT(fmt_of("qwen3.jinja"), AIR_TC_HERMES);
    ASSERT_EQ_INT(fmt_of("hermes_2_pro_llama_3_8b_json_schema.jinja"), AIR_TC_HERMES);
    ASSERT_EQ_INT(fmt_of("mistral_7b_instruct_v0_3_json_schema.jinja"), AIR_TC_MISTRAL);
    ASSERT_EQ_INT(fmt_of("mistral_nemo_instruct_2407.jinja"), AIR_TC_MISTRAL);
    /* no tool support: described in the system prompt, Hermes format */
    ASSERT_EQ_INT(fmt_of("zephyr_7b_beta.jinja"), AIR_TC_HERMES);
    char *z = read_all(test_data("chat/templates/zephyr_7b_beta.jinja"));
    ASSERT_TRUE(z && !air_tc_template_has_tools(z));
    free(z);
}

int main(void) {
    RUN(goldens_whole_and_streamed);
    RUN(ids_differ);
    RUN(format_from_templates);
    return test_summary();
}
