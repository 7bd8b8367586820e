"""The torch biLM and its file formats; nothing here imports spaCy."""
