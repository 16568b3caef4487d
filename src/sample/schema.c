/*
 * schema.c - compiles a JSON schema (the subset in docs/json-mode.md) into
 * the node graph of schema_int.h.
 *
 * Data flow: schema object -> keyword check (anything outside the subset is
 * an error naming it) -> local $ref resolved by JSON pointer (memoised, so
 * recursive schemas become cycles) -> one node per schema -> shortest value
 * lengths by fixpoint -> per-object tables (required suffix costs, key masks).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sample/schema_int.h"
#include "util/error.h"

#define MAX_NESTING 256 /* schema objects being compiled at once */
#define MAX_NODES 60000

typedef struct {
    const cJSON *sch;
    uint16_t node;
} memo_entry;

typedef struct {
    air_schema *S;
    const cJSON *root;
    memo_entry *memo;
    uint32_t n_memo, cap_memo;
    int nesting;
    air_status st;
} compiler;

static const char *const KNOWN[] = {"type",     "properties",  "required",  "enum",
                                    "const",    "items",       "minItems",  "maxItems",
                                    "anyOf",    "additionalProperties",     "$ref",
                                    "$defs",    "definitions", "title",     "description",
                                    "default",  "examples",    "$schema",   "$id",
                                    "$comment", NULL};
/* keywords that say nothing about which values are valid */
static const char *const NOTES[] = {"$defs", "definitions", "title",   "description", "default",
                                    "examples", "$schema", "$id", "$comment", NULL};

static int in_list(const char *const *list, const char *s) {
    for (int i = 0; list[i]; i++)
        if (strcmp(list[i], s) == 0)
            return 1;
    return 0;
}

static int fail(compiler *C, air_status st, const char *fmt, const char *a, const char *b) {
    if (!C->st)
        C->st = air_err(st, fmt, a, b);
    return -1;
}

/* ------------------------------------------------------------------------- */
/* Storage                                                                    */
/* ------------------------------------------------------------------------- */

static int grow(void **p, uint32_t *cap, uint32_t need, size_t size) {
    if (need <= *cap)
        return 0;
    uint32_t nc = *cap ? *cap * 2 : 16;
    while (nc < need)
        nc *= 2;
    void *q = realloc(*p, (size_t)nc * size);
    if (!q)
        return -1;
    *p = q;
    *cap = nc;
    return 0;
}

static int new_node(compiler *C, uint8_t kind) {
    air_schema *S = C->S;
    if (S->n_nodes >= MAX_NODES)
        return fail(C, AIR_ERR_LIMIT, "JSON schema: more than 60000 sub-schemas%s%s", "", "");
    if (grow((void **)&S->nodes, &S->cap_nodes, S->n_nodes + 1, sizeof(sc_node)))
        return fail(C, AIR_ERR_NOMEM, "out of memory compiling a JSON schema%s%s", "", "");
    sc_node *n = &S->nodes[S->n_nodes];
    memset(n, 0, sizeof *n);
    n->kind = kind;
    n->items = AIR_SC_NONE;
    n->max_items = UINT32_MAX;
    return (int)S->n_nodes++;
}

/* Appends the compact JSON text of v to the pool. */
static int add_text(compiler *C, const cJSON *v, sc_text *out) {
    air_schema *S = C->S;
    char *t = cJSON_PrintUnformatted(v);
    if (!t)
        return fail(C, AIR_ERR_NOMEM, "out of memory compiling a JSON schema%s%s", "", "");
    size_t n = strlen(t);
    if (S->pool_len + n > S->pool_cap) {
        size_t nc = S->pool_cap ? S->pool_cap * 2 : 256;
        while (nc < S->pool_len + n)
            nc *= 2;
        uint8_t *q = realloc(S->pool, nc);
        if (!q) {
            free(t);
            return fail(C, AIR_ERR_NOMEM, "out of memory compiling a JSON schema%s%s", "", "");
        }
        S->pool = q;
        S->pool_cap = nc;
    }
    memcpy(S->pool + S->pool_len, t, n);
    out->off = (uint32_t)S->pool_len;
    out->len = (uint32_t)n;
    S->pool_len += n;
    free(t);
    return 0;
}

static int text_cmp(const air_schema *S, const sc_text *a, const sc_text *b) {
    uint32_t n = a->len < b->len ? a->len : b->len;
    int c = memcmp(S->pool + a->off, S->pool + b->off, n);
    return c ? c : (a->len < b->len ? -1 : a->len > b->len);
}

/* ------------------------------------------------------------------------- */
/* Compiling                                                                  */
/* ------------------------------------------------------------------------- */

static int compile(compiler *C, const cJSON *sch, const char *path);

static void child_path(char *buf, size_t n, const char *path, const char *a, const char *b) {
    snprintf(buf, n, "%s/%s%s%s", path, a, b ? "/" : "", b ? b : "");
}

