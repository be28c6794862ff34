"""GPUs: which ones a run gets (:mod:`driver.gpus.assign`) and the boundary to NVML
(:mod:`driver.gpus.nvml`), the only code that loads the binding."""
