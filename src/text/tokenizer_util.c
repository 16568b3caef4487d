/*
 * tokenizer_util.c - building blocks of the tokenizer: an arena, growable
 * vectors, UTF-8 helpers and the Unicode properties HF's Rust code uses,
 * hash maps (string -> id, id pair -> merge), and regex/literal patterns with
 * the match-iteration semantics of HF's `Pattern::find_matches` on onig.
 */
#include <stdlib.h>
#include <string.h>
#include <utf8proc.h>
#include <xxhash.h>

#include "text/tokenizer_internal.h"

/* ========================================================================= */
/* Arena                                                                      */
/* ========================================================================= */
struct tk_arena_chunk {
    tk_arena_chunk *next;
    size_t used, cap;
    _Alignas(16) unsigned char data[];
};

void *tk_arena_alloc(tk_arena *a, size_t n) {
    n = (n + 15) & ~(size_t)15;
    tk_arena_chunk *c = a->head;
    if (!c || c->cap - c->used < n) {
        size_t cap = n > ((size_t)1 << 20) ? n : ((size_t)1 << 20);
        c = malloc(sizeof *c + cap);
        if (!c)
            return NULL;
        c->cap = cap;
        c->used = 0;
        c->next = a->head;
        a->head = c;
    }
    void *p = c->data + c->used;
    c->used += n;
    return p;
}

char *tk_arena_strdup(tk_arena *a, const char *s, size_t n) {
    char *p = tk_arena_alloc(a, n + 1);
    if (!p)
        return NULL;
    if (n)
        memcpy(p, s, n);
    p[n] = 0;
    return p;
}

void tk_arena_free(tk_arena *a) {
    tk_arena_chunk *c = a->head;
    while (c) {
        tk_arena_chunk *nx = c->next;
        free(c);
        c = nx;
    }
    a->head = NULL;
}

/* ========================================================================= */
/* Vectors                                                                    */
/* ========================================================================= */
int tk_ids_push(tk_ids *a, int32_t x) {
    if (a->n == a->cap) {
        size_t cap = a->cap ? a->cap * 2 : 64;
        int32_t *v = realloc(a->v, cap * sizeof *v);
        if (!v)
            return -1;
        a->v = v;
        a->cap = cap;
    }
    a->v[a->n++] = x;
    return 0;
}

int tk_ids_append(tk_ids *a, const int32_t *x, size_t n) {
    if (a->n + n > a->cap) {
        size_t cap = a->cap ? a->cap : 64;
        while (cap < a->n + n)
            cap *= 2;
        int32_t *v = realloc(a->v, cap * sizeof *v);
        if (!v)
            return -1;
        a->v = v;
        a->cap = cap;
    }
    if (n)
        memcpy(a->v + a->n, x, n * sizeof *x);
    a->n += n;
    return 0;
}

int tk_bytes_reserve(tk_bytes *b, size_t extra) {
    if (b->n + extra + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap < b->n + extra + 1)
            cap *= 2;
        char *p = realloc(b->p, cap);
        if (!p)
            return -1;
        b->p = p;
        b->cap = cap;
    }
    return 0;
}

int tk_bytes_append(tk_bytes *b, const void *s, size_t n) {
    if (tk_bytes_reserve(b, n))
        return -1;
    if (n)
        memcpy(b->p + b->n, s, n);
    b->n += n;
    b->p[b->n] = 0;
    return 0;
}

