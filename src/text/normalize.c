/*
 * normalize.c - normalizers (HF tokenizers/src/normalizers), applied in order
 * to one segment of text (the part between two added tokens).
 *
 * HF keeps an alignment of every normalized byte to the original text; we
 * need only the normalized string, so each step simply rewrites the buffer.
 * Unicode normalization and case mapping come from utf8proc; lowercase
 * follows Rust's char::to_lowercase (full mapping: U+0130 -> "i̇").
 */
#include <stdlib.h>
#include <string.h>
#include <utf8proc.h>

#include "text/tokenizer_internal.h"

static air_status oom(void) {
    return air_err(AIR_ERR_NOMEM, "out of memory while normalizing");
}

static int is_ascii(const char *s, size_t n) {
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)s[i] >= 0x80)
            return 0;
    return 1;
}

static const tk_cpmap *cpmap_find(const tk_cpmap *m, size_t n, uint32_t cp) {
    size_t lo = 0, hi = n;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (m[mid].cp == cp)
            return m[mid].out ? &m[mid] : NULL;
        if (m[mid].cp < cp)
            lo = mid + 1;
        else
            hi = mid;
    }
    return NULL;
}

static int u32_find(const uint32_t *a, size_t n, uint32_t cp) {
    size_t lo = 0, hi = n;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (a[mid] == cp)
            return 1;
        if (a[mid] < cp)
            lo = mid + 1;
        else
            hi = mid;
    }
    return 0;
}

static air_status utf8proc_piece(int options, const char *s, size_t n, tk_bytes *out) {
    if (n == 0)
        return AIR_OK;
    utf8proc_uint8_t *res = NULL;
    utf8proc_ssize_t r = utf8proc_map((const utf8proc_uint8_t *)s, (utf8proc_ssize_t)n, &res,
                                      (utf8proc_option_t)(options | UTF8PROC_STABLE));
    if (r < 0) {
        free(res);
        return air_err(AIR_ERR_FORMAT, "Unicode normalization failed: %s", utf8proc_errmsg(r));
    }
    int e = tk_bytes_append(out, res, (size_t)r);
    free(res);
    return e ? oom() : AIR_OK;
}

/* form: 0 NFC, 1 NFD, 2 NFKC, 3 NFKD. Code points HF's (older) tables treat
 * differently are barriers: the text around them is normalized separately
 * and they become HF's result for them alone (see tokenizer_unitab.c). */
static air_status unicode_norm(int form, int options, const tk_bytes *in, tk_bytes *out) {
    if (is_ascii(in->p, in->n))
        return tk_bytes_append(out, in->p, in->n) ? oom() : AIR_OK;
    const tk_cpmap *tab = tk_hf_norm[form];
    size_t tn = tk_hf_norm_n[form], start = 0;
    const unsigned char *s = (const unsigned char *)in->p;
    for (size_t i = 0; i < in->n;) {
        if (s[i] < 0x80) {
            i++;
            continue;
        }
        uint32_t cp;
        int l = tk_utf8_next(s + i, &cp);
        const tk_cpmap *b = tn ? cpmap_find(tab, tn, cp) : NULL;
        if (b) {
            air_status st = utf8proc_piece(options, in->p + start, i - start, out);
            if (st)
                return st;
            if (tk_bytes_append(out, b->out, strlen(b->out)))
                return oom();
            start = i + (size_t)l;
        }
        i += (size_t)l;
    }
    return utf8proc_piece(options, in->p + start, in->n - start, out);
}

static air_status lowercase(const tk_bytes *in, tk_bytes *out) {
    if (tk_bytes_reserve(out, in->n))
        return oom();
    const unsigned char *s = (const unsigned char *)in->p;
    for (size_t i = 0; i < in->n;) {
        if (s[i] < 0x80) {
            char c = (char)s[i];
            if (c >= 'A' && c <= 'Z')
                c = (char)(c + 32);
            if (tk_bytes_append(out, &c, 1))
                return oom();
            i++;
            continue;
        }
        uint32_t cp;
        i += (size_t)tk_utf8_next(s + i, &cp);
        char u[8];
        int l;
        const tk_cpmap *x = cpmap_find(tk_hf_lower, tk_hf_lower_n, cp);
        if (x) { /* HF (Rust char, newer Unicode) differs from utf8proc */
            if (tk_bytes_append(out, x->out, strlen(x->out)))
                return oom();
            continue;
        }
        if (cp == 0x130) { /* SpecialCasing: İ -> i + combining dot above */
            memcpy(u, "i\xCC\x87", 3);
            l = 3;
        } else
            l = tk_utf8_encode((uint32_t)utf8proc_tolower((utf8proc_int32_t)cp), u);
        if (tk_bytes_append(out, u, (size_t)l))
            return oom();
    }
    return AIR_OK;
}

static air_status strip(const tk_bytes *in, int left, int right, tk_bytes *out, int *moved) {
    const unsigned char *s = (const unsigned char *)in->p;
    size_t a = 0, b = in->n;
    if (left)
        while (a < b) {
            uint32_t cp;
            int l = tk_utf8_next(s + a, &cp);
            if (!tk_is_whitespace(cp))
                break;
            a += (size_t)l;
        }
    if (right)
        while (b > a) {
            size_t k = b - 1;
            while (k > a && (s[k] & 0xC0) == 0x80)
                k--;
            uint32_t cp;
            tk_utf8_next(s + k, &cp);
            if (!tk_is_whitespace(cp))
                break;
            b = k;
        }
    if (a > 0)
        *moved = 1;
    return tk_bytes_append(out, in->p + a, b - a) ? oom() : AIR_OK;
}

