/* test_hub.c - hub downloads against the local fake Hub (tests/hubserver/server.py).
 *
 * The test writes a few fake repos under its scratch folder, starts the
 * server as a child process (python3, found through AIR_SOURCE_DIR), points
 * HF_ENDPOINT at it and checks downloads, the cache layout, resume, retries,
 * sha256 verification, error messages and offline mode. The server's request
 * log (GET /_test/log) tells what went over the wire. The server is stopped at
 * exit, and also stops by itself when our end of its stdin closes.
 *
 * Helper mode for tests/python/test_hub_cache_compat.py:
 *     test_hub snapshot <org/name> [extra-pattern...]
 * runs air_hub_snapshot() with the environment as given, draws the progress
 * bar on stderr, and prints the snapshot folder (exit 0), or the error
 * message on stderr (exit 1).
 */
#include <cjson/cJSON.h>
#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <openssl/evp.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "source/hub.h"
#include "test.h"
#include "util/fileio.h"
#include "util/progress.h"
#include "util/strbuf.h"

#define TOKEN "hf_test_fake_token"
#define BAD_TOKEN "hf_wrong_fake_token_0123"
#define SHARD1_SIZE (300 * 1024 + 17)
#define SHARD2_SIZE (200 * 1024 + 5)

static pid_t g_server = -1;
static int g_server_stdin = -1;
static char g_endpoint[128];
static char g_root[1024]; /* scratch root */
static char g_repos[1100];

/* ------------------------------------------------------------------------- */
/* Fixtures                                                                  */
/* ------------------------------------------------------------------------- */

static void fill(unsigned char *p, size_t n, unsigned seed) {
    unsigned x = seed * 2654435761u + 1;
    for (size_t i = 0; i < n; i++) {
        x = x * 1664525u + 1013904223u;
        p[i] = (unsigned char)(x >> 24);
    }
}

static void put(const char *repo, const char *rel, const void *data, size_t n) {
    char path[2048];
    snprintf(path, sizeof path, "%s/%s/%s", g_repos, repo, rel);
    char *dir = strdup(path);
    *strrchr(dir, '/') = 0;
    if (air_mkdirs(dir) != AIR_OK || air_write_file_atomic(path, data, n) != AIR_OK)
        fprintf(stderr, "cannot write fixture %s: %s\n", path, air_last_error());
    free(dir);
}

static void put_str(const char *repo, const char *rel, const char *s) {
    put(repo, rel, s, strlen(s));
}

static void put_random(const char *repo, const char *rel, size_t n, unsigned seed) {
    unsigned char *b = malloc(n);
    fill(b, n, seed);
    put(repo, rel, b, n);
    free(b);
}

static void sha256_hex(const void *data, size_t n, char out[65]) {
    unsigned char md[32];
    unsigned len = 0;
    EVP_Digest(data, n, md, &len, EVP_sha256(), NULL);
    for (int i = 0; i < 32; i++)
        snprintf(out + 2 * i, 3, "%02x", md[i]);
}

/* sha256 of the shard written with put_random(.., n, seed). */
static void random_sha(size_t n, unsigned seed, char out[65]) {
    unsigned char *b = malloc(n);
    fill(b, n, seed);
    sha256_hex(b, n, out);
    free(b);
}

static void make_repos(void) {
    const char *r = "tiny/sharded";
    put_str(r, "config.json", "{\"model_type\": \"llama\", \"hidden_size\": 8}\n");
    put_str(r, "generation_config.json", "{\"eos_token_id\": 2}\n");
    put_str(r, "tokenizer.json", "{\"model\": {\"type\": \"BPE\"}}\n");
    put_str(r, "tokenizer_config.json", "{\"bos_token\": \"<s>\"}\n");
    put_str(r, "special_tokens_map.json", "{}\n");
    put_str(r, "README.md", "# not needed\n");
    put_str(r, "model.safetensors.index.json",
            "{\"metadata\": {\"total_size\": 1}, \"weight_map\": {"
            "\"a.weight\": \"model-00001-of-00002.safetensors\","
            "\"b.weight\": \"model-00002-of-00002.safetensors\","
            "\"c.weight\": \"model-00001-of-00002.safetensors\"}}\n");
    put_random(r, "model-00001-of-00002.safetensors", SHARD1_SIZE, 1);
    put_random(r, "model-00002-of-00002.safetensors", SHARD2_SIZE, 2);
    put_random(r, "pytorch_model.bin", 4096, 3);
    put_random(r, "onnx/model.onnx", 4096, 4);
    put_random(r, "gguf/tiny-q8.gguf", 3000, 5);

    r = "tiny/single";
    put_str(r, "config.json", "{\"model_type\": \"qwen2\"}\n");
    put_random(r, "model.safetensors", 5000, 6);
    put_str(r, ".hubrepo.json",
            "{\"aliases\": [\"old-org/single-old\"], \"weak_etag\": true, "
            "\"branches\": [\"v1.0\"]}");

    r = "tiny/gated";
    put_str(r, "config.json", "{\"model_type\": \"llama\"}\n");
    put_random(r, "model.safetensors", 3000, 7);
    put_str(r, ".hubrepo.json", "{\"gated\": true, \"token\": \"" TOKEN "\"}");

    r = "tiny/binonly";
    put_str(r, "config.json", "{}\n");
    put_random(r, "pytorch_model.bin", 1000, 8);
}

/* ------------------------------------------------------------------------- */
/* Server                                                                    */
/* ------------------------------------------------------------------------- */

static void stop_server(void) {
    if (g_server > 0) {
        if (g_server_stdin >= 0)
            close(g_server_stdin);
        kill(g_server, SIGTERM);
        waitpid(g_server, NULL, 0);
        g_server = -1;
        g_server_stdin = -1;
    }
}

