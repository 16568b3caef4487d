/*
 * eval.c - walks the Jinja AST and writes the rendered text.
 *
 * Scopes are frames chained to their parent: globals (builtins + the caller's
 * variables) <- template top level <- one fresh frame per loop iteration,
 * macro call, with block. `set` writes into the current frame, so a set
 * inside a loop is gone after the iteration (as in Jinja); namespace()
 * objects are the way out. Macros see the frame they were defined in.
 *
 * Undefined follows jinja2.Undefined: printing it gives "", it is falsy,
 * iterates as empty and has length 0; attribute/item access, arithmetic
 * and calls on it fail with "'x' is undefined" or "'dict object' has no
 * attribute 'x'".
 *
 * Output goes to the current capture buffer (c->out); macro bodies, set
 * blocks and filter blocks push their own. Errors longjmp to the render
 * entry point, which frees the capture buffers and the arena.
 */
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "text/jinja/jinja_int.h"

/* Bounds the C stack: expression trees can be deep (long `a or b or ...`
 * chains) and macros recurse; together they must stay well inside 8 MiB. */
#define MAX_EVAL_NEST 2000

static jv eval(jctx *c, jnode *n, jframe *f);
static void exec_body(jctx *c, jnode **body, size_t n, jframe *f);

/* ------------------------------------------------------------------------- */
/* Errors and output                                                          */
/* ------------------------------------------------------------------------- */
_Noreturn void jx_fail(jctx *c, const jnode *at, air_status st, const char *fmt, ...) {
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (at)
        air_err(st, "chat template error at line %d, column %d: %s", at->line, at->col, msg);
    else
        air_err(st, "chat template error: %s", msg);
    c->status = st;
    longjmp(c->jmp, 1);
}

_Noreturn void jx_oom(jctx *c) {
    air_err(AIR_ERR_NOMEM, "out of memory while rendering the template");
    c->status = AIR_ERR_NOMEM;
    longjmp(c->jmp, 1);
}

static void out_write(jctx *c, const char *s, size_t n) {
    if (c->out->sb.len + n > c->out_limit)
        jx_fail(c, NULL, AIR_ERR_LIMIT,
                "the rendered text would exceed %zu bytes; the template probably loops without "
                "end (raise air_jinja_limits.max_output if the output is really this large)",
                c->out_limit);
    jx_sb(c, air_sb_append(&c->out->sb, s, n));
}

static void cap_push(jctx *c) {
    jcap *k = jx_alloc(c, sizeof(jcap));
    k->prev = c->out;
    c->out = k;
}

static jv cap_pop(jctx *c) {
    jcap *k = c->out;
    c->out = k->prev;
    return jv_from_sb(c, &k->sb);
}

air_strbuf *jx_cap_push(jctx *c) {
    cap_push(c);
    return &c->out->sb;
}

jv jx_cap_pop(jctx *c) {
    return cap_pop(c);
}

static void step(jctx *c, const jnode *at) {
    if (++c->steps > c->max_steps)
        jx_fail(c, at, AIR_ERR_LIMIT,
                "the template ran more than %" PRIu64 " steps; it probably loops without end",
                c->max_steps);
}

static _Noreturn void fail_undef(jctx *c, const jnode *at, jv u) {
    jx_fail(c, at, AIR_ERR_FORMAT, "%s", u.u.s ? u.u.s->s : "value is undefined");
}

/* ------------------------------------------------------------------------- */
/* Variables                                                                  */
/* ------------------------------------------------------------------------- */
static jframe *frame_new(jctx *c, jframe *parent) {
    jframe *f = jx_alloc(c, sizeof(jframe));
    f->parent = parent;
    f->vars = jv_dict(c, JD_DICT).u.d;
    return f;
}

static jv lookup(jctx *c, jframe *f, const char *name) {
    for (; f; f = f->parent) {
        jv *v = jd_findc(f->vars, name);
        if (v)
            return *v;
    }
    return jv_undef_msg(c, "'%s' is undefined", name);
}

static void assign(jctx *c, const jnode *target, jv v, jframe *f) {
    if (target->kind == N_NAME) {
        jd_setc(c, f->vars, target->name, v);
        return;
    }
    /* tuple unpacking */
    jlist *items = jv_iterable(c, target, v);
    if (items->n != target->nargs)
        jx_fail(c, target, AIR_ERR_FORMAT, "%s values to unpack (expected %zu)",
                items->n > target->nargs ? "too many" : "not enough", target->nargs);
    for (size_t i = 0; i < target->nargs; i++)
        jd_setc(c, f->vars, target->args[i]->name, items->v[i]);
}

/* ------------------------------------------------------------------------- */
/* Attribute and item access                                                  */
/* ------------------------------------------------------------------------- */
static const char *obj_repr(jv v) {
    switch (v.t) {
    case JV_NONE:
        return "None";
    case JV_DICT:
        return v.u.d->kind == JD_NAMESPACE ? "Namespace object"
               : v.u.d->kind == JD_LOOP    ? "LoopContext object"
                                           : "dict object";
    case JV_LIST:
        return v.tuple ? "tuple object" : "list object";
    case JV_STR:
        return "str object";
    case JV_INT:
        return "int object";
    case JV_FLOAT:
        return "float object";
    case JV_BOOL:
        return "bool object";
    default:
        return "function object";
    }
}

static jv bound_method(jctx *c, jv self, const char *name);

jv jx_getattr(jctx *c, const jnode *at, jv obj, const char *name) {
    if (obj.t == JV_UNDEF)
        fail_undef(c, at, obj);
    if (obj.t == JV_DICT && obj.u.d->kind != JD_DICT) {
        jv *v = jd_findc(obj.u.d, name);
        if (v)
            return *v;
        if (obj.u.d->kind == JD_LOOP && strcmp(name, "cycle") == 0)
            return bound_method(c, obj, name);
    } else if (jx_has_method(obj, name)) {
        return bound_method(c, obj, name);
    } else if (obj.t == JV_DICT) {
        jv *v = jd_findc(obj.u.d, name);
        if (v)
            return *v;
    }
    return jv_undef_msg(c, "'%s' has no attribute '%s'", obj_repr(obj), name);
}

static int64_t norm_index(int64_t i, size_t n) {
    return i < 0 ? i + (int64_t)n : i;
}

jv jx_getitem(jctx *c, const jnode *at, jv obj, jv key) {
    if (obj.t == JV_UNDEF)
        fail_undef(c, at, obj);
    int is_int = key.t == JV_INT || key.t == JV_BOOL;
    int64_t ki = key.t == JV_INT ? key.u.i : key.t == JV_BOOL ? key.u.b : 0;
    if (obj.t == JV_LIST && is_int) {
        int64_t i = norm_index(ki, obj.u.l->n);
        if (i >= 0 && (size_t)i < obj.u.l->n)
            return obj.u.l->v[i];
    } else if (obj.t == JV_STR && is_int) {
        size_t n = ju_cplen(obj.u.s->s, obj.u.s->len);
        int64_t i = norm_index(ki, n);
        if (i >= 0 && (size_t)i < n) {
            size_t b = ju_offset(obj.u.s->s, obj.u.s->len, (size_t)i), e = b;
            ju_decode(obj.u.s->s, obj.u.s->len, &e);
            return jv_str(c, obj.u.s->s + b, e - b);
        }
    } else if (obj.t == JV_DICT) {
        jv *v = jd_find(obj.u.d, key);
        if (v)
            return *v;
    }
    if (key.t == JV_STR)
        return jx_getattr(c, at, obj, key.u.s->s);
    air_strbuf *sb = jx_cap_push(c);
    jv_write_repr(c, sb, key);
    jv k = jx_cap_pop(c);
    return jv_undef_msg(c, "%s has no element %.200s", obj_repr(obj), k.u.s->s);
}

/* Python slice index adjustment */
static void slice_indices(jctx *c, const jnode *at, jv vs, jv ve, jv vstep, int64_t len,
                          int64_t *start, int64_t *stop, int64_t *stepv) {
    int64_t st = 1;
    if (vstep.t != JV_NONE && vstep.t != JV_UNDEF) {
        if (vstep.t != JV_INT && vstep.t != JV_BOOL)
            jx_fail(c, at, AIR_ERR_FORMAT, "slice indices must be integers or None");
        st = vstep.t == JV_INT ? vstep.u.i : vstep.u.b;
        if (st == 0)
            jx_fail(c, at, AIR_ERR_FORMAT, "slice step cannot be zero");
    }
    int64_t lo = st < 0 ? -1 : 0, hi = st < 0 ? len - 1 : len;
    int64_t s, e;
    jv vals[2] = {vs, ve};
    int64_t *outs[2] = {&s, &e};
    int64_t defs[2] = {st < 0 ? hi : lo, st < 0 ? lo : hi};
    for (int k = 0; k < 2; k++) {
        jv v = vals[k];
        if (v.t == JV_NONE || v.t == JV_UNDEF) {
            *outs[k] = defs[k];
            continue;
        }
        if (v.t != JV_INT && v.t != JV_BOOL)
            jx_fail(c, at, AIR_ERR_FORMAT, "slice indices must be integers or None");
        int64_t x = v.t == JV_INT ? v.u.i : v.u.b;
        if (x < 0) {
            x += len;
            if (x < lo)
                x = lo;
        } else if (x > hi)
            x = hi;
        *outs[k] = x;
    }
    *start = s;
    *stop = e;
    *stepv = st;
}

static jv do_slice(jctx *c, const jnode *at, jv obj, jv vs, jv ve, jv vst) {
    if (obj.t == JV_UNDEF)
        fail_undef(c, at, obj);
    int64_t s, e, st;
    if (obj.t == JV_LIST) {
        slice_indices(c, at, vs, ve, vst, (int64_t)obj.u.l->n, &s, &e, &st);
        jv r = jv_list(c, 0);
        r.tuple = obj.tuple;
        for (int64_t i = s; st > 0 ? i < e : i > e; i += st)
            jl_push(c, r.u.l, obj.u.l->v[i]);
        return r;
    }
    if (obj.t == JV_STR) {
        jlist *cps = jv_iterable(c, at, obj);
        slice_indices(c, at, vs, ve, vst, (int64_t)cps->n, &s, &e, &st);
        air_strbuf sb = {0};
        for (int64_t i = s; st > 0 ? i < e : i > e; i += st)
            air_sb_append(&sb, cps->v[i].u.s->s, cps->v[i].u.s->len);
        return jv_from_sb(c, &sb);
    }
    return jv_undef_msg(c, "'%s' is not subscriptable", obj_repr(obj));
}

/* ------------------------------------------------------------------------- */
/* Arithmetic                                                                 */
/* ------------------------------------------------------------------------- */
static int is_num(jv v) {
    return v.t == JV_BOOL || v.t == JV_INT || v.t == JV_FLOAT;
}
static double as_f(jv v) {
    return v.t == JV_FLOAT ? v.u.f : v.t == JV_INT ? (double)v.u.i : (double)v.u.b;
}
static int64_t as_i(jv v) {
    return v.t == JV_INT ? v.u.i : (int64_t)v.u.b;
}

static const char *op_sym(int op) {
    static const char *s[] = {"+", "-", "*", "/", "//", "%", "**", "~"};
    return op <= OP_CONCAT ? s[op] : "?";
}

static _Noreturn void bad_operands(jctx *c, const jnode *at, int op, jv a, jv b) {
    if (op == OP_ADD && a.t == JV_STR)
        jx_fail(c, at, AIR_ERR_FORMAT, "can only concatenate str (not \"%s\") to str",
                jv_type_name(b));
    if (op == OP_ADD && a.t == JV_LIST)
        jx_fail(c, at, AIR_ERR_FORMAT, "can only concatenate %s (not \"%s\") to %s",
                jv_type_name(a), jv_type_name(b), jv_type_name(a));
    jx_fail(c, at, AIR_ERR_FORMAT, "unsupported operand type(s) for %s: '%s' and '%s'", op_sym(op),
            jv_type_name(a), jv_type_name(b));
}

static jv repeat(jctx *c, const jnode *at, jv seq, int64_t k) {
    if (k < 0)
        k = 0;
    if (seq.t == JV_STR) {
        if (seq.u.s->len && (uint64_t)k > c->out_limit / seq.u.s->len)
            jx_fail(c, at, AIR_ERR_LIMIT, "string repetition result is too large");
        air_strbuf sb = {0};
        for (int64_t i = 0; i < k; i++)
            air_sb_append(&sb, seq.u.s->s, seq.u.s->len);
        return jv_from_sb(c, &sb);
    }
    if (seq.u.l->n && (uint64_t)k > (1u << 24) / seq.u.l->n)
        jx_fail(c, at, AIR_ERR_LIMIT, "list repetition result is too large");
    jv r = jv_list(c, 0);
    r.tuple = seq.tuple;
    for (int64_t i = 0; i < k; i++)
        for (size_t j = 0; j < seq.u.l->n; j++)
            jl_push(c, r.u.l, seq.u.l->v[j]);
    return r;
}

static jv str_format(jctx *c, const jnode *at, jstr *fmt, jv args);

