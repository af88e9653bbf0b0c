# Quick start: `make proxy` (set up and run), `make test` (set up and test).
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
# Two stamps: `make proxy` (and the service) needs the runtime dependencies
# only; `make test`, `make install` and the benchmark add the dev extras.
RUNTIME_STAMP := $(VENV)/.installed-runtime
STAMP := $(VENV)/.installed-dev

.PHONY: install install-runtime proxy test

$(VENV)/bin/python:
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip

$(RUNTIME_STAMP): pyproject.toml | $(VENV)/bin/python
	$(PY) -m pip install --quiet -e .
	touch $(RUNTIME_STAMP)

$(STAMP): pyproject.toml | $(VENV)/bin/python
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $(STAMP) $(RUNTIME_STAMP)

install-runtime: $(RUNTIME_STAMP)

install: $(STAMP)

proxy: install-runtime
	$(PY) -m proxy $(ARGS)

test: install
	$(PY) -m pytest -q $(ARGS)

# Try it without a key: the proxy with an offline upstream inside, and the
# playground page at http://127.0.0.1:8080/ (README "Try it without a key").
.PHONY: demo
demo: install-runtime
	$(PY) -m proxy --demo $(ARGS)

# Benchmark (bench/README.md): `make bench` is the short sweep (under 2 minutes),
# `make bench-long` the long one. Not a test: nothing asserts timings.
.PHONY: bench bench-long
bench: install
	$(PY) -m bench.run $(ARGS)

bench-long: install
	$(PY) -m bench.run --long $(ARGS)

# ---- running as a systemd service (README "Running as a service")
SERVICE_NAME ?= openai-proxy
SERVICE_DIR ?= /etc/systemd/system
# render-service writes to stdout unless SERVICE_OUT names a file; only
# install-service writes into SERVICE_DIR.
SERVICE_OUT ?=
SERVICE_PYTHON ?= $(abspath $(PY))
ENV_FILE ?= $(CURDIR)/.env
SYSTEMCTL ?= systemctl

.PHONY: render-service install-service chat

# Fill the unit template with this checkout's real paths (no install, no root):
# to stdout, or to SERVICE_OUT=FILE.
render-service:
	@sed -e 's|@PYTHON@|$(SERVICE_PYTHON)|g' -e 's|@WORKDIR@|$(CURDIR)|g' -e 's|@ENV_FILE@|$(ENV_FILE)|g' \
		scripts/openai-proxy.service $(if $(SERVICE_OUT),> '$(SERVICE_OUT)')

install-service: install-runtime
	@test -f $(ENV_FILE) || { echo "$(ENV_FILE) is missing: cp .env.example .env and set OPENAI_API_KEY"; exit 1; }
	$(MAKE) --no-print-directory render-service SERVICE_OUT='$(SERVICE_DIR)/$(SERVICE_NAME).service'
	$(SYSTEMCTL) daemon-reload
	@echo "installed $(SERVICE_DIR)/$(SERVICE_NAME).service; start it with: sudo systemctl enable --now $(SERVICE_NAME)"

# A quick turn without a browser: make chat TEXT="Hello" [URL=ws://127.0.0.1:8080/openai]
# TEXT and URL reach the command through the environment, not pasted into
# the shell line, so "What's the weather?" needs no extra quoting.
URL ?= ws://127.0.0.1:8080/openai
TEXT ?= Hello
chat: export CHAT_URL = $(URL)
chat: export CHAT_TEXT = $(TEXT)
chat: install-runtime
	$(PY) -m proxy.chat --url "$$CHAT_URL" --text "$$CHAT_TEXT" $(ARGS)
