/*
 * test_gguf.c - GGUF parser, metadata, hyper-parameters, names, tokenizer
 * arrays and the Q/K un-permutation, on files written by the gguf Python
 * package (tests/gen/gen_gguf_goldens.py) and on malformed buffers built here
 * byte by byte.
 */
#include <stdint.h>

#include "source/gguf.h"
#include "source/source.h"
#include "test.h"
#include "util/error.h"
#include "util/fileio.h"

/* ------------------------------------------------------------------------- */
/* A byte builder for hand-made GGUF buffers                                 */
/* ------------------------------------------------------------------------- */
typedef struct {
    uint8_t b[4096];
    size_t n;
} buf;

static void put(buf *b, const void *p, size_t n) {
    memcpy(b->b + b->n, p, n);
    b->n += n;
}
static void put_u32(buf *b, uint32_t v) {
    put(b, &v, 4);
}
static void put_u64(buf *b, uint64_t v) {
    put(b, &v, 8);
}
static void put_str(buf *b, const char *s) {
    put_u64(b, strlen(s));
    put(b, s, strlen(s));
}
static void put_header(buf *b, uint32_t version, uint64_t n_tensors, uint64_t n_kv) {
    put(b, "GGUF", 4);
    put_u32(b, version);
    put_u64(b, n_tensors);
    put_u64(b, n_kv);
}
static void pad_to(buf *b, size_t align) {
    while (b->n % align)
        b->b[b->n++] = 0;
}

/* A valid file: one u32 key, one F32 tensor [4] with values 1..4. */
static void valid_file(buf *b) {
    b->n = 0;
    put_header(b, 3, 1, 1);
    put_str(b, "k"); /* byte 24 */
    put_u32(b, AIR_GGUF_UINT32);
    put_u32(b, 7);
    put_str(b, "t");          /* byte 41: tensor info; n_dims at 50, ne[0] at 54 */
    put_u32(b, 1);            /* n_dims */
    put_u64(b, 4);            /* ne[0] */
    put_u32(b, AIR_GGML_F32); /* type, byte 62 */
    put_u64(b, 0);            /* offset, byte 66 */
    pad_to(b, 32);
    float v[4] = {1, 2, 3, 4};
    put(b, v, sizeof v);
}

static const char *src_path(const char *rel) {
    static char p[4096];
    const char *root = getenv("AIR_SOURCE_DIR");
    snprintf(p, sizeof p, "%s/%s", root ? root : ".", rel);
    return p;
}

/* ------------------------------------------------------------------------- */
/* Parsing                                                                   */
/* ------------------------------------------------------------------------- */
TEST(parses_hand_made_file) {
    buf b;
    valid_file(&b);
    air_gguf *g = NULL;
    ASSERT_OK(air_gguf_open_memory(b.b, b.n, &g));
    ASSERT_EQ_INT(air_gguf_version(g), 3);
    ASSERT_EQ_INT(air_gguf_alignment(g), 32);
    ASSERT_EQ_INT(air_gguf_data_offset(g), 96);
    ASSERT_EQ_INT(air_gguf_n_kv(g), 1);
    uint32_t u = 0;
    ASSERT_TRUE(air_gguf_get_u32(g, "k", &u));
    ASSERT_EQ_INT(u, 7);
    const air_gguf_tensor *t = air_gguf_find_tensor(g, "t");
    ASSERT_TRUE(t != NULL);
    ASSERT_EQ_INT(t->n_dims, 1);
    ASSERT_EQ_INT(t->ne[0], 4);
    ASSERT_EQ_INT(t->ne[1], 1);
    ASSERT_EQ_INT(t->size, 16);
    float out[4];
    ASSERT_OK(air_gguf_dequantize(g, t, out));
    ASSERT_NEAR(out[3], 4.0, 0);
    air_gguf_close(g);
}

TEST(accepts_version_2) {
    buf b;
    valid_file(&b);
    b.b[4] = 2;
    air_gguf *g = NULL;
    ASSERT_OK(air_gguf_open_memory(b.b, b.n, &g));
    ASSERT_EQ_INT(air_gguf_version(g), 2);
    air_gguf_close(g);
}

