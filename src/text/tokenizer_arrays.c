/*
 * tokenizer_arrays.c - building a tokenizer from GGUF-style arrays (tokens,
 * scores, token types, merges, pre-tokenizer name) instead of tokenizer.json.
 *
 * The result is the same structure the JSON loader builds, configured the
 * way the corresponding HF tokenizer.json is:
 *   byte-level: the pre-tokenizer named by `pre` (llama-bpe, qwen2,
 *     deepseek-v3, smollm, gpt2/default), ByteLevel decoder, merges as given;
 *   SPM: Prepend("▁") + Replace(" " -> "▁") normalizer, BPE with byte
 *     fallback and fused unk, merges derived from the scores exactly like HF's
 *     SentencePieceExtractor (for every piece, every split into two pieces of
 *     the vocabulary; ordered by the piece's score, then by the halves' ids),
 *     decoder Replace + ByteFallback + Fuse + Strip.
 * Control tokens (type 3) become special added tokens, user-defined ones (4)
 * plain added tokens.
 */
#include <stdlib.h>
#include <string.h>

#include "text/tokenizer_internal.h"

#define LLAMA3_REGEX                                                                               \
    "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| "                     \
    "?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+"
#define QWEN2_REGEX                                                                                \
    "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| "                          \
    "?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+"
#define DSV3_REGEX_1 "\\p{N}{1,3}"
#define DSV3_REGEX_2                                                                               \
    "[\xe4\xb8\x80-\xe9\xbe\xa5\xe3\x81\x80-\xe3\x82\x9f\xe3\x82\xa0-\xe3\x83\xbf]+"
#define DSV3_REGEX_3                                                                               \
    "[!\"#$%&'()*+,\\-./"                                                                          \
    ":;<=>?@\\[\\\\\\]^_`{|}~][A-Za-z]+|[^\\r\\n\\p{L}\\p{P}\\p{S}]?[\\p{L}\\p{M}]+|"              \
    " ?[\\p{P}\\p{S}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+"
#define GPT2_REGEX                                                                                 \
    "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+"

static air_status oom(void) {
    return air_err(AIR_ERR_NOMEM, "out of memory building tokenizer");
}

air_tok_array_opts air_tok_array_default_opts(void) {
    air_tok_array_opts o;
    memset(&o, 0, sizeof o);
    o.add_bos = 1;
    o.add_space_prefix = 1;
    o.bos_id = o.eos_id = o.unk_id = -1;
    return o;
}

static air_status add_pre(air_tokenizer *t, size_t *cap, tk_pre_type type, const char *regex,
                          int use_regex, int individual) {
    if (t->n_pre == *cap) {
        size_t c = *cap ? *cap * 2 : 4;
        tk_pre *p = realloc(t->pre, c * sizeof *p);
        if (!p)
            return oom();
        t->pre = p;
        *cap = c;
    }
    tk_pre *p = &t->pre[t->n_pre];
    memset(p, 0, sizeof *p);
    p->type = type;
    p->behavior = TK_SPLIT_ISOLATED;
    p->use_regex = use_regex;
    p->individual_digits = individual;
    if (regex) {
        air_status st = tk_pattern_init(&p->pat, regex, strlen(regex), 1, "pre-tokenizer regex");
        if (st)
            return st;
    }
    t->n_pre++;
    return AIR_OK;
}

