/*
 * Writes golden outputs of ggml's x86-64 `ggml_vec_dot_q{4,5,6}_K_q8_K` kernels for
 * crates/kquant/tests/ggml_cpu_vec_dot_k.rs.
 *
 * The program builds deterministic weights and activations. It quantizes the weights with
 * ggml_quantize_chunk and the activations with quantize_row_q8_K, the conversion ggml's CPU
 * backend applies before a Q4_K, Q5_K or Q6_K matrix product. Then it calls the vec-dot
 * kernel once per (weight row, activation row), as ggml_compute_forward_mul_mat does for
 * these types on x86-64, and writes each f32 result.
 *
 * Build and run against llama.cpp b11312 (built with GGML_NATIVE=ON on an AVX-512 CPU):
 *
 *   LL=/path/to/llama.cpp
 *   gcc -O2 -I$LL/ggml/include -I$LL/ggml/src -I$LL/ggml/src/ggml-cpu \
 *       scripts/ggml-oracle/vec_dot_k.c -o /tmp/vec_dot_k \
 *       -L$LL/build/bin -lggml-cpu -lggml-base -lggml -lm -Wl,-rpath,$LL/build/bin
 *   /tmp/vec_dot_k crates/kquant/tests/data/ggml-cpu/vec-dot-k
 *
 * Output files (all little-endian):
 *   act-<n_cols>x<n_batch>.f32     activation rows, row-major f32
 *   act-<n_cols>x<n_batch>.q8_k    the same rows as ggml's Q8_K blocks
 *   <type>-<n_cols>x<n_rows>.bin   weight rows as ggml blocks of <type>
 *   <type>-<n_cols>x<n_rows>x<n_batch>.out.f32  out[b * n_rows + r], f32
 *   <type>-<n_cols>x<n_rows>x<n_batch>.tiled.f32  the same product from a GGML_OP_MUL_MAT
 *                                  graph, for batches of 8 or more rows only: ggml then
 *                                  takes its tiled K-quant kernel instead of the vec-dot
 *   cases.txt                      one line per case: type n_cols n_rows n_batch weight act out
 */

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ggml.h"
#include "ggml-cpu.h"

#define ORACLE_NAME "vec-dot-k-oracle"
#include "oracle_common.h"

#define QK_K 256
#define Q8_K_BLOCK_BYTES 292

// ggml's tiled K-quant matmul takes batches of at least this many rows.
#define TILED_MIN_BATCH 8

// Prototypes from ggml-cpu/quants.h. That header needs ggml-common.h's internal macros, so
// the declarations are repeated here.
void quantize_row_q8_K(const float *x, void *y, int64_t k);
typedef void (*vec_dot_fn)(int n, float *s, size_t bs, const void *vx, size_t bx,
                           const void *vy, size_t by, int nrc);
void ggml_vec_dot_q4_K_q8_K(int, float *, size_t, const void *, size_t, const void *, size_t, int);
void ggml_vec_dot_q5_K_q8_K(int, float *, size_t, const void *, size_t, const void *, size_t, int);
void ggml_vec_dot_q6_K_q8_K(int, float *, size_t, const void *, size_t, const void *, size_t, int);

// Activations as a transformer's hidden state looks after RMSNorm: roughly normal values
// with a per-row scale, plus about 1 in 100 outliers 20 to 60 times larger.
static void make_activations(float *x, int n_cols, int n_batch, uint64_t seed) {
    rng_seed(seed);
    for (int b = 0; b < n_batch; b++) {
        double row_scale = 0.3 + 2.0 * rng_uniform();
        for (int c = 0; c < n_cols; c++) {
            double v = rng_normal() * row_scale;
            if (rng_uniform() < 0.01) v *= 20.0 + 40.0 * rng_uniform();
            x[(size_t)b * n_cols + c] = (float)v;
        }
    }
}

// Weights: normal values with a scale that varies by row and by group of 32 columns, so the
// quantizers produce varied sub-block scales and mins.
static void make_weights(float *w, int n_cols, int n_rows, uint64_t seed) {
    rng_seed(seed);
    for (int r = 0; r < n_rows; r++) {
        double row_scale = 0.01 + 0.05 * rng_uniform();
        double group_scale = 1.0;
        double offset = 0.0;
        for (int c = 0; c < n_cols; c++) {
            if (c % 32 == 0) {
                group_scale = 0.2 + 1.8 * rng_uniform();
                offset = (rng_uniform() - 0.5) * row_scale;
            }
            w[(size_t)r * n_cols + c] = (float)(rng_normal() * row_scale * group_scale + offset);
        }
    }
}

