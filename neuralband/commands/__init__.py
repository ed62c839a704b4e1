"""The `neuralband` commands, one function each, grouped by what a user does (`neuralband.cli`)."""
