"""The grid model live (`neuralband.live.grid_engine`): the lead read from note messages as the
offline encoder reads a file, the band's states as MIDI, and the clocked loop, on a fake clock
(exact tick times), in real time in-process, and once between real JACK ports.

The models are small grid LSTMs with random weights, some with one output class biased to win,
so that what the band plays is known.
"""

from __future__ import annotations

import signal
import threading
import time
from collections import Counter
from collections.abc import Callable

import mido
import pytest

from neuralband.encoders.grid import (
    HOLD,
    NEW,
    REST,
    GridSettings,
    default_registers,
    grid_states,
    notes_table,
    output_packer,
    voice_pitch,
)
from neuralband.encoders.performance import DEFAULT_SETTINGS
from neuralband.encoders.schemes import GridScheme
from neuralband.live.band_events import LATE_NOTE_S
from neuralband.live.beat import CLICK_CHANNEL
from neuralband.live.grid_engine import GridEngine, bpm_step_s
from neuralband.live.grid_voices import BandVoices, LeadReader
from neuralband.live.notes_out import OutputNotes
from neuralband.live.session import PortChoice, PortWatch, play
from neuralband.live.turns import PlaySettings
from neuralband.modelfile import bundled_model
from neuralband.runtime import Stepper
from neuralband.sampling import Rules
from tests.helpers.jack import (
    close_listener,
    dumped,
    keyboard,
    left_sounding,
    listener,
    neuralband,
    stop,
    unmatched,
)
from tests.helpers.live import ScriptedPlayer

GRID = GridSettings(0.125, 4, "top")
STEP = GRID.step_s
C_E_G = (NEW + 0, NEW + 4, NEW + 7)  # every band voice strikes a new note
ALL_HOLD = (HOLD, HOLD, HOLD)


def save_grid_model(path, bias: dict[tuple[int, ...], float]):
    """A 4-voice grid LSTM with random weights; ``bias`` lifts chosen band classes' logits."""
    import torch

    from neuralband.model import EventLSTM, ModelConfig, save_model

    torch.manual_seed(0)
    model = EventLSTM(ModelConfig(vocab_size=14**4, out_size=14**3, fields=(14,) * 4,
                                  embed_dim=16, hidden=32, layers=1))
    with torch.no_grad():
        for states, value in bias.items():
            model.head.bias[int(output_packer(GRID).pack(states))] = value
    save_model(path, model, GridScheme(GRID, DEFAULT_SETTINGS))
    return path


@pytest.fixture(scope="session")
def models(tmp_path_factory):
    """random: the band plays what chance gives; strike: C, E and G struck at every tick;
    hold: struck once, then held for ever (a resting voice cannot hold, so it strikes again)."""
    root = tmp_path_factory.mktemp("grid-models")
    return {
        "random": save_grid_model(root / "random", {}),
        "strike": save_grid_model(root / "strike", {C_E_G: 50.0}),
        "hold": save_grid_model(root / "hold", {ALL_HOLD: 50.0, C_E_G: 40.0}),
    }


class Capture:
    """A raw sender that remembers what went out, and when (by ``clock``)."""

    def __init__(self, clock: Callable[[], float] = time.perf_counter) -> None:
        self.sent: list[tuple[float, list[int]]] = []
        self.clock = clock
        self.fail = False

    def __call__(self, data: list[int]) -> None:
        if self.fail:
            raise OSError("port gone")
        self.sent.append((self.clock(), list(data)))

    def notes(self, on: bool = True, channels=range(16)) -> list[tuple[float, list[int]]]:
        status = 0x90 if on else 0x80
        return [(t, d) for t, d in self.sent
                if d[0] & 0xF0 == status and d[0] & 0x0F in channels]


