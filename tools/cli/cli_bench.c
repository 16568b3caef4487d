/*
 * cli_bench.c - `airllm bench`: prefill and decode speed of a model streamed
 * from its layer store, next to the physical floor: the disk's sequential
 * read bandwidth measured by the same tool, on the same files.
 *
 * Prints a markdown table: prefill ppN and decode tgN tokens/s, bytes read
 * per token, achieved read GB/s, the share of read time hidden behind
 * compute, and peak RSS against the expected footprint.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "api_internal.h"
#include "cli.h"
#include "runtime/experts.h"
#include "store/layerfile.h"

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* Sequential read of every unit file with O_DIRECT (no page cache): GB/s. */
static double disk_bandwidth(air_store *s, uint64_t *bytes) {
    size_t chunk = 16u << 20;
    void *buf = air_lf_alloc(chunk);
    uint64_t total = 0;
    double t0 = now_s();
    for (int u = 0; u < air_store_n_units(s); u++) {
        int fd = open(air_store_unit_path(s, u), O_RDONLY | O_DIRECT);
        if (fd < 0)
            fd = open(air_store_unit_path(s, u), O_RDONLY);
        if (fd < 0)
            continue;
        ssize_t r;
        off_t off = 0;
        while ((r = pread(fd, buf, chunk, off)) > 0) {
            total += (uint64_t)r;
            off += r;
        }
        close(fd);
    }
    double dt = now_s() - t0;
    free(buf);
    *bytes = total;
    return dt > 0 ? (double)total / dt / 1e9 : 0;
}

static double peak_rss_mib(void) {
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_maxrss / 1024.0;
}

