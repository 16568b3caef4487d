/*
 * decoder.c - ids -> text: the decoder chain (HF tokenizers/src/decoders) and
 * the streaming decoder (HF DecodeStream).
 *
 * decode: each id becomes its token string (an added token's content, or
 * the vocabulary string; unknown ids are skipped, special ones too when
 * asked), then each decoder step maps the list of token strings to a new
 * list (HF decode_chain), and the final list is concatenated. Without a
 * decoder, tokens are joined with " " as HF does.
 *
 * Streaming: HF's algorithm, kept exactly so chunks are identical: decode
 * the ids since the last emitted prefix; when the text grew and does not end
 * with U+FFFD (an incomplete character), emit what follows the prefix and
 * slide the window. Re-decoding a small window is what makes the
 * context-dependent decoders (Metaspace/Strip removing the first token's
 * leading space, byte fallback, byte-level bytes) come out right.
 */
#include <stdlib.h>
#include <string.h>

#include "text/tokenizer_internal.h"

static air_status oom(void) {
    return air_err(AIR_ERR_NOMEM, "out of memory while decoding");
}

/* A list of token strings: concatenated bytes + offsets. */
typedef struct {
    tk_bytes b;
    size_t *off; /* n+1 entries */
    size_t n, cap;
} tlist;

static void tl_reset(tlist *l) {
    l->b.n = 0;
    l->n = 0;
    if (l->off)
        l->off[0] = 0;
}

static int tl_reserve(tlist *l) {
    if (l->n + 2 > l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 64;
        size_t *o = realloc(l->off, cap * sizeof *o);
        if (!o)
            return -1;
        l->off = o;
        l->cap = cap;
        if (l->n == 0)
            l->off[0] = 0;
    }
    return 0;
}

/* Appends bytes to the current (last, open) token. */
static int tl_put(tlist *l, const void *s, size_t n) {
    return tk_bytes_append(&l->b, s, n);
}
/* Closes the current token. */
static int tl_end(tlist *l) {
    if (tl_reserve(l))
        return -1;
    l->n++;
    l->off[l->n] = l->b.n;
    return 0;
}
static int tl_add(tlist *l, const void *s, size_t n) {
    if (tl_reserve(l))
        return -1;
    return tl_put(l, s, n) || tl_end(l);
}
static inline const char *tl_str(const tlist *l, size_t i) {
    return l->b.p ? l->b.p + l->off[i] : "";
}
static inline size_t tl_len(const tlist *l, size_t i) {
    return l->off[i + 1] - l->off[i];
}

static void tl_free(tlist *l) {
    free(l->b.p);
    free(l->off);
    memset(l, 0, sizeof *l);
}

static int parse_byte_token(const char *s, size_t n) {
    /* "<0xXX>" */
    if (n != 6 || s[0] != '<' || s[1] != '0' || s[2] != 'x' || s[5] != '>')
        return -1;
    int v = 0;
    for (int i = 3; i < 5; i++) {
        char c = s[i];
        int h = c >= '0' && c <= '9'   ? c - '0'
                : c >= 'a' && c <= 'f' ? c - 'a' + 10
                : c >= 'A' && c <= 'F' ? c - 'A' + 10
                                       : -1;
        if (h < 0)
            return -1;
        v = v * 16 + h;
    }
    return v;
}

static const char *wordpiece_cleanup[][2] = {
    {" .", "."},   {" ?", "?"},     {" !", "!"},    {" ,", ","},
    {" ' ", "'"},  {" n't", "n't"}, {" 'm", "'m"},  {" do not", " don't"},
    {" 's", "'s"}, {" 've", "'ve"}, {" 're", "'re"}};

static int replace_all(tk_bytes *out, const char *s, size_t n, const char *pat, const char *rep) {
    size_t pl = strlen(pat), rl = strlen(rep), i = 0;
    while (i < n) {
        const char *f = pl ? memmem(s + i, n - i, pat, pl) : NULL;
        if (!f)
            break;
        if (tk_bytes_append(out, s + i, (size_t)(f - (s + i))) || tk_bytes_append(out, rep, rl))
            return -1;
        i = (size_t)(f - s) + pl;
    }
    return tk_bytes_append(out, s + i, n - i);
}

