/*
 * test_store_integrity.c - a layer store never gives silent garbage and is
 * never stale: random byte flips in every file, swapped layer files, edited
 * manifest fields, edits of the source's config and tokenizer files, two
 * processes splitting the same store, a pull killed during its disk probe.
 *
 * Everything goes through the paths a user takes: air_model_open (model
 * folder -> store -> engine -> tokenizer), then every embedding row and one
 * forward pass (every unit file), or the `airllm` binary itself.
 */
#include <dirent.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "api_internal.h"
#include "source/source.h"
#include "test.h"
#include "util/fileio.h"

/* ---------------------------------------------------------------------------
 * helpers
 * ------------------------------------------------------------------------- */

static void copy_dir(const char *from, const char *to) {
    char cmd[8192];
    snprintf(cmd, sizeof cmd, "rm -rf '%s' && mkdir -p '%s' && cp -r '%s'/. '%s'/", to, to, from,
             to);
    if (system(cmd) != 0)
        fprintf(stderr, "cannot copy %s\n", from);
}

/* A copy of the tiny_chat model under <tag>-model and an empty cache
 * <tag>-cache (both 1024 bytes). */
static void fresh_model(const char *tag, char *model, char *cache) {
    char name[256];
    snprintf(name, sizeof name, "%s-model", tag);
    snprintf(model, 1024, "%s", test_tmp(name));
    copy_dir(test_data("models/tiny_chat"), model);
    snprintf(name, sizeof name, "%s-cache", tag);
    snprintf(cache, 1024, "%s", test_tmp(name));
}

static air_model_params params(const char *cache) {
    air_model_params p = air_model_default_params();
    p.cache_dir = cache;
    p.compression = "none";
    p.ram_budget = 0; /* stream every unit: each is loaded and verified */
    p.prefetching = 0;
    p.n_threads = 1;
    return p;
}

/* Opens the model and uses every byte of its store: all embedding rows and
 * one forward pass over every layer and the head. */
static air_status use_model(const char *model, const char *cache) {
    air_model_params p = params(cache);
    air_model *m = NULL;
    air_status st = air_model_open(model, &p, &m);
    if (st)
        return st;
    air_store *s = air_engine_store(m->engine);
    const air_hparams *hp = air_store_hparams(s);
    float *rows = malloc(sizeof(float) * (size_t)hp->n_embd);
    float *logits = malloc(sizeof(float) * (size_t)hp->n_vocab);
    for (int32_t id = 0; id < hp->n_vocab && !st; id++)
        st = air_store_embed_rows(s, &id, 1, rows);
    air_kv kv;
    if (!st && !(st = air_kv_init(&kv, hp, 8))) {
        int32_t tok = 1;
        st = air_engine_eval(m->engine, &kv, &tok, 1, 0, logits);
        air_kv_free(&kv);
    }
    free(rows);
    free(logits);
    air_model_close(m);
    return st;
}

static char *store_of(const char *model, const char *cache) {
    air_model_params p = params(cache);
    air_model *m = NULL;
    if (air_model_open(model, &p, &m))
        return NULL;
    char *d = strdup(m->store_dir);
    air_model_close(m);
    return d;
}

/* Regular files of a folder, sorted by name. */
static int list_files(const char *dir, char names[][256], int max) {
    struct dirent **list = NULL;
    int n = scandir(dir, &list, NULL, alphasort), k = 0;
    for (int i = 0; i < n; i++) {
        if (list[i]->d_type == DT_REG && k < max)
            snprintf(names[k++], 256, "%s", list[i]->d_name);
        free(list[i]);
    }
    free(list);
    return k;
}

static long file_size(const char *path) {
    struct stat sb;
    return stat(path, &sb) == 0 ? (long)sb.st_size : -1;
}

static void xor_byte(const char *path, long at, unsigned char x) {
    FILE *f = fopen(path, "r+b");
    if (!f)
        return;
    fseek(f, at, SEEK_SET);
    int c = fgetc(f);
    fseek(f, at, SEEK_SET);
    fputc((c ^ x) & 0xff, f);
    fclose(f);
}

