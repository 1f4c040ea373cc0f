# The two commands of the README: `make run` and `make test`. Both install what
# is missing first (Debian packages, the venv, the Kafka broker's jars).
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.smsgw-installed
PYTEST_ARGS ?=

.PHONY: setup system-deps run observe test lint typecheck unit clean-cache bench interop-peers test-hosts test-soak test-deep

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

# The unit tier: no Kafka, PostgreSQL or Ray (tests/unit/conftest.py refuses them);
# property tests at a quarter of their examples (hypothesis profile "unit",
# tests/helpers/depth.py); `make test` runs them in full, `make test-deep` ten times over.
# Bytecode (and pytest's rewritten test modules) is kept under the venv even where
# PYTHONDONTWRITEBYTECODE is set: compiling it all again took 2.5 s of CPU a run.
UNIT_ENV := PYTHONDONTWRITEBYTECODE= PYTHONPYCACHEPREFIX=$(abspath $(VENV))/pycache
unit: $(STAMP)
	$(UNIT_ENV) $(BIN)/pytest tests/unit -q --hypothesis-profile=unit $(PYTEST_ARGS)

# Nightly: the unit tier's property tests and state machines at ten times their examples.
test-deep: $(STAMP)
	$(UNIT_ENV) $(BIN)/pytest tests/unit -q --hypothesis-profile=deep $(PYTEST_ARGS)

# Hosts as network namespaces behind an HAProxy VIP alone (issue 14; root; docs/NETNS.md);
# `make test` runs them too.
test-hosts: setup
	$(BIN)/pytest tests/hosts $(PYTEST_ARGS)

# pytest exits 5 when it collected no test; make treats that as a failure too.
test: setup interop-peers lint typecheck
	$(BIN)/pytest -m 'not soak' --hypothesis-profile=full $(PYTEST_ARGS)

# Long failure drills kept out of `make test` (`-m soak`; none at present: the Ray
# head's loss joined `make test` in session 9).
test-soak: setup
	$(BIN)/pytest -m soak $(PYTEST_ARGS)

bench: setup
	$(BIN)/python -m benchmarks.e2e
