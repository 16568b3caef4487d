/*
 * fuzz_gguf.c - fuzz entry point for the GGUF reader: parses the input from
 * memory and, when it parses, walks everything a loader would touch
 * (metadata, tokenizer arrays, hparams, names, and the dequantization of
 * every small tensor).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "source/gguf.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    air_gguf *g = NULL;
    if (air_gguf_open_memory(data, size, &g) != AIR_OK)
        return 0;
    volatile size_t sink = 0;
    for (int64_t i = 0; i < air_gguf_n_kv(g); i++) {
        const char *k = air_gguf_key_at(g, i);
        const air_gguf_value *v = air_gguf_value_at(g, i);
        sink += strlen(k);
        if (v->type == AIR_GGUF_STRING)
            sink += strlen(v->str);
        if (v->type == AIR_GGUF_ARRAY && v->arr_type == AIR_GGUF_STRING)
            for (uint64_t j = 0; j < v->arr_n; j++)
                sink += strlen(((const char *const *)v->arr)[j]);
        uint32_t u;
        float f;
        sink += (size_t)air_gguf_get_u32(g, k, &u) + (size_t)air_gguf_get_f32(g, k, &f);
    }
    air_gguf_tokenizer tok;
    if (air_gguf_tokenizer_info(g, &tok) == AIR_OK) {
        for (int32_t i = 0; i < tok.n_tokens; i++)
            sink += strlen(tok.tokens[i]) + (tok.types ? (size_t)tok.types[i] : 0);
        for (int32_t i = 0; i < tok.n_merges; i++)
            sink += strlen(tok.merges[i]);
    }
    air_hparams hp;
    (void)air_gguf_hparams(g, &hp);
    for (int64_t i = 0; i < air_gguf_n_tensors(g); i++) {
        const air_gguf_tensor *t = air_gguf_tensor_at(g, i);
        int layer;
        const char *neutral;
        sink += (size_t)air_gguf_map_name(t->name, &layer, &neutral);
        sink += air_gguf_find_tensor(g, t->name) == t;
        int64_t n = air_gguf_tensor_nelements(t);
        if (n > 0 && n <= (1 << 16) && air_ggml_can_dequantize(t->ggml_type)) {
            float *dst = malloc((size_t)n * sizeof *dst);
            if (dst && air_gguf_dequantize(g, t, dst) == AIR_OK && t->ne[0] > 0)
                (void)air_gguf_dequantize_rows(g, t, n / t->ne[0] - 1, 1, dst);
            free(dst);
        }
    }
    (void)sink;
    air_gguf_close(g);
    return 0;
}
