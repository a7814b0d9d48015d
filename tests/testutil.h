/* Minimal test helpers: checks that count failures, and the shared-data skip convention. */
#ifndef ROTQ_TESTUTIL_H
#define ROTQ_TESTUTIL_H
#include <stdbool.h>
#include <stdio.h>

extern int tu_failures;
extern int tu_checks;

#define CHECK(cond, ...)                                                              \
    do {                                                                              \
        tu_checks++;                                                                  \
        if (!(cond)) {                                                                \
            tu_failures++;                                                            \
            fprintf(stderr, "%s:%d: check failed: %s: ", __FILE__, __LINE__, #cond);  \
            fprintf(stderr, __VA_ARGS__);                                             \
            fputc('\n', stderr);                                                      \
        }                                                                             \
    } while (0)

/* Path to ../shared/REL, or NULL (after printing why) when the shared data is absent. */
const char *tu_shared(const char *rel);
/* A fresh temporary directory (removed by tu_finish). */
const char *tu_tmpdir(void);
/* Prints the summary line and returns the process exit code. */
int tu_finish(const char *name);
/* A small random Llama model in memory (float32, untied lm_head), from `seed`: weights N(0, 1/fan_in),
 * norm gains 1 + N(0, 0.04). The arch is bound; free with rotq_model_free. */
typedef struct tu_llama_shape { int d, ff, layers, heads, kv_heads, head_dim, vocab; } tu_llama_shape;
struct rotq_model;
struct rotq_model *tu_random_llama(const tu_llama_shape *s, unsigned long long seed);
/* The same for any registered architecture: every tensor its description lists (biases included,
 * lm_head untied), hyper-parameters from the shape (MLP kind and positions from the description). */
struct rotq_model *tu_random_model(const char *arch, const tu_llama_shape *s, unsigned long long seed);
/* Normal(0, 1) from a xorshift64* stream in *state. */
double tu_nrand(unsigned long long *state);

/* Exit code 77 tells CTest the test was skipped. */
#define TU_SKIP 77
#endif
