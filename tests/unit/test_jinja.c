/*
 * test_jinja.c - behaviour of the Jinja interpreter and air_chat_render that
 * the golden files do not pin down: error positions and statuses, the
 * runaway guards (output size, recursion, steps), the no-template fallback,
 * message normalization, AIR_FAKE_DATE, and API edge cases.
 */
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "test.h"
#include "text/chat.h"
#include "text/jinja/jinja.h"

/* Renders src with vars given as JSON text; returns status, *out set on success. */
static air_status render(const char *src, const char *vars_json, const air_jinja_limits *lim,
                         char **out) {
    air_jinja_template *t = NULL;
    *out = NULL;
    air_status st = air_jinja_parse(src, strlen(src), &t);
    if (st)
        return st;
    cJSON *vars = vars_json ? cJSON_Parse(vars_json) : NULL;
    st = air_jinja_render(t, vars, lim, out);
    cJSON_Delete(vars);
    air_jinja_free(t);
    return st;
}

TEST(renders_basic) {
    char *out;
    ASSERT_OK(render("Hello {{ name }}!", "{\"name\": \"world\"}", NULL, &out));
    ASSERT_EQ_STR(out, "Hello world!");
    free(out);
    ASSERT_OK(render("", NULL, NULL, &out));
    ASSERT_EQ_STR(out, "");
    free(out);
}

TEST(syntax_error_gives_line_and_column) {
    char *out;
    ASSERT_ERR(render("line one\nline two {{ 1 + }}", NULL, NULL, &out), AIR_ERR_FORMAT,
               "line 2, column 17");
    ASSERT_ERR(render("{% if x %}\n\nno end", NULL, NULL, &out), AIR_ERR_FORMAT, "line 1");
    ASSERT_ERR(render("{% if x %}\n\nno end", NULL, NULL, &out), AIR_ERR_FORMAT, "endif");
    ASSERT_ERR(render("ab\n  {{ 'open", NULL, NULL, &out), AIR_ERR_FORMAT,
               "line 2, column 6: unterminated string");
    ASSERT_ERR(render("{{ x | nofilter }}", NULL, NULL, &out), AIR_ERR_FORMAT,
               "no filter named 'nofilter'");
    ASSERT_ERR(render("{% for %}", NULL, NULL, &out), AIR_ERR_FORMAT, "line 1, column 8");
    ASSERT_ERR(render("é{{ ) }}", NULL, NULL, &out), AIR_ERR_FORMAT, "line 1, column 5");
}

TEST(runtime_error_gives_position) {
    char *out;
    ASSERT_ERR(render("a\n{{ 1 // 0 }}", NULL, NULL, &out), AIR_ERR_FORMAT,
               "line 2, column 6: integer division or modulo by zero");
    ASSERT_ERR(render("{{ m.content.strip() }}", "{\"m\": {}}", NULL, &out), AIR_ERR_FORMAT,
               "'dict object' has no attribute 'content'");
    ASSERT_ERR(render("\n\n  {{ raise_exception('Bad roles!') }}", NULL, NULL, &out),
               AIR_ERR_FORMAT, "line 3, column 6: Bad roles!");
}

TEST(output_limit) {
    air_jinja_limits lim = {0};
    lim.max_output = 1000;
    char *out;
    ASSERT_ERR(render("{% for i in range(2000) %}x{% endfor %}", NULL, &lim, &out), AIR_ERR_LIMIT,
               "exceed 1000 bytes");
    ASSERT_OK(render("{% for i in range(1000) %}x{% endfor %}", NULL, &lim, &out));
    ASSERT_EQ_INT(strlen(out), 1000);
    free(out);
    /* the limit also holds for text built in a variable */
    ASSERT_ERR(render("{% set ns = namespace(s='x') %}{% for i in range(30) %}"
                      "{% set ns.s = ns.s ~ ns.s %}{% endfor %}",
                      NULL, &lim, &out),
               AIR_ERR_LIMIT, "");
}

TEST(recursion_limit) {
    char *out;
    ASSERT_ERR(render("{% macro f(n) %}{{ f(n + 1) }}{% endmacro %}{{ f(0) }}", NULL, NULL, &out),
               AIR_ERR_LIMIT, "macro calls nested more than 64 deep");
    air_jinja_limits lim = {0};
    lim.max_depth = 5;
    ASSERT_ERR(render("{% macro f(n) %}{{ f(n + 1) }}{% endmacro %}{{ f(0) }}", NULL, &lim, &out),
               AIR_ERR_LIMIT, "more than 5 deep");
    ASSERT_OK(render("{% macro f(n) %}{% if n < 4 %}{{ n }}{{ f(n + 1) }}{% endif %}{% endmacro %}"
                     "{{ f(0) }}",
                     NULL, &lim, &out));
    ASSERT_EQ_STR(out, "0123");
    free(out);
}

