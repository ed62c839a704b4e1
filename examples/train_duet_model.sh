#!/usr/bin/env bash
# Reproduces the duet model bundled in neuralband/data/duet.{safetensors,json}: the music21
# corpus's Bach chorales as voice-packed tokens (4 voices: the soprano leads, alto, tenor and bass
# answer; `neuralband encode --voices 4 --lead track:Soprano`), the `small` preset (2 x 256 LSTM)
# trained on a CPU with transposition by up to 5 semitones. Then scores it: the band's NLL with the
# melody present and hidden (benchmarks/duet_nll.py), and writes a held-out melody's sampled
# accompaniment for auditioning.
# Run from the repository root with neuralband and music21 installed (pip install -e '.[corpus]').
# Optional argument: the data folder (default: data). About 30 minutes on 2 cores.
set -euo pipefail

data="${1:-data}"
m21="$data/music21"

python examples/music21_corpus.py "$m21" --chorales all
neuralband encode "$m21/bach_chorales" -o "$data/duet-dataset" --voices 4 --lead track:Soprano
neuralband train "$data/duet-dataset" -o "$data/duet-run" --preset small --steps 1500 \
    --batch 64 --window 256 --eval-every 250 --seed 0 --transpose 5 --export-dtype float16
cp "$data/duet-run/model.safetensors" neuralband/data/duet.safetensors
cp "$data/duet-run/model.json" neuralband/data/duet.json
python benchmarks/duet_nll.py --model duet --dataset "$data/duet-dataset" \
    --out "$data/duet-audition"
echo "bundled model updated: neuralband/data/duet.safetensors (+ .json)"
