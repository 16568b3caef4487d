/*
 * cli_store.c - `airllm pull`, `airllm list`, `airllm rm`: the layer stores
 * under the cache folder (<cache>/<model-key>/<compression>/manifest.json).
 */
#include <cjson/cJSON.h>
#include <dirent.h>
#include <fcntl.h>
#include <time.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "api_internal.h"
#include "cli.h"
#include "store/layerfile.h"
#include "util/fileio.h"

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* A probe file without a name, so that nothing is left behind however the
 * process ends: O_TMPFILE, or else a file unlinked right after it is
 * created. O_DIRECT when the file system takes it. */
static int open_probe(const char *dir) {
    int fd = -1;
#ifdef O_TMPFILE
    fd = open(dir, O_TMPFILE | O_WRONLY | O_CLOEXEC, 0600);
#endif
    if (fd < 0) {
        char *path = air_path_join(dir, ".write-probe.XXXXXX");
        fd = mkstemp(path);
        if (fd >= 0)
            unlink(path);
        free(path);
    }
    if (fd >= 0)
        (void)fcntl(fd, F_SETFL, O_DIRECT);
    return fd;
}

/* Sequential write bandwidth of the file system holding dir: 256 MiB with
 * O_DIRECT, fsynced, in a file without a name. 0 when it cannot be
 * measured. */
static double disk_write_gbs(const char *dir) {
    /* a probe of an earlier version had a name and could be left behind */
    char *old = air_path_join(dir, ".write-probe");
    unlink(old);
    free(old);
    int fd = open_probe(dir);
    double r = 0;
    size_t chunk = 8u << 20, total = 256u << 20, done = 0;
    /* the split's own kind of buffer (aligned, in huge pages where the
     * kernel allows): the probe measures what the disk gives that writer */
    void *buf = fd >= 0 ? air_lf_alloc(chunk) : NULL;
    if (buf) {
        memset(buf, 0x5a, chunk);
        double t0 = now_s();
        while (done < total && write(fd, buf, chunk) == (ssize_t)chunk)
            done += chunk;
        fsync(fd);
        double dt = now_s() - t0;
        if (done == total && dt > 0)
            r = (double)total / dt / 1e9;
    }
    free(buf);
    if (fd >= 0)
        close(fd);
    return r;
}

int cli_pull(int argc, char **argv) {
    cli_model_opts mo;
    cli_model_opts_init(&mo);
    static struct option opts[] = {{"help", no_argument, 0, 'h'}, CLI_MODEL_OPTIONS, {0, 0, 0, 0}};
    int c;
    while ((c = getopt_long(argc, argv, "c:t:qh", opts, NULL)) != -1) {
        if (cli_model_opt(&mo, c, optarg))
            continue;
        if (c == 'h') {
            printf("Usage: airllm pull MODEL [options]\n\nDownloads MODEL (a hub id) if needed "
                   "and splits it into its layer store,\nwith progress. A local folder or .gguf "
                   "file is split only.\n\n" CLI_MODEL_HELP "\nExample:\n  airllm pull "
                   "Qwen/Qwen2.5-7B-Instruct --compression 4bit\n");
            return 0;
        }
        return 2;
    }
    if (optind >= argc) {
        fprintf(stderr, "airllm pull: name a model (see airllm pull --help)\n");
        return 2;
    }
    air_model *m = cli_open(argv[optind], &mo);
    if (!m)
        return mo.rc;
    air_model_info info;
    air_model_get_info(m, &info);
    char sz[32];
    uint64_t disk_bytes = air_store_disk_bytes(info.store_dir); /* as `airllm list` says */
    printf("%s: %s, %d layers, %s, %s in %s\n", info.name, info.arch, info.n_layer,
           info.compression, air_format_bytes(disk_bytes, sz, sizeof sz), info.store_dir);
    if (info.split_seconds > 0) {
        /* split now: compare its write rate with the disk's */
        double dt = info.split_seconds, disk = disk_write_gbs(info.store_dir);
        printf("split: %.2f s, %.3f GB/s of store written; ", dt, (double)disk_bytes / dt / 1e9);
        if (disk > 0)
            printf("disk sequential write %.2f GB/s (O_DIRECT, 256 MiB)\n", disk);
        else
            printf("disk write bandwidth not measured (no room for a 256 MiB probe file)\n");
    }
    air_model_close(m);
    return 0;
}

/* Calls fn for each store: (key folder, compression folder, manifest; NULL
 * when the manifest is there but does not parse: a damaged store). */
typedef void (*store_fn)(void *user, const char *key_dir, const char *store_dir, const cJSON *man);

