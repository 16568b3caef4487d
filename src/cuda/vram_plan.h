/*
 * vram_plan.h - which units of a layer store stay in GPU memory.
 *
 * Like the RAM residency plan of the streamer: a fixed set, the head first
 * (it is read every pass and is the largest unit), then layers from 0. The
 * units left over stream through two device buffers of the largest of them,
 * so the plan keeps as many units resident as fit in
 *   budget >= fixed + resident bytes + (anything streamed ? 2 x largest streamed : 0)
 * where `fixed` is what the pass needs besides weights (KV cache,
 * activations).
 */
#ifndef AIR_CUDA_VRAM_PLAN_H
#define AIR_CUDA_VRAM_PLAN_H

#include <stdint.h>

#include "airllm.h"

typedef struct {
    int n_units;
    uint8_t *resident; /* (n_units) 1: kept in GPU memory */
    int n_resident;
    uint64_t resident_bytes;
    uint64_t slot_bytes;     /* each of the two streaming buffers; 0 when all are resident */
    uint64_t streamed_bytes; /* copied per pass */
    uint64_t total_bytes;    /* fixed + resident + 2 slots: the plan's peak */
} air_vram_plan;

/* Plans for units of unit_bytes[0 .. n_units) (the last is the head).
 * AIR_ERR_LIMIT when not even two streaming buffers and `fixed` fit, with a
 * message giving the smallest budget that works. Free with air_vram_plan_free. */
air_status air_vram_plan_make(const uint64_t *unit_bytes, int n_units, uint64_t budget,
                              uint64_t fixed, air_vram_plan *out);
void air_vram_plan_free(air_vram_plan *p);

#endif
