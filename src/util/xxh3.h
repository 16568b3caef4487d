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

#include <stddef.h>
#include <stdint.h>

uint64_t air_xxh3(const void *p, size_t n);

/* The versions behind air_xxh3, for tests: NULL when this CPU (or build)
 * has no such version. */
typedef uint64_t (*air_xxh3_fn)(const void *p, size_t n);
air_xxh3_fn air_xxh3_version(int v); /* 0: baseline, 1: AVX2, 2: AVX-512 */

#endif
