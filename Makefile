# The two everyday commands: `make demo` runs the demo server, `make test` runs every test.
# Both set the project up first on a fresh machine (scripts/bootstrap).
.PHONY: demo test test-pythons build bench clean

PY := .venv/bin/python

.venv/.bootstrapped: pyproject.toml setup.py package-lock.json
	bash scripts/bootstrap

build: .venv/.bootstrapped
	$(PY) setup.py -q build_ext --inplace

demo: build
	.venv/bin/fastio demo --host 127.0.0.1 --port 8000

test: build
	$(PY) -m pytest -q

.venv/.bench: pyproject.toml .venv/.bootstrapped
	$(PY) -m pip install -q "matplotlib>=3.7" "py-spy>=0.3"
	touch $@

# The same suites on the other installed CPythons (scripts/test-pythons; default 3.10 and 3.13).
test-pythons: .venv/.bootstrapped
	bash scripts/test-pythons

bench: build .venv/.bench
	$(PY) bench/run.py

clean:
	rm -rf .pythons build fastio/_core/*.c fastio/_core/*.so fastio/_core/*.html
