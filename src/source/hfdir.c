/*
 * hfdir.c - a Hugging Face model folder as an air_source.
 *
 * config.json            -> air_hparams (architecture, sizes, RoPE, EOS ids)
 * generation_config.json -> EOS / BOS ids (they win over config.json)
 * model.safetensors.index.json + shards, or a single model.safetensors
 *                        -> tensors, looked up by their HF names, which
 *                           hf_name() derives from the neutral names.
 */
#include <cjson/cJSON.h>
#include <float.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "source/safetensors.h"
#include "source/source.h"
#include "text/chat_files.h"
#include "util/error.h"
#include "util/fileio.h"
#include "util/strbuf.h"

typedef struct {
    char *dir;
    int n_files;
    air_st_file **files;
    int *remaining; /* per file: tensors not yet read (delete_original) */
    uint8_t **read_flags;
    int delete_original;
} hf_impl;

/* ---------------------------------------------------------------------------
 * config.json
 * ------------------------------------------------------------------------- */

static air_status load_json(const char *path, cJSON **out) {
    char *text;
    size_t len;
    air_status st = air_read_file(path, &text, &len);
    if (st)
        return st;
    const char *endp = NULL;
    *out = cJSON_ParseWithLengthOpts(text, len, &endp, 0);
    if (!*out) {
        size_t off = endp ? (size_t)(endp - text) : 0;
        int line = 1;
        for (size_t i = 0; i < off && i < len; i++)
            line += text[i] == '\n';
        free(text);
        return air_err(AIR_ERR_FORMAT, "%s: malformed JSON near line %d (byte %zu)", path, line,
                       off);
    }
    free(text);
    if (!cJSON_IsObject(*out)) {
        const char *what = cJSON_IsArray(*out) ? "an array" : "not an object";
        cJSON_Delete(*out);
        *out = NULL;
        return air_err(AIR_ERR_FORMAT, "%s must hold a JSON object ({\"key\": value, ...}), "
                       "but its top level is %s", path, what);
    }
    return AIR_OK;
}

/* Reads an integer field; missing -> def; wrong type -> error. */
static air_status get_int(const cJSON *cfg, const char *path, const char *key, int64_t def,
                          int required, int64_t *out) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(cfg, key);
    if (!v || cJSON_IsNull(v)) {
        if (required)
            return air_err(AIR_ERR_FORMAT, "%s: required field \"%s\" is missing", path, key);
        *out = def;
        return AIR_OK;
    }
    if (!cJSON_IsNumber(v))
        return air_err(AIR_ERR_FORMAT, "%s: \"%s\" must be an integer, not %s", path, key,
                       cJSON_IsString(v) ? "a string" : "a JSON array, object or boolean");
    if (!(v->valuedouble >= 0 && v->valuedouble <= 2e9) || v->valuedouble != floor(v->valuedouble))
        return air_err(AIR_ERR_FORMAT, "%s: \"%s\" is %.15g; it must be an integer from 0 to "
                       "2000000000", path, key, v->valuedouble);
    *out = (int64_t)v->valuedouble;
    return AIR_OK;
}

static air_status get_float(const cJSON *cfg, const char *path, const char *key, double def,
                            double *out) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(cfg, key);
    if (!v || cJSON_IsNull(v)) {
        *out = def;
        return AIR_OK;
    }
    if (!cJSON_IsNumber(v))
        return air_err(AIR_ERR_FORMAT, "%s: \"%s\" must be a number", path, key);
    if (!(fabs(v->valuedouble) <= FLT_MAX)) /* beyond a float: converting would be undefined */
        return air_err(AIR_ERR_FORMAT, "%s: \"%s\" is %g; it must be a finite number", path,
                       key, v->valuedouble);
    *out = v->valuedouble;
    return AIR_OK;
}

/* A token id: an integer >= 0 (air_hparams_check compares it with the
 * vocabulary). */
static air_status get_id(const cJSON *v, const char *path, const char *key, int32_t *out) {
    if (!cJSON_IsNumber(v) || !(v->valuedouble >= 0 && v->valuedouble <= INT32_MAX) ||
        v->valuedouble != floor(v->valuedouble)) {
        char shown[64];
        if (cJSON_IsNumber(v))
            snprintf(shown, sizeof shown, "%.15g", v->valuedouble);
        else
            snprintf(shown, sizeof shown, "not a number");
        return air_err(AIR_ERR_FORMAT, "%s: \"%s\" is %s; it must be a token id (an integer "
                       "from 0 to vocab_size - 1)", path, key, shown);
    }
    *out = (int32_t)v->valuedouble;
    return AIR_OK;
}

/* eos_token_id may be a token id or a list of them. */
static air_status get_eos(const cJSON *cfg, const char *path, air_hparams *hp) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(cfg, "eos_token_id");
    if (!v || cJSON_IsNull(v))
        return AIR_OK;
    hp->n_eos = 0;
    if (cJSON_IsNumber(v))
        return get_id(v, path, "eos_token_id", &hp->eos_ids[hp->n_eos++]);
    if (!cJSON_IsArray(v))
        return air_err(AIR_ERR_FORMAT, "%s: \"eos_token_id\" must be a token id or a list of them",
                       path);
    const cJSON *e;
    cJSON_ArrayForEach(e, v) {
        int32_t id = 0;
        air_status st = get_id(e, path, "eos_token_id", &id);
        if (st)
            return st;
        if (hp->n_eos < AIR_MAX_EOS)
            hp->eos_ids[hp->n_eos++] = id;
    }
    return AIR_OK;
}

/* bos_token_id: a token id, or null / absent for none. */
static air_status get_bos(const cJSON *cfg, const char *path, air_hparams *hp) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(cfg, "bos_token_id");
    if (!v || cJSON_IsNull(v))
        return AIR_OK;
    return get_id(v, path, "bos_token_id", &hp->bos_id);
}

/* The config.json keys of the air_hparams fields, for air_hparams_check. */
static const char *const g_hf_keys[AIR_HP_COUNT] = {
    [AIR_HP_VOCAB] = "vocab_size",
    [AIR_HP_EMBD] = "hidden_size",
    [AIR_HP_LAYER] = "num_hidden_layers",
    [AIR_HP_HEAD] = "num_attention_heads",
    [AIR_HP_HEAD_KV] = "num_key_value_heads",
    [AIR_HP_HEAD_DIM] = "head_dim",
    [AIR_HP_FF] = "intermediate_size",
    [AIR_HP_CTX] = "max_position_embeddings",
    [AIR_HP_RMS_EPS] = "rms_norm_eps",
    [AIR_HP_ROPE_THETA] = "rope_theta",
    [AIR_HP_ROPE_FACTOR] = "rope_scaling.factor",
    [AIR_HP_ROPE_LOW] = "rope_scaling.low_freq_factor",
    [AIR_HP_ROPE_HIGH] = "rope_scaling.high_freq_factor",
    [AIR_HP_ROPE_ORIG_CTX] = "rope_scaling.original_max_position_embeddings",
    [AIR_HP_SLIDING_WINDOW] = "sliding_window",
    [AIR_HP_BOS] = "bos_token_id",
    [AIR_HP_EOS] = "eos_token_id",
};

static air_status parse_config(const char *dir, air_hparams *hp) {
    char *path = air_path_join(dir, "config.json");
    cJSON *cfg = NULL;
    air_status st = load_json(path, &cfg);
    if (st == AIR_ERR_NOT_FOUND)
        st = air_err(AIR_ERR_NOT_FOUND,
                     "%s has no config.json: not a Hugging Face model folder", dir);
    if (st)
        goto out;
    memset(hp, 0, sizeof *hp);
    hp->bos_id = -1;

    const cJSON *archs = cJSON_GetObjectItemCaseSensitive(cfg, "architectures");
    const cJSON *a0 = cJSON_IsArray(archs) ? cJSON_GetArrayItem(archs, 0) : NULL;
    const char *arch = cJSON_IsString(a0) ? a0->valuestring : NULL;
    static const struct {
        const char *name;
        air_arch arch;
    } archtab[] = {{"LlamaForCausalLM", AIR_ARCH_LLAMA},
                   {"MistralForCausalLM", AIR_ARCH_MISTRAL},
                   {"Qwen2ForCausalLM", AIR_ARCH_QWEN2},
                   {"Qwen3ForCausalLM", AIR_ARCH_QWEN3}};
    int found = 0;
    for (size_t i = 0; arch && i < sizeof archtab / sizeof archtab[0]; i++)
        if (strcmp(arch, archtab[i].name) == 0) {
            hp->arch = archtab[i].arch;
            found = 1;
        }
    if (!found) {
        st = air_err(AIR_ERR_UNSUPPORTED,
                     "%s: architecture \"%s\" is not supported (supported: LlamaForCausalLM, "
                     "MistralForCausalLM, Qwen2ForCausalLM, Qwen3ForCausalLM)",
                     path, arch ? arch : "(missing \"architectures\")");
        goto out;
    }

    int64_t v;
    double d;
#define INT_FIELD(key, def, req, dst)                                                              \
    do {                                                                                           \
        if ((st = get_int(cfg, path, key, def, req, &v)))                                          \
            goto out;                                                                              \
        dst = (int32_t)v;                                                                          \
    } while (0)
    INT_FIELD("vocab_size", 0, 1, hp->n_vocab);
    INT_FIELD("hidden_size", 0, 1, hp->n_embd);
    INT_FIELD("num_hidden_layers", 0, 1, hp->n_layer);
    INT_FIELD("num_attention_heads", 0, 1, hp->n_head);
    INT_FIELD("num_key_value_heads", hp->n_head, 0, hp->n_head_kv);
    INT_FIELD("intermediate_size", 0, 1, hp->n_ff);
    INT_FIELD("max_position_embeddings", 2048, 0, hp->n_ctx_train);
    INT_FIELD("head_dim", -1, 0, hp->head_dim); /* -1: absent */
    if ((st = get_bos(cfg, path, hp)))
        goto out;
    if (hp->head_dim == -1 && hp->n_head > 0) {
        if (hp->n_embd % hp->n_head) {
            st = air_err(AIR_ERR_FORMAT, "%s: hidden_size %d is not a multiple of "
                         "num_attention_heads %d and no head_dim is given", path, hp->n_embd,
                         hp->n_head);
            goto out;
        }
        hp->head_dim = hp->n_embd / hp->n_head;
    }
    if ((st = get_float(cfg, path, "rms_norm_eps", 1e-6, &d)))
        goto out;
    hp->rms_eps = (float)d;
    /* RoPE: classic layout (rope_theta + rope_scaling) or the newer
     * rope_parameters object that holds both. */
    const cJSON *rp = cJSON_GetObjectItemCaseSensitive(cfg, "rope_parameters");
    if (rp && !cJSON_IsObject(rp) && !cJSON_IsNull(rp)) {
        st = air_err(AIR_ERR_FORMAT, "%s: \"rope_parameters\" must be an object", path);
        goto out;
    }
    if ((st = get_float(cJSON_IsObject(rp) && cJSON_GetObjectItemCaseSensitive(rp, "rope_theta")
                            ? rp
                            : cfg,
                        path, "rope_theta", 10000.0, &d)))
        goto out;
    hp->rope_theta = (float)d;

    const cJSON *tie = cJSON_GetObjectItemCaseSensitive(cfg, "tie_word_embeddings");
    hp->tie_embeddings = cJSON_IsTrue(tie);
    hp->attn_bias = hp->arch == AIR_ARCH_QWEN2;
    hp->qk_norm = hp->arch == AIR_ARCH_QWEN3;
    if (hp->arch != AIR_ARCH_QWEN2 && cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(cfg, "attention_bias"))) {
        st = air_err(AIR_ERR_UNSUPPORTED, "%s: \"attention_bias\": true is not supported for %s",
                     path, arch);
        goto out;
    }
    const cJSON *use_sw = cJSON_GetObjectItemCaseSensitive(cfg, "use_sliding_window");
    int64_t sw;
    if ((st = get_int(cfg, path, "sliding_window", 0, 0, &sw)))
        goto out;
    if (hp->arch == AIR_ARCH_MISTRAL || cJSON_IsTrue(use_sw))
        hp->sliding_window = (int32_t)sw;

    const cJSON *rs = cJSON_GetObjectItemCaseSensitive(cfg, "rope_scaling");
    if ((!rs || cJSON_IsNull(rs)) && cJSON_IsObject(rp))
        rs = rp;
    if (rs && !cJSON_IsNull(rs)) {
        const cJSON *ty = cJSON_GetObjectItemCaseSensitive(rs, "rope_type");
        if (!cJSON_IsString(ty))
            ty = cJSON_GetObjectItemCaseSensitive(rs, "type");
        const char *t = cJSON_IsString(ty) ? ty->valuestring : rs == rp ? "default" : "(missing)";
        if (strcmp(t, "llama3") == 0) {
            hp->rope_scaling = AIR_ROPE_SCALING_LLAMA3;
            double f, lo, hi;
            int64_t orig;
            if ((st = get_float(rs, path, "factor", 8.0, &f)) ||
                (st = get_float(rs, path, "low_freq_factor", 1.0, &lo)) ||
                (st = get_float(rs, path, "high_freq_factor", 4.0, &hi)) ||
                (st = get_int(rs, path, "original_max_position_embeddings", 8192, 0, &orig)))
                goto out;
            hp->rope_factor = (float)f;
            hp->rope_low_freq_factor = (float)lo;
            hp->rope_high_freq_factor = (float)hi;
            hp->rope_orig_ctx = (int32_t)orig;
        } else if (strcmp(t, "default") != 0) {
            st = air_err(AIR_ERR_UNSUPPORTED,
                         "%s: rope_scaling type \"%s\" is not supported yet (supported: llama3, "
                         "default)", path, t);
            goto out;
        }
    }
    if ((st = get_eos(cfg, path, hp)))
        goto out;
    if ((st = air_hparams_check(hp, path, g_hf_keys)))
        goto out;
    cJSON_Delete(cfg);
    cfg = NULL;

    /* generation_config.json wins where it speaks */
    free(path);
    path = air_path_join(dir, "generation_config.json");
    if (air_path_exists(path)) {
        if ((st = load_json(path, &cfg)))
            goto out;
        if ((st = get_eos(cfg, path, hp)) || (st = get_bos(cfg, path, hp)) ||
            (st = air_hparams_check(hp, path, g_hf_keys)))
            goto out;
    }
