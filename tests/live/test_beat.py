"""The band's beat live: the tracker following a player (lock, tempo change, rubato, silence),
taps, the order of the sources, and the engine placing the model's beat clock (on a fake clock)
and sounding --click."""

from __future__ import annotations

import numpy as np
import pytest

from neuralband.live.beat import (
    CLICK_CHANNEL,
    BeatTracker,
    Click,
    Grid,
    LiveBeat,
    TapTempo,
    steady,
)
from tests.helpers import models
from tests.helpers.fake_clock import ClockedCapture, FakeClock, drive

SEEDS = range(20)


def player(rng, bpm: float, beats: float, start: float = 0.0, jitter: float = 0.015):
    """A steady player's onsets: eighths, quarters, dotted quarters and halves at ``bpm``,
    with timing jitter; and when the phrase ends."""
    period = 60.0 / bpm
    times, beat = [], 0.0
    while beat < beats:
        times.append(start + beat * period + rng.normal(0, jitter))
        beat += float(rng.choice([0.5, 0.5, 1.0, 1.0, 1.5, 2.0]))
    return np.array(times), start + beats * period


def grid_error(grid: Grid, t: float, origin: float, period: float) -> float:
    """How far (seconds) the grid's eighth lines are from the true ones at ``t``."""
    off = ((grid.beat_at(t) - (t - origin) / period) * 2) % 1.0
    return min(off, 1.0 - off) * period / 2


def test_the_tracker_locks_to_a_steady_player_within_a_few_beats():
    locked_after, errors, tempo = [], [], []
    for seed in SEEDS:
        rng = np.random.default_rng(seed)
        tracker = BeatTracker()
        onsets, _ = player(rng, 96, 24)
        lock = None
        for t in onsets:
            tracker.onset(t, 90, 64)
            if tracker.grid is not None and lock is None:
                lock = t / (60 / 96)
        locked_after.append(lock if lock is not None else np.inf)
        errors.append(grid_error(tracker.grid, onsets[-1], 0.0, 60 / 96))
        tempo.append(abs(tracker.grid.bpm / 96 - 1))
    assert np.median(locked_after) <= 6 and max(locked_after) <= 12
    assert np.mean(errors) < 0.02
    assert np.mean(tempo) < 0.01 and max(tempo) < 0.05


def test_the_tracker_follows_a_tempo_change_within_two_bars():
    relocked = []
    for change in (1.1, 0.9):
        for seed in SEEDS:
            rng = np.random.default_rng(seed)
            tracker = BeatTracker()
            first, end = player(rng, 96, 24)
            second, _ = player(rng, 96 * change, 24, start=end)
            for t in first:
                tracker.onset(t, 90, 64)
            period = 60 / (96 * change)
            last_off = 0.0  # the last onset (in beats of the new tempo) the grid was off at
            for t in second:
                tracker.onset(t, 90, 64)
                if tracker.grid is None or grid_error(tracker.grid, t, end, period) > 0.04:
                    last_off = (t - end) / period
            relocked.append(last_off)
    assert np.median(relocked) <= 4
    assert np.mean(np.array(relocked) <= 8) >= 0.9


def test_the_tracker_lets_go_of_rubato_and_keeps_the_beat_through_silence():
    free = []
    for seed in SEEDS:
        rng = np.random.default_rng(seed)
        tracker = BeatTracker()
        onsets, _ = player(rng, 100, 20)
        for t in onsets:
            tracker.onset(t, 90, 64)
        assert tracker.grid is not None
        kept = tracker.grid  # the player stops: the band keeps the tempo it had
        assert kept is not None and kept.bpm == pytest.approx(100, rel=0.03)
        rubato = onsets[-1] + np.cumsum(rng.uniform(0.15, 0.9, 40))
        unlocked = []
        for t in rubato:
            tracker.onset(t, 90, 64)
            unlocked.append(tracker.grid is None)
        free.append(np.mean(unlocked[10:]))
    assert np.mean(free) > 0.7


def test_the_tracker_takes_a_chord_as_one_onset():
    tracker = BeatTracker()
    assert not tracker.onset(1.0, 80, 60)
    assert not tracker.onset(1.01, 80, 64)  # the same chord
    assert tracker._n == 1


