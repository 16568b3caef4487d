/*
 * cli_common.c - options shared by the commands that open a model.
 */
#include <getopt.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"

void cli_model_opts_init(cli_model_opts *o) {
    memset(o, 0, sizeof *o);
    o->mp = air_model_default_params();
    air_progress_bar_init(&o->bar, stderr);
}

long long cli_parse_size(const char *s) {
    char *end;
    double v = strtod(s, &end);
    if (end == s || v < 0)
        return -1;
    double mul = 1;
    switch (*end) {
    case 'k': case 'K': mul = 1024.0; end++; break;
    case 'm': case 'M': mul = 1024.0 * 1024; end++; break;
    case 'g': case 'G': mul = 1024.0 * 1024 * 1024; end++; break;
    case 't': case 'T': mul = 1024.0 * 1024 * 1024 * 1024; end++; break;
    }
    if (*end == 'i')
        end++;
    if (*end == 'B' || *end == 'b')
        end++;
    if (*end)
        return -1;
    return (long long)(v * mul);
}

int cli_model_opt(cli_model_opts *o, int opt, const char *arg) {
    switch (opt) {
    case 'c': o->mp.compression = arg; return 1;
    case 1001: o->mp.cache_dir = arg; return 1;
    case 1002: o->mp.max_seq_len = atoi(arg); return 1;
    case 1003: o->mp.prefetching = 0; return 1;
    case 1004: {
        long long v = cli_parse_size(arg);
        if (v < 0) {
            fprintf(stderr, "airllm: --ram: cannot read size '%s' (e.g. 8G, 512M)\n", arg);
            exit(2);
        }
        o->mp.ram_budget = (uint64_t)v;
        return 1;
    }
    case 't': o->mp.n_threads = atoi(arg); return 1;
    case 1005: o->mp.hf_token = arg; return 1;
    case 1006: o->mp.revision = arg; return 1;
    case 1007: o->mp.delete_original = 1; return 1;
    case 'q': o->quiet = 1; return 1;
    }
    return 0;
}

char *cli_default_model(void) {
    const char *name = "SmolLM2-135M-Instruct.Q4_1.gguf";
    char path[PATH_MAX];
    const char *dir = getenv("AIRLLM_MODELS_DIR");
    if (dir && *dir) {
        snprintf(path, sizeof path, "%s/%s", dir, name);
        if (access(path, R_OK) == 0)
            return strdup(path);
    }
    /* <repo>/models next to the build folder holding this executable */
    char exe[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (n > 0) {
        exe[n] = 0;
        for (int up = 0; up < 3; up++) {
            char *slash = strrchr(exe, '/');
            if (!slash)
                break;
            *slash = 0;
            snprintf(path, sizeof path, "%s/models/%s", exe, name);
            if (access(path, R_OK) == 0)
                return strdup(path);
        }
    }
    snprintf(path, sizeof path, "models/%s", name);
    if (access(path, R_OK) == 0)
        return strdup(path);
    return NULL;
}

air_model *cli_open(const char *model, cli_model_opts *o) {
    if (!o->quiet) {
        o->mp.progress = air_progress_bar_cb;
        o->mp.progress_user = &o->bar;
        o->mp.notice = air_progress_bar_notice;
    }
    air_model *m = NULL;
    air_status st = air_model_open(model, &o->mp, &m);
    if (!o->quiet)
        air_progress_bar_finish(&o->bar);
    if (st) {
        fprintf(stderr, "airllm: %s\n", air_last_error());
        return NULL;
    }
    return m;
}
