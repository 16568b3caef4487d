/*
 * test_moe.c - mixture-of-experts models against Hugging Face transformers,
 * and per-expert streaming.
 *
 * For each reference model (tests/fixtures/models/<arch>, made by
 * tests/gen/gen_moe_models.py): split to a layer store, then
 *   - logits of every prompt position vs golden logits_all (rel. error <= 1e-4)
 *   - 32 greedy tokens identical to transformers' generate()
 *   - cached decode steps vs transformers' full recompute (rel. error <= 1e-4)
 *   - identical logits with prefetch on/off, any RAM budget and expert cache
 *   - a fully streamed decode step reads exactly the dense parts of the layers,
 *     the head, and the k routed experts of each MoE layer: nothing more
 *   - with a cache that holds every expert, a repeated step reads no expert
 *   - a flipped byte in one expert is reported by name when that expert is read
 */
#include <fcntl.h>
#include <unistd.h>

#include "runtime/experts.h"
#include "runtime/generate.h"
#include "source/gguf.h"
#include "test.h"
#include "test_golden.h"
#include "util/fileio.h"

/* Bytes the streamer reads for unit u: an MoE layer's dense part (header,
 * table, every tensor not named "exp.*"), else the whole file. Computed here
 * from the table, independently of the streamer. */
static uint64_t expected_unit_read(air_store *st, int u) {
    const air_hparams *hp = air_store_hparams(st);
    if (u >= hp->n_layer || !air_hp_layer_is_moe(hp, u))
        return air_store_unit_bytes(st, u);
    air_lf_table t;
    if (air_lf_read_table(air_store_unit_path(st, u), &t))
        return 0;
    uint64_t end = 0;
    for (uint32_t i = 0; i < t.h.n_tensors; i++)
        if (strncmp(t.e[i].name, "exp.", 4) != 0 && t.e[i].offset + t.e[i].nbytes > end)
            end = t.e[i].offset + t.e[i].nbytes;
    air_lf_table_free(&t);
    return t.h.header_bytes + (end + 4095) / 4096 * 4096;
}

typedef struct {
    uint64_t unit_bytes, exp_bytes, n_read, n_hits, n_routed;
} io_count;

static io_count counts(air_engine *e) {
    air_streamer_stats ss;
    air_experts_stats xs;
    air_streamer_get_stats(air_engine_streamer(e), &ss);
    air_experts_get_stats(air_engine_experts(e), &xs);
    return (io_count){ss.bytes_read, xs.bytes_read, xs.n_read, xs.n_hits, xs.n_routed};
}