/* Does value v have JSON type t ("string", "integer", ...)? */
static int has_type(const cJSON *v, const char *t) {
    if (!strcmp(t, "string"))
        return cJSON_IsString(v);
    if (!strcmp(t, "number"))
        return cJSON_IsNumber(v);
    if (!strcmp(t, "integer"))
        return cJSON_IsNumber(v) && v->valuedouble == (double)(long long)v->valuedouble;
    if (!strcmp(t, "boolean"))
        return cJSON_IsBool(v);
    if (!strcmp(t, "null"))
        return cJSON_IsNull(v);
    if (!strcmp(t, "object"))
        return cJSON_IsObject(v);
    if (!strcmp(t, "array"))
        return cJSON_IsArray(v);
    return 0;
}

static int compile_enum(compiler *C, const cJSON *sch, const char *type, const char *path) {
    const cJSON *en = cJSON_GetObjectItemCaseSensitive(sch, "enum");
    const cJSON *cn = cJSON_GetObjectItemCaseSensitive(sch, "const");
    if (en && !cJSON_IsArray(en))
        return fail(C, AIR_ERR_INVALID_ARG, "JSON schema: \"enum\" at %s%s is not an array", path,
                    "");
    if (en && cn)
        return fail(C, AIR_ERR_UNSUPPORTED,
                    "JSON schema: \"enum\" and \"const\" together at %s%s are not supported", path,
                    "");
    int id = new_node(C, SN_ENUM);
    if (id < 0)
        return -1;
    air_schema *S = C->S;
    uint32_t first = S->n_lits;
    const cJSON *v;
    if (cn) {
        if (grow((void **)&S->lits, &S->cap_lits, S->n_lits + 1, sizeof(sc_text)) ||
            add_text(C, cn, &S->lits[S->n_lits]))
            return fail(C, AIR_ERR_NOMEM, "out of memory compiling a JSON schema%s%s", "", "");
        S->n_lits += !type || has_type(cn, type);
    } else {
        cJSON_ArrayForEach(v, en) {
            if (type && !has_type(v, type))
                continue;
            if (grow((void **)&S->lits, &S->cap_lits, S->n_lits + 1, sizeof(sc_text)) ||
                add_text(C, v, &S->lits[S->n_lits]))
                return fail(C, AIR_ERR_NOMEM, "out of memory compiling a JSON schema%s%s", "", "");
            S->n_lits++;
        }
    }
    uint32_t n = S->n_lits - first;
    if (n == 0)
        return fail(C, AIR_ERR_INVALID_ARG,
                    "JSON schema: the enum/const at %s has no value%s (matching its \"type\")",
                    path, "");
    sc_text *l = S->lits + first; /* insertion sort, then drop duplicates */
    for (uint32_t i = 1; i < n; i++)
        for (uint32_t j = i; j > 0 && text_cmp(S, &l[j - 1], &l[j]) > 0; j--) {
            sc_text t = l[j];
            l[j] = l[j - 1];
            l[j - 1] = t;
        }
    uint32_t k = 1;
    for (uint32_t i = 1; i < n; i++)
        if (text_cmp(S, &l[k - 1], &l[i]) != 0)
            l[k++] = l[i];
    S->n_lits = first + k;
    if (k > AIR_SC_NONE - 1)
        return fail(C, AIR_ERR_LIMIT, "JSON schema: the enum at %s has more than 65534 values%s",
                    path, "");
    S->nodes[id].lit0 = first;
    S->nodes[id].n_lit = k;
    return id;
}

