/*
 * xxh3.c - air_xxh3: the baseline build of XXH3-64 and the pick of the
 * fastest build the CPU runs (xxh3_avx2.c, xxh3_avx512.c).
 */
#include "util/xxh3.h"

#define XXH_INLINE_ALL
#include <xxhash.h>

static uint64_t xxh3_base(const void *p, size_t n) { return XXH3_64bits(p, n); }

#if defined(__x86_64__) && defined(__GNUC__)
uint64_t air_xxh3_avx2(const void *p, size_t n);
uint64_t air_xxh3_avx512(const void *p, size_t n);
#define AIR_XXH3_X86 1
#endif

air_xxh3_fn air_xxh3_version(int v) {
    switch (v) {
    case 0:
        return xxh3_base;
#ifdef AIR_XXH3_X86
    case 1:
        __builtin_cpu_init();
        return __builtin_cpu_supports("avx2") ? air_xxh3_avx2 : NULL;
    case 2:
        __builtin_cpu_init();
        return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw")
                   ? air_xxh3_avx512
                   : NULL;
#endif
    default:
        return NULL;
    }
}

static air_xxh3_fn g_fn; /* picked on first use */

uint64_t air_xxh3(const void *p, size_t n) {
    air_xxh3_fn f = __atomic_load_n(&g_fn, __ATOMIC_ACQUIRE);
    if (!f) {
        for (int v = 2; v >= 0 && !f; v--)
            f = air_xxh3_version(v);
        __atomic_store_n(&g_fn, f, __ATOMIC_RELEASE);
    }
    return f(p, n);
}
