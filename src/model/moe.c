/*
 * moe.c - the mixture-of-experts MLP of a decoder layer (Qwen2-MoE,
 * Qwen3-MoE, Mixtral, DeepSeek-V3), over a batch of rows, as HF transformers
 * computes it:
 *
 *   h = rmsnorm(x) * ffn_norm
 *   p = softmax(h Wrouter^T)                     (rows, n_expert), fp32
 *   top-k experts of each row by p; weights p_k (divided by their sum when
 *   expert_norm_topk; always for Mixtral)
 *   y = sum over the row's experts, ascending expert id, of
 *         p_k * ((silu(h Wg_e^T) * (h Wu_e^T)) Wd_e^T)
 *   (DeepSeek-V3: sigmoid scores, group-limited choice with a bias, weights
 *   times routed_scale; see route_grouped)
 *   y += sigmoid(h . w_shexp_inp) * shared_expert(h)   (Qwen2-MoE; DeepSeek-V3
 *   without the sigmoid gate)
 *   x += y
 *
 * The dense part (router, shared expert) comes with the layer unit; the
 * experts come from runtime/experts.c: only the union of the experts the
 * rows routed to is read, and each expert runs once over all its rows. The
 * shared expert computes while the first expert reads are in flight. Experts
 * run in ascending id, so each row's sum has transformers' order and the
 * result does not depend on the order in which reads complete.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "model/engine_internal.h"
#include "runtime/experts.h"
#include "util/error.h"

static void mm(air_engine *e, const air_tensor *w, const float *x, int rows, float *y) {
    air_matmul(e->pool, w->dtype, w->data, (int)w->shape[0], (int)w->shape[1], x, rows, y);
}

/* Top-k of p (n) into ids/val (k), largest first; ties: lower index first. */
static void topk(const float *p, int n, int k, int *ids, float *val) {
    for (int j = 0; j < k; j++) {
        int best = -1;
        for (int i = 0; i < n; i++) {
            int taken = 0;
            for (int q = 0; q < j; q++)
                taken |= ids[q] == i;
            if (!taken && (best < 0 || p[i] > p[best]))
                best = i;
        }
        ids[j] = best;
        val[j] = p[best];
    }
}

/* DeepSeek-V3 routing of one row: s = sigmoid(logits), choice c = s + bias;
 * groups ranked by the sum of their two best c, the topk_group best groups
 * kept, the top-k of c among them; weights s (normalized) * routed_scale. */
static void route_grouped(const air_hparams *hp, float *p, const float *bias, int *ids, float *w,
                          float *c) {
    int ne = hp->n_expert, k = hp->n_expert_used, ng = hp->n_group, per = ne / ng;
    for (int i = 0; i < ne; i++) {
        p[i] = 1.0f / (1.0f + expf(-p[i]));
        c[i] = p[i] + (bias ? bias[i] : 0.0f);
    }
    float gs[512]; /* group scores, then the kept groups' scores */
    int gid[256];
    for (int g = 0; g < ng && g < 256; g++) {
        int top[2];
        float val[2];
        topk(c + (size_t)g * per, per, per >= 2 ? 2 : 1, top, val);
        gs[g] = val[0] + (per >= 2 ? val[1] : 0.0f);
    }
    topk(gs, ng, hp->topk_group, gid, gs + ng);
    for (int g = 0; g < ng; g++) {
        int keep = 0;
        for (int j = 0; j < hp->topk_group; j++)
            keep |= gid[j] == g;
        if (!keep)
            for (int i = 0; i < per; i++)
                c[g * per + i] = -INFINITY;
    }
    float tmp[AIR_MAX_EXPERT_USED];
    topk(c, ne, k, ids, tmp);
    float sum = 0;
    for (int j = 0; j < k; j++) {
        w[j] = p[ids[j]];
        sum += w[j];
    }
    float scale = hp->routed_scale > 0 ? hp->routed_scale : 1.0f;
    for (int j = 0; j < k; j++)
        w[j] = (hp->expert_norm_topk ? w[j] / (sum + 1e-20f) : w[j]) * scale;
}

static void add_bias(float *y, const air_tensor *b, int rows, int n) {
    const float *bb = b->data;
    for (int r = 0; r < rows; r++)
        for (int i = 0; i < n; i++)
            y[(size_t)r * n + i] += bb[i];
}

/* One expert over `rows` rows of h: out (rows, n_embd). Without biases and
 * swiglu_limit, air_swiglu; gpt-oss adds biases and the clamped SwiGLU
 * (up + 1) * g * sigmoid(alpha * g), g = min(gate, limit), up in [-limit, limit]. */
