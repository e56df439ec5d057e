# Two commands do everything on a fresh machine: `make run` and `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
CONFIG ?= config/sandbox/raccord.yaml
STAMP  := $(VENV)/.installed

.PHONY: run test lint typecheck pytest sysdeps bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet --disable-pip-version-check -e '.[test]'
	touch $(STAMP)

# System tools the interop tests drive (OpenSSL's CLI, OpenSSH's sshd and sftp).
sysdeps:
	@missing=""; \
	command -v openssl >/dev/null || missing="$$missing openssl"; \
	command -v sftp >/dev/null || missing="$$missing openssh-client"; \
	test -x /usr/sbin/sshd || missing="$$missing openssh-server"; \
	command -v sqlite3 >/dev/null || missing="$$missing sqlite3"; \
	if [ -n "$$missing" ]; then \
	  echo "installing:$$missing"; \
	  if [ "$$(id -u)" = 0 ]; then SUDO=; else SUDO=sudo; fi; \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq $$missing; \
	fi

# The gateway on the sandbox config beside `raccord sandbox`, a local Chorus Pro that also feeds
# sample invoices; the terminal shows the simulator's summary, logs go to var/log/.
run: $(STAMP)
	$(BIN)/raccord certs sandbox --config $(CONFIG)
	$(BIN)/raccord sandbox --prepare --config $(CONFIG)
	@mkdir -p var/log
	@echo "Gateway log: var/log/gateway.log, simulator log: var/log/simulator.log"
	@echo "Metrics: http://127.0.0.1:$${RACCORD_ADMIN_PORT:-8480}/metrics. Ctrl-C stops everything."
	@$(BIN)/raccord serve --config $(CONFIG) >var/log/gateway.log 2>&1 & gateway=$$!; \
	trap 'kill -TERM $$gateway 2>/dev/null' INT TERM; \
	$(BIN)/raccord sandbox --config $(CONFIG) 2>var/log/simulator.log; status=$$?; \
	kill -TERM $$gateway 2>/dev/null; wait $$gateway; \
	exit $$status

lint: $(STAMP)
	$(BIN)/ruff check .

typecheck: $(STAMP)
	$(BIN)/mypy

pytest: $(STAMP) sysdeps
	$(BIN)/pytest -q

test: $(STAMP) sysdeps
	$(BIN)/ruff check .
	$(BIN)/mypy
	$(BIN)/pytest -q

bench: $(STAMP)
	for b in bench/*.py; do $(BIN)/python $$b; done

clean:
	rm -rf $(VENV) var .mypy_cache .pytest_cache .ruff_cache .hypothesis
