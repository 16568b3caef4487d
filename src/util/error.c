/*
 * error.c - status strings and the thread-local last error message.
 */
#include "util/error.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

static _Thread_local char g_msg[2048];

const char *air_strerror(air_status status) {
    switch (status) {
#define AIR_X_CASE(name, value, text) \
    case name:                        \
        return text;
        AIR_STATUS_TABLE(AIR_X_CASE)
#undef AIR_X_CASE
    }
    return "unknown status";
}

const char *air_last_error(void) { return g_msg; }

void air_err_clear(void) { g_msg[0] = 0; }

air_status air_err(air_status status, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(g_msg, sizeof g_msg, fmt, ap);
    va_end(ap);
    return status;
}

air_status air_err_context(air_status status, const char *fmt, ...) {
    char prefix[512], old[sizeof g_msg];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(prefix, sizeof prefix, fmt, ap);
    va_end(ap);
    memcpy(old, g_msg, sizeof old);
    size_t pl = strlen(prefix);
    if (pl > sizeof g_msg - 3)
        pl = sizeof g_msg - 3;
    memcpy(g_msg, prefix, pl);
    memcpy(g_msg + pl, ": ", 2);
    size_t room = sizeof g_msg - pl - 3, ol = strlen(old);
    if (ol > room)
        ol = room;
    memcpy(g_msg + pl + 2, old, ol);
    g_msg[pl + 2 + ol] = 0;
    return status;
}
