/*
 * test_sched.c - the scheduler: concurrent requests share each sweep and
 * every greedy answer is the one transformers gives for the conversation
 * alone (tiny_chat goldens, tests/gen/gen_tiny_chat.py); JSON mode, stop
 * strings and cancellation per request; the queue bound; tools and schemas
 * per request give air_chat's answers.
 */
#include <cjson/cJSON.h>
#include <pthread.h>
#include <string.h>
#include <unistd.h>

#include "airllm.h"
#include "test.h"
#include "util/fileio.h"
#include "util/strbuf.h"

static char g_cache[1024];
static cJSON *g_golden;
static const char *const k_never[1] = {"\x01\x02 never generated"};

typedef struct {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    air_strbuf streamed;
    char *text;
    char *tool_calls; /* the result's */
    int n_calls;      /* on_tool_call */
    const char *finish;
    air_status st;
    int done, completion_tokens, prompt_tokens;
    int stop_after; /* on_text returns 1 after this many pieces (0: never) */
    int pieces;
    int drafted, accepted, sweeps; /* the result's speculation counts */
} job;

static void job_init(job *j) {
    memset(j, 0, sizeof *j);
    pthread_mutex_init(&j->mu, NULL);
    pthread_cond_init(&j->cv, NULL);
}

static void job_free(job *j) {
    air_sb_free(&j->streamed);
    free(j->text);
    free(j->tool_calls);
    pthread_mutex_destroy(&j->mu);
    pthread_cond_destroy(&j->cv);
}

static int on_text(void *user, const char *piece) {
    job *j = user;
    air_sb_puts(&j->streamed, piece);
    return j->stop_after && ++j->pieces >= j->stop_after;
}

static void on_done(void *user, air_status st, const char *err, const air_result *r) {
    job *j = user;
    pthread_mutex_lock(&j->mu);
    j->st = st;
    if (!st) {
        j->text = strdup(r->text);
        j->tool_calls = r->tool_calls ? strdup(r->tool_calls) : NULL;
        j->finish = r->finish_reason;
        j->completion_tokens = r->completion_tokens;
        j->prompt_tokens = r->prompt_tokens;
        j->drafted = r->drafted;
        j->accepted = r->accepted;
        j->sweeps = r->sweeps;
    } else {
        j->text = strdup(err);
    }
    j->done = 1;
    pthread_cond_signal(&j->cv);
    pthread_mutex_unlock(&j->mu);
}

static int on_tool_call(void *user, int index, const char *id, const char *name,
                        const char *args) {
    job *j = user;
    (void)id;
    (void)name;
    (void)args;
    j->n_calls += index == j->n_calls;
    return 0;
}

static void job_wait(job *j) {
    pthread_mutex_lock(&j->mu);
    while (!j->done)
        pthread_cond_wait(&j->cv, &j->mu);
    pthread_mutex_unlock(&j->mu);
}

static int to_msgs(const cJSON *jm, air_message *msgs) {
    int n = 0;
    const cJSON *e;
    cJSON_ArrayForEach(e, jm) msgs[n++] =
        (air_message){.role = cJSON_GetObjectItem(e, "role")->valuestring,
                      .content = cJSON_GetObjectItem(e, "content")->valuestring};
    return n;
}

static air_model *open_tiny(void) {
    air_model_params mp = air_model_default_params();
    mp.compression = "none";
    mp.cache_dir = g_cache;
    air_model *m = NULL;
    if (air_model_open(test_data("models/tiny_chat"), &mp, &m) != AIR_OK)
        fprintf(stderr, "open: %s\n", air_last_error());
    return m;
}

