// Golden outputs of ggml's CPU matrix product for the llamafile tinyBLAS types.
//
// Runs a real GGML_OP_MUL_MAT on ggml's CPU backend for Q4_0, Q5_0, Q8_0 and IQ4_NL weights
// (Q8_0 activations), F16 weights (F16 activations) and F32 weights, over batches of 1 to 16
// activation rows. Batches of 2 or more take llamafile's tinyBLAS kernels when the shape
// allows it; a batch of 1, and float shapes tinyBLAS rejects, take ggml_vec_dot_*. Each
// output element is computed whole by one thread, so the thread count does not change it.
//
// Inputs come from a fixed-seed xorshift generator: weights as f32 rows quantized with
// ggml_quantize_chunk, activations as f32 rows with a few large outlier channels.
//
// Output, in OUT_DIR:
//   acts-c<n_cols>.bin           MAX_BATCH rows of n_cols f32 activations, row-major
//   <type>-r<n_rows>-c<n_cols>.bin
//       "TBGO", u32 version, u32 ggml type, u32 n_rows, u32 n_cols, u32 n_runs, then
//       the weight rows as ggml stores them (n_rows * row size bytes). Each run follows
//       as u32 n_batch and f32 out[n_batch * n_rows] (out[b * n_rows + r]), computed
//       from the first n_batch activation rows.
// All integers and floats are little-endian.
//
// Build and run (llama.cpp b11312 built with GGML_NATIVE=ON, GGML_LLAMAFILE=ON); the gcc
// command is one line, split here for width:
//   LL=/tmp/llamacpp/llama_cpp_python-0.3.36/vendor/llama.cpp
//   gcc -O2 -I$LL/ggml/include scripts/ggml-oracle/tinyblas.c -o /tmp/tinyblas-oracle
//     -L$LL/build/bin -lggml-cpu -lggml-base -lggml -lm -Wl,-rpath,$LL/build/bin
//   /tmp/tinyblas-oracle crates/kquant/tests/data/ggml-cpu/tinyblas

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ggml-cpu.h"
#include "ggml.h"

#define MAX_BATCH 16
#define N_THREADS 4
#define FORMAT_VERSION 1

// Batches that reach every tile shape and remainder branch of tinyBLAS (RN of 1 to 4).
static const int BATCHES[] = {1, 2, 3, 4, 5, 7, 9, 16};
#define N_BATCHES ((int)(sizeof(BATCHES) / sizeof(BATCHES[0])))

// Outlier channels: Gemma activations have a few columns far larger than the rest.
static const int OUTLIER_COLS[] = {3, 37, 70, 150, 201};
static const float OUTLIER_SCALE[] = {40.0f, -25.0f, 60.0f, -90.0f, 33.0f};
#define N_OUTLIERS ((int)(sizeof(OUTLIER_COLS) / sizeof(OUTLIER_COLS[0])))

static uint64_t rng_state;

static uint64_t next_u64(void) {
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return rng_state;
}

// Returns an approximately normal value: the sum of four uniforms in [-1, 1), scaled to a
// standard deviation of 1.
static float normal(void) {
    float sum = 0.0f;
    for (int i = 0; i < 4; i++) {
        sum += (float)(next_u64() >> 40) / (float)(1 << 24) * 2.0f - 1.0f;
    }
    return sum * 0.866f;
}

static void die(const char *what, const char *path) {
    fprintf(stderr, "%s %s: %s\n", what, path, strerror(errno));
    exit(1);
}

static void write_or_die(FILE *f, const void *data, size_t size, const char *path) {
    if (fwrite(data, 1, size, f) != size) {
        die("failed to write", path);
    }
}

static void write_u32(FILE *f, uint32_t value, const char *path) {
    write_or_die(f, &value, sizeof(value), path);
}

static void make_activations(float *x, int n_cols, uint64_t seed) {
    rng_state = seed;
    for (int b = 0; b < MAX_BATCH; b++) {
        for (int c = 0; c < n_cols; c++) {
            x[b * n_cols + c] = normal();
        }
        for (int o = 0; o < N_OUTLIERS; o++) {
            if (OUTLIER_COLS[o] < n_cols) {
                x[b * n_cols + OUTLIER_COLS[o]] *= OUTLIER_SCALE[o];
            }
        }
    }
}

// Computes out = weight x activations for the first n_batch rows of x with ggml.
static void ggml_product(enum ggml_type type, const void *weight, size_t weight_size, int n_rows,
                         int n_cols, const float *x, int n_batch, float *out) {
    struct ggml_init_params params = {
        .mem_size = 64 * 1024 * 1024,
        .mem_buffer = NULL,
        .no_alloc = false,
    };
    struct ggml_context *ctx = ggml_init(params);

    struct ggml_tensor *w = ggml_new_tensor_2d(ctx, type, n_cols, n_rows);
    memcpy(w->data, weight, weight_size);
    struct ggml_tensor *a = ggml_new_tensor_2d(ctx, GGML_TYPE_F32, n_cols, n_batch);
    memcpy(a->data, x, sizeof(float) * n_cols * n_batch);

    struct ggml_tensor *y = ggml_mul_mat(ctx, w, a);
    struct ggml_cgraph *graph = ggml_new_graph(ctx);
    ggml_build_forward_expand(graph, y);
    if (ggml_graph_compute_with_ctx(ctx, graph, N_THREADS) != GGML_STATUS_SUCCESS) {
        fprintf(stderr, "ggml_graph_compute_with_ctx failed for %s\n", ggml_type_name(type));
        exit(1);
    }

    memcpy(out, y->data, sizeof(float) * n_rows * n_batch);
    ggml_free(ctx);
}

