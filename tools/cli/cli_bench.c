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
#include "dist/pipeline.h"
#include "runtime/experts.h"
#include "runtime/generate.h"
#include "store/layerfile.h"

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* Sequential read of every unit file with O_DIRECT (no page cache), 16 MiB
 * per read: GB/s. Each unit lands in a buffer as large as the largest unit
 * (at most 256 MiB), as a unit lands in a streaming buffer: reads into one
 * small reused buffer stay in the CPU's cache and measured up to 1.4x what a
 * unit-sized destination in RAM gets from the same disk. The buffer is
 * freed, and the peak RSS reset (see peak_rss_mib), before anything else is
 * measured. */
static double disk_bandwidth(air_store *s, uint64_t *bytes) {
    const size_t chunk = 16u << 20;
    uint64_t largest = 0;
    for (int u = 0; u < air_store_n_units(s); u++)
        if (air_store_has_unit(s, u) && air_store_unit_bytes(s, u) > largest)
            largest = air_store_unit_bytes(s, u);
    size_t cap = largest > (256u << 20) ? (256u << 20) : largest < chunk ? chunk : (size_t)largest;
    cap = (cap + chunk - 1) / chunk * chunk;
    char *buf = air_lf_alloc(cap);
    uint64_t total = 0;
    double t0 = now_s();
    for (int u = 0; buf && u < air_store_n_units(s); u++) {
        if (!air_store_has_unit(s, u))
            continue;
        int fd = open(air_store_unit_path(s, u), O_RDONLY | O_DIRECT);
        if (fd < 0)
            fd = open(air_store_unit_path(s, u), O_RDONLY);
        if (fd < 0)
            continue;
        ssize_t r;
        off_t off = 0;
        size_t at;
        while ((at = (size_t)off % cap, r = pread(fd, buf + at, cap - at < chunk ? cap - at : chunk,
                                                  off)) > 0) {
            total += (uint64_t)r;
            off += r;
        }
        close(fd);
    }
    double dt = now_s() - t0;
    free(buf);
    /* the probe's buffer is not the engine's: the peak counts from here */
    int fd = open("/proc/self/clear_refs", O_WRONLY);
    if (fd >= 0) {
        (void)!write(fd, "5", 1);
        close(fd);
    }
    *bytes = total;
    return dt > 0 ? (double)total / dt / 1e9 : 0;
}

/* Cost of one pass against the rows it carries: a chain of r candidate rows
 * after a prefilled context, best of two passes per row count. */
static void rows_table(air_engine *e, int ctx) {
    const air_hparams *hp = air_engine_hparams(e);
    air_kv kv;
    if (air_kv_init(&kv, hp, ctx + 65))
        return;
    int32_t tok[64], pos[64], slot[64], par[64];
    air_kv *kvs[64];
    uint8_t want[64];
    float *lg = malloc(sizeof(float) * (size_t)hp->n_vocab * 64);
    uint64_t rng = 777;
    int32_t *ids = malloc(sizeof(int32_t) * (size_t)ctx);
    for (int i = 0; i < ctx; i++) {
        rng = rng * 6364136223846793005ull + 1442695040888963407ull;
        ids[i] = (int32_t)((rng >> 33) % (uint64_t)hp->n_vocab);
    }
    if (!lg || !ids || air_engine_eval(e, &kv, ids, ctx, 0, lg)) {
        free(lg);
        free(ids);
        air_kv_free(&kv);
        return;
    }
    printf("\n| rows per pass | pass ms | x one row | ms per row |\n");
    printf("|--------------:|--------:|----------:|-----------:|\n");
    double one = 0;
    for (int r = 1; r <= 64; r *= 2) {
        for (int i = 0; i < r; i++) {
            tok[i] = ids[i % ctx];
            pos[i] = ctx + i;
            slot[i] = ctx + i;
            par[i] = i ? ctx + i - 1 : -1;
            kvs[i] = &kv;
            want[i] = 1;
        }
        air_batch b = {r, tok, pos, kvs, want, lg, slot, par};
        double best = 0;
        for (int k = 0; k < 2; k++) {
            double t0 = now_s();
            if (air_engine_forward(e, &b))
                break;
            double t = now_s() - t0;
            if (k == 0 || t < best)
                best = t;
        }
        if (r == 1)
            one = best;
        printf("| %d | %.1f | %.2f | %.2f |\n", r, best * 1e3, one > 0 ? best / one : 0,
               best * 1e3 / r);
    }
    free(lg);
    free(ids);
    air_kv_free(&kv);
}

