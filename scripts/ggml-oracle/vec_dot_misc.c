// Writes golden outputs of ggml's x86-64 vec-dot kernels for Q4_1 and Q5_1 (against Q8_1)
// and Q2_K, Q3_K and IQ4_XS (against Q8_K), for kquant's bit-exactness test
// crates/kquant/tests/ggml_cpu_vec_dot_misc.rs.
//
// For these weight types llama.cpp's CPU backend computes every output element of a matrix
// product with one call of the type's `vec_dot`, without llamafile's tinyBLAS or a repacked
// layout. An output therefore depends only on one weight row and one activation row.
//
// Build and run against llama.cpp b11312 (as vendored by llama-cpp-python 0.3.36):
//
//   LL=/tmp/llamacpp/llama_cpp_python-0.3.36/vendor/llama.cpp
//   gcc -O2 -I$LL/ggml/include scripts/ggml-oracle/vec_dot_misc.c -L$LL/build/bin
//       -lggml-cpu -lggml-base -lggml -lm -Wl,-rpath,$LL/build/bin -o /tmp/vec_dot_misc
//   (one command line)
//   /tmp/vec_dot_misc crates/kquant/tests/data/ggml-cpu/vec-dot-misc
//
// Output, all little-endian, in the folder given as the only argument:
//   act_<n_cols>.f32        N_BATCH rows of n_cols f32 activations
//   act_<n_cols>.<q8 type>  those rows converted by ggml's `from_float` (q8_1 or q8_k)
//   <type>_<n_cols>x<n_rows>.weight  n_rows rows quantized by ggml_quantize_chunk
//   <type>_<n_cols>x<n_rows>.out     N_BATCH x n_rows f32, element [b][r] = vec_dot(row r, act b)
//   cases.txt               one line per case: type n_cols n_rows

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ggml-cpu.h"
#include "ggml.h"

// Activation rows per shape: enough for every batch size the test takes a prefix of.
#define N_BATCH 16

// One in this many activations is an outlier, as in Gemma's residual stream.
#define OUTLIER_PERIOD 97

// Outliers are this many times larger than the bulk of the activations.
#define OUTLIER_GAIN 40.0f

// xorshift64*: a small deterministic generator, so the files are reproducible.
static uint64_t rng_state;

static uint64_t rng_next(void) {
    rng_state ^= rng_state >> 12;
    rng_state ^= rng_state << 25;
    rng_state ^= rng_state >> 27;
    return rng_state * 0x2545F4914F6CDD1DULL;
}

// Uniform in [0, 1).
static float rng_uniform(void) {
    return (float)(rng_next() >> 40) / (float)(1ULL << 24);
}

// Approximately normal with mean 0 and variance 1 (the sum of 12 uniforms, minus 6).
static float rng_normal(void) {
    float sum = 0.0f;
    for (int i = 0; i < 12; ++i) {
        sum += rng_uniform();
    }
    return sum - 6.0f;
}

static void write_file(const char * dir, const char * name, const void * data, size_t size) {
    char path[1024];
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    FILE * f = fopen(path, "wb");
    if (!f || fwrite(data, 1, size, f) != size || fclose(f) != 0) {
        fprintf(stderr, "failed to write %s\n", path);
        exit(1);
    }
}

// Fills N_BATCH rows of activations: a normal bulk whose spread varies per row, two
// channels that are large in every row, and scattered single outliers.
static void make_activations(float * x, int n_cols, uint64_t seed) {
    rng_state = seed;
    const int hot_a = (int)(rng_next() % (uint64_t)n_cols);
    const int hot_b = (int)(rng_next() % (uint64_t)n_cols);
    for (int b = 0; b < N_BATCH; ++b) {
        const float spread = 0.25f + 2.0f * rng_uniform();
        for (int j = 0; j < n_cols; ++j) {
            float v = spread * rng_normal();
            if (j == hot_a || j == hot_b || rng_next() % OUTLIER_PERIOD == 0) {
                v *= OUTLIER_GAIN;
            }
            x[(size_t)b * n_cols + j] = v;
        }
    }
}

// Fills n_rows weight rows: normal values with a per-row scale and a per-row offset, so
// that the mins of Q4_1, Q5_1 and Q2_K are not all zero.
static void make_weights(float * w, int n_cols, int n_rows, uint64_t seed) {
    rng_state = seed;
    for (int r = 0; r < n_rows; ++r) {
        const float scale = 0.005f + 0.05f * rng_uniform();
        const float offset = scale * (rng_uniform() - 0.5f);
        for (int j = 0; j < n_cols; ++j) {
            w[(size_t)r * n_cols + j] = offset + scale * rng_normal();
        }
    }
}

