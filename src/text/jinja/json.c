/*
 * json.c - the tojson filter: Python's json.dumps as transformers calls it
 * (ensure_ascii=False, indent=None, separators=None, sort_keys=False unless
 * the template passes them).
 *
 * Output matches json.dumps byte for byte: ", " and ": " separators on one
 * line; with an indent, "," and ": " and one item per line; floats as
 * Python repr (NaN, Infinity); strings escape only '"', '\\' and control
 * characters (\n \r \t \b \f, others as \u00XX) unless ensure_ascii is set.
 */
#include <inttypes.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "text/jinja/jinja_int.h"

static void json_str(air_strbuf *sb, const char *s, size_t n, int ensure_ascii) {
    air_sb_putc(sb, '"');
    size_t i = 0;
    while (i < n) {
        unsigned char ch = (unsigned char)s[i];
        if (ch >= 0x80 && ensure_ascii) {
            int cp = ju_decode(s, n, &i);
            if (cp >= 0x10000) {
                cp -= 0x10000;
                air_sb_printf(sb, "\\u%04x\\u%04x", 0xD800 + (cp >> 10), 0xDC00 + (cp & 0x3FF));
            } else
                air_sb_printf(sb, "\\u%04x", cp);
            continue;
        }
        i++;
        switch (ch) {
        case '"':
            air_sb_puts(sb, "\\\"");
            break;
        case '\\':
            air_sb_puts(sb, "\\\\");
            break;
        case '\n':
            air_sb_puts(sb, "\\n");
            break;
        case '\r':
            air_sb_puts(sb, "\\r");
            break;
        case '\t':
            air_sb_puts(sb, "\\t");
            break;
        case '\b':
            air_sb_puts(sb, "\\b");
            break;
        case '\f':
            air_sb_puts(sb, "\\f");
            break;
        default:
            if (ch < 0x20 || (ch == 0x7f && ensure_ascii))
                air_sb_printf(sb, "\\u%04x", ch);
            else
                air_sb_putc(sb, (char)ch);
        }
    }
    air_sb_putc(sb, '"');
}

static void newline(air_strbuf *sb, const jjson_opts *o, int level) {
    air_sb_putc(sb, '\n');
    for (int i = 0; i < level; i++)
        air_sb_puts(sb, o->indent);
}

static void json_float(air_strbuf *sb, double f) {
    if (isnan(f))
        air_sb_puts(sb, "NaN");
    else if (isinf(f))
        air_sb_puts(sb, f < 0 ? "-Infinity" : "Infinity");
    else
        jv_write_float(sb, f);
}

static int key_cmp(const void *a, const void *b) {
    const jstr *x = *(jstr *const *)a, *y = *(jstr *const *)b;
    size_t n = x->len < y->len ? x->len : y->len;
    int r = memcmp(x->s, y->s, n);
    return r ? r : (x->len < y->len ? -1 : x->len > y->len);
}

static void write(jctx *c, const jnode *at, air_strbuf *sb, jv v, const jjson_opts *o, int level) {
    if (level > 200)
        jx_fail(c, at, AIR_ERR_FORMAT, "tojson: circular reference detected");
    switch (v.t) {
    case JV_NONE:
        air_sb_puts(sb, "null");
        return;
    case JV_BOOL:
        air_sb_puts(sb, v.u.b ? "true" : "false");
        return;
    case JV_INT:
        air_sb_printf(sb, "%" PRId64, v.u.i);
        return;
    case JV_FLOAT:
        json_float(sb, v.u.f);
        return;
    case JV_STR:
        json_str(sb, v.u.s->s, v.u.s->len, o->ensure_ascii);
        return;
    case JV_LIST: {
        jlist *l = v.u.l;
        if (l->n == 0) {
            air_sb_puts(sb, "[]");
            return;
        }
        air_sb_putc(sb, '[');
        for (size_t i = 0; i < l->n; i++) {
            if (i)
                air_sb_puts(sb, o->item_sep);
            if (o->indent)
                newline(sb, o, level + 1);
            write(c, at, sb, l->v[i], o, level + 1);
        }
        if (o->indent)
            newline(sb, o, level);
        air_sb_putc(sb, ']');
        return;
    }
    case JV_DICT: {
        jdict *d = v.u.d;
        if (d->kind != JD_DICT)
            break;
        if (d->n == 0) {
            air_sb_puts(sb, "{}");
            return;
        }
        /* keys as json.dumps converts them: str as is, numbers/bools/None spelled out */
        jstr **keys = jx_alloc(c, d->n * sizeof(jstr *));
        size_t *order = jx_alloc(c, d->n * sizeof(size_t));
        for (size_t i = 0; i < d->n; i++) {
            jv k = d->k[i];
            if (k.t == JV_STR)
                keys[i] = k.u.s;
            else if (k.t == JV_NONE)
                keys[i] = js_new(c, "null", 4);
            else if (k.t == JV_BOOL)
                keys[i] = js_new(c, k.u.b ? "true" : "false", k.u.b ? 4 : 5);
            else if (k.t == JV_INT || k.t == JV_FLOAT) {
                air_strbuf *t = jx_cap_push(c);
                if (k.t == JV_INT)
                    air_sb_printf(t, "%" PRId64, k.u.i);
                else
                    json_float(t, k.u.f);
                keys[i] = jx_cap_pop(c).u.s;
            } else
                jx_fail(c, at, AIR_ERR_FORMAT, "keys must be str, int, float, bool or None, not %s",
                        jv_type_name(k));
            order[i] = i;
        }
        if (o->sort_keys) {
            /* sort (key, index) pairs by key; keys[] holds pointers so sort a copy */
            jstr **sorted = jx_alloc(c, d->n * sizeof(jstr *));
            memcpy(sorted, keys, d->n * sizeof(jstr *));
            qsort(sorted, d->n, sizeof(jstr *), key_cmp);
            for (size_t i = 0; i < d->n; i++)
                for (size_t j = 0; j < d->n; j++)
                    if (keys[j] == sorted[i]) {
                        order[i] = j;
                        break;
                    }
        }
        air_sb_putc(sb, '{');
        for (size_t ii = 0; ii < d->n; ii++) {
            size_t i = order[ii];
            if (ii)
                air_sb_puts(sb, o->item_sep);
            if (o->indent)
                newline(sb, o, level + 1);
            json_str(sb, keys[i]->s, keys[i]->len, o->ensure_ascii);
            air_sb_puts(sb, o->key_sep);
            write(c, at, sb, d->v[i], o, level + 1);
        }
        if (o->indent)
            newline(sb, o, level);
        air_sb_putc(sb, '}');
        return;
    }
    default:
        break;
    }
    jx_fail(c, at, AIR_ERR_FORMAT, "Object of type %s is not JSON serializable", jv_type_name(v));
}

void jv_write_json(jctx *c, const jnode *at, air_strbuf *sb, jv v, const jjson_opts *o) {
    write(c, at, sb, v, o, 0);
}
