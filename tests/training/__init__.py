"""Tests of `training/`: datasets, windows, baselines and training runs."""
