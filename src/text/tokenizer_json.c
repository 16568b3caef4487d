/*
 * tokenizer_json.c - a small, fast JSON parser into an arena DOM.
 *
 * tokenizer.json files are large (up to ~35 MB, millions of values), and a
 * malloc per node is too slow for the load-time target, so every value,
 * key and unescaped string lives in one arena and is freed at once. Arrays
 * and objects are contiguous: children are first pushed on a work stack and
 * copied into the arena when the container closes.
 *
 * Strict RFC 8259 except that it accepts any nesting up to 512 levels; bad
 * input gets a message with line and column.
 */
#include <stdlib.h>
#include <string.h>

#include "text/tokenizer_internal.h"

typedef struct {
    const char *s, *p, *end;
    tk_arena *arena;
    const char *what;
    tj_val *stack; /* pending children */
    tj_key *kstack;
    size_t sn, scap;
    int depth;
    air_status err;
} jp;

static air_status jerr(jp *j, const char *msg) {
    if (j->err)
        return j->err;
    size_t line = 1, col = 1;
    for (const char *q = j->s; q < j->p && q < j->end; q++) {
        if (*q == '\n') {
            line++;
            col = 1;
        } else
            col++;
    }
    j->err = air_err(AIR_ERR_FORMAT, "%s: invalid JSON at line %zu, column %zu: %s", j->what, line,
                     col, msg);
    return j->err;
}

static void skip_ws(jp *j) {
    const char *p = j->p;
    while (p < j->end && (*p == ' ' || *p == '\n' || *p == '\r' || *p == '\t'))
        p++;
    j->p = p;
}

static int push(jp *j, const tj_val *v, const char *k, uint32_t kn) {
    if (j->sn == j->scap) {
        size_t cap = j->scap ? j->scap * 2 : 1024;
        tj_val *s = realloc(j->stack, cap * sizeof *s);
        if (!s)
            return -1;
        j->stack = s;
        tj_key *ks = realloc(j->kstack, cap * sizeof *ks);
        if (!ks)
            return -1;
        j->kstack = ks;
        j->scap = cap;
    }
    j->stack[j->sn] = *v;
    j->kstack[j->sn].s = k;
    j->kstack[j->sn].n = kn;
    j->sn++;
    return 0;
}

