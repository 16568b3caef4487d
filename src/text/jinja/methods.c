/*
 * methods.c - Python methods that chat templates call on values:
 * str (strip, split, startswith, replace, format, find, count, ...),
 * dict (items, keys, values, get), list (index, count) and loop.cycle.
 *
 * Methods that would modify a list or dict (append, update, pop, ...) fail
 * as they do in Jinja's immutable sandbox, which transformers uses.
 * Indices and lengths are in code points, as in Python.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "text/jinja/jinja_int.h"

static const char *const STR_METHODS[] = {
    "strip",   "lstrip",  "rstrip",     "startswith", "endswith",   "split",   "rsplit",
    "replace", "upper",   "lower",      "title",      "capitalize", "format",  "find",
    "rfind",   "count",   "join",       "isdigit",    "isalpha",    "isalnum", "isspace",
    "isupper", "islower", "splitlines", "index",      NULL};
static const char *const DICT_METHODS[] = {"items", "keys", "values", "get", "copy", NULL};
static const char *const DICT_UNSAFE[] = {"update", "pop", "popitem", "setdefault", "clear", NULL};
static const char *const LIST_METHODS[] = {"index", "count", "copy", NULL};
static const char *const LIST_UNSAFE[] = {"append", "extend",  "insert", "pop", "remove",
                                          "sort",   "reverse", "clear",  NULL};

static int in_list(const char *const *l, const char *name) {
    for (int i = 0; l[i]; i++)
        if (strcmp(l[i], name) == 0)
            return 1;
    return 0;
}

int jx_has_method(jv self, const char *name) {
    switch (self.t) {
    case JV_STR:
        return in_list(STR_METHODS, name);
    case JV_DICT:
        if (self.u.d->kind == JD_LOOP)
            return strcmp(name, "cycle") == 0;
        if (self.u.d->kind == JD_NAMESPACE)
            return 0;
        return in_list(DICT_METHODS, name) || in_list(DICT_UNSAFE, name);
    case JV_LIST:
        return in_list(LIST_METHODS, name) || (!self.tuple && in_list(LIST_UNSAFE, name));
    default:
        return 0;
    }
}

static jstr *str_arg(jctx *c, const jnode *at, jv v, const char *method) {
    if (v.t == JV_UNDEF)
        jx_fail(c, at, AIR_ERR_FORMAT, "%s", v.u.s ? v.u.s->s : "value is undefined");
    if (v.t != JV_STR)
        jx_fail(c, at, AIR_ERR_FORMAT, "%s() argument must be str, not %s", method,
                jv_type_name(v));
    return v.u.s;
}

static int64_t int_arg(jctx *c, const jnode *at, jv v, int64_t def) {
    if (v.t == JV_NONE || v.t == JV_UNDEF)
        return def;
    if (v.t == JV_INT)
        return v.u.i;
    if (v.t == JV_BOOL)
        return v.u.b;
    jx_fail(c, at, AIR_ERR_FORMAT, "'%s' object cannot be interpreted as an integer",
            jv_type_name(v));
}

static int at_prefix(jstr *s, jstr *p) {
    return p->len <= s->len && memcmp(s->s, p->s, p->len) == 0;
}
static int at_suffix(jstr *s, jstr *p) {
    return p->len <= s->len && memcmp(s->s + s->len - p->len, p->s, p->len) == 0;
}

static jv split(jctx *c, const jnode *at, jstr *s, jv sepv, int64_t maxsplit, int right) {
    jv out = jv_list(c, 0);
    if (sepv.t == JV_NONE || sepv.t == JV_UNDEF) {
        /* runs of whitespace; no empty strings */
        size_t i = 0, n = s->len;
        /* collect all pieces, then apply maxsplit from the chosen side */
        jv pieces = jv_list(c, 0);
        while (i < n) {
            size_t k = i;
            int cp = ju_decode(s->s, n, &k);
            if (ju_isspace(cp)) {
                i = k;
                continue;
            }
            size_t b = i;
            while (i < n) {
                k = i;
                cp = ju_decode(s->s, n, &k);
                if (ju_isspace(cp))
                    break;
                i = k;
            }
            jv pair = jv_list(c, 2);
            jl_push(c, pair.u.l, jv_int((int64_t)b));
            jl_push(c, pair.u.l, jv_int((int64_t)i));
            jl_push(c, pieces.u.l, pair);
        }
        size_t np = pieces.u.l->n;
        if (maxsplit < 0 || (size_t)maxsplit >= np) {
            for (size_t k = 0; k < np; k++) {
                jlist *p = pieces.u.l->v[k].u.l;
                jl_push(c, out.u.l,
                        jv_str(c, s->s + p->v[0].u.i, (size_t)(p->v[1].u.i - p->v[0].u.i)));
            }
            return out;
        }
        if (!right) {
            for (int64_t k = 0; k < maxsplit; k++) {
                jlist *p = pieces.u.l->v[k].u.l;
                jl_push(c, out.u.l,
                        jv_str(c, s->s + p->v[0].u.i, (size_t)(p->v[1].u.i - p->v[0].u.i)));
            }
            size_t rb = (size_t)pieces.u.l->v[maxsplit].u.l->v[0].u.i;
            jl_push(c, out.u.l, jv_str(c, s->s + rb, s->len - rb));
        } else {
            size_t first = np - (size_t)maxsplit;
            jl_push(c, out.u.l, jv_str(c, s->s, (size_t)pieces.u.l->v[first - 1].u.l->v[1].u.i));
            for (size_t k = first; k < np; k++) {
                jlist *p = pieces.u.l->v[k].u.l;
                jl_push(c, out.u.l,
                        jv_str(c, s->s + p->v[0].u.i, (size_t)(p->v[1].u.i - p->v[0].u.i)));
            }
        }
        return out;
    }
    jstr *sep = str_arg(c, at, sepv, "split");
    if (sep->len == 0)
        jx_fail(c, at, AIR_ERR_FORMAT, "empty separator");
    /* positions of all separators, left to right */
    jv pos = jv_list(c, 0);
    for (size_t i = 0; i + sep->len <= s->len;) {
        const char *h = memmem(s->s + i, s->len - i, sep->s, sep->len);
        if (!h)
            break;
        size_t p = (size_t)(h - s->s);
        jl_push(c, pos.u.l, jv_int((int64_t)p));
        i = p + sep->len;
    }
    size_t np = pos.u.l->n, use = np, from = 0;
    if (maxsplit >= 0 && (size_t)maxsplit < np) {
        use = (size_t)maxsplit;
        if (right)
            from = np - use;
    }
    if (right && from > 0) {
        /* rsplit from the right: recompute separators scanning backwards */
        jv rpos = jv_list(c, 0);
        size_t e = s->len;
        while (rpos.u.l->n < use && e >= sep->len) {
            size_t k = e - sep->len;
            for (;;) {
                if (memcmp(s->s + k, sep->s, sep->len) == 0)
                    break;
                if (k == 0) {
                    k = (size_t)-1;
                    break;
                }
                k--;
            }
            if (k == (size_t)-1)
                break;
            jl_push(c, rpos.u.l, jv_int((int64_t)k));
            e = k;
        }
        size_t m = rpos.u.l->n;
        size_t prev = 0;
        for (size_t k = m; k-- > 0;) {
            size_t p = (size_t)rpos.u.l->v[k].u.i;
            jl_push(c, out.u.l, jv_str(c, s->s + prev, p - prev));
            prev = p + sep->len;
        }
        jl_push(c, out.u.l, jv_str(c, s->s + prev, s->len - prev));
        return out;
    }
    size_t prev = 0;
    for (size_t k = 0; k < use; k++) {
        size_t p = (size_t)pos.u.l->v[k].u.i;
        jl_push(c, out.u.l, jv_str(c, s->s + prev, p - prev));
        prev = p + sep->len;
    }
    jl_push(c, out.u.l, jv_str(c, s->s + prev, s->len - prev));
    return out;
}

