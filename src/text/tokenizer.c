/*
 * tokenizer.c - loading tokenizer.json / tokenizer_config.json, added tokens,
 * the encode pipeline and the small accessors of the public API.
 *
 * Loading follows HF's deserializer (tokenizers/src/tokenizer/serialization.rs):
 * model first, then normalizer / pre-tokenizer / post-processor / decoder,
 * then the added tokens, whose ids are assigned like AddedVocabulary::add_tokens
 * (an existing vocabulary entry keeps its id, a new one gets the next id).
 * Anything we do not implement is an AIR_ERR_UNSUPPORTED error naming the
 * component and its JSON path, never a silent approximation.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "text/tokenizer_internal.h"
#include "util/fileio.h"

#define GPT2_REGEX                                                                                 \
    "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+"

static air_status oom(void) {
    return air_err(AIR_ERR_NOMEM, "out of memory loading tokenizer");
}

/* ========================================================================= */
/* Allocation / finalization                                                  */
/* ========================================================================= */
air_tokenizer *tk_alloc(void) {
    air_tokenizer *t = calloc(1, sizeof *t);
    if (!t)
        return NULL;
    t->bpe.unk_id = -1;
    t->bos_id = t->eos_id = -1;
    return t;
}

void air_tokenizer_free(air_tokenizer *t) {
    if (!t)
        return;
    tk_bpe_free(&t->bpe);
    for (size_t i = 0; i < t->n_norm; i++)
        tk_pattern_free(&t->norm[i].pat);
    for (size_t i = 0; i < t->n_pre; i++)
        tk_pattern_free(&t->pre[i].pat);
    for (size_t i = 0; i < t->n_dec; i++)
        tk_pattern_free(&t->dec[i].pat);
    free(t->norm);
    free(t->pre);
    free(t->dec);
    free(t->post.pre);
    free(t->post.post);
    free(t->tok_str);
    free(t->tok_len);
    free(t->dec_str);
    free(t->dec_len);
    free(t->special);
    free(t->added);
    tk_strmap_free(&t->added_map);
    tk_pairmap_free(&t->trie_raw.edges);
    tk_pairmap_free(&t->trie_norm.edges);
    free(t->trie_raw.term);
    free(t->trie_norm.term);
    tk_arena_free(&t->arena);
    free(t);
}

air_status tk_add_added(air_tokenizer *t, int32_t id, const char *content, size_t len, int special,
                        int lstrip, int rstrip, int single_word, int normalized, size_t *cap) {
    if (t->n_added == *cap) {
        size_t c = *cap ? *cap * 2 : 64;
        tk_added *a = realloc(t->added, c * sizeof *a);
        if (!a)
            return oom();
        t->added = a;
        *cap = c;
    }
    tk_added *a = &t->added[t->n_added];
    memset(a, 0, sizeof *a);
    a->id = id;
    a->content = tk_arena_strdup(&t->arena, content, len);
    if (!a->content)
        return oom();
    a->len = len;
    a->norm = a->content;
    a->norm_len = len;
    a->special = (uint8_t) !!special;
    a->lstrip = (uint8_t) !!lstrip;
    a->rstrip = (uint8_t) !!rstrip;
    a->single_word = (uint8_t) !!single_word;
    a->normalized = (uint8_t) !!normalized;
    if (normalized && t->n_norm) {
        tk_bytes nb = {0};
        tk_matcher mt = {0};
        air_status st = tk_normalize(t, &mt, content, len, &nb, NULL);
        tk_matcher_free(&mt);
        if (st) {
            free(nb.p);
            return st;
        }
        a->norm = tk_arena_strdup(&t->arena, nb.p ? nb.p : "", nb.n);
        a->norm_len = nb.n;
        free(nb.p);
        if (!a->norm)
            return oom();
    }
    t->n_added++;
    if (tk_strmap_put(&t->added_map, a->content, len, id))
        return oom();
    return AIR_OK;
}

static int trie_node(tk_trie *tr) {
    if (tr->n_nodes == tr->cap_nodes) {
        int32_t c = tr->cap_nodes ? tr->cap_nodes * 2 : 256;
        int32_t *x = realloc(tr->term, (size_t)c * sizeof *x);
        if (!x)
            return -1;
        tr->term = x;
        tr->cap_nodes = c;
    }
    tr->term[tr->n_nodes] = -1;
    return tr->n_nodes++;
}

static int trie_add(tk_trie *tr, const char *s, size_t n, int32_t idx) {
    if (!n)
        return 0;
    if (tr->n_nodes == 0 && trie_node(tr) < 0)
        return -1;
    int32_t node = 0;
    tr->first[(unsigned char)s[0]] = 1;
    for (size_t i = 0; i < n; i++) {
        const tk_pairslot *k = tk_pairmap_find(&tr->edges, node, (unsigned char)s[i]);
        if (k) {
            node = k->newid;
            continue;
        }
        int nn = trie_node(tr);
        if (nn < 0 || tk_pairmap_put(&tr->edges, node, (unsigned char)s[i], 0, nn))
            return -1;
        node = nn;
    }
    if (tr->term[node] < 0) /* first one wins for identical content */
        tr->term[node] = idx;
    return 0;
}

air_status tk_finalize(air_tokenizer *t) {
    int32_t n = t->n_ids;
    for (size_t i = 0; i < t->n_added; i++)
        if (t->added[i].id + 1 > n)
            n = t->added[i].id + 1;
    if (n > t->n_ids) {
        char **s = realloc(t->tok_str, (size_t)n * sizeof *s);
        if (!s)
            return oom();
        t->tok_str = s;
        uint32_t *l = realloc(t->tok_len, (size_t)n * sizeof *l);
        if (!l)
            return oom();
        t->tok_len = l;
        for (int32_t i = t->n_ids; i < n; i++) {
            t->tok_str[i] = NULL;
            t->tok_len[i] = 0;
        }
    }
    t->n_ids = n;
    t->dec_str = malloc((size_t)(n ? n : 1) * sizeof *t->dec_str);
    t->dec_len = malloc((size_t)(n ? n : 1) * sizeof *t->dec_len);
    t->special = calloc((size_t)(n ? n : 1), 1);
    if (!t->dec_str || !t->dec_len || !t->special)
        return oom();
    /* byte tables see only the model vocabulary */
    tk_bpe_build_byte_tables(&t->bpe);
    memcpy(t->dec_str, t->tok_str, (size_t)n * sizeof *t->dec_str);
    memcpy(t->dec_len, t->tok_len, (size_t)n * sizeof *t->dec_len);
    for (size_t i = 0; i < t->n_added; i++) {
        tk_added *a = &t->added[i];
        t->tok_str[a->id] = a->content;
        t->tok_len[a->id] = (uint32_t)a->len;
        t->dec_str[a->id] = a->norm;
        t->dec_len[a->id] = (uint32_t)a->norm_len;
        if (a->special)
            t->special[a->id] = 1;
        tk_trie *tr = a->normalized ? &t->trie_norm : &t->trie_raw;
        if (trie_add(tr, a->normalized ? a->norm : a->content, a->normalized ? a->norm_len : a->len,
                     (int32_t)i))
            return oom();
        if (a->normalized)
            t->has_trie_norm = 1;
        else
            t->has_trie_raw = 1;
    }
    /* special flags by content, as HF's is_special_token(content): a
     * non-special added token with the content of a special one is special */
    tk_strmap spc = {0};
    for (size_t i = 0; i < t->n_added; i++)
        if (t->added[i].special && tk_strmap_put(&spc, t->added[i].content, t->added[i].len, 1)) {
            tk_strmap_free(&spc);
            return oom();
        }
    for (size_t i = 0; i < t->n_added && spc.count; i++)
        if (!t->added[i].special && tk_strmap_get(&spc, t->added[i].content, t->added[i].len) >= 0)
            t->special[t->added[i].id] = 1;
    tk_strmap_free(&spc);
    t->bpe.cache = tk_cache_new(1 << 16);
    if (!t->bpe.cache)
        return oom();
    if (t->n_pre > TK_MAX_PRE)
        return air_err(AIR_ERR_UNSUPPORTED, "tokenizer has %zu pre-tokenizer steps (at most %d)",
                       t->n_pre, TK_MAX_PRE);
    return AIR_OK;
}

