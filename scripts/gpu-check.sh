#!/usr/bin/env bash
# GPU check (issues 10, 30): on a machine with one CUDA GPU and no network, in a few minutes,
# run
#   1. calibrate   clmrepro calibrate --device cuda
#   2. pipeline    every step kind's CUDA path on specs/gpu-check.yaml through Snakemake in a
#                  scratch folder, two slots per GPU (two LeNet5 jobs share it): the attack grid
#                  (FGSM, PGD, MI-FGSM, EOT-PGD, AutoAttack) on our batched kernels and on the
#                  torchattacks path, ARC, sanity, a diversity baseline (GAL), PGD adversarial
#                  training, CLM, ResNet18 on CIFAR-shaped data with augmentation, bf16 and
#                  channels_last; per step: seconds, peak GPU memory, warnings seen
#                  (scripts/gpu-check-probe/sitecustomize.py)
#   3. reference   the same spec on the CPU: every MRA cell's difference, CUDA minus CPU
#   4. resume      a ResNet18 training job SIGKILLed after its first saved state and run
#                  again: its weights against an uninterrupted run's (scripts/gpu-check-resume.py)
#   5. benchmarks  batched-vs-sequential benchmarks/train_throughput.py, attack_throughput.py
# and write every number, with the device name (nvidia-smi -L), under OUT_DIR:
#   gpu-check.json  summary.md  calibration.json  pipeline.log  report.md
#   train_throughput.txt  attack_throughput.txt
# What to send back: gpu-check.json, summary.md and pipeline.log (docs/cluster.md).
#
# usage: scripts/gpu-check.sh [OUT_DIR] [--allow-cpu] [--spec FILE] [--parts LIST] [--quick]
#   OUT_DIR      default: $OUT if set, else ./gpu-check-out
#   --allow-cpu  run on the CPU when no CUDA GPU is visible (to test this script)
#   --spec FILE  another spec for parts 2-4 (its `device:` is replaced by cpu with --allow-cpu)
#   --parts LIST comma-separated subset of calibrate,pipeline,reference,resume,benchmarks
#                (default: all; reference and resume need pipeline; reference is skipped
#                on the CPU)
#   --quick      smaller calibration and benchmarks (for testing the script)
# Python packages: the repository's .venv if present, else $PYTHON or python3; wheels in
# ./.whl (carried to a machine without network) are installed into a temporary folder first.
# Exit codes: 0 all parts passed; 1 a part failed (the others still ran; see summary.md);
# 2 usage; 3 no CUDA GPU and no --allow-cpu; 4 missing Python packages.
set -uo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
OUT_DIR="${OUT:-./gpu-check-out}"
SPEC="specs/gpu-check.yaml"
PARTS="calibrate,pipeline,reference,resume,benchmarks"
ALLOW_CPU=0
QUICK=0
while [ $# -gt 0 ]; do
  case "$1" in
    --allow-cpu) ALLOW_CPU=1 ;;
    --quick) QUICK=1 ;;
    --spec) SPEC="$2"; shift ;;
    --parts) PARTS="$2"; shift ;;
    -h|--help) sed -n '2,33p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    -*) echo "gpu-check: unknown option $1 (see --help)" >&2; exit 2 ;;
    *) OUT_DIR="$1" ;;
  esac
  shift
done
mkdir -p "$OUT_DIR" && OUT_DIR="$(cd "$OUT_DIR" && pwd)"
SPEC="$(cd "$(dirname "$SPEC")" && pwd)/$(basename "$SPEC")"
STARTED=$(date +%s)
say() { echo "[gpu-check] $*" | tee -a "$OUT_DIR/pipeline.log" >&2; }
: > "$OUT_DIR/pipeline.log"

