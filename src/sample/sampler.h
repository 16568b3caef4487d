/*
 * sampler.h - picks the next token from logits.
 *
 * Order: repetition penalty -> (optional) allowed-token mask -> greedy when
 * temperature <= 0, else temperature -> top-k -> top-p -> min-p -> draw with
 * a seeded generator (same seed, same draws).
 */
#ifndef AIR_SAMPLE_SAMPLER_H
#define AIR_SAMPLE_SAMPLER_H

#include <stdint.h>

typedef struct {
    float temperature;    /* <= 0: greedy */
    int top_k;            /* <= 0: off */
    float top_p;          /* >= 1: off */
    float min_p;          /* <= 0: off */
    float repeat_penalty; /* 1: off (HF semantics: divide positive logits, multiply negative) */
    uint64_t seed;
} air_sampler_params;

void air_sampler_default_params(air_sampler_params *p);

typedef struct air_sampler air_sampler;

air_sampler *air_sampler_new(const air_sampler_params *p, int n_vocab);
void air_sampler_free(air_sampler *s);

/* Samples from logits (modified in place). history: previous tokens for the
 * repetition penalty. allowed: NULL or a mask of n_vocab bytes (0 = banned). */
int32_t air_sampler_sample(air_sampler *s, float *logits, const int32_t *history, int n_history,
                           const uint8_t *allowed);

#endif