// Extreme rows: constant and alternating values, so the Q8_K codes are all -127 or 127 and
// the integer lane sums reach about 12 million (Q6_K).
static void make_extreme_weights(float *w, int n_cols, int n_rows) {
    for (int r = 0; r < n_rows; r++) {
        for (int c = 0; c < n_cols; c++) {
            float v;
            switch (r % 4) {
            case 0: v = 1.0f; break;
            case 1: v = -1.0f; break;
            case 2: v = (c % 2) ? 1.0f : -0.5f; break;
            default: v = (float)(c % 64) / 63.0f; break;
            }
            w[(size_t)r * n_cols + c] = v;
        }
    }
}

static void make_extreme_activations(float *x, int n_cols, int n_batch) {
    for (int b = 0; b < n_batch; b++) {
        for (int c = 0; c < n_cols; c++) {
            float v;
            switch (b % 3) {
            case 0: v = 1.0f; break;
            case 1: v = -1.0f; break;
            default: v = (c % 3 == 0) ? 1.0f : -0.999f; break;
            }
            x[(size_t)b * n_cols + c] = v;
        }
    }
}

// Multiplies with a GGML_OP_MUL_MAT graph on the CPU backend, which picks the kernel
// llama.cpp uses for this batch size (the tiled K-quant kernel from 8 rows on).
static void graph_mul_mat(enum ggml_type type, const void *weight, const float *x, int n_cols,
                          int n_rows, int n_batch, float *out) {
    struct ggml_init_params params = { 64u << 20, NULL, false };
    struct ggml_context *ctx = ggml_init(params);
    struct ggml_tensor *w = ggml_new_tensor_2d(ctx, type, n_cols, n_rows);
    struct ggml_tensor *a = ggml_new_tensor_2d(ctx, GGML_TYPE_F32, n_cols, n_batch);
    memcpy(w->data, weight, ggml_nbytes(w));
    memcpy(a->data, x, ggml_nbytes(a));
    struct ggml_tensor *y = ggml_mul_mat(ctx, w, a);
    struct ggml_cgraph *graph = ggml_new_graph(ctx);
    ggml_build_forward_expand(graph, y);
    if (ggml_graph_compute_with_ctx(ctx, graph, 2) != GGML_STATUS_SUCCESS) {
        fprintf(stderr, "ggml_graph_compute_with_ctx failed\n");
        exit(1);
    }
    memcpy(out, y->data, (size_t)n_rows * n_batch * sizeof(float));
    ggml_free(ctx);
}

struct weight_type {
    enum ggml_type type;
    const char *name;
    vec_dot_fn vec_dot;
};

struct act_set {
    int n_cols;
    int n_batch;
    int extreme;
    float *x;
    uint8_t *q8;
};

