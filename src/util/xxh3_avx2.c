/*
 * xxh3_avx2.c - XXH3-64 built for AVX2 (xxhash's own code, inlined; see xxh3.h).
 */
#include "util/xxh3_impl.h"

AIR_XXH3_IMPL(air_xxh3_avx2);