TEST(concurrent_greedy_answers_match_transformers) {
    air_model *m = open_tiny();
    ASSERT_TRUE(m != NULL);
    air_sched_params sp = air_sched_default_params();
    sp.max_batch = 4;     /* fewer places than requests: some wait in the queue */
    sp.prefill_chunk = 7; /* prompts arrive in several chunks, next to decode rows */
    air_sched *s = NULL;
    ASSERT_OK(air_sched_start(m, &sp, &s));
    enum { COPIES = 3 };
    const cJSON *convs = cJSON_GetObjectItem(g_golden, "conversations");
    int nc = cJSON_GetArraySize(convs);
    job *jobs = calloc((size_t)(nc * COPIES), sizeof *jobs);
    air_request **reqs = calloc((size_t)(nc * COPIES), sizeof *reqs);
    for (int c = 0; c < COPIES; c++)
        for (int i = 0; i < nc; i++) {
            job *j = &jobs[c * nc + i];
            job_init(j);
            air_message msgs[8];
            int n = to_msgs(cJSON_GetObjectItem(cJSON_GetArrayItem(convs, i), "messages"), msgs);
            air_gen_params gp = air_gen_default_params();
            gp.temperature = 0;
            gp.max_tokens = 24 - 5 * c; /* different lengths: sequences leave at different sweeps */
            if (c == 1) { /* a stop string that never matches: the text's tail is held back */
                gp.stop = k_never;
                gp.n_stop = 1;
            }
            gp.on_text = on_text;
            gp.user = j;
            ASSERT_OK(air_sched_submit(s, msgs, n, NULL, &gp, on_done, &reqs[c * nc + i]));
        }
    /* the same conversations alone, through air_chat, while the scheduler runs */
    for (int c = 0; c < COPIES; c++)
        for (int i = 0; i < nc; i++) {
            job *j = &jobs[c * nc + i];
            job_wait(j);
            const cJSON *conv = cJSON_GetArrayItem(convs, i);
            ASSERT_OK(j->st);
            air_message msgs[8];
            int n = to_msgs(cJSON_GetObjectItem(conv, "messages"), msgs);
            air_gen_params gp = air_gen_default_params();
            gp.temperature = 0;
            gp.max_tokens = 24 - 5 * c;
            if (c == 1) {
                gp.stop = k_never;
                gp.n_stop = 1;
            }
            air_result alone;
            ASSERT_OK(air_chat(m, msgs, n, &gp, &alone));
            ASSERT_EQ_STR(j->text, alone.text);
            ASSERT_EQ_STR(j->streamed.data ? j->streamed.data : "", alone.text);
            ASSERT_EQ_STR(j->finish, alone.finish_reason);
            ASSERT_EQ_INT(j->completion_tokens, alone.completion_tokens);
            ASSERT_EQ_INT(j->prompt_tokens, alone.prompt_tokens);
            if (c == 0) /* full length: the transformers golden */
                ASSERT_EQ_STR(j->text, cJSON_GetObjectItem(conv, "greedy_text")->valuestring);
            air_result_free(&alone);
            air_request_free(reqs[c * nc + i]);
            job_free(j);
        }
    air_sched_stats stats;
    air_sched_get_stats(s, &stats);
    fprintf(stderr, "  %llu sweeps, %llu rows, %llu tokens\n", (unsigned long long)stats.sweeps,
            (unsigned long long)stats.rows, (unsigned long long)stats.tokens);
    ASSERT_TRUE(stats.sweeps < stats.tokens); /* sweeps were shared */
    ASSERT_EQ_INT(stats.kv_bytes, 0);
    air_sched_stop(s);
    free(jobs);
    free(reqs);
    air_model_close(m);
}

