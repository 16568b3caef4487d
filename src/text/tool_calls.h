/*
 * tool_calls.h - tool calls in generated text: the format a model family
 * writes them in (recognised from its chat template), and an incremental
 * parser that splits the text into content and OpenAI tool calls.
 *
 *     air_tc_parser *p = NULL;
 *     air_tc_sink sink = {on_content, on_call, user};  // either may be NULL
 *     air_tc_parser_new(air_tc_format_from_template(src), seed, &sink, &p);
 *     air_tc_push(p, piece, strlen(piece));          // as text is generated
 *     air_tc_finish(p);                              // at the end
 *     air_tc_content(p); air_tc_calls(p);            // the whole result
 *     air_tc_parser_free(p);
 *
 * Formats (docs/tools.md):
 *   HERMES  (Hermes, Qwen2.5, Qwen3, and models whose template has no tool
 *           support): <tool_call>{"name": ..., "arguments": {...}}</tool_call>,
 *           any number, anywhere in the text;
 *   LLAMA3  (Llama 3.1/3.2): the whole response is {"name": ...,
 *           "parameters": {...}} (several separated by ';'), or
 *           <|python_tag|> then such objects, or name.call(k="v", ...), or
 *           code (a call of "python" with {"code": ...});
 *   MISTRAL [TOOL_CALLS] then [{"name": ..., "arguments": {...}}, ...], or
 *           [TOOL_CALLS]name[ARGS]{...} (newer templates).
 * Text outside calls is content. A call whose JSON is malformed stays in
 * the content as written. Content streams as it comes, except the text that
 * could still be the start of a call (held back until it is clear).
 */
#ifndef AIR_TEXT_TOOL_CALLS_H
#define AIR_TEXT_TOOL_CALLS_H

#include <cjson/cJSON.h>
#include <stddef.h>
#include <stdint.h>

#include "airllm.h"

typedef enum { AIR_TC_NONE = 0, AIR_TC_HERMES, AIR_TC_LLAMA3, AIR_TC_MISTRAL } air_tc_format;

/* The format a chat template's model writes calls in; HERMES when the
 * template does not handle tools (or is NULL), since the tools are then
 * described to the model in that format (air_tc_tools_prompt). */
air_tc_format air_tc_format_from_template(const char *tmpl);

/* 1 if the template renders the `tools` variable itself. */
int air_tc_template_has_tools(const char *tmpl);

/* "none", "hermes", "llama3", "mistral"; air_tc_format_parse is the reverse
 * (AIR_TC_NONE for an unknown name). */
const char *air_tc_format_name(air_tc_format f);
air_tc_format air_tc_format_parse(const char *name);

/* For a template without tool support: a system-prompt text (malloc'd)
 * listing the tools (a JSON array) and how to call them. */
char *air_tc_tools_prompt(const cJSON *tools);

/* The text a forced call starts with (appended to the prompt), and the key
 * holding the arguments in the call object ("arguments" or "parameters"). */
const char *air_tc_call_opener(air_tc_format f);
const char *air_tc_args_key(air_tc_format f);

typedef struct {
    /* content as it becomes final; non-zero return: the caller wants to stop
     * (recorded, see air_tc_stopped) */
    int (*on_content)(void *user, const char *piece);
    /* one complete call: its index in the response, id, name and arguments
     * (a JSON text); non-zero return as above */
    int (*on_call)(void *user, int index, const char *id, const char *name,
                   const char *arguments);
    void *user;
} air_tc_sink;

typedef struct air_tc_parser air_tc_parser;

/* id_seed: call ids are derived from it and the call's index (9 letters and
 * digits, which Mistral templates require). sink may be NULL. */
air_status air_tc_parser_new(air_tc_format f, uint64_t id_seed, const air_tc_sink *sink,
                             air_tc_parser **out);
air_status air_tc_push(air_tc_parser *p, const char *text, size_t n);
/* The end of the text: held-back text is resolved (calls or content). */
air_status air_tc_finish(air_tc_parser *p);
/* All content so far (whitespace only becomes "" once calls were found). */
const char *air_tc_content(const air_tc_parser *p);
/* The calls so far: a JSON array of {"id", "type": "function",
 * "function": {"name", "arguments"}} (owned by the parser). */
const cJSON *air_tc_calls(const air_tc_parser *p);
int air_tc_stopped(const air_tc_parser *p);
void air_tc_parser_free(air_tc_parser *p);

/* Makes an OpenAI call object from a parsed call {"name", args_key: ...}
 * (arguments as an object, or already a JSON string). NULL if it has no
 * string "name". */
cJSON *air_tc_make_call(const cJSON *obj, const char *args_key, const char *id);

/* The id of call `index` for a seed (writes 10 bytes). */
void air_tc_call_id(uint64_t seed, int index, char out[10]);

#endif
