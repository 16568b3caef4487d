/*
 * sampler.c - greedy, temperature, top-k, top-p, min-p, repetition penalty.
 */
#include "sample/sampler.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

struct air_sampler {
    air_sampler_params p;
    int n_vocab;
    uint64_t rng;
    struct cand {
        float logit;
        int32_t id;
    } *cand;
    float *prob;
};

void air_sampler_default_params(air_sampler_params *p) {
    p->temperature = 0.7f;
    p->top_k = 0;
    p->top_p = 1.0f;
    p->min_p = 0.0f;
    p->repeat_penalty = 1.0f;
    p->seed = 0x5eed;
}

air_sampler *air_sampler_new(const air_sampler_params *p, int n_vocab) {
    air_sampler *s = calloc(1, sizeof *s);
    if (!s)
        return NULL;
    s->p = *p;
    s->n_vocab = n_vocab;
    s->rng = p->seed ? p->seed : 0x9e3779b97f4a7c15ull;
    s->cand = malloc(sizeof(*s->cand) * (size_t)n_vocab);
    s->prob = malloc(sizeof(float) * (size_t)n_vocab);
    if (!s->cand || !s->prob) {
        air_sampler_free(s);
        return NULL;
    }
    return s;
}

void air_sampler_free(air_sampler *s) {
    if (!s)
        return;
    free(s->cand);
    free(s->prob);
    free(s);
}

/* splitmix64 -> uniform in [0, 1) */
static double next_uniform(air_sampler *s) {
    uint64_t z = (s->rng += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    z ^= z >> 31;
    return (double)(z >> 11) * (1.0 / 9007199254740992.0);
}

static int by_logit_desc(const void *a, const void *b) {
    const struct cand *x = a, *y = b;
    if (x->logit != y->logit)
        return x->logit < y->logit ? 1 : -1;
    return x->id - y->id;
}

/* min-heap on (logit, then larger id = worse) so the root is the weakest
 * kept candidate */
static int worse(const struct cand *a, const struct cand *b) {
    return a->logit < b->logit || (a->logit == b->logit && a->id > b->id);
}

static void sift_down(struct cand *h, int n, int i) {
    for (;;) {
        int l = 2 * i + 1, r = l + 1, w = i;
        if (l < n && worse(&h[l], &h[w]))
            w = l;
        if (r < n && worse(&h[r], &h[w]))
            w = r;
        if (w == i)
            return;
        struct cand t = h[i];
        h[i] = h[w];
        h[w] = t;
        i = w;
    }
}

int32_t air_sampler_sample(air_sampler *s, float *logits, const int32_t *history, int n_history,
                           const uint8_t *allowed) {
    int n = s->n_vocab;
    if (s->p.repeat_penalty != 1.0f && s->p.repeat_penalty > 0)
        for (int i = 0; i < n_history; i++) {
            int32_t t = history[i];
            if (t < 0 || t >= n)
                continue;
            float *l = &logits[t];
            /* apply once per distinct token */
            int seen = 0;
            for (int j = 0; j < i && !seen; j++)
                seen = history[j] == t;
            if (!seen)
                *l = *l > 0 ? *l / s->p.repeat_penalty : *l * s->p.repeat_penalty;
        }
    if (allowed)
        for (int i = 0; i < n; i++)
            if (!allowed[i])
                logits[i] = -INFINITY;
    if (s->p.temperature <= 0) {
        int best = 0;
        for (int i = 1; i < n; i++)
            if (logits[i] > logits[best])
                best = i;
        return best;
    }
    /* candidates by decreasing logit: with top-k, a min-heap keeps the k best
     * in one pass (O(n log k)) and only those are sorted */
    int m = 0, k = s->p.top_k > 0 && s->p.top_k < n ? s->p.top_k : n;
    for (int i = 0; i < n; i++) {
        if (!(logits[i] > -INFINITY))
            continue;
        struct cand c = {logits[i], i};
        if (m < k) {
            s->cand[m++] = c;
            if (k < n && m == k) /* heapify once full */
                for (int j = k / 2 - 1; j >= 0; j--)
                    sift_down(s->cand, k, j);
        } else if (k < n && (c.logit > s->cand[0].logit ||
                             (c.logit == s->cand[0].logit && c.id < s->cand[0].id))) {
            s->cand[0] = c;
            sift_down(s->cand, k, 0);
        }
    }
    if (m == 0)
        return 0;
    qsort(s->cand, (size_t)m, sizeof *s->cand, by_logit_desc);
    float maxl = s->cand[0].logit;
    double sum = 0;
    for (int i = 0; i < m; i++) {
        s->prob[i] = expf((s->cand[i].logit - maxl) / s->p.temperature);
        sum += s->prob[i];
    }
    for (int i = 0; i < m; i++)
        s->prob[i] = (float)(s->prob[i] / sum);
    if (s->p.top_p < 1.0f) { /* 0 keeps the most likely token only */
        double c = 0;
        int keep = m;
        for (int i = 0; i < m; i++) {
            c += s->prob[i];
            if (c >= s->p.top_p) {
                keep = i + 1;
                break;
            }
        }
        m = keep;
    }
    if (s->p.min_p > 0) {
        float lim = s->prob[0] * s->p.min_p;
        int keep = 1;
        while (keep < m && s->prob[keep] >= lim)
            keep++;
        m = keep;
    }
    double total = 0;
    for (int i = 0; i < m; i++)
        total += s->prob[i];
    double r = next_uniform(s) * total, c = 0;
    for (int i = 0; i < m; i++) {
        c += s->prob[i];
        if (r < c)
            return s->cand[i].id;
    }
    return s->cand[m - 1].id;
}