static air_status map_chars(const tk_bytes *in, int nmt, tk_bytes *out, int *moved) {
    /* StripAccents (nmt = 0) or Nmt (nmt = 1) */
    const unsigned char *s = (const unsigned char *)in->p;
    for (size_t i = 0; i < in->n;) {
        uint32_t cp;
        int l = tk_utf8_next(s + i, &cp);
        i += (size_t)l;
        if (!nmt) {
            utf8proc_category_t k = utf8proc_category((utf8proc_int32_t)cp);
            int mark =
                k == UTF8PROC_CATEGORY_MN || k == UTF8PROC_CATEGORY_MC || k == UTF8PROC_CATEGORY_ME;
            if (cp >= 0x80 && u32_find(tk_hf_mark_flip, tk_hf_mark_flip_n, cp))
                mark = !mark; /* HF's older combining-mark table */
            if (mark) {
                if (out->n == 0)
                    *moved = 1;
                continue;
            }
        } else {
            if ((cp >= 1 && cp <= 8) || cp == 0x0B || (cp >= 0x0E && cp <= 0x1F) || cp == 0x7F ||
                cp == 0x8F || cp == 0x9F) {
                if (out->n == 0)
                    *moved = 1;
                continue;
            }
            if (cp == 9 || cp == 0x0A || cp == 0x0C || cp == 0x0D || cp == 0x1680 ||
                (cp >= 0x200B && cp <= 0x200F) || cp == 0x2028 || cp == 0x2029 || cp == 0x2581 ||
                cp == 0xFEFF || cp == 0xFFFD)
                cp = ' ';
        }
        char u[4];
        int m = tk_utf8_encode(cp, u);
        if (tk_bytes_append(out, u, (size_t)m))
            return oom();
    }
    return AIR_OK;
}

static air_status replace(const tk_norm *nz, tk_matcher *mt, const tk_bytes *in, tk_bytes *out,
                          int *moved) {
    tk_spans sp = {0};
    air_status st = tk_find_matches(&nz->pat, mt, in->p, in->n, &sp);
    /* leading characters replaced by nothing */
    if (!st && nz->content_len == 0 && sp.n && sp.v[0].match && sp.v[0].s == 0 && sp.v[0].e > 0)
        *moved = 1;
    for (size_t i = 0; !st && i < sp.n; i++) {
        int e = sp.v[i].match ? tk_bytes_append(out, nz->content, nz->content_len)
                              : tk_bytes_append(out, in->p + sp.v[i].s, sp.v[i].e - sp.v[i].s);
        if (e)
            st = oom();
    }
    free(sp.v);
    return st;
}

air_status tk_normalize(const air_tokenizer *t, tk_matcher *mt, const char *s, size_t n,
                        tk_bytes *out, int *lead_moved) {
    int moved = 0;
    if (lead_moved)
        *lead_moved = 0;
    out->n = 0;
    if (tk_bytes_append(out, s, n))
        return oom();
    if (!t->n_norm)
        return AIR_OK;
    tk_bytes tmp = {0};
    air_status st = AIR_OK;
    for (size_t k = 0; k < t->n_norm && !st; k++) {
        const tk_norm *nz = &t->norm[k];
        tmp.n = 0;
        if (tk_bytes_reserve(&tmp, out->n)) {
            st = oom();
            break;
        }
        switch (nz->type) {
        case TK_NORM_NFC:
            st = unicode_norm(0, UTF8PROC_COMPOSE, out, &tmp);
            break;
        case TK_NORM_NFD:
            st = unicode_norm(1, UTF8PROC_DECOMPOSE, out, &tmp);
            break;
        case TK_NORM_NFKC:
            st = unicode_norm(2, UTF8PROC_COMPOSE | UTF8PROC_COMPAT, out, &tmp);
            break;
        case TK_NORM_NFKD:
            st = unicode_norm(3, UTF8PROC_DECOMPOSE | UTF8PROC_COMPAT, out, &tmp);
            break;
        case TK_NORM_LOWERCASE:
            st = lowercase(out, &tmp);
            break;
        case TK_NORM_STRIP:
            st = strip(out, nz->left, nz->right, &tmp, &moved);
            break;
        case TK_NORM_STRIP_ACCENTS:
            st = map_chars(out, 0, &tmp, &moved);
            break;
        case TK_NORM_NMT:
            st = map_chars(out, 1, &tmp, &moved);
            break;
        case TK_NORM_REPLACE:
            st = replace(nz, mt, out, &tmp, &moved);
            break;
        case TK_NORM_PREPEND:
            if (out->n && (tk_bytes_append(&tmp, nz->content, nz->content_len) ||
                           tk_bytes_append(&tmp, out->p, out->n)))
                st = oom();
            break;
        case TK_NORM_BYTELEVEL:
            for (size_t i = 0; i < out->n && !st; i++) {
                char u[4];
                int l = tk_utf8_encode(tk_byte_to_char((unsigned char)out->p[i]), u);
                if (tk_bytes_append(&tmp, u, (size_t)l))
                    st = oom();
            }
            break;
        }
        if (!st) {
            tk_bytes sw = *out;
            *out = tmp;
            tmp = sw;
            if (!out->p && tk_bytes_append(out, "", 0))
                st = oom();
        }
    }
    free(tmp.p);
    if (lead_moved)
        *lead_moved = moved;
    return st;
}
