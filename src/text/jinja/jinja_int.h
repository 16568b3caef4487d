/*
 * jinja_int.h - internals shared by the Jinja lexer, parser, evaluator,
 * values, filters, tests and methods. Not for use outside src/text/jinja/.
 *
 * Memory: everything is allocated from arenas. The parser allocates tokens
 * and AST nodes from the template's arena; a render allocates every value
 * from its own arena and drops it at the end. Errors unwind with longjmp to
 * the entry point (air_jinja_parse / air_jinja_render), which is safe because
 * nothing in between owns heap memory outside an arena.
 */
#ifndef AIR_TEXT_JINJA_INT_H
#define AIR_TEXT_JINJA_INT_H

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include "text/jinja/jinja.h"
#include "util/error.h"
#include "util/strbuf.h"

/* ------------------------------------------------------------------------- */
/* Arena                                                                      */
/* ------------------------------------------------------------------------- */
typedef struct jarena_block jarena_block;
typedef struct {
    jarena_block *head;
    size_t total; /* bytes obtained from malloc */
    size_t limit; /* 0 = unlimited */
} jarena;

/* Returns zeroed memory, or NULL when out of memory or past the limit. */
void *ja_alloc(jarena *a, size_t n);
void ja_free(jarena *a);

/* ------------------------------------------------------------------------- */
/* Values                                                                     */
/* ------------------------------------------------------------------------- */
typedef enum {
    JV_UNDEF,
    JV_NONE,
    JV_BOOL,
    JV_INT,
    JV_FLOAT,
    JV_STR,
    JV_LIST, /* also tuples (flag) */
    JV_DICT, /* also namespaces and loop objects (kind) */
    JV_FUNC
} jv_type;

typedef struct jstr {
    size_t len;
    char s[]; /* NUL-terminated */
} jstr;

typedef struct jv {
    uint8_t t;
    uint8_t tuple; /* JV_LIST: prints as a tuple */
    union {
        int b;
        int64_t i;
        double f;
        jstr *s; /* JV_STR; JV_UNDEF: the message an error would give (or NULL) */
        struct jlist *l;
        struct jdict *d;
        struct jfunc *fn;
    } u;
} jv;

typedef struct jlist {
    size_t n, cap;
    jv *v;
} jlist;

enum { JD_DICT, JD_NAMESPACE, JD_LOOP };
typedef struct jdict {
    int kind;
    size_t n, cap;
    jv *k, *v;
    struct jnode *loop_node; /* JD_LOOP: the for statement (recursive loops) */
    struct jframe *loop_frame;
    int loop_depth;
} jdict;

typedef struct jctx jctx;
typedef jv (*jbuiltin_fn)(jctx *c, struct jnode *at, jv self, jv *args, size_t nargs,
                          const char **knames, jv *kvals, size_t nkw);

typedef struct jfunc {
    const char *name;
    jbuiltin_fn fn;         /* builtin (or bound method when self is set) */
    jv self;                /* bound receiver */
    struct jnode *macro;    /* macro definition */
    struct jframe *closure; /* frame the macro was defined in */
    struct jnode *caller;   /* call block: body rendered by caller() */
    struct jframe *caller_frame;
} jfunc;

/* ------------------------------------------------------------------------- */
/* Tokens and AST                                                             */
/* ------------------------------------------------------------------------- */
typedef enum {
    TK_TEXT,
    TK_VAR_BEGIN,
    TK_VAR_END,
    TK_BLOCK_BEGIN,
    TK_BLOCK_END,
    TK_NAME,
    TK_STRING,
    TK_INT,
    TK_FLOAT,
    TK_OP,
    TK_EOF
} jtok_type;

typedef struct {
    int type;
    int line, col;
    const char *s; /* TEXT, NAME, STRING (decoded), OP */
    size_t len;
    int64_t i;
    double f;
} jtok;

typedef enum {
    /* expressions */
    N_LIT,
    N_NAME,
    N_LIST,
    N_TUPLE,
    N_DICT,
    N_ATTR,
    N_ITEM,
    N_SLICE,
    N_CALL,
    N_FILTER,
    N_TEST,
    N_NEG,
    N_POS,
    N_NOT,
    N_AND,
    N_OR,
    N_BIN,
    N_CMP,
    N_COND,
    /* statements */
    N_TEXT,
    N_OUTPUT,
    N_IF,
    N_FOR,
    N_SET,
    N_SETBLOCK,
    N_MACRO,
    N_CALLBLOCK,
    N_FILTERBLOCK,
    N_BREAK,
    N_CONTINUE,
    N_WITH,
    N_BODY
} jnode_kind;