TEST(every_value_type) {
    air_gguf *g = NULL;
    ASSERT_OK(air_gguf_open(src_path("tests/fuzz/corpus/fuzz_gguf/all_value_types.gguf"), &g));
    uint32_t u;
    int32_t i;
    float f;
    int bl;
    ASSERT_TRUE(air_gguf_get_u32(g, "a.u8", &u) && u == 200);
    ASSERT_TRUE(air_gguf_get_i32(g, "a.i8", &i) && i == -5);
    ASSERT_TRUE(!air_gguf_get_u32(g, "a.i8", &u)); /* negative does not fit */
    ASSERT_TRUE(air_gguf_get_u32(g, "a.u16", &u) && u == 60000);
    ASSERT_TRUE(air_gguf_get_i32(g, "a.i16", &i) && i == -300);
    ASSERT_TRUE(air_gguf_get_u32(g, "a.u32", &u) && u == 4000000000u);
    ASSERT_TRUE(!air_gguf_get_i32(g, "a.u32", &i));
    ASSERT_TRUE(air_gguf_get_i32(g, "a.i32", &i) && i == -7);
    ASSERT_TRUE(air_gguf_get_f32(g, "a.f32", &f) && f == 0.5f);
    ASSERT_TRUE(air_gguf_get_bool(g, "a.bool", &bl) && bl == 1);
    ASSERT_EQ_STR(air_gguf_get_str(g, "a.str"), "hello");
    ASSERT_TRUE(air_gguf_get_str(g, "a.u8") == NULL);
    ASSERT_TRUE(!air_gguf_get_u32(g, "a.u64", &u)); /* 2^40 does not fit */
    ASSERT_EQ_INT(air_gguf_get(g, "a.u64")->v.u64, 1ull << 40);
    ASSERT_EQ_INT(air_gguf_get(g, "a.i64")->v.i64, -(1ll << 40));
    ASSERT_TRUE(air_gguf_get_f32(g, "a.f64", &f) && f == 2.25f);
    ASSERT_TRUE(!air_gguf_get_f32(g, "a.str", &f));
    ASSERT_TRUE(air_gguf_get(g, "absent") == NULL);

    int type;
    uint64_t n;
    const void *data;
    ASSERT_TRUE(air_gguf_get_arr(g, "a.arr_i32", &type, &n, &data));
    ASSERT_EQ_INT(type, AIR_GGUF_INT32);
    ASSERT_EQ_INT(n, 3);
    ASSERT_EQ_INT(((const int32_t *)data)[2], 3);
    ASSERT_TRUE(air_gguf_get_arr(g, "a.arr_str", &type, &n, &data));
    ASSERT_EQ_INT(type, AIR_GGUF_STRING);
    ASSERT_EQ_STR(((const char *const *)data)[1], "yz");
    ASSERT_TRUE(air_gguf_get_arr(g, "a.nested", &type, &n, &data));
    ASSERT_EQ_INT(type, AIR_GGUF_ARRAY);
    ASSERT_EQ_INT(n, 2);
    const air_gguf_value *inner = data;
    ASSERT_EQ_INT(inner[0].arr_n, 2);
    ASSERT_EQ_INT(inner[1].arr_n, 1);
    ASSERT_EQ_INT(((const int32_t *)inner[1].arr)[0], 3);

    const air_gguf_tensor *t = air_gguf_find_tensor(g, "t.q8");
    ASSERT_TRUE(t != NULL);
    ASSERT_EQ_INT(t->ggml_type, AIR_GGML_Q8_0);
    ASSERT_EQ_INT(t->ne[0], 32);
    ASSERT_EQ_INT(t->size, 34);
    ASSERT_EQ_INT(air_gguf_n_tensors(g), 2);
    ASSERT_EQ_STR(air_gguf_tensor_at(g, 1)->name, "t.f32");
    ASSERT_TRUE(air_gguf_tensor_at(g, 2) == NULL);
    air_gguf_close(g);
}

TEST(custom_alignment) {
    air_gguf *g = NULL;
    ASSERT_OK(air_gguf_open(src_path("tests/fuzz/corpus/fuzz_gguf/q4_k_align64.gguf"), &g));
    ASSERT_EQ_INT(air_gguf_alignment(g), 64);
    ASSERT_EQ_INT(air_gguf_data_offset(g) % 64, 0);
    air_gguf_close(g);
}

/* ------------------------------------------------------------------------- */
/* Malformed input: clear errors with the byte offset                        */
/* ------------------------------------------------------------------------- */
#define EXPECT_BAD(b, needle)                                                                      \
    do {                                                                                           \
        air_gguf *_g = NULL;                                                                       \
        ASSERT_ERR(air_gguf_open_memory((b).b, (b).n, &_g), AIR_ERR_FORMAT, needle);               \
        ASSERT_TRUE(_g == NULL);                                                                   \
    } while (0)

TEST(rejects_bad_headers) {
    buf b;
    valid_file(&b);
    memcpy(b.b, "GGML", 4);
    EXPECT_BAD(b, "<memory>: byte 0: not a GGUF file");
    valid_file(&b);
    b.b[4] = 1;
    EXPECT_BAD(b, "byte 4: GGUF version 1 is not supported");
    valid_file(&b);
    uint32_t be = 0x03000000u;
    memcpy(b.b + 4, &be, 4);
    EXPECT_BAD(b, "big-endian");
    valid_file(&b);
    b.b[4] = 9;
    EXPECT_BAD(b, "unknown GGUF version 9");
    b.n = 2;
    EXPECT_BAD(b, "not a GGUF file");
}