static void check_moe(const char *model) {
    golden g;
    ASSERT_TRUE(load_golden(model, &g));
    const char *store = split_model(model, "none");
    ASSERT_TRUE(store != NULL);
    air_engine *e = open_engine(store, 1, 0);
    ASSERT_TRUE(e != NULL);
    air_hparams hpc = *air_engine_hparams(e);
    const air_hparams *hp = &hpc;
    ASSERT_TRUE(hp->n_expert > 0);
    int nv = hp->n_vocab;
    air_kv kv;
    ASSERT_OK(air_kv_init(&kv, hp, 128));

    /* prefill: every position */
    float *all = malloc(sizeof(float) * (size_t)nv * g.n_prompt);
    ASSERT_OK(air_engine_eval(e, &kv, g.prompt, g.n_prompt, 1, all));
    const cJSON *la = cJSON_GetObjectItem(g.root, "logits_all");
    double worst = 0;
    for (int p = 0; p < g.n_prompt; p++) {
        double r = rel_err(all + (size_t)p * nv, cJSON_GetArrayItem(la, p), nv);
        worst = r > worst ? r : worst;
        if (r > 1e-4)
            T_FAIL("%s: position %d logits rel. error %.3g > 1e-4", model, p, r);
    }
    fprintf(stderr, "  %s: prefill logits max rel. error %.3g\n", model, worst);

    /* greedy 32 tokens with the KV cache */
    air_kv_free(&kv);
    ASSERT_OK(air_kv_init(&kv, hp, 128));
    air_gen_options go = {0};
    go.max_tokens = g.n_greedy;
    air_sampler_default_params(&go.sampler);
    go.sampler.temperature = 0;
    int32_t *out;
    int n_out;
    ASSERT_OK(air_generate(e, &kv, g.prompt, g.n_prompt, &go, &out, &n_out, NULL));
    ASSERT_EQ_INT(n_out, g.n_greedy);
    for (int i = 0; i < n_out; i++)
        if (out[i] != g.greedy[i])
            T_FAIL("%s: greedy token %d is %d, transformers gave %d", model, i, out[i],
                   g.greedy[i]);
    free(out);
    air_kv_free(&kv);

    /* cached decode steps vs transformers' full recompute */
    const cJSON *steps = cJSON_GetObjectItem(g.root, "greedy_step_logits");
    int step_idx[3] = {0, 15, 31};
    float *lg = malloc(sizeof(float) * nv);
    for (int s = 0; s < 3; s++) {
        ASSERT_OK(air_kv_init(&kv, hp, 128));
        ASSERT_OK(air_engine_eval(e, &kv, g.prompt, g.n_prompt, 0, lg));
        for (int i = 0; i < step_idx[s]; i++)
            ASSERT_OK(air_engine_eval(e, &kv, &g.greedy[i], 1, 0, lg));
        double r = rel_err(lg, cJSON_GetArrayItem(steps, s), nv);
        air_kv_free(&kv);
        if (r > 1e-4)
            T_FAIL("%s: cached decode step %d rel. error %.3g > 1e-4", model, step_idx[s], r);
    }
    air_engine_close(e);

    /* A fully streamed decode step reads the dense parts, the head and
     * exactly k experts per MoE layer. */
    air_store *st;
    ASSERT_OK(air_store_open(store, &st));
    uint64_t dense_total = 0, exp_bytes = 0;
    int n_moe = 0;
    for (int u = 0; u < air_store_n_units(st); u++) {
        uint64_t b = expected_unit_read(st, u);
        ASSERT_TRUE(b > 0);
        dense_total += b;
        if (u < hp->n_layer && air_hp_layer_is_moe(hp, u)) {
            n_moe++;
            /* the file is the dense part plus n_expert equal expert ranges */
            exp_bytes = (air_store_unit_bytes(st, u) - b) / (uint64_t)hp->n_expert;
            ASSERT_EQ_INT(b + exp_bytes * (uint64_t)hp->n_expert, air_store_unit_bytes(st, u));
        }
    }
    uint64_t all_units = air_store_total_bytes(st);
    air_store_close(st);
    ASSERT_TRUE(n_moe > 0);
    /* prefetch off: the layer reader does not run ahead into the next pass,
     * so the counters hold exactly one step (expert reads stay concurrent) */
    e = open_engine(store, 0, 0);
    ASSERT_TRUE(e != NULL);
    ASSERT_OK(air_kv_init(&kv, hp, 128));
    ASSERT_OK(air_engine_eval(e, &kv, g.prompt, g.n_prompt, 0, lg));
    io_count c0 = counts(e);
    ASSERT_OK(air_engine_eval(e, &kv, &g.greedy[0], 1, 0, lg));
    io_count c1 = counts(e);
    uint64_t k = (uint64_t)hp->n_expert_used;
    ASSERT_EQ_INT(c1.unit_bytes - c0.unit_bytes, dense_total);
    ASSERT_EQ_INT(c1.n_read - c0.n_read, (uint64_t)n_moe * k);
    ASSERT_EQ_INT(c1.exp_bytes - c0.exp_bytes, (uint64_t)n_moe * k * exp_bytes);
    ASSERT_EQ_INT(c1.n_hits - c0.n_hits, 0);
    fprintf(stderr,
            "  %s: streamed decode step read %llu bytes (dense %llu + %d x %llu experts) "
            "of %llu\n",
            model, (unsigned long long)(dense_total + (uint64_t)n_moe * k * exp_bytes),
            (unsigned long long)dense_total, (int)((uint64_t)n_moe * k),
            (unsigned long long)exp_bytes, (unsigned long long)all_units);
    /* prefill: each expert at most once per layer, whatever the rows */
    ASSERT_TRUE(c0.n_read <= (uint64_t)n_moe * (uint64_t)hp->n_expert);
    air_kv_free(&kv);
    air_engine_close(e);

    /* prefetch on/off, RAM budgets (none, dense parts + a few experts, all):
     * identical logits; with everything in RAM a repeated step reads nothing */
    uint64_t budgets[3] = {0, dense_total + 5 * exp_bytes, UINT64_MAX};
    float *l2 = malloc(sizeof(float) * (size_t)nv * g.n_prompt);
    for (int pf = 0; pf < 2; pf++)
        for (int bi = 0; bi < 3; bi++) {
            air_engine *e2 = open_engine(store, pf, budgets[bi]);
            ASSERT_TRUE(e2 != NULL);
            air_experts_stats xs;
            air_experts_get_stats(air_engine_experts(e2), &xs);
            if (bi == 1 && (xs.cache_slots != 5))
                T_FAIL("%s: cache of %d experts, expected 5", model, xs.cache_slots);
            ASSERT_OK(air_kv_init(&kv, hp, 128));
            ASSERT_OK(air_engine_eval(e2, &kv, g.prompt, g.n_prompt, 1, l2));
            if (memcmp(l2, all, sizeof(float) * (size_t)nv * g.n_prompt) != 0)
                T_FAIL("%s: logits differ with prefetch=%d budget=%llu", model, pf,
                       (unsigned long long)budgets[bi]);
            air_kv_free(&kv);
            /* the same step twice */
            for (int rep = 0; rep < 2; rep++) {
                ASSERT_OK(air_kv_init(&kv, hp, 128));
                io_count a = counts(e2);
                ASSERT_OK(air_engine_eval(e2, &kv, &g.greedy[0], 1, 0, lg));
                io_count b = counts(e2);
                air_kv_free(&kv);
                if (bi == 2 && rep == 1 && (b.unit_bytes != a.unit_bytes || b.n_read != a.n_read))
                    T_FAIL("%s: everything fits the budget but a repeated step read %llu unit "
                           "and %llu expert bytes",
                           model, (unsigned long long)(b.unit_bytes - a.unit_bytes),
                           (unsigned long long)(b.exp_bytes - a.exp_bytes));
                if (bi == 2 && rep == 1 && b.n_hits - a.n_hits != (uint64_t)n_moe * k)
                    T_FAIL("%s: repeated step: %llu cache hits, expected %llu", model,
                           (unsigned long long)(b.n_hits - a.n_hits),
                           (unsigned long long)n_moe * k);
            }
            air_engine_close(e2);
        }
    free(l2);

    /* a flipped byte inside every expert of the last layer: the first expert
     * read reports its tensor, file and byte range, and no logits come out */
    char path[1200];
    snprintf(path, sizeof path, "%s/layer_%05d.bin", store, hp->n_layer - 1);
    ASSERT_OK(air_store_open(store, &st));
    uint64_t dense_last = expected_unit_read(st, hp->n_layer - 1);
    air_store_close(st);
    int fd = open(path, O_RDWR);
    ASSERT_TRUE(fd >= 0);
    for (int x = 0; x < hp->n_expert; x++) {
        uint64_t off = dense_last + (uint64_t)x * exp_bytes + 100; /* in exp.<x>.w_gate */
        unsigned char byte;
        ASSERT_TRUE(pread(fd, &byte, 1, (off_t)off) == 1);
        byte ^= 0x10;
        ASSERT_TRUE(pwrite(fd, &byte, 1, (off_t)off) == 1);
    }
    close(fd);
    e = open_engine(store, 1, 0);
    ASSERT_TRUE(e != NULL);
    ASSERT_OK(air_kv_init(&kv, hp, 128));
    air_status s2 = air_engine_eval(e, &kv, g.prompt, g.n_prompt, 0, lg);
    air_kv_free(&kv);
    air_engine_close(e);
    ASSERT_EQ_INT(s2, AIR_ERR_FORMAT);
    if (!strstr(air_last_error(), ".w_gate' checksum mismatch") || !strstr(air_last_error(), path))
        T_FAIL("%s: the corrupt expert gave another error: %s", model, air_last_error());
    free(lg);
    free(all);
    cJSON_Delete(g.root);
}

