"""Tests of `neuralband/live/`: the engine, ports, sync, the view, on fake clocks and real JACK."""
