/*
 * main.c - the `airllm` command: a thin layer over the public API.
 *
 *   airllm run [MODEL] [PROMPT]   stream an answer (stdin when no prompt;
 *                                 interactive chat when stdin is a terminal)
 *   airllm pull MODEL             download and split, with progress
 *   airllm list                   layer stores on disk, with sizes
 *   airllm rm MODEL               delete a model's layer stores
 *   airllm bench [MODEL]          speed against the disk's bandwidth
 *   airllm serve [MODEL ...]      OpenAI- and Ollama-compatible HTTP server
 *
 * Exit codes: 0 success, 1 error from the library (message on stderr),
 * 2 bad usage, 130 interrupted (143 for SIGTERM).
 */
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "airllm.h"
#include "cli.h"
#include "util/progress.h"

/* SIGINT/SIGTERM: the first one asks the library to stop at its next check
 * (between tokens, between tensors of a split); the handler is then reset, so
 * a second one ends the process at once. */
static volatile sig_atomic_t g_interrupted;
static void on_signal(int sig) {
    g_interrupted = sig;
}
int cli_interrupted(void *user) {
    (void)user;
    return g_interrupted != 0;
}
int cli_exit_code(air_status st) {
    if (st != AIR_ERR_ABORTED)
        return 1;
    return 128 + (g_interrupted ? g_interrupted : SIGINT);
}

static void usage_main(FILE *f) {
    fprintf(f,
            "airllm %s - run large language models layer by layer from disk\n"
            "\n"
            "Usage: airllm <command> [options]\n"
            "\n"
            "Commands:\n"
            "  run [MODEL] [PROMPT]   generate an answer, streamed to stdout\n"
            "  pull MODEL             download (hub id) and split a model into its layer store\n"
            "  list                   list layer stores on disk with their sizes\n"
            "  rm MODEL               delete the layer stores of a model\n"
            "  bench [MODEL]          measure prefill/decode speed against disk bandwidth\n"
            "  serve [MODEL ...]      OpenAI- and Ollama-compatible HTTP server\n"
            "\n"
            "MODEL is a Hugging Face id (org/name), a local Hugging Face folder or a .gguf file;\n"
            "without one, the default model (SmolLM2-135M-Instruct, fetched by\n"
            "scripts/fetch-default-model.sh) is used.\n"
            "\n"
            "Examples:\n"
            "  airllm run \"What is the capital of France?\"\n"
            "  airllm run Qwen/Qwen2.5-7B-Instruct \"Explain entanglement\" --max-tokens 128\n"
            "  echo \"Summarize relativity\" | airllm run ./Meta-Llama-3.1-8B-Instruct --compression 8bit\n"
            "  airllm run --json \"List 3 languages under the key 'languages'\"\n"
            "  airllm pull meta-llama/Meta-Llama-3.1-70B-Instruct\n"
            "  airllm bench ./my-model --prompt-tokens 64 --gen-tokens 16\n"
            "\n"
            "Run 'airllm <command> --help' for the options of a command.\n"
            "Exit codes: 0 ok, 1 error, 2 bad usage, 130 interrupted.\n",
            air_version());
}

int main(int argc, char **argv) {
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sa.sa_flags = SA_RESETHAND | SA_RESTART;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    if (argc < 2) {
        usage_main(stderr);
        return 2;
    }
    const char *isa = getenv("AIR_ISA");
    if (isa && *isa) {
        char want[48];
        snprintf(want, sizeof want, "kernels: %s;", isa);
        if (strncmp(air_system_info(), want, strlen(want)))
            fprintf(stderr, "airllm: AIR_ISA=%s is not an instruction set this CPU supports (%s); "
                    "using the best one\n", isa, air_system_info());
    }
    const char *cmd = argv[1];
    if (!strcmp(cmd, "-h") || !strcmp(cmd, "--help") || !strcmp(cmd, "help")) {
        usage_main(stdout);
        return 0;
    }
    if (!strcmp(cmd, "--version") || !strcmp(cmd, "version")) {
        printf("airllm %s\n%s\n", air_version(), air_system_info());
        return 0;
    }
    /* under mpirun: join the job; the ranks above 0 serve rank 0's passes
     * from the first model they open (cli_open) */
    if (air_dist_init(&argc, &argv) != AIR_OK) {
        fprintf(stderr, "airllm: %s\n", air_last_error());
        return 1;
    }
    argc--;
    argv++;
    int rc = 2;
    if (!strcmp(cmd, "run"))
        rc = cli_run(argc, argv);
    else if (!strcmp(cmd, "pull"))
        rc = cli_pull(argc, argv);
    else if (!strcmp(cmd, "list") || !strcmp(cmd, "ls"))
        rc = cli_list(argc, argv);
    else if (!strcmp(cmd, "rm"))
        rc = cli_rm(argc, argv);
    else if (!strcmp(cmd, "bench"))
        rc = cli_bench(argc, argv);
    else if (!strcmp(cmd, "serve"))
        rc = cli_serve(argc, argv);
    else
        fprintf(stderr, "airllm: unknown command '%s' (see airllm --help)\n", cmd);
    /* a failed rank leaves without finalizing: the launcher then ends the
     * other ranks instead of waiting for them */
    if (rc == 0)
        air_dist_finalize();
    return rc;
}
