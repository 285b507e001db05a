//! llama.cpp-compatible importance matrices: collect, save, load, merge, mix and compare.
