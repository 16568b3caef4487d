/*
 * parser.c - builds the Jinja AST from the lexer's tokens.
 *
 * Recursive descent with Jinja2's grammar and precedence (lowest first):
 *   conditional (a if b else c) < or < and < not < comparisons (== != < <=
 *   > >= in, not in) < + - < ~ < * / // % < ** (left-assoc) < unary - + <
 *   postfix (.attr [item] [a:b:c] call) < filters (|f) and tests (is t).
 * Statements: if/elif/else, for (unpacking, `if` filter, else, recursive),
 * set (plain, namespace attribute, tuple, block), macro, call, filter,
 * with, break, continue, generation. Nodes live in the template arena.
 * Nesting is limited (MAX_NEST) so deeply nested input cannot overflow the
 * stack.
 */
#include <stdio.h>
#include <string.h>

#include "text/jinja/jinja_int.h"

#define MAX_NEST 100

typedef struct {
    const jtok *t;
    size_t n, i;
    jarena *a;
    int nest;
    jmp_buf jmp;
    air_status st;
} parser;

static _Noreturn void perr(parser *P, const jtok *at, const char *fmt, ...) AIR_PRINTF(3, 4);
static _Noreturn void perr(parser *P, const jtok *at, const char *fmt, ...) {
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    P->st = air_err(AIR_ERR_FORMAT, "template syntax error at line %d, column %d: %s", at->line,
                    at->col, msg);
    longjmp(P->jmp, 1);
}

static void *palloc(parser *P, size_t n) {
    void *p = ja_alloc(P->a, n);
    if (!p) {
        P->st = air_err(AIR_ERR_NOMEM, "out of memory while parsing the template");
        longjmp(P->jmp, 1);
    }
    return p;
}

static const jtok *cur(parser *P) {
    return &P->t[P->i];
}
static const jtok *peek(parser *P, size_t k) {
    size_t j = P->i + k;
    return &P->t[j < P->n ? j : P->n - 1];
}
static void adv(parser *P) {
    if (P->i + 1 < P->n)
        P->i++;
}

static int tok_op(const jtok *t, const char *op) {
    return t->type == TK_OP && t->len == strlen(op) && memcmp(t->s, op, t->len) == 0;
}
static int tok_name(const jtok *t, const char *name) {
    return t->type == TK_NAME && t->len == strlen(name) && memcmp(t->s, name, t->len) == 0;
}

static const char *tok_desc(const jtok *t, char *buf, size_t n) {
    switch (t->type) {
    case TK_TEXT:
        return "template text";
    case TK_VAR_BEGIN:
        return "'{{'";
    case TK_VAR_END:
        return "end of print statement '}}'";
    case TK_BLOCK_BEGIN:
        return "'{%'";
    case TK_BLOCK_END:
        return "end of statement block '%}'";
    case TK_NAME:
    case TK_OP:
        snprintf(buf, n, "'%.*s'", (int)(t->len > 40 ? 40 : t->len), t->s);
        return buf;
    case TK_STRING:
        return "string literal";
    case TK_INT:
        return "integer literal";
    case TK_FLOAT:
        return "float literal";
    default:
        return "end of template";
    }
}

static void expect_op(parser *P, const char *op) {
    if (!tok_op(cur(P), op)) {
        char b[64];
        perr(P, cur(P), "expected '%s', got %s", op, tok_desc(cur(P), b, sizeof b));
    }
    adv(P);
}

static const char *expect_name(parser *P) {
    if (cur(P)->type != TK_NAME) {
        char b[64];
        perr(P, cur(P), "expected a name, got %s", tok_desc(cur(P), b, sizeof b));
    }
    const char *s = cur(P)->s;
    adv(P);
    return s;
}

static void expect_block_end(parser *P) {
    if (cur(P)->type != TK_BLOCK_END) {
        char b[64];
        perr(P, cur(P), "expected end of statement block '%%}', got %s",
             tok_desc(cur(P), b, sizeof b));
    }
    adv(P);
}

static jnode *mk(parser *P, int kind, const jtok *at) {
    jnode *n = palloc(P, sizeof(jnode));
    n->kind = kind;
    n->line = at->line;
    n->col = at->col;
    return n;
}