/* Binary and comparison operators */
enum {
    OP_ADD,
    OP_SUB,
    OP_MUL,
    OP_DIV,
    OP_FLOORDIV,
    OP_MOD,
    OP_POW,
    OP_CONCAT,
    OP_EQ,
    OP_NE,
    OP_LT,
    OP_LE,
    OP_GT,
    OP_GE,
    OP_IN,
    OP_NOTIN
};

/* One node type for everything; fields are used per kind (see parser.c). */
typedef struct jnode {
    int kind, op, line, col;
    jv lit;           /* N_LIT, N_TEXT (string) */
    const char *name; /* N_NAME, N_ATTR, N_FILTER, N_TEST, N_MACRO, N_SET target */
    struct jnode *a, *b, *c;
    struct jnode **args; /* items, positional args, compare operands, targets */
    size_t nargs;
    const char **knames;  /* keyword arg names, macro parameter names */
    struct jnode **kvals; /* keyword arg values, dict values, macro defaults */
    size_t nkw;
    int *ops; /* N_CMP operators */
    struct jnode **body, **orelse;
    size_t nbody, norelse;
    int flag; /* N_TEST negated; N_FOR recursive; N_SET namespace attr */
} jnode;

struct air_jinja_template {
    jarena arena;
    jnode *root; /* N_BODY */
};

/* ------------------------------------------------------------------------- */
/* Parse / render contexts                                                    */
/* ------------------------------------------------------------------------- */
typedef struct jframe {
    struct jframe *parent;
    jdict *vars;
} jframe;

/* An output buffer; captures (macro bodies, set blocks) push a new one. */
typedef struct jcap {
    air_strbuf sb;
    struct jcap *prev;
} jcap;

struct jctx {
    jmp_buf jmp;
    jarena *arena;
    air_status status; /* set by jx_fail before unwinding */
    jcap *out;         /* current output buffer; freed on unwind */
    size_t out_limit;
    int depth, max_depth;
    int nest; /* C recursion depth of eval/exec, bounded by MAX_EVAL_NEST */
    uint64_t steps, max_steps;
    jframe *globals;
    int loop_ctl; /* 0, 1 = break, 2 = continue */
    int in_loop;
    const char *fake_date; /* AIR_FAKE_DATE, or NULL */
};

/* Raises an error at a node (line/column) and unwinds; never returns. */
_Noreturn void jx_fail(jctx *c, const jnode *at, air_status st, const char *fmt, ...)
    AIR_PRINTF(4, 5);
_Noreturn void jx_oom(jctx *c);
void *jx_alloc(jctx *c, size_t n);

/* lexer.c: tokenizes the whole template. On error returns the status with the
 * message set. *toks lives in `a`. */
air_status air_jinja_lex(const char *src, size_t len, jarena *a, jtok **toks, size_t *ntoks);

/* parser.c */
air_status air_jinja_parse_tokens(const jtok *toks, size_t n, jarena *a, jnode **root);

/* value.c: constructors */
static inline jv jv_undef(jstr *msg) {
    jv v = {.t = JV_UNDEF};
    v.u.s = msg;
    return v;
}
static inline jv jv_none(void) {
    return (jv){.t = JV_NONE};
}
static inline jv jv_bool(int b) {
    jv v = {.t = JV_BOOL};
    v.u.b = b ? 1 : 0;
    return v;
}
static inline jv jv_int(int64_t i) {
    jv v = {.t = JV_INT};
    v.u.i = i;
    return v;
}
static inline jv jv_float(double f) {
    jv v = {.t = JV_FLOAT};
    v.u.f = f;
    return v;
}
jstr *js_new(jctx *c, const char *s, size_t n);
jv jv_str(jctx *c, const char *s, size_t n);
jv jv_cstr(jctx *c, const char *s);
/* Moves a strbuf's text into a string value (frees the strbuf, even on error). */
jv jv_from_sb(jctx *c, air_strbuf *sb);
jv jv_strobj(jstr *s);
jv jv_list(jctx *c, size_t cap);
jv jv_dict(jctx *c, int kind);
void jl_push(jctx *c, jlist *l, jv v);
jv *jd_find(jdict *d, jv key);
jv *jd_findc(jdict *d, const char *key);
void jd_set(jctx *c, jdict *d, jv key, jv val);
void jd_setc(jctx *c, jdict *d, const char *key, jv val);
jv jv_undef_msg(jctx *c, const char *fmt, ...) AIR_PRINTF(2, 3);

