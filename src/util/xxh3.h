/*
 * xxh3.h - XXH3-64 of large buffers (the layer store's checksums), with
 * xxhash's own implementation (its header, inlined) built for AVX-512, for
 * AVX2 and for the baseline, the best one the CPU has picked once. The
 * values are those of libxxhash's XXH3_64bits: XXH3 is defined the same for
 * every vector width; only the speed differs (in cache, about 3x the
 * library's SSE2 build with AVX-512).
 */
#ifndef AIR_UTIL_XXH3_H
#define AIR_UTIL_XXH3_H

#include <stdalign.h>
#include <stddef.h>
#include <stdint.h>

uint64_t air_xxh3(const void *p, size_t n);

/* Streaming: the XXH3-64 of bytes fed in pieces, equal to air_xxh3 of their
 * concatenation. The state holds an XXH3_state_t. */
typedef struct {
    alignas(64) unsigned char opaque[640];
} air_xxh3_state;
void air_xxh3_reset(air_xxh3_state *s);
void air_xxh3_update(air_xxh3_state *s, const void *p, size_t n);
uint64_t air_xxh3_digest(const air_xxh3_state *s);

/* One build: what air_xxh3 and the streaming functions run. */
typedef struct {
    uint64_t (*hash)(const void *p, size_t n);
    void (*reset)(air_xxh3_state *s);
    void (*update)(air_xxh3_state *s, const void *p, size_t n);
    uint64_t (*digest)(const air_xxh3_state *s);
} air_xxh3_impl;

/* The builds, for tests: 0 baseline, 1 AVX2, 2 AVX-512; NULL when this CPU
 * (or build) has no such one. */
const air_xxh3_impl *air_xxh3_version(int v);

#endif
