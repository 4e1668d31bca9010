# clmrepro — the two commands a newcomer needs are `make demo` and `make test`.
SHELL := /bin/bash
.DEFAULT_GOAL := help

VENV   ?= .venv
PYTHON ?= python3
SPEC   ?= specs/smoke.yaml
CORES  ?= $(shell nproc)
# Every recipe sees the project's virtual environment first on PATH (also Snakemake's jobs).
export PATH := $(abspath $(VENV))/bin:$(PATH)
export MPLBACKEND := Agg

STAMP := $(VENV)/.installed

.PHONY: help venv demo test test-cpus test-fast lock clean-results restore

help:
	@echo "make demo   - set up .venv if missing, run $(SPEC) end to end, print the report path"
	@echo "make test   - set up .venv if missing, run the whole test suite"
	@echo "make lock   - regenerate requirements.lock from the current .venv"

# Locked packages installed without their declared dependencies: torchattacks 3.5.1 declares
# requests~=2.25.1 (for the robustbench copy it ships, which downloads model weights; the attacks
# never import requests), and that pin would hold requests, idna and urllib3 at versions with
# known advisories (tests/unit/test_dependencies.py).  Everything they need is in the lock.
NO_DEPS := torchattacks
NO_DEPS_PINS := ^($(subst $(eval) ,|,$(NO_DEPS)))==
PIP := $(VENV)/bin/python -m pip install --quiet --disable-pip-version-check

# The environment comes from the lock file only, so every machine gets the same versions.
$(STAMP): requirements.lock pyproject.toml
	test -x $(VENV)/bin/python || $(PYTHON) -m venv $(VENV)
	@# (this machine's pip config lists local wheel folders that may not exist: drop those warnings)
	$(PIP) -r <(grep -v -E '$(NO_DEPS_PINS)' requirements.lock) 2> >(grep -v "Location 'file://" >&2)
	$(PIP) --no-deps $$(grep -E '$(NO_DEPS_PINS)' requirements.lock) 2> >(grep -v "Location 'file://" >&2)
	$(PIP) --no-deps --no-build-isolation -e .
	touch $@

venv: $(STAMP)

# `clmrepro run` = compile, snakemake, dvc commit, restore, holding the checkout's run lock
# throughout: a second `make demo` stops at once with a line naming the first (docs/reliability.md).
demo: $(STAMP)
	@start=$$(date +%s); \
	clmrepro run $(SPEC) --cores $(CORES) && \
	name=$$(python -c "import yaml; print(yaml.safe_load(open('$(SPEC)'))['name'])") && \
	echo "" && \
	echo "Demo finished in $$(( $$(date +%s) - start )) s." && \
	echo "Report: $(CURDIR)/reports/$$name/report.html" && \
	echo "        $(CURDIR)/reports/$$name/report.md"

# `dvc commit` (and `dvc pull`) rewrite the outputs' files, so their times no longer follow the DAG
# and Snakemake would rerun everything: `clmrepro restore` touches them in DAG order (docs/reference.md §4).
# After `dvc pull` on a new machine: mark the pulled outputs current for Snakemake (every compiled
# spec whose outputs exist; the demo commits and restores only its own spec).
restore: $(STAMP)
	clmrepro restore

test: $(STAMP)
	bash scripts/ensure-chromium.sh
	bash scripts/ensure-sshd.sh
	pytest -q
	$(MAKE) --no-print-directory test-cpus
	@if [ -n "$$CI" ] || [ -n "$$SLURM_TEST" ]; then $(MAKE) --no-print-directory slurm-test; \
	 else echo "(Slurm cluster test: run 'make slurm-test' as root, or set SLURM_TEST=1)"; fi

# The numerically sensitive tests again with the kernels of a CPU without AVX-512 and of
# one without vector extensions, so a test that only holds on this machine's CPU fails here
# and not on the next machine (issue 17).
CPU_PROFILES ?= avx2 default
test-cpus: $(STAMP)
	@for profile in $(CPU_PROFILES); do \
	  echo "== numerics tests with the $$profile CPU profile ($$(scripts/with-cpu.sh $$profile \
	    python -c 'import torch; print(torch.backends.cpu.get_cpu_capability())'))"; \
	  scripts/with-cpu.sh $$profile pytest -q -m numerics -p no:cacheprovider || exit 1; \
	done

test-fast: $(STAMP)
	pytest -q -m "not slow and not slurm"

# (`pip check` reports torchattacks' requests~=2.25.1 as unmet: on purpose, see NO_DEPS)
lock:
	$(VENV)/bin/python -m pip freeze --all --exclude-editable | grep -v "^pip==" | \
	  sed '1i # Exact versions for every machine (`make venv`; $(NO_DEPS) without its declared dependencies). Regenerate with `make lock`.' \
	  > requirements.lock

clean-results:
	rm -rf results .clmrepro-state reports/*/ .snakemake

-include mk/*.mk
