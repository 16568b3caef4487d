/*
 * lexer.c - splits Jinja template text into tokens.
 *
 * Input: the template text. Output: an array of tokens (TEXT between tags;
 * VAR_BEGIN/BLOCK_BEGIN, the expression tokens, VAR_END/BLOCK_END).
 * Comments are dropped and `{% raw %}` content becomes TEXT.
 *
 * Whitespace control follows Jinja2 with the settings transformers uses:
 *  - newlines are normalized to "\n" and one trailing newline is dropped;
 *  - `{%-`, `{{-`, `{#-` strip all whitespace before the tag, `-%}`, `-}}`,
 *    `-#}` all whitespace after it;
 *  - trim_blocks: the first newline after a block or comment tag is removed
 *    (not after `+%}`);
 *  - lstrip_blocks: spaces and tabs from the start of the line up to a block
 *    or comment tag are removed (not for `{%+` or `{{`).
 * Inside a tag, `%}` / `}}` only close it when brackets are balanced.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "text/jinja/jinja_int.h"

typedef struct {
    const char *s; /* normalized source */
    size_t n;
    size_t pos;
    /* position tracking for line/column */
    size_t lc_pos;
    int line, col;
    jarena *a;
    jtok *toks;
    size_t ntoks, cap;
    air_status st;
} lexer;

static void lc_to(lexer *L, size_t pos) {
    while (L->lc_pos < pos) {
        unsigned char ch = (unsigned char)L->s[L->lc_pos++];
        if (ch == '\n') {
            L->line++;
            L->col = 1;
        } else if ((ch & 0xC0) != 0x80) {
            L->col++;
        }
    }
}

static air_status lex_err(lexer *L, size_t pos, const char *msg, const char *detail) {
    lc_to(L, pos);
    return air_err(AIR_ERR_FORMAT, "template syntax error at line %d, column %d: %s%s", L->line,
                   L->col, msg, detail ? detail : "");
}

static jtok *push(lexer *L, int type, size_t pos) {
    if (L->ntoks == L->cap) {
        size_t cap = L->cap ? L->cap * 2 : 256;
        jtok *nt = ja_alloc(L->a, cap * sizeof(jtok));
        if (!nt)
            return NULL;
        if (L->ntoks)
            memcpy(nt, L->toks, L->ntoks * sizeof(jtok));
        L->toks = nt;
        L->cap = cap;
    }
    lc_to(L, pos);
    jtok *t = &L->toks[L->ntoks++];
    memset(t, 0, sizeof *t);
    t->type = type;
    t->line = L->line;
    t->col = L->col;
    return t;
}

/* Unicode whitespace (Python \s) at s[i]; returns its byte length or 0. */
static size_t ws_at(const char *s, size_t n, size_t i) {
    if (i >= n)
        return 0;
    size_t k = i;
    int cp = ju_decode(s, n, &k);
    return ju_isspace(cp) ? k - i : 0;
}

static size_t skip_ws(const char *s, size_t n, size_t i) {
    size_t w;
    while ((w = ws_at(s, n, i)) > 0)
        i += w;
    return i;
}

/* Applies `-` (strip all) or lstrip_blocks to text [b, e) before a tag. */
static size_t strip_before(lexer *L, size_t b, size_t e, char sign, int is_var, int line_starting) {
    if (sign == '-') {
        while (e > b) {
            size_t st = e - 1;
            while (st > b && ((unsigned char)L->s[st] & 0xC0) == 0x80)
                st--;
            if (ws_at(L->s, e, st) != e - st)
                break;
            e = st;
        }
        return e;
    }
    if (sign == '+' || is_var)
        return e;
    size_t lpos = b;
    for (size_t i = e; i > b; i--)
        if (L->s[i - 1] == '\n') {
            lpos = i;
            break;
        }
    if (lpos > b || line_starting) {
        if (lpos < e && skip_ws(L->s, e, lpos) == e)
            return lpos;
    }
    return e;
}

