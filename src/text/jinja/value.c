/*
 * value.c - the Jinja interpreter's values: arena, strings, lists, dicts,
 * conversion from cJSON, and the Python semantics templates rely on
 * (truthiness, ==, <, str(), repr(), float formatting, len(), iteration),
 * plus the UTF-8 helpers (code point counts, case mapping, strip).
 *
 * Values are small structs passed by copy; strings, lists and dicts live in
 * the render arena and are never freed one by one.
 */
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <utf8proc.h>

#include "text/jinja/jinja_int.h"

/* ------------------------------------------------------------------------- */
/* Arena                                                                      */
/* ------------------------------------------------------------------------- */
struct jarena_block {
    jarena_block *next;
    size_t used, cap;
    _Alignas(16) unsigned char data[];
};

void *ja_alloc(jarena *a, size_t n) {
    n = (n + 15) & ~(size_t)15;
    if (n == 0)
        n = 16;
    jarena_block *b = a->head;
    if (!b || b->cap - b->used < n) {
        size_t cap = n > 65536 ? n : 65536;
        if (a->limit && a->total + cap + sizeof(jarena_block) > a->limit)
            return NULL;
        b = malloc(sizeof(jarena_block) + cap);
        if (!b)
            return NULL;
        b->cap = cap;
        b->used = 0;
        a->total += cap + sizeof(jarena_block);
        if (a->head && cap > 65536) {
            /* keep filling the current block; the big one goes behind it */
            b->next = a->head->next;
            a->head->next = b;
        } else {
            b->next = a->head;
            a->head = b;
        }
    }
    void *p = b->data + b->used;
    b->used += n;
    memset(p, 0, n);
    return p;
}

void ja_free(jarena *a) {
    jarena_block *b = a->head;
    while (b) {
        jarena_block *n = b->next;
        free(b);
        b = n;
    }
    a->head = NULL;
    a->total = 0;
}

void *jx_alloc(jctx *c, size_t n) {
    void *p = ja_alloc(c->arena, n);
    if (!p) {
        if (c->arena->limit && c->arena->total + n + 65536 > c->arena->limit)
            jx_fail(c, NULL, AIR_ERR_LIMIT,
                    "the template used more than %zu MiB of memory while rendering; "
                    "it probably loops without end or builds a huge value",
                    c->arena->limit >> 20);
        jx_oom(c);
    }
    return p;
}

void jx_sb(jctx *c, air_status st) {
    if (st != AIR_OK)
        jx_oom(c);
}

/* ------------------------------------------------------------------------- */
/* Constructors                                                               */
/* ------------------------------------------------------------------------- */
jstr *js_new(jctx *c, const char *s, size_t n) {
    if (n > ((size_t)1 << 40))
        jx_fail(c, NULL, AIR_ERR_LIMIT, "string of %zu bytes is too large", n);
    jstr *r = jx_alloc(c, sizeof(jstr) + n + 1);
    r->len = n;
    if (n)
        memcpy(r->s, s, n);
    r->s[n] = 0;
    return r;
}

jv jv_strobj(jstr *s) {
    jv v = {.t = JV_STR};
    v.u.s = s;
    return v;
}

jv jv_from_sb(jctx *c, air_strbuf *sb) {
    size_t n = sb->len;
    jstr *r = ja_alloc(c->arena, sizeof(jstr) + n + 1);
    if (!r) {
        air_sb_free(sb);
        r = jx_alloc(c, sizeof(jstr) + n + 1); /* reports the failure */
        r->len = 0;
        return jv_strobj(r);
    }
    r->len = sb->len;
    if (sb->len)
        memcpy(r->s, sb->data, sb->len);
    r->s[sb->len] = 0;
    air_sb_free(sb);
    return jv_strobj(r);
}

jv jv_str(jctx *c, const char *s, size_t n) {
    return jv_strobj(js_new(c, s, n));
}
jv jv_cstr(jctx *c, const char *s) {
    return jv_str(c, s, strlen(s));
}

jv jv_list(jctx *c, size_t cap) {
    jv v = {.t = JV_LIST};
    v.u.l = jx_alloc(c, sizeof(jlist));
    if (cap) {
        v.u.l->v = jx_alloc(c, cap * sizeof(jv));
        v.u.l->cap = cap;
    }
    return v;
}

jv jv_dict(jctx *c, int kind) {
    jv v = {.t = JV_DICT};
    v.u.d = jx_alloc(c, sizeof(jdict));
    v.u.d->kind = kind;
    return v;
}