static jv replace(jctx *c, jstr *s, jstr *old, jstr *new_, int64_t count) {
    air_strbuf sb = {0};
    int64_t done = 0;
    if (old->len == 0) {
        size_t i = 0;
        while (1) {
            if (count < 0 || done < count) {
                air_sb_append(&sb, new_->s, new_->len);
                done++;
            }
            if (i >= s->len)
                break;
            size_t b = i;
            ju_decode(s->s, s->len, &i);
            air_sb_append(&sb, s->s + b, i - b);
        }
        return jv_from_sb(c, &sb);
    }
    size_t i = 0;
    while (i < s->len) {
        const char *h =
            (count < 0 || done < count) ? memmem(s->s + i, s->len - i, old->s, old->len) : NULL;
        if (!h) {
            air_sb_append(&sb, s->s + i, s->len - i);
            break;
        }
        size_t p = (size_t)(h - s->s);
        air_sb_append(&sb, s->s + i, p - i);
        air_sb_append(&sb, new_->s, new_->len);
        i = p + old->len;
        done++;
    }
    return jv_from_sb(c, &sb);
}

/* Python str.format with {} / {0} / {name} fields and {{ }} escapes. */
static jv format(jctx *c, const jnode *at, jstr *f, jv *args, size_t nargs, const char **knames,
                 jv *kvals, size_t nkw) {
    air_strbuf sb = {0};
    size_t auto_idx = 0;
    for (size_t i = 0; i < f->len; i++) {
        char ch = f->s[i];
        if (ch == '{' && i + 1 < f->len && f->s[i + 1] == '{') {
            air_sb_putc(&sb, '{');
            i++;
            continue;
        }
        if (ch == '}' && i + 1 < f->len && f->s[i + 1] == '}') {
            air_sb_putc(&sb, '}');
            i++;
            continue;
        }
        if (ch != '{') {
            air_sb_putc(&sb, ch);
            continue;
        }
        const char *close = memchr(f->s + i, '}', f->len - i);
        if (!close) {
            air_sb_free(&sb);
            jx_fail(c, at, AIR_ERR_FORMAT, "Single '{' encountered in format string");
        }
        size_t b = i + 1, e = (size_t)(close - f->s);
        size_t fe = b;
        while (fe < e && f->s[fe] != ':' && f->s[fe] != '!')
            fe++;
        jv v;
        if (fe == b) {
            v = auto_idx < nargs ? args[auto_idx] : jv_undef(NULL);
            auto_idx++;
        } else if (f->s[b] >= '0' && f->s[b] <= '9') {
            size_t k = (size_t)strtoul(f->s + b, NULL, 10);
            v = k < nargs ? args[k] : jv_undef(NULL);
        } else {
            v = jv_undef(NULL);
            for (size_t k = 0; k < nkw; k++)
                if (strlen(knames[k]) == fe - b && memcmp(knames[k], f->s + b, fe - b) == 0)
                    v = kvals[k];
        }
        if (v.t == JV_UNDEF && !v.u.s) {
            air_sb_free(&sb);
            jx_fail(c, at, AIR_ERR_FORMAT, "format(): replacement field '%.*s' has no argument",
                    (int)(e - b), f->s + b);
        }
        if (fe < e && f->s[fe] == '!' && fe + 1 < e && f->s[fe + 1] == 'r')
            jv_write_repr(c, &sb, v);
        else
            jv_write_str(c, &sb, v);
        i = e;
    }
    return jv_from_sb(c, &sb);
}

