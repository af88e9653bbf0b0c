# Quick start: `make proxy` (set up and run), `make test` (set up and test).
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: install proxy test

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

proxy: install
	$(PY) -m proxy $(ARGS)

test: install
	$(PY) -m pytest -q $(ARGS)

# Try it without a key: the proxy with an offline upstream inside, and the
# playground page at http://127.0.0.1:8080/ (README "Try it without a key").
.PHONY: demo
demo: install
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
SERVICE_OUT ?= $(SERVICE_DIR)/$(SERVICE_NAME).service
SERVICE_PYTHON ?= $(abspath $(PY))
ENV_FILE ?= $(CURDIR)/.env
SYSTEMCTL ?= systemctl

.PHONY: render-service install-service chat

# Fill the unit template with this checkout's real paths (no install, no root).
render-service:
	sed -e 's|@PYTHON@|$(SERVICE_PYTHON)|g' -e 's|@WORKDIR@|$(CURDIR)|g' -e 's|@ENV_FILE@|$(ENV_FILE)|g' \
		scripts/openai-proxy.service > $(SERVICE_OUT)

install-service: install
	@test -f $(ENV_FILE) || { echo "$(ENV_FILE) is missing: cp .env.example .env and set OPENAI_API_KEY"; exit 1; }
	$(MAKE) --no-print-directory render-service
	$(SYSTEMCTL) daemon-reload
	@echo "installed $(SERVICE_OUT); start it with: sudo systemctl enable --now $(SERVICE_NAME)"

# A quick turn without a browser: make chat TEXT="Hello" [URL=ws://127.0.0.1:8080/openai]
URL ?= ws://127.0.0.1:8080/openai
TEXT ?= Hello
chat: install
	$(PY) -m proxy.chat --url '$(URL)' --text '$(TEXT)' $(ARGS)
