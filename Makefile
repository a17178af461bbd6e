# Two commands for a newcomer: `make demo` and `make test`. Everything else is built on demand.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
export DAGSTER_HOME := $(CURDIR)/.dagster_home
export IDENTITY_DATA_HOME ?= $(CURDIR)/data

.PHONY: demo test lint dev bench clean

$(BIN)/uv:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --no-deps --require-hashes -r deploy/uv-bootstrap.lock

# Reinstall whenever the pinned dependency set changes. The lock is complete, so --no-deps: it also
# keeps mtcnn-runtime's opencv-python requirement out (see [tool.uv] in pyproject.toml). Every
# wheel is checked against the lock's sha256 hashes (`uv pip compile --generate-hashes`).
# --compile-bytecode: uv writes no .pyc by default, and where PYTHONDONTWRITEBYTECODE is set every
# process would compile dagster, pandas and the rest from source again (~7 CPU-s a process).
$(VENV)/.installed: pyproject.toml requirements-dev.lock | $(BIN)/uv
	$(BIN)/uv pip install --quiet --python $(BIN)/python --no-deps --require-hashes \
		--compile-bytecode -r requirements-dev.lock
	$(BIN)/uv pip install --quiet --python $(BIN)/python --no-deps -e .
	touch $@

$(DAGSTER_HOME)/dagster.yaml: dagster.yaml
	mkdir -p $(DAGSTER_HOME)
	cp dagster.yaml $@

demo: $(VENV)/.installed $(DAGSTER_HOME)/dagster.yaml
	$(BIN)/python -m identity_data.demo

lint: $(VENV)/.installed
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

test: $(VENV)/.installed $(DAGSTER_HOME)/dagster.yaml
	bash .ci/services.sh
	bash .ci/browser.sh
	bash .ci/podman.sh
	$(BIN)/ruff check .
	# pyright standard mode over identity_data/ ([tool.basedpyright]): any error fails. There is no
	# baseline (basedpyright would pass the errors listed in .basedpyright/baseline.json); only
	# library-stub noise is silenced, inline as `# pyright: ignore[rule]` with the reason beside it.
	test ! -e .basedpyright/baseline.json
	$(BIN)/basedpyright
	$(BIN)/pytest

dev: $(VENV)/.installed $(DAGSTER_HOME)/dagster.yaml
	$(BIN)/dg dev --host 127.0.0.1 --port 3000

bench: $(VENV)/.installed $(DAGSTER_HOME)/dagster.yaml
	$(BIN)/python -m benchmarks.pipeline
	$(BIN)/python -m benchmarks.consensus
	$(BIN)/python -m benchmarks.annotations
	$(BIN)/python -m benchmarks.detectors
	$(BIN)/python -m benchmarks.sample_quality $(IDENTITY_DATA_HOME)

clean:
	rm -rf data .dagster_home
