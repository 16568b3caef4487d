/*
 * manifest.c - the store manifest: air_hparams to and from its JSON, its own
 * checksum, and the model id every unit file carries.
 */
#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#define XXH_STATIC_LINKING_ONLY /* XXH3_state_t on the stack */
#include <xxhash.h>

#include "store/store.h"
#include "util/error.h"

#define HP_INT_FIELDS(X)                                                                           \
    X(n_vocab) X(n_embd) X(n_layer) X(n_head) X(n_head_kv) X(head_dim) X(n_ff) X(n_ctx_train)      \
    X(rope_orig_ctx) X(tie_embeddings) X(attn_bias) X(qk_norm) X(sliding_window) X(bos_id)
#define HP_FLOAT_FIELDS(X)                                                                         \
    X(rms_eps) X(rope_theta) X(rope_factor) X(rope_low_freq_factor) X(rope_high_freq_factor)

cJSON *air_hparams_to_json(const air_hparams *hp) {
    cJSON *j = cJSON_CreateObject();
    cJSON_AddStringToObject(j, "arch", air_arch_name(hp->arch));
#define ADD_INT(f) cJSON_AddNumberToObject(j, #f, hp->f);
#define ADD_FLOAT(f) cJSON_AddNumberToObject(j, #f, (double)hp->f);
    HP_INT_FIELDS(ADD_INT)
    HP_FLOAT_FIELDS(ADD_FLOAT)
    cJSON_AddStringToObject(j, "rope_scaling",
                            hp->rope_scaling == AIR_ROPE_SCALING_LLAMA3 ? "llama3" : "none");
    cJSON *eos = cJSON_AddArrayToObject(j, "eos_ids");
    for (int i = 0; i < hp->n_eos; i++)
        cJSON_AddItemToArray(eos, cJSON_CreateNumber(hp->eos_ids[i]));
    return j;
}