/* A model without a tokenizer: greedy generation after 32 random prompt ids
 * through the engine, with the draft opened here (every unit resident). The
 * result's text lists the ids. */
static air_status ids_generate(air_model *m, const cli_spec_opts *so, const char *cache_dir,
                               int spec, int tg, air_result *r) {
    memset(r, 0, sizeof *r);
    const air_hparams *hp = air_engine_hparams(m->engine);
    air_model *draft = NULL;
    air_spec_options o = {0};
    air_status st = AIR_OK;
    if (spec && so->draft) {
        air_model_params mp = air_model_default_params();
        mp.compression = so->draft_compression ? so->draft_compression : "4bit";
        mp.cache_dir = cache_dir;
        mp.ram_budget = UINT64_MAX - 1;
        if ((st = air_model_open(so->draft, &mp, &draft)))
            return st;
        o.draft = draft->engine;
    }
    air_streamer_stats ss;
    air_streamer_get_stats(air_engine_streamer(m->engine), &ss);
    o.streamed = ss.n_pinned < air_store_n_units(air_engine_store(m->engine));
    o.lookup = so->lookup == 1;
    o.max_nodes = so->draft_max;
    o.n_vocab = hp->n_vocab;
    if (draft && air_engine_hparams(draft->engine)->n_vocab < o.n_vocab)
        o.n_vocab = air_engine_hparams(draft->engine)->n_vocab;
    int32_t ids[32];
    uint64_t rng = 4242;
    for (int i = 0; i < 32; i++) {
        rng = rng * 6364136223846793005ull + 1442695040888963407ull;
        ids[i] = (int32_t)((rng >> 33) % (uint64_t)hp->n_vocab);
    }
    air_kv kv;
    if ((st = air_kv_init(&kv, hp, 32 + tg + 1))) {
        air_model_close(draft);
        return st;
    }
    air_gen_options go = {0};
    go.max_tokens = tg;
    go.sampler.temperature = 0;
    go.spec = spec && (o.draft || o.lookup) ? &o : NULL;
    int32_t *out = NULL;
    int n = 0;
    air_gen_stats gs;
    st = air_generate(m->engine, &kv, ids, 32, &go, &out, &n, &gs);
    air_kv_free(&kv);
    air_model_close(draft);
    if (st)
        return st;
    r->text = malloc((size_t)n * 12 + 1);
    r->text[0] = 0;
    for (int i = 0, at = 0; i < n; i++)
        at += snprintf(r->text + at, 12, "%d ", out[i]);
    free(out);
    r->completion_tokens = n;
    r->decode_tokens_per_s = gs.decode_seconds > 0 && n > 1 ? (n - 1) / gs.decode_seconds : 0;
    r->sweeps = gs.sweeps;
    r->tokens_per_sweep = gs.sweeps ? (double)(n - 1 + gs.stopped_by_eos) / gs.sweeps : 0;
    r->drafted = gs.drafted;
    r->accepted = gs.accepted;
    r->acceptance_rate = gs.drafted ? (double)gs.accepted / gs.drafted : 0;
    return AIR_OK;
}

/* Greedy generation of a real prompt, plain and speculative, in the same
 * run: tokens/s, passes, tokens per pass, acceptance, bytes read per token. */