/* MoE GGUF files in llama.cpp's naming (stacked ffn_*_exps experts, made by
 * tests/gen/gen_gguf_moe.py) against llama-cpp-python and transformers. */
static void check_gguf(const char *name, air_arch arch, int n_expert) {
    char rel[256], text_path[256];
    snprintf(rel, sizeof rel, "models/%s/model.gguf", name);
    snprintf(text_path, sizeof text_path, "models/%s/golden.json", name);
    char *text;
    size_t len;
    ASSERT_OK(air_read_file(test_data(text_path), &text, &len));
    cJSON *g = cJSON_Parse(text);
    free(text);
    ASSERT_TRUE(g != NULL);
    air_source *src;
    ASSERT_OK(air_source_open_gguf(test_data(rel), &src));
    ASSERT_EQ_INT(src->hp.arch, arch);
    ASSERT_EQ_INT(src->hp.n_expert, n_expert);
    char sname[128];
    snprintf(sname, sizeof sname, "store-%s", name);
    const char *store = test_tmp(sname);
    air_split_options so = {0};
    ASSERT_OK(air_store_split(src, store, &so));
    air_source_close(src);
    air_engine *e = open_engine(store, 1, 0);
    ASSERT_TRUE(e != NULL);
    const air_hparams *hp = air_engine_hparams(e);
    int nv = hp->n_vocab, np = 0, ng = 0;
    int32_t prompt[64], greedy[64];
    const cJSON *it;
    cJSON_ArrayForEach(it, cJSON_GetObjectItem(g, "prompt_ids")) prompt[np++] = it->valueint;
    cJSON_ArrayForEach(it, cJSON_GetObjectItem(g, "greedy_ids")) greedy[ng++] = it->valueint;
    air_kv kv;
    ASSERT_OK(air_kv_init(&kv, hp, 128));
    float *all = malloc(sizeof(float) * (size_t)nv * np);
    ASSERT_OK(air_engine_eval(e, &kv, prompt, np, 1, all));
    double w_ll = 0, w_hf = 0;
    for (int p = 0; p < np; p++) {
        double a = rel_err(all + (size_t)p * nv,
                           cJSON_GetArrayItem(cJSON_GetObjectItem(g, "logits_all"), p), nv);
        double b =
            rel_err(all + (size_t)p * nv,
                    cJSON_GetArrayItem(cJSON_GetObjectItem(g, "transformers_logits_all"), p), nv);
        w_ll = a > w_ll ? a : w_ll;
        w_hf = b > w_hf ? b : w_hf;
    }
    /* llama.cpp multiplies MXFP4 blocks by 8-bit activations: a looser bound */
    const cJSON *lb = cJSON_GetObjectItem(g, "llama_cpp_rel_bound");
    double ll_bound = cJSON_IsNumber(lb) ? lb->valuedouble : 1e-4;
    fprintf(stderr,
            "  %s: logits rel. error %.3g vs llama.cpp (bound %.3g), %.3g vs transformers\n", name,
            w_ll, ll_bound, w_hf);
    if (w_hf > 1e-4 || w_ll > ll_bound)
        T_FAIL("%s: logits rel. error %.3g vs llama.cpp (bound %.3g), %.3g vs transformers (bound "
               "1e-4)",
               name, w_ll, ll_bound, w_hf);
    air_kv_free(&kv);
    ASSERT_OK(air_kv_init(&kv, hp, 128));
    air_gen_options go = {0};
    go.max_tokens = ng;
    air_sampler_default_params(&go.sampler);
    go.sampler.temperature = 0;
    int32_t *out;
    int n_out;
    ASSERT_OK(air_generate(e, &kv, prompt, np, &go, &out, &n_out, NULL));
    ASSERT_EQ_INT(n_out, ng);
    for (int i = 0; i < n_out; i++)
        if (out[i] != greedy[i])
            T_FAIL("%s: greedy token %d is %d, the reference gave %d", name, i, out[i], greedy[i]);
    free(out);
    free(all);
    air_kv_free(&kv);
    air_engine_close(e);
    cJSON_Delete(g);
}

TEST(gguf_qwen3moe) {
    check_gguf("gguf_qwen3moe", AIR_ARCH_QWEN3_MOE, 8);
}
/* qwen2moe: shared expert and its gate vector, q/k/v biases */
TEST(gguf_qwen2moe) {
    check_gguf("gguf_qwen2moe", AIR_ARCH_QWEN2_MOE, 8);
}
/* Mixtral as llama.cpp stores it: "llama" with experts, Q/K rows permuted */
TEST(gguf_mixtral) {
    check_gguf("gguf_mixtral", AIR_ARCH_MIXTRAL, 8);
}

/* deepseek2 as current converters write it: kv_b split into attn_k_b (per
 * head, transposed) and attn_v_b, rebuilt at split time; sigmoid routing
 * with exp_probs_b, expert groups, a shared expert, a dense first layer,
 * YaRN with yarn_log_multiplier */
TEST(gguf_deepseek2) {
    check_gguf("gguf_deepseek2", AIR_ARCH_DEEPSEEK_V3, 16);
}
/* the same weights with one attn_kv_b, as older converters wrote it */
TEST(gguf_deepseek2_kvb) {
    check_gguf("gguf_deepseek2_kvb", AIR_ARCH_DEEPSEEK_V3, 16);
}
/* gpt-oss: sinks, biases, post_attention_norm, router and expert biases,
 * sliding window on even layers, clamped SwiGLU, YaRN */
TEST(gguf_gpt_oss) {
    check_gguf("gguf_gpt_oss", AIR_ARCH_GPT_OSS, 16);
}

/* the same weights with the experts rounded to MXFP4 and stored as GGUF
 * MXFP4 blocks, as released gpt-oss files hold them (greedy tokens from
 * transformers: llama.cpp's 8-bit activations leave its path after 25) */
TEST(gguf_gpt_oss_mxfp4) {
    check_gguf("gguf_gpt_oss_mxfp4", AIR_ARCH_GPT_OSS, 16);
}

/* The bytes of a fixture GGUF with `what` (a key or tensor name, found with
 * its u64 length prefix) changed: a u32 key's value set to v, or a name's
 * bytes replaced by `rename` (same length); written to tmp_dir/model.gguf,
 * whose path goes to out. */
static void patched_gguf(const char *fixture, const char *what, uint32_t v, const char *rename,
                         const char *tmp_dir, char *out, size_t cap) {
    char *data;
    size_t len;
    ASSERT_OK(air_read_file(test_data(fixture), &data, &len));
    size_t n = strlen(what);
    int done = 0;
    for (size_t i = 8; i + n + 8 <= len && !done; i++) {
        uint64_t l;
        memcpy(&l, data + i - 8, 8);
        if (l != n || memcmp(data + i, what, n) != 0)
            continue;
        if (rename)
            memcpy(data + i, rename, n);
        else
            memcpy(data + i + n + 4, &v, 4); /* after the u32 type tag */
        done = 1;
    }
    ASSERT_TRUE(done);
    snprintf(out, cap, "%s/model.gguf", test_tmp(tmp_dir));
    FILE *f = fopen(out, "wb");
    ASSERT_TRUE(f && fwrite(data, 1, len, f) == len);
    fclose(f);
    free(data);
}

