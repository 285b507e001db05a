// Dumps the f32 input of every weight matrix product, and the logits, of the first
// perplexity chunks as llama.cpp's `llama-perplexity` evaluates them, so that
// `crates/gemma2-model/examples/compare_activations.rs` can find the first tensor where our
// forward pass and llama.cpp's part ways.
//
// Build (from the repository root; L is a llama.cpp source tree with a CMake build in
// L/build, for example b11312):
//
//   L=/path/to/llama.cpp
//   g++ -O2 -std=c++17 scripts/ggml-oracle/dump_matmul_inputs.cpp
//       -I$L/include -I$L/ggml/include -I$L/common
//       -L$L/build/bin -lllama-common -lllama -lggml -lggml-base
//       -Wl,-rpath,$L/build/bin -o /tmp/dump_matmul_inputs
//
// (one command; the line breaks are only for reading).
//
// Run with the arguments of the perplexity run to reproduce, after `--`:
//
//   /tmp/dump_matmul_inputs --dump-dir /work/dumps/q4_k_m [--dump-seqs 1]
//       -- -m model.gguf -f wiki.test.raw -c 512 -t 2
//
// The tool parses those arguments with llama.cpp's own parser and applies the same
// adjustments as `llama-perplexity` (n_parallel = n_batch / n_ctx sequences of one chunk
// each in one decode call, BOS in place of each chunk's first token, logits for the second
// half), so every default (flash attention, KV cache type, n_ubatch) is the one the
// perplexity figures came from. It decodes the first group of chunks only.
//
// Output, for each dumped sequence s (chunk s):
//   DIR/tokens.i32                 n_ctx tokens per dumped sequence, as evaluated (BOS first)
//   DIR/seq<s>/<weight name>.f32   the matmul input, n_ctx rows of ne[0] values in position
//                                  order; only the n_ctx/2 output rows for the LM head and
//                                  for the last layer after its attention, where llama.cpp
//                                  drops the rows without logits
//   DIR/seq<s>/<weight name>.out.f32  the matmul output, rows as for the input (not for the
//                                  LM head, whose output is the logits)
//   DIR/seq<s>/logits.f32          n_ctx/2 rows of n_vocab logits
//   DIR/manifest.tsv               file name stem, rows, cols, in the order of first execution
//
// The row order of a ubatch follows llama.cpp's equal split for a non-unified KV cache: each
// ubatch contains the same number of consecutive positions from every sequence, sequence by
// sequence. A wrong mapping shows up at once as large differences in the first tensor.

#include "arg.h"
#include "common.h"
#include "llama.h"
#include "ggml.h"
#include "ggml-backend.h"

#include <cerrno>
#include <clocale>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <string>
#include <sys/stat.h>
#include <vector>

