# Reproduce the default English biLM shipped in spacy_elmo/models/default (see its MODEL_CARD.md).
PYTHON ?= python
DATA ?= ../shared/data
RUN ?= runs/default
MINUTES ?= 80
NPROC ?= 2
MODEL_DIR = spacy_elmo/models/default

.PHONY: default-model default-corpus default-train default-eval default-export

default-model: default-corpus default-train default-eval default-export

default-corpus:
	$(PYTHON) scripts/prepare_default_corpus.py $(DATA) $(RUN) --n-process 2 --n-shards 40
	$(PYTHON) -m spacy_elmo vocab $(RUN)/train -o $(RUN)/vocab.txt --max-size 40000

default-train:
	$(PYTHON) -m torch.distributed.run --standalone --nproc_per_node $(NPROC) -m spacy_elmo pretrain $(RUN)/train \
		--vocab $(RUN)/vocab.txt -o $(RUN)/model --lstm-dim 512 --projection-dim 128 --n-layers 2 \
		--filters 1:32,2:32,3:64,4:128,5:256 --char-dim 16 --n-highway 1 --batch-size 64 --unroll-steps 20 \
		--n-negative-samples 4096 --optimizer adam --learning-rate 0.002 --max-minutes $(MINUTES) \
		--checkpoint-minutes 5 --log-every 20 --threads 1 --seed 0

# A Christmas Carol is held out but its text is also in three training files, so it is scored on its own.
CLEAN_BOOKS = $(addprefix $(RUN)/heldout-books/,doyle__beyond-the-city.txt shelley__mathilda.txt burroughs__the-land-that-time-forgot.txt)
CAROL = $(RUN)/heldout-books/dickens__a-christmas-carol-in-prose-being-a-ghost-story-of-christmas.txt

default-eval:
	$(PYTHON) -m spacy_elmo evaluate $(RUN)/model $(CLEAN_BOOKS) --threads 2 > $(RUN)/eval-heldout-books.json
	$(PYTHON) -m spacy_elmo evaluate $(RUN)/model $(CAROL) --threads 2 > $(RUN)/eval-christmas-carol.json
	$(PYTHON) -m spacy_elmo evaluate $(RUN)/model $(RUN)/ewt-dev --threads 2 > $(RUN)/eval-ewt-dev.json

default-export:
	$(PYTHON) -m spacy_elmo export $(RUN)/model $(MODEL_DIR)