def test_bars_start_where_the_bass_falls():
    rng = np.random.default_rng(3)
    tracker = BeatTracker()
    period = 0.6
    for beat in range(40):
        t = 1.0 + beat * period + rng.normal(0, 0.01)
        low = beat % 4 == 1  # the bass on every fourth beat, from beat 1
        tracker.onset(t, 110 if low else 70, 40 if low else 72)
    grid = tracker.grid
    downbeat = 1.0 + 37 * period  # a bass beat
    assert round(grid.beat_at(downbeat)) % 4 == 0


def test_taps_set_the_tempo_and_the_first_is_a_downbeat():
    taps = TapTempo()
    assert taps.tap(10.0) is None
    grid = taps.tap(10.6)
    assert grid.bpm == pytest.approx(100) and grid.beat_at(10.6) == pytest.approx(1.0)
    grid = taps.tap(11.2)
    grid = taps.tap(11.8)
    grid = taps.tap(12.4)
    assert grid.beat_at(12.4) == pytest.approx(0.0)  # the fifth tap: the next bar
    assert taps.tap(20.0) is None  # a long gap starts a new run


def test_the_beat_comes_from_the_clock_then_bpm_then_taps_then_the_player():
    beat = LiveBeat(bpm=None)
    assert beat.grid() is None and beat.source == "free"
    rng = np.random.default_rng(0)
    onsets, _ = player(rng, 90, 16)
    for t in onsets:
        beat.heard(t, 90, 64)
    assert beat.source == "free"  # heard, not yet analysed (the engine does it while waiting)
    assert beat.analyse() and beat.source == "tracker"
    assert not beat.analyse()  # nothing new heard
    assert "BPM" in beat.describe(onsets[-1]) and "tracker" in beat.describe(onsets[-1])
    assert beat.tap(20.0) is False and beat.tap(20.5) is True
    assert beat.source == "taps" and beat.grid().bpm == pytest.approx(120)
    assert beat.clocked(Grid(21.0, 0.0, 0.4)) and beat.source == "clock"
    assert beat.clocked(None) and beat.source == "taps"
    fixed = LiveBeat(bpm=80)
    fixed.start(5.0)
    assert fixed.source == "bpm" and fixed.grid().beat_at(5.75) == pytest.approx(1.0)
    for t in onsets:
        fixed.heard(t, 90, 60)
    assert fixed.analyse() is False  # the player's beat does not move a fixed one
    off = LiveBeat(follow=False)
    off.heard(1.0, 90, 60)
    assert not off.analyse() and off.grid() is None and off.describe(1.0) == "no beat"
    with pytest.raises(ValueError):
        steady(2.0, 0.0)


# --- the engine ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def beat_model(tmp_path_factory):
    return models.beat_model(tmp_path_factory.mktemp("live-beat") / "m")[0]


def _engine(model, clock, **kw):
    from neuralband.live.engine import Engine
    from neuralband.live.turns import PlaySettings
    from neuralband.runtime import Stepper

    out = ClockedCapture(clock)
    settings = PlaySettings(mode=kw.pop("mode", "solo"), wait_s=0.5)
    engine = Engine(Stepper.load(model), out, settings, seed=0, clock=clock,
                    keep_tokens=True, **kw)
    return engine, out


def _notes(onsets, pitch=64):
    messages = []
    for t in onsets:
        messages.append((float(t), [0x90, pitch, 90]))
        messages.append((float(t) + 0.15, [0x80, pitch, 0]))
    return sorted(messages, key=lambda m: m[0])


def test_the_engine_places_the_models_beat_on_the_players(beat_model):
    clock = FakeClock()
    engine, out = _engine(beat_model, clock)
    onsets, _ = player(np.random.default_rng(1), 100, 24, start=0.5)
    placed = []

    def look(engine):
        """The model's beat clock at the committed stream's time (held in the snapshot while a
        wait is on trial) against the band's beat then."""
        grid = engine.beat.grid()
        if grid is not None and engine.stepper.beat_on:
            at = engine.t0 + engine.enc.step / engine._sps
            pos = engine._trial.snap.beat[0] if engine._trial.open else engine.stepper.beat_pos[0]
            off = (grid.beat_at(at) - pos) % grid.bar_beats
            placed.append(min(off, grid.bar_beats - off))

    start = drive(engine, clock, 16.0, _notes(onsets),
                  actions=[(t, look) for t in np.arange(6.0, 16.0, 0.25)])
    assert engine.beat.source == "tracker" and engine.stepper.beat_on
    assert engine.beat.grid().bpm == pytest.approx(100, rel=0.03)
    assert placed and max(placed) < 0.05  # the model's clock kept with the band's beat
    assert engine.beat_changes  # and each placement was kept with the stream
    assert start > 0


