# The Makefile mirrors CI: .ci/run runs `make install` and `make test`.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
SRC := roar roard roarctl glaas native tests bench demo

.PHONY: install demo test test-deps lint format bench screenshots clean

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml setup.py native/tracer.c native/tracer.h native/build_tracer.py
	@command -v $${CC:-cc} >/dev/null 2>&1 || command -v gcc >/dev/null 2>&1 || \
		{ echo "roar needs a C compiler for its tracer: sudo apt-get install gcc python3-dev"; exit 1; }
	@$(PYTHON) -c 'import sys; assert sys.version_info >= (3, 11), "roar needs Python 3.11 or newer"'
	$(PYTHON) -m venv $(VENV) || { echo "cannot create a venv: sudo apt-get install python3-venv"; exit 1; }
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev,server]' --config-settings editable_mode=compat
	@touch $@
	@echo "roar installed in $(VENV): $(VENV)/bin/roarctl (alias: $(VENV)/bin/roar)"

demo: install
	bash demo/run.sh

test: install test-deps
	$(PY) -m pytest -q

# The real projects tier compares roar's record with `strace -f`, and the web pages' browser tests
# drive Debian's Chromium: install them when root can (never a browser download).
test-deps:
	@command -v strace >/dev/null 2>&1 || [ "$$(id -u)" != 0 ] || ! command -v apt-get >/dev/null || \
		{ echo "installing strace for the real projects tests"; \
		  apt-get install -y -q strace >/dev/null 2>&1 || \
		  { apt-get update -q >/dev/null && apt-get install -y -q strace >/dev/null; } || \
		  echo "could not install strace: its comparisons will be skipped"; }
	@[ -x /usr/bin/chromium ] || [ "$$(id -u)" != 0 ] || ! command -v apt-get >/dev/null || \
		{ echo "installing chromium for the web pages' browser tests"; \
		  apt-get install -y -q chromium >/dev/null 2>&1 || \
		  { apt-get update -q >/dev/null && apt-get install -y -q chromium >/dev/null; } || \
		  echo "could not install chromium: the browser tests will fail"; }

lint: install
	$(VENV)/bin/ruff check $(SRC)
	$(VENV)/bin/ruff format --check $(SRC)
	$(VENV)/bin/mypy

format: install
	$(VENV)/bin/ruff check --fix $(SRC)
	$(VENV)/bin/ruff format $(SRC)

bench: install
	$(PY) bench/run.py

# The web pages' screenshots in docs/, taken by the browser tests
screenshots: install test-deps
	SCREENSHOTS=docs $(PY) -m pytest -q tests/registry/test_web_browser.py tests/registry/test_request_pages.py

clean:
	rm -rf $(VENV) build *.egg-info roarctl/_tracer*.so