static int each_store(const char *cache, store_fn fn, void *user) {
    DIR *d = opendir(cache);
    if (!d)
        return 0;
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.')
            continue;
        char *kd = air_path_join(cache, e->d_name);
        DIR *d2 = opendir(kd);
        struct dirent *e2;
        while (d2 && (e2 = readdir(d2))) {
            if (e2->d_name[0] == '.')
                continue;
            char *sd = air_path_join(kd, e2->d_name);
            char *mp = air_path_join(sd, "manifest.json");
            char *text;
            size_t len;
            if (air_read_file(mp, &text, &len) == AIR_OK) {
                cJSON *man = cJSON_ParseWithLength(text, len);
                fn(user, kd, sd, man);
                n++;
                cJSON_Delete(man);
                free(text);
            }
            free(mp);
            free(sd);
        }
        if (d2)
            closedir(d2);
        free(kd);
    }
    closedir(d);
    return n;
}

static void print_store(void *user, const char *kd, const char *sd, const cJSON *man) {
    (void)user;
    (void)kd;
    const cJSON *model = cJSON_GetObjectItem(man, "model"), *comp = cJSON_GetObjectItem(man, "compression");
    const cJSON *hp = cJSON_GetObjectItem(man, "hparams");
    char sz[32];
    printf("%-48s %-6s %-7s %4d %10s  %s\n",
           cJSON_IsString(model) ? model->valuestring : man ? "?" : "(damaged manifest)",
           cJSON_IsString(comp) ? comp->valuestring : "?",
           cJSON_IsString(cJSON_GetObjectItem(hp, "arch")) ? cJSON_GetObjectItem(hp, "arch")->valuestring : "?",
           cJSON_GetObjectItem(hp, "n_layer") ? cJSON_GetObjectItem(hp, "n_layer")->valueint : 0,
           air_format_bytes(air_store_disk_bytes(sd), sz, sizeof sz), sd);
}

static char *cache_from_args(int argc, char **argv, const char *help, int *first_pos) {
    const char *cache = NULL;
    static struct option opts[] = {{"cache-dir", required_argument, 0, 1001},
                                   {"help", no_argument, 0, 'h'},
                                   {0, 0, 0, 0}};
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        if (c == 1001)
            cache = optarg;
        else if (c == 'h') {
            fputs(help, stdout);
            exit(0);
        } else
            exit(2);
    }
    *first_pos = optind;
    return cache ? strdup(cache) : air_default_cache_dir();
}

int cli_list(int argc, char **argv) {
    int pos;
    char *cache = cache_from_args(argc, argv,
                                  "Usage: airllm list [--cache-dir DIR]\n\nLists the layer stores "
                                  "on disk: model, compression, architecture, layers, size, folder.\n",
                                  &pos);
    printf("%-48s %-6s %-7s %4s %10s  %s\n", "MODEL", "COMP", "ARCH", "LAYR", "SIZE", "STORE");
    int n = each_store(cache, print_store, NULL);
    if (n == 0)
        fprintf(stderr, "(no layer stores in %s)\n", cache);
    free(cache);
    return 0;
}

typedef struct {
    const char *model;
    int removed;
} rm_ctx;

static void rm_store(void *user, const char *kd, const char *sd, const cJSON *man) {
    rm_ctx *r = user;
    const cJSON *model = cJSON_GetObjectItem(man, "model");
    const char *base = strrchr(kd, '/');
    base = base ? base + 1 : kd;
    /* a damaged manifest does not say its model: the key folder does
     * ("<base name of the model>-<8 hex digits>") */
    const char *mb = strrchr(r->model, '/');
    mb = mb && mb[1] ? mb + 1 : r->model;
    size_t bl = strlen(base), ml = strlen(mb);
    int by_key = !man && bl == ml + 9 && strncmp(base, mb, ml) == 0 && base[ml] == '-';
    if (!(cJSON_IsString(model) && strcmp(model->valuestring, r->model) == 0) &&
        strcmp(base, r->model) != 0 && !by_key)
        return;
    /* manifest first: a store without one never looks complete */
    DIR *d = opendir(sd);
    char *mp = air_path_join(sd, "manifest.json");
    unlink(mp);
    free(mp);
    struct dirent *e;
    while (d && (e = readdir(d))) {
        if (e->d_name[0] == '.' && (e->d_name[1] == 0 || (e->d_name[1] == '.' && e->d_name[2] == 0)))
            continue;
        char *p = air_path_join(sd, e->d_name);
        unlink(p);
        free(p);
    }
    if (d)
        closedir(d);
    rmdir(sd);
    rmdir(kd); /* when it was the last compression */
    printf("removed %s\n", sd);
    r->removed++;
}

int cli_rm(int argc, char **argv) {
    int pos;
    char *cache = cache_from_args(argc, argv,
                                  "Usage: airllm rm MODEL [--cache-dir DIR]\n\nDeletes the layer "
                                  "stores of MODEL (the name `airllm list` shows, or its store "
                                  "folder name). Downloads in the Hugging Face cache are kept.\n",
                                  &pos);
    if (pos >= argc) {
        fprintf(stderr, "airllm rm: name a model (see airllm list)\n");
        free(cache);
        return 2;
    }
    rm_ctx r = {argv[pos], 0};
    each_store(cache, rm_store, &r);
    free(cache);
    if (!r.removed) {
        fprintf(stderr, "airllm rm: no layer store of '%s' (see airllm list)\n", argv[pos]);
        return 1;
    }
    return 0;
}
