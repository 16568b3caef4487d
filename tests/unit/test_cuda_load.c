/*
 * test_cuda_load.c - choosing the device: loading the CUDA plugin, the
 * errors of --device cuda where it cannot run (no plugin, not a plugin, no
 * driver or GPU, an architecture the GPU path lacks), and --device auto
 * falling back to the CPU with the same logits. Runs on any machine; on a
 * machine with a GPU the probe succeeds and the GPU-side checks run instead.
 */
#include <unistd.h>

#include "cuda/cuda_load.h"
#include "model/forward.h"
#include "store/store.h"
#include "test.h"
#pragma GCC diagnostic ignored "-Wunused-function" /* test_golden.h helpers */
#include "test_golden.h"

static char plugin[4096];

static int have_plugin(void) {
    return access(plugin, R_OK) == 0;
}

static air_status open_dev(const char *store, air_device dev, air_engine **e) {
    air_engine_options o;
    air_engine_default_options(&o);
    o.n_threads = 2;
    o.device = dev;
    *e = NULL;
    return air_engine_open(store, &o, e);
}

/* These run before any successful load: a loaded plugin stays loaded. */
TEST(missing_plugin_is_a_clear_error) {
    setenv("AIRLLM_CUDA_PLUGIN", "/nonexistent/libairllm_cuda.so", 1);
    const air_cuda_api *api;
    ASSERT_ERR(air_cuda_load(&api), AIR_ERR_UNSUPPORTED, "/nonexistent/libairllm_cuda.so");
    ASSERT_TRUE(strstr(air_last_error(), "could not be loaded") != NULL);
    ASSERT_TRUE(strstr(air_last_error(), "--device cpu") != NULL);
    ASSERT_TRUE(strstr(air_last_error(), "AIR_CUDA=ON") != NULL);
    /* through an engine: device cuda fails, auto runs on the CPU */
    const char *store = split_model("llama", "none");
    ASSERT_TRUE(store != NULL);
    air_engine *e;
    ASSERT_ERR(open_dev(store, AIR_DEVICE_CUDA, &e), AIR_ERR_UNSUPPORTED, "CUDA plugin");
    ASSERT_TRUE(e == NULL);
    ASSERT_OK(open_dev(store, AIR_DEVICE_AUTO, &e));
    air_engine_gpu_stats gs;
    air_engine_gpu_get_stats(e, &gs);
    ASSERT_EQ_INT(gs.on_gpu, 0);
    ASSERT_TRUE(strstr(gs.cpu_reason, "CUDA plugin") != NULL);
    air_engine_close(e);
}

TEST(a_library_that_is_not_the_plugin) {
    char path[4096];
    const char *bin = getenv("AIR_BINARY_DIR");
    snprintf(path, sizeof path, "%s/libairllm.so", bin ? bin : "build");
    if (access(path, R_OK) != 0) {
        fprintf(stderr, "  (skipped: %s not built)\n", path);
        return;
    }
    setenv("AIRLLM_CUDA_PLUGIN", path, 1);
    const air_cuda_api *api;
    ASSERT_ERR(air_cuda_load(&api), AIR_ERR_UNSUPPORTED, "not an airllm CUDA plugin");
}

TEST(unsupported_architecture_says_so) {
    /* decided before the plugin is looked for */
    const char *store = split_model("gemma2", "none");
    ASSERT_TRUE(store != NULL);
    air_engine *e;
    ASSERT_ERR(open_dev(store, AIR_DEVICE_CUDA, &e), AIR_ERR_UNSUPPORTED, "cannot run on the GPU");
    ASSERT_TRUE(strstr(air_last_error(), "gemma2") != NULL);
    ASSERT_TRUE(strstr(air_last_error(), "--device cpu") != NULL);
    ASSERT_OK(open_dev(store, AIR_DEVICE_AUTO, &e));
    air_engine_gpu_stats gs;
    air_engine_gpu_get_stats(e, &gs);
    ASSERT_EQ_INT(gs.on_gpu, 0);
    ASSERT_TRUE(strstr(gs.cpu_reason, "gemma2") != NULL);
    air_engine_close(e);
}

