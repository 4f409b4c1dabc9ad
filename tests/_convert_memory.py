"""Child of tests/test_hf_streaming.py: import-hf then export-hf of HF_DIR, each with its peak
resident memory measured from a clean start. WARM_DIR (a small model of the same family) is
converted first, so the modules conversion imports on first use are loaded and counted in the
base, not in the conversion; then VmHWM is reset through /proc/self/clear_refs before each step.
Writes {"import": bytes, "export": bytes, "base": bytes} as JSON to OUT.json.

    python _convert_memory.py WARM_DIR HF_DIR WORK OUT.json
"""

import json
import re
import sys
import warnings


def _status(field: str) -> int:
    with open("/proc/self/status") as f:
        return int(re.search(rf"{field}:\s+(\d+) kB", f.read()).group(1)) * 1024


def _reset_peak() -> None:
    with open("/proc/self/clear_refs", "w") as f:  # "5": reset VmHWM to the current RSS (Linux >= 4.0)
        f.write("5")


def main() -> None:
    warnings.filterwarnings("ignore")
    from plugtron.platform.freed_memory import release_freed_memory

    assert release_freed_memory()  # as the conversion commands do (their process is their own)
    warm, hf_dir, work, out = sys.argv[1:5]
    from plugtron.providers.hf import AutoBridge

    AutoBridge.import_ckpt(warm, f"{work}/warm-mcore")  # imports are not the conversion's memory
    AutoBridge.export_ckpt(f"{work}/warm-mcore", f"{work}/warm-exported")
    peaks = {}
    _reset_peak()
    peaks["base"] = _status("VmRSS")
    AutoBridge.import_ckpt(hf_dir, f"{work}/mcore")
    peaks["import"] = _status("VmHWM")
    _reset_peak()
    AutoBridge.export_ckpt(f"{work}/mcore", f"{work}/exported")
    peaks["export"] = _status("VmHWM")
    with open(out, "w") as f:
        json.dump(peaks, f)


if __name__ == "__main__":
    main()