static int emit_text(lexer *L, size_t b, size_t e) {
    if (e <= b)
        return 1;
    jtok *t = push(L, TK_TEXT, b);
    if (!t)
        return 0;
    t->s = L->s + b;
    t->len = e - b;
    return 1;
}

static int starts(const lexer *L, size_t i, const char *lit) {
    size_t k = strlen(lit);
    return i + k <= L->n && memcmp(L->s + i, lit, k) == 0;
}

/* Matches a block end at i: `+%}` | `-%}\s*` | `%}\n?`. Returns end or 0. */
static size_t block_end_at(const lexer *L, size_t i, char close) {
    char e2[3] = {close, '}', 0};
    char p3[4] = {'+', close, '}', 0}, m3[4] = {'-', close, '}', 0};
    if (starts(L, i, p3))
        return i + 3;
    if (starts(L, i, m3))
        return skip_ws(L->s, L->n, i + 3);
    if (starts(L, i, e2))
        return i + 2 + (i + 2 < L->n && L->s[i + 2] == '\n');
    return 0;
}

static int is_digit(char c) {
    return c >= '0' && c <= '9';
}
static int is_name0(unsigned char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || c >= 0x80;
}
static int is_name(unsigned char c) {
    return is_name0(c) || is_digit((char)c);
}

/* digits with single underscores between them: (\d+_)*\d+ ; returns end or i */
static size_t digits(const lexer *L, size_t i) {
    size_t j = i;
    if (j >= L->n || !is_digit(L->s[j]))
        return i;
    while (j < L->n) {
        if (is_digit(L->s[j]))
            j++;
        else if (L->s[j] == '_' && j + 1 < L->n && is_digit(L->s[j + 1]))
            j++;
        else
            break;
    }
    return j;
}

static char *strip_us(lexer *L, size_t b, size_t e) {
    char *o = ja_alloc(L->a, e - b + 1);
    if (!o)
        return NULL;
    size_t k = 0;
    for (size_t i = b; i < e; i++)
        if (L->s[i] != '_')
            o[k++] = L->s[i];
    o[k] = 0;
    return o;
}

