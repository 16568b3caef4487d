/*
 * chat.c - chat template rendering on top of the Jinja interpreter.
 *
 * Data flow: caller's cJSON messages/tools/extra -> one cJSON object of
 * template variables (messages normalized the way transformers does it:
 * null-valued keys dropped, reasoning fields aliased) -> air_jinja_render.
 * Without a template, the fallback "role: content" format is written here.
 */
#include "text/chat.h"

#include <stdlib.h>
#include <string.h>

#include "text/jinja/jinja.h"
#include "util/error.h"
#include "util/strbuf.h"

struct air_chat_template {
    air_jinja_template *jt; /* NULL: fallback format */
};

static const char *const REASONING_FIELDS[] = {"reasoning_content", "thinking", "reasoning"};

/* One message as transformers passes it to the template. */
static cJSON *normalize_message(const cJSON *m) {
    const cJSON *reasoning = NULL;
    for (int k = 0; k < 3 && !reasoning; k++) {
        const cJSON *r = cJSON_GetObjectItemCaseSensitive(m, REASONING_FIELDS[k]);
        if (r && !cJSON_IsNull(r))
            reasoning = r;
    }
    cJSON *o = cJSON_CreateObject();
    if (!o)
        return NULL;
    if (reasoning && !cJSON_AddItemToObject(o, "thinking", cJSON_Duplicate(reasoning, 1)))
        goto oom;
    int had_rc = 0;
    for (const cJSON *e = m->child; e; e = e->next) {
        if (!e->string || cJSON_IsNull(e))
            continue;
        const cJSON *src = e;
        if (reasoning && strcmp(e->string, "thinking") == 0) {
            if (!cJSON_ReplaceItemInObjectCaseSensitive(o, "thinking", cJSON_Duplicate(e, 1)))
                goto oom;
            continue;
        }
        if (reasoning && strcmp(e->string, "reasoning_content") == 0) {
            src = reasoning;
            had_rc = 1;
        }
        cJSON *d = cJSON_Duplicate(src, 1);
        if (!d || !cJSON_AddItemToObject(o, e->string, d)) {
            cJSON_Delete(d);
            goto oom;
        }
    }
    if (reasoning && !had_rc &&
        !cJSON_AddItemToObject(o, "reasoning_content", cJSON_Duplicate(reasoning, 1)))
        goto oom;
    return o;
oom:
    cJSON_Delete(o);
    return NULL;
}

static air_status build_vars(const cJSON *messages, const cJSON *tools, int add_gen,
                             const char *bos, const char *eos, const cJSON *extra, cJSON **out) {
    cJSON *v = cJSON_CreateObject();
    cJSON *msgs = cJSON_CreateArray();
    if (!v || !msgs) {
        cJSON_Delete(v);
        cJSON_Delete(msgs);
        return air_err(AIR_ERR_NOMEM, "out of memory building chat template variables");
    }
    cJSON_AddItemToObject(v, "messages", msgs);
    int i = 0;
    for (const cJSON *m = messages->child; m; m = m->next, i++) {
        if (!cJSON_IsObject(m)) {
            cJSON_Delete(v);
            return air_err(AIR_ERR_INVALID_ARG,
                           "chat message %d is not an object; each message must be "
                           "{\"role\": ..., \"content\": ...}",
                           i);
        }
        cJSON *nm = normalize_message(m);
        if (!nm) {
            cJSON_Delete(v);
            return air_err(AIR_ERR_NOMEM, "out of memory building chat template variables");
        }
        cJSON_AddItemToArray(msgs, nm);
    }
    cJSON_AddItemToObject(v, "tools", tools ? cJSON_Duplicate(tools, 1) : cJSON_CreateNull());
    cJSON_AddItemToObject(v, "documents", cJSON_CreateNull());
    cJSON_AddItemToObject(v, "add_generation_prompt", cJSON_CreateBool(add_gen != 0));
    if (bos)
        cJSON_AddItemToObject(v, "bos_token", cJSON_CreateString(bos));
    if (eos)
        cJSON_AddItemToObject(v, "eos_token", cJSON_CreateString(eos));
    if (extra && cJSON_IsObject(extra)) {
        for (const cJSON *e = extra->child; e; e = e->next) {
            if (!e->string)
                continue;
            cJSON *d = cJSON_Duplicate(e, 1);
            if (!d) {
                cJSON_Delete(v);
                return air_err(AIR_ERR_NOMEM, "out of memory building chat template variables");
            }
            if (cJSON_GetObjectItemCaseSensitive(v, e->string))
                cJSON_ReplaceItemInObjectCaseSensitive(v, e->string, d);
            else
                cJSON_AddItemToObject(v, e->string, d);
        }
    }
    *out = v;
    return AIR_OK;
}

static air_status render_fallback(const cJSON *messages, char **out) {
    air_strbuf sb = {0};
    air_status st = AIR_OK;
    for (const cJSON *m = messages->child; m && !st; m = m->next) {
        const cJSON *role = cJSON_GetObjectItemCaseSensitive(m, "role");
        const cJSON *content = cJSON_GetObjectItemCaseSensitive(m, "content");
        st = air_sb_puts(&sb, cJSON_IsString(role) ? role->valuestring : "");
        if (!st)
            st = air_sb_puts(&sb, ": ");
        if (!st && cJSON_IsString(content)) {
            st = air_sb_puts(&sb, content->valuestring);
        } else if (!st && cJSON_IsArray(content)) {
            for (const cJSON *p = content->child; p && !st; p = p->next) {
                const cJSON *text = cJSON_GetObjectItemCaseSensitive(p, "text");
                if (cJSON_IsString(text))
                    st = air_sb_puts(&sb, text->valuestring);
            }
        } else if (!st && content && !cJSON_IsNull(content)) {
            char *j = cJSON_PrintUnformatted(content);
            st = j ? air_sb_puts(&sb, j) : air_err(AIR_ERR_NOMEM, "out of memory");
            free(j);
        }
        if (!st)
            st = air_sb_putc(&sb, '\n');
    }
    if (!st)
        st = air_sb_puts(&sb, "assistant:");
    if (st) {
        air_sb_free(&sb);
        return st;
    }
    *out = air_sb_take(&sb);
    return *out ? AIR_OK : air_err(AIR_ERR_NOMEM, "out of memory");
}

air_status air_chat_template_parse(const char *tmpl, air_chat_template **out) {
    if (!out)
        return air_err(AIR_ERR_INVALID_ARG, "air_chat_template_parse: out is NULL");
    *out = NULL;
    air_chat_template *t = calloc(1, sizeof *t);
    if (!t)
        return air_err(AIR_ERR_NOMEM, "out of memory parsing a chat template");
    if (tmpl) {
        air_status st = air_jinja_parse(tmpl, strlen(tmpl), &t->jt);
        if (st) {
            free(t);
            return st;
        }
    }
    *out = t;
    return AIR_OK;
}

void air_chat_template_free(air_chat_template *t) {
    if (!t)
        return;
    air_jinja_free(t->jt);
    free(t);
}

air_status air_chat_template_render(const air_chat_template *t, const cJSON *messages,
                                    const cJSON *tools, int add_generation_prompt,
                                    const char *bos_token, const char *eos_token,
                                    const cJSON *extra, char **out) {
    if (!t || !out)
        return air_err(AIR_ERR_INVALID_ARG, "air_chat_template_render: NULL template or out");
    *out = NULL;
    if (!cJSON_IsArray(messages))
        return air_err(AIR_ERR_INVALID_ARG, "chat messages must be a JSON array of objects");
    if (!messages->child)
        return air_err(AIR_ERR_INVALID_ARG,
                       "cannot apply a chat template to an empty conversation; provide at least "
                       "one message");
    if (tools && !cJSON_IsArray(tools) && !cJSON_IsNull(tools))
        return air_err(AIR_ERR_INVALID_ARG, "chat tools must be a JSON array (or NULL)");
    if (!t->jt)
        return render_fallback(messages, out);
    cJSON *vars = NULL;
    air_status st = build_vars(messages, cJSON_IsNull(tools) ? NULL : tools, add_generation_prompt,
                               bos_token, eos_token, extra, &vars);
    if (st)
        return st;
    st = air_jinja_render(t->jt, vars, NULL, out);
    cJSON_Delete(vars);
    return st;
}

air_status air_chat_render(const char *tmpl, const cJSON *messages, const cJSON *tools,
                           int add_generation_prompt, const char *bos_token, const char *eos_token,
                           const cJSON *extra, char **out) {
    air_chat_template *t = NULL;
    if (out)
        *out = NULL;
    air_status st = air_chat_template_parse(tmpl, &t);
    if (st)
        return st;
    st = air_chat_template_render(t, messages, tools, add_generation_prompt, bos_token, eos_token,
                                  extra, out);
    air_chat_template_free(t);
    return st;
}
