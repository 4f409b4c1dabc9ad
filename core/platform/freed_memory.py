"""Hand freed tensor memory back to the OS at once, for the commands that stream big tensors.

glibc's ``malloc`` serves a request at or above its mmap threshold with a mapping of its own, which
``free`` unmaps. The threshold starts at 128 KiB and, by default, rises to the size of any mapped
block that is freed (up to 32 MiB on 64-bit): from then on, freed tensors of that size go back to the
heap and stay resident for the next request. A conversion that frees one tensor per step keeps
several of them: streaming `import-hf` of a 1.1 GiB model (largest tensor 148 MiB) peaked at 507 MiB
above its start, and at 334 MiB with a fixed threshold - the bound of twice the largest tensor plus
48 MiB is 344 MiB. Fixing the threshold also turns glibc's adjustment off for the rest of the
process, so only commands that run in a process of their own call this (``convert import-hf`` /
``export-hf``, ``peft merge``), never library functions a user may call from a long-lived process.

A ``MALLOC_MMAP_THRESHOLD_`` the user set in the environment is theirs and stays; not glibc (musl,
macOS): nothing to do. Torch-free.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os

M_MMAP_THRESHOLD = -3  # glibc's mallopt parameter number (malloc.h)
THRESHOLD = 1 << 20  # 1 MiB: every tensor-sized block is its own mapping


def release_freed_memory(threshold: int = THRESHOLD) -> bool:
    """Fix glibc's mmap threshold at ``threshold`` bytes; True if it was set here."""
    if "MALLOC_MMAP_THRESHOLD_" in os.environ:
        return False
    name = ctypes.util.find_library("c")
    if not name:
        return False
    try:
        mallopt = ctypes.CDLL(name).mallopt
    except (OSError, AttributeError):  # not glibc
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    return mallopt(M_MMAP_THRESHOLD, int(threshold)) == 1
