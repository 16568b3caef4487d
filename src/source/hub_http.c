/*
 * hub_http.c - the HTTP side of hub downloads, on libcurl.
 *
 * Three requests: GET of an API document (JSON into memory), HEAD of a
 * resolve url (metadata from headers), and GET of a file body into an open
 * file. All three go through request(), which
 *   - follows redirects by hand: a redirect that stays on the origin of the
 *     first url keeps the Authorization header; one to another origin (the
 *     CDN holding LFS blobs, with a signed url) never gets it; a HEAD stops at
 *     such a redirect and returns it, because the metadata is in its headers;
 *   - retries transient failures (HTTP 408/429/5xx, timeouts, transfers
 *     slower than the low-speed limit, dropped connections) with exponential
 *     backoff: at most max_attempts failures in a row without progress, at
 *     most 4 x max_attempts attempts in all, and never past the request's
 *     deadline (timeout_s). Each retry is announced through the notice
 *     callback;
 *   - a download always continues from the bytes kept in the file:
 *     "Range: bytes=N-" where the file ends; a 206 must start at N and agree
 *     with the expected size; a server that ignores the Range (200) has its
 *     first N bytes compared with the kept ones instead of overwriting them;
 *     a Content-Length that disagrees with the expected size ends the
 *     download at once (a lying or wrong server, not a transient failure);
 *   - turns final failures into one actionable air_err() message. The token
 *     is only ever placed in a request header; the caller redacts urls.
 */
#include <curl/curl.h>
#include <errno.h>
#include <openssl/evp.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "source/hub.h"
#include "util/error.h"
#include "util/strbuf.h"

#define MAX_REDIRECTS 20
#define MAX_JSON_BYTES (64u << 20)
#define MAX_ERROR_BODY 4096u
#define BACKOFF_BASE_S 0.5
#define BACKOFF_MAX_S 8.0
#define RETRY_AFTER_MAX_S 30.0
#define ATTEMPT_CAP_FACTOR 4       /* all attempts of a request <= this x max_attempts */
#define AUTO_TIMEOUT_BASE_S 600.0  /* automatic deadline: this ... */
#define AUTO_TIMEOUT_RATE 131072.0 /* ... plus the expected size at this many bytes/s */

enum { MODE_JSON, MODE_HEAD, MODE_FILE };

/* One transfer in progress: where the body goes and what went wrong in a
 * callback (curl only sees "write error"). */
typedef struct {
    int mode;
    air_http_resp *resp;
    /* MODE_FILE */
    int fd;
    uint64_t offset;  /* bytes in the file when this attempt started */
    uint64_t size;    /* bytes in the file now */
    uint64_t pos;     /* file offset of the next body byte of this attempt */
    int64_t expected; /* size of the whole file, -1 if unknown */
    const char *path; /* the file being written, for messages */
    EVP_MD_CTX *sha;
    int body_checked; /* first body byte seen and status/Content-Range validated */
    int write_errno;  /* errno of a failed write() */
    int range_bad;    /* 206 with a Content-Range that does not start at offset */
    char *bad_answer; /* the server's answer contradicts the file's size: why */
    air_http_bytes_fn on_bytes;
    void *on_bytes_user;
    /* MODE_JSON and error bodies */
    air_strbuf body;
    int body_too_big;
} xfer;

static pthread_once_t g_curl_once = PTHREAD_ONCE_INIT;
static void curl_init_once(void) {
    curl_global_init(CURL_GLOBAL_DEFAULT);
}

void air_http_resp_free(air_http_resp *r) {
    if (!r)
        return;
    free(r->location);
    free(r->repo_commit);
    free(r->etag);
    free(r->linked_etag);
    free(r->content_range);
    free(r->error_code);
    free(r->error_message);
    free(r->url);
    free(r->body);
    memset(r, 0, sizeof *r);
    r->linked_size = -1;
    r->content_length = -1;
}

/* Clears the headers of a previous response (a redirect, an interim 100). */
static void resp_reset_headers(air_http_resp *r) {
    char *url = r->url;
    r->url = NULL;
    air_http_resp_free(r);
    r->url = url;
}