TEST(step_and_memory_limits) {
    air_jinja_limits lim = {0};
    lim.max_steps = 10000;
    char *out;
    ASSERT_ERR(render("{% for i in range(100) %}{% for j in range(100) %}{% for k in range(100) %}"
                      "{% endfor %}{% endfor %}{% endfor %}",
                      NULL, &lim, &out),
               AIR_ERR_LIMIT, "steps");
    ASSERT_ERR(render("{{ range(100000000) }}", NULL, NULL, &out), AIR_ERR_LIMIT, "range()");
    lim.max_steps = 0;
    lim.max_memory = 8 << 20;
    ASSERT_ERR(render("{% set ns = namespace(l=[]) %}{% for i in range(100000) %}"
                      "{% set ns.l = ns.l + [i] %}{% endfor %}",
                      NULL, &lim, &out),
               AIR_ERR_LIMIT, "memory");
}

TEST(deep_nesting_is_a_syntax_error) {
    char src[4096] = "{{ ";
    for (int i = 0; i < 1000; i++)
        strcat(src, "(");
    char *out;
    ASSERT_ERR(render(src, NULL, NULL, &out), AIR_ERR_FORMAT, "");
    char src2[8192] = "";
    for (int i = 0; i < 300; i++)
        strcat(src2, "{% if 1 %}");
    ASSERT_ERR(render(src2, NULL, NULL, &out), AIR_ERR_FORMAT, "nested more than");
}

TEST(long_chains_hit_a_limit_not_the_stack) {
    size_t n = 20000;
    char *src = malloc(n * 8 + 64), *p = src;
    p += sprintf(p, "{{ 0");
    for (size_t i = 0; i < n; i++)
        p += sprintf(p, " or 0");
    sprintf(p, " }}");
    char *out;
    ASSERT_ERR(render(src, NULL, NULL, &out), AIR_ERR_LIMIT, "more than 2000 deep");
    p = src + sprintf(src, "{{ 'x'");
    for (size_t i = 0; i < n; i++)
        p += sprintf(p, "|trim");
    sprintf(p, " }}");
    ASSERT_ERR(render(src, NULL, NULL, &out), AIR_ERR_LIMIT, "filters");
    free(src);
    /* a value that contains itself can still be printed and compared */
    ASSERT_OK(render("{% set ns = namespace(l=[]) %}{% for i in range(300) %}{% set ns.l = [ns.l] "
                     "%}{% endfor %}{{ ns.l == ns.l }}{{ (ns.l | string) | length > 0 }}",
                     NULL, NULL, &out));
    ASSERT_EQ_STR(out, "TrueTrue");
    free(out);
}

TEST(fake_date) {
    char *out;
    setenv("AIR_FAKE_DATE", "2025-02-03", 1);
    ASSERT_OK(render("{{ strftime_now('%d %b %Y %A %H:%M') }}", NULL, NULL, &out));
    ASSERT_EQ_STR(out, "03 Feb 2025 Monday 00:00");
    free(out);
    setenv("AIR_FAKE_DATE", "2024-12-31T23:59:58", 1);
    ASSERT_OK(render("{{ strftime_now('%Y-%m-%d %H:%M:%S %j') }}", NULL, NULL, &out));
    ASSERT_EQ_STR(out, "2024-12-31 23:59:58 366");
    free(out);
    setenv("AIR_FAKE_DATE", "yesterday", 1);
    ASSERT_ERR(render("{{ strftime_now('%Y') }}", NULL, NULL, &out), AIR_ERR_INVALID_ARG,
               "AIR_FAKE_DATE");
    unsetenv("AIR_FAKE_DATE");
    ASSERT_OK(render("{{ strftime_now('%Y') | length }}", NULL, NULL, &out));
    ASSERT_EQ_STR(out, "4");
    free(out);
}

TEST(template_is_reusable_and_const) {
    const char *src = "{% for m in messages %}{{ m.role }}:{{ m.content }};{% endfor %}";
    air_jinja_template *t = NULL;
    ASSERT_OK(air_jinja_parse(src, strlen(src), &t));
    for (int i = 0; i < 3; i++) {
        cJSON *v = cJSON_Parse("{\"messages\": [{\"role\": \"user\", \"content\": \"x\"}]}");
        char *out = NULL;
        ASSERT_OK(air_jinja_render(t, v, NULL, &out));
        ASSERT_EQ_STR(out, "user:x;");
        free(out);
        cJSON_Delete(v);
    }
    air_jinja_free(t);
    air_jinja_free(NULL);
}

static cJSON *msgs(const char *json) {
    return cJSON_Parse(json);
}