/* growable node-pointer vector in the arena */
typedef struct {
    jnode **v;
    size_t n, cap;
} nvec;
static void nv_push(parser *P, nvec *v, jnode *x) {
    if (v->n == v->cap) {
        size_t cap = v->cap ? v->cap * 2 : 4;
        jnode **nv = palloc(P, cap * sizeof(jnode *));
        if (v->n)
            memcpy(nv, v->v, v->n * sizeof(jnode *));
        v->v = nv;
        v->cap = cap;
    }
    v->v[v->n++] = x;
}
typedef struct {
    const char **v;
    size_t n, cap;
} svec;
static void sv_push(parser *P, svec *v, const char *x) {
    if (v->n == v->cap) {
        size_t cap = v->cap ? v->cap * 2 : 4;
        const char **nv = palloc(P, cap * sizeof(char *));
        if (v->n)
            memcpy(nv, v->v, v->n * sizeof(char *));
        v->v = nv;
        v->cap = cap;
    }
    v->v[v->n++] = x;
}

static void enter(parser *P) {
    if (++P->nest > MAX_NEST)
        perr(P, cur(P), "template nested more than %d levels deep", MAX_NEST);
}
static void leave(parser *P) {
    P->nest--;
}

/* ------------------------------------------------------------------------- */
/* Expressions                                                                */
/* ------------------------------------------------------------------------- */
static jnode *parse_expression(parser *P, int with_condexpr);
static jnode *parse_unary(parser *P, int with_filter);
static jnode *parse_or(parser *P);

/* parse_tuple modes */
enum { TUP_EXPR, TUP_NOCOND, TUP_SIMPLE };

static int is_tuple_end(parser *P, const char *extra) {
    const jtok *t = cur(P);
    if (t->type == TK_VAR_END || t->type == TK_BLOCK_END || t->type == TK_EOF || tok_op(t, ")"))
        return 1;
    return extra && tok_name(t, extra);
}

static jnode *parse_primary(parser *P);
static jnode *parse_tuple(parser *P, int mode, const char *extra_end, int explicit_parens) {
    const jtok *start = cur(P);
    nvec items = {0};
    int is_tuple = 0;
    for (;;) {
        if (items.n)
            expect_op(P, ",");
        if (is_tuple_end(P, extra_end))
            break;
        jnode *e = mode == TUP_SIMPLE   ? parse_primary(P)
                   : mode == TUP_NOCOND ? parse_expression(P, 0)
                                        : parse_expression(P, 1);
        nv_push(P, &items, e);
        if (tok_op(cur(P), ","))
            is_tuple = 1;
        else
            break;
    }
    if (!is_tuple) {
        if (items.n)
            return items.v[0];
        if (!explicit_parens) {
            char b[64];
            perr(P, cur(P), "expected an expression, got %s", tok_desc(cur(P), b, sizeof b));
        }
    }
    jnode *n = mk(P, N_TUPLE, start);
    n->args = items.v;
    n->nargs = items.n;
    return n;
}

static void parse_call_args(parser *P, jnode *n) {
    /* at '(' */
    expect_op(P, "(");
    nvec args = {0}, kvals = {0};
    svec knames = {0};
    int dyn = 0;
    while (!tok_op(cur(P), ")")) {
        if (args.n || knames.n || dyn)
            expect_op(P, ",");
        if (tok_op(cur(P), ")"))
            break;
        if (tok_op(cur(P), "*") || tok_op(cur(P), "**")) { /* f(*args) / f(**kwargs) */
            int kw = tok_op(cur(P), "**");
            if ((kw && n->c) || (!kw && n->b))
                perr(P, cur(P), "only one %s argument is supported", kw ? "**" : "*");
            adv(P);
            if (kw)
                n->c = parse_expression(P, 1);
            else
                n->b = parse_expression(P, 1);
            dyn++;
            continue;
        }
        if (cur(P)->type == TK_NAME && tok_op(peek(P, 1), "=")) {
            const char *k = cur(P)->s;
            adv(P);
            adv(P);
            sv_push(P, &knames, k);
            nv_push(P, &kvals, parse_expression(P, 1));
        } else {
            if (knames.n)
                perr(P, cur(P), "positional argument follows keyword argument");
            nv_push(P, &args, parse_expression(P, 1));
        }
    }
    adv(P);
    n->args = args.v;
    n->nargs = args.n;
    n->knames = knames.v;
    n->kvals = kvals.v;
    n->nkw = knames.n;
}

static jnode *parse_subscript(parser *P, jnode *node) {
    const jtok *t = cur(P);
    if (tok_op(t, ".")) {
        adv(P);
        const jtok *a = cur(P);
        if (a->type == TK_NAME) {
            jnode *n = mk(P, N_ATTR, t);
            n->a = node;
            n->name = a->s;
            adv(P);
            return n;
        }
        if (a->type == TK_INT) {
            jnode *n = mk(P, N_ITEM, t);
            n->a = node;
            n->b = mk(P, N_LIT, a);
            n->b->lit = jv_int(a->i);
            adv(P);
            return n;
        }
        perr(P, a, "expected a name or number after '.'");
    }
    /* '[' */
    adv(P);
    nvec subs = {0};
    for (;;) {
        if (subs.n)
            expect_op(P, ",");
        if (tok_op(cur(P), "]"))
            break;
        const jtok *st = cur(P);
        jnode *start = NULL, *stop = NULL, *step = NULL;
        if (!tok_op(st, ":")) {
            start = parse_expression(P, 1);
            if (!tok_op(cur(P), ":")) {
                nv_push(P, &subs, start);
                if (!tok_op(cur(P), ","))
                    break;
                continue;
            }
        }
        adv(P); /* ':' */
        if (!tok_op(cur(P), "]") && !tok_op(cur(P), ",") && !tok_op(cur(P), ":"))
            stop = parse_expression(P, 1);
        if (tok_op(cur(P), ":")) {
            adv(P);
            if (!tok_op(cur(P), "]") && !tok_op(cur(P), ","))
                step = parse_expression(P, 1);
        }
        jnode *sl = mk(P, N_SLICE, st);
        sl->a = start;
        sl->b = stop;
        sl->c = step;
        nv_push(P, &subs, sl);
        if (!tok_op(cur(P), ","))
            break;
    }
    if (subs.n == 0)
        perr(P, cur(P), "expected a subscript expression inside '[]'");
    expect_op(P, "]");
    jnode *n = mk(P, N_ITEM, t);
    n->a = node;
    if (subs.n == 1)
        n->b = subs.v[0];
    else {
        for (size_t i = 0; i < subs.n; i++)
            if (subs.v[i]->kind == N_SLICE)
                perr(P, t, "a slice cannot be part of a tuple subscript");
        jnode *tu = mk(P, N_TUPLE, t);
        tu->args = subs.v;
        tu->nargs = subs.n;
        n->b = tu;
    }
    if (n->b->kind == N_SLICE) { /* obj[a:b:c] */
        n->b->kind = N_SLICE;
        jnode *s = n->b;
        s->args = palloc(P, sizeof(jnode *));
        s->args[0] = node;
        s->nargs = 1;
        return s;
    }
    return n;
}

static jnode *parse_postfix(parser *P, jnode *node) {
    for (;;) {
        const jtok *t = cur(P);
        if (tok_op(t, ".") || tok_op(t, "[")) {
            node = parse_subscript(P, node);
        } else if (tok_op(t, "(")) {
            jnode *n = mk(P, N_CALL, t);
            n->a = node;
            n->line = node->line; /* errors point at the callee */
            n->col = node->col;
            parse_call_args(P, n);
            node = n;
        } else
            return node;
    }
}

static const char *dotted_name(parser *P) {
    const char *name = expect_name(P);
    while (tok_op(cur(P), ".") && peek(P, 1)->type == TK_NAME) {
        adv(P);
        const char *more = cur(P)->s;
        adv(P);
        size_t l1 = strlen(name), l2 = strlen(more);
        char *s = palloc(P, l1 + l2 + 2);
        memcpy(s, name, l1);
        s[l1] = '.';
        memcpy(s + l1 + 1, more, l2 + 1);
        name = s;
    }
    return name;
}

static jnode *parse_filter(parser *P, jnode *node, int start_inline) {
    while (tok_op(cur(P), "|") || start_inline) {
        if (!start_inline)
            adv(P);
        start_inline = 0;
        const jtok *t = cur(P);
        jnode *n = mk(P, N_FILTER, t);
        n->name = dotted_name(P);
        if (!jx_has_filter(n->name))
            perr(P, t, "no filter named '%s'", n->name);
        n->a = node;
        if (tok_op(cur(P), "("))
            parse_call_args(P, n);
        node = n;
    }
    return node;
}

static jnode *parse_test(parser *P, jnode *node) {
    const jtok *t = cur(P);
    adv(P); /* 'is' */
    int negated = 0;
    if (tok_name(cur(P), "not")) {
        adv(P);
        negated = 1;
    }
    jnode *n = mk(P, N_TEST, t);
    const jtok *nt = cur(P);
    n->name = dotted_name(P);
    if (!jx_has_test(n->name))
        perr(P, nt, "no test named '%s'", n->name);
    n->a = node;
    const jtok *c = cur(P);
    if (tok_op(c, "(")) {
        parse_call_args(P, n);
    } else if ((c->type == TK_NAME || c->type == TK_STRING || c->type == TK_INT ||
                c->type == TK_FLOAT || tok_op(c, "(") || tok_op(c, "[") || tok_op(c, "{")) &&
               !tok_name(c, "else") && !tok_name(c, "or") && !tok_name(c, "and")) {
        if (tok_name(c, "is"))
            perr(P, c, "you cannot chain multiple tests with 'is'");
        jnode *arg = parse_postfix(P, parse_primary(P));
        n->args = palloc(P, sizeof(jnode *));
        n->args[0] = arg;
        n->nargs = 1;
    }
    n->flag = negated;
    return n;
}

static jnode *parse_filter_expr(parser *P, jnode *node) {
    for (;;) {
        const jtok *t = cur(P);
        if (tok_op(t, "|"))
            node = parse_filter(P, node, 0);
        else if (tok_name(t, "is"))
            node = parse_test(P, node);
        else if (tok_op(t, "(")) {
            jnode *n = mk(P, N_CALL, t);
            n->a = node;
            n->line = node->line; /* errors point at the callee */
            n->col = node->col;
            parse_call_args(P, n);
            node = n;
        } else
            return node;
    }
}

static jnode *parse_primary(parser *P) {
    const jtok *t = cur(P);
    enter(P);
    jnode *n;
    if (t->type == TK_NAME) {
        n = mk(P, N_LIT, t);
        if (tok_name(t, "true") || tok_name(t, "True"))
            n->lit = jv_bool(1);
        else if (tok_name(t, "false") || tok_name(t, "False"))
            n->lit = jv_bool(0);
        else if (tok_name(t, "none") || tok_name(t, "None"))
            n->lit = jv_none();
        else {
            n->kind = N_NAME;
            n->name = t->s;
        }
        adv(P);
    } else if (t->type == TK_STRING) {
        /* adjacent string literals concatenate */
        size_t total = 0, j = P->i;
        while (j < P->n && P->t[j].type == TK_STRING)
            total += P->t[j++].len;
        jstr *s = palloc(P, sizeof(jstr) + total + 1);
        size_t off = 0;
        while (cur(P)->type == TK_STRING) {
            memcpy(s->s + off, cur(P)->s, cur(P)->len);
            off += cur(P)->len;
            adv(P);
        }
        s->len = total;
        s->s[total] = 0;
        n = mk(P, N_LIT, t);
        n->lit = jv_strobj(s);
    } else if (t->type == TK_INT) {
        n = mk(P, N_LIT, t);
        n->lit = jv_int(t->i);
        adv(P);
    } else if (t->type == TK_FLOAT) {
        n = mk(P, N_LIT, t);
        n->lit = jv_float(t->f);
        adv(P);
    } else if (tok_op(t, "(")) {
        adv(P);
        n = parse_tuple(P, TUP_EXPR, NULL, 1);
        expect_op(P, ")");
    } else if (tok_op(t, "[")) {
        adv(P);
        nvec items = {0};
        while (!tok_op(cur(P), "]")) {
            if (items.n)
                expect_op(P, ",");
            if (tok_op(cur(P), "]"))
                break;
            nv_push(P, &items, parse_expression(P, 1));
        }
        adv(P);
        n = mk(P, N_LIST, t);
        n->args = items.v;
        n->nargs = items.n;
    } else if (tok_op(t, "{")) {
        adv(P);
        nvec keys = {0}, vals = {0};
        while (!tok_op(cur(P), "}")) {
            if (keys.n)
                expect_op(P, ",");
            if (tok_op(cur(P), "}"))
                break;
            nv_push(P, &keys, parse_expression(P, 1));
            expect_op(P, ":");
            nv_push(P, &vals, parse_expression(P, 1));
        }
        adv(P);
        n = mk(P, N_DICT, t);
        n->args = keys.v;
        n->kvals = vals.v;
        n->nargs = keys.n;
    } else {
        char b[64];
        perr(P, t, "unexpected %s", tok_desc(t, b, sizeof b));
    }
    leave(P);
    return n;
}

