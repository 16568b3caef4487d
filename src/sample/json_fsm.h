/*
 * json_fsm.h - a byte-level pushdown automaton for JSON text whose top-level
 * value is an object, used by the JSON grammar (grammar.c) to decide which
 * tokens may come next.
 *
 * Data flow: the state starts before the opening brace; every byte of output
 * goes through air_jf_step(), which either accepts it (and moves the state)
 * or rejects it (the state is then meaningless). The state is a small plain
 * struct, so the token-mask search copies it freely: one copy per node of the
 * token trie.
 *
 * Rules (docs/json-mode.md has the full list):
 *   - RFC 8259 syntax; the text starts with '{' (no whitespace before it) and
 *     ends with the matching '}' (nothing after it);
 *   - at most AIR_JSON_MAX_DEPTH open containers, the top-level object
 *     included; an opening bracket beyond that is rejected;
 *   - at most AIR_JSON_MAX_WS consecutive whitespace bytes (space, \t, \n,
 *     \r) between tokens;
 *   - strings: no raw byte below 0x20, valid UTF-8 only (shortest forms, no
 *     surrogates, at most U+10FFFF; a character may be split across tokens),
 *     escapes \" \\ \/ \b \f \n \r \t \uXXXX where a \u escape of a high
 *     surrogate must be followed at once by a \u escape of a low surrogate
 *     and a lone low surrogate is rejected;
 *   - numbers: -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)? exactly.
 */
#ifndef AIR_SAMPLE_JSON_FSM_H
#define AIR_SAMPLE_JSON_FSM_H

#include <stddef.h>
#include <stdint.h>

#define AIR_JSON_MAX_DEPTH 32
#define AIR_JSON_MAX_WS 16

/* Lexical modes. */
enum {
    AIR_JF_START,     /* before '{' */
    AIR_JF_OBJ_FIRST, /* after '{': '"' or '}' */
    AIR_JF_OBJ_KEY,   /* after ',' in an object: '"' */
    AIR_JF_COLON,     /* after a key: ':' */
    AIR_JF_VALUE,     /* after ':' or ',' in an array: a value */
    AIR_JF_ARR_FIRST, /* after '[': a value or ']' */
    AIR_JF_AFTER,     /* after a value in a container: ',' or the closer */
    AIR_JF_STR,       /* inside a string (key: flag) */
    AIR_JF_ESC,       /* after '\' in a string */
    AIR_JF_HEX,       /* in \uXXXX, aux = hex digits left */
    AIR_JF_PAIR_BS,   /* after a high-surrogate escape: '\' */
    AIR_JF_PAIR_U,    /* ... then 'u' */
    AIR_JF_UTF8,      /* in a multi-byte character, aux = bytes left, next in [lo, hi] */
    AIR_JF_NUM_MINUS, /* after '-' */
    AIR_JF_NUM_ZERO,  /* integer part is "0" */
    AIR_JF_NUM_INT,   /* in [1-9][0-9]* */
    AIR_JF_NUM_DOT,   /* after '.' */
    AIR_JF_NUM_FRAC,  /* in the fraction digits */
    AIR_JF_NUM_E,     /* after 'e'/'E' */
    AIR_JF_NUM_ESIGN, /* after the exponent sign */
    AIR_JF_NUM_EXP,   /* in the exponent digits */
    AIR_JF_LIT,       /* in true/false/null: aux = literal * 8 + bytes matched */
    AIR_JF_DONE,      /* the top-level object is closed */
    AIR_JF_FAIL       /* a byte was rejected */
};

/* flags in HEX mode */
#define AIR_JF_HEX_LOW 1  /* this escape must be a low surrogate \uDC00-\uDFFF */
#define AIR_JF_HEX_D 2    /* first digit was 'D' (a surrogate if the next is 8-F) */
#define AIR_JF_HEX_HIGH 4 /* this escape is a high surrogate \uD800-\uDBFF */

typedef struct {
    uint8_t mode;   /* AIR_JF_* */
    uint8_t depth;  /* open containers */
    uint8_t ws;     /* consecutive whitespace bytes so far */
    uint8_t aux;    /* mode-specific counter */
    uint8_t lo, hi; /* UTF8: range of the next continuation byte */
    uint8_t key;    /* the string being read is an object key */
    uint8_t flags;  /* HEX: AIR_JF_HEX_* */
    uint32_t stack; /* bit d: the container at depth d (0 = outermost) is an array */
} air_json_fsm;

/* Outcome of checking a whole byte string. */
typedef enum {
    AIR_JSON_INVALID = 0,  /* some byte was rejected */
    AIR_JSON_PREFIX = 1,   /* accepted so far, but the object is not closed */
    AIR_JSON_COMPLETE = 2, /* one complete top-level object, nothing after it */
} air_json_result;

void air_jf_init(air_json_fsm *s);

/* Feeds n bytes; returns 1 if all were accepted, else 0 (mode becomes FAIL). */
int air_jf_feed(air_json_fsm *s, const uint8_t *bytes, size_t n);

