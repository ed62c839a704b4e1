"""The command line's options: one parser for every command (`build_parser`), each option with
its meaning and its default; the commands themselves are `neuralband.commands`'."""

from __future__ import annotations

import argparse

from neuralband import __version__


def _add_beat_arguments(p: argparse.ArgumentParser, beat_follows: str) -> None:
    """generate's beat options (`neuralband.groove`); ``beat_follows``: whose beat by default."""
    p.add_argument("--bpm", type=float, metavar="BPM",
                   help="a model that reads the beat plays on a steady grid at this tempo "
                        f"(default: follow {beat_follows})")
    p.add_argument("--meter", metavar="N/4",
                   help="beats to the bar for --bpm or the beats found, e.g. 3/4 (default: "
                        "the file's, else 4/4)")
    p.add_argument("--beat", choices=("follow", "free"), default=None,
                   help=f"follow (default): the beat of {beat_follows}; free: no beat "
                        "(rubato)")


def _add_sampling_arguments(p: argparse.ArgumentParser, polyphony: int, follows: str) -> None:
    """The options of how the model plays, shared by generate and play; ``follows`` says what
    --key and --density follow by default."""
    p.add_argument("--temperature", type=float, default=1.0,
                   help="how adventurous the draws are: below 1 safer, above 1 wilder")
    p.add_argument("--top-p", type=float, default=0.95,
                   help="draw from the likeliest events that together hold this share of the "
                        "probability (the waits counted as one choice); 1: from all")
    p.add_argument("--max-polyphony", type=int, default=polyphony,
                   help="the most notes the band holds at once")
    p.add_argument("--max-note", type=float, default=None,
                   help="longest note in seconds (default: the model's, from its training "
                        "data; 5 for models that do not say)")
    p.add_argument("--under-melody", type=float, metavar="NATS",
                   help="a duet band's notes above the melody note sounding are this many nats "
                        "less likely (default 1 for a voice-packed model, 3 for another in "
                        "play --mode duet; 0: as the model plays)")
    p.add_argument("--clash", type=float, metavar="NATS",
                   help="and its notes a second, tritone or seventh from it (default 0.5; 0: "
                        "as the model plays)")
    p.add_argument("--tight", type=float, metavar="NATS",
                   help="on a beat, the band's waits that end on an eighth line are this "
                        "many nats likelier than the others: a quantise strength (default 4 "
                        "for a model that reads the beat; 0: its own timing)")
    p.add_argument("--key", metavar="KEY",
                   help="a conditioned model keeps to this key ('Eb major', 'F#m'); 'follow' "
                        f"(default): the key of {follows}; 'free': no key")
    p.add_argument("--density", metavar="NOTES/S",
                   help="a conditioned model plays about this many notes per second; "
                        f"'follow' (default): as busily as {follows} (a duet model "
                        "hearing a melody: free); 'free'")


