/*
 * pretok.c - pre-tokenizers (HF tokenizers/src/pre_tokenizers): split a
 * normalized segment into words, then hand each word to BPE.
 *
 * HF applies each pre-tokenizer of a Sequence to every current split before
 * the next one. Since every pre-tokenizer works on one split at a time, we
 * run them depth-first instead (piece -> step 0 -> sub-pieces -> step 1 ...
 * -> BPE), which gives the same words in the same order without building
 * lists of intermediate strings. Scratch buffers are per level (tk_work).
 *
 * ByteLevel as the last step is not materialized: the word stays raw bytes
 * and BPE maps bytes to vocabulary ids through a 256-entry table.
 */
#include <stdlib.h>
#include <string.h>

#include "text/tokenizer_internal.h"

static air_status oom(void) {
    return air_err(AIR_ERR_NOMEM, "out of memory in pre-tokenizer");
}

void tk_work_free(tk_work *w) {
    tk_matcher_free(&w->mt);
    for (int i = 0; i < TK_MAX_PRE; i++) {
        free(w->spans[i].v);
        free(w->bufs[i].p);
    }
    memset(w, 0, sizeof *w);
}

static int spans_add(tk_spans *o, size_t s, size_t e, int match) {
    if (o->n == o->cap) {
        size_t cap = o->cap ? o->cap * 2 : 64;
        tk_span *v = realloc(o->v, cap * sizeof *v);
        if (!v)
            return -1;
        o->v = v;
        o->cap = cap;
    }
    o->v[o->n++] = (tk_span){s, e, match};
    return 0;
}

void tk_apply_behavior(tk_spans *sp, tk_split_behavior b, int invert) {
    if (invert)
        for (size_t i = 0; i < sp->n; i++)
            sp->v[i].match = !sp->v[i].match;
    size_t k = 0;
    int prev = 0;
    switch (b) {
    case TK_SPLIT_ISOLATED:
        for (size_t i = 0; i < sp->n; i++)
            sp->v[i].match = 0;
        return;
    case TK_SPLIT_REMOVED:
        for (size_t i = 0; i < sp->n; i++)
            if (!sp->v[i].match)
                sp->v[k++] = sp->v[i];
        sp->n = k;
        return;
    case TK_SPLIT_CONTIGUOUS:
        for (size_t i = 0; i < sp->n; i++) {
            int m = sp->v[i].match;
            if (m == prev && k > 0)
                sp->v[k - 1].e = sp->v[i].e;
            else
                sp->v[k++] = sp->v[i];
            prev = m;
        }
        break;
    case TK_SPLIT_MERGED_PREV:
        for (size_t i = 0; i < sp->n; i++) {
            int m = sp->v[i].match;
            if (m && !prev && k > 0)
                sp->v[k - 1].e = sp->v[i].e;
            else
                sp->v[k++] = sp->v[i];
            prev = m;
        }
        break;
    case TK_SPLIT_MERGED_NEXT: {
        /* fold from the end; build in place from the back */
        size_t w = sp->n; /* next write position (exclusive), output occupies [w, n) */
        for (size_t ii = sp->n; ii-- > 0;) {
            tk_span cur = sp->v[ii];
            int m = cur.match;
            if (m && !prev && w < sp->n)
                sp->v[w].s = cur.s;
            else
                sp->v[--w] = cur;
            prev = m;
        }
        k = sp->n - w;
        memmove(sp->v, sp->v + w, k * sizeof *sp->v);
        break;
    }
    }
    sp->n = k;
    for (size_t i = 0; i < sp->n; i++)
        sp->v[i].match = 0;
}

/* Spans of a character predicate (HF: impl Pattern for Fn(char) -> bool):
 * every matching character is its own match. */
static int char_spans(const char *s, size_t n, int (*pred)(uint32_t, const void *), const void *arg,
                      tk_spans *o) {
    o->n = 0;
    size_t last = 0;
    for (size_t i = 0; i < n;) {
        uint32_t cp;
        int l = tk_utf8_next((const unsigned char *)s + i, &cp);
        if (pred(cp, arg)) {
            if (last < i && spans_add(o, last, i, 0))
                return -1;
            if (spans_add(o, i, i + (size_t)l, 1))
                return -1;
            last = i + (size_t)l;
        }
        i += (size_t)l;
    }
    if (last < n && spans_add(o, last, n, 0))
        return -1;
    return 0;
}

