#!/usr/bin/env bash
# Reproduces the beat-reading `pop` model bundled in neuralband/data/pop.{safetensors,json}: the
# key-and-density `pop` model of examples/train_pop_model.sh (run that first: it leaves
# data/pop-dataset and data/pop-run/model.*), fine-tuned to also read the beat control
# (`--beat`: where each event sits in the beat and the bar and how long a beat is, from POP909's
# own beat annotations, beat_midi.txt, which `encode` keeps in the dataset's manifest). Its new
# inputs start at zero weight (`--init`), so training starts from exactly what it played.
# Run from the repository root with neuralband installed. Optional arguments: the POP909 folder
# (default: ../shared/data/pop909), the data folder (default: data) and the model to start from
# (default: data/pop-run/model; the key-and-density model this script's bundled result began
# from was the one bundled before it, identical to that run's).
# 73 minutes on one core of a 2-core AMD EPYC (AVX-512 BF16), beside the duet's fine-tune on the
# other: 1,200 steps, 3.6 s a step. Validation NLL (running free / with the true controls):
# 2.3594 / 2.3353 before; 2.3721 / 2.3106 at step 200, 2.3369 / 2.2591 at 600, 2.3137 / 2.2299 at
# 1,200 (data/pop-beat-run/metrics.csv).
set -euo pipefail

pop909="${1:-../shared/data/pop909}"
data="${2:-data}"
base="${3:-$data/pop-run/model}"

# Re-encoding keeps the beats beside each piece (an older dataset folder has none: re-encode).
[ -f "$data/pop-dataset/settings.json" ] || \
    neuralband encode "$pop909" -o "$data/pop-dataset" --no-sustain
neuralband train "$data/pop-dataset" -o "$data/pop-beat-run" --preset medium --steps 1200 \
    --batch 64 --window 256 --lr 1e-3 --min-lr 5e-5 --warmup 50 --transpose 5 --stretch 0.05 \
    --eval-every 200 --eval-windows 256 --controls --beat --init "$base" --threads 1 --seed 0 \
    --export-dtype float16
cp "$data/pop-beat-run/model.safetensors" neuralband/data/pop.safetensors
cp "$data/pop-beat-run/model.json" neuralband/data/pop.json
python benchmarks/groove.py --model pop --data "$pop909"
echo "bundled model updated: neuralband/data/pop.safetensors (+ .json)"
