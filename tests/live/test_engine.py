"""The live engine in-process with the bundled model and a scripted player, on a fake clock.

A real chorale melody's note messages arrive at their times, as a keyboard's callback would
queue them, and time moves only when the harness moves it (`tests.helpers.fake_clock`), so
turn-taking, take-backs, note lengths and timing are checked without wall time; the output is
captured raw. Two tests run the real loop in real time, where only the end state matters (an
output that dies, a take stopped with a key down). Ports and JACK are tested in
test_play_jack.py.
"""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest

from neuralband.live.band_events import LATE_NOTE_S
from neuralband.live.engine import Engine
from neuralband.live.loop import CHECK_EVERY_S
from neuralband.live.notes_out import REPEAT_OFF_S
from neuralband.live.turns import PlaySettings
from neuralband.modelfile import bundled_model
from neuralband.runtime import Stepper
from neuralband.sampling import Rules
from tests.helpers.fake_clock import FakeClock, drive
from tests.helpers.live import Capture, ScriptedPlayer, balanced, melody, session


def test_call_mode_answers_after_the_phrase_and_not_during_it():
    phrase = melody(3.0)
    end_of_phrase = phrase[-1][0] + 0.05
    engine, out = session("call", phrase, seconds=7.0, wait_s=0.8, answer_s=2.5)
    band_on = [t - engine.player.t0 for t, d in out.sent if d[0] == 0x90 and d[2] > 0]
    assert band_on, "the band never answered"
    assert min(band_on) >= end_of_phrase + 0.8 - 0.05, "the band played before the pause"
    assert max(band_on) - min(band_on) <= 2.5 + 0.05, "the answer outlasted --answer"
    assert balanced(out.sent)
    assert engine.stats.absorbed == len(phrase)
    assert engine.stats.received == len(phrase)


@pytest.mark.parametrize("speed", [1.0, 2.5])
def test_a_call_answer_comes_at_once_and_at_the_pace_of_the_phrase(speed):
    """Six phrases of a chorale melody (played at ``speed``), each followed by 6 s of silence:
    each answer starts within --wait + 0.3 s of the phrase's end and the answers play at the
    phrases' pace, within 30% of its notes per second (they came up to 4 s late, a chord or a
    few notes under a second, before)."""
    phrase = [(t / speed, d) for t, d in melody(3.0 * speed)]
    messages = [(9.0 * k + t, d) for k in range(6) for t, d in phrase]
    engine, out = session("call", messages, seconds=54.0, wait_s=1.0, answer_s=4.0)
    band = np.array([t - engine.player.t0 for t, d in out.sent if d[0] == 0x90 and d[2] > 0])
    ons = [t for t, d in phrase if d[0] & 0xF0 == 0x90 and d[2] > 0]
    pace = len(ons) / max(ons[-1] - ons[0], 1.0)
    end = phrase[-1][0]
    rates = []
    for k in range(6):
        answer = band[(band > 9.0 * k + end) & (band < 9.0 * (k + 1))]
        assert len(answer) >= 3, (k, answer)
        assert answer[0] - (9.0 * k + end) <= 1.0 + 0.3, (k, answer[0] - 9.0 * k - end)
        rates.append(len(answer) / 4.0)
    assert abs(np.mean(rates) / pace - 1) <= 0.3, (pace, rates)
    assert balanced(out.sent)


def test_solo_interrupted_waits_leave_the_model_exactly_on_the_stream():
    """Player events cut proposed waits short; the state must equal a fresh model fed the
    committed stream (so every take-back restored the snapshot exactly)."""
    engine, out = session("solo", melody(4.0), seconds=5.0)
    assert engine.stats.taken_back > 0
    assert engine.stats.band_events > 0
    fresh = Stepper.load(bundled_model())
    changes = dict(engine.control_changes)  # the controls followed the player's notes
    assert changes or not fresh.config.controls
    beats = {}  # where the band's beat was placed (a model that reads the beat)
    for i, where in engine.beat_changes:
        beats.setdefault(i, []).append(where)
    for i, tok in enumerate(engine.tokens):
        if i in changes:
            fresh.set_controls(changes[i])
        for where in beats.get(i, []):
            fresh.place_beat(*where) if where is not None else fresh.place_beat(None)
        fresh.feed(tok)
    np.testing.assert_allclose(fresh.h, engine.stepper.h, atol=1e-5)
    assert balanced(out.sent)


