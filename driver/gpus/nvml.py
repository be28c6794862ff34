"""The boundary to NVML, the NVIDIA Management Library: the only module that loads the binding.

Normally the binding is ``pynvml`` from NVIDIA's ``nvidia-ml-py`` distribution, which loads the
driver's ``libnvidia-ml.so.1``. When the environment variable ``BENCH_DRIVER_NVML_MODULE`` names
an importable module (the Python test double ``tests.fake_nvml``), that module is used instead.
The binding is imported lazily: a run without GPUs never imports it.

How the binding fails matters as much as what it returns: every NVML failure raises an
``NVMLError`` subclass, except that pynvml's unversioned wrappers raise
``NVMLLibraryMismatchError`` (not an ``NVMLError``) when the driver lacks the versioned function
behind them; :func:`nvml_errors` gives both. A GPU that NVML counts may still fail to open (no
permission, lost): listing reports it as a :class:`GpuInfo` with a ``problem`` and goes on.

NVML numbers GPUs by PCI bus id (the order ``nvidia-smi`` shows); every GPU index in bench-driver
is such an NVML index.
"""

from __future__ import annotations

import importlib
import os
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Iterator, Sequence

from driver.errors import ConfigError

MODULE_ENV = "BENCH_DRIVER_NVML_MODULE"
DEFAULT_MODULE = "pynvml"
BYTES_PER_MIB = float(1 << 20)
# NVML return codes (nvml.h), the same in every binding
NOT_SUPPORTED = 3
NO_PERMISSION = 4
FUNCTION_NOT_FOUND = 13
GPU_IS_LOST = 15
ARGUMENT_VERSION_MISMATCH = 25


class NvmlUnavailable(ConfigError):
    """NVML cannot be used on this machine; the message starts with "NVML not available:"."""


@dataclass(frozen=True)
class GpuInfo:
    """One GPU as NVML sees it; ``problem`` says why it cannot be opened ("" when it can)."""

    index: int  # NVML index (PCI bus order)
    name: str = ""
    uuid: str = ""  # "GPU-8932f937-d72c-4106-c12f-20bd9faed9f6"
    total_mib: float = 0.0
    mig: bool = False  # MIG mode is on: the GPU is split into instances
    problem: str = ""

    def describe(self) -> str:
        """``"0: NVIDIA H100 80GB HBM3 (GPU-8932f937..., 81559 MiB)"``, or why it cannot be used."""
        if self.problem:
            return f"{self.index}: cannot be opened: {self.problem}"
        mig = ", MIG mode on" if self.mig else ""
        return f"{self.index}: {self.name} ({self.uuid}, {self.total_mib:.0f} MiB{mig})"


def nvml_errors(nvml: Any) -> tuple[type[BaseException], ...]:
    """What the binding raises when NVML fails: ``NVMLError`` and ``NVMLLibraryMismatchError``."""
    mismatch = getattr(nvml, "NVMLLibraryMismatchError", None)
    return (nvml.NVMLError,) + ((mismatch,) if isinstance(mismatch, type) else ())


def error_code(exc: BaseException) -> int | None:
    """NVML's return code behind *exc* (``NVMLError.value``); None for other exceptions."""
    value = getattr(exc, "value", None)
    return value if isinstance(value, int) else None


def error_text(exc: BaseException) -> str:
    """``"GPU is lost (NVMLError_GpuIsLost)"``: NVML's message with the error class."""
    return f"{exc} ({type(exc).__name__})"


