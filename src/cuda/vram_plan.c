/*
 * vram_plan.c - the GPU residency plan (see vram_plan.h).
 */
#include "cuda/vram_plan.h"

#include <stdlib.h>
#include <string.h>

#include "util/error.h"
#include "util/progress.h"

/* a + b, saturating at UINT64_MAX */
static uint64_t add_sat(uint64_t a, uint64_t b) {
    return a > UINT64_MAX - b ? UINT64_MAX : a + b;
}

air_status air_vram_plan_make(const uint64_t *unit_bytes, int n_units, uint64_t budget,
                              uint64_t fixed, air_vram_plan *out) {
    memset(out, 0, sizeof *out);
    if (n_units <= 0)
        return air_err(AIR_ERR_INVALID_ARG, "VRAM plan: no units");
    int *order = malloc(sizeof(int) * (size_t)n_units);
    /* suffix_max[j]: the largest unit among order[j ..] (the streamed ones
     * when the first j are resident); prefix[j]: bytes of the first j */
    uint64_t *suffix_max = calloc((size_t)n_units + 1, sizeof(uint64_t));
    uint64_t *prefix = calloc((size_t)n_units + 1, sizeof(uint64_t));
    out->resident = calloc((size_t)n_units, 1);
    if (!order || !suffix_max || !prefix || !out->resident) {
        free(order);
        free(suffix_max);
        free(prefix);
        air_vram_plan_free(out);
        return air_err(AIR_ERR_NOMEM, "out of memory");
    }
    out->n_units = n_units;
    order[0] = n_units - 1; /* the head */
    for (int k = 1; k < n_units; k++)
        order[k] = k - 1;
    for (int j = 0; j < n_units; j++)
        prefix[j + 1] = add_sat(prefix[j], unit_bytes[order[j]]);
    for (int j = n_units - 1; j >= 0; j--)
        suffix_max[j] =
            unit_bytes[order[j]] > suffix_max[j + 1] ? unit_bytes[order[j]] : suffix_max[j + 1];
    int best = -1;
    for (int j = n_units; j >= 0 && best < 0; j--) {
        uint64_t need = add_sat(add_sat(fixed, prefix[j]), add_sat(suffix_max[j], suffix_max[j]));
        if (need <= budget && need < UINT64_MAX)
            best = j;
    }
    air_status st = AIR_OK;
    if (best < 0) {
        char b1[32], b2[32], b3[32];
        air_format_bytes(budget, b1, sizeof b1);
        air_format_bytes(add_sat(fixed, add_sat(suffix_max[0], suffix_max[0])), b2, sizeof b2);
        air_format_bytes(suffix_max[0], b3, sizeof b3);
        st = air_err(AIR_ERR_LIMIT,
                     "GPU memory budget %s is too small: streaming needs two "
                     "buffers of the largest unit (%s each) plus the KV cache and activations, "
                     "%s in all; give a larger --vram (at least %s), a shorter context "
                     "(--max-seq-len) or a smaller compression",
                     b1, b3, b2, b2);
    } else {
        for (int j = 0; j < best; j++)
            out->resident[order[j]] = 1;
        out->n_resident = best;
        out->resident_bytes = prefix[best];
        out->slot_bytes = suffix_max[best];
        out->streamed_bytes = prefix[n_units] - prefix[best];
        out->total_bytes = fixed + prefix[best] + 2 * suffix_max[best]; /* <= budget */
    }
    free(order);
    free(suffix_max);
    free(prefix);
    if (st)
        air_vram_plan_free(out);
    return st;
}

void air_vram_plan_free(air_vram_plan *p) {
    free(p->resident);
    p->resident = NULL;
}
