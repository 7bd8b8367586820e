"""Training new biLMs from raw text, one module per job: the text (corpus, vocab), the biLM kinds
(kinds.py: lstm_lm, transformer_lm, each with its batches, loss and export), the settings (config),
the run directory (checkpoint), the model a run starts from (models), the loop and held-out
evaluation (trainer), and export."""
