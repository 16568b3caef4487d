/*
 * xxh3_impl.h - internal: defines the air_xxh3_impl NAME of xxhash's inlined
 * code as built for the including file's target (xxh3.c, xxh3_avx2.c,
 * xxh3_avx512.c). Include once per file.
 */
#ifndef AIR_UTIL_XXH3_IMPL_H
#define AIR_UTIL_XXH3_IMPL_H

#include "util/xxh3.h"

#define XXH_INLINE_ALL
#include <xxhash.h>

_Static_assert(sizeof(XXH3_state_t) <= sizeof(air_xxh3_state), "air_xxh3_state too small");
_Static_assert(alignof(XXH3_state_t) <= alignof(air_xxh3_state), "air_xxh3_state misaligned");

#define AIR_XXH3_IMPL(NAME)                                                                        \
    static uint64_t NAME##_hash(const void *p, size_t n) {                                         \
        return XXH3_64bits(p, n);                                                                  \
    }                                                                                              \
    static void NAME##_reset(air_xxh3_state *s) {                                                  \
        XXH3_64bits_reset((XXH3_state_t *)s->opaque);                                              \
    }                                                                                              \
    static void NAME##_update(air_xxh3_state *s, const void *p, size_t n) {                        \
        XXH3_64bits_update((XXH3_state_t *)s->opaque, p, n);                                       \
    }                                                                                              \
    static uint64_t NAME##_digest(const air_xxh3_state *s) {                                       \
        return XXH3_64bits_digest((const XXH3_state_t *)s->opaque);                                \
    }                                                                                              \
    const air_xxh3_impl NAME = {NAME##_hash, NAME##_reset, NAME##_update, NAME##_digest}

#endif
