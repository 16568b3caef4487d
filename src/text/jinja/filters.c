/*
 * filters.c - Jinja filters (`value | name(args)`), with jinja2's
 * semantics and transformers' own tojson.
 *
 * Each filter receives the evaluated operand and arguments (positional and
 * keyword, matched by the parameter names jinja2 uses) and returns a new
 * value. Filters that take a filter or test by name (map, select, reject,
 * selectattr, rejectattr) call back into jx_filter / jx_test.
 */
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <utf8proc.h>

#include "text/jinja/jinja_int.h"

static const char *const FILTERS[] = {
    "tojson",      "trim",     "upper", "lower",      "length", "count",      "join",
    "default",     "d",        "first", "last",       "items",  "selectattr", "rejectattr",
    "select",      "reject",   "map",   "replace",    "indent", "safe",       "string",
    "int",         "float",    "list",  "capitalize", "title",  "unique",     "reverse",
    "sort",        "dictsort", "abs",   "round",      "batch",  "wordcount",  "format",
    "min",         "max",      "sum",   "attr",       "center", "escape",     "e",
    "forceescape", "tuple",    "bool",  NULL};

int jx_has_filter(const char *name) {
    for (int i = 0; FILTERS[i]; i++)
        if (strcmp(FILTERS[i], name) == 0)
            return 1;
    return 0;
}

static _Noreturn void fail_undef(jctx *c, const jnode *at, jv u) {
    jx_fail(c, at, AIR_ERR_FORMAT, "%s", u.u.s ? u.u.s->s : "value is undefined");
}

static jstr *soft_str(jctx *c, jv v) {
    return jv_to_jstr(c, v);
}

static int64_t to_int(jctx *c, const jnode *at, jv v, const char *what) {
    if (v.t == JV_INT)
        return v.u.i;
    if (v.t == JV_BOOL)
        return v.u.b;
    if (v.t == JV_UNDEF)
        fail_undef(c, at, v);
    jx_fail(c, at, AIR_ERR_FORMAT, "%s must be an integer, got %s", what, jv_type_name(v));
}

/* attribute getter for "a.b.0" paths (jinja2.filters.make_attrgetter) */
static jv get_path(jctx *c, const jnode *at, jv item, jv attr) {
    if (attr.t != JV_STR)
        return jx_getitem(c, at, item, attr);
    const char *s = attr.u.s->s;
    jv v = item;
    for (;;) {
        const char *dot = strchr(s, '.');
        size_t n = dot ? (size_t)(dot - s) : strlen(s);
        jv key;
        int all_digits = n > 0;
        for (size_t i = 0; i < n; i++)
            if (s[i] < '0' || s[i] > '9')
                all_digits = 0;
        if (all_digits && n < 18)
            key = jv_int(strtoll(s, NULL, 10));
        else
            key = jv_str(c, s, n);
        v = jx_getitem(c, at, v, key);
        if (!dot)
            return v;
        s = dot + 1;
    }
}

static jv list_of(jctx *c, const jnode *at, jv v) {
    jlist *l = jv_iterable(c, at, v);
    jv r = jv_list(c, l->n);
    for (size_t i = 0; i < l->n; i++)
        jl_push(c, r.u.l, l->v[i]);
    return r;
}

/* sort key: lowercased strings unless case sensitive */
static jv sort_key(jctx *c, jv v, int case_sensitive) {
    if (!case_sensitive && v.t == JV_STR)
        return ju_case(c, v.u.s, 0);
    return v;
}

typedef struct {
    jctx *c;
    const jnode *at;
    int reverse;
} sort_env;

/* stable merge sort of (key, value) pairs */
static void merge_sort(sort_env *e, jv *keys, jv *vals, jv *tk, jv *tv, size_t n) {
    if (n < 2)
        return;
    size_t h = n / 2;
    merge_sort(e, keys, vals, tk, tv, h);
    merge_sort(e, keys + h, vals + h, tk, tv, n - h);
    size_t i = 0, j = h, k = 0;
    while (i < h && j < n) {
        int cmp = jv_compare(e->c, e->at, keys[j], keys[i]);
        int take_right = e->reverse ? cmp > 0 : cmp < 0;
        if (take_right) {
            tk[k] = keys[j];
            tv[k++] = vals[j++];
        } else {
            tk[k] = keys[i];
            tv[k++] = vals[i++];
        }
    }
    while (i < h) {
        tk[k] = keys[i];
        tv[k++] = vals[i++];
    }
    while (j < n) {
        tk[k] = keys[j];
        tv[k++] = vals[j++];
    }
    memcpy(keys, tk, n * sizeof(jv));
    memcpy(vals, tv, n * sizeof(jv));
}

