/*
 * strbuf.h - growable byte string (NUL-terminated), for builders of text.
 */
#ifndef AIR_UTIL_STRBUF_H
#define AIR_UTIL_STRBUF_H

#include <stddef.h>

#include "util/error.h"

typedef struct {
    char *data; /* NUL-terminated; NULL until the first append */
    size_t len;
    size_t cap;
} air_strbuf;

/* All return AIR_OK or AIR_ERR_NOMEM. */
air_status air_sb_append(air_strbuf *sb, const char *s, size_t n);
air_status air_sb_puts(air_strbuf *sb, const char *s);
air_status air_sb_putc(air_strbuf *sb, char c);
air_status air_sb_printf(air_strbuf *sb, const char *fmt, ...) AIR_PRINTF(2, 3);
/* Returns the string and resets sb; the caller frees the result. Never NULL
 * unless out of memory. */
char *air_sb_take(air_strbuf *sb);
void air_sb_free(air_strbuf *sb);

#endif