static void sleep_s(double s) {
    if (s <= 0)
        return;
    struct timespec ts = {(time_t)s, (long)((s - (double)(time_t)s) * 1e9)};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

/* ------------------------------------------------------------------------- */
/* Callbacks                                                                 */
/* ------------------------------------------------------------------------- */

static char *dup_trim(const char *s, size_t n) {
    while (n && (*s == ' ' || *s == '\t')) {
        s++;
        n--;
    }
    while (n && (s[n - 1] == '\r' || s[n - 1] == '\n' || s[n - 1] == ' ' || s[n - 1] == '\t'))
        n--;
    char *r = malloc(n + 1);
    if (r) {
        memcpy(r, s, n);
        r[n] = 0;
    }
    return r;
}

static void set_str(char **dst, char *v) {
    free(*dst);
    *dst = v;
}

static size_t on_header(char *buf, size_t size, size_t nitems, void *userdata) {
    xfer *x = userdata;
    air_http_resp *r = x->resp;
    size_t n = size * nitems;
    if (n >= 5 && strncmp(buf, "HTTP/", 5) == 0) {
        resp_reset_headers(r);
        const char *sp = memchr(buf, ' ', n);
        r->status = sp ? strtol(sp + 1, NULL, 10) : 0;
        return n;
    }
    const char *colon = memchr(buf, ':', n);
    if (!colon)
        return n;
    size_t kl = (size_t)(colon - buf);
    const char *v = colon + 1;
    size_t vl = n - kl - 1;
#define IS(name) (kl == sizeof(name) - 1 && strncasecmp(buf, name, kl) == 0)
    if (IS("X-Repo-Commit"))
        set_str(&r->repo_commit, dup_trim(v, vl));
    else if (IS("ETag"))
        set_str(&r->etag, dup_trim(v, vl));
    else if (IS("X-Linked-Etag"))
        set_str(&r->linked_etag, dup_trim(v, vl));
    else if (IS("Content-Range"))
        set_str(&r->content_range, dup_trim(v, vl));
    else if (IS("X-Error-Code"))
        set_str(&r->error_code, dup_trim(v, vl));
    else if (IS("X-Error-Message"))
        set_str(&r->error_message, dup_trim(v, vl));
    else if (IS("X-Linked-Size") || IS("Content-Length") || IS("Retry-After")) {
        char *s = dup_trim(v, vl);
        if (s) {
            char *end;
            errno = 0;
            long long num = strtoll(s, &end, 10);
            int ok = errno == 0 && end != s && *end == 0 && num >= 0;
            if (IS("X-Linked-Size"))
                r->linked_size = ok ? num : -1;
            else if (IS("Content-Length"))
                r->content_length = ok ? num : -1;
            else
                r->retry_after = ok ? (double)num : 0;
            free(s);
        }
    }
#undef IS
    return n;
}

/* "bytes START-END/TOTAL" -> START (and TOTAL into *total, -1 for "*"), or -1. */
static int64_t content_range_start(const char *cr, int64_t *total) {
    *total = -1;
    if (!cr || strncasecmp(cr, "bytes ", 6) != 0)
        return -1;
    char *end;
    long long v = strtoll(cr + 6, &end, 10);
    if (end == cr + 6 || *end != '-')
        return -1;
    const char *slash = strchr(end, '/');
    if (slash && slash[1] != '*') {
        char *e2;
        long long t = strtoll(slash + 1, &e2, 10);
        if (e2 != slash + 1)
            *total = t;
    }
    return v;
}

static void set_bad_answer(xfer *x, const char *fmt, ...) AIR_PRINTF(2, 3);
static void set_bad_answer(xfer *x, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    free(x->bad_answer);
    if (vasprintf(&x->bad_answer, fmt, ap) < 0)
        x->bad_answer = NULL;
    va_end(ap);
}

/* Decides, at the first body byte of a 200/206 answer, where it goes. */
static int file_body_start(xfer *x) {
    air_http_resp *r = x->resp;
    x->body_checked = 1;
    int64_t total = -1;
    if (r->status == 206) {
        if (content_range_start(r->content_range, &total) != (int64_t)x->offset) {
            x->range_bad = 1;
            return 0;
        }
        x->pos = x->offset;
    } else {
        x->pos = 0; /* a whole body although we asked for a range: compare the kept prefix */
        total = r->content_length;
    }
    if (x->expected >= 0) {
        int64_t left = x->expected - (int64_t)x->pos;
        if (total >= 0 && total != x->expected) {
            set_bad_answer(x,
                           "the server sent %s of a %lld-byte file, but the Hub said the file "
                           "has %lld bytes",
                           r->status == 206 ? "a range" : "the body", (long long)total,
                           (long long)x->expected);
            return 0;
        }
        if (r->content_length >= 0 && r->content_length != left) {
            set_bad_answer(x,
                           "the server announced Content-Length %lld where %lld bytes were "
                           "left of the %lld the Hub said the file has",
                           (long long)r->content_length, (long long)left, (long long)x->expected);
            return 0;
        }
    }
    return 1;
}

/* The body repeats bytes [pos, pos+n) that the file already holds: compares
 * them; at the first difference the file is cut there (and the hash redone),
 * and the number of matching bytes is returned. */
static size_t compare_kept(xfer *x, const char *buf, size_t n) {
    char tmp[65536];
    size_t done = 0;
    while (done < n) {
        size_t want = n - done < sizeof tmp ? n - done : sizeof tmp;
        ssize_t r = pread(x->fd, tmp, want, (off_t)(x->pos + done));
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0) {
            x->write_errno = errno;
            return 0;
        }
        if (r == 0)
            break; /* the file is shorter than we thought: keep what matched */
        size_t k = 0;
        while (k < (size_t)r && tmp[k] == buf[done + k])
            k++;
        done += k;
        if (k < (size_t)r)
            break;
    }
    if (done == n)
        return n;
    /* the kept bytes differ from the server's file: keep only the common prefix */
    uint64_t cut = x->pos + done;
    if (ftruncate(x->fd, (off_t)cut) != 0 || lseek(x->fd, (off_t)cut, SEEK_SET) < 0) {
        x->write_errno = errno;
        return 0;
    }
    x->size = cut;
    if (x->sha && (EVP_DigestInit_ex(x->sha, EVP_sha256(), NULL) != 1 ||
                   air_hub_hash_prefix(x->fd, cut, x->sha, x->path) != AIR_OK)) {
        x->write_errno = EIO;
        return 0;
    }
    return done;
}