static void expert_ffn(air_engine *e, const air_expert_w *w, const float *h, int rows, float *g,
                       float *u, float *out) {
    const air_hparams *hp = &e->hp;
    if (!w->b_gate && hp->swiglu_limit <= 0) {
        air_swiglu(e, w->w_gate, w->w_up, w->w_down, h, rows, g, u, out);
        return;
    }
    int ff = (int)w->w_gate->shape[0], d = (int)w->w_down->shape[0];
    air_matmul(e->pool, w->w_gate->dtype, w->w_gate->data, ff, (int)w->w_gate->shape[1], h, rows,
               g);
    air_matmul(e->pool, w->w_up->dtype, w->w_up->data, ff, (int)w->w_up->shape[1], h, rows, u);
    if (w->b_gate) {
        add_bias(g, w->b_gate, rows, ff);
        add_bias(u, w->b_up, rows, ff);
    }
    if (hp->swiglu_limit > 0) {
        float lim = hp->swiglu_limit, alpha = hp->swiglu_alpha;
        for (size_t i = 0; i < (size_t)rows * ff; i++) {
            float gg = g[i] < lim ? g[i] : lim;
            float uu = u[i] < -lim ? -lim : u[i] > lim ? lim : u[i];
            g[i] = (uu + 1.0f) * (gg / (1.0f + expf(-gg * alpha)));
        }
    } else {
        for (int r = 0; r < rows; r++)
            air_silu_mul(g + (size_t)r * ff, g + (size_t)r * ff, u + (size_t)r * ff, ff);
    }
    air_matmul(e->pool, w->w_down->dtype, w->w_down->data, d, ff, g, rows, out);
    if (w->b_down)
        add_bias(out, w->b_down, rows, d);
}

