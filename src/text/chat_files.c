/*
 * chat_files.c - finding a model folder's chat template the way transformers
 * does (see chat_files.h for the order), and copying its files.
 */
#include "text/chat_files.h"

#include <cjson/cJSON.h>
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "util/error.h"
#include "util/fileio.h"

#define JINJA_FILE "chat_template.jinja"
#define JSON_FILE "chat_template.json"
#define CONFIG_FILE "tokenizer_config.json"
#define NAMED_DIR AIR_CHAT_NAMED_DIR
#define MAX_NAMED 64

typedef struct {
    char *name[MAX_NAMED];
    char *text[MAX_NAMED];
    int n;
} named_set;

static void set_free(named_set *s) {
    for (int i = 0; i < s->n; i++) {
        free(s->name[i]);
        free(s->text[i]);
    }
    s->n = 0;
}

/* Adds or replaces `name` (takes ownership of text). */
static air_status set_put(named_set *s, const char *name, char *text) {
    for (int i = 0; i < s->n; i++)
        if (strcmp(s->name[i], name) == 0) {
            free(s->text[i]);
            s->text[i] = text;
            return AIR_OK;
        }
    if (s->n == MAX_NAMED) {
        free(text);
        return air_err(AIR_ERR_LIMIT, "more than %d named chat templates", MAX_NAMED);
    }
    if (!(s->name[s->n] = strdup(name))) {
        free(text);
        return air_err(AIR_ERR_NOMEM, "out of memory");
    }
    s->text[s->n++] = text;
    return AIR_OK;
}

/* transformers' choice among named templates; the text is moved to *out. */
static air_status set_pick(named_set *s, int with_tools, const char *where, char **out) {
    int pick = -1;
    for (int i = 0; i < s->n; i++)
        if ((with_tools && strcmp(s->name[i], "tool_use") == 0) ||
            (pick < 0 && strcmp(s->name[i], "default") == 0))
            pick = i;
    if (pick < 0) {
        char names[512] = "";
        for (int i = 0; i < s->n; i++) {
            size_t l = strlen(names);
            snprintf(names + l, sizeof names - l, "%s%s", i ? ", " : "", s->name[i]);
        }
        return air_err(AIR_ERR_FORMAT,
                       "%s: the model has several chat templates (%s) and none is named "
                       "\"default\"; transformers refuses this too. Add a default one "
                       "(chat_template.jinja).",
                       where, names);
    }
    *out = s->text[pick];
    s->text[pick] = NULL;
    return AIR_OK;
}

/* A .jinja file as Python's text mode reads it (universal newlines). */
static air_status read_jinja(const char *path, char **out) {
    char *data = NULL;
    size_t len = 0;
    air_status st = air_read_file(path, &data, &len);
    if (st)
        return st;
    size_t w = 0;
    for (size_t r = 0; r < len; r++) {
        if (data[r] == '\r') {
            data[w++] = '\n';
            if (r + 1 < len && data[r + 1] == '\n')
                r++;
        } else {
            data[w++] = data[r];
        }
    }
    data[w] = 0;
    *out = data;
    return AIR_OK;
}

static int is_regular(const char *path) {
    struct stat sb;
    return stat(path, &sb) == 0 && S_ISREG(sb.st_mode);
}

