"""neuralband tests; run with `make test`."""
