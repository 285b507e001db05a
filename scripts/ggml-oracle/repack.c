/*
 * Writes golden outputs of ggml's repacked matrix products (the CPU_REPACK buffer type:
 * q4_0_8x8_q8_0, q4_K_8x8_q8_K and iq4_nl_8x8_q8_0 on x86-64) for
 * crates/kquant/tests/ggml_cpu_repack.rs.
 *
 * For each case the program builds deterministic weights and activations and quantizes the
 * weights with ggml_quantize_chunk. It places the weight tensor in the CPU_REPACK buffer
 * type, which ggml_backend_dev_get_extra_bufts returns for the CPU device and which repacks
 * the rows on upload, and runs one GGML_OP_MUL_MAT graph on the CPU backend. The
 * backend itself converts the f32 activations (ggml_quantize_mat_* for groups of 4 rows,
 * quantize_row_* for the rest) and picks ggml_gemm_*_8x8 / ggml_gemv_*_8x8, exactly as
 * llama-perplexity does. Each product runs with 1 and with 3 threads; the program stops
 * when the two outputs differ in any bit, because the Rust kernels assume that every
 * output element has one thread-independent value.
 *
 * It also checks how ggml_quantize_mat_q8_K_4x8 differs from quantize_row_q8_K (the
 * quantizer kquant's Q8_K activations follow) and how ggml_quantize_mat_q8_0_4x8 differs
 * from quantize_row_q8_0, and prints the counts.
 *
 * Build and run against llama.cpp b11312 (built with GGML_NATIVE=ON on an AVX-512 CPU):
 *
 *   LL=/path/to/llama.cpp
 *   gcc -O2 -I$LL/ggml/include scripts/ggml-oracle/repack.c -o /tmp/repack-oracle \
 *       -L$LL/build/bin -lggml-cpu -lggml-base -lggml -lm -Wl,-rpath,$LL/build/bin
 *   /tmp/repack-oracle crates/kquant/tests/data/ggml-cpu/repack
 *
 * Output files (all little-endian):
 *   act-<n_cols>.f32                   16 activation rows, row-major f32
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

#define ORACLE_NAME "repack-oracle"
#include "oracle_common.h"

#define QK_K 256
#define QK8_0 32
#define MAX_BATCH 16

// Prototypes from ggml-cpu/quants.h and ggml-cpu/repack.h; those headers need internal
// macros, so the declarations are repeated here.
void quantize_row_q8_K(const float *x, void *y, int64_t k);
void quantize_row_q8_0(const float *x, void *y, int64_t k);
void ggml_quantize_mat_q8_K_4x8(const float *x, void *vy, int64_t k);
void ggml_quantize_mat_q8_0_4x8(const float *x, void *vy, int64_t k);

// Byte layouts of ggml-common.h and ggml-cpu/repack.h.
typedef struct { float d; int8_t qs[QK_K]; int16_t bsums[QK_K / 16]; } block_q8_K;
typedef struct { float d[4]; int8_t qs[QK_K * 4]; int16_t bsums[QK_K / 4]; } block_q8_Kx4;
typedef struct { uint16_t d; int8_t qs[QK8_0]; } block_q8_0;
typedef struct { uint16_t d[4]; int8_t qs[QK8_0 * 4]; } block_q8_0x4;

// Interleaving of ggml_quantize_mat_*_4x8: runs of 8 codes from rows 0, 1, 2, 3 in turn.
#define INTERLEAVE 8

static const int BATCHES[] = {1, 2, 3, 4, 5, 7, 9, 16};
#define N_BATCHES ((int)(sizeof(BATCHES) / sizeof(BATCHES[0])))

/* Compares the grouped Q8_K and Q8_0 quantizers with the row quantizers on `x`. */
static void compare_quantizers(const float *x, int n_cols) {
    if (n_cols % QK_K == 0) {
        int nb = n_cols / QK_K;
        block_q8_Kx4 *mat = malloc(sizeof(block_q8_Kx4) * nb);
        block_q8_K *row = malloc(sizeof(block_q8_K) * nb);
        ggml_quantize_mat_q8_K_4x8(x, mat, n_cols);

        int same = 0, negated = 0, other = 0;
        for (int r = 0; r < 4; r++) {
            quantize_row_q8_K(x + r * n_cols, row, n_cols);
            for (int i = 0; i < nb; i++) {
                int equal = mat[i].d[r] == row[i].d, opposite = mat[i].d[r] == -row[i].d;
                for (int e = 0; e < QK_K; e++) {
                    int q = mat[i].qs[(e / INTERLEAVE) * 4 * INTERLEAVE + r * INTERLEAVE + e % INTERLEAVE];
                    equal &= q == row[i].qs[e];
                    opposite &= q == -row[i].qs[e];
                }
                same += equal;
                negated += !equal && opposite;
                other += !equal && !opposite;
            }
        }
        printf("q8_K n_cols=%d: %d blocks equal, %d negated (scale and codes), %d other\n",
               n_cols, same, negated, other);
        free(mat);
        free(row);
    }

    int nb = n_cols / QK8_0;
    block_q8_0x4 *mat = malloc(sizeof(block_q8_0x4) * nb);
    block_q8_0 *row = malloc(sizeof(block_q8_0) * nb);
    ggml_quantize_mat_q8_0_4x8(x, mat, n_cols);
    int same = 0, other = 0;
    for (int r = 0; r < 4; r++) {
        quantize_row_q8_0(x + r * n_cols, row, n_cols);
        for (int i = 0; i < nb; i++) {
            int equal = mat[i].d[r] == row[i].d;
            for (int e = 0; e < QK8_0; e++) {
                equal &= mat[i].qs[(e / INTERLEAVE) * 4 * INTERLEAVE + r * INTERLEAVE + e % INTERLEAVE] == row[i].qs[e];
            }
            same += equal;
            other += !equal;
        }
    }
    printf("q8_0 n_cols=%d: %d blocks equal, %d differ\n", n_cols, same, other);
    free(mat);
    free(row);
}