TEST(fallback_without_template) {
    cJSON *m =
        msgs("[{\"role\": \"system\", \"content\": \"S\"}, {\"role\": \"user\", \"content\": "
             "\"Hi\\nthere\"}, {\"role\": \"assistant\"}, {\"role\": \"user\", \"content\": "
             "[{\"type\": \"text\", \"text\": \"a\"}, {\"type\": \"image\"}, {\"type\": "
             "\"text\", \"text\": \"b\"}]}]");
    char *out = NULL;
    ASSERT_OK(air_chat_render(NULL, m, NULL, 1, "<s>", "</s>", NULL, &out));
    ASSERT_EQ_STR(out, "system: S\nuser: Hi\nthere\nassistant: \nuser: ab\nassistant:");
    free(out);
    ASSERT_OK(air_chat_render(NULL, m, NULL, 0, NULL, NULL, NULL, &out));
    ASSERT_EQ_STR(out, "system: S\nuser: Hi\nthere\nassistant: \nuser: ab\nassistant:");
    free(out);
    cJSON_Delete(m);
}

TEST(chat_variables) {
    cJSON *m = msgs("[{\"role\": \"user\", \"content\": \"q\", \"tool_calls\": null}]");
    char *out = NULL;
    const char *t = "{{ bos_token }}|{{ eos_token }}|{{ add_generation_prompt }}|{{ tools }}|"
                    "{{ documents }}|{{ messages[0] }}|{{ messages[0].tool_calls is defined }}|"
                    "{{ flag }}";
    cJSON *extra = cJSON_Parse("{\"flag\": [1, \"two\"], \"bos_token\": \"<B>\"}");
    ASSERT_OK(air_chat_render(t, m, NULL, 1, "<s>", NULL, extra, &out));
    ASSERT_EQ_STR(out, "<B>||True|None|None|{'role': 'user', 'content': 'q'}|False|[1, 'two']");
    free(out);
    cJSON_Delete(extra);
    cJSON_Delete(m);
}

TEST(reasoning_fields_are_aliased) {
    cJSON *m =
        msgs("[{\"role\": \"assistant\", \"content\": \"a\", \"reasoning\": \"r\"},"
             " {\"role\": \"assistant\", \"thinking\": \"t\", \"reasoning_content\": \"rc\"}]");
    char *out = NULL;
    ASSERT_OK(air_chat_render("{% for m in messages %}{{ m | tojson }}\n{% endfor %}", m, NULL, 0,
                              NULL, NULL, NULL, &out));
    ASSERT_EQ_STR(out, "{\"thinking\": \"r\", \"role\": \"assistant\", \"content\": \"a\", "
                       "\"reasoning\": \"r\", \"reasoning_content\": \"r\"}\n"
                       "{\"thinking\": \"t\", \"role\": \"assistant\", \"reasoning_content\": "
                       "\"rc\"}\n");
    free(out);
    cJSON_Delete(m);
}

TEST(chat_argument_errors) {
    char *out = NULL;
    cJSON *empty = cJSON_CreateArray();
    ASSERT_ERR(air_chat_render("x", empty, NULL, 0, NULL, NULL, NULL, &out), AIR_ERR_INVALID_ARG,
               "empty conversation");
    cJSON *bad = msgs("[\"just a string\"]");
    ASSERT_ERR(air_chat_render("x", bad, NULL, 0, NULL, NULL, NULL, &out), AIR_ERR_INVALID_ARG,
               "message 0 is not an object");
    cJSON *obj = cJSON_CreateObject();
    ASSERT_ERR(air_chat_render("x", obj, NULL, 0, NULL, NULL, NULL, &out), AIR_ERR_INVALID_ARG,
               "array");
    ASSERT_ERR(air_chat_template_parse("{% if %}", NULL), AIR_ERR_INVALID_ARG, "NULL");
    air_chat_template *t = NULL;
    ASSERT_ERR(air_chat_template_parse("{% if %}", &t), AIR_ERR_FORMAT, "line 1, column 7");
    ASSERT_TRUE(t == NULL);
    air_chat_template_free(NULL);
    cJSON_Delete(empty);
    cJSON_Delete(bad);
    cJSON_Delete(obj);
}

TEST(raise_exception_from_chat_template) {
    cJSON *m = msgs("[{\"role\": \"assistant\", \"content\": \"a\"}]");
    char *out = NULL;
    ASSERT_ERR(air_chat_render("{% if messages[0].role != 'user' %}{{ raise_exception('First "
                               "message must be from the user') }}{% endif %}",
                               m, NULL, 1, NULL, NULL, NULL, &out),
               AIR_ERR_FORMAT, "First message must be from the user");
    ASSERT_TRUE(out == NULL);
    cJSON_Delete(m);
}

int main(void) {
    RUN(renders_basic);
    RUN(syntax_error_gives_line_and_column);
    RUN(runtime_error_gives_position);
    RUN(output_limit);
    RUN(recursion_limit);
    RUN(step_and_memory_limits);
    RUN(deep_nesting_is_a_syntax_error);
    RUN(long_chains_hit_a_limit_not_the_stack);
    RUN(fake_date);
    RUN(template_is_reusable_and_const);
    RUN(fallback_without_template);
    RUN(chat_variables);
    RUN(reasoning_fields_are_aliased);
    RUN(chat_argument_errors);
    RUN(raise_exception_from_chat_template);
    return test_summary();
}
