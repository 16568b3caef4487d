/*
 * grammar.c - the JSON constraint behind generate.h's constrain callback.
 *
 * Data flow:
 *   air_json_grammar_new: token id -> the bytes it adds to the text (see
 *     token_bytes below) -> token ids sorted by bytes -> a trie stored in
 *     preorder, each node with its byte, depth, the index just past its
 *     subtree and the first token ending there (more tokens with the same
 *     bytes are chained through same_next).
 *   air_json_grammar_constrain: feed the newly generated tokens' bytes to the
 *     JSON automaton (json_fsm.h); then scan the trie once from the current
 *     state: a node whose byte is rejected is skipped together with its whole
 *     subtree; at a node where tokens end, the shortest completion from the
 *     reached state is that token's cost. allowed[t] = cost within budget.
 *
 * A small cache keyed by the automaton state keeps the cost arrays of the
 * last few states: inside a long string the state repeats token after token.
 */
#include "sample/grammar.h"

#include <stdlib.h>
#include <string.h>

#include "util/error.h"

#define MAX_TOKEN_BYTES 4096 /* longer tokens are banned */
#define COST_BANNED 255
#define N_CACHE 4
#define SX_EXIT 254
#define SX_REJECT 255

enum { TOK_BANNED = 0, TOK_TEXT = 1, TOK_EOS = 2 };

typedef struct {
    uint32_t skip; /* index of the next node that is not in this subtree */
    int32_t tok;   /* first token whose bytes end here, or -1 */
    uint16_t depth;
    uint8_t byte;
} trie_node;

typedef struct {
    air_sc_state key; /* state the costs were computed from */
    int valid;
    uint8_t *cost; /* [n_vocab] */
    int min_cost;
} cost_cache;

struct air_json_grammar {
    int32_t n_vocab;
    uint8_t *kind;      /* [n_vocab] TOK_* */
    uint32_t *off;      /* [n_vocab + 1] token bytes = bytes[off[t] .. off[t+1]) */
    uint8_t *bytes;     /* all token bytes */
    int32_t *same_next; /* [n_vocab] next token with the same bytes, or -1 */
    /* string fast path: from inside a string (no escape or character
     * pending), str_extra[t] is the cost token t adds to the string's own
     * shortest completion if it stays inside the string, SX_REJECT if it is
     * rejected there, SX_EXIT if it closes the string: then the bytes after
     * the closing quote start at exit_at[t] and depend on the context. */
    uint8_t *str_extra;
    uint16_t *exit_at;
    int32_t *exit_ids;
    int32_t n_exit;
    trie_node *nodes;
    uint32_t n_nodes;
    int max_len;
    air_sc_state *stack; /* [max_len + 1] states along the current trie path */
    int32_t *eos;
    int n_eos;
    int budget_exact;
    cost_cache cache[N_CACHE];
    int cache_next;
    const air_schema *schema; /* NULL: any JSON object */
    /* per response */
    air_sc_state st;
    int n_seen;
    int budget; /* < 0: off */
    int budget_base;
};

/* ------------------------------------------------------------------------- */
/* Token bytes                                                                */
/* ------------------------------------------------------------------------- */

/* Byte-level BPE alphabet (GPT-2's bytes_to_unicode): printable bytes map to
 * themselves, the other 68 to U+0100.. in byte order. inv[cp] = byte or -1. */
static void byte_level_inverse(int16_t inv[324]) {
    for (int i = 0; i < 324; i++)
        inv[i] = -1;
    int n = 0;
    for (int b = 0; b < 256; b++) {
        int printable = (b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174);
        if (printable)
            inv[b] = (int16_t)b;
        else
            inv[256 + n++] = (int16_t)b;
    }
}

/* Next code point of valid UTF-8 text at s[*i] (advances *i); -1 if invalid. */
static int32_t utf8_next(const uint8_t *s, size_t n, size_t *i) {
    uint8_t c = s[*i];
    int len = c < 0x80 ? 1 : c >= 0xF0 ? 4 : c >= 0xE0 ? 3 : c >= 0xC0 ? 2 : 0;
    if (!len || *i + (size_t)len > n)
        return -1;
    int32_t cp = len == 1 ? c : (c & (0x7F >> len));
    for (int k = 1; k < len; k++) {
        if ((s[*i + k] & 0xC0) != 0x80)
            return -1;
        cp = (cp << 6) | (s[*i + k] & 0x3F);
    }
    *i += (size_t)len;
    return cp;
}