TEST(rejects_every_truncation) {
    buf b;
    valid_file(&b);
    for (size_t n = 0; n < b.n; n++) {
        air_gguf *g = NULL;
        air_status st = air_gguf_open_memory(b.b, n, &g);
        if (st != AIR_ERR_FORMAT)
            T_FAIL("prefix of %zu bytes: expected a format error, got %s", n, air_strerror(st));
        ASSERT_TRUE(strstr(air_last_error(), "<memory>: byte ") != NULL);
    }
    /* the same for a real file written by the gguf package: every prefix
     * that cuts metadata or tensor bytes fails; the trailing padding after
     * the last tensor is optional */
    char *data;
    size_t len;
    ASSERT_OK(
        air_read_file(src_path("tests/fuzz/corpus/fuzz_gguf/all_value_types.gguf"), &data, &len));
    air_gguf *full = NULL;
    ASSERT_OK(air_gguf_open_memory(data, len, &full));
    uint64_t end = 0;
    for (int64_t i = 0; i < air_gguf_n_tensors(full); i++) {
        const air_gguf_tensor *t = air_gguf_tensor_at(full, i);
        if (air_gguf_data_offset(full) + t->offset + t->size > end)
            end = air_gguf_data_offset(full) + t->offset + t->size;
    }
    air_gguf_close(full);
    ASSERT_TRUE(end > 0 && end < len);
    for (size_t n = 0; n < len; n++) {
        air_gguf *g = NULL;
        air_status st = air_gguf_open_memory(data, n, &g);
        air_gguf_close(g);
        if ((n < end) != (st == AIR_ERR_FORMAT)) {
            free(data);
            T_FAIL("prefix of %zu bytes (tensors end at %llu): got %s", n, (unsigned long long)end,
                   air_strerror(st));
        }
    }
    free(data);
}

TEST(rejects_huge_counts_and_lengths) {
    buf b;
    valid_file(&b);
    uint64_t huge = UINT64_MAX;
    memcpy(b.b + 16, &huge, 8); /* n_kv */
    EXPECT_BAD(b, "byte 16: metadata count 18446744073709551615 cannot fit");
    valid_file(&b);
    memcpy(b.b + 8, &huge, 8); /* n_tensors */
    EXPECT_BAD(b, "tensor count");
    valid_file(&b);
    memcpy(b.b + 24, &huge, 8); /* key length */
    EXPECT_BAD(b, "byte 24: metadata key has length 18446744073709551615");
    valid_file(&b);
    uint32_t bad_type = 99;
    memcpy(b.b + 33, &bad_type, 4); /* value type */
    EXPECT_BAD(b, "unknown value type 99");
}

TEST(rejects_bad_arrays) {
    buf b = {{0}, 0};
    put_header(&b, 3, 0, 1);
    put_str(&b, "arr");
    put_u32(&b, AIR_GGUF_ARRAY);
    put_u32(&b, AIR_GGUF_UINT64);
    put_u64(&b, 1ull << 61); /* 2^61 * 8 bytes overflows */
    EXPECT_BAD(b, "key 'arr': array of 2305843009213693952 uint64 values");
    b.n = 0;
    put_header(&b, 3, 0, 1);
    put_str(&b, "arr");
    put_u32(&b, AIR_GGUF_ARRAY);
    put_u32(&b, AIR_GGUF_STRING);
    put_u64(&b, 2);
    put_str(&b, "ok");
    put_u64(&b, 1000); /* second string runs past the end */
    EXPECT_BAD(b, "element 1");
    /* arrays nested too deep */
    b.n = 0;
    put_header(&b, 3, 0, 1);
    put_str(&b, "deep");
    put_u32(&b, AIR_GGUF_ARRAY);
    for (int d = 0; d < 20; d++) {
        put_u32(&b, AIR_GGUF_ARRAY);
        put_u64(&b, 1);
    }
    put_u32(&b, AIR_GGUF_UINT8);
    put_u64(&b, 0);
    EXPECT_BAD(b, "nested deeper");
}

TEST(rejects_bad_tensors) {
    buf b;
    valid_file(&b);
    b.b[50] = 5; /* n_dims */
    EXPECT_BAD(b, "byte 50: tensor 't' has 5 dimensions");
    valid_file(&b);
    b.b[62] = 77; /* type */
    EXPECT_BAD(b, "tensor 't' has unknown GGML type 77");
    valid_file(&b);
    b.b[66] = 32; /* offset 32: past the end */
    EXPECT_BAD(b, "byte 41: tensor 't' (F32, 16 bytes at data offset 32) ends at file byte 144");
    valid_file(&b);
    b.b[66] = 4; /* offset 4: misaligned */
    EXPECT_BAD(b, "not a multiple of the alignment 32");
    valid_file(&b);
    b.b[62] = AIR_GGML_Q8_0; /* 4 elements are not a 32-element block */
    EXPECT_BAD(b, "first dimension 4 is not a multiple of the Q8_0 block size 32");
    valid_file(&b);
    uint64_t big = 1ull << 62;
    b.n = 96;
    memcpy(b.b + 54, &big, 8); /* ne[0] = 2^62 F32 = 2^64 bytes */
    EXPECT_BAD(b, "byte size overflows");
    /* duplicate names */
    b.n = 0;
    put_header(&b, 3, 0, 2);
    put_str(&b, "k");
    put_u32(&b, AIR_GGUF_UINT8);
    b.b[b.n++] = 1;
    put_str(&b, "k");
    put_u32(&b, AIR_GGUF_UINT8);
    b.b[b.n++] = 2;
    EXPECT_BAD(b, "byte 38: metadata key 'k' appears twice");
}

