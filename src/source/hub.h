/*
 * hub.h - download models from the Hugging Face Hub into the huggingface_hub
 * cache, so that Python tools and airllm.c share downloads both ways.
 *
 *     air_hub_options o;
 *     air_hub_default_options(&o);
 *     char *dir = NULL;
 *     if (air_hub_snapshot("org/name", &o, &dir, NULL) != AIR_OK)
 *         fprintf(stderr, "%s\n", air_last_error());
 *     ... open dir as a Hugging Face model folder ...
 *     free(dir);
 *
 * Cache layout (identical to huggingface_hub):
 *     <cache>/models--<org>--<name>/
 *         blobs/<etag>                  file contents; <etag> is the sha256 for
 *                                       LFS files, the git blob id otherwise
 *         blobs/<etag>.incomplete       a download in progress (resumable)
 *         snapshots/<commit>/<path>     relative symlink to ../../blobs/<etag>
 *         refs/<revision>               the commit sha a branch or tag points to
 *     <cache>/.locks/models--<org>--<name>/<etag>.lock
 *
 * Only the files airllm.c needs are fetched: config.json, generation_config.json,
 * tokenizer.json, tokenizer_config.json, special_tokens_map.json, the chat
 * template files (chat_template.jinja, chat_template.json,
 * additional_chat_templates/<name>.jinja) when present,
 * and the safetensors weights (model.safetensors.index.json and its shards, or
 * a single model.safetensors), plus files matching `extra_patterns`.
 *
 * Environment: HF_ENDPOINT, HF_TOKEN (then $HF_TOKEN_PATH or $HF_HOME/token),
 * HF_HUB_CACHE, HF_HOME, XDG_CACHE_HOME, HF_HUB_OFFLINE; the limits AIR_HUB_MAX_ATTEMPTS,
 * AIR_HUB_TIMEOUT, AIR_HUB_LOW_SPEED_LIMIT, AIR_HUB_LOW_SPEED_TIME,
 * AIR_HUB_CONNECT_TIMEOUT. Explicit options win.
 * docs/hub.md describes the protocol, retries and errors.
 *
 * Thread safety: calls are independent; two processes downloading the same
 * blob serialize on its lock file (the same lock huggingface_hub takes).
 */
#ifndef AIR_SOURCE_HUB_H
#define AIR_SOURCE_HUB_H

#include <stddef.h>
#include <stdint.h>

#include "airllm.h"
#include "util/progress.h"

#if defined(__GNUC__)
#define AIR_HUB_PRINTF(a, b) __attribute__((format(printf, a, b)))
#else
#define AIR_HUB_PRINTF(a, b)
#endif

typedef struct {
    const char *revision;  /* branch, tag or full commit sha; NULL = "main" */
    const char *token;     /* NULL = $HF_TOKEN, then the token file */
    const char *endpoint;  /* NULL = $HF_ENDPOINT or https://huggingface.co */
    const char *cache_dir; /* NULL = $HF_HUB_CACHE / $HF_HOME/hub / ~/.cache/huggingface/hub */
    int offline;           /* 1: use only the cache; also set by $HF_HUB_OFFLINE */
    const char *const *extra_patterns; /* NULL-terminated globs of extra files, may be NULL */
    air_progress_fn progress;          /* may be NULL; see util/progress.h */
    void *progress_user;
    int max_attempts;     /* failed attempts in a row without progress, per request (5xx, timeouts,
                             dropped connections); all attempts of a request are capped at 4x this;
                             0 = $AIR_HUB_MAX_ATTEMPTS, else 5 */
    double timeout_s;     /* wall-clock limit of one request (one file: every attempt and wait);
                             0 = $AIR_HUB_TIMEOUT, else 600 s plus the file's size at 128 KiB/s */
    long low_speed_limit; /* an attempt slower than this many bytes/s ... */
    long low_speed_time;  /* ... for this many seconds is abandoned and retried;
                             0 = $AIR_HUB_LOW_SPEED_LIMIT / $AIR_HUB_LOW_SPEED_TIME, else
                             1024 bytes/s for 30 s */
    air_notice_fn notice; /* one-line messages (retries); may be NULL; gets progress_user */
} air_hub_options;

/* Fills `o` with the defaults (all NULL / 0). */
void air_hub_default_options(air_hub_options *o);

/* Makes sure the needed files of `repo_id` ("org/name") at the requested
 * revision are in the cache, downloading what is missing. On success
 * *snapshot_dir is the snapshot folder (caller frees with free()) and, when
 * `commit` is not NULL, *commit the 40-hex commit sha (caller frees).
 * `o` may be NULL for the defaults. Returns AIR_OK, or AIR_ERR_AUTH,
 * AIR_ERR_NOT_FOUND, AIR_ERR_NETWORK, AIR_ERR_IO, AIR_ERR_FORMAT, ... with a
 * message in air_last_error(). Neither the token nor a password or query
 * string of a url is ever part of a message. */
air_status air_hub_snapshot(const char *repo_id, const air_hub_options *o, char **snapshot_dir,
                            char **commit);

/* 1 if `s` looks like a hub repo id ("org/name") and is not an existing local
 * path; 0 otherwise. */
int air_hub_is_repo_id(const char *s);

/* ------------------------------------------------------------------------- */
/* Internals shared by hub*.c (and reached by the unit tests).               */
/* ------------------------------------------------------------------------- */

