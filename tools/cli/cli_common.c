/*
 * cli_common.c - options shared by the commands that open a model.
 */
#include <ctype.h>
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "kernels/pool.h"

void cli_model_opts_init(cli_model_opts *o) {
    memset(o, 0, sizeof *o);
    o->mp = air_model_default_params();
    air_progress_bar_init(&o->bar, stderr);
}

/* ---------------------------------------------------------------------------
 * numeric option values: the whole text is the number, within its range;
 * anything else ends the command with exit code 2 and a message naming the
 * option and what it accepts
 * ------------------------------------------------------------------------- */

static void bad_value(const char *opt, const char *arg, const char *what) {
    fprintf(stderr, "airllm: %s: '%s' is not accepted; give %s\n", opt, arg, what);
    exit(2);
}

/* A number starts at once: no leading blanks (strtol/strtod would skip them). */
static int starts_number(const char *s) {
    return *s && !isspace((unsigned char)*s);
}

long long cli_opt_int(const char *opt, const char *arg, long long lo, long long hi) {
    char what[96];
    if (hi == LLONG_MAX)
        snprintf(what, sizeof what, "an integer >= %lld", lo);
    else
        snprintf(what, sizeof what, "an integer from %lld to %lld", lo, hi);
    char *end;
    errno = 0;
    long long v = starts_number(arg) ? strtoll(arg, &end, 10) : 0;
    if (!starts_number(arg) || *end || errno == ERANGE || v < lo || v > hi)
        bad_value(opt, arg, what);
    return v;
}

double cli_opt_float(const char *opt, const char *arg, double lo, double hi) {
    char what[96];
    if (isinf(hi))
        snprintf(what, sizeof what, "a number >= %g", lo);
    else
        snprintf(what, sizeof what, "a number from %g to %g", lo, hi);
    char *end;
    errno = 0;
    double v = starts_number(arg) ? strtod(arg, &end) : 0;
    if (!starts_number(arg) || *end || !isfinite(v) || errno == ERANGE || !(v >= lo && v <= hi))
        bad_value(opt, arg, what);
    return v;
}

uint64_t cli_opt_u64(const char *opt, const char *arg) {
    char *end;
    errno = 0;
    unsigned long long v = isdigit((unsigned char)*arg) ? strtoull(arg, &end, 10) : 0;
    if (!isdigit((unsigned char)*arg) || *end || errno == ERANGE)
        bad_value(opt, arg, "an integer from 0 to 18446744073709551615");
    return (uint64_t)v;
}

long long cli_parse_size(const char *s) {
    char *end;
    double v = starts_number(s) ? strtod(s, &end) : -1;
    if (!starts_number(s) || end == s || !isfinite(v) || v < 0)
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
    if (*end || v * mul >= 9.2e18) /* beyond what a long long holds */
        return -1;
    return (long long)(v * mul);
}

int cli_model_opt(cli_model_opts *o, int opt, const char *arg) {
    switch (opt) {
    case 'c': o->mp.compression = arg; return 1;
    case 1001: o->mp.cache_dir = arg; return 1;
    case 1002:
        o->mp.max_seq_len = (int)cli_opt_int("--max-seq-len", arg, 1, AIR_MAX_SEQ_LEN);
        return 1;
    case 1003: o->mp.prefetching = 0; return 1;
    case 1004: {
        long long v = cli_parse_size(arg);
        if (v < 0) {
            fprintf(stderr, "airllm: --ram: '%s' is not accepted; give a size >= 0 such as 8G, "
                            "512M or 0\n", arg);
            exit(2);
        }
        o->mp.ram_budget = (uint64_t)v;
        return 1;
    }
    case 't': {
        int n = (int)cli_opt_int("-t/--threads", arg, 1, INT_MAX), cpus = air_cpu_count();
        if (n > cpus) {
            fprintf(stderr, "airllm: -t %d is more than the %d CPUs this process may run on; "
                            "using %d (more compute threads than CPUs only slow down)\n",
                    n, cpus, cpus);
            n = cpus;
        }
        o->mp.n_threads = n;
        return 1;
    }
    case 1005: o->mp.hf_token = arg; return 1;
    case 1006: o->mp.revision = arg; return 1;
    case 1007: o->mp.delete_original = 1; return 1;
    case 1008:
        if (strcmp(arg, "auto") && strcmp(arg, "cpu") && strcmp(arg, "cuda")) {
            fprintf(stderr, "airllm: --device: '%s' is not accepted; give auto, cpu or cuda\n",
                    arg);
            exit(2);
        }
        o->mp.device = arg;
        return 1;
    case 1009: {
        long long v = cli_parse_size(arg);
        if (v <= 0) {
            fprintf(stderr, "airllm: --vram: '%s' is not accepted; give a size > 0 such as 4G "
                            "or 512M\n", arg);
            exit(2);
        }
        o->mp.vram_budget = (uint64_t)v;
        return 1;
    }
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

/* A pipeline rank above 0 (under mpirun): serves rank 0's passes with its
 * layers of the model, then ends the process, whatever command it was given:
 * rank 0 alone runs the command. */
static void pipeline_worker(air_model *m) {
    air_status st = air_pipeline_worker(m);
    if (st)
        fprintf(stderr, "airllm (rank %d): %s\n", air_dist_rank(), air_last_error());
    air_model_close(m);
    if (!st)
        air_dist_finalize();
    exit(st ? 1 : 0);
}

air_model *cli_open(const char *model, cli_model_opts *o) {
    if (air_dist_rank() > 0)
        o->quiet = 1; /* one progress bar: rank 0's */
    if (!o->quiet) {
        o->mp.progress = air_progress_bar_cb;
        o->mp.progress_user = &o->bar;
        o->mp.notice = air_progress_bar_notice;
    }
    o->mp.should_abort = cli_interrupted; /* Ctrl-C stops a split too */
    air_model *m = NULL;
    air_status st = air_model_open(model, &o->mp, &m);
    if (!o->quiet)
        air_progress_bar_finish(&o->bar);
    if (st) {
        fprintf(stderr, "airllm: %s\n", air_last_error());
        o->rc = cli_exit_code(st);
        return NULL;
    }
    if (air_dist_rank() > 0)
        pipeline_worker(m);
    return m;
}
