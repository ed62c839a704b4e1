#!/usr/bin/env bash
# Reproduces the model bundled in neuralband/data/chorale-folk.{safetensors,json} (the default model before the pop model):
# the music21 corpus's Bach chorales and the folk collections whose licence allows any use
# (O'Neill's 1850, Ryan's Mammoth, Aird's Airs, miscFolk; Essen is left out: non-commercial),
# encoded and trained with the `small` preset (2 x 256 LSTM, about 1.1 M parameters) on a CPU.
# Run from the repository root with neuralband and music21 installed (pip install -e '.[corpus]').
# Optional argument: the data folder (default: data). About 15 minutes on 2 cores.
set -euo pipefail

data="${1:-data}"
m21="$data/music21"

python examples/music21_corpus.py "$m21" --chorales all --folk
neuralband encode "$m21/bach_chorales" "$m21/folk/oneills1850" "$m21/folk/ryansMammoth" \
    "$m21/folk/airdsAirs" "$m21/folk/miscFolk" -o "$data/default-dataset"
neuralband train "$data/default-dataset" -o "$data/default-run" --preset small --steps 1200 \
    --batch 64 --window 256 --eval-every 200 --seed 0 --export-dtype float16
cp "$data/default-run/model.safetensors" neuralband/data/chorale-folk.safetensors
cp "$data/default-run/model.json" neuralband/data/chorale-folk.json
echo "bundled model updated: neuralband/data/chorale-folk.safetensors (+ .json)"
