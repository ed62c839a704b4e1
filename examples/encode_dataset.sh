#!/usr/bin/env bash
# Real data to a training dataset in two commands: music21's Bach chorales (MIDI) and folk
# tunes (ABC) -> token shards. Run from the repository root, with neuralband and music21
# installed (pip install -e . music21). Optional argument: the data folder (default: data).
set -euo pipefail

data="${1:-data}"

python examples/music21_corpus.py "$data/music21" --chorales all --folk
neuralband encode "$data/music21" -o "$data/music21-dataset"

echo "dataset ready in $data/music21-dataset; next step: training, which arrives with" \
     "'neuralband train'."