struct weight_case {
    int act;    // index into the activation sets
    int n_rows;
};

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: %s OUTPUT_DIR\n", argv[0]);
        return 2;
    }
    const char *dir = argv[1];
    ggml_cpu_init();

    const struct weight_type types[] = {
        {GGML_TYPE_Q6_K, "q6_k", ggml_vec_dot_q6_K_q8_K},
        {GGML_TYPE_Q5_K, "q5_k", ggml_vec_dot_q5_K_q8_K},
        {GGML_TYPE_Q4_K, "q4_k", ggml_vec_dot_q4_K_q8_K},
    };

    // One to eight super-blocks per row (2048 is the width of Gemma 3 270M's ffn_down).
    // The tests also use every prefix of each batch, so 16 rows cover batches 1 to 16.
    struct act_set acts[] = {
        {256, 16, 0, NULL, NULL},
        {512, 9, 0, NULL, NULL},
        {768, 7, 0, NULL, NULL},
        {2048, 3, 0, NULL, NULL},
        {256, 3, 1, NULL, NULL},
    };
    const int n_acts = sizeof acts / sizeof acts[0];

    const struct weight_case cases[] = {
        {0, 17}, {1, 13}, {2, 11}, {3, 9}, {4, 4},
    };
    const int n_cases = sizeof cases / sizeof cases[0];

    char name[256];
    char manifest[8192];
    size_t manifest_len = 0;

    for (int a = 0; a < n_acts; a++) {
        struct act_set *s = &acts[a];
        size_t n = (size_t)s->n_cols * s->n_batch;
        s->x = malloc(n * sizeof(float));
        s->q8 = malloc((size_t)s->n_batch * (s->n_cols / QK_K) * Q8_K_BLOCK_BYTES);
        if (s->extreme) {
            make_extreme_activations(s->x, s->n_cols, s->n_batch);
        } else {
            make_activations(s->x, s->n_cols, s->n_batch, 1000 + a);
        }
        for (int b = 0; b < s->n_batch; b++) {
            quantize_row_q8_K(s->x + (size_t)b * s->n_cols,
                              s->q8 + (size_t)b * (s->n_cols / QK_K) * Q8_K_BLOCK_BYTES, s->n_cols);
        }

        snprintf(name, sizeof name, "act-%dx%d.f32", s->n_cols, s->n_batch);
        write_file(dir, name, s->x, n * sizeof(float));
        snprintf(name, sizeof name, "act-%dx%d.q8_k", s->n_cols, s->n_batch);
        write_file(dir, name, s->q8, (size_t)s->n_batch * (s->n_cols / QK_K) * Q8_K_BLOCK_BYTES);
    }

    for (size_t t = 0; t < sizeof types / sizeof types[0]; t++) {
        for (int c = 0; c < n_cases; c++) {
            const struct act_set *s = &acts[cases[c].act];
            int n_rows = cases[c].n_rows;
            int n_cols = s->n_cols;

            float *w = malloc((size_t)n_rows * n_cols * sizeof(float));
            if (s->extreme) {
                make_extreme_weights(w, n_cols, n_rows);
            } else {
                make_weights(w, n_cols, n_rows, 2000 + 100 * t + c);
            }
            size_t row_size = ggml_row_size(types[t].type, n_cols);
            uint8_t *q = malloc(row_size * n_rows);
            size_t written = ggml_quantize_chunk(types[t].type, w, q, 0, n_rows, n_cols, NULL);
            if (written != row_size * n_rows) {
                fprintf(stderr, "ggml_quantize_chunk wrote %zu bytes, expected %zu\n", written,
                        row_size * n_rows);
                return 1;
            }

            size_t q8_row_size = (size_t)(n_cols / QK_K) * Q8_K_BLOCK_BYTES;
            float *out = malloc((size_t)s->n_batch * n_rows * sizeof(float));
            for (int b = 0; b < s->n_batch; b++) {
                for (int r = 0; r < n_rows; r++) {
                    types[t].vec_dot(n_cols, &out[(size_t)b * n_rows + r], 0, q + row_size * r, 0,
                                     s->q8 + q8_row_size * b, 0, 1);
                }
            }

            char weight_name[128], act_name[128], out_name[128];
            snprintf(weight_name, sizeof weight_name, "%s-%dx%d.bin", types[t].name, n_cols, n_rows);
            snprintf(act_name, sizeof act_name, "act-%dx%d", n_cols, s->n_batch);
            snprintf(out_name, sizeof out_name, "%s-%dx%dx%d.out.f32", types[t].name, n_cols,
                     n_rows, s->n_batch);
            write_file(dir, weight_name, q, row_size * n_rows);
            write_file(dir, out_name, out, (size_t)s->n_batch * n_rows * sizeof(float));

            if (s->n_batch >= TILED_MIN_BATCH) {
                char tiled_name[128];
                graph_mul_mat(types[t].type, q, s->x, n_cols, n_rows, s->n_batch, out);
                snprintf(tiled_name, sizeof tiled_name, "%s-%dx%dx%d.tiled.f32", types[t].name,
                         n_cols, n_rows, s->n_batch);
                write_file(dir, tiled_name, out, (size_t)s->n_batch * n_rows * sizeof(float));
            }
            manifest_len += snprintf(manifest + manifest_len, sizeof manifest - manifest_len,
                                     "%s %d %d %d %s %s %s\n", types[t].name, n_cols, n_rows,
                                     s->n_batch, weight_name, act_name, out_name);

            free(w);
            free(q);
            free(out);
        }
    }

    write_file(dir, "cases.txt", manifest, manifest_len);
    for (int a = 0; a < n_acts; a++) {
        free(acts[a].x);
        free(acts[a].q8);
    }
    return 0;
}
