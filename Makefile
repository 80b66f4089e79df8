# tsf: every entry point creates .venv on first use, so a fresh machine with only
# Python 3.11 needs nothing but `make reproduce` or `make test`.
PYTHON  ?= python3.11
VENV    := .venv
PY      := $(VENV)/bin/python
PRESET  ?= cpu
STAMP   := $(VENV)/.installed

.PHONY: venv test reproduce info lab clean

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

reproduce: $(STAMP)
	$(PY) -m tsf info --all --preset base --num-classes 174

info: $(STAMP)
	$(PY) -m tsf info --all --preset base --num-classes 174

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache
