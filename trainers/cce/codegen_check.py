"""Compile the kernels for a GPU architecture without a GPU, and report their resources.

    python -m trainers.cce.codegen_check            # sm_90a (H100 / H200), default blocks
    python -m trainers.cce.codegen_check --all      # every variant the defaults launch
    python -m trainers.cce.codegen_check --tuner    # the benchmark's tuning candidates

Triton lowers the kernels to PTX and ptxas (shipped in the triton wheel) assembles them,
so this catches code that the interpreter accepts but the GPU compiler rejects, and
shows shared memory, registers and spills per configuration: a spill-free default
config is a precondition for speed. Must run with TRITON_INTERPRET unset.
"""

from __future__ import annotations

import argparse
import itertools
import os
import re
import subprocess
import tempfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

import torch

from trainers.cce import triton_config
from trainers.cce.triton_config import BlockConfig

_TRITON_TYPES = {torch.bfloat16: "bf16", torch.float16: "fp16", torch.float32: "fp32"}
# What the JIT specialises at launch: 16-aligned pointers and these ints divisible by 16.
# "aligned": all of them (the shapes); "odd sizes": N and V not (a vocabulary of
# 50257, say); "odd D": none (D or row strides not multiples of 16: rare, slow, spills).
_ALIGNMENTS = {
    "aligned": {"N", "V", "D", "stride_hn", "stride_wv"},
    "odd sizes": {"D", "stride_hn", "stride_wv"},
    "odd D": set(),
}


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


def _compile(fn, types: dict[str, str], consts: dict, cfg: BlockConfig, arch: int, name: str,
             aligned: str = "aligned") -> Resources:  # fmt: skip
    import triton
    from triton.backends.compiler import GPUTarget
    from triton.compiler import ASTSource

    signature = {**types, **dict.fromkeys(consts, "constexpr")}
    attrs = {
        (fn.arg_names.index(k),): [["tt.divisibility", 16]]
        for k, t in types.items()
        if t.startswith("*") or k in _ALIGNMENTS[aligned]
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
                      extras: bool = False, perm: bool = False,
                      aligned: str = "aligned") -> Resources:  # fmt: skip
    """`extras`: bias, softcap and the logit sum on; `perm`: a vocabulary ordering."""
    from trainers.cce.triton_forward import _forward_kernel

    t = _TRITON_TYPES[dtype]
    types = {
        "h_ptr": f"*{t}", "w_ptr": f"*{t}", "b_ptr": f"*{t}", "t_ptr": "*i64", "out_ptr": "*fp32",
        "tmax_ptr": "*fp32", "perm_ptr": "*i32", "N": "i32", "V": "i32", "D": "i32",
        "stride_hn": "i32", "stride_wv": "i32", "blocks_per_split": "i32", "n_splits": "i32",
        "softcap": "fp32",
    }  # fmt: skip
    consts = {
        **_common_consts(dtype, cfg, extras), "NEED_SUM": extras, "HAS_PERM": perm,
        "GROUP_N": cfg.group_n, "FLATTEN": cfg.flatten and not extras,  # as forward_stats
    }  # fmt: skip
    name = f"forward {t}{_flags(extras, perm, aligned)} {cfg}"
    return _compile(_forward_kernel, types, consts, cfg, arch, name, aligned)


def backward_resources(dtype: torch.dtype, cfg: BlockConfig, arch: int = 90,
                       extras: bool = False, fp32_acc: bool = True, perm: bool = False,
                       aligned: str = "aligned",
                       needs: tuple[bool, bool] = (True, True)) -> Resources:  # fmt: skip
    """`fp32_acc`: d_weight into an fp32 piece (the default for half precision), else
    straight into the weight's dtype; `needs`: (d_hidden, d_weight) computed."""
    from trainers.cce.triton_backward import _backward_kernel

    t = _TRITON_TYPES[dtype]
    acc = "fp32" if fp32_acc else t
    types = {
        "h_ptr": f"*{t}", "w_ptr": f"*{t}", "b_ptr": f"*{t}", "t_ptr": "*i64",
        "lse_ptr": "*fp32", "cp_ptr": "*fp32", "co_ptr": "*fp32", "cu_ptr": "*fp32",
        "thr_ptr": "*fp32", "tmax_ptr": "*fp32", "dh_ptr": "*fp32", "dw_ptr": f"*{acc}",
        "db_ptr": "*fp32", "count_ptr": "*i32", "perm_ptr": "*i32", "N": "i32", "V": "i32",
        "D": "i32", "stride_hn": "i32", "stride_wv": "i32", "softcap": "fp32",
        "tile_row0": "i32", "v_block0": "i32", "n_vblocks": "i32", "tmax_div_n": "i32",
        "tmax_div_v": "i32", "tmax_stride": "i32", "dw_row0": "i32",
    }  # fmt: skip
    consts = {
        **_common_consts(dtype, cfg, extras), "PRESKIP": True, "COUNT_TILES": False,
        "HAS_PERM": perm, "DW_BY_ID": perm and not fp32_acc,
        "COMPUTE_DH": needs[0], "COMPUTE_DW": needs[1], "COMPUTE_DB": extras,
        "GROUP_N": cfg.group_n,
    }  # fmt: skip
    what = f"{' fp32-acc' if fp32_acc else ''}{'' if needs[0] else ' no-dh'}"
    what += "" if needs[1] else " no-dw"
    name = f"backward {t}{what}{_flags(extras, perm, aligned)} {cfg}"
    return _compile(_backward_kernel, types, consts, cfg, arch, name, aligned)


