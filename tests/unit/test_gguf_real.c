/*
 * test_gguf_real.c - the GGUF reader on the project's default model,
 * SmolLM2-135M-Instruct Q4_1 (scripts/fetch-default-model.sh puts it in
 * models/, or AIRLLM_MODELS_DIR). Skips with a SKIP line when it is absent.
 *
 * Values checked come from the file's metadata as read by the gguf Python
 * package; dequantized rows are compared bit for bit with
 * tests/fixtures/gguf/smollm2_q4_1_golden.gguf (tests/gen/gen_gguf_goldens.py).
 */
#include <stdint.h>

#include "source/gguf.h"
#include "source/source.h"
#include "test.h"

static char g_model[4096];

static int find_model(void) {
    const char *dir = getenv("AIRLLM_MODELS_DIR");
    const char *root = getenv("AIR_SOURCE_DIR");
    if (dir)
        snprintf(g_model, sizeof g_model, "%s/SmolLM2-135M-Instruct.Q4_1.gguf", dir);
    else
        snprintf(g_model, sizeof g_model, "%s/models/SmolLM2-135M-Instruct.Q4_1.gguf",
                 root ? root : ".");
    FILE *f = fopen(g_model, "rb");
    if (!f)
        return 0;
    fclose(f);
    return 1;
}

TEST(hparams) {
    air_gguf *g = NULL;
    ASSERT_OK(air_gguf_open(g_model, &g));
    ASSERT_EQ_INT(air_gguf_version(g), 3);
    ASSERT_EQ_INT(air_gguf_n_tensors(g), 272);
    ASSERT_EQ_STR(air_gguf_get_str(g, "general.architecture"), "llama");
    air_hparams hp;
    ASSERT_OK(air_gguf_hparams(g, &hp));
    ASSERT_EQ_INT(hp.arch, AIR_ARCH_LLAMA);
    ASSERT_EQ_INT(hp.n_layer, 30);
    ASSERT_EQ_INT(hp.n_embd, 576);
    ASSERT_EQ_INT(hp.n_head, 9);
    ASSERT_EQ_INT(hp.n_head_kv, 3);
    ASSERT_EQ_INT(hp.head_dim, 64);
    ASSERT_EQ_INT(hp.n_ff, 1536);
    ASSERT_EQ_INT(hp.n_vocab, 49152);
    ASSERT_EQ_INT(hp.n_ctx_train, 8192);
    ASSERT_NEAR(hp.rope_theta, 100000.0, 0);
    ASSERT_NEAR(hp.rms_eps, 1e-5, 1e-12);
    ASSERT_EQ_INT(hp.rope_scaling, AIR_ROPE_SCALING_NONE);
    ASSERT_EQ_INT(hp.tie_embeddings, 1);
    ASSERT_EQ_INT(hp.attn_bias, 0);
    ASSERT_EQ_INT(hp.qk_norm, 0);
    ASSERT_EQ_INT(hp.bos_id, 1);
    ASSERT_EQ_INT(hp.n_eos, 1);
    ASSERT_EQ_INT(hp.eos_ids[0], 2);
    ASSERT_TRUE(air_gguf_qk_permuted(g));

    air_gguf_tokenizer tk;
    ASSERT_OK(air_gguf_tokenizer_info(g, &tk));
    ASSERT_EQ_STR(tk.model, "gpt2");
    ASSERT_EQ_STR(tk.pre, "smollm");
    ASSERT_EQ_INT(tk.n_tokens, 49152);
    ASSERT_EQ_INT(tk.n_merges, 48900);
    ASSERT_TRUE(tk.types != NULL && tk.scores == NULL);
    ASSERT_EQ_STR(tk.tokens[1], "<|im_start|>");
    ASSERT_EQ_STR(tk.tokens[2], "<|im_end|>");
    ASSERT_EQ_INT(tk.add_bos, 0);
    ASSERT_EQ_INT(tk.unk_id, 0);
    ASSERT_EQ_INT(tk.pad_id, 2);
    ASSERT_TRUE(tk.chat_template && strstr(tk.chat_template, "<|im_start|>") != NULL);

    /* every tensor maps to a neutral name (no rope_freqs in this model) */
    int per_layer[30] = {0};
    for (int64_t i = 0; i < air_gguf_n_tensors(g); i++) {
        const air_gguf_tensor *t = air_gguf_tensor_at(g, i);
        int layer;
        const char *neutral;
        if (!air_gguf_map_name(t->name, &layer, &neutral))
            T_FAIL("tensor %s has no neutral name", t->name);
        if (layer >= 0 && layer < 30)
            per_layer[layer]++;
    }
    for (int l = 0; l < 30; l++)
        ASSERT_EQ_INT(per_layer[l], 9);
    air_gguf_close(g);
}

