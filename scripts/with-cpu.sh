#!/usr/bin/env bash
# Run a command with the CPU kernels of another kind of machine (issue 17).
#   scripts/with-cpu.sh avx2 pytest -m numerics
# Profiles: native (as the machine is), avx2 (a CPU without AVX-512), default (no vector
# extensions).  ATEN_CPU_CAPABILITY alone is not enough: convolutions run in oneDNN, which
# picks its own instruction set (measured on an AVX-512 machine: the batched-vs-sequential
# FGSM test failed on an AVX2 machine and here only once ONEDNN_MAX_CPU_ISA=AVX2 was set),
# and matrix products run in MKL.  The capability a run used is recorded in its report.
set -euo pipefail
profile=${1:?usage: scripts/with-cpu.sh native|avx2|default COMMAND...}
shift
case "$profile" in
  native) ;;
  avx2) export ATEN_CPU_CAPABILITY=avx2 ONEDNN_MAX_CPU_ISA=AVX2 MKL_ENABLE_INSTRUCTIONS=AVX2 ;;
  default) export ATEN_CPU_CAPABILITY=default ONEDNN_MAX_CPU_ISA=SSE41 MKL_ENABLE_INSTRUCTIONS=SSE4_2 ;;
  *) echo "scripts/with-cpu.sh: unknown profile '$profile' (native, avx2 or default)" >&2; exit 2 ;;
esac
exec "$@"