static int spec_compare(air_model *m, const char *prompt, int tg, const cli_spec_opts *so,
                        const char *cache_dir) {
    air_streamer *str = air_engine_streamer(m->engine);
    air_result r[2];
    uint64_t bytes[2];
    /* the draft is opened (split, read) before both runs, so that what
     * loading it leaves behind (page cache, huge-page compaction) weighs on
     * neither: a server loads it once */
    air_model *draft = NULL;
    if (m->tok) {
        air_gen_params gp = air_gen_default_params();
        cli_spec_apply(so, &gp);
        air_spec_options sopt;
        int use = 0;
        if (air_spec_setup(m, &gp, &draft, &sopt, &use)) {
            fprintf(stderr, "airllm bench: %s\n", air_last_error());
            return 1;
        }
    }
    for (int k = 0; k < 2; k++) {
        air_gen_params gp = air_gen_default_params();
        gp.temperature = 0;
        gp.max_tokens = tg;
        cli_spec_apply(so, &gp);
        if (k == 0)
            gp.speculative = 0;
        air_streamer_stats a, b;
        air_streamer_get_stats(str, &a);
        air_status st = m->tok ? air_generate_text(m, NULL, prompt, &gp, &r[k])
                               : ids_generate(m, so, cache_dir, k, tg, &r[k]);
        if (st) {
            fprintf(stderr, "airllm bench: %s\n", air_last_error());
            if (k == 1)
                air_result_free(&r[0]);
            air_model_release(draft);
            return 1;
        }
        air_streamer_get_stats(str, &b);
        bytes[k] = b.bytes_read - a.bytes_read;
    }
    air_model_release(draft);
    char sz[32];
    if (m->tok)
        printf("\ngreedy generation of the prompt, %d tokens at most:\n\n", tg);
    else
        printf("\ngreedy generation after 32 random token ids (the model has no tokenizer), "
               "%d tokens at most:\n\n", tg);
    printf("| decoding | tokens/s | sweeps | tokens/sweep | acceptance | bytes read/token | speed-up |\n");
    printf("|----------|---------:|-------:|-------------:|-----------:|-----------------:|---------:|\n");
    for (int k = 0; k < 2; k++) {
        char what[256];
        if (k == 0)
            snprintf(what, sizeof what, "plain");
        else
            snprintf(what, sizeof what, "speculative (draft %s%s%s, lookup %s, draft-max %s)",
                     so->draft ? so->draft : "none", so->draft ? " " : "",
                     so->draft ? (so->draft_compression ? so->draft_compression : "4bit") : "",
                     so->lookup == 1 ? "on" : so->lookup == 0 ? "off" : "auto",
                     so->draft_max ? "fixed" : "auto");
        int ntok = r[k].completion_tokens > 0 ? r[k].completion_tokens : 1;
        printf("| %s | %.2f | %d | %.2f | %.0f%% | %s | %.2fx |\n", what,
               r[k].decode_tokens_per_s, r[k].sweeps, r[k].tokens_per_sweep,
               100.0 * r[k].acceptance_rate,
               air_format_bytes(bytes[k] / (uint64_t)ntok, sz, sizeof sz),
               r[0].decode_tokens_per_s > 0 ? r[k].decode_tokens_per_s / r[0].decode_tokens_per_s
                                            : 0);
    }
    int same = strcmp(r[0].text, r[1].text) == 0;
    printf("\nidentical output: %s (%d tokens)\n", same ? "yes" : "NO", r[1].completion_tokens);
    air_result_free(&r[0]);
    air_result_free(&r[1]);
    return same ? 0 : 1;
}

/* The peak resident set: VmHWM, which disk_bandwidth resets after its probe
 * (Linux); the process's lifetime maximum where it cannot be read. */
static double peak_rss_mib(void) {
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    long kb = -1;
    while (f && fgets(line, sizeof line, f))
        if (sscanf(line, "VmHWM: %ld kB", &kb) == 1)
            break;
    if (f)
        fclose(f);
    if (kb >= 0)
        return (double)kb / 1024.0;
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_maxrss / 1024.0;
}

/* The GPU's table: decode speed against the copy floor (the bytes streamed
 * to the GPU per token at the page-locked host-to-device bandwidth measured
 * here) and against the memory floor (every weight read once per token from
 * device memory at its measured bandwidth). */
static void gpu_table(air_engine *e, const air_engine_gpu_stats *gs, int tg, double t_tg) {
    char a[32], b[32], c[32], d[32], f[32];
    printf("\nGPU: %s\n", gs->device);
    printf("VRAM budget %s, planned peak %s: %d of %d units resident (%s), %s streamed per "
           "pass through 2 buffers of %s; streamer buffers page-locked: %s\n",
           air_format_bytes(gs->vram_budget, a, sizeof a),
           air_format_bytes(gs->vram_planned, b, sizeof b), gs->n_resident, gs->n_units,
           air_format_bytes(gs->resident_bytes, c, sizeof c),
           air_format_bytes(gs->streamed_bytes, d, sizeof d),
           air_format_bytes(gs->slot_bytes, f, sizeof f), gs->host_registered ? "yes" : "no");
    double h2d = 0, mem = 0;
    if (air_engine_gpu_bandwidth(e, &h2d, &mem)) {
        printf("copy floor: not measured (%s)\n", air_last_error());
        return;
    }
    printf("copy floor (measured now): host->device %.1f GB/s (page-locked), device memory "
           "%.0f GB/s (read + write)\n\n", h2d, mem);
    double tps = t_tg > 0 ? tg / t_tg : 0;
    double weights = (double)(gs->resident_bytes + gs->streamed_bytes);
    double copy_floor = gs->streamed_bytes ? h2d * 1e9 / (double)gs->streamed_bytes : 0;
    double mem_floor = weights > 0 ? mem * 1e9 / weights : 0;
    printf("| test | tokens/s | copied to GPU/token | copy floor tok/s | of copy floor | "
           "weights read/token | memory floor tok/s | of memory floor |\n");
    printf("|------|---------:|--------------------:|-----------------:|--------------:|"
           "-------------------:|-------------------:|----------------:|\n");
    char cf[32] = "-", cp[32] = "-";
    if (copy_floor > 0) {
        snprintf(cf, sizeof cf, "%.2f", copy_floor);
        snprintf(cp, sizeof cp, "%.0f%%", 100.0 * tps / copy_floor);
    }
    printf("| tg%d | %.2f | %s | %s | %s | %s | %.1f | %.1f%% |\n", tg, tps,
           air_format_bytes(gs->streamed_bytes, a, sizeof a), cf, cp,
           air_format_bytes((uint64_t)weights, b, sizeof b), mem_floor,
           mem_floor > 0 ? 100.0 * tps / mem_floor : 0);
}

