"""Writes the old driver's flat result object (``dlbenchmark_result.json`` by default)."""

from __future__ import annotations

from driver.hookspecs import hookimpl
from driver.report import ReportSettings
from driver.results import RunRecord, flat_result, write_json_atomic


class JsonReporter:
    """``[framework.]task.metric[.suffix] -> number``, written atomically; no NaN, ever."""

    def report(self, record: RunRecord, settings: ReportSettings) -> None:
        flat = flat_result(record, settings.framework, settings.metrics_suffix)
        write_json_atomic(settings.output, flat)


@hookimpl
def bench_driver_register_reporters() -> dict[str, object]:
    return {"json": JsonReporter()}
