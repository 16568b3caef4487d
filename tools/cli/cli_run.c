/*
 * cli_run.c - `airllm run`: one answer streamed to stdout, or an interactive
 * chat when stdin is a terminal and no prompt is given.
 */
#include <getopt.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "util/fileio.h"
#include "util/strbuf.h"

static void usage(FILE *f) {
    fprintf(f,
            "Usage: airllm run [MODEL] [PROMPT] [options]\n"
            "\n"
            "Streams the model's answer to PROMPT (read from stdin when not given; an\n"
            "interactive chat when stdin is a terminal). MODEL defaults to the bundled\n"
            "SmolLM2-135M-Instruct.\n"
            "\n"
            "Generation options:\n"
            "  -s, --system TEXT       system prompt\n"
            "  -n, --max-tokens N      tokens to generate at most (default 256)\n"
            "      --temperature T     sampling temperature, 0 = greedy (default 0.7)\n"
            "      --top-p P           nucleus sampling (default 0.95; 1 = off)\n"
            "      --top-k K           top-k sampling (default 40; 0 = off)\n"
            "      --min-p P           drop tokens below P x the top probability (default 0.05)\n"
            "      --seed N            random seed (default 0, a fixed seed)\n"
            "      --stop TEXT         stop when TEXT is generated (repeatable)\n"
            "      --json              answer with a JSON object (constrained decoding)\n"
            "      --raw               continue PROMPT as it is: no chat template (base models)\n"
            "      --schema FILE       answer with a JSON object valid against the JSON schema\n"
            "                          in FILE (the subset in docs/json-mode.md)\n"
            "      --stats             print token counts and speed on stderr\n"
            "\n" CLI_SPEC_HELP "\n" CLI_MODEL_HELP "\n"
            "Examples:\n"
            "  airllm run \"Why is the sky blue?\"\n"
            "  airllm run ./Qwen2.5-7B-Instruct \"Hello\" --temperature 0 -n 64\n");
}

static int print_piece(void *user, const char *piece) {
    (void)user;
    fputs(piece, stdout);
    fflush(stdout);
    return 0;
}

static char *read_all_stdin(void) {
    air_strbuf sb = {0};
    char buf[4096];
    size_t n;
    while ((n = fread(buf, 1, sizeof buf, stdin)) > 0)
        air_sb_append(&sb, buf, n);
    return air_sb_take(&sb);
}

static int report(const air_result *r, int stats) {
    if (stats)
        fprintf(stderr,
                "\n[%d prompt tokens, %.2f tok/s prefill; %d generated, %.2f tok/s decode; "
                "finish: %s]\n"
                "[%d sweeps, %.2f tokens/sweep; %d of %d candidates accepted (%.0f%%)]\n",
                r->prompt_tokens, r->prefill_tokens_per_s, r->completion_tokens,
                r->decode_tokens_per_s, r->finish_reason, r->sweeps, r->tokens_per_sweep,
                r->accepted, r->drafted, 100.0 * r->acceptance_rate);
    return 0;
}

