"""The whole suite's set-up, loaded before any test module is collected.

On a machine without a CUDA GPU the Triton kernels run in Triton's interpreter, which
must be on before *anything* imports `triton.language`: `@triton.jit` decides when a
function is defined whether it is interpreted, and Triton's own library functions
(`tl.zeros`, `tl.sum`'s combine...) are defined when `triton.language` is first imported.
Lightning imports it at its own import, so a test module that imports lightning and is
collected before the kernel tests left those functions compiled, and Triton 3.9's
interpreter then refused every kernel ("Cannot call @triton.jit'd outside of the scope of
a kernel"; every interpreter test skipped). Set here, at the root, it is on in time.
"""

import os

try:
    import torch
except ImportError:  # no torch: no kernels to run
    torch = None

if torch is not None and not torch.cuda.is_available():
    os.environ.setdefault("TRITON_INTERPRET", "1")
