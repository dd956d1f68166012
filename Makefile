# make demo: run both workflows on the local stack.  make up: keep it running to try by hand.
# make test: the whole test suite.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# Debian's browser, for the Flower dashboard test (tests/integration/browser.py); playwright drives it.
CHROMIUM := /usr/bin/chromium
# Debian's systemd, for `systemd-analyze verify` of the units in configs/deploy/systemd (tests/deploy/test_units.py).
SYSTEMD_ANALYZE := /usr/bin/systemd-analyze

.PHONY: install demo up test test-unit test-integration bench clean

$(STAMP): setup.cfg pyproject.toml devtools/pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ./devtools -e '.[test]'
	touch $@

install: $(STAMP)

# A failed install does not stop the suite: the dashboard test then fails under CI=true, naming the browser.
$(CHROMIUM):
	@if [ "$$(id -u)" = 0 ]; then \
		echo "Installing Debian's chromium for the Flower dashboard test (apt-get)"; \
		{ apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
			chromium >/dev/null; } || echo "apt-get could not install chromium" >&2; \
	else \
		echo "$(CHROMIUM) is missing and this is not root: 'sudo apt-get install chromium' for the Flower" \
			"dashboard test (skipped without it; under CI=true it fails)" >&2; \
	fi

# Only the package, not a running systemd: the test verifies unit files in a scratch root. A failed install does not
# stop the suite either: that test then fails under CI=true, naming the package.
$(SYSTEMD_ANALYZE):
	@if [ "$$(id -u)" = 0 ]; then \
		echo "Installing Debian's systemd for the units' systemd-analyze verify test (apt-get)"; \
		{ apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
			systemd >/dev/null; } || echo "apt-get could not install systemd" >&2; \
	else \
		echo "$(SYSTEMD_ANALYZE) is missing and this is not root: 'sudo apt-get install systemd' for the units'" \
			"verify test (skipped without it; under CI=true it fails)" >&2; \
	fi

demo: $(STAMP)
	$(BIN)/gpuorch-dev demo

# Its options in ARGS: make up ARGS='--comfyui-url http://gpu-box:8188'
up: $(STAMP)
	$(BIN)/gpuorch-dev up $(ARGS)

test: $(STAMP) $(CHROMIUM) $(SYSTEMD_ANALYZE)
	$(BIN)/pytest

test-unit: $(STAMP) $(SYSTEMD_ANALYZE)
	$(BIN)/pytest -m 'not integration'

test-integration: $(STAMP) $(CHROMIUM)
	$(BIN)/pytest -m integration

bench: $(STAMP)
	$(BIN)/python bench/submit.py

clean:
	rm -rf $(VENV) .local-stack demo-output *.egg-info devtools/*.egg-info
