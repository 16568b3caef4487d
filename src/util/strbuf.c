/*
 * strbuf.c - growable byte string.
 */
#include "util/strbuf.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static air_status sb_reserve(air_strbuf *sb, size_t extra) {
    if (sb->len + extra + 1 <= sb->cap)
        return AIR_OK;
    size_t cap = sb->cap ? sb->cap : 64;
    while (cap < sb->len + extra + 1)
        cap *= 2;
    char *d = realloc(sb->data, cap);
    if (!d)
        return air_err(AIR_ERR_NOMEM, "out of memory growing a string to %zu bytes", cap);
    sb->data = d;
    sb->cap = cap;
    return AIR_OK;
}

air_status air_sb_append(air_strbuf *sb, const char *s, size_t n) {
    air_status st = sb_reserve(sb, n);
    if (st)
        return st;
    if (n)
        memcpy(sb->data + sb->len, s, n);
    sb->len += n;
    sb->data[sb->len] = 0;
    return AIR_OK;
}

air_status air_sb_puts(air_strbuf *sb, const char *s) { return air_sb_append(sb, s, strlen(s)); }

air_status air_sb_putc(air_strbuf *sb, char c) { return air_sb_append(sb, &c, 1); }

air_status air_sb_printf(air_strbuf *sb, const char *fmt, ...) {
    va_list ap, ap2;
    va_start(ap, fmt);
    va_copy(ap2, ap);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0) {
        va_end(ap2);
        return air_err(AIR_ERR_INTERNAL, "bad format string");
    }
    air_status st = sb_reserve(sb, (size_t)n);
    if (st) {
        va_end(ap2);
        return st;
    }
    vsnprintf(sb->data + sb->len, (size_t)n + 1, fmt, ap2);
    va_end(ap2);
    sb->len += (size_t)n;
    return AIR_OK;
}

char *air_sb_take(air_strbuf *sb) {
    char *r = sb->data;
    if (!r)
        r = calloc(1, 1);
    sb->data = NULL;
    sb->len = sb->cap = 0;
    return r;
}

void air_sb_free(air_strbuf *sb) {
    free(sb->data);
    sb->data = NULL;
    sb->len = sb->cap = 0;
}
