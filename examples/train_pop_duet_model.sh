#!/usr/bin/env bash
# Step 1 of 2: the bundled model is this one fine-tuned to read the beat by examples/train_pop_duet_beat_model.sh,
# which starts from this script's data/*-run/model.
# Reproduces the duet model bundled in neuralband/data/pop-duet.{safetensors,json}: POP909's songs
# (../shared/data/pop909, MIT licence) as voice-packed tokens, the sung MELODY track as the lead
# and the PIANO and BRIDGE tracks together as the band (`--voices 2 --lead track:MELODY`; the
# tracks after the lead join the band's one voice), key presses without the pedal (as the pop
# model), the `medium` preset (2 x 512 LSTM) with bf16 autocast on the CPU, with key and density
# controls (`--controls`: the whole arrangement's; accompanying, the band is told the melody's key
# and the density the data's arrangements have under a melody as busy, which `train` keeps in the
# model file as arrangement_density). You play the tune,
# the band plays the arrangement under it: `neuralband play --model pop-duet --mode duet`,
# `neuralband generate --model pop-duet --lead tune.mid`. Then scores it with the melody heard
# and hidden (benchmarks/duet_nll.py) and measures its accompaniment (benchmarks/pop_duet.py).
# Run from the repository root with neuralband installed. Optional arguments: the POP909 folder
# (default: ../shared/data/pop909) and the data folder (default: data).
# About 65 minutes on the 2 cores of an Intel Xeon with AMX (bf16).
set -euo pipefail

pop909="${1:-../shared/data/pop909}"
data="${2:-data}"

neuralband encode "$pop909" -o "$data/pop-duet-dataset" --voices 2 --lead track:MELODY \
    --no-sustain
neuralband train "$data/pop-duet-dataset" -o "$data/pop-duet-run" --preset medium --steps 2000 \
    --batch 64 --window 256 --lr 2e-3 --warmup 150 --transpose 5 --stretch 0.05 \
    --eval-every 250 --eval-windows 256 --controls --threads 2 --seed 0 --export-dtype float16
cp "$data/pop-duet-run/model.safetensors" neuralband/data/pop-duet.safetensors
cp "$data/pop-duet-run/model.json" neuralband/data/pop-duet.json
python benchmarks/duet_nll.py --model pop-duet --dataset "$data/pop-duet-dataset"
python benchmarks/pop_duet.py --model pop-duet --data "$pop909"
echo "bundled model updated: neuralband/data/pop-duet.safetensors (+ .json)"
