/*
 * Helpers shared by the oracle programs in this folder: a seeded random generator whose
 * sequence does not depend on the C library, file output that stops on the first error, and
 * the Gemma-like activations and weights of repack.c and tiled_misc.c.
 *
 * Each program defines ORACLE_NAME (its name in error messages) before including this file.
 * The functions are static inline, so a program compiles only the ones it calls.
 */
#ifndef ORACLE_COMMON_H
#define ORACLE_COMMON_H

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#ifndef ORACLE_NAME
#error "define ORACLE_NAME before including oracle_common.h"
#endif

// xorshift64*, one global stream.
static uint64_t rng_state;

static inline void rng_seed(uint64_t seed) { rng_state = seed * 0x9E3779B97F4A7C15ull + 1; }

// Returns a uniform value in (0, 1).
static inline double rng_uniform(void) {
    rng_state ^= rng_state >> 12;
    rng_state ^= rng_state << 25;
    rng_state ^= rng_state >> 27;
    uint64_t bits = rng_state * 0x2545F4914F6CDD1Dull;
    return ((bits >> 11) + 0.5) / 9007199254740992.0;
}

// Box-Muller normal sample.
static inline double rng_normal(void) {
    double u = rng_uniform(), v = rng_uniform();
    return sqrt(-2.0 * log(u)) * cos(6.283185307179586 * v);
}

static inline void die(const char *message) {
    fprintf(stderr, ORACLE_NAME ": %s\n", message);
    exit(1);
}

// Writes `size` bytes to DIR/NAME, or stops the program naming the path.
static inline void write_file(const char *dir, const char *name, const void *data, size_t size) {
    char path[1024];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "wb");
    if (!f || fwrite(data, 1, size, f) != size || fclose(f) != 0) {
        die(path);
    }
}

/*
 * Fills `n_batch` activation rows that resemble Gemma's normed hidden states: unit-scale
 * normal values, a few channels that are 8x larger in every row, and rare outliers of 20 to
 * 60. With 256 or more columns, rows 0 and 5 start their first 256-block with -M and later
 * contain +M, where M is the block's largest magnitude: a tie where a Q8_K quantizer may
 * pick either sign for the scale.
 */
static inline void make_gemma_activations(float *x, int n_cols, int n_batch, uint64_t seed) {
    rng_seed(seed);
    for (int b = 0; b < n_batch; b++) {
        for (int c = 0; c < n_cols; c++) {
            float v = (float)rng_normal();
            if (c % 61 == 7) {
                v *= 8.0f;
            }
            if (rng_uniform() < 0.004) {
                v = (rng_uniform() < 0.5 ? -1.0f : 1.0f) * (float)(20.0 + 40.0 * rng_uniform());
            }
            x[b * n_cols + c] = v;
        }
    }

    if (n_cols >= 256) {
        const int tie_rows[] = {0, 5};
        for (int i = 0; i < 2; i++) {
            float *row = x + tie_rows[i] * n_cols;
            float amax = 0.0f;
            for (int c = 0; c < 256; c++) {
                amax = fmaxf(amax, fabsf(row[c]));
            }
            row[3] = -amax;
            row[200] = amax;
        }
    }
}

// Fills weights with a normal spread and a per-row scale, as trained matrices have.
static inline void make_row_scaled_weights(float *w, int n_cols, int n_rows, uint64_t seed) {
    rng_seed(seed);
    for (int r = 0; r < n_rows; r++) {
        float row_scale = 0.01f + 0.04f * (float)rng_uniform();
        for (int c = 0; c < n_cols; c++) {
            w[r * n_cols + c] = row_scale * (float)rng_normal();
        }
    }
}

#endif
