#!/usr/bin/env bash
# Reproduces the grid model bundled in neuralband/data/grid.{safetensors,json}: the music21
# corpus's Bach chorales on an ensemble grid (sixteenth notes at their 120 bpm; 4 voices, the
# soprano leads; `neuralband encode --voices 4 --lead track:Soprano --grid 120`), the `small`
# preset (2 x 256 LSTM, one embedding per voice's state, a 2,744-class head: the band's three
# states at once) trained on a CPU with transposition by up to 6 semitones. Then scores it: the
# band's NLL with the melody present, hidden and swapped (benchmarks/grid_nll.py), and writes a
# held-out melody's sampled accompaniment for auditioning.
# Run from the repository root with neuralband and music21 installed (pip install -e '.[corpus]').
# Optional argument: the data folder (default: data). About 20 minutes on 2 cores.
set -euo pipefail

data="${1:-data}"
m21="$data/music21"

python examples/music21_corpus.py "$m21" --chorales all
neuralband encode "$m21/bach_chorales" -o "$data/grid-dataset" --voices 4 --lead track:Soprano \
    --grid 120
neuralband train "$data/grid-dataset" -o "$data/grid-run" --preset small --steps 1500 \
    --batch 64 --window 128 --dropout 0.2 --eval-every 100 --eval-windows 128 --seed 0 \
    --transpose 6 --export-dtype float16
cp "$data/grid-run/model.safetensors" neuralband/data/grid.safetensors
cp "$data/grid-run/model.json" neuralband/data/grid.json
python benchmarks/grid_nll.py --model grid --dataset "$data/grid-dataset" \
    --out "$data/grid-audition"
echo "bundled model updated: neuralband/data/grid.safetensors (+ .json)"
