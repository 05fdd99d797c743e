# The README's two commands:  make demo  (all notebooks on the sample data)
#                             make test  (unit tests + nbval over the notebooks)
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
# The `export` extra lives in a venv of its own: installed beside the course's packages it changed
# what a fresh resolve picked for them (the notebooks then failed to import Keras' backend).
EXPORT_VENV  := .venv-export
EXPORT_STAMP := $(EXPORT_VENV)/.installed
# Artifacts handed from notebook to notebook (sample data, masks, trained runs).
export LIVECELL_KIT_WORKDIR ?= $(CURDIR)/build/work
# TensorFlow's C++ logs below FATAL off: CPU-specific notes ("oneDNN supports DT_UINT8 only on
# platforms with AVX-512") would land in the notebooks as red stderr.
export TF_CPP_MIN_LOG_LEVEL ?= 3
# No tqdm bars in executed notebooks: a stored bar is the widget's first state, a frozen "0%".
# (tqdm >= 4.66 reads TQDM_* variables; a live JupyterLab or terminal session keeps its bars.)
export TQDM_DISABLE ?= 1
# Executed notebooks (nbval, demo, stored outputs) show the viewer's static figure, which renders
# on GitHub; a live JupyterLab session gets the interactive widgets.
export LIVECELL_KIT_STATIC_PLOTS ?= 1
NOTEBOOKS := $(sort $(wildcard notebooks/[0-9][0-9]_*.ipynb))

.PHONY: install demo test unit unit-tests notebook-tests nbval export-test sync outputs student bench browser-test reproduce-seed clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e ".[dev]"
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/livecell-kit sample --out $(LIVECELL_KIT_WORKDIR)/sample-seed0 --seed 0  # the sample course.data_root() uses
	mkdir -p build/notebooks
	for nb in $(NOTEBOOKS); do \
	  $(BIN)/jupyter nbconvert --to notebook --execute --ExecutePreprocessor.timeout=1200 \
	    --output-dir build/notebooks "$$nb" || exit 1; \
	done
	@echo "Executed notebooks are in build/notebooks/"

# Three jobs side by side (on 2 cores each of them alone leaves a core partly idle): the notebooks
# (nbval, then the tests marked after_nbval, which run the student copies in the work folder nbval
# filled: sample, masks, the quick run), the other unit tests (in a work folder of their own), and
# the export test (its own venv: a download and ~1 min of CPU).
# Notebook 06 loads the cells model the kit ships (the same preset trained on the same sample)
# instead of training it for ~6 min; `make demo` and `make outputs` train it.
test: export LIVECELL_KIT_USE_PRETRAINED := 1
test: $(STAMP)
	$(MAKE) -j3 --output-sync=target notebook-tests unit-tests export-test

notebook-tests: nbval
	$(BIN)/python -m pytest tests -m after_nbval -p no:cacheprovider --durations=5

unit-tests: export LIVECELL_KIT_WORKDIR := $(CURDIR)/build/unit-work
unit-tests: $(STAMP)
	$(BIN)/python -m pytest tests -m "not after_nbval" --durations=12

$(EXPORT_STAMP): pyproject.toml
	test -x $(EXPORT_VENV)/bin/python || $(PYTHON) -m venv $(EXPORT_VENV)
	$(EXPORT_VENV)/bin/python -m pip install -q --upgrade pip
	$(EXPORT_VENV)/bin/python -m pip install -q -e ".[export]" pytest pyyaml  # pyyaml: the test reads rdf.yaml
	touch $(EXPORT_STAMP)

# `livecell-kit export` checked by bioimageio.core's test_model, every weight format (tests/test_export.py).
export-test: $(EXPORT_STAMP)
	LIVECELL_KIT_REQUIRE_EXPORT=1 $(EXPORT_VENV)/bin/python -m pytest tests/test_export.py -p no:cacheprovider

unit: $(STAMP)
	$(BIN)/python -m pytest tests

nbval: $(STAMP)
	$(BIN)/python -m pytest --nbval-lax notebooks --nbval-sanitize-with tests/nbval_sanitize.cfg --nbval-cell-timeout=1200 -p no:cacheprovider

sync: $(STAMP)
	$(BIN)/jupytext --sync notebooks/[0-9][0-9]_*.py

# Re-execute the notebooks in place so their stored outputs (what nbval compares) are fresh.
# Always from an empty work folder of its own: 04 then trains, so the stored notebooks show the
# whole story (training log, snapshots), never "run already finished" from an earlier demo.
OUTPUTS_WORKDIR := $(CURDIR)/build/outputs-work
outputs: export LIVECELL_KIT_WORKDIR := $(OUTPUTS_WORKDIR)
outputs: export TF_CPP_MIN_LOG_LEVEL := 3
outputs: export TQDM_DISABLE := 1
outputs: $(STAMP)
	rm -rf "$(OUTPUTS_WORKDIR)"
	$(BIN)/jupytext --sync $(NOTEBOOKS)  # pick up edits made on the .py twins first
	# Drop saved widget state: nbconvert keeps an earlier run's when this run creates no widgets.
	$(BIN)/python -c 'import sys, nbformat; [nbformat.write(nb, p) for p in sys.argv[1:] 	  for nb in [nbformat.read(p, as_version=4)] if nb.metadata.pop("widgets", None) is not None]' $(NOTEBOOKS)
	for nb in $(NOTEBOOKS); do \
	  $(BIN)/jupyter nbconvert --to notebook --execute --inplace --ExecutePreprocessor.timeout=1200 "$$nb" || exit 1; \
	done
	$(BIN)/jupytext --sync $(NOTEBOOKS)

student: $(STAMP)
	$(BIN)/livecell-kit student --out build/student

bench: $(STAMP)
	$(BIN)/python bench/masks.py
	$(BIN)/python bench/train_throughput.py
	$(BIN)/python bench/notebooks.py
	$(BIN)/python bench/real_frames.py  # real LIVECell frames when ../shared/livecell-real-dev exists
	$(BIN)/python bench/livecell_scale.py --scale 0.05  # LIVECell-sized copy at 5 %; --scale 1: GBs of disk and RAM

# The seed project on real LIVECell, one command (needs internet; a GPU for the 50 epochs):
# download -> train --preset seed -> evaluate on the first 512 test images, printing the seed's
# reported 92.19 % / 0.2043 beside this run's figures. The commands are train.reproduce_command's
# (the text notebook 04 prints), run by sh -e with the venv's livecell-kit first on PATH.
LIVECELL ?= $(HOME)/livecell
SEED_RUN ?= runs/seed
reproduce-seed: $(STAMP)
	commands="$$($(BIN)/python -c "from livecell_kit import train; \
	  print(train.reproduce_command('seed', data_dir='$(LIVECELL)', out_dir='$(SEED_RUN)'))")" \
	  && PATH="$(CURDIR)/$(BIN):$$PATH" sh -exc "$$commands"

# Notebook 05 in JupyterLab in headless Chromium: Run All, then drive the viewer (tests/test_browser.py).
# Needs Debian's chromium (sudo apt-get install -y chromium); installs Playwright into .venv only
# (no Playwright browser download). Screenshots: build/browser-test/.
browser-test: $(STAMP)
	@command -v chromium >/dev/null || { echo "browser-test needs Chromium: sudo apt-get install -y chromium"; exit 1; }
	$(BIN)/python -m pip install -q playwright
	env -u LIVECELL_KIT_STATIC_PLOTS $(BIN)/python -m pytest tests/test_browser.py -v -rs -p no:cacheprovider

clean:
	rm -rf build