void jl_push(jctx *c, jlist *l, jv v) {
    if (l->n == l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 8;
        jv *nv = jx_alloc(c, cap * sizeof(jv));
        if (l->n)
            memcpy(nv, l->v, l->n * sizeof(jv));
        l->v = nv;
        l->cap = cap;
    }
    l->v[l->n++] = v;
}

static int key_eq(jv a, jv b) {
    if (a.t == JV_STR && b.t == JV_STR)
        return a.u.s->len == b.u.s->len && memcmp(a.u.s->s, b.u.s->s, a.u.s->len) == 0;
    return jv_equal(a, b);
}

jv *jd_find(jdict *d, jv key) {
    for (size_t i = 0; i < d->n; i++)
        if (key_eq(d->k[i], key))
            return &d->v[i];
    return NULL;
}

jv *jd_findc(jdict *d, const char *key) {
    size_t n = strlen(key);
    for (size_t i = 0; i < d->n; i++)
        if (d->k[i].t == JV_STR && d->k[i].u.s->len == n && memcmp(d->k[i].u.s->s, key, n) == 0)
            return &d->v[i];
    return NULL;
}

void jd_set(jctx *c, jdict *d, jv key, jv val) {
    jv *p = jd_find(d, key);
    if (p) {
        *p = val;
        return;
    }
    if (d->n == d->cap) {
        size_t cap = d->cap ? d->cap * 2 : 8;
        jv *nk = jx_alloc(c, cap * sizeof(jv)), *nv = jx_alloc(c, cap * sizeof(jv));
        if (d->n) {
            memcpy(nk, d->k, d->n * sizeof(jv));
            memcpy(nv, d->v, d->n * sizeof(jv));
        }
        d->k = nk;
        d->v = nv;
        d->cap = cap;
    }
    d->k[d->n] = key;
    d->v[d->n] = val;
    d->n++;
}

void jd_setc(jctx *c, jdict *d, const char *key, jv val) {
    jv *p = jd_findc(d, key);
    if (p)
        *p = val;
    else
        jd_set(c, d, jv_cstr(c, key), val);
}

jv jv_undef_msg(jctx *c, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    char tmp[512];
    vsnprintf(tmp, sizeof tmp, fmt, ap);
    va_end(ap);
    return jv_undef(js_new(c, tmp, strlen(tmp)));
}

/* ------------------------------------------------------------------------- */
/* Semantics                                                                  */
/* ------------------------------------------------------------------------- */
int jv_truthy(jv v) {
    switch (v.t) {
    case JV_UNDEF:
    case JV_NONE:
        return 0;
    case JV_BOOL:
        return v.u.b;
    case JV_INT:
        return v.u.i != 0;
    case JV_FLOAT:
        return v.u.f != 0.0;
    case JV_STR:
        return v.u.s->len != 0;
    case JV_LIST:
        return v.u.l->n != 0;
    case JV_DICT:
        return v.u.d->kind != JD_DICT || v.u.d->n != 0;
    default:
        return 1;
    }
}

static int is_num(jv v) {
    return v.t == JV_BOOL || v.t == JV_INT || v.t == JV_FLOAT;
}
static double num_f(jv v) {
    return v.t == JV_FLOAT ? v.u.f : v.t == JV_INT ? (double)v.u.i : (double)v.u.b;
}
static int64_t num_i(jv v) {
    return v.t == JV_INT ? v.u.i : (int64_t)v.u.b;
}

static int equal_depth(jv a, jv b, int depth);
int jv_equal(jv a, jv b) {
    return equal_depth(a, b, 0);
}

static int equal_depth(jv a, jv b, int depth) {
    if (is_num(a) && is_num(b)) {
        if (a.t == JV_FLOAT || b.t == JV_FLOAT)
            return num_f(a) == num_f(b);
        return num_i(a) == num_i(b);
    }
    if (a.t != b.t)
        return 0;
    switch (a.t) {
    case JV_UNDEF:
    case JV_NONE:
        return 1;
    case JV_STR:
        return a.u.s->len == b.u.s->len && memcmp(a.u.s->s, b.u.s->s, a.u.s->len) == 0;
    case JV_LIST:
        if (a.u.l == b.u.l)
            return a.tuple == b.tuple;
        if (a.tuple != b.tuple || a.u.l->n != b.u.l->n || depth > 200)
            return 0;
        for (size_t i = 0; i < a.u.l->n; i++)
            if (!equal_depth(a.u.l->v[i], b.u.l->v[i], depth + 1))
                return 0;
        return 1;
    case JV_DICT:
        if (a.u.d == b.u.d)
            return 1;
        if (a.u.d->kind != JD_DICT || b.u.d->kind != JD_DICT || depth > 200)
            return 0;
        if (a.u.d->n != b.u.d->n)
            return 0;
        for (size_t i = 0; i < a.u.d->n; i++) {
            jv *o = jd_find(b.u.d, a.u.d->k[i]);
            if (!o || !equal_depth(a.u.d->v[i], *o, depth + 1))
                return 0;
        }
        return 1;
    case JV_FUNC:
        return a.u.fn == b.u.fn;
    default:
        return 0;
    }
}

static int compare_depth(jctx *c, const jnode *at, jv a, jv b, int depth);
int jv_compare(jctx *c, const jnode *at, jv a, jv b) {
    return compare_depth(c, at, a, b, 0);
}

static int compare_depth(jctx *c, const jnode *at, jv a, jv b, int depth) {
    if (depth > 200)
        jx_fail(c, at, AIR_ERR_LIMIT, "comparing values nested more than 200 levels deep");
    if (is_num(a) && is_num(b)) {
        if (a.t == JV_FLOAT || b.t == JV_FLOAT) {
            double x = num_f(a), y = num_f(b);
            return x < y ? -1 : x > y ? 1 : 0;
        }
        int64_t x = num_i(a), y = num_i(b);
        return x < y ? -1 : x > y ? 1 : 0;
    }
    if (a.t == JV_STR && b.t == JV_STR) {
        size_t n = a.u.s->len < b.u.s->len ? a.u.s->len : b.u.s->len;
        int r = memcmp(a.u.s->s, b.u.s->s, n);
        if (r)
            return r < 0 ? -1 : 1;
        return a.u.s->len < b.u.s->len ? -1 : a.u.s->len > b.u.s->len ? 1 : 0;
    }
    if (a.t == JV_LIST && b.t == JV_LIST && a.tuple == b.tuple) {
        size_t n = a.u.l->n < b.u.l->n ? a.u.l->n : b.u.l->n;
        for (size_t i = 0; i < n; i++) {
            if (jv_equal(a.u.l->v[i], b.u.l->v[i]))
                continue;
            return compare_depth(c, at, a.u.l->v[i], b.u.l->v[i], depth + 1);
        }
        return a.u.l->n < b.u.l->n ? -1 : a.u.l->n > b.u.l->n ? 1 : 0;
    }
    jx_fail(c, at, AIR_ERR_FORMAT, "'<' not supported between instances of '%s' and '%s'",
            jv_type_name(a), jv_type_name(b));
}

const char *jv_type_name(jv v) {
    switch (v.t) {
    case JV_UNDEF:
        return "Undefined";
    case JV_NONE:
        return "NoneType";
    case JV_BOOL:
        return "bool";
    case JV_INT:
        return "int";
    case JV_FLOAT:
        return "float";
    case JV_STR:
        return "str";
    case JV_LIST:
        return v.tuple ? "tuple" : "list";
    case JV_DICT:
        return v.u.d->kind == JD_NAMESPACE ? "Namespace"
               : v.u.d->kind == JD_LOOP    ? "LoopContext"
                                           : "dict";
    default:
        return "function";
    }
}

/* Python repr(float): the shortest digits that read back to the same double,
 * fixed notation for exponents in [-4, 16), scientific otherwise. */