static jv sorted(jctx *c, const jnode *at, jv *keys, jv *vals, size_t n, int reverse) {
    sort_env e = {c, at, reverse};
    jv *tk = jx_alloc(c, (n + 1) * sizeof(jv)), *tv = jx_alloc(c, (n + 1) * sizeof(jv));
    merge_sort(&e, keys, vals, tk, tv, n);
    jv r = jv_list(c, n);
    for (size_t i = 0; i < n; i++)
        jl_push(c, r.u.l, vals[i]);
    return r;
}

static jv py_round(jctx *c, const jnode *at, jv v, int64_t prec, const char *method) {
    if (v.t == JV_UNDEF)
        fail_undef(c, at, v);
    if (v.t != JV_INT && v.t != JV_FLOAT && v.t != JV_BOOL)
        jx_fail(c, at, AIR_ERR_FORMAT, "type %s doesn't define __round__ method", jv_type_name(v));
    int common = strcmp(method, "common") == 0;
    if (!common && strcmp(method, "ceil") && strcmp(method, "floor"))
        jx_fail(c, at, AIR_ERR_FORMAT, "method must be common, ceil or floor");
    double x = v.t == JV_FLOAT ? v.u.f : v.t == JV_INT ? (double)v.u.i : v.u.b;
    if (common && v.t != JV_FLOAT && prec >= 0)
        return v.t == JV_BOOL ? jv_int(v.u.b) : v;
    if (!common) {
        double m = pow(10.0, (double)prec);
        return jv_float((method[0] == 'c' ? ceil(x * m) : floor(x * m)) / m);
    }
    if (!isfinite(x))
        return jv_float(x);
    if (prec > 300)
        return jv_float(x);
    if (prec < -300)
        return jv_float(0.0 * x);
    if (prec >= 0) {
        char buf[512];
        snprintf(buf, sizeof buf, "%.*f", (int)prec, x);
        return jv_float(strtod(buf, NULL));
    }
    double m = pow(10.0, (double)-prec);
    return jv_float(nearbyint(x / m) * m);
}

/* Python str.splitlines boundaries */
static size_t line_break_at(const char *s, size_t n, size_t i) {
    unsigned char ch = (unsigned char)s[i];
    if (ch == '\r')
        return (i + 1 < n && s[i + 1] == '\n') ? 2 : 1;
    if (ch == '\n' || ch == '\v' || ch == '\f' || (ch >= 0x1c && ch <= 0x1e))
        return 1;
    if (ch >= 0x80) {
        size_t k = i;
        int cp = ju_decode(s, n, &k);
        if (cp == 0x85 || cp == 0x2028 || cp == 0x2029)
            return k - i;
    }
    return 0;
}

static jv do_indent(jctx *c, const jnode *at, jstr *s, jv width, int first, int blank) {
    jstr *ind;
    if (width.t == JV_STR)
        ind = width.u.s;
    else {
        int64_t w = to_int(c, at, width, "indent width");
        if (w < 0)
            w = 0;
        if (w > 4096)
            jx_fail(c, at, AIR_ERR_LIMIT, "indent width %" PRId64 " is too large", w);
        char *sp = jx_alloc(c, (size_t)w + 1);
        memset(sp, ' ', (size_t)w);
        ind = js_new(c, sp, (size_t)w);
    }
    /* s + "\n", split into lines (keepends=False) */
    jv lines = jv_list(c, 0);
    size_t b = 0, n = s->len;
    for (size_t i = 0; i < n;) {
        size_t lb = line_break_at(s->s, n, i);
        if (lb) {
            jl_push(c, lines.u.l, jv_str(c, s->s + b, i - b));
            i += lb;
            b = i;
        } else
            i++;
    }
    jl_push(c, lines.u.l, jv_str(c, s->s + b, n - b)); /* the line ended by the added "\n" */
    air_strbuf *sb = jx_cap_push(c);
    jlist *L = lines.u.l;
    if (first)
        air_sb_append(sb, ind->s, ind->len);
    for (size_t i = 0; i < L->n; i++) {
        jstr *ln = L->v[i].u.s;
        if (i > 0) {
            air_sb_putc(sb, '\n');
            if (blank || ln->len)
                air_sb_append(sb, ind->s, ind->len);
        }
        air_sb_append(sb, ln->s, ln->len);
    }
    return jx_cap_pop(c);
}

