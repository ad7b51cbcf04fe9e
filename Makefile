# sparkzoo: `make demo` sets everything up and runs the demo; `make test` runs every test tier
# on the classic stack and the current stack's share on the current one.
VENV := .venv
PY := $(VENV)/bin/python
VENV_CURRENT := .venv-current

.PHONY: setup setup-current lock demo test test-fast test-current lint clean

setup:  ## create .venv (classic stack) from requirements/classic.lock: TensorFlow 2.15, Horovod (TF + Gloo, built from source), PySpark 3.5, every extra, sparkzoo editable + dev tools
	bash scripts/setup.sh

setup-current:  ## create .venv-current (current stack) from requirements/current.lock: Python 3.12, TensorFlow 2.21 + tf_keras, PySpark 4, no Horovod
	bash scripts/setup-current.sh

lock:  ## regenerate requirements/*.lock from pyproject.toml (uv pip compile, hashes); review, run `make test`, commit
	bash scripts/lock.sh

demo: setup  ## the stack report, then LeNet-5 trained on MNIST by 2 Horovod workers on Spark
	$(VENV)/bin/sparkzoo info
	$(VENV)/bin/sparkzoo demo

test: setup setup-current  ## every tier on the classic stack, then the current stack's share; fails on "no tests collected"
	bash scripts/test.sh

test-current: setup-current  ## only the current stack's share of `make test`
	bash scripts/test.sh --current-only

test-fast: setup  ## unit tests only (pytest's default selection)
	$(PY) -m pytest

lint: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

clean:
	rm -rf $(VENV) $(VENV_CURRENT) .venv-lock build dist *.egg-info .pytest_cache .ruff_cache
