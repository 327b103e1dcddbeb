# Two commands for a newcomer: `make demo` and `make test`. Both build .venv first.
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
TORCH_VERSION ?= 2.13.0

.PHONY: install demo test test-slow lint clean

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml Makefile
	test -x $(PY) || python3 -m venv $(VENV)
	$(PIP) install -q --upgrade pip setuptools wheel
	@# Keep a CUDA torch that is already there (cluster images); otherwise the pinned CPU wheel.
	@if $(PY) -c "import sys, torch; sys.exit(0 if torch.version.cuda else 1)" 2>/dev/null; then \
		echo "keeping CUDA torch $$($(PY) -c 'import torch; print(torch.__version__)')"; \
	else \
		$(PIP) install -q torch==$(TORCH_VERSION); \
	fi
	@# deepspeed is an sdist: build it against the torch above, without CUDA ops.
	DS_BUILD_OPS=0 $(PIP) install -q --no-build-isolation "deepspeed>=0.16"
	$(PIP) install -q -e ".[dev]"
	touch $@

# JDM learns an easy shapes-world set (about 2 min on 2 cores), then outputs/demo/index.html shows it.
demo: install
	OMP_NUM_THREADS=$${OMP_NUM_THREADS:-1} $(VENV)/bin/vidgen demo --out outputs/demo

test: install
	$(VENV)/bin/python -m pytest -q

test-slow: install
	$(VENV)/bin/python -m pytest -q -m slow

lint: install
	$(VENV)/bin/ruff check src tests benchmarks

clean:
	rm -rf $(VENV) outputs
