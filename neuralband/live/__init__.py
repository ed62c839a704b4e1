"""The real-time instrument: everything that runs while a musician plays.

`session` is `neuralband play`'s shell (ports, model, signals, status line, recording) around
one of two engines: `engine` follows the player event by event, `grid_engine` plays a grid model
on a clock. `ports` opens MIDI through python-rtmidi, `clock` is the monotonic clock and the
real-time scheduling, `notes_out` tracks every note that leaves (no stuck notes), `sync` follows
and sends MIDI clock and Ableton Link, `panel` holds the live controls that `midimap` (knobs and
pads), `osc` and the browser `view` set, `file_player` plays a MIDI file to a port, and
`ratelog` keeps a flood of bad input to one log line a second.
"""
