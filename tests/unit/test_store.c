/*
 * test_store.c - model sources and the layer store: clear errors on broken
 * models, reuse of a complete store, resume of an interrupted split,
 * checksum verification, delete_original, single-file models, the same
 * store bytes whatever ISA, thread count or way of reading made them.
 */
#include <dirent.h>
#include <sys/stat.h>
#include <unistd.h>

#include "kernels/pool.h"
#include "model/forward.h"
#include "source/source.h"
#include "store/store.h"
#include "test.h"
#include "util/fileio.h"

static air_status split_dir(const char *model_dir, const char *store, air_compression c) {
    air_source *src = NULL;
    air_status st = air_source_open_hfdir(model_dir, 0, &src);
    if (st)
        return st;
    air_split_options so = {0};
    so.compression = c;
    st = air_store_split(src, store, &so);
    air_source_close(src);
    return st;
}

static air_status split_broken(const char *name) {
    char rel[256];
    snprintf(rel, sizeof rel, "models/broken/%s", name);
    char tmp[128];
    snprintf(tmp, sizeof tmp, "broken-%s", name);
    return split_dir(test_data(rel), test_tmp(tmp), AIR_COMP_NONE);
}

TEST(broken_models_give_clear_errors) {
    ASSERT_OK(split_broken("control"));
    ASSERT_ERR(split_broken("unknown_arch"), AIR_ERR_UNSUPPORTED, "FooForCausalLM");
    ASSERT_ERR(split_broken("missing_tensor"), AIR_ERR_NOT_FOUND, "model.layers.0.mlp.down_proj.weight");
    ASSERT_ERR(split_broken("wrong_shape"), AIR_ERR_FORMAT, "q_proj.weight");
    ASSERT_ERR(split_broken("wrong_shape"), AIR_ERR_FORMAT, "expected");
    ASSERT_ERR(split_broken("truncated_shard"), AIR_ERR_FORMAT, "truncated");
    ASSERT_ERR(split_broken("bad_header"), AIR_ERR_FORMAT, "malformed");
    ASSERT_ERR(split_broken("header_overflow"), AIR_ERR_FORMAT, "header length");
    ASSERT_ERR(split_broken("header_len_wrap"), AIR_ERR_FORMAT, "header length");
    ASSERT_ERR(split_broken("bad_rope"), AIR_ERR_UNSUPPORTED, "dynamic");
    ASSERT_ERR(split_broken("f64_dtype"), AIR_ERR_UNSUPPORTED, "F64");
    ASSERT_ERR(split_dir("/nonexistent/model", test_tmp("none"), AIR_COMP_NONE), AIR_ERR_NOT_FOUND,
               "config.json");
}

static time_t mtime(const char *dir, const char *name) {
    char *p = air_path_join(dir, name);
    struct stat sb;
    time_t t = stat(p, &sb) == 0 ? sb.st_mtim.tv_sec * 1000000000L + sb.st_mtim.tv_nsec : 0;
    free(p);
    return t;
}

TEST(reuse_and_resume) {
    char store[1024];
    snprintf(store, sizeof store, "%s", test_tmp("resume"));
    const char *model = test_data("models/llama");
    ASSERT_OK(split_dir(model, store, AIR_COMP_NONE));
    ASSERT_TRUE(air_store_exists(store));
    time_t m0 = mtime(store, "layer_00000.bin"), m1 = mtime(store, "layer_00001.bin");
    /* a second split reuses everything at once */
    ASSERT_OK(split_dir(model, store, AIR_COMP_NONE));
    ASSERT_EQ_INT(mtime(store, "layer_00000.bin"), m0);
    /* an interrupted split: manifest missing, one layer half written */
    char *man = air_path_join(store, "manifest.json");
    char *l1 = air_path_join(store, "layer_00001.bin");
    char *marker = air_path_join(store, "split.json");
    unlink(man);
    ASSERT_TRUE(truncate(l1, 4096) == 0);
    /* the split.json marker of the same content is still there? recreate it
     * as an interrupted run would have left it */
    ASSERT_TRUE(!air_store_exists(store));
    air_store *s = NULL;
    ASSERT_ERR(air_store_open(store, &s), AIR_ERR_NOT_FOUND, "no complete layer store");
    {
        air_source *src;
        ASSERT_OK(air_source_open_hfdir(model, 0, &src));
        air_split_options so = {0};
        char mk[512];
        snprintf(mk, sizeof mk, "{\"version\":1,\"compression\":\"none\",\"source_fingerprint\":\"%s\"}",
                 src->fingerprint);
        ASSERT_OK(air_write_file_atomic(marker, mk, strlen(mk)));
        ASSERT_OK(air_store_split(src, store, &so));
        air_source_close(src);
    }
    ASSERT_TRUE(air_store_exists(store));
    ASSERT_TRUE(!air_path_exists(marker));
    ASSERT_EQ_INT(mtime(store, "layer_00000.bin"), m0); /* kept */
    ASSERT_TRUE(mtime(store, "layer_00001.bin") != m1); /* rebuilt */
    ASSERT_OK(air_store_open(store, &s));
    air_store_close(s);
    free(man);
    free(l1);
    free(marker);
}

