/*
 * fuzz_tokenizer_load.c - fuzz entry point for tokenizer.json loading: the
 * input is a tokenizer.json; when it loads, a few fixed texts are encoded,
 * decoded and streamed through it, so every component it configures runs.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "text/tokenizer.h"

static const char *texts[] = {"Hello world! It's 12345 \xe6\x97\xa5\xe6\x9c\xac \xf0\x9f\x91\x8d",
                              "  a\tb\n\nc  ", "\xff\xfe bad \xc3", "", "<s>x</s><|im_start|>"};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    air_tokenizer *t = NULL;
    if (air_tokenizer_load_from_memory((const char *)data, size, NULL, &t) != AIR_OK)
        return 0;
    for (size_t k = 0; k < sizeof texts / sizeof *texts; k++) {
        int32_t *ids = NULL;
        size_t n = 0;
        if (air_tokenizer_encode(t, texts[k], strlen(texts[k]), (int)(k & 1), &ids, &n) != AIR_OK)
            continue;
        char *text = NULL;
        if (air_tokenizer_decode(t, ids, n, (int)(k & 1), &text) == AIR_OK)
            free(text);
        air_detok *d = air_detok_new(t, 0);
        for (size_t i = 0; d && i < n; i++) {
            const char *c;
            if (air_detok_push(d, ids[i], &c) != AIR_OK)
                break;
        }
        const char *c;
        if (d)
            air_detok_flush(d, &c);
        air_detok_free(d);
        free(ids);
    }
    int32_t v = air_tokenizer_vocab_size(t);
    for (int32_t id = -1; id <= v && id < 300; id++) {
        const char *s = air_tokenizer_id_to_token(t, id);
        if (s)
            (void)air_tokenizer_token_to_id(t, s);
        (void)air_tokenizer_is_special(t, id);
    }
    air_tokenizer_free(t);
    return 0;
}
