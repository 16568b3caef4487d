/*
 * mpi_check.c - one program run alone and under `mpirun -np N` (driven by
 * tests/mpi/test_mpi.py): the same greedy results from one process and from a
 * pipeline of N ranks.
 *
 *   mpi_check check MODEL CACHE OUT   prefill logits, 32 greedy decode steps
 *                                     and 5 concurrent sequences in shared
 *                                     sweeps; asserts the greedy ids are the
 *                                     transformers ones (MODEL/golden.json) and
 *                                     writes every logit and id to OUT, which
 *                                     the driver compares byte for byte with
 *                                     the single-process run's
 *   mpi_check hold MODEL CACHE PIDDIR  writes each rank's pid to PIDDIR/rank<r>,
 *                                     then decodes until a pass fails; prints
 *                                     that error and exits 3
 *
 * Ranks above 0 serve rank 0 (air_pipeline_worker) and exit 0 when it closes.
 * MPI_CHECK_RAM=<bytes> sets every rank's RAM budget (0: stream every layer).
 */
#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "airllm.h"
#include "api_internal.h"
#include "dist/pipeline.h"
#include "runtime/sweep.h"
#include "util/fileio.h"

#define FAIL(...)                                                                                  \
    do {                                                                                           \
        fprintf(stderr, "mpi_check: " __VA_ARGS__);                                                \
        fprintf(stderr, "\n");                                                                     \
        return 1;                                                                                  \
    } while (0)

static int32_t *ids_of(const cJSON *a, int *n) {
    *n = cJSON_GetArraySize(a);
    int32_t *v = malloc(sizeof(int32_t) * (size_t)(*n > 0 ? *n : 1));
    for (int i = 0; i < *n; i++)
        v[i] = (int32_t)cJSON_GetArrayItem(a, i)->valueint;
    return v;
}

static void greedy_opts(air_gen_options *go, int max_tokens) {
    memset(go, 0, sizeof *go);
    go->max_tokens = max_tokens;
    air_sampler_default_params(&go->sampler);
    go->sampler.temperature = 0;
}

static int argmax(const float *v, int n) {
    int b = 0;
    for (int i = 1; i < n; i++)
        if (v[i] > v[b])
            b = i;
    return b;
}

static int check(air_model *m, const char *model_dir, const char *out_path) {
    air_engine *e = m->engine;
    const air_hparams *hp = air_engine_hparams(e);
    const int nv = hp->n_vocab;
    char *gpath = air_path_join(model_dir, "golden.json"), *text = NULL;
    size_t len;
    if (air_read_file(gpath, &text, &len))
        FAIL("%s", air_last_error());
    free(gpath);
    cJSON *g = cJSON_Parse(text);
    free(text);
    int np, ng;
    int32_t *prompt = ids_of(cJSON_GetObjectItem(g, "prompt_ids"), &np);
    int32_t *golden = ids_of(cJSON_GetObjectItem(g, "greedy_ids"), &ng);
    FILE *out = fopen(out_path, "wb");
    if (!out)
        FAIL("cannot write %s", out_path);

    /* prefill: the logits of every prompt position */
    air_kv kv;
    float *all = malloc(sizeof(float) * (size_t)np * nv);
    if (air_kv_init(&kv, hp, 128) || air_engine_eval(e, &kv, prompt, np, 1, all))
        FAIL("prefill: %s", air_last_error());
    fwrite(all, sizeof(float), (size_t)np * nv, out);
    /* decode: greedy, one pass per token, from the cache */
    int tok = argmax(all + (size_t)(np - 1) * nv, nv);
    for (int i = 0; i < ng; i++) {
        if (tok != golden[i])
            FAIL("decode step %d: token %d, transformers gave %d", i, tok, golden[i]);
        if (air_engine_eval(e, &kv, &golden[i], 1, 0, all))
            FAIL("decode step %d: %s", i, air_last_error());
        fwrite(all, sizeof(float), (size_t)nv, out);
        tok = argmax(all, nv);
    }
    air_kv_free(&kv);
    free(all);

    /* concurrent sequences: prompts of different lengths, prompts fed in
     * chunks next to decode rows, different stop points; each must equal
     * the same sequence generated alone */
    enum { NS = 5 };
    air_seq seqs[NS];
    air_seq *ptr[NS];
    int32_t pr[NS][16];
    int plen[NS], maxt[NS];
    for (int s = 0; s < NS; s++) {
        plen[s] = 3 + 2 * s;
        maxt[s] = 6 + 3 * s;
        for (int i = 0; i < plen[s]; i++)
            pr[s][i] = prompt[(i + s) % np];
        air_gen_options go;
        greedy_opts(&go, maxt[s]);
        if (air_seq_init(&seqs[s], hp, pr[s], plen[s], &go, NULL, 64))
            FAIL("seq init: %s", air_last_error());
        ptr[s] = &seqs[s];
    }
    int sweeps = 0, live = NS;
    while (live > 0) {
        if (air_sweep_step(e, ptr, NS, 5, NULL, NULL))
            FAIL("sweep %d: %s", sweeps, air_last_error());
        sweeps++;
        live = 0;
        for (int s = 0; s < NS; s++)
            live += !seqs[s].done;
    }
    for (int s = 0; s < NS; s++) {
        air_gen_options go;
        greedy_opts(&go, maxt[s]);
        air_kv k1;
        int32_t *alone;
        int n_alone;
        if (air_kv_init(&k1, hp, 64) ||
            air_generate(e, &k1, pr[s], plen[s], &go, &alone, &n_alone, NULL))
            FAIL("alone %d: %s", s, air_last_error());
        air_kv_free(&k1);
        if (n_alone != seqs[s].n_gen || memcmp(alone, seqs[s].gen, sizeof(int32_t) * n_alone))
            FAIL("sequence %d: %d tokens in shared sweeps differ from %d alone", s, seqs[s].n_gen,
                 n_alone);
        fwrite(&seqs[s].n_gen, sizeof(int), 1, out);
        fwrite(seqs[s].gen, sizeof(int32_t), (size_t)seqs[s].n_gen, out);
        free(alone);
        air_seq_free(&seqs[s]);
    }
    air_pipe_stats ps = {0};
    air_pipe_get_stats(e, &ps);
    fprintf(stderr,
            "mpi_check: rank 0 of %d: prefill %d rows, %d decode steps, %d sequences in "
            "%d sweeps: all greedy ids as transformers and as alone; pipeline: %ld passes, "
            "%ld micro-batches\n",
            air_dist_size(), np, ng, NS, sweeps, ps.passes, ps.micro_batches);
    fclose(out);
    free(prompt);
    free(golden);
    cJSON_Delete(g);
    return 0;
}