def test_bpm_with_a_click_sounds_each_beat_on_time(beat_model):
    clock = FakeClock()
    engine, out = _engine(beat_model, clock, beat=LiveBeat(bpm=120), click=True)
    start = drive(engine, clock, 4.0)
    clicks = [t - start for t, d in out.sent if d[0] == 0x90 | CLICK_CHANNEL and d[2] > 0]
    offs = [t for t, d in out.sent if d[0] in (0x80 | CLICK_CHANNEL, 0x90 | CLICK_CHANNEL)
            and (d[0] & 0xF0 == 0x80 or d[2] == 0)]
    assert len(clicks) >= 7
    beats = np.array(clicks) / 0.5
    assert np.max(np.abs(beats - np.round(beats))) * 0.5 < 0.021  # on the beat, never late
    assert len(offs) >= len(clicks) - 1
    assert engine.stepper.beat_on and engine.beat.source == "bpm"


def test_the_click_passes_its_beats_unsounded_while_the_port_is_gone():
    """With no port the click sends nothing, and its next beat is still ahead (the loop waits
    for it, it does not spin on a beat long past); back on a port, it sounds the beats again."""
    from neuralband.live.notes_out import OutputNotes

    click, grid, sent = Click(), steady(120.0, 0.0), []
    for now in np.arange(0.0, 2.0, 0.01):
        click.tick(float(now), grid, None)
        assert click.due() > now - 0.011
    assert click.off is None
    out = OutputNotes(sent.append)
    for now in np.arange(2.0, 3.0, 0.01):
        click.tick(float(now), grid, out)
    ons = [d for d in sent if d[0] == 0x90 | CLICK_CHANNEL and d[2] > 0]
    assert len(ons) == 2  # the beats at 2.0 and 2.5 s


def test_taps_on_the_panel_set_the_bands_beat_and_the_view_shows_it(beat_model):
    """The tap control (a pad, a pedal, OSC or the view's button all set the panel): four taps
    half a second apart put the band on 120 BPM; the view's state frame says so."""
    from neuralband.live.view import ViewServer

    clock = FakeClock()
    engine, out = _engine(beat_model, clock)
    taps = [(1.0 + 0.5 * k, lambda e: e.panel.set("tap")) for k in range(4)]
    drive(engine, clock, 4.0, actions=taps)
    assert engine.beat.source == "taps"
    assert engine.beat.grid().bpm == pytest.approx(120, rel=0.02)
    assert engine.stepper.beat_on
    server = ViewServer(engine, port=0, say=lambda line: None)
    try:
        frame = server._frame(clock())
    finally:
        server.close()
    assert "120.0 BPM" in frame["beat"] and "taps" in frame["beat"]


def test_the_band_plays_on_an_ableton_link_sessions_beat(beat_model):
    """A peer in this process runs a session at 100 bpm; the band joins it with --link and
    its model's beat clock follows the session's beat (sampled by the peer)."""
    aalink = pytest.importorskip("aalink", reason="Ableton Link needs aalink "
                                 "(pip install 'neuralband[link]')")
    import threading
    import time

    from neuralband.live.engine import Engine
    from neuralband.live.turns import PlaySettings
    from neuralband.runtime import Stepper
    from tests.helpers.link import LinkPeer
    from tests.helpers.live import Capture

    stop = threading.Event()
    looks: list[tuple[float, float, float]] = []
    with LinkPeer(aalink, 100) as peer:
        engine = Engine(Stepper.load(beat_model), Capture(), PlaySettings(mode="solo"), seed=2,
                        sync="link")

        def watch() -> None:
            while not stop.is_set():
                grid = engine.beat.grid()
                if grid is not None:
                    now = time.perf_counter()
                    looks.append((now, grid.beat_at(now), grid.bpm))
                time.sleep(0.05)

        watcher = threading.Thread(target=watch)
        watcher.start()
        try:
            engine.run(3.0)
        finally:
            engine.close()
            stop.set()
            watcher.join()
    assert engine.beat.source == "clock" and engine.stepper.beat_on
    later = [(t, b, bpm) for t, b, bpm in looks if t > engine.t0 + 1.5]
    assert later
    times, beats = np.array(peer.samples).T
    for t, b, bpm in later:
        session = np.interp(t, times, beats) % 4
        off = abs(b - session) % 4
        assert min(off, 4 - off) < 0.05, (b, session)  # the session's beat, bar and all
        # one session: the two agree on its tempo (which of the two, Link decides as they meet)
        assert bpm == pytest.approx(peer.tempo, rel=0.02)