TEST(real_plugin_probe) {
    if (!have_plugin()) {
        fprintf(stderr, "  (skipped: no CUDA plugin in this build: %s)\n", plugin);
        return;
    }
    setenv("AIRLLM_CUDA_PLUGIN", plugin, 1);
    const air_cuda_api *api;
    ASSERT_OK(air_cuda_load(&api));
    ASSERT_EQ_INT(api->abi, AIR_CUDA_ABI_VERSION);
    air_cu_info info;
    air_status st = air_cuda_probe(&api, &info);
    char m[1024];
    snprintf(m, sizeof m, "%s", air_last_error());
    const char *store = split_model("llama", "none");
    ASSERT_TRUE(store != NULL);
    air_engine *e;
    if (st) {
        /* this machine has no usable GPU: the message says which part is missing */
        fprintf(stderr, "  probe: %s\n", m);
        ASSERT_EQ_INT(st, AIR_ERR_UNSUPPORTED);
        ASSERT_TRUE(strstr(m, "driver") || strstr(m, "no GPU"));
        ASSERT_TRUE(strstr(m, "--device cpu") != NULL);
        ASSERT_ERR(open_dev(store, AIR_DEVICE_CUDA, &e), AIR_ERR_UNSUPPORTED, "device cuda");
    } else {
        fprintf(stderr, "  probe: %s, compute %d.%d, %llu MiB\n", info.name, info.major, info.minor,
                (unsigned long long)(info.total_mem >> 20));
        ASSERT_OK(open_dev(store, AIR_DEVICE_CUDA, &e));
        air_engine_gpu_stats gs;
        air_engine_gpu_get_stats(e, &gs);
        ASSERT_EQ_INT(gs.on_gpu, 1);
        air_engine_close(e);
    }
}

/* device auto gives exactly the CPU's logits when it settles on the CPU */
TEST(auto_on_the_cpu_matches_cpu) {
    const char *store = split_model("qwen2", "8bit");
    ASSERT_TRUE(store != NULL);
    air_engine *ec, *ea;
    ASSERT_OK(open_dev(store, AIR_DEVICE_CPU, &ec));
    ASSERT_OK(open_dev(store, AIR_DEVICE_AUTO, &ea));
    air_engine_gpu_stats gs;
    air_engine_gpu_get_stats(ea, &gs);
    if (gs.on_gpu) {
        fprintf(stderr, "  (skipped: auto chose the GPU here; the GPU tests compare it)\n");
        air_engine_close(ec);
        air_engine_close(ea);
        return;
    }
    const air_hparams *hp = air_engine_hparams(ec);
    int32_t ids[5] = {1, 7, 42, 99, 3};
    float *a = malloc(sizeof(float) * hp->n_vocab), *b = malloc(sizeof(float) * hp->n_vocab);
    air_kv ka, kb;
    ASSERT_OK(air_kv_init(&ka, hp, 32));
    ASSERT_OK(air_kv_init(&kb, hp, 32));
    ASSERT_OK(air_engine_eval(ec, &ka, ids, 5, 0, a));
    ASSERT_OK(air_engine_eval(ea, &kb, ids, 5, 0, b));
    ASSERT_TRUE(memcmp(a, b, sizeof(float) * hp->n_vocab) == 0);
    air_kv_free(&ka);
    air_kv_free(&kb);
    free(a);
    free(b);
    air_engine_close(ec);
    air_engine_close(ea);
}

TEST(device_names) {
    air_device d;
    ASSERT_TRUE(air_device_parse(NULL, &d) && d == AIR_DEVICE_AUTO);
    ASSERT_TRUE(air_device_parse("auto", &d) && d == AIR_DEVICE_AUTO);
    ASSERT_TRUE(air_device_parse("cpu", &d) && d == AIR_DEVICE_CPU);
    ASSERT_TRUE(air_device_parse("cuda", &d) && d == AIR_DEVICE_CUDA);
    ASSERT_TRUE(!air_device_parse("gpu", &d));
    ASSERT_TRUE(!air_device_parse("CUDA", &d));
}

int main(void) {
    const char *bin = getenv("AIR_BINARY_DIR");
    snprintf(plugin, sizeof plugin, "%s/" AIR_CUDA_PLUGIN_NAME, bin ? bin : "build");
    RUN(device_names);
    RUN(missing_plugin_is_a_clear_error);
    RUN(a_library_that_is_not_the_plugin);
    RUN(unsupported_architecture_says_so);
    RUN(real_plugin_probe);
    RUN(auto_on_the_cpu_matches_cpu);
    return test_summary();
}