static int start_server(void) {
    const char *src = getenv("AIR_SOURCE_DIR");
    char script[2048];
    snprintf(script, sizeof script, "%s/tests/hubserver/server.py", src ? src : ".");
    int in[2], out[2];
    if (pipe(in) != 0 || pipe(out) != 0)
        return 0;
    pid_t pid = fork();
    if (pid < 0)
        return 0;
    if (pid == 0) {
        dup2(in[0], 0);
        dup2(out[1], 1);
        close(in[0]);
        close(in[1]);
        close(out[0]);
        close(out[1]);
        execlp("python3", "python3", script, "--root", g_repos, "--exit-on-stdin-eof",
               (char *)NULL);
        _exit(127);
    }
    close(in[0]);
    close(out[1]);
    g_server = pid;
    g_server_stdin = in[1];
    fcntl(in[1], F_SETFD, FD_CLOEXEC);
    atexit(stop_server);
    char line[64] = {0};
    size_t n = 0;
    while (n < sizeof line - 1) {
        struct pollfd p = {out[0], POLLIN, 0};
        if (poll(&p, 1, 30000) <= 0)
            break;
        ssize_t r = read(out[0], line + n, 1);
        if (r <= 0 || line[n] == '\n')
            break;
        n++;
    }
    close(out[0]);
    int port = atoi(line);
    if (port <= 0) {
        fprintf(stderr, "the hub test server did not start (%s)\n", script);
        stop_server();
        return 0;
    }
    snprintf(g_endpoint, sizeof g_endpoint, "http://127.0.0.1:%d", port);
    return 1;
}

static size_t sink(char *p, size_t s, size_t n, void *u) {
    air_sb_append(u, p, s * n);
    return s * n;
}

/* GET on the server's control paths; returns the body (caller frees). */
static char *ctl(const char *fmt, ...) {
    char path[512], url[700];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(path, sizeof path, fmt, ap);
    va_end(ap);
    snprintf(url, sizeof url, "%s%s", g_endpoint, path);
    air_strbuf sb = {0};
    CURL *h = curl_easy_init();
    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, sink);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, &sb);
    curl_easy_perform(h);
    curl_easy_cleanup(h);
    if (!sb.data)
        air_sb_puts(&sb, "");
    return air_sb_take(&sb);
}

static void reset_log(void) {
    free(ctl("/_test/reset"));
}

static void inject(const char *mode, const char *match, int count, const char *method) {
    free(ctl("/_test/inject?mode=%s&match=%s&count=%d&method=%s", mode, match, count, method));
}

/* Number of logged requests with `method` ("" any) whose path contains
 * `match`, on `port` ("hub", "cdn" or "" any); with_range: 1 only ranged, 0
 * only not ranged, -1 either; with_auth likewise. */
static int count_log(const char *method, const char *match, const char *port, int with_range,
                     int with_auth) {
    char *body = ctl("/_test/log");
    cJSON *log = cJSON_Parse(body);
    free(body);
    int n = 0;
    cJSON *e;
    cJSON_ArrayForEach(e, log) {
        const char *m = cJSON_GetObjectItem(e, "method")->valuestring;
        const char *p = cJSON_GetObjectItem(e, "path")->valuestring;
        const char *pt = cJSON_GetObjectItem(e, "port")->valuestring;
        int rg = cJSON_IsString(cJSON_GetObjectItem(e, "range"));
        int au = cJSON_IsTrue(cJSON_GetObjectItem(e, "auth"));
        if ((!method[0] || strcmp(m, method) == 0) && strstr(p, match) &&
            (!port[0] || strcmp(pt, port) == 0) && (with_range < 0 || rg == with_range) &&
            (with_auth < 0 || au == with_auth))
            n++;
    }
    cJSON_Delete(log);
    return n;
}

/* 1 if the log holds a GET of a path containing `match` with exactly this
 * Range header. */
static int log_has_range(const char *match, const char *range) {
    char *body = ctl("/_test/log");
    cJSON *log = cJSON_Parse(body);
    free(body);
    int found = 0;
    cJSON *e;
    cJSON_ArrayForEach(e, log) {
        const cJSON *rg = cJSON_GetObjectItem(e, "range");
        if (strstr(cJSON_GetObjectItem(e, "path")->valuestring, match) && cJSON_IsString(rg) &&
            strcmp(rg->valuestring, range) == 0)
            found = 1;
    }
    cJSON_Delete(log);
    return found;
}

static double mono_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* Notices received through air_hub_options.notice. */
typedef struct {
    int n;
    char all[8192];
} notices_seen;

static void on_notice(void *u, const char *msg) {
    notices_seen *s = u;
    s->n++;
    size_t l = strlen(s->all);
    snprintf(s->all + l, sizeof s->all - l, "%s\n", msg);
}

static void unset_limits(void) {
    unsetenv("AIR_HUB_TIMEOUT");
    unsetenv("AIR_HUB_LOW_SPEED_LIMIT");
    unsetenv("AIR_HUB_LOW_SPEED_TIME");
    unsetenv("AIR_HUB_MAX_ATTEMPTS");
}

/* Fresh cache folder for one test; the environment points at the server. */
static const char *fresh_cache(const char *name) {
    static char dir[1400];
    snprintf(dir, sizeof dir, "%s/%s", g_root, name);
    char cmd[1500];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0)
        fprintf(stderr, "cannot clean %s\n", dir);
    setenv("HF_HUB_CACHE", dir, 1);
    setenv("HF_ENDPOINT", g_endpoint, 1);
    unsetenv("HF_HUB_OFFLINE");
    unsetenv("HF_TOKEN");
    reset_log();
    return dir;
}

static int file_equals(const char *path, const char *repo, const char *rel) {
    char want[2048];
    snprintf(want, sizeof want, "%s/%s/%s", g_repos, repo, rel);
    char *a = NULL, *b = NULL;
    size_t na = 0, nb = 0;
    int eq = air_read_file(path, &a, &na) == AIR_OK && air_read_file(want, &b, &nb) == AIR_OK &&
             na == nb && memcmp(a, b, na) == 0;
    free(a);
    free(b);
    return eq;
}

static int exists_in(const char *dir, const char *rel) {
    char p[2048];
    snprintf(p, sizeof p, "%s/%s", dir, rel);
    struct stat st;
    return lstat(p, &st) == 0;
}

/* ------------------------------------------------------------------------- */
/* Pure helpers                                                              */
/* ------------------------------------------------------------------------- */