static int hold(air_model *m, const char *pid_dir) {
    const air_hparams *hp = air_engine_hparams(m->engine);
    air_kv kv;
    float *lg = malloc(sizeof(float) * (size_t)hp->n_vocab);
    int32_t t = 1;
    if (air_kv_init(&kv, hp, 64))
        FAIL("%s", air_last_error());
    for (long i = 0;; i++) {
        if (i == 1) { /* the pipeline works: say so, then go on until it breaks */
            char p[1024];
            snprintf(p, sizeof p, "%s/ready", pid_dir);
            FILE *f = fopen(p, "w");
            if (f)
                fclose(f);
        }
        if (kv.n_past >= 60)
            kv.n_past = 0;
        if (air_engine_eval(m->engine, &kv, &t, 1, 0, lg)) {
            fprintf(stderr, "mpi_check: rank 0: pass %ld failed: %s\n", i, air_last_error());
            return 3;
        }
        usleep(2000);
    }
}

int main(int argc, char **argv) {
    if (argc != 5) {
        fprintf(stderr, "usage: mpi_check check|hold MODEL CACHE OUT|PIDDIR\n");
        return 2;
    }
    if (air_dist_init(&argc, &argv))
        FAIL("%s", air_last_error());
    if (!strcmp(argv[1], "hold")) {
        char p[1024];
        snprintf(p, sizeof p, "%s/rank%d", argv[4], air_dist_rank());
        FILE *f = fopen(p, "w");
        if (f) {
            fprintf(f, "%d\n", (int)getpid());
            fclose(f);
        }
    }
    air_model_params mp = air_model_default_params();
    mp.compression = "none";
    mp.cache_dir = argv[3];
    mp.n_threads = 1;
    mp.max_seq_len = 128;
    const char *ram = getenv("MPI_CHECK_RAM"); /* "0": every rank streams its layers */
    if (ram && *ram)
        mp.ram_budget = strtoull(ram, NULL, 10);
    air_model *m;
    if (air_model_open(argv[2], &mp, &m))
        FAIL("rank %d: open: %s", air_dist_rank(), air_last_error());
    int rc;
    if (air_dist_rank() > 0) {
        air_status st = air_pipeline_worker(m);
        if (st)
            fprintf(stderr, "mpi_check: rank %d: %s\n", air_dist_rank(), air_last_error());
        rc = st ? 1 : 0;
    } else {
        rc = !strcmp(argv[1], "hold") ? hold(m, argv[4]) : check(m, argv[2], argv[4]);
    }
    air_model_close(m);
    if (rc == 0) /* after a failure the launcher ends the job */
        air_dist_finalize();
    return rc;
}