jv jx_binop(jctx *c, const jnode *at, int op, jv a, jv b) {
    if (op == OP_CONCAT) {
        air_strbuf sb = {0};
        jv_write_str(c, &sb, a);
        jv_write_str(c, &sb, b);
        return jv_from_sb(c, &sb);
    }
    if (a.t == JV_UNDEF)
        fail_undef(c, at, a);
    if (b.t == JV_UNDEF)
        fail_undef(c, at, b);
    if (is_num(a) && is_num(b)) {
        int fl = a.t == JV_FLOAT || b.t == JV_FLOAT;
        if (!fl) {
            int64_t x = as_i(a), y = as_i(b), r;
            switch (op) {
            case OP_ADD:
                if (__builtin_add_overflow(x, y, &r))
                    goto overflow;
                return jv_int(r);
            case OP_SUB:
                if (__builtin_sub_overflow(x, y, &r))
                    goto overflow;
                return jv_int(r);
            case OP_MUL:
                if (__builtin_mul_overflow(x, y, &r))
                    goto overflow;
                return jv_int(r);
            case OP_DIV:
                if (y == 0)
                    jx_fail(c, at, AIR_ERR_FORMAT, "division by zero");
                return jv_float((double)x / (double)y);
            case OP_FLOORDIV:
            case OP_MOD: {
                if (y == 0)
                    jx_fail(c, at, AIR_ERR_FORMAT, "integer division or modulo by zero");
                if (x == INT64_MIN && y == -1)
                    goto overflow;
                int64_t q = x / y, m = x % y;
                if (m != 0 && ((m < 0) != (y < 0))) {
                    q--;
                    m += y;
                }
                return jv_int(op == OP_MOD ? m : q);
            }
            case OP_POW:
                if (y >= 0) {
                    int64_t res = 1, base = x;
                    while (y) {
                        if (y & 1)
                            if (__builtin_mul_overflow(res, base, &res))
                                goto overflow;
                        y >>= 1;
                        if (y && __builtin_mul_overflow(base, base, &base))
                            goto overflow;
                    }
                    return jv_int(res);
                }
                if (x == 0)
                    jx_fail(c, at, AIR_ERR_FORMAT, "0.0 cannot be raised to a negative power");
                return jv_float(pow((double)x, (double)y));
            }
        }
        double x = as_f(a), y = as_f(b);
        switch (op) {
        case OP_ADD:
            return jv_float(x + y);
        case OP_SUB:
            return jv_float(x - y);
        case OP_MUL:
            return jv_float(x * y);
        case OP_DIV:
            if (y == 0)
                jx_fail(c, at, AIR_ERR_FORMAT, "float division by zero");
            return jv_float(x / y);
        case OP_FLOORDIV:
        case OP_MOD: {
            if (y == 0)
                jx_fail(c, at, AIR_ERR_FORMAT, "float %s by zero",
                        op == OP_MOD ? "modulo" : "floor division");
            double mod = fmod(x, y), div = (x - mod) / y;
            if (mod != 0) {
                if ((y < 0) != (mod < 0)) {
                    mod += y;
                    div -= 1.0;
                }
            } else
                mod = copysign(0.0, y);
            if (op == OP_MOD)
                return jv_float(mod);
            double fd;
            if (div != 0) {
                fd = floor(div);
                if (div - fd > 0.5)
                    fd += 1.0;
            } else
                fd = copysign(0.0, x / y);
            return jv_float(fd);
        }
        case OP_POW:
            if (x == 0 && y < 0)
                jx_fail(c, at, AIR_ERR_FORMAT, "0.0 cannot be raised to a negative power");
            return jv_float(pow(x, y));
        }
    }
    if (op == OP_ADD && a.t == JV_STR && b.t == JV_STR) {
        air_strbuf sb = {0};
        air_sb_append(&sb, a.u.s->s, a.u.s->len);
        air_sb_append(&sb, b.u.s->s, b.u.s->len);
        if (sb.len != a.u.s->len + b.u.s->len) {
            air_sb_free(&sb);
            jx_oom(c);
        }
        return jv_from_sb(c, &sb);
    }
    if (op == OP_ADD && a.t == JV_LIST && b.t == JV_LIST && a.tuple == b.tuple) {
        jv r = jv_list(c, a.u.l->n + b.u.l->n);
        r.tuple = a.tuple;
        for (size_t i = 0; i < a.u.l->n; i++)
            jl_push(c, r.u.l, a.u.l->v[i]);
        for (size_t i = 0; i < b.u.l->n; i++)
            jl_push(c, r.u.l, b.u.l->v[i]);
        return r;
    }
    if (op == OP_MUL) {
        if ((a.t == JV_STR || a.t == JV_LIST) && (b.t == JV_INT || b.t == JV_BOOL))
            return repeat(c, at, a, as_i(b));
        if ((b.t == JV_STR || b.t == JV_LIST) && (a.t == JV_INT || a.t == JV_BOOL))
            return repeat(c, at, b, as_i(a));
    }
    if (op == OP_MOD && a.t == JV_STR)
        return str_format(c, at, a.u.s, b);
    bad_operands(c, at, op, a, b);
overflow:
    jx_fail(c, at, AIR_ERR_FORMAT, "integer overflow in '%s'", op_sym(op));
}

/* printf-style "%s" formatting for `str % args` and the format filter */
static jv str_format(jctx *c, const jnode *at, jstr *fmt, jv args) {
    jlist one = {1, 1, &args};
    jlist *lst = (args.t == JV_LIST && args.tuple) ? args.u.l : &one;
    size_t ai = 0;
    air_strbuf sb = {0};
    for (size_t i = 0; i < fmt->len; i++) {
        char ch = fmt->s[i];
        if (ch != '%') {
            air_sb_putc(&sb, ch);
            continue;
        }
        if (++i >= fmt->len) {
            air_sb_free(&sb);
            jx_fail(c, at, AIR_ERR_FORMAT, "incomplete format");
        }
        char k = fmt->s[i];
        if (k == '%') {
            air_sb_putc(&sb, '%');
            continue;
        }
        if (ai >= lst->n) {
            air_sb_free(&sb);
            jx_fail(c, at, AIR_ERR_FORMAT, "not enough arguments for format string");
        }
        jv v = lst->v[ai++];
        if (k == 's')
            jv_write_str(c, &sb, v);
        else if (k == 'r')
            jv_write_repr(c, &sb, v);
        else if ((k == 'd' || k == 'i') && is_num(v))
            air_sb_printf(&sb, "%" PRId64, v.t == JV_FLOAT ? (int64_t)v.u.f : as_i(v));
        else if (k == 'f' && is_num(v))
            air_sb_printf(&sb, "%f", as_f(v));
        else {
            air_sb_free(&sb);
            jx_fail(c, at, AIR_ERR_FORMAT, "unsupported format character '%c'", k);
        }
    }
    if (ai < lst->n && args.t == JV_LIST && args.tuple) {
        air_sb_free(&sb);
        jx_fail(c, at, AIR_ERR_FORMAT, "not all arguments converted during string formatting");
    }
    return jv_from_sb(c, &sb);
}

jv jx_str_format(jctx *c, const jnode *at, jstr *fmt, jv args) {
    return str_format(c, at, fmt, args);
}

static int contains(jctx *c, const jnode *at, jv hay, jv needle) {
    switch (hay.t) {
    case JV_STR:
        if (needle.t == JV_UNDEF)
            fail_undef(c, at, needle);
        if (needle.t != JV_STR)
            jx_fail(c, at, AIR_ERR_FORMAT, "'in <string>' requires string as left operand, not %s",
                    jv_type_name(needle));
        if (needle.u.s->len == 0)
            return 1;
        return memmem(hay.u.s->s, hay.u.s->len, needle.u.s->s, needle.u.s->len) != NULL;
    case JV_LIST:
        for (size_t i = 0; i < hay.u.l->n; i++)
            if (jv_equal(hay.u.l->v[i], needle))
                return 1;
        return 0;
    case JV_DICT:
        return jd_find(hay.u.d, needle) != NULL;
    case JV_UNDEF:
        return 0;
    default:
        jx_fail(c, at, AIR_ERR_FORMAT, "argument of type '%s' is not iterable", jv_type_name(hay));
    }
}

/* ------------------------------------------------------------------------- */
/* Calls                                                                      */
/* ------------------------------------------------------------------------- */
static jv method_tramp(jctx *c, jnode *at, jv self, jv *args, size_t nargs, const char **knames,
                       jv *kvals, size_t nkw);

static jv bound_method(jctx *c, jv self, const char *name) {
    jfunc *fn = jx_alloc(c, sizeof(jfunc));
    fn->name = name;
    fn->fn = method_tramp;
    fn->self = self;
    jv v = {.t = JV_FUNC};
    v.u.fn = fn;
    return v;
}

static void run_for(jctx *c, jnode *n, jframe *f, jv iterable, int depth);

static jv call_macro(jctx *c, const jnode *at, jfunc *fn, jv *args, size_t nargs,
                     const char **knames, jv *kvals, size_t nkw) {
    jnode *m = fn->caller ? fn->caller : fn->macro;
    jframe *fr = frame_new(c, fn->caller ? fn->caller_frame : fn->closure);
    if (++c->depth > c->max_depth)
        jx_fail(c, at, AIR_ERR_LIMIT,
                "macro calls nested more than %d deep; the template probably recurses without end",
                c->max_depth);
    size_t np = m->nkw;
    jv varargs = jv_list(c, 0);
    varargs.tuple = 1;
    jv kwargs = jv_dict(c, JD_DICT);
    for (size_t i = 0; i < nargs; i++) {
        if (i < np)
            jd_setc(c, fr->vars, m->knames[i], args[i]);
        else
            jl_push(c, varargs.u.l, args[i]);
    }
    for (size_t k = 0; k < nkw; k++) {
        if (strcmp(knames[k], "caller") == 0 && !fn->caller) {
            jd_setc(c, fr->vars, "caller", kvals[k]);
            continue;
        }
        size_t i;
        for (i = 0; i < np; i++)
            if (strcmp(m->knames[i], knames[k]) == 0)
                break;
        if (i < np) {
            if (i < nargs)
                jx_fail(c, at, AIR_ERR_FORMAT, "macro '%s' got multiple values for argument '%s'",
                        fn->name ? fn->name : "caller", knames[k]);
            jd_setc(c, fr->vars, m->knames[i], kvals[k]);
        } else
            jd_setc(c, kwargs.u.d, knames[k], kvals[k]);
    }
    for (size_t i = 0; i < np; i++) {
        if (jd_findc(fr->vars, m->knames[i]))
            continue;
        if (m->kvals[i])
            jd_setc(c, fr->vars, m->knames[i], eval(c, m->kvals[i], fr));
        else
            jd_setc(c, fr->vars, m->knames[i],
                    jv_undef_msg(c, "parameter '%s' was not provided", m->knames[i]));
    }
    jd_setc(c, fr->vars, "varargs", varargs);
    jd_setc(c, fr->vars, "kwargs", kwargs);
    int saved_loop = c->in_loop, saved_ctl = c->loop_ctl;
    c->in_loop = 0;
    cap_push(c);
    exec_body(c, m->body, m->nbody, fr);
    jv r = cap_pop(c);
    c->in_loop = saved_loop;
    c->loop_ctl = saved_ctl;
    c->depth--;
    return r;
}

jv jx_call(jctx *c, const jnode *at, jv fnv, jv *args, size_t nargs, const char **knames, jv *kvals,
           size_t nkw) {
    if (fnv.t == JV_UNDEF)
        fail_undef(c, at, fnv);
    if (fnv.t == JV_DICT && fnv.u.d->kind == JD_LOOP && fnv.u.d->loop_node) {
        /* recursive loop: loop(children) */
        if (nargs != 1)
            jx_fail(c, at, AIR_ERR_FORMAT, "loop() takes exactly one argument");
        if (++c->depth > c->max_depth)
            jx_fail(c, at, AIR_ERR_LIMIT, "recursive loop nested more than %d deep", c->max_depth);
        cap_push(c);
        run_for(c, fnv.u.d->loop_node, fnv.u.d->loop_frame, args[0], fnv.u.d->loop_depth + 1);
        c->depth--;
        return cap_pop(c);
    }
    if (fnv.t != JV_FUNC)
        jx_fail(c, at, AIR_ERR_FORMAT, "'%s' object is not callable", jv_type_name(fnv));
    jfunc *fn = fnv.u.fn;
    if (fn->fn == method_tramp) {
        jv res;
        if (jx_method(c, at, fn->self, fn->name, args, nargs, knames, kvals, nkw, &res))
            return res;
        jx_fail(c, at, AIR_ERR_FORMAT, "'%s' object has no method '%s'", jv_type_name(fn->self),
                fn->name);
    }
    if (fn->macro || fn->caller)
        return call_macro(c, at, fn, args, nargs, knames, kvals, nkw);
    return fn->fn(c, (jnode *)at, fn->self, args, nargs, knames, kvals, nkw);
}

static jv method_tramp(jctx *c, jnode *at, jv self, jv *args, size_t nargs, const char **knames,
                       jv *kvals, size_t nkw) {
    /* the bound method's name is looked up by the caller through jfunc */
    (void)c;
    (void)at;
    (void)self;
    (void)args;
    (void)nargs;
    (void)knames;
    (void)kvals;
    (void)nkw;
    return jv_none();
}

jv jx_arg(jv *args, size_t nargs, const char **knames, jv *kvals, size_t nkw, size_t i,
          const char *name, jv def) {
    if (i < nargs)
        return args[i];
    for (size_t k = 0; k < nkw; k++)
        if (name && strcmp(knames[k], name) == 0)
            return kvals[k];
    return def;
}