TEST(helpers) {
    char *e = air_hub_normalize_etag("W/\"abc123\"");
    ASSERT_EQ_STR(e, "abc123");
    free(e);
    e = air_hub_normalize_etag("\"0123\"");
    ASSERT_EQ_STR(e, "0123");
    free(e);
    char *l = air_hub_blob_link("config.json", "e1");
    ASSERT_EQ_STR(l, "../../blobs/e1");
    free(l);
    l = air_hub_blob_link("a/b/c.gguf", "e2");
    ASSERT_EQ_STR(l, "../../../../blobs/e2");
    free(l);
    char *f = air_hub_repo_folder("/c", "org/name");
    ASSERT_EQ_STR(f, "/c/models--org--name");
    free(f);
    char *q = air_hub_quote("refs/pr/1", "");
    ASSERT_EQ_STR(q, "refs%2Fpr%2F1");
    free(q);
    q = air_hub_quote("dir/a b.json", "/");
    ASSERT_EQ_STR(q, "dir/a%20b.json");
    free(q);
    ASSERT_TRUE(air_hub_glob("*.gguf", "gguf/tiny-q8.gguf"));
    ASSERT_TRUE(air_hub_glob("onnx/", "onnx/model.onnx"));
    ASSERT_TRUE(!air_hub_glob("*.gguf", "model.safetensors"));
    ASSERT_TRUE(air_hub_valid_repo_id("meta-llama/Llama-3.2-1B"));
    ASSERT_TRUE(air_hub_valid_repo_id("gpt2"));
    ASSERT_TRUE(!air_hub_valid_repo_id("a/b/c"));
    ASSERT_TRUE(!air_hub_valid_repo_id("org/na--me"));
    ASSERT_TRUE(!air_hub_valid_repo_id("../etc"));
    ASSERT_TRUE(!air_hub_valid_repo_id("org/-x"));
    ASSERT_TRUE(air_hub_is_repo_id("Qwen/Qwen2.5-0.5B-Instruct"));
    ASSERT_TRUE(!air_hub_is_repo_id(g_root)); /* an existing local path */
    ASSERT_TRUE(!air_hub_is_repo_id("model.gguf"));
    ASSERT_TRUE(air_hub_safe_path("onnx/model.onnx"));
    ASSERT_TRUE(!air_hub_safe_path("../x"));
    ASSERT_TRUE(!air_hub_safe_path("/etc/passwd"));
    ASSERT_TRUE(!air_hub_safe_path("a//b"));
    ASSERT_TRUE(air_hub_is_commit("0123456789abcdef0123456789abcdef01234567"));
    ASSERT_TRUE(!air_hub_is_commit("main"));
}

TEST(env_precedence) {
    air_hub_ctx c;
    air_hub_options o;
    air_hub_default_options(&o);
    unsetenv("HF_HUB_CACHE");
    unsetenv("HUGGINGFACE_HUB_CACHE");
    unsetenv("HF_HOME");
    setenv("XDG_CACHE_HOME", "/xdg", 1);
    setenv("HF_ENDPOINT", "http://mirror.invalid/", 1);
    setenv("HF_TOKEN", "hf_env_fake_token", 1);
    setenv("HF_HUB_OFFLINE", "true", 1);
    ASSERT_OK(air_hub_ctx_init(&c, &o));
    ASSERT_EQ_STR(c.cache_dir, "/xdg/huggingface/hub");
    ASSERT_EQ_STR(c.endpoint, "http://mirror.invalid");
    ASSERT_EQ_STR(c.token, "hf_env_fake_token");
    ASSERT_EQ_STR(c.revision, "main");
    ASSERT_EQ_INT(c.offline, 1);
    air_hub_ctx_free(&c);
    setenv("HF_HOME", "/hfhome", 1);
    o.token = "hf_option_fake_token";
    ASSERT_OK(air_hub_ctx_init(&c, &o));
    ASSERT_EQ_STR(c.cache_dir, "/hfhome/hub");
    ASSERT_EQ_STR(c.token, "hf_option_fake_token");
    air_hub_ctx_free(&c);
    setenv("HF_HUB_CACHE", "/direct", 1);
    o.cache_dir = "/explicit";
    ASSERT_OK(air_hub_ctx_init(&c, &o));
    ASSERT_EQ_STR(c.cache_dir, "/explicit");
    air_hub_ctx_free(&c);
    o.cache_dir = NULL;
    ASSERT_OK(air_hub_ctx_init(&c, &o));
    ASSERT_EQ_STR(c.cache_dir, "/direct");
    air_hub_ctx_free(&c);
    /* the token file of `huggingface-cli login` under HF_HOME */
    char home[1200];
    snprintf(home, sizeof home, "%s/hfhome", g_root);
    char *tf = air_path_join(home, "token");
    air_mkdirs(home);
    air_write_file_atomic(tf, "hf_file_fake_token\n", 19);
    setenv("HF_HOME", home, 1);
    unsetenv("HF_TOKEN");
    ASSERT_OK(air_hub_ctx_init(&c, NULL));
    ASSERT_EQ_STR(c.token, "hf_file_fake_token");
    air_hub_ctx_free(&c);
    unlink(tf);
    free(tf);
    unsetenv("XDG_CACHE_HOME");
    unsetenv("HF_HUB_OFFLINE");
    /* HF_HOME stays on a scratch folder with no token for the other tests */
}

TEST(progress_bar_renderer) {
    char path[1300];
    snprintf(path, sizeof path, "%s/progress.txt", g_root);
    FILE *f = fopen(path, "w+");
    ASSERT_TRUE(f != NULL);
    air_progress_bar bar;
    air_progress_bar_init(&bar, f);
    air_progress_bar_cb(&bar, NULL, 10, 100, 5.0);
    air_progress_bar_cb(&bar, "model.safetensors", 512, 2048, 1024.0);
    air_progress_bar_cb(&bar, "model.safetensors", 2048, 2048, 2048.0);
    air_progress_bar_finish(&bar);
    fclose(f);
    char *text = NULL;
    size_t n = 0;
    ASSERT_OK(air_read_file(path, &text, &n));
    /* not a terminal: one line per completed file */
    ASSERT_EQ_STR(text, "model.safetensors  2.0 KiB  2.0 KiB/s  [all  10%]\n");
    free(text);
    /* a file still downloading shows up every plain_every_s, notices always */
    f = fopen(path, "w+");
    ASSERT_TRUE(f != NULL);
    air_progress_bar_init(&bar, f);
    bar.plain_every_s = 0;
    air_progress_bar_cb(&bar, "big.safetensors", 1024, 4096, 512.0);
    air_progress_bar_notice(&bar, "big.safetensors: timed out; retrying in 0.5 s");
    air_progress_bar_finish(&bar);
    fclose(f);
    ASSERT_OK(air_read_file(path, &text, &n));
    ASSERT_EQ_STR(text, "big.safetensors  1.0 KiB of 4.0 KiB  512 B/s\n"
                        "big.safetensors: timed out; retrying in 0.5 s\n");
    free(text);
    char b[32];
    ASSERT_EQ_STR(air_format_bytes(1536, b, sizeof b), "1.5 KiB");
    ASSERT_EQ_STR(air_format_bytes(999, b, sizeof b), "999 B");
}

