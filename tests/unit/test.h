/*
 * test.h - minimal assertions for the unit tests (one executable per test
 * file, run by CTest). A failing assertion prints both operands with file and
 * line and exits non-zero; the last line of a passing test is "N passed, 0 failed".
 *
 *     TEST(parses_header) { ASSERT_EQ_INT(n, 3); }
 *     int main(void) { RUN(parses_header); return test_summary(); }
 */
#ifndef AIR_TEST_H
#define AIR_TEST_H

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "airllm.h"

static int t_passed, t_failed, t_cur_failed;

#define TEST(name) static void test_##name(void)

#define RUN(name)                                       \
    do {                                                \
        t_cur_failed = 0;                               \
        fprintf(stderr, "[ RUN  ] %s\n", #name);        \
        test_##name();                                  \
        if (t_cur_failed) {                             \
            t_failed++;                                 \
            fprintf(stderr, "[ FAIL ] %s\n", #name);    \
        } else {                                        \
            t_passed++;                                 \
            fprintf(stderr, "[  OK  ] %s\n", #name);    \
        }                                               \
    } while (0)

#define T_FAIL(...)                                                   \
    do {                                                              \
        fprintf(stderr, "%s:%d: ", __FILE__, __LINE__);               \
        fprintf(stderr, __VA_ARGS__);                                 \
        fprintf(stderr, "\n");                                        \
        t_cur_failed = 1;                                             \
        return;                                                       \
    } while (0)

#define ASSERT_TRUE(c) \
    do { if (!(c)) T_FAIL("expected true: %s", #c); } while (0)

#define ASSERT_EQ_INT(a, b)                                                            \
    do {                                                                               \
        long long _a = (long long)(a), _b = (long long)(b);                            \
        if (_a != _b) T_FAIL("%s == %s failed: %lld vs %lld", #a, #b, _a, _b);          \
    } while (0)

#define ASSERT_EQ_STR(a, b)                                                            \
    do {                                                                               \
        const char *_a = (a), *_b = (b);                                               \
        if (!_a || !_b || strcmp(_a, _b) != 0)                                         \
            T_FAIL("%s == %s failed:\n  got:      \"%s\"\n  expected: \"%s\"", #a, #b,  \
                   _a ? _a : "(null)", _b ? _b : "(null)");                            \
    } while (0)

#define ASSERT_NEAR(a, b, tol)                                                         \
    do {                                                                               \
        double _a = (a), _b = (b);                                                     \
        if (!(fabs(_a - _b) <= (tol)))                                                 \
            T_FAIL("%s ~= %s failed: %.9g vs %.9g (tol %g)", #a, #b, _a, _b, (double)(tol)); \
    } while (0)

/* Asserts a status is AIR_OK and prints the library's message if not. */
#define ASSERT_OK(expr)                                                                \
    do {                                                                               \
        air_status _s = (expr);                                                        \
        if (_s != AIR_OK)                                                              \
            T_FAIL("%s failed: %s: %s", #expr, air_strerror(_s), air_last_error());   \
    } while (0)

/* Asserts a specific error status and that the message contains `needle`. */
#define ASSERT_ERR(expr, code, needle)                                                 \
    do {                                                                               \
        air_status _s = (expr);                                                        \
        if (_s != (code))                                                              \
            T_FAIL("%s: expected %s, got %s (%s)", #expr, air_strerror(code),          \
                   air_strerror(_s), air_last_error());                                \
        if (!strstr(air_last_error(), (needle)))                                       \
            T_FAIL("%s: message \"%s\" does not mention \"%s\"", #expr,                \
                   air_last_error(), (needle));                                        \
    } while (0)

/* Path under the fixtures folder (AIR_TEST_DATA); static buffer. */
static inline const char *test_data(const char *rel) {
    static char buf[4][4096];
    static int k;
    const char *base = getenv("AIR_TEST_DATA");
    char *b = buf[k++ & 3];
    snprintf(b, 4096, "%s/%s", base ? base : "tests/fixtures", rel);
    return b;
}

/* Scratch folder for this test (created). */
static inline const char *test_tmp(const char *name) {
    static char buf[4096];
    const char *base = getenv("AIR_TEST_TMP");
    snprintf(buf, sizeof buf, "%s/%s", base ? base : "/tmp/air-test", name);
    char cmd[4200];
    snprintf(cmd, sizeof cmd, "rm -rf '%s' && mkdir -p '%s'", buf, buf);
    if (system(cmd) != 0) fprintf(stderr, "cannot create %s\n", buf);
    return buf;
}

static inline int test_summary(void) {
    printf("%d passed, %d failed\n", t_passed, t_failed);
    return t_failed ? 1 : 0;
}

#endif