static uint64_t rng_state = 0x9e3779b97f4a7c15ull;
static uint64_t rng(void) { /* xorshift64*: a fixed sequence for a fixed seed */
    rng_state ^= rng_state >> 12;
    rng_state ^= rng_state << 25;
    rng_state ^= rng_state >> 27;
    return rng_state * 0x2545f4914f6cdd1dull;
}

static int replace_in_file(const char *path, const char *from, const char *to) {
    char *text;
    size_t len;
    if (air_read_file(path, &text, &len))
        return 0;
    char *at = strstr(text, from);
    int ok = at != NULL;
    if (ok) {
        size_t a = (size_t)(at - text), fl = strlen(from), tl = strlen(to);
        char *out = malloc(len - fl + tl + 1);
        memcpy(out, text, a);
        memcpy(out + a, to, tl);
        memcpy(out + a + tl, at + fl, len - a - fl);
        ok = air_write_file_atomic(path, out, len - fl + tl) == AIR_OK;
        free(out);
    }
    free(text);
    return ok;
}

static long long mtime_ns(const char *dir, const char *name) {
    char *p = air_path_join(dir, name);
    struct stat sb;
    long long t = stat(p, &sb) == 0 ? sb.st_mtim.tv_sec * 1000000000LL + sb.st_mtim.tv_nsec : 0;
    free(p);
    return t;
}

/* ---------------------------------------------------------------------------
 * corruption is always an error
 * ------------------------------------------------------------------------- */

/* 200 flips at random bytes (fixed seed) of random files of the store:
 * manifest, embeddings, layers, head, copied tokenizer files. Each flip is
 * an error, and the store works again once the byte is restored. */
TEST(random_flips_are_errors) {
    char model[1024], cache[1024];
    fresh_model("flip", model, cache);
    ASSERT_OK(use_model(model, cache));
    char *store = store_of(model, cache);
    ASSERT_TRUE(store != NULL);
    if (!store)
        return;
    char names[64][256];
    int n = list_files(store, names, 64);
    ASSERT_TRUE(n >= 6); /* manifest, embed, 2 layers, head, tokenizer files */
    int silent = 0, unclear = 0;
    for (int i = 0; i < 200; i++) {
        const char *name = names[rng() % (uint64_t)n];
        char *path = air_path_join(store, name);
        long size = file_size(path);
        long at = (long)(rng() % (uint64_t)size);
        unsigned char x = (unsigned char)(1u << (rng() % 8));
        xor_byte(path, at, x);
        air_status st = use_model(model, cache);
        if (st == AIR_OK) {
            if (silent++ < 10)
                fprintf(stderr, "  flip of bit %u at byte %ld of %s went unnoticed\n", x, at, name);
        } else if (!strstr(air_last_error(), "airllm rm") ||
                   strstr(strstr(air_last_error(), "airllm rm") + 1, "airllm rm")) {
            if (unclear++ < 3) /* no fix, or the fix twice */
                fprintf(stderr, "  flip at byte %ld of %s: the error says no fix: %s\n", at, name,
                        air_last_error());
        }
        xor_byte(path, at, x);
        free(path);
    }
    if (silent || unclear)
        T_FAIL("of 200 flipped bytes, %d gave no error and %d an error without the fix once", silent,
               unclear);
    ASSERT_OK(use_model(model, cache));
    free(store);
}

TEST(swapped_layer_files_are_errors) {
    char cache[1024];
    snprintf(cache, sizeof cache, "%s", test_tmp("swap-cache"));
    const char *model = test_data("models/llama"); /* 3 layers */
    ASSERT_OK(use_model(model, cache));
    char *store = store_of(model, cache);
    ASSERT_TRUE(store != NULL);
    if (!store)
        return;
    char *a = air_path_join(store, "layer_00001.bin"), *b = air_path_join(store, "layer_00002.bin");
    char *t = air_path_join(store, "swap.tmp");
    ASSERT_TRUE(rename(a, t) == 0 && rename(b, a) == 0 && rename(t, b) == 0);
    ASSERT_ERR(use_model(model, cache), AIR_ERR_FORMAT, "layer_00001.bin");
    ASSERT_ERR(use_model(model, cache), AIR_ERR_FORMAT, "swapped");
    ASSERT_ERR(use_model(model, cache), AIR_ERR_FORMAT, "airllm rm");
    /* a layer copied over another */
    ASSERT_TRUE(rename(a, t) == 0 && rename(b, a) == 0 && rename(t, b) == 0);
    ASSERT_OK(use_model(model, cache));
    char cmd[4096];
    snprintf(cmd, sizeof cmd, "cp '%s' '%s'", a, b);
    ASSERT_TRUE(system(cmd) == 0);
    ASSERT_ERR(use_model(model, cache), AIR_ERR_FORMAT, "layer_00002.bin");
    free(a);
    free(b);
    free(t);
    free(store);
}

