/*
 * bpe.c - the BPE model: one pre-tokenized word -> ids.
 *
 * Same algorithm as HF tokenizers (models/bpe/word.rs, merge_all): the word
 * starts as one symbol per character (or per byte for byte-level models,
 * with byte fallback / unk for characters missing from the vocabulary), then
 * a min-heap keyed by (merge rank, position) repeatedly applies the best
 * merge; stale heap entries are skipped with the same test HF uses (the pair
 * now at that position must still map to the entry's new id). O(n log n) on
 * long words.
 *
 * Results for words shorter than 256 bytes are kept in a lock-free cache
 * (insert-only open addressing with atomic slot pointers), which makes
 * repeated words in ordinary text cost one hash and one compare.
 */
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

#include "text/tokenizer_internal.h"

/* ========================================================================= */
/* Word cache                                                                 */
/* ========================================================================= */
#define CACHE_MAX_WORD 256
#define CACHE_PROBES 8

typedef struct {
    uint64_t h;
    uint32_t klen, nids;
    int32_t *ids; /* points after key */
    char key[];
} cache_ent;

struct tk_cache {
    _Atomic(cache_ent *) *slots;
    uint32_t mask;
    atomic_uint count;
    uint32_t capacity;
};

tk_cache *tk_cache_new(size_t capacity) {
    tk_cache *c = calloc(1, sizeof *c);
    if (!c)
        return NULL;
    uint32_t cap = 1024;
    while (cap < capacity * 2)
        cap *= 2;
    c->slots = calloc(cap, sizeof *c->slots);
    if (!c->slots) {
        free(c);
        return NULL;
    }
    c->mask = cap - 1;
    c->capacity = (uint32_t)capacity;
    atomic_init(&c->count, 0);
    return c;
}

void tk_cache_free(tk_cache *c) {
    if (!c)
        return;
    for (uint32_t i = 0; i <= c->mask; i++)
        free(atomic_load_explicit(&c->slots[i], memory_order_relaxed));
    free(c->slots);
    free(c);
}

static uint64_t cache_hash(const char *s, size_t n, int byte_level) {
    return XXH3_64bits_withSeed(s, n, (uint64_t)byte_level + 1);
}

static const cache_ent *cache_get(const tk_cache *c, uint64_t h, const char *s, size_t n) {
    uint32_t i = (uint32_t)h & c->mask;
    for (int p = 0; p < CACHE_PROBES; p++) {
        cache_ent *e = atomic_load_explicit(&((tk_cache *)c)->slots[i], memory_order_acquire);
        if (!e)
            return NULL;
        if (e->h == h && e->klen == n && memcmp(e->key, s, n) == 0)
            return e;
        i = (i + 1) & c->mask;
    }
    return NULL;
}

static void cache_put(tk_cache *c, uint64_t h, const char *s, size_t n, const int32_t *ids,
                      size_t nids) {
    if (atomic_load_explicit(&c->count, memory_order_relaxed) >= c->capacity)
        return;
    size_t koff = (n + 7) & ~(size_t)7;
    cache_ent *e = malloc(sizeof *e + koff + nids * sizeof(int32_t));
    if (!e)
        return;
    e->h = h;
    e->klen = (uint32_t)n;
    e->nids = (uint32_t)nids;
    memcpy(e->key, s, n);
    e->ids = (int32_t *)(void *)(e->key + koff);
    memcpy(e->ids, ids, nids * sizeof(int32_t));
    uint32_t i = (uint32_t)h & c->mask;
    for (int p = 0; p < CACHE_PROBES; p++) {
        cache_ent *expect = NULL;
        if (atomic_compare_exchange_strong_explicit(&c->slots[i], &expect, e, memory_order_release,
                                                    memory_order_acquire)) {
            atomic_fetch_add_explicit(&c->count, 1, memory_order_relaxed);
            return;
        }
        if (expect->h == h && expect->klen == n && memcmp(expect->key, s, n) == 0)
            break; /* another thread inserted it */
        i = (i + 1) & c->mask;
    }
    free(e);
}