/* ========================================================================= */
/* UTF-8                                                                      */
/* ========================================================================= */
int tk_utf8_encode(uint32_t cp, char *out) {
    if (cp < 0x80) {
        out[0] = (char)cp;
        return 1;
    }
    if (cp < 0x800) {
        out[0] = (char)(0xC0 | (cp >> 6));
        out[1] = (char)(0x80 | (cp & 0x3F));
        return 2;
    }
    if (cp < 0x10000) {
        out[0] = (char)(0xE0 | (cp >> 12));
        out[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
        out[2] = (char)(0x80 | (cp & 0x3F));
        return 3;
    }
    out[0] = (char)(0xF0 | (cp >> 18));
    out[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
    out[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
    out[3] = (char)(0x80 | (cp & 0x3F));
    return 4;
}

/* Length of the valid sequence at s[i..n) (1..4), or 0 if invalid; *bad is
 * then the length of the maximal subpart to replace by one U+FFFD. */
static int utf8_seq(const unsigned char *s, size_t n, size_t i, int *bad) {
    unsigned c = s[i];
    if (c < 0x80)
        return 1;
    int need;
    unsigned lo = 0x80, hi = 0xBF;
    if (c >= 0xC2 && c <= 0xDF)
        need = 1;
    else if (c >= 0xE0 && c <= 0xEF) {
        need = 2;
        if (c == 0xE0)
            lo = 0xA0;
        else if (c == 0xED)
            hi = 0x9F;
    } else if (c >= 0xF0 && c <= 0xF4) {
        need = 3;
        if (c == 0xF0)
            lo = 0x90;
        else if (c == 0xF4)
            hi = 0x8F;
    } else {
        *bad = 1;
        return 0;
    }
    for (int k = 1; k <= need; k++) {
        if (i + (size_t)k >= n) {
            *bad = k;
            return 0;
        }
        unsigned d = s[i + (size_t)k];
        unsigned l = k == 1 ? lo : 0x80, h = k == 1 ? hi : 0xBF;
        if (d < l || d > h) {
            *bad = k;
            return 0;
        }
    }
    return need + 1;
}

size_t tk_utf8_valid_prefix(const unsigned char *s, size_t n) {
    size_t i = 0;
    while (i < n) {
        /* fast ASCII run */
        while (i + 8 <= n) {
            uint64_t w;
            memcpy(&w, s + i, 8);
            if (w & 0x8080808080808080ULL)
                break;
            i += 8;
        }
        if (i >= n)
            break;
        if (s[i] < 0x80) {
            i++;
            continue;
        }
        int bad = 0;
        int l = utf8_seq(s, n, i, &bad);
        if (!l)
            return i;
        i += (size_t)l;
    }
    return n;
}

int tk_utf8_lossy_append(tk_bytes *out, const char *str, size_t n) {
    const unsigned char *s = (const unsigned char *)str;
    size_t i = 0;
    while (i < n) {
        size_t v = tk_utf8_valid_prefix(s + i, n - i);
        if (tk_bytes_append(out, s + i, v))
            return -1;
        i += v;
        if (i >= n)
            break;
        int bad = 1;
        utf8_seq(s, n, i, &bad);
        if (tk_bytes_append(out, "\xEF\xBF\xBD", 3))
            return -1;
        i += (size_t)bad;
    }
    return 0;
}

/* ========================================================================= */
/* Unicode properties                                                         */
/* ========================================================================= */
int tk_is_whitespace(uint32_t c) {
    if (c <= 0x20)
        return c == 0x20 || (c >= 0x09 && c <= 0x0D);
    if (c < 0x85)
        return 0;
    return c == 0x85 || c == 0xA0 || c == 0x1680 || (c >= 0x2000 && c <= 0x200A) || c == 0x2028 ||
           c == 0x2029 || c == 0x202F || c == 0x205F || c == 0x3000;
}

int tk_is_numeric(uint32_t c) {
    if (c < 0x80)
        return c >= '0' && c <= '9';
    utf8proc_category_t k = utf8proc_category((utf8proc_int32_t)c);
    return k == UTF8PROC_CATEGORY_ND || k == UTF8PROC_CATEGORY_NL || k == UTF8PROC_CATEGORY_NO;
}

int tk_is_punctuation(uint32_t c) {
    if (c < 0x80)
        return (c >= 0x21 && c <= 0x2F) || (c >= 0x3A && c <= 0x40) || (c >= 0x5B && c <= 0x60) ||
               (c >= 0x7B && c <= 0x7E);
    utf8proc_category_t k = utf8proc_category((utf8proc_int32_t)c);
    return k >= UTF8PROC_CATEGORY_PC && k <= UTF8PROC_CATEGORY_PO;
}

int tk_is_word(uint32_t c) {
    if (c < 0x80)
        return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
               c == '_';
    if (c == 0x200C || c == 0x200D)
        return 1;
    /* Other_Alphabetic symbols (circled / squared letters) */
    if ((c >= 0x24B6 && c <= 0x24E9) || (c >= 0x1F130 && c <= 0x1F149) ||
        (c >= 0x1F150 && c <= 0x1F169) || (c >= 0x1F170 && c <= 0x1F189))
        return 1;
    utf8proc_category_t k = utf8proc_category((utf8proc_int32_t)c);
    switch (k) {
    case UTF8PROC_CATEGORY_LU:
    case UTF8PROC_CATEGORY_LL:
    case UTF8PROC_CATEGORY_LT:
    case UTF8PROC_CATEGORY_LM:
    case UTF8PROC_CATEGORY_LO:
    case UTF8PROC_CATEGORY_MN:
    case UTF8PROC_CATEGORY_MC:
    case UTF8PROC_CATEGORY_ME:
    case UTF8PROC_CATEGORY_ND:
    case UTF8PROC_CATEGORY_NL:
    case UTF8PROC_CATEGORY_PC:
        return 1;
    default:
        return 0;
    }
}

/* ========================================================================= */
/* GPT-2 byte <-> char map                                                    */
/* ========================================================================= */
static int is_printable_byte(unsigned b) {
    return (b >= 0x21 && b <= 0x7E) || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE);
}

/* The 68 non-printable bytes, in order, map to U+0100 + their rank. */
uint32_t tk_byte_to_char(unsigned char b) {
    if (is_printable_byte(b))
        return b;
    unsigned rank = b <= 0x20 ? b : b <= 0xA0 ? 33u + (b - 0x7Fu) : 67u; /* 0xAD */
    return 256 + rank;
}

int tk_char_to_byte(uint32_t cp) {
    if (cp < 256)
        return is_printable_byte(cp) ? (int)cp : -1;
    if (cp >= 256 + 68)
        return -1;
    unsigned r = cp - 256;
    return r <= 32 ? (int)r : r <= 66 ? (int)(0x7F + (r - 33)) : 0xAD;
}

/* ========================================================================= */
/* String map                                                                 */
/* ========================================================================= */
static inline uint32_t make_hl(uint32_t h, size_t n) {
    return (h & 0xFFFFF000u) | (uint32_t)(n < 4095 ? n : 4095);
}

static inline const char *slot_key(const tk_strslot *s, size_t *n) {
    size_t l = s->hl & 4095u;
    if (l <= 8) {
        *n = l;
        return s->k.in;
    }
    *n = l < 4095 ? l : strlen(s->k.p);
    return s->k.p;
}

static inline int slot_eq(const tk_strslot *s, uint32_t hl, const char *k, size_t n) {
    if (s->hl != hl)
        return 0;
    if (n <= 8)
        return memcmp(s->k.in, k, n) == 0;
    if (n < 4095)
        return memcmp(s->k.p, k, n) == 0;
    return strlen(s->k.p) == n && memcmp(s->k.p, k, n) == 0; /* long keys: NUL-terminated */
}

int tk_strmap_init(tk_strmap *m, size_t expected) {
    uint32_t cap = 16;
    while (cap * 5 < expected * 8 + 16) /* load factor <= 0.625 */
        cap *= 2;
    m->slots = calloc(cap, sizeof *m->slots);
    if (!m->slots)
        return -1;
    m->mask = cap - 1;
    m->count = 0;
    return 0;
}

static int strmap_grow(tk_strmap *m) {
    tk_strmap n;
    if (tk_strmap_init(&n, (size_t)(m->mask + 1)))
        return -1;
    for (uint32_t i = 0; i <= m->mask; i++) {
        tk_strslot *s = &m->slots[i];
        if (!s->v1)
            continue;
        size_t kn;
        const char *k = slot_key(s, &kn);
        uint32_t j = (uint32_t)XXH3_64bits(k, kn) & n.mask;
        while (n.slots[j].v1)
            j = (j + 1) & n.mask;
        n.slots[j] = *s;
    }
    n.count = m->count;
    free(m->slots);
    *m = n;
    return 0;
}

int tk_strmap_put(tk_strmap *m, const char *k, size_t kn, int32_t v) {
    if (!m->slots && tk_strmap_init(m, 16))
        return -1;
    if ((m->count + 1) * 8 > (m->mask + 1) * 5 && strmap_grow(m))
        return -1;
    uint32_t h = (uint32_t)XXH3_64bits(k, kn), hl = make_hl(h, kn);
    uint32_t i = h & m->mask;
    for (;;) {
        tk_strslot *s = &m->slots[i];
        if (!s->v1) {
            if (kn <= 8) {
                memset(s->k.in, 0, 8);
                memcpy(s->k.in, k, kn);
            } else
                s->k.p = k;
            s->hl = hl;
            s->v1 = v + 1;
            m->count++;
            return 0;
        }
        if (slot_eq(s, hl, k, kn)) {
            s->v1 = v + 1;
            return 0;
        }
        i = (i + 1) & m->mask;
    }
}

int32_t tk_strmap_get(const tk_strmap *m, const char *k, size_t kn) {
    if (!m->slots)
        return -1;
    uint32_t h = (uint32_t)XXH3_64bits(k, kn), hl = make_hl(h, kn);
    uint32_t i = h & m->mask;
    for (;;) {
        const tk_strslot *s = &m->slots[i];
        if (!s->v1)
            return -1;
        if (slot_eq(s, hl, k, kn))
            return s->v1 - 1;
        i = (i + 1) & m->mask;
    }
}

void tk_strmap_prefetch(const tk_strmap *m, const char *k, size_t kn) {
    if (m->slots)
        __builtin_prefetch(&m->slots[(uint32_t)XXH3_64bits(k, kn) & m->mask]);
}

void tk_strmap_free(tk_strmap *m) {
    free(m->slots);
    m->slots = NULL;
    m->count = 0;
}

/* ========================================================================= */
/* Pair map                                                                   */
/* ========================================================================= */
int tk_pairmap_init(tk_pairmap *m, size_t expected) {
    uint32_t cap = 16;
    while (cap < expected * 2 + 16)
        cap *= 2;
    m->slots = malloc(cap * sizeof *m->slots);
    if (!m->slots)
        return -1;
    for (uint32_t i = 0; i < cap; i++)
        m->slots[i].key = UINT64_MAX;
    m->mask = cap - 1;
    m->count = 0;
    return 0;
}

static int pairmap_grow(tk_pairmap *m) {
    tk_pairmap n;
    if (tk_pairmap_init(&n, (size_t)(m->mask + 1)))
        return -1;
    for (uint32_t i = 0; i <= m->mask; i++) {
        const tk_pairslot *s = &m->slots[i];
        if (s->key == UINT64_MAX)
            continue;
        uint32_t j = tk_pair_hash(s->key) & n.mask;
        while (n.slots[j].key != UINT64_MAX)
            j = (j + 1) & n.mask;
        n.slots[j] = *s;
    }
    n.count = m->count;
    tk_pairmap_free(m);
    *m = n;
    return 0;
}

int tk_pairmap_put(tk_pairmap *m, int32_t a, int32_t b, int32_t rank, int32_t newid) {
    if (!m->slots && tk_pairmap_init(m, 16))
        return -1;
    if ((m->count + 1) * 2 > m->mask + 1 && pairmap_grow(m))
        return -1;
    uint64_t k = ((uint64_t)(uint32_t)a << 32) | (uint32_t)b;
    uint32_t i = tk_pair_hash(k) & m->mask;
    while (m->slots[i].key != UINT64_MAX && m->slots[i].key != k)
        i = (i + 1) & m->mask;
    if (m->slots[i].key == UINT64_MAX)
        m->count++;
    m->slots[i].key = k;
    m->slots[i].rank = rank;
    m->slots[i].newid = newid;
    return 0;
}

void tk_pairmap_free(tk_pairmap *m) {
    free(m->slots);
    m->slots = NULL;
    m->count = 0;
}

/* ========================================================================= */
/* Patterns                                                                   */
/* ========================================================================= */
/* HF compiles Split/Replace regexes with Oniguruma, whose Unicode \s is the
 * White_Space property (PCRE2's also has U+180E) and whose \w is Alphabetic |
 * Mark | Nd | Pc | Join_Control (PCRE2 10.42's is L | N | _). Rewrite these
 * escapes into explicit classes so PCRE2 matches what onig matches. \S and
 * \W inside a character class cannot be expanded and are left as they are. */
#define ONIG_SPACE                                                                                 \
    "\\t\\n\\x0b\\f\\r\\x20\\x85\\xa0\\x{1680}\\x{2000}-\\x{200a}\\x{2028}\\x{2029}\\x{202f}\\x{"  \
    "205f}\\x{3000}"
#define ONIG_WORD "\\p{Alphabetic}\\p{M}\\p{Nd}\\p{Pc}\\p{Join_Control}"

static char *onig_compat(const char *src, size_t n, size_t *out_len) {
    tk_bytes b = {0};
    int in_class = 0, quoted = 0;
    for (size_t i = 0; i < n; i++) {
        char c = src[i];
        if (quoted) { /* \Q ... \E */
            if (c == '\\' && i + 1 < n && src[i + 1] == 'E') {
                quoted = 0;
                if (tk_bytes_append(&b, "\\E", 2))
                    goto oom;
                i++;
                continue;
            }
            if (tk_bytes_append(&b, &c, 1))
                goto oom;
            continue;
        }
        if (c == '\\' && i + 1 < n) {
            char e = src[i + 1];
            const char *rep = NULL;
            if (e == 's')
                rep = in_class ? ONIG_SPACE : "[" ONIG_SPACE "]";
            else if (e == 'S' && !in_class)
                rep = "[^" ONIG_SPACE "]";
            else if (e == 'w')
                rep = in_class ? ONIG_WORD : "[" ONIG_WORD "]";
            else if (e == 'W' && !in_class)
                rep = "[^" ONIG_WORD "]";
            if (e == 'Q')
                quoted = 1;
            /* \p{X} / \P{X} with X one of tk_onig_classes: add the code points
             * newer Unicode versions assigned to X (Oniguruma has them) */
            if ((e == 'p' || (e == 'P' && !in_class)) && i + 4 < n && src[i + 2] == '{' &&
                src[i + 4] == '}' && src[i + 3] && strchr(tk_onig_classes, src[i + 3])) {
                const char *extra =
                    tk_onig_extra[strchr(tk_onig_classes, src[i + 3]) - tk_onig_classes];
                char prop[8] = {'\\', 'p', '{', src[i + 3], '}', 0};
                int bad = 0;
                if (!in_class)
                    bad |= tk_bytes_append(&b, e == 'P' ? "[^" : "[", e == 'P' ? 2 : 1);
                bad |= tk_bytes_append(&b, prop, 5);
                bad |= tk_bytes_append(&b, extra, strlen(extra));
                if (!in_class)
                    bad |= tk_bytes_append(&b, "]", 1);
                if (bad)
                    goto oom;
                i += 4;
                continue;
            }
            if (rep) {
                if (tk_bytes_append(&b, rep, strlen(rep)))
                    goto oom;
            } else if (tk_bytes_append(&b, src + i, 2))
                goto oom;
            i++;
            continue;
        }
        if (!in_class && c == '[') {
            in_class = 1;
            if (tk_bytes_append(&b, &c, 1))
                goto oom;
            /* a ']' right after '[' or '[^' is literal */
            if (i + 1 < n && src[i + 1] == '^') {
                if (tk_bytes_append(&b, "^", 1))
                    goto oom;
                i++;
            }
            if (i + 1 < n && src[i + 1] == ']') {
                if (tk_bytes_append(&b, "]", 1))
                    goto oom;
                i++;
            }
            continue;
        }
        if (in_class && c == ']')
            in_class = 0;
        if (tk_bytes_append(&b, &c, 1))
            goto oom;
    }
    if (tk_bytes_append(&b, "", 0))
        goto oom;
    *out_len = b.n;
    return b.p;
oom:
    free(b.p);
    return NULL;
}

air_status tk_pattern_init(tk_pattern *p, const char *src, size_t n, int is_regex,
                           const char *where) {
    memset(p, 0, sizeof *p);
    if (!is_regex) {
        p->lit = malloc(n + 1);
        if (!p->lit)
            return air_err(AIR_ERR_NOMEM, "out of memory");
        memcpy(p->lit, src, n);
        p->lit[n] = 0;
        p->lit_len = n;
        return AIR_OK;
    }
    int ec;
    PCRE2_SIZE eo;
    size_t cn;
    char *conv = onig_compat(src, n, &cn);
    if (!conv)
        return air_err(AIR_ERR_NOMEM, "out of memory");
    /* Oniguruma's default (Ruby) syntax: ^ and $ are line anchors, a line
     * ends at \n only, and . matches anything but \n */
    pcre2_compile_context *cc = pcre2_compile_context_create(NULL);
    if (!cc) {
        free(conv);
        return air_err(AIR_ERR_NOMEM, "out of memory");
    }
    pcre2_set_newline(cc, PCRE2_NEWLINE_LF);
    p->code =
        pcre2_compile((PCRE2_SPTR)conv, cn, PCRE2_UTF | PCRE2_UCP | PCRE2_MULTILINE, &ec, &eo, cc);
    pcre2_compile_context_free(cc);
    free(conv);
    if (!p->code) {
        PCRE2_UCHAR msg[256];
        pcre2_get_error_message(ec, msg, sizeof msg);
        return air_err(AIR_ERR_UNSUPPORTED, "%s: cannot compile regex /%.*s/ at offset %zu: %s",
                       where, (int)(n > 200 ? 200 : n), src, (size_t)eo, (const char *)msg);
    }
    p->jit = pcre2_jit_compile(p->code, PCRE2_JIT_COMPLETE) == 0;
    return AIR_OK;
}

void tk_pattern_free(tk_pattern *p) {
    if (p->code)
        pcre2_code_free(p->code);
    free(p->lit);
    memset(p, 0, sizeof *p);
}

void tk_matcher_free(tk_matcher *m) {
    if (m->md)
        pcre2_match_data_free(m->md);
    if (m->mctx)
        pcre2_match_context_free(m->mctx);
    if (m->jstack)
        pcre2_jit_stack_free(m->jstack);
    memset(m, 0, sizeof *m);
}

static int spans_push(tk_spans *o, size_t s, size_t e, int match) {
    if (o->n == o->cap) {
        size_t cap = o->cap ? o->cap * 2 : 64;
        tk_span *v = realloc(o->v, cap * sizeof *v);
        if (!v)
            return -1;
        o->v = v;
        o->cap = cap;
    }
    o->v[o->n].s = s;
    o->v[o->n].e = e;
    o->v[o->n].match = match;
    o->n++;
    return 0;
}

/* One search from `start`: 1 found, 0 none, <0 error status. */
static int regex_search(const tk_pattern *p, tk_matcher *mt, const char *s, size_t n, size_t start,
                        size_t *ms, size_t *me) {
    if (!mt->md) {
        mt->md = pcre2_match_data_create(4, NULL);
        if (!mt->md)
            return -AIR_ERR_NOMEM;
    }
    int rc = pcre2_match(p->code, (PCRE2_SPTR)s, n, start, PCRE2_NO_UTF_CHECK, mt->md, mt->mctx);
    if (rc == PCRE2_ERROR_JIT_STACKLIMIT) {
        /* a long run needs more JIT stack: retry with a large one */
        if (!mt->mctx)
            mt->mctx = pcre2_match_context_create(NULL);
        if (!mt->jstack)
            mt->jstack = pcre2_jit_stack_create(64 * 1024, 64 * 1024 * 1024, NULL);
        if (!mt->mctx || !mt->jstack)
            return -AIR_ERR_NOMEM;
        pcre2_jit_stack_assign(mt->mctx, NULL, mt->jstack);
        rc = pcre2_match(p->code, (PCRE2_SPTR)s, n, start, PCRE2_NO_UTF_CHECK, mt->md, mt->mctx);
        if (rc == PCRE2_ERROR_JIT_STACKLIMIT) /* interpreter as the last resort */
            rc = pcre2_match(p->code, (PCRE2_SPTR)s, n, start, PCRE2_NO_UTF_CHECK | PCRE2_NO_JIT,
                             mt->md, mt->mctx);
    }
    if (rc == PCRE2_ERROR_NOMATCH)
        return 0;
    if (rc < 0)
        return -AIR_ERR_LIMIT;
    PCRE2_SIZE *ov = pcre2_get_ovector_pointer(mt->md);
    *ms = ov[0];
    *me = ov[1];
    return 1;
}

air_status tk_find_matches(const tk_pattern *p, tk_matcher *mt, const char *s, size_t n,
                           tk_spans *out) {
    out->n = 0;
    if (n == 0)
        return spans_push(out, 0, 0, 0) ? air_err(AIR_ERR_NOMEM, "out of memory") : AIR_OK;
    size_t prev = 0;
    if (!p->code) {
        /* literal: non-overlapping leftmost occurrences */
        if (p->lit_len == 0) {
            if (spans_push(out, 0, n, 0))
                return air_err(AIR_ERR_NOMEM, "out of memory");
            return AIR_OK;
        }
        size_t i = 0;
        while (i + p->lit_len <= n) {
            const char *f = memmem(s + i, n - i, p->lit, p->lit_len);
            if (!f)
                break;
            size_t st = (size_t)(f - s);
            if (prev != st && spans_push(out, prev, st, 0))
                return air_err(AIR_ERR_NOMEM, "out of memory");
            if (spans_push(out, st, st + p->lit_len, 1))
                return air_err(AIR_ERR_NOMEM, "out of memory");
            prev = i = st + p->lit_len;
        }
    } else {
        /* onig FindMatches: an empty match right after the previous match is
         * skipped by advancing one character. */
        size_t last_end = 0;
        int have_last = 0;
        size_t last_match_end = 0;
        while (last_end <= n) {
            size_t ms, me;
            int r = regex_search(p, mt, s, n, last_end, &ms, &me);
            if (r < 0) {
                if (r == -AIR_ERR_NOMEM)
                    return air_err(AIR_ERR_NOMEM, "out of memory");
                return air_err(AIR_ERR_LIMIT,
                               "regex matching failed (resource limit) on a "
                               "%zu-byte piece of text",
                               n);
            }
            if (!r)
                break;
            if (ms == me && have_last && last_match_end == me) {
                last_end += last_end < n ? (size_t)tk_utf8_len((unsigned char)s[last_end]) : 1;
                continue;
            }
            last_end = me;
            last_match_end = me;
            have_last = 1;
            if (prev != ms && spans_push(out, prev, ms, 0))
                return air_err(AIR_ERR_NOMEM, "out of memory");
            if (spans_push(out, ms, me, 1))
                return air_err(AIR_ERR_NOMEM, "out of memory");
            prev = me;
        }
    }
    if (prev != n && spans_push(out, prev, n, 0))
        return air_err(AIR_ERR_NOMEM, "out of memory");
    return AIR_OK;
}
