# Reproduce the default English biLM shipped in spacy_elmo/models/default (see its MODEL_CARD.md):
# stage 1 trains it from scratch, stage 2 continues it on the same text with the web text repeated, stage 3
# (one GPU) adds tweets and SST text. DATA: the corpora, as `python -m spacy project assets` (network) or
# `python -m spacy project run data` (from a local copy, --vars.local_data) put them in assets/.
PYTHON ?= python
DATA ?= assets
RUN ?= runs/default
MINUTES ?= 80
CONTINUED ?= runs/v2
CONTINUED_MINUTES ?= 114
NPROC ?= 2
MODEL_DIR = spacy_elmo/models/default
TORCHRUN = OMP_NUM_THREADS=1 $(PYTHON) -m torch.distributed.run --standalone --nproc_per_node $(NPROC) -m spacy_elmo
TRAINING = --batch-size 64 --unroll-steps 20 --n-negative-samples 4096 --optimizer adam --learning-rate 0.002 \
	--checkpoint-minutes 5 --log-every 20 --threads 1

.PHONY: default-model default-corpus default-train default-export continued-corpus continued-train eval continued-export \
	stage3-corpus stage3-train

default-model: default-corpus default-train default-export continued-corpus continued-train eval continued-export

default-corpus:
	$(PYTHON) scripts/prepare_default_corpus.py $(DATA) $(RUN) --n-process 2 --n-shards 40
	$(PYTHON) -m spacy_elmo vocab $(RUN)/train -o $(RUN)/vocab.txt --max-size 40000

default-train:
	$(TORCHRUN) pretrain $(RUN)/train --vocab $(RUN)/vocab.txt -o $(RUN)/model --lstm-dim 512 --projection-dim 128 \
		--n-layers 2 --filters 1:32,2:32,3:64,4:128,5:256 --char-dim 16 --n-highway 1 $(TRAINING) \
		--max-minutes $(MINUTES) --seed 0

default-export:
	$(PYTHON) -m spacy_elmo export $(RUN)/model $(RUN)/export

continued-corpus:
	$(PYTHON) scripts/prepare_default_corpus.py $(DATA) $(CONTINUED) --n-process 1 --n-shards 40 --in-domain-repeat 4

# The export has no softmax: the first 300 steps train a fresh one while the biLM is held still.
continued-train:
	$(TORCHRUN) pretrain $(CONTINUED)/train --vocab $(RUN)/vocab.txt -o $(CONTINUED)/model --init-from $(RUN)/export \
		--softmax-warmup-steps 300 $(TRAINING) --max-minutes $(CONTINUED_MINUTES) --seed 1

# A Christmas Carol is held out but its text is also in three training files, so it is scored on its own.
CLEAN_BOOKS = $(addprefix $(RUN)/heldout-books/,doyle__beyond-the-city.txt shelley__mathilda.txt burroughs__the-land-that-time-forgot.txt)
CAROL = $(RUN)/heldout-books/dickens__a-christmas-carol-in-prose-being-a-ghost-story-of-christmas.txt

# EVAL=$(RUN) scores stage 1.
EVAL ?= $(CONTINUED)
eval:
	$(PYTHON) -m spacy_elmo evaluate $(EVAL)/model $(CLEAN_BOOKS) --threads 2 > $(EVAL)/eval-heldout-books.json
	$(PYTHON) -m spacy_elmo evaluate $(EVAL)/model $(CAROL) --threads 2 > $(EVAL)/eval-christmas-carol.json
	$(PYTHON) -m spacy_elmo evaluate $(EVAL)/model $(RUN)/ewt-dev --threads 2 > $(EVAL)/eval-ewt-dev.json

continued-export:
	$(PYTHON) -m spacy_elmo export $(CONTINUED)/model $(CONTINUED)/export
	cp $(CONTINUED)/export/options.json $(CONTINUED)/export/weights.hdf5 $(CONTINUED)/export/vocab.txt \
		$(CONTINUED)/model/loss.png $(MODEL_DIR)/

# Stage 3 (one GPU, about 10 minutes): tweets and SST train text added; see benchmarks/bundled_v3/README.md.
STAGE3 ?= runs/v3
stage3-corpus:
	$(PYTHON) scripts/prepare_default_corpus.py $(DATA) $(STAGE3) --n-process 2 --n-shards 40 --in-domain-repeat 4 \
		--sst --tweets-repeat 4 --heldout-tweets 2000

stage3-train:
	$(PYTHON) scripts/train_stage3.py $(STAGE3) $(STAGE3)-gpu1/out --run $(STAGE3)-gpu1/model \
		--minutes 5.5 --warmup-steps 600 --batch-size 256
	$(PYTHON) scripts/train_stage3.py $(STAGE3) $(STAGE3)-gpu2/out --run $(STAGE3)-gpu2/model \
		--init-from $(STAGE3)-gpu1/export --minutes 3.5 --warmup-steps 0 --batch-size 256
	cp $(STAGE3)-gpu2/export/options.json $(STAGE3)-gpu2/export/weights.hdf5 $(MODEL_DIR)/