void jv_write_float(air_strbuf *sb, double f) {
    if (isnan(f)) {
        air_sb_puts(sb, "nan");
        return;
    }
    if (isinf(f)) {
        air_sb_puts(sb, f < 0 ? "-inf" : "inf");
        return;
    }
    if (f == 0) {
        air_sb_puts(sb, signbit(f) ? "-0.0" : "0.0");
        return;
    }
    char buf[64];
    int p;
    for (p = 1; p <= 17; p++) {
        snprintf(buf, sizeof buf, "%.*e", p - 1, f);
        if (strtod(buf, NULL) == f)
            break;
    }
    /* buf: [-]d[.ddd]e[+-]XX */
    char digits[32];
    int nd = 0, neg = 0;
    const char *q = buf;
    if (*q == '-') {
        neg = 1;
        q++;
    }
    for (; *q && *q != 'e'; q++)
        if (*q >= '0' && *q <= '9')
            digits[nd++] = *q;
    int exp = atoi(q + 1);
    while (nd > 1 && digits[nd - 1] == '0')
        nd--;
    digits[nd] = 0;
    if (neg)
        air_sb_putc(sb, '-');
    if (exp >= -4 && exp < 16) {
        if (exp < 0) {
            air_sb_puts(sb, "0.");
            for (int i = 0; i < -exp - 1; i++)
                air_sb_putc(sb, '0');
            air_sb_append(sb, digits, nd);
        } else {
            int intd = exp + 1;
            for (int i = 0; i < intd; i++)
                air_sb_putc(sb, i < nd ? digits[i] : '0');
            air_sb_putc(sb, '.');
            if (nd > intd)
                air_sb_append(sb, digits + intd, nd - intd);
            else
                air_sb_putc(sb, '0');
        }
    } else {
        air_sb_putc(sb, digits[0]);
        if (nd > 1) {
            air_sb_putc(sb, '.');
            air_sb_append(sb, digits + 1, nd - 1);
        }
        air_sb_printf(sb, "e%c%02d", exp < 0 ? '-' : '+', exp < 0 ? -exp : exp);
    }
}

static int is_printable_cp(int cp) {
    if (cp == ' ')
        return 1;
    if (cp < 0x20 || cp == 0x7f)
        return 0;
    if (cp < 0x7f)
        return 1;
    utf8proc_category_t cat = utf8proc_category(cp);
    switch (cat) {
    case UTF8PROC_CATEGORY_CC:
    case UTF8PROC_CATEGORY_CF:
    case UTF8PROC_CATEGORY_CS:
    case UTF8PROC_CATEGORY_CO:
    case UTF8PROC_CATEGORY_CN:
    case UTF8PROC_CATEGORY_ZL:
    case UTF8PROC_CATEGORY_ZP:
    case UTF8PROC_CATEGORY_ZS:
        return 0;
    default:
        return 1;
    }
}

static void write_str_repr(air_strbuf *sb, const jstr *s) {
    int has_sq = memchr(s->s, '\'', s->len) != NULL, has_dq = memchr(s->s, '"', s->len) != NULL;
    char q = (has_sq && !has_dq) ? '"' : '\'';
    air_sb_putc(sb, q);
    size_t i = 0;
    while (i < s->len) {
        size_t st = i;
        int cp = ju_decode(s->s, s->len, &i);
        if (cp == q || cp == '\\') {
            air_sb_putc(sb, '\\');
            air_sb_putc(sb, (char)cp);
        } else if (cp == '\n')
            air_sb_puts(sb, "\\n");
        else if (cp == '\r')
            air_sb_puts(sb, "\\r");
        else if (cp == '\t')
            air_sb_puts(sb, "\\t");
        else if (!is_printable_cp(cp)) {
            if (cp < 0x100)
                air_sb_printf(sb, "\\x%02x", cp);
            else if (cp < 0x10000)
                air_sb_printf(sb, "\\u%04x", cp);
            else
                air_sb_printf(sb, "\\U%08x", cp);
        } else
            air_sb_append(sb, s->s + st, i - st);
    }
    air_sb_putc(sb, q);
}

static void write_any(jctx *c, air_strbuf *sb, jv v, int repr, int depth) {
    if (depth > 200) { /* a namespace that contains itself */
        air_sb_puts(sb, "...");
        return;
    }
    switch (v.t) {
    case JV_UNDEF:
        break;
    case JV_NONE:
        air_sb_puts(sb, "None");
        break;
    case JV_BOOL:
        air_sb_puts(sb, v.u.b ? "True" : "False");
        break;
    case JV_INT:
        air_sb_printf(sb, "%" PRId64, v.u.i);
        break;
    case JV_FLOAT:
        jv_write_float(sb, v.u.f);
        break;
    case JV_STR:
        if (repr)
            write_str_repr(sb, v.u.s);
        else
            air_sb_append(sb, v.u.s->s, v.u.s->len);
        break;
    case JV_LIST:
        air_sb_putc(sb, v.tuple ? '(' : '[');
        for (size_t i = 0; i < v.u.l->n; i++) {
            if (i)
                air_sb_puts(sb, ", ");
            write_any(c, sb, v.u.l->v[i], 1, depth + 1);
        }
        if (v.tuple && v.u.l->n == 1)
            air_sb_putc(sb, ',');
        air_sb_putc(sb, v.tuple ? ')' : ']');
        break;
    case JV_DICT:
        if (v.u.d->kind == JD_NAMESPACE)
            air_sb_puts(sb, "<Namespace ");
        if (v.u.d->kind == JD_LOOP) {
            air_sb_puts(sb, "<LoopContext>");
            break;
        }
        air_sb_putc(sb, '{');
        for (size_t i = 0; i < v.u.d->n; i++) {
            if (i)
                air_sb_puts(sb, ", ");
            write_any(c, sb, v.u.d->k[i], 1, depth + 1);
            air_sb_puts(sb, ": ");
            write_any(c, sb, v.u.d->v[i], 1, depth + 1);
        }
        air_sb_putc(sb, '}');
        if (v.u.d->kind == JD_NAMESPACE)
            air_sb_putc(sb, '>');
        break;
    case JV_FUNC:
        air_sb_printf(sb, "<function %s>", v.u.fn->name ? v.u.fn->name : "?");
        break;
    }
}

