/*
 * fuzz_hub_redact.c - fuzz entry point for removing credentials from a
 * message (air_hub_redact): the first 8 bytes are the token, the rest the
 * message. Never a crash, no url keeps its user:password part, and the
 * token never survives.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "source/hub.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 8)
        return 0;
    char token[9];
    memcpy(token, data, 8);
    token[8] = 0;
    size_t n = size - 8;
    char *msg = malloc(n + 1);
    if (!msg)
        return 0;
    memcpy(msg, data + 8, n);
    msg[n] = 0;
    char *safe = air_hub_redact(msg, strlen(token) >= 4 ? token : NULL);
    if (safe) {
        /* a url's user:password never survives */
        if (strstr(safe, "://u:SECRET@"))
            abort();
        /* nor the token (unless it is made of the "***" that replaces it) */
        if (strlen(token) >= 4 && !strchr(token, '*') && strstr(safe, token))
            abort();
        free(safe);
    }
    free(msg);
    return 0;
}
