# sparkzoo: `make demo` sets everything up and runs the demo; `make test` runs every test tier.
VENV := .venv
PY := $(VENV)/bin/python

.PHONY: setup demo test test-fast lint clean

setup:  ## create .venv: TensorFlow, Horovod (TF + Gloo, built from source), sparkzoo editable + dev tools
	bash scripts/setup.sh

demo: setup  ## the stack report, then LeNet-5 trained on MNIST by 2 Horovod workers on Spark
	$(VENV)/bin/sparkzoo info
	$(VENV)/bin/sparkzoo demo

test: setup  ## every tier: unit, spark, hdfs, slow; fails on "no tests collected"
	bash scripts/test.sh

test-fast: setup  ## unit tests only (pytest's default selection)
	$(PY) -m pytest

lint: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

clean:
	rm -rf $(VENV) build dist *.egg-info .pytest_cache .ruff_cache