static jnode *parse_unary(parser *P, int with_filter) {
    const jtok *t = cur(P);
    enter(P);
    jnode *node;
    if (tok_op(t, "-") || tok_op(t, "+")) {
        adv(P);
        node = mk(P, tok_op(t, "-") ? N_NEG : N_POS, t);
        node->a = parse_unary(P, 0);
    } else {
        node = parse_primary(P);
    }
    node = parse_postfix(P, node);
    if (with_filter)
        node = parse_filter_expr(P, node);
    leave(P);
    return node;
}

static jnode *binop(parser *P, const jtok *t, int op, jnode *a, jnode *b) {
    jnode *n = mk(P, N_BIN, t);
    n->op = op;
    n->a = a;
    n->b = b;
    return n;
}

static jnode *parse_pow(parser *P) {
    jnode *left = parse_unary(P, 1);
    while (tok_op(cur(P), "**")) {
        const jtok *t = cur(P);
        adv(P);
        left = binop(P, t, OP_POW, left, parse_unary(P, 1));
    }
    return left;
}

static jnode *parse_math2(parser *P) {
    jnode *left = parse_pow(P);
    for (;;) {
        const jtok *t = cur(P);
        int op = tok_op(t, "*")    ? OP_MUL
                 : tok_op(t, "/")  ? OP_DIV
                 : tok_op(t, "//") ? OP_FLOORDIV
                 : tok_op(t, "%")  ? OP_MOD
                                   : -1;
        if (op < 0)
            return left;
        adv(P);
        left = binop(P, t, op, left, parse_pow(P));
    }
}

static jnode *parse_concat(parser *P) {
    jnode *left = parse_math2(P);
    while (tok_op(cur(P), "~")) {
        const jtok *t = cur(P);
        adv(P);
        left = binop(P, t, OP_CONCAT, left, parse_math2(P));
    }
    return left;
}

static jnode *parse_math1(parser *P) {
    jnode *left = parse_concat(P);
    for (;;) {
        const jtok *t = cur(P);
        int op = tok_op(t, "+") ? OP_ADD : tok_op(t, "-") ? OP_SUB : -1;
        if (op < 0)
            return left;
        adv(P);
        left = binop(P, t, op, left, parse_concat(P));
    }
}

static jnode *parse_compare(parser *P) {
    const jtok *start = cur(P);
    jnode *expr = parse_math1(P);
    nvec operands = {0};
    int ops[64];
    int nops = 0;
    for (;;) {
        const jtok *t = cur(P);
        int op = tok_op(t, "==")     ? OP_EQ
                 : tok_op(t, "!=")   ? OP_NE
                 : tok_op(t, "<")    ? OP_LT
                 : tok_op(t, "<=")   ? OP_LE
                 : tok_op(t, ">")    ? OP_GT
                 : tok_op(t, ">=")   ? OP_GE
                 : tok_name(t, "in") ? OP_IN
                                     : -1;
        if (op < 0 && tok_name(t, "not") && tok_name(peek(P, 1), "in")) {
            adv(P);
            op = OP_NOTIN;
        }
        if (op < 0)
            break;
        if (nops >= 64)
            perr(P, t, "too many chained comparisons");
        adv(P);
        ops[nops++] = op;
        nv_push(P, &operands, parse_math1(P));
    }
    if (!nops)
        return expr;
    jnode *n = mk(P, N_CMP, start);
    n->a = expr;
    n->args = operands.v;
    n->nargs = operands.n;
    n->ops = palloc(P, sizeof(int) * (size_t)nops);
    memcpy(n->ops, ops, sizeof(int) * (size_t)nops);
    return n;
}

static jnode *parse_not(parser *P) {
    const jtok *t = cur(P);
    if (tok_name(t, "not")) {
        adv(P);
        enter(P);
        jnode *n = mk(P, N_NOT, t);
        n->a = parse_not(P);
        leave(P);
        return n;
    }
    return parse_compare(P);
}