static size_t cp_index(jstr *s, size_t byte) {
    return ju_cplen(s->s, byte);
}

static int str_pred(jstr *s, int kind) {
    if (s->len == 0)
        return 0;
    size_t i = 0;
    int any_cased = 0;
    while (i < s->len) {
        int cp = ju_decode(s->s, s->len, &i);
        switch (kind) {
        case 0:
            if (!(cp >= '0' && cp <= '9'))
                return 0;
            break;
        case 1:
            if (!((cp >= 'a' && cp <= 'z') || (cp >= 'A' && cp <= 'Z') || cp >= 0x80))
                return 0;
            break;
        case 2:
            if (!((cp >= 'a' && cp <= 'z') || (cp >= 'A' && cp <= 'Z') ||
                  (cp >= '0' && cp <= '9') || cp >= 0x80))
                return 0;
            break;
        case 3:
            if (!ju_isspace(cp))
                return 0;
            break;
        case 4:
            if (cp >= 'a' && cp <= 'z')
                return 0;
            if (cp >= 'A' && cp <= 'Z')
                any_cased = 1;
            break;
        case 5:
            if (cp >= 'A' && cp <= 'Z')
                return 0;
            if (cp >= 'a' && cp <= 'z')
                any_cased = 1;
            break;
        }
    }
    return kind >= 4 ? any_cased : 1;
}