static air_status step(const tk_dec *d, tk_matcher *mt, const tlist *in, tlist *out) {
    tl_reset(out);
    switch (d->type) {
    case TK_DEC_BYTELEVEL: {
        tk_bytes raw = {0};
        for (size_t i = 0; i < in->n; i++) {
            const unsigned char *s = (const unsigned char *)tl_str(in, i);
            size_t n = tl_len(in, i), start = raw.n;
            int ok = 1;
            if (tk_bytes_reserve(&raw, n)) {
                free(raw.p);
                return oom();
            }
            for (size_t k = 0; k < n;) {
                uint32_t cp;
                k += (size_t)tk_utf8_next(s + k, &cp);
                int b = tk_char_to_byte(cp);
                if (b < 0) {
                    ok = 0;
                    break;
                }
                raw.p[raw.n++] = (char)b; /* a token's bytes never outnumber its chars' bytes */
            }
            if (!ok) {
                raw.n = start;
                if (tk_bytes_append(&raw, s, n)) {
                    free(raw.p);
                    return oom();
                }
            }
        }
        tk_bytes fixed = {0};
        int e = tk_utf8_lossy_append(&fixed, raw.p ? raw.p : "", raw.n) ||
                tk_bytes_append(&fixed, "", 0) || tl_add(out, fixed.p, fixed.n);
        free(raw.p);
        free(fixed.p);
        return e ? oom() : AIR_OK;
    }
    case TK_DEC_METASPACE:
        for (size_t i = 0; i < in->n; i++) {
            const unsigned char *s = (const unsigned char *)tl_str(in, i);
            size_t n = tl_len(in, i);
            if (tl_reserve(out))
                return oom();
            for (size_t k = 0; k < n;) {
                uint32_t cp;
                int l = tk_utf8_next(s + k, &cp);
                int e = 0;
                if (cp == d->ch) {
                    if (!(i == 0 && d->prepend_scheme != TK_PREPEND_NEVER))
                        e = tl_put(out, " ", 1);
                } else
                    e = tl_put(out, s + k, (size_t)l);
                if (e)
                    return oom();
                k += (size_t)l;
            }
            if (tl_end(out))
                return oom();
        }
        return AIR_OK;
    case TK_DEC_REPLACE: {
        tk_spans sp = {0};
        air_status st = AIR_OK;
        for (size_t i = 0; i < in->n && !st; i++) {
            const char *s = tl_str(in, i);
            size_t n = tl_len(in, i);
            st = tk_find_matches(&d->pat, mt, s, n, &sp);
            if (st)
                break;
            if (tl_reserve(out)) {
                st = oom();
                break;
            }
            for (size_t k = 0; k < sp.n && !st; k++) {
                int e = sp.v[k].match ? tl_put(out, d->content, d->content_len)
                                      : tl_put(out, s + sp.v[k].s, sp.v[k].e - sp.v[k].s);
                if (e)
                    st = oom();
            }
            if (!st && tl_end(out))
                st = oom();
        }
        free(sp.v);
        return st;
    }
    case TK_DEC_BYTEFALLBACK: {
        tk_bytes pend = {0};
        for (size_t i = 0; i <= in->n; i++) {
            int b = i < in->n ? parse_byte_token(tl_str(in, i), tl_len(in, i)) : -1;
            if (b >= 0) {
                char c = (char)b;
                if (tk_bytes_append(&pend, &c, 1)) {
                    free(pend.p);
                    return oom();
                }
                continue;
            }
            if (pend.n) {
                int e = 0;
                if (tk_utf8_valid_prefix((const unsigned char *)pend.p, pend.n) == pend.n)
                    e = tl_add(out, pend.p, pend.n);
                else
                    for (size_t k = 0; k < pend.n && !e; k++)
                        e = tl_add(out, "\xEF\xBF\xBD", 3);
                pend.n = 0;
                if (e) {
                    free(pend.p);
                    return oom();
                }
            }
            if (i < in->n && tl_add(out, tl_str(in, i), tl_len(in, i))) {
                free(pend.p);
                return oom();
            }
        }
        free(pend.p);
        return AIR_OK;
    }
    case TK_DEC_FUSE:
        return tl_add(out, in->b.p ? in->b.p : "", in->b.n) ? oom() : AIR_OK;
    case TK_DEC_STRIP:
        for (size_t i = 0; i < in->n; i++) {
            const unsigned char *s = (const unsigned char *)tl_str(in, i);
            size_t n = tl_len(in, i);
            /* char boundaries */
            size_t a = 0, z = n;
            for (int k = 0; k < d->start && a < n; k++) {
                uint32_t cp;
                int l = tk_utf8_next(s + a, &cp);
                if (cp != d->ch)
                    break;
                a += (size_t)l;
            }
            for (int k = 0; k < d->stop && z > 0; k++) {
                size_t q = z - 1;
                while (q > 0 && (s[q] & 0xC0) == 0x80)
                    q--;
                uint32_t cp;
                tk_utf8_next(s + q, &cp);
                if (cp != d->ch)
                    break;
                z = q;
            }
            if (z < a)
                z = a;
            if (tl_add(out, s + a, z - a))
                return oom();
        }
        return AIR_OK;
    case TK_DEC_BPE:
        for (size_t i = 0; i < in->n; i++) {
            tk_bytes tmp = {0};
            int e = replace_all(&tmp, tl_str(in, i), tl_len(in, i), d->content,
                                i + 1 == in->n ? "" : " ") ||
                    tl_add(out, tmp.p ? tmp.p : "", tmp.n);
            free(tmp.p);
            if (e)
                return oom();
        }
        return AIR_OK;
    case TK_DEC_WORDPIECE:
        for (size_t i = 0; i < in->n; i++) {
            const char *s = tl_str(in, i);
            size_t n = tl_len(in, i);
            tk_bytes tok = {0};
            int e = 0;
            if (i != 0) {
                if (n >= d->content_len && !memcmp(s, d->content, d->content_len))
                    e = tk_bytes_append(&tok, s + d->content_len, n - d->content_len);
                else
                    e = tk_bytes_append(&tok, " ", 1) || tk_bytes_append(&tok, s, n);
            } else
                e = tk_bytes_append(&tok, s, n);
            if (!e && d->cleanup) {
                for (size_t r = 0; r < sizeof wordpiece_cleanup / sizeof *wordpiece_cleanup && !e;
                     r++) {
                    tk_bytes nx = {0};
                    e = replace_all(&nx, tok.p ? tok.p : "", tok.n, wordpiece_cleanup[r][0],
                                    wordpiece_cleanup[r][1]);
                    free(tok.p);
                    tok = nx;
                }
            }
            if (!e)
                e = tl_add(out, tok.p ? tok.p : "", tok.n);
            free(tok.p);
            if (e)
                return oom();
        }
        return AIR_OK;
    }
    return air_err(AIR_ERR_INTERNAL, "unknown decoder step");
}

