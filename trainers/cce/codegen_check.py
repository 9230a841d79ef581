"""Compile the kernels for a GPU architecture without a GPU, and report their resources.

    python -m trainers.cce.codegen_check            # sm_90 (H100 / H200), default blocks

Triton lowers the kernels to PTX and ptxas (shipped in the triton wheel) assembles them,
so this catches code that the interpreter accepts but the GPU compiler rejects, and
shows shared memory, registers and spills per configuration: a spill-free default
config is a precondition for speed. Must run with TRITON_INTERPRET unset.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import tempfile
from dataclasses import dataclass

import torch

from trainers.cce import triton_config
from trainers.cce.triton_config import BlockConfig

_TRITON_TYPES = {torch.bfloat16: "bf16", torch.float16: "fp16", torch.float32: "fp32"}
# What the JIT specialises at launch for the shapes: 16-aligned pointers and
# sizes / strides divisible by 16.
_DIVISIBLE = {"N", "V", "D", "stride_hn", "stride_wv"}


@dataclass(frozen=True)
class Resources:
    kernel: str
    shared_bytes: int
    registers: int
    spill_bytes: int


def _ptxas_stats(ptx: str, arch: int) -> tuple[int, int]:
    from triton.backends.nvidia.compiler import get_ptxas

    suffix = "a" if arch >= 90 else ""  # sm_90a: the wgmma-enabled Hopper target
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "k.ptx")
        with open(path, "w") as f:
            f.write(ptx)
        out = subprocess.run(
            [get_ptxas(arch).path, f"-arch=sm_{arch}{suffix}", "-v", path, "-o", path + ".cubin"],
            capture_output=True, text=True, check=True,
        )  # fmt: skip
    text = out.stdout + out.stderr
    regs = int(re.search(r"Used (\d+) registers", text).group(1))  # type: ignore[union-attr]
    spills = sum(int(x) for x in re.findall(r"(\d+) bytes spill", text))
    return regs, spills


def _compile(fn, types: dict[str, str], consts: dict, cfg: BlockConfig, arch: int, name: str):
    import triton
    from triton.backends.compiler import GPUTarget
    from triton.compiler import ASTSource

    signature = {**types, **dict.fromkeys(consts, "constexpr")}
    attrs = {
        (fn.arg_names.index(k),): [["tt.divisibility", 16]]
        for k, t in types.items()
        if t.startswith("*") or k in _DIVISIBLE
    }
    src = ASTSource(fn=fn, signature=signature, constexprs=consts, attrs=attrs)
    options = {"num_warps": cfg.num_warps, "num_stages": cfg.num_stages}
    compiled = triton.compile(src, target=GPUTarget("cuda", arch, 32), options=options)
    regs, spills = _ptxas_stats(compiled.asm["ptx"], arch)
    return Resources(name, compiled.metadata.shared, regs, spills)


def _common_consts(dtype: torch.dtype, cfg: BlockConfig, extras: bool) -> dict:
    return {
        "HAS_BIAS": extras, "HAS_SOFTCAP": extras,
        "BLOCK_N": cfg.block_n, "BLOCK_V": cfg.block_v, "BLOCK_D": cfg.block_d,
        "DOT_PRECISION": "ieee" if dtype == torch.float32 else "tf32",
    }  # fmt: skip


def forward_resources(dtype: torch.dtype, cfg: BlockConfig, arch: int = 90,
                      extras: bool = False) -> Resources:  # fmt: skip
    from trainers.cce.triton_forward import _forward_kernel

    t = _TRITON_TYPES[dtype]
    types = {
        "h_ptr": f"*{t}", "w_ptr": f"*{t}", "b_ptr": f"*{t}", "t_ptr": "*i64", "out_ptr": "*fp32",
        "tmax_ptr": "*fp32", "N": "i32", "V": "i32", "D": "i32", "stride_hn": "i32", "stride_wv": "i32",
        "blocks_per_split": "i32", "softcap": "fp32",
    }  # fmt: skip
    consts = {**_common_consts(dtype, cfg, extras), "NEED_SUM": extras}
    return _compile(_forward_kernel, types, consts, cfg, arch, f"forward {t} {cfg}")


def backward_resources(dtype: torch.dtype, cfg: BlockConfig, arch: int = 90,
                       extras: bool = False, fp32_acc: bool = False) -> Resources:  # fmt: skip
    from trainers.cce.triton_backward import _backward_kernel

    t = _TRITON_TYPES[dtype]
    acc = "fp32" if fp32_acc else t
    types = {
        "h_ptr": f"*{t}", "w_ptr": f"*{t}", "b_ptr": f"*{t}", "t_ptr": "*i64",
        "lse_ptr": "*fp32", "cp_ptr": "*fp32", "co_ptr": "*fp32", "cu_ptr": "*fp32",
        "thr_ptr": "*fp32", "tmax_ptr": "*fp32", "dh_ptr": "*fp32", "dw_ptr": f"*{acc}",
        "db_ptr": "*fp32", "count_ptr": "*i32", "N": "i32", "V": "i32", "D": "i32",
        "stride_hn": "i32", "stride_wv": "i32", "softcap": "fp32", "tile_row0": "i32",
    }  # fmt: skip
    consts = {
        **_common_consts(dtype, cfg, extras), "PRESKIP": True, "COUNT_TILES": False, "COMPUTE_DH": True,
        "COMPUTE_DW": True, "COMPUTE_DB": extras, "GROUP_N": cfg.group_n,
    }  # fmt: skip
    name = f"backward {t}{' fp32-acc' if fp32_acc else ''} {cfg}"
    return _compile(_backward_kernel, types, consts, cfg, arch, name)


def exact_resources(dtype: torch.dtype, cfg: BlockConfig, arch: int = 90,
                    extras: bool = False) -> Resources:  # fmt: skip
    from trainers.cce.triton_exact import _grad_logits_kernel

    t = _TRITON_TYPES[dtype]
    types = {
        "h_ptr": f"*{t}", "w_ptr": f"*{t}", "b_ptr": f"*{t}", "t_ptr": "*i64",
        "lse_ptr": "*fp32", "cp_ptr": "*fp32", "co_ptr": "*fp32", "cu_ptr": "*fp32",
        "g_ptr": f"*{t}", "N": "i32", "V": "i32", "D": "i32", "stride_hn": "i32",
        "stride_wv": "i32", "stride_gn": "i32", "v_begin": "i32", "width": "i32",
        "softcap": "fp32",
    }  # fmt: skip
    consts = _common_consts(dtype, cfg, extras)
    return _compile(_grad_logits_kernel, types, consts, cfg, arch, f"exact grad {t} {cfg}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--arch", type=int, default=90)
    parser.add_argument("--dtype", default="bfloat16", choices=["bfloat16", "float16", "float32"])
    args = parser.parse_args()
    if os.environ.get("TRITON_INTERPRET", "0") == "1":
        raise SystemExit("unset TRITON_INTERPRET: the interpreter compiles nothing")
    dtype = getattr(torch, args.dtype)
    fwd, bwd = triton_config.forward_config(dtype), triton_config.backward_config(dtype)
    checks = [
        forward_resources(dtype, fwd, args.arch),
        forward_resources(dtype, fwd, args.arch, extras=True),
        backward_resources(dtype, bwd, args.arch),
        backward_resources(dtype, bwd, args.arch, extras=True, fp32_acc=True),
        exact_resources(dtype, triton_config.exact_config(dtype), args.arch, extras=True),
    ]
    for r in checks:
        print(f"{r.kernel}: shared {r.shared_bytes} B, {r.registers} registers, "
              f"spills {r.spill_bytes} B")  # fmt: skip


if __name__ == "__main__":
    main()