def left_open(sent) -> Counter:
    """(channel, pitch) of NOTE_ONs without a NOTE_OFF after them."""
    held: Counter = Counter()
    for _, d in sent:
        key = (d[0] & 0x0F, d[1])
        if d[0] & 0xF0 == 0x90 and d[2] > 0:
            held[key] += 1
        elif d[0] & 0xF0 in (0x80, 0x90) and held[key]:
            held[key] -= 1
        elif d[0] & 0xF0 == 0xB0 and d[1] == 123:  # All Notes Off
            held = Counter({k: v for k, v in held.items() if k[0] != d[0] & 0x0F})
    return +held


def without_repeats(sent: list[tuple[float, list[int]]]) -> list[tuple[float, list[int]]]:
    """The messages sent, less the NOTE_OFFs repeated for notes already ended."""
    sounding: Counter = Counter()
    out = []
    for t, d in sent:
        key = (d[0] & 0x0F, d[1])
        if d[0] & 0xF0 == 0x90 and d[2] > 0:
            sounding[key] += 1
        elif d[0] & 0xF0 in (0x80, 0x90):
            if not sounding[key]:
                continue
            sounding[key] -= 1
        out.append((t, d))
    return out


class FakeClock:
    def __init__(self, t: float = 100.0) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


def clocked(model, mode: str = "solo", rules: Rules | None = None, click: bool = False,
            **settings) -> tuple[GridEngine, Capture, FakeClock]:
    """A started engine on a fake clock (the grid starts at t=100)."""
    clock = FakeClock()
    out = Capture(clock)
    engine = GridEngine(Stepper.load(model), out, PlaySettings(mode=mode, **settings), rules,
                        seed=1, clock=clock, record=True, click=click)
    engine.start()
    return engine, out, clock


def drive(engine: GridEngine, clock: FakeClock, ticks: range, messages=(),
          between: Callable[[int], None] | None = None) -> None:
    """Run ``ticks`` on the fake clock: each message (seconds from t0, raw) arrives at its time
    and wakes the loop, and the loop runs at each tick's decision time."""
    queue = sorted(messages, key=lambda m: m[0])
    for n in ticks:
        while queue and engine.t0 + queue[0][0] <= engine.due(n):
            t, data = queue.pop(0)
            clock.t = engine.t0 + t
            engine.receive(clock.t, data)
            engine.pump(clock.t)
        clock.t = engine.due(n)
        engine.pump(clock.t)
        if between is not None:
            between(n)


def note(start_step: int, end_step: int, pitch: int, velocity: int = 90):
    """A note's two messages, in seconds on the grid."""
    return [(start_step * STEP, [0x90, pitch, velocity]), (end_step * STEP, [0x80, pitch, 0])]


# --- LeadReader -----------------------------------------------------------------------------------

# (start step, end step, pitch): legato, a rest, a same-pitch re-strike, a chord (the top wins),
# an overlap where the earlier note wins again once the later one ends, a one-step note.
MELODY = [(0, 2, 60), (2, 4, 62), (6, 7, 64), (7, 9, 64), (10, 12, 55), (10, 12, 67),
          (10, 12, 59), (13, 20, 60), (15, 17, 72), (21, 22, 71), (22, 23, 69)]


def read_live(notes, jitter: Callable[[int], float] = lambda step: 0.0,
              grace_s: float = 0.03) -> list[int]:
    """The lead's states as `LeadReader` reads them at each tick's decision time, each message
    moved off its grid line by ``jitter(step)`` seconds."""
    msgs = []
    for s, e, p in notes:
        msgs.append((s * STEP + jitter(s), 1, [0x90, p, 80]))
        msgs.append((e * STEP + jitter(e), 0, [0x80, p, 0]))  # at one instant, offs first
    msgs.sort(key=lambda m: m[:2])
    reader, states = LeadReader(STEP), []
    for n in range(max(e for _, e, _ in notes) + 1):
        while msgs and msgs[0][0] <= n * STEP + grace_s:
            t, _, data = msgs.pop(0)
            reader.message(t, data)
        states.append(reader.tick(n))
    return states


