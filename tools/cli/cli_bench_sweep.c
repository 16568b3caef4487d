/*
 * cli_bench_sweep.c - `airllm bench --ram-sweep`: "how fast will it be with my
 * RAM?" Decode speed of one layer store at several RAM budgets, from every
 * unit streamed to every unit resident, each next to its I/O floor (the
 * bytes a token reads from disk over the disk's measured bandwidth).
 *
 * Each budget opens its own engine on the store (the residency plan is fixed
 * at open), prefills a few random tokens, then times the decode steps.
 */
#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "api_internal.h"
#include "cli.h"

typedef struct {
    uint64_t budget, pinned;
    int n_pinned;
    double s_per_token, bytes_per_token, floor_s;
} sweep_point;

static double mono_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

static air_status measure(const air_model *m, uint64_t budget, int n_threads, int prefetch, int pp,
                          int tg, double disk_gbs, sweep_point *pt) {
    air_engine_options o;
    air_engine_default_options(&o);
    o.n_threads = n_threads;
    o.max_seq = pp + tg + 1;
    o.stream.prefetch = prefetch;
    o.stream.ram_budget = budget;
    air_engine *e = NULL;
    air_status st = air_engine_open(m->store_dir, &o, &e);
    if (st)
        return st;
    const air_hparams *hp = air_engine_hparams(e);
    air_kv kv;
    int32_t *ids = malloc(sizeof(int32_t) * (size_t)(pp + tg));
    float *logits = malloc(sizeof(float) * (size_t)hp->n_vocab);
    if ((st = air_kv_init(&kv, hp, pp + tg + 1)) || !ids || !logits) {
        free(ids);
        free(logits);
        air_engine_close(e);
        return st ? st : AIR_ERR_NOMEM;
    }
    uint64_t rng = 4242;
    for (int i = 0; i < pp + tg; i++) {
        rng = rng * 6364136223846793005ull + 1442695040888963407ull;
        ids[i] = (int32_t)((rng >> 33) % (uint64_t)hp->n_vocab);
    }
    air_streamer_stats a, b;
    st = air_engine_eval(e, &kv, ids, pp, 0, logits);
    air_streamer_get_stats(air_engine_streamer(e), &a);
    double t0 = mono_s();
    for (int i = 0; i < tg && !st; i++)
        st = air_engine_eval(e, &kv, &ids[pp + i], 1, 0, logits);
    double dt = mono_s() - t0;
    air_streamer_get_stats(air_engine_streamer(e), &b);
    if (!st) {
        pt->budget = b.ram_budget;
        pt->pinned = b.pinned_bytes;
        pt->n_pinned = b.n_pinned;
        pt->s_per_token = dt / tg;
        pt->bytes_per_token = (double)(b.bytes_read - a.bytes_read) / tg;
        pt->floor_s = disk_gbs > 0 ? pt->bytes_per_token / (disk_gbs * 1e9) : 0;
    }
    air_kv_free(&kv);
    free(ids);
    free(logits);
    air_engine_close(e);
    return st;
}

int cli_bench_ram_sweep(const air_model *m, int steps, int pp, int tg, int n_threads, int prefetch,
                        double disk_gbs, int json) {
    air_store *s = air_engine_store(m->engine);
    uint64_t total = 0;
    for (int u = 0; u < air_store_n_units(s); u++)
        total += air_store_unit_bytes(s, u);
    if (steps < 1)
        steps = 1;
    sweep_point *pts = calloc((size_t)steps + 1, sizeof *pts);
    if (!pts)
        return 1;
    char sz[32], sz2[32], sz3[32];
    if (!json) {
        printf("RAM sweep: store %s, disk %.2f GB/s, %d decode tokens per point\n\n",
               air_format_bytes(total, sz, sizeof sz), disk_gbs, tg);
        printf("| RAM budget | pinned | s/token | tokens/s | read/token | I/O floor s/token | "
               "s/token / floor |\n");
        printf("|-----------:|-------:|--------:|---------:|-----------:|------------------:|"
               "----------------:|\n");
    }
    int rc = 0;
    for (int k = 0; k <= steps; k++) {
        /* the last point holds every unit, whatever rounding did */
        uint64_t budget = k == steps ? total + (64u << 20) : total / (uint64_t)steps * (uint64_t)k;
        air_status st = measure(m, budget, n_threads, prefetch, pp, tg, disk_gbs, &pts[k]);
        if (st) {
            fprintf(stderr, "airllm bench: RAM budget %s: %s\n",
                    air_format_bytes(budget, sz, sizeof sz), air_last_error());
            rc = 1;
            break;
        }
        const sweep_point *p = &pts[k];
        if (!json) {
            char ratio[32] = "— (no reads)";
            if (p->floor_s > 0)
                snprintf(ratio, sizeof ratio, "%.2f", p->s_per_token / p->floor_s);
            printf("| %s | %s | %.3f | %.2f | %s | %.3f | %s |\n",
                   air_format_bytes(p->budget, sz, sizeof sz),
                   air_format_bytes(p->pinned, sz2, sizeof sz2), p->s_per_token,
                   p->s_per_token > 0 ? 1.0 / p->s_per_token : 0,
                   air_format_bytes((uint64_t)p->bytes_per_token, sz3, sizeof sz3), p->floor_s,
                   ratio);
            fflush(stdout);
        }
    }
    if (json && !rc) {
        air_model_info info;
        air_model_get_info(m, &info);
        cJSON *j = cJSON_CreateObject(), *arr;
        cJSON_AddStringToObject(j, "model", info.name);
        cJSON_AddStringToObject(j, "compression", info.compression);
        cJSON_AddNumberToObject(j, "store_bytes", (double)total);
        cJSON_AddNumberToObject(j, "disk_gb_per_s", disk_gbs);
        cJSON_AddNumberToObject(j, "decode_tokens", tg);
        arr = cJSON_AddArrayToObject(j, "points");
        for (int k = 0; k <= steps; k++) {
            cJSON *o = cJSON_CreateObject();
            cJSON_AddNumberToObject(o, "ram_budget", (double)pts[k].budget);
            cJSON_AddNumberToObject(o, "pinned_bytes", (double)pts[k].pinned);
            cJSON_AddNumberToObject(o, "pinned_units", pts[k].n_pinned);
            cJSON_AddNumberToObject(o, "s_per_token", pts[k].s_per_token);
            cJSON_AddNumberToObject(o, "bytes_read_per_token", pts[k].bytes_per_token);
            cJSON_AddNumberToObject(o, "floor_s_per_token", pts[k].floor_s);
            cJSON_AddItemToArray(arr, o);
        }
        char *text = cJSON_Print(j);
        if (text)
            puts(text);
        free(text);
        cJSON_Delete(j);
    }
    free(pts);
    return rc;
}
