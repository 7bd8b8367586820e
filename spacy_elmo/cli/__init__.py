"""`python -m spacy_elmo …` and `spacy elmo …`."""
