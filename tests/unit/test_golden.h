/*
 * test_golden.h - helpers of the tests that compare the engine with the
 * golden outputs of tests/gen (gen_models.py, gen_moe_models.py): load a
 * golden.json, relative error, split a fixture model, open an engine.
 */
#ifndef AIR_TEST_GOLDEN_H
#define AIR_TEST_GOLDEN_H

#include <cjson/cJSON.h>

#include "model/forward.h"
#include "source/source.h"
#include "store/store.h"
#include "test.h"
#include "util/fileio.h"

typedef struct {
    cJSON *root;
    int32_t prompt[64];
    int n_prompt;
    int32_t greedy[64];
    int n_greedy;
} golden;

static inline int load_golden(const char *model, golden *g) {
    char rel[256];
    snprintf(rel, sizeof rel, "models/%s/golden.json", model);
    char *text;
    size_t len;
    if (air_read_file(test_data(rel), &text, &len))
        return 0;
    g->root = cJSON_Parse(text);
    free(text);
    const cJSON *p = cJSON_GetObjectItem(g->root, "prompt_ids"), *e;
    g->n_prompt = 0;
    cJSON_ArrayForEach(e, p) g->prompt[g->n_prompt++] = e->valueint;
    g->n_greedy = 0;
    cJSON_ArrayForEach(e, cJSON_GetObjectItem(g->root, "greedy_ids")) g->greedy[g->n_greedy++] =
        e->valueint;
    return g->root != NULL;
}

/* ||a - b|| / ||b|| */
static inline double rel_err(const float *a, const cJSON *b, int n) {
    double num = 0, den = 0;
    for (int i = 0; i < n; i++) {
        double bv = cJSON_GetArrayItem(b, i)->valuedouble;
        num += (a[i] - bv) * (a[i] - bv);
        den += bv * bv;
    }
    return sqrt(num / (den > 0 ? den : 1));
}

static inline const char *split_model(const char *model, const char *comp) {
    static char dir[4][1024];
    static int k;
    char *d = dir[k++ & 3];
    char name[128];
    snprintf(name, sizeof name, "store-%s-%s", model, comp);
    snprintf(d, 1024, "%s", test_tmp(name));
    char rel[256];
    snprintf(rel, sizeof rel, "models/%s", model);
    air_source *src = NULL;
    air_status st = air_source_open_hfdir(test_data(rel), 0, &src);
    if (st) {
        fprintf(stderr, "open %s: %s\n", model, air_last_error());
        return NULL;
    }
    air_split_options so = {0};
    air_compression_parse(comp, &so.compression);
    st = air_store_split(src, d, &so);
    air_source_close(src);
    if (st) {
        fprintf(stderr, "split %s: %s\n", model, air_last_error());
        return NULL;
    }
    return d;
}

static inline air_engine *open_engine(const char *store, int prefetch, uint64_t budget) {
    air_engine_options o;
    air_engine_default_options(&o);
    o.n_threads = 2;
    o.stream.prefetch = prefetch;
    o.stream.ram_budget = budget;
    air_engine *e = NULL;
    if (air_engine_open(store, &o, &e)) {
        fprintf(stderr, "engine: %s\n", air_last_error());
        return NULL;
    }
    return e;
}

#endif
