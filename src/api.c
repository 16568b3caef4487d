/*
 * api.c - the public API: open a model (hub id, HF folder or GGUF file),
 * build or reuse its layer store, and generate text through its tokenizer
 * and chat template.
 *
 *   model ref --resolve--> source folder/file --split (once)--> layer store
 *   messages --chat template--> prompt --tokenizer--> ids --engine--> ids
 *   ids --streaming detokenizer--> text pieces --stop strings--> callback
 */
#include <cjson/cJSON.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <xxhash.h>

#include "api_internal.h"
#include "dist/pipeline.h"
#include "source/gguf.h"
#include "source/hub.h"
#include "source/source.h"
#include "text/chat_files.h"
#include "util/error.h"
#include "util/fileio.h"
#include "util/strbuf.h"

const char *air_version(void) { return "0.1.0"; }

void air_free(void *p) { free(p); }

const char *air_default_compression(void) {
#ifdef __APPLE__
    return "none";
#else
    return "4bit";
#endif
}

air_model_params air_model_default_params(void) {
    air_model_params p;
    memset(&p, 0, sizeof p);
    p.prefetching = 1;
    p.ram_budget = AIR_RAM_AUTO;
    return p;
}

air_gen_params air_gen_default_params(void) {
    air_gen_params p;
    memset(&p, 0, sizeof p);
    p.max_tokens = 256;
    p.temperature = 0.7f;
    /* the truncation llama.cpp and Ollama use by default: without it a small
     * model at temperature 0.7 samples from a long tail of junk tokens */
    p.top_k = 40;
    p.top_p = 0.95f;
    p.min_p = 0.05f;
    p.repeat_penalty = 1.0f;
    p.lookup = -1;
    p.speculative = 1;
    return p;
}

/* ---------------------------------------------------------------------------
 * where things live
 * ------------------------------------------------------------------------- */

char *air_default_cache_dir(void) {
    const char *e = getenv("AIRLLM_CACHE");
    if (e && *e)
        return strdup(e);
    e = getenv("XDG_CACHE_HOME");
    if (e && *e)
        return air_path_join(e, "airllm");
    const char *home = getenv("HOME");
    char *c = air_path_join(home && *home ? home : "/tmp", ".cache");
    char *r = air_path_join(c, "airllm");
    free(c);
    return r;
}

static int is_gguf_path(const char *s) {
    size_t n = strlen(s);
    return n > 5 && strcmp(s + n - 5, ".gguf") == 0;
}

/* The requested compression; NULL means the platform's default, but 8bit for
 * a GGUF file (its weights are already quantized). */
static air_status resolve_compression(const char *model, const char *name, air_compression *c) {
    if (!name)
        name = model && is_gguf_path(model) ? "8bit" : air_default_compression();
    if (!air_compression_parse(name, c))
        return air_err(AIR_ERR_INVALID_ARG, "unknown compression \"%s\" (use \"4bit\", \"8bit\" "
                       "or \"none\")", name);
    return AIR_OK;
}

/* The ranges documented on air_model_params, and the compression. */
static air_status check_params(const char *model, const air_model_params *p, air_compression *c) {
    if (p->max_seq_len < 0 || p->max_seq_len > AIR_MAX_SEQ_LEN)
        return air_err(AIR_ERR_INVALID_ARG,
                       "max_seq_len is %d; it must be from 1 to %d, or 0 for the model's (at "
                       "most 4096)",
                       p->max_seq_len, AIR_MAX_SEQ_LEN);
    if (p->n_threads < 0)
        return air_err(AIR_ERR_INVALID_ARG, "n_threads is %d; it must be 0 (one per CPU) or more",
                       p->n_threads);
    air_device dev;
    if (!air_device_parse(p->device, &dev))
        return air_err(AIR_ERR_INVALID_ARG, "device '%s' is not known; give auto, cpu or cuda",
                       p->device);
    return resolve_compression(model, p->compression, c);
}

/* A readable, unique folder name for a model: "<base>-<hash of the key>". */
static char *store_key(const char *display, const char *unique) {
    const char *base = strrchr(display, '/');
    base = base && base[1] ? base + 1 : display;
    char clean[96];
    size_t k = 0;
    for (const char *p = base; *p && k < sizeof clean - 1; p++)
        clean[k++] = (*p == '.' && p == base) ? '_' : (strchr("/\\ :", *p) ? '_' : *p);
    clean[k] = 0;
    char *r = malloc(k + 20);
    snprintf(r, k + 20, "%s-%08x", clean, (unsigned)XXH3_64bits(unique, strlen(unique)));
    return r;
}