int cli_bench(int argc, char **argv) {
    cli_model_opts mo;
    cli_model_opts_init(&mo);
    int pp = 64, tg = 16;
    static struct option opts[] = {{"prompt-tokens", required_argument, 0, 'p'},
                                   {"gen-tokens", required_argument, 0, 'g'},
                                   {"help", no_argument, 0, 'h'},
                                   CLI_MODEL_OPTIONS,
                                   {0, 0, 0, 0}};
    int c;
    while ((c = getopt_long(argc, argv, "p:g:c:t:qh", opts, NULL)) != -1) {
        if (cli_model_opt(&mo, c, optarg))
            continue;
        switch (c) {
        case 'p': pp = (int)cli_opt_int("-p/--prompt-tokens", optarg, 1, 65536); break;
        case 'g': tg = (int)cli_opt_int("-g/--gen-tokens", optarg, 1, 65536); break;
        case 'h':
            printf("Usage: airllm bench [MODEL] [options]\n\n"
                   "Measures prefill (ppN) and decode (tgN) speed with the model streamed from\n"
                   "its layer store, next to the disk's sequential read bandwidth measured on the\n"
                   "same files, the bytes read per token, the share of reads hidden behind\n"
                   "compute, and peak RSS. Token ids are random (no tokenizer needed).\n\n"
                   "  -p, --prompt-tokens N  prompt length for prefill (default 64)\n"
                   "  -g, --gen-tokens N     tokens decoded one by one (default 16)\n\n" CLI_MODEL_HELP
                   "\nExample:\n  airllm bench ./bench-model --compression none -p 64 -g 16\n");
            return 0;
        default: return 2;
        }
    }
    char *def = NULL;
    const char *model = optind < argc ? argv[optind] : (def = cli_default_model());
    if (!model) {
        fprintf(stderr, "airllm bench: name a model\n");
        return 2;
    }
    air_model *m = cli_open(model, &mo);
    if (!m) {
        free(def);
        return mo.rc;
    }
    air_engine *e = m->engine;
    air_store *s = air_engine_store(e);
    const air_hparams *hp = air_engine_hparams(e);
    air_streamer *str = air_engine_streamer(e);
    uint64_t disk_bytes;
    double disk_gbs = disk_bandwidth(s, &disk_bytes);
    int max_seq = pp + tg + 1;
    air_kv kv;
    if (air_kv_init(&kv, hp, max_seq)) {
        fprintf(stderr, "airllm bench: %s\n", air_last_error());
        return 1;
    }
    int32_t *ids = malloc(sizeof(int32_t) * (size_t)(pp + tg));
    uint64_t rng = 12345;
    for (int i = 0; i < pp + tg; i++) {
        rng = rng * 6364136223846793005ull + 1442695040888963407ull;
        ids[i] = (int32_t)((rng >> 33) % (uint64_t)hp->n_vocab);
    }
    float *logits = malloc(sizeof(float) * (size_t)hp->n_vocab);
    air_streamer_stats s0, s1, s2;
    air_experts *ex = air_engine_experts(e);
    air_experts_stats x0 = {0}, x1 = {0}, x2 = {0};
    air_streamer_get_stats(str, &s0);
    if (ex)
        air_experts_get_stats(ex, &x0);
    double t0 = now_s();
    air_status st = air_engine_eval(e, &kv, ids, pp, 0, logits);
    double t_pp = now_s() - t0;
    air_streamer_get_stats(str, &s1);
    if (ex)
        air_experts_get_stats(ex, &x1);
    t0 = now_s();
    for (int i = 0; i < tg && !st; i++)
        st = air_engine_eval(e, &kv, &ids[pp + i], 1, 0, logits);
    double t_tg = now_s() - t0;
    air_streamer_get_stats(str, &s2);
    if (ex)
        air_experts_get_stats(ex, &x2);
    /* expert reads count with the layers' reads (mixture-of-experts models) */
    s1.bytes_read += x1.bytes_read - x0.bytes_read;
    s2.bytes_read += x2.bytes_read - x0.bytes_read;
    s1.read_seconds += x1.read_seconds - x0.read_seconds;
    s2.read_seconds += x2.read_seconds - x0.read_seconds;
    s1.wait_seconds += x1.wait_seconds - x0.wait_seconds;
    s2.wait_seconds += x2.wait_seconds - x0.wait_seconds;
    if (st) {
        fprintf(stderr, "airllm bench: %s\n", air_last_error());
        return 1;
    }
    double bpt = tg ? (double)(s2.bytes_read - s1.bytes_read) / tg : 0;
    double read_tg = s2.read_seconds - s1.read_seconds, wait_tg = s2.wait_seconds - s1.wait_seconds;
    double hidden = read_tg > 0 ? 1.0 - wait_tg / read_tg : 1.0;
    if (hidden < 0)
        hidden = 0;
    air_model_info info;
    air_model_get_info(m, &info);
    char sz[32], sz2[32];
    uint64_t largest = 0;
    for (int u = 0; u < air_store_n_units(s); u++)
        if (air_store_unit_bytes(s, u) > largest)
            largest = air_store_unit_bytes(s, u);
    double expect_mib = (double)(s2.buffer_bytes + s2.pinned_bytes + air_kv_bytes(hp, max_seq)) / (1 << 20);

    printf("model: %s (%s, %d layers, %s, store %s, largest unit %s)\n", info.name, info.arch,
           info.n_layer, info.compression, air_format_bytes(info.store_bytes, sz, sizeof sz),
           air_format_bytes(largest, sz2, sizeof sz2));
    char bud[32];
    printf("prefetch: %s, RAM budget %s%s, pinned units: %d (%s), threads: %d\n",
           mo.mp.prefetching ? "on" : "off", air_format_bytes(s2.ram_budget, bud, sizeof bud),
           mo.mp.ram_budget == AIR_RAM_AUTO ? " (auto)" : "", s2.n_pinned,
           air_format_bytes(s2.pinned_bytes, sz, sizeof sz),
           air_pool_size(air_engine_pool(e)));
    printf("disk sequential read (O_DIRECT, same files): %.2f GB/s over %s\n\n", disk_gbs,
           air_format_bytes(disk_bytes, sz, sizeof sz));
    printf("| test | tokens/s | bytes read/token | read GB/s | I/O-bound floor tok/s | I/O hidden |\n");
    printf("|------|---------:|-----------------:|----------:|---------------------:|-----------:|\n");
    double pp_bytes = (double)(s1.bytes_read - s0.bytes_read);
    printf("| pp%d | %.2f | %s | %.2f | %.2f | %.0f%% |\n", pp, pp / t_pp,
           air_format_bytes((uint64_t)(pp_bytes / pp), sz, sizeof sz),
           t_pp > 0 ? pp_bytes / t_pp / 1e9 : 0,
           pp_bytes > 0 && disk_gbs > 0 ? pp / (pp_bytes / (disk_gbs * 1e9)) : 0,
           (s1.read_seconds - s0.read_seconds) > 0
               ? 100.0 * (1.0 - (s1.wait_seconds - s0.wait_seconds) / (s1.read_seconds - s0.read_seconds) > 0
                              ? 1.0 - (s1.wait_seconds - s0.wait_seconds) / (s1.read_seconds - s0.read_seconds)
                              : 0)
               : 100.0);
    printf("| tg%d | %.2f | %s | %.2f | %.2f | %.0f%% |\n", tg, tg / t_tg,
           air_format_bytes((uint64_t)bpt, sz, sizeof sz),
           t_tg > 0 ? bpt * tg / t_tg / 1e9 : 0, bpt > 0 && disk_gbs > 0 ? disk_gbs * 1e9 / bpt : 0,
           100.0 * hidden);
    if (ex) {
        /* active bytes per token: every unit's read (dense parts of MoE
         * layers) plus k experts per MoE layer; the floor reads them all */
        uint64_t active = 0, resident = 0;
        int n_moe = 0;
        for (int u = 0; u < air_store_n_units(s); u++) {
            active += air_streamer_unit_read_bytes(str, u);
            if (air_streamer_is_pinned(str, u))
                resident += air_streamer_unit_read_bytes(str, u);
            n_moe += u < hp->n_layer && air_hp_layer_is_moe(hp, u);
        }
        active += (uint64_t)n_moe * (uint64_t)hp->n_expert_used * x2.expert_bytes;
        uint64_t routed = x2.n_routed - x1.n_routed, hits = x2.n_hits - x1.n_hits;
        char sz3[32];
        printf("\nexperts: %d of %d per token in %d MoE layers, %s each; cache %d experts (%s), "
               "transient buffers %s\n", hp->n_expert_used, hp->n_expert, n_moe,
               air_format_bytes(x2.expert_bytes, sz, sizeof sz), x2.cache_slots,
               air_format_bytes(x2.cache_bytes, sz2, sizeof sz2),
               air_format_bytes(x2.buffer_bytes, sz3, sizeof sz3));
        printf("| test | bytes read/token | active bytes/token | read / active | floor tok/s "
               "(active bytes at disk speed) | expert cache hit rate |\n");
        printf("|------|-----------------:|-------------------:|--------------:|------------------"
               "---------:|----------------------:|\n");
        printf("| tg%d | %s | %s | %.2f | %.2f | %.1f%% |\n", tg,
               air_format_bytes((uint64_t)bpt, sz, sizeof sz),
               air_format_bytes(active, sz2, sizeof sz2), active ? bpt / (double)active : 0,
               active > resident && disk_gbs > 0 ? disk_gbs * 1e9 / (double)(active - resident) : 0,
               routed ? 100.0 * (double)hits / (double)routed : 0);
        expect_mib += (double)(x2.cache_bytes + x2.buffer_bytes) / (1 << 20);
    }
    printf("\npeak RSS: %.0f MiB (streaming buffers %s + pinned + KV cache %.1f MiB = %.0f MiB "
           "expected, plus activations and code)\n",
           peak_rss_mib(), air_format_bytes(s2.buffer_bytes, sz, sizeof sz),
           (double)air_kv_bytes(hp, max_seq) / (1 << 20), expect_mib);
    free(ids);
    free(logits);
    air_kv_free(&kv);
    air_model_close(m);
    free(def);
    return 0;
}
