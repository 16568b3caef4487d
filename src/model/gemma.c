/*
 * gemma.c - one decoder layer of Gemma 2 and Gemma 3 (text), over a batch of
 * rows, exactly as HF transformers computes it:
 *
 *   h = norm(x) * attn_norm
 *   q = h Wq^T  k = h Wk^T  v = h Wv^T
 *   q, k: per-head norm (gemma3), then rotate-half RoPE at each row's pos
 *         with the layer kind's base: rope_theta (+ scaling) on global
 *         layers, rope_theta_swa on sliding-window layers
 *   k, v -> KV cache
 *   s = q k^T * attn_scale   (query_pre_attn_scalar^-1/2)
 *   s = c * tanh(s / c)      (gemma2: attn_softcap c)
 *   a = softmax(s) v         (causal, GQA; sliding layers see the last
 *                             sliding_window positions)
 *   x += norm(a Wo^T) * attn_post_norm
 *   h = norm(x) * ffn_norm
 *   x += norm((gelu_tanh(h Wgate^T) * (h Wup^T)) Wdown^T) * ffn_post_norm
 *
 * norm() is RMSNorm; Hugging Face checkpoints store each norm weight as an
 * offset w and multiply by (1 + w) (hp->norm_add_one), GGUF files store
 * 1 + w already. Embedding scaling (sqrt(n_embd)), the final norm and the
 * final logit soft-capping are in forward.c. A layer is global when
 * (l + 1) % swa_period == 0 (Gemma 2: every 2nd, Gemma 3: every 6th).
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "model/engine_internal.h"
#include "util/error.h"

typedef struct {
    const air_tensor *attn_norm, *wq, *wk, *wv, *wo, *q_norm, *k_norm, *attn_post_norm, *ffn_norm,
        *w_gate, *w_up, *w_down, *ffn_post_norm;
} gemma_w;

static air_status bind(const air_engine *e, int l, const air_layer *w, gemma_w *t) {
    air_bind tab[] = {
        {&t->attn_norm, AIR_T_ATTN_NORM, 1},
        {&t->wq, AIR_T_WQ, 1},
        {&t->wk, AIR_T_WK, 1},
        {&t->wv, AIR_T_WV, 1},
        {&t->wo, AIR_T_WO, 1},
        {&t->q_norm, AIR_T_Q_NORM, e->hp.qk_norm},
        {&t->k_norm, AIR_T_K_NORM, e->hp.qk_norm},
        {&t->attn_post_norm, AIR_T_ATTN_POST_NORM, 1},
        {&t->ffn_norm, AIR_T_FFN_NORM, 1},
        {&t->w_gate, AIR_T_W_GATE, 1},
        {&t->w_up, AIR_T_W_UP, 1},
        {&t->w_down, AIR_T_W_DOWN, 1},
        {&t->ffn_post_norm, AIR_T_FFN_POST_NORM, 1},
    };
    return air_bind_tensors(e, l, w, tab, sizeof tab / sizeof tab[0]);
}

/* The multiplier of a norm: w, or 1 + w (computed in fp32, as HF does) into
 * tmp (n floats). */
static const float *norm_weight(const air_hparams *hp, const air_tensor *t, float *tmp, int n) {
    const float *w = t->data;
    if (!hp->norm_add_one)
        return w;
    for (int i = 0; i < n; i++)
        tmp[i] = 1.0f + w[i];
    return tmp;
}

/* y (rows, n) = rmsnorm(x (rows, n)) * multiplier of t; y may be x. */
static void norm_rows(const air_hparams *hp, float *y, const float *x, int rows, int n,
                      const air_tensor *t, float *tmp) {
    const float *w = norm_weight(hp, t, tmp, n);
    for (int r = 0; r < rows; r++)
        air_rmsnorm(y + (size_t)r * n, x + (size_t)r * n, w, n, hp->rms_eps);
}

/* out (n) = gelu(gate (n)) * up (n), gelu with the tanh approximation as
 * torch computes it: 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))). */
static void gelu_tanh_mul(float *out, const float *gate, const float *up, int n) {
    const float beta = (float)(M_SQRT2 * M_2_SQRTPI * 0.5), kappa = 0.044715f;
    for (int i = 0; i < n; i++) {
        float x = gate[i];
        float inner = beta * (x + kappa * (x * x * x));
        out[i] = 0.5f * x * (1.0f + tanhf(inner)) * up[i];
    }
}

static int layer_is_sliding(const air_hparams *hp, int l) {
    if (hp->sliding_window <= 0)
        return 0;
    return !(hp->swa_period > 0 && (l + 1) % hp->swa_period == 0);
}

air_status air_gemma_layer(air_engine *e, int l, const air_layer *lw, const air_batch *b, float *x) {
    const air_hparams *hp = &e->hp;
    gemma_w w;
    air_status st = bind(e, l, lw, &w);
    if (st)
        return st;
    int n = b->n, d = hp->n_embd, hd = hp->head_dim, half = hd / 2;
    int qd = hp->n_head * hd, kvd = hp->n_head_kv * hd, ff = hp->n_ff;
    int max_seq = 0;
    for (int r = 0; r < n; r++)
        if (b->kv[r]->max_seq > max_seq)
            max_seq = b->kv[r]->max_seq;
    int sliding = layer_is_sliding(hp, l);
    int own_rope = sliding && hp->rope_theta_swa > 0;
    int nth = air_pool_size(e->pool);
    size_t need = (size_t)n * d + (size_t)n * qd * 2 + (size_t)n * kvd * 2 + (size_t)n * ff * 2 +
                  (size_t)nth * max_seq + (size_t)(d > hd ? d : hd) +
                  (own_rope ? (size_t)n * half * 2 + (size_t)half : 0);
    float *buf;
    if ((st = air_engine_scratch(e, need, &buf)))
        return st;
    float *h = buf, *q = h + (size_t)n * d, *att = q + (size_t)n * qd, *k = att + (size_t)n * qd,
          *v = k + (size_t)n * kvd, *g = v + (size_t)n * kvd, *u = g + (size_t)n * ff,
          *scores = u + (size_t)n * ff, *wtmp = scores + (size_t)nth * max_seq,
          *rcos = wtmp + (d > hd ? d : hd), *rsin = rcos + (size_t)n * half,
          *inv = rsin + (size_t)n * half;

    /* RoPE angles: the pass's (global base) or this layer kind's own base */
    const float *cos_t = e->rope_cos, *sin_t = e->rope_sin;
    if (own_rope) {
        for (int i = 0; i < half; i++)
            inv[i] = 1.0f / powf(hp->rope_theta_swa, (float)(2 * i) / (float)hd);
        for (int r = 0; r < n; r++)
            for (int i = 0; i < half; i++) {
                float a = (float)b->pos[r] * inv[i];
                rcos[(size_t)r * half + i] = cosf(a);
                rsin[(size_t)r * half + i] = sinf(a);
            }
        cos_t = rcos;
        sin_t = rsin;
    }

    /* attention */
    norm_rows(hp, h, x, n, d, w.attn_norm, wtmp);
    air_mm(e, w.wq, h, n, q);
    air_mm(e, w.wk, h, n, k);
    air_mm(e, w.wv, h, n, v);
    if (hp->qk_norm) {
        norm_rows(hp, q, q, n * hp->n_head, hd, w.q_norm, wtmp);
        norm_rows(hp, k, k, n * hp->n_head_kv, hd, w.k_norm, wtmp);
    }
    for (int r = 0; r < n; r++) {
        float *qr = q + (size_t)r * qd, *kr = k + (size_t)r * kvd;
        const float *cs = cos_t + (size_t)r * half, *sn = sin_t + (size_t)r * half;
        air_rope_heads(qr, hp->n_head, hd, cs, sn);
        air_rope_heads(kr, hp->n_head_kv, hd, cs, sn);
        int slot = air_batch_slot(b, r);
        memcpy(air_kv_k(b->kv[r], l, slot), kr, sizeof(float) * (size_t)kvd);
        memcpy(air_kv_v(b->kv[r], l, slot), v + (size_t)r * kvd, sizeof(float) * (size_t)kvd);
    }
    air_attn_opts ao = {hp->attn_scale > 0 ? hp->attn_scale : 1.0f / sqrtf((float)hd),
                        hp->attn_softcap, sliding ? hp->sliding_window : 0, NULL};
    air_attention(e, b, l, q, att, scores, max_seq, &ao);
    air_mm(e, w.wo, att, n, h);
    norm_rows(hp, h, h, n, d, w.attn_post_norm, wtmp);
    for (size_t i = 0; i < (size_t)n * d; i++)
        x[i] += h[i];

    /* MLP */
    norm_rows(hp, h, x, n, d, w.ffn_norm, wtmp);
    air_mm(e, w.w_gate, h, n, g);
    air_mm(e, w.w_up, h, n, u);
    for (int r = 0; r < n; r++)
        gelu_tanh_mul(g + (size_t)r * ff, g + (size_t)r * ff, u + (size_t)r * ff, ff);
    air_mm(e, w.w_down, g, n, h);
    norm_rows(hp, h, h, n, d, w.ffn_post_norm, wtmp);
    for (size_t i = 0; i < (size_t)n * d; i++)
        x[i] += h[i];
    return AIR_OK;
}
