#!/usr/bin/env bash
# Reproduces the char-RNN bundled in neuralband/data/colours.{safetensors,json}: matplotlib's
# named colours (examples/colour_names.py, one name a line) as bytes of text (--scheme text),
# the `small` preset (2 x 256 LSTM) for 1,500 steps of 32 windows of 64 bytes on one thread.
# The same three commands as music: encode, train, generate (--length N bytes, --primer TEXT).
# Run from the repository root with neuralband installed. Optional argument: the data folder
# (default: data). About 4 minutes on one core of an Intel Xeon.
set -euo pipefail

data="${1:-data}"

python examples/colour_names.py "$data/colours/colours.txt"
neuralband encode --scheme text "$data/colours" -o "$data/colours-dataset" --piece-bytes 300 \
    --split 80/10/10
neuralband train "$data/colours-dataset" -o "$data/colours-run" --preset small --steps 1500 \
    --batch 32 --window 64 --lr 3e-3 --warmup 100 --eval-every 100 --threads 1 --seed 0 \
    --export-dtype float16
cp "$data/colours-run/model.safetensors" neuralband/data/colours.safetensors
cp "$data/colours-run/model.json" neuralband/data/colours.json
neuralband generate --model colours --length 300 --primer "dusty " --seed 0 \
    -o "$data/colours-generated.txt"
echo "bundled model updated: neuralband/data/colours.safetensors (+ .json)"