/* ---------------------------------------------------------------------------
 * open
 * ------------------------------------------------------------------------- */

static air_status load_text(air_model *m, const air_gguf *g) {
    char *tj = air_path_join(m->store_dir, "tokenizer.json");
    char *tc = air_path_join(m->store_dir, "tokenizer_config.json");
    air_status st = AIR_OK;
    const char *tmpl = NULL, *origin = "the GGUF file";
    char *file_tmpl = NULL;
    if (air_path_exists(tj)) {
        st = air_tokenizer_load(tj, air_path_exists(tc) ? tc : NULL, &m->tok);
        /* chat_template.jinja, tokenizer_config.json, chat_template.json */
        if (!st)
            st = air_chat_template_find(m->store_dir, 0, &file_tmpl, &origin);
        tmpl = file_tmpl;
    } else if (g) {
        air_gguf_tokenizer ti;
        st = air_gguf_tokenizer_info(g, &ti);
        if (!st) {
            air_tok_family fam = ti.model && strcmp(ti.model, "llama") == 0 ? AIR_TOK_BPE_SPM
                                                                            : AIR_TOK_BPE_BYTELEVEL;
            air_tok_array_opts o = air_tok_array_default_opts();
            o.bos_id = ti.bos_id;
            o.eos_id = ti.eos_id;
            o.add_bos = ti.add_bos < 0 ? fam == AIR_TOK_BPE_SPM : ti.add_bos;
            o.add_eos = ti.add_eos > 0;
            if (ti.add_space_prefix >= 0) /* SPM: Gemma's says 0 */
                o.add_space_prefix = ti.add_space_prefix;
            st = air_tokenizer_from_arrays_ex(fam, ti.tokens, ti.scores, ti.types, ti.n_tokens,
                                              ti.merges, ti.n_merges, ti.pre, &o, &m->tok);
            tmpl = ti.chat_template;
            if (ti.eot_id >= 0 && m->n_eos < AIR_MAX_EOS + 2)
                m->eos[m->n_eos++] = ti.eot_id;
        }
    }
    if (!st && tmpl) {
        m->template_src = strdup(tmpl);
        st = air_chat_template_parse(tmpl, &m->tmpl);
        if (st)
            air_err_context(st, "the model's chat template (%s)", origin);
    }
    free(file_tmpl);
    if (!st && !m->tmpl)
        st = air_chat_template_parse(NULL, &m->tmpl); /* the role: content fallback */
    if (!st && m->tok) {
        int32_t e = air_tokenizer_eos_id(m->tok);
        if (e >= 0 && m->n_eos < AIR_MAX_EOS + 2)
            m->eos[m->n_eos++] = e;
    }
    free(tj);
    free(tc);
    return st;
}

/* The model source, to split from. */
static air_status open_source(const char *model, const char *src_path, int is_gguf,
                              const air_model_params *p, air_source **src) {
    air_status st = is_gguf ? air_source_open_gguf(src_path, src)
                            : air_source_open_hfdir(src_path, p->delete_original, src);
    if (st)
        return st;
    free((*src)->name);
    (*src)->name = strdup(model); /* the name `airllm list` shows */
    return AIR_OK;
}

