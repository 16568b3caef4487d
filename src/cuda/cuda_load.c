/*
 * cuda_load.c - dlopen of the CUDA plugin and the GPU probe, with the
 * errors a user sees for `--device cuda` on a machine that cannot run it.
 */
#include "cuda/cuda_load.h"

#include <dlfcn.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/error.h"

#ifndef AIR_CUDA_PLUGIN_INSTALL_DIR
#define AIR_CUDA_PLUGIN_INSTALL_DIR ""
#endif

static pthread_mutex_t load_mu = PTHREAD_MUTEX_INITIALIZER;
static const air_cuda_api *loaded; /* process-wide, like the model cache */

/* Tries one path; appends why it failed to why[]. */
static const air_cuda_api *try_path(const char *path, char *why, size_t cap) {
    size_t used = strlen(why);
    void *h = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    if (!h) {
        const char *e = dlerror();
        snprintf(why + used, cap - used, "\n  %s: %s", path, e ? e : "cannot be loaded");
        return NULL;
    }
    air_cuda_plugin_fn fn;
    *(void **)&fn = dlsym(h, AIR_CUDA_PLUGIN_SYMBOL);
    if (!fn) {
        snprintf(why + used, cap - used, "\n  %s: not an airllm CUDA plugin (no symbol %s)", path,
                 AIR_CUDA_PLUGIN_SYMBOL);
        dlclose(h);
        return NULL;
    }
    const air_cuda_api *api = fn();
    if (!api || api->abi != AIR_CUDA_ABI_VERSION) {
        snprintf(why + used, cap - used,
                 "\n  %s: plugin interface version %d, this library "
                 "needs %d (the plugin is from another build: rebuild both together)",
                 path, api ? api->abi : -1, AIR_CUDA_ABI_VERSION);
        dlclose(h);
        return NULL;
    }
    return api;
}

air_status air_cuda_load(const air_cuda_api **out) {
    *out = NULL;
    pthread_mutex_lock(&load_mu);
    if (loaded) {
        *out = loaded;
        pthread_mutex_unlock(&load_mu);
        return AIR_OK;
    }
    char why[2048] = "";
    const air_cuda_api *api = NULL;
    const char *env = getenv("AIRLLM_CUDA_PLUGIN");
    if (env && *env) {
        /* an explicit path is the only candidate */
        api = try_path(env, why, sizeof why);
    } else {
        char path[PATH_MAX];
        Dl_info di;
        if (dladdr((void *)air_cuda_load, &di) && di.dli_fname) {
            const char *slash = strrchr(di.dli_fname, '/');
            if (slash &&
                (size_t)(slash - di.dli_fname) + sizeof AIR_CUDA_PLUGIN_NAME + 1 < sizeof path) {
                snprintf(path, sizeof path, "%.*s/%s", (int)(slash - di.dli_fname), di.dli_fname,
                         AIR_CUDA_PLUGIN_NAME);
                api = try_path(path, why, sizeof why);
            }
        }
        if (!api && AIR_CUDA_PLUGIN_INSTALL_DIR[0]) {
            snprintf(path, sizeof path, "%s/%s", AIR_CUDA_PLUGIN_INSTALL_DIR, AIR_CUDA_PLUGIN_NAME);
            api = try_path(path, why, sizeof why);
        }
        if (!api)
            api = try_path(AIR_CUDA_PLUGIN_NAME, why, sizeof why);
    }
    loaded = api;
    pthread_mutex_unlock(&load_mu);
    if (!api)
        return air_err(AIR_ERR_UNSUPPORTED,
                       "device cuda: the CUDA plugin %s could not be loaded:%s\nThis build may "
                       "lack CUDA support: build with nvcc installed (cmake -DAIR_CUDA=ON), or "
                       "set AIRLLM_CUDA_PLUGIN to the plugin's path; or run on the CPU "
                       "(--device cpu)",
                       AIR_CUDA_PLUGIN_NAME, why);
    *out = api;
    return AIR_OK;
}

air_status air_cuda_probe(const air_cuda_api **api, air_cu_info *info) {
    air_status st = air_cuda_load(api);
    if (st)
        return st;
    char msg[512];
    int rc = (*api)->probe(info, msg, sizeof msg);
    switch (rc) {
    case AIR_CU_OK:
        return AIR_OK;
    case AIR_CU_NO_DRIVER:
        return air_err(AIR_ERR_UNSUPPORTED,
                       "device cuda: %s; install the NVIDIA driver on a "
                       "machine with an NVIDIA GPU, or run on the CPU (--device cpu)",
                       msg);
    case AIR_CU_OLD_DRIVER:
        return air_err(AIR_ERR_UNSUPPORTED,
                       "device cuda: %s; update the NVIDIA driver, or "
                       "build the plugin with the CUDA toolkit the driver supports, or run on "
                       "the CPU (--device cpu)",
                       msg);
    case AIR_CU_NO_DEVICE:
        return air_err(AIR_ERR_UNSUPPORTED,
                       "device cuda: %s; check nvidia-smi and "
                       "CUDA_VISIBLE_DEVICES, or run on the CPU (--device cpu)",
                       msg);
    default:
        return air_err(AIR_ERR_UNSUPPORTED, "device cuda: %s; run on the CPU (--device cpu)", msg);
    }
}
