/*
 * test_sampler.c - greedy, seeded sampling, and truncation (top-k through a
 * heap, top-p, min-p) against a brute-force count of which tokens can come out.
 */
#include "sample/sampler.h"
#include "test.h"

static void fill(float *l, int n, uint64_t seed) {
    for (int i = 0; i < n; i++) {
        seed = seed * 6364136223846793005ull + 1442695040888963407ull;
        l[i] = (float)((seed >> 40) % 10000) / 1000.0f; /* ties happen */
    }
}

TEST(greedy_takes_the_first_maximum) {
    float l[6] = {1, 5, 2, 5, -1, 0};
    air_sampler_params p;
    air_sampler_default_params(&p);
    p.temperature = 0;
    air_sampler *s = air_sampler_new(&p, 6);
    ASSERT_EQ_INT(air_sampler_sample(s, l, NULL, 0, NULL), 1);
    uint8_t allowed[6] = {1, 0, 1, 1, 1, 1};
    float l2[6] = {1, 5, 2, 5, -1, 0};
    ASSERT_EQ_INT(air_sampler_sample(s, l2, NULL, 0, allowed), 3);
    air_sampler_free(s);
}

TEST(top_k_only_yields_the_k_best) {
    enum { N = 5000 };
    static float base[N], l[N];
    fill(base, N, 7);
    for (int k = 1; k <= 64; k *= 4) {
        /* the k-th best logit, by brute force */
        int better_than_kth;
        float kth = 0;
        for (int i = 0; i < N; i++) {
            better_than_kth = 0;
            for (int j = 0; j < N; j++)
                better_than_kth += base[j] > base[i] || (base[j] == base[i] && j < i);
            if (better_than_kth == k - 1)
                kth = base[i];
        }
        air_sampler_params p;
        air_sampler_default_params(&p);
        p.temperature = 5.0f; /* flat: every kept token gets drawn */
        p.top_k = k;
        p.top_p = 1.0f;
        p.min_p = 0;
        p.seed = 42;
        air_sampler *s = air_sampler_new(&p, N);
        for (int it = 0; it < 300; it++) {
            memcpy(l, base, sizeof l);
            int32_t t = air_sampler_sample(s, l, NULL, 0, NULL);
            if (base[t] < kth)
                T_FAIL("top_k=%d drew token %d (logit %g) below the k-th best %g", k, t, base[t], kth);
        }
        air_sampler_free(s);
    }
}

TEST(same_seed_same_draws) {
    enum { N = 1000 };
    static float base[N], l[N];
    fill(base, N, 3);
    air_sampler_params p;
    air_sampler_default_params(&p);
    p.seed = 1234;
    int32_t a[50], b[50];
    for (int run = 0; run < 2; run++) {
        air_sampler *s = air_sampler_new(&p, N);
        for (int i = 0; i < 50; i++) {
            memcpy(l, base, sizeof l);
            (run ? b : a)[i] = air_sampler_sample(s, l, NULL, 0, NULL);
        }
        air_sampler_free(s);
    }
    ASSERT_TRUE(memcmp(a, b, sizeof a) == 0);
}

TEST(min_p_and_top_p_cut_the_tail) {
    /* logits: one dominant token and a long flat tail */
    enum { N = 100 };
    float l[N];
    air_sampler_params p;
    air_sampler_default_params(&p);
    p.temperature = 1.0f;
    p.top_k = 0;
    p.top_p = 1.0f;
    p.min_p = 0.5f; /* tail tokens have e^-3 of the top: always cut */
    air_sampler *s = air_sampler_new(&p, N);
    for (int it = 0; it < 200; it++) {
        for (int i = 0; i < N; i++)
            l[i] = i == 17 ? 3.0f : 0.0f;
        ASSERT_EQ_INT(air_sampler_sample(s, l, NULL, 0, NULL), 17);
    }
    air_sampler_free(s);
    p.min_p = 0;
    p.top_p = 0.2f; /* the top token alone holds e^3/(e^3+99) = 0.17 < 0.2 */
    s = air_sampler_new(&p, N);
    int others = 0;
    for (int it = 0; it < 400; it++) {
        for (int i = 0; i < N; i++)
            l[i] = i == 17 ? 3.0f : 0.0f;
        others += air_sampler_sample(s, l, NULL, 0, NULL) != 17;
    }
    ASSERT_TRUE(others > 0); /* a second token is needed to reach 0.2 */
    air_sampler_free(s);
}

int main(void) {
    RUN(greedy_takes_the_first_maximum);
    RUN(top_k_only_yields_the_k_best);
    RUN(same_seed_same_draws);
    RUN(min_p_and_top_p_cut_the_tail);
    return test_summary();
}