namespace {

// One dumped matmul input or output: a [n_dump_seq][n_ctx][cols] f32 buffer, indexed by position, and
// which positions have been filled.
struct Dump {
    int64_t cols = 0;
    std::vector<float> data;
    std::vector<bool> seen;  // [n_dump_seq][n_ctx]
};

struct State {
    bool active = false;
    int n_seq = 0;       // sequences in the decode call
    int n_dump_seq = 0;  // sequences written out
    int n_ctx = 0;       // tokens per sequence
    int first = 0;       // first position with logits
    int ubatch = -1;          // index of the ubatch being computed
    int64_t ubatch_tokens = 0;  // positions per sequence in each ubatch
    std::map<std::string, Dump> dumps;
    std::vector<std::string> order;
    std::vector<float> scratch;
    bool failed = false;
};

bool is_dumped_weight(const char * name) {
    return std::strncmp(name, "blk.", 4) == 0 || std::strcmp(name, "output.weight") == 0 ||
           std::strcmp(name, "token_embd.weight") == 0;
}

// Copies the rows of `tensor` (a contiguous 2-D f32 tensor with one row per token of the
// ubatch, or per output token) into the dump named `key`, at their chunk positions.
bool store(State * state, const std::string & key, const ggml_tensor * tensor) {
    const int64_t cols = tensor->ne[0];
    const int64_t n_rows = ggml_nrows(tensor);
    if (tensor->type != GGML_TYPE_F32 || tensor->nb[0] != sizeof(float) ||
        tensor->nb[1] != size_t(cols) * sizeof(float) || n_rows != tensor->ne[1]) {
        std::fprintf(stderr, "error: %s is not a contiguous 2-D f32 tensor\n", key.c_str());
        return false;
    }

    state->scratch.resize(size_t(n_rows * cols));
    ggml_backend_tensor_get(tensor, state->scratch.data(), 0, ggml_nbytes(tensor));

    auto it = state->dumps.find(key);
    if (it == state->dumps.end()) {
        Dump dump;
        dump.cols = cols;
        dump.data.assign(size_t(int64_t(state->n_dump_seq) * state->n_ctx * cols), 0.0f);
        dump.seen.assign(size_t(state->n_dump_seq) * state->n_ctx, false);
        it = state->dumps.emplace(key, std::move(dump)).first;
        state->order.push_back(key);
    }
    Dump & dump = it->second;
    const int64_t per_seq = n_rows / state->n_seq;
    if (dump.cols != cols || n_rows % state->n_seq != 0 || per_seq > state->ubatch_tokens) {
        std::fprintf(stderr, "error: %s: unexpected shape %lld x %lld\n", key.c_str(), (long long) n_rows,
                     (long long) cols);
        return false;
    }

    // Rows after the output selection (the LM head, and the last layer after its attention)
    // are the last positions of the ubatch, since only positions >= n_ctx/2 have logits.
    const int64_t first_pos = int64_t(state->ubatch + 1) * state->ubatch_tokens - per_seq;
    for (int s = 0; s < state->n_dump_seq; ++s) {
        for (int64_t r = 0; r < per_seq; ++r) {
            const int64_t pos = first_pos + r;
            if (pos < 0 || pos >= state->n_ctx) {
                std::fprintf(stderr, "error: %s: position %lld outside the chunk\n", key.c_str(), (long long) pos);
                return false;
            }
            const float * src = state->scratch.data() + size_t((s * per_seq + r) * cols);
            float * dst = dump.data.data() + size_t((int64_t(s) * state->n_ctx + pos) * cols);
            std::memcpy(dst, src, size_t(cols) * sizeof(float));
            dump.seen[size_t(s) * state->n_ctx + pos] = true;
        }
    }
    return true;
}

// Receives every graph node the scheduler offers; copies the input (src1) and the output of
// the matmuls we want. The LM head's output is the logits, written separately.
bool on_eval(struct ggml_tensor * t, bool ask, void * user_data) {
    auto * state = static_cast<State *>(user_data);
    const ggml_tensor * src0 = t->src[0];
    const ggml_tensor * src1 = t->src[1];

    if (ask) {
        return state->active && t->op == GGML_OP_MUL_MAT && src0 != nullptr && is_dumped_weight(src0->name) &&
               src1 != nullptr && src1->type == GGML_TYPE_F32;
    }
    if (!state->active || t->op != GGML_OP_MUL_MAT) {
        return true;
    }

    const std::string name = src0->name;

    // The first product of every ubatch reads the input of blk.0.attn_q, one row per token.
    if (name == "blk.0.attn_q.weight") {
        state->ubatch += 1;
        state->ubatch_tokens = src1->ne[1] / state->n_seq;
    }

    const bool head = name == "output.weight" || name == "token_embd.weight";
    if (!store(state, name, src1) || (!head && !store(state, name + ".out", t))) {
        state->failed = true;
        return false;
    }
    return true;
}

// Returns the first position written for sequence `s` of `dump`: 0 when every position was
// seen, n_ctx/2 when exactly the output positions were, and -1 otherwise.
int64_t first_dumped_position(const Dump & dump, int s, int n_ctx, int first) {
    int64_t lowest = -1;
    for (int64_t pos = 0; pos < n_ctx; ++pos) {
        const bool seen = dump.seen[size_t(s) * n_ctx + pos];
        if (seen && lowest < 0) {
            lowest = pos;
        }
        if (!seen && lowest >= 0) {
            return -1;
        }
    }
    return lowest == 0 || lowest == first ? lowest : -1;
}

bool make_dir(const std::string & path) {
    if (mkdir(path.c_str(), 0755) == 0 || errno == EEXIST) {
        return true;
    }
    std::fprintf(stderr, "error: failed to create %s: %s\n", path.c_str(), std::strerror(errno));
    return false;
}

bool write_file(const std::string & path, const void * data, size_t n_bytes) {
    FILE * f = std::fopen(path.c_str(), "wb");
    if (f == nullptr) {
        std::fprintf(stderr, "error: failed to open %s: %s\n", path.c_str(), std::strerror(errno));
        return false;
    }
    const bool ok = std::fwrite(data, 1, n_bytes, f) == n_bytes;
    return std::fclose(f) == 0 && ok;
}

int usage(const char * argv0) {
    std::fprintf(stderr,
                 "usage: %s --dump-dir DIR [--dump-seqs N] -- <llama-perplexity arguments>\n"
                 "  --dump-dir DIR   folder for the dumps (created; keep it outside the repository)\n"
                 "  --dump-seqs N    chunks to write out, from the first (default 1)\n",
                 argv0);
    return 2;
}

}  // namespace

