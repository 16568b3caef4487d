/*
 * hub.c - air_hub_snapshot(): make the files airllm.c needs from a hub repo
 * present in the huggingface_hub cache, and return the snapshot folder.
 *
 * Online flow (same requests and cache writes as huggingface_hub):
 *   1. GET {endpoint}/api/models/{repo}/revision/{rev} -> commit sha and the
 *      file list ("siblings"); write refs/{rev} = sha.
 *   2. Pick the files: config, tokenizer, chat template and generation files
 *      when present, the extra patterns, then model.safetensors.index.json (fetched first)
 *      and the shards it names, or a single model.safetensors.
 *   3. For each file not yet in snapshots/{sha}/: HEAD
 *      {endpoint}/{repo}/resolve/{sha}/{path} for its ETag (X-Linked-Etag
 *      first: the sha256 of an LFS file), size (X-Linked-Size) and, for LFS
 *      files, the CDN url of the redirect.
 *   4. Under the blob's lock (.locks/.../{etag}.lock, shared with Python),
 *      download to blobs/{etag}.incomplete (resuming what is there), check the
 *      size and, for LFS files, the sha256, rename to blobs/{etag}; link
 *      snapshots/{sha}/{path} -> ../../blobs/{etag}.
 * Offline (HF_HUB_OFFLINE=1), or when the Hub cannot be reached: refs/{rev}
 * gives the commit, and the snapshot is used if it holds the needed files.
 */
#include "source/hub.h"

#include <cjson/cJSON.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <openssl/evp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <time.h>
#include <unistd.h>

#include "util/error.h"
#include "util/fileio.h"
#include "util/strbuf.h"

static const char *const k_base_files[] = {"config.json",
                                           "generation_config.json",
                                           "tokenizer.json",
                                           "tokenizer_config.json",
                                           "special_tokens_map.json",
                                           "chat_template.jinja",
                                           "chat_template.json",
                                           NULL};
/* named chat templates (text/chat_files.h): <dir>/<name>.jinja, not deeper */
#define NAMED_TEMPLATES_DIR "additional_chat_templates/"
#define INDEX_FILE "model.safetensors.index.json"
#define SINGLE_FILE "model.safetensors"

typedef struct {
    char **v;
    size_t n, cap;
} strlist;

static void sl_free(strlist *l) {
    for (size_t i = 0; i < l->n; i++)
        free(l->v[i]);
    free(l->v);
    memset(l, 0, sizeof *l);
}

static int sl_has(const strlist *l, const char *s) {
    for (size_t i = 0; i < l->n; i++)
        if (strcmp(l->v[i], s) == 0)
            return 1;
    return 0;
}

/* Appends a copy of s unless already present. */
static air_status sl_add(strlist *l, const char *s) {
    if (sl_has(l, s))
        return AIR_OK;
    if (l->n == l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 16;
        char **v = realloc(l->v, cap * sizeof *v);
        if (!v)
            return air_err(AIR_ERR_NOMEM, "out of memory");
        l->v = v;
        l->cap = cap;
    }
    if (!(l->v[l->n] = strdup(s)))
        return air_err(AIR_ERR_NOMEM, "out of memory");
    l->n++;
    return AIR_OK;
}

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static char *strf(const char *fmt, ...) AIR_PRINTF(1, 2);
static char *strf(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    char *r = NULL;
    if (vasprintf(&r, fmt, ap) < 0)
        r = NULL;
    va_end(ap);
    return r;
}

/* 1 if path names a regular file (following symlinks). */
static int is_file(const char *path) {
    struct stat st;
    return stat(path, &st) == 0 && S_ISREG(st.st_mode);
}

/* ------------------------------------------------------------------------- */
/* Reading the cache                                                         */
/* ------------------------------------------------------------------------- */

/* Commit recorded in refs/{rev}; NULL if absent. Caller frees. */
static char *read_ref(const char *storage, const char *rev) {
    if (!air_hub_safe_path(rev))
        return NULL;
    char *refs = air_path_join(storage, "refs");
    char *p = refs ? air_path_join(refs, rev) : NULL;
    free(refs);
    char *data = NULL;
    size_t len = 0;
    if (!p || !is_file(p) || air_read_file(p, &data, &len) != AIR_OK) {
        free(p);
        air_err_clear();
        return NULL;
    }
    free(p);
    while (len > 0 && (data[len - 1] == '\n' || data[len - 1] == '\r' || data[len - 1] == ' '))
        data[--len] = 0;
    return data;
}