out:
    cJSON_Delete(cfg);
    free(path);
    return st;
}

/* ---------------------------------------------------------------------------
 * tensors
 * ------------------------------------------------------------------------- */

static void hf_name(int layer, const char *neutral, char *buf, size_t n) {
    static const struct {
        const char *neutral, *hf;
    } tab[] = {
        {"attn_norm", "input_layernorm.weight"},  {"wq", "self_attn.q_proj.weight"},
        {"wk", "self_attn.k_proj.weight"},        {"wv", "self_attn.v_proj.weight"},
        {"wo", "self_attn.o_proj.weight"},        {"bq", "self_attn.q_proj.bias"},
        {"bk", "self_attn.k_proj.bias"},          {"bv", "self_attn.v_proj.bias"},
        {"q_norm", "self_attn.q_norm.weight"},    {"k_norm", "self_attn.k_norm.weight"},
        {"ffn_norm", "post_attention_layernorm.weight"}, {"w_gate", "mlp.gate_proj.weight"},
        {"w_up", "mlp.up_proj.weight"},           {"w_down", "mlp.down_proj.weight"},
        {"tok_embd", "model.embed_tokens.weight"}, {"out_norm", "model.norm.weight"},
        {"output", "lm_head.weight"},
    };
    for (size_t i = 0; i < sizeof tab / sizeof tab[0]; i++)
        if (strcmp(tab[i].neutral, neutral) == 0) {
            if (layer >= 0)
                snprintf(buf, n, "model.layers.%d.%s", layer, tab[i].hf);
            else
                snprintf(buf, n, "%s", tab[i].hf);
            return;
        }
    snprintf(buf, n, "(unknown tensor %s)", neutral);
}