static jnode *parse_and(parser *P) {
    jnode *left = parse_not(P);
    while (tok_name(cur(P), "and")) {
        const jtok *t = cur(P);
        adv(P);
        jnode *n = mk(P, N_AND, t);
        n->a = left;
        n->b = parse_not(P);
        left = n;
    }
    return left;
}

static jnode *parse_or(parser *P) {
    jnode *left = parse_and(P);
    while (tok_name(cur(P), "or")) {
        const jtok *t = cur(P);
        adv(P);
        jnode *n = mk(P, N_OR, t);
        n->a = left;
        n->b = parse_and(P);
        left = n;
    }
    return left;
}

static jnode *parse_condexpr(parser *P) {
    enter(P);
    jnode *expr1 = parse_or(P);
    while (tok_name(cur(P), "if")) {
        const jtok *t = cur(P);
        adv(P);
        jnode *n = mk(P, N_COND, t);
        n->a = expr1;
        n->b = parse_or(P);
        if (tok_name(cur(P), "else")) {
            adv(P);
            n->c = parse_condexpr(P);
        }
        expr1 = n;
    }
    leave(P);
    return expr1;
}

static jnode *parse_expression(parser *P, int with_condexpr) {
    return with_condexpr ? parse_condexpr(P) : parse_or(P);
}

/* ------------------------------------------------------------------------- */
/* Statements                                                                 */
/* ------------------------------------------------------------------------- */
/* Parses statements until `{% <one of ends> `; leaves the parser on the end
 * name and returns which end matched (index), or fails. ends == NULL: until EOF. */
static int parse_body(parser *P, const char *const *ends, nvec *out, const jtok *opener);

static void body_into(jnode *n, nvec *v, int orelse) {
    if (orelse) {
        n->orelse = v->v;
        n->norelse = v->n;
    } else {
        n->body = v->v;
        n->nbody = v->n;
    }
}

static jnode *parse_assign_target(parser *P, int with_namespace, const char *extra_end) {
    const jtok *t = cur(P);
    if (with_namespace && t->type == TK_NAME && tok_op(peek(P, 1), ".")) {
        jnode *n = mk(P, N_ATTR, t);
        n->a = mk(P, N_NAME, t);
        n->a->name = t->s;
        adv(P);
        adv(P);
        n->name = expect_name(P);
        return n;
    }
    jnode *n = parse_tuple(P, TUP_SIMPLE, extra_end, 0);
    if (n->kind == N_TUPLE) {
        for (size_t i = 0; i < n->nargs; i++)
            if (n->args[i]->kind != N_NAME)
                perr(P, t, "can only assign to names");
    } else if (n->kind != N_NAME) {
        perr(P, t, "can't assign to this expression");
    }
    return n;
}

static void parse_signature(parser *P, jnode *n) {
    expect_op(P, "(");
    svec names = {0};
    nvec defs = {0};
    while (!tok_op(cur(P), ")")) {
        if (names.n)
            expect_op(P, ",");
        if (tok_op(cur(P), ")"))
            break;
        const char *name = expect_name(P);
        jnode *def = NULL;
        if (tok_op(cur(P), "=")) {
            adv(P);
            def = parse_expression(P, 1);
        } else if (defs.n && defs.v[defs.n - 1]) {
            perr(P, cur(P), "non-default argument follows default argument");
        }
        sv_push(P, &names, name);
        nv_push(P, &defs, def);
    }
    adv(P);
    n->knames = names.v;
    n->kvals = defs.v;
    n->nkw = names.n;
}