TEST(edited_manifest_fields_are_errors) {
    char cache[1024];
    snprintf(cache, sizeof cache, "%s", test_tmp("edit-cache"));
    const char *model = test_data("models/llama");
    ASSERT_OK(use_model(model, cache));
    char *store = store_of(model, cache);
    ASSERT_TRUE(store != NULL);
    if (!store)
        return;
    char *man = air_path_join(store, "manifest.json");
    char *orig;
    size_t len;
    ASSERT_OK(air_read_file(man, &orig, &len));
    const char *edits[][2] = {{"\"n_layer\":\t3", "\"n_layer\":\t2"},
                              {"\"rope_theta\":\t10000", "\"rope_theta\":\t20000"},
                              {"\"n_ctx_train\":\t", "\"n_ctx_train\":\t1"},
                              {"\"compression\":\t\"none\"", "\"compression\":\t\"8bit\""}};
    int bad = 0;
    for (int i = 0; i < 4; i++) {
        if (!replace_in_file(man, edits[i][0], edits[i][1])) {
            fprintf(stderr, "  manifest has no %s\n", edits[i][0]);
            bad++;
            continue;
        }
        air_status st = use_model(model, cache);
        if (st == AIR_OK) {
            fprintf(stderr, "  manifest edit %s -> %s ran silently\n", edits[i][0], edits[i][1]);
            bad++;
        } else if (!strstr(air_last_error(), "manifest") || !strstr(air_last_error(), "airllm rm")) {
            fprintf(stderr, "  manifest edit %s: unclear error: %s\n", edits[i][0],
                    air_last_error());
            bad++;
        }
        ASSERT_OK(air_write_file_atomic(man, orig, len));
    }
    ASSERT_EQ_INT(bad, 0);
    ASSERT_OK(use_model(model, cache));
    free(orig);
    free(man);
    free(store);
}

/* ---------------------------------------------------------------------------
 * the store follows its source
 * ------------------------------------------------------------------------- */

TEST(edited_config_rebuilds_the_store) {
    char model[1024], cache[1024];
    fresh_model("cfg", model, cache);
    air_model_params p = params(cache);
    air_model *m = NULL;
    ASSERT_OK(air_model_open(model, &p, &m));
    if (!m)
        return;
    ASSERT_NEAR(air_engine_hparams(m->engine)->rope_theta, 1000000.0, 1);
    air_model_close(m);

    char *cfg = air_path_join(model, "config.json");
    ASSERT_TRUE(replace_in_file(cfg, "\"rope_theta\": 1000000.0", "\"rope_theta\": 500000.0"));
    m = NULL;
    ASSERT_OK(air_model_open(model, &p, &m));
    if (m)
        ASSERT_NEAR(air_engine_hparams(m->engine)->rope_theta, 500000.0, 1);
    air_model_close(m);

    char *gen = air_path_join(model, "generation_config.json");
    ASSERT_TRUE(replace_in_file(gen, "511", "510"));
    m = NULL;
    ASSERT_OK(air_model_open(model, &p, &m));
    if (m) {
        const air_hparams *hp = air_engine_hparams(m->engine);
        int has510 = 0;
        for (int i = 0; i < hp->n_eos; i++)
            has510 |= hp->eos_ids[i] == 510;
        ASSERT_TRUE(has510);
    }
    air_model_close(m);
    free(cfg);
    free(gen);
}