static int utf8_valid(const uint8_t *s, size_t n) {
    air_json_fsm f;
    memset(&f, 0, sizeof f);
    f.mode = AIR_JF_STR; /* the string automaton checks UTF-8 exactly */
    for (size_t i = 0; i < n; i++) {
        if (s[i] < 0x80)
            continue;
        if (!air_jf_step(&f, s[i]))
            return 0;
    }
    return f.mode == AIR_JF_STR;
}

static int hexval(int c) {
    if (c >= '0' && c <= '9')
        return c - '0';
    c |= 0x20;
    return c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

static int has_bytes(const char *s, size_t n, const char *t, size_t m) {
    return n == m && memcmp(s, t, n) == 0;
}

/* The bytes token `id` adds to the text, into out (up to MAX_TOKEN_BYTES).
 * Returns the length, or -1 if the token is banned (nothing, or too long).
 * `dec` is the token decoded alone. Rules, in order:
 *   1. piece "<0xNN>" that does not decode to itself (SentencePiece byte
 *      fallback): the byte NN;
 *   2. piece made of byte-level alphabet characters whose byte string is not
 *      valid UTF-8 while the lone decode shows U+FFFD (a byte-level token
 *      holding part of a character): those bytes;
 *   3. piece with the SentencePiece marker U+2581 whose lone decode equals the
 *      piece with the marker as a space, or that minus its first space (the
 *      decoder strips the leading space of the first token): the piece with
 *      the marker as a space;
 *   4. otherwise: the lone decode. */
static int token_bytes(const char *piece, const char *dec, size_t dlen, const int16_t *inv,
                       uint8_t *out) {
    size_t plen = piece ? strlen(piece) : 0;
    if (piece && plen == 6 && memcmp(piece, "<0x", 3) == 0 && piece[5] == '>' &&
        hexval(piece[3]) >= 0 && hexval(piece[4]) >= 0 && !has_bytes(dec, dlen, piece, plen)) {
        out[0] = (uint8_t)(hexval(piece[3]) * 16 + hexval(piece[4]));
        return 1;
    }
    if (piece && plen > 0 && plen <= MAX_TOKEN_BYTES && memmem(dec, dlen, "\xEF\xBF\xBD", 3)) {
        size_t i = 0, n = 0;
        int ok = 1;
        while (ok && i < plen) {
            int32_t cp = utf8_next((const uint8_t *)piece, plen, &i);
            if (cp < 0 || cp >= 324 || inv[cp] < 0)
                ok = 0;
            else
                out[n++] = (uint8_t)inv[cp];
        }
        if (ok && !utf8_valid(out, n))
            return (int)n;
    }
    if (piece && strstr(piece, "\xE2\x96\x81")) {
        size_t n = 0;
        for (size_t i = 0; i < plen && n < MAX_TOKEN_BYTES;) {
            if (i + 3 <= plen && memcmp(piece + i, "\xE2\x96\x81", 3) == 0) {
                out[n++] = ' ';
                i += 3;
            } else {
                out[n++] = (uint8_t)piece[i++];
            }
        }
        if (has_bytes(dec, dlen, (const char *)out, n) ||
            (n > 0 && out[0] == ' ' && has_bytes(dec, dlen, (const char *)out + 1, n - 1)))
            return (int)n;
    }
    if (dlen == 0 || dlen > MAX_TOKEN_BYTES)
        return -1;
    memcpy(out, dec, dlen);
    return (int)dlen;
}

/* A token is useless if one of its bytes can never occur in JSON text: raw
 * control bytes other than whitespace, and bytes that never occur in UTF-8. */
static int never_json(const uint8_t *b, int n) {
    for (int i = 0; i < n; i++) {
        uint8_t c = b[i];
        if ((c < 0x20 && c != '\t' && c != '\n' && c != '\r') || c == 0xC0 || c == 0xC1 ||
            c >= 0xF5)
            return 1;
    }
    return 0;
}

/* ------------------------------------------------------------------------- */
/* Trie                                                                       */
/* ------------------------------------------------------------------------- */

/* Sorts ids by bytes (merge sort: qsort has no context argument in C11 and
 * the library keeps no global state). */
static void sort_ids(const air_json_grammar *g, int32_t *ids, int32_t *tmp, size_t n) {
    if (n < 2)
        return;
    size_t h = n / 2;
    sort_ids(g, ids, tmp, h);
    sort_ids(g, ids + h, tmp, n - h);
    size_t i = 0, j = h, k = 0;
    while (i < h && j < n) {
        int32_t x = ids[i], y = ids[j];
        uint32_t lx = g->off[x + 1] - g->off[x], ly = g->off[y + 1] - g->off[y];
        int c = memcmp(g->bytes + g->off[x], g->bytes + g->off[y], lx < ly ? lx : ly);
        if (!c)
            c = lx != ly ? (lx < ly ? -1 : 1) : (x < y ? -1 : 1);
        tmp[k++] = c <= 0 ? ids[i++] : ids[j++];
    }
    while (i < h)
        tmp[k++] = ids[i++];
    while (j < n)
        tmp[k++] = ids[j++];
    memcpy(ids, tmp, n * sizeof *ids);
}

static air_status build_trie(air_json_grammar *g) {
    int32_t n = 0;
    size_t total = 0;
    for (int32_t t = 0; t < g->n_vocab; t++)
        if (g->kind[t] == TOK_TEXT) {
            n++;
            total += g->off[t + 1] - g->off[t];
        }
    int32_t *ids = malloc(sizeof(int32_t) * (size_t)(n + 1));
    int32_t *tmp = malloc(sizeof(int32_t) * (size_t)(n + 1));
    g->nodes = malloc(sizeof(trie_node) * (total + 1));
    uint32_t *path = malloc(sizeof(uint32_t) * (size_t)(g->max_len + 1));
    if (!ids || !tmp || !g->nodes || !path) {
        free(ids), free(tmp), free(path);
        return air_err(AIR_ERR_NOMEM, "out of memory building the JSON token trie");
    }
    n = 0;
    for (int32_t t = 0; t < g->n_vocab; t++)
        if (g->kind[t] == TOK_TEXT)
            ids[n++] = t;
    sort_ids(g, ids, tmp, (size_t)n);

    /* path[d] = node at depth d+1 of the previous token */
    uint32_t nn = 0;
    int prev_len = 0;
    int32_t prev = -1;
    for (int32_t k = 0; k < n; k++) {
        int32_t t = ids[k];
        const uint8_t *b = g->bytes + g->off[t];
        int len = (int)(g->off[t + 1] - g->off[t]);
        int lcp = 0;
        if (prev >= 0) {
            const uint8_t *pb = g->bytes + g->off[prev];
            while (lcp < len && lcp < prev_len && b[lcp] == pb[lcp])
                lcp++;
        }
        if (prev >= 0 && lcp == len && lcp == prev_len) { /* same bytes */
            int32_t last = g->nodes[path[len - 1]].tok;
            while (g->same_next[last] >= 0)
                last = g->same_next[last];
            g->same_next[last] = t;
            continue;
        }
        for (int d = lcp; d < prev_len; d++) /* close the previous branch */
            g->nodes[path[d]].skip = nn;
        for (int d = lcp; d < len; d++) {
            trie_node *nd = &g->nodes[nn];
            nd->byte = b[d];
            nd->depth = (uint16_t)(d + 1);
            nd->tok = -1;
            nd->skip = 0;
            path[d] = nn++;
        }
        g->nodes[path[len - 1]].tok = t;
        prev = t;
        prev_len = len;
    }
    for (int d = 0; d < prev_len; d++)
        g->nodes[path[d]].skip = nn;
    g->n_nodes = nn;
    free(ids);
    free(tmp);
    free(path);
    return AIR_OK;
}

/* Runs every token from a canonical in-string state (see str_extra). */
static air_status string_fast_path(air_json_grammar *g) {
    int32_t nv = g->n_vocab;
    g->str_extra = malloc((size_t)nv);
    g->exit_at = malloc(sizeof(uint16_t) * (size_t)nv);
    g->exit_ids = malloc(sizeof(int32_t) * (size_t)nv);
    if (!g->str_extra || !g->exit_at || !g->exit_ids)
        return air_err(AIR_ERR_NOMEM, "out of memory building the JSON grammar");
    air_json_fsm in_str;
    air_jf_init(&in_str);
    air_jf_feed(&in_str, (const uint8_t *)"{\"", 2);
    int base = air_jf_min_close(&in_str);
    g->n_exit = 0;
    for (int32_t t = 0; t < nv; t++) {
        g->str_extra[t] = SX_REJECT;
        g->exit_at[t] = 0;
        if (g->kind[t] != TOK_TEXT)
            continue;
        const uint8_t *b = g->bytes + g->off[t];
        uint32_t len = g->off[t + 1] - g->off[t];
        air_json_fsm x = in_str;
        uint32_t i = 0;
        int closed = 0;
        for (; i < len; i++) {
            if (!air_jf_step(&x, b[i]))
                break;
            if (x.mode == AIR_JF_COLON) {
                closed = 1; /* the rest depends on the context */
                break;
            }
        }
        if (closed) {
            g->str_extra[t] = SX_EXIT;
            g->exit_at[t] = (uint16_t)(i + 1);
            g->exit_ids[g->n_exit++] = t;
        } else if (i == len) {
            g->str_extra[t] = (uint8_t)(air_jf_min_close(&x) - base);
        }
    }
    return AIR_OK;
}

/* ------------------------------------------------------------------------- */
/* Construction                                                               */
/* ------------------------------------------------------------------------- */

air_status air_json_grammar_new(const air_tokenizer *tok, const int32_t *eos_ids, int n_eos,
                                air_json_grammar **out) {
    *out = NULL;
    if (!tok || n_eos < 0 || (n_eos > 0 && !eos_ids))
        return air_err(AIR_ERR_INVALID_ARG, "JSON grammar: no tokenizer or a bad EOS list");
    int32_t nv = air_tokenizer_vocab_size(tok);
    if (nv <= 0)
        return air_err(AIR_ERR_INVALID_ARG, "JSON grammar: the tokenizer has no tokens");
    air_json_grammar *g = calloc(1, sizeof *g);
    if (!g)
        return air_err(AIR_ERR_NOMEM, "out of memory");
    g->n_vocab = nv;
    g->kind = calloc((size_t)nv, 1);
    g->off = malloc(sizeof(uint32_t) * ((size_t)nv + 1));
    g->same_next = malloc(sizeof(int32_t) * (size_t)nv);
    g->eos = malloc(sizeof(int32_t) * (size_t)(n_eos + 1));
    uint8_t *buf = malloc(MAX_TOKEN_BYTES);
    size_t cap = (size_t)nv * 8 + 64, used = 0;
    g->bytes = malloc(cap);
    air_status st = AIR_OK;
    if (!g->kind || !g->off || !g->same_next || !g->eos || !buf || !g->bytes) {
        st = air_err(AIR_ERR_NOMEM, "out of memory building the JSON grammar");
        goto fail;
    }
    for (int i = 0; i < n_eos; i++) {
        if (eos_ids[i] < 0 || eos_ids[i] >= nv) {
            st = air_err(AIR_ERR_INVALID_ARG,
                         "JSON grammar: EOS id %d is outside the vocabulary (0..%d)",
                         (int)eos_ids[i], (int)nv - 1);
            goto fail;
        }
        g->eos[i] = eos_ids[i];
    }
    g->n_eos = n_eos;

    int16_t inv[324];
    byte_level_inverse(inv);
    for (int32_t t = 0; t < nv; t++) {
        g->off[t] = (uint32_t)used;
        g->same_next[t] = -1;
        int is_eos = 0;
        for (int i = 0; i < n_eos; i++)
            is_eos |= eos_ids[i] == t;
        if (is_eos) {
            g->kind[t] = TOK_EOS;
            continue;
        }
        const char *piece = air_tokenizer_id_to_token(tok, t);
        if (!piece || air_tokenizer_is_special(tok, t))
            continue;
        char *dec = NULL;
        size_t dlen = 0;
        if ((st = air_tokenizer_decode_n(tok, &t, 1, 0, &dec, &dlen))) {
            if (st == AIR_ERR_NOMEM)
                goto fail;
            st = AIR_OK; /* a token that does not decode is banned */
            continue;
        }
        int len = token_bytes(piece, dec, dlen, inv, buf);
        free(dec);
        if (len <= 0 || never_json(buf, len))
            continue;
        if (used + (size_t)len > cap) {
            size_t ncap = cap * 2 + (size_t)len;
            uint8_t *nb = realloc(g->bytes, ncap);
            if (!nb) {
                st = air_err(AIR_ERR_NOMEM, "out of memory building the JSON grammar");
                goto fail;
            }
            g->bytes = nb;
            cap = ncap;
        }
        memcpy(g->bytes + used, buf, (size_t)len);
        used += (size_t)len;
        g->kind[t] = TOK_TEXT;
        if (len > g->max_len)
            g->max_len = len;
    }
    g->off[nv] = (uint32_t)used;
    free(buf);
    buf = NULL;

    /* one-byte tokens for every byte a shortest completion may use */
    {
        uint8_t single[256] = {0};
        for (int32_t t = 0; t < nv; t++)
            if (g->kind[t] == TOK_TEXT && g->off[t + 1] - g->off[t] == 1)
                single[g->bytes[g->off[t]]] = 1;
        static const uint8_t need[] = {'{', '"', ':', '0', '}', ']', '\\', 'u',  'D',
                                       'C', 'r', 'e', 'a', 'l', 's', 0x80, 0x90, 0xA0};
        g->budget_exact = 1;
        for (size_t i = 0; i < sizeof need; i++)
            g->budget_exact &= single[need[i]];
    }

    if ((st = string_fast_path(g)))
        goto fail;
    g->stack = malloc(sizeof(air_sc_state) * (size_t)(g->max_len + 1));
    if (!g->stack) {
        st = air_err(AIR_ERR_NOMEM, "out of memory building the JSON grammar");
        goto fail;
    }
    for (int i = 0; i < N_CACHE; i++) {
        g->cache[i].cost = malloc((size_t)nv);
        if (!g->cache[i].cost) {
            st = air_err(AIR_ERR_NOMEM, "out of memory building the JSON grammar");
            goto fail;
        }
    }
    if ((st = build_trie(g)))
        goto fail;
    air_json_grammar_reset(g);
    *out = g;
    return AIR_OK;
fail:
    free(buf);
    air_json_grammar_free(g);
    return st;
}

void air_json_grammar_free(air_json_grammar *g) {
    if (!g)
        return;
    free(g->kind);
    free(g->off);
    free(g->bytes);
    free(g->same_next);
    free(g->str_extra);
    free(g->exit_at);
    free(g->exit_ids);
    free(g->nodes);
    free(g->stack);
    free(g->eos);
    for (int i = 0; i < N_CACHE; i++)
        free(g->cache[i].cost);
    free(g);
}

void air_json_grammar_reset(air_json_grammar *g) {
    air_sc_init(&g->st, g->schema);
    g->n_seen = 0;
    g->budget = -1;
    g->budget_base = 0;
}

void air_json_grammar_set_schema(air_json_grammar *g, const air_schema *schema) {
    g->schema = schema;
    for (int i = 0; i < N_CACHE; i++)
        g->cache[i].valid = 0;
    air_json_grammar_reset(g);
}

void air_json_grammar_set_budget(air_json_grammar *g, int remaining_tokens) {
    g->budget = remaining_tokens < 0 ? -1 : remaining_tokens;
    g->budget_base = g->n_seen;
}

/* ------------------------------------------------------------------------- */
/* Mask                                                                       */
/* ------------------------------------------------------------------------- */

static int same_state(const air_sc_state *a, const air_sc_state *b) {
    size_t n = air_sc_used_size(a);
    return n == air_sc_used_size(b) && memcmp(a, b, n) == 0;
}

static uint8_t cap_cost(int c) {
    return (uint8_t)(c > COST_BANNED - 1 ? COST_BANNED - 1 : c);
}

/* cost[t] for every token from state s: the shortest completion after t, or
 * COST_BANNED if t is rejected. Returns the smallest cost. */
static int compute_costs(air_json_grammar *g, const air_sc_state *s, uint8_t *cost) {
    const air_schema *S = g->schema;
    int minc = COST_BANNED;
    if (s->f.mode == AIR_JF_STR && s->mode != AIR_SC_KEY && s->mode != AIR_SC_LIT) {
        /* string fast path: inside a free string every byte means the same */
        int base = air_sc_min_close(S, s);
        const uint8_t *sx = g->str_extra;
        for (int32_t t = 0; t < g->n_vocab; t++) {
            int c = sx[t] < SX_EXIT ? cap_cost(base + sx[t]) : COST_BANNED;
            cost[t] = (uint8_t)c;
            if (c < minc)
                minc = c;
        }
        air_sc_state q, x;
        air_sc_copy(&q, s);
        air_sc_step(S, &q, '"'); /* the state after the closing quote */
        for (int32_t k = 0; k < g->n_exit; k++) {
            int32_t t = g->exit_ids[k];
            air_sc_copy(&x, &q);
            if (!air_sc_feed(S, &x, g->bytes + g->off[t] + g->exit_at[t],
                             g->off[t + 1] - g->off[t] - g->exit_at[t]))
                continue;
            int c = cap_cost(air_sc_min_close(S, &x));
            cost[t] = (uint8_t)c;
            if (c < minc)
                minc = c;
        }
        return minc;
    }
    memset(cost, COST_BANNED, (size_t)g->n_vocab);
    air_sc_state *stk = g->stack;
    air_sc_copy(&stk[0], s);
    const trie_node *nodes = g->nodes;
    uint32_t n = g->n_nodes;
    for (uint32_t i = 0; i < n;) {
        const trie_node *nd = &nodes[i];
        air_sc_state *x = &stk[nd->depth];
        air_sc_copy(x, &stk[nd->depth - 1]);
        if (!air_sc_step(S, x, nd->byte)) {
            i = nd->skip;
            continue;
        }
        if (nd->tok >= 0) {
            int c = cap_cost(air_sc_min_close(S, x));
            if (c < minc)
                minc = c;
            for (int32_t t = nd->tok; t >= 0; t = g->same_next[t])
                cost[t] = (uint8_t)c;
        }
        i++;
    }
    return minc;
}

static const cost_cache *costs_for(air_json_grammar *g, const air_sc_state *s) {
    for (int i = 0; i < N_CACHE; i++)
        if (g->cache[i].valid && same_state(&g->cache[i].key, s))
            return &g->cache[i];
    cost_cache *c = &g->cache[g->cache_next];
    g->cache_next = (g->cache_next + 1) % N_CACHE;
    air_sc_copy(&c->key, s);
    c->min_cost = compute_costs(g, s, c->cost);
    c->valid = 1;
    return c;
}

static void only_eos(const air_json_grammar *g, uint8_t *allowed) {
    memset(allowed, 0, (size_t)g->n_vocab);
    for (int i = 0; i < g->n_eos; i++)
        allowed[g->eos[i]] = 1;
}

int air_json_grammar_constrain(void *user, const int32_t *generated, int n, uint8_t *allowed) {
    air_json_grammar *g = user;
    if (n < g->n_seen) { /* a shorter history: rebuild from the start */
        air_sc_init(&g->st, g->schema);
        g->n_seen = 0;
        if (g->budget_base > n)
            g->budget_base = n;
    }
    for (; g->n_seen < n; g->n_seen++) {
        int32_t t = generated[g->n_seen];
        if (g->st.f.mode == AIR_JF_FAIL)
            continue;
        if (t < 0 || t >= g->n_vocab || g->kind[t] != TOK_TEXT ||
            !air_sc_feed(g->schema, &g->st, g->bytes + g->off[t], g->off[t + 1] - g->off[t]))
            g->st.f.mode = AIR_JF_FAIL;
    }
    if (g->st.f.mode == AIR_JF_FAIL || g->st.f.mode == AIR_JF_DONE) {
        if (allowed)
            only_eos(g, allowed);
        return 1;
    }
    if (!allowed)
        return 0;
    const cost_cache *c = costs_for(g, &g->st);
    if (c->min_cost >= COST_BANNED) {
        only_eos(g, allowed);
        return 1;
    }
    int thr = COST_BANNED - 1;
    if (g->budget >= 0) {
        int left = g->budget - (n - g->budget_base) - 1; /* tokens after this one */
        thr = left > c->min_cost ? left : c->min_cost;
        if (thr > COST_BANNED - 1) /* 255 or more tokens left: every token the grammar allows */
            thr = COST_BANNED - 1;
    }
    const uint8_t *cost = c->cost;
    for (int32_t t = 0; t < g->n_vocab; t++)
        allowed[t] = cost[t] <= thr;
    return 0;
}

air_json_result air_json_grammar_result(const air_json_grammar *g) {
    return g->st.f.mode == AIR_JF_FAIL   ? AIR_JSON_INVALID
           : g->st.f.mode == AIR_JF_DONE ? AIR_JSON_COMPLETE
                                       : AIR_JSON_PREFIX;
}

int32_t air_json_grammar_n_vocab(const air_json_grammar *g) {
    return g->n_vocab;
}

const uint8_t *air_json_grammar_token_bytes(const air_json_grammar *g, int32_t id, size_t *len) {
    if (id < 0 || id >= g->n_vocab || g->kind[id] != TOK_TEXT) {
        *len = 0;
        return NULL;
    }
    *len = g->off[id + 1] - g->off[id];
    return g->bytes + g->off[id];
}

int air_json_grammar_budget_exact(const air_json_grammar *g) {
    return g->budget_exact;
}
