/*
 * hparams_check.c - the ranges and agreements every model's hyper-parameters
 * must meet, whatever source they come from (config.json, GGUF metadata).
 *
 * A nonsense value (rope_theta <= 0, a negative rms_norm_eps, a head_dim of 0,
 * an EOS id outside the vocabulary) otherwise runs and produces garbage text,
 * or NaNs, in silence. The caller names each field with its own key
 * ("rope_theta" in config.json, "llama.rope.freq_base" in a GGUF file), so the
 * error says which key of which file to fix.
 */
#include <math.h>
#include <stdio.h>

#include "model/arch.h"
#include "util/error.h"

/* Upper bounds: far above any real model, low enough that sizes computed
 * from them cannot overflow. */
#define MAX_VOCAB (1 << 24)
#define MAX_EMBD (1 << 20)
#define MAX_LAYER 10000 /* unit files are named layer_%05d.bin */
#define MAX_HEAD 4096
#define MAX_HEAD_DIM 4096
#define MAX_FF (1 << 22)
#define MAX_CTX (1 << 28)

static air_status bad_int(const char *path, const char *key, long long v, const char *want) {
    return air_err(AIR_ERR_FORMAT, "%s: \"%s\" is %lld; it must be %s (fix the model's metadata)",
                   path, key, v, want);
}

static air_status bad_float(const char *path, const char *key, double v, const char *want) {
    return air_err(AIR_ERR_FORMAT, "%s: \"%s\" is %g; it must be %s (fix the model's metadata)",
                   path, key, v, want);
}

static air_status int_in(const char *path, const char *key, long long v, long long lo,
                         long long hi) {
    if (v >= lo && v <= hi)
        return AIR_OK;
    char want[64];
    snprintf(want, sizeof want, "an integer from %lld to %lld", lo, hi);
    return bad_int(path, key, v, want);
}

air_status air_hparams_check(const air_hparams *hp, const char *path,
                             const char *const keys[AIR_HP_COUNT]) {
    air_status st;
    if ((st = int_in(path, keys[AIR_HP_VOCAB], hp->n_vocab, 1, MAX_VOCAB)) ||
        (st = int_in(path, keys[AIR_HP_EMBD], hp->n_embd, 1, MAX_EMBD)) ||
        (st = int_in(path, keys[AIR_HP_LAYER], hp->n_layer, 1, MAX_LAYER)) ||
        (st = int_in(path, keys[AIR_HP_HEAD], hp->n_head, 1, MAX_HEAD)) ||
        (st = int_in(path, keys[AIR_HP_HEAD_KV], hp->n_head_kv, 1, hp->n_head)) ||
        (st = int_in(path, keys[AIR_HP_HEAD_DIM], hp->head_dim, 2, MAX_HEAD_DIM)) ||
        (st = int_in(path, keys[AIR_HP_FF], hp->n_ff, 1, MAX_FF)) ||
        (st = int_in(path, keys[AIR_HP_CTX], hp->n_ctx_train, 1, MAX_CTX)) ||
        (st = int_in(path, keys[AIR_HP_SLIDING_WINDOW], hp->sliding_window, 0, MAX_CTX)))
        return st;
    if (hp->n_head % hp->n_head_kv)
        return air_err(AIR_ERR_FORMAT,
                       "%s: \"%s\" (%d) is not a multiple of \"%s\" (%d): every "
                       "key/value head must serve the same number of query heads",
                       path, keys[AIR_HP_HEAD], hp->n_head, keys[AIR_HP_HEAD_KV], hp->n_head_kv);
    if (hp->head_dim % 2)
        return bad_int(path, keys[AIR_HP_HEAD_DIM], hp->head_dim, "even (RoPE rotates pairs)");
    if (!(isfinite(hp->rms_eps) && hp->rms_eps > 0 && hp->rms_eps < 1))
        return bad_float(path, keys[AIR_HP_RMS_EPS], hp->rms_eps, "a number > 0 and < 1");
    if (!(isfinite(hp->rope_theta) && hp->rope_theta > 0))
        return bad_float(path, keys[AIR_HP_ROPE_THETA], hp->rope_theta, "a finite number > 0");
    if (hp->rope_scaling == AIR_ROPE_SCALING_LLAMA3) {
        if (!(isfinite(hp->rope_factor) && hp->rope_factor >= 1))
            return bad_float(path, keys[AIR_HP_ROPE_FACTOR], hp->rope_factor,
                             "a finite number >= 1");
        if (!(isfinite(hp->rope_low_freq_factor) && hp->rope_low_freq_factor > 0))
            return bad_float(path, keys[AIR_HP_ROPE_LOW], hp->rope_low_freq_factor,
                             "a finite number > 0");
        if (!(isfinite(hp->rope_high_freq_factor) &&
              hp->rope_high_freq_factor > hp->rope_low_freq_factor))
            return air_err(AIR_ERR_FORMAT,
                           "%s: \"%s\" is %g; it must be a finite number above "
                           "\"%s\" (%g)",
                           path, keys[AIR_HP_ROPE_HIGH], (double)hp->rope_high_freq_factor,
                           keys[AIR_HP_ROPE_LOW], (double)hp->rope_low_freq_factor);
        if ((st = int_in(path, keys[AIR_HP_ROPE_ORIG_CTX], hp->rope_orig_ctx, 1, MAX_CTX)))
            return st;
    }
    if (hp->bos_id != -1 && (st = int_in(path, keys[AIR_HP_BOS], hp->bos_id, 0, hp->n_vocab - 1)))
        return st;
    if (hp->n_eos < 0 || hp->n_eos > AIR_MAX_EOS)
        return air_err(AIR_ERR_FORMAT, "%s: %d EOS ids; at most %d are kept", path, hp->n_eos,
                       AIR_MAX_EOS);
    for (int i = 0; i < hp->n_eos; i++)
        if ((st = int_in(path, keys[AIR_HP_EOS], hp->eos_ids[i], 0, hp->n_vocab - 1)))
            return st;
    return AIR_OK;
}
