#!/usr/bin/env bash
# Reproduces the beat-reading `pop-duet` model bundled in neuralband/data/pop-duet.*: the duet
# model of examples/train_pop_duet_model.sh (run that first: data/pop-duet-dataset and
# data/pop-duet-run/model.*) fine-tuned to also read the beat control (`--beat`, from POP909's
# beat annotations kept in the dataset's manifest); the new inputs start at zero weight
# (`--init`). Accompanying, the band reads the melody file's beats (generate --lead) or the
# player's (play --mode duet: the beat tracker, --bpm or a MIDI clock).
# Run from the repository root with neuralband installed. Optional arguments: the POP909 folder
# (default: ../shared/data/pop909), the data folder (default: data) and the model to start from
# (default: data/pop-duet-run/model).
# 64 minutes on one core of a 2-core AMD EPYC (AVX-512 BF16), beside the pop fine-tune on the
# other: 1,000 steps, 3.9 s a step. Validation NLL (running free / with the true controls):
# 2.5759 / 2.5557 before; 2.5757 / 2.4981 at step 200, 2.5200 / 2.4109 at 600, 2.4995 / 2.3872 at
# 1,000 (data/pop-duet-beat-run/metrics.csv).
set -euo pipefail

pop909="${1:-../shared/data/pop909}"
data="${2:-data}"
base="${3:-$data/pop-duet-run/model}"

[ -f "$data/pop-duet-dataset/settings.json" ] || \
    neuralband encode "$pop909" -o "$data/pop-duet-dataset" --voices 2 --lead track:MELODY \
        --no-sustain
neuralband train "$data/pop-duet-dataset" -o "$data/pop-duet-beat-run" --preset medium \
    --steps 1000 --batch 64 --window 256 --lr 1e-3 --min-lr 5e-5 --warmup 50 --transpose 5 \
    --stretch 0.05 --eval-every 200 --eval-windows 256 --controls --beat --init "$base" \
    --threads 1 --seed 0 --export-dtype float16
cp "$data/pop-duet-beat-run/model.safetensors" neuralband/data/pop-duet.safetensors
cp "$data/pop-duet-beat-run/model.json" neuralband/data/pop-duet.json
python benchmarks/groove.py --model pop-duet --data "$pop909"
echo "bundled model updated: neuralband/data/pop-duet.safetensors (+ .json)"
