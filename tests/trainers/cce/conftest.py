"""Run the Triton kernels in the interpreter on CPU-only machines.

Set before any kernel module is imported: `triton.jit` reads TRITON_INTERPRET when a
kernel is defined, and the kernel modules are imported lazily on first use.
"""

import os

import torch

if not torch.cuda.is_available():
    os.environ.setdefault("TRITON_INTERPRET", "1")