static void write_case(const char *dir, enum ggml_type type, int n_rows, int n_cols, uint64_t seed) {
    float *w = malloc(sizeof(float) * n_rows * n_cols);
    rng_state = seed;
    for (int i = 0; i < n_rows * n_cols; i++) {
        w[i] = 0.05f * normal();
    }

    size_t weight_size = ggml_row_size(type, n_cols) * n_rows;
    void *weight = malloc(weight_size);
    ggml_quantize_chunk(type, w, weight, 0, n_rows, n_cols, NULL);

    float *x = malloc(sizeof(float) * MAX_BATCH * n_cols);
    make_activations(x, n_cols, 0x9E3779B97F4A7C15ull ^ (uint64_t)n_cols);

    char path[4096];
    snprintf(path, sizeof(path), "%s/%s-r%d-c%d.bin", dir, ggml_type_name(type), n_rows, n_cols);
    FILE *f = fopen(path, "wb");
    if (!f) {
        die("failed to create", path);
    }

    write_or_die(f, "TBGO", 4, path);
    write_u32(f, FORMAT_VERSION, path);
    write_u32(f, (uint32_t)type, path);
    write_u32(f, (uint32_t)n_rows, path);
    write_u32(f, (uint32_t)n_cols, path);
    write_u32(f, (uint32_t)N_BATCHES, path);
    write_or_die(f, weight, weight_size, path);

    float *out = malloc(sizeof(float) * n_rows * MAX_BATCH);
    for (int i = 0; i < N_BATCHES; i++) {
        ggml_product(type, weight, weight_size, n_rows, n_cols, x, BATCHES[i], out);
        write_u32(f, (uint32_t)BATCHES[i], path);
        write_or_die(f, out, sizeof(float) * n_rows * BATCHES[i], path);
    }

    if (fclose(f) != 0) {
        die("failed to close", path);
    }
    printf("wrote %s\n", path);
    free(out);
    free(x);
    free(weight);
    free(w);
}

static void write_activations(const char *dir, int n_cols) {
    float *x = malloc(sizeof(float) * MAX_BATCH * n_cols);
    make_activations(x, n_cols, 0x9E3779B97F4A7C15ull ^ (uint64_t)n_cols);

    char path[4096];
    snprintf(path, sizeof(path), "%s/acts-c%d.bin", dir, n_cols);
    FILE *f = fopen(path, "wb");
    if (!f) {
        die("failed to create", path);
    }
    write_or_die(f, x, sizeof(float) * MAX_BATCH * n_cols, path);
    if (fclose(f) != 0) {
        die("failed to close", path);
    }
    free(x);
}

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: %s OUT_DIR\n", argv[0]);
        return 2;
    }
    const char *dir = argv[1];
    ggml_cpu_init();

    // Columns: 1, 2, 3 and 7 blocks of 32; rows not multiples of tinyBLAS's 4-row tiles.
    static const int Q0_SHAPES[][2] = {{13, 32}, {6, 64}, {5, 96}, {11, 224}};
    static const enum ggml_type Q0_TYPES[] = {GGML_TYPE_Q8_0, GGML_TYPE_Q5_0, GGML_TYPE_Q4_0,
                                              GGML_TYPE_IQ4_NL};

    // Float shapes: tinyBLAS takes rows % 4 == 0 and cols % 16 == 0 and rejects the rest,
    // which then use ggml_vec_dot_f16/f32 (64 elements per step, then single leftovers).
    static const int FLOAT_SHAPES[][2] = {{8, 64}, {12, 224}, {10, 64}, {8, 72}, {4, 200}};
    static const enum ggml_type FLOAT_TYPES[] = {GGML_TYPE_F16, GGML_TYPE_F32};

    uint64_t seed = 1;
    for (size_t t = 0; t < sizeof(Q0_TYPES) / sizeof(Q0_TYPES[0]); t++) {
        for (size_t s = 0; s < sizeof(Q0_SHAPES) / sizeof(Q0_SHAPES[0]); s++) {
            write_case(dir, Q0_TYPES[t], Q0_SHAPES[s][0], Q0_SHAPES[s][1], seed++);
        }
    }
    for (size_t t = 0; t < sizeof(FLOAT_TYPES) / sizeof(FLOAT_TYPES[0]); t++) {
        for (size_t s = 0; s < sizeof(FLOAT_SHAPES) / sizeof(FLOAT_SHAPES[0]); s++) {
            write_case(dir, FLOAT_TYPES[t], FLOAT_SHAPES[s][0], FLOAT_SHAPES[s][1], seed++);
        }
    }

    // Every column count used above, for the shared activation files.
    static const int ALL_COLS[] = {32, 64, 96, 224, 72, 200};
    for (size_t i = 0; i < sizeof(ALL_COLS) / sizeof(ALL_COLS[0]); i++) {
        write_activations(dir, ALL_COLS[i]);
    }
    return 0;
}
