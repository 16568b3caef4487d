/*
 * pipeline_nompi.c - the pipeline's entry points in a build without MPI
 * (AIR_MPI off or no MPI found): one process, every layer local.
 */
#include <stdlib.h>

#include "dist/pipeline.h"
#include "util/error.h"

air_status air_dist_init(int *argc, char ***argv) {
    (void)argc;
    (void)argv;
    const char *v = getenv("OMPI_COMM_WORLD_SIZE");
    if (!v)
        v = getenv("PMI_SIZE");
    if (v && atoi(v) > 1)
        return air_err(AIR_ERR_UNSUPPORTED,
                       "started by mpirun with %s ranks, but this airllm was "
                       "built without MPI; install Open MPI (libopenmpi-dev) and rebuild with "
                       "-DAIR_MPI=ON",
                       v);
    return AIR_OK;
}
int air_dist_rank(void) {
    return 0;
}
int air_dist_size(void) {
    return 1;
}
void air_dist_finalize(void) {}
int air_pipe_available(void) {
    return 0;
}

air_status air_pipe_plan(const air_hparams *hp, int compression, uint64_t ram_budget,
                         int *first_unit, int *last_unit) {
    (void)compression;
    (void)ram_budget;
    *first_unit = -1;
    *last_unit = hp->n_layer;
    return air_err(AIR_ERR_UNSUPPORTED, "built without MPI");
}
air_status air_pipe_attach(air_engine *e) {
    (void)e;
    return air_err(AIR_ERR_UNSUPPORTED, "built without MPI");
}
void air_pipe_detach(air_engine *e) {
    (void)e;
}
air_status air_pipe_forward(air_engine *e, const air_batch *b) {
    (void)e;
    (void)b;
    return air_err(AIR_ERR_UNSUPPORTED, "built without MPI");
}
air_status air_pipe_worker(air_engine *e) {
    (void)e;
    return air_err(AIR_ERR_INVALID_ARG, "air_pipeline_worker: this airllm was built without MPI");
}
void air_pipe_note_kv_free(uint64_t id) {
    (void)id;
}
void air_pipe_note_keep_path(uint64_t id, int base, const int32_t *slots, int n) {
    (void)id;
    (void)base;
    (void)slots;
    (void)n;
}
int air_pipe_get_stats(const air_engine *e, air_pipe_stats *st) {
    (void)e;
    (void)st;
    return 0;
}
