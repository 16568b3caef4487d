/*
 * chat.h - chat templates: turns a list of chat messages into the prompt
 * text a model was trained on, by rendering the model's Jinja chat template
 * (tokenizer_config.json "chat_template") the way transformers'
 * apply_chat_template(..., tokenize=False) does.
 *
 *     char *prompt = NULL;
 *     if (air_chat_render(tmpl, messages, NULL, 1, "<s>", "</s>", NULL, &prompt) != AIR_OK)
 *         fprintf(stderr, "%s\n", air_last_error());
 *     ...
 *     free(prompt);
 *
 * Variables the template sees: messages, tools (None when NULL), documents
 * (None), add_generation_prompt, bos_token and eos_token (undefined when
 * NULL), then every key of `extra` (which overrides the others), plus the
 * globals raise_exception, strftime_now, namespace, range and dict.
 * As in transformers, keys whose value is null are dropped from each message,
 * and a message's reasoning ("reasoning_content", "thinking" or "reasoning")
 * is also given under "thinking" and "reasoning_content".
 *
 * strftime_now uses the local time, or the date in the environment variable
 * AIR_FAKE_DATE ("YYYY-MM-DD" or "YYYY-MM-DDTHH:MM:SS") when it is set (tests).
 *
 * Thread safety: a parsed air_chat_template is immutable; any number of
 * threads may render it at once.
 */
#ifndef AIR_TEXT_CHAT_H
#define AIR_TEXT_CHAT_H

#include <cjson/cJSON.h>

#include "airllm.h"

/* Renders a chat template. messages: cJSON array of {"role":..., "content":...,
 * optional "tool_calls"...}; tools: cJSON array or NULL; extra: cJSON object of
 * extra variables or NULL (all borrowed). On success *out is a malloc'd string
 * the caller frees. A template error is AIR_ERR_FORMAT with a message giving
 * the line and column in the template (a raise_exception() in the template
 * gives its message); AIR_ERR_LIMIT when rendering runs away (output over
 * 64 MiB, macro recursion deeper than 64, too many steps).
 *
 * When tmpl is NULL, renders the fallback format instead: for each message
 * one line "<role>: <content>\n", then "assistant:" (always, without a
 * newline). A content that is not a string is shown as its "text" parts
 * joined (content lists) or as JSON; a missing content is empty. */
air_status air_chat_render(const char *tmpl, const cJSON *messages, const cJSON *tools,
                           int add_generation_prompt, const char *bos_token, const char *eos_token,
                           const cJSON *extra, char **out);

/* Parsing once and rendering many times. */
typedef struct air_chat_template air_chat_template;

/* Parses a template; *out is freed with air_chat_template_free(). A syntax
 * error is AIR_ERR_FORMAT with line and column. tmpl NULL gives the fallback
 * format described above. */
air_status air_chat_template_parse(const char *tmpl, air_chat_template **out);

/* Same arguments and results as air_chat_render(). */
air_status air_chat_template_render(const air_chat_template *t, const cJSON *messages,
                                    const cJSON *tools, int add_generation_prompt,
                                    const char *bos_token, const char *eos_token,
                                    const cJSON *extra, char **out);

/* NULL is a no-op. */
void air_chat_template_free(air_chat_template *t);

#endif