static air_status find(hf_impl *h, int layer, const char *neutral, int *fi, int *ti) {
    char name[256];
    hf_name(layer, neutral, name, sizeof name);
    for (int f = 0; f < h->n_files; f++)
        for (int t = 0; t < h->files[f]->n_tensors; t++)
            if (strcmp(h->files[f]->tensors[t].name, name) == 0) {
                *fi = f;
                *ti = t;
                return AIR_OK;
            }
    return air_err(AIR_ERR_NOT_FOUND, "%s: tensor '%s' is missing from the model's safetensors files",
                   h->dir, name);
}

static air_status hf_info(air_source *s, int layer, const char *neutral, air_src_tensor *out) {
    hf_impl *h = s->impl;
    int fi, ti;
    air_status st = find(h, layer, neutral, &fi, &ti);
    if (st)
        return st;
    const air_st_tensor *t = &h->files[fi]->tensors[ti];
    if (t->dtype == AIR_DT_COUNT)
        return air_err(AIR_ERR_UNSUPPORTED,
                       "%s: tensor '%s' has dtype %s; supported are BF16, F16 and F32 (convert "
                       "the model, e.g. save it again with torch_dtype=bfloat16)",
                       h->files[fi]->path, t->name, t->dtype_str);
    if (t->n_dims < 1 || t->n_dims > 2)
        return air_err(AIR_ERR_FORMAT, "%s: tensor '%s' has %d dimensions, expected 1 or 2",
                       h->files[fi]->path, t->name, t->n_dims);
    out->dtype = t->dtype;
    out->n_dims = t->n_dims;
    out->shape[0] = t->shape[0];
    out->shape[1] = t->n_dims == 2 ? t->shape[1] : 1;
    out->nbytes = t->nbytes;
    snprintf(out->src_name, sizeof out->src_name, "%s (%s)", t->name, h->files[fi]->path);
    return AIR_OK;
}

static air_status hf_read(air_source *s, int layer, const char *neutral, void *dst) {
    hf_impl *h = s->impl;
    int fi, ti;
    air_status st = find(h, layer, neutral, &fi, &ti);
    if (st)
        return st;
    st = air_st_read(h->files[fi], &h->files[fi]->tensors[ti], dst);
    if (st)
        return st;
    if (!h->read_flags[fi][ti]) {
        h->read_flags[fi][ti] = 1;
        h->remaining[fi]--;
    }
    return AIR_OK;
}

static void hf_done_with_layer(air_source *s, int layer) {
    hf_impl *h = s->impl;
    if (!h->delete_original)
        return;
    for (int f = 0; f < h->n_files; f++)
        if (h->remaining[f] == 0 && h->files[f]->fd >= 0) {
            unlink(h->files[f]->path);
            h->remaining[f] = -1;
        }
}

static void hf_close(air_source *s) {
    hf_impl *h = s->impl;
    if (h) {
        for (int f = 0; f < h->n_files; f++) {
            air_st_close(h->files[f]);
            if (h->read_flags)
                free(h->read_flags[f]);
        }
        free(h->files);
        free(h->read_flags);
        free(h->remaining);
        free(h->dir);
    }
    air_source_free_common(s);
}

