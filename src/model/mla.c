/*
 * mla.c - a decoder layer with multi-head latent attention (DeepSeek-V3,
 * Kimi-K2), over a batch of rows, as HF transformers computes it:
 *
 *   h = rmsnorm(x) * attn_norm
 *   q = rmsnorm(h Wq_a^T) * q_a_norm  Wq_b^T      (or h Wq^T without q_lora_rank)
 *       per head: q_nope (qk_nope_dim), q_rot (head_dim)
 *   [c, k_rot] = h Wkv_a^T; c = rmsnorm(c) * kv_a_norm   (kv_lora_rank, head_dim)
 *   RoPE on q_rot and k_rot (one shared key head), interleaved pairs when
 *   rope_interleave
 *   per head h: k_nope_t = Wuk_h c_t, v_t = Wuv_h c_t  (Wkv_b = [Wuk_h; Wuv_h] per head)
 *   a_h = softmax((q_nope . k_nope_t + q_rot . k_rot_t) / sqrt(qk_nope_dim + head_dim)) v
 *   x += a Wo^T, then the MLP (dense or mixture of experts)
 *
 * The KV cache keeps only [c_t, k_rot_t] per position. Attention runs in the
 * latent space ("absorbed" form): q_lat = Wuk_h^T q_nope, so q_nope . k_nope_t
 * = q_lat . c_t, and a_h = Wuv_h (sum_t p_t c_t). The same sums as
 * transformers' in another order.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "model/engine_internal.h"
#include "util/error.h"

#define MLA_NORM_EPS 1e-6f /* q_a_layernorm / kv_a_layernorm use the default eps */

static void mm(air_engine *e, const air_tensor *w, const float *x, int rows, float *y) {
    air_matmul(e->pool, w->dtype, w->data, (int)w->shape[0], (int)w->shape[1], x, rows, y);
}

/* RoPE on one vector of n = head_dim values: interleaved pairs (2i, 2i+1),
 * written back as [rotated evens, rotated odds] as transformers does, or
 * rotate-half pairs (i, i + n/2). */
static void rope1(float *v, int n, int interleave, const float *cs, const float *sn, float *tmp) {
    int half = n / 2;
    for (int i = 0; i < half; i++) {
        float a = interleave ? v[2 * i] : v[i], b = interleave ? v[2 * i + 1] : v[i + half];
        tmp[i] = a * cs[i] - b * sn[i];
        tmp[i + half] = b * cs[i] + a * sn[i];
    }
    memcpy(v, tmp, sizeof(float) * (size_t)n);
}

/* A stored matrix to fp32, rows split over the pool's threads. */
typedef struct {
    const air_tensor *w;
    float *out;
    int64_t rows;
    int cols;
} rows_job;

static void rows_to_f32(void *ctx, int ith, int nth) {
    rows_job *j = ctx;
    size_t rb = air_dtype_row_bytes(j->w->dtype, j->cols);
    for (int64_t i = ith; i < j->rows; i += nth)
        air_row_to_f32(j->w->dtype, (const char *)j->w->data + (size_t)i * rb,
                       j->out + (size_t)i * j->cols, j->cols);
}

typedef struct {
    const air_engine *e;
    const air_batch *b;
    int layer;
    const float *q;    /* (rows, n_head * (nope + rope)) */
    const float *wkvb; /* (n_head * (nope + v), lora) fp32 */
    float *out;        /* (rows, n_head * v) */
    float *scratch;    /* per thread: max_seq + 2 * lora */
    int max_seq;
} mla_job;

static void mla_worker(void *ctx, int ith, int nth) {
    mla_job *j = ctx;
    const air_hparams *hp = &j->e->hp;
    int nh = hp->n_head, nope = hp->qk_nope_dim, rope = hp->head_dim, vd = hp->v_head_dim,
        lora = hp->kv_lora_rank, qh = nope + rope;
    float scale = 1.0f / sqrtf((float)qh);
    if (hp->mla_scale_mult > 0) /* YaRN's mscale_all_dim, applied to every dim */
        scale *= hp->mla_scale_mult;
    float *sc = j->scratch + (size_t)ith * ((size_t)j->max_seq + 2 * (size_t)lora);
    float *qlat = sc + j->max_seq, *olat = qlat + lora;
    for (int task = ith; task < j->b->n * nh; task += nth) {
        int r = task / nh, h = task % nh, pos = j->b->pos[r];
        const air_kv *kv = j->b->kv[r];
        const float *qn = j->q + (size_t)r * nh * qh + (size_t)h * qh, *qr = qn + nope;
        const float *wuk = j->wkvb + (size_t)h * (nope + vd) * lora,
                    *wuv = wuk + (size_t)nope * lora;
        memset(qlat, 0, sizeof(float) * (size_t)lora);
        for (int i = 0; i < nope; i++)
            air_axpy_f32(qlat, qn[i], wuk + (size_t)i * lora, lora);
        for (int t = 0; t <= pos; t++) {
            const float *kt = air_kv_k(kv, j->layer, t);
            sc[t] = (air_dot_f32(qlat, kt, lora) + air_dot_f32(qr, kt + lora, rope)) * scale;
        }
        air_softmax(sc, pos + 1);
        memset(olat, 0, sizeof(float) * (size_t)lora);
        for (int t = 0; t <= pos; t++)
            air_axpy_f32(olat, sc[t], air_kv_k(kv, j->layer, t), lora);
        float *o = j->out + (size_t)r * nh * vd + (size_t)h * vd;
        for (int i = 0; i < vd; i++)
            o[i] = air_dot_f32(wuv + (size_t)i * lora, olat, lora);
    }
}