static size_t on_body(char *buf, size_t size, size_t nmemb, void *userdata) {
    xfer *x = userdata;
    size_t n = size * nmemb;
    long st = x->resp->status;
    if (x->mode == MODE_FILE && (st == 200 || st == 206)) {
        if (!x->body_checked && !file_body_start(x))
            return 0;
        if (x->pos < x->size) { /* bytes we have already */
            size_t have = x->size - x->pos < n ? (size_t)(x->size - x->pos) : n;
            size_t same = compare_kept(x, buf, have);
            if (x->write_errno)
                return 0;
            x->pos += same;
            buf += same;
            n -= same;
            if (n == 0)
                return size * nmemb;
        }
        if (x->expected >= 0 && x->size + n > (uint64_t)x->expected) {
            set_bad_answer(x, "the server sent more than the %lld bytes the Hub said the file has",
                           (long long)x->expected);
            return 0;
        }
        size_t done = 0;
        while (done < n) {
            ssize_t w = write(x->fd, buf + done, n - done);
            if (w < 0 && errno == EINTR)
                continue;
            if (w <= 0) {
                x->write_errno = w < 0 ? errno : EIO;
                return 0;
            }
            done += (size_t)w;
        }
        if (x->sha)
            EVP_DigestUpdate(x->sha, buf, n);
        x->size += n;
        x->pos += n;
        if (x->on_bytes)
            x->on_bytes(x->on_bytes_user, x->size, 0);
        return size * nmemb;
    }
    size_t cap = (x->mode == MODE_JSON && st >= 200 && st < 300) ? MAX_JSON_BYTES : MAX_ERROR_BODY;
    if (x->body.len + n > cap) {
        if (x->mode == MODE_JSON && st >= 200 && st < 300) {
            x->body_too_big = 1;
            return 0;
        }
        return n; /* error page: keep the start, drop the rest */
    }
    if (air_sb_append(&x->body, buf, n) != AIR_OK)
        return 0;
    return n;
}

/* ------------------------------------------------------------------------- */
/* Origins and one attempt                                                   */
/* ------------------------------------------------------------------------- */