/* Shard file names: from the index when present, else model.safetensors. */
static air_status list_shards(const char *dir, char ***names, int *n) {
    *names = NULL;
    *n = 0;
    char *ipath = air_path_join(dir, "model.safetensors.index.json");
    air_status st = AIR_OK;
    if (!air_path_exists(ipath)) {
        free(ipath);
        char *single = air_path_join(dir, "model.safetensors");
        int ok = air_path_exists(single);
        free(single);
        if (!ok)
            return air_err(AIR_ERR_NOT_FOUND,
                           "%s has neither model.safetensors.index.json nor model.safetensors "
                           "(only safetensors weights are supported)", dir);
        *names = malloc(sizeof(char *));
        (*names)[0] = strdup("model.safetensors");
        *n = 1;
        return AIR_OK;
    }
    cJSON *idx = NULL;
    if ((st = load_json(ipath, &idx)))
        goto out;
    const cJSON *wm = cJSON_GetObjectItemCaseSensitive(idx, "weight_map");
    if (!cJSON_IsObject(wm)) {
        st = air_err(AIR_ERR_FORMAT, "%s: missing \"weight_map\" object", ipath);
        goto out;
    }
    const cJSON *e;
    cJSON_ArrayForEach(e, wm) {
        if (!cJSON_IsString(e) || strchr(e->valuestring, '/') || strstr(e->valuestring, "..")) {
            st = air_err(AIR_ERR_FORMAT, "%s: weight_map entry for '%s' is not a file name", ipath,
                         e->string);
            goto out;
        }
        int seen = 0;
        for (int i = 0; i < *n; i++)
            seen |= strcmp((*names)[i], e->valuestring) == 0;
        if (!seen) {
            *names = realloc(*names, sizeof(char *) * (size_t)(*n + 1));
            (*names)[(*n)++] = strdup(e->valuestring);
        }
    }
out:
    cJSON_Delete(idx);
    free(ipath);
    return st;
}

air_status air_source_open_hfdir(const char *dir, int delete_original, air_source **out) {
    *out = NULL;
    air_source *s;
    air_status ast = air_source_alloc(sizeof(hf_impl), &s);
    if (ast)
        return ast;
    hf_impl *h = s->impl;
    s->info = hf_info;
    s->read = hf_read;
    s->done_with_layer = hf_done_with_layer;
    s->close = hf_close;
    h->dir = strdup(dir);
    h->delete_original = delete_original;
    char **names = NULL;
    int n = 0;
    air_status st = parse_config(dir, &s->hp);
    if (st)
        goto fail;
    if ((st = list_shards(dir, &names, &n)))
        goto fail;
    h->files = calloc((size_t)n, sizeof *h->files);
    h->remaining = calloc((size_t)n, sizeof *h->remaining);
    h->read_flags = calloc((size_t)n, sizeof *h->read_flags);
    h->n_files = n;
    for (int i = 0; i < n; i++) {
        char *p = air_path_join(dir, names[i]);
        st = air_st_open(p, &h->files[i]);
        free(p);
        if (st)
            goto fail;
        int nt = h->files[i]->n_tensors;
        h->read_flags[i] = calloc((size_t)nt + 1, 1);
        /* tensors we never read (e.g. rotary caches) count as consumed */
        for (int t = 0; t < nt; t++) {
            const char *nm = h->files[i]->tensors[t].name;
            int used = strncmp(nm, "model.", 6) == 0 || strcmp(nm, "lm_head.weight") == 0;
            if (strstr(nm, "rotary_emb"))
                used = 0;
            h->read_flags[i][t] = !used;
            h->remaining[i] += used;
        }
    }
    /* after delete_original the weights are gone: a store made that way
     * depends on the rest only */
    s->fingerprint = air_source_fingerprint(dir, 0, !delete_original);
    char *tj = air_path_join(dir, "tokenizer.json");
    char *tc = air_path_join(dir, "tokenizer_config.json");
    if (air_path_exists(tj))
        s->tokenizer_json = tj;
    else
        free(tj);
    if (air_path_exists(tc))
        s->tokenizer_config = tc;
    else
        free(tc);
    if (air_chat_template_files_exist(dir))
        s->chat_template_dir = strdup(dir);
    const char *base = strrchr(dir, '/');
    base = base && base[1] ? base + 1 : dir;
    s->name = strdup(base);
    for (int i = 0; i < n; i++)
        free(names[i]);
    free(names);
    *out = s;
    return AIR_OK;
fail:
    for (int i = 0; i < n; i++)
        free(names[i]);
    free(names);
    hf_close(s);
    return st;
}

