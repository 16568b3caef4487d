/*
 * chat_files.h - where a model folder keeps its chat template, and which one
 * transformers would use.
 *
 * A Hugging Face model folder can hold its template in four places; the
 * tokenizer of transformers reads them in this order:
 *   1. chat_template.jinja (the "default" template; transformers 5.x writes
 *      it there) and additional_chat_templates/<name>.jinja (named ones).
 *      When any of these exists, tokenizer_config.json's template is ignored.
 *   2. tokenizer_config.json "chat_template": a string, or a list of
 *      {"name": ..., "template": ...}.
 *   3. chat_template.json {"chat_template": ...}, the older processor file;
 *      the tokenizer ignores it, so it is used only when 1 and 2 give nothing.
 * Among named templates "tool_use" is chosen when tools are given and it
 * exists, otherwise "default"; several templates without a "default" are an
 * error, as in transformers. A .jinja file is read as Python's text mode reads
 * it: "\r\n" and "\r" become "\n".
 */
#ifndef AIR_TEXT_CHAT_FILES_H
#define AIR_TEXT_CHAT_FILES_H

#include "airllm.h"

/* The template for the model folder `dir`. *out is the template text (caller
 * frees) or NULL when the folder has none; *origin names where it came from
 * (static string, NULL when none). AIR_ERR_FORMAT for an unreadable or
 * malformed file, or named templates without a "default". */
air_status air_chat_template_find(const char *dir, int with_tools, char **out, const char **origin);

/* 1 if `dir` holds any of the chat template files of step 1 or 3. */
int air_chat_template_files_exist(const char *dir);

/* The chat template files of steps 1 and 3 that exist in dir, as paths
 * relative to it ("chat_template.jinja", "additional_chat_templates/x.jinja",
 * ...), NULL-terminated; free with air_chat_template_files_free(). NULL on
 * error (*st says why). */
char **air_chat_template_files(const char *dir, air_status *st);
void air_chat_template_files_free(char **files);

/* The folder of named templates: the one subfolder a store's copies use. */
#define AIR_CHAT_NAMED_DIR "additional_chat_templates"

#endif
