/*
 * schema_fsm.c - the byte automaton of a compiled JSON schema.
 *
 * Every byte goes to the plain JSON automaton (json_fsm.h) for the lexical
 * rules; around it, this file checks the schema at the points where it
 * matters: the first byte of a value (its type; an anyOf branch), object keys
 * and enum/const values (matched byte by byte against their JSON text),
 * commas and closing brackets (required properties, minItems/maxItems),
 * and the '.', 'e' of a number that must be an integer. Values the schema
 * leaves free (ANY) are handed to the JSON automaton alone until they end.
 *
 * Shortest completions (for the token budget) add up, per open frame, the
 * bytes still owed: the required properties not yet written, the items
 * minItems still asks for, and the closing bracket.
 */
#include "sample/schema_int.h"

static int reject(air_sc_state *s) {
    s->f.mode = AIR_JF_FAIL;
    return 0;
}

static int lex(air_sc_state *s, unsigned c) {
    return air_jf_step(&s->f, c) ? 1 : reject(s);
}

static int is_num_mode(uint8_t m) {
    return m == AIR_JF_NUM_ZERO || m == AIR_JF_NUM_INT || m == AIR_JF_NUM_FRAC ||
           m == AIR_JF_NUM_EXP;
}

static int num_byte(unsigned c) {
    return (c >= '0' && c <= '9') || c == '.' || c == 'e' || c == 'E' || c == '+' || c == '-';
}

void air_sc_init(air_sc_state *s, const air_schema *S) {
    memset(s, 0, sizeof *s);
    air_jf_init(&s->f);
    s->vnode = S ? S->root : 0;
}

static const sc_node *top(const air_schema *S, const air_sc_state *s) {
    return &S->nodes[s->fr[s->nf - 1].node];
}

static int push(const air_schema *S, air_sc_state *s, uint16_t node, unsigned c) {
    (void)S;
    if (s->nf >= AIR_JSON_MAX_DEPTH)
        return reject(s);
    s->fr[s->nf].node = node;
    s->fr[s->nf].n = 0;
    s->nf++;
    return lex(s, c);
}

/* ',' '}' ']' after a value (or ending a number) in the top frame. */
static int after_value(const air_schema *S, air_sc_state *s, unsigned c) {
    if (air_jf_is_ws(c) || s->nf == 0)
        return lex(s, c);
    const sc_node *t = top(S, s);
    air_sc_frame *fr = &s->fr[s->nf - 1];
    if (t->kind == SN_ARRAY) {
        if (c == ',') {
            if (fr->n >= t->max_items)
                return reject(s);
            fr->n++;
            s->vnode = t->items;
        } else if (c == ']') {
            if (fr->n < t->min_items)
                return reject(s);
            s->nf--;
        }
        return lex(s, c);
    }
    if (c == ',') {
        if (fr->n >= t->n_props)
            return reject(s);
    } else if (c == '}') {
        if (t->req_count[fr->n])
            return reject(s);
        s->nf--;
    }
    return lex(s, c);
}

static int lit_step(const air_schema *S, air_sc_state *s, unsigned c);

/* The first byte of a value of schema node `node`. */
static int value_begin(const air_schema *S, air_sc_state *s, uint16_t node, unsigned c) {
    const sc_node *n = &S->nodes[node];
    if (n->kind == SN_ANYOF) {
        node = n->alt[c];
        if (node == AIR_SC_NONE)
            return reject(s);
        n = &S->nodes[node];
    }
    s->vnode = node;
    switch (n->kind) {
    case SN_OBJECT:
        return c == '{' ? push(S, s, node, c) : reject(s);
    case SN_ARRAY:
        return c == '[' ? push(S, s, node, c) : reject(s);
    case SN_STRING:
        return c == '"' ? lex(s, c) : reject(s);
    case SN_NUMBER:
    case SN_INTEGER:
        return c == '-' || (c >= '0' && c <= '9') ? lex(s, c) : reject(s);
    case SN_BOOLEAN:
        return c == 't' || c == 'f' ? lex(s, c) : reject(s);
    case SN_NULL:
        return c == 'n' ? lex(s, c) : reject(s);
    case SN_ENUM:
        s->mode = AIR_SC_LIT;
        s->lit_lo = (uint16_t)n->lit0;
        s->lit_hi = (uint16_t)(n->lit0 + n->n_lit);
        s->lit_pos = 0;
        s->sub_depth = s->f.depth;
        return lit_step(S, s, c);
    default: /* SN_ANY */
        if (n->any_obj && c != '{')
            return reject(s);
        s->mode = AIR_SC_FREE;
        s->sub_depth = s->f.depth;
        return lex(s, c);
    }
}