TEST(rejects_bad_alignment) {
    buf b = {{0}, 0};
    put_header(&b, 3, 0, 1);
    put_str(&b, "general.alignment");
    put_u32(&b, AIR_GGUF_UINT32);
    put_u32(&b, 24);
    EXPECT_BAD(b, "general.alignment must be a uint32 power of two, found uint32 24");
}

TEST(open_errors) {
    air_gguf *g = (air_gguf *)1;
    ASSERT_ERR(air_gguf_open("/nonexistent/x.gguf", &g), AIR_ERR_NOT_FOUND, "/nonexistent/x.gguf");
    ASSERT_TRUE(g == NULL);
    const char *dir = test_tmp("gguf_open");
    char p[4200];
    snprintf(p, sizeof p, "%s/empty.gguf", dir);
    ASSERT_OK(air_write_file_atomic(p, "", 0));
    ASSERT_ERR(air_gguf_open(p, &g), AIR_ERR_FORMAT, "empty.gguf: byte 0: the file is empty");
    air_gguf_close(NULL);
}

/* ------------------------------------------------------------------------- */
/* Model conventions                                                         */
/* ------------------------------------------------------------------------- */
TEST(hparams_llama) {
    air_gguf *g = NULL;
    ASSERT_OK(air_gguf_open(test_data("gguf/tiny_llama.gguf"), &g));
    air_hparams hp;
    ASSERT_OK(air_gguf_hparams(g, &hp));
    ASSERT_EQ_INT(hp.arch, AIR_ARCH_LLAMA);
    ASSERT_EQ_INT(hp.n_vocab, 40);
    ASSERT_EQ_INT(hp.n_embd, 128);
    ASSERT_EQ_INT(hp.n_layer, 2);
    ASSERT_EQ_INT(hp.n_head, 2);
    ASSERT_EQ_INT(hp.n_head_kv, 1);
    ASSERT_EQ_INT(hp.head_dim, 64);
    ASSERT_EQ_INT(hp.n_ff, 64);
    ASSERT_EQ_INT(hp.n_ctx_train, 256);
    ASSERT_NEAR(hp.rms_eps, 1e-6, 1e-12);
    ASSERT_NEAR(hp.rope_theta, 500000.0, 0);
    ASSERT_EQ_INT(hp.rope_scaling, AIR_ROPE_SCALING_LLAMA3);
    ASSERT_NEAR(hp.rope_factor, 8.0, 0);
    ASSERT_NEAR(hp.rope_low_freq_factor, 1.0, 0);
    ASSERT_NEAR(hp.rope_high_freq_factor, 4.0, 0);
    ASSERT_EQ_INT(hp.rope_orig_ctx, 8192);
    ASSERT_EQ_INT(hp.tie_embeddings, 0);
    ASSERT_EQ_INT(hp.attn_bias, 0);
    ASSERT_EQ_INT(hp.qk_norm, 0);
    ASSERT_EQ_INT(hp.bos_id, 1);
    ASSERT_EQ_INT(hp.n_eos, 2);
    ASSERT_EQ_INT(hp.eos_ids[0], 2);
    ASSERT_EQ_INT(hp.eos_ids[1], 3);
    ASSERT_TRUE(air_gguf_qk_permuted(g));
    air_gguf_close(g);
}

TEST(hparams_qwen2) {
    air_gguf *g = NULL;
    ASSERT_OK(air_gguf_open(test_data("gguf/tiny_qwen2.gguf"), &g));
    air_hparams hp;
    ASSERT_OK(air_gguf_hparams(g, &hp));
    ASSERT_EQ_INT(hp.arch, AIR_ARCH_QWEN2);
    ASSERT_EQ_INT(hp.n_vocab, 36); /* from the token list */
    ASSERT_EQ_INT(hp.n_embd, 32);
    ASSERT_EQ_INT(hp.n_head, 4);
    ASSERT_EQ_INT(hp.n_head_kv, 2);
    ASSERT_EQ_INT(hp.head_dim, 8);
    ASSERT_EQ_INT(hp.n_ff, 48);
    ASSERT_NEAR(hp.rope_theta, 1000000.0, 0);
    ASSERT_EQ_INT(hp.rope_scaling, AIR_ROPE_SCALING_NONE);
    ASSERT_EQ_INT(hp.tie_embeddings, 1);
    ASSERT_EQ_INT(hp.attn_bias, 1);
    ASSERT_EQ_INT(hp.qk_norm, 0);
    ASSERT_TRUE(!air_gguf_qk_permuted(g));
    air_gguf_close(g);
}

