/*
 * arch.c - architecture names.
 */
#include "model/arch.h"

const char *air_arch_name(air_arch a) {
    switch (a) {
    case AIR_ARCH_LLAMA: return "llama";
    case AIR_ARCH_MISTRAL: return "mistral";
    case AIR_ARCH_QWEN2: return "qwen2";
    case AIR_ARCH_QWEN3: return "qwen3";
    case AIR_ARCH_GEMMA2: return "gemma2";
    case AIR_ARCH_GEMMA3: return "gemma3";
    default: return "unknown";
    }
}