static int compile_object(compiler *C, const cJSON *sch, int id, const char *path) {
    air_schema *S = C->S;
    const cJSON *props = cJSON_GetObjectItemCaseSensitive(sch, "properties");
    const cJSON *req = cJSON_GetObjectItemCaseSensitive(sch, "required");
    const cJSON *addl = cJSON_GetObjectItemCaseSensitive(sch, "additionalProperties");
    char sub[512];
    if (addl && !cJSON_IsBool(addl))
        return fail(C, AIR_ERR_UNSUPPORTED,
                    "JSON schema: \"additionalProperties\" at %s must be true or false (a schema "
                    "there is not supported)%s",
                    path, "");
    if (props && !cJSON_IsObject(props))
        return fail(C, AIR_ERR_INVALID_ARG, "JSON schema: \"properties\" at %s%s is not an object",
                    path, "");
    if (req && !cJSON_IsArray(req))
        return fail(C, AIR_ERR_INVALID_ARG, "JSON schema: \"required\" at %s%s is not an array",
                    path, "");
    const cJSON *r;
    cJSON_ArrayForEach(r, req) {
        if (!cJSON_IsString(r))
            return fail(C, AIR_ERR_INVALID_ARG,
                        "JSON schema: \"required\" at %s%s holds a value that is not a string", path,
                        "");
        if (!cJSON_GetObjectItemCaseSensitive(props, r->valuestring))
            return fail(C, AIR_ERR_INVALID_ARG,
                        "JSON schema: required property \"%s\" at %s is not in \"properties\"",
                        r->valuestring, path);
    }
    if (!props && !cJSON_IsFalse(addl)) { /* a free object */
        S->nodes[id].kind = SN_ANY;
        S->nodes[id].any_obj = 1;
        return id;
    }
    int n = cJSON_GetArraySize(props);
    if (n > AIR_SCHEMA_MAX_PROPS)
        return fail(C, AIR_ERR_LIMIT,
                    "JSON schema: the object at %s has more than 64 properties%s", path, "");
    sc_prop local[AIR_SCHEMA_MAX_PROPS];
    int k = 0;
    const cJSON *p;
    cJSON_ArrayForEach(p, props) {
        for (int j = 0; j < k; j++) {
            const cJSON *q = props->child;
            for (int m = 0; m < j; m++)
                q = q->next;
            if (strcmp(q->string, p->string) == 0)
                return fail(C, AIR_ERR_INVALID_ARG,
                            "JSON schema: property \"%s\" appears twice at %s", p->string, path);
        }
        child_path(sub, sizeof sub, path, "properties", p->string);
        int c = compile(C, p, sub);
        if (c < 0)
            return -1;
        cJSON *name = cJSON_CreateString(p->string);
        int bad = !name || add_text(C, name, &local[k].key) < 0;
        cJSON_Delete(name);
        if (bad)
            return fail(C, AIR_ERR_NOMEM, "out of memory compiling a JSON schema%s%s", "", "");
        local[k].child = (uint16_t)c;
        local[k].required = 0;
        cJSON_ArrayForEach(r, req) local[k].required |= strcmp(r->valuestring, p->string) == 0;
        k++;
    }
    if (grow((void **)&S->props, &S->cap_props, S->n_props + (uint32_t)k, sizeof(sc_prop)))
        return fail(C, AIR_ERR_NOMEM, "out of memory compiling a JSON schema%s%s", "", "");
    if (k > 0)
        memcpy(S->props + S->n_props, local, sizeof(sc_prop) * (size_t)k);
    S->nodes[id].prop0 = S->n_props;
    S->nodes[id].n_props = (uint32_t)k;
    S->n_props += (uint32_t)k;
    return id;
}

static int read_count(compiler *C, const cJSON *sch, const char *kw, uint32_t *out,
                      const char *path) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(sch, kw);
    if (!v)
        return 0;
    if (!cJSON_IsNumber(v) || v->valuedouble < 0 || v->valuedouble > 1e9 ||
        v->valuedouble != (double)(long long)v->valuedouble)
        return fail(C, AIR_ERR_INVALID_ARG,
                    "JSON schema: \"%s\" at %s is not a non-negative integer", kw, path);
    *out = (uint32_t)v->valuedouble;
    return 0;
}

static int compile_array(compiler *C, const cJSON *sch, int id, const char *path) {
    const cJSON *items = cJSON_GetObjectItemCaseSensitive(sch, "items");
    char sub[512];
    if (cJSON_IsArray(items))
        return fail(C, AIR_ERR_UNSUPPORTED,
                    "JSON schema: \"items\" as a list (tuple validation) at %s%s is not supported",
                    path, "");
    int c;
    if (items) {
        child_path(sub, sizeof sub, path, "items", NULL);
        c = compile(C, items, sub);
    } else {
        c = new_node(C, SN_ANY);
    }
    if (c < 0)
        return -1;
    sc_node *n = &C->S->nodes[id];
    n->items = (uint16_t)c;
    uint32_t lo = 0, hi = UINT32_MAX;
    if (read_count(C, sch, "minItems", &lo, path) || read_count(C, sch, "maxItems", &hi, path))
        return -1;
    if (hi < lo)
        return fail(C, AIR_ERR_INVALID_ARG,
                    "JSON schema: \"maxItems\" is below \"minItems\" at %s%s: nothing is valid",
                    path, "");
    n = &C->S->nodes[id];
    n->min_items = lo;
    n->max_items = hi;
    return id;
}

