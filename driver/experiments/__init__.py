"""Beyond one run: repeated runs of a task (:mod:`~driver.experiments.repetitions`), experiment
matrices (:mod:`~driver.experiments.matrix`), statistics over repetitions
(:mod:`~driver.experiments.stats`) and ``compare`` (:mod:`~driver.experiments.compare`)."""