air_status air_hparams_from_json(const cJSON *j, const char *path, air_hparams *hp) {
    memset(hp, 0, sizeof *hp);
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(j, "arch");
    int found = 0;
    for (int a = 0; a < AIR_ARCH_COUNT && cJSON_IsString(v); a++)
        if (strcmp(v->valuestring, air_arch_name((air_arch)a)) == 0) {
            hp->arch = (air_arch)a;
            found = 1;
        }
    if (!found)
        return air_err(AIR_ERR_FORMAT, "%s: hparams.arch missing or unknown", path);
#define GET_NUM(f)                                                                                 \
    v = cJSON_GetObjectItemCaseSensitive(j, #f);                                                   \
    if (!cJSON_IsNumber(v))                                                                        \
        return air_err(AIR_ERR_FORMAT, "%s: hparams.%s missing", path, #f);
#define GET_INT(f)                                                                                 \
    GET_NUM(f)                                                                                     \
    hp->f = (int32_t)v->valuedouble;
#define GET_FLOAT(f)                                                                               \
    GET_NUM(f)                                                                                     \
    hp->f = (float)v->valuedouble;
    HP_INT_FIELDS(GET_INT)
    HP_FLOAT_FIELDS(GET_FLOAT)
    v = cJSON_GetObjectItemCaseSensitive(j, "rope_scaling");
    hp->rope_scaling = cJSON_IsString(v) && strcmp(v->valuestring, "llama3") == 0
                           ? AIR_ROPE_SCALING_LLAMA3
                           : AIR_ROPE_SCALING_NONE;
    v = cJSON_GetObjectItemCaseSensitive(j, "eos_ids");
    const cJSON *e;
    cJSON_ArrayForEach(e, v) {
        if (hp->n_eos < AIR_MAX_EOS && cJSON_IsNumber(e))
            hp->eos_ids[hp->n_eos++] = e->valueint;
    }
    if (hp->n_layer <= 0 || hp->n_embd <= 0 || hp->n_head <= 0 || hp->n_head_kv <= 0 ||
        hp->head_dim <= 0 || hp->n_vocab <= 0 || hp->n_ff <= 0 || hp->n_head % hp->n_head_kv)
        return air_err(AIR_ERR_FORMAT, "%s: hparams hold invalid sizes", path);
    return AIR_OK;
}

/* ---------------------------------------------------------------------------
 * the manifest's checksum
 * ------------------------------------------------------------------------- */

#define SUM_KEY "\"checksum\""
#define SUM_DIGITS 16

cJSON *air_manifest_new(void) {
    cJSON *m = cJSON_CreateObject();
    cJSON_AddStringToObject(m, "checksum", "0000000000000000");
    return m;
}

/* Where the checksum's hex digits are in a manifest text: after the first
 * "checksum" key, its colon, blanks and opening quote. NULL if absent. */
static char *sum_digits(char *text, size_t len) {
    char *k = NULL;
    for (size_t i = 0; i + sizeof SUM_KEY - 1 <= len && !k; i++)
        if (memcmp(text + i, SUM_KEY, sizeof SUM_KEY - 1) == 0)
            k = text + i;
    if (!k)
        return NULL;
    char *p = k + sizeof SUM_KEY - 1, *end = text + len;
    while (p < end && (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r'))
        p++;
    if (p >= end || *p++ != ':')
        return NULL;
    while (p < end && (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r'))
        p++;
    if (p >= end || *p++ != '"' || end - p < SUM_DIGITS + 1 || p[SUM_DIGITS] != '"')
        return NULL;
    return p;
}

static uint64_t sealed_sum(const char *text, size_t len, size_t at) {
    XXH3_state_t st;
    XXH3_64bits_reset(&st);
    XXH3_64bits_update(&st, text, at);
    XXH3_64bits_update(&st, "0000000000000000", SUM_DIGITS);
    XXH3_64bits_update(&st, text + at + SUM_DIGITS, len - at - SUM_DIGITS);
    return XXH3_64bits_digest(&st);
}

char *air_manifest_print(const cJSON *m) {
    char *text = cJSON_Print(m);
    if (!text)
        return NULL;
    size_t len = strlen(text);
    char *d = sum_digits(text, len);
    if (d) {
        char hex[SUM_DIGITS + 1];
        snprintf(hex, sizeof hex, "%016llx",
                 (unsigned long long)sealed_sum(text, len, (size_t)(d - text)));
        memcpy(d, hex, SUM_DIGITS);
    }
    return text;
}

air_status air_manifest_parse(const char *text, size_t len, const char *path, cJSON **out,
                              int *old_version) {
    *out = NULL;
    *old_version = 0;
    cJSON *m = cJSON_ParseWithLength(text, len);
    const cJSON *fmt = cJSON_GetObjectItemCaseSensitive(m, "format");
    if (!cJSON_IsString(fmt) || strcmp(fmt->valuestring, "airllm-layer-store") != 0) {
        cJSON_Delete(m);
        return air_err(AIR_ERR_FORMAT, "%s: not a layer-store manifest (%s): the file is corrupt "
                       "or not airllm's; " AIR_STORE_FIX, path,
                       m ? "no \"format\": \"airllm-layer-store\"" : "not valid JSON");
    }
    const cJSON *ver = cJSON_GetObjectItemCaseSensitive(m, "version");
    const cJSON *sum = cJSON_GetObjectItemCaseSensitive(m, "checksum");
    air_status st = AIR_OK;
    if (sum) {
        /* verified before anything else is believed, the version included */
        char *copy = malloc(len ? len : 1);
        char *d = copy ? (memcpy(copy, text, len), sum_digits(copy, len)) : NULL;
        char want[SUM_DIGITS + 1];
        if (d)
            snprintf(want, sizeof want, "%016llx",
                     (unsigned long long)sealed_sum(copy, len, (size_t)(d - copy)));
        if (!d || !cJSON_IsString(sum) || strncmp(d, sum->valuestring, SUM_DIGITS) != 0 ||
            strlen(sum->valuestring) != SUM_DIGITS || memcmp(d, want, SUM_DIGITS) != 0)
            st = air_err(AIR_ERR_FORMAT, "%s: manifest checksum mismatch: the manifest was edited "
                         "or is corrupt; " AIR_STORE_FIX, path);
        free(copy);
    }
    if (!st && (!cJSON_IsNumber(ver) || ver->valuedouble != AIR_STORE_VERSION)) {
        *old_version = 1;
        st = air_err(AIR_ERR_FORMAT, "%s: store format version %d, this build reads version %d; "
                     AIR_STORE_FIX, path, cJSON_IsNumber(ver) ? ver->valueint : -1,
                     AIR_STORE_VERSION);
    }
    if (!st && !sum)
        st = air_err(AIR_ERR_FORMAT, "%s: the manifest has no checksum: it was edited or is "
                     "corrupt; " AIR_STORE_FIX, path);
    if (st) {
        cJSON_Delete(m);
        return st;
    }
    *out = m;
    return AIR_OK;
}

/* ---------------------------------------------------------------------------
 * the model id
 * ------------------------------------------------------------------------- */

uint64_t air_store_model_id(const char *fingerprint, air_compression c, const air_hparams *hp) {
    XXH3_state_t st;
    XXH3_64bits_reset(&st);
    char head[64];
    snprintf(head, sizeof head, "airllm-layer-store %d %s;", AIR_STORE_VERSION,
             air_compression_name(c));
    XXH3_64bits_update(&st, head, strlen(head));
    /* entries "kind:name:...;": the tokenizer-side files (kind t) do not
     * shape the unit files */
    for (const char *p = fingerprint ? fingerprint : ""; *p;) {
        const char *e = strchr(p, ';');
        size_t n = e ? (size_t)(e - p) + 1 : strlen(p);
        if (strncmp(p, "t:", 2) != 0)
            XXH3_64bits_update(&st, p, n);
        p += n;
    }
    cJSON *j = air_hparams_to_json(hp);
    char *hj = cJSON_PrintUnformatted(j);
    if (hj)
        XXH3_64bits_update(&st, hj, strlen(hj));
    free(hj);
    cJSON_Delete(j);
    return XXH3_64bits_digest(&st);
}