static jnode *parse_statement(parser *P) {
    const jtok *open = cur(P); /* BLOCK_BEGIN */
    adv(P);
    const jtok *t = cur(P);
    if (t->type != TK_NAME) {
        char b[64];
        perr(P, t, "expected a statement name after '{%%', got %s", tok_desc(t, b, sizeof b));
    }
    enter(P);
    jnode *n = NULL;
    if (tok_name(t, "if")) {
        adv(P);
        n = mk(P, N_IF, t);
        n->a = parse_tuple(P, TUP_EXPR, NULL, 0);
        expect_block_end(P);
        jnode *node = n;
        for (;;) {
            static const char *const ends[] = {"elif", "else", "endif", NULL};
            nvec body = {0};
            int which = parse_body(P, ends, &body, t);
            body_into(node, &body, 0);
            if (which == 0) { /* elif */
                const jtok *et = cur(P);
                adv(P);
                jnode *e = mk(P, N_IF, et);
                e->a = parse_tuple(P, TUP_EXPR, NULL, 0);
                expect_block_end(P);
                node->orelse = palloc(P, sizeof(jnode *));
                node->orelse[0] = e;
                node->norelse = 1;
                node = e;
                continue;
            }
            if (which == 1) { /* else */
                adv(P);
                expect_block_end(P);
                static const char *const ends2[] = {"endif", NULL};
                nvec eb = {0};
                parse_body(P, ends2, &eb, t);
                body_into(node, &eb, 1);
            }
            adv(P); /* endif */
            expect_block_end(P);
            break;
        }
    } else if (tok_name(t, "for")) {
        adv(P);
        n = mk(P, N_FOR, t);
        n->b = parse_assign_target(P, 0, "in");
        if (!tok_name(cur(P), "in"))
            perr(P, cur(P), "expected 'in' in the for statement");
        adv(P);
        n->a = parse_tuple(P, TUP_NOCOND, "recursive", 0);
        if (tok_name(cur(P), "if")) {
            adv(P);
            n->c = parse_expression(P, 1);
        }
        if (tok_name(cur(P), "recursive")) {
            adv(P);
            n->flag = 1;
        }
        expect_block_end(P);
        static const char *const ends[] = {"endfor", "else", NULL};
        nvec body = {0};
        int which = parse_body(P, ends, &body, t);
        body_into(n, &body, 0);
        if (which == 1) {
            adv(P);
            expect_block_end(P);
            static const char *const ends2[] = {"endfor", NULL};
            nvec eb = {0};
            parse_body(P, ends2, &eb, t);
            body_into(n, &eb, 1);
        }
        adv(P);
        expect_block_end(P);
    } else if (tok_name(t, "set")) {
        adv(P);
        jnode *target = parse_assign_target(P, 1, NULL);
        if (tok_op(cur(P), "=")) {
            adv(P);
            n = mk(P, N_SET, t);
            n->b = target;
            n->a = parse_tuple(P, TUP_EXPR, NULL, 0);
            expect_block_end(P);
        } else {
            n = mk(P, N_SETBLOCK, t);
            n->b = target;
            if (tok_op(cur(P), "|"))
                n->a = parse_filter(P, NULL, 0);
            expect_block_end(P);
            static const char *const ends[] = {"endset", NULL};
            nvec body = {0};
            parse_body(P, ends, &body, t);
            body_into(n, &body, 0);
            adv(P);
            expect_block_end(P);
        }
    } else if (tok_name(t, "macro")) {
        adv(P);
        n = mk(P, N_MACRO, t);
        n->name = expect_name(P);
        parse_signature(P, n);
        expect_block_end(P);
        static const char *const ends[] = {"endmacro", NULL};
        nvec body = {0};
        parse_body(P, ends, &body, t);
        body_into(n, &body, 0);
        adv(P);
        if (cur(P)->type == TK_NAME) /* {% endmacro name %} */
            adv(P);
        expect_block_end(P);
    } else if (tok_name(t, "call")) {
        adv(P);
        n = mk(P, N_CALLBLOCK, t);
        if (tok_op(cur(P), "("))
            parse_signature(P, n);
        n->a = parse_expression(P, 1);
        if (n->a->kind != N_CALL)
            perr(P, t, "expected a call after 'call'");
        expect_block_end(P);
        static const char *const ends[] = {"endcall", NULL};
        nvec body = {0};
        parse_body(P, ends, &body, t);
        body_into(n, &body, 0);
        adv(P);
        expect_block_end(P);
    } else if (tok_name(t, "filter")) {
        adv(P);
        n = mk(P, N_FILTERBLOCK, t);
        n->a = parse_filter(P, NULL, 1);
        expect_block_end(P);
        static const char *const ends[] = {"endfilter", NULL};
        nvec body = {0};
        parse_body(P, ends, &body, t);
        body_into(n, &body, 0);
        adv(P);
        expect_block_end(P);
    } else if (tok_name(t, "with")) {
        adv(P);
        n = mk(P, N_WITH, t);
        nvec targets = {0}, vals = {0};
        while (cur(P)->type != TK_BLOCK_END) {
            if (targets.n)
                expect_op(P, ",");
            nv_push(P, &targets, parse_assign_target(P, 0, NULL));
            expect_op(P, "=");
            nv_push(P, &vals, parse_expression(P, 1));
        }
        n->args = targets.v;
        n->kvals = vals.v;
        n->nargs = targets.n;
        expect_block_end(P);
        static const char *const ends[] = {"endwith", NULL};
        nvec body = {0};
        parse_body(P, ends, &body, t);
        body_into(n, &body, 0);
        adv(P);
        expect_block_end(P);
    } else if (tok_name(t, "generation")) {
        /* transformers' assistant-mask tag: renders its body unchanged */
        adv(P);
        n = mk(P, N_BODY, t);
        expect_block_end(P);
        static const char *const ends[] = {"endgeneration", NULL};
        nvec body = {0};
        parse_body(P, ends, &body, t);
        body_into(n, &body, 0);
        adv(P);
        expect_block_end(P);
    } else if (tok_name(t, "break") || tok_name(t, "continue")) {
        n = mk(P, tok_name(t, "break") ? N_BREAK : N_CONTINUE, t);
        adv(P);
        expect_block_end(P);
    } else {
        perr(P, t, "unknown or unsupported tag '%.*s'", (int)(t->len > 40 ? 40 : t->len), t->s);
    }
    (void)open;
    leave(P);
    return n;
}