/* One schema with one JSON type (or none: inferred from the keywords). */
static int compile_typed(compiler *C, const cJSON *sch, const char *type, int id,
                         const char *path) {
    if (cJSON_GetObjectItemCaseSensitive(sch, "enum") ||
        cJSON_GetObjectItemCaseSensitive(sch, "const")) {
        int e = compile_enum(C, sch, type, path);
        if (e < 0)
            return -1;
        if (id >= 0) { /* the memoised node becomes the enum */
            C->S->nodes[id] = C->S->nodes[e];
            return id;
        }
        return e;
    }
    if (!type) {
        if (cJSON_GetObjectItemCaseSensitive(sch, "properties") ||
            cJSON_GetObjectItemCaseSensitive(sch, "required") ||
            cJSON_GetObjectItemCaseSensitive(sch, "additionalProperties"))
            type = "object";
        else if (cJSON_GetObjectItemCaseSensitive(sch, "items") ||
                 cJSON_GetObjectItemCaseSensitive(sch, "minItems") ||
                 cJSON_GetObjectItemCaseSensitive(sch, "maxItems"))
            type = "array";
    }
    static const struct {
        const char *name;
        uint8_t kind;
    } types[] = {{"object", SN_OBJECT},   {"array", SN_ARRAY},     {"string", SN_STRING},
                 {"number", SN_NUMBER},   {"integer", SN_INTEGER}, {"boolean", SN_BOOLEAN},
                 {"null", SN_NULL}};
    uint8_t kind = SN_ANY;
    if (type) {
        size_t i = 0;
        while (i < sizeof types / sizeof types[0] && strcmp(types[i].name, type))
            i++;
        if (i == sizeof types / sizeof types[0])
            return fail(C, AIR_ERR_INVALID_ARG, "JSON schema: unknown type \"%s\" at %s", type,
                        path);
        kind = types[i].kind;
    }
    if (id < 0 && (id = new_node(C, kind)) < 0)
        return -1;
    C->S->nodes[id].kind = kind;
    if (kind == SN_OBJECT)
        return compile_object(C, sch, id, path);
    if (kind == SN_ARRAY)
        return compile_array(C, sch, id, path);
    return id;
}

/* The bytes a value of node n may begin with. */
static int first_bytes(const air_schema *S, uint16_t n, uint8_t set[256]) {
    const sc_node *nd = &S->nodes[n];
    memset(set, 0, 256);
    switch (nd->kind) {
    case SN_ANY:
        set['{'] = 1;
        if (nd->any_obj)
            break;
        set['['] = set['"'] = set['t'] = set['f'] = set['n'] = 1;
        /* fall through */
    case SN_NUMBER:
    case SN_INTEGER:
        set['-'] = 1;
        for (int c = '0'; c <= '9'; c++)
            set[c] = 1;
        break;
    case SN_OBJECT:
        set['{'] = 1;
        break;
    case SN_ARRAY:
        set['['] = 1;
        break;
    case SN_STRING:
        set['"'] = 1;
        break;
    case SN_BOOLEAN:
        set['t'] = set['f'] = 1;
        break;
    case SN_NULL:
        set['n'] = 1;
        break;
    case SN_ENUM:
        for (uint32_t i = 0; i < nd->n_lit; i++)
            set[S->pool[S->lits[nd->lit0 + i].off]] = 1;
        break;
    case SN_ANYOF:
        if (!nd->alt)
            return -1; /* still being compiled: a recursive anyOf */
        for (int c = 0; c < 256; c++)
            set[c] = nd->alt[c] != AIR_SC_NONE;
        break;
    }
    return 0;
}

/* Objects whose first property is required, has the same key in all of them
 * and a different const in each: one node that reads that property, then
 * continues as the branch its value names. -1 (no error set) if the
 * branches are not like that. */
static int make_union(compiler *C, const uint16_t *alts, int n, const char *path) {
    air_schema *S = C->S;
    const sc_prop *p0 = NULL;
    for (int i = 0; i < n; i++) {
        const sc_node *a = &S->nodes[alts[i]];
        if (a->kind != SN_OBJECT || a->ualt || a->n_props == 0)
            return -1;
        const sc_prop *p = &S->props[a->prop0];
        const sc_node *c = &S->nodes[p->child];
        if (!p->required || c->kind != SN_ENUM || c->n_lit != 1)
            return -1;
        if (p0 && text_cmp(S, &p0->key, &p->key) != 0)
            return -1;
        p0 = p;
    }
    int e = new_node(C, SN_ENUM), u = e < 0 ? -1 : new_node(C, SN_OBJECT);
    if (u < 0)
        return fail(C, AIR_ERR_NOMEM, "out of memory compiling a JSON schema%s%s", "", "");
    if (grow((void **)&S->lits, &S->cap_lits, S->n_lits + (uint32_t)n, sizeof(sc_text)) ||
        grow((void **)&S->props, &S->cap_props, S->n_props + 1, sizeof(sc_prop)))
        return fail(C, AIR_ERR_NOMEM, "out of memory compiling a JSON schema%s%s", "", "");
    uint16_t *ualt = malloc(sizeof(uint16_t) * (size_t)n);
    if (!ualt)
        return fail(C, AIR_ERR_NOMEM, "out of memory compiling a JSON schema%s%s", "", "");
    uint32_t first = S->n_lits;
    for (int i = 0; i < n; i++) { /* sorted by the const's text */
        const sc_node *a = &S->nodes[alts[i]];
        sc_text t = S->lits[S->nodes[S->props[a->prop0].child].lit0];
        int j = i;
        while (j > 0 && text_cmp(S, &S->lits[first + (uint32_t)j - 1], &t) > 0) {
            S->lits[first + (uint32_t)j] = S->lits[first + (uint32_t)j - 1];
            ualt[j] = ualt[j - 1];
            j--;
        }
        if (j > 0 && text_cmp(S, &S->lits[first + (uint32_t)j - 1], &t) == 0) {
            free(ualt);
            return -1; /* two branches with the same const */
        }
        S->lits[first + (uint32_t)j] = t;
        ualt[j] = alts[i];
    }
    S->n_lits += (uint32_t)n;
    S->nodes[e].lit0 = first;
    S->nodes[e].n_lit = (uint32_t)n;
    S->props[S->n_props] = (sc_prop){p0->key, (uint16_t)e, 1};
    S->nodes[u].prop0 = S->n_props++;
    S->nodes[u].n_props = 1;
    S->nodes[u].ualt = ualt;
    (void)path;
    return u;
}