/* ========================================================================= */
/* JSON helpers                                                               */
/* ========================================================================= */
typedef struct {
    const char *file;
    char path[256];
} jctx;

static const char *jpath_push(jctx *c, const char *fmt, const char *key, size_t idx, char *saved) {
    size_t l = strlen(c->path);
    memcpy(saved, c->path, l + 1);
    if (key)
        snprintf(c->path + l, sizeof c->path - l, "%s%s", l ? "." : "", key);
    else
        snprintf(c->path + l, sizeof c->path - l, fmt, idx);
    return c->path;
}
#define PATH_SAVE char saved_path_[256]
#define PATH_KEY(c, k) jpath_push((c), NULL, (k), 0, saved_path_)
#define PATH_IDX(c, i) jpath_push((c), "[%zu]", NULL, (i), saved_path_)
#define PATH_RESTORE(c) memcpy((c)->path, saved_path_, strlen(saved_path_) + 1)

static air_status jbad(jctx *c, const char *what) {
    return air_err(AIR_ERR_FORMAT, "%s: %s: %s", c->file, c->path[0] ? c->path : "(root)", what);
}

/* A JSON number as an id/count in [0, 2^31): -1 otherwise (no UB casts). */
static int32_t jint(const tj_val *v) {
    if (!v || v->type != TJ_NUM || !(v->u.num >= 0.0) || v->u.num >= 2147483647.0)
        return -1;
    return (int32_t)v->u.num;
}

static int jbool(const tj_val *v, int dflt) {
    if (!v)
        return dflt;
    if (v->type == TJ_TRUE)
        return 1;
    if (v->type == TJ_FALSE)
        return 0;
    return dflt;
}

static const char *jtype(const tj_val *obj) {
    const tj_val *t = tj_get(obj, "type");
    return tj_is_str(t) ? t->u.s : NULL;
}

/* Reads {"String": s} or {"Regex": r} (HF SplitPattern/ReplacePattern). */
static air_status jpattern(jctx *c, const tj_val *v, tk_pattern *p) {
    PATH_SAVE;
    PATH_KEY(c, "pattern");
    air_status st;
    const tj_val *s = tj_get(v, "String"), *r = tj_get(v, "Regex");
    if (tj_is_str(v)) /* plain string: a literal */
        st = tk_pattern_init(p, v->u.s, v->n, 0, c->path);
    else if (tj_is_str(s))
        st = tk_pattern_init(p, s->u.s, s->n, 0, c->path);
    else if (tj_is_str(r)) {
        char where[400];
        snprintf(where, sizeof where, "%s: %s", c->file, c->path);
        st = tk_pattern_init(p, r->u.s, r->n, 1, where);
    } else
        st = jbad(c, "expected {\"String\": ...} or {\"Regex\": ...}");
    PATH_RESTORE(c);
    return st;
}

static air_status jbehavior(jctx *c, const tj_val *v, tk_split_behavior *b) {
    static const char *names[] = {"Removed", "Isolated", "MergedWithPrevious", "MergedWithNext",
                                  "Contiguous"};
    if (!v)
        return jbad(c, "missing \"behavior\"");
    for (int i = 0; i < 5; i++)
        if (tj_is_str(v) && !strcmp(v->u.s, names[i])) {
            *b = (tk_split_behavior)i;
            return AIR_OK;
        }
    return jbad(c, "unknown split behavior (expected Removed, Isolated, MergedWithPrevious, "
                   "MergedWithNext or Contiguous)");
}

static air_status jchar(jctx *c, const tj_val *v, const char *key, uint32_t *out) {
    if (!tj_is_str(v) || v->n == 0)
        return air_err(AIR_ERR_FORMAT, "%s: %s: \"%s\" must be a one-character string", c->file,
                       c->path, key);
    tk_utf8_next((const unsigned char *)v->u.s, out);
    return AIR_OK;
}

static air_status jprepend_scheme(jctx *c, const tj_val *obj, int *out) {
    const tj_val *ps = tj_get(obj, "prepend_scheme");
    const tj_val *aps = tj_get(obj, "add_prefix_space");
    *out = TK_PREPEND_ALWAYS;
    if (tj_is_str(ps)) {
        if (!strcmp(ps->u.s, "always"))
            *out = TK_PREPEND_ALWAYS;
        else if (!strcmp(ps->u.s, "first"))
            *out = TK_PREPEND_FIRST;
        else if (!strcmp(ps->u.s, "never"))
            *out = TK_PREPEND_NEVER;
        else
            return jbad(c, "unknown prepend_scheme (expected always, first or never)");
    }
    if (aps && aps->type == TJ_FALSE)
        *out = TK_PREPEND_NEVER;
    return AIR_OK;
}

/* ========================================================================= */
/* Components                                                                 */
/* ========================================================================= */
static void *grow(void *p, size_t *cap, size_t n, size_t sz) {
    if (n < *cap)
        return p;
    size_t c = *cap ? *cap * 2 : 4;
    void *q = realloc(p, c * sz);
    if (q)
        *cap = c;
    return q;
}

