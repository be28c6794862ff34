"""Which GPUs a run gets, and the environment that hands exactly those to the command.

Rules (docs/memory.md has the user's version):

* GPU numbers are NVML indices: PCI bus order, the numbers ``nvidia-smi`` prints.
* The pool is every GPU NVML can open, or, when ``CUDA_VISIBLE_DEVICES`` is set in the driver's
  environment (by a scheduler such as Slurm, or by the user), the devices it lists: indices, GPU
  UUIDs (``GPU-8932f937-...``, a unique prefix is enough) or MIG instance UUIDs (``MIG-...``). As
  CUDA does, the list ends at the first negative index, so ``CUDA_VISIBLE_DEVICES=-1`` (or ``""``)
  is an empty pool.
* A GPU NVML counts but cannot open (no permission, lost) is named in messages and skipped: it
  never blocks the others. ``--gpus`` naming it is an error that says why.
* ``num_gpus=N`` takes the first N usable devices of the pool; ``explicit`` (``--gpus 0,3``) takes
  those NVML indices, which must be in the pool.
* The command gets ``CUDA_VISIBLE_DEVICES`` naming exactly the assigned devices by UUID (NVML does
  not promise CUDA's numbering; a UUID is the same GPU for both) and
  ``CUDA_DEVICE_ORDER=PCI_BUS_ID``, so that CUDA numbers any GPU it is given by index as NVML does.
* Too many GPUs asked for is a :class:`ConfigError` that lists what exists, before anything runs.
* Without NVML the GPUs are handed over unchecked (the first N of ``CUDA_VISIBLE_DEVICES``, or
  0..N-1) and ``verified`` is False; whether such a run may go ahead is the GPU sampler's call
  (plugins/gpu_nvml/ refuses it unless GPU sampling is off). Whether a device can be *sampled*
  (MIG) is decided there too.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping, Sequence

from driver.errors import ConfigError
from driver.gpus.nvml import (GpuInfo, NvmlUnavailable, describe_machine, error_text, list_gpus,
                              mig_parent_index, nvml_errors, nvml_session)

CUDA_VISIBLE_DEVICES = "CUDA_VISIBLE_DEVICES"
CUDA_DEVICE_ORDER = "CUDA_DEVICE_ORDER"


@dataclass(frozen=True)
class GpuAssignment:
    """The GPUs handed to one run."""

    indices: tuple[int, ...]  # NVML indices; () for a CPU run, or when unknown (see verified)
    cuda_visible_devices: str  # the child's CUDA_VISIBLE_DEVICES: "GPU-...,GPU-...", "" for CPU
    verified: bool = True  # False: NVML was unavailable, nothing was checked against the machine

    @property
    def devices(self) -> tuple[str, ...]:
        """The entries of ``cuda_visible_devices``."""
        return tuple(e for e in self.cuda_visible_devices.split(",") if e)

    @property
    def count(self) -> int:
        """How many GPUs the command gets."""
        return len(self.devices)


@dataclass(frozen=True)
class _PoolEntry:
    index: int  # NVML index (of the parent GPU for a MIG instance)
    handover: str  # as handed to the command: the full GPU UUID, or the MIG instance's UUID
    problem: str = ""  # why NVML cannot open it; "" when usable


def assign_gpus(num_gpus: int, explicit: Sequence[int] | None, environ: Mapping[str, str]) -> GpuAssignment:
    """Pick the run's GPUs; raise :class:`ConfigError` (before anything starts) when impossible.

    *num_gpus* is how many (``--num-gpus`` / the task's ``num_gpus``); *explicit* the NVML
    indices of ``--gpus 0,3`` or None; *environ* the driver's environment (its
    ``CUDA_VISIBLE_DEVICES`` is the pool). ``num_gpus=0`` never touches NVML and gives a CPU run.
    """
    _check_request(num_gpus, explicit)
    if num_gpus == 0:
        return GpuAssignment((), "")
    pool_text = environ.get(CUDA_VISIBLE_DEVICES)
    try:
        with nvml_session() as nvml:
            gpus = list_gpus(nvml)
            pool = _pool(nvml, pool_text, gpus)
    except NvmlUnavailable:
        return _unchecked(num_gpus, explicit, pool_text)
    chosen = _choose(num_gpus, explicit, pool, pool_text, gpus)
    return GpuAssignment(tuple(e.index for e in chosen), ",".join(e.handover for e in chosen))


def usable_pool(environ: Mapping[str, str]) -> GpuAssignment:
    """Every usable device of the pool, in pool order: what concurrent runs (``--jobs``) lease
    from. Without NVML: the entries of ``CUDA_VISIBLE_DEVICES`` unchecked, or none."""
    pool_text = environ.get(CUDA_VISIBLE_DEVICES)
    try:
        with nvml_session() as nvml:
            usable = [e for e in _pool(nvml, pool_text, list_gpus(nvml)) if not e.problem]
    except NvmlUnavailable:
        tokens = _tokens(pool_text) if pool_text is not None else []
        return GpuAssignment((), ",".join(tokens), verified=False)
    return GpuAssignment(tuple(e.index for e in usable), ",".join(e.handover for e in usable))


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


def _pool(nvml: Any, pool_text: str | None, gpus: Sequence[GpuInfo]) -> list[_PoolEntry]:
    """The devices the driver may hand out, resolved against NVML."""
    if pool_text is None:
        return [_whole(g) for g in gpus]
    pool: list[_PoolEntry] = []
    for token in _tokens(pool_text):
        entry = _resolve(nvml, token, gpus, pool_text)
        if any(e.index == entry.index and e.handover == entry.handover for e in pool):
            raise ConfigError(
                f"{CUDA_VISIBLE_DEVICES}={pool_text!r} names GPU {entry.index} twice; CUDA would "
                f"refuse it too"
            )
        pool.append(entry)
    return pool


def _whole(gpu: GpuInfo) -> _PoolEntry:
    return _PoolEntry(gpu.index, gpu.uuid, gpu.problem)


def _tokens(pool_text: str) -> list[str]:
    """The entries of CUDA_VISIBLE_DEVICES up to the first negative index or empty entry."""
    tokens = []
    for token in (t.strip() for t in pool_text.split(",")):
        if not token or (token.lstrip("-").isdigit() and int(token) < 0):
            break  # CUDA ignores the rest of the list too
        tokens.append(token)
    return tokens


def _resolve(nvml: Any, token: str, gpus: Sequence[GpuInfo], pool_text: str) -> _PoolEntry:
    """One CUDA_VISIBLE_DEVICES entry; ConfigError when NVML has no such device."""
    where = f"{CUDA_VISIBLE_DEVICES}={pool_text!r}: entry {token!r}"
    if token.isdigit():
        if int(token) < len(gpus):
            return _whole(gpus[int(token)])
        raise ConfigError(f"{where} is not a GPU of this machine. {describe_machine(gpus)}")
    if token.upper().startswith("MIG-"):
        return _PoolEntry(_mig_parent(nvml, token, gpus, where), token)
    if token.upper().startswith("GPU-"):
        matches = [g for g in gpus if g.uuid and g.uuid.lower().startswith(token.lower())]
        if len(matches) == 1:
            return _whole(matches[0])
        problem = "matches several GPUs" if matches else "matches no GPU NVML can open"
        raise ConfigError(f"{where} {problem}. {describe_machine(gpus)}")
    raise ConfigError(
        f"{where} is neither a GPU index, a GPU UUID (GPU-...) nor a MIG UUID (MIG-...). "
        f"{describe_machine(gpus)}"
    )


def _mig_parent(nvml: Any, token: str, gpus: Sequence[GpuInfo], where: str) -> int:
    """NVML index of the GPU holding MIG instance *token* (``MIG-<uuid>`` or the older
    ``MIG-GPU-<gpu uuid>/<gi>/<ci>`` form)."""
    if token.upper().startswith("MIG-GPU-"):
        parent = token[len("MIG-"):].split("/")[0].lower()
        for gpu in gpus:
            if gpu.uuid.lower() == parent:
                return gpu.index
        raise ConfigError(f"{where} names a GPU NVML does not see. {describe_machine(gpus)}")
    try:
        return mig_parent_index(nvml, token)
    except nvml_errors(nvml) as exc:
        raise ConfigError(f"{where} is not a MIG instance NVML can open: {error_text(exc)}. "
                          f"{describe_machine(gpus)}") from exc


def _choose(
    num_gpus: int,
    explicit: Sequence[int] | None,
    pool: list[_PoolEntry],
    pool_text: str | None,
    gpus: Sequence[GpuInfo],
) -> list[_PoolEntry]:
    usable = [e for e in pool if not e.problem]
    if explicit is None:
        if num_gpus > len(usable):
            raise ConfigError(
                f"{_asked(num_gpus)} but only {len(usable)} "
                f"{'is' if len(usable) == 1 else 'are'} available. {describe_machine(gpus)}"
                f"{_pool_note(pool, pool_text)} Lower num_gpus (--num-gpus)"
                f"{' or widen CUDA_VISIBLE_DEVICES' if pool_text is not None else ''}."
            )
        return usable[:num_gpus]
    return [_explicit(index, explicit, pool, pool_text, gpus) for index in explicit]


def _explicit(
    index: int,
    explicit: Sequence[int],
    pool: list[_PoolEntry],
    pool_text: str | None,
    gpus: Sequence[GpuInfo],
) -> _PoolEntry:
    """The pool entry of ``--gpus`` index *index*."""
    entries = [e for e in pool if e.index == index]
    if len(entries) == 1 and not entries[0].problem:
        return entries[0]
    if not entries:
        why = f"GPU {index} is not available"
    elif len(entries) > 1:
        why = f"GPU {index} holds several MIG instances of the pool; choose with --num-gpus"
    else:
        why = f"GPU {index} cannot be used: NVML cannot open it: {entries[0].problem}"
    raise ConfigError(f"--gpus {_join(explicit)}: {why}. {describe_machine(gpus)}"
                      f"{_pool_note(pool, pool_text)} Choose among the GPUs listed.")


def _unchecked(num_gpus: int, explicit: Sequence[int] | None, pool_text: str | None) -> GpuAssignment:
    """No NVML: hand the GPUs over as asked, checking only the pool size."""
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


def _asked(num_gpus: int) -> str:
    return f"num_gpus={num_gpus} asks for {num_gpus} GPU{'s' if num_gpus != 1 else ''}"


def _pool_note(pool: Sequence[_PoolEntry], pool_text: str | None) -> str:
    if pool_text is None:
        return ""
    members = ", ".join(str(e.index) for e in pool) or "none"
    return f" {CUDA_VISIBLE_DEVICES}={pool_text!r} limits the pool to GPUs: {members}."


def _join(indices: Sequence[int]) -> str:
    return ",".join(str(i) for i in indices)