/* 1 if a and b share scheme, host (case-insensitive) and port. */
static int same_origin(const char *a, const char *b) {
    CURLU *ua = curl_url(), *ub = curl_url();
    int same = 0;
    if (ua && ub && curl_url_set(ua, CURLUPART_URL, a, 0) == CURLUE_OK &&
        curl_url_set(ub, CURLUPART_URL, b, 0) == CURLUE_OK) {
        same = 1;
        static const CURLUPart parts[] = {CURLUPART_SCHEME, CURLUPART_HOST, CURLUPART_PORT};
        for (int i = 0; i < 3 && same; i++) {
            char *pa = NULL, *pb = NULL;
            curl_url_get(ua, parts[i], &pa, CURLU_DEFAULT_PORT);
            curl_url_get(ub, parts[i], &pb, CURLU_DEFAULT_PORT);
            same = pa && pb && strcasecmp(pa, pb) == 0;
            curl_free(pa);
            curl_free(pb);
        }
    }
    curl_url_cleanup(ua);
    curl_url_cleanup(ub);
    return same;
}

/* Runs one request; fills x->resp (status, headers, redirect url). */
static CURLcode perform(const air_hub_ctx *c, const char *url, int send_auth, xfer *x,
                        double time_left, char *errbuf) {
    pthread_once(&g_curl_once, curl_init_once);
    CURL *h = curl_easy_init();
    if (!h)
        return CURLE_FAILED_INIT;
    struct curl_slist *hdr = NULL;
    char line[160];
    hdr = curl_slist_append(hdr, "Accept-Encoding: identity");
    if (x->mode == MODE_FILE && x->offset > 0) {
        snprintf(line, sizeof line, "Range: bytes=%llu-", (unsigned long long)x->offset);
        hdr = curl_slist_append(hdr, line);
    }
    air_strbuf auth = {0};
    if (send_auth && c->token && c->token[0] &&
        air_sb_printf(&auth, "Authorization: Bearer %s", c->token) == AIR_OK)
        hdr = curl_slist_append(hdr, auth.data);

    errbuf[0] = 0;
    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdr);
    curl_easy_setopt(h, CURLOPT_USERAGENT, "airllm.c/0.1; hf_hub-compatible; libcurl");
    curl_easy_setopt(h, CURLOPT_FOLLOWLOCATION, 0L);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT, c->connect_timeout > 0 ? c->connect_timeout : 10L);
    curl_easy_setopt(h, CURLOPT_LOW_SPEED_LIMIT, c->low_speed_limit > 0 ? c->low_speed_limit : 1L);
    curl_easy_setopt(h, CURLOPT_LOW_SPEED_TIME, c->low_speed_time > 0 ? c->low_speed_time : 30L);
    long ms = time_left < 1e-3 ? 1L : time_left > 2e9 ? 2000000000L : (long)(time_left * 1000.0);
    curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, ms);
    curl_easy_setopt(h, CURLOPT_ERRORBUFFER, errbuf);
    curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(h, CURLOPT_HEADERDATA, x);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, x);
    curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
    if (x->mode == MODE_HEAD)
        curl_easy_setopt(h, CURLOPT_NOBODY, 1L);

    CURLcode rc = curl_easy_perform(h);
    long status = 0;
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
    if (status)
        x->resp->status = status;
    char *redir = NULL;
    if (rc == CURLE_OK && status >= 300 && status < 400 &&
        curl_easy_getinfo(h, CURLINFO_REDIRECT_URL, &redir) == CURLE_OK && redir)
        set_str(&x->resp->location, strdup(redir));
    curl_easy_cleanup(h);
    curl_slist_free_all(hdr);
    if (auth.data) /* wipe the copy of the token */
        memset(auth.data, 0, auth.len);
    air_sb_free(&auth);
    return rc;
}

static int transient_status(long s) {
    return s == 408 || s == 429 || s == 500 || s == 502 || s == 503 || s == 504;
}

static int transient_curl(CURLcode rc) {
    switch (rc) {
    case CURLE_OPERATION_TIMEDOUT:
    case CURLE_PARTIAL_FILE:
    case CURLE_RECV_ERROR:
    case CURLE_SEND_ERROR:
    case CURLE_GOT_NOTHING:
    case CURLE_HTTP2:
    case CURLE_HTTP2_STREAM:
    case CURLE_SSL_CONNECT_ERROR:
        return 1;
    default:
        return 0;
    }
}

/* ------------------------------------------------------------------------- */
/* Error messages                                                            */
/* ------------------------------------------------------------------------- */

static air_status network_error(const air_hub_ctx *c, CURLcode rc, const char *errbuf,
                                const char *url, int attempts) {
    const char *detail = errbuf[0] ? errbuf : curl_easy_strerror(rc);
    const char *hint = "If the model is already in the cache, set HF_HUB_OFFLINE=1 to use it "
                       "without network.";
    switch (rc) {
    case CURLE_COULDNT_RESOLVE_HOST:
    case CURLE_COULDNT_RESOLVE_PROXY:
        return air_err(
            AIR_ERR_NETWORK,
            "cannot reach the Hugging Face Hub at %s: DNS lookup failed (%s); no network? "
            "Check the connection or HF_ENDPOINT. %s",
            c->endpoint, detail, hint);
    case CURLE_COULDNT_CONNECT:
        return air_err(AIR_ERR_NETWORK,
                       "cannot connect to the Hugging Face Hub at %s: connection refused or no "
                       "route (%s). Check the network or HF_ENDPOINT. %s",
                       c->endpoint, detail, hint);
    case CURLE_PEER_FAILED_VERIFICATION:
        return air_err(AIR_ERR_NETWORK,
                       "TLS certificate check failed for %s (%s); check the system CA "
                       "certificates and any proxy. %s",
                       url, detail, hint);
    default:
        if (transient_curl(rc))
            return air_err(AIR_ERR_NETWORK,
                           "download from %s failed after %d attempts: %s (connection dropped or "
                           "timed out). Run again to resume. %s",
                           url, attempts, detail, hint);
        return air_err(AIR_ERR_NETWORK, "request to %s failed: %s. %s", url, detail, hint);
    }
}

static air_status status_error(const air_hub_ctx *c, const air_http_resp *r, const air_hub_what *w,
                               int attempts) {
    const char *code = r->error_code ? r->error_code : "";
    const char *msg = r->error_message ? r->error_message : "";
    const char *rev = w->revision ? w->revision : "main";
    long s = r->status;
    if (s == 401 || s == 403) {
        if (strcmp(msg, "Invalid credentials in Authorization header") == 0 ||
            (c->token && strcmp(code, "GatedRepo") != 0 && strcmp(code, "RepoNotFound") != 0 &&
             s == 401))
            return air_err(AIR_ERR_AUTH,
                           "the Hugging Face token was rejected (HTTP %ld) for model %s: it is "
                           "invalid or expired. Create a read token at %s/settings/tokens and set "
                           "HF_TOKEN (or pass the token option).",
                           s, w->repo_id, c->endpoint);
        if (strcmp(code, "RepoNotFound") == 0)
            return air_err(AIR_ERR_AUTH,
                           "model %s not found on %s (HTTP %ld), or it is private or gated and "
                           "needs a token: check the name (org/name); if it is gated, accept its "
                           "license on %s/%s and set HF_TOKEN (or pass the token option).",
                           w->repo_id, c->endpoint, s, c->endpoint, w->repo_id);
        if (c->token)
            return air_err(AIR_ERR_AUTH,
                           "access to model %s denied (HTTP %ld): the model is gated and the "
                           "account of your token has no access. Accept the license on %s/%s "
                           "while logged in as that account, and make sure HF_TOKEN (or the token "
                           "option) holds a token with read access.",
                           w->repo_id, s, c->endpoint, w->repo_id);
        return air_err(AIR_ERR_AUTH,
                       "model %s is gated (HTTP %ld): accept its license on %s/%s, create a read "
                       "token at %s/settings/tokens and set HF_TOKEN (or pass the token option).",
                       w->repo_id, s, c->endpoint, w->repo_id, c->endpoint);
    }
    if (s == 404 || strcmp(code, "RepoNotFound") == 0 || strcmp(code, "RevisionNotFound") == 0 ||
        strcmp(code, "EntryNotFound") == 0) {
        if (strcmp(code, "RevisionNotFound") == 0)
            return air_err(AIR_ERR_NOT_FOUND,
                           "revision '%s' of model %s not found on %s: check the branch, tag or "
                           "commit name",
                           rev, w->repo_id, c->endpoint);
        if (strcmp(code, "EntryNotFound") == 0 || (w->file && strcmp(code, "RepoNotFound") != 0))
            return air_err(AIR_ERR_NOT_FOUND, "file %s not found in model %s at revision %s (%s)",
                           w->file ? w->file : "?", w->repo_id, rev, c->endpoint);
        return air_err(AIR_ERR_NOT_FOUND,
                       "model %s not found on %s: check the name (org/name); a private model "
                       "also needs HF_TOKEN",
                       w->repo_id, c->endpoint);
    }
    if (transient_status(s))
        return air_err(AIR_ERR_NETWORK,
                       "the Hub at %s answered HTTP %ld for %s%s%s after %d attempts%s%s; try "
                       "again later (set HF_HUB_OFFLINE=1 to use models already in the cache)",
                       c->endpoint, s, w->repo_id, w->file ? " file " : "", w->file ? w->file : "",
                       attempts, msg[0] ? ": " : "", msg);
    return air_err(AIR_ERR_NETWORK, "the Hub at %s answered HTTP %ld for %s%s%s%s%s", c->endpoint,
                   s, w->repo_id, w->file ? " file " : "", w->file ? w->file : "",
                   msg[0] ? ": " : "", msg);
}

/* ------------------------------------------------------------------------- */
/* The request loop: redirects x retries                                     */
/* ------------------------------------------------------------------------- */

static double mono_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* Seconds one request may take in all (see air_hub_options.timeout_s). */
static double request_limit(const air_hub_ctx *c, int64_t expected) {
    if (c->timeout_s > 0)
        return c->timeout_s;
    return AUTO_TIMEOUT_BASE_S + (expected > 0 ? (double)expected / AUTO_TIMEOUT_RATE : 0);
}

/* Why an attempt failed, in a few words, for notices. */
static void attempt_reason(CURLcode rc, const air_http_resp *r, const char *errbuf, char *out,
                           size_t n) {
    if (rc != CURLE_OK)
        snprintf(out, n, "%s", errbuf[0] ? errbuf : curl_easy_strerror(rc));
    else
        snprintf(out, n, "HTTP %ld", r->status);
}

/* The request ran out of time (its deadline passed). */
static air_status deadline_error(const air_hub_ctx *c, const air_hub_what *w, const xfer *x,
                                 double limit, int attempts, const char *reason) {
    const char *what = w->file ? w->file : "the file list";
    char kept[1400] = "";
    if (x->mode == MODE_FILE) {
        char have[32], all[32];
        air_format_bytes(x->size, have, sizeof have);
        if (x->expected >= 0)
            air_format_bytes((uint64_t)x->expected, all, sizeof all);
        snprintf(kept, sizeof kept, " %s%s%s are kept in %s; run again to resume from there.", have,
                 x->expected >= 0 ? " of " : "", x->expected >= 0 ? all : "", x->path);
    }
    return air_err(AIR_ERR_NETWORK,
                   "downloading %s of model %s from %s did not finish within %.0f s (%d "
                   "attempts, last: %s).%s The limit is set by AIR_HUB_TIMEOUT (seconds; "
                   "default 600 plus the file size at 128 KiB/s).",
                   what, w->repo_id, c->endpoint, limit, attempts, reason, kept);
}