static int str_method(jctx *c, const jnode *at, jstr *s, const char *name, jv *args, size_t nargs,
                      const char **kn, jv *kv, size_t nkw, jv *res) {
#define ARG(i, nm) jx_arg(args, nargs, kn, kv, nkw, i, nm, jv_none())
    if (!strcmp(name, "strip") || !strcmp(name, "lstrip") || !strcmp(name, "rstrip")) {
        jv ch = ARG(0, "chars");
        jstr *chars = ch.t == JV_NONE ? NULL : str_arg(c, at, ch, name);
        *res = ju_strip(c, s, chars, name[0] == 'l' ? 1 : name[0] == 'r' ? 2 : 3);
        return 1;
    }
    if (!strcmp(name, "startswith") || !strcmp(name, "endswith")) {
        jv p = ARG(0, NULL);
        int64_t st = int_arg(c, at, ARG(1, NULL), 0);
        jstr *sub = s;
        if (st) {
            size_t cpn = ju_cplen(s->s, s->len);
            if (st < 0)
                st += (int64_t)cpn;
            if (st < 0)
                st = 0;
            size_t off = ju_offset(s->s, s->len, (size_t)st);
            sub = js_new(c, s->s + off, s->len - off);
        }
        int r = 0;
        if (p.t == JV_LIST && p.tuple) {
            for (size_t i = 0; i < p.u.l->n && !r; i++) {
                jstr *x = str_arg(c, at, p.u.l->v[i], name);
                r = name[0] == 's' ? at_prefix(sub, x) : at_suffix(sub, x);
            }
        } else {
            jstr *x = str_arg(c, at, p, name);
            r = name[0] == 's' ? at_prefix(sub, x) : at_suffix(sub, x);
        }
        *res = jv_bool(r);
        return 1;
    }
    if (!strcmp(name, "split") || !strcmp(name, "rsplit")) {
        *res =
            split(c, at, s, ARG(0, "sep"), int_arg(c, at, ARG(1, "maxsplit"), -1), name[0] == 'r');
        return 1;
    }
    if (!strcmp(name, "splitlines")) {
        jv out = jv_list(c, 0);
        size_t b = 0;
        for (size_t i = 0; i < s->len; i++) {
            if (s->s[i] == '\n' || s->s[i] == '\r') {
                jl_push(c, out.u.l, jv_str(c, s->s + b, i - b));
                if (s->s[i] == '\r' && i + 1 < s->len && s->s[i + 1] == '\n')
                    i++;
                b = i + 1;
            }
        }
        if (b < s->len)
            jl_push(c, out.u.l, jv_str(c, s->s + b, s->len - b));
        *res = out;
        return 1;
    }
    if (!strcmp(name, "replace")) {
        *res = replace(c, s, str_arg(c, at, ARG(0, "old"), name),
                       str_arg(c, at, ARG(1, "new"), name), int_arg(c, at, ARG(2, "count"), -1));
        return 1;
    }
    if (!strcmp(name, "upper") || !strcmp(name, "lower") || !strcmp(name, "title") ||
        !strcmp(name, "capitalize")) {
        int mode = name[0] == 'l' ? 0 : name[0] == 'u' ? 1 : name[0] == 'c' ? 2 : 3;
        *res = ju_case(c, s, mode);
        return 1;
    }
    if (!strcmp(name, "format")) {
        *res = format(c, at, s, args, nargs, kn, kv, nkw);
        return 1;
    }
    if (!strcmp(name, "find") || !strcmp(name, "rfind") || !strcmp(name, "index")) {
        jstr *sub = str_arg(c, at, ARG(0, NULL), name);
        int64_t st = int_arg(c, at, ARG(1, NULL), 0);
        size_t cpn = ju_cplen(s->s, s->len);
        if (st < 0)
            st += (int64_t)cpn;
        if (st < 0)
            st = 0;
        size_t off = (size_t)st > cpn ? s->len : ju_offset(s->s, s->len, (size_t)st);
        int64_t found = -1;
        if (name[0] == 'r') {
            for (size_t i = s->len + 1; i-- > off;) {
                if (i + sub->len <= s->len && memcmp(s->s + i, sub->s, sub->len) == 0 &&
                    ((unsigned char)s->s[i] & 0xC0) != 0x80) {
                    found = (int64_t)cp_index(s, i);
                    break;
                }
            }
        } else if (off <= s->len) {
            const char *h =
                sub->len ? memmem(s->s + off, s->len - off, sub->s, sub->len) : s->s + off;
            if (h)
                found = (int64_t)cp_index(s, (size_t)(h - s->s));
        }
        if (found < 0 && name[0] == 'i')
            jx_fail(c, at, AIR_ERR_FORMAT, "substring not found");
        *res = jv_int(found);
        return 1;
    }
    if (!strcmp(name, "count")) {
        jstr *sub = str_arg(c, at, ARG(0, NULL), name);
        int64_t k = 0;
        if (sub->len == 0)
            k = (int64_t)ju_cplen(s->s, s->len) + 1;
        else
            for (size_t i = 0; i + sub->len <= s->len;) {
                const char *h = memmem(s->s + i, s->len - i, sub->s, sub->len);
                if (!h)
                    break;
                k++;
                i = (size_t)(h - s->s) + sub->len;
            }
        *res = jv_int(k);
        return 1;
    }
    if (!strcmp(name, "join")) {
        jlist *l = jv_iterable(c, at, ARG(0, NULL));
        air_strbuf sb = {0};
        for (size_t i = 0; i < l->n; i++) {
            if (l->v[i].t != JV_STR) {
                air_sb_free(&sb);
                jx_fail(c, at, AIR_ERR_FORMAT, "sequence item %zu: expected str instance, %s found",
                        i, jv_type_name(l->v[i]));
            }
            if (i)
                air_sb_append(&sb, s->s, s->len);
            air_sb_append(&sb, l->v[i].u.s->s, l->v[i].u.s->len);
        }
        *res = jv_from_sb(c, &sb);
        return 1;
    }
    static const char *const preds[] = {"isdigit", "isalpha", "isalnum", "isspace",
                                        "isupper", "islower", NULL};
    for (int k = 0; preds[k]; k++)
        if (!strcmp(name, preds[k])) {
            *res = jv_bool(str_pred(s, k));
            return 1;
        }
#undef ARG
    return 0;
}