air_status air_moe_ffn(air_engine *e, int l, const air_layer *lw, const air_batch *b, float *x) {
    const air_hparams *hp = &e->hp;
    int n = b->n, d = hp->n_embd, ne = hp->n_expert, k = hp->n_expert_used;
    int fe = hp->n_ff_exp, fs = hp->n_ff_shexp;
    const air_tensor *norm = air_layer_get(lw, AIR_T_FFN_NORM),
                     *router = air_layer_get(lw, AIR_T_ROUTER);
    const air_tensor *sg = NULL, *su = NULL, *sd = NULL, *sinp = NULL;
    const air_tensor *rbias = air_layer_get(lw, AIR_T_ROUTER_BIAS);
    if (fs > 0) {
        sg = air_layer_get(lw, AIR_T_SHEXP_GATE);
        su = air_layer_get(lw, AIR_T_SHEXP_UP);
        sd = air_layer_get(lw, AIR_T_SHEXP_DOWN);
        sinp = hp->shexp_gate ? air_layer_get(lw, AIR_T_SHEXP_INP) : NULL;
    }
    if (!norm || !router || (hp->router_sigmoid && (!rbias || hp->n_group > 256)) ||
        (hp->router_bias_topk_softmax && !rbias) ||
        (fs > 0 && (!sg || !su || !sd || (hp->shexp_gate && !sinp))))
        return air_err(AIR_ERR_FORMAT,
                       "%s: mixture-of-experts layer %d lacks its router or "
                       "shared expert; delete the store folder to rebuild it",
                       air_store_unit_path(e->store, l), l);
    if (!e->experts || k > AIR_MAX_EXPERT_USED || k > ne)
        return air_err(AIR_ERR_INTERNAL, "layer %d: no expert reader, or %d experts per token", l,
                       k);

    int wide = fe > fs ? fe : fs;
    size_t nf = (size_t)n * d          /* h */
                + (size_t)n * ne       /* router probabilities */
                + (size_t)n * k        /* top-k weights */
                + (size_t)n * d        /* sum of the experts' outputs */
                + (size_t)n * d * 2    /* gathered rows, expert output */
                + (size_t)n * wide * 2 /* gate, up */
                + (size_t)n * d        /* shared expert out */
                + (size_t)n            /* shared gate */
                + (size_t)ne;          /* routing choice scores */
    size_t ni = (size_t)n * k * 2 + (size_t)ne * 2 + (size_t)ne + 1;
    float *buf = malloc(nf * sizeof(float));
    int *ibuf = malloc(ni * sizeof(int));
    if (!buf || !ibuf) {
        free(buf);
        free(ibuf);
        return air_err(AIR_ERR_NOMEM, "out of memory for the experts of %d rows", n);
    }
    float *h = buf, *prob = h + (size_t)n * d, *wt = prob + (size_t)n * ne,
          *acc = wt + (size_t)n * k, *hx = acc + (size_t)n * d, *yx = hx + (size_t)n * d,
          *g = yx + (size_t)n * d, *u = g + (size_t)n * wide, *ysh = u + (size_t)n * wide,
          *gsh = ysh + (size_t)n * d, *choice = gsh + n;
    int *ids = ibuf, *rows_of = ids + (size_t)n * k, *count = rows_of + (size_t)n * k,
        *start = count + ne, *uni = start + ne;

    /* route */
    for (int r = 0; r < n; r++)
        air_rmsnorm(h + (size_t)r * d, x + (size_t)r * d, norm->data, d, hp->rms_eps);
    mm(e, router, h, n, prob);
    for (int r = 0; r < n; r++) {
        float *p = prob + (size_t)r * ne, *w = wt + (size_t)r * k;
        if (hp->router_sigmoid) {
            route_grouped(hp, p, rbias->data, ids + (size_t)r * k, w, choice);
            continue;
        }
        if (hp->router_bias_topk_softmax) { /* gpt-oss: softmax over the k best logits */
            const float *rb = rbias->data;
            for (int i = 0; i < ne; i++)
                p[i] += rb[i];
            topk(p, ne, k, ids + (size_t)r * k, w);
            air_softmax(w, k);
            continue;
        }
        air_softmax(p, ne);
        topk(p, ne, k, ids + (size_t)r * k, w);
        if (hp->expert_norm_topk) {
            float s = 0;
            for (int j = 0; j < k; j++)
                s += w[j];
            for (int j = 0; j < k; j++)
                w[j] /= s;
        }
    }
    /* rows of each expert: (row * k + j) entries grouped by expert */
    memset(count, 0, sizeof(int) * (size_t)ne);
    for (int i = 0; i < n * k; i++)
        count[ids[i]]++;
    int n_uni = 0;
    for (int x_ = 0, acc = 0; x_ < ne; x_++) {
        start[x_] = acc;
        acc += count[x_];
        if (count[x_])
            uni[n_uni++] = x_;
    }
    {
        int *fill = malloc(sizeof(int) * (size_t)ne);
        if (!fill) {
            free(buf);
            free(ibuf);
            return air_err(AIR_ERR_NOMEM, "out of memory");
        }
        memcpy(fill, start, sizeof(int) * (size_t)ne);
        for (int i = 0; i < n * k; i++)
            rows_of[fill[ids[i]]++] = i;
        free(fill);
    }

    air_status st = air_experts_begin(e->experts, l, uni, n_uni);
    if (st)
        goto out;

    /* the shared expert, while the first reads are in flight */
    if (fs > 0) {
        air_swiglu(e, sg, su, sd, h, n, g, u, ysh);
        if (sinp) {
            mm(e, sinp, h, n, gsh);
            for (int r = 0; r < n; r++) {
                float s = 1.0f / (1.0f + expf(-gsh[r]));
                for (int i = 0; i < d; i++)
                    ysh[(size_t)r * d + i] *= s;
            }
        }
    }

    /* the routed experts in ascending id (transformers' order of the sum),
     * each over all its rows, while the reads of the next ones go on */
    memset(acc, 0, sizeof(float) * (size_t)n * d);
    for (int j = 0; j < n_uni && !st; j++) {
        int id = uni[j];
        air_expert_w w;
        if ((st = air_experts_get(e->experts, id, &w)))
            break;
        const int *list = rows_of + start[id];
        int c = count[id];
        for (int i = 0; i < c; i++)
            memcpy(hx + (size_t)i * d, h + (size_t)(list[i] / k) * d, sizeof(float) * (size_t)d);
        expert_ffn(e, &w, hx, c, g, u, yx);
        for (int i = 0; i < c; i++) {
            float s = wt[list[i]];
            float *dst = acc + (size_t)(list[i] / k) * d;
            const float *src = yx + (size_t)i * d;
            for (int q = 0; q < d; q++)
                dst[q] += src[q] * s;
        }
        air_experts_done(e->experts, id);
    }
    air_experts_end(e->experts);
    if (st)
        goto out;

    /* then the shared expert, then the residual */
    for (size_t i = 0; i < (size_t)n * d; i++)
        x[i] += fs > 0 ? acc[i] + ysh[i] : acc[i];
out:
    free(buf);
    free(ibuf);
    return st;
}