TEST(json_stop_and_cancel_per_request) {
    air_model *m = open_tiny();
    ASSERT_TRUE(m != NULL);
    air_sched *s = NULL;
    air_sched_params sp = air_sched_default_params();
    ASSERT_OK(air_sched_start(m, &sp, &s));
    air_message msgs[1] = {{.role = "user", .content = "Give me a JSON object about Paris."}};
    job jj, js, jc, jl;
    job_init(&jj);
    job_init(&js);
    job_init(&jc);
    job_init(&jl);
    air_request *rj, *rs, *rc, *rl;
    air_gen_params gp = air_gen_default_params();
    gp.temperature = 0.9f;
    gp.seed = 7;
    gp.max_tokens = 40;
    gp.json = 1;
    gp.on_text = on_text;
    gp.user = &jj;
    ASSERT_OK(air_sched_submit(s, msgs, 1, NULL, &gp, on_done, &rj));
    /* a stop string: the greedy answer cut where the string starts */
    air_result alone;
    air_gen_params g0 = air_gen_default_params();
    g0.temperature = 0;
    g0.max_tokens = 24;
    ASSERT_OK(air_chat(m, msgs, 1, &g0, &alone));
    ASSERT_TRUE(strlen(alone.text) > 6);
    char stop[4];
    memcpy(stop, alone.text + 5, 3);
    stop[3] = 0;
    const char *stops[1] = {stop};
    air_gen_params g1 = g0;
    g1.stop = stops;
    g1.n_stop = 1;
    g1.on_text = on_text;
    g1.user = &js;
    ASSERT_OK(air_sched_submit(s, msgs, 1, NULL, &g1, on_done, &rs));
    /* the callback stops one after 2 pieces; another is cancelled */
    air_gen_params g2 = g0;
    g2.on_text = on_text;
    g2.user = &jc;
    jc.stop_after = 2;
    ASSERT_OK(air_sched_submit(s, msgs, 1, NULL, &g2, on_done, &rc));
    air_gen_params g3 = g0;
    g3.max_tokens = 200;
    g3.on_text = on_text;
    g3.user = &jl;
    ASSERT_OK(air_sched_submit(s, msgs, 1, NULL, &g3, on_done, &rl));
    air_request_cancel(rl);

    job_wait(&jj);
    ASSERT_OK(jj.st);
    cJSON *obj = cJSON_Parse(jj.text);
    ASSERT_TRUE(cJSON_IsObject(obj));
    cJSON_Delete(obj);
    job_wait(&js);
    ASSERT_OK(js.st);
    ASSERT_EQ_STR(js.finish, "stop");
    ASSERT_TRUE(strncmp(js.text, alone.text, strlen(js.text)) == 0);
    ASSERT_TRUE(strstr(alone.text, stop) == alone.text + strlen(js.text));
    job_wait(&jc);
    ASSERT_OK(jc.st);
    ASSERT_EQ_STR(jc.finish, "callback");
    job_wait(&jl);
    ASSERT_EQ_INT(jl.st, AIR_ERR_ABORTED);
    air_result_free(&alone);
    air_request_free(rj);
    air_request_free(rs);
    air_request_free(rc);
    air_request_free(rl);

    /* a request freed while it runs: no callback after air_request_free */
    job jf;
    job_init(&jf);
    air_gen_params g4 = g3;
    g4.user = &jf;
    air_request *rf;
    ASSERT_OK(air_sched_submit(s, msgs, 1, NULL, &g4, on_done, &rf));
    usleep(20000);
    air_request_free(rf);
    job_free(&jf); /* a later callback would touch freed memory (ASan) */
    air_sched_stop(s);
    job_free(&jj);
    job_free(&js);
    job_free(&jc);
    job_free(&jl);
    air_model_close(m);
}

/* The calls of a tool_calls array without their ids (random per request). */
static char *calls_without_ids(const char *tool_calls) {
    cJSON *a = cJSON_Parse(tool_calls);
    cJSON *e;
    cJSON_ArrayForEach(e, a) cJSON_DeleteItemFromObject(e, "id");
    char *out = cJSON_PrintUnformatted(a);
    cJSON_Delete(a);
    return out;
}

