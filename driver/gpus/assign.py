"""Which GPUs a run gets, and the environment that hands exactly those to the command.

Rules (docs/memory.md has the user's version):

* GPU numbers are NVML indices: PCI bus order, the numbers ``nvidia-smi`` prints.
* The pool is every GPU NVML sees, or, when ``CUDA_VISIBLE_DEVICES`` is set in the driver's
  environment (by a scheduler such as Slurm, or by the user), the GPUs it lists: indices or GPU
  UUIDs (``GPU-8932f937-...``, a unique prefix is enough). As CUDA does, the list ends at the
  first negative index, so ``CUDA_VISIBLE_DEVICES=-1`` (or ``""``) is an empty pool.
* ``num_gpus=N`` takes the first N GPUs of the pool; ``explicit`` (``--gpus 0,3``) takes those
  NVML indices, which must be in the pool.
* The command gets ``CUDA_VISIBLE_DEVICES`` naming exactly the assigned GPUs (in the form the pool
  used: indices or UUIDs) and ``CUDA_DEVICE_ORDER=PCI_BUS_ID``, so that CUDA numbers the GPUs as
  NVML does: without it CUDA orders "fastest first", and on a machine with mixed GPU models
  index 0 would be a different card from NVML's (and nvidia-smi's) GPU 0.
* Too many GPUs asked for is a :class:`ConfigError` that lists what exists, before anything runs.
* Without NVML, N > 0 is refused, unless GPU sampling is off: then the GPUs are handed over
  unchecked (the first N of ``CUDA_VISIBLE_DEVICES``, or 0..N-1) and ``verified`` is False.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping, Sequence

from driver.errors import ConfigError
from driver.gpus.nvml import GpuInfo, NvmlUnavailable, list_gpus, nvml_session

CUDA_VISIBLE_DEVICES = "CUDA_VISIBLE_DEVICES"
CUDA_DEVICE_ORDER = "CUDA_DEVICE_ORDER"


@dataclass(frozen=True)
class GpuAssignment:
    """The GPUs handed to one run."""

    indices: tuple[int, ...]  # NVML indices; () for a CPU run, or when unknown (see verified)
    cuda_visible_devices: str  # the child's CUDA_VISIBLE_DEVICES: "0,3", "GPU-...", "" for CPU
    verified: bool = True  # False: NVML was unavailable, nothing was checked against the machine

    @property
    def count(self) -> int:
        """How many GPUs the command gets."""
        return len([e for e in self.cuda_visible_devices.split(",") if e])


@dataclass(frozen=True)
class _PoolEntry:
    index: int | None  # NVML index; None for a UUID not resolved (no NVML)
    text: str  # as it is handed to the command


def assign_gpus(
    num_gpus: int,
    explicit: Sequence[int] | None,
    environ: Mapping[str, str],
    *,
    gpu_sampling: bool = True,
) -> GpuAssignment:
    """Pick the run's GPUs; raise :class:`ConfigError` (before anything starts) when impossible.

    *num_gpus* is how many (``--num-gpus`` / the task's ``num_gpus``); *explicit* the NVML
    indices of ``--gpus 0,3`` or None; *environ* the driver's environment (its
    ``CUDA_VISIBLE_DEVICES`` is the pool). With *gpu_sampling* False a missing NVML is not an
    error. ``num_gpus=0`` never touches NVML and gives a CPU run.
    """
    _check_request(num_gpus, explicit)
    if num_gpus == 0:
        return GpuAssignment((), "")
    pool_text = environ.get(CUDA_VISIBLE_DEVICES)
    try:
        with nvml_session() as nvml:
            gpus = list_gpus(nvml)
    except NvmlUnavailable as exc:
        if gpu_sampling:
            raise NvmlUnavailable(
                f"{exc}. {_request(num_gpus, explicit)} needs NVML to check the GPUs and sample "
                f"their memory; install the NVIDIA driver and nvidia-ml-py, set --num-gpus 0 "
                f"for a CPU run, or pass --no-gpu-sampling to hand the GPUs to the command "
                f"unchecked."
            ) from exc
        return _unchecked(num_gpus, explicit, pool_text)
    pool = _pool(pool_text, gpus)
    chosen = _choose(num_gpus, explicit, pool, pool_text, gpus)
    return GpuAssignment(
        indices=tuple(e.index for e in chosen if e.index is not None),
        cuda_visible_devices=",".join(e.text for e in chosen),
    )


def child_environment(assignment: GpuAssignment) -> dict[str, str]:
    """The variables to set (overriding the driver's own) in the command's environment."""
    env = {CUDA_VISIBLE_DEVICES: assignment.cuda_visible_devices}
    if assignment.cuda_visible_devices:
        env[CUDA_DEVICE_ORDER] = "PCI_BUS_ID"  # CUDA's numbering = NVML's = nvidia-smi's
    return env


def _check_request(num_gpus: int, explicit: Sequence[int] | None) -> None:
    if num_gpus < 0:
        raise ConfigError(f"num_gpus must be 0 or more, got {num_gpus!r}")
    if explicit is None:
        return
    bad = [i for i in explicit if i < 0]
    if bad:
        raise ConfigError(f"--gpus: GPU indices are 0 or more, got {bad[0]!r}")
    doubled = sorted({i for i in explicit if list(explicit).count(i) > 1})
    if doubled:
        raise ConfigError(f"--gpus names GPU {doubled[0]} twice: {_join(explicit)!r}")
    if len(explicit) != num_gpus:
        raise ConfigError(
            f"--gpus {_join(explicit)} names {len(explicit)} GPU(s) but num_gpus is {num_gpus}; "
            f"make them agree (or leave out --num-gpus)"
        )


def _pool(pool_text: str | None, gpus: Sequence[GpuInfo]) -> list[_PoolEntry]:
    """The GPUs the driver may hand out, resolved against NVML."""
    if pool_text is None:
        return [_PoolEntry(g.index, str(g.index)) for g in gpus]
    pool: list[_PoolEntry] = []
    for token in _tokens(pool_text):
        index = _resolve(token, gpus, pool_text)
        if any(e.index == index for e in pool):
            raise ConfigError(
                f"{CUDA_VISIBLE_DEVICES}={pool_text!r} names GPU {index} twice; CUDA would "
                f"refuse it too"
            )
        pool.append(_PoolEntry(index, token))
    return pool


def _tokens(pool_text: str) -> list[str]:
    """The entries of CUDA_VISIBLE_DEVICES up to the first negative index or empty entry."""
    tokens = []
    for token in (t.strip() for t in pool_text.split(",")):
        if not token or (token.lstrip("-").isdigit() and int(token) < 0):
            break  # CUDA ignores the rest of the list too
        tokens.append(token)
    return tokens


def _resolve(token: str, gpus: Sequence[GpuInfo], pool_text: str) -> int:
    """NVML index of one CUDA_VISIBLE_DEVICES entry; ConfigError when NVML has no such GPU."""
    where = f"{CUDA_VISIBLE_DEVICES}={pool_text!r}: entry {token!r}"
    if token.isdigit():
        if int(token) < len(gpus):
            return int(token)
        raise ConfigError(f"{where} is not a GPU of this machine. {_machine(gpus)}")
    if token.upper().startswith("MIG-"):
        raise ConfigError(
            f"{where} is a MIG instance; bench-driver assigns and samples whole GPUs only. "
            f"Use whole-GPU entries, or --no-gpu-sampling on a machine without NVML"
        )
    if token.upper().startswith("GPU-"):
        matches = [g for g in gpus if g.uuid.lower().startswith(token.lower())]
        if len(matches) == 1:
            return matches[0].index
        problem = "matches several GPUs" if matches else "matches no GPU"
        raise ConfigError(f"{where} {problem}. {_machine(gpus)}")
    raise ConfigError(
        f"{where} is neither a GPU index nor a GPU UUID (GPU-...). {_machine(gpus)}"
    )


def _choose(
    num_gpus: int,
    explicit: Sequence[int] | None,
    pool: list[_PoolEntry],
    pool_text: str | None,
    gpus: Sequence[GpuInfo],
) -> list[_PoolEntry]:
    if explicit is None:
        if num_gpus > len(pool):
            raise ConfigError(
                f"{_asked(num_gpus)} but only {len(pool)} "
                f"{'is' if len(pool) == 1 else 'are'} available. {_machine(gpus)}"
                f"{_pool_note(pool, pool_text)} Lower num_gpus (--num-gpus)"
                f"{' or widen CUDA_VISIBLE_DEVICES' if pool_text is not None else ''}."
            )
        return pool[:num_gpus]
    by_index = {e.index: e for e in pool}
    missing = [i for i in explicit if i not in by_index]
    if missing:
        raise ConfigError(
            f"--gpus {_join(explicit)}: GPU {missing[0]} is not available. {_machine(gpus)}"
            f"{_pool_note(pool, pool_text)} Choose among the GPUs listed."
        )
    return [by_index[i] for i in explicit]


def _unchecked(num_gpus: int, explicit: Sequence[int] | None, pool_text: str | None) -> GpuAssignment:
    """No NVML and GPU sampling off: hand the GPUs over as asked, checking only the pool size."""
    pool = _tokens(pool_text) if pool_text is not None else [str(i) for i in range(num_gpus)]
    if explicit is not None:
        if pool_text is not None and not set(map(str, explicit)) <= set(pool):
            raise ConfigError(
                f"--gpus {_join(explicit)} is not within {CUDA_VISIBLE_DEVICES}={pool_text!r} "
                f"(without NVML, --gpus must name index entries of that list)"
            )
        chosen = [str(i) for i in explicit]
    elif num_gpus > len(pool):
        raise ConfigError(
            f"{_asked(num_gpus)} but {CUDA_VISIBLE_DEVICES}={pool_text!r} lists only "
            f"{len(pool)} (NVML is not available to say more)"
        )
    else:
        chosen = pool[:num_gpus]
    numeric = all(t.isdigit() for t in chosen)
    indices = tuple(int(t) for t in chosen) if numeric else ()
    return GpuAssignment(indices, ",".join(chosen), verified=False)


def _request(num_gpus: int, explicit: Sequence[int] | None) -> str:
    return f"--gpus {_join(explicit)}" if explicit is not None else f"num_gpus={num_gpus}"


def _asked(num_gpus: int) -> str:
    return f"num_gpus={num_gpus} asks for {num_gpus} GPU{'s' if num_gpus != 1 else ''}"


def _machine(gpus: Sequence[GpuInfo]) -> str:
    if not gpus:
        return "NVML sees no GPUs on this machine."
    listing = "; ".join(g.describe() for g in gpus)
    return f"NVML sees {len(gpus)} GPU{'s' if len(gpus) != 1 else ''}: {listing}."


def _pool_note(pool: Sequence[_PoolEntry], pool_text: str | None) -> str:
    if pool_text is None:
        return ""
    members = ", ".join(str(e.index) for e in pool) or "none"
    return f" {CUDA_VISIBLE_DEVICES}={pool_text!r} limits the pool to GPUs: {members}."


def _join(indices: Sequence[int]) -> str:
    return ",".join(str(i) for i in indices)