/* ------------------------------------------------------------------------- */
/* Builtin globals                                                            */
/* ------------------------------------------------------------------------- */
static jv g_range(jctx *c, jnode *at, jv self, jv *args, size_t nargs, const char **knames,
                  jv *kvals, size_t nkw) {
    int64_t a[3];
    if (nargs < 1 || nargs > 3)
        jx_fail(c, at, AIR_ERR_FORMAT, "range expected 1 to 3 arguments, got %zu", nargs);
    for (size_t i = 0; i < nargs; i++) {
        if (args[i].t != JV_INT && args[i].t != JV_BOOL)
            jx_fail(c, at, AIR_ERR_FORMAT, "'%s' object cannot be interpreted as an integer",
                    jv_type_name(args[i]));
        a[i] = as_i(args[i]);
    }
    int64_t start = nargs == 1 ? 0 : a[0], stop = nargs == 1 ? a[0] : a[1],
            st = nargs == 3 ? a[2] : 1;
    if (st == 0)
        jx_fail(c, at, AIR_ERR_FORMAT, "range() arg 3 must not be zero");
    double count = st > 0 ? ceil(((double)stop - (double)start) / (double)st)
                          : ceil(((double)start - (double)stop) / (double)-st);
    if (count > 1e7)
        jx_fail(c, at, AIR_ERR_LIMIT, "range() of %.0f items is too large (limit 10000000)", count);
    jv r = jv_list(c, count > 0 ? (size_t)count : 0);
    for (int64_t i = start; st > 0 ? i < stop : i > stop; i += st)
        jl_push(c, r.u.l, jv_int(i));
    return r;
}

static jv g_dict(jctx *c, jnode *at, jv self, jv *args, size_t nargs, const char **knames,
                 jv *kvals, size_t nkw) {
    jv d = jv_dict(c, JD_DICT);
    for (size_t i = 0; i < nargs; i++) {
        if (args[i].t == JV_DICT) {
            for (size_t k = 0; k < args[i].u.d->n; k++)
                jd_set(c, d.u.d, args[i].u.d->k[k], args[i].u.d->v[k]);
        } else {
            jlist *l = jv_iterable(c, at, args[i]);
            for (size_t k = 0; k < l->n; k++) {
                jlist *pair = jv_iterable(c, at, l->v[k]);
                if (pair->n != 2)
                    jx_fail(c, at, AIR_ERR_FORMAT,
                            "dictionary update sequence element #%zu has length %zu; 2 is required",
                            k, pair->n);
                jd_set(c, d.u.d, pair->v[0], pair->v[1]);
            }
        }
    }
    for (size_t k = 0; k < nkw; k++)
        jd_setc(c, d.u.d, knames[k], kvals[k]);
    return d;
}

static jv g_namespace(jctx *c, jnode *at, jv self, jv *args, size_t nargs, const char **knames,
                      jv *kvals, size_t nkw) {
    jv d = g_dict(c, at, self, args, nargs, knames, kvals, nkw);
    d.u.d->kind = JD_NAMESPACE;
    for (size_t k = 0; k < d.u.d->n; k++)
        if (d.u.d->k[k].t == JV_STR && d.u.d->k[k].u.s->s[0] == '_')
            jx_fail(c, at, AIR_ERR_FORMAT,
                    "Chat templates cannot store underscore-prefixed attributes on a namespace, "
                    "but got '%s'. Please rename the attribute.",
                    d.u.d->k[k].u.s->s);
    return d;
}

static jv g_raise(jctx *c, jnode *at, jv self, jv *args, size_t nargs, const char **knames,
                  jv *kvals, size_t nkw) {
    jv msg = jx_arg(args, nargs, knames, kvals, nkw, 0, "message", jv_undef(NULL));
    jstr *s = jv_to_jstr(c, msg);
    air_err(AIR_ERR_FORMAT, "chat template raised an error at line %d, column %d: %s",
            at ? at->line : 0, at ? at->col : 0, s->s);
    c->status = AIR_ERR_FORMAT;
    longjmp(c->jmp, 1);
}

static jv g_strftime(jctx *c, jnode *at, jv self, jv *args, size_t nargs, const char **knames,
                     jv *kvals, size_t nkw) {
    jv fmt = jx_arg(args, nargs, knames, kvals, nkw, 0, "format", jv_undef(NULL));
    if (fmt.t != JV_STR)
        jx_fail(c, at, AIR_ERR_FORMAT, "strftime_now() needs a format string");
    struct tm tm;
    memset(&tm, 0, sizeof tm);
    if (c->fake_date) {
        int y = 0, mo = 0, d = 0, h = 0, mi = 0, s = 0;
        int k = sscanf(c->fake_date, "%d-%d-%d%*[ T]%d:%d:%d", &y, &mo, &d, &h, &mi, &s);
        if (k < 3)
            jx_fail(c, at, AIR_ERR_INVALID_ARG,
                    "AIR_FAKE_DATE='%s' is not a date; use YYYY-MM-DD or YYYY-MM-DDTHH:MM:SS",
                    c->fake_date);
        tm.tm_year = y - 1900;
        tm.tm_mon = mo - 1;
        tm.tm_mday = d;
        tm.tm_hour = h;
        tm.tm_min = mi;
        tm.tm_sec = s;
        tm.tm_isdst = -1;
        time_t t = timegm(&tm); /* normalizes and fills weekday / yearday */
        gmtime_r(&t, &tm);
    } else {
        time_t t = time(NULL);
        localtime_r(&t, &tm);
    }
    char buf[512];
    size_t n = fmt.u.s->len ? strftime(buf, sizeof buf, fmt.u.s->s, &tm) : 0;
    if (n == 0 && fmt.u.s->len)
        jx_fail(c, at, AIR_ERR_FORMAT, "strftime_now(): format too long or empty result");
    return jv_str(c, buf, n);
}

static jv mk_builtin(jctx *c, const char *name, jbuiltin_fn fn) {
    jfunc *f = jx_alloc(c, sizeof(jfunc));
    f->name = name;
    f->fn = fn;
    jv v = {.t = JV_FUNC};
    v.u.fn = f;
    return v;
}

void jx_add_builtins(jctx *c, jdict *vars) {
    jd_setc(c, vars, "range", mk_builtin(c, "range", g_range));
    jd_setc(c, vars, "dict", mk_builtin(c, "dict", g_dict));
    jd_setc(c, vars, "namespace", mk_builtin(c, "namespace", g_namespace));
    jd_setc(c, vars, "raise_exception", mk_builtin(c, "raise_exception", g_raise));
    jd_setc(c, vars, "strftime_now", mk_builtin(c, "strftime_now", g_strftime));
}

/* ------------------------------------------------------------------------- */
/* Expressions                                                                */
/* ------------------------------------------------------------------------- */
typedef struct {
    jv *args;
    size_t nargs;
    const char **knames;
    jv *kvals;
    size_t nkw;
} argv_t;