static air_status load_normalizer(air_tokenizer *t, jctx *c, const tj_val *v, size_t *cap) {
    if (!v || v->type == TJ_NULL)
        return AIR_OK;
    if (v->type != TJ_OBJ)
        return jbad(c, "a normalizer must be an object");
    const char *type = jtype(v);
    if (!type)
        return jbad(c, "normalizer without \"type\"");
    if (!strcmp(type, "Sequence")) {
        const tj_val *l = tj_get(v, "normalizers");
        if (!l || l->type != TJ_ARR)
            return jbad(c, "Sequence needs a \"normalizers\" array");
        for (uint32_t i = 0; i < l->n; i++) {
            PATH_SAVE;
            PATH_KEY(c, "normalizers");
            char s2[256];
            jpath_push(c, "[%zu]", NULL, i, s2);
            air_status st = load_normalizer(t, c, &l->u.items[i], cap);
            PATH_RESTORE(c);
            if (st)
                return st;
        }
        return AIR_OK;
    }
    tk_norm *arr = grow(t->norm, cap, t->n_norm, sizeof *t->norm);
    if (!arr)
        return oom();
    t->norm = arr;
    tk_norm *nz = &t->norm[t->n_norm];
    memset(nz, 0, sizeof *nz);
    if (!strcmp(type, "NFC"))
        nz->type = TK_NORM_NFC;
    else if (!strcmp(type, "NFD"))
        nz->type = TK_NORM_NFD;
    else if (!strcmp(type, "NFKC"))
        nz->type = TK_NORM_NFKC;
    else if (!strcmp(type, "NFKD"))
        nz->type = TK_NORM_NFKD;
    else if (!strcmp(type, "Lowercase"))
        nz->type = TK_NORM_LOWERCASE;
    else if (!strcmp(type, "StripAccents"))
        nz->type = TK_NORM_STRIP_ACCENTS;
    else if (!strcmp(type, "Nmt"))
        nz->type = TK_NORM_NMT;
    else if (!strcmp(type, "ByteLevel"))
        nz->type = TK_NORM_BYTELEVEL;
    else if (!strcmp(type, "Strip")) {
        nz->type = TK_NORM_STRIP;
        nz->left = jbool(tj_get(v, "strip_left"), 1);
        nz->right = jbool(tj_get(v, "strip_right"), 1);
    } else if (!strcmp(type, "Prepend")) {
        const tj_val *p = tj_get(v, "prepend");
        if (!tj_is_str(p))
            return jbad(c, "Prepend needs a \"prepend\" string");
        nz->type = TK_NORM_PREPEND;
        nz->content = tk_arena_strdup(&t->arena, p->u.s, p->n);
        nz->content_len = p->n;
    } else if (!strcmp(type, "Replace")) {
        const tj_val *p = tj_get(v, "pattern"), *ct = tj_get(v, "content");
        if (!p || !tj_is_str(ct))
            return jbad(c, "Replace needs \"pattern\" and \"content\"");
        nz->type = TK_NORM_REPLACE;
        air_status st = jpattern(c, p, &nz->pat);
        if (st)
            return st;
        nz->content = tk_arena_strdup(&t->arena, ct->u.s, ct->n);
        nz->content_len = ct->n;
    } else {
        return air_err(AIR_ERR_UNSUPPORTED,
                       "%s: %s: unknown normalizer type \"%s\" (supported: Sequence, NFC, NFD, "
                       "NFKC, NFKD, Lowercase, Strip, StripAccents, Replace, Prepend, ByteLevel, "
                       "Nmt)",
                       c->file, c->path, type);
    }
    if ((nz->type == TK_NORM_PREPEND || nz->type == TK_NORM_REPLACE) && !nz->content) {
        tk_pattern_free(&nz->pat);
        return oom();
    }
    t->n_norm++;
    return AIR_OK;
}

static air_status load_pretok(air_tokenizer *t, jctx *c, const tj_val *v, size_t *cap) {
    if (!v || v->type == TJ_NULL)
        return AIR_OK;
    if (v->type != TJ_OBJ)
        return jbad(c, "a pre-tokenizer must be an object");
    const char *type = jtype(v);
    if (!type)
        return jbad(c, "pre-tokenizer without \"type\"");
    if (!strcmp(type, "Sequence")) {
        const tj_val *l = tj_get(v, "pretokenizers");
        if (!l || l->type != TJ_ARR)
            return jbad(c, "Sequence needs a \"pretokenizers\" array");
        for (uint32_t i = 0; i < l->n; i++) {
            PATH_SAVE;
            PATH_KEY(c, "pretokenizers");
            char s2[256];
            jpath_push(c, "[%zu]", NULL, i, s2);
            air_status st = load_pretok(t, c, &l->u.items[i], cap);
            PATH_RESTORE(c);
            if (st)
                return st;
        }
        return AIR_OK;
    }
    tk_pre *arr = grow(t->pre, cap, t->n_pre, sizeof *t->pre);
    if (!arr)
        return oom();
    t->pre = arr;
    tk_pre *p = &t->pre[t->n_pre];
    memset(p, 0, sizeof *p);
    air_status st = AIR_OK;
    if (!strcmp(type, "Split")) {
        p->type = TK_PRE_SPLIT;
        const tj_val *pat = tj_get(v, "pattern");
        if (!pat)
            return jbad(c, "Split needs a \"pattern\"");
        st = jbehavior(c, tj_get(v, "behavior"), &p->behavior);
        if (!st)
            st = jpattern(c, pat, &p->pat);
        p->invert = jbool(tj_get(v, "invert"), 0);
    } else if (!strcmp(type, "ByteLevel")) {
        p->type = TK_PRE_BYTELEVEL;
        p->add_prefix_space = jbool(tj_get(v, "add_prefix_space"), 1);
        p->use_regex = jbool(tj_get(v, "use_regex"), 1);
        if (p->use_regex)
            st = tk_pattern_init(&p->pat, GPT2_REGEX, strlen(GPT2_REGEX), 1, "ByteLevel regex");
    } else if (!strcmp(type, "Metaspace")) {
        p->type = TK_PRE_METASPACE;
        st = jchar(c, tj_get(v, "replacement"), "replacement", &p->replacement);
        if (!st)
            st = jprepend_scheme(c, v, &p->prepend_scheme);
        p->split = jbool(tj_get(v, "split"), 1);
    } else if (!strcmp(type, "Digits")) {
        p->type = TK_PRE_DIGITS;
        p->individual_digits = jbool(tj_get(v, "individual_digits"), 0);
    } else if (!strcmp(type, "Punctuation")) {
        p->type = TK_PRE_PUNCTUATION;
        p->behavior = TK_SPLIT_ISOLATED;
        if (tj_get(v, "behavior"))
            st = jbehavior(c, tj_get(v, "behavior"), &p->behavior);
    } else if (!strcmp(type, "Whitespace")) {
        p->type = TK_PRE_WHITESPACE;
    } else if (!strcmp(type, "WhitespaceSplit")) {
        p->type = TK_PRE_WHITESPACE_SPLIT;
    } else if (!strcmp(type, "BertPreTokenizer")) {
        p->type = TK_PRE_BERT;
    } else {
        return air_err(AIR_ERR_UNSUPPORTED,
                       "%s: %s: unknown pre-tokenizer type \"%s\" (supported: Sequence, Split, "
                       "ByteLevel, Metaspace, Digits, Punctuation, Whitespace, WhitespaceSplit, "
                       "BertPreTokenizer)",
                       c->file, c->path, type);
    }
    if (st) {
        tk_pattern_free(&p->pat);
        return st;
    }
    t->n_pre++;
    return AIR_OK;
}