static int pred_numeric(uint32_t c, const void *a) {
    (void)a;
    return tk_is_numeric(c);
}
static int pred_punct(uint32_t c, const void *a) {
    (void)a;
    return tk_is_punctuation(c);
}
static int pred_space(uint32_t c, const void *a) {
    (void)a;
    return tk_is_whitespace(c);
}
static int pred_char(uint32_t c, const void *a) {
    return c == *(const uint32_t *)a;
}

static air_status run(const air_tokenizer *t, tk_work *w, size_t step, const char *s, size_t n,
                      int at_origin, int byte_level, tk_ids *out);

/* Runs the next step on every non-empty span of sp (spans index into s). */
static air_status run_spans(const air_tokenizer *t, tk_work *w, size_t step, const char *s,
                            const tk_spans *sp, int at_origin, int byte_level, tk_ids *out) {
    for (size_t i = 0; i < sp->n; i++) {
        size_t a = sp->v[i].s, e = sp->v[i].e;
        if (e <= a)
            continue;
        air_status st = run(t, w, step + 1, s + a, e - a, at_origin && a == 0, byte_level, out);
        if (st)
            return st;
    }
    return AIR_OK;
}

static air_status run(const air_tokenizer *t, tk_work *w, size_t step, const char *s, size_t n,
                      int at_origin, int byte_level, tk_ids *out) {
    if (n == 0)
        return AIR_OK;
    if (step >= t->n_pre)
        return tk_bpe_word(&t->bpe, s, n, byte_level, out);
    const tk_pre *p = &t->pre[step];
    tk_spans *sp = &w->spans[step];
    tk_bytes *buf = &w->bufs[step];
    air_status st;
    switch (p->type) {
    case TK_PRE_SPLIT:
        st = tk_find_matches(&p->pat, &w->mt, s, n, sp);
        if (st)
            return st;
        tk_apply_behavior(sp, p->behavior, p->invert);
        return run_spans(t, w, step, s, sp, at_origin, byte_level, out);

    case TK_PRE_BYTELEVEL: {
        const char *x = s;
        size_t xn = n;
        if (p->add_prefix_space && s[0] != ' ') {
            buf->n = 0;
            if (tk_bytes_append(buf, " ", 1) || tk_bytes_append(buf, s, n))
                return oom();
            x = buf->p;
            xn = buf->n;
        }
        int last = step + 1 == t->n_pre;
        if (p->use_regex) {
            st = tk_find_matches(&p->pat, &w->mt, x, xn, sp);
            if (st)
                return st;
            tk_apply_behavior(sp, TK_SPLIT_ISOLATED, 0);
        } else {
            sp->n = 0;
            if (spans_add(sp, 0, xn, 0))
                return oom();
        }
        if (last)
            return run_spans(t, w, step, x, sp, at_origin, 1, out);
        /* not the last step: materialize the byte-level characters of each
         * piece before going on */
        tk_bytes mat = {0};
        st = AIR_OK;
        for (size_t i = 0; i < sp->n && !st; i++) {
            mat.n = 0;
            for (size_t k = sp->v[i].s; k < sp->v[i].e; k++) {
                char u[4];
                int l = tk_utf8_encode(tk_byte_to_char((unsigned char)x[k]), u);
                if (tk_bytes_append(&mat, u, (size_t)l)) {
                    st = oom();
                    break;
                }
            }
            if (!st)
                st = run(t, w, step + 1, mat.p, mat.n, at_origin && sp->v[i].s == 0, 0, out);
        }
        free(mat.p);
        return st;
    }

    case TK_PRE_METASPACE: {
        char rep[4];
        int rl = tk_utf8_encode(p->replacement, rep);
        buf->n = 0;
        if (tk_bytes_reserve(buf, n + 4))
            return oom();
        int prepend = 0;
        if (p->prepend_scheme == TK_PREPEND_ALWAYS)
            prepend = 1;
        else if (p->prepend_scheme == TK_PREPEND_FIRST)
            prepend = at_origin;
        if (prepend) {
            /* only when the text (after replacing spaces) does not already
             * start with the replacement */
            uint32_t c0;
            tk_utf8_next((const unsigned char *)s, &c0);
            if (c0 == ' ')
                c0 = p->replacement;
            if (c0 != p->replacement && tk_bytes_append(buf, rep, (size_t)rl))
                return oom();
        }
        for (size_t i = 0; i < n; i++) {
            int e = s[i] == ' ' ? tk_bytes_append(buf, rep, (size_t)rl)
                                : tk_bytes_append(buf, s + i, 1);
            if (e)
                return oom();
        }
        if (!p->split) {
            sp->n = 0;
            if (spans_add(sp, 0, buf->n, 0))
                return oom();
        } else {
            if (char_spans(buf->p, buf->n, pred_char, &p->replacement, sp))
                return oom();
            tk_apply_behavior(sp, TK_SPLIT_MERGED_NEXT, 0);
        }
        return run_spans(t, w, step, buf->p, sp, at_origin, byte_level, out);
    }

    case TK_PRE_DIGITS:
        if (char_spans(s, n, pred_numeric, NULL, sp))
            return oom();
        tk_apply_behavior(sp, p->individual_digits ? TK_SPLIT_ISOLATED : TK_SPLIT_CONTIGUOUS, 0);
        return run_spans(t, w, step, s, sp, at_origin, byte_level, out);

    case TK_PRE_PUNCTUATION:
        if (char_spans(s, n, pred_punct, NULL, sp))
            return oom();
        tk_apply_behavior(sp, p->behavior, 0);
        return run_spans(t, w, step, s, sp, at_origin, byte_level, out);

    case TK_PRE_WHITESPACE_SPLIT:
        if (char_spans(s, n, pred_space, NULL, sp))
            return oom();
        tk_apply_behavior(sp, TK_SPLIT_REMOVED, 0);
        return run_spans(t, w, step, s, sp, at_origin, byte_level, out);

    case TK_PRE_WHITESPACE: {
        /* \w+|[^\w\s]+ kept, the rest removed */
        sp->n = 0;
        size_t i = 0;
        while (i < n) {
            uint32_t cp;
            int l = tk_utf8_next((const unsigned char *)s + i, &cp);
            int cls = tk_is_word(cp) ? 1 : tk_is_whitespace(cp) ? 0 : 2;
            if (!cls) {
                i += (size_t)l;
                continue;
            }
            size_t a = i;
            i += (size_t)l;
            while (i < n) {
                l = tk_utf8_next((const unsigned char *)s + i, &cp);
                int c2 = tk_is_word(cp) ? 1 : tk_is_whitespace(cp) ? 0 : 2;
                if (c2 != cls)
                    break;
                i += (size_t)l;
            }
            if (spans_add(sp, a, i, 0))
                return oom();
        }
        return run_spans(t, w, step, s, sp, at_origin, byte_level, out);
    }

    case TK_PRE_BERT: {
        /* whitespace split (removed), then punctuation isolated, per piece */
        if (char_spans(s, n, pred_space, NULL, sp))
            return oom();
        tk_apply_behavior(sp, TK_SPLIT_REMOVED, 0);
        tk_spans sub = {0};
        st = AIR_OK;
        for (size_t i = 0; i < sp->n && !st; i++) {
            const char *x = s + sp->v[i].s;
            size_t xn = sp->v[i].e - sp->v[i].s;
            if (char_spans(x, xn, pred_punct, NULL, &sub)) {
                st = oom();
                break;
            }
            tk_apply_behavior(&sub, TK_SPLIT_ISOLATED, 0);
            st = run_spans(t, w, step, x, &sub, at_origin && sp->v[i].s == 0, byte_level, out);
        }
        free(sub.v);
        return st;
    }
    }
    return air_err(AIR_ERR_INTERNAL, "unknown pre-tokenizer step");
}

air_status tk_pretok_and_bpe(const air_tokenizer *t, tk_work *w, const char *s, size_t n,
                             int at_origin, tk_ids *out) {
    return run(t, w, 0, s, n, at_origin, 0, out);
}