air_status air_model_open(const char *model, const air_model_params *params, air_model **out) {
    *out = NULL;
    if (!model || !*model)
        return air_err(AIR_ERR_INVALID_ARG, "no model given");
    air_model_params p = params ? *params : air_model_default_params();
    air_compression comp;
    air_status cst = check_params(model, &p, &comp);
    if (cst)
        return cst;
    p.n_threads = air_pool_threads(p.n_threads);
    air_model *m = calloc(1, sizeof *m);
    if (!m)
        return air_err(AIR_ERR_NOMEM, "out of memory");
    pthread_mutex_init(&m->mu, NULL);
    m->name = strdup(model);
    m->comp = comp;
    char *src_path = NULL, *cache = NULL, *key = NULL, *sub = NULL;
    air_source *src = NULL;
    air_gguf *gg = NULL;
    air_status st = AIR_OK;
    struct stat sb;
    int is_gguf = 0;

    /* 1. resolve the reference */
    if (stat(model, &sb) == 0) {
        char real[PATH_MAX];
        src_path = strdup(realpath(model, real) ? real : model);
        is_gguf = S_ISREG(sb.st_mode) && is_gguf_path(model);
        if (S_ISREG(sb.st_mode) && !is_gguf) {
            st = air_err(AIR_ERR_UNSUPPORTED, "%s is a file but not a .gguf model; give a Hugging "
                         "Face model folder, a .gguf file or a hub id (org/name)", model);
            goto fail;
        }
        key = store_key(src_path, src_path);
    } else if (air_hub_is_repo_id(model)) {
        air_hub_options ho;
        air_hub_default_options(&ho);
        ho.token = p.hf_token;
        ho.revision = p.revision;
        ho.progress = p.progress;
        ho.progress_user = p.progress_user;
        ho.notice = p.notice;
        char *commit = NULL;
        if ((st = air_hub_snapshot(model, &ho, &src_path, &commit)))
            goto fail;
        char uniq[512];
        snprintf(uniq, sizeof uniq, "%s@%s", model, commit ? commit : "");
        key = store_key(model, uniq);
        free(commit);
    } else {
        st = air_err(AIR_ERR_NOT_FOUND, "model '%s' not found: not a local folder, a .gguf file, "
                     "or a hub id of the form org/name", model);
        goto fail;
    }

    /* 2. the layer store */
    cache = p.cache_dir ? strdup(p.cache_dir) : air_default_cache_dir();
    m->cache_dir = p.cache_dir ? strdup(p.cache_dir) : NULL;
    sub = air_path_join(cache, key);
    m->store_dir = air_path_join(sub, air_compression_name(comp));
    if (is_gguf && (st = air_gguf_open(src_path, &gg)))
        goto fail;
    /* reused only when it was split from exactly the source files there now */
    int current = 0;
    char *fp = air_source_fingerprint(src_path, is_gguf, !p.delete_original);
    st = air_store_check(m->store_dir, fp, &current);
    /* one rank of an MPI pipeline: the layer ranges are planned together
     * (from the hyper-parameters and each rank's RAM budget), and this rank
     * splits and opens only its own */
    int part = 0, first = -1, last = 0;
    if (!st && air_pipe_available()) {
        part = 1;
        air_hparams php;
        air_store *whole = NULL;
        if (current && !(st = air_store_open(m->store_dir, &whole)))
            php = *air_store_hparams(whole);
        air_store_close(whole);
        if (!current && !(st = open_source(model, src_path, is_gguf, &p, &src)))
            php = src->hp;
        if (!st)
            st = air_pipe_plan(&php, comp, p.ram_budget, &first, &last);
        if (!st && !current)
            st = air_store_check_part(m->store_dir, fp, first, last, php.n_layer, &current);
    }
    free(fp);
    if (st)
        goto fail;
    if (!current) {
        if (!src && (st = open_source(model, src_path, is_gguf, &p, &src)))
            goto fail;
        air_split_options so = {0};
        so.compression = comp;
        so.pool = air_pool_create(p.n_threads);
        so.progress = p.progress;
        so.progress_user = p.progress_user;
        int built = 0;
        so.built = &built;
        so.should_abort = p.should_abort;
        so.abort_user = p.abort_user;
        so.part = part;
        so.first_unit = first;
        so.last_unit = last;
        struct timespec t0, t1;
        clock_gettime(CLOCK_MONOTONIC, &t0);
        st = air_store_split(src, m->store_dir, &so);
        clock_gettime(CLOCK_MONOTONIC, &t1);
        /* 0 when another process built it while this one waited */
        m->split_seconds = built ? (double)(t1.tv_sec - t0.tv_sec) +
                                       (t1.tv_nsec - t0.tv_nsec) * 1e-9
                                 : 0;
        air_pool_free(so.pool);
        if (st)
            goto fail;
    }
    air_source_close(src);
    src = NULL;

    /* 3. the engine */
    air_engine_options eo;
    air_engine_default_options(&eo);
    eo.n_threads = p.n_threads;
    eo.stream.prefetch = p.prefetching;
    eo.stream.ram_budget = p.ram_budget;
    eo.max_seq = p.max_seq_len;
    eo.vram_budget = p.vram_budget;
    air_device_parse(p.device, &eo.device); /* checked by check_params */
    eo.part = part;
    eo.first_unit = first;
    eo.last_unit = last;
    if ((st = air_engine_open(m->store_dir, &eo, &m->engine)))
        goto fail;
    if (part && (st = air_pipe_attach(m->engine)))
        goto fail;
    const air_hparams *hp = air_engine_hparams(m->engine);
    for (int i = 0; i < hp->n_eos; i++)
        m->eos[m->n_eos++] = hp->eos_ids[i];
    m->max_seq = air_engine_max_seq(m->engine);

    /* 4. tokenizer and chat template (rank 0's alone in a pipeline) */
    if ((!part || air_dist_rank() == 0) && (st = load_text(m, gg)))
        goto fail;
    air_gguf_close(gg);
    free(src_path);
    free(cache);
    free(key);
    free(sub);
    *out = m;
    return AIR_OK;
fail:
    air_source_close(src);
    air_gguf_close(gg);
    free(src_path);
    free(cache);
    free(key);
    free(sub);
    air_model_close(m);
    return st;
}

