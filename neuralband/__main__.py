"""`python -m neuralband` is the `neuralband` command."""

from neuralband.cli import run

run()