@pytest.mark.parametrize("mode", ["solo", "call"])
def test_what_is_computed_ahead_changes_nothing_the_band_plays(monkeypatch, mode):
    """`Engine._ahead` computes the player's next time shift while the loop waits; the take is
    the same event for event, sent at the same times, as without it, and the guesses were used."""
    with_ahead, out = session(mode, melody(3.0), seconds=7.0, wait_s=0.8)
    assert with_ahead.stepper.guessed > 0.5 * with_ahead.stats.absorbed
    monkeypatch.setattr(Engine, "_ahead", lambda self, now: np.inf)
    without, plain_out = session(mode, melody(3.0), seconds=7.0, wait_s=0.8)
    assert without.stepper.guessed == 0
    assert with_ahead.tokens == without.tokens and with_ahead.stats.band_events > 5
    assert [d for _, d in out.sent] == [d for _, d in plain_out.sent]
    # The same moments, but the call's answer: the loop also turns where it looks ahead, and
    # may see the band's turn begin a few milliseconds before the moment it had named.
    assert max(abs(a - b) for (a, _), (b, _) in zip(out.sent, plain_out.sent, strict=True)) < 0.01


def test_duet_plays_only_while_the_player_plays():
    phrase = melody(2.5)
    engine, out = session("duet", phrase, seconds=6.0, wait_s=0.5)
    band_on = [t - engine.t0 for t, d in out.sent if d[0] == 0x90 and d[2] > 0]
    assert band_on
    last_player = engine.turns.last_player_s - engine.t0
    assert max(band_on) <= last_player + 0.5 + 0.05
    assert balanced(out.sent)


def test_no_band_note_is_longer_than_the_limit():
    engine, out = session("solo", [], seconds=6.0, rules=Rules(max_note_s=0.5))
    starts: dict[int, float] = {}
    lengths = []
    for t, d in out.sent:
        if d[0] == 0x90 and d[2] > 0:
            starts[d[1]] = t
        elif d[1] in starts:
            lengths.append(t - starts.pop(d[1]))
    # The grammar ends notes on the model's clock; the wall-clock backstop looks every
    # CHECK_EVERY_S. A loop the CPU starved sends late whatever it sends: its worst lateness is
    # allowed too.
    starved = max(0.0, engine.stats.timing_s.percentile(100))
    assert lengths and max(lengths) <= 0.5 + CHECK_EVERY_S + 0.05 + starved, \
        (max(lengths), starved)
    assert balanced(out.sent)


@pytest.mark.parametrize("mode", ["solo", "duet"])
def test_a_starved_loop_drops_its_turn_and_sends_nothing_late(mode):
    """No late notes: where the CPU starves the loop (here every 7th model step takes 30 ms of
    the clock), a band event that can no longer leave within LATE_NOTE_S of its time is not
    sent; the turn is dropped and the band draws afresh from now, and plays on."""
    clock = FakeClock()
    out = Capture(clock)
    stepper = Stepper.load(bundled_model())
    feed, steps = stepper.feed, [0]

    def starved(tokens):
        steps[0] += 1
        if steps[0] % 7 == 0:
            clock.t += 0.03
        feed(tokens)

    stepper.feed = starved
    engine = Engine(stepper, out, PlaySettings(mode=mode), seed=3, clock=clock)
    drive(engine, clock, 8.0, melody(4.0))
    assert engine.stats.late > 0  # it was starved, and dropped turns
    played = [t for t, d in out.sent if d[0] & 0xF0 == 0x90 and d[2] > 0]
    assert len(played) >= 10 and played[-1] - played[0] > 3.0  # and played on
    assert engine.stats.timing_s.count and \
        engine.stats.timing_s.percentile(100) <= LATE_NOTE_S + 1e-9  # on time
    assert balanced(out.sent)


def test_a_wait_drawn_again_for_a_player_who_did_not_come_is_not_late():
    """A duet's wait that ends where the model expects the player is drawn again from the
    stream's time when the player does not come (`_wait_longer`): a wait, which sends
    nothing, starts there and is judged at its end, never dropped as late for its start (it
    was, 18 times in 15 s, each redrawing the band off its beat). On the fake clock nothing
    starves the loop: nothing is late."""
    from neuralband.modelfile import bundled_model as named

    engine, out = session("duet", melody(15.0), 15.0, model=named("pop-duet"))
    assert engine.stats.expected > 10  # the waits were drawn again, many times
    assert engine.stats.late == 0
    assert balanced(out.sent)


def test_feedback_guard_ignores_our_own_echo():
    out = Capture()
    engine = Engine(Stepper.load(bundled_model()), out,
                    PlaySettings(mode="solo", feedback_guard_s=0.03), seed=1)

    def echo(data: list[int]) -> None:  # a synth that sends our notes straight back
        out(data)
        engine.receive(time.perf_counter() + 0.002, data)

    engine.out.send = echo
    engine.run(2.0)
    engine.close()
    assert engine.stats.echoes > 0
    assert engine.stats.absorbed == 0


def test_a_dead_output_stops_the_band_and_close_does_not_raise():
    out = Capture()
    engine = Engine(Stepper.load(bundled_model()), out, PlaySettings(mode="solo"), seed=2)
    threading.Timer(1.0, lambda: setattr(out, "fail", True)).start()
    engine.run(2.0)
    assert not engine.output_ok
    assert engine.close() == 0
    assert engine.out.sounding == 0


@pytest.mark.parametrize("mode", ["call", "duet"])
def test_silence_in_listening_modes_plays_nothing(mode):
    engine, out = session(mode, [], seconds=1.5)
    assert out.sent == []


def test_the_recording_holds_the_releases_sent_on_stop():
    """Stopped while the band sounds: the note-offs `close` sends are in the recording too,
    so the band's track of ``play --record`` never has an open note (it had, once, in CI)."""
    out = Capture()
    engine = Engine(Stepper.load(bundled_model()), out, PlaySettings(mode="solo"), seed=4,
                    record=True)
    held_at_stop = []

    def stop_while_sounding() -> None:
        if engine.out.sounding:
            held_at_stop.append(engine.out.sounding)
            engine.stop()

    for _ in engine.running(10.0, every_s=0.02):
        stop_while_sounding()
    assert held_at_stop, "the band never sounded a note in 10 s of solo"
    assert engine.close() == 0
    band = [(t, d) for t, who, d in engine.recording if who == "band"]
    # What went out, but the second NOTE_OFF each key gets 40 ms later (`notes.REPEAT_OFF_S`;
    # closing sends those still waiting): a repeat ends nothing, and the recording leaves it out.
    notes_sent, on = [], set()
    for t, d in out.sent:
        key = (d[0] & 0x0F, d[1])
        if d[0] & 0xF0 == 0x90 and d[2] > 0:
            on.add(key)
        elif d[0] & 0xF0 in (0x80, 0x90):
            if key not in on:
                continue  # a repeat
            on.discard(key)
        else:
            continue
        notes_sent.append((t, d))
    assert [d for _, d in band] == [d for _, d in notes_sent]
    assert balanced(band)


def test_only_the_bands_own_notes_are_logged_on_and_off():
    from neuralband.live.notes_out import OutputNotes, echo

    out = Capture()
    notes = OutputNotes(out, log_sent=True)
    notes.note_on(0, 60, 90, 0.0)
    notes.note_on(0, 60, 80, 0.1)  # re-struck: released first, and that release is logged
    echo(notes, 1, 64, 70, 0.2)  # the player's thru echo is sent, not logged
    notes.note_on(9, 76, 100, 0.3, own=False)  # nor is a click
    assert notes.all_off() == 0
    assert [d for _, d in notes.sent] == [[0x90, 60, 90], [0x80, 60, 0], [0x90, 60, 80],
                                          [0x80, 60, 0]]
    assert balanced(out.sent) and len(out.sent) == 8
    # The feedback guard's memory: when the band's own pitch last went out on and off; the
    # echo's note-on is the player's, not the band's.
    assert notes.last_sent[1, 60] == notes.sent[2][0] and notes.last_sent[0, 60] > -np.inf
    assert notes.last_sent[1, 64] == -np.inf and notes.last_sent[1, 76] == -np.inf
    plain = OutputNotes(out)  # the log is kept only for someone who takes it
    plain.note_on(0, 62, 90, 0.0)
    assert not plain.sent and plain.last_sent[1, 62] > -np.inf


def test_the_band_plays_with_int8_weights():
    out = Capture()
    stepper = Stepper.load(bundled_model(), precision="int8")
    engine = Engine(stepper, out, PlaySettings(mode="solo"), seed=5)
    engine.run(1.5)
    assert engine.close() == 0
    assert engine.stats.band_events > 10
    assert balanced(out.sent)