static int parse_body(parser *P, const char *const *ends, nvec *out, const jtok *opener) {
    for (;;) {
        const jtok *t = cur(P);
        if (t->type == TK_EOF) {
            if (!ends)
                return -1;
            const char *end = ends[0];
            for (int k = 0; ends[k]; k++)
                if (!strncmp(ends[k], "end", 3))
                    end = ends[k];
            perr(P, opener,
                 "unexpected end of template: the '%.*s' block opened here is not closed "
                 "(missing '{%% %s %%}')",
                 (int)opener->len, opener->s, end);
        }
        if (t->type == TK_TEXT) {
            jnode *n = mk(P, N_TEXT, t);
            jstr *s = palloc(P, sizeof(jstr) + t->len + 1);
            memcpy(s->s, t->s, t->len);
            s->len = t->len;
            n->lit = jv_strobj(s);
            nv_push(P, out, n);
            adv(P);
        } else if (t->type == TK_VAR_BEGIN) {
            adv(P);
            jnode *n = mk(P, N_OUTPUT, t);
            n->a = parse_tuple(P, TUP_EXPR, NULL, 0);
            if (cur(P)->type != TK_VAR_END) {
                char b[64];
                perr(P, cur(P), "expected end of print statement '}}', got %s",
                     tok_desc(cur(P), b, sizeof b));
            }
            adv(P);
            nv_push(P, out, n);
        } else if (t->type == TK_BLOCK_BEGIN) {
            const jtok *nm = peek(P, 1);
            if (ends && nm->type == TK_NAME) {
                for (int k = 0; ends[k]; k++)
                    if (tok_name(nm, ends[k])) {
                        adv(P);
                        return k;
                    }
            }
            if (nm->type == TK_NAME && nm->len > 3 && memcmp(nm->s, "end", 3) == 0) {
                if (ends) {
                    const char *end = ends[0];
                    for (int k = 0; ends[k]; k++)
                        if (!strncmp(ends[k], "end", 3))
                            end = ends[k];
                    perr(P, nm, "unexpected '%.*s': the innermost open block needs '%s'",
                         (int)nm->len, nm->s, end);
                }
                perr(P, nm, "unexpected '%.*s': no block is open", (int)nm->len, nm->s);
            }
            if (nm->type == TK_NAME && (tok_name(nm, "elif") || tok_name(nm, "else")))
                perr(P, nm, "unexpected '%.*s' outside an if or for block", (int)nm->len, nm->s);
            nv_push(P, out, parse_statement(P));
        } else {
            char b[64];
            perr(P, t, "unexpected %s", tok_desc(t, b, sizeof b));
        }
    }
}

air_status air_jinja_parse_tokens(const jtok *toks, size_t n, jarena *a, jnode **root) {
    parser Px = {.t = toks, .n = n, .a = a};
    parser *P = &Px;
    if (setjmp(P->jmp))
        return P->st;
    jnode *r = mk(P, N_BODY, &toks[0]);
    nvec body = {0};
    parse_body(P, NULL, &body, &toks[0]);
    body_into(r, &body, 0);
    *root = r;
    return AIR_OK;
}