def offline(notes) -> list[int]:
    table = notes_table([(s * STEP, e * STEP, p) for s, e, p in notes])
    n_steps = max(e for _, e, _ in notes) + 1
    return grid_states([table], GridSettings(STEP, 2), n_steps)[:, 0].tolist()


@pytest.mark.parametrize("jitter", [
    lambda step: 0.0,
    lambda step: 0.02,  # the player a little behind the beat: the grace keeps it on
    lambda step: -0.02,  # a little ahead: it rounds to the coming step
    lambda step: ((step * 7) % 5 - 2) * 0.009,  # both, unevenly
], ids=["on-grid", "late", "early", "uneven"])
def test_the_lead_on_the_grid_reads_as_the_offline_encoder_reads_it(jitter):
    expected = offline(MELODY)
    assert read_live(MELODY, jitter) == expected
    assert {HOLD, REST} < set(expected) and expected.count(NEW + 4) == 2  # re-struck E


def test_a_note_between_two_ticks_still_counts_and_rests_and_velocity_follow():
    reader = LeadReader(STEP)
    assert not reader.message(0.01, [0xB0, 64, 127])  # a pedal: not a note
    assert not reader.message(0.01, [0xE0, 0, 64])
    assert reader.tick(0) == REST
    reader.message(0.16, [0x91, 62, 33])  # between ticks 1 and 2, on channel 2
    reader.message(0.17, [0x91, 62, 0])  # note-on velocity 0: the note-off
    assert reader.tick(1) == NEW + 2  # rounds to tick 1, released before tick 1's decision
    assert reader.tick(2) == REST
    assert reader.velocity == 33
    reader.message(0.30, [0x90, 64, 70])
    assert [reader.tick(2), reader.tick(3)] == [NEW + 4, HOLD]
    reader.message(0.45, [0x90, 64, 71])  # struck again without a release: a new note
    assert reader.tick(4) == NEW + 4
    reader.release_all()
    assert reader.tick(5) == REST and not reader.held


def test_a_chord_reads_as_its_top_and_a_late_top_note_takes_over():
    reader = LeadReader(STEP)
    for pitch, t in ((48, 0.0), (67, 0.004), (55, 0.008)):  # a rolled chord: the top wins
        reader.message(t, [0x90, pitch, 80])
    assert reader.tick(0) == NEW + 7
    reader.message(0.25, [0x90, 50, 80])  # a later note wins though lower
    assert [reader.tick(1), reader.tick(2), reader.tick(3)] == [HOLD, NEW + 2, HOLD]


# --- BandVoices -----------------------------------------------------------------------------------

def test_band_voices_turn_states_into_monophonic_notes_on_their_channels():
    out = Capture()
    voices = BandVoices(OutputNotes(out), voices=4, channel=2)
    r1, r2, r3 = default_registers(4)[1:]
    c = voice_pitch(0, r1, r1)
    e = voice_pitch(4, r2, r2)
    f = voice_pitch(5, e, r2)
    g = voice_pitch(7, r3, r3)
    voices.play((NEW + 0, NEW + 4, REST), 90, 0.0)
    voices.play((HOLD, NEW + 5, NEW + 7), 90, 0.1)
    voices.play((REST, HOLD, REST), 90, 0.2)
    voices.play((HOLD, REST, HOLD), 90, 0.3)  # a hold after a rest: nothing to hold
    assert [d for _, d in out.sent] == [
        [0x92, c, 90], [0x93, e, 90],
        [0x83, e, 0], [0x93, f, 90], [0x94, g, 90],
        [0x82, c, 0], [0x84, g, 0],
        [0x83, f, 0],
    ]
    assert not left_open(out.sent)


def test_band_voices_lead_each_voice_near_its_register():
    out = Capture()
    voices = BandVoices(OutputNotes(out), voices=4)
    registers = default_registers(4)[1:]
    for step in range(48):  # each voice climbs by steps: voice leading may not run away
        voices.play(tuple(NEW + (step * 2 + k) % 12 for k in range(3)), 80, step * 0.1)
        assert voices.out.sounding == 3  # one note per voice
    ons = [d for _, d in out.sent if d[0] & 0xF0 == 0x90]
    for channel, register in enumerate(registers):
        pitches = [d[1] for d in ons if d[0] & 0x0F == channel]
        assert len(pitches) == 48 and all(abs(p - register) <= 9 for p in pitches)
    voices.silence()
    assert not left_open(out.sent)