def load_nvml() -> Any:
    """Import the binding and initialise NVML; return the binding module.

    Every successful call must be paired with :func:`shutdown` (NVML counts initialisations).
    Raises :class:`NvmlUnavailable` ("NVML not available: <reason>") when the binding is not
    installed or ``nvmlInit`` fails (no NVIDIA driver, no GPU, a container without the library).
    """
    name = os.environ.get(MODULE_ENV) or DEFAULT_MODULE
    try:
        module = importlib.import_module(name)
    except ImportError as exc:
        if name == DEFAULT_MODULE:
            reason = "the pynvml module is not installed (pip install nvidia-ml-py)"
        else:
            reason = f"{MODULE_ENV}={name!r} cannot be imported: {exc}"
        raise NvmlUnavailable(f"NVML not available: {reason}") from exc
    try:
        module.nvmlInit()
    except nvml_errors(module) as exc:
        raise NvmlUnavailable(
            f"NVML not available: nvmlInit() failed: {error_text(exc)} "
            f"(is the NVIDIA driver installed and a GPU visible to this machine or container?)"
        ) from exc
    return module


def shutdown(nvml: Any) -> None:
    """Undo one :func:`load_nvml`; errors are ignored (there is nothing left to do about them)."""
    try:
        nvml.nvmlShutdown()
    except nvml_errors(nvml):
        pass


@contextmanager
def nvml_session() -> Iterator[Any]:
    """``with nvml_session() as nvml:`` loads NVML and shuts it down again, whatever happens."""
    nvml = load_nvml()
    try:
        yield nvml
    finally:
        shutdown(nvml)


def list_gpus(nvml: Any) -> list[GpuInfo]:
    """Every GPU NVML counts, in NVML index order; one that cannot be opened has a ``problem``.

    Raises :class:`NvmlUnavailable` only when NVML cannot even count the GPUs.
    """
    try:
        count = nvml.nvmlDeviceGetCount()
    except nvml_errors(nvml) as exc:
        raise NvmlUnavailable(f"NVML not available: counting the GPUs failed: {error_text(exc)}")
    return [_gpu_info(nvml, index) for index in range(count)]


def _gpu_info(nvml: Any, index: int) -> GpuInfo:
    try:
        handle = nvml.nvmlDeviceGetHandleByIndex(index)
        return GpuInfo(
            index=index,
            name=_text(nvml.nvmlDeviceGetName(handle)),
            uuid=_text(nvml.nvmlDeviceGetUUID(handle)),
            total_mib=nvml.nvmlDeviceGetMemoryInfo(handle).total / BYTES_PER_MIB,
            mig=mig_enabled(nvml, handle),
        )
    except nvml_errors(nvml) as exc:
        return GpuInfo(index, problem=error_text(exc))


def describe_machine(gpus: Sequence[GpuInfo]) -> str:
    """``"NVML sees 2 GPUs: 0: ...; 1: cannot be opened: ..."``, for error messages."""
    if not gpus:
        return "NVML sees no GPUs on this machine."
    listing = "; ".join(g.describe() for g in gpus)
    return f"NVML sees {len(gpus)} GPU{'s' if len(gpus) != 1 else ''}: {listing}."


def mig_enabled(nvml: Any, handle: Any) -> bool:
    """Whether MIG mode is on; False for GPUs and drivers without MIG."""
    try:
        current, _pending = nvml.nvmlDeviceGetMigMode(handle)
    except nvml_errors(nvml) as exc:
        if error_code(exc) in (NOT_SUPPORTED, FUNCTION_NOT_FOUND):
            return False
        raise
    return bool(current)


def mig_parent_index(nvml: Any, mig_uuid: str) -> int:
    """NVML index of the GPU that holds the MIG instance *mig_uuid* (``MIG-...``).

    Raises the binding's error when NVML does not know the instance.
    """
    instance = nvml.nvmlDeviceGetHandleByUUID(mig_uuid)
    return int(nvml.nvmlDeviceGetIndex(nvml.nvmlDeviceGetDeviceHandleFromMigDeviceHandle(instance)))


def driver_version(nvml: Any) -> str:
    """The NVIDIA driver's version ("550.54.15"), or "" when NVML does not say."""
    errors = nvml_errors(nvml) + (AttributeError,)  # AttributeError: a binding without it
    try:
        return _text(nvml.nvmlSystemGetDriverVersion())
    except errors:
        return ""


def _text(value: str | bytes) -> str:
    # nvidia-ml-py before 11.515 returned bytes for names and UUIDs.
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else value