int cli_run(int argc, char **argv) {
    cli_model_opts mo;
    cli_model_opts_init(&mo);
    cli_spec_opts so;
    cli_spec_opts_init(&so);
    air_gen_params gp = air_gen_default_params();
    const char *system = NULL;
    const char *stops[16];
    int stats = 0;
    const char *schema_file = NULL;
    char *schema_text = NULL;
    static struct option opts[] = {{"system", required_argument, 0, 's'},
                                   {"max-tokens", required_argument, 0, 'n'},
                                   {"temperature", required_argument, 0, 2001},
                                   {"top-p", required_argument, 0, 2002},
                                   {"top-k", required_argument, 0, 2003},
                                   {"seed", required_argument, 0, 2004},
                                   {"min-p", required_argument, 0, 2008},
                                   {"stop", required_argument, 0, 2005},
                                   {"json", no_argument, 0, 2006},
                                   {"schema", required_argument, 0, 2012},
                                   {"stats", no_argument, 0, 2007},
                                   {"raw", no_argument, 0, 2009},
                                   {"help", no_argument, 0, 'h'},
                                   CLI_MODEL_OPTIONS,
                                   CLI_SPEC_OPTIONS,
                                   {0, 0, 0, 0}};
    int c;
    while ((c = getopt_long(argc, argv, "s:n:c:t:qh", opts, NULL)) != -1) {
        if (cli_model_opt(&mo, c, optarg) || cli_spec_opt(&so, c, optarg))
            continue;
        switch (c) {
        case 's': system = optarg; break;
        case 'n': gp.max_tokens = (int)cli_opt_int("-n/--max-tokens", optarg, 0, INT_MAX); break;
        case 2001:
            gp.temperature = (float)cli_opt_float("--temperature", optarg, 0, INFINITY);
            break;
        case 2002: gp.top_p = (float)cli_opt_float("--top-p", optarg, 0, 1); break;
        case 2003: gp.top_k = (int)cli_opt_int("--top-k", optarg, 0, INT_MAX); break;
        case 2004: gp.seed = cli_opt_u64("--seed", optarg); break;
        case 2008: gp.min_p = (float)cli_opt_float("--min-p", optarg, 0, 1); break;
        case 2005:
            if (gp.n_stop == 16) {
                fprintf(stderr, "airllm: --stop: at most 16 stop strings\n");
                return 2;
            }
            stops[gp.n_stop++] = optarg;
            break;
        case 2006: gp.json = 1; break;
        case 2012: schema_file = optarg; break;
        case 2007: stats = 1; break;
        case 2009: gp.raw = 1; break;
        case 'h': usage(stdout); return 0;
        default: usage(stderr); return 2;
        }
    }
    if (gp.json && gp.max_tokens < 2) {
        fprintf(stderr, "airllm: --json needs -n 2 or more: the shortest JSON object, {}, takes "
                        "two tokens\n");
        return 2;
    }
    if (schema_file) {
        size_t len = 0;
        if (air_read_file(schema_file, &schema_text, &len) != AIR_OK) {
            fprintf(stderr, "airllm: %s\n", air_last_error());
            return 1;
        }
        gp.json_schema = schema_text;
    }
    gp.stop = stops;
    cli_spec_apply(&so, &gp);
    gp.on_text = print_piece;
    gp.should_abort = cli_interrupted;

    /* [MODEL] [PROMPT]: one positional argument is a model if it names one */
    const char *model = NULL, *prompt = NULL;
    char *default_model = NULL;
    int npos = argc - optind;
    if (npos >= 2) {
        model = argv[optind];
        prompt = argv[optind + 1];
    } else if (npos == 1) {
        const char *a = argv[optind];
        if (access(a, F_OK) == 0 || (strchr(a, '/') && !strchr(a, ' ')))
            model = a;
        else
            prompt = a;
    }
    if (!model) {
        default_model = cli_default_model();
        if (!default_model) {
            fprintf(stderr, "airllm: no model given and the default model is not fetched; run "
                            "scripts/fetch-default-model.sh or name a model\n");
            free(schema_text);
            return 1;
        }
        model = default_model;
    }
    air_model *m = cli_open(model, &mo);
    if (!m) {
        free(default_model);
        free(schema_text);
        return mo.rc;
    }
    air_model_info info;
    air_model_get_info(m, &info);
    if (!info.has_chat_template)
        fprintf(stderr,
                "airllm: %s has no chat template; the prompt is sent as plain \"role: "
                "content\" lines, which the model may not have been trained on\n",
                model);
    int rc = 0;
    if (prompt || !isatty(0)) {
        char *in = prompt ? NULL : read_all_stdin();
        air_result r;
        air_status st = air_generate_text(m, system, prompt ? prompt : in, &gp, &r);
        free(in);
        if (st) {
            fprintf(stderr, "\nairllm: %s\n", air_last_error());
            rc = cli_exit_code(st);
        } else {
            fputc('\n', stdout);
            report(&r, stats);
            air_result_free(&r);
        }
    } else {
        /* interactive chat */
        air_message *hist = NULL;
        int n = 0;
        if (system) {
            hist = realloc(hist, sizeof *hist * (size_t)(n + 1));
            hist[n++] = (air_message){.role = "system", .content = strdup(system)};
        }
        fprintf(stderr, "Chatting with %s. Empty line or Ctrl-D to quit.\n", model);
        char line[8192];
        for (;;) {
            fprintf(stderr, ">>> ");
            if (!fgets(line, sizeof line, stdin))
                break;
            line[strcspn(line, "\n")] = 0;
            if (!*line)
                break;
            hist = realloc(hist, sizeof *hist * (size_t)(n + 2));
            hist[n++] = (air_message){.role = "user", .content = strdup(line)};
            air_result r;
            air_status st = air_chat(m, hist, n, &gp, &r);
            if (st) {
                fprintf(stderr, "\nairllm: %s\n", air_last_error());
                n--;
                free((char *)hist[n].content);
                if (st == AIR_ERR_ABORTED)
                    break;
                continue;
            }
            fputc('\n', stdout);
            report(&r, stats);
            hist[n++] = (air_message){.role = "assistant", .content = r.text};
        }
        for (int i = 0; i < n; i++)
            free((char *)hist[i].content);
        free(hist);
    }
    air_model_close(m);
    free(default_model);
    free(schema_text);
    return rc;
}
