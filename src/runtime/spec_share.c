/*
 * spec_share.c - the candidate budget of a pass shared by several sequences
 * (see spec_share.h).
 */
#include "runtime/spec_share.h"

#include <stdlib.h>

#define REPROBE_AFTER 32

void air_spec_share_observe(air_spec_share *sh, int rows, double seconds) {
    air_pass_costs_add(&sh->costs, rows, seconds);
}

void air_spec_share_plan(air_spec_share *sh, air_spec *const *spec, const int *room, int n,
                         int base_rows, int base_tokens, int *budget) {
    int total = 0, n_auto = 0;
    double tokens = base_tokens, draft = 0;
    for (int i = 0; i < n; i++) {
        budget[i] = 0;
        if (!spec[i] || room[i] <= 0)
            continue;
        int fixed = air_spec_fixed(spec[i]);
        if (fixed > 0) {
            budget[i] = fixed < room[i] ? fixed : room[i];
            if (budget[i] > sh->max_total - total)
                budget[i] = sh->max_total - total;
            total += budget[i];
            double d;
            tokens += air_spec_expect(spec[i], budget[i], &d) - 1;
            draft += d;
        } else {
            n_auto++;
        }
    }
    int rows = base_rows + total;
    /* plain decoding is the yardstick: a pass of this size is measured first */
    if (n_auto == 0 || !air_pass_costs_known(&sh->costs, rows))
        return;
    for (int i = 0; i < n; i++) /* for drafts whose passes are not measured yet */
        if (spec[i])
            air_spec_hint(spec[i], air_pass_costs_get(&sh->costs, base_rows));
    int *lv = calloc((size_t)n, sizeof *lv); /* budget levels */
    if (!lv)
        return; /* plain */
    double rate = tokens / (air_pass_costs_get(&sh->costs, rows) + draft);
    for (;;) {
        int bi = -1, bl = 0;
        double best = rate, bt = 0, bd = 0;
        for (int i = 0; i < n; i++) {
            if (!spec[i] || room[i] <= 0 || air_spec_fixed(spec[i]) > 0)
                continue;
            int cur = air_spec_level_nodes(lv[i]);
            double dc, ec = air_spec_expect(spec[i], cur, &dc);
            for (int l = lv[i] + 1; l < AIR_SPEC_LEVELS; l++) {
                int nodes = air_spec_level_nodes(l);
                if (nodes > room[i] || total - cur + nodes > sh->max_total)
                    break;
                double d, e = air_spec_expect(spec[i], nodes, &d);
                double t = tokens - ec + e, dr = draft - dc + d;
                double c = air_pass_costs_get(&sh->costs, rows - cur + nodes) + dr;
                if (c > 0 && t / c > best) {
                    best = t / c;
                    bi = i;
                    bl = l;
                    bt = t;
                    bd = dr;
                }
            }
        }
        if (bi < 0)
            break;
        int dn = air_spec_level_nodes(bl) - air_spec_level_nodes(lv[bi]);
        total += dn;
        rows += dn;
        lv[bi] = bl;
        tokens = bt;
        draft = bd;
        rate = best;
    }
    int any = 0;
    for (int i = 0; i < n; i++)
        any |= lv[i] > 0;
    /* measurements go stale while nothing is proposed */
    sh->plain_run = any ? 0 : sh->plain_run + 1;
    for (int i = 0; i < n; i++) {
        if (!spec[i] || room[i] <= 0 || air_spec_fixed(spec[i]) > 0)
            continue;
        if (sh->plain_run >= REPROBE_AFTER && total < sh->max_total) {
            lv[i] = 1; /* a candidate row's cost, without running the draft */
            air_spec_probe(spec[i]);
            total++;
        }
        budget[i] = air_spec_level_nodes(lv[i]);
    }
    if (sh->plain_run >= REPROBE_AFTER)
        sh->plain_run = 0;
    free(lv);
}