static air_status load_decoder(air_tokenizer *t, jctx *c, const tj_val *v, size_t *cap) {
    if (!v || v->type == TJ_NULL)
        return AIR_OK;
    if (v->type != TJ_OBJ)
        return jbad(c, "a decoder must be an object");
    const char *type = jtype(v);
    if (!type)
        return jbad(c, "decoder without \"type\"");
    t->has_decoder = 1;
    if (!strcmp(type, "Sequence")) {
        const tj_val *l = tj_get(v, "decoders");
        if (!l || l->type != TJ_ARR)
            return jbad(c, "Sequence needs a \"decoders\" array");
        for (uint32_t i = 0; i < l->n; i++) {
            PATH_SAVE;
            PATH_KEY(c, "decoders");
            char s2[256];
            jpath_push(c, "[%zu]", NULL, i, s2);
            air_status st = load_decoder(t, c, &l->u.items[i], cap);
            PATH_RESTORE(c);
            if (st)
                return st;
        }
        return AIR_OK;
    }
    tk_dec *arr = grow(t->dec, cap, t->n_dec, sizeof *t->dec);
    if (!arr)
        return oom();
    t->dec = arr;
    tk_dec *d = &t->dec[t->n_dec];
    memset(d, 0, sizeof *d);
    air_status st = AIR_OK;
    if (!strcmp(type, "ByteLevel"))
        d->type = TK_DEC_BYTELEVEL;
    else if (!strcmp(type, "ByteFallback"))
        d->type = TK_DEC_BYTEFALLBACK;
    else if (!strcmp(type, "Fuse"))
        d->type = TK_DEC_FUSE;
    else if (!strcmp(type, "Metaspace")) {
        d->type = TK_DEC_METASPACE;
        st = jchar(c, tj_get(v, "replacement"), "replacement", &d->ch);
        if (!st)
            st = jprepend_scheme(c, v, &d->prepend_scheme);
    } else if (!strcmp(type, "Strip")) {
        d->type = TK_DEC_STRIP;
        st = jchar(c, tj_get(v, "content"), "content", &d->ch);
        const tj_val *a = tj_get(v, "start"), *b = tj_get(v, "stop");
        d->start = jint(a) > 0 ? jint(a) : 0;
        d->stop = jint(b) > 0 ? jint(b) : 0;
    } else if (!strcmp(type, "Replace")) {
        const tj_val *p = tj_get(v, "pattern"), *ct = tj_get(v, "content");
        if (!p || !tj_is_str(ct))
            return jbad(c, "Replace needs \"pattern\" and \"content\"");
        d->type = TK_DEC_REPLACE;
        st = jpattern(c, p, &d->pat);
        d->content = tk_arena_strdup(&t->arena, ct->u.s, ct->n);
        d->content_len = ct->n;
        if (!st && !d->content)
            st = oom();
    } else if (!strcmp(type, "BPEDecoder")) {
        const tj_val *s = tj_get(v, "suffix");
        d->type = TK_DEC_BPE;
        d->content =
            tk_arena_strdup(&t->arena, tj_is_str(s) ? s->u.s : "</w>", tj_is_str(s) ? s->n : 4);
        d->content_len = tj_is_str(s) ? s->n : 4;
        if (!d->content)
            st = oom();
    } else if (!strcmp(type, "WordPiece")) {
        const tj_val *s = tj_get(v, "prefix");
        d->type = TK_DEC_WORDPIECE;
        d->content =
            tk_arena_strdup(&t->arena, tj_is_str(s) ? s->u.s : "##", tj_is_str(s) ? s->n : 2);
        d->content_len = tj_is_str(s) ? s->n : 2;
        d->cleanup = jbool(tj_get(v, "cleanup"), 1);
        if (!d->content)
            st = oom();
    } else {
        return air_err(AIR_ERR_UNSUPPORTED,
                       "%s: %s: unknown decoder type \"%s\" (supported: Sequence, ByteLevel, "
                       "Metaspace, Replace, ByteFallback, Fuse, Strip, BPEDecoder, WordPiece)",
                       c->file, c->path, type);
    }
    if (st) {
        tk_pattern_free(&d->pat);
        return st;
    }
    t->n_dec++;
    return AIR_OK;
}

/* Post-processors: accumulated as ids before / after the sequence. */
static int ids_cat(int32_t **dst, size_t *n, const int32_t *src, size_t m, int front) {
    int32_t *x = malloc((*n + m + 1) * sizeof *x);
    if (!x)
        return -1;
    if (front) {
        if (m)
            memcpy(x, src, m * sizeof *x);
        if (*n)
            memcpy(x + m, *dst, *n * sizeof *x);
    } else {
        if (*n)
            memcpy(x, *dst, *n * sizeof *x);
        if (m)
            memcpy(x + *n, src, m * sizeof *x);
    }
    free(*dst);
    *dst = x;
    *n += m;
    return 0;
}

static air_status special_ids(air_tokenizer *t, jctx *c, const tj_val *sp, const char *name,
                              size_t nlen, tk_ids *out) {
    /* TemplateProcessing special_tokens: {"<bos>": {"id": "<bos>", "ids": [2], ...}} */
    for (uint32_t i = 0; sp && sp->type == TJ_OBJ && i < sp->n; i++) {
        if (sp->keys[i].n != nlen || memcmp(sp->keys[i].s, name, nlen))
            continue;
        const tj_val *ids = tj_get(&sp->u.items[i], "ids");
        if (!ids || ids->type != TJ_ARR)
            return jbad(c, "special token without an \"ids\" array");
        for (uint32_t k = 0; k < ids->n; k++)
            if (jint(&ids->u.items[k]) < 0 || tk_ids_push(out, jint(&ids->u.items[k])))
                return jbad(c, "bad special token id");
        return AIR_OK;
    }
    (void)t;
    return air_err(AIR_ERR_FORMAT,
                   "%s: %s: template uses special token \"%.*s\" missing from "
                   "special_tokens",
                   c->file, c->path, (int)nlen, name);
}

static air_status load_post(air_tokenizer *t, jctx *c, const tj_val *v) {
    if (!v || v->type == TJ_NULL)
        return AIR_OK;
    const char *type = jtype(v);
    if (!type)
        return jbad(c, "post-processor without \"type\"");
    t->has_post = 1;
    if (!strcmp(type, "Sequence")) {
        const tj_val *l = tj_get(v, "processors");
        if (!l || l->type != TJ_ARR)
            return jbad(c, "Sequence needs a \"processors\" array");
        for (uint32_t i = 0; i < l->n; i++) {
            PATH_SAVE;
            PATH_KEY(c, "processors");
            char s2[256];
            jpath_push(c, "[%zu]", NULL, i, s2);
            air_status st = load_post(t, c, &l->u.items[i]);
            PATH_RESTORE(c);
            if (st)
                return st;
        }
        return AIR_OK;
    }
    tk_ids pre = {0}, post = {0};
    air_status st = AIR_OK;
    if (!strcmp(type, "ByteLevel")) {
        return AIR_OK;
    } else if (!strcmp(type, "TemplateProcessing")) {
        const tj_val *single = tj_get(v, "single"), *sp = tj_get(v, "special_tokens");
        if (!single || single->type != TJ_ARR)
            return jbad(c, "TemplateProcessing needs a \"single\" array");
        int seen_a = 0; /* errors break out: pre/post are freed below */
        for (uint32_t i = 0; i < single->n && !st; i++) {
            const tj_val *it = &single->u.items[i];
            const tj_val *stok = tj_get(it, "SpecialToken"), *seq = tj_get(it, "Sequence");
            const char *name = NULL;
            size_t nlen = 0;
            int is_seq = 0;
            if (stok) {
                const tj_val *id = tj_get(stok, "id");
                if (!tj_is_str(id)) {
                    st = jbad(c, "SpecialToken without an id");
                    break;
                }
                name = id->u.s;
                nlen = id->n;
            } else if (seq) {
                is_seq = 1;
            } else if (tj_is_str(it)) { /* "$A", "$B:1", "[CLS]", "[CLS]:0" */
                name = it->u.s;
                nlen = it->n;
                const char *colon = memchr(name, ':', nlen);
                if (colon)
                    nlen = (size_t)(colon - name);
                if (nlen >= 1 && name[0] == '$')
                    is_seq = 1;
            } else {
                st = jbad(c, "bad template piece");
                break;
            }
            if (is_seq) {
                if (seen_a) {
                    st = jbad(c, "single template with two sequences");
                    break;
                }
                seen_a = 1;
                continue;
            }
            st = special_ids(t, c, sp, name, nlen, seen_a ? &post : &pre);
        }
        if (!st && !seen_a)
            st = jbad(c, "single template without the sequence $A");
    } else if (!strcmp(type, "BertProcessing") || !strcmp(type, "RobertaProcessing")) {
        const tj_val *cls = tj_get(v, "cls"), *sep = tj_get(v, "sep");
        if (!cls || cls->type != TJ_ARR || cls->n != 2 || jint(&cls->u.items[1]) < 0 || !sep ||
            sep->type != TJ_ARR || sep->n != 2 || jint(&sep->u.items[1]) < 0)
            return jbad(c, "cls/sep must be [token, id] pairs");
        if (tk_ids_push(&pre, jint(&cls->u.items[1])) || tk_ids_push(&post, jint(&sep->u.items[1])))
            st = oom();
    } else {
        return air_err(AIR_ERR_UNSUPPORTED,
                       "%s: %s: unknown post-processor type \"%s\" (supported: Sequence, "
                       "TemplateProcessing, ByteLevel, BertProcessing, RobertaProcessing)",
                       c->file, c->path, type);
    }
    if (!st && (ids_cat(&t->post.pre, &t->post.n_pre, pre.v, pre.n, 1) ||
                ids_cat(&t->post.post, &t->post.n_post, post.v, post.n, 0)))
        st = oom();
    free(pre.v);
    free(post.v);
    return st;
}