TEST(tools_and_schemas_per_request_match_air_chat) {
    air_model *m = open_tiny();
    ASSERT_TRUE(m != NULL);
    static const char *const k_tools =
        "[{\"type\":\"function\",\"function\":{\"name\":\"add\",\"parameters\":{"
        "\"type\":\"object\",\"properties\":{\"numbers\":{\"type\":\"array\",\"items\":"
        "{\"type\":\"integer\"},\"minItems\":2,\"maxItems\":3}},\"required\":[\"numbers\"]}}}]";
    static const char *const k_schema =
        "{\"type\":\"object\",\"properties\":{\"city\":{\"type\":\"string\"},\"n\":{"
        "\"type\":\"integer\"}},\"required\":[\"city\",\"n\"],\"additionalProperties\":false}";
    air_message msgs[1] = {{.role = "user", .content = "Add 2 and 3."}};
    air_gen_params gp[3];
    for (int i = 0; i < 3; i++) {
        gp[i] = air_gen_default_params();
        gp[i].temperature = 0;
        gp[i].max_tokens = 48;
    }
    gp[0].tools = k_tools; /* a forced call */
    gp[0].tool_choice = "add";
    gp[1].json = 1; /* a schema */
    gp[1].json_schema = k_schema;
    gp[2].tools = k_tools; /* tools, tool_choice auto: calls parsed, text otherwise */
    air_result alone[3];
    for (int i = 0; i < 3; i++)
        ASSERT_OK(air_chat(m, msgs, 1, &gp[i], &alone[i]));
    ASSERT_EQ_STR(alone[0].finish_reason, "tool_calls");
    ASSERT_TRUE(alone[0].tool_calls != NULL);
    air_sched *s = NULL;
    air_sched_params sp = air_sched_default_params();
    ASSERT_OK(air_sched_start(m, &sp, &s));
    job j[3];
    air_request *r[3];
    for (int i = 0; i < 3; i++) {
        job_init(&j[i]);
        gp[i].on_text = on_text;
        gp[i].on_tool_call = on_tool_call;
        gp[i].user = &j[i];
        ASSERT_OK(air_sched_submit(s, msgs, 1, NULL, &gp[i], on_done, &r[i]));
    }
    for (int i = 0; i < 3; i++) {
        job_wait(&j[i]);
        ASSERT_OK(j[i].st);
        ASSERT_EQ_STR(j[i].text, alone[i].text);
        ASSERT_EQ_STR(j[i].finish, alone[i].finish_reason);
        ASSERT_EQ_INT(!j[i].tool_calls, !alone[i].tool_calls);
        if (alone[i].tool_calls) {
            char *a = calls_without_ids(alone[i].tool_calls), *b = calls_without_ids(j[i].tool_calls);
            ASSERT_EQ_STR(b, a);
            cJSON *calls = cJSON_Parse(alone[i].tool_calls);
            ASSERT_EQ_INT(j[i].n_calls, cJSON_GetArraySize(calls)); /* each went to on_tool_call */
            cJSON_Delete(calls);
            free(a);
            free(b);
        }
        air_request_free(r[i]);
    }
    /* the forced call is not streamed as text; the schema answer is */
    ASSERT_EQ_INT((int)j[0].streamed.len, 0);
    ASSERT_EQ_STR(j[1].streamed.data ? j[1].streamed.data : "", alone[1].text);
    cJSON *obj = cJSON_Parse(j[1].text);
    ASSERT_TRUE(cJSON_IsString(cJSON_GetObjectItem(obj, "city")));
    ASSERT_TRUE(cJSON_IsNumber(cJSON_GetObjectItem(obj, "n")));
    cJSON_Delete(obj);
    air_sched_stop(s);
    for (int i = 0; i < 3; i++) {
        job_free(&j[i]);
        air_result_free(&alone[i]);
    }
    air_model_close(m);
}

TEST(queue_is_bounded_and_context_checked) {
    air_model *m = open_tiny();
    ASSERT_TRUE(m != NULL);
    air_sched_params sp = air_sched_default_params();
    sp.max_batch = 1;
    sp.max_queue = 1;
    sp.max_seq_len = 64;
    air_sched *s = NULL;
    ASSERT_OK(air_sched_start(m, &sp, &s));
    air_message msgs[1] = {{.role = "user", .content = "Hello"}};
    air_gen_params gp = air_gen_default_params();
    gp.max_tokens = 40;
    air_request *r[3] = {0};
    job j[3];
    int ok = 0, busy = 0;
    for (int i = 0; i < 3; i++) {
        job_init(&j[i]);
        gp.user = &j[i];
        air_status st = air_sched_submit(s, msgs, 1, NULL, &gp, on_done, &r[i]);
        ok += st == AIR_OK;
        busy += st == AIR_ERR_LIMIT && strstr(air_last_error(), "busy") != NULL;
    }
    /* the first may already have left the queue for the batch; at most 2 fit */
    ASSERT_TRUE(ok >= 2 && ok + busy == 3);
    char long_prompt[2048];
    memset(long_prompt, 0, sizeof long_prompt);
    for (int i = 0; i < 100; i++)
        strcat(long_prompt, "word ");
    air_message lm[1] = {{.role = "user", .content = long_prompt}};
    air_request *rl = NULL;
    ASSERT_ERR(air_sched_submit(s, lm, 1, NULL, &gp, on_done, &rl), AIR_ERR_LIMIT, "context");
    air_sched_stop(s); /* ends the rest as aborted */
    for (int i = 0; i < 3; i++) {
        if (r[i]) {
            job_wait(&j[i]);
            air_request_free(r[i]);
        }
        job_free(&j[i]);
    }
    air_model_close(m);
}

/* Speculation per request: with lookup, with a draft (the model's own
 * quantized copy), automatic and fixed budgets, concurrent requests give
 * exactly what each gives alone through air_chat without speculation:
 * greedy answers, a stop string, sampled and JSON answers with a seed. */
typedef struct {
    const char *name, *draft, *comp;
    int lookup, draft_max;
} sched_spec_cfg;

#define SPEC_JOBS 7

static void spec_params(int k, const cJSON *convs, air_message *msgs, int *n,
                        air_gen_params *gp, const char **stop) {
    *gp = air_gen_default_params();
    gp->temperature = 0;
    gp->max_tokens = 32;
    int nc = cJSON_GetArraySize(convs);
    *n = to_msgs(cJSON_GetObjectItem(cJSON_GetArrayItem(convs, k % nc), "messages"), msgs);
    if (k == 3) { /* a stop string inside the greedy answer */
        gp->stop = stop;
        gp->n_stop = 1;
    } else if (k == 4 || k == 5) { /* sampled; JSON mode */
        gp->temperature = 1.0f;
        gp->top_k = 0;
        gp->top_p = 1.0f;
        gp->min_p = 0;
        gp->seed = 11 + (uint64_t)k;
        gp->json = k == 5;
    } else if (k == 6) { /* this request alone without speculation */
        gp->speculative = 0;
    }
}