air_status tk_decode_ids(const air_tokenizer *t, const int32_t *ids, size_t n, int skip_special,
                         tk_bytes *out) {
    out->n = 0;
    if (tk_bytes_append(out, "", 0))
        return oom();
    tlist a = {0}, b = {0};
    air_status st = AIR_OK;
    if (tl_reserve(&a))
        return oom();
    for (size_t i = 0; i < n; i++) {
        int32_t id = ids[i];
        if (id < 0 || id >= t->n_ids || !t->dec_str[id])
            continue;
        if (skip_special && t->special[id])
            continue;
        if (tl_add(&a, t->dec_str[id], t->dec_len[id])) {
            st = oom();
            goto done;
        }
    }
    if (!t->has_decoder) {
        for (size_t i = 0; i < a.n; i++)
            if ((i && tk_bytes_append(out, " ", 1)) ||
                tk_bytes_append(out, tl_str(&a, i), tl_len(&a, i))) {
                st = oom();
                goto done;
            }
        goto done;
    }
    tk_matcher mt = {0};
    tlist *cur = &a, *nxt = &b;
    for (size_t k = 0; k < t->n_dec && !st; k++) {
        st = step(&t->dec[k], &mt, cur, nxt);
        tlist *sw = cur;
        cur = nxt;
        nxt = sw;
    }
    tk_matcher_free(&mt);
    if (!st && cur->b.n && tk_bytes_append(out, cur->b.p, cur->b.n))
        st = oom();
done:
    tl_free(&a);
    tl_free(&b);
    return st;
}