/* ========================================================================= */
/* Model                                                                      */
/* ========================================================================= */
static air_status set_affix(char **dst, size_t *dlen, const tj_val *v) {
    if (!tj_is_str(v) || v->n == 0)
        return AIR_OK;
    *dst = malloc(v->n + 1);
    if (!*dst)
        return oom();
    memcpy(*dst, v->u.s, v->n + 1);
    *dlen = v->n;
    return AIR_OK;
}

/* One merge as two strings ("a b" or ["a", "b"]); -1 if malformed. */
static int merge_parts(const tj_val *mv, const char **a, size_t *an, const char **b, size_t *bn) {
    if (mv->type == TJ_STR) {
        const char *sp = memchr(mv->u.s, ' ', mv->n);
        if (!sp || memchr(sp + 1, ' ', mv->n - (size_t)(sp + 1 - mv->u.s)))
            return -1;
        *a = mv->u.s;
        *an = (size_t)(sp - mv->u.s);
        *b = sp + 1;
        *bn = mv->n - *an - 1;
        return 0;
    }
    if (mv->type == TJ_ARR && mv->n == 2 && tj_is_str(&mv->u.items[0]) &&
        tj_is_str(&mv->u.items[1])) {
        *a = mv->u.items[0].u.s;
        *an = mv->u.items[0].n;
        *b = mv->u.items[1].u.s;
        *bn = mv->u.items[1].n;
        return 0;
    }
    return -1;
}

#define MERGE_PF 12 /* prefetch distance */

static air_status load_merges(jctx *c, tk_bpe *b, const tj_val *merges) {
    size_t n = merges->n, pl = b->prefix_len;
    int32_t *ids = malloc((n ? n : 1) * 3 * sizeof *ids);
    char stackbuf[512], pfbuf[512];
    air_status st = AIR_OK;
    if (!ids || tk_pairmap_init(&b->merges, n)) {
        free(ids);
        return oom();
    }
    for (size_t i = 0; i < n; i++) {
        const char *a, *bb;
        size_t an, bn;
        if (i + MERGE_PF < n && !merge_parts(&merges->u.items[i + MERGE_PF], &a, &an, &bb, &bn)) {
            tk_strmap_prefetch(&b->vocab, a, an);
            tk_strmap_prefetch(&b->vocab, bb, bn);
            if (bn >= pl && an + bn - pl <= sizeof pfbuf) {
                memcpy(pfbuf, a, an);
                memcpy(pfbuf + an, bb + pl, bn - pl);
                tk_strmap_prefetch(&b->vocab, pfbuf, an + bn - pl);
            }
        }
        const tj_val *mv = &merges->u.items[i];
        if (merge_parts(mv, &a, &an, &bb, &bn)) {
            st = mv->type == TJ_STR
                     ? air_err(AIR_ERR_FORMAT,
                               "%s: model.merges[%zu]: \"%.*s\" is not two tokens separated by "
                               "one space",
                               c->file, i, (int)(mv->n > 80 ? 80 : mv->n), mv->u.s)
                     : air_err(AIR_ERR_FORMAT,
                               "%s: model.merges[%zu]: expected \"a b\" or [\"a\", \"b\"]", c->file,
                               i);
            break;
        }
        int32_t ia = tk_strmap_get(&b->vocab, a, an), ib = tk_strmap_get(&b->vocab, bb, bn);
        if (ia < 0 || ib < 0 || bn < pl) {
            st = air_err(AIR_ERR_FORMAT,
                         "%s: model.merges[%zu]: token \"%.*s\" is not in the vocabulary", c->file,
                         i, ia < 0 ? (int)an : (int)bn, ia < 0 ? a : bb);
            break;
        }
        size_t mn = an + bn - pl;
        char *buf = mn <= sizeof stackbuf ? stackbuf : malloc(mn);
        if (!buf) {
            st = oom();
            break;
        }
        memcpy(buf, a, an);
        memcpy(buf + an, bb + pl, bn - pl);
        int32_t inew = tk_strmap_get(&b->vocab, buf, mn);
        if (buf != stackbuf)
            free(buf);
        if (inew < 0) {
            st = air_err(AIR_ERR_FORMAT,
                         "%s: model.merges[%zu]: merged token \"%.*s%.*s\" is not in the "
                         "vocabulary",
                         c->file, i, (int)an, a, (int)(bn - pl), bb + pl);
            break;
        }
        ids[3 * i] = ia;
        ids[3 * i + 1] = ib;
        ids[3 * i + 2] = inew;
    }
    /* later duplicates overwrite earlier ones, like HF's HashMap collect */
    for (size_t i = 0; !st && i < n; i++) {
        if (i + MERGE_PF < n) {
            uint64_t k = ((uint64_t)(uint32_t)ids[3 * (i + MERGE_PF)] << 32) |
                         (uint32_t)ids[3 * (i + MERGE_PF) + 1];
            __builtin_prefetch(&b->merges.slots[tk_pair_hash(k) & b->merges.mask], 1);
        }
        if (tk_pairmap_put(&b->merges, ids[3 * i], ids[3 * i + 1], (int32_t)i, ids[3 * i + 2]))
            st = oom();
    }
    free(ids);
    return st;
}

