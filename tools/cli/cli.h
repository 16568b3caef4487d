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
int cli_serve(int argc, char **argv); /* tools/server/serve.c */

int cli_interrupted(void *user);

/* Options every model-opening command takes. */
typedef struct {
    air_model_params mp;
    air_progress_bar bar;
    int quiet;
} cli_model_opts;

void cli_model_opts_init(cli_model_opts *o);
/* Handles one of the shared long options; returns 1 if it was one. */
int cli_model_opt(cli_model_opts *o, int opt, const char *arg);
/* The default model path, or NULL if it is not fetched. Caller frees. */
char *cli_default_model(void);
/* Parses "8G", "512M", "1.5GiB" ... into bytes; -1 on error. */
long long cli_parse_size(const char *s);
/* Opens the model with progress on stderr; prints the error and returns NULL. */
air_model *cli_open(const char *model, cli_model_opts *o);

#define CLI_MODEL_OPTIONS                                                                          \
    {"compression", required_argument, 0, 'c'}, {"cache-dir", required_argument, 0, 1001},         \
        {"max-seq-len", required_argument, 0, 1002}, {"no-prefetch", no_argument, 0, 1003},        \
        {"ram", required_argument, 0, 1004}, {"threads", required_argument, 0, 't'},               \
        {"hf-token", required_argument, 0, 1005}, {"revision", required_argument, 0, 1006},        \
        {"delete-original", no_argument, 0, 1007}, {"quiet", no_argument, 0, 'q'}

#define CLI_MODEL_HELP                                                                             \
    "Model options:\n"                                                                             \
    "  -c, --compression C   4bit (default on Linux), 8bit (default for .gguf) or none\n"         \
    "      --cache-dir DIR   where layer stores go (default $AIRLLM_CACHE or ~/.cache/airllm)\n"  \
    "      --max-seq-len N   context length (default: the model's, at most 4096)\n"              \
    "      --no-prefetch     do not read the next layer while the current one computes\n"         \
    "      --ram SIZE        keep this much of the model resident (e.g. 8G; 0 = stream all\n"  \
    "                        layers; default: half of the available memory)\n"         \
    "  -t, --threads N       compute threads (default: all cores)\n"                             \
    "      --hf-token TOKEN  token for gated hub models (default $HF_TOKEN)\n"                   \
    "      --revision REV    hub branch, tag or commit (default main)\n"                         \
    "      --delete-original delete source shards once they are split\n"                         \
    "  -q, --quiet           no progress output\n"

#endif