def test_a_key_held_when_the_take_stops_is_closed_in_the_recording(tmp_path):
    """--record, stopped with the player's key down: the player's track ends that note where
    the take ends (the piano roll dropped it), and the status line says '-' before any
    measurement instead of 'nan'."""
    import mido
    import pretty_midi

    from neuralband.live.session import status_line
    from neuralband.live.takes import write_recording

    out = Capture()
    engine = Engine(Stepper.load(bundled_model()), out, PlaySettings(mode="call", wait_s=5.0),
                    seed=4, record=True)
    assert "nan" not in status_line(engine) and "step - ms" in status_line(engine)
    phrase = [(0.0, [0x90, 60, 90]), (0.2, [0x90, 64, 90]), (0.4, [0x80, 60, 0])]  # 64 held
    player = ScriptedPlayer(phrase, lambda data: engine.receive(time.perf_counter(), data))
    threading.Timer(0.05, player.start).start()
    engine.run(1.0)
    player.join()
    engine.close()
    path = write_recording(engine, tmp_path / "take.mid")
    track = mido.MidiFile(path).tracks[0]
    ons = [m.note for m in track if m.type == "note_on" and m.velocity > 0]
    offs = [m.note for m in track if m.type == "note_off" or (m.type == "note_on"
                                                                and m.velocity == 0)]
    assert sorted(ons) == sorted(offs) == [60, 64]
    notes = pretty_midi.PrettyMIDI(str(path)).instruments[0].notes
    assert sorted(n.pitch for n in notes) == [60, 64]
    held = next(n for n in notes if n.pitch == 64)
    assert held.end - held.start > 0.6  # held from 0.25 s to the end of the 1 s take


def test_a_lost_period_of_midi_leaves_no_band_note_sounding():
    """A transport that loses every message of a 15 ms window twice a second (JACK dropping a
    period when a client misses its cycle): each NOTE_OFF goes out again 40 ms later, so no
    note that arrived sounds much past its length (it sounded 13 s once, until Ctrl-C). On the
    fake clock: the same windows catch the same NOTE_OFFs on every machine."""
    clock = FakeClock()
    out = Capture(clock)
    arrived: list[tuple[float, list[int]]] = []

    def lossy(data: list[int]) -> None:
        out(data)
        t = clock()
        if (t % 0.5) >= 0.015:  # the lost windows
            arrived.append((t, list(data)))

    engine = Engine(Stepper.load(bundled_model()), lossy, PlaySettings(mode="solo"),
                    Rules(max_note_s=0.5), seed=2, clock=clock)
    drive(engine, clock, 6.2)  # (the take ends outside a lost window: close has no repeat)
    lost_offs = [(t, d) for t, d in out.sent if d[0] & 0xF0 == 0x80 and (t % 0.5) < 0.015]
    assert lost_offs, "no NOTE_OFF fell in a lost window: the test proves nothing"
    starved = max(0.0, engine.stats.timing_s.percentile(100))  # a loop the CPU starved
    for t_lost, d in lost_offs:
        mine = [(t, a) for t, a in arrived if a[:2] == d[:2] or (a[0] == 0x90 | (d[0] & 0x0F)
                                                                 and a[1] == d[1])]
        before = [a for t, a in mine if t < t_lost]
        if not before or before[-1][0] & 0xF0 != 0x90:
            continue  # a repeat lost: the first NOTE_OFF had arrived
        # What next reached the synth for that key: the NOTE_OFF again, soon (or the pitch
        # struck anew before the repeat was due; that note's own NOTE_OFF then ends it).
        after = [(t, a) for t, a in mine if t > t_lost]
        assert after, d
        t, first = after[0]
        if first[0] & 0xF0 == 0x90:
            assert t - t_lost <= REPEAT_OFF_S + 0.01, (d, after[:2])
        else:
            assert t - t_lost <= 0.1 + starved, (d, after[:2], starved)


def test_a_note_off_just_before_the_end_is_repeated_at_close():
    """The repeat of a NOTE_OFF sent in the take's last 40 ms: no loop turn will send it, so
    closing does (JACK may have lost the first)."""
    from neuralband.live.notes_out import OutputNotes

    sent: list[list[int]] = []
    out = OutputNotes(sent.append)
    out.note_on(0, 60, 90, time.perf_counter())
    out.note_off(0, 60)
    out.all_off(again_after_s=0.001)
    assert sent.count([0x80, 60, 0]) == 2 and sent[-1] == [0xB0, 123, 0]
