"""The live controls' parts alone: the panel's values, MIDI maps and map files, learning from a
scripted controller, and OSC over a real UDP socket (garbage included)."""

from __future__ import annotations

import json
import math
import socket
import time

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from neuralband.live.midimap import MidiMap, Source, learn, load_map, parse_map, save_map
from neuralband.live.osc import OscControl, parse_address
from neuralband.live.panel import CONTROLS, INDEX, Panel, control


def test_the_panel_takes_values_from_any_source_and_refuses_bad_ones_unchanged():
    panel = Panel()
    assert panel.set("temperature", "0.5") == 0.5
    assert panel.set("density", 6) == 6.0 and math.isnan(panel.set("density", "follow"))
    panel.set("key", "eb")
    assert panel.show("key") == "Eb major"
    panel.set("key", "F#m")
    assert panel.show("key") == "F# minor"
    panel.set("mode", "duet")
    panel.set("mute", "on")
    assert panel.show("mode") == "duet" and panel.get("mute") == 1.0
    version = panel.version
    for name, bad in [("temperature", 9), ("temperature", "hot"), ("density", float("nan")),
                      ("mode", "jam"), ("key", "H major"), ("mute", "maybe"),
                      ("register", 200)]:
        with pytest.raises(ValueError, match=name):
            panel.set(name, bad)
    assert panel.version == version and panel.get("temperature") == 0.5
    with pytest.raises(ValueError, match="the controls are temperature, density"):
        panel.set("volume", 1)
    panel.set("panic")
    panel.set("panic", 1)
    assert panel.get("panic") == 2  # a trigger counts its presses: none is lost
    assert panel.state()["key"] == "F# minor" and panel.state()["temperature"] == 0.5


def test_a_cc_spreads_over_a_range_picks_a_choice_and_fires_a_trigger_on_the_rise():
    temperature, density = control("temperature"), control("density")
    assert temperature.from_midi(0) == temperature.low
    assert temperature.from_midi(127) == temperature.high
    assert math.isnan(density.from_midi(0))  # all the way down: follow the player again
    assert control("mode").from_midi(127) == 2 and control("mode").from_midi(0) == 0
    assert control("mute").from_midi(64) == 1 and control("mute").from_midi(63) == 0
    end = control("end")
    assert end.from_midi(127, None) == 1 and end.from_midi(127, 100) is None
    assert end.from_midi(0, 127) is None and end.from_midi(90, 10) == 1


def test_a_midi_map_takes_mapped_messages_for_the_panel_and_leaves_the_rest():
    panel = Panel()
    pairs = parse_map(["74=temperature", "note36=mute", "note37=handover", "64=end",
                       "10:note40=panic", "cc20=register"])
    midi = MidiMap(panel, pairs)
    assert midi.handle([0xB0, 74, 127]) and panel.get("temperature") == 2.0
    assert not midi.handle([0xB0, 75, 127])  # unmapped: the model's (a pedal, say)
    assert not midi.handle([0x90, 60, 100])
    assert midi.handle([0x90, 36, 90]) and panel.get("mute") == 1
    assert midi.handle([0x80, 36, 0]) and panel.get("mute") == 1  # the release is taken too
    assert midi.handle([0x90, 36, 90]) and panel.get("mute") == 0  # a pad toggles
    midi.handle([0x90, 37, 90])
    assert panel.show("handover") == "band"
    midi.handle([0x90, 37, 90])
    assert panel.show("handover") == "player"
    for value in (127, 127, 0, 127):  # a sustain-style pedal: two presses
        midi.handle([0xB0, 64, value])
    assert panel.get("end") == 2
    assert not midi.handle([0x90, 40, 100])  # panic only on channel 10
    assert midi.handle([0x99, 40, 100]) and panel.get("panic") == 1
    midi.handle([0xB0, 20, 0])
    assert math.isnan(panel.get("register"))


def test_a_channel_of_its_own_wins_over_any_channel():
    panel = Panel()
    midi = MidiMap(panel, {Source.parse("1"): "density", Source.parse("2:1"): "temperature"})
    midi.handle([0xB1, 1, 127])
    assert panel.get("temperature") == 2.0 and math.isnan(panel.get("density"))
    midi.handle([0xB0, 1, 127])
    assert panel.get("density") == 16.0


@pytest.mark.parametrize("bad, words", [
    ("74", "SOURCE=CONTROL"), ("cc200=density", "0..127"), ("17:cc1=density", "1..16"),
    ("knob=density", "not a MIDI source"), ("1=volume", "no control 'volume'")])
def test_bad_map_entries_say_what_is_wrong(bad, words):
    with pytest.raises(ValueError, match=words):
        parse_map([bad])