struct weight_kind {
    enum ggml_type type;
    const char * name;
    // Columns of the three shapes: one block, two blocks, several blocks.
    int n_cols[3];
};

// Rows of the three shapes: below, around and across kquant's 32-row tile.
static const int N_ROWS[3] = {5, 13, 40};

int main(int argc, char ** argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: %s OUTPUT_DIR\n", argv[0]);
        return 2;
    }
    const char * dir = argv[1];
    ggml_cpu_init();

    const struct weight_kind kinds[] = {
        {GGML_TYPE_Q5_1, "q5_1", {32, 64, 320}},
        {GGML_TYPE_Q4_1, "q4_1", {32, 64, 320}},
        {GGML_TYPE_IQ4_XS, "iq4_xs", {256, 512, 768}},
        {GGML_TYPE_Q3_K, "q3_k", {256, 512, 768}},
        {GGML_TYPE_Q2_K, "q2_k", {256, 512, 768}},
    };
    const int n_kinds = (int)(sizeof(kinds) / sizeof(kinds[0]));

    char name[256];
    char cases[4096] = "";
    size_t cases_len = 0;

    for (int k = 0; k < n_kinds; ++k) {
        const struct weight_kind * kind = &kinds[k];
        const struct ggml_type_traits_cpu * traits = ggml_get_type_traits_cpu(kind->type);
        const enum ggml_type act_type = traits->vec_dot_type;
        const char * act_name = ggml_type_name(act_type);
        const ggml_from_float_t act_from_float = ggml_get_type_traits_cpu(act_type)->from_float;

        for (int s = 0; s < 3; ++s) {
            const int n_cols = kind->n_cols[s];
            const int n_rows = N_ROWS[s];

            // The same activations serve every weight type with this n_cols.
            float * x = malloc(sizeof(float) * N_BATCH * n_cols);
            make_activations(x, n_cols, 0x9E3779B97F4A7C15ULL ^ (uint64_t)n_cols);
            snprintf(name, sizeof(name), "act_%d.f32", n_cols);
            write_file(dir, name, x, sizeof(float) * N_BATCH * n_cols);

            const size_t act_row_size = ggml_row_size(act_type, n_cols);
            uint8_t * xq = malloc(act_row_size * N_BATCH);
            for (int b = 0; b < N_BATCH; ++b) {
                act_from_float(x + (size_t)b * n_cols, xq + (size_t)b * act_row_size, n_cols);
            }
            snprintf(name, sizeof(name), "act_%d.%s", n_cols, act_name);
            write_file(dir, name, xq, act_row_size * N_BATCH);

            float * w = malloc(sizeof(float) * n_rows * n_cols);
            make_weights(w, n_cols, n_rows, 0xD1B54A32D192ED03ULL ^ ((uint64_t)k << 32) ^ (uint64_t)s);
            const size_t w_row_size = ggml_row_size(kind->type, n_cols);
            uint8_t * wq = malloc(w_row_size * n_rows);
            const size_t written = ggml_quantize_chunk(kind->type, w, wq, 0, n_rows, n_cols, NULL);
            if (written != w_row_size * n_rows) {
                fprintf(stderr, "%s: quantize wrote %zu bytes, expected %zu\n", kind->name, written,
                        w_row_size * n_rows);
                return 1;
            }
            snprintf(name, sizeof(name), "%s_%dx%d.weight", kind->name, n_cols, n_rows);
            write_file(dir, name, wq, w_row_size * n_rows);

            float * out = malloc(sizeof(float) * N_BATCH * n_rows);
            for (int b = 0; b < N_BATCH; ++b) {
                for (int r = 0; r < n_rows; ++r) {
                    traits->vec_dot(n_cols, &out[(size_t)b * n_rows + r], 0, wq + (size_t)r * w_row_size, 0,
                                    xq + (size_t)b * act_row_size, 0, 1);
                }
            }
            snprintf(name, sizeof(name), "%s_%dx%d.out", kind->name, n_cols, n_rows);
            write_file(dir, name, out, sizeof(float) * N_BATCH * n_rows);

            cases_len += (size_t)snprintf(cases + cases_len, sizeof(cases) - cases_len, "%s %d %d\n",
                                          kind->name, n_cols, n_rows);

            free(x);
            free(xq);
            free(w);
            free(wq);
            free(out);
        }
    }

    write_file(dir, "cases.txt", cases, cases_len);
    return 0;
}