void air_model_close(air_model *m) {
    if (!m)
        return;
    air_engine_close(m->engine);
    air_json_grammar_free(m->grammar);
    air_tokenizer_free(m->tok);
    air_chat_template_free(m->tmpl);
    free(m->template_src);
    free(m->store_dir);
    free(m->name);
    free(m->cache_dir);
    pthread_mutex_destroy(&m->mu);
    free(m);
}

air_status air_pipeline_worker(air_model *m) {
    if (!m)
        return air_err(AIR_ERR_INVALID_ARG, "air_pipeline_worker: no model");
    return air_pipe_worker(m->engine);
}

void air_model_get_info(const air_model *m, air_model_info *info) {
    memset(info, 0, sizeof *info);
    const air_hparams *hp = air_engine_hparams(m->engine);
    info->name = m->name;
    info->arch = air_arch_name(hp->arch);
    info->compression = air_compression_name(m->comp);
    info->store_dir = m->store_dir;
    info->n_layer = hp->n_layer;
    info->n_embd = hp->n_embd;
    info->n_vocab = hp->n_vocab;
    info->max_seq_len = m->max_seq;
    info->store_bytes = air_store_total_bytes(air_engine_store(m->engine));
    air_engine_gpu_stats gs;
    air_engine_gpu_get_stats(m->engine, &gs);
    info->device = gs.on_gpu ? "cuda" : "cpu";
    info->has_chat_template = m->template_src != NULL;
    info->split_seconds = m->split_seconds;
}

/* ---------------------------------------------------------------------------
 * the process-level cache, keyed "model:compression"
 * ------------------------------------------------------------------------- */

typedef struct cache_entry {
    char *key;
    air_model *model;
    int refs;
    struct cache_entry *next;
} cache_entry;

static pthread_mutex_t g_cache_mu = PTHREAD_MUTEX_INITIALIZER;
static cache_entry *g_cache;

air_status air_model_acquire(const char *model, const air_model_params *params, air_model **out) {
    air_model_params p = params ? *params : air_model_default_params();
    air_compression comp;
    air_status cst = check_params(model, &p, &comp);
    if (cst)
        return cst;
    char key[1024];
    snprintf(key, sizeof key, "%s:%s", model ? model : "", air_compression_name(comp));
    /* an explicit device is part of the key: "cuda" must not get a model
     * opened on the CPU (auto shares the plain key) */
    const char *dev = params ? params->device : NULL;
    if (dev && *dev && strcmp(dev, "auto"))
        snprintf(key + strlen(key), sizeof key - strlen(key), ":%s", dev);
    pthread_mutex_lock(&g_cache_mu);
    for (cache_entry *e = g_cache; e; e = e->next)
        if (strcmp(e->key, key) == 0) {
            e->refs++;
            *out = e->model;
            pthread_mutex_unlock(&g_cache_mu);
            return AIR_OK;
        }
    /* opening is slow: the lock is held so that two threads asking for the
     * same model do not split it twice */
    air_status st = air_model_open(model, &p, out);
    if (!st) {
        cache_entry *e = calloc(1, sizeof *e);
        e->key = strdup(key);
        e->model = *out;
        e->refs = 1;
        e->next = g_cache;
        g_cache = e;
    }
    pthread_mutex_unlock(&g_cache_mu);
    return st;
}

void air_model_release(air_model *m) {
    if (!m)
        return;
    pthread_mutex_lock(&g_cache_mu);
    for (cache_entry *e = g_cache; e; e = e->next)
        if (e->model == m && e->refs > 0)
            e->refs--;
    pthread_mutex_unlock(&g_cache_mu);
}

void air_model_cache_clear(void) {
    pthread_mutex_lock(&g_cache_mu);
    for (cache_entry **pe = &g_cache; *pe;) {
        cache_entry *e = *pe;
        if (e->refs == 0) {
            *pe = e->next;
            air_model_close(e->model);
            free(e->key);
            free(e);
        } else {
            pe = &e->next;
        }
    }
    pthread_mutex_unlock(&g_cache_mu);
}