TEST(hparams_qwen3) {
    air_gguf *g = NULL;
    ASSERT_OK(air_gguf_open(test_data("gguf/tiny_qwen3.gguf"), &g));
    air_hparams hp;
    ASSERT_OK(air_gguf_hparams(g, &hp));
    ASSERT_EQ_INT(hp.arch, AIR_ARCH_QWEN3);
    ASSERT_EQ_INT(hp.n_layer, 1);
    ASSERT_EQ_INT(hp.head_dim, 16); /* key_length, not 32 / 4 */
    ASSERT_EQ_INT(hp.tie_embeddings, 0);
    ASSERT_EQ_INT(hp.attn_bias, 0);
    ASSERT_EQ_INT(hp.qk_norm, 1);
    const air_gguf_tensor *wq = air_gguf_find_tensor(g, "blk.0.attn_q.weight");
    ASSERT_TRUE(wq != NULL);
    ASSERT_EQ_INT(wq->ne[0], 32); /* n_in first */
    ASSERT_EQ_INT(wq->ne[1], 64); /* n_head * head_dim */
    ASSERT_EQ_INT(wq->ggml_type, AIR_GGML_F16);
    air_gguf_close(g);
}

TEST(hparams_errors) {
    buf b;
    valid_file(&b);
    air_gguf *g = NULL;
    ASSERT_OK(air_gguf_open_memory(b.b, b.n, &g));
    air_hparams hp;
    ASSERT_ERR(air_gguf_hparams(g, &hp), AIR_ERR_FORMAT, "general.architecture is missing");
    air_gguf_close(g);

    b.n = 0;
    put_header(&b, 3, 0, 2);
    put_str(&b, "general.architecture");
    put_u32(&b, AIR_GGUF_STRING);
    put_str(&b, "gpt2");
    put_str(&b, "x");
    put_u32(&b, AIR_GGUF_UINT8);
    b.b[b.n++] = 0;
    ASSERT_OK(air_gguf_open_memory(b.b, b.n, &g));
    ASSERT_ERR(air_gguf_hparams(g, &hp), AIR_ERR_UNSUPPORTED, "architecture 'gpt2'");
    air_gguf_close(g);

    b.n = 0;
    put_header(&b, 3, 0, 2);
    put_str(&b, "general.architecture");
    put_u32(&b, AIR_GGUF_STRING);
    put_str(&b, "llama");
    put_str(&b, "llama.embedding_length");
    put_u32(&b, AIR_GGUF_UINT32);
    put_u32(&b, 64);
    ASSERT_OK(air_gguf_open_memory(b.b, b.n, &g));
    ASSERT_ERR(air_gguf_hparams(g, &hp), AIR_ERR_FORMAT,
               "required key llama.block_count is missing");
    air_gguf_close(g);
}

/* rope_freqs.weight below 1 is not Llama 3 scaling: refused with its index */
TEST(hparams_bad_rope_freqs) {
    char *data;
    size_t len;
    ASSERT_OK(air_read_file(test_data("gguf/tiny_llama.gguf"), &data, &len));
    air_gguf *g = NULL;
    ASSERT_OK(air_gguf_open_memory(data, len, &g));
    const air_gguf_tensor *t = air_gguf_find_tensor(g, "rope_freqs.weight");
    ASSERT_TRUE(t != NULL);
    size_t at = (size_t)(air_gguf_data_offset(g) + t->offset) + 5 * sizeof(float);
    air_gguf_close(g);
    float half = 0.5f;
    memcpy(data + at, &half, sizeof half);
    ASSERT_OK(air_gguf_open_memory(data, len, &g));
    air_hparams hp;
    ASSERT_ERR(air_gguf_hparams(g, &hp), AIR_ERR_UNSUPPORTED, "rope_freqs.weight[5] = 0.5");
    air_gguf_close(g);
    free(data);
}

/* Metadata values out of range are refused with the key and the value: the
 * GGUF twin of the config.json checks (nonsense values used to run and give
 * NaN logits or garbage). The value of `key` (u32 or f32) is overwritten in
 * place in a copy of tiny_llama.gguf. */
static air_status hparams_with(const char *key, const void *value) {
    char *data;
    size_t len;
    if (air_read_file(test_data("gguf/tiny_llama.gguf"), &data, &len))
        return air_err(AIR_ERR_IO, "cannot read tiny_llama.gguf");
    uint64_t klen = strlen(key);
    char pat[256];
    memcpy(pat, &klen, 8);
    memcpy(pat + 8, key, klen);
    char *at = memmem(data, len, pat, 8 + klen);
    if (!at) {
        free(data);
        return air_err(AIR_ERR_NOT_FOUND, "test: key %s not in tiny_llama.gguf", key);
    }
    memcpy(at + 8 + klen + 4, value, 4); /* after the u32 value type */
    air_gguf *g = NULL;
    air_status st = air_gguf_open_memory(data, len, &g);
    air_hparams hp;
    if (!st)
        st = air_gguf_hparams(g, &hp);
    air_gguf_close(g);
    free(data);
    return st;
}