TEST(speculation_per_request_matches_air_chat) {
    air_model_params mp = air_model_default_params();
    mp.compression = "none";
    mp.cache_dir = g_cache;
    mp.ram_budget = 0; /* streamed: lookup is on by default */
    air_model *m = NULL;
    ASSERT_OK(air_model_open(test_data("models/tiny_chat"), &mp, &m));
    const cJSON *convs = cJSON_GetObjectItem(g_golden, "conversations");
    /* the stop string: three characters from the middle of a greedy answer */
    air_message msgs[8];
    int n;
    air_gen_params gp;
    const char *stops[1] = {NULL};
    spec_params(0, convs, msgs, &n, &gp, stops);
    n = to_msgs(cJSON_GetObjectItem(cJSON_GetArrayItem(convs, 3 % cJSON_GetArraySize(convs)),
                                    "messages"),
                msgs);
    gp.speculative = 0;
    air_result full;
    ASSERT_OK(air_chat(m, msgs, n, &gp, &full));
    size_t len = strlen(full.text);
    ASSERT_TRUE(len > 12);
    char stop[4];
    memcpy(stop, full.text + len / 2, 3);
    stop[3] = 0;
    stops[0] = stop;
    air_result_free(&full);
    /* each request alone, without speculation */
    air_result alone[SPEC_JOBS];
    for (int k = 0; k < SPEC_JOBS; k++) {
        spec_params(k, convs, msgs, &n, &gp, stops);
        gp.speculative = 0;
        ASSERT_OK(air_chat(m, msgs, n, &gp, &alone[k]));
    }
    static const sched_spec_cfg cfgs[] = {
        {"lookup (default when streamed)", NULL, NULL, -1, 0},
        {"8bit copy draft + lookup, automatic", "models/tiny_chat", "8bit", 1, 0},
        {"4bit copy draft, fixed 8", "models/tiny_chat", "4bit", 0, 8},
    };
    for (size_t c = 0; c < sizeof cfgs / sizeof cfgs[0]; c++) {
        air_sched_params sp = air_sched_default_params();
        sp.prefill_chunk = 9; /* prompts in chunks next to the others' candidates */
        sp.draft_model = cfgs[c].draft ? test_data(cfgs[c].draft) : NULL;
        sp.draft_compression = cfgs[c].comp;
        sp.lookup = cfgs[c].lookup;
        sp.draft_max = cfgs[c].draft_max;
        air_sched *s = NULL;
        ASSERT_OK(air_sched_start(m, &sp, &s));
        job jobs[SPEC_JOBS];
        air_request *reqs[SPEC_JOBS];
        for (int k = 0; k < SPEC_JOBS; k++) {
            job_init(&jobs[k]);
            spec_params(k, convs, msgs, &n, &gp, stops);
            gp.on_text = on_text;
            gp.user = &jobs[k];
            ASSERT_OK(air_sched_submit(s, msgs, n, NULL, &gp, on_done, &reqs[k]));
        }
        int drafted = 0, accepted = 0;
        for (int k = 0; k < SPEC_JOBS; k++) {
            job *j = &jobs[k];
            job_wait(j);
            ASSERT_OK(j->st);
            if (strcmp(j->text, alone[k].text) != 0 || strcmp(j->finish, alone[k].finish_reason))
                fprintf(stderr, "  %s, request %d:\n    alone: [%s] %s\n    sched: [%s] %s\n",
                        cfgs[c].name, k, alone[k].finish_reason, alone[k].text, j->finish,
                        j->text);
            ASSERT_EQ_STR(j->text, alone[k].text);
            ASSERT_EQ_STR(j->streamed.data ? j->streamed.data : "", alone[k].text);
            ASSERT_EQ_STR(j->finish, alone[k].finish_reason);
            ASSERT_EQ_INT(j->completion_tokens, alone[k].completion_tokens);
            if (k == 6)
                ASSERT_EQ_INT(j->drafted, 0); /* speculative = 0 for this request */
            drafted += j->drafted;
            accepted += j->accepted;
            air_request_free(reqs[k]);
            job_free(j);
        }
        air_sched_stats st;
        air_sched_get_stats(s, &st);
        fprintf(stderr,
                "  %-36s same answers; %llu decode steps, %llu tokens (%.2f per step), "
                "%llu/%llu candidates accepted\n",
                cfgs[c].name, (unsigned long long)st.decode_steps,
                (unsigned long long)st.decode_tokens,
                st.decode_steps ? (double)st.decode_tokens / st.decode_steps : 0,
                (unsigned long long)st.accepted, (unsigned long long)st.drafted);
        ASSERT_TRUE(drafted > 0);
        ASSERT_EQ_INT(st.drafted, drafted);
        ASSERT_EQ_INT(st.accepted, accepted);
        if (cfgs[c].draft) /* the model's own copy agrees: steps carry several tokens */
            ASSERT_TRUE(accepted > 0 && st.decode_tokens > st.decode_steps);
        /* a request naming another draft is refused */
        gp = air_gen_default_params();
        gp.draft_model = test_data("gguf/tiny_llama.gguf");
        air_request *bad = NULL;
        ASSERT_TRUE(air_sched_submit(s, msgs, n, NULL, &gp, on_done, &bad) ==
                    AIR_ERR_UNSUPPORTED);
        air_sched_stop(s);
    }
    for (int k = 0; k < SPEC_JOBS; k++)
        air_result_free(&alone[k]);
    air_model_close(m);
    air_model_cache_clear();
}

int main(void) {
    snprintf(g_cache, sizeof g_cache, "%s", test_tmp("sched-cache"));
    char *text;
    size_t len;
    if (air_read_file(test_data("models/tiny_chat/golden.json"), &text, &len) != AIR_OK) {
        fprintf(stderr, "missing golden: %s\n", air_last_error());
        return 1;
    }
    g_golden = cJSON_Parse(text);
    free(text);
    RUN(concurrent_greedy_answers_match_transformers);
    RUN(json_stop_and_cancel_per_request);
    RUN(tools_and_schemas_per_request_match_air_chat);
    RUN(queue_is_bounded_and_context_checked);
    RUN(speculation_per_request_matches_air_chat);
    cJSON_Delete(g_golden);
    return test_summary();
}
