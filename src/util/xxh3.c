/*
 * xxh3.c - the baseline build of XXH3-64 and the pick of the fastest build
 * the CPU runs (xxh3_avx2.c, xxh3_avx512.c).
 */
#include "util/xxh3_impl.h"

AIR_XXH3_IMPL(air_xxh3_base);

#if defined(__x86_64__) && defined(__GNUC__)
extern const air_xxh3_impl air_xxh3_avx2, air_xxh3_avx512;
#define AIR_XXH3_X86 1
#endif

const air_xxh3_impl *air_xxh3_version(int v) {
    switch (v) {
    case 0:
        return &air_xxh3_base;
#ifdef AIR_XXH3_X86
    case 1:
        __builtin_cpu_init();
        return __builtin_cpu_supports("avx2") ? &air_xxh3_avx2 : NULL;
    case 2:
        __builtin_cpu_init();
        return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw")
                   ? &air_xxh3_avx512
                   : NULL;
#endif
    default:
        return NULL;
    }
}

static const air_xxh3_impl *g_impl; /* picked on first use */

static const air_xxh3_impl *impl(void) {
    const air_xxh3_impl *f = __atomic_load_n(&g_impl, __ATOMIC_ACQUIRE);
    if (!f) {
        for (int v = 2; v >= 0 && !f; v--)
            f = air_xxh3_version(v);
        __atomic_store_n(&g_impl, f, __ATOMIC_RELEASE);
    }
    return f;
}

uint64_t air_xxh3(const void *p, size_t n) {
    return impl()->hash(p, n);
}
void air_xxh3_reset(air_xxh3_state *s) {
    impl()->reset(s);
}
void air_xxh3_update(air_xxh3_state *s, const void *p, size_t n) {
    impl()->update(s, p, n);
}
uint64_t air_xxh3_digest(const air_xxh3_state *s) {
    return impl()->digest(s);
}