static int is_word_cp(int cp) {
    if (cp == '_' || (cp >= '0' && cp <= '9') || (cp >= 'a' && cp <= 'z') ||
        (cp >= 'A' && cp <= 'Z'))
        return 1;
    if (cp < 0x80)
        return 0;
    utf8proc_category_t k = utf8proc_category(cp);
    return (k >= UTF8PROC_CATEGORY_LU && k <= UTF8PROC_CATEGORY_LO) ||
           (k >= UTF8PROC_CATEGORY_ND && k <= UTF8PROC_CATEGORY_NO);
}

static jv select_common(jctx *c, const jnode *at, jv seq, jv *args, size_t nargs, int by_attr,
                        int want) {
    jlist *l = jv_iterable(c, at, seq);
    jv r = jv_list(c, 0);
    jv attr = by_attr ? (nargs > 0 ? args[0] : jv_undef(NULL)) : jv_undef(NULL);
    if (by_attr && nargs == 0)
        jx_fail(c, at, AIR_ERR_FORMAT, "missing parameter for attribute name");
    size_t ti = by_attr ? 1 : 0;
    const char *test = NULL;
    if (nargs > ti) {
        if (args[ti].t != JV_STR)
            jx_fail(c, at, AIR_ERR_FORMAT, "test name must be a string");
        test = args[ti].u.s->s;
        if (!jx_has_test(test))
            jx_fail(c, at, AIR_ERR_FORMAT, "no test named '%s'", test);
    }
    for (size_t i = 0; i < l->n; i++) {
        jv v = by_attr ? get_path(c, at, l->v[i], attr) : l->v[i];
        int ok = test ? jx_test(c, at, test, v, args + ti + 1, nargs - ti - 1) : jv_truthy(v);
        if (ok == want)
            jl_push(c, r.u.l, l->v[i]);
    }
    return r;
}

