"""Child of tests/test_peft_merge_streaming.py: ``peft merge`` of ADAPTERS with its peak resident
memory measured from a clean start (as ``_convert_memory.py`` measures conversions). WARM_ADAPTERS
(a small run of the same kind) is merged first, so the modules a merge imports on first use are
counted in the base, not in the merge; then VmHWM is reset through /proc/self/clear_refs.
Writes {"merge": bytes, "base": bytes} as JSON to OUT.json.

    python _merge_memory.py WARM_ADAPTERS ADAPTERS WORK OUT.json
"""

import json
import sys
import warnings

from _convert_memory import _reset_peak, _status


def main() -> None:
    warnings.filterwarnings("ignore")
    from plugtron.platform.freed_memory import release_freed_memory

    assert release_freed_memory()  # as the conversion commands do (their process is their own)
    warm, adapters, work, out = sys.argv[1:5]
    from plugtron.providers.peft.merge import merge

    merge(warm, f"{work}/warm-merged")  # imports are not the merge's memory
    _reset_peak()
    peaks = {"base": _status("VmRSS")}
    merge(adapters, f"{work}/merged")
    peaks["merge"] = _status("VmHWM")
    with open(out, "w") as f:
        json.dump(peaks, f)


if __name__ == "__main__":
    main()
