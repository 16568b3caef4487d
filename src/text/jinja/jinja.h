/*
 * jinja.h - a Jinja template interpreter for chat templates.
 *
 * Covers the subset of Jinja2 that Hugging Face chat templates use, with the
 * environment transformers configures (trim_blocks, lstrip_blocks, loop
 * controls, its own tojson, raise_exception, strftime_now, namespace).
 *
 * Data flow: template text -> lexer (tokens, whitespace control applied) ->
 * parser (AST, kept in the template's own arena) -> evaluator, which walks
 * the AST with variables converted from cJSON into the interpreter's values
 * (allocated in a per-render arena that is dropped as a whole at the end).
 *
 *     air_jinja_template *t = NULL;
 *     if (air_jinja_parse(src, strlen(src), &t) != AIR_OK) ... air_last_error()
 *     cJSON *vars = ...;               // object: name -> value
 *     char *out = NULL;
 *     air_jinja_render(t, vars, NULL, &out); ... free(out);
 *     air_jinja_free(t);
 *
 * A parsed template is immutable: several threads may render it at once.
 * Errors name the template line and column ("line 3, column 7: ...").
 */
#ifndef AIR_TEXT_JINJA_H
#define AIR_TEXT_JINJA_H

#include <stddef.h>
#include <stdint.h>

#include <cjson/cJSON.h>

#include "airllm.h"

typedef struct air_jinja_template air_jinja_template;

/* Limits applied while rendering; zero fields take the defaults. */
typedef struct {
    size_t max_output;  /* bytes of rendered text (default 64 MiB) */
    size_t max_memory;  /* bytes of values alive in one render (default 512 MiB) */
    int max_depth;      /* nested macro calls / recursive loops (default 64) */
    uint64_t max_steps; /* evaluated statements + loop iterations (default 50M) */
} air_jinja_limits;

/* Parses `len` bytes of template text. On success *out is a template the
 * caller frees with air_jinja_free(). A syntax error returns AIR_ERR_FORMAT
 * with the line and column. */
air_status air_jinja_parse(const char *src, size_t len, air_jinja_template **out);

/* Renders with the variables of the cJSON object `vars` (may be NULL); the
 * globals range, dict, namespace, raise_exception and strftime_now are always
 * there. On success *out is a NUL-terminated malloc'd string the caller frees.
 * Errors: AIR_ERR_FORMAT (template error, message with line and column, or the
 * text given to raise_exception), AIR_ERR_LIMIT (a limit was hit),
 * AIR_ERR_NOMEM. `limits` may be NULL. */
air_status air_jinja_render(const air_jinja_template *t, const cJSON *vars,
                            const air_jinja_limits *limits, char **out);

/* Frees a template; NULL is a no-op. */
void air_jinja_free(air_jinja_template *t);

#endif
