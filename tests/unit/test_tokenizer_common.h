/*
 * test_tokenizer_common.h - helpers shared by the tokenizer tests: reading
 * the gzipped fixtures (through `gzip -dc`), the corpus, and checking a
 * tokenizer against HF goldens (ids with/without special tokens, decode with
 * skip_special false/true, streaming chunks).
 */
#ifndef AIR_TEST_TOKENIZER_COMMON_H
#define AIR_TEST_TOKENIZER_COMMON_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "test.h"
#include "text/tokenizer.h"
#include "text/tokenizer_internal.h"

/* Reads a gzip file whole (NUL-terminated); NULL on failure. */
static char *tt_read_gz(const char *path, size_t *len) {
    char cmd[4200];
    snprintf(cmd, sizeof cmd, "gzip -dc '%s'", path);
    FILE *f = popen(cmd, "r");
    if (!f)
        return NULL;
    size_t cap = 1 << 20, n = 0;
    char *buf = malloc(cap + 1);
    for (;;) {
        if (n == cap) {
            cap *= 2;
            buf = realloc(buf, cap + 1);
        }
        size_t got = fread(buf + n, 1, cap - n, f);
        if (!got)
            break;
        n += got;
    }
    int rc = pclose(f);
    if (rc != 0 || n == 0) {
        free(buf);
        return NULL;
    }
    buf[n] = 0;
    if (len)
        *len = n;
    return buf;
}

/* Parsed JSON (internal arena parser: keeps NUL bytes inside strings). */
typedef struct {
    tj_doc doc;
    char *text;
} tt_json;

static const tj_val *tt_read_gz_json(const char *path, tt_json *j) {
    size_t n;
    memset(j, 0, sizeof *j);
    j->text = tt_read_gz(path, &n);
    if (!j->text)
        return NULL;
    if (tj_parse(j->text, n, path, &j->doc) != AIR_OK) {
        fprintf(stderr, "%s\n", air_last_error());
        free(j->text);
        j->text = NULL;
        return NULL;
    }
    return j->doc.root;
}

static void tt_json_free(tt_json *j) {
    tj_free(&j->doc);
    free(j->text);
}

#define TT_EACH(v, arr)                                                                            \
    for (const tj_val *v = (arr) && (arr)->type == TJ_ARR ? (arr)->u.items : NULL;                 \
         v && v < (arr)->u.items + (arr)->n; v++)

/* Scratch folder of the test executable (set by main from test_tmp()). */
static char *tt_tmp;

/* Gunzips fixtures/tokenizers/<name>/{tokenizer,tokenizer_config}.json.gz
 * into the test's scratch folder and loads them. */
static air_status tt_load_real(const char *name, air_tokenizer **out) {
    char gz[4096], dst[4096], cfg[4096], cmd[9000];
    snprintf(dst, sizeof dst, "%s/%s", tt_tmp ? tt_tmp : "/tmp/air-test", name);
    snprintf(cmd, sizeof cmd, "mkdir -p '%s'", dst);
    if (system(cmd) != 0)
        return AIR_ERR_IO;
    const char *files[2] = {"tokenizer.json", "tokenizer_config.json"};
    for (int i = 0; i < 2; i++) {
        snprintf(gz, sizeof gz, "%s", test_data("tokenizers/"));
        size_t l = strlen(gz);
        snprintf(gz + l, sizeof gz - l, "%s/%s.gz", name, files[i]);
        snprintf(cmd, sizeof cmd, "gzip -dc '%s' > '%s/%s'", gz, dst, files[i]);
        if (system(cmd) != 0) {
            fprintf(stderr, "cannot gunzip %s\n", gz);
            return AIR_ERR_IO;
        }
    }
    char js[4200];
    snprintf(js, sizeof js, "%s/tokenizer.json", dst);
    snprintf(cfg, sizeof cfg, "%s/tokenizer_config.json", dst);
    return air_tokenizer_load(js, cfg, out);
}

/* Corpus case bytes (text or hex); caller frees. */
static char *tt_case_bytes(const tj_val *c, size_t *len) {
    const tj_val *t = tj_get(c, "text");
    if (tj_is_str(t)) {
        *len = t->n;
        char *s = malloc(*len + 1);
        memcpy(s, t->u.s, *len + 1);
        return s;
    }
    const char *h = tj_get(c, "hex")->u.s;
    *len = strlen(h) / 2;
    char *s = malloc(*len + 1);
    for (size_t i = 0; i < *len; i++) {
        unsigned v;
        sscanf(h + 2 * i, "%2x", &v);
        s[i] = (char)v;
    }
    s[*len] = 0;
    return s;
}

static int tt_ids_equal(const int32_t *ids, size_t n, const tj_val *arr, const char *what,
                        const char *tok, const char *cname) {
    size_t m = arr->n, i = 0;
    while (i < n && i < m && ids[i] == (int32_t)arr->u.items[i].u.num)
        i++;
    if (i == n && i == m)
        return 1;
    fprintf(stderr, "%s / %s / %s: ids differ at index %zu (C has %zu ids, HF %zu)\n", tok, cname,
            what, i, n, m);
    fprintf(stderr, "  C : ");
    for (size_t k = i > 3 ? i - 3 : 0; k < n && k < i + 6; k++)
        fprintf(stderr, "%d ", ids[k]);
    fprintf(stderr, "\n  HF: ");
    for (size_t k = i > 3 ? i - 3 : 0; k < m && k < i + 6; k++)
        fprintf(stderr, "%d ", (int)arr->u.items[k].u.num);
    fprintf(stderr, "\n");
    return 0;
}

static int32_t *tt_ids_of(const tj_val *arr, size_t *n) {
    *n = arr->n;
    int32_t *v = malloc((*n + 1) * sizeof *v);
    for (size_t i = 0; i < *n; i++)
        v[i] = (int32_t)arr->u.items[i].u.num;
    return v;
}

static int tt_bytes_equal(const char *got, size_t gn, const tj_val *want, const char *what,
                          const char *tok, const char *cname) {
    if (gn == want->n && !memcmp(got, want->u.s, gn))
        return 1;
    size_t i = 0;
    while (i < gn && i < want->n && got[i] == want->u.s[i])
        i++;
    fprintf(stderr,
            "%s / %s / %s: text differs at byte %zu (C %zu bytes, HF %u):\n  C : \"%.60s\"\n  HF: "
            "\"%.60s\"\n",
            tok, cname, what, i, gn, want->n, got + (i > 10 ? i - 10 : 0),
            want->u.s + (i > 10 ? i - 10 : 0));
    return 0;
}

/* Checks decode and streaming of `ids` against golden fields. Returns the
 * number of failures. */
static int tt_check_decode(const air_tokenizer *t, const int32_t *ids, size_t n, const tj_val *g,
                           const char *tok, const char *cname) {
    int bad = 0;
    const tj_val *d0 = tj_get(g, "decode");
    const tj_val *d1 = tj_get(g, "decode_skip");
    if (!d1)
        d1 = d0;
    for (int skip = 0; skip < 2; skip++) {
        const tj_val *want = skip ? d1 : d0;
        if (!tj_is_str(want))
            continue;
        char *text = NULL;
        size_t tn = 0;
        air_status st = air_tokenizer_decode_n(t, ids, n, skip, &text, &tn);
        if (st) {
            fprintf(stderr, "%s / %s: decode failed: %s\n", tok, cname, air_last_error());
            bad++;
            continue;
        }
        if (!tt_bytes_equal(text, tn, want, skip ? "decode_skip" : "decode", tok, cname))
            bad++;
        free(text);
    }
    for (int skip = 0; skip < 2; skip++) {
        const tj_val *chunks = tj_get(g, skip ? "stream_skip" : "stream");
        if (!chunks)
            continue;
        air_detok *d = air_detok_new(t, skip);
        size_t i = 0;
        TT_EACH(c, chunks) {
            const char *out = NULL;
            size_t on = 0;
            if (air_detok_push_n(d, ids[i], &out, &on) != AIR_OK) {
                fprintf(stderr, "%s / %s: detok push failed: %s\n", tok, cname, air_last_error());
                bad++;
                break;
            }
            if (on != c->n || memcmp(out, c->u.s, on) != 0) {
                fprintf(stderr, "%s / %s: stream%s chunk %zu (id %d): C \"%s\" HF \"%s\"\n", tok,
                        cname, skip ? "_skip" : "", i, ids[i], out, c->u.s);
                bad++;
                break;
            }
            i++;
        }
        air_detok_free(d);
    }
    return bad;
}

/* Runs every case of a goldens object ({"cases": [...], "random": [...]})
 * whose corpus entry is in `corpus` (matched by name). max_len > 0: skip
 * longer cases. only_ids: skip the decode checks. Returns failures. */
static int tt_check_goldens(const air_tokenizer *t, const tj_val *gold, const tj_val *corpus,
                            const char *tok, int max_len, int only_ids) {
    int bad = 0, n_cases = 0;
    TT_EACH(g, tj_get(gold, "cases")) {
        const char *cname = tj_get(g, "name")->u.s;
        const tj_val *c = NULL;
        TT_EACH(x, corpus) {
            if (!strcmp(tj_get(x, "name")->u.s, cname)) {
                c = x;
                break;
            }
        }
        if (!c)
            continue;
        size_t len;
        char *text = tt_case_bytes(c, &len);
        if (max_len > 0 && len > (size_t)max_len) {
            free(text);
            continue;
        }
        n_cases++;
        const tj_val *want0 = tj_get(g, "ids");
        const tj_val *want1 = tj_get(g, "ids_special");
        if (!want1)
            want1 = want0;
        int32_t *ids[2] = {NULL, NULL};
        size_t n[2] = {0, 0};
        for (int sp = 0; sp < 2; sp++) {
            air_status st = air_tokenizer_encode(t, text, len, sp, &ids[sp], &n[sp]);
            if (st) {
                fprintf(stderr, "%s / %s: encode failed: %s\n", tok, cname, air_last_error());
                bad++;
                continue;
            }
            if (!tt_ids_equal(ids[sp], n[sp], sp ? want1 : want0, sp ? "add_special" : "no_special",
                              tok, cname))
                bad++;
        }
        /* where HF round-trips (decode(encode(x)) == x), so must we */
        const tj_val *rt = tj_get(g, "roundtrip");
        if (!only_ids && rt && rt->type == TJ_TRUE && ids[0]) {
            tk_bytes lossy = {0};
            tk_utf8_lossy_append(&lossy, text, len);
            tk_bytes_append(&lossy, "", 0);
            char *back = NULL;
            size_t bn = 0;
            if (air_tokenizer_decode_n(t, ids[0], n[0], 0, &back, &bn) != AIR_OK || bn != lossy.n ||
                memcmp(back, lossy.p, bn) != 0) {
                fprintf(stderr, "%s / %s: decode(encode(text)) != text\n", tok, cname);
                bad++;
            }
            free(back);
            free(lossy.p);
        }
        /* special tokens not recognized (HF encode_special_tokens) */
        const tj_val *want2 = tj_get(g, "ids_split_special");
        int32_t *ids2 = NULL;
        size_t n2 = 0;
        if (air_tokenizer_encode_ex(t, text, len, AIR_TOK_SPLIT_SPECIAL, &ids2, &n2) != AIR_OK ||
            !tt_ids_equal(ids2, n2, want2 ? want2 : want0, "split_special", tok, cname))
            bad++;
        free(ids2);
        if (!only_ids && ids[1]) {
            /* decode the HF ids (so a decode check does not depend on encode) */
            size_t hn;
            int32_t *hids = tt_ids_of(want1, &hn);
            bad += tt_check_decode(t, hids, hn, g, tok, cname);
            free(hids);
        }
        free(ids[0]);
        free(ids[1]);
        free(text);
    }
    if (!only_ids) {
        int k = 0;
        TT_EACH(r, tj_get(gold, "random")) {
            size_t n;
            int32_t *ids = tt_ids_of(tj_get(r, "ids"), &n);
            char nm[32];
            snprintf(nm, sizeof nm, "random#%d", k++);
            bad += tt_check_decode(t, ids, n, r, tok, nm);
            free(ids);
        }
    }
    fprintf(stderr, "  %s: %d cases checked, %d failures\n", tok, n_cases, bad);
    return bad;
}

#endif