/* ------------------------------------------------------------------------- */
/* Downloads                                                                 */
/* ------------------------------------------------------------------------- */

typedef struct {
    int file_final;
    int overall;
    uint64_t last_total;
} progress_seen;

static void on_progress(void *u, const char *label, uint64_t done, uint64_t total, double rate) {
    progress_seen *p = u;
    if (!label) {
        p->overall++;
        p->last_total = total;
    } else if (total && done == total) {
        p->file_final++;
    }
    (void)rate;
}

static char g_sharded_cache[1400];
static char g_sharded_commit[41];

TEST(sharded_snapshot_and_layout) {
    const char *cache = fresh_cache("cache-sharded");
    snprintf(g_sharded_cache, sizeof g_sharded_cache, "%s", cache);
    air_hub_options o;
    air_hub_default_options(&o);
    progress_seen seen = {0};
    o.progress = on_progress;
    o.progress_user = &seen;
    char *dir = NULL, *commit = NULL;
    ASSERT_OK(air_hub_snapshot("tiny/sharded", &o, &dir, &commit));
    ASSERT_TRUE(air_hub_is_commit(commit));
    snprintf(g_sharded_commit, sizeof g_sharded_commit, "%s", commit);
    char want[2048];
    snprintf(want, sizeof want, "%s/models--tiny--sharded/snapshots/%s", cache, commit);
    ASSERT_EQ_STR(dir, want);

    static const char *needed[] = {"config.json",
                                   "generation_config.json",
                                   "tokenizer.json",
                                   "tokenizer_config.json",
                                   "special_tokens_map.json",
                                   "model.safetensors.index.json",
                                   "model-00001-of-00002.safetensors",
                                   "model-00002-of-00002.safetensors"};
    for (size_t i = 0; i < sizeof needed / sizeof *needed; i++) {
        char p[2048];
        snprintf(p, sizeof p, "%s/%s", dir, needed[i]);
        if (!file_equals(p, "tiny/sharded", needed[i]))
            T_FAIL("%s missing or different in the snapshot", needed[i]);
    }
    ASSERT_TRUE(!exists_in(dir, "pytorch_model.bin"));
    ASSERT_TRUE(!exists_in(dir, "onnx"));
    ASSERT_TRUE(!exists_in(dir, "README.md"));
    ASSERT_TRUE(!exists_in(dir, "gguf"));
    ASSERT_EQ_INT(count_log("", "pytorch_model.bin", "", -1, -1), 0);

    /* refs/main holds the commit */
    char p[2048], *ref = NULL;
    size_t n = 0;
    snprintf(p, sizeof p, "%s/models--tiny--sharded/refs/main", cache);
    ASSERT_OK(air_read_file(p, &ref, &n));
    ASSERT_EQ_STR(ref, commit);
    free(ref);

    /* LFS shard: relative symlink to a blob named by its sha256 */
    char sha[65], link[512], target[600];
    random_sha(SHARD1_SIZE, 1, sha);
    snprintf(p, sizeof p, "%s/model-00001-of-00002.safetensors", dir);
    ssize_t ln = readlink(p, link, sizeof link - 1);
    ASSERT_TRUE(ln > 0);
    link[ln] = 0;
    snprintf(target, sizeof target, "../../blobs/%s", sha);
    ASSERT_EQ_STR(link, target);
    snprintf(p, sizeof p, "%s/models--tiny--sharded/blobs/%s", cache, sha);
    struct stat st;
    ASSERT_TRUE(lstat(p, &st) == 0 && S_ISREG(st.st_mode));
    /* small file: blob named by the git blob id (40 hex) */
    snprintf(p, sizeof p, "%s/config.json", dir);
    ln = readlink(p, link, sizeof link - 1);
    ASSERT_TRUE(ln == 12 + 40);
    /* no leftovers, CDN fetched without Authorization */
    snprintf(p, sizeof p, "%s/models--tiny--sharded/blobs/%s.incomplete", cache, sha);
    ASSERT_TRUE(!air_path_exists(p));
    snprintf(p, sizeof p, "%s/CACHEDIR.TAG", cache);
    ASSERT_TRUE(air_path_exists(p));
    ASSERT_EQ_INT(count_log("GET", "/cdn/", "cdn", -1, -1), 2);
    ASSERT_EQ_INT(seen.file_final, 8);
    ASSERT_EQ_INT(seen.last_total, SHARD1_SIZE + SHARD2_SIZE);
    free(dir);
    free(commit);
}

TEST(second_call_downloads_nothing) {
    setenv("HF_HUB_CACHE", g_sharded_cache, 1);
    reset_log();
    char *dir = NULL;
    ASSERT_OK(air_hub_snapshot("tiny/sharded", NULL, &dir, NULL));
    ASSERT_EQ_INT(count_log("GET", "/resolve/", "", -1, -1), 0);
    ASSERT_EQ_INT(count_log("HEAD", "", "", -1, -1), 0);
    ASSERT_EQ_INT(count_log("", "", "cdn", -1, -1), 0);
    free(dir);
    /* by commit sha, a complete snapshot needs no request at all */
    reset_log();
    air_hub_options o;
    air_hub_default_options(&o);
    o.revision = g_sharded_commit;
    ASSERT_OK(air_hub_snapshot("tiny/sharded", &o, &dir, NULL));
    ASSERT_EQ_INT(count_log("", "", "", -1, -1), 0);
    free(dir);
}

TEST(extra_pattern_nested_file) {
    setenv("HF_HUB_CACHE", g_sharded_cache, 1);
    reset_log();
    const char *pats[] = {"*.gguf", NULL};
    air_hub_options o;
    air_hub_default_options(&o);
    o.extra_patterns = pats;
    char *dir = NULL;
    ASSERT_OK(air_hub_snapshot("tiny/sharded", &o, &dir, NULL));
    char p[2048], link[512], target[600], sha[65];
    snprintf(p, sizeof p, "%s/gguf/tiny-q8.gguf", dir);
    ASSERT_TRUE(file_equals(p, "tiny/sharded", "gguf/tiny-q8.gguf"));
    ssize_t ln = readlink(p, link, sizeof link - 1);
    ASSERT_TRUE(ln > 0);
    link[ln] = 0;
    random_sha(3000, 5, sha);
    snprintf(target, sizeof target, "../../../blobs/%s", sha);
    ASSERT_EQ_STR(link, target);
    ASSERT_EQ_INT(count_log("", "safetensors", "", -1, -1), 0); /* cached ones untouched */
    free(dir);
}

TEST(resume_partial_download) {
    const char *cache = fresh_cache("cache-resume");
    char sha[65], p[2048], src[2048];
    random_sha(SHARD1_SIZE, 1, sha);
    snprintf(p, sizeof p, "%s/models--tiny--sharded/blobs", cache);
    ASSERT_OK(air_mkdirs(p));
    snprintf(p, sizeof p, "%s/models--tiny--sharded/blobs/%s.incomplete", cache, sha);
    snprintf(src, sizeof src, "%s/tiny/sharded/model-00001-of-00002.safetensors", g_repos);
    char *data = NULL;
    size_t n = 0;
    ASSERT_OK(air_read_file(src, &data, &n));
    ASSERT_OK(air_write_file_atomic(p, data, 100000)); /* a truncated earlier attempt */
    free(data);
    char *dir = NULL;
    ASSERT_OK(air_hub_snapshot("tiny/sharded", NULL, &dir, NULL));
    ASSERT_EQ_INT(count_log("GET", "model-00001", "cdn", 1, 0), 1);
    ASSERT_EQ_INT(count_log("GET", "model-00001", "cdn", 0, -1), 0);
    snprintf(p, sizeof p, "%s/model-00001-of-00002.safetensors", dir);
    ASSERT_TRUE(file_equals(p, "tiny/sharded", "model-00001-of-00002.safetensors"));
    free(dir);
}

TEST(retry_after_500_and_dropped_connection) {
    fresh_cache("cache-retry");
    inject("500", "/api/models/tiny/sharded", 1, "");
    inject("503", "/config.json", 1, "HEAD");
    inject("500", "model-00002", 1, "GET");
    inject("drop", "model-00001", 1, "GET");
    inject("drop", "tokenizer.json", 1, "GET");
    char *dir = NULL;
    ASSERT_OK(air_hub_snapshot("tiny/sharded", NULL, &dir, NULL));
    ASSERT_EQ_INT(count_log("GET", "/api/models/tiny/sharded", "hub", -1, -1), 2);
    ASSERT_EQ_INT(count_log("HEAD", "/config.json", "hub", -1, -1), 2);
    ASSERT_EQ_INT(count_log("GET", "model-00002", "cdn", -1, -1), 2);
    /* the dropped transfer resumed with a Range request */
    ASSERT_EQ_INT(count_log("GET", "model-00001", "cdn", 1, 0), 1);
    ASSERT_EQ_INT(count_log("GET", "tokenizer.json", "hub", 1, -1), 1);
    char p[2048];
    snprintf(p, sizeof p, "%s/model-00001-of-00002.safetensors", dir);
    ASSERT_TRUE(file_equals(p, "tiny/sharded", "model-00001-of-00002.safetensors"));
    snprintf(p, sizeof p, "%s/tokenizer.json", dir);
    ASSERT_TRUE(file_equals(p, "tiny/sharded", "tokenizer.json"));
    free(dir);
}

TEST(retries_are_bounded) {
    fresh_cache("cache-bounded");
    inject("500", "model-00002", 100, "GET");
    air_hub_options o;
    air_hub_default_options(&o);
    o.max_attempts = 2;
    char *dir = NULL;
    ASSERT_ERR(air_hub_snapshot("tiny/sharded", &o, &dir, NULL), AIR_ERR_NETWORK, "HTTP 500");
    ASSERT_EQ_INT(count_log("GET", "model-00002", "cdn", -1, -1), 2);
    ASSERT_TRUE(dir == NULL);
}

TEST(server_ignoring_range) {
    const char *cache = fresh_cache("cache-norange");
    char sha[65], p[2048];
    random_sha(5000, 6, sha);
    snprintf(p, sizeof p, "%s/models--tiny--single/blobs", cache);
    ASSERT_OK(air_mkdirs(p));
    snprintf(p, sizeof p, "%s/models--tiny--single/blobs/%s.incomplete", cache, sha);
    ASSERT_OK(air_write_file_atomic(p, "garbage", 7));
    inject("ignore-range", "model.safetensors", 1, "GET");
    char *dir = NULL;
    ASSERT_OK(air_hub_snapshot("tiny/single", NULL, &dir, NULL));
    snprintf(p, sizeof p, "%s/model.safetensors", dir);
    ASSERT_TRUE(file_equals(p, "tiny/single", "model.safetensors"));
    free(dir);
}

/* A server that ignores the Range and then drops the connection: the kept
 * bytes are compared, not thrown away, so the retry asks for the same range. */
TEST(ignored_range_keeps_the_kept_bytes) {
    const char *cache = fresh_cache("cache-norange-keep");
    char sha[65], p[2048], src[2048];
    random_sha(SHARD1_SIZE, 1, sha);
    snprintf(p, sizeof p, "%s/models--tiny--sharded/blobs", cache);
    ASSERT_OK(air_mkdirs(p));
    snprintf(p, sizeof p, "%s/models--tiny--sharded/blobs/%s.incomplete", cache, sha);
    snprintf(src, sizeof src, "%s/tiny/sharded/model-00001-of-00002.safetensors", g_repos);
    char *data = NULL;
    size_t n = 0;
    ASSERT_OK(air_read_file(src, &data, &n));
    ASSERT_OK(air_write_file_atomic(p, data, 250000)); /* more than half of the file */
    free(data);
    inject("ignore-range-drop", "model-00001", 1, "GET");
    char *dir = NULL;
    ASSERT_OK(air_hub_snapshot("tiny/sharded", NULL, &dir, NULL));
    ASSERT_EQ_INT(count_log("GET", "model-00001", "cdn", 1, 0), 2);
    ASSERT_EQ_INT(count_log("GET", "model-00001", "cdn", 0, -1), 0);
    /* the first answer (200, half the file) was compared, not written over */
    ASSERT_EQ_INT(count_log("GET", "model-00001", "cdn", -1, -1), 2);
    ASSERT_TRUE(log_has_range("model-00001", "bytes=250000-"));
    ASSERT_TRUE(!log_has_range("model-00001", "bytes=153608-"));
    snprintf(p, sizeof p, "%s/model-00001-of-00002.safetensors", dir);
    ASSERT_TRUE(file_equals(p, "tiny/sharded", "model-00001-of-00002.safetensors"));
    free(dir);
}

TEST(sha256_mismatch_detected) {
    const char *cache = fresh_cache("cache-corrupt");
    inject("corrupt", "model-00002", 1, "GET");
    char *dir = NULL;
    ASSERT_ERR(air_hub_snapshot("tiny/sharded", NULL, &dir, NULL), AIR_ERR_FORMAT,
               "sha256 mismatch");
    ASSERT_TRUE(strstr(air_last_error(), "model-00002-of-00002.safetensors") != NULL);
    ASSERT_TRUE(strstr(air_last_error(), "deleted") != NULL);
    char sha[65], p[2048];
    random_sha(SHARD2_SIZE, 2, sha);
    snprintf(p, sizeof p, "%s/models--tiny--sharded/blobs/%s", cache, sha);
    ASSERT_TRUE(!air_path_exists(p));
    snprintf(p, sizeof p, "%s/models--tiny--sharded/blobs/%s.incomplete", cache, sha);
    ASSERT_TRUE(!air_path_exists(p));
    /* the next run succeeds */
    ASSERT_OK(air_hub_snapshot("tiny/sharded", NULL, &dir, NULL));
    free(dir);
}

TEST(gated_needs_token) {
    fresh_cache("cache-gated");
    char *dir = NULL;
    ASSERT_ERR(air_hub_snapshot("tiny/gated", NULL, &dir, NULL), AIR_ERR_AUTH, "HF_TOKEN");
    ASSERT_TRUE(strstr(air_last_error(), "gated") != NULL);
    ASSERT_TRUE(strstr(air_last_error(), "license") != NULL);

    setenv("HF_TOKEN", BAD_TOKEN, 1);
    ASSERT_ERR(air_hub_snapshot("tiny/gated", NULL, &dir, NULL), AIR_ERR_AUTH, "HF_TOKEN");
    ASSERT_TRUE(strstr(air_last_error(), BAD_TOKEN) == NULL);
    ASSERT_TRUE(strstr(air_last_error(), "rejected") != NULL);

    /* an explicit token wins over HF_TOKEN */
    reset_log();
    air_hub_options o;
    air_hub_default_options(&o);
    o.token = TOKEN;
    ASSERT_OK(air_hub_snapshot("tiny/gated", &o, &dir, NULL));
    ASSERT_TRUE(strstr(air_last_error(), TOKEN) == NULL);
    ASSERT_EQ_INT(count_log("", "", "hub", -1, 0), 0); /* every hub request authenticated */
    ASSERT_EQ_INT(count_log("", "", "cdn", -1, 1), 0); /* never the CDN */
    ASSERT_EQ_INT(count_log("GET", "", "cdn", -1, 0), 1);
    unsetenv("HF_TOKEN");
    free(dir);
}

TEST(not_found_messages) {
    fresh_cache("cache-404");
    char *dir = NULL;
    ASSERT_ERR(air_hub_snapshot("tiny/nope", NULL, &dir, NULL), AIR_ERR_NOT_FOUND,
               "model tiny/nope not found");
    air_hub_options o;
    air_hub_default_options(&o);
    o.revision = "v9.9";
    ASSERT_ERR(air_hub_snapshot("tiny/single", &o, &dir, NULL), AIR_ERR_NOT_FOUND,
               "revision 'v9.9'");
    ASSERT_ERR(air_hub_snapshot("tiny/binonly", NULL, &dir, NULL), AIR_ERR_UNSUPPORTED,
               "pytorch_model.bin");
    ASSERT_ERR(air_hub_snapshot("not a repo", NULL, &dir, NULL), AIR_ERR_INVALID_ARG,
               "not a valid");
    ASSERT_TRUE(dir == NULL);
}

TEST(branch_and_renamed_repo) {
    const char *cache = fresh_cache("cache-branch");
    air_hub_options o;
    air_hub_default_options(&o);
    o.revision = "v1.0";
    char *dir = NULL, *commit = NULL;
    ASSERT_OK(air_hub_snapshot("tiny/single", &o, &dir, &commit));
    char p[2048], *ref = NULL;
    size_t n;
    snprintf(p, sizeof p, "%s/models--tiny--single/refs/v1.0", cache);
    ASSERT_OK(air_read_file(p, &ref, &n));
    ASSERT_EQ_STR(ref, commit);
    free(ref);
    free(dir);
    free(commit);
    /* weak ETag W/"..." normalized: the config blob is named by the bare id */
    snprintf(p, sizeof p, "%s/models--tiny--single/blobs", cache);
    ASSERT_TRUE(air_path_exists(p));
    /* a renamed repo: the Hub answers 307 with a relative Location */
    reset_log();
    ASSERT_OK(air_hub_snapshot("old-org/single-old", NULL, &dir, NULL));
    ASSERT_TRUE(count_log("HEAD", "/old-org/single-old/resolve/", "hub", -1, -1) >= 1);
    ASSERT_TRUE(count_log("HEAD", "/tiny/single/resolve/", "hub", -1, -1) >= 1);
    snprintf(p, sizeof p, "%s/config.json", dir);
    ASSERT_TRUE(file_equals(p, "tiny/single", "config.json"));
    free(dir);
}

TEST(offline_mode) {
    setenv("HF_HUB_CACHE", g_sharded_cache, 1);
    setenv("HF_HUB_OFFLINE", "1", 1);
    reset_log();
    char *dir = NULL, *commit = NULL;
    ASSERT_OK(air_hub_snapshot("tiny/sharded", NULL, &dir, &commit));
    ASSERT_EQ_STR(commit, g_sharded_commit);
    ASSERT_EQ_INT(count_log("", "", "", -1, -1), 0);
    free(dir);
    free(commit);
    /* not in the cache */
    ASSERT_ERR(air_hub_snapshot("tiny/single", NULL, &dir, NULL), AIR_ERR_NOT_FOUND,
               "HF_HUB_OFFLINE");
    ASSERT_TRUE(strstr(air_last_error(), "not in the cache") != NULL);
    /* cached but incomplete: a shard removed from the snapshot */
    char p[2048];
    snprintf(p, sizeof p, "%s/models--tiny--sharded/snapshots/%s/model-00002-of-00002.safetensors",
             g_sharded_cache, g_sharded_commit);
    char link[512];
    ssize_t ln = readlink(p, link, sizeof link - 1);
    ASSERT_TRUE(ln > 0);
    link[ln] = 0;
    unlink(p);
    ASSERT_ERR(air_hub_snapshot("tiny/sharded", NULL, &dir, NULL), AIR_ERR_NOT_FOUND,
               "model-00002-of-00002.safetensors");
    ASSERT_TRUE(symlink(link, p) == 0);
    unsetenv("HF_HUB_OFFLINE");
}

TEST(connection_refused) {
    /* a port nobody listens on */
    int s = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t al = sizeof a;
    ASSERT_TRUE(bind(s, (struct sockaddr *)&a, sizeof a) == 0);
    getsockname(s, (struct sockaddr *)&a, &al);
    close(s);
    char ep[64];
    snprintf(ep, sizeof ep, "http://127.0.0.1:%d", ntohs(a.sin_port));
    fresh_cache("cache-refused");
    setenv("HF_ENDPOINT", ep, 1);
    char *dir = NULL;
    ASSERT_ERR(air_hub_snapshot("tiny/sharded", NULL, &dir, NULL), AIR_ERR_NETWORK,
               "HF_HUB_OFFLINE");
    ASSERT_TRUE(strstr(air_last_error(), "cannot connect") != NULL);
    /* with the model cached, an unreachable Hub falls back to the cache */
    setenv("HF_HUB_CACHE", g_sharded_cache, 1);
    ASSERT_OK(air_hub_snapshot("tiny/sharded", NULL, &dir, NULL));
    ASSERT_TRUE(strstr(dir, g_sharded_commit) != NULL);
    free(dir);
    setenv("HF_ENDPOINT", g_endpoint, 1);
}

/* A server that sends part of a file and then stalls: each attempt is given
 * up after the low-speed time, the whole download after AIR_HUB_TIMEOUT,
 * every retry is announced, and the next run resumes from the kept bytes. */
TEST(stalled_download_is_bounded_and_resumes) {
    const char *cache = fresh_cache("cache-stall");
    setenv("AIR_HUB_LOW_SPEED_LIMIT", "1000", 1);
    setenv("AIR_HUB_LOW_SPEED_TIME", "1", 1);
    setenv("AIR_HUB_TIMEOUT", "8", 1);
    inject("stall", "model-00001", 1000, "GET");
    notices_seen seen = {0};
    air_hub_options o;
    air_hub_default_options(&o);
    o.notice = on_notice;
    o.progress_user = &seen;
    char *dir = NULL;
    double t0 = mono_now();
    air_status st = air_hub_snapshot("tiny/sharded", &o, &dir, NULL);
    double took = mono_now() - t0;
    ASSERT_ERR(st, AIR_ERR_NETWORK, "model-00001-of-00002.safetensors");
    ASSERT_TRUE(strstr(air_last_error(), "AIR_HUB_TIMEOUT") != NULL);
    ASSERT_TRUE(strstr(air_last_error(), "resume") != NULL);
    ASSERT_TRUE(took < 20.0); /* bounded: 8 s, plus slack for a loaded machine */
    ASSERT_TRUE(dir == NULL);
    /* the retries were announced, with the file and where they resume */
    ASSERT_TRUE(seen.n >= 1);
    ASSERT_TRUE(strstr(seen.all, "model-00001-of-00002.safetensors") != NULL);
    ASSERT_TRUE(strstr(seen.all, "retrying") != NULL);
    ASSERT_TRUE(strstr(seen.all, "resuming at") != NULL);
    /* every attempt after the first continued where the file ended */
    ASSERT_TRUE(count_log("GET", "model-00001", "cdn", -1, -1) >= 2);
    ASSERT_EQ_INT(count_log("GET", "model-00001", "cdn", 0, -1), 1);
    char sha[65], p[2048];
    random_sha(SHARD1_SIZE, 1, sha);
    snprintf(p, sizeof p, "%s/models--tiny--sharded/blobs/%s.incomplete", cache, sha);
    struct stat sb;
    ASSERT_TRUE(stat(p, &sb) == 0);
    ASSERT_TRUE(sb.st_size > 0 && sb.st_size < SHARD1_SIZE);
    /* the next run, against a healthy server, asks only for the rest */
    unset_limits();
    reset_log();
    ASSERT_OK(air_hub_snapshot("tiny/sharded", NULL, &dir, NULL));
    char range[64];
    snprintf(range, sizeof range, "bytes=%lld-", (long long)sb.st_size);
    ASSERT_TRUE(log_has_range("model-00001", range));
    ASSERT_EQ_INT(count_log("GET", "model-00001", "cdn", 0, -1), 0);
    snprintf(p, sizeof p, "%s/model-00001-of-00002.safetensors", dir);
    ASSERT_TRUE(file_equals(p, "tiny/sharded", "model-00001-of-00002.safetensors"));
    free(dir);
}

/* Attempts that make progress still end: at most 4 x max_attempts. */
TEST(progressing_retries_are_capped) {
    fresh_cache("cache-stall-cap");
    setenv("AIR_HUB_LOW_SPEED_LIMIT", "1000", 1);
    setenv("AIR_HUB_LOW_SPEED_TIME", "1", 1);
    setenv("AIR_HUB_MAX_ATTEMPTS", "1", 1);
    inject("stall", "model-00002", 1000, "GET");
    char *dir = NULL;
    ASSERT_ERR(air_hub_snapshot("tiny/sharded", NULL, &dir, NULL), AIR_ERR_NETWORK,
               "AIR_HUB_MAX_ATTEMPTS");
    ASSERT_TRUE(strstr(air_last_error(), "model-00002") != NULL);
    ASSERT_EQ_INT(count_log("GET", "model-00002", "cdn", -1, -1), 4);
    unset_limits();
    ASSERT_TRUE(dir == NULL);
}

/* A server announcing 10 GB for a 200 KiB file is not believed, nor waited on. */
TEST(lying_content_length_fails_at_once) {
    fresh_cache("cache-lie");
    inject("lie", "model-00002", 1000, "GET");
    char *dir = NULL;
    double t0 = mono_now();
    ASSERT_ERR(air_hub_snapshot("tiny/sharded", NULL, &dir, NULL), AIR_ERR_NETWORK, "10737418240");
    ASSERT_TRUE(mono_now() - t0 < 20.0);
    ASSERT_TRUE(strstr(air_last_error(), "model-00002-of-00002.safetensors") != NULL);
    ASSERT_EQ_INT(count_log("GET", "model-00002", "cdn", -1, -1), 1);
    ASSERT_TRUE(dir == NULL);
}

