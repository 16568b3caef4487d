/*
 * llama.c - one decoder layer of the Llama family (Llama, Mistral, Qwen2,
 * Qwen3), over a batch of rows, exactly as HF transformers computes it:
 *
 *   h = rmsnorm(x) * attn_norm
 *   q = h Wq^T (+bq)  k = h Wk^T (+bk)  v = h Wv^T (+bv)
 *   q, k: per-head rmsnorm (qwen3), then rotate-half RoPE at each row's pos
 *   k, v -> KV cache; a = softmax(q k^T / sqrt(head_dim)) v  (causal, GQA)
 *   x += a Wo^T
 *   h = rmsnorm(x) * ffn_norm
 *   x += (silu(h Wgate^T) * (h Wup^T)) Wdown^T
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "model/engine_internal.h"
#include "util/error.h"

air_status air_bind_tensors(const air_engine *e, int l, const air_layer *w, const air_bind *tab,
                            size_t n) {
    for (size_t i = 0; i < n; i++) {
        *tab[i].dst = air_layer_get(w, tab[i].name);
        if (tab[i].need && !*tab[i].dst)
            return air_err(AIR_ERR_FORMAT, "%s: layer %d lacks tensor '%s'; " AIR_STORE_FIX,
                           air_store_unit_path(e->store, l), l,
                           tab[i].name);
    }
    return AIR_OK;
}

air_status air_llama_bind(const air_engine *e, int l, const air_layer *w, air_llama_w *t) {
    const air_hparams *hp = &e->hp;
    int dense = !air_hp_layer_is_moe(hp, l);
    air_bind tab[] = {
        {&t->attn_norm, AIR_T_ATTN_NORM, 1}, {&t->wq, AIR_T_WQ, 1},
        {&t->wk, AIR_T_WK, 1},               {&t->wv, AIR_T_WV, 1},
        {&t->wo, AIR_T_WO, 1},               {&t->bq, AIR_T_BQ, hp->attn_bias},
        {&t->bk, AIR_T_BK, hp->attn_bias},   {&t->bv, AIR_T_BV, hp->attn_bias},
        {&t->bo, AIR_T_BO, hp->attn_out_bias}, {&t->sinks, AIR_T_SINKS, hp->attn_sinks},
        {&t->q_norm, AIR_T_Q_NORM, hp->qk_norm}, {&t->k_norm, AIR_T_K_NORM, hp->qk_norm},
        {&t->ffn_norm, AIR_T_FFN_NORM, 1},   {&t->w_gate, AIR_T_W_GATE, dense},
        {&t->w_up, AIR_T_W_UP, dense},       {&t->w_down, AIR_T_W_DOWN, dense},
    };
    return air_bind_tensors(e, l, w, tab, sizeof tab / sizeof tab[0]);
}

void air_mm(air_engine *e, const air_tensor *w, const float *x, int rows, float *y) {
    air_matmul(e->pool, w->dtype, w->data, (int)w->shape[0], (int)w->shape[1], x, rows, y);
}

/* The air_matmul_n output of a stored tensor into y. */
static air_mm_out mm_out(const air_tensor *w, float *y) {
    return (air_mm_out){w->dtype, w->data, (int)w->shape[0], y};
}

static void add_bias(float *y, const air_tensor *b, int rows, int n) {
    const float *bb = b->data;
    for (int r = 0; r < rows; r++)
        for (int i = 0; i < n; i++)
            y[(size_t)r * n + i] += bb[i];
}

/* rotate-half RoPE on n_heads heads of one row */
void air_rope_heads(float *v, int n_heads, int hd, const float *cs, const float *sn) {
    int half = hd / 2;
    for (int h = 0; h < n_heads; h++) {
        float *p = v + (size_t)h * hd;
        for (int i = 0; i < half; i++) {
            float a = p[i], b = p[i + half];
            p[i] = a * cs[i] - b * sn[i];
            p[i + half] = b * cs[i] + a * sn[i];
        }
    }
}

typedef struct {
    const air_engine *e;
    const air_batch *b;
    int layer;
    const float *q; /* (rows, n_head * hd) */
    float *out;     /* (rows, n_head * hd) */
    float *scores;  /* (nth, max_seq) */
    int max_seq;
    air_attn_opts o;
} attn_job;