/* Shards named by an index file's weight_map, added to `out`. */
static air_status index_shards(const char *index_path, strlist *out) {
    char *text = NULL;
    size_t len = 0;
    air_status st = air_read_file(index_path, &text, &len);
    if (st)
        return st;
    cJSON *root = cJSON_ParseWithLength(text, len);
    free(text);
    if (!root)
        return air_err(AIR_ERR_FORMAT, "%s is not valid JSON", index_path);
    cJSON *map = cJSON_GetObjectItemCaseSensitive(root, "weight_map");
    if (!cJSON_IsObject(map)) {
        cJSON_Delete(root);
        return air_err(AIR_ERR_FORMAT, "%s has no \"weight_map\" object", index_path);
    }
    cJSON *e;
    cJSON_ArrayForEach(e, map) {
        if (!cJSON_IsString(e) || !air_hub_safe_path(e->valuestring)) {
            cJSON_Delete(root);
            return air_err(AIR_ERR_FORMAT,
                           "%s: tensor '%s' maps to an invalid file name (must be a relative "
                           "path inside the repo)",
                           index_path, e->string ? e->string : "?");
        }
        if ((st = sl_add(out, e->valuestring)) != AIR_OK)
            break;
    }
    cJSON_Delete(root);
    if (st == AIR_OK && out->n == 0)
        return air_err(AIR_ERR_FORMAT, "%s: weight_map is empty", index_path);
    return st;
}

/* Recursively: 1 if some file under dir (relative name rel) matches a pattern. */
static int snapshot_has_match(const char *dir, const char *rel, const char *const *pats,
                              int depth) {
    if (depth > 8)
        return 0;
    DIR *d = opendir(dir);
    if (!d)
        return 0;
    int found = 0;
    struct dirent *de;
    while (!found && (de = readdir(d))) {
        if (de->d_name[0] == '.' && (!de->d_name[1] || (de->d_name[1] == '.' && !de->d_name[2])))
            continue;
        char *full = air_path_join(dir, de->d_name);
        char *name = rel ? strf("%s/%s", rel, de->d_name) : strdup(de->d_name);
        struct stat st;
        if (full && name && stat(full, &st) == 0) {
            if (S_ISDIR(st.st_mode))
                found = snapshot_has_match(full, name, pats, depth + 1);
            else
                for (size_t i = 0; pats[i] && !found; i++)
                    found = air_hub_glob(pats[i], name);
        }
        free(full);
        free(name);
    }
    closedir(d);
    return found;
}

/* AIR_OK if snapshot folder `snap` holds what airllm.c needs; otherwise an
 * error naming the first missing file. */
static air_status snapshot_complete(const char *snap, const char *const *extra) {
    int extra_ok = extra && extra[0] && snapshot_has_match(snap, NULL, extra, 0);
    char *p = air_path_join(snap, "config.json");
    int has_config = p && is_file(p);
    free(p);
    if (!has_config && !extra_ok)
        return air_err(AIR_ERR_NOT_FOUND, "config.json is missing from %s", snap);
    char *index = air_path_join(snap, INDEX_FILE);
    char *single = air_path_join(snap, SINGLE_FILE);
    air_status st = AIR_OK;
    if (!index || !single) {
        st = air_err(AIR_ERR_NOMEM, "out of memory");
    } else if (is_file(index)) {
        strlist shards = {0};
        st = index_shards(index, &shards);
        for (size_t i = 0; st == AIR_OK && i < shards.n; i++) {
            char *s = air_path_join(snap, shards.v[i]);
            if (!s || !is_file(s))
                st = air_err(AIR_ERR_NOT_FOUND, "weight shard %s is missing from %s", shards.v[i],
                             snap);
            free(s);
        }
        sl_free(&shards);
    } else if (!is_file(single) && !extra_ok) {
        st = air_err(AIR_ERR_NOT_FOUND, "no safetensors weights (%s or %s) in %s", INDEX_FILE,
                     SINGLE_FILE, snap);
    }
    free(index);
    free(single);
    return st;
}

/* The cached snapshot for ctx->revision, if complete. `why` explains the
 * caller's situation in the error ("HF_HUB_OFFLINE is set"). */
static air_status cached_snapshot(const air_hub_ctx *c, const char *repo_id, const char *storage,
                                  const char *const *extra, const char *why, char **dir,
                                  char **commit) {
    char *sha =
        air_hub_is_commit(c->revision) ? strdup(c->revision) : read_ref(storage, c->revision);
    if (!sha)
        return air_err(AIR_ERR_NOT_FOUND,
                       "%s and model %s (revision %s) is not in the cache %s (no refs/%s). Run "
                       "once with network access to download it, or check HF_HUB_CACHE / HF_HOME.",
                       why, repo_id, c->revision, c->cache_dir, c->revision);
    char *snap = strf("%s/snapshots/%s", storage, sha);
    if (!snap) {
        free(sha);
        return air_err(AIR_ERR_NOMEM, "out of memory");
    }
    air_status st = snapshot_complete(snap, extra);
    if (st != AIR_OK) {
        st = air_err_context(st,
                             "%s and the cached copy of model %s (revision %s, commit %s) is "
                             "incomplete; run once with network access to complete it",
                             why, repo_id, c->revision, sha);
        free(sha);
        free(snap);
        return st;
    }
    *dir = snap;
    if (commit)
        *commit = sha;
    else
        free(sha);
    return AIR_OK;
}

/* ------------------------------------------------------------------------- */
/* Writing the cache                                                         */
/* ------------------------------------------------------------------------- */

static air_status write_ref(const char *storage, const char *rev, const char *sha) {
    if (strcmp(rev, sha) == 0 || !air_hub_safe_path(rev))
        return AIR_OK;
    char *p = strf("%s/refs/%s", storage, rev);
    if (!p)
        return air_err(AIR_ERR_NOMEM, "out of memory");
    char *old = read_ref(storage, rev);
    air_status st = AIR_OK;
    if (!old || strcmp(old, sha) != 0) {
        char *dir = strdup(p);
        if (dir) {
            *strrchr(dir, '/') = 0;
            st = air_mkdirs(dir);
        }
        free(dir);
        if (st == AIR_OK)
            st = air_write_file_atomic(p, sha, strlen(sha));
    }
    free(old);
    free(p);
    return st;
}

static void write_cachedir_tag(const char *cache_dir) {
    char *p = air_path_join(cache_dir, "CACHEDIR.TAG");
    if (p && !air_path_exists(p)) {
        static const char tag[] =
            "Signature: 8a477f597d28d172789f06886806bc55\n"
            "# Hugging Face hub cache (written by airllm.c); backup tools may "
            "skip this folder.\n";
        if (air_write_file_atomic(p, tag, sizeof tag - 1) != AIR_OK)
            air_err_clear();
    }
    free(p);
}

/* snapshots/{sha}/{path} -> ../../blobs/{etag}, replacing a stale link. */
static air_status link_pointer(const char *pointer, const char *path, const char *etag) {
    char *dir = strdup(pointer);
    char *target = air_hub_blob_link(path, etag);
    air_status st = AIR_OK;
    if (!dir || !target) {
        st = air_err(AIR_ERR_NOMEM, "out of memory");
        goto out;
    }
    *strrchr(dir, '/') = 0;
    if ((st = air_mkdirs(dir)) != AIR_OK)
        goto out;
    unlink(pointer);
    if (symlink(target, pointer) != 0) {
        char buf[4096];
        ssize_t n = readlink(pointer, buf, sizeof buf - 1);
        if (errno == EEXIST && n > 0 && (buf[n] = 0, strcmp(buf, target) == 0))
            goto out; /* another process linked it meanwhile */
        st = air_err(AIR_ERR_IO, "cannot create the symlink %s -> %s: %s", pointer, target,
                     strerror(errno));
    }
out:
    free(dir);
    free(target);
    return st;
}

/* ------------------------------------------------------------------------- */
/* Fetching files                                                            */
/* ------------------------------------------------------------------------- */

typedef struct {
    const char *path;
    char *pointer; /* snapshots/{sha}/{path} */
    char *url;     /* where to GET (resolve url or CDN location) */
    char *etag;
    char *blob;
    int64_t size; /* -1 unknown */
    int state;    /* 0 cached, 1 link only, 2 download */
} hub_file;

typedef struct {
    const air_hub_ctx *c;
    const char *label;
    uint64_t start_bytes; /* in the file when this session started on it */
    double t0, last;
    uint64_t all_before, all_total;
    int64_t size;
} progress_state;

static void on_bytes(void *user, uint64_t file_bytes, int final) {
    progress_state *p = user;
    if (!p->c->progress)
        return;
    double t = now_s();
    double el = t - p->t0;
    double rate =
        el > 0 && file_bytes > p->start_bytes ? (double)(file_bytes - p->start_bytes) / el : 0;
    uint64_t total = p->size >= 0 ? (uint64_t)p->size : 0;
    if (!final && ((total && file_bytes >= total) || t - p->last < 0.05))
        return; /* throttled; the final call reports completion, once */
    p->last = t;
    if (final && total == 0)
        total = file_bytes;
    /* overall first, so a renderer drawing the file line shows it up to date */
    uint64_t this_file = file_bytes > p->start_bytes ? file_bytes - p->start_bytes : 0;
    p->c->progress(p->c->progress_user, NULL, p->all_before + this_file, p->all_total, rate);
    p->c->progress(p->c->progress_user, p->label, file_bytes, total, rate);
}

static int is_sha256_hex(const char *s) {
    size_t n = 0;
    for (; s[n]; n++)
        if (!((s[n] >= '0' && s[n] <= '9') || (s[n] >= 'a' && s[n] <= 'f')))
            return 0;
    return n == 64;
}

/* Downloads one blob under its lock; on success blobs/{etag} exists. */
static air_status download_blob(const air_hub_ctx *c, const char *repo_id, const char *storage,
                                const char *resolve_url, hub_file *f, progress_state *ps) {
    air_hub_what what = {repo_id, c->revision, f->path};
    const char *folder = strrchr(storage, '/') ? strrchr(storage, '/') + 1 : storage;
    char *lock_dir = strf("%s/.locks/%s", c->cache_dir, folder);
    char *lock_path = strf("%s/%s.lock", lock_dir ? lock_dir : "", f->etag);
    char *incomplete = strf("%s.incomplete", f->blob);
    int lock_fd = -1, fd = -1;
    EVP_MD_CTX *sha = NULL;
    air_status st = AIR_OK;
    if (!lock_dir || !lock_path || !incomplete) {
        st = air_err(AIR_ERR_NOMEM, "out of memory");
        goto out;
    }
    if ((st = air_mkdirs(lock_dir)) != AIR_OK)
        goto out;
    lock_fd = open(lock_path, O_RDWR | O_CREAT | O_CLOEXEC, 0666);
    if (lock_fd < 0) {
        st = air_err(AIR_ERR_IO, "cannot open the lock file %s: %s", lock_path, strerror(errno));
        goto out;
    }
    while (flock(lock_fd, LOCK_EX) != 0) {
        if (errno != EINTR) {
            st = air_err(AIR_ERR_IO, "cannot lock %s: %s", lock_path, strerror(errno));
            goto out;
        }
    }
    ps->label = f->path;
    ps->size = f->size;
    ps->start_bytes = f->size > 0 ? (uint64_t)f->size : 0;
    if (is_file(f->blob))
        goto out; /* another process finished it while we waited */

    fd = open(incomplete, O_RDWR | O_CREAT | O_CLOEXEC, 0666);
    if (fd < 0) {
        st = air_err(AIR_ERR_IO, "cannot create %s: %s", incomplete, strerror(errno));
        goto out;
    }
    struct stat sb;
    if (fstat(fd, &sb) != 0) {
        st = air_err(AIR_ERR_IO, "cannot stat %s: %s", incomplete, strerror(errno));
        goto out;
    }
    uint64_t have = (uint64_t)sb.st_size;
    if (f->size >= 0 && have > (uint64_t)f->size) {
        if (ftruncate(fd, 0) != 0) {
            st = air_err(AIR_ERR_IO, "cannot truncate %s: %s", incomplete, strerror(errno));
            goto out;
        }
        have = 0;
    }
    int lfs = is_sha256_hex(f->etag);
    if (lfs) {
        sha = EVP_MD_CTX_new();
        if (!sha || EVP_DigestInit_ex(sha, EVP_sha256(), NULL) != 1) {
            st = air_err(AIR_ERR_INTERNAL, "cannot initialise SHA-256 (OpenSSL)");
            goto out;
        }
        if (have && (st = air_hub_hash_prefix(fd, have, sha, incomplete)) != AIR_OK)
            goto out;
    }
    ps->start_bytes = have;
    ps->t0 = now_s();
    ps->last = 0;
    st = air_hub_download(c, f->url, resolve_url, &what, fd, have, f->size, sha, incomplete,
                          on_bytes, ps);
    if (st != AIR_OK)
        goto out;
    if (lfs) {
        unsigned char md[EVP_MAX_MD_SIZE];
        unsigned int mdlen = 0;
        char hex[2 * EVP_MAX_MD_SIZE + 1];
        EVP_DigestFinal_ex(sha, md, &mdlen);
        for (unsigned i = 0; i < mdlen; i++)
            snprintf(hex + 2 * i, 3, "%02x", md[i]);
        if (strcmp(hex, f->etag) != 0) {
            unlink(incomplete);
            st = air_err(AIR_ERR_FORMAT,
                         "sha256 mismatch for %s of model %s: expected %s, got %s. The corrupt "
                         "download was deleted; run again to download it afresh.",
                         f->path, repo_id, f->etag, hex);
            goto out;
        }
    }
    if (fsync(fd) != 0) {
        st =
            air_err(AIR_ERR_IO, "flushing %s: %s (is the disk full?)", incomplete, strerror(errno));
        goto out;
    }
    if (rename(incomplete, f->blob) != 0)
        st = air_err(AIR_ERR_IO, "renaming %s to %s: %s", incomplete, f->blob, strerror(errno));
out:
    EVP_MD_CTX_free(sha);
    if (fd >= 0)
        close(fd);
    if (lock_fd >= 0)
        close(lock_fd); /* releases the flock */
    free(lock_dir);
    free(lock_path);
    free(incomplete);
    return st;
}

/* HEAD a file's resolve url; fills etag, size, url and blob. */
static air_status file_metadata(const air_hub_ctx *c, const char *repo_id, const char *storage,
                                const char *resolve_url, hub_file *f) {
    air_hub_what what = {repo_id, c->revision, f->path};
    air_http_resp r;
    air_status st = air_hub_head(c, resolve_url, &what, &r);
    if (st != AIR_OK) {
        air_http_resp_free(&r);
        return st;
    }
    if (!r.repo_commit) {
        st = air_err(AIR_ERR_FORMAT,
                     "the answer for %s has no X-Repo-Commit header: %s does not look like a "
                     "Hugging Face Hub endpoint. Check HF_ENDPOINT, proxies and firewalls.",
                     resolve_url, c->endpoint);
    } else if (!(f->etag = air_hub_normalize_etag(r.linked_etag ? r.linked_etag : r.etag)) ||
               !f->etag[0] || !air_hub_safe_path(f->etag) || strchr(f->etag, '/')) {
        st = air_err(AIR_ERR_FORMAT,
                     "the Hub gave no usable ETag for %s of %s; cannot name the cached file",
                     f->path, repo_id);
    } else {
        int redirect = r.status >= 300 && r.status < 400;
        f->size = r.linked_size >= 0 ? r.linked_size : (!redirect ? r.content_length : -1);
        f->url = strdup(redirect && r.location ? r.location : (r.url ? r.url : resolve_url));
        f->blob = strf("%s/blobs/%s", storage, f->etag);
        if (!f->url || !f->blob)
            st = air_err(AIR_ERR_NOMEM, "out of memory");
    }
    air_http_resp_free(&r);
    return st;
}

/* Makes every file of `paths` present in snapshots/{sha}. */
static air_status fetch_files(const air_hub_ctx *c, const char *repo_id, const char *storage,
                              const char *sha, const strlist *paths) {
    hub_file *files = calloc(paths->n ? paths->n : 1, sizeof *files);
    char *repo_url = strf("%s/%s/resolve/%s", c->endpoint, repo_id, sha);
    air_status st = AIR_OK;
    uint64_t all_total = 0;
    if (!files || !repo_url) {
        st = air_err(AIR_ERR_NOMEM, "out of memory");
        goto out;
    }
    char **resolve = calloc(paths->n ? paths->n : 1, sizeof *resolve);
    if (!resolve) {
        st = air_err(AIR_ERR_NOMEM, "out of memory");
        goto out;
    }
    /* Pass 1: what is cached, what needs a link, what needs bytes. */
    for (size_t i = 0; st == AIR_OK && i < paths->n; i++) {
        hub_file *f = &files[i];
        f->path = paths->v[i];
        f->size = -1;
        f->pointer = strf("%s/snapshots/%s/%s", storage, sha, f->path);
        char *q = air_hub_quote(f->path, "/");
        resolve[i] = q ? strf("%s/%s", repo_url, q) : NULL;
        free(q);
        if (!f->pointer || !resolve[i]) {
            st = air_err(AIR_ERR_NOMEM, "out of memory");
            break;
        }
        if (is_file(f->pointer))
            continue; /* state 0: in the snapshot already */
        if ((st = file_metadata(c, repo_id, storage, resolve[i], f)) != AIR_OK)
            break;
        f->state = is_file(f->blob) ? 1 : 2;
        if (f->state == 2 && f->size > 0) {
            char *inc = strf("%s.incomplete", f->blob);
            struct stat sb;
            uint64_t have = inc && stat(inc, &sb) == 0 ? (uint64_t)sb.st_size : 0;
            free(inc);
            if (have < (uint64_t)f->size)
                all_total += (uint64_t)f->size - have;
        }
    }
    if (st == AIR_OK && all_total > 0) {
        char *blobs = strf("%s/blobs", storage);
        struct statvfs vfs;
        if (blobs && air_mkdirs(blobs) == AIR_OK && statvfs(blobs, &vfs) == 0) {
            uint64_t avail = (uint64_t)vfs.f_bavail * (uint64_t)vfs.f_frsize;
            char need_s[32], avail_s[32];
            if (avail < all_total)
                st = air_err(AIR_ERR_IO,
                             "disk full: model %s needs %s more, only %s free in %s. Free some "
                             "space or set HF_HUB_CACHE to a folder on a larger disk.",
                             repo_id, air_format_bytes(all_total, need_s, sizeof need_s),
                             air_format_bytes(avail, avail_s, sizeof avail_s), c->cache_dir);
        }
        free(blobs);
    }
    if (st == AIR_OK)
        write_cachedir_tag(c->cache_dir);
    /* Pass 2: bytes and links. */
    progress_state ps = {.c = c, .all_total = all_total};
    for (size_t i = 0; st == AIR_OK && i < paths->n; i++) {
        hub_file *f = &files[i];
        if (f->state == 0)
            continue;
        if (f->state == 2) {
            char *blobs = strf("%s/blobs", storage);
            st = blobs ? air_mkdirs(blobs) : air_err(AIR_ERR_NOMEM, "out of memory");
            free(blobs);
            if (st == AIR_OK)
                st = download_blob(c, repo_id, storage, resolve[i], f, &ps);
            if (st == AIR_OK && f->size > 0)
                ps.all_before += (uint64_t)f->size - ps.start_bytes;
        }
        if (st == AIR_OK)
            st = link_pointer(f->pointer, f->path, f->etag);
    }
    for (size_t i = 0; i < paths->n; i++)
        free(resolve[i]);
    free(resolve);
out:
    if (files)
        for (size_t i = 0; i < paths->n; i++) {
            free(files[i].pointer);
            free(files[i].url);
            free(files[i].etag);
            free(files[i].blob);
        }
    free(files);
    free(repo_url);
    return st;
}

/* ------------------------------------------------------------------------- */
/* Repo listing and file choice                                              */
/* ------------------------------------------------------------------------- */

static air_status repo_listing(const air_hub_ctx *c, const char *repo_id, char **sha,
                               strlist *siblings) {
    char *rev = air_hub_quote(c->revision, "");
    char *url = rev ? strf("%s/api/models/%s/revision/%s", c->endpoint, repo_id, rev) : NULL;
    free(rev);
    if (!url)
        return air_err(AIR_ERR_NOMEM, "out of memory");
    air_hub_what what = {repo_id, c->revision, NULL};
    air_http_resp r;
    air_status st = air_hub_get_json(c, url, &what, &r);
    cJSON *root = NULL;
    if (st == AIR_OK) {
        root = cJSON_ParseWithLength(r.body, r.body_len);
        cJSON *s = cJSON_GetObjectItemCaseSensitive(root, "sha");
        cJSON *sib = cJSON_GetObjectItemCaseSensitive(root, "siblings");
        if (!root || !cJSON_IsString(s) || !air_hub_is_commit(s->valuestring) ||
            !cJSON_IsArray(sib)) {
            st = air_err(AIR_ERR_FORMAT,
                         "unexpected answer from %s (no commit sha or file list): is HF_ENDPOINT "
                         "a Hugging Face Hub?",
                         url);
        } else if (!(*sha = strdup(s->valuestring))) {
            st = air_err(AIR_ERR_NOMEM, "out of memory");
        } else {
            cJSON *e;
            cJSON_ArrayForEach(e, sib) {
                cJSON *name = cJSON_GetObjectItemCaseSensitive(e, "rfilename");
                if (cJSON_IsString(name) && air_hub_safe_path(name->valuestring) &&
                    (st = sl_add(siblings, name->valuestring)) != AIR_OK)
                    break;
            }
        }
    }
    cJSON_Delete(root);
    air_http_resp_free(&r);
    free(url);
    return st;
}

/* Explains which weight formats a repo has when it has no safetensors. */
static air_status no_weights_error(const char *repo_id, const strlist *sib) {
    const char *other = NULL;
    for (size_t i = 0; i < sib->n && !other; i++) {
        const char *s = sib->v[i];
        size_t n = strlen(s);
        if ((n > 4 && strcmp(s + n - 4, ".bin") == 0) ||
            (n > 4 && strcmp(s + n - 4, ".pth") == 0) ||
            (n > 5 && strcmp(s + n - 5, ".gguf") == 0) || (n > 3 && strcmp(s + n - 3, ".pt") == 0))
            other = s;
    }
    if (other)
        return air_err(AIR_ERR_UNSUPPORTED,
                       "model %s has no safetensors weights (found %s): airllm.c reads "
                       "model.safetensors or model.safetensors.index.json shards; choose a "
                       "safetensors variant of the model, or pass a GGUF file name as an extra "
                       "pattern",
                       repo_id, other);
    return air_err(AIR_ERR_NOT_FOUND,
                   "model %s has no weights airllm.c can read (no model.safetensors or "
                   "model.safetensors.index.json)",
                   repo_id);
}

static int is_named_template(const char *path) {
    size_t d = strlen(NAMED_TEMPLATES_DIR), n = strlen(path);
    return n > d + 6 && strncmp(path, NAMED_TEMPLATES_DIR, d) == 0 && !strchr(path + d, '/') &&
           strcmp(path + n - 6, ".jinja") == 0;
}

static air_status online_snapshot(const air_hub_ctx *c, const char *repo_id, const char *storage,
                                  const char *const *extra, char **sha_out) {
    strlist sib = {0}, want = {0}, weights = {0};
    char *sha = NULL;
    air_status st = repo_listing(c, repo_id, &sha, &sib);
    if (st == AIR_OK)
        st = write_ref(storage, c->revision, sha);

    int extra_hits = 0;
    for (size_t i = 0; st == AIR_OK && k_base_files[i]; i++)
        if (sl_has(&sib, k_base_files[i]))
            st = sl_add(&want, k_base_files[i]);
    for (size_t j = 0; st == AIR_OK && j < sib.n; j++)
        if (is_named_template(sib.v[j]))
            st = sl_add(&want, sib.v[j]);
    for (size_t i = 0; st == AIR_OK && extra && extra[i]; i++)
        for (size_t j = 0; st == AIR_OK && j < sib.n; j++)
            if (air_hub_glob(extra[i], sib.v[j])) {
                st = sl_add(&want, sib.v[j]);
                extra_hits++;
            }
    int has_index = sl_has(&sib, INDEX_FILE), has_single = sl_has(&sib, SINGLE_FILE);
    if (st == AIR_OK && !sl_has(&sib, "config.json") && !extra_hits)
        st = air_err(AIR_ERR_NOT_FOUND,
                     "model %s (revision %s) has no config.json: it is not a transformers model "
                     "airllm.c can load",
                     repo_id, c->revision);
    if (st == AIR_OK && !has_index && !has_single && !extra_hits)
        st = no_weights_error(repo_id, &sib);
    if (st == AIR_OK && has_index)
        st = sl_add(&want, INDEX_FILE);
    /* small files first (and the index, which names the shards) */
    if (st == AIR_OK)
        st = fetch_files(c, repo_id, storage, sha, &want);
    if (st == AIR_OK && has_index) {
        char *ip = strf("%s/snapshots/%s/%s", storage, sha, INDEX_FILE);
        st = ip ? index_shards(ip, &weights) : air_err(AIR_ERR_NOMEM, "out of memory");
        for (size_t i = 0; st == AIR_OK && i < weights.n; i++)
            if (!sl_has(&sib, weights.v[i]))
                st = air_err(AIR_ERR_FORMAT,
                             "%s of model %s names shard %s, which is not in the repo (revision "
                             "%s)",
                             INDEX_FILE, repo_id, weights.v[i], c->revision);
        free(ip);
    } else if (st == AIR_OK && has_single) {
        st = sl_add(&weights, SINGLE_FILE);
    }
    if (st == AIR_OK && weights.n)
        st = fetch_files(c, repo_id, storage, sha, &weights);
    if (st == AIR_OK)
        *sha_out = sha;
    else
        free(sha);
    sl_free(&sib);
    sl_free(&want);
    sl_free(&weights);
    return st;
}