air_status air_mla_layer(air_engine *e, int l, const air_layer *lw, const air_batch *b, float *x) {
    const air_hparams *hp = &e->hp;
    const air_tensor *an = air_layer_get(lw, AIR_T_ATTN_NORM), *wq = air_layer_get(lw, AIR_T_WQ),
                     *wqa = air_layer_get(lw, AIR_T_WQ_A), *qan = air_layer_get(lw, AIR_T_Q_A_NORM),
                     *wqb = air_layer_get(lw, AIR_T_WQ_B), *wkva = air_layer_get(lw, AIR_T_WKV_A),
                     *kvan = air_layer_get(lw, AIR_T_KV_A_NORM),
                     *wkvb = air_layer_get(lw, AIR_T_WKV_B), *wo = air_layer_get(lw, AIR_T_WO);
    int qlora = hp->q_lora_rank;
    if (!an || !wkva || !kvan || !wkvb || !wo || (qlora ? !wqa || !qan || !wqb : !wq))
        return air_err(AIR_ERR_FORMAT,
                       "%s: layer %d lacks a latent-attention tensor; delete the "
                       "store folder to rebuild it",
                       air_store_unit_path(e->store, l), l);
    int n = b->n, d = hp->n_embd, nh = hp->n_head, nope = hp->qk_nope_dim, rope = hp->head_dim,
        vd = hp->v_head_dim, lora = hp->kv_lora_rank, qh = nope + rope;
    int max_seq = 0;
    for (int r = 0; r < n; r++)
        if (b->kv[r]->max_seq > max_seq)
            max_seq = b->kv[r]->max_seq;
    int nth = air_pool_size(e->pool);
    size_t kvb_rows = (size_t)nh * (nope + vd);
    size_t need = (size_t)n * d + (size_t)n * nh * qh + (size_t)n * (qlora > 0 ? qlora : 1) +
                  (size_t)n * (lora + rope) + (size_t)n * nh * vd + kvb_rows * lora +
                  (size_t)nth * ((size_t)max_seq + 2 * (size_t)lora) + (size_t)rope;
    float *buf = malloc(need * sizeof(float));
    if (!buf)
        return air_err(AIR_ERR_NOMEM, "out of memory for latent attention over %d rows", n);
    float *h = buf, *q = h + (size_t)n * d, *qa = q + (size_t)n * nh * qh,
          *ckv = qa + (size_t)n * (qlora > 0 ? qlora : 1), *att = ckv + (size_t)n * (lora + rope),
          *kvb = att + (size_t)n * nh * vd, *scratch = kvb + kvb_rows * lora,
          *tmp = scratch + (size_t)nth * ((size_t)max_seq + 2 * (size_t)lora);

    for (int r = 0; r < n; r++)
        air_rmsnorm(h + (size_t)r * d, x + (size_t)r * d, an->data, d, hp->rms_eps);
    if (qlora) {
        mm(e, wqa, h, n, qa);
        for (int r = 0; r < n; r++)
            air_rmsnorm(qa + (size_t)r * qlora, qa + (size_t)r * qlora, qan->data, qlora,
                        MLA_NORM_EPS);
        mm(e, wqb, qa, n, q);
    } else {
        mm(e, wq, h, n, q);
    }
    mm(e, wkva, h, n, ckv);
    int half = rope / 2;
    for (int r = 0; r < n; r++) {
        float *c = ckv + (size_t)r * (lora + rope);
        air_rmsnorm(c, c, kvan->data, lora, MLA_NORM_EPS);
        const float *cs = e->rope_cos + (size_t)r * half, *sn = e->rope_sin + (size_t)r * half;
        rope1(c + lora, rope, hp->rope_interleave, cs, sn, tmp);
        for (int hh = 0; hh < nh; hh++)
            rope1(q + (size_t)r * nh * qh + (size_t)hh * qh + nope, rope, hp->rope_interleave, cs,
                  sn, tmp);
        memcpy(air_kv_k(b->kv[r], l, b->pos[r]), c, sizeof(float) * (size_t)(lora + rope));
    }
    /* Wkv_b in fp32 for the absorbed products (one layer's worth) */
    rows_job cj = {wkvb, kvb, (int64_t)kvb_rows, lora};
    air_pool_run(e->pool, rows_to_f32, &cj);
    mla_job job = {e, b, l, q, kvb, att, scratch, max_seq};
    air_pool_run(e->pool, mla_worker, &job);
    mm(e, wo, att, n, h);
    for (size_t i = 0; i < (size_t)n * d; i++)
        x[i] += h[i];
    free(buf);
    return air_layer_ffn(e, l, lw, b, x);
}
