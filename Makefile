# The two quick-start commands: `make serve` and `make test` (see README.md).
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: serve test check lint typecheck browser bench crash soak kafka clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test,kafka]'
	touch $(STAMP)

## serve: run the gateway on the embedded SQLite log in ./data (http://127.0.0.1:8080)
serve: $(STAMP)
	$(BIN)/sluicegate serve

## test: install everything, then lint, type-check and run the whole test suite
test: $(STAMP) lint typecheck browser
	$(BIN)/pytest -q -p no:cacheprovider -n 2 --dist loadfile

## browser: Debian's Chromium for the console's tests (tests/console), installed when missing
browser:
	@command -v chromium >/dev/null || { \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -q && \
	  $$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium; }

lint: $(STAMP)
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench

typecheck: $(STAMP)
	$(BIN)/mypy

## bench: every benchmark; writes bench/results/latest.json (needs wrk and valgrind: apt-get install wrk valgrind; HTTP/2 rates also nghttp2-client)
bench: $(STAMP)
	$(BIN)/python -m bench.run

## crash: 100 kill -9 rounds against a real server
crash: $(STAMP)
	$(BIN)/python -m bench.crash --rounds 100

## soak: an hour (or MINUTES=n) of steady mixed load on one server, watched for leaks
soak: $(VENV)/.bench-installed
	$(BIN)/python -m bench.soak $(if $(MINUTES),--minutes $(MINUTES))

$(VENV)/.bench-installed: $(STAMP)
	$(BIN)/pip install --quiet -e '.[test,kafka,bench]'
	touch $@

## kafka: a single-node Apache Kafka broker on 127.0.0.1:9092 for development (Java 17+, Maven)
kafka: $(STAMP)
	$(BIN)/python -m sluicegate.testing.kafka_broker run --port 9092

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache
