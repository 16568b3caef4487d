/*
 * hub_util.c - settings and small string rules of the hub client.
 *
 * air_hub_ctx_init() turns the caller's options plus the environment into
 * one resolved context, with the same precedence huggingface_hub uses:
 *   endpoint  option > HF_ENDPOINT > https://huggingface.co
 *   token     option > HF_TOKEN > HUGGING_FACE_HUB_TOKEN > file $HF_TOKEN_PATH
 *             (default $HF_HOME/token)
 *   cache     option > HF_HUB_CACHE > HUGGINGFACE_HUB_CACHE > $HF_HOME/hub,
 *             HF_HOME defaulting to $XDG_CACHE_HOME/huggingface, then
 *             ~/.cache/huggingface
 *   offline   option or HF_HUB_OFFLINE / TRANSFORMERS_OFFLINE ("1", "true", ...)
 *   limits    option > AIR_HUB_MAX_ATTEMPTS, AIR_HUB_TIMEOUT, AIR_HUB_LOW_SPEED_LIMIT,
 *             AIR_HUB_LOW_SPEED_TIME, AIR_HUB_CONNECT_TIMEOUT > defaults
 * The rest are the rules for repo ids, in-repo paths, ETags, url quoting,
 * allow patterns and cache paths that must match huggingface_hub exactly,
 * and the redaction of credentials from every text a user may see.
 */
#include <ctype.h>
#include <fnmatch.h>
#include <math.h>
#include <pwd.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "source/hub.h"
#include "util/error.h"
#include "util/fileio.h"
#include "util/strbuf.h"

#define DEFAULT_ENDPOINT "https://huggingface.co"

void air_hub_default_options(air_hub_options *o) {
    memset(o, 0, sizeof *o);
}

int air_hub_env_true(const char *v) {
    if (!v)
        return 0;
    return strcasecmp(v, "1") == 0 || strcasecmp(v, "true") == 0 || strcasecmp(v, "yes") == 0 ||
           strcasecmp(v, "on") == 0;
}

static const char *env_nonempty(const char *name) {
    const char *v = getenv(name);
    return v && v[0] ? v : NULL;
}

/* "~/x" -> "$HOME/x"; other paths copied. Caller frees. */
static char *expand_user(const char *p) {
    if (p[0] != '~' || (p[1] != 0 && p[1] != '/'))
        return strdup(p);
    const char *home = env_nonempty("HOME");
    if (!home) {
        struct passwd *pw = getpwuid(getuid());
        home = pw && pw->pw_dir ? pw->pw_dir : "/";
    }
    return air_path_join(home, p[1] ? p + 2 : "");
}

static char *hf_home(void) {
    const char *h = env_nonempty("HF_HOME");
    if (h)
        return expand_user(h);
    const char *xdg = env_nonempty("XDG_CACHE_HOME");
    char *base = expand_user(xdg ? xdg : "~/.cache");
    if (!base)
        return NULL;
    char *r = air_path_join(base, "huggingface");
    free(base);
    return r;
}

static char *default_cache_dir(void) {
    const char *v = env_nonempty("HF_HUB_CACHE");
    if (!v)
        v = env_nonempty("HUGGINGFACE_HUB_CACHE");
    if (v)
        return expand_user(v);
    char *home = hf_home();
    if (!home)
        return NULL;
    char *r = air_path_join(home, "hub");
    free(home);
    return r;
}

/* Token from the token file huggingface-cli login writes; NULL if none. */
static char *token_from_file(void) {
    const char *p = env_nonempty("HF_TOKEN_PATH");
    char *path = NULL;
    if (p) {
        path = expand_user(p);
    } else {
        char *home = hf_home();
        path = home ? air_path_join(home, "token") : NULL;
        free(home);
    }
    if (!path)
        return NULL;
    char *data = NULL;
    size_t len = 0;
    char *tok = NULL;
    if (access(path, R_OK) == 0 && air_read_file(path, &data, &len) == AIR_OK) {
        size_t a = 0, b = len;
        while (a < b && isspace((unsigned char)data[a]))
            a++;
        while (b > a && isspace((unsigned char)data[b - 1]))
            b--;
        if (b > a) {
            tok = malloc(b - a + 1);
            if (tok) {
                memcpy(tok, data + a, b - a);
                tok[b - a] = 0;
            }
        }
        memset(data, 0, len);
        free(data);
    }
    air_err_clear();
    free(path);
    return tok;
}

