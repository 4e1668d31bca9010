#!/usr/bin/env bash
# GPU verification (issue 10): on a machine with one CUDA GPU and no network, in under
# 8 minutes, run
#   1. the calibration            clmrepro calibrate --device cuda
#   2. the CUDA path of every step on specs/gpu-check.yaml (mnist-5k ULM + CLM, paper
#      protocol, all threat models), through Snakemake in a scratch folder, and the plan's
#      estimate (with the fresh calibration) against each stage's measured time
#   3. the batched-vs-sequential benchmarks (benchmarks/train_throughput.py,
#      benchmarks/attack_throughput.py)
# and write every number, with the device name (nvidia-smi -L), under OUT_DIR:
#   summary.md  gpu-check.json  calibration.json  pipeline.log  report.md
#   train_throughput.txt  attack_throughput.txt
#
# usage: scripts/gpu-check.sh [OUT_DIR] [--allow-cpu] [--spec FILE] [--parts LIST] [--quick]
#   OUT_DIR      default: $OUT if set, else ./gpu-check-out
#   --allow-cpu  run on the CPU when no CUDA GPU is visible (to test this script)
#   --spec FILE  another spec for part 2 (its `device:` is replaced by cpu with --allow-cpu)
#   --parts LIST comma-separated subset of calibrate,pipeline,benchmarks (default: all)
#   --quick      smaller calibration and benchmarks (for testing the script)
# Python packages: the repository's .venv if present, else $PYTHON or python3; wheels in
# ./.whl (carried to a machine without network) are installed into a temporary folder first.
# Exit codes: 0 all parts passed; 1 a part failed (the others still ran; see summary.md);
# 2 usage; 3 no CUDA GPU and no --allow-cpu; 4 missing Python packages.
set -uo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
OUT_DIR="${OUT:-./gpu-check-out}"
SPEC="specs/gpu-check.yaml"
PARTS="calibrate,pipeline,benchmarks"
ALLOW_CPU=0
QUICK=0
while [ $# -gt 0 ]; do
  case "$1" in
    --allow-cpu) ALLOW_CPU=1 ;;
    --quick) QUICK=1 ;;
    --spec) SPEC="$2"; shift ;;
    --parts) PARTS="$2"; shift ;;
    -h|--help) sed -n '2,23p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
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
if part_wanted pipeline; then
  mkdir -p "$WORK/specs" "$WORK/workflow"
  cp "$REPO/Snakefile" "$WORK/"; cp -r "$REPO/workflow/rules" "$WORK/workflow/"
  cp "$REPO/specs/paper_tables.yaml" "$WORK/specs/"
  if [ "$DEVICE" = cpu ]; then
    sed 's/^device: .*/device: cpu/' "$SPEC" > "$WORK/specs/check.yaml"
  else
    cp "$SPEC" "$WORK/specs/check.yaml"
  fi
  NAME=$("$PY" -c "import yaml,sys; print(yaml.safe_load(open(sys.argv[1]))['name'])" "$SPEC")
  calibration=(); [ -s "$CAL" ] && calibration=(--calibration "$CAL")
  (cd "$WORK" && "$PY" -m clmrepro.cli compile specs/check.yaml "${calibration[@]}" \
     >> "$OUT_DIR/pipeline.log" 2>&1)
  CORES=$(nproc); [ "$CORES" -gt 8 ] && CORES=8
  (cd "$WORK" && run_part pipeline 300 "$PY" -m snakemake --cores "$CORES" --resources gpu=1 \
     >> "$OUT_DIR/pipeline.log" 2>&1)
  cat "$WORK"/results/"$NAME"/logs/*.log >> "$OUT_DIR/pipeline.log" 2>/dev/null
  cp "$WORK/reports/$NAME/report.md" "$OUT_DIR/report.md" 2>/dev/null
  (cd "$REPO" && "$PY" -m benchmarks.pipeline_stages "$WORK/workflow/compiled/$NAME/plan.json" \
     --root "$WORK" "${calibration[@]}" > "$OUT_DIR/.stages.md" 2>> "$OUT_DIR/pipeline.log")
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
"$PY" - "$OUT_DIR" "$DEVICE" "$DEVICE_NAME" "$GPU_LIST" "$WORK" "$(( $(date +%s) - STARTED ))" <<'EOF'
import json, platform, sys
from pathlib import Path
out, device, name, gpus, work, seconds = sys.argv[1:7]
out = Path(out)
parts = []
for line in (out / ".status.tsv").read_text().splitlines():
    part, code, took, command = line.split("\t", 3)
    parts.append({"part": part, "exit": int(code), "seconds": int(took), "command": command})
import torch
result = {"device": device, "device_name": name, "nvidia_smi": gpus.splitlines(),
          "torch": torch.__version__, "platform": platform.platform(),
          "total_seconds": int(seconds), "parts": parts}
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
        lines = [l for l in path.read_text().splitlines() if l.strip().startswith("{")]
        try:
            result[name_] = json.loads(lines[-1]) if lines else None
        except json.JSONDecodeError:
            result[name_] = None
stages = out / ".stages.md"
(out / "gpu-check.json").write_text(json.dumps(result, indent=2, sort_keys=True) + "\n")
md = [f"# gpu-check on {name}", "", f"- device: {device}; nvidia-smi -L: {gpus or 'none'}",
      f"- torch {torch.__version__}; {platform.platform()}; total {seconds} s", "",
      "| part | exit | seconds | command |", "|---|---|---|---|"]
md += [f"| {p['part']} | {p['exit']} | {p['seconds']} | `{p['command']}` |" for p in parts]
if stages.is_file() and stages.read_text().strip():
    md += ["", "## Plan vs measured per stage (pipeline part)", "", stages.read_text().strip()]
for name_ in ("train_throughput", "attack_throughput"):
    path = out / f"{name_}.txt"
    if path.is_file():
        md += ["", f"## {name_}", "", "```", path.read_text().strip()[-4000:], "```"]
(out / "summary.md").write_text("\n".join(md) + "\n")
EOF
rm -f "$OUT_DIR/.status.tsv" "$OUT_DIR/.stages.md"
rm -rf "$SHIM"
[ -n "${KEEP_WORK:-}" ] || rm -rf "$WORK"
failed=$("$PY" -c "
import json,sys; r=json.load(open(sys.argv[1])); print(' '.join(p['part'] for p in r['parts'] if p['exit']))" "$OUT_DIR/gpu-check.json")
say "done in $(( $(date +%s) - STARTED )) s; results in $OUT_DIR (summary.md)"
if [ -n "$failed" ]; then say "FAILED parts: $failed"; exit 1; fi
exit 0