int jx_method(jctx *c, const jnode *at, jv self, const char *name, jv *args, size_t nargs,
              const char **kn, jv *kv, size_t nkw, jv *res) {
    if (!jx_has_method(self, name))
        return 0;
    if (self.t == JV_STR)
        return str_method(c, at, self.u.s, name, args, nargs, kn, kv, nkw, res);
    if (self.t == JV_DICT && self.u.d->kind == JD_LOOP) { /* loop.cycle(a, b, ...) */
        if (nargs == 0)
            jx_fail(c, at, AIR_ERR_FORMAT, "no items for cycling given");
        jv *i0 = jd_findc(self.u.d, "index0");
        *res = args[(size_t)(i0 ? i0->u.i : 0) % nargs];
        return 1;
    }
    if ((self.t == JV_DICT && in_list(DICT_UNSAFE, name)) ||
        (self.t == JV_LIST && in_list(LIST_UNSAFE, name)))
        jx_fail(c, at, AIR_ERR_FORMAT, "access to attribute '%s' of '%s' object is unsafe.", name,
                jv_type_name(self));
    if (self.t == JV_DICT) {
        jdict *d = self.u.d;
        if (!strcmp(name, "get")) {
            jv key = jx_arg(args, nargs, kn, kv, nkw, 0, NULL, jv_undef(NULL));
            jv *v = jd_find(d, key);
            *res = v ? *v : jx_arg(args, nargs, kn, kv, nkw, 1, NULL, jv_none());
            return 1;
        }
        if (!strcmp(name, "copy")) {
            jv r = jv_dict(c, JD_DICT);
            for (size_t i = 0; i < d->n; i++)
                jd_set(c, r.u.d, d->k[i], d->v[i]);
            *res = r;
            return 1;
        }
        jv r = jv_list(c, d->n);
        for (size_t i = 0; i < d->n; i++) {
            if (name[0] == 'k')
                jl_push(c, r.u.l, d->k[i]);
            else if (name[0] == 'v')
                jl_push(c, r.u.l, d->v[i]);
            else {
                jv pair = jv_list(c, 2);
                pair.tuple = 1;
                jl_push(c, pair.u.l, d->k[i]);
                jl_push(c, pair.u.l, d->v[i]);
                jl_push(c, r.u.l, pair);
            }
        }
        *res = r;
        return 1;
    }
    if (self.t == JV_LIST) {
        jlist *l = self.u.l;
        if (!strcmp(name, "copy")) {
            jv r = jv_list(c, l->n);
            for (size_t i = 0; i < l->n; i++)
                jl_push(c, r.u.l, l->v[i]);
            *res = r;
            return 1;
        }
        jv x = jx_arg(args, nargs, kn, kv, nkw, 0, NULL, jv_undef(NULL));
        int64_t k = 0, found = -1;
        for (size_t i = 0; i < l->n; i++)
            if (jv_equal(l->v[i], x)) {
                k++;
                if (found < 0)
                    found = (int64_t)i;
            }
        if (!strcmp(name, "count")) {
            *res = jv_int(k);
            return 1;
        }
        if (found < 0)
            jx_fail(c, at, AIR_ERR_FORMAT, "value is not in list");
        *res = jv_int(found);
        return 1;
    }
    return 0;
}
