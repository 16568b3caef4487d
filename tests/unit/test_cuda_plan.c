/*
 * test_cuda_plan.c - the GPU residency plan (cuda/vram_plan.c): which units
 * stay in GPU memory for a budget, the size of the two streaming buffers,
 * and the error when not even streaming fits. Runs on any machine.
 */
#include "cuda/vram_plan.h"
#include "test.h"

#define MB (1ull << 20)

/* 4 layers of 100 MB and a 300 MB head (unit 4). */
static const uint64_t units[5] = {100 * MB, 100 * MB, 100 * MB, 100 * MB, 300 * MB};

TEST(everything_fits) {
    air_vram_plan p;
    ASSERT_OK(air_vram_plan_make(units, 5, 10000 * MB, 50 * MB, &p));
    ASSERT_EQ_INT(p.n_resident, 5);
    ASSERT_EQ_INT(p.slot_bytes, 0);
    ASSERT_EQ_INT(p.streamed_bytes, 0);
    ASSERT_EQ_INT(p.resident_bytes, 700 * MB);
    ASSERT_EQ_INT(p.total_bytes, 750 * MB);
    air_vram_plan_free(&p);
}

TEST(exactly_everything) {
    air_vram_plan p;
    ASSERT_OK(air_vram_plan_make(units, 5, 750 * MB, 50 * MB, &p));
    ASSERT_EQ_INT(p.n_resident, 5);
    air_vram_plan_free(&p);
    /* one byte less: streaming needs two 100 MB slots, so two layers give way
     * (head + layers 0..2: 600 + 200 + 50 = 850; head + 0, 1: 750, over too) */
    ASSERT_OK(air_vram_plan_make(units, 5, 750 * MB - 1, 50 * MB, &p));
    ASSERT_EQ_INT(p.n_resident, 2);
    ASSERT_EQ_INT(p.slot_bytes, 100 * MB);
    ASSERT_EQ_INT(p.total_bytes, 650 * MB);
    air_vram_plan_free(&p);
}

TEST(head_first_then_layers_from_zero) {
    air_vram_plan p;
    /* 50 fixed + head 300 + layer 0 100 + 2 x 100 slots = 650 */
    ASSERT_OK(air_vram_plan_make(units, 5, 650 * MB, 50 * MB, &p));
    ASSERT_EQ_INT(p.n_resident, 2);
    ASSERT_EQ_INT(p.resident[4], 1);
    ASSERT_EQ_INT(p.resident[0], 1);
    ASSERT_EQ_INT(p.resident[1], 0);
    ASSERT_EQ_INT(p.resident[3], 0);
    ASSERT_EQ_INT(p.slot_bytes, 100 * MB);
    ASSERT_EQ_INT(p.streamed_bytes, 300 * MB);
    ASSERT_EQ_INT(p.total_bytes, 650 * MB);
    air_vram_plan_free(&p);
}

TEST(fully_streamed_needs_two_of_the_largest) {
    air_vram_plan p;
    /* nothing resident: 2 x 300 (the head streams) + 50 = 650; with the head
     * resident the slots shrink to 100: 300 + 200 + 50 = 550 */
    ASSERT_OK(air_vram_plan_make(units, 5, 560 * MB, 50 * MB, &p));
    ASSERT_EQ_INT(p.n_resident, 1);
    ASSERT_EQ_INT(p.resident[4], 1);
    ASSERT_EQ_INT(p.slot_bytes, 100 * MB);
    air_vram_plan_free(&p);
    /* between the two: head resident does not fit, all streamed does not */
    ASSERT_ERR(air_vram_plan_make(units, 5, 549 * MB, 50 * MB, &p), AIR_ERR_LIMIT, "too small");
    ASSERT_TRUE(p.resident == NULL);
}

TEST(too_small_says_the_minimum) {
    air_vram_plan p;
    ASSERT_ERR(air_vram_plan_make(units, 5, 100 * MB, 50 * MB, &p), AIR_ERR_LIMIT, "--vram");
    /* the message names the need of full streaming: 2 x 300 + 50 MB */
    ASSERT_TRUE(strstr(air_last_error(), "650") != NULL);
}

TEST(fixed_larger_than_budget) {
    air_vram_plan p;
    ASSERT_ERR(air_vram_plan_make(units, 5, 10 * MB, 1000 * MB, &p), AIR_ERR_LIMIT, "too small");
}

TEST(huge_numbers_do_not_wrap) {
    uint64_t big[3] = {UINT64_MAX / 2, UINT64_MAX / 2, UINT64_MAX / 2};
    air_vram_plan p;
    ASSERT_ERR(air_vram_plan_make(big, 3, 1000 * MB, 0, &p), AIR_ERR_LIMIT, "too small");
    ASSERT_ERR(air_vram_plan_make(big, 3, UINT64_MAX - 1, UINT64_MAX / 2, &p), AIR_ERR_LIMIT,
               "too small");
}

int main(void) {
    RUN(everything_fits);
    RUN(exactly_everything);
    RUN(head_first_then_layers_from_zero);
    RUN(fully_streamed_needs_two_of_the_largest);
    RUN(too_small_says_the_minimum);
    RUN(fixed_larger_than_budget);
    RUN(huge_numbers_do_not_wrap);
    return test_summary();
}