static int hexval(char c) {
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* Decodes a string literal body [b, e) with Python escapes into arena text. */
static int decode_string(lexer *L, size_t b, size_t e, jtok *t) {
    air_strbuf sb = {0};
    size_t i = b;
    while (i < e) {
        char ch = L->s[i];
        if (ch != '\\' || i + 1 >= e) {
            air_sb_putc(&sb, ch);
            i++;
            continue;
        }
        char x = L->s[i + 1];
        i += 2;
        switch (x) {
        case '\n':
            break;
        case '\\':
            air_sb_putc(&sb, '\\');
            break;
        case '\'':
            air_sb_putc(&sb, '\'');
            break;
        case '"':
            air_sb_putc(&sb, '"');
            break;
        case 'a':
            air_sb_putc(&sb, '\a');
            break;
        case 'b':
            air_sb_putc(&sb, '\b');
            break;
        case 'f':
            air_sb_putc(&sb, '\f');
            break;
        case 'n':
            air_sb_putc(&sb, '\n');
            break;
        case 'r':
            air_sb_putc(&sb, '\r');
            break;
        case 't':
            air_sb_putc(&sb, '\t');
            break;
        case 'v':
            air_sb_putc(&sb, '\v');
            break;
        case 'x':
        case 'u':
        case 'U': {
            int nd = x == 'x' ? 2 : x == 'u' ? 4 : 8;
            long cp = 0;
            for (int k = 0; k < nd; k++) {
                int h = i + (size_t)k < e ? hexval(L->s[i + (size_t)k]) : -1;
                if (h < 0) {
                    air_sb_free(&sb);
                    L->st =
                        lex_err(L, i - 2, "truncated \\", x == 'x' ? "xXX escape" : "uXXXX escape");
                    return 0;
                }
                cp = cp * 16 + h;
            }
            i += (size_t)nd;
            if (cp > 0x10FFFF) {
                air_sb_free(&sb);
                L->st = lex_err(L, i, "illegal Unicode character in string escape", NULL);
                return 0;
            }
            ju_encode(&sb, (int)cp);
            break;
        }
        default:
            if (x >= '0' && x <= '7') {
                int cp = x - '0', k = 0;
                while (k < 2 && i < e && L->s[i] >= '0' && L->s[i] <= '7') {
                    cp = cp * 8 + (L->s[i++] - '0');
                    k++;
                }
                ju_encode(&sb, cp);
            } else {
                air_sb_putc(&sb, '\\');
                i--; /* keep the character as it is */
            }
        }
    }
    char *o = ja_alloc(L->a, sb.len + 1);
    if (!o) {
        air_sb_free(&sb);
        return 0;
    }
    if (sb.len)
        memcpy(o, sb.data, sb.len);
    o[sb.len] = 0;
    t->s = o;
    t->len = sb.len;
    air_sb_free(&sb);
    return 1;
}

static const char *const OPS[] = {"//", "**", "==", "!=", ">=", "<=", "+", "-", "/",
                                  "*",  "%",  "~",  "[",  "]",  "(",  ")", "{", "}",
                                  ">",  "<",  "=",  ".",  ":",  "|",  ",", ";", NULL};

#define OOM()                                                                                      \
    do {                                                                                           \
        L->st = air_err(AIR_ERR_NOMEM, "out of memory while reading the template");                \
        return 0;                                                                                  \
    } while (0)

/* Lexes the inside of a {{ }} or {% %} tag starting at L->pos. Returns 1 and
 * sets L->pos past the end tag. */
static int lex_tag(lexer *L, char close, size_t tag_pos) {
    char stack[256];
    int depth = 0;
    for (;;) {
        size_t i = skip_ws(L->s, L->n, L->pos);
        L->pos = i;
        if (i >= L->n) {
            L->st =
                lex_err(L, tag_pos, "unexpected end of template: the tag opened here is not closed",
                        close == '%' ? " (missing '%}')" : " (missing '}}')");
            return 0;
        }
        if (depth == 0) {
            size_t e = block_end_at(L, i, close);
            if (e && (close == '%' || L->s[i] != '+')) {
                if (!push(L, close == '%' ? TK_BLOCK_END : TK_VAR_END, i))
                    OOM();
                if (close == '}') /* variables never trim the newline */
                    e = L->s[i] == '-' ? skip_ws(L->s, L->n, i + 3) : i + 2;
                L->pos = e;
                return 1;
            }
        }
        char ch = L->s[i];
        /* numbers: float first, then integer */
        if (is_digit(ch)) {
            size_t d = digits(L, i), j = d;
            int is_float = 0;
            int after_dot = i > 0 && L->s[i - 1] == '.'; /* x.0.y: no floats there */
            if (after_dot) {
                /* integer only */
            } else if (j < L->n && L->s[j] == '.' && digits(L, j + 1) > j + 1) {
                j = digits(L, j + 1);
                is_float = 1;
            }
            if (!after_dot && j < L->n && (L->s[j] == 'e' || L->s[j] == 'E')) {
                size_t k = j + 1;
                if (k < L->n && (L->s[k] == '+' || L->s[k] == '-'))
                    k++;
                if (digits(L, k) > k) {
                    j = digits(L, k);
                    is_float = 1;
                }
            }
            if (is_float) {
                jtok *t = push(L, TK_FLOAT, i);
                char *txt = t ? strip_us(L, i, j) : NULL;
                if (!txt)
                    OOM();
                t->f = strtod(txt, NULL);
                L->pos = j;
                continue;
            }
            /* integer: 0x / 0o / 0b prefixes, or decimal */
            int base = 10;
            size_t b = i;
            if (ch == '0' && i + 1 < L->n) {
                char p = (char)(L->s[i + 1] | 0x20);
                base = p == 'x' ? 16 : p == 'o' ? 8 : p == 'b' ? 2 : 10;
            }
            if (base != 10) {
                b = i + 2;
                j = b;
                while (j < L->n) {
                    int h = hexval(L->s[j]);
                    if (L->s[j] == '_' || (h >= 0 && h < base))
                        j++;
                    else
                        break;
                }
                if (j == b) {
                    base = 10;
                    j = i + 1;
                    b = i;
                }
            } else if (ch == '0') {
                j = i + 1;
                while (j < L->n &&
                       (L->s[j] == '0' || (L->s[j] == '_' && j + 1 < L->n && L->s[j + 1] == '0')))
                    j++;
            } else {
                j = d;
            }
            jtok *t = push(L, TK_INT, i);
            char *txt = t ? strip_us(L, b, j) : NULL;
            if (!txt)
                OOM();
            errno = 0;
            unsigned long long v = strtoull(txt, NULL, base);
            if (errno || v > (unsigned long long)INT64_MAX) {
                L->st = lex_err(L, i, "integer literal too large", NULL);
                return 0;
            }
            t->i = (int64_t)v;
            L->pos = j;
            continue;
        }
        if (is_name0((unsigned char)ch)) {
            size_t j = i;
            while (j < L->n && is_name((unsigned char)L->s[j]))
                j++;
            jtok *t = push(L, TK_NAME, i);
            char *txt = t ? ja_alloc(L->a, j - i + 1) : NULL;
            if (!txt)
                OOM();
            memcpy(txt, L->s + i, j - i);
            t->s = txt;
            t->len = j - i;
            L->pos = j;
            continue;
        }
        if (ch == '\'' || ch == '"') {
            size_t j = i + 1;
            while (j < L->n && L->s[j] != ch) {
                if (L->s[j] == '\\' && j + 1 < L->n)
                    j++;
                j++;
            }
            if (j >= L->n) {
                L->st = lex_err(L, i, "unterminated string literal", NULL);
                return 0;
            }
            jtok *t = push(L, TK_STRING, i);
            if (!t)
                OOM();
            if (!decode_string(L, i + 1, j, t)) {
                if (!L->st)
                    OOM();
                return 0;
            }
            L->pos = j + 1;
            continue;
        }
        const char *op = NULL;
        for (int k = 0; OPS[k]; k++)
            if (starts(L, i, OPS[k])) {
                op = OPS[k];
                break;
            }
        if (!op) {
            char d[48];
            snprintf(d, sizeof d, "'%c'", ch);
            L->st = lex_err(L, i, "unexpected character ", d);
            return 0;
        }
        if (op[0] == '(' || op[0] == '[' || op[0] == '{') {
            if (depth >= (int)sizeof stack) {
                L->st = lex_err(L, i, "brackets nested too deeply", NULL);
                return 0;
            }
            stack[depth++] = op[0] == '(' ? ')' : op[0] == '[' ? ']' : '}';
        } else if (op[0] == ')' || op[0] == ']' || op[0] == '}') {
            if (depth == 0) {
                char d[48];
                snprintf(d, sizeof d, "'%c'", op[0]);
                L->st = lex_err(L, i, "unexpected ", d);
                return 0;
            }
            if (stack[--depth] != op[0]) {
                char d[64];
                snprintf(d, sizeof d, "'%c', expected '%c'", op[0], stack[depth]);
                L->st = lex_err(L, i, "unexpected ", d);
                return 0;
            }
        }
        jtok *t = push(L, TK_OP, i);
        if (!t)
            OOM();
        t->s = op;
        t->len = strlen(op);
        L->pos = i + t->len;
    }
}

/* `{% raw %}` at `p` (after "{%" and sign)? Returns the end of the tag or 0. */
static size_t raw_begin(const lexer *L, size_t p) {
    size_t q = skip_ws(L->s, L->n, p);
    if (!starts(L, q, "raw"))
        return 0;
    q = skip_ws(L->s, L->n, q + 3);
    if (starts(L, q, "-%}"))
        return skip_ws(L->s, L->n, q + 3);
    if (starts(L, q, "%}"))
        return q + 2;
    return 0;
}

/* Finds `{% endraw %}` from p; sets *tag (its start), *sign and returns its end, or 0. */
static size_t raw_end(const lexer *L, size_t p, size_t *tag, char *sign) {
    for (size_t i = p; i + 1 < L->n; i++) {
        if (L->s[i] != '{' || L->s[i + 1] != '%')
            continue;
        size_t q = i + 2;
        char sg = 0;
        if (q < L->n && (L->s[q] == '-' || L->s[q] == '+'))
            sg = L->s[q++];
        q = skip_ws(L->s, L->n, q);
        if (!starts(L, q, "endraw"))
            continue;
        q = skip_ws(L->s, L->n, q + 6);
        size_t e = block_end_at(L, q, '%');
        if (!e)
            continue;
        *tag = i;
        *sign = sg;
        return e;
    }
    return 0;
}

air_status air_jinja_lex(const char *src, size_t len, jarena *a, jtok **toks, size_t *ntoks) {
    /* normalize newlines, drop one trailing newline */
    char *norm = ja_alloc(a, len + 1);
    if (!norm)
        return air_err(AIR_ERR_NOMEM, "out of memory while reading the template");
    size_t n = 0;
    for (size_t i = 0; i < len; i++) {
        if (src[i] == '\r') {
            norm[n++] = '\n';
            if (i + 1 < len && src[i + 1] == '\n')
                i++;
        } else
            norm[n++] = src[i];
    }
    if (n > 0 && norm[n - 1] == '\n')
        n--;
    norm[n] = 0;

    lexer Lx = {.s = norm, .n = n, .line = 1, .col = 1, .a = a};
    lexer *L = &Lx;
    int line_starting = 1;
    while (L->pos < n) {
        size_t idx = L->pos;
        const char *hit = NULL;
        while (idx + 1 < n) {
            hit = memchr(norm + idx, '{', n - 1 - idx);
            if (!hit)
                break;
            idx = (size_t)(hit - norm);
            char k = norm[idx + 1];
            if (k == '%' || k == '{' || k == '#')
                break;
            idx++;
            hit = NULL;
        }
        if (!hit) {
            if (!emit_text(L, L->pos, n))
                OOM();
            break;
        }
        char kind = norm[idx + 1];
        size_t p = idx + 2;
        char sign = 0;
        if (p < n && (norm[p] == '-' || norm[p] == '+'))
            sign = norm[p++];
        size_t rawe = kind == '%' ? raw_begin(L, p) : 0;
        size_t te = strip_before(L, L->pos, idx, sign, kind == '{', line_starting);
        if (!emit_text(L, L->pos, te))
            OOM();
        if (rawe) {
            size_t tag;
            char sg;
            size_t e = raw_end(L, rawe, &tag, &sg);
            if (!e)
                return lex_err(L, idx, "missing end of raw directive ({% endraw %})", NULL);
            /* raw content gets the same treatment as text before a tag */
            size_t ce = strip_before(L, rawe, tag, sg, 0, norm[rawe - 1] == '\n');
            if (!emit_text(L, rawe, ce))
                OOM();
            L->pos = e;
            line_starting = norm[e - 1] == '\n';
            continue;
        }
        if (kind == '#') {
            size_t e = 0;
            for (size_t j = p; j + 1 < n; j++) {
                if (starts(L, j, "+#}")) {
                    e = j + 3;
                    break;
                }
                if (starts(L, j, "-#}")) {
                    e = skip_ws(norm, n, j + 3);
                    break;
                }
                if (starts(L, j, "#}")) {
                    e = j + 2 + (j + 2 < n && norm[j + 2] == '\n');
                    break;
                }
            }
            if (!e)
                return lex_err(L, idx, "missing end of comment tag ('#}')", NULL);
            L->pos = e;
            line_starting = norm[e - 1] == '\n';
            continue;
        }
        if (!push(L, kind == '%' ? TK_BLOCK_BEGIN : TK_VAR_BEGIN, idx))
            OOM();
        L->pos = p;
        if (!lex_tag(L, kind == '%' ? '%' : '}', idx))
            return L->st;
        line_starting = norm[L->pos - 1] == '\n';
    }
    if (!push(L, TK_EOF, n))
        OOM();
    *toks = L->toks;
    *ntoks = L->ntoks;
    return AIR_OK;
}
