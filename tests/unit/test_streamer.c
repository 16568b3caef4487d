/*
 * test_streamer.c - the streamer's buffers: small units are packed into the
 * two buffers (read ahead as many as fit), every unit comes back with the
 * bytes a resident load gives, in and out of cycle, with and without the
 * reader thread, and the bytes counted are those of the units taken.
 */
#include <stdint.h>
#include <string.h>

#include "runtime/streamer.h"
#include "store/layerfile.h"
#include "store/store.h"
#include "test.h"
#include "source/source.h"
#include "test_tiny_llama.h"

/* A llama whose head (a 4096-token vocabulary) is ten times a layer. */
static air_store *open_store(void) {
    const char *src_dir = write_tiny_llama("big-head", 7, 4096, 32, 64, 6);
    if (!src_dir)
        return NULL;
    char dir[1024];
    snprintf(dir, sizeof dir, "%s", test_tmp("big-head-store"));
    air_source *src = NULL;
    air_split_options so = {0};
    air_compression_parse("none", &so.compression);
    air_store *s = NULL;
    if (air_source_open_hfdir(src_dir, 0, &src) || air_store_split(src, dir, &so) ||
        air_store_open(dir, &s)) {
        fprintf(stderr, "%s\n", air_last_error());
        air_source_close(src);
        return NULL;
    }
    air_source_close(src);
    return s;
}

/* Units that fit, packed in cycle order from unit 0 (4 KiB-aligned), into
 * two buffers of the largest unit: the read-ahead of an idle reader. */
static int packed_units(air_store *s) {
    int n = air_store_n_units(s);
    uint64_t cap = 0;
    for (int u = 0; u < n; u++)
        if (air_store_unit_bytes(s, u) > cap)
            cap = air_store_unit_bytes(s, u);
    cap = (cap + 4095) / 4096 * 4096;
    uint64_t fill[2] = {0, 0};
    int b = 0, k = 0;
    for (int u = 0; u < n; u++) { /* one cycle at most: a unit is not read twice ahead */
        uint64_t need = (air_store_unit_bytes(s, u) + 4095) / 4096 * 4096;
        if (fill[b] + need > cap) {
            if (b == 1)
                break;
            b = 1;
        }
        fill[b] += need;
        k++;
    }
    return k;
}

/* Unit u as the streamer gives it equals a resident load, tensor by tensor. */
static int same_as_resident(air_streamer *str, air_streamer *res, int u) {
    const air_layer *a, *b;
    if (air_streamer_acquire(str, u, &a))
        return 0;
    if (air_streamer_acquire(res, u, &b)) {
        air_streamer_release(str, u);
        return 0;
    }
    int ok = a->n == b->n && a->n > 0;
    for (int i = 0; ok && i < a->n; i++)
        ok = a->t[i].nbytes == b->t[i].nbytes && memcmp(a->t[i].data, b->t[i].data, a->t[i].nbytes) == 0;
    air_streamer_release(str, u);
    air_streamer_release(res, u);
    return ok;
}

TEST(small_units_are_read_ahead_in_both_buffers) {
    air_store *s = open_store();
    ASSERT_TRUE(s != NULL);
    int n = air_store_n_units(s);
    int expect = packed_units(s);
    fprintf(stderr, "units %d, packed read-ahead %d\n", n, expect);
    ASSERT_TRUE(expect > 2); /* the head is much larger than a layer */
    air_streamer_options so = {.prefetch = 1, .direct_io = 1, .ram_budget = 0};
    air_streamer_options ro = {.prefetch = 0, .direct_io = 0, .ram_budget = UINT64_MAX / 2};
    air_streamer *str = NULL, *res = NULL;
    ASSERT_TRUE(air_streamer_create(s, &so, &str) == AIR_OK);
    ASSERT_TRUE(air_streamer_create(s, &ro, &res) == AIR_OK);
    air_streamer_wait_idle(str);
    air_streamer_stats st;
    air_streamer_get_stats(str, &st);
    ASSERT_EQ_INT(st.read_ahead, expect);
    ASSERT_EQ_INT(st.bytes_read, 0); /* nothing taken yet */
    uint64_t cycle = 0;
    for (int u = 0; u < n; u++)
        cycle += air_store_unit_bytes(s, u);
    /* three passes in cycle order */
    for (int pass = 0; pass < 3; pass++)
        for (int u = 0; u < n; u++)
            ASSERT_TRUE(same_as_resident(str, res, u));
    air_streamer_wait_idle(str);
    air_streamer_get_stats(str, &st);
    ASSERT_EQ_INT(st.bytes_read, 3 * cycle);
    ASSERT_TRUE(st.read_ahead > 2);
    /* out of cycle: a unit further on, back to the start, one unit twice */
    int order[] = {n - 1, 2, 0, 0, 1, n - 1, 3};
    for (size_t i = 0; i < sizeof order / sizeof order[0]; i++)
        ASSERT_TRUE(same_as_resident(str, res, order[i]));
    air_streamer_free(str);
    /* without the reader thread: one unit at a time */
    so.prefetch = 0;
    ASSERT_TRUE(air_streamer_create(s, &so, &str) == AIR_OK);
    for (int u = n - 1; u >= 0; u--)
        ASSERT_TRUE(same_as_resident(str, res, u));
    air_streamer_get_stats(str, &st);
    ASSERT_EQ_INT(st.read_ahead, 0);
    ASSERT_EQ_INT(st.bytes_read, cycle);
    air_streamer_free(str);
    air_streamer_free(res);
    air_store_close(s);
}

int main(void) {
    RUN(small_units_are_read_ahead_in_both_buffers);
    return test_summary();
}
