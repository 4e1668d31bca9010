"""scripts/gpu-check.sh puts this folder on PYTHONPATH: every Python process of the check (each
step) records, at exit, its peak GPU memory and the warnings it saw, in
$CLMREPRO_GPU_CHECK_PROBE/<pid>-<n>.json.  The steps themselves are unchanged."""

import atexit
import json
import os
import sys
import warnings

_FOLDER = os.environ.get("CLMREPRO_GPU_CHECK_PROBE")
if _FOLDER:
    _seen: set[str] = set()
    _show = warnings.showwarning

    def _record(message, category, filename, lineno, file=None, line=None):
        _seen.add(f"{category.__name__}: {str(message).splitlines()[0][:300]} "
                  f"({os.path.basename(filename)}:{lineno})")
        _show(message, category, filename, lineno, file, line)

    warnings.showwarning = _record

    def _write():
        out = {"argv": sys.argv[1:], "warnings": sorted(_seen)}
        torch = sys.modules.get("torch")
        if torch is not None and torch.cuda.is_available() and torch.cuda.is_initialized():
            out["peak_gpu_bytes"] = torch.cuda.max_memory_allocated()
            out["peak_gpu_reserved_bytes"] = torch.cuda.max_memory_reserved()
        with open(os.path.join(_FOLDER, f"{os.getpid()}-{len(os.listdir(_FOLDER))}.json"),
                  "w", encoding="utf-8") as handle:
            json.dump(out, handle)

    atexit.register(_write)