TEST(tokenizer_added_later_is_used) {
    char model[1024], cache[1024], tok[1024];
    snprintf(tok, sizeof tok, "%s", test_tmp("tok-files"));
    copy_dir(test_data("models/tiny_chat"), tok);
    fresh_model("tok", model, cache);
    char cmd[8192];
    snprintf(cmd, sizeof cmd, "rm '%s/tokenizer.json' '%s/tokenizer_config.json'", model, model);
    ASSERT_TRUE(system(cmd) == 0);
    air_model_params p = params(cache);
    air_model *m = NULL;
    ASSERT_OK(air_model_open(model, &p, &m));
    if (!m)
        return;
    ASSERT_TRUE(m->tok == NULL);
    char *store = strdup(m->store_dir);
    air_model_close(m);
    long long t0 = mtime_ns(store, "layer_00000.bin");

    snprintf(cmd, sizeof cmd, "cp '%s/tokenizer.json' '%s/tokenizer_config.json' '%s'/", tok, tok,
             model);
    ASSERT_TRUE(system(cmd) == 0);
    m = NULL;
    ASSERT_OK(air_model_open(model, &p, &m));
    if (m) {
        ASSERT_TRUE(m->tok != NULL);
        ASSERT_TRUE(m->template_src != NULL);
    }
    air_model_close(m);
    /* only the text files changed: the unit files were kept */
    ASSERT_EQ_INT(mtime_ns(store, "layer_00000.bin"), t0);

    /* an edit of the tokenizer is seen too, and a removal */
    char *tc = air_path_join(model, "tokenizer_config.json");
    ASSERT_TRUE(replace_in_file(tc, "{", "{\"model_max_length\": 77, "));
    m = NULL;
    ASSERT_OK(air_model_open(model, &p, &m));
    air_model_close(m);
    char *copy = air_path_join(store, "tokenizer_config.json"), *text;
    size_t len;
    ASSERT_OK(air_read_file(copy, &text, &len));
    ASSERT_TRUE(strstr(text, "\"model_max_length\": 77") != NULL);
    free(text);
    snprintf(cmd, sizeof cmd, "rm '%s/tokenizer.json'", model);
    ASSERT_TRUE(system(cmd) == 0);
    m = NULL;
    ASSERT_OK(air_model_open(model, &p, &m));
    if (m)
        ASSERT_TRUE(m->tok == NULL);
    air_model_close(m);
    free(copy);
    free(tc);
    free(store);
}

/* Weights are fingerprinted by size and time, or by the blob a hub-cache link
 * names: a blob downloaded again (a new time) keeps the fingerprint, another
 * blob changes it, as does a new time of a plain file. */
TEST(weights_fingerprint) {
    char dir[1024], cmd[8192];
    snprintf(dir, sizeof dir, "%s", test_tmp("fp"));
    snprintf(cmd, sizeof cmd,
             "cd '%s' && mkdir -p blobs snap && echo a > blobs/e1 && echo b > blobs/e2 && "
             "echo {} > snap/config.json && ln -s ../blobs/e1 snap/model.safetensors && "
             "echo x > plain.gguf",
             dir);
    ASSERT_TRUE(system(cmd) == 0);
    char *snap = air_path_join(dir, "snap"), *gguf = air_path_join(dir, "plain.gguf");
    char *f0 = air_source_fingerprint(snap, 0, 1), *g0 = air_source_fingerprint(gguf, 1, 1);
    ASSERT_TRUE(strstr(f0, "blob-e1") != NULL);
    snprintf(cmd, sizeof cmd, "cd '%s' && touch -d '2001-01-01' blobs/e1 plain.gguf", dir);
    ASSERT_TRUE(system(cmd) == 0);
    char *f1 = air_source_fingerprint(snap, 0, 1), *g1 = air_source_fingerprint(gguf, 1, 1);
    ASSERT_EQ_STR(f1, f0);
    ASSERT_TRUE(strcmp(g1, g0) != 0);
    snprintf(cmd, sizeof cmd, "cd '%s' && ln -sf ../blobs/e2 snap/model.safetensors", dir);
    ASSERT_TRUE(system(cmd) == 0);
    char *f2 = air_source_fingerprint(snap, 0, 1);
    ASSERT_TRUE(strcmp(f2, f0) != 0);
    char *f3 = air_source_fingerprint(snap, 0, 0); /* without the weights */
    ASSERT_TRUE(strstr(f3, "model.safetensors") == NULL && strstr(f3, "config.json") != NULL);
    free(f0);
    free(f1);
    free(f2);
    free(f3);
    free(g0);
    free(g1);
    free(snap);
    free(gguf);
}