def test_the_band_follows_an_outside_midi_clocks_beat_without_redrawing_its_waits(beat_model):
    """--clock midi: Start, then 24 pulses a beat at 100 bpm; the band's beat is the clock's
    (a bar from its Start), and a clock that keeps its beat takes no wait on trial back: the
    band draws as often as it would without the clock."""
    onsets, _ = player(np.random.default_rng(4), 100, 20, start=0.6)
    notes = _notes(onsets)
    pulses = [(0.6 - 0.001, [0xFA])] + [(0.6 + k * 0.6 / 24, [0xF8]) for k in range(24 * 22)]
    taken = {}
    for sync, messages in (("midi", notes + pulses), ("internal", notes)):
        clock = FakeClock()
        engine, out = _engine(beat_model, clock, sync=sync)
        start = drive(engine, clock, 13.0, sorted(messages, key=lambda m: m[0]))
        taken[sync] = engine.stats.taken_back
        if sync == "midi":
            grid = engine.beat.grid()
            assert engine.beat.source == "clock" and grid.bpm == pytest.approx(100, rel=0.01)
            downbeat = start + 0.6 + 0.6 * 4 * 4  # four bars after the Start
            assert grid.beat_at(downbeat) == pytest.approx(0.0, abs=0.02) or \
                grid.beat_at(downbeat) == pytest.approx(4.0, abs=0.02)
    assert taken["midi"] <= taken["internal"] * 1.5 + 5


def test_play_refuses_beat_options_a_model_cannot_take_in_one_line(beat_model, capfd):
    from neuralband.cli import main

    assert main(["play", "--model", "chorale-folk", "--bpm", "90", "--virtual"]) == 2
    assert "read the beat" in capfd.readouterr().err
    assert main(["play", "--model", str(beat_model), "--click", "--virtual"]) == 2
    assert "--click sounds a --bpm beat" in capfd.readouterr().err
    assert main(["play", "--model", str(beat_model), "--beat", "free", "--bpm", "90",
                 "--virtual"]) == 2
    assert "--beat free" in capfd.readouterr().err
    assert main(["play", "--model", str(beat_model), "--meter", "waltz", "--virtual"]) == 2
    assert "beats to the bar" in capfd.readouterr().err


def test_analysing_later_finds_what_analysing_each_onset_found():
    """The engine hears onsets as they come and analyses them when it has time: the grid is
    the same as analysing each as it came, however many wait."""
    rng = np.random.default_rng(4)
    onsets, _ = player(rng, 96, 24)
    each, later = BeatTracker(), BeatTracker()
    for k, t in enumerate(onsets):
        each.onset(t, 90, 64)
        later.hear(t, 90, 64)
        if k % 5 == 4:
            later.analyse()
    later.analyse()
    assert each.grid is not None and later.grid == each.grid
    assert later.confidence == each.confidence


def test_a_fast_pulse_is_heard_as_the_eighths_of_a_slow_beat():
    """A ballad's sung line runs in sixteenths: its onsets pulse at twice the beat. The tracker
    follows the pulse and gives the band the slow beat (HALVE_ABOVE_BPM), whose lines hold
    every pulse (twice too fast, the band's eighth lines were the song's sixteenths)."""
    from neuralband.live.beat import HALVE_ABOVE_BPM

    for seed in range(5):
        rng = np.random.default_rng(seed)
        tracker = BeatTracker()
        onsets, _ = player(rng, 2 * 64, 48)  # a 64 BPM ballad's sixteenth-note line
        for t in onsets:
            tracker.onset(t, 90, 64)
        grid = tracker.grid
        assert grid is not None and tracker.pulses == 2
        assert grid.bpm == pytest.approx(64, rel=0.03) and 2 * 64 > HALVE_ABOVE_BPM
        # the pulse is on the slow beat's eighth lines
        assert grid_error(Grid(grid.anchor_t, grid.beat * 2, grid.period_s / 2), onsets[-1],
                          0.0, 60 / 128) < 0.03
    steady_player = BeatTracker()
    onsets, _ = player(np.random.default_rng(9), 100, 24)
    for t in onsets:
        steady_player.onset(t, 90, 64)
    assert steady_player.pulses == 1 and steady_player.grid.bpm == pytest.approx(100, rel=0.03)