/* A positive number from the environment variable `name` into *out (left
 * alone when unset); an error naming the variable when it is not one. */
static air_status env_number(const char *name, double max, double *out) {
    const char *v = env_nonempty(name);
    if (!v)
        return AIR_OK;
    char *end;
    double d = strtod(v, &end);
    if (end == v || *end || !isfinite(d) || d <= 0 || d > max)
        return air_err(AIR_ERR_INVALID_ARG,
                       "%s='%s' is not a valid setting: expected a number above 0 and at most %g "
                       "(see docs/hub.md)",
                       name, v, max);
    *out = d;
    return AIR_OK;
}

/* Download limits: option > environment > default. */
static air_status resolve_limits(air_hub_ctx *c, const air_hub_options *o) {
    double attempts = 5, timeout = 0, low_limit = 1024, low_time = 30, connect = 10;
    air_status st = AIR_OK;
    if ((st = env_number("AIR_HUB_MAX_ATTEMPTS", 1000, &attempts)) ||
        (st = env_number("AIR_HUB_TIMEOUT", 1e7, &timeout)) ||
        (st = env_number("AIR_HUB_LOW_SPEED_LIMIT", 1e12, &low_limit)) ||
        (st = env_number("AIR_HUB_LOW_SPEED_TIME", 86400, &low_time)) ||
        (st = env_number("AIR_HUB_CONNECT_TIMEOUT", 3600, &connect)))
        return st;
    c->max_attempts = o->max_attempts > 0 ? o->max_attempts : (int)attempts;
    if (c->max_attempts < 1)
        c->max_attempts = 1;
    c->timeout_s = o->timeout_s > 0 ? o->timeout_s : timeout;
    c->low_speed_limit = o->low_speed_limit > 0 ? o->low_speed_limit : (long)low_limit;
    c->low_speed_time = o->low_speed_time > 0 ? o->low_speed_time : (long)ceil(low_time);
    c->connect_timeout = (long)ceil(connect);
    return AIR_OK;
}

air_status air_hub_ctx_init(air_hub_ctx *c, const air_hub_options *o) {
    air_hub_options def;
    if (!o) {
        air_hub_default_options(&def);
        o = &def;
    }
    memset(c, 0, sizeof *c);
    const char *ep = o->endpoint && o->endpoint[0] ? o->endpoint : env_nonempty("HF_ENDPOINT");
    c->endpoint = strdup(ep ? ep : DEFAULT_ENDPOINT);
    if (c->endpoint) {
        size_t n = strlen(c->endpoint);
        while (n > 0 && c->endpoint[n - 1] == '/')
            c->endpoint[--n] = 0;
    }
    if (o->token && o->token[0]) {
        c->token = strdup(o->token);
    } else {
        const char *t = env_nonempty("HF_TOKEN");
        if (!t)
            t = env_nonempty("HUGGING_FACE_HUB_TOKEN");
        c->token = t ? strdup(t) : token_from_file();
    }
    c->cache_dir =
        o->cache_dir && o->cache_dir[0] ? expand_user(o->cache_dir) : default_cache_dir();
    c->revision = strdup(o->revision && o->revision[0] ? o->revision : "main");
    c->offline = o->offline || air_hub_env_true(getenv("HF_HUB_OFFLINE")) ||
                 air_hub_env_true(getenv("TRANSFORMERS_OFFLINE"));
    c->progress = o->progress;
    c->notice = o->notice;
    c->progress_user = o->progress_user;
    if (!c->endpoint || !c->cache_dir || !c->revision) {
        air_hub_ctx_free(c);
        return air_err(AIR_ERR_NOMEM, "out of memory");
    }
    air_status st = resolve_limits(c, o);
    if (st)
        air_hub_ctx_free(c);
    return st;
}