# --- Python and packages ------------------------------------------------------------
if [ -x "$REPO/.venv/bin/python" ]; then PY="$REPO/.venv/bin/python"; else PY="${PYTHON:-python3}"; fi
if [ -d "$REPO/.whl" ] && ls "$REPO"/.whl/*.whl >/dev/null 2>&1; then
  SITE="${TMPDIR:-/tmp}/clmrepro-gpu-check-site"
  say "installing the carried wheels of .whl/ into $SITE"
  "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --target "$SITE" "$REPO"/.whl/*.whl >>"$OUT_DIR/pipeline.log" 2>&1 \
    || { say "FAILED: pip could not install .whl/*.whl (see pipeline.log)"; exit 4; }
  export PYTHONPATH="$SITE${PYTHONPATH:+:$PYTHONPATH}"
fi
export PYTHONPATH="$REPO${PYTHONPATH:+:$PYTHONPATH}" MPLBACKEND=Agg PYTHONUNBUFFERED=1
# job commands call `python`: make it this interpreter
# (a wrapper, not a link: a link to a venv's python would lose the venv)
SHIM="$(mktemp -d)"; printf '#!/bin/sh\nexec "%s" "$@"\n' "$(command -v "$PY")" > "$SHIM/python"
chmod +x "$SHIM/python"; export PATH="$SHIM:$PATH"
missing=$("$PY" - <<'EOF'
import importlib.util
names = ["torch", "torchvision", "torchattacks", "pydantic", "yaml", "snakemake", "mlxtend",
         "tabulate", "jinja2", "matplotlib", "tqdm", "numpy"]
print(" ".join(n for n in names if importlib.util.find_spec(n) is None))
EOF
)
if [ -n "$missing" ]; then
  say "FAILED: Python packages missing: $missing"
  say "On a machine without network, download their wheels elsewhere into .whl/ (the device"
  say "README's pip download command) and carry .whl; this script installs them."
  exit 4
fi

# --- the device ---------------------------------------------------------------------
GPU_LIST="$(nvidia-smi -L 2>/dev/null || true)"
if "$PY" -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)"; then
  DEVICE=cuda
else
  if [ "$ALLOW_CPU" != 1 ]; then
    say "FAILED: no CUDA GPU visible (torch.cuda.is_available() is False; nvidia-smi -L: ${GPU_LIST:-nothing})."
    say "This script checks the CUDA path. Run it on a machine with a GPU, or pass --allow-cpu"
    say "to test the script itself on the CPU."
    exit 3
  fi
  DEVICE=cpu
  say "no CUDA GPU: running on the CPU because of --allow-cpu (numbers are not GPU numbers)"
fi
DEVICE_NAME="$("$PY" -c "
import torch
from clmrepro.calibration.run import cpu_name
print(torch.cuda.get_device_name(0) if torch.cuda.is_available() else cpu_name())")"
say "device: $DEVICE ($DEVICE_NAME); nvidia-smi -L: ${GPU_LIST:-none}"

STATUS_FILE="$OUT_DIR/.status.tsv"; : > "$STATUS_FILE"
part_wanted() { case ",$PARTS," in *",$1,"*) return 0 ;; *) return 1 ;; esac; }
run_part() {  # name timeout_seconds command...: record status and seconds, never abort
  local name="$1" limit="$2"; shift 2
  local t0=$(date +%s) code
  say "$name: $*"
  timeout "$limit" "$@"
  code=$?
  echo -e "$name\t$code\t$(( $(date +%s) - t0 ))\t$*" >> "$STATUS_FILE"
  if [ $code -eq 0 ]; then say "$name: ok"; else say "$name: FAILED (exit $code)"; fi
}

# --- 1. calibration -----------------------------------------------------------------
CAL="$OUT_DIR/calibration.json"
if part_wanted calibrate; then
  quick=(); [ "$QUICK" = 1 ] && quick=(--quick)
  run_part calibrate 180 "$PY" -m clmrepro.cli calibrate --device "$DEVICE" --out "$CAL" \
    --note "scripts/gpu-check.sh on $DEVICE_NAME" --quiet "${quick[@]}"
fi

# --- 2. every step's CUDA path through Snakemake, in a scratch copy ------------------
WORK="$(mktemp -d "${TMPDIR:-/tmp}/clmrepro-gpu-check.XXXXXX")"
WORK_CPU="$(mktemp -d "${TMPDIR:-/tmp}/clmrepro-gpu-check-cpu.XXXXXX")"
PROBE="$(mktemp -d)"
NAME=$("$PY" -c "import yaml,sys; print(yaml.safe_load(open(sys.argv[1]))['name'])" "$SPEC")
CORES=$(nproc); [ "$CORES" -gt 8 ] && CORES=8
calibration=(); [ -s "$CAL" ] && calibration=(--calibration "$CAL")
scratch() {  # FOLDER DEVICE: the workflow files, and the spec with `device:` DEVICE, compiled
  mkdir -p "$1/specs" "$1/workflow"
  cp "$REPO/Snakefile" "$1/"; cp -r "$REPO/workflow/rules" "$1/workflow/"
  cp "$REPO/specs/paper_tables.yaml" "$1/specs/"
  sed "s/^device: .*/device: $2/" "$SPEC" > "$1/specs/check.yaml"
  (cd "$1" && "$PY" -m clmrepro.cli compile specs/check.yaml "${calibration[@]}" \
     >> "$OUT_DIR/pipeline.log" 2>&1)
}
if part_wanted pipeline; then
  scratch "$WORK" "$DEVICE"
  # two slots per GPU: two LeNet5 jobs share it at once (a ResNet18 job still takes it alone);
  # each step's process records its peak GPU memory and warnings (the probe's sitecustomize)
  (cd "$WORK" && export CLMREPRO_GPU_CHECK_PROBE="$PROBE" \
     PYTHONPATH="$REPO/scripts/gpu-check-probe:$PYTHONPATH" \
   && run_part pipeline 420 "$PY" -m snakemake --cores "$CORES" --resources gpu=2 \
     --config slots_per_gpu=2 >> "$OUT_DIR/pipeline.log" 2>&1)
  cat "$WORK"/results/"$NAME"/logs/*.log >> "$OUT_DIR/pipeline.log" 2>/dev/null
  cp "$WORK/reports/$NAME/report.md" "$OUT_DIR/report.md" 2>/dev/null
  (cd "$REPO" && "$PY" -m benchmarks.pipeline_stages "$WORK/workflow/compiled/$NAME/plan.json" \
     --root "$WORK" "${calibration[@]}" > "$OUT_DIR/.stages.md" 2>> "$OUT_DIR/pipeline.log")
fi

# --- 3. the same jobs on the CPU: each MRA's difference ------------------------------
if part_wanted reference && part_wanted pipeline && [ "$DEVICE" = cuda ]; then
  scratch "$WORK_CPU" cpu
  (cd "$WORK_CPU" && export CUDA_VISIBLE_DEVICES="" \
   && run_part reference 600 "$PY" -m snakemake --cores "$(nproc)" >> "$OUT_DIR/pipeline.log" 2>&1)
fi

# --- 4. kill and resume ---------------------------------------------------------------
if part_wanted resume && part_wanted pipeline; then
  (cd "$WORK" && run_part resume 420 "$PY" "$REPO/scripts/gpu-check-resume.py" "$WORK" "$NAME" \
     > "$OUT_DIR/.resume.json" 2>> "$OUT_DIR/pipeline.log")
fi

# --- 3. batched vs sequential benchmarks --------------------------------------------
# Same-run ratios: every training variant (bare loop, ULM sequential / channels_last / batched,
# CLM) and batched vs sequential transfer crafting (PGD-40, 10 LeNet5s) (issue 10).
if part_wanted benchmarks; then
  if [ "$QUICK" = 1 ]; then tsize=(--size 2 --epochs 1 --repeats 1 --n-train 500)
    asize=(--transfer-models 2 --transfer-samples 100 --repeats 1)
  else tsize=(--size 10 --epochs 1 --repeats 3); asize=(--transfer-models 10 --transfer-samples 1000); fi
  (cd "$REPO" && run_part train_throughput 120 "$PY" -m benchmarks.train_throughput \
     --device "$DEVICE" "${tsize[@]}" > "$OUT_DIR/train_throughput.txt" 2>&1)
  (cd "$REPO" && run_part attack_throughput 120 "$PY" -m benchmarks.attack_throughput \
     --device "$DEVICE" "${asize[@]}" > "$OUT_DIR/attack_throughput.txt" 2>&1)
fi

# --- summary ------------------------------------------------------------------------
"$PY" - "$OUT_DIR" "$DEVICE" "$DEVICE_NAME" "$GPU_LIST" "$WORK" "$(( $(date +%s) - STARTED ))" \
  "$WORK_CPU" "$PROBE" "$NAME" <<'EOF'
import json, platform, sys
from pathlib import Path
out, device, name, gpus, work, seconds, work_cpu, probe, spec_name = sys.argv[1:10]
out = Path(out)
parts = []
for line in (out / ".status.tsv").read_text().splitlines():
    part, code, took, command = line.split("\t", 3)
    parts.append({"part": part, "exit": int(code), "seconds": int(took), "command": command})
import torch
result = {"device": device, "device_name": name, "nvidia_smi": gpus.splitlines(),
          "torch": torch.__version__, "platform": platform.platform(),
          "total_seconds": int(seconds), "parts": parts, "spec_name": spec_name}
cal = out / "calibration.json"
if cal.is_file():
    c = json.loads(cal.read_text())
    result["calibration"] = {"name": c["name"], "startup_s": c["startup_s"],
                             "lenet5": c["units"].get("lenet5"), "resnet18": c["units"].get("resnet18")}
benchmarks = {}
for path in sorted(Path(work).glob("results/*/benchmarks/*.tsv")):
    rows = path.read_text().splitlines()
    if len(rows) > 1:
        benchmarks[path.stem] = float(rows[1].split("\t")[0])
result["job_seconds"] = benchmarks
for name_ in ("train_throughput", "attack_throughput"):
    path = out / f"{name_}.txt"
    if path.is_file():
        text = path.read_text().splitlines()
        lines = [l for l in text if l.strip().startswith("{")]
        try:
            result[name_] = json.loads(lines[-1]) if lines else None
        except json.JSONDecodeError:
            result[name_] = None
        if result[name_] is None:      # attack_throughput prints Markdown tables: keep their rows
            rows = [[c.strip() for c in l.strip().strip("|").split("|")] for l in text
                    if l.strip().startswith("|") and not l.strip().startswith("|---")]
            result[name_] = {"rows": rows} if rows else None
# per step: seconds (Snakemake's benchmark files), peak GPU memory and warnings (the probe)
steps = {job: {"seconds": took, "peak_gpu_bytes": None, "warnings": []}
         for job, took in benchmarks.items()}
seen = set()
for record in sorted(Path(probe).glob("*.json")):
    r = json.loads(record.read_text())
    job_file = next((a for a in r["argv"] if a.endswith(".json") and "/jobs/" in a), None)
    if job_file is None:
        continue
    step = steps.setdefault(Path(job_file).stem, {"seconds": None, "peak_gpu_bytes": None,
                                                  "warnings": []})
    if r.get("peak_gpu_bytes") is not None:
        step["peak_gpu_bytes"] = max(step["peak_gpu_bytes"] or 0, r["peak_gpu_bytes"])
    step["warnings"] = sorted(set(step["warnings"]) | set(r["warnings"]))
    seen |= set(r["warnings"])
result["steps"] = steps
result["warnings_seen"] = sorted(seen)
def cells(folder):
    """MRA cell -> mean, from the report's metrics.json (None when the run did not get there)."""
    path = Path(folder) / "reports" / spec_name / "metrics.json"
    if not path.is_file():
        return None
    keys = ("experiment", "population", "attack", "eps", "threat_model", "inference")
    return {"/".join(str(c[k]) for k in keys if c.get(k) is not None): c["mean"]
            for c in json.loads(path.read_text())["cells"]}
gpu_cells, cpu_cells = cells(work), cells(work_cpu)
result["mra_vs_cpu"] = None
if gpu_cells is not None and cpu_cells is not None:
    diffs = {k: round(gpu_cells[k] - cpu_cells[k], 6) for k in sorted(gpu_cells) if k in cpu_cells}
    result["mra_vs_cpu"] = {"cells": len(diffs), "differences": diffs,
                            "max_abs_difference": max(map(abs, diffs.values()), default=None)}
resume = out / ".resume.json"
lines = resume.read_text().strip().splitlines() if resume.is_file() else []
result["resume"] = json.loads(lines[-1]) if lines else None
stages = out / ".stages.md"
(out / "gpu-check.json").write_text(json.dumps(result, indent=2, sort_keys=True) + "\n")
md = [f"# gpu-check on {name}", "", f"- device: {device}; nvidia-smi -L: {gpus or 'none'}",
      f"- torch {torch.__version__}; {platform.platform()}; total {seconds} s", "",
      "| part | exit | seconds | command |", "|---|---|---|---|"]
md += [f"| {p['part']} | {p['exit']} | {p['seconds']} | `{p['command']}` |" for p in parts]
md += ["", "## Steps", "", "| step | seconds | peak GPU memory (MB) | warnings |", "|---|---|---|---|"]
md += [f"| {job} | {st['seconds'] if st['seconds'] is not None else ''} | "
       f"{'' if st['peak_gpu_bytes'] is None else round(st['peak_gpu_bytes'] / 1e6)} | "
       f"{len(st['warnings'])} |" for job, st in sorted(result["steps"].items())]
if result["warnings_seen"]:
    md += ["", "## Warnings seen", ""] + [f"- {w}" for w in result["warnings_seen"]]
if result["mra_vs_cpu"]:
    m = result["mra_vs_cpu"]
    md += ["", f"## MRA, CUDA minus CPU: {m['cells']} cells, largest |difference| "
           f"{m['max_abs_difference']}"]
if result["resume"]:
    md += ["", f"## Kill and resume: {json.dumps(result['resume'])}"]
if stages.is_file() and stages.read_text().strip():
    md += ["", "## Plan vs measured per stage (pipeline part)", "", stages.read_text().strip()]
for name_ in ("train_throughput", "attack_throughput"):
    path = out / f"{name_}.txt"
    if path.is_file():
        md += ["", f"## {name_}", "", "```", path.read_text().strip()[-4000:], "```"]
(out / "summary.md").write_text("\n".join(md) + "\n")
EOF
rm -f "$OUT_DIR/.status.tsv" "$OUT_DIR/.stages.md" "$OUT_DIR/.resume.json"
rm -rf "$SHIM" "$PROBE"
[ -n "${KEEP_WORK:-}" ] || rm -rf "$WORK" "$WORK_CPU"
failed=$("$PY" -c "
import json,sys; r=json.load(open(sys.argv[1])); print(' '.join(p['part'] for p in r['parts'] if p['exit']))" "$OUT_DIR/gpu-check.json")
say "done in $(( $(date +%s) - STARTED )) s; results in $OUT_DIR (summary.md)"
if [ -n "$failed" ]; then say "FAILED parts: $failed"; exit 1; fi
exit 0