# --- GridEngine on a fake clock ---------------------------------------------------------------

def test_the_band_plays_on_the_ticks_at_the_players_velocity(models):
    engine, out, clock = clocked(models["strike"], "duet", wait_s=0.5)
    drive(engine, clock, range(8), note(0, 8, 60, velocity=77))
    ons = out.notes()
    assert len(ons) == 8 * 3
    pitches = {d[0] & 0x0F: d[1] for _, d in ons}
    registers = default_registers(4)[1:]
    assert pitches == {k: voice_pitch(C_E_G[k] - NEW, registers[k], registers[k])
                       for k in range(3)}
    assert {d[2] for _, d in ons} == {77}
    # Every band message went out at a tick's decision time, grace after its grid line.
    ticks = sorted({round((t - engine.t0 - engine.grace_s) / STEP, 9) for t, _ in out.sent})
    assert ticks == list(range(8))
    assert engine.stats.step_s.count == 8 and engine.stats.timing_s.count == 8
    first = without_repeats(out.sent)  # each NOTE_OFF also goes out again 40 ms later
    assert len(first) < len(out.sent)
    assert engine.stats.absorbed == 1 and engine.stats.band_events == len(first)
    assert [who for _, who, _ in engine.recording].count("band") == len(first)
    engine.stop()
    assert engine.close() == 0
    assert not left_open(out.sent) and engine.out.sounding == 0


def test_duet_stays_silent_without_the_player_and_ends_its_notes_after_him(models):
    engine, out, clock = clocked(models["random"], "duet", wait_s=0.5)
    drive(engine, clock, range(16))
    assert out.sent == []
    drive(engine, clock, range(16, 48), note(16, 20, 64) + note(20, 24, 67))
    ons = [t - engine.t0 for t, _ in out.notes()]
    assert ons and min(ons) >= 16 * STEP  # not before the player came in
    assert max(ons) < 24 * STEP + 0.5 + STEP  # nor after he has been silent for wait_s
    assert engine.out.sounding == 0  # its notes ended by themselves, before close
    assert engine.band.band == (REST, REST, REST)
    assert engine.stats.step_s.count == 48  # the model heard every tick, silent or not
    engine.close()
    assert not left_open(out.sent)


def test_call_answers_after_the_pause_and_stops_when_the_player_comes_back(models):
    engine, out, clock = clocked(models["random"], "call", wait_s=0.5, answer_s=3.0)
    phrase = note(0, 4, 60) + note(4, 8, 62)  # silent from tick 8 (1.0 s) on
    drive(engine, clock, range(24), phrase + note(16, 24, 64))  # back at tick 16, holding
    ons = [t - engine.t0 for t, _ in out.notes()]
    assert ons
    assert min(ons) >= 8 * STEP + 0.5  # the answer waits for the pause
    assert max(ons) < 16 * STEP  # and ends at the first tick the player is back
    assert engine.out.sounding == 0 and engine.band.band == (REST, REST, REST)
    engine.close()
    assert not left_open(out.sent)


def test_a_starved_loop_skips_to_the_current_tick(models):
    engine, out, clock = clocked(models["strike"], "solo")
    clock.t = engine.due(0)
    engine.pump(clock.t)
    clock.t = engine.due(5) + 0.01  # five ticks late: tick 5 now, not 1..5 in a burst,
    sent = len(out.sent)
    engine.pump(clock.t)  # and its notes, 10 ms late, are not sent: the band rests
    assert engine.stats.late == 2 and engine.stats.step_s.count == 2
    assert not [d for _, d in out.sent[sent:] if d[0] & 0xF0 == 0x90 and d[2] > 0]
    clock.t = engine.due(6)
    engine.pump(clock.t)  # on time again: it plays
    assert engine.stats.step_s.count == 3 and engine.stats.late == 2
    assert out.notes()[-1][0] - engine.due(6) <= LATE_NOTE_S  # (the rest's NOTE_OFFs went late)
    engine.close()
    assert not left_open(out.sent)


