"""GPUs: which ones a run gets (:mod:`driver.gpus.assign`), the boundary to NVML
(:mod:`driver.gpus.nvml`, the only code that loads the binding) and how one GPU is read through it
(:mod:`driver.gpus.reader`)."""