/* ========================================================================= */
/* Byte tables                                                                */
/* ========================================================================= */
void tk_bpe_build_byte_tables(tk_bpe *m) {
    for (int b = 0; b < 256; b++) {
        char name[8];
        snprintf(name, sizeof name, "<0x%02X>", b);
        m->byte_fb[b] = tk_strmap_get(&m->vocab, name, 6);
        char u[4];
        int l = tk_utf8_encode(tk_byte_to_char((unsigned char)b), u);
        m->bl_id[b] = tk_strmap_get(&m->vocab, u, (size_t)l);
    }
    m->bl_ready = 1;
}

void tk_bpe_free(tk_bpe *m) {
    tk_strmap_free(&m->vocab);
    tk_pairmap_free(&m->merges);
    tk_cache_free(m->cache);
    free(m->prefix);
    free(m->suffix);
    memset(m, 0, sizeof *m);
}

/* ========================================================================= */
/* Merging                                                                    */
/* ========================================================================= */
typedef struct {
    int32_t rank, pos, newid;
} hent;

static inline int hless(const hent *a, const hent *b) {
    return a->rank < b->rank || (a->rank == b->rank && a->pos < b->pos);
}

static void heap_push(hent *h, size_t *n, hent x) {
    size_t i = (*n)++;
    while (i > 0) {
        size_t p = (i - 1) / 2;
        if (!hless(&x, &h[p]))
            break;
        h[i] = h[p];
        i = p;
    }
    h[i] = x;
}

static hent heap_pop(hent *h, size_t *n) {
    hent top = h[0];
    hent x = h[--(*n)];
    size_t i = 0, m = *n;
    for (;;) {
        size_t l = 2 * i + 1;
        if (l >= m)
            break;
        size_t c = l + 1 < m && hless(&h[l + 1], &h[l]) ? l + 1 : l;
        if (!hless(&h[c], &x))
            break;
        h[i] = h[c];
        i = c;
    }
    h[i] = x;
    return top;
}

typedef struct {
    int32_t *c, *prev, *next, *len;
    hent *heap;
    size_t n, cap;
    int32_t sbuf[4 * 64];
    hent hbuf[128];
} word;

static int word_reserve(word *w, size_t n) {
    if (n <= 64) {
        w->c = w->sbuf;
        w->prev = w->sbuf + 64;
        w->next = w->sbuf + 128;
        w->len = w->sbuf + 192;
        w->heap = w->hbuf;
        w->cap = 64;
        return 0;
    }
    int32_t *a = malloc(n * 4 * sizeof(int32_t));
    hent *h = malloc((2 * n + 2) * sizeof(hent));
    if (!a || !h) {
        free(a);
        free(h);
        return -1;
    }
    w->c = a;
    w->prev = a + n;
    w->next = a + 2 * n;
    w->len = a + 3 * n;
    w->heap = h;
    w->cap = n;
    return 0;
}

static void word_release(word *w) {
    if (w->c && w->c != w->sbuf) {
        free(w->c);
        free(w->heap);
    }
}

static inline void word_add(word *w, int32_t id, int32_t len) {
    size_t i = w->n++;
    w->c[i] = id;
    w->len[i] = len;
    w->prev[i] = (int32_t)i - 1;
    w->next[i] = -1;
    if (i > 0)
        w->next[i - 1] = (int32_t)i;
}

/* The heap never holds more than n-1 initial entries plus two per merge
 * (at most n-1 merges), so 2n+2 entries always suffice; for small words
 * (n <= 64) hbuf (128) suffices as well since merges consume entries. */