@pytest.mark.parametrize("suffix", [".toml", ".json"])
def test_a_map_file_reads_back_what_was_written_and_is_never_replaced(tmp_path, suffix):
    pairs = parse_map(["74=temperature", "10:note36=panic", "note37=handover"])
    path = save_map(pairs, tmp_path / f"keys{suffix}")
    assert load_map(path) == pairs
    with pytest.raises(ValueError, match="exists"):
        save_map(pairs, path)


def test_a_bad_map_file_is_one_line_naming_it(tmp_path):
    (tmp_path / "a.toml").write_text("[map\n")
    (tmp_path / "b.json").write_text(json.dumps({"controls": {}}))
    (tmp_path / "c.toml").write_text('[map]\n"74" = "volume"\n')
    for name, words in [("a.toml", "not valid TOML"), ("b.json", "no map table"),
                        ("c.toml", "no control 'volume'"), ("missing.toml", "cannot read")]:
        with pytest.raises(ValueError, match=words) as err:
            load_map(tmp_path / name)
        assert name in str(err.value) and "\n" not in str(err.value)


def test_learning_takes_each_knob_in_turn_skips_and_refuses_a_source_twice():
    # A scripted controller: a burst per knob, a pause between (as a hand turns one).
    script = [[0xB0, 74, v] for v in (10, 20, 30)] + [None] * 12
    script += [[0xB0, 74, 40]] + [None] * 12  # the same knob again: refused
    script += [[0xB0, 1, 64]] + [None] * 12 + [[0x99, 40, 100]] + [None] * 30
    said: list[str] = []
    skip_at = {"key"}  # Enter on the key control

    def next_message(timeout: float):
        if script:
            item = script.pop(0)
            if item is None:
                time.sleep(timeout)
            return item
        time.sleep(timeout)
        return None

    asked: list[str] = []

    def say(line: str) -> None:
        said.append(line)
        if not line.startswith(" "):
            asked.append(line.split(":")[0])

    pairs = learn(next_message, say, lambda: asked[-1] in skip_at, quiet_s=0.1,
                  names=("temperature", "key", "density", "panic"))
    assert pairs == {Source("cc", 74, 0): "temperature", Source("cc", 1, 0): "density",
                     Source("note", 40, 9): "panic"}
    assert any("already temperature" in line for line in said)
    assert any("key: skipped" in line for line in said)


@given(st.lists(st.integers(0, 255), min_size=0, max_size=4))
def test_no_midi_message_can_break_a_map(data):
    panel = Panel()
    midi = MidiMap(panel, parse_map(["1=density", "note36=mute", "2=end", "3=key"]))
    midi.handle(data)
    assert all(not math.isinf(v) for v in panel.values)


@given(st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), st.text(max_size=8),
                 st.binary(max_size=8)))
@settings(max_examples=200)
def test_any_value_is_taken_or_refused_with_a_value_error(value):
    for c in CONTROLS:
        panel = Panel()
        try:
            panel.set(c.name, value)
        except ValueError:
            pass


# --- OSC over a real UDP socket --------------------------------------------------------------

def _osc(address: str, *args) -> bytes:
    from pythonosc.osc_message_builder import OscMessageBuilder

    b = OscMessageBuilder(address=address)
    for a in args:
        b.add_arg(a)
    return b.build().dgram


@pytest.fixture
def osc_server():
    panel, said = Panel(), []
    server = OscControl(panel, "127.0.0.1", 0, say=said.append, log_every_s=0.2)
    client = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    client.settimeout(2.0)
    yield panel, server, client, said
    client.close()
    server.close()


def _settle(server: OscControl, count: int) -> None:
    end = time.monotonic() + 5
    while server.received < count and time.monotonic() < end:
        time.sleep(0.01)
    time.sleep(0.05)


def test_osc_sets_the_controls_and_answers_the_state(osc_server):
    panel, server, client, _ = osc_server
    to = server.address
    client.sendto(_osc("/neuralband/temperature", 0.4), to)
    client.sendto(_osc("/neuralband/key", "D minor"), to)
    client.sendto(_osc("/neuralband/panic"), to)
    client.sendto(_osc("/neuralband/end", 0), to)  # a button's release: nothing
    _settle(server, 4)
    assert panel.get("temperature") == pytest.approx(0.4)
    assert panel.show("key") == "D minor" and panel.get("panic") == 1 and panel.get("end") == 0
    client.sendto(_osc("/neuralband/state"), to)
    from pythonosc.osc_message import OscMessage

    reply = OscMessage(client.recvfrom(65536)[0])
    state = dict(zip(reply.params[::2], reply.params[1::2], strict=True))
    assert reply.address == "/neuralband/state"
    assert state["key"] == "D minor" and state["temperature"] == pytest.approx(0.4)
    assert set(state) == {c.name for c in CONTROLS}