TEST(corrupt_layer_is_detected) {
    char store[1024];
    snprintf(store, sizeof store, "%s", test_tmp("corrupt"));
    ASSERT_OK(split_dir(test_data("models/qwen2"), store, AIR_COMP_NONE));
    char *l0 = air_path_join(store, "layer_00000.bin");
    FILE *f = fopen(l0, "r+b");
    ASSERT_TRUE(f != NULL);
    fseek(f, 4096 + 100, SEEK_SET);
    fputc(0x5a, f);
    fclose(f);
    air_engine_options o;
    air_engine_default_options(&o);
    air_engine *e = NULL;
    ASSERT_OK(air_engine_open(store, &o, &e));
    air_kv kv;
    ASSERT_OK(air_kv_init(&kv, air_engine_hparams(e), 16));
    float *lg = malloc(sizeof(float) * 1024);
    int32_t tok = 5;
    ASSERT_ERR(air_engine_eval(e, &kv, &tok, 1, 0, lg), AIR_ERR_FORMAT, "checksum mismatch");
    ASSERT_ERR(air_engine_eval(e, &kv, &tok, 1, 0, lg), AIR_ERR_FORMAT, "layer_00000.bin");
    /* a token outside the vocabulary */
    int32_t bad = 100000;
    ASSERT_ERR(air_engine_eval(e, &kv, &bad, 1, 0, lg), AIR_ERR_INVALID_ARG, "outside the vocabulary");
    free(lg);
    air_kv_free(&kv);
    air_engine_close(e);
    free(l0);
}

TEST(context_limit) {
    char store[1024];
    snprintf(store, sizeof store, "%s", test_tmp("ctx"));
    ASSERT_OK(split_dir(test_data("models/qwen3"), store, AIR_COMP_NONE));
    air_engine_options o;
    air_engine_default_options(&o);
    air_engine *e = NULL;
    ASSERT_OK(air_engine_open(store, &o, &e));
    air_kv kv;
    ASSERT_OK(air_kv_init(&kv, air_engine_hparams(e), 4));
    int32_t toks[6] = {1, 2, 3, 4, 5, 6};
    float *lg = malloc(sizeof(float) * 1024);
    ASSERT_ERR(air_engine_eval(e, &kv, toks, 6, 0, lg), AIR_ERR_LIMIT, "max_seq_len");
    free(lg);
    air_kv_free(&kv);
    air_engine_close(e);
}

/* Every file of store a equals the file of the same name in b, byte for
 * byte (the same source: the same model id); returns the number compared,
 * or -1 at the first difference. */
static int same_store_files(const char *a, const char *b) {
    DIR *d = opendir(a);
    struct dirent *e;
    int n = 0;
    while (d && n >= 0 && (e = readdir(d))) {
        if (e->d_name[0] == '.')
            continue;
        char *pa = air_path_join(a, e->d_name), *pb = air_path_join(b, e->d_name);
        char *da = NULL, *db = NULL;
        size_t na = 0, nb = 0;
        int same = air_read_file(pa, &da, &na) == AIR_OK && air_read_file(pb, &db, &nb) == AIR_OK &&
                   na == nb && memcmp(da, db, na) == 0;
        if (!same)
            fprintf(stderr, "%s differs from %s\n", pa, pb);
        n = same ? n + 1 : -1;
        free(da);
        free(db);
        free(pa);
        free(pb);
    }
    if (d)
        closedir(d);
    return n;
}