static void merge_all(const tk_bpe *m, word *w) {
    size_t hn = 0;
    const tk_pairmap *mm = &m->merges;
    hent *heap = w->heap;
    size_t hcap = w->c == w->sbuf ? 128 : 2 * w->cap + 2;
    for (size_t i = 0; i + 1 < w->n; i++) {
        const tk_pairslot *k = tk_pairmap_find(mm, w->c[i], w->c[i + 1]);
        if (k)
            heap_push(heap, &hn, (hent){k->rank, (int32_t)i, k->newid});
    }
    while (hn) {
        hent top = heap_pop(heap, &hn);
        int32_t pos = top.pos;
        if (w->len[pos] == 0)
            continue;
        int32_t nx = w->next[pos];
        if (nx < 0)
            continue;
        const tk_pairslot *k = tk_pairmap_find(mm, w->c[pos], w->c[nx]);
        if (!k || k->newid != top.newid)
            continue;
        /* merge pos with nx */
        w->c[pos] = top.newid;
        w->len[pos] += w->len[nx];
        w->next[pos] = w->next[nx];
        w->len[nx] = 0;
        if (w->next[nx] >= 0)
            w->prev[w->next[nx]] = pos;
        int32_t pv = w->prev[pos];
        if (pv >= 0 && hn < hcap) {
            k = tk_pairmap_find(mm, w->c[pv], w->c[pos]);
            if (k)
                heap_push(heap, &hn, (hent){k->rank, pv, k->newid});
        }
        int32_t nn = w->next[pos];
        if (nn >= 0 && hn < hcap) {
            k = tk_pairmap_find(mm, w->c[pos], w->c[nn]);
            if (k)
                heap_push(heap, &hn, (hent){k->rank, pos, k->newid});
        }
    }
}

/* Generic path: characters of `s` looked up in the vocabulary (with the
 * continuing-subword prefix / end-of-word suffix), byte fallback, unk. */
static air_status fill_generic(const tk_bpe *m, const char *s, size_t n, word *w) {
    int32_t unk_id = -1, unk_len = 0;
    char stackbuf[64];
    for (size_t i = 0; i < n;) {
        size_t cl = (size_t)tk_utf8_len((unsigned char)s[i]);
        if (i + cl > n)
            cl = n - i;
        int is_first = i == 0, is_last = i + cl >= n;
        const char *key = s + i;
        size_t kn = cl;
        char *heapbuf = NULL;
        if ((!is_first && m->prefix) || (is_last && m->suffix)) {
            size_t need = cl + (m->prefix ? m->prefix_len : 0) + (m->suffix ? m->suffix_len : 0);
            char *b = stackbuf;
            if (need > sizeof stackbuf) {
                b = heapbuf = malloc(need);
                if (!b)
                    return air_err(AIR_ERR_NOMEM, "out of memory");
            }
            kn = 0;
            if (!is_first && m->prefix) {
                memcpy(b, m->prefix, m->prefix_len);
                kn = m->prefix_len;
            }
            memcpy(b + kn, s + i, cl);
            kn += cl;
            if (is_last && m->suffix) {
                memcpy(b + kn, m->suffix, m->suffix_len);
                kn += m->suffix_len;
            }
            key = b;
        }
        int32_t id = tk_strmap_get(&m->vocab, key, kn);
        if (id >= 0) {
            if (unk_id >= 0) {
                word_add(w, unk_id, unk_len);
                unk_id = -1;
            }
            word_add(w, id, (int32_t)cl);
        } else {
            int done = 0;
            if (m->byte_fallback) {
                int ok = 1;
                for (size_t k = 0; k < kn; k++)
                    if (m->byte_fb[(unsigned char)key[k]] < 0)
                        ok = 0;
                if (ok) {
                    /* HF flushes no pending unk here: byte tokens are added
                     * after it, and the unk is added at the next known char
                     * or the end. Reproduce that order exactly. */
                    for (size_t k = 0; k < kn; k++)
                        word_add(w, m->byte_fb[(unsigned char)key[k]], 1);
                    done = 1;
                }
            }
            if (!done && m->has_unk_token) {
                if (unk_id >= 0 && m->fuse_unk)
                    unk_len += (int32_t)cl;
                else {
                    if (unk_id >= 0)
                        word_add(w, unk_id, unk_len);
                    unk_id = m->unk_id;
                    unk_len = (int32_t)cl;
                }
            }
        }
        free(heapbuf);
        i += cl;
    }
    if (unk_id >= 0)
        word_add(w, unk_id, unk_len);
    return AIR_OK;
}

