/*
 * hello_airllm.c - a program built against an installed airllm.c (found with
 * pkg-config), as a user builds one: prints the library version, then, given
 * a model folder and a cache folder, answers one prompt greedily and checks
 * that the steps API (template, tokenize, generate from ids) gives the same
 * text as air_generate_text.
 *
 *     cc hello_airllm.c $(pkg-config --cflags --libs airllm) -o hello
 *     ./hello [MODEL CACHE_DIR]
 */
#include <airllm.h>
#include <stdio.h>
#include <string.h>

int main(int argc, char **argv) {
    printf("airllm %s\n", air_version());
    if (argc < 3)
        return 0;
    air_model_params mp = air_model_default_params();
    mp.compression = "none";
    mp.cache_dir = argv[2];
    air_model *m = NULL;
    if (air_model_open(argv[1], &mp, &m) != AIR_OK) {
        fprintf(stderr, "open: %s\n", air_last_error());
        return 1;
    }
    air_gen_params gp = air_gen_default_params();
    gp.temperature = 0;
    gp.max_tokens = 8;
    air_result a, b;
    char *prompt = NULL;
    int32_t *ids = NULL;
    size_t n = 0;
    int rc = 1;
    if (air_generate_text(m, NULL, "Hello, who are you?", &gp, &a) != AIR_OK) {
        fprintf(stderr, "generate: %s\n", air_last_error());
        air_model_close(m);
        return 1;
    }
    if (air_apply_chat_template(m, "[{\"role\": \"user\", \"content\": \"Hello, who are you?\"}]",
                                1, NULL, &prompt) == AIR_OK &&
        air_tokenize(m, prompt, strlen(prompt), 0, &ids, &n) == AIR_OK &&
        air_generate_ids(m, ids, n, &gp, &b, NULL, NULL) == AIR_OK) {
        printf("%d prompt tokens, %d generated: %s\n", a.prompt_tokens, a.completion_tokens,
               strcmp(a.text, b.text) == 0 ? "same text both ways" : "DIFFERENT TEXT");
        rc = strcmp(a.text, b.text) != 0 || a.prompt_tokens != (int)n;
        air_result_free(&b);
    } else {
        fprintf(stderr, "steps: %s\n", air_last_error());
    }
    air_free(prompt);
    air_free(ids);
    air_result_free(&a);
    air_model_close(m);
    return rc;
}