TEST(hparams_out_of_range) {
    float eps = 5.0f, tiny = 1e-30f, big_eps = 1.0f;
    uint32_t ctx = 1u << 30, layers = 20000, kv3 = 3, kv8 = 8, eos = 1u << 30, heads0 = 0;
    ASSERT_ERR(hparams_with("llama.attention.layer_norm_rms_epsilon", &eps), AIR_ERR_FORMAT,
               "\"llama.attention.layer_norm_rms_epsilon\" is 5; it must be a number > 0 and < 1");
    ASSERT_ERR(hparams_with("llama.attention.layer_norm_rms_epsilon", &big_eps), AIR_ERR_FORMAT,
               "\"llama.attention.layer_norm_rms_epsilon\" is 1");
    ASSERT_ERR(hparams_with("llama.context_length", &ctx), AIR_ERR_FORMAT,
               "\"llama.context_length\" is 1073741824");
    ASSERT_ERR(hparams_with("llama.block_count", &layers), AIR_ERR_FORMAT,
               "\"llama.block_count\" is 20000");
    ASSERT_ERR(hparams_with("llama.attention.head_count_kv", &kv3), AIR_ERR_FORMAT,
               "\"llama.attention.head_count_kv\" is 3; it must be an integer from 1 to");
    ASSERT_ERR(hparams_with("llama.attention.head_count_kv", &kv8), AIR_ERR_FORMAT,
               "\"llama.attention.head_count_kv\" is 8");
    ASSERT_ERR(hparams_with("tokenizer.ggml.eos_token_id", &eos), AIR_ERR_FORMAT,
               "tokenizer.ggml.eos_token_id");
    ASSERT_ERR(hparams_with("llama.attention.head_count", &heads0), AIR_ERR_FORMAT,
               "llama.attention.head_count is 0");
    /* a tiny positive base is a valid (if odd) RoPE: accepted */
    ASSERT_OK(hparams_with("llama.rope.freq_base", &tiny));
}

TEST(map_names) {
    int layer = 99;
    const char *n = NULL;
    ASSERT_TRUE(air_gguf_map_name("token_embd.weight", &layer, &n));
    ASSERT_EQ_INT(layer, -1);
    ASSERT_EQ_STR(n, "tok_embd");
    ASSERT_TRUE(air_gguf_map_name("output_norm.weight", &layer, &n));
    ASSERT_EQ_STR(n, "out_norm");
    ASSERT_TRUE(air_gguf_map_name("output.weight", &layer, &n));
    ASSERT_EQ_STR(n, "output");
    static const char *const pairs[][2] = {
        {"attn_norm.weight", "attn_norm"},
        {"attn_q.weight", "wq"},
        {"attn_k.weight", "wk"},
        {"attn_v.weight", "wv"},
        {"attn_output.weight", "wo"},
        {"attn_q.bias", "bq"},
        {"attn_k.bias", "bk"},
        {"attn_v.bias", "bv"},
        {"attn_q_norm.weight", "q_norm"},
        {"attn_k_norm.weight", "k_norm"},
        {"ffn_norm.weight", "ffn_norm"},
        {"ffn_gate.weight", "w_gate"},
        {"ffn_up.weight", "w_up"},
        {"ffn_down.weight", "w_down"},
    };
    for (size_t i = 0; i < sizeof pairs / sizeof *pairs; i++) {
        char name[64];
        snprintf(name, sizeof name, "blk.17.%s", pairs[i][0]);
        layer = -5;
        ASSERT_TRUE(air_gguf_map_name(name, &layer, &n));
        ASSERT_EQ_INT(layer, 17);
        ASSERT_EQ_STR(n, pairs[i][1]);
    }
    ASSERT_TRUE(air_gguf_map_name("blk.0.attn_q.weight", &layer, &n) && layer == 0);
    ASSERT_TRUE(!air_gguf_map_name("rope_freqs.weight", &layer, &n));
    ASSERT_TRUE(!air_gguf_map_name("blk.x.attn_q.weight", &layer, &n));
    ASSERT_TRUE(!air_gguf_map_name("blk.01.attn_q.weight", &layer, &n));
    ASSERT_TRUE(!air_gguf_map_name("blk.1attn_q.weight", &layer, &n));
    ASSERT_TRUE(!air_gguf_map_name("blk.1.attn_q", &layer, &n));
    ASSERT_TRUE(!air_gguf_map_name("blk.99999999999.attn_q.weight", &layer, &n));
    ASSERT_TRUE(!air_gguf_map_name("token_embd", &layer, &n));
}