static int compile_anyof(compiler *C, const cJSON *alts, int id, const char *path) {
    air_schema *S = C->S;
    if (!cJSON_IsArray(alts) || cJSON_GetArraySize(alts) == 0)
        return fail(C, AIR_ERR_INVALID_ARG, "JSON schema: \"anyOf\" at %s%s is not a non-empty array",
                    path, "");
    uint16_t *tab = malloc(256 * sizeof *tab);
    if (!tab)
        return fail(C, AIR_ERR_NOMEM, "out of memory compiling a JSON schema%s%s", "", "");
    for (int c = 0; c < 256; c++)
        tab[c] = AIR_SC_NONE;
    char sub[512];
    const cJSON *a;
    int i = 0, n_ids = 0, n_obj = 0;
    uint16_t *ids = malloc(sizeof(uint16_t) * (size_t)cJSON_GetArraySize(alts));
    uint16_t *objs = malloc(sizeof(uint16_t) * (size_t)cJSON_GetArraySize(alts));
    if (!ids || !objs) {
        free(ids), free(objs), free(tab);
        return fail(C, AIR_ERR_NOMEM, "out of memory compiling a JSON schema%s%s", "", "");
    }
    cJSON_ArrayForEach(a, alts) {
        char idx[16];
        snprintf(idx, sizeof idx, "%d", i++);
        child_path(sub, sizeof sub, path, "anyOf", idx);
        int c = compile(C, a, sub);
        if (c < 0) {
            free(ids), free(objs), free(tab);
            return -1;
        }
        if (C->S->nodes[c].kind == SN_OBJECT)
            objs[n_obj++] = (uint16_t)c;
        else
            ids[n_ids++] = (uint16_t)c;
    }
    if (n_obj > 1) { /* several objects: a union told apart by a const, if they are one */
        int u = make_union(C, objs, n_obj, path);
        if (C->st) {
            free(ids), free(objs), free(tab);
            return -1;
        }
        if (u >= 0)
            objs[0] = (uint16_t)u, n_obj = 1;
    }
    for (int k = 0; k < n_obj; k++)
        ids[n_ids++] = objs[k];
    free(objs);
    for (int k = 0; k < n_ids; k++) {
        int c = ids[k];
        snprintf(sub, sizeof sub, "%s/anyOf", path);
        uint8_t set[256];
        if (c >= 0 && first_bytes(S, (uint16_t)c, set) < 0)
            c = fail(C, AIR_ERR_UNSUPPORTED,
                     "JSON schema: an \"anyOf\" that contains itself (at %s%s) is not supported",
                     sub, "");
        if (c < 0) {
            free(tab), free(ids);
            return -1;
        }
        if (S->nodes[c].kind == SN_ANY && !S->nodes[c].any_obj) { /* anything: the union too */
            free(tab), free(ids);
            S->nodes[id].kind = SN_ANY;
            return id;
        }
        for (int b = 0; b < 256; b++) {
            if (!set[b])
                continue;
            uint16_t old = tab[b];
            uint16_t alt = S->nodes[c].kind == SN_ANYOF ? S->nodes[c].alt[b] : (uint16_t)c;
            if (old == AIR_SC_NONE || old == alt) {
                tab[b] = alt;
                continue;
            }
            uint8_t ko = S->nodes[old].kind, kn = S->nodes[alt].kind;
            if ((ko == SN_INTEGER || ko == SN_NUMBER) && (kn == SN_INTEGER || kn == SN_NUMBER)) {
                tab[b] = ko == SN_NUMBER ? old : alt; /* integer or number = number */
                continue;
            }
            char ch[8];
            snprintf(ch, sizeof ch, b >= 0x20 && b < 0x7F ? "'%c'" : "0x%02X", b);
            free(tab), free(ids);
            return fail(C, AIR_ERR_UNSUPPORTED,
                        "JSON schema: the \"anyOf\" at %s has two branches that can both begin "
                        "with %s; only branches that begin differently (different types) are "
                        "supported",
                        path, ch);
        }
    }
    free(ids);
    S->nodes[id].kind = SN_ANYOF;
    S->nodes[id].alt = tab;
    return id;
}

