"""The boundary to NVML, the NVIDIA Management Library: the only module that loads the binding.

Normally the binding is ``pynvml`` from NVIDIA's ``nvidia-ml-py`` distribution. When the
environment variable ``BENCH_DRIVER_NVML_MODULE`` names an importable module (the test double
``tests.fake_nvml``), that module is used instead, so that end-to-end tests run the very code
paths a GPU machine runs. The binding is imported lazily: a run without GPUs never imports it.

NVML numbers GPUs by PCI bus id (the order ``nvidia-smi`` shows); every GPU index in bench-driver
is such an NVML index.
"""

from __future__ import annotations

import importlib
import os
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Iterator

from driver.errors import ConfigError

MODULE_ENV = "BENCH_DRIVER_NVML_MODULE"
DEFAULT_MODULE = "pynvml"
BYTES_PER_MIB = float(1 << 20)


class NvmlUnavailable(ConfigError):
    """NVML cannot be used on this machine; the message starts with "NVML not available:"."""


@dataclass(frozen=True)
class GpuInfo:
    """One GPU as NVML sees it."""

    index: int  # NVML index (PCI bus order)
    name: str
    uuid: str  # "GPU-8932f937-d72c-4106-c12f-20bd9faed9f6"
    total_mib: float

    def describe(self) -> str:
        """``"0: NVIDIA H100 80GB HBM3 (GPU-8932f937..., 81559 MiB)"``."""
        return f"{self.index}: {self.name} ({self.uuid}, {self.total_mib:.0f} MiB)"


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
    except module.NVMLError as exc:
        raise NvmlUnavailable(
            f"NVML not available: nvmlInit() failed: {error_text(exc)} "
            f"(is the NVIDIA driver installed and a GPU visible to this machine or container?)"
        ) from exc
    return module


def shutdown(nvml: Any) -> None:
    """Undo one :func:`load_nvml`; errors are ignored (there is nothing left to do about them)."""
    try:
        nvml.nvmlShutdown()
    except nvml.NVMLError:
        pass


@contextmanager
def nvml_session() -> Iterator[Any]:
    """``with nvml_session() as nvml:`` loads NVML and shuts it down again."""
    nvml = load_nvml()
    try:
        yield nvml
    finally:
        shutdown(nvml)


def list_gpus(nvml: Any) -> list[GpuInfo]:
    """Every GPU NVML sees, in NVML index order.

    Raises :class:`NvmlUnavailable` when NVML fails while listing them.
    """
    try:
        return [_gpu_info(nvml, index) for index in range(nvml.nvmlDeviceGetCount())]
    except nvml.NVMLError as exc:
        raise NvmlUnavailable(f"NVML not available: listing the GPUs failed: {error_text(exc)}")


def _gpu_info(nvml: Any, index: int) -> GpuInfo:
    handle = nvml.nvmlDeviceGetHandleByIndex(index)
    return GpuInfo(
        index=index,
        name=_text(nvml.nvmlDeviceGetName(handle)),
        uuid=_text(nvml.nvmlDeviceGetUUID(handle)),
        total_mib=nvml.nvmlDeviceGetMemoryInfo(handle).total / BYTES_PER_MIB,
    )


def error_text(exc: BaseException) -> str:
    """``"GPU is lost (NVMLError_GpuIsLost)"``: NVML's message with the error class."""
    return f"{exc} ({type(exc).__name__})"


def _text(value: str | bytes) -> str:
    # nvidia-ml-py before 11.515 returned bytes for names and UUIDs.
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else value
