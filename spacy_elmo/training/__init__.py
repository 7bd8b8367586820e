"""Training new biLMs from raw text: data preparation, vocabulary, sampled softmax, the training loop."""
