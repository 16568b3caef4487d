/*
 * fuzz_tokenizer_encode.c - fuzz entry point for encoding: two fixed small
 * tokenizers built once (a byte-level one with a Llama-3 style Split regex,
 * NFC, added tokens with lstrip/rstrip/single_word; and a SentencePiece-style
 * one with Metaspace, byte fallback and unk), the input is the text. The
 * first byte picks the tokenizer and the options; ids are decoded, streamed
 * and round-tripped where the tokenizer is lossless.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "text/tokenizer.h"
#include "text/tokenizer_internal.h"

static air_tokenizer *toks[2];

#define APPEND_LIT(b, s) tk_bytes_append((b), (s), sizeof(s) - 1)

static void put_json_str(tk_bytes *b, const char *s, size_t n) {
    tk_bytes_append(b, "\"", 1);
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        char e[8];
        if (c == '"' || c == '\\') {
            e[0] = '\\';
            e[1] = (char)c;
            tk_bytes_append(b, e, 2);
        } else if (c < 0x20) {
            snprintf(e, sizeof e, "\\u%04x", c);
            tk_bytes_append(b, e, 6);
        } else
            tk_bytes_append(b, s + i, 1);
    }
    tk_bytes_append(b, "\"", 1);
}

/* vocab: the 256 byte-level chars (or <0xXX> + some chars), a few merges */
static air_tokenizer *build(int spm) {
    tk_bytes b = {0};
    const char *pieces[] = {"he", "ll", "llo",  "hello", "wo", "or",
                            "rl", "ld", "worl", "world", "th", "the"};
    const char *merges[] = {"h e", "l l", "ll o",  "he llo", "w o", "o r",
                            "r l", "l d", "wo rl", "worl d", "t h", "th e"};
    APPEND_LIT(&b, "{\"model\":{\"type\":\"BPE\",");
    if (spm)
        APPEND_LIT(&b, "\"unk_token\":\"<unk>\",\"byte_fallback\":true,\"fuse_unk\":true,");
    APPEND_LIT(&b, "\"vocab\":{");
    int id = 0;
    char buf[64];
    if (spm) {
        APPEND_LIT(&b, "\"<unk>\":0,\"<s>\":1,\"</s>\":2");
        id = 3;
        for (int c = 0; c < 256; c++) {
            snprintf(buf, sizeof buf, ",\"<0x%02X>\":%d", c, id++);
            tk_bytes_append(&b, buf, strlen(buf));
        }
        const char *chars[] = {"\xe2\x96\x81", "h", "e", "l", "o", "w", "r", "d", "t", "a", "b"};
        for (size_t i = 0; i < sizeof chars / sizeof *chars; i++) {
            APPEND_LIT(&b, ",");
            put_json_str(&b, chars[i], strlen(chars[i]));
            snprintf(buf, sizeof buf, ":%d", id++);
            tk_bytes_append(&b, buf, strlen(buf));
        }
    } else {
        for (int c = 0; c < 256; c++) {
            char u[4];
            int l = tk_utf8_encode(tk_byte_to_char((unsigned char)c), u);
            if (c)
                APPEND_LIT(&b, ",");
            put_json_str(&b, u, (size_t)l);
            snprintf(buf, sizeof buf, ":%d", id++);
            tk_bytes_append(&b, buf, strlen(buf));
        }
    }
    for (size_t i = 0; i < sizeof pieces / sizeof *pieces; i++) {
        APPEND_LIT(&b, ",");
        put_json_str(&b, pieces[i], strlen(pieces[i]));
        snprintf(buf, sizeof buf, ":%d", id++);
        tk_bytes_append(&b, buf, strlen(buf));
    }
    APPEND_LIT(&b, "},\"merges\":[");
    for (size_t i = 0; i < sizeof merges / sizeof *merges; i++) {
        if (i)
            APPEND_LIT(&b, ",");
        put_json_str(&b, merges[i], strlen(merges[i]));
    }
    APPEND_LIT(&b, "]},");
    const char *rest_bl =
        "\"normalizer\":{\"type\":\"NFC\"},"
        "\"pre_tokenizer\":{\"type\":\"Sequence\",\"pretokenizers\":[{\"type\":\"Split\","
        "\"pattern\":{\"Regex\":\"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\\\r\\\\n\\\\p{L}\\\\p{N}]?\\\\p{"
        "L}+|"
        "\\\\p{N}{1,3}| "
        "?[^\\\\s\\\\p{L}\\\\p{N}]+[\\\\r\\\\n]*|\\\\s*[\\\\r\\\\n]+|\\\\s+(?!\\\\S)|\\\\s+\"},"
        "\"behavior\":\"Isolated\",\"invert\":false},{\"type\":\"ByteLevel\",\"add_prefix_space\":"
        "false,\"use_regex\":false}]},"
        "\"post_processor\":{\"type\":\"TemplateProcessing\",\"single\":[{\"SpecialToken\":{\"id\":"
        "\"<|bos|>\",\"type_id\":0}},{\"Sequence\":{\"id\":\"A\",\"type_id\":0}}],\"special_"
        "tokens\":"
        "{\"<|bos|>\":{\"id\":\"<|bos|>\",\"ids\":[300],\"tokens\":[\"<|bos|>\"]}}},"
        "\"decoder\":{\"type\":\"ByteLevel\"},"
        "\"added_tokens\":[{\"id\":300,\"content\":\"<|bos|>\",\"special\":true,\"normalized\":"
        "false},"
        "{\"id\":301,\"content\":\"<tool>\",\"special\":true,\"lstrip\":true,\"rstrip\":true,"
        "\"normalized\":false},{\"id\":302,\"content\":\"hello\",\"single_word\":true,"
        "\"normalized\":true},{\"id\":303,\"content\":\"\\n\\n\",\"normalized\":false}]}";
    const char *rest_spm =
        "\"normalizer\":{\"type\":\"Sequence\",\"normalizers\":[{\"type\":\"NFKC\"},"
        "{\"type\":\"Replace\",\"pattern\":{\"Regex\":\"\\\\s{3,}\"},\"content\":\"  \"}]},"
        "\"pre_tokenizer\":{\"type\":\"Metaspace\",\"replacement\":\"\\u2581\","
        "\"prepend_scheme\":\"first\",\"split\":true},"
        "\"post_processor\":{\"type\":\"TemplateProcessing\",\"single\":[{\"SpecialToken\":{\"id\":"
        "\"<s>\",\"type_id\":0}},{\"Sequence\":{\"id\":\"A\",\"type_id\":0}},{\"SpecialToken\":"
        "{\"id\":\"</"
        "s>\",\"type_id\":0}}],\"special_tokens\":{\"<s>\":{\"id\":\"<s>\",\"ids\":[1]},"
        "\"</s>\":{\"id\":\"</s>\",\"ids\":[2]}}},"
        "\"decoder\":{\"type\":\"Sequence\",\"decoders\":[{\"type\":\"Metaspace\",\"replacement\":"
        "\"\\u2581\",\"prepend_scheme\":\"first\"},{\"type\":\"ByteFallback\"},{\"type\":\"Fuse\"},"
        "{\"type\":\"Strip\",\"content\":\" \",\"start\":0,\"stop\":1}]},"
        "\"added_tokens\":[{\"id\":0,\"content\":\"<unk>\",\"special\":true,\"normalized\":false},"
        "{\"id\":1,\"content\":\"<s>\",\"special\":true,\"normalized\":false},"
        "{\"id\":2,\"content\":\"</s>\",\"special\":true,\"normalized\":false}]}";
    const char *rest = spm ? rest_spm : rest_bl;
    tk_bytes_append(&b, rest, strlen(rest));
    air_tokenizer *t = NULL;
    if (air_tokenizer_load_from_memory(b.p, b.n, NULL, &t) != AIR_OK) {
        fprintf(stderr, "fuzz_tokenizer_encode: %s\n", air_last_error());
        abort();
    }
    free(b.p);
    return t;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (!toks[0]) {
        toks[0] = build(0);
        toks[1] = build(1);
    }
    if (size == 0)
        return 0;
    int sel = data[0] & 1, add = (data[0] >> 1) & 1, skip = (data[0] >> 2) & 1;
    int split = (data[0] >> 3) & 1;
    const air_tokenizer *t = toks[sel];
    const char *text = (const char *)data + 1;
    size_t len = size - 1;
    int32_t *ids = NULL;
    size_t n = 0;
    if (air_tokenizer_encode_ex(
            t, text, len, (add ? AIR_TOK_ADD_SPECIAL : 0u) | (split ? AIR_TOK_SPLIT_SPECIAL : 0u),
            &ids, &n) != AIR_OK)
        abort(); /* encoding never fails on any input */
    char *dec = NULL;
    size_t dn = 0;
    if (air_tokenizer_decode_n(t, ids, n, skip, &dec, &dn) != AIR_OK)
        abort();
    /* byte-level, no special tokens: decode(encode(x)) == lossy(x) */
    if (!sel && !add && tk_utf8_valid_prefix((const unsigned char *)text, len) == len &&
        !memmem(text, len, "<tool>", 6)) {
        /* NFC may change the text: compare only when it is ASCII */
        int ascii = 1;
        for (size_t i = 0; i < len; i++)
            if ((unsigned char)text[i] >= 0x80)
                ascii = 0;
        if (ascii && (dn != len || memcmp(dec, text, len) != 0))
            abort();
    }
    /* streaming re-decodes the held-back window, quadratic when nothing can
     * be emitted (runs of invalid bytes), so only the first ids */
    air_detok *d = air_detok_new(t, skip);
    tk_bytes all = {0};
    for (size_t i = 0; i < n && i < 64; i++) {
        const char *c;
        size_t cn;
        if (air_detok_push_n(d, ids[i], &c, &cn) != AIR_OK)
            break;
        tk_bytes_append(&all, c, cn);
    }
    const char *c;
    air_detok_flush(d, &c);
    air_detok_free(d);
    free(all.p);
    free(dec);
    free(ids);
    return 0;
}
