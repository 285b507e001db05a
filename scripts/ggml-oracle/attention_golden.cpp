// Writes small inputs and ggml's outputs for the flash-attention and NeoX RoPE ops, as
// golden files for the unit tests in crates/gemma2-model/src/forward/{attention,rope}.rs.
//
// Build and run from the repository root (L is a llama.cpp tree with a CMake build in
// L/build, for example b11312 built with GGML_NATIVE=ON on an AVX-512 machine):
//
//   g++ -O2 -std=c++17 scripts/ggml-oracle/attention_golden.cpp -I$L/ggml/include
//       -L$L/build/bin -lggml -lggml-base -lggml-cpu -Wl,-rpath,$L/build/bin
//       -o /tmp/attention_golden
//   /tmp/attention_golden crates/gemma2-model/tests/data/ggml-golden
//
// (the build is one command; the line breaks are only for reading). Every file is raw
// little-endian f32; the shapes are the constants below.

#include "ggml.h"
#include "ggml-cpu.h"

#include <cmath>
#include <cstdint>
#include <cstdio>
#include <string>
#include <vector>

namespace {

constexpr int HEAD_DIM = 32;
constexpr int N_HEAD = 2;
constexpr int N_HEAD_KV = 1;
// More than one 64-key tile and more than ggml's 64-row threshold for the tiled kernel.
constexpr int N_TOKENS = 80;
constexpr int WINDOW = 40;
constexpr float SOFTCAP = 50.0f;
constexpr float ROPE_BASE = 10000.0f;

// Returns deterministic values in [-scale, scale) from a 32-bit LCG.
std::vector<float> pseudo_random(size_t n, uint32_t seed, float scale) {
    std::vector<float> values(n);
    uint32_t state = seed;
    for (float & value : values) {
        state = state * 1664525u + 1013904223u;
        value = (float(state >> 8) / float(1u << 24) * 2.0f - 1.0f) * scale;
    }
    return values;
}

bool write_f32(const std::string & path, const float * data, size_t n) {
    FILE * f = std::fopen(path.c_str(), "wb");
    if (f == nullptr) {
        std::fprintf(stderr, "error: failed to open %s\n", path.c_str());
        return false;
    }
    const bool ok = std::fwrite(data, sizeof(float), n, f) == n;
    return std::fclose(f) == 0 && ok;
}

// Runs ggml_flash_attn_ext on the given f32 Q and f16-rounded K, V with a causal mask
// (and a sliding window when window > 0); returns [N_TOKENS][N_HEAD][HEAD_DIM].
std::vector<float> flash_attention(const std::vector<float> & q, const std::vector<float> & k,
                                   const std::vector<float> & v, int window, float softcap) {
    ggml_init_params params = { 64u << 20, nullptr, false };
    ggml_context * ctx = ggml_init(params);

    ggml_tensor * tq = ggml_new_tensor_3d(ctx, GGML_TYPE_F32, HEAD_DIM, N_TOKENS, N_HEAD);
    ggml_tensor * tk = ggml_new_tensor_3d(ctx, GGML_TYPE_F16, HEAD_DIM, N_TOKENS, N_HEAD_KV);
    ggml_tensor * tv = ggml_new_tensor_3d(ctx, GGML_TYPE_F16, HEAD_DIM, N_TOKENS, N_HEAD_KV);
    ggml_tensor * mask = ggml_new_tensor_2d(ctx, GGML_TYPE_F16, N_TOKENS, N_TOKENS);

    // Our layout is [token][head][dim], while ggml's Q is [head][token][dim].
    for (int t = 0; t < N_TOKENS; ++t) {
        for (int h = 0; h < N_HEAD; ++h) {
            for (int d = 0; d < HEAD_DIM; ++d) {
                ((float *) tq->data)[(h * N_TOKENS + t) * HEAD_DIM + d] = q[(t * N_HEAD + h) * HEAD_DIM + d];
            }
        }
        for (int d = 0; d < HEAD_DIM; ++d) {
            ((ggml_fp16_t *) tk->data)[t * HEAD_DIM + d] = ggml_fp32_to_fp16(k[t * HEAD_DIM + d]);
            ((ggml_fp16_t *) tv->data)[t * HEAD_DIM + d] = ggml_fp32_to_fp16(v[t * HEAD_DIM + d]);
        }
        for (int j = 0; j < N_TOKENS; ++j) {
            const bool hidden = j > t || (window > 0 && t - j >= window);
            ((ggml_fp16_t *) mask->data)[t * N_TOKENS + j] = ggml_fp32_to_fp16(hidden ? -INFINITY : 0.0f);
        }
    }

    ggml_tensor * out = ggml_flash_attn_ext(ctx, tq, tk, tv, mask, 1.0f, 0.0f, softcap);
    ggml_cgraph * graph = ggml_new_graph(ctx);
    ggml_build_forward_expand(graph, out);
    ggml_graph_compute_with_ctx(ctx, graph, 1);

    // The result is [token][head][dim] already.
    std::vector<float> result((const float *) out->data, (const float *) out->data + N_TOKENS * N_HEAD * HEAD_DIM);
    ggml_free(ctx);
    return result;
}

// Runs NeoX RoPE over [N_TOKENS][N_HEAD][HEAD_DIM] at positions 0..N_TOKENS.
std::vector<float> rope_neox(const std::vector<float> & x) {
    ggml_init_params params = { 16u << 20, nullptr, false };
    ggml_context * ctx = ggml_init(params);

    ggml_tensor * tx = ggml_new_tensor_3d(ctx, GGML_TYPE_F32, HEAD_DIM, N_HEAD, N_TOKENS);
    ggml_tensor * pos = ggml_new_tensor_1d(ctx, GGML_TYPE_I32, N_TOKENS);
    std::copy(x.begin(), x.end(), (float *) tx->data);
    for (int t = 0; t < N_TOKENS; ++t) {
        ((int32_t *) pos->data)[t] = t;
    }

    ggml_tensor * out = ggml_rope_ext(ctx, tx, pos, nullptr, HEAD_DIM, GGML_ROPE_TYPE_NEOX, 0, ROPE_BASE, 1.0f, 0.0f,
                                      1.0f, 0.0f, 0.0f);
    ggml_cgraph * graph = ggml_new_graph(ctx);
    ggml_build_forward_expand(graph, out);
    ggml_graph_compute_with_ctx(ctx, graph, 1);

    std::vector<float> result((const float *) out->data, (const float *) out->data + x.size());
    ggml_free(ctx);
    return result;
}

}  // namespace

int main(int argc, char ** argv) {
    if (argc != 2) {
        std::fprintf(stderr, "usage: %s OUT_DIR\n", argv[0]);
        return 2;
    }
    const std::string dir = argv[1];

    const std::vector<float> q = pseudo_random(size_t(N_TOKENS) * N_HEAD * HEAD_DIM, 1, 0.5f);
    std::vector<float> k = pseudo_random(size_t(N_TOKENS) * N_HEAD_KV * HEAD_DIM, 2, 2.0f);
    std::vector<float> v = pseudo_random(size_t(N_TOKENS) * N_HEAD_KV * HEAD_DIM, 3, 1.0f);
    // Round K and V to f16, as llama.cpp's KV cache stores them.
    for (float & value : k) {
        value = ggml_fp16_to_fp32(ggml_fp32_to_fp16(value));
    }
    for (float & value : v) {
        value = ggml_fp16_to_fp32(ggml_fp32_to_fp16(value));
    }

    const std::vector<float> causal = flash_attention(q, k, v, 0, 0.0f);
    const std::vector<float> windowed = flash_attention(q, k, v, WINDOW, 0.0f);
    // Scores of this Q and K are at most 32 in magnitude (32 dims of 0.5 x 2). Scaling Q by 20
    // moves typical scores near the cap of 50, so that the soft-cap bends them.
    std::vector<float> q_large(q);
    for (float & value : q_large) {
        value *= 20.0f;
    }
    const std::vector<float> capped = flash_attention(q_large, k, v, 0, SOFTCAP);
    const std::vector<float> roped = rope_neox(q);

    const bool ok = write_f32(dir + "/attn_q.f32", q.data(), q.size()) &&
                    write_f32(dir + "/attn_k.f32", k.data(), k.size()) &&
                    write_f32(dir + "/attn_v.f32", v.data(), v.size()) &&
                    write_f32(dir + "/attn_out_causal.f32", causal.data(), causal.size()) &&
                    write_f32(dir + "/attn_out_window40.f32", windowed.data(), windowed.size()) &&
                    write_f32(dir + "/attn_out_softcap50_q20x.f32", capped.data(), capped.size()) &&
                    write_f32(dir + "/rope_neox_out.f32", roped.data(), roped.size());
    if (!ok) {
        return 1;
    }
    std::printf("wrote golden files to %s\n", dir.c_str());
    return 0;
}