void jv_write_str(jctx *c, air_strbuf *sb, jv v) {
    write_any(c, sb, v, 0, 0);
}
void jv_write_repr(jctx *c, air_strbuf *sb, jv v) {
    write_any(c, sb, v, 1, 0);
}

jstr *jv_to_jstr(jctx *c, jv v) {
    if (v.t == JV_STR)
        return v.u.s;
    air_strbuf sb = {0};
    jv_write_str(c, &sb, v);
    return jv_from_sb(c, &sb).u.s;
}

jv jv_from_cjson(jctx *c, const cJSON *j) {
    if (!j || cJSON_IsNull(j))
        return jv_none();
    if (cJSON_IsBool(j))
        return jv_bool(cJSON_IsTrue(j));
    if (cJSON_IsNumber(j)) {
        double d = j->valuedouble;
        if (isfinite(d) && d == floor(d) && fabs(d) < 9.2e18)
            return jv_int((int64_t)d);
        return jv_float(d);
    }
    if (cJSON_IsString(j))
        return jv_cstr(c, j->valuestring ? j->valuestring : "");
    if (cJSON_IsArray(j)) {
        jv l = jv_list(c, 0);
        for (const cJSON *e = j->child; e; e = e->next)
            jl_push(c, l.u.l, jv_from_cjson(c, e));
        return l;
    }
    if (cJSON_IsObject(j)) {
        jv d = jv_dict(c, JD_DICT);
        for (const cJSON *e = j->child; e; e = e->next)
            jd_set(c, d.u.d, jv_cstr(c, e->string ? e->string : ""), jv_from_cjson(c, e));
        return d;
    }
    return jv_none();
}

jlist *jv_iterable(jctx *c, const jnode *at, jv v) {
    switch (v.t) {
    case JV_UNDEF:
        return jv_list(c, 0).u.l;
    case JV_LIST:
        return v.u.l;
    case JV_DICT: {
        if (v.u.d->kind != JD_DICT)
            break;
        jv l = jv_list(c, v.u.d->n);
        for (size_t i = 0; i < v.u.d->n; i++)
            jl_push(c, l.u.l, v.u.d->k[i]);
        return l.u.l;
    }
    case JV_STR: {
        jv l = jv_list(c, v.u.s->len);
        size_t i = 0;
        while (i < v.u.s->len) {
            size_t st = i;
            ju_decode(v.u.s->s, v.u.s->len, &i);
            jl_push(c, l.u.l, jv_str(c, v.u.s->s + st, i - st));
        }
        return l.u.l;
    }
    default:
        break;
    }
    jx_fail(c, at, AIR_ERR_FORMAT, "'%s' object is not iterable", jv_type_name(v));
}

size_t jv_length(jctx *c, const jnode *at, jv v) {
    switch (v.t) {
    case JV_UNDEF:
        return 0;
    case JV_STR:
        return ju_cplen(v.u.s->s, v.u.s->len);
    case JV_LIST:
        return v.u.l->n;
    case JV_DICT:
        if (v.u.d->kind != JD_LOOP)
            return v.u.d->n;
        break;
    default:
        break;
    }
    jx_fail(c, at, AIR_ERR_FORMAT, "object of type '%s' has no len()", jv_type_name(v));
}