static void attn_worker(void *ctx, int ith, int nth) {
    attn_job *j = ctx;
    const air_hparams *hp = &j->e->hp;
    int hd = hp->head_dim, nh = hp->n_head, group = hp->n_head / hp->n_head_kv;
    float scale = j->o.scale, cap = j->o.softcap;
    int window = j->o.window;
    float *sc = j->scores + (size_t)ith * j->max_seq;
    int total = j->b->n * nh;
    for (int task = ith; task < total; task += nth) {
        int r = task / nh, h = task % nh, kvh = h / group;
        const air_kv *kv = j->b->kv[r];
        air_row_keys keys;
        air_engine_row_keys(j->e, j->b, r, window, &keys);
        const float *q = j->q + ((size_t)r * nh + h) * hd;
        int np = keys.hi - keys.lo, n = np + keys.n_extra;
        for (int t = 0; t < n; t++) {
            int s = t < np ? keys.lo + t : keys.extra[t - np];
            sc[t] = air_dot_f32(q, air_kv_k(kv, j->layer, s) + (size_t)kvh * hd, hd) * scale;
        }
        if (cap > 0)
            for (int t = 0; t < n; t++)
                sc[t] = tanhf(sc[t] / cap) * cap;
        if (j->o.sinks) {
            /* the head's sink logit joins the softmax, then is dropped */
            float m = j->o.sinks[h], sum = 0;
            for (int t = 0; t < n; t++)
                m = sc[t] > m ? sc[t] : m;
            for (int t = 0; t < n; t++)
                sum += sc[t] = expf(sc[t] - m);
            sum += expf(j->o.sinks[h] - m);
            for (int t = 0; t < n; t++)
                sc[t] /= sum;
        } else {
            air_softmax(sc, n);
        }
        float *o = j->out + ((size_t)r * nh + h) * hd;
        memset(o, 0, sizeof(float) * (size_t)hd);
        for (int t = 0; t < n; t++) {
            int s = t < np ? keys.lo + t : keys.extra[t - np];
            air_axpy_f32(o, sc[t], air_kv_v(kv, j->layer, s) + (size_t)kvh * hd, hd);
        }
    }
}

void air_attention(air_engine *e, const air_batch *b, int layer, const float *q, float *out,
                   float *scores, int max_seq, const air_attn_opts *o) {
    attn_job job = {e, b, layer, q, out, scores, max_seq, *o};
    air_pool_run(e->pool, attn_worker, &job);
}

air_status air_llama_layer(air_engine *e, int l, const air_layer *lw, const air_batch *b, float *x) {
    const air_hparams *hp = &e->hp;
    air_llama_w w;
    air_status st = air_llama_bind(e, l, lw, &w);
    if (st)
        return st;
    int n = b->n, d = hp->n_embd, hd = hp->head_dim;
    int qd = hp->n_head * hd, kvd = hp->n_head_kv * hd;
    int max_seq = 0;
    for (int r = 0; r < n; r++)
        if (b->kv[r]->max_seq > max_seq)
            max_seq = b->kv[r]->max_seq;
    int nth = air_pool_size(e->pool);
    size_t need = (size_t)n * d + (size_t)n * qd * 2 + (size_t)n * kvd * 2 + (size_t)nth * max_seq;
    float *buf;
    if ((st = air_engine_scratch(e, need, &buf)))
        return st;
    float *h = buf, *q = h + (size_t)n * d, *att = q + (size_t)n * qd, *k = att + (size_t)n * qd,
          *v = k + (size_t)n * kvd, *scores = v + (size_t)n * kvd;

    /* attention */
    for (int r = 0; r < n; r++)
        air_rmsnorm(h + (size_t)r * d, x + (size_t)r * d, w.attn_norm->data, d, hp->rms_eps);
    air_mm_out qkv[3] = {mm_out(w.wq, q), mm_out(w.wk, k), mm_out(w.wv, v)};
    air_matmul_n(e->pool, qkv, 3, d, h, n); /* h quantized once, one pool run */
    if (hp->attn_bias) {
        add_bias(q, w.bq, n, qd);
        add_bias(k, w.bk, n, kvd);
        add_bias(v, w.bv, n, kvd);
    }
    int half = hd / 2;
    for (int r = 0; r < n; r++) {
        float *qr = q + (size_t)r * qd, *kr = k + (size_t)r * kvd;
        if (hp->qk_norm) {
            for (int hh = 0; hh < hp->n_head; hh++)
                air_rmsnorm(qr + (size_t)hh * hd, qr + (size_t)hh * hd, w.q_norm->data, hd,
                            hp->rms_eps);
            for (int hh = 0; hh < hp->n_head_kv; hh++)
                air_rmsnorm(kr + (size_t)hh * hd, kr + (size_t)hh * hd, w.k_norm->data, hd,
                            hp->rms_eps);
        }
        const float *cs = e->rope_cos + (size_t)r * half, *sn = e->rope_sin + (size_t)r * half;
        air_rope_heads(qr, hp->n_head, hd, cs, sn);
        air_rope_heads(kr, hp->n_head_kv, hd, cs, sn);
        int slot = air_batch_slot(b, r);
        memcpy(air_kv_k(b->kv[r], l, slot), kr, sizeof(float) * (size_t)kvd);
        memcpy(air_kv_v(b->kv[r], l, slot), v + (size_t)r * kvd, sizeof(float) * (size_t)kvd);
    }
    air_attn_opts ao = {1.0f / sqrtf((float)hd), 0.0f, air_hp_layer_window(hp, l),
                        w.sinks ? w.sinks->data : NULL};
    air_attention(e, b, l, q, att, scores, max_seq, &ao);
    air_mm(e, w.wo, att, n, h);
    if (w.bo)
        add_bias(h, w.bo, n, d);
    for (size_t i = 0; i < (size_t)n * d; i++)
        x[i] += h[i];
    return air_layer_ffn(e, l, lw, b, x);
}

/* The MLP half of a decoder layer (also used by mla.c): the SiLU-gated MLP,
 * or the mixture of experts of moe.c on an MoE layer. */
air_status air_layer_ffn(air_engine *e, int l, const air_layer *lw, const air_batch *b, float *x) {
    const air_hparams *hp = &e->hp;
    if (air_hp_layer_is_moe(hp, l))
        return air_moe_ffn(e, l, lw, b, x);
    const air_tensor *ffn_norm = air_layer_get(lw, AIR_T_FFN_NORM),
                     *w_gate = air_layer_get(lw, AIR_T_W_GATE), *w_up = air_layer_get(lw, AIR_T_W_UP),
                     *w_down = air_layer_get(lw, AIR_T_W_DOWN);
    if (!ffn_norm || !w_gate || !w_up || !w_down)
        return air_err(AIR_ERR_FORMAT, "%s: layer %d lacks its MLP tensors; " AIR_STORE_FIX,
                       air_store_unit_path(e->store, l), l);
    int n = b->n, d = hp->n_embd, ff = hp->n_ff;
    float *h;
    air_status st = air_engine_scratch(e, (size_t)n * d + (size_t)n * ff * 2, &h);
    if (st)
        return st;
    float *g = h + (size_t)n * d, *u = g + (size_t)n * ff;
    for (int r = 0; r < n; r++)
        air_rmsnorm(h + (size_t)r * d, x + (size_t)r * d, ffn_norm->data, d, hp->rms_eps);
    air_swiglu(e, w_gate, w_up, w_down, h, n, g, u, h);
    for (size_t i = 0; i < (size_t)n * d; i++)
        x[i] += h[i];
    return AIR_OK;
}

void air_swiglu(air_engine *e, const air_tensor *wg, const air_tensor *wu, const air_tensor *wd,
                const float *h, int rows, float *g, float *u, float *out) {
    int ff = (int)wg->shape[0];
    air_mm_out gate_up[2] = {mm_out(wg, g), mm_out(wu, u)};
    air_matmul_n(e->pool, gate_up, 2, (int)wg->shape[1], h, rows); /* h quantized once */
    for (int r = 0; r < rows; r++)
        air_silu_mul(g + (size_t)r * ff, g + (size_t)r * ff, u + (size_t)r * ff, ff);
    air_mm(e, wd, g, rows, out);
}
