/*
 * pipeline.h - pipeline parallelism over MPI: the ranks of one MPI job each
 * run a contiguous range of a model's layers and pass the activations on.
 *
 *   rank 0        embeddings, layers [0, h0)       tokenizer, sampler, API
 *   rank 1 ..     layers [h0, h1) ...              a worker loop
 *   last rank     layers [.., n_layer), the head   logits back to rank 0
 *
 * Rank 0's engine forwards every batch through the pipeline: it embeds the
 * rows, runs its layers and sends the activations (rows x n_embd, fp32) with
 * the rows' positions, KV cache ids and tree links to rank 1; each rank runs
 * its layers and sends on; the last rank runs the head and sends the wanted
 * rows' logits back. A batch of several sequences is cut into micro-batches
 * (whole sequences each) when every rank keeps its layers resident, so rank 0
 * computes the next micro-batch while the others run the previous ones.
 *
 * Workers keep one KV cache per sequence of rank 0, created when its id first
 * arrives; rank 0's air_kv_free and air_kv_keep_path are queued and travel
 * with the next batch.
 *
 * Failures: every wait inside a pass polls with a deadline (AIRLLM_PIPELINE_
 * TIMEOUT seconds, default 300) and MPI errors return instead of aborting, so
 * a rank that dies or stalls gives an error naming it, never a hang; the
 * pipeline is then broken and every later pass fails at once.
 *
 * Built only with MPI (the CMake option AIR_MPI); pipeline_nompi.c stands in
 * otherwise. All MPI calls come from one thread at a time.
 */
#ifndef AIR_DIST_PIPELINE_H
#define AIR_DIST_PIPELINE_H

#include <stdint.h>

#include "model/forward.h"

/* 1 when this process is one of several MPI ranks and no engine is bound to
 * the pipeline yet: the next model opened becomes its pipelined one. */
int air_pipe_available(void);

/* Collective over all ranks: the units this rank owns (-1 the embeddings,
 * n_layer the head), sized by each rank's RAM budget (bytes; AIR_RAM_AUTO:
 * what its memory allows) against the estimated unit sizes, or by
 * AIRLLM_PIPELINE_LAYERS on rank 0 ("6,7": layers per rank). */
air_status air_pipe_plan(const air_hparams *hp, int compression, uint64_t ram_budget,
                         int *first_unit, int *last_unit);

/* Collective: binds an engine opened on this rank's units to the pipeline
 * (checks that the ranges of all ranks join up). */
air_status air_pipe_attach(air_engine *e);
/* Rank 0: sends the stop to the workers (with a deadline). Any rank: unbinds. */
void air_pipe_detach(air_engine *e);

/* Rank 0: one forward pass through the pipeline (air_engine_forward). */
air_status air_pipe_forward(air_engine *e, const air_batch *b);

/* Ranks > 0: serves rank 0's passes until it stops the pipeline (AIR_OK) or
 * a peer fails. */
air_status air_pipe_worker(air_engine *e);

/* Rank 0's view of the passes so far. A pass's time splits into rank 0's
 * own work, the workers' (summed over ranks and micro-batches, reported back
 * with the logits) and the rest: messages, waits and idle ranks. */
typedef struct {
    int ranks;
    int lo, hi; /* this rank's layers [lo, hi) */
    long passes, micro_batches;
    double pass_s;       /* wall time of the passes */
    double local_s;      /* rank 0's embeddings and layers */
    double remote_s;     /* the workers' layers and head, summed */
    uint64_t bytes_sent; /* by rank 0 */
} air_pipe_stats;
/* 0 when e is not a pipeline rank. */
int air_pipe_get_stats(const air_engine *e, air_pipe_stats *st);

/* Hooks of kvcache.c on rank 0: a cache freed or compacted. */
void air_pipe_note_kv_free(uint64_t id);
void air_pipe_note_keep_path(uint64_t id, int base, const int32_t *slots, int n);

#endif