/* Runs out = weight x act with ggml's CPU backend, the weight in `repack_buft`. */
static void run_mul_mat(ggml_backend_t backend, ggml_backend_buffer_type_t repack_buft,
                        enum ggml_type type, const void *weight, int n_cols, int n_rows,
                        const float *act, int n_batch, int n_threads, float *out) {
    struct ggml_init_params params = {
        .mem_size = 8 * ggml_tensor_overhead() + ggml_graph_overhead(),
        .mem_buffer = NULL,
        .no_alloc = true,
    };
    struct ggml_context *ctx_w = ggml_init(params);
    struct ggml_context *ctx = ggml_init(params);

    struct ggml_tensor *w = ggml_new_tensor_2d(ctx_w, type, n_cols, n_rows);
    struct ggml_tensor *x = ggml_new_tensor_2d(ctx, GGML_TYPE_F32, n_cols, n_batch);
    struct ggml_tensor *y = ggml_mul_mat(ctx, w, x);

    ggml_backend_buffer_t buf_w = ggml_backend_alloc_ctx_tensors_from_buft(ctx_w, repack_buft);
    ggml_backend_buffer_t buf = ggml_backend_alloc_ctx_tensors(ctx, backend);
    if (!buf_w || !buf) {
        die("buffer allocation failed");
    }
    ggml_backend_buffer_set_usage(buf_w, GGML_BACKEND_BUFFER_USAGE_WEIGHTS);
    ggml_backend_tensor_set(w, weight, 0, ggml_nbytes(w));
    ggml_backend_tensor_set(x, act, 0, ggml_nbytes(x));
    if (w->extra == NULL) {
        die("the repack buffer chose no repacked layout for this weight");
    }

    struct ggml_cgraph *graph = ggml_new_graph(ctx);
    ggml_build_forward_expand(graph, y);
    ggml_backend_cpu_set_n_threads(backend, n_threads);
    if (ggml_backend_graph_compute(backend, graph) != GGML_STATUS_SUCCESS) {
        die("graph compute failed");
    }
    ggml_backend_tensor_get(y, out, 0, ggml_nbytes(y));

    ggml_backend_buffer_free(buf);
    ggml_backend_buffer_free(buf_w);
    ggml_free(ctx);
    ggml_free(ctx_w);
}

struct shape { enum ggml_type type; const char *name; int n_cols; int n_rows; };

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: %s OUTPUT_DIR\n", argv[0]);
        return 2;
    }
    const char *dir = argv[1];

    ggml_backend_t backend = ggml_backend_cpu_init();
    ggml_backend_dev_t dev = ggml_backend_get_device(backend);
    ggml_backend_reg_t reg = ggml_backend_dev_backend_reg(dev);
    ggml_backend_dev_get_extra_bufts_t get_extra =
        (ggml_backend_dev_get_extra_bufts_t)ggml_backend_reg_get_proc_address(reg, "ggml_backend_dev_get_extra_bufts");
    if (!get_extra) {
        die("the CPU backend exports no ggml_backend_dev_get_extra_bufts");
    }
    ggml_backend_buffer_type_t repack_buft = NULL;
    for (ggml_backend_buffer_type_t *b = get_extra(dev); b && *b; b++) {
        if (strcmp(ggml_backend_buft_name(*b), "CPU_REPACK") == 0) {
            repack_buft = *b;
        }
    }
    if (!repack_buft) {
        die("no CPU_REPACK buffer type (built without GGML_CPU_REPACK?)");
    }

    // Rows: 8 and 24 and 40 leave a remainder of 8 after ggml's 16-column AVX-512 groups,
    // 16 has none. Columns: 1, 2 and several blocks.
    const struct shape shapes[] = {
        {GGML_TYPE_Q4_K, "q4_k", 256, 8},
        {GGML_TYPE_Q4_K, "q4_k", 512, 40},
        {GGML_TYPE_Q4_K, "q4_k", 768, 24},
        {GGML_TYPE_Q4_0, "q4_0", 32, 8},
        {GGML_TYPE_Q4_0, "q4_0", 64, 16},
        {GGML_TYPE_Q4_0, "q4_0", 320, 40},
        {GGML_TYPE_IQ4_NL, "iq4_nl", 32, 8},
        {GGML_TYPE_IQ4_NL, "iq4_nl", 64, 16},
        {GGML_TYPE_IQ4_NL, "iq4_nl", 320, 40},
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
        make_gemma_activations(act, sh->n_cols, MAX_BATCH, 1000 + sh->n_cols);
        char act_name[64];
        snprintf(act_name, sizeof act_name, "act-%d.f32", sh->n_cols);
        if (!written_acts[sh->n_cols]) {
            write_file(dir, act_name, act, sizeof(float) * MAX_BATCH * sh->n_cols);
            compare_quantizers(act, sh->n_cols);
            compare_quantizers(act + 4 * sh->n_cols, sh->n_cols);
            written_acts[sh->n_cols] = 1;
        }

        float *wf = malloc(sizeof(float) * sh->n_cols * sh->n_rows);
        make_row_scaled_weights(wf, sh->n_cols, sh->n_rows, 7 * (s + 1));
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
            run_mul_mat(backend, repack_buft, sh->type, weight, sh->n_cols, sh->n_rows, act, n_batch, 1, out);
            run_mul_mat(backend, repack_buft, sh->type, weight, sh->n_cols, sh->n_rows, act, n_batch, 3, out_threads);
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