static air_status load_model(air_tokenizer *t, jctx *c, const tj_val *m) {
    PATH_SAVE;
    PATH_KEY(c, "model");
    air_status st = AIR_OK;
    tk_bpe *b = &t->bpe;
    const tj_val *vocab = tj_get(m, "vocab"), *merges = tj_get(m, "merges");
    const char *type = jtype(m);
    if (!m || m->type != TJ_OBJ) {
        st = jbad(c, "missing model object");
        goto out;
    }
    if (type && strcmp(type, "BPE") != 0) {
        st = air_err(AIR_ERR_UNSUPPORTED,
                     "%s: model.type: model \"%s\" is not supported (only BPE: byte-level or "
                     "SentencePiece-style)",
                     c->file, type);
        goto out;
    }
    if (!type && !merges) {
        st = air_err(AIR_ERR_UNSUPPORTED,
                     "%s: model: model without type or merges is not "
                     "supported (only BPE)",
                     c->file);
        goto out;
    }
    if (!vocab || vocab->type != TJ_OBJ) {
        st = jbad(c, "BPE model needs a \"vocab\" object");
        goto out;
    }
    if (!merges || merges->type != TJ_ARR) {
        st = jbad(c, "BPE model needs a \"merges\" array");
        goto out;
    }
    const tj_val *drop = tj_get(m, "dropout");
    if (drop && drop->type == TJ_NUM && drop->u.num > 0.0) {
        st = air_err(AIR_ERR_UNSUPPORTED,
                     "%s: model.dropout: BPE dropout (%g) is random; only "
                     "deterministic tokenizers are supported",
                     c->file, drop->u.num);
        goto out;
    }
    /* vocabulary */
    int32_t maxid = -1;
    for (uint32_t i = 0; i < vocab->n; i++) {
        const tj_val *id = &vocab->u.items[i];
        /* ids below 2^24 and not absurdly sparse (each id costs a table slot) */
        if (jint(id) < 0 || id->u.num >= 16777216.0 ||
            id->u.num > 16.0 * (double)vocab->n + 1048576.0) {
            char s2[256];
            jpath_push(c, "%s", "vocab", 0, s2);
            st = air_err(AIR_ERR_FORMAT, "%s: %s: entry \"%.*s\" has no valid id", c->file, c->path,
                         (int)(vocab->keys[i].n > 60 ? 60 : vocab->keys[i].n), vocab->keys[i].s);
            goto out;
        }
        if ((int32_t)id->u.num > maxid)
            maxid = (int32_t)id->u.num;
    }
    t->n_ids = maxid + 1;
    t->tok_str = calloc((size_t)(t->n_ids ? t->n_ids : 1), sizeof *t->tok_str);
    t->tok_len = calloc((size_t)(t->n_ids ? t->n_ids : 1), sizeof *t->tok_len);
    if (!t->tok_str || !t->tok_len || tk_strmap_init(&b->vocab, vocab->n)) {
        st = oom();
        goto out;
    }
    for (uint32_t i = 0; i < vocab->n; i++) {
        int32_t id = (int32_t)vocab->u.items[i].u.num;
        if (i + 16 < vocab->n) /* memory latency dominates: prefetch ahead */
            tk_strmap_prefetch(&b->vocab, vocab->keys[i + 16].s, vocab->keys[i + 16].n);
        char *s = tk_arena_strdup(&t->arena, vocab->keys[i].s, vocab->keys[i].n);
        if (!s || tk_strmap_put(&b->vocab, s, vocab->keys[i].n, id)) {
            st = oom();
            goto out;
        }
        t->tok_str[id] = s;
        t->tok_len[id] = vocab->keys[i].n;
    }
    t->n_vocab_entries = vocab->n;
    /* options */
    const tj_val *unk = tj_get(m, "unk_token");
    if (tj_is_str(unk)) {
        b->has_unk_token = 1;
        b->unk_id = tk_strmap_get(&b->vocab, unk->u.s, unk->n);
        if (b->unk_id < 0) {
            st = air_err(AIR_ERR_FORMAT, "%s: model.unk_token: \"%s\" is not in the vocabulary",
                         c->file, unk->u.s);
            goto out;
        }
    }
    b->fuse_unk = jbool(tj_get(m, "fuse_unk"), 0);
    b->byte_fallback = jbool(tj_get(m, "byte_fallback"), 0);
    b->ignore_merges = jbool(tj_get(m, "ignore_merges"), 0);
    if ((st = set_affix(&b->prefix, &b->prefix_len, tj_get(m, "continuing_subword_prefix"))) ||
        (st = set_affix(&b->suffix, &b->suffix_len, tj_get(m, "end_of_word_suffix"))))
        goto out;
    /* merges: resolve every merge to (a, b, merged) ids, then insert them;
     * both phases prefetch a few merges ahead, since loading is bound by the
     * latency of random accesses to the hash tables */
    if ((st = load_merges(c, b, merges)))
        goto out;
out:
    PATH_RESTORE(c);
    return st;
}

/* ========================================================================= */
/* Loading                                                                    */
/* ========================================================================= */
static air_status load_added(air_tokenizer *t, jctx *c, const tj_val *l) {
    if (!l || l->type == TJ_NULL)
        return AIR_OK;
    if (l->type != TJ_ARR)
        return jbad(c, "added_tokens must be an array");
    size_t cap = 0;
    /* ids like AddedVocabulary::add_tokens: existing content keeps its id,
     * new content gets the next id after the model vocabulary */
    int32_t next_id = (int32_t)t->n_vocab_entries;
    for (uint32_t i = 0; i < l->n; i++) {
        const tj_val *a = &l->u.items[i];
        const tj_val *ct = tj_get(a, "content");
        if (!tj_is_str(ct)) {
            PATH_SAVE;
            PATH_KEY(c, "added_tokens");
            char s2[256];
            jpath_push(c, "[%zu]", NULL, i, s2);
            air_status st = jbad(c, "added token without \"content\"");
            PATH_RESTORE(c);
            return st;
        }
        if (ct->n == 0)
            continue;
        int32_t id = tk_strmap_get(&t->added_map, ct->u.s, ct->n);
        if (id < 0)
            id = tk_strmap_get(&t->bpe.vocab, ct->u.s, ct->n);
        if (id < 0)
            id = next_id++;
        air_status st = tk_add_added(t, id, ct->u.s, ct->n, jbool(tj_get(a, "special"), 0),
                                     jbool(tj_get(a, "lstrip"), 0), jbool(tj_get(a, "rstrip"), 0),
                                     jbool(tj_get(a, "single_word"), 0),
                                     jbool(tj_get(a, "normalized"), 1), &cap);
        if (st)
            return st;
    }
    return AIR_OK;
}

static char *token_string(tk_arena *a, const tj_val *v) {
    if (tj_is_str(v))
        return tk_arena_strdup(a, v->u.s, v->n);
    const tj_val *ct = tj_get(v, "content");
    if (tj_is_str(ct))
        return tk_arena_strdup(a, ct->u.s, ct->n);
    return NULL;
}

/* tokenizer.json must be UTF-8 (HF reads it into a Rust/Python string);
 * everything downstream, PCRE2 with PCRE2_NO_UTF_CHECK included, relies on it. */
static air_status check_utf8(const char *s, size_t n, const char *file) {
    size_t v = tk_utf8_valid_prefix((const unsigned char *)s, n);
    if (v == n)
        return AIR_OK;
    size_t line = 1;
    for (size_t i = 0; i < v; i++)
        line += s[i] == '\n';
    return air_err(AIR_ERR_FORMAT, "%s: not valid UTF-8 (byte %zu, line %zu)", file, v, line);
}

static air_status load_config(air_tokenizer *t, const char *cfg, size_t n, const char *file) {
    air_status cst = check_utf8(cfg, n, file);
    if (cst)
        return cst;
    tj_doc doc;
    air_status st = tj_parse(cfg, n, file, &doc);
    if (st)
        return st;
    const tj_val *r = doc.root;
    if (r->type != TJ_OBJ) {
        tj_free(&doc);
        return air_err(AIR_ERR_FORMAT, "%s: expected a JSON object", file);
    }
    t->bos_token = token_string(&t->arena, tj_get(r, "bos_token"));
    t->eos_token = token_string(&t->arena, tj_get(r, "eos_token"));
    const tj_val *ct = tj_get(r, "chat_template");
    if (tj_is_str(ct))
        t->chat_template = tk_arena_strdup(&t->arena, ct->u.s, ct->n);
    else if (ct && ct->type == TJ_ARR) {
        for (uint32_t i = 0; i < ct->n; i++) {
            const tj_val *nm = tj_get(&ct->u.items[i], "name");
            const tj_val *tp = tj_get(&ct->u.items[i], "template");
            if (tj_is_str(nm) && !strcmp(nm->u.s, "default") && tj_is_str(tp))
                t->chat_template = tk_arena_strdup(&t->arena, tp->u.s, tp->n);
        }
    }
    if (t->bos_token)
        t->bos_id = air_tokenizer_token_to_id(t, t->bos_token);
    if (t->eos_token)
        t->eos_id = air_tokenizer_token_to_id(t, t->eos_token);
    tj_free(&doc);
    return AIR_OK;
}

static air_status load_impl(const char *json, size_t len, const char *cfg, size_t cfg_len,
                            const char *file, const char *cfg_file, air_tokenizer **out) {
    if (!json || !out)
        return air_err(AIR_ERR_INVALID_ARG, "air_tokenizer_load: NULL argument");
    *out = NULL;
    air_status st = check_utf8(json, len, file);
    if (st)
        return st;
    tj_doc doc;
    st = tj_parse(json, len, file, &doc);
    if (st)
        return st;
    air_tokenizer *t = tk_alloc();
    if (!t) {
        tj_free(&doc);
        return oom();
    }
    jctx c = {.file = file};
    const tj_val *r = doc.root;
    size_t cap_n = 0, cap_p = 0, cap_d = 0;
    if (r->type != TJ_OBJ) {
        st = air_err(AIR_ERR_FORMAT, "%s: expected a JSON object", file);
        goto fail;
    }
    const tj_val *tr = tj_get(r, "truncation"), *pd = tj_get(r, "padding");
    if ((tr && tr->type != TJ_NULL) || (pd && pd->type != TJ_NULL)) {
        st = air_err(AIR_ERR_UNSUPPORTED,
                     "%s: %s: truncation/padding settings are not supported (set them to null)",
                     file, tr && tr->type != TJ_NULL ? "truncation" : "padding");
        goto fail;
    }
    if ((st = load_model(t, &c, tj_get(r, "model"))))
        goto fail;
    strcpy(c.path, "normalizer");
    if ((st = load_normalizer(t, &c, tj_get(r, "normalizer"), &cap_n)))
        goto fail;
    strcpy(c.path, "pre_tokenizer");
    if ((st = load_pretok(t, &c, tj_get(r, "pre_tokenizer"), &cap_p)))
        goto fail;
    strcpy(c.path, "post_processor");
    if ((st = load_post(t, &c, tj_get(r, "post_processor"))))
        goto fail;
    strcpy(c.path, "decoder");
    if ((st = load_decoder(t, &c, tj_get(r, "decoder"), &cap_d)))
        goto fail;
    c.path[0] = 0;
    if ((st = load_added(t, &c, tj_get(r, "added_tokens"))))
        goto fail;
    tj_free(&doc);
    if ((st = tk_finalize(t)))
        goto fail2;
    if (cfg && (st = load_config(t, cfg, cfg_len, cfg_file)))
        goto fail2;
    *out = t;
    return AIR_OK;
fail:
    tj_free(&doc);
fail2:
    air_tokenizer_free(t);
    return st;
}

air_status air_tokenizer_load_from_memory(const char *json, size_t len, const char *config_json,
                                          air_tokenizer **out) {
    return load_impl(json, len, config_json, config_json ? strlen(config_json) : 0,
                     "tokenizer.json", "tokenizer_config.json", out);
}

air_status air_tokenizer_load(const char *path, const char *config_path, air_tokenizer **out) {
    if (!path || !out)
        return air_err(AIR_ERR_INVALID_ARG, "air_tokenizer_load: NULL path");
    char *json = NULL, *cfg = NULL;
    size_t len = 0, cfg_len = 0;
    air_status st = air_read_file(path, &json, &len);
    if (st)
        return air_err_context(st, "reading the tokenizer");
    if (config_path) {
        st = air_read_file(config_path, &cfg, &cfg_len);
        if (st) {
            free(json);
            return air_err_context(st, "reading the tokenizer config");
        }
    }
    st = load_impl(json, len, cfg, cfg_len, path, config_path, out);
    free(json);
    free(cfg);
    return st;
}

/* ========================================================================= */
/* Encode                                                                     */
/* ========================================================================= */
typedef struct {
    size_t s, e;
    int32_t idx; /* added token index or -1 */
} seg;
typedef struct {
    seg *v;
    size_t n, cap;
} segs;

static int segs_add(segs *g, size_t s, size_t e, int32_t idx) {
    if (g->n == g->cap) {
        size_t cap = g->cap ? g->cap * 2 : 16;
        seg *v = realloc(g->v, cap * sizeof *v);
        if (!v)
            return -1;
        g->v = v;
        g->cap = cap;
    }
    g->v[g->n++] = (seg){s, e, idx};
    return 0;
}

static int prev_char_is_word(const char *s, size_t pos) {
    if (pos == 0)
        return 0;
    size_t k = pos - 1;
    while (k > 0 && ((unsigned char)s[k] & 0xC0) == 0x80)
        k--;
    uint32_t cp;
    tk_utf8_next((const unsigned char *)s + k, &cp);
    return tk_is_word(cp);
}

/* HF AddedVocabulary::find_matches: leftmost-longest non-overlapping
 * matches, with single_word / lstrip / rstrip. */
static int find_added(const air_tokenizer *t, const tk_trie *tr, const char *s, size_t n,
                      int skip_special, segs *out) {
    out->n = 0;
    size_t pos = 0, start_offset = 0;
    while (pos < n) {
        size_t i = pos, best_len = 0;
        int32_t best = -1;
        for (; i < n; i++) {
            if (!tr->first[(unsigned char)s[i]])
                continue;
            int32_t node = 0;
            for (size_t k = i; k < n; k++) {
                const tk_pairslot *e = tk_pairmap_find(&tr->edges, node, (unsigned char)s[k]);
                if (!e)
                    break;
                node = e->newid;
                if (tr->term[node] >= 0) {
                    best = tr->term[node];
                    best_len = k + 1 - i;
                }
            }
            if (best >= 0)
                break;
        }
        if (best < 0)
            break;
        size_t start = i, stop = i + best_len;
        pos = stop;
        const tk_added *a = &t->added[best];
        if (skip_special && t->special[a->id]) /* HF encode_special_tokens */
            continue;
        if (a->single_word) {
            int start_space = start == 0 || !prev_char_is_word(s, start);
            int stop_space = stop == n;
            if (!stop_space) {
                uint32_t cp;
                tk_utf8_next((const unsigned char *)s + stop, &cp);
                stop_space = !tk_is_word(cp);
            }
            if (!start_space || !stop_space)
                continue;
        }
        if (a->lstrip) {
            size_t ns = start;
            while (ns > 0) {
                size_t k = ns - 1;
                while (k > 0 && ((unsigned char)s[k] & 0xC0) == 0x80)
                    k--;
                uint32_t cp;
                tk_utf8_next((const unsigned char *)s + k, &cp);
                if (!tk_is_whitespace(cp))
                    break;
                ns = k;
            }
            start = ns > start_offset ? ns : start_offset;
        }
        if (a->rstrip) {
            while (stop < n) {
                uint32_t cp;
                int l = tk_utf8_next((const unsigned char *)s + stop, &cp);
                if (!tk_is_whitespace(cp))
                    break;
                stop += (size_t)l;
            }
            /* HF resumes the search at the match end, not after the stripped
             * spaces: a following token may overlap them (kept as HF does) */
        }
        if (start_offset < start && segs_add(out, start_offset, start, -1))
            return -1;
        if (segs_add(out, start, stop, best))
            return -1;
        start_offset = stop;
    }
    if (start_offset < n && segs_add(out, start_offset, n, -1))
        return -1;
    return 0;
}