static air_status request(const air_hub_ctx *c, const char *url0, const char *auth_origin,
                          const air_hub_what *what, xfer *x) {
    air_http_resp *r = x->resp;
    char errbuf[CURL_ERROR_SIZE];
    char *url = strdup(url0);
    if (!url)
        return air_err(AIR_ERR_NOMEM, "out of memory");
    int max_attempts = c->max_attempts > 0 ? c->max_attempts : 5;
    int attempt_cap = ATTEMPT_CAP_FACTOR * max_attempts;
    double limit = request_limit(c, x->mode == MODE_FILE ? x->expected : -1);
    double deadline = mono_s() + limit;
    const char *label = what->file ? what->file : "the file list";
    air_status st = AIR_OK;
    int total = 0; /* attempts of this request, over all redirects */
    for (int hop = 0;; hop++) {
        if (hop > MAX_REDIRECTS) {
            st = air_err(AIR_ERR_NETWORK, "too many redirects (> %d) starting at %s", MAX_REDIRECTS,
                         url0);
            break;
        }
        int send_auth = same_origin(auth_origin, url);
        int attempt = 0; /* failures in a row without progress */
        CURLcode rc;
        char reason[CURL_ERROR_SIZE + 32];
        for (;;) {
            attempt++;
            total++;
            uint64_t before = x->size;
            if (x->mode == MODE_FILE) {
                x->offset = x->size;
                x->body_checked = 0;
                if (lseek(x->fd, (off_t)x->size, SEEK_SET) < 0) {
                    st = air_err(AIR_ERR_IO, "seeking in %s: %s", what->file, strerror(errno));
                    goto done;
                }
            }
            x->body.len = 0;
            resp_reset_headers(r);
            r->status = 0;
            rc = perform(c, url, send_auth, x, deadline - mono_s(), errbuf);
            if (x->write_errno) {
                int e = x->write_errno;
                if (e == ENOSPC || e == EDQUOT)
                    st = air_err(AIR_ERR_IO,
                                 "disk full while downloading %s of %s into %s: free some space "
                                 "or set HF_HUB_CACHE to a folder on a larger disk, then run again "
                                 "to resume",
                                 what->file, what->repo_id, c->cache_dir);
                else
                    st = air_err(AIR_ERR_IO, "writing the download of %s to the cache failed: %s",
                                 what->file, strerror(e));
                goto done;
            }
            if (x->bad_answer) {
                st = air_err(AIR_ERR_NETWORK,
                             "downloading %s of model %s from %s stopped: %s. Not retried: the "
                             "server does not serve the file the Hub described; check HF_ENDPOINT "
                             "and any proxy. The %llu bytes received before are kept in %s.",
                             label, what->repo_id, url, x->bad_answer, (unsigned long long)x->size,
                             x->path);
                goto done;
            }
            if (x->body_too_big) {
                st = air_err(AIR_ERR_LIMIT, "the Hub answer from %s is larger than %u MiB", url,
                             MAX_JSON_BYTES >> 20);
                goto done;
            }
            if (x->range_bad) {
                /* The server sent another range than asked: start from scratch. */
                x->range_bad = 0;
                if (ftruncate(x->fd, 0) != 0) {
                    st = air_err(AIR_ERR_IO, "truncating the download of %s: %s", what->file,
                                 strerror(errno));
                    goto done;
                }
                x->size = 0;
                if (x->sha)
                    EVP_DigestInit_ex(x->sha, EVP_sha256(), NULL);
                snprintf(reason, sizeof reason, "the server sent another range than asked");
            } else if (x->mode == MODE_FILE && rc == CURLE_OK && r->status == 416 && x->size > 0) {
                /* Our partial file is longer than the remote one: start over. */
                if (ftruncate(x->fd, 0) != 0) {
                    st = air_err(AIR_ERR_IO, "truncating the download of %s: %s", what->file,
                                 strerror(errno));
                    goto done;
                }
                x->size = 0;
                if (x->sha)
                    EVP_DigestInit_ex(x->sha, EVP_sha256(), NULL);
                snprintf(reason, sizeof reason,
                         "HTTP 416: the kept bytes are longer than the file");
            } else if (rc == CURLE_OK && !transient_status(r->status)) {
                break;
            } else if (rc != CURLE_OK && !transient_curl(rc)) {
                st = network_error(c, rc, errbuf, url, total);
                goto done;
            } else {
                attempt_reason(rc, r, errbuf, reason, sizeof reason);
            }
            if (x->size > before)
                attempt = 0; /* progress was made: this one does not count */
            if (mono_s() >= deadline) {
                st = deadline_error(c, what, x, limit, total, reason);
                goto done;
            }
            if (attempt >= max_attempts || total >= attempt_cap) {
                st = rc != CURLE_OK ? network_error(c, rc, errbuf, url, total)
                                    : status_error(c, r, what, total);
                if (x->mode == MODE_FILE) {
                    char msg[2048];
                    snprintf(msg, sizeof msg, "%s", air_last_error());
                    st = air_err(st,
                                 "%s %llu bytes are kept in %s for the next run (at most %d "
                                 "failures in a row and %d attempts per file: "
                                 "AIR_HUB_MAX_ATTEMPTS).",
                                 msg, (unsigned long long)x->size, x->path, max_attempts,
                                 attempt_cap);
                }
                goto done;
            }
            int k = attempt < 1 ? 0 : (attempt > 6 ? 5 : attempt - 1);
            double wait = BACKOFF_BASE_S * (double)(1u << k);
            if (wait > BACKOFF_MAX_S)
                wait = BACKOFF_MAX_S;
            if (rc == CURLE_OK && r->retry_after > 0)
                wait = r->retry_after < RETRY_AFTER_MAX_S ? r->retry_after : RETRY_AFTER_MAX_S;
            if (mono_s() + wait >= deadline) {
                st = deadline_error(c, what, x, limit, total, reason);
                goto done;
            }
            if (x->mode == MODE_FILE) {
                char have[32], all[32] = "?";
                air_format_bytes(x->size, have, sizeof have);
                if (x->expected >= 0)
                    air_format_bytes((uint64_t)x->expected, all, sizeof all);
                air_hub_notice(c,
                               "%s: %s; retrying in %.1f s (attempt %d of at most %d), resuming "
                               "at %s of %s",
                               label, reason, wait, total + 1, attempt_cap, have, all);
            } else {
                air_hub_notice(c, "%s of %s: %s; retrying in %.1f s (attempt %d of at most %d)",
                               label, what->repo_id, reason, wait, total + 1, attempt_cap);
            }
            sleep_s(wait);
        }
        if (r->status >= 300 && r->status < 400 && r->location) {
            if (x->mode == MODE_HEAD && !same_origin(auth_origin, r->location))
                break; /* the CDN: metadata is on this response */
            free(url);
            url = strdup(r->location);
            if (!url) {
                st = air_err(AIR_ERR_NOMEM, "out of memory");
                goto done;
            }
            continue;
        }
        if (r->status < 200 || r->status >= 300) {
            st = status_error(c, r, what, total);
            goto done;
        }
        break;
    }
done:
    set_str(&r->url, url);
    if (x->body.data) {
        r->body_len = x->body.len;
        r->body = air_sb_take(&x->body);
    }
    free(x->bad_answer);
    x->bad_answer = NULL;
    return st;
}