/* value.c: semantics */
int jv_truthy(jv v);
int jv_equal(jv a, jv b);
/* Python ordering; fails (jx_fail) for unorderable types */
int jv_compare(jctx *c, const jnode *at, jv a, jv b);
const char *jv_type_name(jv v);                    /* "str", "int", "dict", ... */
void jv_write_str(jctx *c, air_strbuf *sb, jv v);  /* str(v) */
void jv_write_repr(jctx *c, air_strbuf *sb, jv v); /* repr(v) */
jstr *jv_to_jstr(jctx *c, jv v);                   /* str(v) as a new string */
void jv_write_float(air_strbuf *sb, double f);     /* Python repr(float) */
jv jv_from_cjson(jctx *c, const cJSON *j);
/* Iterates: lists, tuples, dict keys, string characters; undefined = empty. */
jlist *jv_iterable(jctx *c, const jnode *at, jv v);
size_t jv_length(jctx *c, const jnode *at, jv v);
void jx_sb(jctx *c, air_status st); /* fails on a strbuf error */

/* UTF-8 helpers (value.c) */
size_t ju_cplen(const char *s, size_t n);             /* number of code points */
size_t ju_offset(const char *s, size_t n, size_t cp); /* byte offset of code point */
int ju_decode(const char *s, size_t n, size_t *i);    /* next code point, advances */
void ju_encode(air_strbuf *sb, int cp);
int ju_isspace(int cp); /* Python str.isspace */
/* Python str.strip family; chars NULL = whitespace. which: 1 left, 2 right, 3 both */
jv ju_strip(jctx *c, jstr *s, jstr *chars, int which);
jv ju_case(jctx *c, jstr *s,
           int mode); /* 0 lower, 1 upper, 2 capitalize, 3 title(str), 4 title(filter) */

/* json.c */
typedef struct {
    const char *indent; /* NULL: one line */
    const char *item_sep, *key_sep;
    int sort_keys, ensure_ascii;
} jjson_opts;
/* Python json.dumps(v, ...) as transformers' tojson filter calls it. */
void jv_write_json(jctx *c, const jnode *at, air_strbuf *sb, jv v, const jjson_opts *o);

/* eval.c helpers used by filters */
/* A scratch string builder that is freed if an error unwinds: push, write to
 * c->out->sb, pop to get the string. */
air_strbuf *jx_cap_push(jctx *c);
jv jx_cap_pop(jctx *c);
jv jx_getattr(jctx *c, const jnode *at, jv obj, const char *name);
jv jx_getitem(jctx *c, const jnode *at, jv obj, jv key);
jv jx_call(jctx *c, const jnode *at, jv fn, jv *args, size_t nargs, const char **knames, jv *kvals,
           size_t nkw);
jv jx_binop(jctx *c, const jnode *at, int op, jv a, jv b);
jv jx_str_format(jctx *c, const jnode *at, jstr *fmt, jv args); /* "%s" % args */

/* filters.c */
jv jx_filter(jctx *c, const jnode *at, const char *name, jv v, jv *args, size_t nargs,
             const char **knames, jv *kvals, size_t nkw);
int jx_has_filter(const char *name);
/* predicates.c */
int jx_test(jctx *c, const jnode *at, const char *name, jv v, jv *args, size_t nargs);
int jx_has_test(const char *name);
/* methods.c: str/dict/list methods; returns 1 and sets *res when handled */
int jx_method(jctx *c, const jnode *at, jv self, const char *name, jv *args, size_t nargs,
              const char **knames, jv *kvals, size_t nkw, jv *res);
int jx_has_method(jv self, const char *name);

/* Argument helper: picks positional i or keyword `name`, else `def`. */
jv jx_arg(jv *args, size_t nargs, const char **knames, jv *kvals, size_t nkw, size_t i,
          const char *name, jv def);

#endif