def build_parser() -> argparse.ArgumentParser:
    from neuralband.encoders.schemes import scheme_names
    from neuralband.modelfile import BUNDLED

    parser = argparse.ArgumentParser(
        prog="neuralband",
        description="A real-time neural MIDI instrument: encode MIDI, train an LSTM, play along.",
    )
    parser.add_argument("--version", action="version", version=f"neuralband {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    demo = sub.add_parser("demo", help="a built-in player plays; the bundled model answers")
    demo.add_argument("-o", "--out", default="out", help="folder for the session (default: out)")
    demo.add_argument("--melody", help="a MIDI file for the player instead of the chorale")
    demo.add_argument("--seed", type=int, default=1, help="the band's draws, repeatable")
    demo.add_argument("--phrases", type=int, default=3, help="phrases the player plays (3)")
    route = demo.add_mutually_exclusive_group()
    route.add_argument("--jack", action="store_true", help="through JACK (must be running)")
    route.add_argument("--no-jack", action="store_true", help="in-process, even if JACK runs")
    demo.add_argument("--synth", action="store_true",
                      help="hear it as it plays: FluidSynth started for the demo, both parts "
                           "into it, its sound to the system's output (see play --synth)")
    demo.add_argument("--soundfont", metavar="SF2",
                      help="for --synth and the WAV: a General MIDI soundfont (default: "
                           "$NEURALBAND_SOUNDFONT, else Debian's fluid-soundfont-gm)")

    rt = sub.add_parser("roundtrip", help="encode a MIDI file to events and decode it back")
    rt.add_argument("midi", nargs="?", help="a MIDI file instead of the bundled chorale")
    rt.add_argument("-o", "--out", default="out",
                    help="folder for the decoded MIDI (default: out)")

    tokens = sub.add_parser("tokens", help="show the Performance-RNN events of a MIDI file")
    tokens.add_argument("midi", help="a .mid file")
    tokens.add_argument("--limit", type=int, default=40, help="events to list (default 40)")
    tokens.add_argument("--drums", action="store_true", help="keep drum tracks (channel 10)")
    tokens.add_argument("--no-sustain", action="store_true", help="ignore the sustain pedal")
    tokens.add_argument("--voices", type=int, default=0, metavar="N",
                        help="voice-packed tokens (as encode --voices)")
    tokens.add_argument("--lead", default="top", metavar="RULE", help="as encode --lead")
    enc = sub.add_parser("encode", help="encode MIDI folders into a training dataset")
    enc.add_argument("sources", nargs="+",
                     help="MIDI, ABC or (--scheme text) text files or folders (searched "
                          "recursively)")
    enc.add_argument("--scheme", choices=scheme_names(),
                     help="the token scheme (default: events; voices with --voices, grid with "
                          "--grid; text: bytes of .txt files, for a char-RNN; folk: ABC tunes "
                          "as folk-rnn's tokens, transposed to C)")
    enc.add_argument("--piece-bytes", type=int, default=1024, metavar="N",
                     help="--scheme text: a file is cut at line ends into pieces of about N "
                          "bytes, each split train/valid/test on its own (default 1024)")
    enc.add_argument("-o", "--out", required=True, help="dataset folder (made, or grown)")
    enc.add_argument("--workers", type=int, default=None, help="processes (default: all cores)")
    enc.add_argument("--split", default="90/5/5", help="train/valid/test percent (90/5/5)")
    enc.add_argument("--max-notes", type=int, default=500_000, help="refuse longer files")
    enc.add_argument("--max-seconds", type=float, default=4 * 3600.0, help="refuse longer files")
    enc.add_argument("--drums", action="store_true", help="keep drum tracks (channel 10)")
    enc.add_argument("--no-sustain", action="store_true", help="ignore the sustain pedal")
    enc.add_argument("--voices", type=int, default=0, metavar="N",
                     help="voice-packed tokens for duet models: the lead part plus N-1 band "
                          "voices (2: lead and band; 4: SATB)")
    enc.add_argument("--lead", default="top", metavar="RULE",
                     help="with --voices, the part that leads: top (the highest melodic track, "
                          "default), track:NAME, or split:PITCH (a piano's notes >= PITCH)")
    enc.add_argument("--grid", metavar="BPM[/STEPS]",
                     help="with --voices, an ensemble grid for grid models instead of events: "
                          "each voice's state (rest, hold, new note) at every step, STEPS per "
                          "beat at BPM (default 4: sixteenths), e.g. --grid 120")
    enc.add_argument("--strict", action="store_true", help="exit 1 if any file failed")
    enc.add_argument("-q", "--quiet", action="store_true", help="no progress bar")

    from neuralband.live.learner import LEARN_NOTES, ROUND_STEPS
    from neuralband.training.config import add_arguments

    tr = sub.add_parser("train", help="train the event LSTM on a dataset")
    add_arguments(tr)

    gen = sub.add_parser("generate", help="continue a primer (or silence) with the model")
    gen.add_argument("--model", help="model file (default: the bundled model)")
    gen.add_argument("--primer", help="a MIDI file to continue (a text model: the text)")
    gen.add_argument("--lead", metavar="MELODY.mid",
                     help="accompany this melody (a voice-packed or grid model, e.g. --model "
                          "duet or --model grid); "
                          "from a file of several tracks, the track --lead-track names, else "
                          "the model's lead track if the file has it, else its most melody-like "
                          "track (the highest that mostly plays one note at a time)")
    gen.add_argument("--lead-track", metavar="NAME",
                     help="the melody's track in the --lead file (its name, or part of it)")
    gen.add_argument("--seconds", type=float, default=None,
                     help="music to add (default 30); with --lead, the melody's first SECONDS "
                          "are accompanied (default: all of it)")
    gen.add_argument("--length", type=int, default=None, metavar="N",
                     help="tokens to add: events of music (instead of --seconds), bytes of "
                          "text (default 400)")
    _add_sampling_arguments(gen, polyphony=12, follows="the primer (free from silence)")
    _add_beat_arguments(gen, beat_follows="the primer's or the melody's beats (annotations "
                                          "beside it, its tempo map where that fits the "
                                          "notes, else tracked from them); from silence, none")
    gen.add_argument("--seed", type=int, default=None,
                     help="the draws, repeatable (default: new ones every run)")
    gen.add_argument("-n", type=int, default=1, help="variations, in one batched pass")
    gen.add_argument("-o", "--out", required=True,
                     help="a .mid (a text model: .txt) file, or a folder")
    gen.add_argument("-q", "--quiet", action="store_true", help="no progress bar")

    ports = sub.add_parser("ports", help="list the MIDI inputs and outputs (ALSA and JACK)")
    ports.add_argument("--api", choices=("alsa", "jack"), help="only this MIDI API")

    pl = sub.add_parser("play", help="play along live on MIDI ports until Ctrl-C")
    pl.add_argument("--in", dest="inp", metavar="NAME", help="input port, name or part of it")
    pl.add_argument("--out", metavar="NAME", help="output port, name or part of it")
    pl.add_argument("--virtual", action="store_true",
                    help="make our own ports for others to connect to (the start line names "
                         "them; JACK: neuralband:in and neuralband-01:out)")
    pl.add_argument("--api", choices=("alsa", "jack"), help="default: JACK if running, else ALSA")
    pl.add_argument("--mode", choices=("call", "solo", "duet"), default="call",
                    help="call: answer after you pause; solo: play on, steered by you; "
                         "duet: play while you play (default: call)")
    pl.add_argument("--wait", type=float, default=1.0,
                    help="seconds of silence before an answer (call), or played on (duet)")
    pl.add_argument("--answer", type=float, default=4.0, help="longest answer in seconds (call)")
    pl.add_argument("--model", help="model file (default: the bundled model)")
    _add_sampling_arguments(pl, polyphony=8, follows="what you played in the last 20 s")
    pl.add_argument("--channel", type=int, default=1,
                    help="the band's MIDI channel, 1-16 (a duet model's band voices: this and up)")
    pl.add_argument("--thru", action="store_true", help="echo your notes to the output")
    pl.add_argument("--synth", action="store_true",
                    help="hear the band: start FluidSynth (Debian: fluidsynth "
                         "fluid-soundfont-gm) and play into it, its sound to the system's "
                         "output (JACK's playback ports, PulseAudio or ALSA); with --thru "
                         "your notes too")
    pl.add_argument("--soundfont", metavar="SF2",
                    help="with --synth: a General MIDI soundfont (default: "
                         "$NEURALBAND_SOUNDFONT, else Debian's fluid-soundfont-gm)")
    pl.add_argument("--feedback-guard", action="store_true",
                    help="ignore input that echoes our own output within 30 ms")
    pl.add_argument("--record", metavar="FILE.mid", help="write both parts as two tracks")
    pl.add_argument("--takes", metavar="DIR", default=None,
                    help="keep each session you play in as a take here (default: "
                         "$NEURALBAND_TAKES, else ~/.local/share/neuralband/takes)")
    pl.add_argument("--no-takes", action="store_true", help="keep no take of this session")
    pl.add_argument("--learn-me", action="store_true",
                    help="the band learns you while you play (--learn FILE is the controls' MIDI "
                         "learn): a process tunes a copy of the "
                         "model on this session (a new round every --learn-every notes of "
                         "yours), and each new version comes in at a pause; the last is kept "
                         "beside the takes")
    pl.add_argument("--learn-every", type=int, default=LEARN_NOTES, metavar="NOTES",
                    help="with --learn-me: a new round of learning after this many of your "
                         f"notes (default: {LEARN_NOTES})")
    pl.add_argument("--learn-steps", type=int, default=ROUND_STEPS, metavar="STEPS",
                    help=f"with --learn-me: optimizer steps a round (default: {ROUND_STEPS}, "
                         "about 30 s on one core)")
    pl.add_argument("--learn-from", nargs="+", metavar="TAKES", default=None,
                    help="with --learn-me: also learn from these takes (files or folders, e.g. the "
                         "takes folder) (default: this session only)")
    pl.add_argument("--seconds", type=float, default=None, help="stop after this long")
    pl.add_argument("--on-loss", choices=("wait", "exit"), default="wait",
                    help="when a port disappears: wait for it to come back, or exit")
    pl.add_argument("--seed", type=int, default=None,
                    help="the band's draws, repeatable (default: new ones every run)")
    pl.add_argument("--bpm", type=float, default=None,
                    help="the band's tempo in beats per minute: a grid model's grid (default: "
                         "the model's); a model that reads the beat plays on a steady beat at "
                         "it, the first downbeat as it starts (default: a MIDI clock it "
                         "follows, else your taps, else the beat of your playing, tracked)")
    pl.add_argument("--meter", metavar="N/4",
                    help="beats to the bar of a model that reads the beat, e.g. 3/4 "
                         "(default 4/4)")
    pl.add_argument("--beat", choices=("follow", "free"), default=None,
                    help="a model that reads the beat: follow (default) the clock, --bpm, "
                         "your taps or your playing; free: no beat (rubato)")
    pl.add_argument("--grace-ms", type=float, default=None,
                    help="grid models: how long after each grid line the band decides, so a "
                         "note played a little late still counts on it (default 30, at most "
                         "half a step)")
    pl.add_argument("--click", action="store_true",
                    help="a metronome click on channel 10 every beat (a grid model's, or "
                         "with --bpm a beat-reading model's)")
    pl.add_argument("--no-realtime", dest="realtime", action="store_false",
                    help="do not ask real-time scheduling (SCHED_FIFO) for the loop's thread; "
                         "by default it is asked where the system allows it (root, or an "
                         "rtprio limit as the audio group has), and the start line says")
    pl.add_argument("--precision", choices=("auto", "fp32", "int8"), default="auto",
                    help="int8: the model's matrices as int8 (a quarter of the bytes a step "
                         "reads; needs numba: pip install 'neuralband[fast]'); auto (default): "
                         "int8 where numba is installed, else fp32")
    sync = pl.add_argument_group("tempo sync")
    sync.add_argument("--clock", choices=("internal", "midi"), default="internal",
                      help="midi: follow a MIDI clock on the input (24 ppqn, start, stop, "
                           "continue, song position): a grid model's steps are its sixteenths; "
                           "an event model's --wait/--answer are beats; Stop ends the band's "
                           "notes")
    sync.add_argument("--link", action="store_true",
                      help="join an Ableton Link session: a grid model's grid, or a "
                           "beat-reading model's beat, on the session's beat (its --wait and "
                           "--answer then in beats) (needs aalink: pip install "
                           "'neuralband[link]')")
    sync.add_argument("--clock-out", action="store_true",
                      help="grid models: send MIDI clock (start, 24 ppqn, stop) at the band's "
                           "tempo, for a drum machine to follow")
    steer = pl.add_argument_group(
        "live controls", "steer the band while it plays: temperature, density, key, register, "
        "mode, answer, mute, handover, end, panic (docs/steering.md)")
    steer.add_argument("--map", action="append", metavar="SOURCE=CONTROL",
                       help="a knob or pad onto a control: 1=density, 74=temperature, "
                            "note36=handover, 10:note40=panic (channel 10 only); repeatable")
    steer.add_argument("--map-file", metavar="FILE", help="a map file (TOML or JSON, as "
                       "--learn writes it); --map adds to it")
    steer.add_argument("--learn", metavar="FILE", help="ask for each control in turn, take "
                       "the knob or pad you move, write FILE (.toml or .json) and exit")
    steer.add_argument("--in-channel", type=int, metavar="1-16",
                       help="only this channel's notes reach the model (a drum machine or a "
                            "second controller on another channel is left out); mapped "
                            "controls work on any channel unless their map names one")
    steer.add_argument("--osc", metavar="[HOST:]PORT",
                       help="take the controls over OSC: /neuralband/CONTROL value; "
                            "/neuralband/state answers every value (host: 127.0.0.1; another "
                            "needs --osc-allow)")
    steer.add_argument("--osc-allow", metavar="HOST[,HOST]",
                       help="the senders that may steer the band over OSC, where --osc listens "
                            "beyond this machine (a phone, a second laptop); others are "
                            "ignored with a log line (default: none)")
    see = pl.add_argument_group("the live view (docs/view.md)")
    see.add_argument("--view", type=int, nargs="?", const=8765, metavar="PORT",
                     help="serve a page of the roll, the band's plan, its confidence, its "
                          "LSTM cells and the controls at http://127.0.0.1:PORT/ (8765)")
    see.add_argument("--view-host", default="127.0.0.1", metavar="HOST",
                     help="the view's address (default loopback: only this machine)")
    see.add_argument("--view-cells", metavar="L:N,...",
                     help="the cells the view shows (layer:cell, from 0); default: the 32 "
                          "most active")
    pl.add_argument("--settings", metavar="FILE.toml",
                    help="start the setup a --save-settings file keeps (model, mode, key, "
                         "temperature, maps, ports, beat...); options given here win")
    pl.add_argument("--save-settings", metavar="FILE.toml",
                    help="keep this command line's options in a TOML file, to start the same "
                         "band again with --settings (a file that exists is not replaced)")
    pl.set_defaults(parser=pl)

    tk = sub.add_parser("takes", help="list the takes play has kept",
                        description="The sessions play kept (both parts, with the model and "
                                    "settings they were played with): what the band can learn "
                                    "your playing from.")
    tk.add_argument("--takes", metavar="DIR", default=None,
                    help="the takes folder (default: $NEURALBAND_TAKES, else "
                         "~/.local/share/neuralband/takes)")

    from neuralband.training.config import TuneSettings

    t = TuneSettings()
    tu = sub.add_parser(
        "tune", help="fine-tune a model on your takes: a band that plays like you",
        description="Fine-tune MODEL on your takes (or any MIDI files): the player's part of "
                    "each take (a duet model also hears its band), with the controls the model "
                    "was trained with. Windows of music the model already plays are mixed into "
                    "every batch so that it keeps what it knew: its training data with --mix, "
                    "else its own music played before it learns. The result is a model folder "
                    "that --model OUT plays, naming its base, its takes and this command.")
    tu.add_argument("model", metavar="MODEL",
                    help="the model to start from: a bundled name (pop, pop-duet, ...), a "
                         "model file or a run folder")
    tu.add_argument("takes", nargs="*", metavar="TAKES",
                    help="take files or folders, or any MIDI files (default: the take library, "
                         "--takes-dir)")
    tu.add_argument("-o", "--out", required=True,
                    help="the tune folder (the takes' dataset, the run, model.json)")
    tu.add_argument("--takes-dir", metavar="DIR", default=None,
                    help="the take library read when no TAKES are given (default: "
                         "$NEURALBAND_TAKES, else ~/.local/share/neuralband/takes)")
    tu.add_argument("--steps", type=int, default=t.steps,
                    help=f"optimizer steps (default: {t.steps})")
    tu.add_argument("--lr", type=float, default=t.lr,
                    help=f"peak learning rate, decaying to a tenth (default: {t.lr})")
    tu.add_argument("--batch", type=int, default=t.batch,
                    help=f"windows a step, yours and mixed (default: {t.batch})")
    tu.add_argument("--window", type=int, default=t.window,
                    help=f"events a window (default: {t.window}, or less for short takes)")
    tu.add_argument("--mix", metavar="DATASET", default=None,
                    help="the dataset the model was trained on, mixed into every batch (default: "
                         "none; the model's own music instead, --replay-minutes)")
    tu.add_argument("--mix-share", type=float, default=t.mix_share,
                    help=f"the share of each batch that is mixed (default: {t.mix_share})")
    tu.add_argument("--replay-minutes", type=float, default=t.replay_minutes,
                    help="without --mix: minutes of its own music the model plays before it "
                         "learns, mixed in; 0 mixes nothing in (it learns you fastest and "
                         f"forgets the most) (default: {t.replay_minutes:g})")
    tu.add_argument("--seed", type=int, default=t.seed,
                    help=f"seed of the batches and the replay (default: {t.seed})")
    tu.add_argument("--threads", type=int, default=None,
                    help="torch CPU threads (default: torch's choice)")
    tu.add_argument("--force", action="store_true",
                    help="start over in a folder that holds a tune or a run")
    tu.add_argument("-q", "--quiet", action="store_true", help="no progress lines")

    aud = sub.add_parser("audition", help="render MIDI to WAV and piano-roll PNG, or an HTML page")
    aud.add_argument("midi", nargs="*", metavar="FILE.mid",
                     help="MIDI files (default output: FILE.wav and FILE.png beside each)")
    aud.add_argument("-o", "--out", metavar="FILE.wav", help="the WAV of the one MIDI file")
    aud.add_argument("--pianoroll", metavar="FILE.png",
                     help="one sheet with a piano roll per MIDI file, for comparing")
    aud.add_argument("--start", type=float, default=0.0, metavar="S",
                     help="the piano roll from this second (default 0)")
    aud.add_argument("--end", type=float, default=None, metavar="S",
                     help="the piano roll up to this second (default: the end)")
    aud.add_argument("--beats", metavar="REF", nargs="?", const="own",
                     help="draw beat lines behind the piano rolls (bars darker, eighths faint): "
                          "each file's own beats (annotations beside it, its tempo map where "
                          "that fits the notes, else tracked), or REF's, a beat file (POP909's "
                          "beat_midi.txt) or a MIDI file (default: none)")
    aud.add_argument("--soundfont", metavar="SF2", help="default: $NEURALBAND_SOUNDFONT, "
                     "else Debian's fluid-soundfont-gm")
    aud.add_argument("--html", metavar="DIR",
                     help="a PNG and WAV beside every MIDI file in DIR, and DIR/index.html")
    aud.add_argument("--play", metavar="PORT", nargs="?", const="",
                     help="play the files in real time to a MIDI output (name or part of it)")
    aud.add_argument("--api", choices=("alsa", "jack"), help="for --play")
    aud.add_argument("--activations", metavar="OUT.png",
                     help="the model's LSTM cells under the piano roll, and the cells that "
                          "follow musical features (also OUT.json)")
    aud.add_argument("--model", help="for --activations: a model file (default: the bundled "
                     "pop model)")

    sc = sub.add_parser("score", help="a model's NLL per event (nats) on MIDI files",
                        description="How well a model predicts real music: the negative "
                        "log-likelihood of each file's events (nats per event, lower is "
                        "better), a row per file and the mean weighted by events.")
    sc.add_argument("model", metavar="MODEL",
                    help="a model file (NAME, NAME.json), a run folder, or a bundled one: "
                         f"{', '.join(BUNDLED)} (default: pop)")
    sc.add_argument("midi", nargs="+", metavar="FILE",
                    help="MIDI files or folders (searched for .mid/.midi); each is encoded "
                         "with the model's own settings and every event after the first scored")
    sc.add_argument("--batch", type=int, default=8,
                    help="files run side by side in one batched pass (default 8)")
    sc.add_argument("--controls", action="store_true",
                    help="a conditioned model hears each file's own key and density (computed "
                         "from its notes, as a musician would set them); default: it runs free")
    sc.add_argument("--json", action="store_true",
                    help="print one JSON object instead of the table")

    ev = sub.add_parser("evaluate", help="metrics of generated MIDI beside real MIDI",
                        description="A row per metric, a column per set (the mean over its "
                        "files), then the same numbers as one JSON line. The metrics are "
                        "defined in neuralband/evaluate.py's docstring.")
    ev.add_argument("generated", nargs="+", metavar="GENERATED",
                    help="generated MIDI files or folders (searched for .mid/.midi)")
    ev.add_argument("--against", nargs="+", metavar="REAL",
                    help="real MIDI files or folders for the second column; also the "
                         "reference of pc_distance (without it, each file is compared with "
                         "the other files of its set)")
    ev.add_argument("--key", metavar="KEY",
                    help="the key of every file, e.g. 'Eb major', C#m, F#:min (default: "
                         "estimated per file, from the primer if --primer-s, else from the "
                         "range measured; with --accompaniment, from the melody)")
    ev.add_argument("--primer-s", type=float, default=0.0, metavar="S",
                    help="measure after this many seconds of primer (default 0)")
    ev.add_argument("--seconds", type=float, default=None, metavar="S",
                    help="measure this long after the primer (default: to the end)")
    ev.add_argument("--cap", type=float, default=5.0, metavar="S",
                    help="the longest-note cap: notes this long (less 15 ms) count as capped "
                         "(default 5.0, generate's --max-note)")
    ev.add_argument("--accompaniment", action="store_true",
                    help="accompaniment metrics: the track named MELODY or lead (else the "
                         "first) is the melody, the other tracks the band")
    ev.add_argument("--no-sustain", action="store_true",
                    help="read notes as key presses, the sustain pedal not folded in (as the pop "
                         "models were trained; default: folded in, as the encoder does)")
    ev.add_argument("--beats", metavar="REF",
                    help="also on_grid and tempo_held: the onsets (an accompaniment's band's) "
                         "against this reference's eighth-note grid: a beat file (POP909's "
                         "beat_midi.txt) or a MIDI file, whose beats are found as generate "
                         "finds them (default: none)")
    ev.add_argument("--primer-beats", action="store_true",
                    help="the same against each file's own primer's beats (--primer-s), "
                         "carried on at their tempo: does a continuation keep the primer's "
                         "groove")
    ev.add_argument("--json", metavar="OUT", help="also write the JSON line to this file")
    _show_defaults(parser)
    return parser


def _show_defaults(parser: argparse.ArgumentParser) -> None:
    """Every option that takes a value says its default: where its help does not, the value
    (or "none", for an option that is off unless given) is added to it."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                _show_defaults(sub)
        elif (action.option_strings and action.help and action.nargs != 0
              and not action.required and "default" not in action.help):
            value = action.default
            shown = "none" if value is None or value is False else str(value)
            action.help += f" (default: {shown})"


def parse(parser: argparse.ArgumentParser, argv: list[str]) -> argparse.Namespace:
    """Options and files in any order (`audition a.mid --pianoroll x.png b.mid`): the command's
    own parser reads its arguments intermixed, as a shell user writes them."""
    commands = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    if argv and argv[0] in commands.choices:
        args = commands.choices[argv[0]].parse_intermixed_args(argv[1:])
        args.command = argv[0]
        return args
    return parser.parse_args(argv)