/* A store made with delete_original is reused without its shards, and an
 * older format version is rebuilt without a word. */
TEST(deleted_shards_and_old_versions) {
    char model[1024], cache[1024];
    fresh_model("del", model, cache);
    air_model_params p = params(cache);
    p.delete_original = 1;
    air_model *m = NULL;
    ASSERT_OK(air_model_open(model, &p, &m));
    air_model_close(m);
    char *sh = air_path_join(model, "model-00001-of-00002.safetensors");
    ASSERT_TRUE(!air_path_exists(sh));
    free(sh);
    ASSERT_OK(use_model(model, cache)); /* without delete_original: reused */

    char cache2[1024];
    snprintf(cache2, sizeof cache2, "%s", test_tmp("old-cache"));
    const char *llama = test_data("models/llama");
    ASSERT_OK(use_model(llama, cache2));
    char *store = store_of(llama, cache2);
    ASSERT_TRUE(store != NULL);
    if (!store)
        return;
    char *man = air_path_join(store, "manifest.json");
    char *text;
    size_t len;
    ASSERT_OK(air_read_file(man, &text, &len));
    char *sum = strstr(text, "\"checksum\"");
    ASSERT_TRUE(sum != NULL);
    char *ver = strstr(text, "\"version\":\t2");
    ASSERT_TRUE(ver != NULL);
    if (sum && ver) {
        ver[11] = '1';
        memcpy(sum, "\"written\"\t", 10); /* no checksum in version 1 */
        ASSERT_OK(air_write_file_atomic(man, text, len));
        ASSERT_OK(use_model(llama, cache2));
        free(text);
        ASSERT_OK(air_read_file(man, &text, &len));
        ASSERT_TRUE(strstr(text, "\"version\":\t2") != NULL);
    }
    free(text);
    free(man);
    free(store);
}

/* ---------------------------------------------------------------------------
 * processes
 * ------------------------------------------------------------------------- */

static void note_wait(void *user, const char *label, uint64_t done, uint64_t total, double rate) {
    (void)done;
    (void)total;
    if (rate < 0 && label && strstr(label, "waiting"))
        *(int *)user = 1;
}

/* Two processes open the same model at once with an empty cache: both
 * split it or wait for the other, both succeed, and the store is valid. */
TEST(concurrent_splits) {
    char cache[1024];
    const char *model = test_data("models/llama");
    int waited = 0;
    for (int round = 0; round < 4; round++) {
        snprintf(cache, sizeof cache, "%s", test_tmp("conc-cache"));
        int go[2];
        ASSERT_TRUE(pipe(go) == 0);
        pid_t kids[2];
        for (int k = 0; k < 2; k++) {
            kids[k] = fork();
            if (kids[k] == 0) {
                close(go[1]);
                char c;
                (void)!read(go[0], &c, 1); /* both start together */
                air_model_params p = params(cache);
                int w = 0;
                p.progress = note_wait;
                p.progress_user = &w;
                air_model *m = NULL;
                air_status st = air_model_open(model, &p, &m);
                if (st)
                    fprintf(stderr, "  process %d: %s\n", k, air_last_error());
                /* one that waited found the store built: it spent no time splitting */
                int bad_time = !st && w && m->split_seconds != 0;
                air_model_close(m);
                _exit(st || bad_time ? 1 : w ? 3 : 0);
            }
        }
        close(go[0]);
        close(go[1]);
        for (int k = 0; k < 2; k++) {
            int ws = 0;
            waitpid(kids[k], &ws, 0);
            ASSERT_TRUE(WIFEXITED(ws) && (WEXITSTATUS(ws) == 0 || WEXITSTATUS(ws) == 3));
            waited += WIFEXITED(ws) && WEXITSTATUS(ws) == 3;
        }
        ASSERT_OK(use_model(model, cache));
        char *store = store_of(model, cache);
        char names[64][256];
        int n = store ? list_files(store, names, 64) : 0;
        for (int i = 0; i < n; i++)
            if (strstr(names[i], ".tmp"))
                T_FAIL("left behind: %s", names[i]);
        free(store);
    }
    printf("  a second process waited for the first in %d of 4 rounds\n", waited);
}