/* One segment of text between raw added tokens: normalize, split on
 * normalized added tokens, pre-tokenize and BPE. */
static air_status encode_segment(const air_tokenizer *t, tk_work *w, const char *s, size_t n,
                                 int at_origin, int skip_special, tk_bytes *nbuf, segs *sub,
                                 tk_ids *out) {
    const char *x = s;
    size_t xn = n;
    if (t->n_norm) {
        int moved = 0;
        air_status st = tk_normalize(t, &w->mt, s, n, nbuf, &moved);
        if (st)
            return st;
        x = nbuf->p;
        xn = nbuf->n;
        if (moved) /* the normalized text no longer starts at original offset 0 */
            at_origin = 0;
    }
    if (xn == 0)
        return AIR_OK;
    if (!t->has_trie_norm)
        return tk_pretok_and_bpe(t, w, x, xn, at_origin, out);
    if (find_added(t, &t->trie_norm, x, xn, skip_special, sub))
        return oom();
    for (size_t i = 0; i < sub->n; i++) {
        const seg *g = &sub->v[i];
        if (g->idx >= 0) {
            if (tk_ids_push(out, t->added[g->idx].id))
                return oom();
            continue;
        }
        air_status st = tk_pretok_and_bpe(t, w, x + g->s, g->e - g->s, at_origin && g->s == 0, out);
        if (st)
            return st;
    }
    return AIR_OK;
}

air_status air_tokenizer_encode(const air_tokenizer *t, const char *text, size_t len,
                                int add_special, int32_t **ids, size_t *n_ids) {
    return air_tokenizer_encode_ex(t, text, len, add_special ? AIR_TOK_ADD_SPECIAL : 0, ids, n_ids);
}

air_status air_tokenizer_encode_ex(const air_tokenizer *t, const char *text, size_t len,
                                   unsigned flags, int32_t **ids, size_t *n_ids) {
    int add_special = (flags & AIR_TOK_ADD_SPECIAL) != 0;
    int skip_special = (flags & AIR_TOK_SPLIT_SPECIAL) != 0;
    if (!t || !ids || !n_ids || (!text && len))
        return air_err(AIR_ERR_INVALID_ARG, "air_tokenizer_encode: NULL argument");
    *ids = NULL;
    *n_ids = 0;
    tk_bytes fixed = {0}, nbuf = {0};
    const char *s = text ? text : "";
    if (tk_utf8_valid_prefix((const unsigned char *)s, len) != len) {
        if (tk_utf8_lossy_append(&fixed, s, len))
            return oom();
        s = fixed.p;
        len = fixed.n;
    }
    tk_ids out = {0};
    tk_work w;
    memset(&w, 0, sizeof w);
    segs top = {0}, sub = {0};
    air_status st = AIR_OK;
    if (tk_ids_push(&out, 0)) { /* make sure out.v is allocated */
        st = oom();
        goto done;
    }
    out.n = 0;
    if (add_special && t->has_post && tk_ids_append(&out, t->post.pre, t->post.n_pre)) {
        st = oom();
        goto done;
    }
    if (!t->has_trie_raw) {
        st = encode_segment(t, &w, s, len, 1, skip_special, &nbuf, &sub, &out);
    } else {
        if (find_added(t, &t->trie_raw, s, len, skip_special, &top)) {
            st = oom();
            goto done;
        }
        for (size_t i = 0; i < top.n && !st; i++) {
            const seg *g = &top.v[i];
            if (g->idx >= 0) {
                if (tk_ids_push(&out, t->added[g->idx].id))
                    st = oom();
                continue;
            }
            st = encode_segment(t, &w, s + g->s, g->e - g->s, g->s == 0, skip_special, &nbuf, &sub,
                                &out);
        }
    }
    if (!st && add_special && t->has_post && tk_ids_append(&out, t->post.post, t->post.n_post))
        st = oom();
done:
    tk_work_free(&w);
    free(fixed.p);
    free(nbuf.p);
    free(top.v);
    free(sub.v);
    if (st) {
        free(out.v);
        return st;
    }
    *ids = out.v;
    *n_ids = out.n;
    return AIR_OK;
}

/* ========================================================================= */
/* Decode and accessors                                                       */
/* ========================================================================= */
air_status air_tokenizer_decode_n(const air_tokenizer *t, const int32_t *ids, size_t n,
                                  int skip_special, char **text, size_t *len) {
    if (!t || !text || (!ids && n))
        return air_err(AIR_ERR_INVALID_ARG, "air_tokenizer_decode: NULL argument");
    *text = NULL;
    tk_bytes out = {0};
    air_status st = tk_decode_ids(t, ids, n, skip_special, &out);
    if (st) {
        free(out.p);
        return st;
    }
    *text = out.p;
    if (len)
        *len = out.n;
    return AIR_OK;
}

air_status air_tokenizer_decode(const air_tokenizer *t, const int32_t *ids, size_t n,
                                int skip_special, char **text) {
    return air_tokenizer_decode_n(t, ids, n, skip_special, text, NULL);
}

int32_t air_tokenizer_vocab_size(const air_tokenizer *t) {
    return t ? t->n_ids : 0;
}

const char *air_tokenizer_id_to_token(const air_tokenizer *t, int32_t id) {
    if (!t || id < 0 || id >= t->n_ids)
        return NULL;
    return t->tok_str[id];
}

int32_t air_tokenizer_token_to_id(const air_tokenizer *t, const char *token) {
    if (!t || !token)
        return -1;
    size_t n = strlen(token);
    int32_t id = tk_strmap_get(&t->added_map, token, n);
    return id >= 0 ? id : tk_strmap_get(&t->bpe.vocab, token, n);
}

int air_tokenizer_is_special(const air_tokenizer *t, int32_t id) {
    if (!t || id < 0 || id >= t->n_ids)
        return 0;
    return t->special[id];
}

const char *air_tokenizer_bos_token(const air_tokenizer *t) {
    return t ? t->bos_token : NULL;
}
const char *air_tokenizer_eos_token(const air_tokenizer *t) {
    return t ? t->eos_token : NULL;
}
const char *air_tokenizer_chat_template(const air_tokenizer *t) {
    return t ? t->chat_template : NULL;
}
int32_t air_tokenizer_bos_id(const air_tokenizer *t) {
    return t ? t->bos_id : -1;
}
int32_t air_tokenizer_eos_id(const air_tokenizer *t) {
    return t ? t->eos_id : -1;
}
