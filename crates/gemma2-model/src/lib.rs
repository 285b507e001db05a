//! Gemma 2 and Gemma 3 (text) forward pass on the CPU, matching llama.cpp.
