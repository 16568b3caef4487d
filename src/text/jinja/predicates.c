/*
 * predicates.c - Jinja tests, the right side of `x is name(args)`:
 * defined, undefined, none, string, mapping, iterable, sequence, number,
 * integer, float, boolean, true, false, even, odd, divisibleby,
 * equalto/eq/==, ne/!=, lt/<, le/<=, gt/>, ge/>=, in, sameas, callable,
 * lower, upper. Semantics follow jinja2.tests.
 */
#include <string.h>

#include "text/jinja/jinja_int.h"

static const char *const TESTS[] = {"defined",     "undefined", "none",   "string",      "mapping",
                                    "iterable",    "sequence",  "number", "integer",     "float",
                                    "boolean",     "true",      "false",  "even",        "odd",
                                    "divisibleby", "equalto",   "eq",     "==",          "ne",
                                    "!=",          "lt",        "<",      "lessthan",    "le",
                                    "<=",          "gt",        ">",      "greaterthan", "ge",
                                    ">=",          "in",        "sameas", "callable",    "lower",
                                    "upper",       "escaped",   "filter", "test",        NULL};

int jx_has_test(const char *name) {
    for (int i = 0; TESTS[i]; i++)
        if (strcmp(TESTS[i], name) == 0)
            return 1;
    return 0;
}

static int64_t int_of(jctx *c, const jnode *at, jv v, const char *test) {
    if (v.t == JV_INT)
        return v.u.i;
    if (v.t == JV_BOOL)
        return v.u.b;
    if (v.t == JV_UNDEF)
        jx_fail(c, at, AIR_ERR_FORMAT, "%s", v.u.s ? v.u.s->s : "value is undefined");
    jx_fail(c, at, AIR_ERR_FORMAT, "test '%s' needs an integer, got %s", test, jv_type_name(v));
}

int jx_test(jctx *c, const jnode *at, const char *name, jv v, jv *args, size_t nargs) {
#define IS(s) (strcmp(name, s) == 0)
    jv a0 = nargs > 0 ? args[0] : jv_undef(NULL);
    if (IS("defined"))
        return v.t != JV_UNDEF;
    if (IS("undefined"))
        return v.t == JV_UNDEF;
    if (IS("none"))
        return v.t == JV_NONE;
    if (IS("string"))
        return v.t == JV_STR;
    if (IS("mapping"))
        return v.t == JV_DICT && v.u.d->kind == JD_DICT;
    if (IS("iterable"))
        return v.t == JV_STR || v.t == JV_LIST || v.t == JV_UNDEF ||
               (v.t == JV_DICT && v.u.d->kind == JD_DICT);
    if (IS("sequence")) /* anything with len() and [] */
        return v.t == JV_STR || v.t == JV_LIST || v.t == JV_UNDEF ||
               (v.t == JV_DICT && v.u.d->kind == JD_DICT);
    if (IS("number"))
        return v.t == JV_INT || v.t == JV_FLOAT || v.t == JV_BOOL;
    if (IS("integer"))
        return v.t == JV_INT;
    if (IS("float"))
        return v.t == JV_FLOAT;
    if (IS("boolean"))
        return v.t == JV_BOOL;
    if (IS("true"))
        return v.t == JV_BOOL && v.u.b;
    if (IS("false"))
        return v.t == JV_BOOL && !v.u.b;
    if (IS("even"))
        return int_of(c, at, v, name) % 2 == 0;
    if (IS("odd"))
        return int_of(c, at, v, name) % 2 != 0;
    if (IS("divisibleby")) {
        int64_t d = int_of(c, at, a0, name);
        if (d == 0)
            jx_fail(c, at, AIR_ERR_FORMAT, "integer division or modulo by zero");
        int64_t x = int_of(c, at, v, name);
        return d == -1 ? 1 : x % d == 0;
    }
    if (IS("equalto") || IS("eq") || IS("=="))
        return jv_equal(v, a0);
    if (IS("ne") || IS("!="))
        return !jv_equal(v, a0);
    if (IS("lt") || IS("<") || IS("lessthan") || IS("le") || IS("<=") || IS("gt") || IS(">") ||
        IS("greaterthan") || IS("ge") || IS(">=")) {
        if (v.t == JV_UNDEF || a0.t == JV_UNDEF) {
            jv u = v.t == JV_UNDEF ? v : a0;
            jx_fail(c, at, AIR_ERR_FORMAT, "%s", u.u.s ? u.u.s->s : "value is undefined");
        }
        int k = jv_compare(c, at, v, a0);
        if (name[0] == 'l' || name[0] == '<')
            return (name[1] == 'e' || name[1] == '=') ? k <= 0 : k < 0;
        return (name[1] == 'e' || name[1] == '=') ? k >= 0 : k > 0;
    }
    if (IS("in")) {
        if (a0.t == JV_STR && v.t == JV_STR)
            return v.u.s->len == 0 || memmem(a0.u.s->s, a0.u.s->len, v.u.s->s, v.u.s->len) != NULL;
        if (a0.t == JV_LIST) {
            for (size_t i = 0; i < a0.u.l->n; i++)
                if (jv_equal(a0.u.l->v[i], v))
                    return 1;
            return 0;
        }
        if (a0.t == JV_DICT)
            return jd_find(a0.u.d, v) != NULL;
        if (a0.t == JV_UNDEF)
            return 0;
        jx_fail(c, at, AIR_ERR_FORMAT, "argument of type '%s' is not iterable", jv_type_name(a0));
    }
    if (IS("sameas")) {
        if (v.t != a0.t)
            return 0;
        switch (v.t) {
        case JV_NONE:
        case JV_UNDEF:
            return v.t == JV_NONE;
        case JV_BOOL:
            return v.u.b == a0.u.b;
        case JV_INT:
            return v.u.i == a0.u.i && v.u.i >= -5 && v.u.i <= 256; /* CPython small ints */
        case JV_STR:
            return v.u.s == a0.u.s;
        case JV_LIST:
            return v.u.l == a0.u.l;
        case JV_DICT:
            return v.u.d == a0.u.d;
        case JV_FUNC:
            return v.u.fn == a0.u.fn;
        default:
            return 0;
        }
    }
    if (IS("callable"))
        return v.t == JV_FUNC;
    if (IS("lower") || IS("upper")) {
        if (v.t != JV_STR)
            return 0;
        jv conv = ju_case(c, v.u.s, IS("lower") ? 0 : 1);
        return jv_equal(conv, v);
    }
    if (IS("escaped"))
        return 0;
    if (IS("filter"))
        return v.t == JV_STR && jx_has_filter(v.u.s->s);
    if (IS("test"))
        return v.t == JV_STR && jx_has_test(v.u.s->s);
#undef IS
    jx_fail(c, at, AIR_ERR_FORMAT, "no test named '%s'", name);
}