void air_hub_ctx_free(air_hub_ctx *c) {
    if (!c)
        return;
    if (c->token)
        memset(c->token, 0, strlen(c->token));
    free(c->token);
    free(c->endpoint);
    free(c->cache_dir);
    free(c->revision);
    memset(c, 0, sizeof *c);
}

/* ------------------------------------------------------------------------- */
/* Redaction                                                                 */
/* ------------------------------------------------------------------------- */

/* Characters that end a url inside a message. */
static int url_end(char ch) {
    return ch == 0 || isspace((unsigned char)ch) || ch == '"' || ch == '\'' || ch == '<' ||
           ch == '>' || ch == ')' || ch == ']' || ch == ',';
}

/* text with every occurrence of token (at least 4 characters) replaced by "***". */
static char *redact_token(const char *text, const char *token) {
    air_strbuf sb = {0};
    size_t tl = token ? strlen(token) : 0;
    for (const char *p = text; *p;) {
        if (tl >= 4 && strncmp(p, token, tl) == 0) {
            air_sb_puts(&sb, "***");
            p += tl;
        } else {
            air_sb_putc(&sb, *p++);
        }
    }
    if (!sb.data)
        air_sb_puts(&sb, "");
    return air_sb_take(&sb);
}

static int at_scheme_end(const char *p) {
    return p[0] == ':' && p[1] == '/' && p[2] == '/';
}

char *air_hub_redact(const char *text, const char *token) {
    if (!text)
        return NULL;
    char *plain = redact_token(text, token);
    if (!plain)
        return NULL;
    air_strbuf sb = {0};
    const char *p = plain;
    while (*p) {
        if (!at_scheme_end(p)) {
            air_sb_putc(&sb, *p++);
            continue;
        }
        /* the authority runs to the first '/', '?', '#', end of the url or
         * another "://" (a url inside this one is redacted on its own) */
        air_sb_puts(&sb, "://");
        p += 3;
        const char *a = p;
        while (!url_end(*a) && *a != '/' && *a != '?' && *a != '#' && !at_scheme_end(a))
            a++;
        const char *at = NULL;
        for (const char *q = p; q < a; q++)
            if (*q == '@')
                at = q;
        if (at) {
            air_sb_puts(&sb, "***@");
            p = at + 1;
        }
        air_sb_append(&sb, p, (size_t)(a - p));
        p = a;
        /* the path, up to a query, a fragment or a url inside it */
        while (!url_end(*p) && *p != '?' && *p != '#' && !at_scheme_end(p))
            air_sb_putc(&sb, *p++);
        if (*p == '?') {
            air_sb_puts(&sb, "?***");
            while (!url_end(*p) && *p != '#')
                p++;
        }
    }
    free(plain);
    if (!sb.data)
        air_sb_puts(&sb, "");
    return air_sb_take(&sb);
}

void air_hub_notice(const air_hub_ctx *c, const char *fmt, ...) {
    if (!c->notice)
        return;
    va_list ap;
    va_start(ap, fmt);
    char *raw = NULL;
    int n = vasprintf(&raw, fmt, ap);
    va_end(ap);
    if (n < 0)
        return;
    char *safe = air_hub_redact(raw, c->token);
    free(raw);
    if (safe)
        c->notice(c->progress_user, safe);
    free(safe);
}

/* ------------------------------------------------------------------------- */
/* String rules                                                              */
/* ------------------------------------------------------------------------- */

int air_hub_is_commit(const char *s) {
    if (!s)
        return 0;
    size_t n = 0;
    for (; s[n]; n++)
        if (!((s[n] >= '0' && s[n] <= '9') || (s[n] >= 'a' && s[n] <= 'f')))
            return 0;
    return n == 40;
}

static int valid_part(const char *s, size_t n) {
    if (n == 0 || n > 96)
        return 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)s[i];
        if (!(isalnum(ch) || ch == '_' || ch == '-' || ch == '.'))
            return 0;
    }
    /* word boundaries at both ends: not starting or ending with '-' or '.' */
    if (s[0] == '-' || s[0] == '.' || s[n - 1] == '-' || s[n - 1] == '.')
        return 0;
    return 1;
}