jv jx_filter(jctx *c, const jnode *at, const char *name, jv v, jv *args, size_t nargs,
             const char **kn, jv *kv, size_t nkw) {
#define IS(s) (strcmp(name, s) == 0)
#define ARG(i, nm, def) jx_arg(args, nargs, kn, kv, nkw, i, nm, def)
    if (IS("default") || IS("d")) {
        jv def = ARG(0, "default_value", jv_cstr(c, ""));
        int boolean = jv_truthy(ARG(1, "boolean", jv_bool(0)));
        if (v.t == JV_UNDEF || (boolean && !jv_truthy(v)))
            return def;
        return v;
    }
    if (IS("tojson")) {
        jjson_opts o = {NULL, ", ", ": ", 0, 0};
        o.ensure_ascii = jv_truthy(ARG(0, "ensure_ascii", jv_bool(0)));
        jv ind = ARG(1, "indent", jv_none());
        jv seps = ARG(2, "separators", jv_none());
        o.sort_keys = jv_truthy(ARG(3, "sort_keys", jv_bool(0)));
        if (ind.t == JV_STR)
            o.indent = ind.u.s->s;
        else if (ind.t == JV_INT || ind.t == JV_BOOL) {
            int64_t w = ind.t == JV_INT ? ind.u.i : ind.u.b;
            if (w < 0)
                w = 0;
            if (w > 4096)
                jx_fail(c, at, AIR_ERR_LIMIT, "tojson indent %" PRId64 " is too large", w);
            char *sp = jx_alloc(c, (size_t)w + 1);
            memset(sp, ' ', (size_t)w);
            o.indent = sp;
        } else if (ind.t != JV_NONE && ind.t != JV_UNDEF)
            jx_fail(c, at, AIR_ERR_FORMAT, "tojson indent must be an integer or a string");
        if (o.indent)
            o.item_sep = ",";
        if (seps.t == JV_LIST && seps.u.l->n == 2 && seps.u.l->v[0].t == JV_STR &&
            seps.u.l->v[1].t == JV_STR) {
            o.item_sep = seps.u.l->v[0].u.s->s;
            o.key_sep = seps.u.l->v[1].u.s->s;
        } else if (seps.t != JV_NONE && seps.t != JV_UNDEF)
            jx_fail(c, at, AIR_ERR_FORMAT, "tojson separators must be a pair of strings");
        air_strbuf *sb = jx_cap_push(c);
        jv_write_json(c, at, sb, v, &o);
        return jx_cap_pop(c);
    }
    if (IS("safe") || IS("string"))
        return v.t == JV_STR ? v : jv_strobj(soft_str(c, v));
    if (IS("escape") || IS("e") || IS("forceescape")) {
        jstr *s = soft_str(c, v);
        air_strbuf *sb = jx_cap_push(c);
        for (size_t i = 0; i < s->len; i++) {
            char ch = s->s[i];
            if (ch == '&')
                air_sb_puts(sb, "&amp;");
            else if (ch == '<')
                air_sb_puts(sb, "&lt;");
            else if (ch == '>')
                air_sb_puts(sb, "&gt;");
            else if (ch == '"')
                air_sb_puts(sb, "&#34;");
            else if (ch == '\'')
                air_sb_puts(sb, "&#39;");
            else
                air_sb_putc(sb, ch);
        }
        return jx_cap_pop(c);
    }
    if (IS("trim")) {
        jv ch = ARG(0, "chars", jv_none());
        jstr *chars = ch.t == JV_STR ? ch.u.s : NULL;
        return ju_strip(c, soft_str(c, v), chars, 3);
    }
    if (IS("upper"))
        return ju_case(c, soft_str(c, v), 1);
    if (IS("lower"))
        return ju_case(c, soft_str(c, v), 0);
    if (IS("capitalize"))
        return ju_case(c, soft_str(c, v), 2);
    if (IS("title"))
        return ju_case(c, soft_str(c, v), 4);
    if (IS("length") || IS("count"))
        return jv_int((int64_t)jv_length(c, at, v));
    if (IS("wordcount")) {
        jstr *s = soft_str(c, v);
        int64_t k = 0;
        int in = 0;
        size_t i = 0;
        while (i < s->len) {
            int w = is_word_cp(ju_decode(s->s, s->len, &i));
            if (w && !in)
                k++;
            in = w;
        }
        return jv_int(k);
    }
    if (IS("join")) {
        jv d = ARG(0, "d", jv_cstr(c, ""));
        jv attr = ARG(1, "attribute", jv_none());
        jlist *l = jv_iterable(c, at, v);
        jstr *sep = soft_str(c, d);
        air_strbuf *sb = jx_cap_push(c);
        for (size_t i = 0; i < l->n; i++) {
            jv x = attr.t == JV_NONE ? l->v[i] : get_path(c, at, l->v[i], attr);
            if (i)
                air_sb_append(sb, sep->s, sep->len);
            jv_write_str(c, sb, x);
        }
        return jx_cap_pop(c);
    }
    if (IS("first") || IS("last")) {
        jlist *l = jv_iterable(c, at, v);
        if (l->n == 0)
            return jv_undef_msg(c, "No %s item, sequence was empty.", name);
        return IS("first") ? l->v[0] : l->v[l->n - 1];
    }
    if (IS("items")) {
        if (v.t == JV_UNDEF)
            return jv_list(c, 0);
        if (v.t != JV_DICT || v.u.d->kind != JD_DICT)
            jx_fail(c, at, AIR_ERR_FORMAT, "Can only get item pairs from a mapping.");
        jv r = jv_list(c, v.u.d->n);
        for (size_t i = 0; i < v.u.d->n; i++) {
            jv p = jv_list(c, 2);
            p.tuple = 1;
            jl_push(c, p.u.l, v.u.d->k[i]);
            jl_push(c, p.u.l, v.u.d->v[i]);
            jl_push(c, r.u.l, p);
        }
        return r;
    }
    if (IS("list"))
        return list_of(c, at, v);
    if (IS("tuple")) {
        jv r = list_of(c, at, v);
        r.tuple = 1;
        return r;
    }
    if (IS("bool"))
        return jv_bool(jv_truthy(v));
    if (IS("selectattr") || IS("rejectattr"))
        return select_common(c, at, v, args, nargs, 1, IS("selectattr"));
    if (IS("select") || IS("reject"))
        return select_common(c, at, v, args, nargs, 0, IS("select"));
    if (IS("map")) {
        jlist *l = jv_iterable(c, at, v);
        jv r = jv_list(c, l->n);
        jv attr = ARG(99, "attribute", jv_undef(NULL));
        if (attr.t != JV_UNDEF) {
            jv def = ARG(99, "default", jv_undef(NULL));
            for (size_t i = 0; i < l->n; i++) {
                jv x = get_path(c, at, l->v[i], attr);
                jl_push(c, r.u.l, (x.t == JV_UNDEF && def.t != JV_UNDEF) ? def : x);
            }
            return r;
        }
        if (nargs == 0 || args[0].t != JV_STR)
            jx_fail(c, at, AIR_ERR_FORMAT, "map() needs a filter name or attribute=");
        const char *f = args[0].u.s->s;
        if (!jx_has_filter(f))
            jx_fail(c, at, AIR_ERR_FORMAT, "no filter named '%s'", f);
        for (size_t i = 0; i < l->n; i++)
            jl_push(c, r.u.l, jx_filter(c, at, f, l->v[i], args + 1, nargs - 1, kn, kv, nkw));
        return r;
    }
    if (IS("replace")) {
        jstr *s = soft_str(c, v);
        jv old = ARG(0, "old", jv_undef(NULL)), nw = ARG(1, "new", jv_undef(NULL));
        jv cnt = ARG(2, "count", jv_none());
        jv a[3] = {jv_strobj(soft_str(c, old)), jv_strobj(soft_str(c, nw)),
                   cnt.t == JV_NONE ? jv_int(-1) : cnt};
        jv res;
        jx_method(c, at, jv_strobj(s), "replace", a, 3, NULL, NULL, 0, &res);
        return res;
    }
    if (IS("indent")) {
        return do_indent(c, at, soft_str(c, v), ARG(0, "width", jv_int(4)),
                         jv_truthy(ARG(1, "first", jv_bool(0))),
                         jv_truthy(ARG(2, "blank", jv_bool(0))));
    }
    if (IS("int")) {
        jv def = ARG(0, "default", jv_int(0));
        int64_t base = to_int(c, at, ARG(1, "base", jv_int(10)), "base");
        if (v.t == JV_INT)
            return v;
        if (v.t == JV_BOOL)
            return jv_int(v.u.b);
        if (v.t == JV_FLOAT)
            return isfinite(v.u.f) && fabs(v.u.f) < 9.2e18 ? jv_int((int64_t)v.u.f) : def;
        if (v.t == JV_STR) {
            jstr *s = ju_strip(c, v.u.s, NULL, 3).u.s;
            char *end = NULL;
            errno = 0;
            long long x = strtoll(s->s, &end, (int)base);
            if (s->len && end == s->s + s->len && !errno)
                return jv_int(x);
            double d = strtod(s->s, &end);
            if (s->len && end == s->s + s->len && isfinite(d) && fabs(d) < 9.2e18)
                return jv_int((int64_t)d);
        }
        return def;
    }
    if (IS("float")) {
        jv def = ARG(0, "default", jv_float(0.0));
        if (v.t == JV_FLOAT)
            return v;
        if (v.t == JV_INT)
            return jv_float((double)v.u.i);
        if (v.t == JV_BOOL)
            return jv_float(v.u.b);
        if (v.t == JV_STR) {
            jstr *s = ju_strip(c, v.u.s, NULL, 3).u.s;
            char *end = NULL;
            double d = strtod(s->s, &end);
            if (s->len && end == s->s + s->len)
                return jv_float(d);
        }
        return def;
    }
    if (IS("abs")) {
        if (v.t == JV_INT) {
            if (v.u.i == INT64_MIN)
                jx_fail(c, at, AIR_ERR_FORMAT, "integer overflow in abs");
            return jv_int(v.u.i < 0 ? -v.u.i : v.u.i);
        }
        if (v.t == JV_BOOL)
            return jv_int(v.u.b);
        if (v.t == JV_FLOAT)
            return jv_float(fabs(v.u.f));
        if (v.t == JV_UNDEF)
            fail_undef(c, at, v);
        jx_fail(c, at, AIR_ERR_FORMAT, "bad operand type for abs(): '%s'", jv_type_name(v));
    }
    if (IS("round")) {
        jv m = ARG(1, "method", jv_cstr(c, "common"));
        return py_round(c, at, v, to_int(c, at, ARG(0, "precision", jv_int(0)), "precision"),
                        m.t == JV_STR ? m.u.s->s : "common");
    }
    if (IS("unique")) {
        int cs = jv_truthy(ARG(0, "case_sensitive", jv_bool(0)));
        jv attr = ARG(1, "attribute", jv_none());
        jlist *l = jv_iterable(c, at, v);
        jv seen = jv_list(c, 0), r = jv_list(c, 0);
        for (size_t i = 0; i < l->n; i++) {
            jv key = sort_key(c, attr.t == JV_NONE ? l->v[i] : get_path(c, at, l->v[i], attr), cs);
            int dup = 0;
            for (size_t k = 0; k < seen.u.l->n && !dup; k++)
                dup = jv_equal(seen.u.l->v[k], key);
            if (!dup) {
                jl_push(c, seen.u.l, key);
                jl_push(c, r.u.l, l->v[i]);
            }
        }
        return r;
    }
    if (IS("reverse")) {
        if (v.t == JV_STR) {
            jlist *cps = jv_iterable(c, at, v);
            air_strbuf *sb = jx_cap_push(c);
            for (size_t i = cps->n; i-- > 0;)
                air_sb_append(sb, cps->v[i].u.s->s, cps->v[i].u.s->len);
            return jx_cap_pop(c);
        }
        jlist *l = jv_iterable(c, at, v);
        jv r = jv_list(c, l->n);
        for (size_t i = l->n; i-- > 0;)
            jl_push(c, r.u.l, l->v[i]);
        return r;
    }
    if (IS("sort")) {
        int rev = jv_truthy(ARG(0, "reverse", jv_bool(0)));
        int cs = jv_truthy(ARG(1, "case_sensitive", jv_bool(0)));
        jv attr = ARG(2, "attribute", jv_none());
        jlist *l = jv_iterable(c, at, v);
        jv *keys = jx_alloc(c, (l->n + 1) * sizeof(jv)),
           *vals = jx_alloc(c, (l->n + 1) * sizeof(jv));
        for (size_t i = 0; i < l->n; i++) {
            vals[i] = l->v[i];
            keys[i] = sort_key(c, attr.t == JV_NONE ? l->v[i] : get_path(c, at, l->v[i], attr), cs);
        }
        return sorted(c, at, keys, vals, l->n, rev);
    }
    if (IS("dictsort")) {
        int cs = jv_truthy(ARG(0, "case_sensitive", jv_bool(0)));
        jv by = ARG(1, "by", jv_cstr(c, "key"));
        int rev = jv_truthy(ARG(2, "reverse", jv_bool(0)));
        if (v.t != JV_DICT)
            jx_fail(c, at, AIR_ERR_FORMAT, "dictsort needs a mapping, got %s", jv_type_name(v));
        int by_value = by.t == JV_STR && strcmp(by.u.s->s, "value") == 0;
        size_t n = v.u.d->n;
        jv *keys = jx_alloc(c, (n + 1) * sizeof(jv)), *vals = jx_alloc(c, (n + 1) * sizeof(jv));
        for (size_t i = 0; i < n; i++) {
            jv p = jv_list(c, 2);
            p.tuple = 1;
            jl_push(c, p.u.l, v.u.d->k[i]);
            jl_push(c, p.u.l, v.u.d->v[i]);
            vals[i] = p;
            keys[i] = sort_key(c, by_value ? v.u.d->v[i] : v.u.d->k[i], cs);
        }
        return sorted(c, at, keys, vals, n, rev);
    }
    if (IS("min") || IS("max")) {
        int cs = jv_truthy(ARG(0, "case_sensitive", jv_bool(0)));
        jv attr = ARG(1, "attribute", jv_none());
        jlist *l = jv_iterable(c, at, v);
        if (l->n == 0)
            return jv_undef_msg(c, "No aggregated item, sequence was empty.");
        size_t best = 0;
        jv bk = sort_key(c, attr.t == JV_NONE ? l->v[0] : get_path(c, at, l->v[0], attr), cs);
        for (size_t i = 1; i < l->n; i++) {
            jv k = sort_key(c, attr.t == JV_NONE ? l->v[i] : get_path(c, at, l->v[i], attr), cs);
            int cmp = jv_compare(c, at, k, bk);
            if (IS("min") ? cmp < 0 : cmp > 0) {
                best = i;
                bk = k;
            }
        }
        return l->v[best];
    }
    if (IS("sum")) {
        jv attr = ARG(0, "attribute", jv_none());
        jv acc = ARG(1, "start", jv_int(0));
        jlist *l = jv_iterable(c, at, v);
        for (size_t i = 0; i < l->n; i++)
            acc = jx_binop(c, at, OP_ADD, acc,
                           attr.t == JV_NONE ? l->v[i] : get_path(c, at, l->v[i], attr));
        return acc;
    }
    if (IS("batch")) {
        int64_t k = to_int(c, at, ARG(0, "linecount", jv_undef(NULL)), "linecount");
        jv fill = ARG(1, "fill_with", jv_none());
        int has_fill = nargs > 1 || nkw > 0;
        if (k <= 0)
            jx_fail(c, at, AIR_ERR_FORMAT, "batch size must be positive");
        jlist *l = jv_iterable(c, at, v);
        jv r = jv_list(c, 0), cur = jv_list(c, 0);
        for (size_t i = 0; i < l->n; i++) {
            jl_push(c, cur.u.l, l->v[i]);
            if ((int64_t)cur.u.l->n == k) {
                jl_push(c, r.u.l, cur);
                cur = jv_list(c, 0);
            }
        }
        if (cur.u.l->n) {
            if (has_fill && fill.t != JV_NONE)
                while ((int64_t)cur.u.l->n < k)
                    jl_push(c, cur.u.l, fill);
            jl_push(c, r.u.l, cur);
        }
        return r;
    }
    if (IS("format")) {
        jstr *f = soft_str(c, v);
        jv t = jv_list(c, nargs);
        t.tuple = 1;
        for (size_t i = 0; i < nargs; i++)
            jl_push(c, t.u.l, args[i]);
        return jx_str_format(c, at, f, t);
    }
    if (IS("attr")) {
        jv nm = ARG(0, "name", jv_undef(NULL));
        if (nm.t != JV_STR)
            jx_fail(c, at, AIR_ERR_FORMAT, "attr() needs an attribute name");
        return jx_getattr(c, at, v, nm.u.s->s);
    }
    if (IS("center")) {
        jstr *s = soft_str(c, v);
        int64_t w = to_int(c, at, ARG(0, "width", jv_int(80)), "width");
        int64_t len = (int64_t)ju_cplen(s->s, s->len);
        if (w > 1 << 20)
            jx_fail(c, at, AIR_ERR_LIMIT, "center width too large");
        if (w <= len)
            return jv_strobj(s);
        int64_t pad = w - len, left = pad / 2 + (pad & w & 1);
        air_strbuf *sb = jx_cap_push(c);
        for (int64_t i = 0; i < left; i++)
            air_sb_putc(sb, ' ');
        air_sb_append(sb, s->s, s->len);
        for (int64_t i = 0; i < pad - left; i++)
            air_sb_putc(sb, ' ');
        return jx_cap_pop(c);
    }
#undef IS
#undef ARG
    jx_fail(c, at, AIR_ERR_FORMAT, "no filter named '%s'", name);
}
