/*
 * fuzz_chat_files.c - fuzz entry point for choosing a folder's chat template
 * (text/chat_files.c): the first byte says which file the rest of the input
 * becomes (tokenizer_config.json, chat_template.json, chat_template.jinja or
 * additional_chat_templates/x.jinja); any content must give a template, none,
 * or a clean error, never a crash.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "text/chat_files.h"
#include "util/error.h"
#include "util/fileio.h"

static const char *const k_files[] = {"tokenizer_config.json", "chat_template.json",
                                      "chat_template.jinja",
                                      "additional_chat_templates/x.jinja"};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    static char dir[64];
    if (!dir[0]) {
        snprintf(dir, sizeof dir, "/tmp/air-fuzz-chat-files-%d", (int)getpid());
        char sub[128];
        snprintf(sub, sizeof sub, "%s/additional_chat_templates", dir);
        if (air_mkdirs(sub) != AIR_OK)
            return 0;
    }
    if (size == 0)
        return 0;
    for (int i = 0; i < 4; i++) { /* one file per input */
        char p[160];
        snprintf(p, sizeof p, "%s/%s", dir, k_files[i]);
        unlink(p);
    }
    char path[160];
    snprintf(path, sizeof path, "%s/%s", dir, k_files[data[0] & 3]);
    if (air_write_file_atomic(path, data + 1, size - 1) != AIR_OK)
        return 0;
    for (int tools = 0; tools < 2; tools++) {
        char *t = NULL;
        const char *origin = NULL;
        if (air_chat_template_find(dir, tools, &t, &origin) == AIR_OK && t && !origin)
            abort(); /* a template always says where it came from */
        free(t);
    }
    air_err_clear();
    return 0;
}