/* Follows a local reference "#/a/b" (JSON pointer, ~0 ~1 escapes). */
static const cJSON *resolve_ref(const cJSON *root, const char *ref) {
    if (ref[0] != '#')
        return NULL;
    const cJSON *cur = root;
    const char *p = ref + 1;
    char tok[256];
    while (*p) {
        if (*p != '/')
            return NULL;
        p++;
        size_t n = 0;
        while (*p && *p != '/' && n + 1 < sizeof tok) {
            if (p[0] == '~' && p[1] == '0')
                tok[n++] = '~', p += 2;
            else if (p[0] == '~' && p[1] == '1')
                tok[n++] = '/', p += 2;
            else
                tok[n++] = *p++;
        }
        tok[n] = 0;
        if (cJSON_IsArray(cur)) {
            char *end;
            long i = strtol(tok, &end, 10);
            cur = *end ? NULL : cJSON_GetArrayItem(cur, (int)i);
        } else {
            cur = cJSON_GetObjectItemCaseSensitive(cur, tok);
        }
        if (!cur)
            return NULL;
    }
    return cur;
}

static int compile(compiler *C, const cJSON *sch, const char *path) {
    if (C->st)
        return -1;
    if (cJSON_IsTrue(sch))
        return new_node(C, SN_ANY);
    if (cJSON_IsFalse(sch))
        return fail(C, AIR_ERR_INVALID_ARG,
                    "JSON schema: the schema at %s%s is false (nothing is valid)", path, "");
    if (!cJSON_IsObject(sch))
        return fail(C, AIR_ERR_INVALID_ARG,
                    "JSON schema: the schema at %s%s is not an object or a boolean", path, "");
    for (uint32_t i = 0; i < C->n_memo; i++)
        if (C->memo[i].sch == sch)
            return C->memo[i].node;
    if (++C->nesting > MAX_NESTING) {
        C->nesting--;
        return fail(C, AIR_ERR_LIMIT,
                    "JSON schema: sub-schemas nest deeper than 256 at %s%s ($ref loop?)", path, "");
    }
    int id = -1, n_constraining = 0;
    const cJSON *kw;
    cJSON_ArrayForEach(kw, sch) {
        if (!in_list(KNOWN, kw->string)) {
            C->nesting--;
            return fail(C, AIR_ERR_UNSUPPORTED,
                        "JSON schema: keyword \"%s\" at %s is not supported (supported: type, "
                        "properties, required, enum, const, items, minItems, maxItems, anyOf, "
                        "additionalProperties, $ref, $defs; annotations such as title and "
                        "description)",
                        kw->string, path);
        }
        n_constraining += !in_list(NOTES, kw->string);
    }
    const cJSON *ref = cJSON_GetObjectItemCaseSensitive(sch, "$ref");
    const cJSON *any = cJSON_GetObjectItemCaseSensitive(sch, "anyOf");
    const cJSON *type = cJSON_GetObjectItemCaseSensitive(sch, "type");
    if (ref) {
        const cJSON *target = cJSON_IsString(ref) ? resolve_ref(C->root, ref->valuestring) : NULL;
        if (n_constraining > 1)
            id = fail(C, AIR_ERR_UNSUPPORTED,
                      "JSON schema: keywords next to \"$ref\" at %s%s are not supported", path, "");
        else if (!target)
            id = fail(C, AIR_ERR_UNSUPPORTED,
                      "JSON schema: \"$ref\" at %s does not name a part of this schema (only "
                      "local references such as \"#/$defs/Name\" are supported): %s",
                      path, cJSON_IsString(ref) ? ref->valuestring : "not a string");
        else
            id = compile(C, target, ref->valuestring);
        if (id >= 0 && grow((void **)&C->memo, &C->cap_memo, C->n_memo + 1,
                            sizeof(memo_entry)) == 0)
            C->memo[C->n_memo++] = (memo_entry){sch, (uint16_t)id};
        C->nesting--;
        return id;
    }
    id = new_node(C, SN_ANY);
    if (id >= 0 && grow((void **)&C->memo, &C->cap_memo, C->n_memo + 1,
                        sizeof(memo_entry))) {
        id = fail(C, AIR_ERR_NOMEM, "out of memory compiling a JSON schema%s%s", "", "");
    }
    if (id < 0) {
        C->nesting--;
        return -1;
    }
    C->memo[C->n_memo++] = (memo_entry){sch, (uint16_t)id};
    if (any) {
        if (n_constraining > 1)
            id = fail(C, AIR_ERR_UNSUPPORTED,
                      "JSON schema: keywords next to \"anyOf\" at %s%s are not supported (move them "
                      "into each branch)",
                      path, "");
        else
            id = compile_anyof(C, any, id, path);
    } else if (cJSON_IsArray(type)) {
        /* several types: an anyOf of the same schema with one type each */
        uint16_t *tab = malloc(256 * sizeof *tab);
        if (!tab)
            id = fail(C, AIR_ERR_NOMEM, "out of memory compiling a JSON schema%s%s", "", "");
        for (int c = 0; tab && c < 256; c++)
            tab[c] = AIR_SC_NONE;
        const cJSON *t;
        cJSON_ArrayForEach(t, type) {
            if (id < 0)
                break;
            if (!cJSON_IsString(t)) {
                id = fail(C, AIR_ERR_INVALID_ARG,
                          "JSON schema: \"type\" at %s%s lists something that is not a string",
                          path, "");
                break;
            }
            int c = compile_typed(C, sch, t->valuestring, -1, path);
            uint8_t set[256];
            if (c < 0 || first_bytes(C->S, (uint16_t)c, set) < 0) {
                id = -1;
                break;
            }
            for (int b = 0; b < 256; b++)
                if (set[b]) {
                    uint16_t old = tab[b];
                    if (old != AIR_SC_NONE && C->S->nodes[old].kind == SN_NUMBER)
                        continue; /* integer or number = number */
                    tab[b] = (uint16_t)c;
                }
        }
        if (id >= 0) {
            C->S->nodes[id].kind = SN_ANYOF;
            C->S->nodes[id].alt = tab;
        } else {
            free(tab);
        }
    } else {
        if (type && !cJSON_IsString(type))
            id = fail(C, AIR_ERR_INVALID_ARG,
                      "JSON schema: \"type\" at %s%s is not a string or a list of strings", path,
                      "");
        else
            id = compile_typed(C, sch, type ? type->valuestring : NULL, id, path);
    }
    C->nesting--;
    return id;
}

