/*
 * Writes golden outputs of ggml's tiled K-quant matrix product
 * (ggml_compute_forward_mul_mat_tiled, ggml-cpu/tiled/) for Q3_K, IQ4_XS and Q2_K weights,
 * for crates/kquant/tests/ggml_cpu_tiled_misc.rs.
 *
 * For each case the program builds deterministic weights and activations, quantizes the
 * weights with ggml_quantize_chunk and runs one GGML_OP_MUL_MAT graph on the CPU backend
 * with the weight in an ordinary CPU buffer. With at least 8 activation rows the backend
 * takes the tiled path, which is on while GGML_CPU_TILED_MM is unset. It converts the f32
 * activations with quantize_row_q8_K itself, as llama-perplexity does. Each product runs with 1 and
 * with 3 threads; the program stops when the two outputs differ in any bit. Batches of 8,
 * 9 and 16 rows take the tiled kernel's narrow path (several K slabs per call), 17
 * its standard path; 40 weight rows leave a ragged 8-row edge after the 16-row microtiles.
 *
 * It also checks that quantize_row_q8_K (the tiled path's activation quantizer) writes the
 * same bytes as quantize_row_q8_K_ref on these activations, and prints the count.
 *
 * Build and run against llama.cpp b11312 (built with GGML_NATIVE=ON on an AVX-512 CPU):
 *
 *   LL=/path/to/llama.cpp
 *   gcc -O2 -I$LL/ggml/include scripts/ggml-oracle/tiled_misc.c -o /tmp/tiled-misc-oracle \
 *       -L$LL/build/bin -lggml-cpu -lggml-base -lggml -lm -Wl,-rpath,$LL/build/bin
 *   /tmp/tiled-misc-oracle crates/kquant/tests/data/ggml-cpu/tiled-misc
 *
 * Output files (all little-endian):
 *   act-<n_cols>.f32                   17 activation rows, row-major f32
 *   <type>-<n_cols>x<n_rows>.bin       weight rows as plain ggml blocks of <type>
 *   <type>-<n_cols>x<n_rows>x<n_batch>.out.f32
 *                                      out[b * n_rows + r] for the first n_batch rows
 *   cases.txt                          one line per case: type n_cols n_rows n_batch
 *                                      weight-file act-file out-file
 */

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ggml.h"
#include "ggml-alloc.h"
#include "ggml-backend.h"
#include "ggml-cpu.h"

#define ORACLE_NAME "tiled-misc-oracle"
#include "oracle_common.h"

#define QK_K 256
#define MAX_BATCH 17

// From ggml-cpu/quants.h and ggml-quants.h, whose headers need internal macros.
void quantize_row_q8_K(const float *x, void *y, int64_t k);
void quantize_row_q8_K_ref(const float *x, void *y, int64_t k);

// Byte size of ggml-common.h's block_q8_K: f32 d, 256 codes, 16 i16 block sums.
#define Q8_K_BLOCK_BYTES (4 + QK_K + 2 * (QK_K / 16))

static const int BATCHES[] = {8, 9, 16, 17};
#define N_BATCHES ((int)(sizeof(BATCHES) / sizeof(BATCHES[0])))

/* Counts the Q8_K blocks where quantize_row_q8_K and quantize_row_q8_K_ref differ. */
static int compare_q8_k(const float *x, int n_cols, int n_rows) {
    size_t row_bytes = (size_t)(n_cols / QK_K) * Q8_K_BLOCK_BYTES;
    unsigned char *fast = malloc(row_bytes), *ref = malloc(row_bytes);
    int differ = 0;
    for (int r = 0; r < n_rows; r++) {
        quantize_row_q8_K(x + (size_t)r * n_cols, fast, n_cols);
        quantize_row_q8_K_ref(x + (size_t)r * n_cols, ref, n_cols);
        for (int i = 0; i < n_cols / QK_K; i++) {
            differ += memcmp(fast + i * Q8_K_BLOCK_BYTES, ref + i * Q8_K_BLOCK_BYTES, Q8_K_BLOCK_BYTES) != 0;
        }
    }
    free(fast);
    free(ref);
    return differ;
}

/* Runs out = weight x act with ggml's CPU backend, the weight in a plain CPU buffer. */
static void run_mul_mat(ggml_backend_t backend, enum ggml_type type, const void *weight,
                        int n_cols, int n_rows, const float *act, int n_batch, int n_threads,
                        float *out) {
    struct ggml_init_params params = {
        .mem_size = 8 * ggml_tensor_overhead() + ggml_graph_overhead(),
        .mem_buffer = NULL,
        .no_alloc = true,
    };
    struct ggml_context *ctx = ggml_init(params);

    struct ggml_tensor *w = ggml_new_tensor_2d(ctx, type, n_cols, n_rows);
    struct ggml_tensor *x = ggml_new_tensor_2d(ctx, GGML_TYPE_F32, n_cols, n_batch);
    struct ggml_tensor *y = ggml_mul_mat(ctx, w, x);

    ggml_backend_buffer_t buf = ggml_backend_alloc_ctx_tensors(ctx, backend);
    if (!buf) {
        die("buffer allocation failed");
    }
    ggml_backend_tensor_set(w, weight, 0, ggml_nbytes(w));
    ggml_backend_tensor_set(x, act, 0, ggml_nbytes(x));

    struct ggml_cgraph *graph = ggml_new_graph(ctx);
    ggml_build_forward_expand(graph, y);
    ggml_backend_cpu_set_n_threads(backend, n_threads);
    if (ggml_backend_graph_compute(backend, graph) != GGML_STATUS_SUCCESS) {
        die("graph compute failed");
    }
    ggml_backend_tensor_get(y, out, 0, ggml_nbytes(y));

    ggml_backend_buffer_free(buf);
    ggml_free(ctx);
}

