/*
 * cli_spec.c - the speculative decoding options of run and bench.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

void cli_spec_opts_init(cli_spec_opts *o) {
    memset(o, 0, sizeof *o);
    o->lookup = -1;
}

int cli_spec_opt(cli_spec_opts *o, int opt, const char *arg) {
    switch (opt) {
    case 3001:
        o->draft = arg;
        return 1;
    case 3002:
        o->draft_compression = arg;
        return 1;
    case 3003:
        o->lookup = 1;
        return 1;
    case 3004:
        o->lookup = 0;
        return 1;
    case 3005: {
        char *end;
        long v = strtol(arg, &end, 10);
        if (*end || v < 1 || v > 64) {
            fprintf(stderr, "airllm: --draft-max: expected 1..64 candidate tokens, got '%s'\n",
                    arg);
            exit(2);
        }
        o->draft_max = (int)v;
        return 1;
    }
    case 3006:
        o->lookup = -2;
        return 1;
    }
    return 0;
}

void cli_spec_apply(const cli_spec_opts *o, air_gen_params *gp) {
    gp->draft_model = o->draft;
    gp->draft_compression = o->draft_compression;
    gp->lookup = o->lookup < -1 ? 0 : o->lookup;
    gp->speculative = o->lookup != -2;
    gp->draft_max = o->draft_max;
}