/* ------------------------------------------------------------------------- */
/* Costs                                                                      */
/* ------------------------------------------------------------------------- */

static uint32_t sat(uint64_t v) {
    return v >= AIR_SC_INF ? AIR_SC_INF : (uint32_t)v;
}

static uint32_t node_min(const air_schema *S, const sc_node *n) {
    uint64_t v = AIR_SC_INF;
    switch (n->kind) {
    case SN_ANY:
        return n->any_obj ? 2 : 1;
    case SN_STRING:
        return 2;
    case SN_NUMBER:
    case SN_INTEGER:
        return 1;
    case SN_BOOLEAN:
    case SN_NULL:
        return 4;
    case SN_ENUM:
        for (uint32_t i = 0; i < n->n_lit; i++)
            if (S->lits[n->lit0 + i].len < v)
                v = S->lits[n->lit0 + i].len;
        return sat(v);
    case SN_ANYOF:
        for (int b = 0; b < 256; b++)
            if (n->alt[b] != AIR_SC_NONE && S->nodes[n->alt[b]].min_len < v)
                v = S->nodes[n->alt[b]].min_len;
        return sat(v);
    case SN_ARRAY: {
        uint64_t mi = S->nodes[n->items].min_len;
        if (n->min_items == 0)
            return 2;
        if (mi >= AIR_SC_INF)
            return AIR_SC_INF;
        return sat(2 + (uint64_t)n->min_items * (mi + 1) - 1);
    }
    case SN_OBJECT: {
        if (n->ualt) {
            const sc_node *e = &S->nodes[S->props[n->prop0].child];
            for (uint32_t i = 0; i < e->n_lit; i++)
                if (S->nodes[n->ualt[i]].min_len < v)
                    v = S->nodes[n->ualt[i]].min_len;
            return sat(v);
        }
        uint64_t s = 0;
        int nreq = 0;
        for (uint32_t j = 0; j < n->n_props; j++) {
            const sc_prop *p = &S->props[n->prop0 + j];
            if (!p->required)
                continue;
            nreq++;
            s += 1 + (uint64_t)p->key.len + 1 + S->nodes[p->child].min_len;
        }
        return sat(s + 2 - (nreq > 0));
    }
    }
    return AIR_SC_INF;
}

