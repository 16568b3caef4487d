/*
 * json_fsm.c - the parts of the JSON automaton that are not on the hot path:
 * whole-string checks and the length of the shortest completion (used by the
 * grammar's token budget). The step itself is inline in json_fsm.h.
 */
#include "sample/json_fsm.h"

#include <string.h>

void air_jf_init(air_json_fsm *s) {
    memset(s, 0, sizeof *s);
    s->mode = AIR_JF_START;
}

int air_jf_feed(air_json_fsm *s, const uint8_t *bytes, size_t n) {
    for (size_t i = 0; i < n; i++)
        if (!air_jf_step(s, bytes[i])) {
            s->mode = AIR_JF_FAIL;
            return 0;
        }
    return 1;
}

/* Shortest completion, by mode (plus one closing bracket per open container):
 *   string value: "            key: ":0       after ',' in an object: "":0
 *   after a key: :0            value expected: 0
 *   escape: " then the string  \u: the digits left (0 or D then C for a low
 *   surrogate) and, after a high surrogate, \uDC00
 *   UTF-8: the continuation bytes left (the lowest allowed each time)
 *   number: one digit where one is required, else nothing
 *   literal: its remaining letters.
 * Each byte of this completion lowers the count by exactly one, which is what
 * lets the budget mode (grammar.c) always close in time with one-byte tokens. */
int air_jf_min_close(const air_json_fsm *s) {
    int d = s->depth, str = s->key ? 3 : 1;
    switch (s->mode) {
    case AIR_JF_START:
        return 2;
    case AIR_JF_DONE:
        return 0;
    case AIR_JF_FAIL:
        return 255;
    case AIR_JF_OBJ_KEY:
        return d + 4;
    case AIR_JF_COLON:
        return d + 2;
    case AIR_JF_VALUE:
        return d + 1;
    case AIR_JF_STR:
        return d + str;
    case AIR_JF_ESC:
        return d + str + 1;
    case AIR_JF_HEX:
        return d + str + s->aux + ((s->flags & AIR_JF_HEX_HIGH) ? 6 : 0);
    case AIR_JF_PAIR_BS:
        return d + str + 6;
    case AIR_JF_PAIR_U:
        return d + str + 5;
    case AIR_JF_UTF8:
        return d + str + s->aux;
    case AIR_JF_NUM_MINUS:
    case AIR_JF_NUM_DOT:
    case AIR_JF_NUM_E:
    case AIR_JF_NUM_ESIGN:
        return d + 1;
    case AIR_JF_LIT: {
        static const int len[3] = {4, 5, 4};
        return d + len[s->aux >> 3] - (s->aux & 7);
    }
    default: /* OBJ_FIRST, ARR_FIRST, AFTER, complete numbers */
        return d;
    }
}

air_json_result air_json_check(const uint8_t *bytes, size_t n) {
    air_json_fsm s;
    air_jf_init(&s);
    if (!air_jf_feed(&s, bytes, n))
        return AIR_JSON_INVALID;
    return s.mode == AIR_JF_DONE ? AIR_JSON_COMPLETE : AIR_JSON_PREFIX;
}