int cli_bench(int argc, char **argv) {
    cli_model_opts mo;
    cli_model_opts_init(&mo);
    cli_spec_opts so;
    cli_spec_opts_init(&so);
    const char *prompt = NULL;
    int rows = 0, sweep = 0, json = 0;
    int pp = 64, tg = 16;
    static struct option opts[] = {{"prompt-tokens", required_argument, 0, 'p'},
                                   {"gen-tokens", required_argument, 0, 'g'},
                                   {"help", no_argument, 0, 'h'},
                                   {"prompt", required_argument, 0, 3101},
                                   {"rows", no_argument, 0, 3102},
                                   {"ram-sweep", optional_argument, 0, 3103},
                                   {"json", no_argument, 0, 3104},
                                   CLI_SPEC_OPTIONS,
                                   CLI_MODEL_OPTIONS,
                                   {0, 0, 0, 0}};
    int c;
    while ((c = getopt_long(argc, argv, "p:g:c:t:qh", opts, NULL)) != -1) {
        if (cli_model_opt(&mo, c, optarg) || cli_spec_opt(&so, c, optarg))
            continue;
        switch (c) {
        case 3101: prompt = optarg; break;
        case 3102: rows = 1; break;
        case 3103: sweep = optarg ? (int)cli_opt_int("--ram-sweep", optarg, 1, 64) : 4; break;
        case 3104: json = 1; break;
        case 'p': pp = (int)cli_opt_int("-p/--prompt-tokens", optarg, 1, 65536); break;
        case 'g': tg = (int)cli_opt_int("-g/--gen-tokens", optarg, 1, 65536); break;
        case 'h':
            printf("Usage: airllm bench [MODEL] [options]\n\n"
                   "Measures prefill (ppN) and decode (tgN) speed with the model streamed from\n"
                   "its layer store, next to the disk's sequential read bandwidth measured on the\n"
                   "same files, the bytes read per token, the share of reads hidden behind\n"
                   "compute, and peak RSS. Token ids are random (no tokenizer needed).\n\n"
                   "  -p, --prompt-tokens N  prompt length for prefill (default 64)\n"
                   "  -g, --gen-tokens N     tokens decoded one by one (default 16)\n"
                   "      --prompt TEXT      also generate TEXT's answer greedily (up to -g\n"
                   "                         tokens), plain then speculative, in the same run:\n"
                   "                         sweeps, tokens/sweep, acceptance, speed-up\n"
                   "      --rows             also time one pass against its row count (1..64)\n"
                   "      --ram-sweep[=N]    decode s/token at N+1 RAM budgets from all streamed\n"
                   "                         to all resident (default N = 4), each next to its\n"
                   "                         I/O floor; the answer to \"how fast with my RAM?\"\n"
                   "      --json             with --ram-sweep: the table as JSON (for\n"
                   "                         tools/bench/plot_ram_sweep.py)\n\n"
                   CLI_SPEC_HELP "\n" CLI_MODEL_HELP
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
    if (sweep && air_dist_size() > 1) {
        fprintf(stderr, "airllm bench: --ram-sweep opens engines of the whole model; run it "
                        "without mpirun\n");
        return 2;
    }
    if (sweep && mo.mp.ram_budget == AIR_RAM_AUTO)
        mo.mp.ram_budget = 0; /* each budget opens its own engine: keep this one small */
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
    air_streamer_wait_idle(str); /* its read-ahead would share the disk with the probe */
    double disk_gbs = disk_bandwidth(s, &disk_bytes);
    if (sweep) {
        int rc = cli_bench_ram_sweep(m, sweep, pp > 16 ? 16 : pp, tg,
                                     air_pool_size(air_engine_pool(e)), mo.mp.prefetching,
                                     disk_gbs, json);
        air_model_close(m);
        free(def);
        return rc;
    }
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
    air_pipe_stats ps1 = {0}, ps2 = {0};
    air_pipe_get_stats(e, &ps1);
    t0 = now_s();
    for (int i = 0; i < tg && !st; i++)
        st = air_engine_eval(e, &kv, &ids[pp + i], 1, 0, logits);
    double t_tg = now_s() - t0;
    air_streamer_get_stats(str, &s2);
    int piped = air_pipe_get_stats(e, &ps2);
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
    if (piped && ps2.passes > ps1.passes) {
        /* a decode pass: rank 0's layers, then each other rank's, one hop
         * between each and one back to rank 0 */
        double n = (double)(ps2.passes - ps1.passes), wall = (ps2.pass_s - ps1.pass_s) / n * 1e3,
               loc = (ps2.local_s - ps1.local_s) / n * 1e3,
               rem = (ps2.remote_s - ps1.remote_s) / n * 1e3, rest = wall - loc - rem;
        printf("\npipeline: %d ranks (the table is rank 0's: layers %d..%d and the embeddings); "
               "a decode pass %.2f ms = rank 0 %.2f ms + the other ranks %.2f ms + messages and "
               "waits %.2f ms (%d hops: %.3f ms per hop)\n",
               ps2.ranks, ps2.lo, ps2.hi - 1, wall, loc, rem, rest, ps2.ranks,
               rest / ps2.ranks);
    }
    printf("\npeak RSS: %.0f MiB (streaming buffers %s + pinned + KV cache %.1f MiB = %.0f MiB "
           "expected, plus activations and code)\n",
           peak_rss_mib(), air_format_bytes(s2.buffer_bytes, sz, sizeof sz),
           (double)air_kv_bytes(hp, max_seq) / (1 << 20), expect_mib);
    air_engine_gpu_stats gs;
    air_engine_gpu_get_stats(e, &gs);
    if (gs.on_gpu)
        gpu_table(e, &gs, tg, t_tg);
    else if (mo.mp.device && !strcmp(mo.mp.device, "auto") && gs.cpu_reason[0])
        printf("\ndevice: the CPU (%s)\n", gs.cpu_reason);
    int rc = 0;
    if (rows && gs.on_gpu)
        printf("\n(--rows: passes of token trees do not run on the GPU yet; skipped)\n");
    else if (rows)
        rows_table(e, pp);
    if (!prompt && (so.draft || so.lookup == 1 || so.draft_max))
        prompt = "Write a short story about a robot who learns to paint.";
    if (prompt && gs.on_gpu)
        printf("\n(--prompt: speculative decoding does not run on the GPU yet; skipped)\n");
    else if (prompt)
        rc = spec_compare(m, prompt, tg, &so, mo.mp.cache_dir);
    free(ids);
    free(logits);
    air_kv_free(&kv);
    air_model_close(m);
    free(def);
    return rc;
}
