# tsf: every entry point creates .venv on first use, so a fresh machine with only
# Python 3.11 needs nothing but `make reproduce` or `make test`.
PYTHON  ?= python3.11
VENV    := .venv
PY      := $(VENV)/bin/python
PRESET  ?= cpu
STAMP   := $(VENV)/.installed
# Wheels brought to a machine without a registry (wheels.txt says which and how), installed apart:
SITE    ?= /tmp/tsf-site

# PY set to another Python (one whose torch is already installed, as a GPU machine's:
# `make reproduce PRESET=gpu PY=python3`): no venv is built, and that Python imports this working
# tree, and the wheels of `make gpu-deps`, through an absolute PYTHONPATH.
ifeq ($(PY),$(VENV)/bin/python)
NEED_VENV := $(STAMP)
RUN       := $(PY)
else
NEED_VENV :=
RUN       := PYTHONPATH="$(CURDIR):$(SITE)$${PYTHONPATH:+:$$PYTHONPATH}" $(PY)
endif

.PHONY: venv test test-fast reproduce calibrate lab picture info clean gpu-check gpu-deps

venv: $(STAMP)

# constraints.txt pins every package of the stack (torch==2.13.0 included) to the
# versions the committed results were produced with.
$(STAMP): pyproject.toml constraints.txt
	@command -v $(PYTHON) >/dev/null || { echo "need $(PYTHON) on PATH (or make PYTHON=...)"; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -c constraints.txt -e '.[notebooks,test]'
	touch $@

test: $(STAMP)
	$(PY) -m pytest -q

# Everything but the tests marked slow (notebooks, browser, DDP, signals, profiler): under 2 minutes.
# One thread: its models are tiny, and on a busy machine two OpenMP threads wait on each other.
test-fast: $(STAMP)
	OMP_NUM_THREADS=1 $(PY) -m pytest -q -m "not slow"

# The study: every notebook through papermill into runs/reproduce-$(PRESET)/, tables,
# figures and SUMMARY.md into figures/$(PRESET)/. PRESET=smoke takes about a minute.
reproduce: $(NEED_VENV)
	$(RUN) -m tsf reproduce --preset $(PRESET)

# The runs behind the study's set-up (figures/$(PRESET)/calibration.csv): the study's set-up, the
# authors' zero start in it, the half-clips and two compact-model alternatives on seeds 100-101,
# about an hour at cpu; STEPS=all for the whole ladder (3 hours).
calibrate: $(NEED_VENV)
	$(RUN) -m tsf calibrate --preset $(PRESET) $(if $(STEPS),--steps $(STEPS))

# JupyterLab on the notebooks, this environment as the kernel, loopback only, token required.
# The server hides a token it was given, so the URL with it is printed here, on a fixed port
# (LAB_PORT; busy: make lab LAB_PORT=8890). As root (containers, cloud machines) JupyterLab
# refuses to start without --allow-root.
LAB_PORT ?= 8888
lab: $(STAMP)
	@token="$$($(PY) -c 'import secrets; print(secrets.token_hex(24))')"; \
	root="$$([ "$$(id -u)" = 0 ] && echo --allow-root)"; \
	echo "JupyterLab: open http://127.0.0.1:$(LAB_PORT)/lab?token=$$token"; \
	echo "  (from another machine: ssh -L $(LAB_PORT):127.0.0.1:$(LAB_PORT) THIS_HOST, then the same URL; Ctrl-C stops it)"; \
	$(PY) -m jupyterlab --ip=127.0.0.1 --port=$(LAB_PORT) --ServerApp.port_retries=0 --no-browser $$root \
	    --ServerApp.root_dir=notebooks --IdentityProvider.token="$$token"

# The README's picture of the explorer, docs/explorer.png: the small model trained on the synthetic
# appearance task (about five minutes on 2 shared cores; kept in runs/picture), a held-out clip written as
# an mp4, its page from `python -m tsf explain`, a screenshot by headless Chromium (Debian's
# chromium package, as the browser tests use).
PICTURE := runs/picture
CHROMIUM ?= chromium
$(PICTURE)/run/model/model.safetensors: | $(STAMP)
	OMP_NUM_THREADS=1 $(PY) -m tsf train --preset scratch --output $(PICTURE)/run --set data.task=appearance \
	    --set data.train_samples=2048 --set data.val_samples=200 --set optim.epochs=6 --set optim.lr=2e-3 \
	    --set progress=false
picture: $(PICTURE)/run/model/model.safetensors
	$(PY) -m tsf make-synthetic appearance $(PICTURE)/videos --num 4 --frames 8 --size 32 --split val
	$(PY) -m tsf explain $(PICTURE)/run/model $(PICTURE)/videos/val/*/000002.mp4 --method gradient rollout raw \
	    --out $(PICTURE)/page/explorer.html
	$(CHROMIUM) --headless --no-sandbox --disable-gpu --disable-background-networking --hide-scrollbars \
	    --window-size=660,1190 --virtual-time-budget=10000 --screenshot=docs/explorer.png \
	    file://$(abspath $(PICTURE))/page/explorer.html

info: $(STAMP)
	$(PY) -m tsf info --all --preset base --num-classes 174

# ---- a GPU machine: its own python3 and torch, no venv, no registry ------------------------------
GPU_PY  ?= python3
CHECK_OUT ?= gpu-check
CHECK_ARGS ?=

# The prepared check (tools/gpu_check.py): environment, correctness, the benchmark, the training
# engine, the larger cases; at most 7 minutes, each stage's result in $(CHECK_OUT)/ as it ends.
# `make gpu-check CHECK_ARGS=--dry-run` runs it on a CPU at tiny sizes in seconds (the suite does).
gpu-check:
	PYTHONPATH="$(CURDIR):$(SITE)$${PYTHONPATH:+:$$PYTHONPATH}" $(GPU_PY) tools/gpu_check.py --out $(CHECK_OUT) $(CHECK_ARGS)

# The notebook stack from wheels/ (fetched elsewhere: see wheels.txt), into $(SITE), for make reproduce PY=...
gpu-deps:
	$(GPU_PY) -m pip install --quiet --no-index --no-deps --no-compile --no-cache-dir --upgrade --target $(SITE) wheels/*.whl

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache
