# The two commands of the README: `make run` and `make test`. Both install what
# is missing first (Debian packages, the venv, the Kafka broker's jars).
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.smsgw-installed
PYTEST_ARGS ?=

.PHONY: setup system-deps run observe test lint typecheck unit clean-cache bench interop-peers test-hosts

setup: system-deps $(STAMP) kafka-jars

system-deps:
	@bash cluster/install-system-deps.sh

$(STAMP): setup.cfg pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip setuptools wheel
	$(BIN)/pip install -q -e '.[dev]'
	@touch $@

kafka-jars: $(STAMP)
	@$(BIN)/python -c "from smsgw.cluster.kafka_dist import ensure_kafka_jars as e; from smsgw.settings import Settings as S; print('kafka jars:', e(S().kafka_version))"

# Third-party SMPP peers of the interop tier (tests/interop): node-smpp from npm, jsmpp from
# Maven Central, into ~/.cache/smsgw/interop (python-smpplib is a dependency already).
interop-peers: $(STAMP)
	@$(BIN)/python -m tests.interop.peers

run: setup  # SMPP over TLS on 3550 too (self-signed on first start; SMSGW_SMPP_TLS_LISTEN= turns it off)
	SMSGW_SMPP_TLS_LISTEN=$${SMSGW_SMPP_TLS_LISTEN-0.0.0.0:3550} $(BIN)/smsgw run

# Prometheus (Debian's) scraping the gateway that `make run` started; Ctrl-C stops it.
observe: setup
	$(BIN)/smsgw observe

lint: $(STAMP)
	$(BIN)/ruff check src actors cluster tests benchmarks
	$(BIN)/ruff format --check src actors cluster tests benchmarks
	$(BIN)/lint-imports --no-logo

typecheck: $(STAMP)
	$(BIN)/mypy

unit: $(STAMP)
	$(BIN)/pytest tests/unit -q $(PYTEST_ARGS)

# Hosts as network namespaces behind an HAProxy VIP alone (issue 14; root; docs/NETNS.md);
# `make test` runs them too.
test-hosts: setup
	$(BIN)/pytest tests/hosts $(PYTEST_ARGS)

# pytest exits 5 when it collected no test; make treats that as a failure too.
test: setup interop-peers lint typecheck
	$(BIN)/pytest $(PYTEST_ARGS)

bench: setup
	$(BIN)/python -m benchmarks.e2e
