/*
 * cuda_load.h - finding and loading the CUDA plugin, and probing its GPU.
 *
 * The plugin is looked for, in order: the file named by $AIRLLM_CUDA_PLUGIN;
 * libairllm_cuda.so next to the binary holding libairllm (the shared library
 * or the executable it is linked into); in the install's library folder; on
 * the dynamic linker's search path. It is loaded once per process and never
 * unloaded.
 */
#ifndef AIR_CUDA_CUDA_LOAD_H
#define AIR_CUDA_CUDA_LOAD_H

#include "airllm.h"
#include "cuda/cuda_abi.h"

#define AIR_CUDA_PLUGIN_NAME "libairllm_cuda.so"

/* The plugin's table, or AIR_ERR_UNSUPPORTED with a message saying where it
 * was looked for, why each candidate failed and what to do. */
air_status air_cuda_load(const air_cuda_api **out);

/* Loads the plugin and probes for a usable GPU: AIR_OK with *info, or
 * AIR_ERR_UNSUPPORTED saying what is missing (plugin, driver, GPU) and what
 * to do. */
air_status air_cuda_probe(const air_cuda_api **api, air_cu_info *info);

#endif