def test_a_held_band_note_ends_at_the_length_limit_and_the_model_hears_it(models):
    engine, out, clock = clocked(models["hold"], "solo", rules=Rules(max_note_s=0.5))
    drive(engine, clock, range(40))
    starts, lengths = {}, []
    for t, d in out.sent:
        key = (d[0] & 0x0F, d[1])
        if d[0] & 0xF0 == 0x90:
            starts[key] = t
        elif key in starts:
            lengths.append(t - starts.pop(key))
    assert engine.stats.forced_off >= 9 and len(lengths) >= 9
    assert max(lengths) <= 0.5 + STEP  # checked at least once a tick
    # The forced rest reached the model: the voices struck again rather than hold for ever.
    assert len(out.notes()) > 3
    engine.close()
    assert not left_open(out.sent)


def test_a_lost_output_mid_run_stops_the_band_and_close_never_raises(models):
    engine, out, clock = clocked(models["strike"], "solo")
    drive(engine, clock, range(4))
    out.fail = True  # the port is gone
    drive(engine, clock, range(4, 8))
    assert not engine.output_ok
    sent = len(out.sent)
    drive(engine, clock, range(8, 12))
    assert len(out.sent) == sent  # nothing more is tried once the port failed
    assert engine.close() >= 1  # the notes it could not end are reported, not raised
    assert engine.out.sounding == 0


def test_an_output_that_comes_back_is_played_again_with_nothing_left_sounding(models):
    engine, out, clock = clocked(models["strike"], "solo")

    class Port:  # a remote port as PortWatch polls it: listed all along, reachable or not
        port_name = "synth"

        def alive(self) -> bool:
            return True

        def reopen(self) -> bool:
            return not out.fail

    said = []
    watch = PortWatch(engine, Port(), Port(), "wait", said.append)
    back = []

    def between(n: int) -> None:
        out.fail = n in (3, 4, 5)  # tick 4's sends fail; back after tick 6
        watch()
        if n == 6:
            back.append(len(out.sent))

    drive(engine, clock, range(12), between=between)
    assert said == ["output 'synth' disappeared; waiting for it to come back (Ctrl-C to stop)",
                    "output 'synth' is back"]
    assert engine.output_ok and len(out.sent) > back[0]
    assert engine.close() == 0
    assert not left_open(out.sent[back[0]:])  # the synth went away with the earlier notes


def test_the_click_sounds_on_the_grid_line_of_each_beat(models):
    engine, out, clock = clocked(models["random"], "call", click=True)
    for n in range(16):  # the loop wakes at each grid line and each decision time
        for t in (engine.t0 + n * STEP, engine.due(n)):
            clock.t = t
            engine.pump(t)
    clicks = out.notes(channels={CLICK_CHANNEL})
    assert [round((t - engine.t0) / STEP, 9) for t, _ in clicks] == [0, 4, 8, 12]
    assert [d[2] for _, d in clicks] == [110, 70, 70, 70]
    assert len(out.notes(on=False, channels={CLICK_CHANNEL})) == 4  # at ticks 1, 5, 9, 13
    engine.close()
    assert not left_open(out.sent)
    with pytest.raises(ValueError, match="channel 10"):
        GridEngine(Stepper.load(models["random"]), out, PlaySettings(channel=7), click=True)


