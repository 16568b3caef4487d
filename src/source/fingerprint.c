/*
 * fingerprint.c - what a layer store depends on in its source, as one string
 * that changes whenever any of it changes.
 *
 * One entry per file, "kind:name:size:what;", sorted by name within a kind:
 *   c  config.json, model.safetensors.index.json content hash
 *   t  generation_config.json, the tokenizer and chat template files
 *      (additional_chat_templates/NAME.jinja too) content hash
 *   w  every *.safetensors file, a .gguf file   size and modification time (ns),
 *                                               or the blob a hub-cache link names
 * A file that is absent has no entry, so adding one changes the string too.
 * Weights are fingerprinted by size and time: hashing gigabytes at every open
 * would cost more than the open itself.
 */
#include <dirent.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <xxhash.h>

#include "source/source.h"
#include "util/fileio.h"
#include "util/strbuf.h"

/* Files besides the weights and config.json that the store or the runtime
 * reads from a model folder. */
static const char *const k_text_files[] = {
    "generation_config.json", "tokenizer.json",     "tokenizer_config.json",
    "special_tokens_map.json", "chat_template.jinja", "chat_template.json",
};

static void add_hashed(air_strbuf *fp, char kind, const char *dir, const char *name) {
    char *p = air_path_join(dir, name);
    char *data = NULL;
    size_t len = 0;
    if (air_read_file(p, &data, &len) == AIR_OK)
        air_sb_printf(fp, "%c:%s:%zu:%016llx;", kind, name, len,
                      (unsigned long long)XXH3_64bits(data, len));
    free(data);
    free(p);
}

/* A weights file: its size and modification time, or for a link into a hub
 * cache (snapshots/{sha}/{name} -> ../../blobs/{etag}) the blob it names:
 * its name is the content's hash, and a download again gives it a new
 * time but not a new name. */
static void add_stat(air_strbuf *fp, const char *path, const char *name) {
    struct stat sb;
    if (stat(path, &sb) != 0)
        return;
    char target[4096];
    ssize_t n = readlink(path, target, sizeof target - 1);
    if (n > 0) {
        target[n] = 0;
        const char *blob = strrchr(target, '/');
        air_sb_printf(fp, "w:%s:%lld:blob-%s;", name, (long long)sb.st_size,
                      blob ? blob + 1 : target);
    } else {
        air_sb_printf(fp, "w:%s:%lld:%lld;", name, (long long)sb.st_size,
                      (long long)sb.st_mtim.tv_sec * 1000000000LL + sb.st_mtim.tv_nsec);
    }
}

static int ends_with(const char *s, const char *suffix) {
    size_t n = strlen(s), k = strlen(suffix);
    return n > k && strcmp(s + n - k, suffix) == 0;
}

/* Adds every file of dir/sub (sub "" for dir itself) whose name ends with
 * suffix, in name order, named relative to dir. */
static void each_sorted(air_strbuf *fp, const char *dir, const char *sub, const char *suffix,
                        char kind) {
    char *folder = *sub ? air_path_join(dir, sub) : strdup(dir);
    struct dirent **list = NULL;
    int n = folder ? scandir(folder, &list, NULL, alphasort) : -1;
    for (int i = 0; i < n; i++) {
        const char *name = list[i]->d_name;
        if (name[0] != '.' && ends_with(name, suffix)) {
            char *rel = *sub ? air_path_join(sub, name) : strdup(name);
            if (kind == 'w') {
                char *p = air_path_join(dir, rel);
                add_stat(fp, p, rel);
                free(p);
            } else {
                add_hashed(fp, kind, dir, rel);
            }
            free(rel);
        }
        free(list[i]);
    }
    free(list);
    free(folder);
}

char *air_source_fingerprint(const char *path, int is_gguf, int with_weights) {
    air_strbuf fp = {0};
    if (is_gguf) {
        const char *base = strrchr(path, '/');
        add_stat(&fp, path, base && base[1] ? base + 1 : path);
    } else {
        add_hashed(&fp, 'c', path, "config.json");
        /* the index stays when delete_original removed the shards */
        add_hashed(&fp, 'c', path, "model.safetensors.index.json");
        for (size_t i = 0; i < sizeof k_text_files / sizeof k_text_files[0]; i++)
            add_hashed(&fp, 't', path, k_text_files[i]);
        each_sorted(&fp, path, "additional_chat_templates", ".jinja", 't');
        if (with_weights)
            each_sorted(&fp, path, "", ".safetensors", 'w');
    }
    char *r = air_sb_take(&fp);
    return r ? r : strdup("");
}
