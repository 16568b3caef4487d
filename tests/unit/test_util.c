/* test_util.c - error table, strbuf, atomic file writes. */
#include "test.h"
#include "util/error.h"
#include "util/fileio.h"
#include "util/strbuf.h"

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

int main(void) {
    RUN(strerror_table);
    RUN(error_message);
    RUN(strbuf);
    RUN(atomic_write_and_read);
    return test_summary();
}
