/*
 * serve.c - `airllm serve [MODEL ...]`: loads the models, starts one
 * scheduler per model and the HTTP front, and runs until SIGINT/SIGTERM.
 *
 * The HTTP front listens before the models load, so GET /health answers 503
 * during the load and 200 after; "listening on http://HOST:PORT" is printed
 * on stderr once the models are ready.
 */
#include <arpa/inet.h>
#include <getopt.h>
#include <netdb.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "server.h"

static volatile sig_atomic_t g_stop;
static void on_signal(int sig) {
    (void)sig;
    g_stop = 1;
}

static void usage(FILE *f) {
    fprintf(f, "Usage: airllm serve [MODEL ...] [options]\n"
               "\n"
               "Serves the models over HTTP with the OpenAI API (/v1/chat/completions,\n"
               "/v1/completions, /v1/models) and the Ollama API (/api/chat, /api/generate,\n"
               "/api/tags, /api/show, /api/version). Concurrent requests share each sweep of\n"
               "the layers. MODEL defaults to the bundled SmolLM2-135M-Instruct.\n"
               "\n"
               "Server options:\n"
               "      --host HOST         address to bind (default 127.0.0.1)\n"
               "      --port N            port (default 8080; 0 = any free port)\n"
               "      --api-key KEY       require \"Authorization: Bearer KEY\" (default\n"
               "                          $AIRLLM_API_KEY); needed to bind a non-loopback address\n"
               "      --max-batch N       requests in one sweep (default 16)\n"
               "      --max-queue N       requests waiting beyond those (default 64; more: 503)\n"
               "      --ctx N             context length of each request (default: --max-seq-len)\n"
               "      --max-connections N open connections at most (default 128)\n"
               "      --max-body SIZE     largest request body (default 4M; larger: 413)\n"
               "      --timeout S         seconds a connection may stay idle (sending nothing\n"
               "                          while the server waits for its request) (default 30)\n"
               "      --kv-ram SIZE       memory for the KV caches of all requests together; a\n"
               "                          request waits until its cache fits. It counts against\n"
               "                          --ram: layers get --ram minus this. Default: a quarter\n"
               "                          of --ram when --ram is given (> 0), else --max-batch\n"
               "                          full contexts\n"
               "\n" CLI_MODEL_HELP "\n" CLI_SPEC_HELP
               "  Each decoding request adds its own candidates to a sweep; their number is\n"
               "  chosen for the whole sweep from measured costs. A draft's cache per request\n"
               "  counts against --kv-ram.\n"
               "\n"
               "Examples:\n"
               "  airllm serve\n"
               "  airllm serve ./Qwen2.5-7B-Instruct --ram 4G --port 11434\n"
               "  airllm serve Qwen/Qwen2.5-7B-Instruct --ram 2G --draft Qwen/Qwen2.5-0.5B-Instruct\n"
               "  AIRLLM_API_KEY=secret airllm serve --host 0.0.0.0\n");
}

/* 1 when host resolves only to loopback addresses. */
static int is_loopback(const char *host) {
    struct addrinfo hints = {0}, *ai = NULL;
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    if (getaddrinfo(host, NULL, &hints, &ai) != 0)
        return 0;
    int all = 1;
    for (struct addrinfo *p = ai; p; p = p->ai_next) {
        if (p->ai_family == AF_INET) {
            uint32_t a = ntohl(((struct sockaddr_in *)p->ai_addr)->sin_addr.s_addr);
            all &= (a >> 24) == 127;
        } else if (p->ai_family == AF_INET6) {
            const struct in6_addr *a = &((struct sockaddr_in6 *)p->ai_addr)->sin6_addr;
            all &= IN6_IS_ADDR_LOOPBACK(a);
        } else {
            all = 0;
        }
    }
    freeaddrinfo(ai);
    return all;
}

/* The name clients use: the file or folder name ("org/name" for hub ids). */
static char *model_id(const char *ref) {
    if (access(ref, F_OK) != 0)
        return strdup(ref); /* a hub id */
    size_t n = strlen(ref);
    while (n > 1 && ref[n - 1] == '/')
        n--;
    const char *b = ref + n;
    while (b > ref && b[-1] != '/')
        b--;
    return strndup(b, (size_t)(ref + n - b));
}

