#!/usr/bin/env bash
# Step 1 of 2: the bundled model is this one fine-tuned to read the beat by examples/train_pop_beat_model.sh,
# which starts from this script's data/*-run/model.
# Reproduces the default model bundled in neuralband/data/pop.{safetensors,json}: POP909's
# piano arrangements (MELODY, BRIDGE and PIANO tracks played as one piano performance; the 809
# songs in ../shared/data/pop909, MIT licence), encoded as key presses (`--no-sustain`: in POP909
# the pedal is often held for minutes, which folded into note lengths makes 0.5% of notes longer
# than 20 s), trained with key and density controls (`--controls`) on the `medium` preset
# (2 x 512 LSTM, 4.0 M parameters) with bf16 autocast on the CPU, transposition by up to 5
# semitones and 5% time stretch. Then measures it (benchmarks/pop_music.py).
# Run from the repository root with neuralband installed. Optional arguments: the POP909 folder
# (default: ../shared/data/pop909) and the data folder (default: data).
# About 75 minutes on one core of an Intel Xeon with AMX (bf16); the second core is free for
# examples/train_pop_duet_model.sh at the same time. (The bundled model ran its first 500 steps
# under a 4,000-step schedule, then was resumed with --steps 2800: the learning rate at step 500
# differs by 1.7% from this script's.)
set -euo pipefail

pop909="${1:-../shared/data/pop909}"
data="${2:-data}"

neuralband encode "$pop909" -o "$data/pop-dataset" --no-sustain
neuralband train "$data/pop-dataset" -o "$data/pop-run" --preset medium --steps 2800 \
    --batch 64 --window 256 --lr 2e-3 --warmup 200 --transpose 5 --stretch 0.05 \
    --eval-every 250 --eval-windows 256 --controls --threads 1 --seed 0 --export-dtype float16
cp "$data/pop-run/model.safetensors" neuralband/data/pop.safetensors
cp "$data/pop-run/model.json" neuralband/data/pop.json
python benchmarks/pop_nll.py --dataset "$data/pop-dataset"
python benchmarks/pop_music.py --model pop --peer chorale-folk --data "$pop909"
echo "bundled model updated: neuralband/data/pop.safetensors (+ .json)"