/* DeepSeek-V2's softmax routing, and a layer whose kv_b is missing: errors
 * that say what is wrong */
TEST(gguf_deepseek2_errors) {
    air_source *src = NULL;
    char p[4096];
    patched_gguf("models/gguf_deepseek2/model.gguf", "deepseek2.expert_gating_func", 1, NULL,
                 "ds2-softmax", p, sizeof p);
    ASSERT_ERR(air_source_open_gguf(p, &src), AIR_ERR_UNSUPPORTED, "sigmoid expert routing");
    patched_gguf("models/gguf_deepseek2/model.gguf", "blk.1.attn_k_b.weight", 0,
                 "blk.1.attn_x_b.weight", "ds2-nokb", p, sizeof p);
    ASSERT_OK(air_source_open_gguf(p, &src));
    air_split_options so = {0};
    ASSERT_ERR(air_store_split(src, test_tmp("store-ds2-nokb"), &so), AIR_ERR_NOT_FOUND,
               "layer 1 has neither attn_kv_b.weight nor attn_k_b.weight");
    air_source_close(src);
}

/* The automatic RAM budget bounds the expert cache: with a reserve larger
 * than any memory, it resolves to 0 and nothing is cached (the cache was
 * once sized from AIR_RAM_AUTO itself and took every expert, which a
 * memory cap then killed). */
TEST(auto_budget_bounds_expert_cache) {
    const char *store = split_model("qwen3_moe", "none");
    ASSERT_TRUE(store != NULL);
    air_engine_options o;
    air_engine_default_options(&o);
    o.n_threads = 2;
    o.stream.ram_budget = AIR_RAM_AUTO;
    o.stream.reserve_bytes = UINT64_MAX / 2;
    air_engine *e = NULL;
    ASSERT_OK(air_engine_open(store, &o, &e));
    air_streamer_stats ss;
    air_streamer_get_stats(air_engine_streamer(e), &ss);
    air_experts_stats xs;
    air_experts_get_stats(air_engine_experts(e), &xs);
    ASSERT_EQ_INT(ss.ram_budget, 0);
    ASSERT_EQ_INT(ss.n_pinned, 0);
    ASSERT_EQ_INT(xs.cache_slots, 0);
    air_engine_close(e);
}

TEST(qwen3_moe) {
    check_moe("qwen3_moe");
}
/* the same weights with the experts fused into 3-D tensors */
TEST(qwen3_moe_fused) {
    check_moe("qwen3_moe_fused");
}
TEST(qwen2_moe) {
    check_moe("qwen2_moe");
}
TEST(mixtral) {
    check_moe("mixtral");
}
TEST(deepseek_v3) {
    check_moe("deepseek_v3");
}
/* the same model as an FP8 checkpoint (e4m3 + 128x128 weight_scale_inv),
 * against transformers loading it */
TEST(deepseek_v3_fp8) {
    check_moe("deepseek_v3_fp8");
}
TEST(gpt_oss) {
    check_moe("gpt_oss");
}
/* the same model with MXFP4 experts, against transformers loading it */
TEST(gpt_oss_mxfp4) {
    check_moe("gpt_oss_mxfp4");
}

int main(void) {
    RUN(qwen3_moe);
    RUN(qwen3_moe_fused);
    RUN(gguf_qwen3moe);
    RUN(gguf_qwen2moe);
    RUN(gguf_mixtral);
    RUN(gguf_deepseek2);
    RUN(gguf_deepseek2_kvb);
    RUN(gguf_gpt_oss);
    RUN(gguf_gpt_oss_mxfp4);
    RUN(gguf_deepseek2_errors);
    RUN(auto_budget_bounds_expert_cache);
    RUN(qwen2_moe);
    RUN(mixtral);
    RUN(deepseek_v3);
    RUN(deepseek_v3_fp8);
    RUN(gpt_oss);
    RUN(gpt_oss_mxfp4);
    return test_summary();
}