static int name_cmp(const void *a, const void *b) {
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Names ("x" for x.jinja) in dir/additional_chat_templates, sorted; NULL-terminated. */
static char **named_files(const char *dir, air_status *st) {
    *st = AIR_OK;
    char *nd = air_path_join(dir, NAMED_DIR);
    DIR *d = nd ? opendir(nd) : NULL;
    char **v = calloc(MAX_NAMED + 1, sizeof *v);
    int n = 0;
    if (!v) {
        *st = air_err(AIR_ERR_NOMEM, "out of memory");
    } else if (d) {
        struct dirent *de;
        while ((de = readdir(d))) {
            size_t l = strlen(de->d_name);
            if (l <= 6 || strcmp(de->d_name + l - 6, ".jinja") != 0)
                continue;
            char *full = air_path_join(nd, de->d_name);
            int ok = full && is_regular(full);
            free(full);
            if (!ok)
                continue;
            if (n == MAX_NAMED) {
                *st = air_err(AIR_ERR_LIMIT, "%s: more than %d chat templates", nd, MAX_NAMED);
                break;
            }
            if (!(v[n] = strndup(de->d_name, l - 6))) {
                *st = air_err(AIR_ERR_NOMEM, "out of memory");
                break;
            }
            n++;
        }
        qsort(v, (size_t)n, sizeof *v, name_cmp);
    }
    if (d)
        closedir(d);
    free(nd);
    return v;
}

static void free_names(char **v) {
    for (int i = 0; v && v[i]; i++)
        free(v[i]);
    free(v);
}

/* Step 1: chat_template.jinja and additional_chat_templates/. *found = 1 if
 * any file exists (then *out is the choice). */
static air_status from_files(const char *dir, int with_tools, char **out, int *found) {
    named_set s = {0};
    air_status st = AIR_OK;
    char *jp = air_path_join(dir, JINJA_FILE);
    char **names = named_files(dir, &st);
    if (!jp || !names)
        st = air_err(AIR_ERR_NOMEM, "out of memory");
    if (st == AIR_OK && is_regular(jp)) {
        char *t = NULL;
        if ((st = read_jinja(jp, &t)) == AIR_OK)
            st = set_put(&s, "default", t);
    }
    /* the named files come after chat_template.jinja: a default.jinja there wins */
    for (int i = 0; st == AIR_OK && names[i]; i++) {
        char rel[512];
        snprintf(rel, sizeof rel, "%s/%s.jinja", NAMED_DIR, names[i]);
        char *p = air_path_join(dir, rel);
        char *t = NULL;
        st = p ? read_jinja(p, &t) : air_err(AIR_ERR_NOMEM, "out of memory");
        if (st == AIR_OK)
            st = set_put(&s, names[i], t);
        free(p);
    }
    *found = s.n > 0;
    if (st == AIR_OK && s.n > 0)
        st = set_pick(&s, with_tools, dir, out);
    set_free(&s);
    free_names(names);
    free(jp);
    return st;
}

/* Steps 2 and 3: the "chat_template" value of a JSON file (string or list of
 * {name, template}). *found = 1 if the file has one. */
static air_status from_json(const char *dir, const char *file, int with_tools, char **out,
                            int *found) {
    *found = 0;
    char *p = air_path_join(dir, file);
    if (!p)
        return air_err(AIR_ERR_NOMEM, "out of memory");
    if (!is_regular(p)) {
        free(p);
        return AIR_OK;
    }
    char *text = NULL;
    size_t len = 0;
    air_status st = air_read_file(p, &text, &len);
    cJSON *root = st == AIR_OK ? cJSON_ParseWithLength(text, len) : NULL;
    free(text);
    if (st == AIR_OK && !root)
        st = air_err(AIR_ERR_FORMAT, "%s is not valid JSON", p);
    const cJSON *ct = cJSON_GetObjectItemCaseSensitive(root, "chat_template");
    named_set s = {0};
    if (st == AIR_OK && cJSON_IsString(ct)) {
        *found = 1;
        if (!(*out = strdup(ct->valuestring)))
            st = air_err(AIR_ERR_NOMEM, "out of memory");
    } else if (st == AIR_OK && cJSON_IsArray(ct) && cJSON_GetArraySize(ct) > 0) {
        *found = 1;
        const cJSON *e;
        cJSON_ArrayForEach(e, ct) {
            const cJSON *nm = cJSON_GetObjectItemCaseSensitive(e, "name");
            const cJSON *tp = cJSON_GetObjectItemCaseSensitive(e, "template");
            if (!cJSON_IsString(nm) || !cJSON_IsString(tp)) {
                st = air_err(AIR_ERR_FORMAT,
                             "%s: \"chat_template\" is a list, but not of {\"name\": ..., "
                             "\"template\": ...} objects",
                             p);
                break;
            }
            char *t = strdup(tp->valuestring);
            if ((st = t ? set_put(&s, nm->valuestring, t)
                        : air_err(AIR_ERR_NOMEM, "out of memory")) != AIR_OK)
                break;
        }
        if (st == AIR_OK)
            st = set_pick(&s, with_tools, p, out);
    } else if (st == AIR_OK && ct && !cJSON_IsNull(ct) && !cJSON_IsArray(ct)) {
        st = air_err(AIR_ERR_FORMAT,
                     "%s: \"chat_template\" must be a string or a list of {\"name\", "
                     "\"template\"} objects",
                     p);
    }
    set_free(&s);
    cJSON_Delete(root);
    free(p);
    return st;
}

air_status air_chat_template_find(const char *dir, int with_tools, char **out,
                                  const char **origin) {
    *out = NULL;
    *origin = NULL;
    int found = 0;
    air_status st = from_files(dir, with_tools, out, &found);
    if (st || found) {
        if (found)
            *origin = JINJA_FILE;
        return st;
    }
    if ((st = from_json(dir, CONFIG_FILE, with_tools, out, &found)) || found) {
        if (found)
            *origin = CONFIG_FILE;
        return st;
    }
    if ((st = from_json(dir, JSON_FILE, with_tools, out, &found)) || found) {
        if (found)
            *origin = JSON_FILE;
        return st;
    }
    return AIR_OK;
}

int air_chat_template_files_exist(const char *dir) {
    static const char *const files[] = {JINJA_FILE, JSON_FILE, NAMED_DIR, NULL};
    int any = 0;
    for (int i = 0; files[i] && !any; i++) {
        char *p = air_path_join(dir, files[i]);
        any = p && air_path_exists(p);
        free(p);
    }
    return any;
}

char **air_chat_template_files(const char *dir, air_status *st) {
    char **names = named_files(dir, st);
    char **v = names ? calloc(MAX_NAMED + 3, sizeof *v) : NULL;
    int n = 0;
    if (!*st && !v)
        *st = air_err(AIR_ERR_NOMEM, "out of memory");
    static const char *const single[] = {JINJA_FILE, JSON_FILE};
    for (size_t i = 0; !*st && i < 2; i++) {
        char *p = air_path_join(dir, single[i]);
        if (p && is_regular(p) && !(v[n++] = strdup(single[i])))
            *st = air_err(AIR_ERR_NOMEM, "out of memory");
        free(p);
    }
    for (int i = 0; !*st && names[i]; i++) {
        size_t len = strlen(NAMED_DIR) + strlen(names[i]) + 8;
        if (!(v[n] = malloc(len)))
            *st = air_err(AIR_ERR_NOMEM, "out of memory");
        else
            snprintf(v[n++], len, "%s/%s.jinja", NAMED_DIR, names[i]);
    }
    free_names(names);
    if (*st) {
        air_chat_template_files_free(v);
        return NULL;
    }
    return v;
}

void air_chat_template_files_free(char **files) { free_names(files); }
