# The two commands of the README:  `make demo`  and  `make test`.
PY ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml | cksum | cut -d' ' -f1)
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
ARGS ?=

.PHONY: setup demo test unit bench system clean

setup: $(STAMP) system

$(STAMP): pyproject.toml
	@$(PY) -c 'import sys; sys.exit(0 if sys.version_info[:2] == (3, 11) else "zhijian needs Python 3.11; set PY=/path/to/python3.11")'
	$(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[test,kcat]'
	@rm -f $(VENV)/.installed-*
	@touch $@

# System packages the tests use: kcat (an independent Kafka client).
system:
	@command -v kcat >/dev/null || { $(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq kcat >/dev/null; }

demo: setup
	$(BIN)/zhijian demo $(ARGS)

test: setup
	$(BIN)/python -m pytest $(ARGS)

unit: setup
	$(BIN)/python -m pytest -m "not integration" $(ARGS)

bench: setup
	$(BIN)/zhijian bench --events 200000 --json bench.json $(ARGS)

clean:
	rm -rf $(VENV) .zhijian .pytest_cache
