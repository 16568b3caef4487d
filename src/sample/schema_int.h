/*
 * schema_int.h - the compiled form of a JSON schema, shared by the compiler
 * (schema.c) and the automaton (schema_fsm.c).
 *
 * A schema is a graph of nodes (recursion through $ref makes cycles). Object
 * keys and enum/const values are stored as their compact JSON text (keys with
 * their quotes) in one byte pool. Costs are lengths in bytes of the shortest
 * texts, used by the token budget (AIR_SC_INF when there is none).
 */
#ifndef AIR_SAMPLE_SCHEMA_INT_H
#define AIR_SAMPLE_SCHEMA_INT_H

#include "sample/schema.h"

#define AIR_SC_INF 65535u
#define AIR_SC_NONE 0xFFFFu

enum {
    SN_ANY,     /* any JSON value (any_obj: any JSON object) */
    SN_OBJECT,  /* declared properties, in order */
    SN_ARRAY,   /* items, min_items..max_items */
    SN_STRING,
    SN_NUMBER,
    SN_INTEGER,
    SN_BOOLEAN,
    SN_NULL,
    SN_ENUM,    /* one of the literals lit0 .. lit0 + n_lit (sorted by bytes) */
    SN_ANYOF    /* the branch is chosen by the first byte: alt[byte] */
};

typedef struct {
    uint32_t off, len; /* bytes in the pool */
} sc_text;

typedef struct {
    sc_text key;      /* "name" with its quotes, as JSON */
    uint16_t child;
    uint8_t required;
} sc_prop;

typedef struct {
    uint8_t kind;
    uint8_t any_obj;    /* SN_ANY: only objects */
    uint32_t min_len;   /* shortest valid value */
    /* SN_OBJECT */
    uint32_t prop0, n_props;  /* props[prop0 ..] */
    uint32_t *req_suffix;     /* [n_props + 1]: cost of the required properties from k on,
                                 each as ,"key":value */
    uint16_t *req_count;      /* [n_props + 1]: required properties from k on */
    uint64_t *kmask;          /* [n_props + 1]: keys that may come next when k is next */
    /* a union of objects told apart by their first property, a const (an
     * anyOf of tool calls): this node has only that property, its enum holds
     * every branch's const, and once the value is read the frame becomes
     * ualt[literal index - lit0 of the enum] */
    uint16_t *ualt;
    /* SN_ARRAY */
    uint16_t items;
    uint32_t min_items, max_items; /* max UINT32_MAX: none */
    /* SN_ENUM */
    uint32_t lit0, n_lit;
    /* SN_ANYOF */
    uint16_t *alt; /* [256] node for each first byte, or AIR_SC_NONE */
} sc_node;

struct air_schema {
    sc_node *nodes;
    uint32_t n_nodes, cap_nodes;
    sc_prop *props;
    uint32_t n_props, cap_props;
    sc_text *lits;
    uint32_t n_lits, cap_lits;
    uint8_t *pool;
    size_t pool_len, pool_cap;
    uint16_t root;
};

#endif