def test_a_flood_of_bad_osc_is_ignored_with_a_few_log_lines(osc_server):
    panel, server, client, said = osc_server
    to = server.address
    before = panel.values.copy()
    bad = [b"", b"\x00" * 7, b"garbage that is not OSC", b"/neuralband/temperature\x00",
           _osc("/neuralband/temperature", "hot"), _osc("/neuralband/temperature", 99.0),
           _osc("/neuralband/temperature", 1.0, 2.0), _osc("/neuralband/volume", 1.0),
           _osc("/other/thing", 1), _osc("/neuralband/density"), _osc("/neuralband/mode", 7),
           _osc("/neuralband/key", 3.5)]
    for _ in range(50):
        for dgram in bad:
            client.sendto(dgram, to)
    _settle(server, 50 * len(bad))  # (UDP may drop some of a flood: the count may fall short)
    flooded = server.received
    client.sendto(_osc("/neuralband/temperature", 0.7), to)  # still listening after all that
    _settle(server, flooded + 1)
    assert server.thread.is_alive()
    assert panel.get("temperature") == pytest.approx(0.7)
    panel.values[INDEX["temperature"]] = before[INDEX["temperature"]]
    assert np.array_equal(panel.values, before, equal_nan=True)  # nothing else moved
    assert server.ignored == flooded > 100
    assert 1 <= len(said) <= 10, said  # rate-limited: not a line per datagram
    assert all(line.startswith("OSC: ignored") for line in said)


def test_an_osc_address_is_a_port_or_host_and_port():
    assert parse_address("9000") == ("127.0.0.1", 9000)
    assert parse_address("0.0.0.0:9001") == ("0.0.0.0", 9001)
    for bad in ("port", "1.2.3.4:99999"):
        with pytest.raises(ValueError):
            parse_address(bad)


def test_an_osc_port_in_use_is_one_line():
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as taken:
        taken.bind(("127.0.0.1", 0))
        with pytest.raises(ValueError, match="cannot listen for OSC on 127.0.0.1"):
            OscControl(Panel(), "127.0.0.1", taken.getsockname()[1])


def test_a_map_file_that_cannot_be_written_is_one_line(tmp_path):
    (tmp_path / "a_file").write_text("")
    with pytest.raises(ValueError, match="cannot write the map file"):
        save_map(parse_map(["1=density"]), tmp_path / "a_file" / "keys.toml")


def test_two_bad_osc_messages_back_to_back_are_both_told(osc_server):
    """The first is said at once, the second counted and said a second later (nothing else
    came to carry the count)."""
    _, server, client, said = osc_server
    client.sendto(_osc("/neuralband/volume", 1.0), server.address)
    client.sendto(_osc("/neuralband/volume", 2.0), server.address)
    _settle(server, 2)
    end = time.monotonic() + 3
    while len(said) < 2 and time.monotonic() < end:
        time.sleep(0.05)
    assert len(said) == 2, said
    assert "no control 'volume'" in said[0] and "1 more" in said[1]


def test_osc_beyond_loopback_takes_only_the_senders_it_names():
    import pytest as _pytest

    from neuralband.live.osc import is_loopback, parse_allow

    with _pytest.raises(ValueError, match="--osc-allow"):
        OscControl(Panel(), "0.0.0.0", 0)  # anyone on the network: refused without a list
    assert is_loopback("127.0.0.1") and is_loopback("::1") and not is_loopback("0.0.0.0")
    assert parse_allow("127.0.0.2, localhost") == ("127.0.0.2", "127.0.0.1")
    with _pytest.raises(ValueError, match="no such host"):
        parse_allow("no.such.host.invalid")
    panel, said = Panel(), []
    server = OscControl(panel, "0.0.0.0", 0, say=said.append, allow=("127.0.0.2",))
    try:
        port = server.address[1]
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as stranger:
            stranger.bind(("127.0.0.1", 0))
            stranger.sendto(_osc("/neuralband/panic"), ("127.0.0.1", port))
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as friend:
            friend.bind(("127.0.0.2", 0))
            friend.sendto(_osc("/neuralband/temperature", 0.6), ("127.0.0.1", port))
        _settle(server, 2)
    finally:
        server.close()
    assert panel.get("panic") == 0  # the stranger pressed nothing
    assert panel.get("temperature") == pytest.approx(0.6)  # the named sender did
    assert len(said) == 1 and "from 127.0.0.1, not a sender --osc-allow names" in said[0]