static int hexval(int c) {
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

static int read_hex4(jp *j, uint32_t *out) {
    if (j->end - j->p < 4)
        return -1;
    uint32_t v = 0;
    for (int i = 0; i < 4; i++) {
        int h = hexval((unsigned char)j->p[i]);
        if (h < 0)
            return -1;
        v = (v << 4) | (uint32_t)h;
    }
    j->p += 4;
    *out = v;
    return 0;
}

/* at the opening quote; returns string in arena */
static air_status parse_string(jp *j, const char **out, uint32_t *outn) {
    const char *p = ++j->p;
    /* fast scan for the end when there are no escapes */
    const char *q = p;
    while (q < j->end && *q != '"' && *q != '\\' && (unsigned char)*q >= 0x20)
        q++;
    if (q < j->end && *q == '"') {
        size_t n = (size_t)(q - p);
        char *d = tk_arena_strdup(j->arena, p, n);
        if (!d)
            return air_err(AIR_ERR_NOMEM, "out of memory parsing JSON");
        *out = d;
        *outn = (uint32_t)n;
        j->p = q + 1;
        return AIR_OK;
    }
    /* slow path: find the end first to size the output */
    q = p;
    while (q < j->end && *q != '"') {
        if (*q == '\\')
            q++;
        q++;
    }
    if (q >= j->end) {
        j->p = p;
        return jerr(j, "unterminated string");
    }
    char *d = tk_arena_alloc(j->arena, (size_t)(q - p) + 1);
    if (!d)
        return air_err(AIR_ERR_NOMEM, "out of memory parsing JSON");
    size_t n = 0;
    j->p = p;
    while (j->p < q) {
        unsigned char c = (unsigned char)*j->p;
        if (c < 0x20)
            return jerr(j, "control character in string");
        if (c != '\\') {
            d[n++] = (char)c;
            j->p++;
            continue;
        }
        j->p++;
        char e = *j->p++;
        switch (e) {
        case '"':
            d[n++] = '"';
            break;
        case '\\':
            d[n++] = '\\';
            break;
        case '/':
            d[n++] = '/';
            break;
        case 'b':
            d[n++] = '\b';
            break;
        case 'f':
            d[n++] = '\f';
            break;
        case 'n':
            d[n++] = '\n';
            break;
        case 'r':
            d[n++] = '\r';
            break;
        case 't':
            d[n++] = '\t';
            break;
        case 'u': {
            uint32_t cp;
            if (read_hex4(j, &cp))
                return jerr(j, "bad \\u escape");
            if (cp >= 0xD800 && cp <= 0xDBFF) {
                uint32_t lo;
                if (j->p + 1 < q && j->p[0] == '\\' && j->p[1] == 'u') {
                    j->p += 2;
                    if (read_hex4(j, &lo))
                        return jerr(j, "bad \\u escape");
                    if (lo >= 0xDC00 && lo <= 0xDFFF)
                        cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
                    else {
                        n += (size_t)tk_utf8_encode(0xFFFD, d + n);
                        cp = lo >= 0xD800 && lo <= 0xDFFF ? 0xFFFD : lo;
                    }
                } else
                    cp = 0xFFFD; /* lone surrogate */
            } else if (cp >= 0xDC00 && cp <= 0xDFFF)
                cp = 0xFFFD;
            n += (size_t)tk_utf8_encode(cp, d + n);
            break;
        }
        default:
            j->p--;
            return jerr(j, "bad escape in string");
        }
    }
    d[n] = 0;
    *out = d;
    *outn = (uint32_t)n;
    j->p = q + 1;
    return AIR_OK;
}

static air_status parse_value(jp *j, tj_val *v);

static air_status parse_container(jp *j, tj_val *v, int is_obj) {
    if (++j->depth > 512)
        return jerr(j, "nesting too deep");
    j->p++;
    size_t base = j->sn;
    skip_ws(j);
    char close = is_obj ? '}' : ']';
    if (j->p < j->end && *j->p == close) {
        j->p++;
    } else {
        for (;;) {
            const char *k = NULL;
            uint32_t kn = 0;
            skip_ws(j);
            if (is_obj) {
                if (j->p >= j->end || *j->p != '"')
                    return jerr(j, "expected a string key");
                air_status st = parse_string(j, &k, &kn);
                if (st)
                    return st;
                skip_ws(j);
                if (j->p >= j->end || *j->p != ':')
                    return jerr(j, "expected ':'");
                j->p++;
            }
            tj_val child;
            air_status st = parse_value(j, &child);
            if (st)
                return st;
            if (push(j, &child, k, kn))
                return air_err(AIR_ERR_NOMEM, "out of memory parsing JSON");
            skip_ws(j);
            if (j->p < j->end && *j->p == ',') {
                j->p++;
                continue;
            }
            if (j->p < j->end && *j->p == close) {
                j->p++;
                break;
            }
            return jerr(j, is_obj ? "expected ',' or '}'" : "expected ',' or ']'");
        }
    }
    size_t cnt = j->sn - base;
    v->type = is_obj ? TJ_OBJ : TJ_ARR;
    v->n = (uint32_t)cnt;
    v->u.items = NULL;
    v->keys = NULL;
    if (cnt) {
        v->u.items = tk_arena_alloc(j->arena, cnt * sizeof(tj_val));
        if (!v->u.items)
            return air_err(AIR_ERR_NOMEM, "out of memory parsing JSON");
        memcpy(v->u.items, j->stack + base, cnt * sizeof(tj_val));
        if (is_obj) {
            v->keys = tk_arena_alloc(j->arena, cnt * sizeof(tj_key));
            if (!v->keys)
                return air_err(AIR_ERR_NOMEM, "out of memory parsing JSON");
            memcpy(v->keys, j->kstack + base, cnt * sizeof(tj_key));
        }
    }
    j->sn = base;
    j->depth--;
    return AIR_OK;
}

static air_status parse_value(jp *j, tj_val *v) {
    skip_ws(j);
    if (j->p >= j->end)
        return jerr(j, "unexpected end of input");
    memset(v, 0, sizeof *v);
    char c = *j->p;
    switch (c) {
    case '{':
        return parse_container(j, v, 1);
    case '[':
        return parse_container(j, v, 0);
    case '"':
        v->type = TJ_STR;
        return parse_string(j, &v->u.s, &v->n);
    case 't':
        if (j->end - j->p >= 4 && !memcmp(j->p, "true", 4)) {
            v->type = TJ_TRUE;
            j->p += 4;
            return AIR_OK;
        }
        break;
    case 'f':
        if (j->end - j->p >= 5 && !memcmp(j->p, "false", 5)) {
            v->type = TJ_FALSE;
            j->p += 5;
            return AIR_OK;
        }
        break;
    case 'n':
        if (j->end - j->p >= 4 && !memcmp(j->p, "null", 4)) {
            v->type = TJ_NULL;
            j->p += 4;
            return AIR_OK;
        }
        break;
    default:
        if (c == '-' || (c >= '0' && c <= '9')) {
            const char *p = j->p;
            /* fast path: a plain non-negative integer (every vocabulary id) */
            if (c != '0' || p + 1 >= j->end || !(p[1] >= '0' && p[1] <= '9')) {
                const char *q = p;
                uint64_t iv = 0;
                while (q < j->end && *q >= '0' && *q <= '9' && q - p < 15)
                    iv = iv * 10 + (uint64_t)(*q++ - '0');
                if (q > p && (q >= j->end ||
                              (*q != '.' && *q != 'e' && *q != 'E' && !(*q >= '0' && *q <= '9')))) {
                    v->type = TJ_NUM;
                    v->u.num = (double)iv;
                    j->p = q;
                    return AIR_OK;
                }
            }
            char buf[64];
            size_t k = 0;
            if (*p == '-')
                buf[k++] = *p++;
            if (p >= j->end || !(*p >= '0' && *p <= '9'))
                return jerr(j, "bad number");
            while (p < j->end && k < 60 &&
                   ((*p >= '0' && *p <= '9') || *p == '.' || *p == 'e' || *p == 'E' || *p == '+' ||
                    *p == '-'))
                buf[k++] = *p++;
            buf[k] = 0;
            char *e;
            v->type = TJ_NUM;
            v->u.num = strtod(buf, &e);
            if (*e)
                return jerr(j, "bad number");
            j->p = p;
            return AIR_OK;
        }
    }
    return jerr(j, "unexpected character");
}

air_status tj_parse(const char *s, size_t n, const char *what, tj_doc *doc) {
    memset(doc, 0, sizeof *doc);
    jp j = {.s = s, .p = s, .end = s + n, .arena = &doc->arena, .what = what};
    /* skip a UTF-8 BOM */
    if (n >= 3 && !memcmp(s, "\xEF\xBB\xBF", 3))
        j.p += 3;
    tj_val root;
    air_status st = parse_value(&j, &root);
    if (!st) {
        skip_ws(&j);
        if (j.p != j.end)
            st = jerr(&j, "trailing characters after the JSON value");
    }
    if (!st) {
        doc->root = tk_arena_alloc(&doc->arena, sizeof root);
        if (!doc->root)
            st = air_err(AIR_ERR_NOMEM, "out of memory parsing JSON");
        else
            *doc->root = root;
    }
    free(j.stack);
    free(j.kstack);
    if (st)
        tj_free(doc);
    return st;
}

void tj_free(tj_doc *doc) {
    tk_arena_free(&doc->arena);
    doc->root = NULL;
}

const tj_val *tj_get(const tj_val *obj, const char *key) {
    if (!obj || obj->type != TJ_OBJ)
        return NULL;
    size_t kn = strlen(key);
    /* last one wins, like serde for duplicate keys? serde errors; take first */
    for (uint32_t i = 0; i < obj->n; i++)
        if (obj->keys[i].n == kn && !memcmp(obj->keys[i].s, key, kn))
            return &obj->u.items[i];
    return NULL;
}

int tj_is_str(const tj_val *v) {
    return v && v->type == TJ_STR;
}