/* Smallest number of bytes that completes the text from this state (each
 * byte of that shortest completion is one of: { " : 0 } ] \ u D C r e a l s
 * 0x80 0x90 0xA0). 0 when done; 255 after a rejection. */
int air_jf_min_close(const air_json_fsm *s);

/* Runs the automaton over a whole byte string. */
air_json_result air_json_check(const uint8_t *bytes, size_t n);

/* ------------------------------------------------------------------------- */
/* The step (inline: it runs once per trie node in the mask search)          */
/* ------------------------------------------------------------------------- */

static inline int air_jf_is_ws(unsigned c) {
    return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

static inline int air_jf_is_hex(unsigned c) {
    return (c >= '0' && c <= '9') || ((c | 0x20) >= 'a' && (c | 0x20) <= 'f');
}

/* Opens a container; 0 when that would exceed the depth limit. */
static inline int air_jf_push(air_json_fsm *s, int is_array) {
    if (s->depth >= AIR_JSON_MAX_DEPTH)
        return 0;
    if (is_array)
        s->stack |= (uint32_t)1 << s->depth;
    else
        s->stack &= ~((uint32_t)1 << s->depth);
    s->depth++;
    s->mode = is_array ? AIR_JF_ARR_FIRST : AIR_JF_OBJ_FIRST;
    return 1;
}

static inline void air_jf_pop(air_json_fsm *s) {
    s->depth--;
    s->mode = s->depth ? AIR_JF_AFTER : AIR_JF_DONE;
}

/* First byte of a value (mode VALUE or ARR_FIRST). */
static inline int air_jf_value_start(air_json_fsm *s, unsigned c) {
    switch (c) {
    case '"':
        s->mode = AIR_JF_STR;
        s->key = 0;
        return 1;
    case '{':
        return air_jf_push(s, 0);
    case '[':
        return air_jf_push(s, 1);
    case '-':
        s->mode = AIR_JF_NUM_MINUS;
        return 1;
    case '0':
        s->mode = AIR_JF_NUM_ZERO;
        return 1;
    case 't':
        s->mode = AIR_JF_LIT;
        s->aux = 0 * 8 + 1;
        return 1;
    case 'f':
        s->mode = AIR_JF_LIT;
        s->aux = 1 * 8 + 1;
        return 1;
    case 'n':
        s->mode = AIR_JF_LIT;
        s->aux = 2 * 8 + 1;
        return 1;
    default:
        if (c >= '1' && c <= '9') {
            s->mode = AIR_JF_NUM_INT;
            return 1;
        }
        return 0;
    }
}

/* Accepts byte c or returns 0. */
static inline int air_jf_step(air_json_fsm *s, unsigned c) {
    static const char lits[3][6] = {"true", "false", "null"};
    if (air_jf_is_ws(c)) {
        switch (s->mode) {
        case AIR_JF_NUM_ZERO:
        case AIR_JF_NUM_INT:
        case AIR_JF_NUM_FRAC:
        case AIR_JF_NUM_EXP:
            s->mode = AIR_JF_AFTER; /* whitespace ends a number */
            s->ws = 0;
            /* fall through */
        case AIR_JF_OBJ_FIRST:
        case AIR_JF_OBJ_KEY:
        case AIR_JF_COLON:
        case AIR_JF_VALUE:
        case AIR_JF_ARR_FIRST:
        case AIR_JF_AFTER:
            if (s->ws >= AIR_JSON_MAX_WS)
                return 0;
            s->ws++;
            return 1;
        default:
            break; /* strings reject raw \t \n \r below; others reject */
        }
    }
    switch (s->mode) {
    case AIR_JF_START:
        return c == '{' && air_jf_push(s, 0);
    case AIR_JF_OBJ_FIRST:
        s->ws = 0;
        if (c == '}') {
            air_jf_pop(s);
            return 1;
        }
        /* fall through */
    case AIR_JF_OBJ_KEY:
        s->ws = 0;
        if (c != '"')
            return 0;
        s->mode = AIR_JF_STR;
        s->key = 1;
        return 1;
    case AIR_JF_COLON:
        s->ws = 0;
        if (c != ':')
            return 0;
        s->mode = AIR_JF_VALUE;
        return 1;
    case AIR_JF_ARR_FIRST:
        s->ws = 0;
        if (c == ']') {
            air_jf_pop(s);
            return 1;
        }
        return air_jf_value_start(s, c);
    case AIR_JF_VALUE:
        s->ws = 0;
        return air_jf_value_start(s, c);
    case AIR_JF_STR:
        if (c == '"') {
            s->mode = s->key ? AIR_JF_COLON : AIR_JF_AFTER;
            s->ws = 0;
            return 1;
        }
        if (c == '\\') {
            s->mode = AIR_JF_ESC;
            return 1;
        }
        if (c < 0x80)
            return c >= 0x20;
        /* lead byte of a multi-byte character (RFC 3629 table) */
        s->lo = 0x80;
        s->hi = 0xBF;
        if (c >= 0xC2 && c <= 0xDF) {
            s->aux = 1;
        } else if (c >= 0xE0 && c <= 0xEF) {
            s->aux = 2;
            if (c == 0xE0)
                s->lo = 0xA0;
            else if (c == 0xED)
                s->hi = 0x9F;
        } else if (c >= 0xF0 && c <= 0xF4) {
            s->aux = 3;
            if (c == 0xF0)
                s->lo = 0x90;
            else if (c == 0xF4)
                s->hi = 0x8F;
        } else {
            return 0;
        }
        s->mode = AIR_JF_UTF8;
        return 1;
    case AIR_JF_UTF8:
        if (c < s->lo || c > s->hi)
            return 0;
        s->lo = 0x80;
        s->hi = 0xBF;
        if (--s->aux == 0)
            s->mode = AIR_JF_STR;
        return 1;
    case AIR_JF_ESC:
        switch (c) {
        case '"':
        case '\\':
        case '/':
        case 'b':
        case 'f':
        case 'n':
        case 'r':
        case 't':
            s->mode = AIR_JF_STR;
            return 1;
        case 'u':
            s->mode = AIR_JF_HEX;
            s->aux = 4;
            s->flags = 0;
            return 1;
        default:
            return 0;
        }
    case AIR_JF_HEX: {
        if (!air_jf_is_hex(c))
            return 0;
        unsigned lc = c | 0x20; /* lower case for letters; digits unchanged */
        if (s->aux == 4) {
            if (lc == 'd')
                s->flags |= AIR_JF_HEX_D;
            else if (s->flags & AIR_JF_HEX_LOW)
                return 0;
        } else if (s->aux == 3) {
            int hi_half = lc >= 'a' || c == '8' || c == '9'; /* 8-F */
            if (s->flags & AIR_JF_HEX_LOW) {
                if (!(lc >= 'c' && lc <= 'f'))
                    return 0;
            } else if ((s->flags & AIR_JF_HEX_D) && hi_half) {
                if (lc >= 'c')
                    return 0; /* lone low surrogate */
                s->flags |= AIR_JF_HEX_HIGH;
            }
        }
        if (--s->aux == 0)
            s->mode = (s->flags & AIR_JF_HEX_HIGH) ? AIR_JF_PAIR_BS : AIR_JF_STR;
        return 1;
    }
    case AIR_JF_PAIR_BS:
        if (c != '\\')
            return 0;
        s->mode = AIR_JF_PAIR_U;
        return 1;
    case AIR_JF_PAIR_U:
        if (c != 'u')
            return 0;
        s->mode = AIR_JF_HEX;
        s->aux = 4;
        s->flags = AIR_JF_HEX_LOW;
        return 1;
    case AIR_JF_NUM_MINUS:
        if (c == '0')
            s->mode = AIR_JF_NUM_ZERO;
        else if (c >= '1' && c <= '9')
            s->mode = AIR_JF_NUM_INT;
        else
            return 0;
        return 1;
    case AIR_JF_NUM_DOT:
        if (c < '0' || c > '9')
            return 0;
        s->mode = AIR_JF_NUM_FRAC;
        return 1;
    case AIR_JF_NUM_E:
        if (c == '+' || c == '-') {
            s->mode = AIR_JF_NUM_ESIGN;
            return 1;
        }
        /* fall through */
    case AIR_JF_NUM_ESIGN:
        if (c < '0' || c > '9')
            return 0;
        s->mode = AIR_JF_NUM_EXP;
        return 1;
    case AIR_JF_NUM_INT:
    case AIR_JF_NUM_FRAC:
    case AIR_JF_NUM_EXP:
        if (c >= '0' && c <= '9')
            return 1;
        /* fall through */
    case AIR_JF_NUM_ZERO:
        if (s->mode != AIR_JF_NUM_EXP) {
            if (c == '.' && s->mode != AIR_JF_NUM_FRAC) {
                s->mode = AIR_JF_NUM_DOT;
                return 1;
            }
            if (c == 'e' || c == 'E') {
                s->mode = AIR_JF_NUM_E;
                return 1;
            }
        }
        s->mode = AIR_JF_AFTER; /* the number ended: c must follow a value */
        s->ws = 0;
        /* fall through */
    case AIR_JF_AFTER:
        s->ws = 0;
        if (c == ',') {
            s->mode = (s->stack >> (s->depth - 1) & 1) ? AIR_JF_VALUE : AIR_JF_OBJ_KEY;
            return 1;
        }
        if (c == (((s->stack >> (s->depth - 1)) & 1) ? ']' : '}')) {
            air_jf_pop(s);
            return 1;
        }
        return 0;
    case AIR_JF_LIT: {
        const char *l = lits[s->aux >> 3];
        unsigned k = s->aux & 7;
        if (c != (unsigned char)l[k])
            return 0;
        s->aux++;
        if (l[k + 1] == 0) {
            s->mode = AIR_JF_AFTER;
            s->ws = 0;
        }
        return 1;
    }
    default: /* DONE, FAIL */
        return 0;
    }
}

#endif
