# NeuroSeg-3D: `make demo` and `make test` do all the set-up on a fresh machine.
SHELL := /bin/bash
.DEFAULT_GOAL := help
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
# CPU wheel by default; GPU users: `make install TORCH=torch` (or use environment.yml).
TORCH  ?= torch==2.13.0
STAMP  := $(VENV)/.neuroseg-installed
TEST_STAMP := $(VENV)/.neuroseg-test-deps
KERNEL := neuroseg
SUDO   := $(shell [ "$$(id -u)" -eq 0 ] || echo sudo)
DEMO_DATA := data/demo

.PHONY: help install dist demo demo-real test test-all check-reports docs check-wheel real-data sync readme lab bench gpu-check clean-demo

help:  ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-14s %s\n", $$1, $$2}'

$(STAMP): settings.ini setup.py
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@$(BIN)/python -c "import torch" 2>/dev/null || $(BIN)/python -m pip install -q "$(TORCH)"
	$(BIN)/python -m pip install -q -e ".[dev]"
	$(BIN)/python -m ipykernel install --sys-prefix --name $(KERNEL) --display-name "Python (neuroseg)" >/dev/null
	@touch $@

# Test-only dependencies, installed by `make test` alone: the official BraTS evaluator, the reference the lesion-wise
# tests compare with. Its panoptica pins numpy<2.3, pandas<3 and plotly<6, which would downgrade the stack neuroseg runs
# on; it works with the newer ones, so its other requirements go in first and it goes in last without its pins (pip
# then has nothing left to resolve, and prints no dependency-conflict ERROR). neuroseg never imports it.
$(TEST_STAMP): $(STAMP)
	$(BIN)/python -m pip install -q "connected-components-3d>=3.12.3,<4" "rich>=13.6,<14" ruamel.yaml typer pandas
	$(BIN)/python -m pip install -q --no-deps "brats-evaluation==0.0.10" "panoptica==2.1.7"
	@touch $@

install: $(STAMP)  ## create .venv: torch first, then neuroseg-3d[dev] (editable) and the Jupyter kernel

dist: $(STAMP)  ## build the sdist and the wheel into dist/ (pip install dist/neuroseg_3d-*.whl)
	$(BIN)/python -m build --sdist --wheel --outdir dist .

test: $(TEST_STAMP)  ## nbdev hygiene + every notebook's tests + report templates + the wheel in a fresh venv; ends with `N passed, M failed`
	$(BIN)/python tools/run_tests.py

test-all: $(TEST_STAMP)  ## the tests, including the cells flagged slow
	$(BIN)/python tools/run_tests.py --flags slow

check-reports: $(TEST_STAMP)  ## render the reports on a tiny run and build the docs, open every page in headless Chromium (installs Debian's chromium)
	@command -v chromium >/dev/null || { $(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq chromium chromium-driver; }
	$(BIN)/python tools/check_reports.py --browser yes --out reports/check
	$(BIN)/python tools/docs.py --browser yes

docs: $(STAMP)  ## the notebooks executed into an offline HTML site with their code and figures: _docs/index.html
	$(BIN)/python tools/docs.py

check-wheel: $(TEST_STAMP)  ## build sdist + wheel, install them in a fresh venv outside the checkout, run every console script (make test does this too)
	$(BIN)/python tools/check_wheel.py

real-data: $(STAMP)  ## download the real MRI test cases (tools/real_data.json: URL, size, sha256) into ~/.cache/neuroseg/real-data
	$(BIN)/python tools/real_data.py --fetch

sync: $(STAMP)  ## nbdev_clean + nbdev_export + the commands' parsers (neuroseg/cli.json) + README from nbs/index.ipynb (run before committing)
	$(BIN)/nbdev_clean && $(BIN)/nbdev_export && $(BIN)/python -c "from neuroseg.cli import write_command_specs; write_command_specs()" && $(BIN)/python tools/readme.py

readme: $(STAMP)  ## regenerate README.md from nbs/index.ipynb
	$(BIN)/python tools/readme.py

DEMO_RUN := runs/demo

demo: $(STAMP)  ## synthetic data -> train -> infer on held-out cases -> evaluate -> HTML reports (CPU, minutes)
	$(BIN)/neuroseg_synth --out $(DEMO_DATA) --kind brain --n 24 --spacing 2 --shape 96 112 80 --seed 0 --overwrite --preview reports/demo/data_preview.png
	$(BIN)/neuroseg_train --config configs/demo.yaml --existing archive data.root=$(DEMO_DATA) train.out_dir=$(DEMO_RUN)
	$(BIN)/neuroseg_infer --ckpt $(DEMO_RUN)/checkpoints/best.pt --input $(DEMO_DATA)/imagesTr --split $(DEMO_RUN)/split.json \
	    --out $(DEMO_RUN)/predictions --save-entropy
	$(BIN)/neuroseg_evaluate --pred $(DEMO_RUN)/predictions --ref $(DEMO_DATA)/labelsTr --split $(DEMO_RUN)/split.json \
	    --convention msd --out $(DEMO_RUN)/evaluation
	$(BIN)/neuroseg_report train train.out_dir=$(DEMO_RUN) --config configs/demo.yaml --name demo
	$(BIN)/neuroseg_report evaluate train.out_dir=$(DEMO_RUN) --config configs/demo.yaml --name demo
	@echo; echo "demo done: reports/demo/train.html, reports/demo/evaluate.html (3D views beside them), run in $(DEMO_RUN)"

# Real BraTS case folders (with *_seg files to score them): the shared ones beside the checkout when they exist.
REAL ?= $(firstword $(wildcard ../shared/data/real/brats2021))
REAL_CKPT ?= pretrained:brats
REAL_RUN := runs/demo-real

demo-real: $(STAMP)  ## the shipped model on real BraTS cases (REAL=DIR, REAL_CKPT=...): segmentations, scores, evaluation report
	@test -n "$(REAL)" || { echo "make demo-real: give REAL=DIR, a folder of BraTS case folders" >&2; exit 2; }
	@if [ -d $(REAL_RUN) ]; then mv $(REAL_RUN) $(REAL_RUN).archived-$$(date +%Y%m%d-%H%M%S); fi
	$(BIN)/neuroseg_infer --ckpt $(REAL_CKPT) --input $(REAL) --out $(REAL_RUN)/predictions --save-entropy
	$(BIN)/neuroseg_evaluate --pred $(REAL_RUN)/predictions --ref $(REAL) --out $(REAL_RUN)/evaluation
	$(BIN)/neuroseg_report evaluate --config brats-real -p run_dir $(REAL_RUN) -p checkpoint $(REAL_CKPT) -p data_root $(REAL) --name demo-real
	@echo; echo "demo-real done: reports/demo-real/evaluate.html (3D view beside it), predictions and scores in $(REAL_RUN)"

lab: $(STAMP)  ## JupyterLab with the project's kernel
	@$(BIN)/python -c "import jupyterlab" 2>/dev/null || $(BIN)/python -m pip install -q jupyterlab
	$(BIN)/jupyter lab --notebook-dir=nbs

bench: $(STAMP)  ## benchmarks against the original's MONAI pipeline (targets in nbs/design.ipynb)
	$(BIN)/python tools/bench.py --wait 10

gpu-check: $(STAMP)  ## on a GPU machine: cuda tests, the GPU bench (reports/bench/<gpu>.json), a short AMP training run and its report
	$(BIN)/python tools/gpu_check.py

clean-demo:  ## remove the demo data and runs
	rm -rf $(DEMO_DATA) runs/demo reports/demo