int air_hub_valid_repo_id(const char *id) {
    if (!id || !id[0] || strstr(id, "--") || strstr(id, ".."))
        return 0;
    const char *slash = strchr(id, '/');
    if (!slash)
        return valid_part(id, strlen(id));
    if (strchr(slash + 1, '/'))
        return 0;
    size_t n = strlen(id);
    if (n >= 4 && strcmp(id + n - 4, ".git") == 0)
        return 0;
    return valid_part(id, (size_t)(slash - id)) && valid_part(slash + 1, strlen(slash + 1));
}

int air_hub_is_repo_id(const char *s) {
    if (!s || !strchr(s, '/') || !air_hub_valid_repo_id(s))
        return 0;
    struct stat st;
    return stat(s, &st) != 0;
}

int air_hub_safe_path(const char *p) {
    if (!p || !p[0] || p[0] == '/' || strlen(p) > 1024)
        return 0;
    const char *s = p;
    while (*s) {
        const char *e = strchr(s, '/');
        size_t n = e ? (size_t)(e - s) : strlen(s);
        if (n == 0 || (n == 1 && s[0] == '.') || (n == 2 && s[0] == '.' && s[1] == '.'))
            return 0;
        for (size_t i = 0; i < n; i++)
            if ((unsigned char)s[i] < 0x20 || s[i] == '\\' || s[i] == 0x7f)
                return 0;
        if (!e)
            break;
        s = e + 1;
        if (!*s)
            return 0; /* trailing slash */
    }
    return 1;
}

char *air_hub_normalize_etag(const char *etag) {
    if (!etag)
        return NULL;
    /* Like Python's etag.lstrip("W/").strip('"'): drop leading 'W' and '/'
     * characters, then quotes at both ends. */
    while (*etag == 'W' || *etag == '/')
        etag++;
    while (*etag == '"')
        etag++;
    size_t n = strlen(etag);
    while (n > 0 && etag[n - 1] == '"')
        n--;
    char *r = malloc(n + 1);
    if (r) {
        memcpy(r, etag, n);
        r[n] = 0;
    }
    return r;
}

char *air_hub_quote(const char *s, const char *safe) {
    static const char hex[] = "0123456789ABCDEF";
    air_strbuf sb = {0};
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (isalnum(*p) || *p == '-' || *p == '_' || *p == '.' || *p == '~' ||
            (safe && strchr(safe, *p))) {
            if (air_sb_putc(&sb, (char)*p) != AIR_OK)
                break;
        } else {
            char e[3] = {'%', hex[*p >> 4], hex[*p & 15]};
            if (air_sb_append(&sb, e, 3) != AIR_OK)
                break;
        }
    }
    if (!sb.data)
        air_sb_puts(&sb, "");
    return air_sb_take(&sb);
}

int air_hub_glob(const char *pattern, const char *path) {
    size_t n = strlen(pattern);
    if (n > 0 && pattern[n - 1] == '/') {
        /* "folder/" means everything below folder */
        char *p = malloc(n + 2);
        if (!p)
            return 0;
        memcpy(p, pattern, n);
        p[n] = '*';
        p[n + 1] = 0;
        int m = fnmatch(p, path, 0) == 0;
        free(p);
        return m;
    }
    return fnmatch(pattern, path, 0) == 0;
}

char *air_hub_repo_folder(const char *cache_dir, const char *repo_id) {
    air_strbuf sb = {0};
    air_sb_puts(&sb, "models--");
    for (const char *p = repo_id; *p; p++) {
        if (*p == '/')
            air_sb_puts(&sb, "--");
        else
            air_sb_putc(&sb, *p);
    }
    char *name = air_sb_take(&sb);
    if (!name)
        return NULL;
    char *r = air_path_join(cache_dir, name);
    free(name);
    return r;
}

char *air_hub_blob_link(const char *path, const char *etag) {
    air_strbuf sb = {0};
    air_sb_puts(&sb, "../../");
    for (const char *p = path; *p; p++)
        if (*p == '/')
            air_sb_puts(&sb, "../");
    air_sb_printf(&sb, "blobs/%s", etag);
    return air_sb_take(&sb);
}