TEST(tokenizer_arrays) {
    air_gguf *g = NULL;
    ASSERT_OK(air_gguf_open(test_data("gguf/tiny_llama.gguf"), &g));
    air_gguf_tokenizer tk;
    ASSERT_OK(air_gguf_tokenizer_info(g, &tk));
    ASSERT_EQ_STR(tk.model, "llama");
    ASSERT_EQ_STR(tk.pre, "default");
    ASSERT_EQ_INT(tk.n_tokens, 40);
    ASSERT_EQ_STR(tk.tokens[1], "<s>");
    ASSERT_EQ_STR(tk.tokens[39], "t35");
    ASSERT_TRUE(tk.scores != NULL);
    ASSERT_NEAR(tk.scores[5], -5.0, 0);
    ASSERT_TRUE(tk.types != NULL);
    ASSERT_EQ_INT(tk.types[0], 3);
    ASSERT_EQ_INT(tk.types[4], 1);
    ASSERT_TRUE(tk.merges == NULL);
    ASSERT_EQ_INT(tk.bos_id, 1);
    ASSERT_EQ_INT(tk.eos_id, 2);
    ASSERT_EQ_INT(tk.eot_id, 3);
    ASSERT_EQ_INT(tk.unk_id, -1);
    ASSERT_EQ_INT(tk.add_bos, 1);
    ASSERT_EQ_INT(tk.add_eos, -1);
    ASSERT_EQ_STR(tk.chat_template, "{% for m in messages %}{{ m['content'] }}{% endfor %}");
    air_gguf_close(g);

    ASSERT_OK(air_gguf_open(test_data("gguf/tiny_qwen2.gguf"), &g));
    ASSERT_OK(air_gguf_tokenizer_info(g, &tk));
    ASSERT_EQ_STR(tk.model, "gpt2");
    ASSERT_TRUE(tk.scores == NULL);
    ASSERT_EQ_INT(tk.n_merges, 3);
    ASSERT_EQ_STR(tk.merges[2], "t1 0");
    ASSERT_EQ_INT(tk.add_bos, 0);
    air_gguf_close(g);

    buf b;
    valid_file(&b);
    ASSERT_OK(air_gguf_open_memory(b.b, b.n, &g));
    ASSERT_ERR(air_gguf_tokenizer_info(g, &tk), AIR_ERR_NOT_FOUND, "no tokenizer.ggml.tokens");
    air_gguf_close(g);
}

/* The generator permuted random matrices with a numpy version of the
 * converter; the inverse must restore them exactly. */
TEST(unpermute_qk) {
    air_gguf *g = NULL;
    ASSERT_OK(air_gguf_open(test_data("gguf/permute.gguf"), &g));
    uint32_t n_cases = 0;
    ASSERT_TRUE(air_gguf_get_u32(g, "golden.n_cases", &n_cases) && n_cases >= 4);
    for (uint32_t c = 0; c < n_cases; c++) {
        char k[64];
        uint32_t n_head;
        snprintf(k, sizeof k, "case%u.n_head", c);
        ASSERT_TRUE(air_gguf_get_u32(g, k, &n_head));
        snprintf(k, sizeof k, "case%u.orig", c);
        const air_gguf_tensor *to = air_gguf_find_tensor(g, k);
        snprintf(k, sizeof k, "case%u.permuted", c);
        const air_gguf_tensor *tp = air_gguf_find_tensor(g, k);
        ASSERT_TRUE(to && tp);
        int n_in = (int)to->ne[0], n_out = (int)to->ne[1];
        float *o = malloc(sizeof(float) * n_in * n_out), *p = malloc(sizeof(float) * n_in * n_out);
        ASSERT_OK(air_gguf_dequantize(g, to, o));
        ASSERT_OK(air_gguf_dequantize(g, tp, p));
        ASSERT_TRUE(memcmp(o, p, sizeof(float) * n_in * n_out) != 0 || n_out / (int)n_head == 2);
        ASSERT_OK(air_gguf_unpermute_qk(p, n_out, n_in, (int)n_head));
        for (int i = 0; i < n_in * n_out; i++)
            if (o[i] != p[i]) {
                float a = o[i], b2 = p[i];
                free(o);
                free(p);
                T_FAIL("case %u: element %d (row %d): %g after unpermute, expected %g", c, i,
                       i / n_in, (double)b2, (double)a);
            }
        free(o);
        free(p);
    }
    float w[6] = {0};
    ASSERT_ERR(air_gguf_unpermute_qk(w, 6, 1, 2), AIR_ERR_INVALID_ARG, "6 rows");
    air_gguf_close(g);
}

TEST(dequantize_rows_bounds) {
    air_gguf *g = NULL;
    ASSERT_OK(air_gguf_open(test_data("gguf/tiny_qwen2.gguf"), &g));
    const air_gguf_tensor *t = air_gguf_find_tensor(g, "token_embd.weight");
    ASSERT_TRUE(t != NULL);
    float row[32];
    ASSERT_OK(air_gguf_dequantize_rows(g, t, 35, 1, row));
    ASSERT_ERR(air_gguf_dequantize_rows(g, t, 35, 2, row), AIR_ERR_INVALID_ARG, "has 36 rows");
    ASSERT_ERR(air_gguf_dequantize_rows(g, t, -1, 1, row), AIR_ERR_INVALID_ARG,
               "token_embd.weight");
    air_gguf_close(g);
}