/* ------------------------------------------------------------------------- */
/* Entry point                                                               */
/* ------------------------------------------------------------------------- */

air_status air_hub_snapshot(const char *repo_id, const air_hub_options *o, char **snapshot_dir,
                            char **commit) {
    if (snapshot_dir)
        *snapshot_dir = NULL;
    if (commit)
        *commit = NULL;
    if (!snapshot_dir)
        return air_err(AIR_ERR_INVALID_ARG, "air_hub_snapshot: snapshot_dir is NULL");
    if (!air_hub_valid_repo_id(repo_id))
        return air_err(AIR_ERR_INVALID_ARG,
                       "'%s' is not a valid Hugging Face model id: expected org/name with "
                       "letters, digits, '-', '_' and '.'",
                       repo_id ? repo_id : "(null)");
    air_hub_ctx c;
    air_status st = air_hub_ctx_init(&c, o);
    if (st)
        return st;
    const char *const *extra = o ? o->extra_patterns : NULL;
    char *storage = air_hub_repo_folder(c.cache_dir, repo_id);
    char *sha = NULL;
    if (!storage) {
        st = air_err(AIR_ERR_NOMEM, "out of memory");
    } else if (c.offline) {
        st = cached_snapshot(&c, repo_id, storage, extra,
                             "offline mode is on (HF_HUB_OFFLINE or the offline option)",
                             snapshot_dir, commit);
    } else if (air_hub_is_commit(c.revision) &&
               cached_snapshot(&c, repo_id, storage, extra, "", snapshot_dir, commit) == AIR_OK) {
        /* a commit never changes: a complete snapshot needs no network */
    } else {
        air_err_clear();
        st = online_snapshot(&c, repo_id, storage, extra, &sha);
        if (st == AIR_ERR_NETWORK || st == AIR_ERR_AUTH) {
            /* Like huggingface_hub: if the Hub cannot be reached, a complete
             * cached snapshot of the revision still does. */
            char saved[1024];
            snprintf(saved, sizeof saved, "%s", air_last_error());
            if (cached_snapshot(&c, repo_id, storage, extra, "", snapshot_dir, commit) == AIR_OK) {
                air_err_clear();
                st = AIR_OK;
            } else {
                st = air_err(st, "%s", saved);
            }
        } else if (st == AIR_OK) {
            *snapshot_dir = strf("%s/snapshots/%s", storage, sha);
            if (!*snapshot_dir) {
                st = air_err(AIR_ERR_NOMEM, "out of memory");
            } else if (commit) {
                *commit = sha;
                sha = NULL;
            }
        }
    }
    if (st != AIR_OK) { /* no password, token or signed query in what the user sees */
        char *safe = air_hub_redact(air_last_error(), c.token);
        if (safe)
            air_err(st, "%s", safe);
        free(safe);
    }
    free(sha);
    free(storage);
    air_hub_ctx_free(&c);
    return st;
}