static argv_t eval_args(jctx *c, jnode *n, jframe *f, size_t extra_front) {
    argv_t a;
    a.nargs = n->nargs + extra_front;
    a.args = jx_alloc(c, (a.nargs + 1) * sizeof(jv));
    for (size_t i = 0; i < n->nargs; i++)
        a.args[i + extra_front] = eval(c, n->args[i], f);
    a.nkw = n->nkw;
    a.knames = n->knames;
    a.kvals = jx_alloc(c, (a.nkw + 1) * sizeof(jv));
    for (size_t i = 0; i < n->nkw; i++)
        a.kvals[i] = eval(c, n->kvals[i], f);
    if ((n->kind == N_CALL || n->kind == N_FILTER) && (n->b || n->c)) {
        /* *args and **kwargs */
        jlist *extra = n->b ? jv_iterable(c, n->b, eval(c, n->b, f)) : NULL;
        jv kw = n->c ? eval(c, n->c, f) : jv_none();
        if (n->c && (kw.t != JV_DICT || kw.u.d->kind != JD_DICT))
            jx_fail(c, n->c, AIR_ERR_FORMAT, "argument after ** must be a mapping, not %s",
                    jv_type_name(kw));
        size_t ne = extra ? extra->n : 0, nk = n->c ? kw.u.d->n : 0;
        jv *na = jx_alloc(c, (a.nargs + ne + 1) * sizeof(jv));
        memcpy(na, a.args, a.nargs * sizeof(jv));
        for (size_t i = 0; i < ne; i++)
            na[a.nargs + i] = extra->v[i];
        a.args = na;
        a.nargs += ne;
        const char **nkn = jx_alloc(c, (a.nkw + nk + 1) * sizeof(char *));
        jv *nkv = jx_alloc(c, (a.nkw + nk + 1) * sizeof(jv));
        for (size_t i = 0; i < a.nkw; i++) {
            nkn[i] = a.knames[i];
            nkv[i] = a.kvals[i];
        }
        for (size_t i = 0; i < nk; i++) {
            if (kw.u.d->k[i].t != JV_STR)
                jx_fail(c, n->c, AIR_ERR_FORMAT, "keywords must be strings");
            nkn[a.nkw + i] = kw.u.d->k[i].u.s->s;
            nkv[a.nkw + i] = kw.u.d->v[i];
        }
        a.knames = nkn;
        a.kvals = nkv;
        a.nkw += nk;
    }
    return a;
}

static jv apply_filter(jctx *c, jnode *n, jframe *f, jv input) {
    /* n is an N_FILTER chain whose innermost operand is NULL (block filters) */
    if (++c->nest > MAX_EVAL_NEST)
        jx_fail(c, n, AIR_ERR_LIMIT, "the template chains more than %d filters", MAX_EVAL_NEST);
    jv v = n->a ? (n->a->kind == N_FILTER ? apply_filter(c, n->a, f, input) : eval(c, n->a, f))
                : input;
    c->nest--;
    argv_t a = eval_args(c, n, f, 0);
    return jx_filter(c, n, n->name, v, a.args, a.nargs, a.knames, a.kvals, a.nkw);
}

static jv eval_call(jctx *c, jnode *n, jframe *f, const char **extra_kn, jv *extra_kv,
                    size_t nextra) {
    argv_t a = eval_args(c, n, f, 0);
    if (nextra) {
        const char **kn = jx_alloc(c, (a.nkw + nextra) * sizeof(char *));
        jv *kv = jx_alloc(c, (a.nkw + nextra) * sizeof(jv));
        for (size_t i = 0; i < a.nkw; i++) {
            kn[i] = a.knames[i];
            kv[i] = a.kvals[i];
        }
        for (size_t i = 0; i < nextra; i++) {
            kn[a.nkw + i] = extra_kn[i];
            kv[a.nkw + i] = extra_kv[i];
        }
        a.knames = kn;
        a.kvals = kv;
        a.nkw += nextra;
    }
    if (n->a->kind == N_ATTR) {
        jv obj = eval(c, n->a->a, f);
        const char *name = n->a->name;
        if (obj.t == JV_UNDEF)
            fail_undef(c, n, obj);
        int is_plain_dict_attr = obj.t == JV_DICT && obj.u.d->kind != JD_DICT;
        if (!is_plain_dict_attr || (obj.u.d->kind == JD_LOOP && !strcmp(name, "cycle"))) {
            jv res;
            if (jx_method(c, n, obj, name, a.args, a.nargs, a.knames, a.kvals, a.nkw, &res))
                return res;
        }
        jv fn = jx_getattr(c, n->a, obj, name);
        return jx_call(c, n, fn, a.args, a.nargs, a.knames, a.kvals, a.nkw);
    }
    jv fn = eval(c, n->a, f);
    if (fn.t == JV_FUNC && fn.u.fn->fn == method_tramp) {
        jv res;
        if (jx_method(c, n, fn.u.fn->self, fn.u.fn->name, a.args, a.nargs, a.knames, a.kvals, a.nkw,
                      &res))
            return res;
    }
    return jx_call(c, n, fn, a.args, a.nargs, a.knames, a.kvals, a.nkw);
}

static jv eval_node(jctx *c, jnode *n, jframe *f);
static jv eval(jctx *c, jnode *n, jframe *f) {
    if (++c->nest > MAX_EVAL_NEST)
        jx_fail(c, n, AIR_ERR_LIMIT, "the template nests expressions and calls more than %d deep",
                MAX_EVAL_NEST);
    jv r = eval_node(c, n, f);
    c->nest--;
    return r;
}

