/*
 * api_text.c - the text steps of a chat turn through the public API: the
 * model's chat template, its tokenizer and its decoder, each on its own (see
 * "The steps of air_chat" in airllm.h). air_chat (api_generate.c) renders
 * through air_render_template too, so both paths give the same prompt.
 */
#include <cjson/cJSON.h>
#include <stdlib.h>
#include <string.h>

#include "api_internal.h"
#include "util/error.h"

static air_status need_tokenizer(const air_model *m, const char *what) {
    if (!m)
        return air_err(AIR_ERR_INVALID_ARG, "%s: no model", what);
    if (!m->tok)
        return air_err(AIR_ERR_UNSUPPORTED, "%s: model %s has no tokenizer (tokenizer.json)", what,
                       m->name);
    return AIR_OK;
}

air_status air_render_template(const air_model *m, const cJSON *messages, const cJSON *tools,
                               int add_generation_prompt, const cJSON *vars, char **out) {
    const char *bos = m->tok ? air_tokenizer_bos_token(m->tok) : NULL;
    const char *eos = m->tok ? air_tokenizer_eos_token(m->tok) : NULL;
    return air_chat_template_render(m->tmpl, messages, tools, add_generation_prompt,
                                    bos ? bos : "", eos ? eos : "", vars, out);
}

air_status air_apply_chat_template(const air_model *m, const char *messages_json,
                                   int add_generation_prompt, const char *vars_json, char **text) {
    if (text)
        *text = NULL;
    if (!m || !messages_json || !text)
        return air_err(AIR_ERR_INVALID_ARG,
                       "air_apply_chat_template: no model, messages or output");
    cJSON *msgs = cJSON_Parse(messages_json);
    cJSON *vars = vars_json ? cJSON_Parse(vars_json) : NULL;
    air_status st = AIR_OK;
    if (!cJSON_IsArray(msgs)) {
        st = air_err(AIR_ERR_INVALID_ARG, "air_apply_chat_template: messages must be a JSON array "
                                          "of {\"role\", \"content\"} objects");
    } else if (vars_json && !cJSON_IsObject(vars)) {
        st = air_err(AIR_ERR_INVALID_ARG, "air_apply_chat_template: the template variables must "
                                          "be a JSON object");
    } else {
        int i = 0;
        const cJSON *e;
        cJSON_ArrayForEach(e, msgs) {
            if (!cJSON_IsObject(e) ||
                !cJSON_IsString(cJSON_GetObjectItemCaseSensitive(e, "role"))) {
                st = air_err(AIR_ERR_INVALID_ARG,
                             "air_apply_chat_template: message %d is not an "
                             "object with a \"role\" string",
                             i);
                break;
            }
            i++;
        }
    }
    if (!st)
        st = air_render_template(m, msgs, NULL, add_generation_prompt, vars, text);
    cJSON_Delete(msgs);
    cJSON_Delete(vars);
    return st;
}

air_status air_tokenize(const air_model *m, const char *text, size_t len, int add_special,
                        int32_t **ids, size_t *n_ids) {
    if (ids)
        *ids = NULL;
    if (n_ids)
        *n_ids = 0;
    if (!ids || !n_ids || (!text && len > 0))
        return air_err(AIR_ERR_INVALID_ARG, "air_tokenize: no text or output");
    air_status st = need_tokenizer(m, "air_tokenize");
    if (st)
        return st;
    return air_tokenizer_encode(m->tok, text ? text : "", len, add_special, ids, n_ids);
}

air_status air_detokenize(const air_model *m, const int32_t *ids, size_t n_ids, int skip_special,
                          char **text, size_t *len) {
    if (text)
        *text = NULL;
    if (len)
        *len = 0;
    if (!text || (!ids && n_ids > 0))
        return air_err(AIR_ERR_INVALID_ARG, "air_detokenize: no ids or output");
    air_status st = need_tokenizer(m, "air_detokenize");
    if (st)
        return st;
    size_t n = 0;
    st = air_tokenizer_decode_n(m->tok, ids, n_ids, skip_special, text, &n);
    if (!st && len)
        *len = n;
    return st;
}
