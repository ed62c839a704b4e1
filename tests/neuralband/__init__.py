"""Tests of the `neuralband` package's offline modules: runtime, sampling, generate, the CLI."""