static int msg_fd = -1;
static void send_status(void *user, const char *label, uint64_t done, uint64_t total, double rate) {
    (void)user;
    (void)done;
    (void)total;
    if (rate < 0 && label)
        (void)!write(msg_fd, label, strlen(label) + 1);
}

/* While a split holds the store's lock, another process that opens the
 * model says that it waits, waits, then uses the finished store. */
TEST(split_waits_for_the_lock) {
    char model[1024], cache[1024];
    fresh_model("lock", model, cache);
    char *store = store_of(model, cache);
    ASSERT_TRUE(store != NULL);
    if (!store)
        return;
    char *man = air_path_join(store, "manifest.json");
    unlink(man); /* the next open splits again */
    int lock_fd = open(store, O_RDONLY | O_DIRECTORY);
    ASSERT_TRUE(lock_fd >= 0 && flock(lock_fd, LOCK_EX) == 0);
    int msgs[2];
    ASSERT_TRUE(pipe(msgs) == 0);
    pid_t pid = fork();
    if (pid == 0) {
        close(msgs[0]);
        close(lock_fd);
        msg_fd = msgs[1];
        air_model_params p = params(cache);
        p.progress = send_status;
        air_model *m = NULL;
        air_status st = air_model_open(model, &p, &m);
        air_model_close(m);
        _exit(st ? 1 : 0);
    }
    close(msgs[1]);
    struct pollfd pf = {msgs[0], POLLIN, 0};
    char msg[2048] = "";
    ssize_t got = poll(&pf, 1, 20000) == 1 ? read(msgs[0], msg, sizeof msg - 1) : -1;
    msg[got > 0 ? got : 0] = 0;
    ASSERT_TRUE(!air_path_exists(man)); /* it waited */
    flock(lock_fd, LOCK_UN);
    close(lock_fd);
    int ws = 0;
    waitpid(pid, &ws, 0);
    close(msgs[0]);
    printf("  the second process said: %s\n", msg);
    ASSERT_TRUE(strstr(msg, "waiting for another process") != NULL);
    ASSERT_TRUE(WIFEXITED(ws) && WEXITSTATUS(ws) == 0);
    ASSERT_TRUE(air_path_exists(man));
    free(man);
    free(store);
}

static const char *airllm_exe(void) {
    static char exe[4096];
    const char *bin = getenv("AIR_BINARY_DIR");
    snprintf(exe, sizeof exe, "%s/airllm", bin ? bin : "build");
    return exe;
}

/* The SIZE column of `airllm list` and the size `airllm pull` prints. */
TEST(pull_and_list_agree) {
    char model[1024], cache[1024], cmd[8192], line[4096];
    fresh_model("size", model, cache);
    snprintf(cmd, sizeof cmd, "'%s' pull '%s' --compression none --cache-dir '%s' 2>/dev/null",
             airllm_exe(), model, cache);
    FILE *f = popen(cmd, "r");
    ASSERT_TRUE(f != NULL);
    char pulled[64] = "";
    while (f && fgets(line, sizeof line, f)) {
        char *in = strstr(line, " in ");
        char *c = in;
        while (c && c > line && c[-1] != ',')
            c--;
        if (in && c > line) {
            snprintf(pulled, sizeof pulled, "%.*s", (int)(in - c - 1), c + 1);
            break;
        }
    }
    if (f)
        pclose(f);
    snprintf(cmd, sizeof cmd, "'%s' list --cache-dir '%s' 2>/dev/null", airllm_exe(), cache);
    f = popen(cmd, "r");
    ASSERT_TRUE(f != NULL);
    int listed = 0;
    while (f && fgets(line, sizeof line, f))
        listed |= strstr(line, "size-model") != NULL && *pulled && strstr(line, pulled) != NULL;
    if (f)
        pclose(f);
    printf("  pull says %s\n", pulled);
    ASSERT_TRUE(*pulled != 0);
    ASSERT_TRUE(listed);
}