def exact_resources(dtype: torch.dtype, cfg: BlockConfig, arch: int = 90,
                    extras: bool = False, aligned: str = "aligned") -> Resources:  # fmt: skip
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
    name = f"exact grad {t}{_flags(extras, False, aligned)} {cfg}"
    return _compile(_grad_logits_kernel, types, consts, cfg, arch, name, aligned)


def _flags(extras: bool, perm: bool, aligned: str) -> str:
    odd = "" if aligned == "aligned" else f" {aligned}"
    return f"{' extras' if extras else ''}{' perm' if perm else ''}{odd}"


def default_checks(dtype: torch.dtype, arch: int = 90) -> list[Resources]:
    """The default configs, each kernel plain and with every option that costs registers."""
    fwd, bwd = triton_config.forward_config(dtype), triton_config.backward_config(dtype)
    return [
        forward_resources(dtype, fwd, arch),
        forward_resources(dtype, fwd, arch, extras=True, perm=True),
        backward_resources(dtype, bwd, arch),
        backward_resources(dtype, bwd, arch, extras=True, perm=True),
        backward_resources(dtype, bwd, arch, extras=True, perm=True, fp32_acc=False),
        exact_resources(dtype, triton_config.exact_config(dtype), arch, extras=True),
    ]


def all_variants(dtype: torch.dtype, arch: int = 90) -> Iterator[Resources]:
    """Every kernel variant the default configs can launch: options x alignment."""
    fwd, bwd = triton_config.forward_config(dtype), triton_config.backward_config(dtype)
    flags = list(itertools.product([False, True], [False, True], _ALIGNMENTS))
    for extras, perm, aligned in flags:
        yield forward_resources(dtype, fwd, arch, extras, perm, aligned)
    needs_list = [(True, True), (True, False), (False, True)]
    for (extras, perm, aligned), needs, fp32_acc in itertools.product(
        flags, needs_list, [True, False]
    ):
        if fp32_acc and not needs[1]:
            continue  # no d_weight: the accumulator type is never used
        yield backward_resources(dtype, bwd, arch, extras, fp32_acc, perm, aligned, needs)
    for extras, aligned in itertools.product([False, True], _ALIGNMENTS):
        yield exact_resources(dtype, triton_config.exact_config(dtype), arch, extras, aligned)


def tuner_checks(dtype: torch.dtype, arch: int = 90) -> Iterator[Resources]:
    """The benchmark's tuning candidates, as it launches them (plain loss, with and without
    a vocabulary ordering), and with every option."""
    for cfg in triton_config.FORWARD_CANDIDATES:
        for extras, perm in [(False, False), (False, True), (True, True)]:
            yield forward_resources(dtype, cfg, arch, extras, perm)
    for cfg in triton_config.BACKWARD_CANDIDATES:
        for extras, perm in [(False, False), (True, True)]:
            yield backward_resources(dtype, cfg, arch, extras, perm=perm)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--arch", type=int, default=90)
    parser.add_argument("--dtype", default="bfloat16", choices=["bfloat16", "float16", "float32"])
    parser.add_argument("--all", action="store_true", help="every kernel variant, not 6")
    parser.add_argument("--tuner", action="store_true", help="the tuning candidates")
    args = parser.parse_args()
    if os.environ.get("TRITON_INTERPRET", "0") == "1":
        raise SystemExit("unset TRITON_INTERPRET: the interpreter compiles nothing")
    import triton

    dtype = getattr(torch, args.dtype)
    print(f"triton {triton.__version__}, sm_{args.arch}a, {args.dtype}", flush=True)
    if args.tuner:
        checks: Iterable[Resources] = tuner_checks(dtype, args.arch)
    elif args.all:
        checks = all_variants(dtype, args.arch)
    else:
        checks = default_checks(dtype, args.arch)
    for r in checks:
        print(f"{r.kernel}: shared {r.shared_bytes} B, {r.registers} registers, "
              f"spills {r.spill_bytes} B", flush=True)  # fmt: skip


if __name__ == "__main__":
    main()
