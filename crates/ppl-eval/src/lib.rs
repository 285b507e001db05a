//! Perplexity, KL divergence and paired comparisons, as llama-perplexity computes them.