/* The split writes the same bytes whatever runs it: the scalar quantizers on
 * one thread reading each tensor into a buffer (no view), or each SIMD ISA on
 * three threads, each reading its own rows of the source file, while the writer
 * threads write the previous unit. */
TEST(split_bytes_do_not_depend_on_isa_threads_or_reading) {
    const char *model = test_data("models/llama");
    static const air_compression comps[] = {AIR_COMP_NONE, AIR_COMP_8BIT, AIR_COMP_4BIT};
    static const air_isa isas[] = {AIR_ISA_AVX2, AIR_ISA_AVX512, AIR_ISA_NEON};
    air_pool *pool = air_pool_create(3);
    for (int c = 0; c < 3; c++) {
        char ref[1024];
        static const char *ref_names[] = {"isa-ref-none", "isa-ref-8", "isa-ref-4"};
        snprintf(ref, sizeof ref, "%s", test_tmp(ref_names[c]));
        air_source *src = NULL;
        ASSERT_OK(air_source_open_hfdir(model, 0, &src));
        int n_units = src->hp.n_layer + 2;
        ASSERT_TRUE(air_kernels_force_isa(AIR_ISA_REF));
        src->locate = NULL; /* every tensor read into a buffer */
        air_split_options so = {0};
        so.compression = comps[c];
        ASSERT_OK(air_store_split(src, ref, &so));
        air_source_close(src);
        for (size_t k = 0; k < sizeof isas / sizeof isas[0]; k++) {
            if (!air_kernels_force_isa(isas[k]))
                continue;
            char name[64], dir[1024];
            snprintf(name, sizeof name, "isa-%s-%d", air_isa_name(isas[k]), c);
            snprintf(dir, sizeof dir, "%s", test_tmp(name)); /* emptied */
            ASSERT_OK(air_source_open_hfdir(model, 0, &src));
            ASSERT_TRUE(src->locate != NULL);
            so.pool = pool;
            ASSERT_OK(air_store_split(src, dir, &so));
            air_source_close(src);
            so.pool = NULL;
            if (same_store_files(ref, dir) < n_units + 1) /* units and manifest at least */
                T_FAIL("%s store split with %s on 3 threads differs from the scalar one",
                       air_compression_name(comps[c]), air_isa_name(isas[k]));
        }
    }
    air_kernels_force_isa(AIR_ISA_REF);
    air_pool_free(pool);
}

/* With room for one unit buffer only, each unit is written before the next
 * is read: the same store. */
TEST(split_within_a_one_buffer_budget) {
    const char *model = test_data("models/llama");
    char ref[1024], small[1024];
    snprintf(ref, sizeof ref, "%s", test_tmp("budget-ref"));
    snprintf(small, sizeof small, "%s", test_tmp("budget-one"));
    air_pool *pool = air_pool_create(2);
    air_split_options so = {0};
    so.compression = AIR_COMP_4BIT;
    so.pool = pool;
    air_source *src = NULL;
    ASSERT_OK(air_source_open_hfdir(model, 0, &src));
    int n_units = src->hp.n_layer + 2;
    ASSERT_OK(air_store_split(src, ref, &so));
    air_source_close(src);
    so.buffer_budget = 1;
    ASSERT_OK(air_source_open_hfdir(model, 0, &src));
    ASSERT_OK(air_store_split(src, small, &so));
    air_source_close(src);
    air_pool_free(pool);
    ASSERT_TRUE(same_store_files(ref, small) >= n_units + 1);
}

/* A shard cut short after the source was opened (the split reads it then):
 * an error naming the file and the byte, not a signal, and no unit file or
 * temp file of the unit it was reading. */
TEST(source_truncated_during_the_split) {
    char model[1024], store[1024];
    snprintf(model, sizeof model, "%s", test_tmp("trunc-model"));
    char cmd[4096];
    snprintf(cmd, sizeof cmd, "cp -r '%s'/. '%s'/", test_data("models/llama"), model);
    ASSERT_TRUE(system(cmd) == 0);
    snprintf(store, sizeof store, "%s", test_tmp("trunc-store"));
    air_source *src = NULL;
    ASSERT_OK(air_source_open_hfdir(model, 0, &src));
    DIR *d = opendir(model);
    struct dirent *e;
    int cut = 0;
    while (d && (e = readdir(d))) {
        size_t n = strlen(e->d_name);
        if (n > 12 && strcmp(e->d_name + n - 12, ".safetensors") == 0) {
            char *p = air_path_join(model, e->d_name);
            struct stat sb;
            if (stat(p, &sb) == 0 && truncate(p, sb.st_size / 2) == 0)
                cut++;
            free(p);
        }
    }
    if (d)
        closedir(d);
    ASSERT_TRUE(cut > 0);
    air_split_options so = {0};
    so.compression = AIR_COMP_8BIT;
    air_pool *pool = air_pool_create(2);
    so.pool = pool;
    air_status st = air_store_split(src, store, &so);
    air_source_close(src);
    air_pool_free(pool);
    fprintf(stderr, "  %s\n", air_last_error());
    ASSERT_TRUE(st == AIR_ERR_FORMAT || st == AIR_ERR_IO);
    ASSERT_TRUE(strstr(air_last_error(), "safetensors") != NULL);
    ASSERT_TRUE(strstr(air_last_error(), "at byte") != NULL);
    ASSERT_TRUE(!air_store_exists(store));
    d = opendir(store);
    while (d && (e = readdir(d)))
        if (strstr(e->d_name, ".tmp"))
            T_FAIL("%s left behind in %s", e->d_name, store);
    if (d)
        closedir(d);
}

TEST(single_file_equals_sharded) {
    char a[1024], b[1024];
    snprintf(a, sizeof a, "%s", test_tmp("sharded"));
    snprintf(b, sizeof b, "%s", test_tmp("single"));
    ASSERT_OK(split_dir(test_data("models/llama"), a, AIR_COMP_NONE));
    ASSERT_OK(split_dir(test_data("models/llama_single"), b, AIR_COMP_NONE));
    const char *files[] = {"embed.bin", "layer_00000.bin", "layer_00002.bin", "head.bin"};
    for (int i = 0; i < 4; i++) {
        char *pa = air_path_join(a, files[i]), *pb = air_path_join(b, files[i]);
        char *da, *db;
        size_t na, nb;
        ASSERT_OK(air_read_file(pa, &da, &na));
        ASSERT_OK(air_read_file(pb, &db, &nb));
        ASSERT_EQ_INT(na, nb);
        /* the same tensor table and data; the headers differ in the model
         * id (the sources are different files) */
        ASSERT_TRUE(memcmp(da + 64, db + 64, na - 64) == 0);
        free(da);
        free(db);
        free(pa);
        free(pb);
    }
}

TEST(delete_original) {
    /* work on a copy: the shards get deleted */
    char src[1024], store[1024], cmd[4096];
    snprintf(src, sizeof src, "%s", test_tmp("delorig-src"));
    snprintf(store, sizeof store, "%s", test_tmp("delorig-store"));
    snprintf(cmd, sizeof cmd, "cp -r '%s'/. '%s'/", test_data("models/mistral"), src);
    ASSERT_TRUE(system(cmd) == 0);
    air_source *s;
    ASSERT_OK(air_source_open_hfdir(src, 1, &s));
    air_split_options so = {0};
    ASSERT_OK(air_store_split(s, store, &so));
    air_source_close(s);
    char *sh = air_path_join(src, "model-00001-of-00002.safetensors");
    char *cfg = air_path_join(src, "config.json");
    ASSERT_TRUE(!air_path_exists(sh));
    ASSERT_TRUE(air_path_exists(cfg));
    ASSERT_TRUE(air_store_exists(store));
    free(sh);
    free(cfg);
}

/* One pipeline rank's part: only its units are written, under their own
 * manifest; the part opens alone, its other units absent; a range nobody
 * split is a clear error; the whole store's manifest serves any range. */
