/*
 * bench_tokenizer.c - tokenizer load time and encode throughput.
 *
 *   bench_tokenizer [--fixtures DIR] [--reps N] [--json] [name ...]
 *
 * For each tokenizer (default: qwen3 llama3_1 llama2 deepseek_v3 gemma3) from
 * DIR/<name>/tokenizer.json(.gz) (DIR defaults to tests/fixtures/tokenizers),
 * prints the median load time and the encode throughput (MB/s, tokens/s) on
 * the test corpus (DIR/corpus.json.gz, all cases concatenated with newlines,
 * encoded case by case). tests/gen/bench_hf_tokenizer.py measures HF
 * `tokenizers` single-threaded on the same corpus; compare the two tables.
 *
 * Both figures are the best of N passes (the encode passes follow one
 * warm-up pass, so the word cache is warm, as in a server that keeps its
 * tokenizer loaded); the best rather than the median because development
 * machines are shared and interference only ever adds time.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "text/tokenizer.h"
#include "text/tokenizer_internal.h"
#include "util/fileio.h"

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

static char *read_maybe_gz(const char *path, size_t *len) {
    char *data = NULL;
    if (air_read_file(path, &data, len) == AIR_OK)
        return data;
    char cmd[4200];
    snprintf(cmd, sizeof cmd, "gzip -dc '%s.gz' 2>/dev/null", path);
    FILE *f = popen(cmd, "r");
    if (!f)
        return NULL;
    size_t cap = 1 << 20, n = 0;
    data = malloc(cap + 1);
    size_t got;
    while ((got = fread(data + n, 1, cap - n, f)) > 0) {
        n += got;
        if (n == cap) {
            cap *= 2;
            data = realloc(data, cap + 1);
        }
    }
    if (pclose(f) != 0 || n == 0) {
        free(data);
        return NULL;
    }
    data[n] = 0;
    *len = n;
    return data;
}

static int cmp_d(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

typedef struct {
    char **text;
    size_t *len;
    size_t n, bytes;
} corpus_t;

static int load_corpus(const char *dir, corpus_t *c) {
    char p[4096];
    snprintf(p, sizeof p, "%s/corpus.json", dir);
    size_t n;
    char *raw = read_maybe_gz(p, &n);
    if (!raw)
        return -1;
    tj_doc doc;
    if (tj_parse(raw, n, p, &doc) != AIR_OK) {
        free(raw);
        return -1;
    }
    const tj_val *r = doc.root;
    c->n = r->n;
    c->text = calloc(c->n, sizeof *c->text);
    c->len = calloc(c->n, sizeof *c->len);
    c->bytes = 0;
    for (uint32_t i = 0; i < r->n; i++) {
        const tj_val *t = tj_get(&r->u.items[i], "text"), *h = tj_get(&r->u.items[i], "hex");
        if (t && t->type == TJ_STR) {
            c->text[i] = malloc(t->n + 1);
            memcpy(c->text[i], t->u.s, t->n + 1);
            c->len[i] = t->n;
        } else {
            size_t hn = h->n / 2;
            c->text[i] = malloc(hn + 1);
            for (size_t k = 0; k < hn; k++) {
                unsigned v;
                sscanf(h->u.s + 2 * k, "%2x", &v);
                c->text[i][k] = (char)v;
            }
            c->len[i] = hn;
        }
        c->bytes += c->len[i];
    }
    tj_free(&doc);
    free(raw);
    return 0;
}

int main(int argc, char **argv) {
    const char *dir = "tests/fixtures/tokenizers";
    int reps = 5, json = 0;
    const char *names[16];
    int n_names = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--fixtures") && i + 1 < argc)
            dir = argv[++i];
        else if (!strcmp(argv[i], "--reps") && i + 1 < argc)
            reps = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--json"))
            json = 1;
        else if (n_names < 16)
            names[n_names++] = argv[i];
    }
    if (!n_names) {
        static const char *dflt[] = {"qwen3", "llama3_1", "llama2", "deepseek_v3", "gemma3"};
        for (int i = 0; i < 5; i++)
            names[n_names++] = dflt[i];
    }
    if (reps < 1)
        reps = 1;
    corpus_t c;
    if (load_corpus(dir, &c)) {
        fprintf(stderr, "cannot read %s/corpus.json(.gz)\n", dir);
        return 1;
    }
    if (!json) {
        printf("corpus: %zu cases, %.2f MB; best of %d passes, single thread\n\n", c.n,
               (double)c.bytes / 1e6, reps);
        printf("| tokenizer | load ms | encode MB/s | tokens/s | tokens |\n");
        printf("| --- | ---: | ---: | ---: | ---: |\n");
    } else
        printf("[\n");
    for (int k = 0; k < n_names; k++) {
        char p[4096];
        snprintf(p, sizeof p, "%s/%s/tokenizer.json", dir, names[k]);
        size_t n;
        char *js = read_maybe_gz(p, &n);
        if (!js) {
            fprintf(stderr, "cannot read %s(.gz)\n", p);
            return 1;
        }
        double *lt = malloc((size_t)reps * sizeof *lt), *et = malloc((size_t)reps * sizeof *et);
        air_tokenizer *t = NULL;
        for (int r = 0; r < reps; r++) {
            double t0 = now();
            if (air_tokenizer_load_from_memory(js, n, NULL, &t) != AIR_OK) {
                fprintf(stderr, "%s: %s\n", names[k], air_last_error());
                return 1;
            }
            lt[r] = now() - t0;
            if (r + 1 < reps)
                air_tokenizer_free(t);
        }
        size_t tokens = 0;
        for (int r = -1; r < reps; r++) {
            double t0 = now();
            size_t tk = 0;
            for (size_t i = 0; i < c.n; i++) {
                int32_t *ids;
                size_t m;
                if (air_tokenizer_encode(t, c.text[i], c.len[i], 0, &ids, &m) != AIR_OK) {
                    fprintf(stderr, "%s: %s\n", names[k], air_last_error());
                    return 1;
                }
                tk += m;
                free(ids);
            }
            if (r >= 0)
                et[r] = now() - t0;
            tokens = tk;
        }
        qsort(lt, (size_t)reps, sizeof *lt, cmp_d);
        qsort(et, (size_t)reps, sizeof *et, cmp_d);
        double l = lt[0], e = et[0];
        if (json)
            printf("  {\"tokenizer\": \"%s\", \"load_ms\": %.2f, \"encode_mb_s\": %.3f, "
                   "\"tokens_s\": %.0f, \"tokens\": %zu}%s\n",
                   names[k], l * 1e3, (double)c.bytes / e / 1e6, (double)tokens / e, tokens,
                   k + 1 < n_names ? "," : "");
        else
            printf("| %s | %.1f | %.2f | %.0f | %zu |\n", names[k], l * 1e3,
                   (double)c.bytes / e / 1e6, (double)tokens / e, tokens);
        fflush(stdout);
        air_tokenizer_free(t);
        free(js);
        free(lt);
        free(et);
    }
    if (json)
        printf("]\n");
    for (size_t i = 0; i < c.n; i++)
        free(c.text[i]);
    free(c.text);
    free(c.len);
    return 0;
}