static int expected_store_file(const char *name) {
    return strcmp(name, ".") == 0 || strcmp(name, "..") == 0 ||
           strcmp(name, "manifest.json") == 0 || strcmp(name, "embed.bin") == 0 ||
           strcmp(name, "head.bin") == 0 || strncmp(name, "layer_", 6) == 0 ||
           strncmp(name, "tokenizer", 9) == 0 ||
           strcmp(name, "split.json") == 0; /* the marker of format 1 while it splits */
}

/* The first unexpected name in dir, or NULL. */
static const char *litter(const char *dir, char *buf, size_t size) {
    DIR *d = opendir(dir);
    struct dirent *e;
    const char *r = NULL;
    while (d && (e = readdir(d)) && !r)
        if (!expected_store_file(e->d_name) && !strstr(e->d_name, ".tmp")) {
            snprintf(buf, size, "%s", e->d_name);
            r = buf;
        }
    if (d)
        closedir(d);
    return r;
}

/* `airllm pull` measures the disk with a 256 MiB probe after a split; killed
 * then, it leaves nothing in the store folder. */
TEST(killed_pull_leaves_no_probe) {
    const char *exe = airllm_exe();
    if (access(exe, X_OK) != 0) {
        T_FAIL("no %s", exe);
        return;
    }
    char model[1024], cache[1024];
    fresh_model("pull", model, cache);
    char *store = store_of(model, cache); /* where it goes (split now, then removed) */
    ASSERT_TRUE(store != NULL);
    if (!store)
        return;
    char cmd[8192];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", cache);
    ASSERT_TRUE(system(cmd) == 0);
    pid_t pid = fork();
    if (pid == 0) {
        int devnull = open("/dev/null", O_WRONLY);
        dup2(devnull, 1);
        dup2(devnull, 2);
        execl(exe, exe, "pull", model, "--compression", "none", "--cache-dir", cache,
              (char *)NULL);
        _exit(127);
    }
    /* kill it as soon as a probe file shows, or shortly after the store is
     * complete (while the probe runs) */
    char buf[256];
    const char *seen = NULL;
    int ws = 0, done = 0;
    char *man = air_path_join(store, "manifest.json");
    struct timespec pause = {0, 200000}; /* 0.2 ms */
    long long complete_at = -1;
    for (long long t = 0; t < 100000 && !done; t++) { /* at most ~20 s */
        seen = litter(store, buf, sizeof buf);
        if (complete_at < 0 && air_path_exists(man))
            complete_at = t;
        if (seen || (complete_at >= 0 && t - complete_at > 100)) {
            kill(pid, SIGKILL);
            break;
        }
        done = waitpid(pid, &ws, WNOHANG) == pid;
        nanosleep(&pause, NULL);
    }
    if (!done)
        waitpid(pid, &ws, 0);
    if (seen)
        printf("  saw %s in the store folder; killed the pull\n", seen);
    else
        printf("  the pull %s\n", WIFSIGNALED(ws) ? "was killed after its split, during its probe"
                                                 : "ended before it could be killed");
    const char *left = litter(store, buf, sizeof buf);
    if (left)
        T_FAIL("a killed pull left %s in %s", left, store);
    free(man);
    free(store);
}

int main(void) {
    /* the process tests fork: they run before any thread exists */
    RUN(concurrent_splits);
    RUN(split_waits_for_the_lock);
    RUN(killed_pull_leaves_no_probe);
    RUN(pull_and_list_agree);
    RUN(random_flips_are_errors);
    RUN(swapped_layer_files_are_errors);
    RUN(edited_manifest_fields_are_errors);
    RUN(edited_config_rebuilds_the_store);
    RUN(tokenizer_added_later_is_used);
    RUN(deleted_shards_and_old_versions);
    RUN(weights_fingerprint);
    return test_summary();
}
