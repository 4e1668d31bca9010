# `make slurm-test`: run tests/slurm against a real one-node Slurm cluster on this machine.
# Needs root (installs slurm-wlm + munge with apt-get if missing).  The cluster is started here
# and stopped by pid when the recipe ends, also when a test fails (trap EXIT).  If the cluster
# cannot start, the target fails and says why; it never passes without running the tests.
SLURM_STATE ?= $(or $(TMPDIR),/tmp)/clmrepro-slurm-$(shell id -u)

.PHONY: slurm-test slurm-up slurm-down

slurm-test: $(STAMP)
	@set -euo pipefail; \
	trap 'bash scripts/slurm/stop-cluster.sh "$(SLURM_STATE)"' EXIT; \
	start=$$(date +%s); \
	bash scripts/slurm/start-cluster.sh "$(SLURM_STATE)" || \
	  { echo "slurm-test: FAILED: the one-node Slurm cluster did not start (see above)" >&2; exit 1; }; \
	echo "slurm-test: cluster up in $$(( $$(date +%s) - start )) s"; \
	$(abspath $(VENV))/bin/pytest -q -m slurm tests/slurm -p no:cacheprovider; \
	if [ -f test-artifacts/slurm-timing.json ]; then cat test-artifacts/slurm-timing.json; fi; \
	echo "slurm-test: finished in $$(( $$(date +%s) - start )) s"

# For trying the profile by hand: start / stop the same cluster.
slurm-up:
	bash scripts/slurm/start-cluster.sh "$(SLURM_STATE)"

slurm-down:
	bash scripts/slurm/stop-cluster.sh "$(SLURM_STATE)"