int cli_serve(int argc, char **argv) {
    cli_model_opts mo;
    cli_model_opts_init(&mo);
    const char *host = "127.0.0.1";
    int port = 8080, max_conn = 128, ctx = 0, timeout_s = 30;
    const char *api_key = getenv("AIRLLM_API_KEY");
    if (api_key && !*api_key)
        api_key = NULL;
    air_sched_params sp = air_sched_default_params();
    cli_spec_opts spo;
    cli_spec_opts_init(&spo);
    long long max_body = 4 << 20, kv_ram = 0;
    static struct option opts[] = {{"host", required_argument, 0, 3101},
                                   {"port", required_argument, 0, 3102},
                                   {"api-key", required_argument, 0, 3103},
                                   {"max-batch", required_argument, 0, 3104},
                                   {"ctx", required_argument, 0, 3105},
                                   {"max-queue", required_argument, 0, 3106},
                                   {"max-connections", required_argument, 0, 3107},
                                   {"max-body", required_argument, 0, 3108},
                                   {"kv-ram", required_argument, 0, 3109},
                                   {"timeout", required_argument, 0, 3110},
                                   {"help", no_argument, 0, 'h'},
                                   CLI_MODEL_OPTIONS,
                                   CLI_SPEC_OPTIONS,
                                   {0, 0, 0, 0}};
    int c;
    while ((c = getopt_long(argc, argv, "c:t:qh", opts, NULL)) != -1) {
        if (cli_model_opt(&mo, c, optarg) || cli_spec_opt(&spo, c, optarg))
            continue;
        switch (c) {
        case 3101:
            host = optarg;
            break;
        case 3102:
            port = atoi(optarg);
            break;
        case 3103:
            api_key = *optarg ? optarg : NULL;
            break;
        case 3104:
            sp.max_batch = atoi(optarg);
            break;
        case 3105:
            ctx = atoi(optarg);
            break;
        case 3106:
            sp.max_queue = atoi(optarg);
            break;
        case 3107:
            max_conn = atoi(optarg);
            break;
        case 3108:
            max_body = cli_parse_size(optarg);
            break;
        case 3109:
            kv_ram = cli_parse_size(optarg);
            break;
        case 3110:
            timeout_s = atoi(optarg);
            break;
        case 'h':
            usage(stdout);
            return 0;
        default:
            usage(stderr);
            return 2;
        }
    }
    if (port < 0 || port > 65535 || sp.max_batch < 1 || sp.max_queue < 0 || max_conn < 1 ||
        ctx < 0 || max_body <= 0 || kv_ram < 0 || timeout_s < 1) {
        fprintf(stderr, "airllm serve: --port must be 0..65535, --max-batch, --max-connections "
                        "and --max-body positive, --max-queue and --ctx not negative\n");
        return 2;
    }
    if (!api_key && !is_loopback(host)) {
        fprintf(stderr,
                "airllm serve: binding %s (not a loopback address) needs an API key: "
                "give --api-key KEY or set AIRLLM_API_KEY\n",
                host);
        return 2;
    }
    /* the KV caches count against the RAM budget: layers get the rest */
    uint64_t ram = mo.mp.ram_budget;
    if (ram != AIR_RAM_AUTO && ram > 0) {
        if (kv_ram == 0)
            kv_ram = (long long)(ram / 4);
        if ((uint64_t)kv_ram >= ram) {
            fprintf(stderr, "airllm serve: --kv-ram must be smaller than --ram\n");
            return 2;
        }
        mo.mp.ram_budget = ram - (uint64_t)kv_ram;
    }
    sp.kv_budget = (uint64_t)kv_ram; /* 0: max_batch full contexts */
    if (ctx > 0 && mo.mp.max_seq_len < ctx)
        mo.mp.max_seq_len = ctx; /* the model's context must hold a request's */
    sp.max_seq_len = ctx;
    /* speculation per request, as `run` takes it */
    air_gen_params sgp = air_gen_default_params();
    cli_spec_apply(&spo, &sgp);
    sp.draft_model = sgp.draft_model;
    sp.draft_compression = sgp.draft_compression;
    sp.lookup = sgp.lookup;
    sp.speculative = sgp.speculative;
    sp.draft_max = sgp.draft_max;

    int n_models = argc - optind;
    char *default_model = NULL;
    if (n_models == 0) {
        default_model = cli_default_model();
        if (!default_model) {
            fprintf(stderr, "airllm serve: no model given and the default model is not fetched; "
                            "run scripts/fetch-default-model.sh or name a model\n");
            return 1;
        }
    }
    server srv;
    memset(&srv, 0, sizeof srv);
    srv.api_key = api_key;
    srv.max_body = (size_t)max_body;
    atomic_init(&srv.next_id, 1);
    srv.n_models = n_models ? n_models : 1;
    srv.models = calloc((size_t)srv.n_models, sizeof *srv.models);

    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);

    int rc = 0, bound = 0;
    /* under mpirun, ranks above 0 only serve rank 0's passes (cli_open) */
    if (air_dist_rank() == 0 && srv_start(&srv, host, port, max_conn, timeout_s, &bound)) {
        rc = 1;
        goto out;
    }
    for (int i = 0; i < srv.n_models && !g_stop; i++) {
        const char *ref = n_models ? argv[optind + i] : default_model;
        srv_model *m = &srv.models[i];
        m->id = model_id(ref);
        if (!(m->m = cli_open(ref, &mo))) {
            rc = 1;
            goto out;
        }
        air_model_get_info(m->m, &m->info);
        if (air_sched_start(m->m, &sp, &m->sched)) {
            fprintf(stderr, "airllm serve: %s\n", air_last_error());
            rc = 1;
            goto out;
        }
        srv.ctx = ctx > 0 ? ctx : m->info.max_seq_len;
    }
    if (g_stop)
        goto out;
    atomic_store(&srv.ready, 1);
    for (int i = 0; i < srv.n_models; i++)
        fprintf(stderr,
                "serving %s as \"%s\" (%s, %d layers, context %d per request, %d per "
                "sweep)\n",
                srv.models[i].info.name, srv.models[i].id, srv.models[i].info.arch,
                srv.models[i].info.n_layer, srv.ctx, sp.max_batch);
    fprintf(stderr, "listening on http://%s%s%s:%d\n", strchr(host, ':') ? "[" : "", host,
            strchr(host, ':') ? "]" : "", bound);
    while (!g_stop)
        usleep(50000);
    fprintf(stderr, "shutting down\n");
out:
    atomic_store(&srv.stopping, 1);
    srv_stop(); /* waits for the connection threads; their jobs cancel themselves */
    for (int i = 0; i < srv.n_models; i++) {
        air_sched_stop(srv.models[i].sched);
        air_model_close(srv.models[i].m);
        free(srv.models[i].id);
    }
    free(srv.models);
    free(default_model);
    return rc;
}