def test_settings_a_grid_engine_refuses_and_what_play_refuses(models):
    assert bpm_step_s(120) == 0.125
    with pytest.raises(ValueError, match="beats per minute"):
        bpm_step_s(0)
    stepper = Stepper.load(models["random"])
    assert GridEngine(stepper, print, step_s=0.04).grace_s == 0.02  # at most half a step
    with pytest.raises(ValueError, match="grace"):
        GridEngine(stepper, print, grace_s=-0.01)
    with pytest.raises(ValueError, match="not a grid model"):
        GridEngine(Stepper.load(bundled_model()), print)
    with pytest.raises(ValueError, match="for grid models"):  # before any port is opened
        play(PortChoice(), bundled_model("chorale-folk"), bpm=100)  # it reads no beat


# --- GridEngine in real time --------------------------------------------------------------------

def test_a_real_time_duet_with_a_scripted_player(models):
    out = Capture()
    engine = GridEngine(Stepper.load(models["random"]), out, PlaySettings("duet", wait_s=0.2),
                        seed=2, record=True, step_s=0.05)
    phrase = [(0.1 + 0.15 * i + dt, [0x90 if dt == 0 else 0x80, p, 90 if dt == 0 else 0])
              for i, p in enumerate((60, 62, 64, 65)) for dt in (0, 0.12)]
    player = ScriptedPlayer(phrase, lambda data: engine.receive(time.perf_counter(), data))
    threading.Timer(0.05, player.start).start()
    engine.run(1.5)
    player.join()
    assert engine.close() == 0
    assert engine.stats.absorbed == len(phrase) and out.notes()
    assert not left_open(out.sent)
    assert engine.stats.step_s.count >= 10  # ticks went on through the silence


def test_a_signal_stops_the_loop_and_close_releases_every_note(models):
    out = Capture()
    engine = GridEngine(Stepper.load(models["hold"]), out, PlaySettings("solo"), step_s=0.05)
    previous = signal.signal(signal.SIGALRM, lambda *_: engine.stop(from_signal=True))
    try:
        signal.setitimer(signal.ITIMER_REAL, 0.4)
        engine.run()  # no time limit: only the signal ends it
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
    assert engine.stopping and engine.out.sounding == 3  # held notes, sounding when it stopped
    assert engine.close() == 0
    assert engine.out.sounding == 0 and not left_open(out.sent)


# --- between real JACK ports ----------------------------------------------------------------------

def test_play_a_grid_model_between_jack_ports(jack_server, models, tmp_path):
    """`neuralband play --model GRID --bpm 100 --click` as its own process: a looping keyboard
    client leads, the band and the click reach a listener client, and Ctrl-C ends every note."""
    tag = f"grid{time.monotonic_ns() % 10**6}"
    kbd_name, dump_name = f"nbkbd{tag}", f"nbdump{tag}"
    dump_path = tmp_path / "dump.txt"
    dump = listener(dump_name, dump_path)
    kbd = keyboard(kbd_name, loop_s=1.2)  # the phrase over and over: the player never stops
    record = tmp_path / "take.mid"
    proc = neuralband("play", "--api", "jack", "--in", kbd_name, "--out", dump_name,
                      "--model", str(models["random"]), "--mode", "duet", "--bpm", "100",
                      "--click", "--seed", "4", "--record", str(record))
    try:
        time.sleep(4.0)
        assert proc.poll() is None, proc.communicate()
        _, err = stop(proc)
    finally:
        kbd.kill()
        proc.kill()  # a no-op when it has exited; never leave an instrument running
        close_listener(dump)
    assert proc.returncode == 0, err
    assert "Traceback" not in err and "100 bpm" in err
    sent = dumped(dump_path)
    band_on = [m for m in sent if m[0] & 0xF0 == 0x90 and m[2] > 0]
    assert {m[0] & 0x0F for m in band_on} == {0, 1, 2, CLICK_CHANNEL}, err
    assert not left_sounding(sent), f"stuck notes: {left_sounding(sent)}"
    take = mido.MidiFile(record)
    assert {m.note for m in take.tracks[0] if m.type == "note_on"} == {60, 64, 67}
    band = [m.bytes() for m in take.tracks[1] if m.type in ("note_on", "note_off")]
    assert band and not unmatched(band)
