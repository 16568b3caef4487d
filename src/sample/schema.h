/*
 * schema.h - JSON Schema constrained decoding: a schema (the subset listed in
 * docs/json-mode.md) compiled into tables, and a byte-level automaton that
 * accepts exactly the compact-or-spaced JSON texts the compiled schema allows.
 *
 *     air_schema *s = NULL;
 *     if (air_schema_compile(schema_cjson, &s)) fprintf(stderr, "%s\n", air_last_error());
 *     air_json_grammar_set_schema(g, s);   // grammar.h: masks now follow the schema
 *     ...
 *     air_schema_free(s);
 *
 * The automaton state (air_sc_state) wraps the plain JSON automaton of
 * json_fsm.h, which keeps checking the lexical rules, and adds a stack of
 * schema frames (one per open object or array) plus a literal matcher for
 * object keys and enum/const values. With a NULL schema the state behaves
 * exactly like the plain JSON automaton (format="json").
 *
 * Generation rules (all outputs validate against the schema):
 *   - object properties come in the schema's order; an optional property may
 *     be left out, a required one may not; no other keys are written;
 *   - an object schema without "properties" is a free JSON object;
 *   - anyOf picks its branch from the first byte of the value, so branches
 *     must begin differently (integer and number merge into number).
 *
 * Thread safety: a compiled schema is immutable and may be shared.
 */
#ifndef AIR_SAMPLE_SCHEMA_H
#define AIR_SAMPLE_SCHEMA_H

#include <cjson/cJSON.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "airllm.h"
#include "sample/json_fsm.h"

#define AIR_SCHEMA_MAX_PROPS 64 /* properties per object schema */

typedef struct air_schema air_schema;

/* Compiles a schema (borrowed; not kept). The root must describe an object.
 * A keyword outside the subset is AIR_ERR_UNSUPPORTED with a message naming
 * the keyword and where it is (a JSON pointer into the schema); a malformed
 * or unsatisfiable schema is AIR_ERR_INVALID_ARG. */
air_status air_schema_compile(const cJSON *schema, air_schema **out);

/* Same, from JSON text. */
air_status air_schema_compile_text(const char *json, air_schema **out);

/* NULL is a no-op. */
void air_schema_free(air_schema *s);

/* ------------------------------------------------------------------------- */
/* Automaton                                                                  */
/* ------------------------------------------------------------------------- */

enum { AIR_SC_NORMAL = 0, AIR_SC_KEY = 1, AIR_SC_LIT = 2, AIR_SC_FREE = 3 };

typedef struct {
    uint16_t node; /* schema node of the open object/array */
    uint16_t n;    /* object: index of the next property; array: items begun */
} air_sc_frame;

/* Laid out without padding: states are compared with memcmp over
 * air_sc_used_size() bytes. */
typedef struct {
    uint64_t kmask;     /* AIR_SC_KEY: properties whose key still matches */
    air_json_fsm f;     /* the lexical automaton */
    uint16_t vnode;     /* schema node of the value expected or being read */
    uint16_t lit_lo;    /* AIR_SC_LIT: candidates [lo, hi) still matching */
    uint16_t lit_hi;
    uint16_t lit_pos;   /* AIR_SC_KEY/LIT: bytes matched */
    uint8_t mode;       /* AIR_SC_* */
    uint8_t sub_depth;  /* AIR_SC_LIT/FREE: lexical depth where the value began */
    uint8_t nf;         /* open frames */
    uint8_t pad;
    air_sc_frame fr[AIR_JSON_MAX_DEPTH];
} air_sc_state;

/* Start state for a schema (NULL: plain JSON object, as json_fsm.h). */
void air_sc_init(air_sc_state *s, const air_schema *S);

/* Bytes of the state that matter (copy and compare only these). */
static inline size_t air_sc_used_size(const air_sc_state *s) {
    return offsetof(air_sc_state, fr) + (size_t)s->nf * sizeof(air_sc_frame);
}

static inline void air_sc_copy(air_sc_state *dst, const air_sc_state *src) {
    memcpy(dst, src, air_sc_used_size(src));
}

/* Accepts byte c (returns 1) or rejects it (returns 0; f.mode becomes FAIL). */
int air_sc_step(const air_schema *S, air_sc_state *s, unsigned c);

/* Feeds n bytes; 1 if all were accepted. */
int air_sc_feed(const air_schema *S, air_sc_state *s, const uint8_t *b, size_t n);

/* Length in bytes of the shortest text that completes a valid document from
 * this state (capped at 65535); 0 when done, 65535 after a rejection. */
int air_sc_min_close(const air_schema *S, const air_sc_state *s);

/* Checks a whole text: AIR_JSON_COMPLETE, AIR_JSON_PREFIX or AIR_JSON_INVALID. */
air_json_result air_schema_check(const air_schema *S, const uint8_t *bytes, size_t n);

#endif
