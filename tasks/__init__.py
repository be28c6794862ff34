"""Benchmark workloads that bench-driver tasks run (training scripts, searches).

These modules are the workload, not the driver: they import torch and scikit-learn freely.
"""
