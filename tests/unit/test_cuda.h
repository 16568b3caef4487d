/*
 * test_cuda.h - the start of the tests that need a GPU: point the loader at
 * this build's plugin (unless AIRLLM_CUDA_PLUGIN says otherwise) and probe;
 * without a usable GPU the test exits 77, which CTest reports as skipped,
 * after printing why.
 */
#ifndef AIR_TEST_CUDA_H
#define AIR_TEST_CUDA_H

#include <stdio.h>
#include <stdlib.h>

#include "cuda/cuda_load.h"

static const air_cuda_api *cuda_test_start(air_cu_info *info, const char *what) {
    char plugin[4096];
    const char *bin = getenv("AIR_BINARY_DIR");
    snprintf(plugin, sizeof plugin, "%s/" AIR_CUDA_PLUGIN_NAME, bin ? bin : "build");
    if (!getenv("AIRLLM_CUDA_PLUGIN"))
        setenv("AIRLLM_CUDA_PLUGIN", plugin, 1);
    const air_cuda_api *api;
    if (air_cuda_probe(&api, info)) {
        printf("SKIP: no GPU to %s: %s\n", what, air_last_error());
        exit(77);
    }
    fprintf(stderr, "GPU: %s (compute %d.%d, %llu MiB)\n", info->name, info->major, info->minor,
            (unsigned long long)(info->total_mem >> 20));
    return api;
}

#endif