struct shape { enum ggml_type type; const char *name; int n_cols; int n_rows; };

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: %s OUTPUT_DIR\n", argv[0]);
        return 2;
    }
    const char *dir = argv[1];
    if (getenv("GGML_CPU_TILED_MM") != NULL) {
        die("unset GGML_CPU_TILED_MM: the golden data is the tiled path's");
    }

    ggml_backend_t backend = ggml_backend_cpu_init();
    if (!backend) {
        die("no CPU backend");
    }

    // Columns: 1, 2 and 4 super-blocks. Rows: 24 and 40 end in a ragged 8-row microtile,
    // 16 has none.
    const struct shape shapes[] = {
        {GGML_TYPE_Q3_K, "q3_k", 256, 24},
        {GGML_TYPE_Q3_K, "q3_k", 512, 40},
        {GGML_TYPE_Q3_K, "q3_k", 1024, 16},
        {GGML_TYPE_IQ4_XS, "iq4_xs", 256, 24},
        {GGML_TYPE_IQ4_XS, "iq4_xs", 512, 40},
        {GGML_TYPE_IQ4_XS, "iq4_xs", 1024, 16},
        {GGML_TYPE_Q2_K, "q2_k", 256, 24},
        {GGML_TYPE_Q2_K, "q2_k", 512, 40},
        {GGML_TYPE_Q2_K, "q2_k", 1024, 16},
    };
    const int n_shapes = (int)(sizeof(shapes) / sizeof(shapes[0]));

    char path[1024];
    snprintf(path, sizeof path, "%s/cases.txt", dir);
    FILE *cases = fopen(path, "w");
    if (!cases) {
        die(path);
    }

    int written_acts[4096] = {0};
    for (int s = 0; s < n_shapes; s++) {
        const struct shape *sh = &shapes[s];
        float *act = malloc(sizeof(float) * MAX_BATCH * sh->n_cols);
        make_gemma_activations(act, sh->n_cols, MAX_BATCH, 3000 + sh->n_cols);
        char act_name[64];
        snprintf(act_name, sizeof act_name, "act-%d.f32", sh->n_cols);
        if (!written_acts[sh->n_cols]) {
            write_file(dir, act_name, act, sizeof(float) * MAX_BATCH * sh->n_cols);
            printf("q8_K n_cols=%d: %d of %d blocks differ between quantize_row_q8_K and _ref\n",
                   sh->n_cols, compare_q8_k(act, sh->n_cols, MAX_BATCH), MAX_BATCH * sh->n_cols / QK_K);
            written_acts[sh->n_cols] = 1;
        }

        float *wf = malloc(sizeof(float) * sh->n_cols * sh->n_rows);
        make_row_scaled_weights(wf, sh->n_cols, sh->n_rows, 11 * (s + 1));
        size_t weight_size = ggml_row_size(sh->type, sh->n_cols) * sh->n_rows;
        void *weight = malloc(weight_size);
        ggml_quantize_chunk(sh->type, wf, weight, 0, sh->n_rows, sh->n_cols, NULL);
        char weight_name[64];
        snprintf(weight_name, sizeof weight_name, "%s-%dx%d.bin", sh->name, sh->n_cols, sh->n_rows);
        write_file(dir, weight_name, weight, weight_size);

        float *out = malloc(sizeof(float) * MAX_BATCH * sh->n_rows);
        float *out_threads = malloc(sizeof(float) * MAX_BATCH * sh->n_rows);
        for (int i = 0; i < N_BATCHES; i++) {
            int n_batch = BATCHES[i];
            size_t out_size = sizeof(float) * n_batch * sh->n_rows;
            run_mul_mat(backend, sh->type, weight, sh->n_cols, sh->n_rows, act, n_batch, 1, out);
            run_mul_mat(backend, sh->type, weight, sh->n_cols, sh->n_rows, act, n_batch, 3, out_threads);
            if (memcmp(out, out_threads, out_size) != 0) {
                die("outputs with 1 and 3 threads differ");
            }

            char out_name[64];
            snprintf(out_name, sizeof out_name, "%s-%dx%dx%d.out.f32", sh->name, sh->n_cols, sh->n_rows, n_batch);
            write_file(dir, out_name, out, out_size);
            fprintf(cases, "%s %d %d %d %s %s %s\n", sh->name, sh->n_cols, sh->n_rows, n_batch,
                    weight_name, act_name, out_name);
        }

        free(out_threads);
        free(out);
        free(weight);
        free(wf);
        free(act);
    }

    if (fclose(cases) != 0) {
        die("cases.txt");
    }
    ggml_backend_free(backend);
    return 0;
}