/* A value read by the JSON automaton alone (literal or free) has ended when
 * it is back at its depth after a value. */
static int closed(const air_sc_state *s) {
    return s->f.depth == s->sub_depth && s->f.mode == AIR_JF_AFTER;
}

static int normal_step(const air_schema *S, air_sc_state *s, unsigned c);

/* An enum/const value has been read. */
static void lit_done(const air_schema *S, air_sc_state *s) {
    s->mode = AIR_SC_NORMAL;
    air_sc_frame *fr = &s->fr[s->nf - 1];
    const sc_node *t = &S->nodes[fr->node];
    if (t->ualt && fr->n == 1) /* a union's const: go on as the branch it names */
        fr->node = t->ualt[s->lit_lo - S->nodes[S->props[t->prop0].child].lit0];
}

static int lit_step(const air_schema *S, air_sc_state *s, unsigned c) {
    const sc_text *L = S->lits;
    uint32_t lo = s->lit_lo, hi = s->lit_hi, pos = s->lit_pos;
    while (lo < hi && (L[lo].len <= pos || S->pool[L[lo].off + pos] < c))
        lo++;
    uint32_t e = lo;
    while (e < hi && L[e].len > pos && S->pool[L[e].off + pos] == c)
        e++;
    if (e == lo) { /* no candidate goes on with c: a number literal may end here */
        if (is_num_mode(s->f.mode) && !num_byte(c) && L[s->lit_lo].len == pos) {
            s->lit_hi = (uint16_t)(s->lit_lo + 1); /* the one that ended */
            lit_done(S, s);
            return normal_step(S, s, c);
        }
        return reject(s);
    }
    s->lit_lo = (uint16_t)lo;
    s->lit_hi = (uint16_t)e;
    s->lit_pos = (uint16_t)(pos + 1);
    if (!lex(s, c))
        return 0;
    if (closed(s))
        lit_done(S, s);
    return 1;
}

static int key_step(const air_schema *S, air_sc_state *s, unsigned c) {
    const sc_node *t = top(S, s);
    uint64_t m = s->kmask, keep = 0;
    uint32_t pos = s->lit_pos;
    int done = -1;
    while (m) {
        int j = __builtin_ctzll(m);
        m &= m - 1;
        const sc_text *k = &S->props[t->prop0 + (uint32_t)j].key;
        if (k->len > pos && S->pool[k->off + pos] == c) {
            keep |= (uint64_t)1 << j;
            if (k->len == pos + 1)
                done = j;
        }
    }
    if (!keep)
        return reject(s);
    s->kmask = keep;
    s->lit_pos = (uint16_t)(pos + 1);
    if (!lex(s, c))
        return 0;
    if (s->f.mode == AIR_JF_COLON) { /* the key is closed: exactly one matched */
        if (done < 0)
            return reject(s);
        s->fr[s->nf - 1].n = (uint16_t)(done + 1);
        s->vnode = S->props[t->prop0 + (uint32_t)done].child;
        s->mode = AIR_SC_NORMAL;
        s->kmask = 0;
        s->lit_pos = 0;
    }
    return 1;
}