/* Bad limit settings are refused with the variable's name. */
TEST(limit_settings_validated) {
    fresh_cache("cache-limits");
    setenv("AIR_HUB_TIMEOUT", "soon", 1);
    char *dir = NULL;
    ASSERT_ERR(air_hub_snapshot("tiny/sharded", NULL, &dir, NULL), AIR_ERR_INVALID_ARG,
               "AIR_HUB_TIMEOUT");
    setenv("AIR_HUB_TIMEOUT", "-3", 1);
    ASSERT_ERR(air_hub_snapshot("tiny/sharded", NULL, &dir, NULL), AIR_ERR_INVALID_ARG,
               "AIR_HUB_TIMEOUT");
    unset_limits();
    setenv("AIR_HUB_LOW_SPEED_TIME", "0", 1);
    ASSERT_ERR(air_hub_snapshot("tiny/sharded", NULL, &dir, NULL), AIR_ERR_INVALID_ARG,
               "AIR_HUB_LOW_SPEED_TIME");
    unset_limits();
    ASSERT_EQ_INT(count_log("", "", "", -1, -1), 0);
}

/* A password in HF_ENDPOINT never shows in an error or a notice. */
TEST(endpoint_password_redacted) {
    char *r =
        air_hub_redact("at http://user:secret@h:1/a?sig=xyz and https://h/b tok_ABCD", "tok_ABCD");
    ASSERT_EQ_STR(r, "at http://***@h:1/a?*** and https://h/b ***");
    free(r);
    r = air_hub_redact("http://proxy/http://u:SECRET@host/x/tok_ABCD", "tok_ABCD");
    ASSERT_EQ_STR(r, "http://proxy/http://***@host/x/***"); /* a url in a url */
    free(r);
    /* an endpoint nobody listens on */
    int s = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t al = sizeof a;
    ASSERT_TRUE(bind(s, (struct sockaddr *)&a, sizeof a) == 0);
    getsockname(s, (struct sockaddr *)&a, &al);
    close(s);
    char ep[128];
    snprintf(ep, sizeof ep, "http://user:secret@127.0.0.1:%d", ntohs(a.sin_port));
    fresh_cache("cache-redact");
    setenv("HF_ENDPOINT", ep, 1);
    char *dir = NULL;
    ASSERT_ERR(air_hub_snapshot("tiny/sharded", NULL, &dir, NULL), AIR_ERR_NETWORK,
               "cannot connect");
    ASSERT_TRUE(strstr(air_last_error(), "secret") == NULL);
    ASSERT_TRUE(strstr(air_last_error(), "127.0.0.1") != NULL);
    /* the live server: a missing model, and retries that are announced */
    snprintf(ep, sizeof ep, "http://user:secret@%s", g_endpoint + strlen("http://"));
    setenv("HF_ENDPOINT", ep, 1);
    ASSERT_ERR(air_hub_snapshot("tiny/nope", NULL, &dir, NULL), AIR_ERR_NOT_FOUND, "tiny/nope");
    ASSERT_TRUE(strstr(air_last_error(), "secret") == NULL);
    inject("500", "/config.json", 100, "HEAD");
    notices_seen seen = {0};
    air_hub_options o;
    air_hub_default_options(&o);
    o.max_attempts = 2;
    o.notice = on_notice;
    o.progress_user = &seen;
    ASSERT_ERR(air_hub_snapshot("tiny/sharded", &o, &dir, NULL), AIR_ERR_NETWORK, "HTTP 500");
    ASSERT_TRUE(strstr(air_last_error(), "secret") == NULL);
    ASSERT_TRUE(seen.n == 1);
    ASSERT_TRUE(strstr(seen.all, "config.json") != NULL);
    ASSERT_TRUE(strstr(seen.all, "secret") == NULL);
    reset_log();
    setenv("HF_ENDPOINT", g_endpoint, 1);
}

/* ------------------------------------------------------------------------- */

static int helper_snapshot(int argc, char **argv) {
    const char **pats = calloc((size_t)argc, sizeof *pats);
    for (int i = 3; i < argc; i++)
        pats[i - 3] = argv[i];
    air_hub_options o;
    air_hub_default_options(&o);
    o.extra_patterns = pats;
    air_progress_bar bar;
    air_progress_bar_init(&bar, stderr);
    o.progress = air_progress_bar_cb;
    o.progress_user = &bar;
    char *dir = NULL;
    air_status st = air_hub_snapshot(argv[2], &o, &dir, NULL);
    air_progress_bar_finish(&bar);
    free(pats);
    if (st != AIR_OK) {
        fprintf(stderr, "%s\n", air_last_error());
        return 1;
    }
    printf("%s\n", dir);
    free(dir);
    return 0;
}

int main(int argc, char **argv) {
    if (argc >= 3 && strcmp(argv[1], "snapshot") == 0)
        return helper_snapshot(argc, argv);
    snprintf(g_root, sizeof g_root, "%s", test_tmp("hub"));
    snprintf(g_repos, sizeof g_repos, "%s/repos", g_root);
    char home[1200];
    snprintf(home, sizeof home, "%s/home", g_root);
    setenv("HF_HOME", home, 1); /* no token file from the real home */
    unsetenv("HF_TOKEN_PATH");
    unsetenv("HUGGING_FACE_HUB_TOKEN");
    unsetenv("TRANSFORMERS_OFFLINE");
    make_repos();
    RUN(helpers);
    RUN(env_precedence);
    setenv("HF_HOME", home, 1);
    RUN(progress_bar_renderer);
    if (!start_server()) {
        fprintf(stderr, "cannot start tests/hubserver/server.py with python3\n");
        return 1;
    }
    RUN(sharded_snapshot_and_layout);
    RUN(second_call_downloads_nothing);
    RUN(extra_pattern_nested_file);
    RUN(resume_partial_download);
    RUN(retry_after_500_and_dropped_connection);
    RUN(retries_are_bounded);
    RUN(server_ignoring_range);
    RUN(ignored_range_keeps_the_kept_bytes);
    RUN(sha256_mismatch_detected);
    RUN(gated_needs_token);
    RUN(not_found_messages);
    RUN(branch_and_renamed_repo);
    RUN(offline_mode);
    RUN(connection_refused);
    RUN(stalled_download_is_bounded_and_resumes);
    RUN(progressing_retries_are_capped);
    RUN(lying_content_length_fails_at_once);
    RUN(limit_settings_validated);
    RUN(endpoint_password_redacted);
    stop_server();
    return test_summary();
}