static air_status setup_pre(air_tokenizer *t, const char *pre) {
    size_t cap = 0;
    air_status st;
    if (!pre || !*pre)
        pre = "default";
    if (!strcmp(pre, "llama-bpe") || !strcmp(pre, "llama3") || !strcmp(pre, "llama-v3")) {
        t->bpe.ignore_merges = 1;
        if ((st = add_pre(t, &cap, TK_PRE_SPLIT, LLAMA3_REGEX, 0, 0)))
            return st;
        return add_pre(t, &cap, TK_PRE_BYTELEVEL, NULL, 0, 0);
    }
    if (!strcmp(pre, "qwen2") || !strcmp(pre, "qwen3")) {
        t->norm = calloc(1, sizeof *t->norm);
        if (!t->norm)
            return oom();
        t->norm[0].type = TK_NORM_NFC;
        t->n_norm = 1;
        if ((st = add_pre(t, &cap, TK_PRE_SPLIT, QWEN2_REGEX, 0, 0)))
            return st;
        return add_pre(t, &cap, TK_PRE_BYTELEVEL, NULL, 0, 0);
    }
    if (!strcmp(pre, "deepseek-v3")) {
        if ((st = add_pre(t, &cap, TK_PRE_SPLIT, DSV3_REGEX_1, 0, 0)) ||
            (st = add_pre(t, &cap, TK_PRE_SPLIT, DSV3_REGEX_2, 0, 0)) ||
            (st = add_pre(t, &cap, TK_PRE_SPLIT, DSV3_REGEX_3, 0, 0)))
            return st;
        return add_pre(t, &cap, TK_PRE_BYTELEVEL, NULL, 0, 0);
    }
    if (!strcmp(pre, "smollm")) {
        if ((st = add_pre(t, &cap, TK_PRE_DIGITS, NULL, 0, 1)))
            return st;
        return add_pre(t, &cap, TK_PRE_BYTELEVEL, GPT2_REGEX, 1, 0);
    }
    if (!strcmp(pre, "gpt2") || !strcmp(pre, "default"))
        return add_pre(t, &cap, TK_PRE_BYTELEVEL, GPT2_REGEX, 1, 0);
    return air_err(AIR_ERR_UNSUPPORTED,
                   "tokenizer.ggml.pre \"%s\" is not supported (supported: llama-bpe, qwen2, "
                   "deepseek-v3, smollm, gpt2, default)",
                   pre);
}

static air_status add_dec(air_tokenizer *t, tk_dec_type type, uint32_t ch, int start,
                          const char *pat, const char *content) {
    tk_dec *d = realloc(t->dec, (t->n_dec + 1) * sizeof *d);
    if (!d)
        return oom();
    t->dec = d;
    d = &t->dec[t->n_dec];
    memset(d, 0, sizeof *d);
    d->type = type;
    d->ch = ch;
    d->start = start;
    if (pat) {
        air_status st = tk_pattern_init(&d->pat, pat, strlen(pat), 0, "decoder");
        if (st)
            return st;
        d->content = tk_arena_strdup(&t->arena, content, strlen(content));
        d->content_len = strlen(content);
        if (!d->content)
            return oom();
    }
    t->n_dec++;
    t->has_decoder = 1;
    return AIR_OK;
}

typedef struct {
    float score;
    int32_t tok, l, r;
} cand;

static int cand_cmp(const void *a, const void *b) {
    const cand *x = a, *y = b;
    if (x->score != y->score)
        return x->score > y->score ? -1 : 1;
    if (x->tok != y->tok)
        return x->tok < y->tok ? -1 : 1;
    if (x->l != y->l)
        return x->l < y->l ? -1 : 1;
    return x->r < y->r ? -1 : x->r > y->r;
}

/* HF SentencePieceExtractor: merges from every split of every piece. */
static air_status derive_spm_merges(air_tokenizer *t, const float *scores, int32_t n) {
    cand *c = NULL;
    size_t nc = 0, cap = 0;
    for (int32_t id = 0; id < n; id++) {
        const char *s = t->bpe.vocab.slots ? t->tok_str[id] : NULL;
        if (!s || tk_strmap_get(&t->bpe.vocab, s, t->tok_len[id]) != id)
            continue;
        size_t len = t->tok_len[id];
        for (size_t k = (size_t)tk_utf8_len((unsigned char)s[0]); k < len;
             k += (size_t)tk_utf8_len((unsigned char)s[k])) {
            int32_t l = tk_strmap_get(&t->bpe.vocab, s, k);
            if (l < 0)
                continue;
            int32_t r = tk_strmap_get(&t->bpe.vocab, s + k, len - k);
            if (r < 0)
                continue;
            if (nc == cap) {
                cap = cap ? cap * 2 : 4096;
                cand *x = realloc(c, cap * sizeof *x);
                if (!x) {
                    free(c);
                    return oom();
                }
                c = x;
            }
            c[nc++] = (cand){scores ? scores[id] : -(float)id, id, l, r};
        }
    }
    if (nc > 1) /* c is NULL when there are no candidates */
        qsort(c, nc, sizeof *c, cand_cmp);
    air_status st = AIR_OK;
    if (tk_pairmap_init(&t->bpe.merges, nc))
        st = oom();
    for (size_t i = 0; !st && i < nc; i++) {
        /* the first (best) rank of a pair wins */
        if (tk_pairmap_find(&t->bpe.merges, c[i].l, c[i].r))
            continue;
        if (tk_pairmap_put(&t->bpe.merges, c[i].l, c[i].r, (int32_t)i, c[i].tok))
            st = oom();
    }
    free(c);
    return st;
}