static int normal_step(const air_schema *S, air_sc_state *s, unsigned c) {
    uint8_t m = s->f.mode;
    if (air_jf_is_ws(c) && m != AIR_JF_AFTER && !is_num_mode(m))
        return lex(s, c);
    switch (m) {
    case AIR_JF_START:
    case AIR_JF_VALUE:
        return value_begin(S, s, s->vnode, c);
    case AIR_JF_ARR_FIRST: {
        const sc_node *t = top(S, s);
        if (c == ']') {
            if (t->min_items > 0)
                return reject(s);
            s->nf--;
            return lex(s, c);
        }
        if (t->max_items == 0)
            return reject(s);
        s->fr[s->nf - 1].n = 1;
        return value_begin(S, s, t->items, c);
    }
    case AIR_JF_OBJ_FIRST:
    case AIR_JF_OBJ_KEY: {
        const sc_node *t = top(S, s);
        uint16_t k = s->fr[s->nf - 1].n;
        if (c == '"') {
            if (k >= t->n_props)
                return reject(s);
            s->mode = AIR_SC_KEY;
            s->kmask = t->kmask[k];
            s->lit_pos = 0;
            return key_step(S, s, c);
        }
        if (c == '}' && m == AIR_JF_OBJ_FIRST) {
            if (t->req_count[k])
                return reject(s);
            s->nf--;
        }
        return lex(s, c);
    }
    case AIR_JF_AFTER:
        return after_value(S, s, c);
    case AIR_JF_NUM_ZERO:
    case AIR_JF_NUM_INT:
    case AIR_JF_NUM_FRAC:
    case AIR_JF_NUM_EXP:
        if (c == '.' || c == 'e' || c == 'E')
            return S->nodes[s->vnode].kind == SN_INTEGER ? reject(s) : lex(s, c);
        if (c >= '0' && c <= '9')
            return lex(s, c);
        return after_value(S, s, c); /* the number ends here */
    default: /* strings, literals, partial numbers */
        return lex(s, c);
    }
}

int air_sc_step(const air_schema *S, air_sc_state *s, unsigned c) {
    if (!S)
        return air_jf_step(&s->f, c) ? 1 : reject(s);
    switch (s->mode) {
    case AIR_SC_KEY:
        return key_step(S, s, c);
    case AIR_SC_LIT:
        return lit_step(S, s, c);
    case AIR_SC_FREE:
        if (is_num_mode(s->f.mode) && s->f.depth == s->sub_depth && !num_byte(c)) {
            s->mode = AIR_SC_NORMAL; /* a free number ends here */
            return normal_step(S, s, c);
        }
        if (!lex(s, c))
            return 0;
        if (closed(s))
            s->mode = AIR_SC_NORMAL;
        return 1;
    default:
        return normal_step(S, s, c);
    }
}

int air_sc_feed(const air_schema *S, air_sc_state *s, const uint8_t *b, size_t n) {
    for (size_t i = 0; i < n; i++)
        if (!air_sc_step(S, s, b[i]))
            return 0;
    return 1;
}

/* ------------------------------------------------------------------------- */
/* Shortest completion                                                        */
/* ------------------------------------------------------------------------- */

/* What frame fr still owes once its current value is done (first: nothing
 * written in it yet, so no comma before the first owed item). */
static uint64_t frame_rest(const air_schema *S, const air_sc_frame *fr, int first) {
    const sc_node *t = &S->nodes[fr->node];
    if (t->kind == SN_ARRAY) {
        uint64_t need = fr->n < t->min_items ? t->min_items - fr->n : 0;
        uint64_t per = (uint64_t)S->nodes[t->items].min_len + 1;
        return need * per - (first && need) + 1;
    }
    return (uint64_t)t->req_suffix[fr->n] - (first && t->req_count[fr->n]) + 1;
}

