/* test_util.c - error table, strbuf, atomic file writes. */
#include "test.h"
#include "util/error.h"
#include "util/fileio.h"
#include "util/strbuf.h"
#include "util/xxh3.h"

#include <xxhash.h>

TEST(strerror_table) {
    ASSERT_EQ_STR(air_strerror(AIR_OK), "success");
    ASSERT_EQ_STR(air_strerror(AIR_ERR_FORMAT), "malformed or corrupt input");
    ASSERT_EQ_STR(air_strerror((air_status)999), "unknown status");
}

TEST(error_message) {
    ASSERT_EQ_INT(air_err(AIR_ERR_IO, "file %s at byte %d", "x.bin", 42), AIR_ERR_IO);
    ASSERT_EQ_STR(air_last_error(), "file x.bin at byte 42");
    air_err_context(AIR_ERR_IO, "layer %d", 3);
    ASSERT_EQ_STR(air_last_error(), "layer 3: file x.bin at byte 42");
}

TEST(strbuf) {
    air_strbuf sb = {0};
    for (int i = 0; i < 1000; i++)
        ASSERT_OK(air_sb_printf(&sb, "%d,", i % 10));
    ASSERT_EQ_INT(sb.len, 2000);
    char *s = air_sb_take(&sb);
    ASSERT_TRUE(strncmp(s, "0,1,2,", 6) == 0);
    free(s);
}

TEST(atomic_write_and_read) {
    const char *dir = test_tmp("util");
    char *p = air_path_join(dir, "f.txt");
    ASSERT_OK(air_write_file_atomic(p, "hello", 5));
    char *data;
    size_t n;
    ASSERT_OK(air_read_file(p, &data, &n));
    ASSERT_EQ_INT(n, 5);
    ASSERT_EQ_STR(data, "hello");
    free(data);
    free(p);
    ASSERT_ERR(air_read_file("/nonexistent/x", &data, &n), AIR_ERR_NOT_FOUND, "/nonexistent/x");
}

/* Every build of air_xxh3 this CPU runs gives libxxhash's XXH3_64bits, on
 * every length up to 2 KiB (all the short-input paths and the stripe loop's
 * edges) and on large buffers at odd offsets, one-shot and fed in pieces of
 * varied sizes. */
TEST(xxh3_equals_libxxhash) {
    enum { N = (1 << 20) + 777 };
    unsigned char *buf = malloc(N);
    uint64_t r = 0x2545f4914f6cdd1dull;
    for (int i = 0; i < N; i++) {
        r ^= r << 13, r ^= r >> 7, r ^= r << 17;
        buf[i] = (unsigned char)r;
    }
    int versions = 0;
    for (int v = 0; v < 3; v++) {
        const air_xxh3_impl *f = air_xxh3_version(v);
        if (!f)
            continue;
        versions++;
        for (size_t n = 0; n <= 2048; n++)
            if (f->hash(buf + 3, n) != XXH3_64bits(buf + 3, n))
                T_FAIL("version %d, %zu bytes: differs from XXH3_64bits", v, n);
        static const size_t big[] = {4096, 65536 + 5, 1 << 20, (1 << 20) + 700};
        for (size_t k = 0; k < sizeof big / sizeof big[0]; k++) {
            uint64_t want = XXH3_64bits(buf + 1, big[k]);
            if (f->hash(buf + 1, big[k]) != want)
                T_FAIL("version %d, %zu bytes: differs from XXH3_64bits", v, big[k]);
            air_xxh3_state st;
            f->reset(&st);
            for (size_t at = 0, piece = 1; at < big[k]; at += piece, piece = piece * 3 + 7) {
                if (piece > big[k] - at)
                    piece = big[k] - at;
                f->update(&st, buf + 1 + at, piece);
            }
            if (f->digest(&st) != want)
                T_FAIL("version %d, %zu bytes in pieces: differs from XXH3_64bits", v, big[k]);
        }
    }
    ASSERT_TRUE(versions >= 1);
    ASSERT_TRUE(air_xxh3(buf, N) == XXH3_64bits(buf, N));
    free(buf);
}

int main(void) {
    RUN(strerror_table);
    RUN(error_message);
    RUN(strbuf);
    RUN(atomic_write_and_read);
    RUN(xxh3_equals_libxxhash);
    return test_summary();
}
