"""Tempo sync: the MIDI clock follower and sender alone, then the grid band on a scripted
external clock in-process (its lines, a tempo change, Stop) and sending its own clock."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest

from neuralband.live.grid_engine import GridEngine
from neuralband.live.sync import CLOCK, CONTINUE, PPQN, START, STOP, ClockFollower, ClockSender
from neuralband.live.turns import PlaySettings
from neuralband.modelfile import bundled_model
from neuralband.runtime import Stepper
from tests.helpers.fake_clock import FakeClock
from tests.helpers.live import Capture, balanced


def pulses(bpm: float, beats: float, t0: float = 0.0):
    dt = 60.0 / (bpm * PPQN)
    return [t0 + i * dt for i in range(int(beats * PPQN))]


def test_pulses_make_a_line_every_sixteenth_and_the_tempo_follows_within_a_beat():
    f = ClockFollower()
    f.message(0.0, [START])
    slow = pulses(100, 4)
    fast = pulses(130, 4, t0=slow[-1] + 60.0 / (100 * PPQN))
    events = [f.message(t, [CLOCK]) for t in slow]
    assert events.count("line") == 16 and f.bpm == pytest.approx(100, rel=1e-6)
    lines = list(f.lines)
    assert [n for n, _ in lines] == list(range(16))
    assert [t for _, t in lines] == slow[::6]
    for i, t in enumerate(fast):
        f.message(t, [CLOCK])
        if i == PPQN - 1:  # one beat at the new tempo
            assert f.bpm == pytest.approx(130, rel=1e-6)
    assert f.position(fast[-1]) == pytest.approx(31 + 5 / 6)


def test_start_stop_continue_and_song_position():
    f = ClockFollower()
    for t in pulses(120, 1):  # no Start: a clock alone runs the grid
        f.message(t, [CLOCK])
    assert len(f.lines) == 4
    assert f.message(1.0, [STOP]) == "stop" and not f.lines
    assert f.message(1.01, [CLOCK]) == "pulse" and not f.lines  # stopped: pulses do nothing
    f.message(1.02, [0xF2, 8, 0])  # song position: the 8th sixteenth
    assert f.message(1.03, [CONTINUE]) == "continue"
    assert f.message(1.04, [CLOCK]) == "line" and f.lines[-1] == (8, 1.04)
    assert f.message(2.0, [START]) == "start"
    assert f.message(2.01, [CLOCK]) == "line" and f.lines[-1] == (0, 2.01)
    assert f.message(2.02, [0x90, 60, 100]) is None


def test_the_sender_paces_pulses_and_skips_ahead_when_far_behind():
    s = ClockSender(10.0, step_s=0.125)  # 120 bpm: a pulse every 1/48 s
    assert s.due(9.99) == 0 and s.due(10.0) == 1 and s.due(10.0) == 0
    assert s.next_time() == pytest.approx(10.0 + 1 / 48)
    assert s.due(20.0) == 1 and s.next_time() > 20.0 - 1 / 48


def clocked_session(schedule, seconds: float, grace_ms: float = 0.0, **kw):
    """The grid band following a scripted clock on the fake clock (`tests.helpers.fake_clock`): each
    message of ``schedule`` (time, message) arrives at its time and the loop runs then, and
    every millisecond between (the note-length limit, the repeated NOTE_OFFs)."""
    clock = FakeClock()
    out = Capture(clock)
    engine = GridEngine(Stepper.load(bundled_model("grid")), out, PlaySettings(mode="solo"),
                        seed=2, sync="midi", grace_s=grace_ms / 1000.0, clock=clock, **kw)
    engine.start()
    start = clock.t + 0.3
    sent = []
    queue = sorted(schedule, key=lambda m: m[0])
    end = clock.t + seconds
    while clock.t < end:
        while queue and start + queue[0][0] <= clock.t:
            _, data = queue.pop(0)
            engine.receive(clock.t, data)
            sent.append((clock.t, data))
        engine.pump(clock.t)
        engine.out.repeat_offs(clock.t)
        clock.t = min(clock.t + 0.001, start + queue[0][0] if queue else end)
    engine.close()
    return engine, out, sent


def test_the_grid_band_plays_on_the_clock_s_lines_follows_its_tempo_and_stops_with_it():
    slow = pulses(100, 8)
    fast = pulses(130, 8, t0=slow[-1] + 60 / (100 * PPQN))
    stop_at = fast[-1] + 0.01
    schedule = [(0.0, [START])] + [(t + 0.01, [CLOCK]) for t in slow + fast]
    beats = (slow + fast)[::PPQN]  # a melody note on each beat: the band follows its lead
    schedule += [(t + 0.0105, [0x91, 60 + 2 * (i % 4), 80]) for i, t in enumerate(beats)]
    schedule += [(t + 0.3, [0x81, 60 + 2 * (i % 4), 0]) for i, t in enumerate(beats)]
    schedule.sort(key=lambda m: m[0])
    schedule += [(stop_at, [STOP])] + [(stop_at + 0.01 + i * 0.02, [CLOCK]) for i in range(50)]
    engine, out, sent = clocked_session(schedule, 0.3 + stop_at + 1.2)
    lines = [t for t, d in sent if d == [CLOCK]][:len(slow) + len(fast)][::6]
    stopped = next(t for t, d in sent if d == [STOP])
    ons = [t for t, d in out.sent if d[0] & 0xF0 == 0x90 and d[2] > 0]
    assert len(ons) > 20, len(ons)
    # Each onset against the latest line at or before it: the band decides on the pulse.
    lines_a = np.array(lines)
    late = np.array([t - lines_a[np.searchsorted(lines_a, t, side="right") - 1]
                     for t in ons if lines_a[0] <= t < stopped])
    assert np.percentile(late, 95) < 0.003, np.percentile(late, 95)
    # The tempo: the step the engine measured after a beat at 130 bpm.
    assert 60 / (engine.step_s * 4) == pytest.approx(130, rel=0.05)
    assert not [t for t in ons if t > stopped + 0.001], "the band played after Stop"
    assert balanced(out.sent) and engine.out.sounding == 0


def test_sending_clock_starts_paces_and_stops_it():
    out = Capture()
    engine = GridEngine(Stepper.load(bundled_model("grid")), out, PlaySettings(mode="solo"),
                        seed=4, step_s=0.125, clock_out=True)  # 120 bpm
    engine.run(2.0)
    engine.close()
    kinds = [d[0] for _, d in out.sent if d[0] >= 0xF0]
    assert kinds[0] == START and kinds[-1] == STOP
    ticks = np.array([t for t, d in out.sent if d == [CLOCK]])
    assert len(ticks) == pytest.approx(2.0 * 48, abs=3)
    assert np.median(np.diff(ticks)) == pytest.approx(1 / 48, rel=0.02)


def test_clock_options_that_contradict_each_other_are_refused():
    stepper = Stepper.load(bundled_model("grid"))
    for kw in ({"click": True}, {"clock_out": True}):
        with pytest.raises(ValueError, match="clock's source keeps the time"):
            GridEngine(stepper, Capture(), sync="midi", **kw)
    with pytest.raises(ValueError, match="'internal', 'midi' or 'link'"):
        GridEngine(stepper, Capture(), sync="ltc")


def test_a_lost_pulse_keeps_the_lines_in_phase_and_a_late_one_is_not_counted_twice():
    times = pulses(120, 2)  # a pulse every 1/48 s
    f = ClockFollower()
    f.message(0.0, [START])
    for t in times[:12] + times[13:]:  # pulse 12, line 2's, never came
        f.message(t, [CLOCK])
    assert f.lost == 1 and [n for n, _ in f.lines] == list(range(8))
    assert [t for _, t in f.lines] == [times[i] for i in (0, 6, 13, *range(18, 48, 6))]
    assert f.bpm == pytest.approx(120, rel=1e-6)
    for late in (0.4, 0.7, 0.95):  # a pulse late by part of an interval, or a stall of two
        g = ClockFollower()
        g.message(0.0, [START])
        jittery = list(times)
        jittery[10] += late / 48
        for t in jittery:
            g.message(t, [CLOCK])
        assert [t for _, t in g.lines] == [jittery[i] for i in range(0, 48, 6)], late
        assert g.bpm == pytest.approx(120, rel=0.1)
    k = ClockFollower()  # late by most of an interval, and the next one late too (a busy sender)
    k.message(0.0, [START])
    jittery = list(times)
    jittery[10] += 0.64 / 48
    jittery[11] += 0.25 / 48
    for t in jittery:
        k.message(t, [CLOCK])
    assert k.pulse == 48 and k.lost == 0 and [n for n, _ in k.lines] == list(range(8))
    c = ClockFollower()  # a pulse heard twice (a stale JACK buffer handed on again), or thrice
    c.message(0.0, [START])
    for t in times[:20] + [times[19] + 0.003, times[19] + 0.0031] + times[20:]:
        c.message(t, [CLOCK])
    assert c.pulse == 48 and [n for n, _ in c.lines] == list(range(8))
    assert c.bpm == pytest.approx(120, rel=1e-6)
    for stall in (2.6, 3.4):  # a sender held up for a few intervals, then all its pulses at once
        s = ClockFollower()
        s.message(0.0, [START])
        burst = list(times)
        held = [i for i in range(10, 48) if times[i] < times[9] + stall / 48]
        for k, i in enumerate(held):
            burst[i] = times[9] + stall / 48 + k * 1e-4
        for t in burst:
            s.message(t, [CLOCK])
        assert s.pulse == 48 and s.lost == 0, (stall, s.pulse, s.lost)
        assert [n for n, _ in s.lines] == list(range(8)), stall
        assert [t for _, t in s.lines][3:] == [times[i] for i in range(18, 48, 6)], stall
    h = ClockFollower()  # a clock that pauses for a second is not a second of lost pulses
    h.message(0.0, [START])
    for t in times[:10] + [t + 1.0 for t in times[10:]]:
        h.message(t, [CLOCK])
    assert h.lost == 0 and len(h.lines) == 8


def test_an_event_model_s_wait_and_answer_are_beats_of_the_clock_and_stop_rests_it():
    from neuralband.live.engine import Engine

    engine = Engine(Stepper.load(bundled_model()), Capture(),
                    PlaySettings(mode="call", wait_s=2.0, answer_s=8.0), sync="midi")
    assert engine.settings.wait_s == pytest.approx(1.0)  # 120 bpm until the clock says
    for t in pulses(60, 2):
        engine._take(t, [CLOCK])
    assert engine.settings.wait_s == pytest.approx(2.0) and engine.settings.answer_s == 8.0
    engine.panel.set("answer", 4)  # beats too, on a clock
    engine._check_panel(3.0)
    assert engine.settings.answer_s == pytest.approx(4.0)
    engine.turns.hand(to_band=True)
    assert engine._band_may_play(3.0)
    engine._take(3.0, [STOP])
    assert not engine._band_may_play(3.1)
    engine._take(4.0, [CONTINUE])
    assert engine._band_may_play(4.1)


def test_a_tempo_that_halves_is_followed_not_taken_for_lost_pulses():
    f = ClockFollower()
    f.message(0.0, [START])
    fast = pulses(120, 1)
    slow = pulses(60, 2, t0=fast[-1] + 60 / (60 * PPQN))
    for t in fast + slow:
        f.message(t, [CLOCK])
    assert f.bpm == pytest.approx(60, rel=1e-6) and f.lost == 0
    assert f.pulse == len(fast) + len(slow)  # every pulse counted once
    g = ClockFollower()  # Stop, a slower tempo, Start: measured afresh
    g.message(0.0, [START])
    for t in fast:
        g.message(t, [CLOCK])
    g.message(1.0, [STOP])
    g.message(2.0, [START])
    for t in pulses(60, 1, t0=2.01):
        g.message(t, [CLOCK])
    assert g.bpm == pytest.approx(60, rel=1e-6) and g.pulse == 24 and g.lost == 0


def test_a_grid_ending_is_dropped_when_the_clock_starts_again():
    engine = GridEngine(Stepper.load(bundled_model("grid")), Capture(), PlaySettings(mode="call"),
                        sync="midi")
    engine.start()
    engine._next_tick = 500
    engine.turns.hand(to_band=True)
    engine._steer("end", 1.0, 0.0)
    assert engine.ending
    engine._take(1.0, [STOP])
    engine._take(2.0, [START])
    assert not engine.ending and engine._next_tick == 0
    assert not engine._band_may_play(2.1)  # resting, and call mode with nobody playing
    engine.close()


@pytest.mark.slow
def test_the_grid_band_plays_on_an_ableton_link_session_s_beat():
    """A peer in the same process opens a session at 110 bpm; the band joins it, and its
    onsets fall on the session's sixteenths (the peer's beat, sampled every millisecond)."""
    aalink = pytest.importorskip("aalink", reason="Ableton Link needs aalink "
                                 "(pip install 'neuralband[link]')")
    from tests.helpers.link import LinkPeer

    with LinkPeer(aalink, 110) as peer:
        out = Capture()
        engine = GridEngine(Stepper.load(bundled_model("grid")), out, PlaySettings(mode="solo"),
                            seed=2, sync="link", grace_s=0.0, step_s=0.1)
        melody = [(0.2 + 0.5 * i, [0x90, 60 + 2 * (i % 4), 80]) for i in range(8)]
        melody += [(0.6 + 0.5 * i, [0x80, 60 + 2 * (i % 4), 0]) for i in range(8)]
        from tests.helpers.live import ScriptedPlayer

        player = ScriptedPlayer(sorted(melody, key=lambda m: m[0]),
                                lambda data: engine.receive(time.perf_counter(), data))
        threading.Timer(0.3, player.start).start()
        engine.run(4.5)
        player.join()
        engine.close()
    # One session: the two agree on its tempo (which of the two it is, Link decides when the
    # sessions meet: not always the first one's).
    assert engine.follower.peers >= 1 and engine.follower.bpm == pytest.approx(peer.tempo)
    times, beats = np.array(peer.samples).T
    # From 1.5 s in: joining takes Link a moment (the tempo, then the phase, agree).
    ons = [t for t, d in out.sent if d[0] & 0xF0 == 0x90 and d[2] > 0 and engine.t0 + 1.5 < t]
    assert len(ons) > 8, len(ons)
    sixteenths = np.interp(ons, times, beats) * 4
    off_s = (sixteenths - np.floor(sixteenths)) * 60 / (peer.tempo * 4)  # after the last line
    # On the session's grid (a grid of its own would spread them over the whole sixteenth, a
    # median near 68 ms); a loaded machine wakes the Link thread a little late now and then.
    assert np.median(off_s) < 0.005 and np.percentile(off_s, 90) < 0.02, off_s
    assert balanced(out.sent)
