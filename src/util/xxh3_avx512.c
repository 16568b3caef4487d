/*
 * xxh3_avx512.c - XXH3-64 built for AVX-512 (xxhash's own code, inlined; see xxh3.h).
 */
#include <stddef.h>
#include <stdint.h>

#define XXH_INLINE_ALL
#include <xxhash.h>

uint64_t air_xxh3_avx512(const void *p, size_t n);
uint64_t air_xxh3_avx512(const void *p, size_t n) { return XXH3_64bits(p, n); }
