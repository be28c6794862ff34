"""Which configuration and training seed each (taskid, model_idx) is: drawn up front, reproducibly.

One common seed (:data:`COMMON_SEED`) lives here. Taskid ``t`` draws from its own stream,
``Philox(COMMON_SEED).jumped(t)``: the Philox stream advanced by ``t * 2**128`` draws, so no two
streams of any realistic length share a value. (JAHS-Bench-201 builds stream ``t`` as
``Philox(seed, counter=t)``; Philox's counter counts blocks of four 64-bit outputs, so stream
``t + 1`` is stream ``t`` shifted by four outputs: its "independent" streams overlap. A test shows
both.) From its stream, taskid ``t`` draws for model_idx 0, 1, 2 ... two 63-bit integers each: the
seed of the ``random.Random`` that the space's ``sample`` draws the configuration with, and the
model's training seed. So a (taskid, model_idx) always means the same configuration and seed,
more samples per stream append models, and a new taskid range adds independent samples.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from driver.errors import ConfigError

if TYPE_CHECKING:
    import numpy as np

    from driver.search import SearchSpace

#: The common 128-bit seed of every profile (fixed forever: changing it changes every sample).
COMMON_SEED = 0x6A1D_5EED_2026_0B01_D7A6_E11E_C0FF_EE01
_DRAWS_PER_MODEL = 2  # the configuration's seed, the training seed


@dataclass(frozen=True)
class Sample:
    """What one (taskid, model_idx) trains: a configuration (JSON-able) and a training seed."""

    taskid: int
    model_idx: int
    config: Any
    seed: int

    def to_json(self) -> dict[str, Any]:
        """The sample as written to ``samples.json``."""
        return {"taskid": self.taskid, "model_idx": self.model_idx, "config": self.config,
                "seed": self.seed}


def stream(taskid: int) -> np.random.Generator:
    """The independent random stream of *taskid*."""
    import numpy as np

    return np.random.Generator(np.random.Philox(COMMON_SEED).jumped(taskid))


def draw_samples(space: SearchSpace, taskid: int, samples: int) -> list[Sample]:
    """The first *samples* models of stream *taskid* (model_idx 0 .. samples-1)."""
    draws = stream(taskid).integers(0, 2**63, size=(samples, _DRAWS_PER_MODEL), dtype="uint64")
    drawn = []
    for model_idx, (config_seed, training_seed) in enumerate(draws.tolist()):
        config = space.sample(random.Random(config_seed))
        drawn.append(Sample(taskid, model_idx, _json_config(config, space), training_seed))
    return drawn


def _json_config(config: Any, space: SearchSpace) -> Any:
    """*config* if it survives JSON unchanged (the samples file must mean the same later)."""
    try:
        same = json.loads(json.dumps(config)) == config
    except (TypeError, ValueError):
        same = False
    if not same:
        raise ConfigError(f"search space {space.name!r} sampled {config!r}, which does not "
                          f"round-trip through JSON; datagen stores configurations as JSON "
                          f"(strings, numbers, lists, dicts): give the space such configurations")
    return config