air_status tk_bpe_word(const tk_bpe *m, const char *s, size_t n, int byte_level, tk_ids *out) {
    if (n == 0)
        return AIR_OK;
    int fast_bl = byte_level && m->bl_ready && !m->prefix && !m->suffix;
    if (fast_bl)
        for (size_t i = 0; i < n; i++)
            if (m->bl_id[(unsigned char)s[i]] < 0) {
                fast_bl = 0;
                break;
            }
    if (byte_level && !fast_bl) {
        /* materialize the byte-level characters and take the generic path */
        tk_bytes tmp = {0};
        for (size_t i = 0; i < n; i++) {
            char u[4];
            int l = tk_utf8_encode(tk_byte_to_char((unsigned char)s[i]), u);
            if (tk_bytes_append(&tmp, u, (size_t)l)) {
                free(tmp.p);
                return air_err(AIR_ERR_NOMEM, "out of memory");
            }
        }
        air_status st = tk_bpe_word(m, tmp.p, tmp.n, 0, out);
        free(tmp.p);
        return st;
    }
    if (m->ignore_merges && !fast_bl) {
        int32_t id = tk_strmap_get(&m->vocab, s, n);
        if (id >= 0)
            return tk_ids_push(out, id) ? air_err(AIR_ERR_NOMEM, "out of memory") : AIR_OK;
    }
    uint64_t h = 0;
    int use_cache = m->cache && n < CACHE_MAX_WORD;
    if (use_cache) {
        h = cache_hash(s, n, byte_level);
        const cache_ent *e = cache_get(m->cache, h, s, n);
        if (e)
            return tk_ids_append(out, e->ids, e->nids) ? air_err(AIR_ERR_NOMEM, "out of memory")
                                                       : AIR_OK;
    }
    if (m->ignore_merges && fast_bl) {
        /* whole-word lookup of the byte-level string (after the cache: the
         * result is cached like any other) */
        char stackbuf[256];
        char *mb = 2 * n <= sizeof stackbuf ? stackbuf : malloc(2 * n);
        if (!mb)
            return air_err(AIR_ERR_NOMEM, "out of memory");
        size_t k = 0;
        for (size_t i = 0; i < n; i++)
            k += (size_t)tk_utf8_encode(tk_byte_to_char((unsigned char)s[i]), mb + k);
        int32_t id = tk_strmap_get(&m->vocab, mb, k);
        if (mb != stackbuf)
            free(mb);
        if (id >= 0) {
            if (tk_ids_push(out, id))
                return air_err(AIR_ERR_NOMEM, "out of memory");
            if (use_cache)
                cache_put(m->cache, h, s, n, &id, 1);
            return AIR_OK;
        }
    }
    word w;
    memset(&w, 0, sizeof w);
    /* symbols: one per byte (byte-level) or per char, at most n */
    size_t nsym = n;
    if (!fast_bl && m->byte_fallback && (m->prefix || m->suffix)) /* fallback bytes of affixes */
        nsym = n * (1 + m->prefix_len) + m->suffix_len;
    if (word_reserve(&w, nsym))
        return air_err(AIR_ERR_NOMEM, "out of memory");
    air_status st = AIR_OK;
    if (fast_bl) {
        for (size_t i = 0; i < n; i++)
            word_add(&w, m->bl_id[(unsigned char)s[i]], 1);
    } else {
        st = fill_generic(m, s, n, &w);
    }
    if (!st) {
        merge_all(m, &w);
        size_t start = out->n;
        for (size_t i = 0; i < w.n; i++)
            if (w.len[i] != 0 && tk_ids_push(out, w.c[i])) {
                st = air_err(AIR_ERR_NOMEM, "out of memory");
                break;
            }
        if (!st && use_cache)
            cache_put(m->cache, h, s, n, out->v + start, out->n - start);
    }
    word_release(&w);
    return st;
}