/* Writing key j next (from its byte `pos` on) and closing the object. */
static uint64_t key_cost(const air_schema *S, const sc_node *t, uint32_t j, uint32_t pos) {
    const sc_prop *p = &S->props[t->prop0 + j];
    return (uint64_t)(p->key.len - pos) + 1 + S->nodes[p->child].min_len + t->req_suffix[j + 1] +
           1;
}

int air_sc_min_close(const air_schema *S, const air_sc_state *s) {
    if (!S)
        return air_jf_min_close(&s->f);
    uint8_t m = s->f.mode;
    if (m == AIR_JF_DONE)
        return 0;
    if (m == AIR_JF_FAIL)
        return (int)AIR_SC_INF;
    if (m == AIR_JF_START)
        return (int)S->nodes[S->root].min_len;
    if (s->nf == 0) /* a free root object: the JSON automaton alone */
        return air_jf_min_close(&s->f);
    uint64_t total = 0;
    for (int i = 0; i + 1 < s->nf; i++)
        total += frame_rest(S, &s->fr[i], 0);
    const air_sc_frame *fr = &s->fr[s->nf - 1];
    const sc_node *t = &S->nodes[fr->node];
    switch (s->mode) {
    case AIR_SC_KEY: {
        uint64_t best = AIR_SC_INF, mk = s->kmask;
        while (mk) {
            int j = __builtin_ctzll(mk);
            mk &= mk - 1;
            uint64_t v = key_cost(S, t, (uint32_t)j, s->lit_pos);
            if (v < best)
                best = v;
        }
        total += best;
        break;
    }
    case AIR_SC_LIT: {
        uint64_t best = AIR_SC_INF;
        int in_union = t->ualt && fr->n == 1 && s->f.depth == s->nf;
        uint32_t lit0 = in_union ? S->nodes[S->props[t->prop0].child].lit0 : 0;
        for (uint32_t i = s->lit_lo; i < s->lit_hi; i++) {
            /* a union's const: the rest is that of the branch it names */
            air_sc_frame br = {in_union ? t->ualt[i - lit0] : fr->node, fr->n};
            uint64_t v = S->lits[i].len - s->lit_pos + frame_rest(S, &br, 0);
            if (v < best)
                best = v;
        }
        total += best;
        break;
    }
    case AIR_SC_FREE:
        total += (uint64_t)(air_jf_min_close(&s->f) - s->sub_depth) + frame_rest(S, fr, 0);
        break;
    default:
        switch (m) {
        case AIR_JF_COLON: /* after a key: ':' and the property's value */
            total += 1 + (uint64_t)S->nodes[s->vnode].min_len + frame_rest(S, fr, 0);
            break;
        case AIR_JF_VALUE:
            total += (uint64_t)S->nodes[s->vnode].min_len + frame_rest(S, fr, 0);
            break;
        case AIR_JF_ARR_FIRST:
        case AIR_JF_OBJ_FIRST:
            total += frame_rest(S, fr, 1);
            break;
        case AIR_JF_OBJ_KEY: {
            uint64_t best = AIR_SC_INF, mk = fr->n < t->n_props ? t->kmask[fr->n] : 0;
            while (mk) {
                int j = __builtin_ctzll(mk);
                mk &= mk - 1;
                uint64_t v = key_cost(S, t, (uint32_t)j, 0);
                if (v < best)
                    best = v;
            }
            total += best;
            break;
        }
        default: /* after a value, or inside a string, number or literal */
            total += (uint64_t)(air_jf_min_close(&s->f) - s->f.depth) + frame_rest(S, fr, 0);
            break;
        }
    }
    return total >= AIR_SC_INF ? (int)AIR_SC_INF : (int)total;
}

air_json_result air_schema_check(const air_schema *S, const uint8_t *bytes, size_t n) {
    air_sc_state s;
    air_sc_init(&s, S);
    if (!air_sc_feed(S, &s, bytes, n))
        return AIR_JSON_INVALID;
    return s.f.mode == AIR_JF_DONE ? AIR_JSON_COMPLETE : AIR_JSON_PREFIX;
}