air_status air_hub_get_json(const air_hub_ctx *c, const char *url, const air_hub_what *what,
                            air_http_resp *resp) {
    memset(resp, 0, sizeof *resp);
    air_http_resp_free(resp);
    xfer x = {.mode = MODE_JSON, .resp = resp, .expected = -1};
    air_status st = request(c, url, url, what, &x);
    air_sb_free(&x.body);
    if (st == AIR_OK && !resp->body)
        return air_err(AIR_ERR_FORMAT, "empty answer from %s", url);
    return st;
}

air_status air_hub_head(const air_hub_ctx *c, const char *url, const air_hub_what *what,
                        air_http_resp *resp) {
    memset(resp, 0, sizeof *resp);
    air_http_resp_free(resp);
    xfer x = {.mode = MODE_HEAD, .resp = resp, .expected = -1};
    air_status st = request(c, url, url, what, &x);
    air_sb_free(&x.body);
    return st;
}

air_status air_hub_download(const air_hub_ctx *c, const char *url, const char *auth_origin_url,
                            const air_hub_what *what, int fd, uint64_t offset, int64_t expected,
                            void *sha, const char *dest_path, air_http_bytes_fn on_bytes,
                            void *on_bytes_user) {
    air_http_resp resp;
    memset(&resp, 0, sizeof resp);
    air_http_resp_free(&resp);
    xfer x = {.mode = MODE_FILE,
              .resp = &resp,
              .fd = fd,
              .offset = offset,
              .size = offset,
              .expected = expected,
              .path = dest_path,
              .sha = sha,
              .on_bytes = on_bytes,
              .on_bytes_user = on_bytes_user};
    air_status st = AIR_OK;
    if (expected >= 0 && offset == (uint64_t)expected) {
        /* Complete already (a crash between the last byte and the rename). */
    } else {
        st = request(c, url, auth_origin_url, what, &x);
    }
    air_sb_free(&x.body);
    if (st == AIR_OK && expected >= 0 && x.size != (uint64_t)expected)
        st = air_err(AIR_ERR_NETWORK,
                     "download of %s from %s ended at %llu bytes, expected %lld (%s); run "
                     "again to retry",
                     what->file, c->endpoint, (unsigned long long)x.size, (long long)expected,
                     dest_path);
    if (st == AIR_OK && on_bytes)
        on_bytes(on_bytes_user, x.size, 1);
    air_http_resp_free(&resp);
    return st;
}

air_status air_hub_hash_prefix(int fd, uint64_t n, void *sha, const char *path) {
    static const size_t BUF = 1 << 20;
    char *buf = malloc(BUF);
    if (!buf)
        return air_err(AIR_ERR_NOMEM, "out of memory");
    uint64_t off = 0;
    air_status st = AIR_OK;
    while (off < n) {
        size_t want = n - off < BUF ? (size_t)(n - off) : BUF;
        ssize_t r = pread(fd, buf, want, (off_t)off);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0) {
            st = air_err(AIR_ERR_IO, "reading %s to resume: %s", path,
                         r == 0 ? "unexpected end" : strerror(errno));
            break;
        }
        EVP_DigestUpdate(sha, buf, (size_t)r);
        off += (uint64_t)r;
    }
    free(buf);
    return st;
}
