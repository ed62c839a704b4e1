#!/usr/bin/env bash
# Play along with the bundled model on a MIDI keyboard and a synth.
#
# With JACK (e.g. `jackd -d alsa` on a real sound card, or `jackd --no-realtime -d dummy` to try
# it without one) and FluidSynth as the band's voice:
#   fluidsynth -m jack -a jack -i /usr/share/sounds/sf2/FluidR3_GM.sf2 &
# Then see what is there and pick by name (or part of it):
set -euo pipefail
neuralband ports
# Call and response: play a phrase, pause for a second, the band answers for up to 4 s.
# --thru echoes your notes to the synth too; --record keeps both parts as two tracks.
neuralband play --in "${KEYBOARD:-}" --out "${SYNTH:-FLUID}" --mode call --thru \
    --record take.mid "$@"
# A band on a grid instead: the bundled chorale grid model harmonises your melody a sixteenth at
# a time, at the tempo you choose, with a click to play along with:
#   neuralband play --model grid --mode duet --bpm 90 --click --in "${KEYBOARD:-}" --out FLUID
# Then listen to / look at the take:
neuralband audition take.mid
