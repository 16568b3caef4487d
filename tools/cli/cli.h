/*
 * cli.h - the subcommands of the airllm command and their shared options.
 */
#ifndef AIR_CLI_H
#define AIR_CLI_H

#include "airllm.h"
#include "util/progress.h"

int cli_run(int argc, char **argv);
int cli_pull(int argc, char **argv);
int cli_list(int argc, char **argv);
int cli_rm(int argc, char **argv);
int cli_bench(int argc, char **argv);
/* airllm bench --ram-sweep (cli_bench_sweep.c). */
int cli_bench_ram_sweep(const air_model *m, int steps, int pp, int tg, int n_threads, int prefetch,
                        double disk_gbs, int json);
int cli_serve(int argc, char **argv); /* tools/server/serve.c */

/* Non-zero once SIGINT or SIGTERM arrived (an abort callback for the library). */
int cli_interrupted(void *user);
/* The exit code for a failed call: 128 + the signal when it was interrupted,
 * else 1. */
int cli_exit_code(air_status st);

/* Options every model-opening command takes. */
typedef struct {
    air_model_params mp;
    air_progress_bar bar;
    int quiet;
    int rc; /* exit code after cli_open failed */
} cli_model_opts;

void cli_model_opts_init(cli_model_opts *o);
/* Handles one of the shared long options; returns 1 if it was one. */
int cli_model_opt(cli_model_opts *o, int opt, const char *arg);
/* The default model path, or NULL if it is not fetched. Caller frees. */
char *cli_default_model(void);
/* Parses "8G", "512M", "1.5GiB" ... into bytes; -1 on error. */
long long cli_parse_size(const char *s);
/* Numeric option values, checked whole and against [lo, hi]: on a bad value
 * these print what `opt` accepts and exit with code 2. */
long long cli_opt_int(const char *opt, const char *arg, long long lo, long long hi);
double cli_opt_float(const char *opt, const char *arg, double lo, double hi);
uint64_t cli_opt_u64(const char *opt, const char *arg);
/* Opens the model with progress on stderr (Ctrl-C aborts a split); prints the
 * error, sets o->rc and returns NULL on failure. */
air_model *cli_open(const char *model, cli_model_opts *o);

#define CLI_MODEL_OPTIONS                                                                          \
    {"compression", required_argument, 0, 'c'}, {"cache-dir", required_argument, 0, 1001},         \
        {"max-seq-len", required_argument, 0, 1002}, {"no-prefetch", no_argument, 0, 1003},        \
        {"ram", required_argument, 0, 1004}, {"threads", required_argument, 0, 't'},               \
        {"hf-token", required_argument, 0, 1005}, {"revision", required_argument, 0, 1006},        \
        {"delete-original", no_argument, 0, 1007}, {"quiet", no_argument, 0, 'q'},                 \
        {"device", required_argument, 0, 1008}, {"vram", required_argument, 0, 1009}

#define CLI_MODEL_HELP                                                                             \
    "Model options:\n"                                                                             \
    "  -c, --compression C   4bit (default on Linux), 8bit (default for .gguf) or none\n"         \
    "      --cache-dir DIR   where layer stores go (default $AIRLLM_CACHE or ~/.cache/airllm)\n"  \
    "      --max-seq-len N   context length (default: the model's, at most 4096)\n"              \
    "      --no-prefetch     do not read the next layer while the current one computes\n"         \
    "      --ram SIZE        keep this much of the model resident (e.g. 8G; 0 = stream all\n"  \
    "                        layers; default: 3/4 of the memory available, container\n"   \
    "                        limits included, less streaming buffers and KV cache)\n"      \
    "  -t, --threads N       compute threads (default: all cores)\n"                             \
    "      --device D        auto (default: the GPU when the CUDA plugin, a driver and a GPU\n"  \
    "                        are there and the model runs on it, else the CPU), cpu, cuda\n"  \
    "      --vram SIZE       GPU memory to use (e.g. 4G): layers that fit stay on the GPU,\n"  \
    "                        the rest stream through it (default: what is free, less 1/16)\n" \
    "      --hf-token TOKEN  token for gated hub models (default $HF_TOKEN)\n"                   \
    "      --revision REV    hub branch, tag or commit (default main)\n"                         \
    "      --delete-original delete source shards once they are split\n"                         \
    "  -q, --quiet           no progress output\n"

/* Speculative decoding options (run, bench). */
typedef struct {
    const char *draft, *draft_compression;
    int lookup;    /* -1 automatic */
    int draft_max; /* 0 automatic */
} cli_spec_opts;

void cli_spec_opts_init(cli_spec_opts *o);
/* Handles one of the speculation options; returns 1 if it was one. */
int cli_spec_opt(cli_spec_opts *o, int opt, const char *arg);
void cli_spec_apply(const cli_spec_opts *o, air_gen_params *gp);

#define CLI_SPEC_OPTIONS                                                                           \
    {"draft", required_argument, 0, 3001}, {"draft-compression", required_argument, 0, 3002},      \
        {"lookup", no_argument, 0, 3003}, {"no-lookup", no_argument, 0, 3004},                     \
        {"draft-max", required_argument, 0, 3005}, {"no-speculation", no_argument, 0, 3006}

#define CLI_SPEC_HELP                                                                              \
    "Speculative decoding (several tokens per pass over the layers; same output):\n"               \
    "      --draft MODEL     a small model with the same vocabulary, kept resident\n"             \
    "      --draft-compression C  the draft's compression (default 4bit)\n"                      \
    "      --lookup          propose continuations of n-grams seen in the prompt and output\n"    \
    "                        (default: on when the model is not fully resident)\n"              \
    "      --no-lookup       no n-gram lookup\n"                                                 \
    "      --draft-max N     candidate tokens per pass, 1..64 (default: automatic, from the\n"   \
    "                        measured cost of passes; off where it does not pay)\n"             \
    "      --no-speculation  one token per pass\n"

#endif