/* ========================================================================= */
/* Streaming                                                                  */
/* ========================================================================= */
struct air_detok {
    const air_tokenizer *tok;
    int skip;
    tk_ids ids;
    tk_bytes prefix;
    size_t prefix_index;
    tk_bytes cur;
    tk_bytes out;
};

air_detok *air_detok_new(const air_tokenizer *tok, int skip_special) {
    if (!tok)
        return NULL;
    air_detok *d = calloc(1, sizeof *d);
    if (!d)
        return NULL;
    d->tok = tok;
    d->skip = skip_special;
    if (tk_bytes_append(&d->prefix, "", 0) || tk_bytes_append(&d->out, "", 0)) {
        air_detok_free(d);
        return NULL;
    }
    return d;
}

static int ends_with_fffd(const tk_bytes *b) {
    return b->n >= 3 && !memcmp(b->p + b->n - 3, "\xEF\xBF\xBD", 3);
}

air_status air_detok_push(air_detok *d, int32_t id, const char **out) {
    return air_detok_push_n(d, id, out, NULL);
}

air_status air_detok_push_n(air_detok *d, int32_t id, const char **out, size_t *len) {
    if (len)
        *len = 0;
    if (!d || !out)
        return air_err(AIR_ERR_INVALID_ARG, "air_detok_push: NULL argument");
    *out = "";
    d->out.n = 0;
    d->out.p[0] = 0;
    air_status st;
    if (d->prefix.n == 0 && d->ids.n > 0) {
        st = tk_decode_ids(d->tok, d->ids.v, d->ids.n, d->skip, &d->cur);
        if (st)
            return st;
        if (!ends_with_fffd(&d->cur)) {
            d->prefix.n = 0;
            if (tk_bytes_append(&d->prefix, d->cur.p, d->cur.n))
                return oom();
            d->prefix_index = d->ids.n;
        }
    }
    if (tk_ids_push(&d->ids, id))
        return oom();
    st = tk_decode_ids(d->tok, d->ids.v, d->ids.n, d->skip, &d->cur);
    if (st)
        return st;
    if (d->cur.n > d->prefix.n && !ends_with_fffd(&d->cur)) {
        if (memcmp(d->cur.p, d->prefix.p, d->prefix.n) != 0)
            return air_err(AIR_ERR_INTERNAL,
                           "streaming decode: the text of the ids so far no longer starts with "
                           "the text already emitted (token id %d)",
                           (int)id);
        if (tk_bytes_append(&d->out, d->cur.p + d->prefix.n, d->cur.n - d->prefix.n))
            return oom();
        size_t new_prefix_index = d->ids.n - d->prefix_index;
        memmove(d->ids.v, d->ids.v + d->prefix_index,
                (d->ids.n - d->prefix_index) * sizeof(int32_t));
        d->ids.n -= d->prefix_index;
        st = tk_decode_ids(d->tok, d->ids.v, d->ids.n, d->skip, &d->prefix);
        if (st)
            return st;
        d->prefix_index = new_prefix_index;
    }
    *out = d->out.p;
    if (len)
        *len = d->out.n;
    return AIR_OK;
}

air_status air_detok_flush(air_detok *d, const char **out) {
    if (!d || !out)
        return air_err(AIR_ERR_INVALID_ARG, "air_detok_flush: NULL argument");
    *out = "";
    d->out.n = 0;
    d->out.p[0] = 0;
    if (d->ids.n) {
        air_status st = tk_decode_ids(d->tok, d->ids.v, d->ids.n, d->skip, &d->cur);
        if (st)
            return st;
        if (d->cur.n > d->prefix.n && !memcmp(d->cur.p, d->prefix.p, d->prefix.n) &&
            tk_bytes_append(&d->out, d->cur.p + d->prefix.n, d->cur.n - d->prefix.n))
            return oom();
    }
    d->ids.n = 0;
    d->prefix.n = 0;
    d->prefix.p[0] = 0;
    d->prefix_index = 0;
    *out = d->out.p;
    return AIR_OK;
}

void air_detok_free(air_detok *d) {
    if (!d)
        return;
    free(d->ids.v);
    free(d->prefix.p);
    free(d->cur.p);
    free(d->out.p);
    free(d);
}