/* Resolved settings of one call. Strings are owned by the struct. */
typedef struct {
    char *endpoint;  /* no trailing slash */
    char *token;     /* NULL when none */
    char *cache_dir; /* hub cache root */
    char *revision;
    int offline;
    int max_attempts;
    double timeout_s; /* 0: automatic (see air_hub_options) */
    long low_speed_limit, low_speed_time, connect_timeout;
    air_progress_fn progress;
    air_notice_fn notice;
    void *progress_user;
} air_hub_ctx;

air_status air_hub_ctx_init(air_hub_ctx *c, const air_hub_options *o);
void air_hub_ctx_free(air_hub_ctx *c);

/* Copy of `text` safe to show: in every url the user:password part and the
 * query string are replaced by "***", and each occurrence of `token` (may be
 * NULL) by "***". Caller frees; NULL when out of memory. */
char *air_hub_redact(const char *text, const char *token);
/* Sends a notice (printf-style, redacted) to c->notice, if any. */
void air_hub_notice(const air_hub_ctx *c, const char *fmt, ...) AIR_HUB_PRINTF(2, 3);

/* 1 for "1", "true", "yes", "on" (any case), as huggingface_hub reads flags. */
int air_hub_env_true(const char *v);
/* 1 if s is 40 lowercase hex digits (a full commit sha). */
int air_hub_is_commit(const char *s);
/* 1 if repo_id is valid for the hub ("name" or "org/name", [A-Za-z0-9._-],
 * no "--" or "..", not starting or ending with '-' or '.', at most 96 each). */
int air_hub_valid_repo_id(const char *repo_id);
/* 1 if path is a safe relative path inside a repo (no "..", no absolute,
 * no empty or "." components, no backslash or control characters). */
int air_hub_safe_path(const char *path);
/* "W/\"abc\"" or "\"abc\"" -> "abc"; new string, caller frees. */
char *air_hub_normalize_etag(const char *etag);
/* Percent-encodes s, leaving unreserved characters and those in `safe`. */
char *air_hub_quote(const char *s, const char *safe);
/* fnmatch-style glob as huggingface_hub applies allow patterns ('*' also
 * matches '/', a pattern ending in '/' matches everything below). */
int air_hub_glob(const char *pattern, const char *path);
/* "models--org--name" folder of a repo inside the cache; caller frees. */
char *air_hub_repo_folder(const char *cache_dir, const char *repo_id);
/* Relative symlink target from snapshots/<commit>/<path> to blobs/<etag>:
 * "../../blobs/<etag>" with one more "../" per folder level in path. */
char *air_hub_blob_link(const char *path, const char *etag);

/* --- HTTP (hub_http.c) --------------------------------------------------- */

typedef struct {
    long status;
    char *location;      /* Location header, absolute (resolved against the request url) */
    char *repo_commit;   /* X-Repo-Commit */
    char *etag;          /* ETag (raw) */
    char *linked_etag;   /* X-Linked-Etag (raw) */
    int64_t linked_size; /* X-Linked-Size, -1 if absent */
    int64_t content_length;
    char *content_range;
    char *error_code;    /* X-Error-Code */
    char *error_message; /* X-Error-Message */
    double retry_after;  /* seconds, 0 if absent */
    char *url;           /* final url (after followed redirects) */
    char *body;          /* small bodies (JSON, error pages), NUL-terminated */
    size_t body_len;
} air_http_resp;

void air_http_resp_free(air_http_resp *r);

/* What the caller wants as object of an error message ("model org/name",
 * "file config.json of org/name at revision main"). */
typedef struct {
    const char *repo_id;
    const char *revision;
    const char *file; /* NULL for repo-level requests */
} air_hub_what;

/* GET a JSON document (API). Follows same-origin redirects, retries
 * transient failures; non-2xx statuses become air_err() messages. */
air_status air_hub_get_json(const air_hub_ctx *c, const char *url, const air_hub_what *what,
                            air_http_resp *resp);

/* HEAD on a resolve url: follows redirects that stay on the same origin
 * (keeping Authorization), stops at a redirect to another origin (the CDN)
 * and returns that response, as huggingface_hub does. */
air_status air_hub_head(const air_hub_ctx *c, const char *url, const air_hub_what *what,
                        air_http_resp *resp);

/* Downloads `url` into the open file `fd` which already holds `offset`
 * bytes (resume with Range), feeding every written byte to `sha` (an
 * EVP_MD_CTX, may be NULL), until `expected` bytes (or the end if -1). Sends
 * Authorization only while on the origin of `auth_origin_url`. Retries
 * transient failures within the limits of `c`, always resuming where the file
 * ends (a server that ignores the Range has its body compared with the kept
 * bytes); an answer whose size contradicts `expected` fails at once. Calls
 * `on_bytes` with the file size after each chunk (for progress). `dest_path`
 * names the file in messages. */
typedef void (*air_http_bytes_fn)(void *user, uint64_t file_bytes, int final);
/* Feeds the first n bytes of fd to `sha` (an EVP_MD_CTX); path for messages. */
air_status air_hub_hash_prefix(int fd, uint64_t n, void *sha, const char *path);
air_status air_hub_download(const air_hub_ctx *c, const char *url, const char *auth_origin_url,
                            const air_hub_what *what, int fd, uint64_t offset, int64_t expected,
                            void *sha, const char *dest_path, air_http_bytes_fn on_bytes,
                            void *on_bytes_user);

#endif
