"""Tests of the training package (spacy_elmo/training) and its commands."""