air_status air_tokenizer_from_arrays_ex(air_tok_family fam, const char *const *tokens,
                                        const float *scores, const int32_t *types, int32_t n,
                                        const char *const *merges, int32_t n_merges,
                                        const char *pre, const air_tok_array_opts *opts,
                                        air_tokenizer **out) {
    if (!tokens || !out || n <= 0 || (n_merges > 0 && !merges))
        return air_err(AIR_ERR_INVALID_ARG, "air_tokenizer_from_arrays: bad arguments");
    *out = NULL;
    air_tok_array_opts o = opts ? *opts : air_tok_array_default_opts();
    air_tokenizer *t = tk_alloc();
    if (!t)
        return oom();
    air_status st = AIR_OK;
    int is_spm = fam == AIR_TOK_BPE_SPM;
    t->n_ids = n;
    t->tok_str = calloc((size_t)n, sizeof *t->tok_str);
    t->tok_len = calloc((size_t)n, sizeof *t->tok_len);
    if (!t->tok_str || !t->tok_len || tk_strmap_init(&t->bpe.vocab, (size_t)n)) {
        st = oom();
        goto fail;
    }
    /* vocabulary: byte-level keeps control/user-defined tokens out of the
     * model vocabulary (they are added tokens only), as HF does */
    int has_bytes = 0;
    int32_t unk = o.unk_id;
    for (int32_t i = 0; i < n; i++) {
        if (!tokens[i]) {
            st = air_err(AIR_ERR_INVALID_ARG, "from_arrays: token %d is NULL", (int)i);
            goto fail;
        }
        int32_t ty = types ? types[i] : AIR_TOK_TYPE_NORMAL;
        size_t len = strlen(tokens[i]);
        if (tk_utf8_valid_prefix((const unsigned char *)tokens[i], len) != len) {
            st = air_err(AIR_ERR_FORMAT, "from_arrays: token %d is not valid UTF-8", (int)i);
            goto fail;
        }
        char *s = tk_arena_strdup(&t->arena, tokens[i], len);
        if (!s) {
            st = oom();
            goto fail;
        }
        t->tok_str[i] = s;
        t->tok_len[i] = (uint32_t)len;
        if (ty == AIR_TOK_TYPE_BYTE)
            has_bytes = 1;
        if (ty == AIR_TOK_TYPE_UNKNOWN && unk < 0)
            unk = i;
        int in_vocab = is_spm || (ty != AIR_TOK_TYPE_CONTROL && ty != AIR_TOK_TYPE_USER_DEFINED);
        if (in_vocab && tk_strmap_get(&t->bpe.vocab, s, len) < 0) {
            if (tk_strmap_put(&t->bpe.vocab, s, len, i)) {
                st = oom();
                goto fail;
            }
            t->n_vocab_entries++;
        }
    }
    if (is_spm) {
        t->bpe.byte_fallback = has_bytes;
        t->bpe.fuse_unk = 1;
        if (unk >= 0) {
            t->bpe.unk_id = unk;
            t->bpe.has_unk_token = 1;
        }
        if ((st = derive_spm_merges(t, scores, n)))
            goto fail;
        /* normalizer: Prepend("▁") + Replace(" ", "▁") */
        t->norm = calloc(2, sizeof *t->norm);
        if (!t->norm) {
            st = oom();
            goto fail;
        }
        if (o.add_space_prefix) {
            t->norm[t->n_norm].type = TK_NORM_PREPEND;
            t->norm[t->n_norm].content = tk_arena_strdup(&t->arena, "\xe2\x96\x81", 3);
            t->norm[t->n_norm].content_len = 3;
            t->n_norm++;
        }
        tk_norm *r = &t->norm[t->n_norm];
        r->type = TK_NORM_REPLACE;
        r->content = tk_arena_strdup(&t->arena, "\xe2\x96\x81", 3);
        r->content_len = 3;
        if ((st = tk_pattern_init(&r->pat, " ", 1, 0, "normalizer")))
            goto fail;
        t->n_norm++;
        if ((st = add_dec(t, TK_DEC_REPLACE, 0, 0, "\xe2\x96\x81", " ")) ||
            (st = add_dec(t, TK_DEC_BYTEFALLBACK, 0, 0, NULL, NULL)) ||
            (st = add_dec(t, TK_DEC_FUSE, 0, 0, NULL, NULL)) ||
            (st = add_dec(t, TK_DEC_STRIP, ' ', o.add_space_prefix ? 1 : 0, NULL, NULL)))
            goto fail;
    } else {
        if ((st = setup_pre(t, pre)))
            goto fail;
        if (tk_pairmap_init(&t->bpe.merges, (size_t)(n_merges > 0 ? n_merges : 1))) {
            st = oom();
            goto fail;
        }
        tk_bytes mb = {0};
        for (int32_t i = 0; i < n_merges; i++) {
            const char *m = merges[i];
            const char *sp = m ? strchr(m, ' ') : NULL;
            if (!sp || strchr(sp + 1, ' ')) {
                free(mb.p);
                st = air_err(AIR_ERR_FORMAT,
                             "merges[%d]: \"%s\" is not two tokens separated by "
                             "one space",
                             (int)i, m ? m : "(null)");
                goto fail;
            }
            size_t an = (size_t)(sp - m), bn = strlen(sp + 1);
            int32_t a = tk_strmap_get(&t->bpe.vocab, m, an);
            int32_t b = tk_strmap_get(&t->bpe.vocab, sp + 1, bn);
            mb.n = 0;
            if (tk_bytes_append(&mb, m, an) || tk_bytes_append(&mb, sp + 1, bn)) {
                free(mb.p);
                st = oom();
                goto fail;
            }
            int32_t c = tk_strmap_get(&t->bpe.vocab, mb.p, mb.n);
            if (a < 0 || b < 0 || c < 0) {
                free(mb.p);
                st = air_err(AIR_ERR_FORMAT,
                             "merges[%d]: \"%s\" uses a token missing from the "
                             "vocabulary",
                             (int)i, m);
                goto fail;
            }
            if (tk_pairmap_put(&t->bpe.merges, a, b, i, c)) {
                free(mb.p);
                st = oom();
                goto fail;
            }
        }
        free(mb.p);
        if ((st = add_dec(t, TK_DEC_BYTELEVEL, 0, 0, NULL, NULL)))
            goto fail;
    }
    /* added tokens */
    size_t cap = 0;
    for (int32_t i = 0; i < n && types; i++) {
        if (types[i] != AIR_TOK_TYPE_CONTROL && types[i] != AIR_TOK_TYPE_USER_DEFINED)
            continue;
        if (!t->tok_len[i])
            continue;
        if ((st = tk_add_added(t, i, t->tok_str[i], t->tok_len[i], types[i] == AIR_TOK_TYPE_CONTROL,
                               0, 0, 0, 0, &cap)))
            goto fail;
    }
    if (is_spm && unk >= 0 && tk_strmap_get(&t->added_map, t->tok_str[unk], t->tok_len[unk]) < 0 &&
        (st = tk_add_added(t, unk, t->tok_str[unk], t->tok_len[unk], 1, 0, 0, 0, 0, &cap)))
        goto fail;
    /* post-processor */
    t->bos_id = o.bos_id;
    t->eos_id = o.eos_id;
    if ((o.add_bos && o.bos_id >= 0) || (o.add_eos && o.eos_id >= 0)) {
        t->has_post = 1;
        t->post.pre = malloc(sizeof(int32_t));
        t->post.post = malloc(sizeof(int32_t));
        if (!t->post.pre || !t->post.post) {
            st = oom();
            goto fail;
        }
        if (o.add_bos && o.bos_id >= 0)
            t->post.pre[t->post.n_pre++] = o.bos_id;
        if (o.add_eos && o.eos_id >= 0)
            t->post.post[t->post.n_post++] = o.eos_id;
    }
    if (o.bos_id >= 0 && o.bos_id < n)
        t->bos_token = t->tok_str[o.bos_id];
    if (o.eos_id >= 0 && o.eos_id < n)
        t->eos_token = t->tok_str[o.eos_id];
    if ((st = tk_finalize(t)))
        goto fail;
    *out = t;
    return AIR_OK;
fail:
    air_tokenizer_free(t);
    return st;
}

air_status air_tokenizer_from_arrays(air_tok_family fam, const char *const *tokens,
                                     const float *scores, const int32_t *types, int32_t n,
                                     const char *const *merges, int32_t n_merges, const char *pre,
                                     int32_t bos_id, int32_t eos_id, int add_bos,
                                     air_tokenizer **out) {
    air_tok_array_opts o = air_tok_array_default_opts();
    o.bos_id = bos_id;
    o.eos_id = eos_id;
    o.add_bos = add_bos;
    return air_tokenizer_from_arrays_ex(fam, tokens, scores, types, n, merges, n_merges, pre, &o,
                                        out);
}
