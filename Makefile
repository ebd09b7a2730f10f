# Two commands do all set-up on a fresh machine (Python 3.11):
#   make demo   creates .venv, installs mmaip, runs the bundled offline demo and the paper in miniature
#   make test   creates .venv, installs mmaip, runs ruff, mypy and the test suite
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
export HF_HUB_OFFLINE := 1

.PHONY: install demo test lint clean

$(STAMP): pyproject.toml setup.py
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet "setuptools>=77" wheel
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/mmaip demo --out demo-out
	$(BIN)/mmaip miniature run --out demo-out/miniature

# mypy checks every package under its import name, but plugins/, miniature/ and cli.py have other import names
# (setup.py's package_dir) that only the editable install's import hook knows, and mypy does not follow it. So lint
# links them under their import names in build/mypy-path/ (git-ignored; pyproject.toml's mypy_path), recreated on
# every run: relative symlinks, so the tree survives a moved checkout and sees new files at once.
MYPY_PATH := build/mypy-path

lint: $(STAMP)
	mkdir -p $(MYPY_PATH)/mmaip_cli
	ln -sfn ../../plugins $(MYPY_PATH)/mmaip_plugins
	ln -sfn ../../miniature $(MYPY_PATH)/mmaip_miniature
	ln -sfn ../../../cli.py $(MYPY_PATH)/mmaip_cli/cli.py
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

test: lint
	$(BIN)/pytest

clean:
	rm -rf $(VENV) demo-out build *.egg-info