int main(int argc, char ** argv) {
    std::setlocale(LC_NUMERIC, "C");

    std::string dump_dir;
    int dump_seqs = 1;
    int i = 1;
    for (; i < argc; ++i) {
        const std::string arg = argv[i];
        if (arg == "--") {
            ++i;
            break;
        }
        if (arg == "--dump-dir" && i + 1 < argc) {
            dump_dir = argv[++i];
        } else if (arg == "--dump-seqs" && i + 1 < argc) {
            dump_seqs = std::atoi(argv[++i]);
        } else {
            return usage(argv[0]);
        }
    }
    if (dump_dir.empty() || dump_seqs < 1) {
        return usage(argv[0]);
    }

    std::vector<char *> llama_argv = { argv[0] };
    for (; i < argc; ++i) {
        llama_argv.push_back(argv[i]);
    }

    // The same defaults and adjustments as llama-perplexity's perplexity mode.
    common_params params;
    params.n_ctx = 512;
    params.escape = false;
    common_init();
    if (!common_params_parse(int(llama_argv.size()), llama_argv.data(), params, LLAMA_EXAMPLE_PERPLEXITY)) {
        return 1;
    }
    const int n_ctx = params.n_ctx;
    params.n_parallel = std::max(1, params.n_batch / n_ctx);
    params.n_ctx = params.n_parallel * n_ctx;
    params.n_batch = std::min(params.n_batch, params.n_ctx);
    if (params.n_batch < n_ctx) {
        std::fprintf(stderr, "error: n_batch %d is smaller than n_ctx %d; this tool decodes a chunk at once\n",
                     params.n_batch, n_ctx);
        return 1;
    }

    State state;
    state.n_ctx = n_ctx;
    state.first = n_ctx / 2;
    params.cb_eval = on_eval;
    params.cb_eval_user_data = &state;

    llama_backend_init();
    llama_numa_init(params.numa);
    auto llama_init = common_init_from_params(params);
    llama_model * model = llama_init->model();
    llama_context * ctx = llama_init->context();
    if (model == nullptr || ctx == nullptr) {
        std::fprintf(stderr, "error: failed to load the model or create the context\n");
        return 1;
    }
    std::fprintf(stderr, "%s\n", common_params_get_system_info(params).c_str());

    const llama_vocab * vocab = llama_model_get_vocab(model);
    const int n_vocab = llama_vocab_n_tokens(vocab);
    const bool add_bos = llama_vocab_get_add_bos(vocab);
    std::vector<llama_token> tokens = common_tokenize(ctx, params.prompt, true);

    const int n_chunk = int(tokens.size()) / n_ctx;
    const int n_seq = std::min(params.n_parallel, n_chunk);
    if (n_seq < 1) {
        std::fprintf(stderr, "error: the text has %zu tokens, fewer than n_ctx %d\n", tokens.size(), n_ctx);
        return 1;
    }
    state.n_seq = n_seq;
    state.n_dump_seq = std::min(dump_seqs, n_seq);

    // One decode call with n_seq chunks, as llama-perplexity's first iteration.
    std::vector<llama_token> evaluated;
    common_batch batch(ctx);
    batch.clear();
    for (int seq = 0; seq < n_seq; ++seq) {
        for (int k = 0; k < n_ctx; ++k) {
            llama_token token = tokens[size_t(seq) * n_ctx + k];
            if (add_bos && k == 0) {
                token = llama_vocab_bos(vocab);
            }
            batch.add(token, k, seq, k >= state.first);
            if (seq < state.n_dump_seq) {
                evaluated.push_back(token);
            }
        }
    }

    llama_memory_clear(llama_get_memory(ctx), true);
    state.active = true;
    if (llama_process(ctx, LLAMA_PROCESS_TYPE_DECODE, batch.get()) != 0 || state.failed) {
        std::fprintf(stderr, "error: decode failed\n");
        return 1;
    }
    state.active = false;
    const float * logits = llama_get_logits(ctx);

    if (!make_dir(dump_dir)) {
        return 1;
    }
    if (!write_file(dump_dir + "/tokens.i32", evaluated.data(), evaluated.size() * sizeof(llama_token))) {
        return 1;
    }

    std::string manifest;
    for (const std::string & name : state.order) {
        const Dump & dump = state.dumps.at(name);
        const int64_t first_pos = first_dumped_position(dump, 0, n_ctx, state.first);
        if (first_pos < 0) {
            std::fprintf(stderr, "error: %s: positions of the chunk are missing\n", name.c_str());
            return 1;
        }
        manifest += name + "\t" + std::to_string(n_ctx - first_pos) + "\t" + std::to_string(dump.cols) + "\n";
    }
    manifest += "logits\t" + std::to_string(n_ctx - state.first) + "\t" + std::to_string(n_vocab) + "\n";
    if (!write_file(dump_dir + "/manifest.tsv", manifest.data(), manifest.size())) {
        return 1;
    }

    const size_t n_out = size_t(n_ctx - state.first);
    for (int s = 0; s < state.n_dump_seq; ++s) {
        const std::string seq_dir = dump_dir + "/seq" + std::to_string(s);
        if (!make_dir(seq_dir)) {
            return 1;
        }
        for (const std::string & name : state.order) {
            const Dump & dump = state.dumps.at(name);
            const int64_t first_pos = first_dumped_position(dump, s, n_ctx, state.first);
            if (first_pos < 0) {
                std::fprintf(stderr, "error: %s: positions of chunk %d are missing\n", name.c_str(), s);
                return 1;
            }
            const size_t row_start = (size_t(s) * n_ctx + size_t(first_pos)) * size_t(dump.cols);
            const size_t n = size_t(n_ctx - first_pos) * size_t(dump.cols);
            if (!write_file(seq_dir + "/" + name + ".f32", dump.data.data() + row_start, n * sizeof(float))) {
                return 1;
            }
        }
        const float * seq_logits = logits + size_t(s) * n_out * n_vocab;
        if (!write_file(seq_dir + "/logits.f32", seq_logits, n_out * n_vocab * sizeof(float))) {
            return 1;
        }
    }

    std::fprintf(stderr, "wrote %zu tensors and the logits of %d chunk(s) to %s\n", state.order.size(),
                 state.n_dump_seq, dump_dir.c_str());
    llama_backend_free();
    return 0;
}