TEST(dequantized_rows_match_reference) {
    air_gguf *g = NULL, *gold = NULL;
    ASSERT_OK(air_gguf_open(g_model, &g));
    ASSERT_OK(air_gguf_open(test_data("gguf/smollm2_q4_1_golden.gguf"), &gold));
    const air_gguf_value *fs = air_gguf_get(gold, "golden.file_size");
    ASSERT_TRUE(fs != NULL);
    static const char *const names[] = {"blk.0.attn_q.weight", "blk.29.ffn_down.weight",
                                        "token_embd.weight"};
    for (int k = 0; k < 3; k++) {
        char key[128];
        const air_gguf_tensor *t = air_gguf_find_tensor(g, names[k]);
        ASSERT_TRUE(t != NULL);
        snprintf(key, sizeof key, "%s.type", names[k]);
        ASSERT_EQ_STR(air_ggml_type_name(t->ggml_type), air_gguf_get_str(gold, key));
        snprintf(key, sizeof key, "%s.rows", names[k]);
        int type;
        uint64_t n_rows;
        const void *rows;
        ASSERT_TRUE(air_gguf_get_arr(gold, key, &type, &n_rows, &rows));
        ASSERT_EQ_INT(type, AIR_GGUF_INT32);
        snprintf(key, sizeof key, "%s.expected", names[k]);
        const air_gguf_tensor *te = air_gguf_find_tensor(gold, key);
        ASSERT_TRUE(te != NULL && te->ne[0] == t->ne[0] && (uint64_t)te->ne[1] == n_rows);
        float *exp = malloc(sizeof(float) * (size_t)air_gguf_tensor_nelements(te));
        float *got = malloc(sizeof(float) * (size_t)t->ne[0]);
        ASSERT_OK(air_gguf_dequantize(gold, te, exp));
        for (uint64_t r = 0; r < n_rows; r++) {
            int32_t row = ((const int32_t *)rows)[r];
            ASSERT_OK(air_gguf_dequantize_rows(g, t, row, 1, got));
            const float *e = exp + r * (size_t)t->ne[0];
            if (memcmp(got, e, sizeof(float) * (size_t)t->ne[0]) != 0) {
                for (int64_t i = 0; i < t->ne[0]; i++)
                    if (got[i] != e[i])
                        fprintf(stderr, "%s row %d col %lld: got %.9g expected %.9g\n", names[k],
                                row, (long long)i, (double)got[i], (double)e[i]);
                free(exp);
                free(got);
                T_FAIL("%s row %d differs from the reference", names[k], row);
            }
        }
        free(exp);
        free(got);
    }
    air_gguf_close(gold);
    air_gguf_close(g);
}

/* Q in the file is permuted per head; un-permuting then re-reading must be
 * the identity on a whole tensor's worth of rows (shape sanity on real data). */
TEST(unpermute_real_q) {
    air_gguf *g = NULL;
    ASSERT_OK(air_gguf_open(g_model, &g));
    const air_gguf_tensor *t = air_gguf_find_tensor(g, "blk.0.attn_k.weight");
    ASSERT_TRUE(t != NULL);
    int n_in = (int)t->ne[0], n_out = (int)t->ne[1];
    ASSERT_EQ_INT(n_in, 576);
    ASSERT_EQ_INT(n_out, 192); /* 3 kv heads of 64 */
    float *w = malloc(sizeof(float) * (size_t)n_in * n_out);
    float *orig = malloc(sizeof(float) * (size_t)n_in * n_out);
    ASSERT_OK(air_gguf_dequantize(g, t, w));
    memcpy(orig, w, sizeof(float) * (size_t)n_in * n_out);
    ASSERT_OK(air_gguf_unpermute_qk(w, n_out, n_in, 3));
    /* head 1, original row 32 + 5 (second half) came from file row 2*5 + 1 */
    int ok = memcmp(w + (size_t)(64 + 32 + 5) * n_in, orig + (size_t)(64 + 11) * n_in,
                    sizeof(float) * (size_t)n_in) == 0;
    free(w);
    free(orig);
    ASSERT_TRUE(ok);
    air_gguf_close(g);
}

/* As a source: Q4_1 weights come out as F32, Q rows un-permuted. */
TEST(as_source) {
    air_source *s = NULL;
    ASSERT_OK(air_source_open_gguf(g_model, &s));
    ASSERT_EQ_INT(s->hp.n_layer, 30);
    ASSERT_EQ_STR(s->name, "SmolLM2-135M-Instruct.Q4_1");
    air_src_tensor info;
    ASSERT_OK(s->info(s, 7, AIR_T_WQ, &info));
    ASSERT_EQ_INT(info.dtype, AIR_DT_F32);
    ASSERT_EQ_INT(info.shape[0], 576);
    ASSERT_EQ_INT(info.shape[1], 576);
    ASSERT_EQ_INT(info.nbytes, 576 * 576 * 4);
    float *a = malloc(info.nbytes), *b = malloc(info.nbytes);
    ASSERT_OK(s->read(s, 7, AIR_T_WQ, a));
    const air_gguf *g = air_source_gguf(s);
    ASSERT_OK(air_gguf_dequantize(g, air_gguf_find_tensor(g, "blk.7.attn_q.weight"), b));
    ASSERT_OK(air_gguf_unpermute_qk(b, 576, 576, 9));
    int same = memcmp(a, b, info.nbytes) == 0;
    free(a);
    free(b);
    ASSERT_TRUE(same);
    ASSERT_OK(s->info(s, -1, AIR_T_TOK_EMBD, &info));
    ASSERT_EQ_INT(info.shape[0], 49152);
    ASSERT_EQ_INT(info.shape[1], 576);
    ASSERT_ERR(s->info(s, -1, AIR_T_OUTPUT, &info), AIR_ERR_NOT_FOUND, "output.weight");
    air_source_close(s);
}

int main(void) {
    if (!find_model()) {
        printf("SKIP: %s not found; run scripts/fetch-default-model.sh to test on the real "
               "model\n",
               g_model);
        return test_summary();
    }
    RUN(hparams);
    RUN(dequantized_rows_match_reference);
    RUN(unpermute_real_q);
    RUN(as_source);
    return test_summary();
}