static jv eval_node(jctx *c, jnode *n, jframe *f) {
    switch (n->kind) {
    case N_LIT:
        return n->lit;
    case N_NAME:
        return lookup(c, f, n->name);
    case N_LIST:
    case N_TUPLE: {
        jv l = jv_list(c, n->nargs);
        l.tuple = n->kind == N_TUPLE;
        for (size_t i = 0; i < n->nargs; i++)
            jl_push(c, l.u.l, eval(c, n->args[i], f));
        return l;
    }
    case N_DICT: {
        jv d = jv_dict(c, JD_DICT);
        for (size_t i = 0; i < n->nargs; i++) {
            jv k = eval(c, n->args[i], f);
            if (k.t == JV_LIST && !k.tuple)
                jx_fail(c, n->args[i], AIR_ERR_FORMAT, "unhashable type: 'list'");
            if (k.t == JV_DICT)
                jx_fail(c, n->args[i], AIR_ERR_FORMAT, "unhashable type: 'dict'");
            jd_set(c, d.u.d, k, eval(c, n->kvals[i], f));
        }
        return d;
    }
    case N_ATTR:
        return jx_getattr(c, n, eval(c, n->a, f), n->name);
    case N_ITEM:
        return jx_getitem(c, n, eval(c, n->a, f), eval(c, n->b, f));
    case N_SLICE: {
        jv obj = eval(c, n->args[0], f);
        jv s = n->a ? eval(c, n->a, f) : jv_none();
        jv e = n->b ? eval(c, n->b, f) : jv_none();
        jv st = n->c ? eval(c, n->c, f) : jv_none();
        return do_slice(c, n, obj, s, e, st);
    }
    case N_CALL:
        return eval_call(c, n, f, NULL, NULL, 0);
    case N_FILTER:
        return apply_filter(c, n, f, jv_undef(NULL));
    case N_TEST: {
        jv v = eval(c, n->a, f);
        argv_t a = eval_args(c, n, f, 0);
        int r = jx_test(c, n, n->name, v, a.args, a.nargs);
        return jv_bool(n->flag ? !r : r);
    }
    case N_NEG:
    case N_POS: {
        jv v = eval(c, n->a, f);
        if (v.t == JV_UNDEF)
            fail_undef(c, n, v);
        if (v.t == JV_FLOAT)
            return jv_float(n->kind == N_NEG ? -v.u.f : v.u.f);
        if (v.t == JV_INT || v.t == JV_BOOL) {
            int64_t i = as_i(v);
            if (n->kind == N_POS)
                return jv_int(i);
            if (i == INT64_MIN)
                jx_fail(c, n, AIR_ERR_FORMAT, "integer overflow in unary '-'");
            return jv_int(-i);
        }
        jx_fail(c, n, AIR_ERR_FORMAT, "bad operand type for unary %c: '%s'",
                n->kind == N_NEG ? '-' : '+', jv_type_name(v));
    }
    case N_NOT:
        return jv_bool(!jv_truthy(eval(c, n->a, f)));
    case N_AND: {
        jv a = eval(c, n->a, f);
        return jv_truthy(a) ? eval(c, n->b, f) : a;
    }
    case N_OR: {
        jv a = eval(c, n->a, f);
        return jv_truthy(a) ? a : eval(c, n->b, f);
    }
    case N_BIN:
        return jx_binop(c, n, n->op, eval(c, n->a, f), eval(c, n->b, f));
    case N_CMP: {
        jv left = eval(c, n->a, f);
        for (size_t i = 0; i < n->nargs; i++) {
            jv right = eval(c, n->args[i], f);
            int op = n->ops[i], r;
            switch (op) {
            case OP_EQ:
                r = jv_equal(left, right);
                break;
            case OP_NE:
                r = !jv_equal(left, right);
                break;
            case OP_IN:
                r = contains(c, n, right, left);
                break;
            case OP_NOTIN:
                r = !contains(c, n, right, left);
                break;
            default: {
                if (left.t == JV_UNDEF)
                    fail_undef(c, n, left);
                if (right.t == JV_UNDEF)
                    fail_undef(c, n, right);
                int k = jv_compare(c, n, left, right);
                r = op == OP_LT ? k < 0 : op == OP_LE ? k <= 0 : op == OP_GT ? k > 0 : k >= 0;
                if ((left.t == JV_FLOAT && isnan(left.u.f)) ||
                    (right.t == JV_FLOAT && isnan(right.u.f)))
                    r = 0;
            }
            }
            if (!r)
                return jv_bool(0);
            left = right;
        }
        return jv_bool(1);
    }
    case N_COND:
        if (jv_truthy(eval(c, n->b, f)))
            return eval(c, n->a, f);
        return n->c ? eval(c, n->c, f) : jv_undef_msg(c, "the inline if had no else branch");
    default:
        jx_fail(c, n, AIR_ERR_INTERNAL, "unexpected node kind %d in an expression", n->kind);
    }
}

/* ------------------------------------------------------------------------- */
/* Statements                                                                 */
/* ------------------------------------------------------------------------- */
static void run_for(jctx *c, jnode *n, jframe *f, jv iterable, int depth) {
    jlist *src = jv_iterable(c, n->a, iterable);
    jlist *items = src;
    if (n->c) { /* for x in xs if cond */
        items = jv_list(c, 0).u.l;
        for (size_t i = 0; i < src->n; i++) {
            step(c, n);
            jframe *fr = frame_new(c, f);
            assign(c, n->b, src->v[i], fr);
            if (jv_truthy(eval(c, n->c, fr)))
                jl_push(c, items, src->v[i]);
        }
    } else if (iterable.t == JV_LIST) {
        /* snapshot: the body may not see later changes */
        jlist *cp = jv_list(c, src->n).u.l;
        for (size_t i = 0; i < src->n; i++)
            jl_push(c, cp, src->v[i]);
        items = cp;
    }
    if (items->n == 0) {
        exec_body(c, n->orelse, n->norelse, f);
        return;
    }
    c->in_loop++;
    size_t len = items->n;
    for (size_t i = 0; i < len; i++) {
        step(c, n);
        jframe *fr = frame_new(c, f);
        jv lp = jv_dict(c, JD_LOOP);
        jdict *L = lp.u.d;
        jd_setc(c, L, "index", jv_int((int64_t)i + 1));
        jd_setc(c, L, "index0", jv_int((int64_t)i));
        jd_setc(c, L, "revindex", jv_int((int64_t)(len - i)));
        jd_setc(c, L, "revindex0", jv_int((int64_t)(len - i - 1)));
        jd_setc(c, L, "first", jv_bool(i == 0));
        jd_setc(c, L, "last", jv_bool(i + 1 == len));
        jd_setc(c, L, "length", jv_int((int64_t)len));
        jd_setc(c, L, "depth", jv_int(depth));
        jd_setc(c, L, "depth0", jv_int(depth - 1));
        jd_setc(c, L, "previtem",
                i > 0 ? items->v[i - 1] : jv_undef_msg(c, "there is no previous item"));
        jd_setc(c, L, "nextitem",
                i + 1 < len ? items->v[i + 1] : jv_undef_msg(c, "there is no next item"));
        if (n->flag) {
            L->loop_node = n;
            L->loop_frame = f;
            L->loop_depth = depth;
        }
        jd_setc(c, fr->vars, "loop", lp);
        assign(c, n->b, items->v[i], fr);
        exec_body(c, n->body, n->nbody, fr);
        if (c->loop_ctl == 1) {
            c->loop_ctl = 0;
            break;
        }
        c->loop_ctl = 0;
    }
    c->in_loop--;
}

static void exec_stmt_node(jctx *c, jnode *n, jframe *f);
static void exec_stmt(jctx *c, jnode *n, jframe *f) {
    if (++c->nest > MAX_EVAL_NEST)
        jx_fail(c, n, AIR_ERR_LIMIT, "the template nests statements and calls more than %d deep",
                MAX_EVAL_NEST);
    exec_stmt_node(c, n, f);
    c->nest--;
}

