/*
 * test_tiny_llama.h - a random llama of any size written as an HF folder
 * (model.safetensors in f32, config.json), for tests that need a model of a
 * given shape rather than a fixture.
 */
#ifndef AIR_TEST_TINY_LLAMA_H
#define AIR_TEST_TINY_LLAMA_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "test.h"

static uint64_t tl_rng;
static inline float tl_rand(float scale) {
    tl_rng = tl_rng * 6364136223846793005ull + 1442695040888963407ull;
    return ((float)((tl_rng >> 40) & 0xffffff) / 16777216.0f * 2.0f - 1.0f) * scale;
}

/* model.safetensors (f32) + config.json for a random llama with seed, in
 * the test's temporary folder `name` (the last two returned stay valid). */
static inline const char *write_tiny_llama(const char *name, uint64_t seed, int vocab, int d,
                                           int ff, int n_layers) {
    static char dirs[2][1024];
    static int k;
    char *dir = dirs[k++ & 1];
    snprintf(dir, 1024, "%s", test_tmp(name));
    char cmd[1200];
    snprintf(cmd, sizeof cmd, "mkdir -p '%s'", dir);
    if (system(cmd) != 0)
        return NULL;
    struct {
        char name[64];
        int rows, cols; /* cols 0: a vector */
        float scale;
    } *t = malloc(sizeof *t * (size_t)(4 + n_layers * 9));
    if (!t)
        return NULL;
    int n = 0;
#define TV_T(nm, r, c, sc)                                                                         \
    do {                                                                                           \
        snprintf(t[n].name, sizeof t[n].name, "%s", nm);                                           \
        t[n].rows = r, t[n].cols = c, t[n].scale = sc;                                             \
        n++;                                                                                       \
    } while (0)
    TV_T("model.embed_tokens.weight", vocab, d, 1.0f);
    for (int l = 0; l < n_layers; l++) {
        static const char *names[9] = {
            "input_layernorm.weight",  "self_attn.q_proj.weight", "self_attn.k_proj.weight",
            "self_attn.v_proj.weight", "self_attn.o_proj.weight", "post_attention_layernorm.weight",
            "mlp.gate_proj.weight",    "mlp.up_proj.weight",      "mlp.down_proj.weight"};
        const int rows[9] = {d, d, d, d, d, d, ff, ff, d};
        const int cols[9] = {0, d, d, d, d, 0, d, d, ff};
        for (int i = 0; i < 9; i++) {
            char nm[64];
            snprintf(nm, sizeof nm, "model.layers.%d.%s", l, names[i]);
            TV_T(nm, rows[i], cols[i], 0.3f);
        }
    }
    TV_T("model.norm.weight", d, 0, 1.0f);
    TV_T("lm_head.weight", vocab, d, 0.4f);
    size_t hcap = 256 + 160 * (size_t)n;
    char *hdr = malloc(hcap);
    if (!hdr) {
        free(t);
        return NULL;
    }
    size_t hl = 0, off = 0;
    hl += (size_t)snprintf(hdr + hl, hcap - hl, "{");
    for (int i = 0; i < n; i++) {
        size_t bytes = sizeof(float) * (size_t)t[i].rows * (size_t)(t[i].cols ? t[i].cols : 1);
        if (t[i].cols)
            hl += (size_t)snprintf(
                hdr + hl, hcap - hl,
                "%s\"%s\":{\"dtype\":\"F32\",\"shape\":[%d,%d],\"data_offsets\":[%zu,%zu]}",
                i ? "," : "", t[i].name, t[i].rows, t[i].cols, off, off + bytes);
        else
            hl += (size_t)snprintf(
                hdr + hl, hcap - hl,
                "%s\"%s\":{\"dtype\":\"F32\",\"shape\":[%d],\"data_offsets\":[%zu,%zu]}",
                i ? "," : "", t[i].name, t[i].rows, off, off + bytes);
        off += bytes;
    }
    hl += (size_t)snprintf(hdr + hl, hcap - hl, "}");
    while (hl % 8)
        hdr[hl++] = ' ';
    char path[1100];
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    FILE *f = fopen(path, "wb");
    if (!f) {
        free(hdr);
        free(t);
        return NULL;
    }
    uint64_t len = hl;
    fwrite(&len, 8, 1, f);
    fwrite(hdr, 1, hl, f);
    tl_rng = seed;
    for (int i = 0; i < n; i++) {
        int m = t[i].rows * (t[i].cols ? t[i].cols : 1);
        for (int j = 0; j < m; j++) {
            float v = t[i].cols ? tl_rand(t[i].scale) : 1.0f + tl_rand(0.1f);
            fwrite(&v, sizeof v, 1, f);
        }
    }
    fclose(f);
    free(hdr);
    free(t);
    snprintf(path, sizeof path, "%s/config.json", dir);
    f = fopen(path, "w");
    if (!f)
        return NULL;
    fprintf(f,
            "{\"architectures\":[\"LlamaForCausalLM\"],\"model_type\":\"llama\","
            "\"vocab_size\":%d,\"hidden_size\":%d,\"intermediate_size\":%d,"
            "\"num_hidden_layers\":%d,\"num_attention_heads\":4,\"num_key_value_heads\":4,"
            "\"max_position_embeddings\":64,\"rms_norm_eps\":1e-6,\"rope_theta\":10000.0,"
            "\"tie_word_embeddings\":false,\"bos_token_id\":0,\"eos_token_id\":3}\n",
            vocab, d, ff, n_layers);
    fclose(f);
    return dir;
}

#endif