/* ------------------------------------------------------------------------- */
/* UTF-8                                                                      */
/* ------------------------------------------------------------------------- */
int ju_decode(const char *s, size_t n, size_t *i) {
    const unsigned char *u = (const unsigned char *)s;
    size_t k = *i;
    unsigned c0 = u[k];
    int len = c0 < 0x80 ? 1 : (c0 >> 5) == 6 ? 2 : (c0 >> 4) == 14 ? 3 : (c0 >> 3) == 30 ? 4 : 1;
    if (k + (size_t)len > n)
        len = 1;
    int cp;
    if (len == 1)
        cp = c0 < 0x80 ? (int)c0 : 0xFFFD;
    else {
        cp = (int)(c0 & (0x7f >> len));
        for (int j = 1; j < len; j++) {
            if ((u[k + j] & 0xC0) != 0x80) {
                *i = k + 1;
                return 0xFFFD;
            }
            cp = (cp << 6) | (u[k + j] & 0x3f);
        }
    }
    *i = k + (size_t)len;
    return cp;
}

void ju_encode(air_strbuf *sb, int cp) {
    char b[4];
    utf8proc_ssize_t n = utf8proc_encode_char(cp, (utf8proc_uint8_t *)b);
    if (n > 0)
        air_sb_append(sb, b, (size_t)n);
}

size_t ju_cplen(const char *s, size_t n) {
    size_t i = 0, k = 0;
    while (i < n) {
        ju_decode(s, n, &i);
        k++;
    }
    return k;
}

size_t ju_offset(const char *s, size_t n, size_t cp) {
    size_t i = 0;
    while (cp > 0 && i < n) {
        ju_decode(s, n, &i);
        cp--;
    }
    return i;
}

int ju_isspace(int cp) {
    if (cp == ' ' || (cp >= 9 && cp <= 13) || (cp >= 0x1c && cp <= 0x1f))
        return 1;
    if (cp < 0x85)
        return 0;
    return cp == 0x85 || cp == 0xa0 || cp == 0x1680 || (cp >= 0x2000 && cp <= 0x200a) ||
           cp == 0x2028 || cp == 0x2029 || cp == 0x202f || cp == 0x205f || cp == 0x3000;
}

static int in_chars(jstr *chars, int cp) {
    if (!chars)
        return ju_isspace(cp);
    size_t i = 0;
    while (i < chars->len)
        if (ju_decode(chars->s, chars->len, &i) == cp)
            return 1;
    return 0;
}

jv ju_strip(jctx *c, jstr *s, jstr *chars, int which) {
    size_t b = 0, e = s->len;
    if (which & 1) {
        while (b < e) {
            size_t i = b;
            int cp = ju_decode(s->s, e, &i);
            if (!in_chars(chars, cp))
                break;
            b = i;
        }
    }
    if (which & 2) {
        while (e > b) {
            size_t st = e - 1;
            while (st > b && ((unsigned char)s->s[st] & 0xC0) == 0x80)
                st--;
            size_t i = st;
            int cp = ju_decode(s->s, e, &i);
            if (!in_chars(chars, cp))
                break;
            e = st;
        }
    }
    if (b == 0 && e == s->len)
        return jv_strobj(s);
    return jv_str(c, s->s + b, e - b);
}

static int is_cased(int cp) {
    utf8proc_category_t k = utf8proc_category(cp);
    return k == UTF8PROC_CATEGORY_LU || k == UTF8PROC_CATEGORY_LL || k == UTF8PROC_CATEGORY_LT;
}

static int title_sep(int cp) {
    return cp == '-' || cp == '(' || cp == '{' || cp == '[' || cp == '<' || ju_isspace(cp);
}

jv ju_case(jctx *c, jstr *s, int mode) {
    air_strbuf sb = {0};
    size_t i = 0;
    int first = 1, prev_cased = 0, prev_sep = 1;
    while (i < s->len) {
        int cp = ju_decode(s->s, s->len, &i), o;
        switch (mode) {
        case 0:
            o = utf8proc_tolower(cp);
            break;
        case 1:
            o = utf8proc_toupper(cp);
            break;
        case 2:
            o = first ? utf8proc_totitle(cp) : utf8proc_tolower(cp);
            break;
        case 3:
            o = prev_cased ? utf8proc_tolower(cp) : utf8proc_totitle(cp);
            prev_cased = is_cased(cp);
            break;
        default: {
            int sep = title_sep(cp);
            o = sep ? cp : prev_sep ? utf8proc_toupper(cp) : utf8proc_tolower(cp);
            prev_sep = sep;
            break;
        }
        }
        ju_encode(&sb, o);
        first = 0;
    }
    return jv_from_sb(c, &sb);
}