static void exec_stmt_node(jctx *c, jnode *n, jframe *f) {
    step(c, n);
    switch (n->kind) {
    case N_TEXT:
        out_write(c, n->lit.u.s->s, n->lit.u.s->len);
        break;
    case N_OUTPUT: {
        jv v = eval(c, n->a, f);
        if (v.t == JV_STR)
            out_write(c, v.u.s->s, v.u.s->len);
        else if (v.t != JV_UNDEF) {
            jstr *s = jv_to_jstr(c, v);
            out_write(c, s->s, s->len);
        }
        break;
    }
    case N_IF:
        if (jv_truthy(eval(c, n->a, f)))
            exec_body(c, n->body, n->nbody, f);
        else
            exec_body(c, n->orelse, n->norelse, f);
        break;
    case N_FOR:
        run_for(c, n, f, eval(c, n->a, f), 1);
        break;
    case N_SET: {
        jv v = eval(c, n->a, f);
        if (n->b->kind == N_ATTR) {
            jv ns = lookup(c, f, n->b->a->name);
            if (ns.t != JV_DICT || ns.u.d->kind != JD_NAMESPACE)
                jx_fail(c, n, AIR_ERR_FORMAT, "cannot assign attribute on non-namespace object");
            if (n->b->name[0] == '_')
                jx_fail(c, n, AIR_ERR_FORMAT,
                        "Chat templates cannot store underscore-prefixed attributes on a "
                        "namespace, but got '%s'. Please rename the attribute.",
                        n->b->name);
            jd_setc(c, ns.u.d, n->b->name, v);
        } else
            assign(c, n->b, v, f);
        break;
    }
    case N_SETBLOCK: {
        cap_push(c);
        exec_body(c, n->body, n->nbody, f);
        jv v = cap_pop(c);
        if (n->a)
            v = apply_filter(c, n->a, f, v);
        if (n->b->kind == N_ATTR) {
            jv ns = lookup(c, f, n->b->a->name);
            if (ns.t != JV_DICT || ns.u.d->kind != JD_NAMESPACE)
                jx_fail(c, n, AIR_ERR_FORMAT, "cannot assign attribute on non-namespace object");
            jd_setc(c, ns.u.d, n->b->name, v);
        } else
            assign(c, n->b, v, f);
        break;
    }
    case N_MACRO: {
        jfunc *fn = jx_alloc(c, sizeof(jfunc));
        fn->name = n->name;
        fn->macro = n;
        fn->closure = f;
        jv v = {.t = JV_FUNC};
        v.u.fn = fn;
        jd_setc(c, f->vars, n->name, v);
        break;
    }
    case N_CALLBLOCK: {
        jfunc *fn = jx_alloc(c, sizeof(jfunc));
        fn->name = "caller";
        fn->caller = n;
        fn->caller_frame = f;
        jv cv = {.t = JV_FUNC};
        cv.u.fn = fn;
        const char *kn[1] = {"caller"};
        jv r = eval_call(c, n->a, f, kn, &cv, 1);
        if (r.t != JV_UNDEF) {
            jstr *s = jv_to_jstr(c, r);
            out_write(c, s->s, s->len);
        }
        break;
    }
    case N_FILTERBLOCK: {
        cap_push(c);
        exec_body(c, n->body, n->nbody, f);
        jv v = apply_filter(c, n->a, f, cap_pop(c));
        jstr *s = jv_to_jstr(c, v);
        out_write(c, s->s, s->len);
        break;
    }
    case N_WITH: {
        jframe *fr = frame_new(c, f);
        for (size_t i = 0; i < n->nargs; i++)
            assign(c, n->args[i], eval(c, n->kvals[i], f), fr);
        exec_body(c, n->body, n->nbody, fr);
        break;
    }
    case N_BODY:
        exec_body(c, n->body, n->nbody, f);
        break;
    case N_BREAK:
    case N_CONTINUE:
        if (!c->in_loop)
            jx_fail(c, n, AIR_ERR_FORMAT, "'%s' outside of a loop",
                    n->kind == N_BREAK ? "break" : "continue");
        c->loop_ctl = n->kind == N_BREAK ? 1 : 2;
        break;
    default:
        jx_fail(c, n, AIR_ERR_INTERNAL, "unexpected node kind %d in a statement", n->kind);
    }
}

static void exec_body(jctx *c, jnode **body, size_t n, jframe *f) {
    for (size_t i = 0; i < n && !c->loop_ctl; i++)
        exec_stmt(c, body[i], f);
}

/* ------------------------------------------------------------------------- */
/* Entry                                                                      */
/* ------------------------------------------------------------------------- */
air_status air_jinja_parse(const char *src, size_t len, air_jinja_template **out) {
    if (!out || (!src && len))
        return air_err(AIR_ERR_INVALID_ARG, "air_jinja_parse: NULL argument");
    *out = NULL;
    air_jinja_template *t = calloc(1, sizeof *t);
    if (!t)
        return air_err(AIR_ERR_NOMEM, "out of memory parsing a template");
    jtok *toks = NULL;
    size_t ntoks = 0;
    air_status st = air_jinja_lex(src ? src : "", len, &t->arena, &toks, &ntoks);
    if (st == AIR_OK)
        st = air_jinja_parse_tokens(toks, ntoks, &t->arena, &t->root);
    if (st != AIR_OK) {
        air_jinja_free(t);
        return st;
    }
    *out = t;
    return AIR_OK;
}

void air_jinja_free(air_jinja_template *t) {
    if (!t)
        return;
    ja_free(&t->arena);
    free(t);
}

static air_status render(jctx *c, const air_jinja_template *t, const cJSON *vars, char **out) {
    /* Everything below may longjmp back to here. */
    if (setjmp(c->jmp))
        return c->status ? c->status : AIR_ERR_FORMAT;
    jframe *g = frame_new(c, NULL);
    jx_add_builtins(c, g->vars);
    if (vars && cJSON_IsObject(vars))
        for (const cJSON *e = vars->child; e; e = e->next)
            if (e->string)
                jd_setc(c, g->vars, e->string, jv_from_cjson(c, e));
    c->globals = g;
    jframe *root = frame_new(c, g);
    exec_body(c, t->root->body, t->root->nbody, root);
    size_t n = c->out->sb.len;
    char *r = malloc(n + 1);
    if (!r)
        jx_oom(c);
    if (n)
        memcpy(r, c->out->sb.data, n);
    r[n] = 0;
    *out = r;
    return AIR_OK;
}

air_status air_jinja_render(const air_jinja_template *t, const cJSON *vars,
                            const air_jinja_limits *limits, char **out) {
    if (!t || !out)
        return air_err(AIR_ERR_INVALID_ARG, "air_jinja_render: NULL template or output");
    *out = NULL;
    jarena arena = {0};
    jcap top;
    memset(&top, 0, sizeof top);
    jctx ctx;
    memset(&ctx, 0, sizeof ctx);
    ctx.arena = &arena;
    ctx.out = &top;
    ctx.out_limit = limits && limits->max_output ? limits->max_output : (size_t)64 << 20;
    arena.limit = limits && limits->max_memory ? limits->max_memory : (size_t)512 << 20;
    ctx.max_depth = limits && limits->max_depth ? limits->max_depth : 64;
    ctx.max_steps = limits && limits->max_steps ? limits->max_steps : 50000000u;
    ctx.fake_date = getenv("AIR_FAKE_DATE");
    if (ctx.fake_date && !*ctx.fake_date)
        ctx.fake_date = NULL;
    air_status st = render(&ctx, t, vars, out);
    /* free every capture buffer still open (after an error) and the top one */
    for (jcap *k = ctx.out; k; k = k->prev)
        air_sb_free(&k->sb);
    ja_free(&arena);
    return st;
}