TEST(parts_of_a_store) {
    const char *dir = test_tmp("parts");
    air_source *src = NULL;
    ASSERT_OK(air_source_open_hfdir(test_data("models/llama"), 0, &src));
    const int nl = src->hp.n_layer; /* 3 */
    air_split_options so = {0};
    so.part = 1;
    so.first_unit = 1;
    so.last_unit = nl;
    ASSERT_OK(air_store_split(src, dir, &so));
    char *embed = air_path_join(dir, "embed.bin"), *l0 = air_path_join(dir, "layer_00000.bin"),
         *pm = air_path_join(dir, "manifest-units-1-3.json");
    ASSERT_TRUE(!air_path_exists(embed) && !air_path_exists(l0) && air_path_exists(pm));
    ASSERT_TRUE(!air_store_exists(dir)); /* no whole manifest */
    int current = 0;
    ASSERT_OK(air_store_check_part(dir, src->fingerprint, 1, nl, nl, &current));
    ASSERT_TRUE(current);
    ASSERT_OK(air_store_check_part(dir, src->fingerprint, -1, 0, nl, &current));
    ASSERT_TRUE(!current);

    air_store *s = NULL;
    ASSERT_OK(air_store_open_part(dir, 1, nl, &s));
    ASSERT_TRUE(!air_store_has_unit(s, -1) && !air_store_has_unit(s, 0));
    ASSERT_TRUE(air_store_has_unit(s, 1) && air_store_has_unit(s, nl));
    ASSERT_EQ_INT(air_store_unit_bytes(s, 0), 0);
    int32_t id = 5;
    float row[256];
    ASSERT_ERR(air_store_embed_rows(s, &id, 1, row), AIR_ERR_INTERNAL, "no embeddings");
    air_store_close(s);
    ASSERT_ERR(air_store_open_part(dir, -1, 0, &s), AIR_ERR_NOT_FOUND, "manifest-units--1-0.json");

    /* an engine of the part runs layers 1..2 and has the head, not the embeddings */
    air_engine_options eo;
    air_engine_default_options(&eo);
    eo.part = 1;
    eo.first_unit = 1;
    eo.last_unit = nl;
    air_engine *e = NULL;
    ASSERT_OK(air_engine_open(dir, &eo, &e));
    int lo, hi, he, hh;
    air_engine_layer_range(e, &lo, &hi, &he, &hh);
    ASSERT_TRUE(lo == 1 && hi == nl && !he && hh);
    air_engine_close(e);

    /* the estimate the pipeline plans with is close to the files written */
    air_store_check_part(dir, src->fingerprint, 1, nl, nl, &current);
    for (int u = 1; u <= nl; u++) {
        char name[32];
        snprintf(name, sizeof name, u == nl ? "head.bin" : "layer_%05d.bin", u);
        char *p = air_path_join(dir, name);
        struct stat sb;
        ASSERT_TRUE(stat(p, &sb) == 0);
        uint64_t est = air_store_unit_estimate(&src->hp, AIR_COMP_NONE, u);
        ASSERT_TRUE(est >= (uint64_t)sb.st_size / 2 && est <= (uint64_t)sb.st_size * 2);
        free(p);
    }

    /* the whole store, split next to the part, serves any range */
    air_split_options whole = {0};
    ASSERT_OK(air_store_split(src, dir, &whole));
    ASSERT_OK(air_store_open_part(dir, -1, 0, &s));
    ASSERT_TRUE(air_store_has_unit(s, -1) && air_store_has_unit(s, 0) && !air_store_has_unit(s, 1));
    air_store_close(s);
    air_source_close(src);
    free(embed);
    free(l0);
    free(pm);
}

int main(void) {
    RUN(broken_models_give_clear_errors);
    RUN(reuse_and_resume);
    RUN(corrupt_layer_is_detected);
    RUN(context_limit);
    RUN(single_file_equals_sharded);
    RUN(split_bytes_do_not_depend_on_isa_threads_or_reading);
    RUN(split_within_a_one_buffer_budget);
    RUN(source_truncated_during_the_split);
    RUN(delete_original);
    RUN(parts_of_a_store);
    return test_summary();
}
