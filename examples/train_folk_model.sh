#!/usr/bin/env bash
# Reproduces the FolkRNN bundled in neuralband/data/folk.{safetensors,json}: the ABC collections
# of the music21 corpus whose licence allows any use (O'Neill's 1850, Ryan's Mammoth, Aird's Airs,
# miscFolk; Essen is left out: non-commercial) as folk-rnn's tokens, each tune transposed to C
# (`--scheme folk`; 4,184 tunes, 236 refused with their reasons in errors.jsonl), the `medium`
# preset (2 x 512 LSTM; folk-rnn's own was 3 x 512) with dropout 0.2 for 2,000 steps of 32
# windows of 320 tokens on two threads (a window holds a whole tune from its start for 95% of
# tunes, so the model learns how long a tune runs). Then samples 200 tunes and checks them
# beside the valid ones (benchmarks/folk_tunes.py). Run from the repository root with neuralband and music21
# installed (pip install -e '.[corpus]'). Optional argument: the data folder (default: data).
# About 32 minutes on the 2 cores of an AMD EPYC.
set -euo pipefail

data="${1:-data}"
m21="$data/music21"

python examples/music21_corpus.py "$m21" --chorales 1 --folk
neuralband encode --scheme folk "$m21/folk/oneills1850" "$m21/folk/ryansMammoth" \
    "$m21/folk/airdsAirs" "$m21/folk/miscFolk" -o "$data/folk-dataset"
neuralband train "$data/folk-dataset" -o "$data/folk-run" --preset medium --steps 2000 \
    --batch 32 --window 320 --lr 2e-3 --warmup 100 --eval-every 250 --threads 2 --seed 0 \
    --dropout 0.2 --export-dtype float16
cp "$data/folk-run/model.safetensors" neuralband/data/folk.safetensors
cp "$data/folk-run/model.json" neuralband/data/folk.json
python benchmarks/folk_tunes.py --model folk --dataset "$data/folk-dataset" -n 200 \
    --out "$data/folk-generated"
echo "bundled model updated: neuralband/data/folk.safetensors (+ .json)"
