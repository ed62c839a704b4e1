#!/usr/bin/env bash
# Generate four 30-second variations with the bundled model, continue a chorale, and audition
# them: WAVs and piano rolls beside the files, one comparison sheet, and an HTML page.
set -euo pipefail
OUT=${1:-out/gen}
neuralband generate --seconds 30 -n 4 --seed 1 -o "$OUT"
neuralband generate --primer "$(python -c 'from neuralband.roundtrip import bundled_example as b; print(b())')" \
    --seconds 20 --temperature 0.9 -o "$OUT/continued.mid"
neuralband audition "$OUT"/generated-*.mid --pianoroll "$OUT/variations.png"
neuralband audition --html "$OUT"
echo "open $OUT/index.html in a browser"