static air_status finish(air_schema *S) {
    for (uint32_t i = 0; i < S->n_nodes; i++)
        S->nodes[i].min_len = AIR_SC_INF;
    for (int changed = 1, round = 0; changed && round < 10000; round++) {
        changed = 0;
        for (uint32_t i = 0; i < S->n_nodes; i++) {
            uint32_t v = node_min(S, &S->nodes[i]);
            if (v < S->nodes[i].min_len) {
                S->nodes[i].min_len = v;
                changed = 1;
            }
        }
    }
    if (S->nodes[S->root].min_len >= AIR_SC_INF)
        return air_err(AIR_ERR_INVALID_ARG,
                       "JSON schema: no value of this schema is shorter than 65535 bytes (required "
                       "properties or minItems recurse without end?)");
    for (uint32_t i = 0; i < S->n_nodes; i++) {
        sc_node *n = &S->nodes[i];
        if (n->kind != SN_OBJECT)
            continue;
        uint32_t np = n->n_props;
        n->req_suffix = calloc(np + 1, sizeof *n->req_suffix);
        n->req_count = calloc(np + 1, sizeof *n->req_count);
        n->kmask = calloc(np + 1, sizeof *n->kmask);
        if (!n->req_suffix || !n->req_count || !n->kmask)
            return air_err(AIR_ERR_NOMEM, "out of memory compiling a JSON schema");
        for (uint32_t k = np; k-- > 0;) {
            const sc_prop *p = &S->props[n->prop0 + k];
            n->req_suffix[k] = n->req_suffix[k + 1];
            n->req_count[k] = n->req_count[k + 1];
            if (p->required) {
                n->req_suffix[k] =
                    sat((uint64_t)n->req_suffix[k + 1] + 2 + p->key.len + S->nodes[p->child].min_len);
                n->req_count[k]++;
            }
            /* keys allowed when k is next: k .. the first required one */
            n->kmask[k] = (p->required ? 0 : n->kmask[k + 1]) | ((uint64_t)1 << k);
        }
    }
    for (uint32_t i = 0; i < S->n_nodes; i++) { /* unions: the cheapest branch after the const */
        sc_node *n = &S->nodes[i];
        if (!n->ualt)
            continue;
        const sc_node *e = &S->nodes[S->props[n->prop0].child];
        uint32_t best = AIR_SC_INF;
        uint16_t cnt = 0;
        for (uint32_t k = 0; k < e->n_lit; k++) {
            const sc_node *a = &S->nodes[n->ualt[k]];
            if (a->req_suffix[1] < best)
                best = a->req_suffix[1];
            cnt = a->req_count[1] > cnt ? a->req_count[1] : cnt;
        }
        n->req_suffix[1] = best;
        n->req_suffix[0] = sat((uint64_t)best + 2 + S->props[n->prop0].key.len + e->min_len);
        n->req_count[1] = cnt;
    }
    return AIR_OK;
}

/* ------------------------------------------------------------------------- */
/* Public                                                                     */
/* ------------------------------------------------------------------------- */

static int only_objects(const sc_node *n) {
    for (int c = 0; c < 256; c++)
        if (n->alt[c] != AIR_SC_NONE && c != '{')
            return 0;
    return 1;
}

air_status air_schema_compile(const cJSON *schema, air_schema **out) {
    *out = NULL;
    if (!schema)
        return air_err(AIR_ERR_INVALID_ARG, "JSON schema: no schema");
    air_schema *S = calloc(1, sizeof *S);
    compiler C = {0};
    if (!S)
        return air_err(AIR_ERR_NOMEM, "out of memory compiling a JSON schema");
    C.S = S;
    C.root = schema;
    int root = compile(&C, schema, "#");
    air_status st = C.st;
    free(C.memo);
    if (!st && root < 0)
        st = air_err(AIR_ERR_INTERNAL, "JSON schema: compiling failed without a reason");
    if (!st) {
        S->root = (uint16_t)root;
        const sc_node *r = &S->nodes[root];
        if (r->kind == SN_ANY)
            S->nodes[root].any_obj = 1; /* a free root is a free object */
        else if (r->kind != SN_OBJECT && !(r->kind == SN_ANYOF && only_objects(r)))
            st = air_err(AIR_ERR_UNSUPPORTED,
                         "JSON schema: the root must describe an object (\"type\": \"object\")");
    }
    if (!st)
        st = finish(S);
    if (st) {
        air_schema_free(S);
        return st;
    }
    *out = S;
    return AIR_OK;
}

air_status air_schema_compile_text(const char *json, air_schema **out) {
    *out = NULL;
    cJSON *j = cJSON_Parse(json ? json : "");
    if (!j)
        return air_err(AIR_ERR_INVALID_ARG, "JSON schema: the schema is not valid JSON");
    air_status st = air_schema_compile(j, out);
    cJSON_Delete(j);
    return st;
}

void air_schema_free(air_schema *S) {
    if (!S)
        return;
    for (uint32_t i = 0; i < S->n_nodes; i++) {
        free(S->nodes[i].req_suffix);
        free(S->nodes[i].req_count);
        free(S->nodes[i].kmask);
        free(S->nodes[i].alt);
        free(S->nodes[i].ualt);
    }
    free(S->nodes);
    free(S->props);
    free(S->lits);
    free(S->pool);
    free(S);
}