/* The llama fixture stores Q/K permuted as the converter does, plus the
 * original order of layer 0: the source must hand out the original. */
TEST(source_llama_unpermutes) {
    air_source *s = NULL;
    ASSERT_OK(air_source_open_gguf(test_data("gguf/tiny_llama.gguf"), &s));
    ASSERT_EQ_INT(s->hp.n_layer, 2);
    ASSERT_EQ_STR(s->name, "tiny_llama");
    ASSERT_TRUE(strncmp(s->fingerprint, "w:tiny_llama.gguf:", 18) == 0);
    const air_gguf *g = air_source_gguf(s);
    ASSERT_TRUE(g != NULL);
    static const char *const names[][2] = {{AIR_T_WQ, "test.attn_q_hf.0"},
                                           {AIR_T_WK, "test.attn_k_hf.0"}};
    for (int k = 0; k < 2; k++) {
        air_src_tensor info;
        ASSERT_OK(s->info(s, 0, names[k][0], &info));
        ASSERT_EQ_INT(info.dtype, AIR_DT_F16);
        ASSERT_EQ_INT(info.n_dims, 2);
        ASSERT_EQ_INT(info.shape[0], k == 0 ? 128 : 64);
        ASSERT_EQ_INT(info.shape[1], 128);
        const air_gguf_tensor *hf = air_gguf_find_tensor(g, names[k][1]);
        ASSERT_TRUE(hf != NULL && hf->size == info.nbytes);
        void *buf = malloc(info.nbytes);
        ASSERT_OK(s->read(s, 0, names[k][0], buf));
        int same = memcmp(buf, air_gguf_tensor_data(g, hf), info.nbytes) == 0;
        free(buf);
        if (!same)
            T_FAIL("%s read from the source is not in the original row order", names[k][0]);
    }
    air_src_tensor info;
    ASSERT_OK(s->info(s, -1, AIR_T_OUT_NORM, &info));
    ASSERT_EQ_INT(info.dtype, AIR_DT_F32);
    ASSERT_EQ_INT(info.n_dims, 1);
    ASSERT_EQ_INT(info.shape[0], 128);
    ASSERT_ERR(s->info(s, 0, AIR_T_BQ, &info), AIR_ERR_NOT_FOUND, "blk.0.attn_q.bias");
    ASSERT_ERR(s->info(s, 5, AIR_T_WQ, &info), AIR_ERR_NOT_FOUND, "blk.5.attn_q.weight");
    air_source_close(s);

    /* not a GGUF source */
    ASSERT_TRUE(air_source_gguf(NULL) == NULL);
    ASSERT_ERR(air_source_open_gguf("/nonexistent.gguf", &s), AIR_ERR_NOT_FOUND, "nonexistent");
}

TEST(neutral_to_gguf_names) {
    char buf[64];
    ASSERT_TRUE(air_gguf_tensor_name(3, AIR_T_W_DOWN, buf, sizeof buf));
    ASSERT_EQ_STR(buf, "blk.3.ffn_down.weight");
    ASSERT_TRUE(air_gguf_tensor_name(-1, AIR_T_TOK_EMBD, buf, sizeof buf));
    ASSERT_EQ_STR(buf, "token_embd.weight");
    ASSERT_TRUE(air_gguf_tensor_name(0, AIR_T_BV, buf, sizeof buf));
    ASSERT_EQ_STR(buf, "blk.0.attn_v.bias");
    ASSERT_TRUE(!air_gguf_tensor_name(0, "nope", buf, sizeof buf));
    ASSERT_TRUE(!air_gguf_tensor_name(-1, AIR_T_WQ, buf, sizeof buf));
    ASSERT_TRUE(!air_gguf_tensor_name(123, AIR_T_W_DOWN, buf, 8));
}

int main(void) {
    RUN(parses_hand_made_file);
    RUN(accepts_version_2);
    RUN(every_value_type);
    RUN(custom_alignment);
    RUN(rejects_bad_headers);
    RUN(rejects_every_truncation);
    RUN(rejects_huge_counts_and_lengths);
    RUN(rejects_bad_arrays);
    RUN(rejects_bad_tensors);
    RUN(rejects_bad_alignment);
    RUN(open_errors);
    RUN(hparams_llama);
    RUN(hparams_qwen2);
    RUN(hparams_qwen3);
    RUN(hparams_errors);
    RUN(hparams_bad_rope_freqs);
    RUN(hparams_out_of_range);
    RUN(map_names);
    RUN(tokenizer_arrays);
    RUN(unpermute_qk);
    RUN(dequantize_rows_bounds);
    RUN(source_llama_unpermutes);
    RUN(neutral_to_gguf_names);
    return test_summary();
}
