"""The live view's server (`neuralband.live.view`) on a running engine, in-process: real websocket
clients (the ``websockets`` library's own) watch a scripted player and the band; what they get
is checked against what the band really sent. The page in Chromium and JACK are in
test_view_jack.py."""

from __future__ import annotations

import json
import socket
import threading
import time
import urllib.error
import urllib.request

import pytest

from neuralband.live.engine import Engine
from neuralband.live.session import live_precision
from neuralband.live.turns import PlaySettings
from neuralband.live.view import Cell, ViewServer, parse_cells
from neuralband.live.view_feed import ViewFeed
from neuralband.modelfile import bundled_model
from neuralband.runtime import Stepper
from neuralband.sampling import model_rules
from tests.helpers.live import Capture, ScriptedPlayer, balanced, tune
from tests.helpers.view import Watcher

websockets = pytest.importorskip("websockets")
from websockets.sync.client import connect  # noqa: E402


def make_engine(model: str | None = None):
    stepper = Stepper.load(model or bundled_model(), precision=live_precision("auto"))
    out = Capture()
    engine = Engine(stepper, out, PlaySettings(mode="solo"), model_rules(stepper.info), seed=5)
    return engine, out


def play_for(engine, seconds: float, during=()) -> None:
    """A scripted player for ``seconds``; ``during``: functions run in threads meanwhile."""
    player = ScriptedPlayer(tune(seconds), lambda d: engine.receive(time.perf_counter(), d))
    threads = [threading.Thread(target=f, daemon=True) for f in during]
    for t in threads:
        t.start()
    threading.Timer(0.3, player.start).start()
    engine.run(seconds)
    player.join()
    engine.close()
    for t in threads:
        t.join(timeout=10)


def sent_notes(sent) -> list[tuple[str, int]]:
    """The band's note messages as they left, a repeated NOTE_OFF (sent again against lost
    JACK periods) counted once."""
    on, out = set(), []
    for _, d in sent:
        kind = d[0] & 0xF0
        if kind == 0x90 and d[2] > 0:
            on.add((d[0] & 0x0F, d[1]))
            out.append(("note_on", d[1]))
        elif kind in (0x80, 0x90) and (d[0] & 0x0F, d[1]) in on:
            on.discard((d[0] & 0x0F, d[1]))
            out.append(("note_off", d[1]))
    return out


def test_feed_hands_each_reader_what_is_new_and_forgets_the_oldest():
    feed = ViewFeed(keep=4)
    assert feed.since(0) == []
    for k in range(6):
        feed.note(k * 0.1, True, 0, 60 + k, 90)
    assert [n[4] for n in feed.since(0)] == [62, 63, 64, 65]  # the first two are forgotten
    assert [n[4] for n in feed.since(4)] == [64, 65]
    assert feed.since(6) == []


@pytest.mark.slow
def test_pages_see_every_note_the_band_sent_one_for_one_and_a_late_page_catches_up():
    engine, out = make_engine()
    server = ViewServer(engine, port=0, say=lambda line: None)
    # Both pages stay open past the band's end (6.5 s and its closing NOTE_OFFs); the late one
    # opens at 2.5 s, with four seconds of the band still to come (CI once saw a page opened at
    # 3.5 s for 3 s get no note after its hello: the band, sampled, may rest a while).
    early, late = Watcher(server, 0.0, 8.0), Watcher(server, 2.5, 5.5)
    play_for(engine, 6.5, during=[early, late])
    server.close()
    assert early.notes("band") == sent_notes(out.sent) and len(early.notes("band")) > 20
    played = [("note_on" if d[2] else "note_off", d[1]) for t, d in tune(6.5) if t < 6.0]
    assert early.notes("player")[:len(played)] == played
    hello = late.of("hello")[0]  # the page opened late: the last 30 s first, then the stream
    seen = late.notes("band")  # no gap, no repeat where the past meets the stream
    assert len(hello["notes"]) > 10 and len(seen) > len(hello["notes"])
    assert seen == early.notes("band")
    assert {c["name"] for c in hello["controls"]} >= {"temperature", "density", "panic"}
    assert hello["voices"] == {"1": "band"} and len(hello["cells"]) == 32
    # the piano rolls' palette: the player blue, the band orange, as `audition` draws them
    from neuralband.audition import PART_COLOURS

    assert hello["palette"][:2] == ["#" + "".join(f"{round(255 * c):02x}" for c in rgb)
                                    for rgb in PART_COLOURS[:2]]
    frames = early.of("state")
    assert len(frames) > 40  # ten a second
    assert sum(len(f["entropy"]) for f in frames) > 20
    assert all(len(f["cell_values"]) == 32 for f in frames)
    assert all(f["t"] >= g["t"] for f, g in zip(frames[1:], frames, strict=False))
    assert balanced(out.sent)


def test_a_page_sets_the_engine_s_controls_and_garbage_is_answered_not_obeyed():
    engine, out = make_engine()
    lines: list[str] = []
    server = ViewServer(engine, port=0, say=lines.append)
    page = Watcher(server, 0.5, 2.0, send=[
        "not json", json.dumps({"set": "temperature", "value": 9}),
        json.dumps({"set": "loudness", "value": 1}), json.dumps([1, 2]),
        json.dumps({"set": "temperature", "value": 0.45})])
    play_for(engine, 3.0, during=[page])
    server.close()
    assert engine.sampler.temperature == 0.45  # the engine took it, not only the panel
    errors = [m["error"] for m in page.of("error")]
    assert len(errors) == 4 and "temperature must be 0.1..2" in errors[1]
    assert "no control 'loudness'" in errors[2]
    assert lines and lines[0].startswith("view: ignored")  # logged, once a second at most
    assert page.of("state")[-1]["controls"]["temperature"] == 0.45
    assert balanced(out.sent)


@pytest.mark.slow
def test_floods_cut_frames_and_a_page_that_never_reads_leave_the_band_playing():
    engine, out = make_engine()
    lines: list[str] = []
    # A small send buffer, so that the stuck page's share (a frame is ~700 bytes, ten a
    # second) fills it and its queue within the take however little the band plays (CI: 6 s
    # once fitted in the defaults).
    server = ViewServer(engine, port=0, say=lines.append, queue=32, send_buffer=4096)
    url = f"ws://127.0.0.1:{server.address[1]}/ws"

    def flood() -> None:
        time.sleep(0.5)
        with connect(url) as ws:
            for k in range(3000):
                ws.send(b"\x00\xff" * 10 if k % 2 else "{\"set\": 17}")

    def cut_mid_frame() -> None:
        time.sleep(1.0)
        with connect(url) as ws:
            ws.socket.sendall(b"\x81\xfe\x10")  # a text frame's header, cut off: then gone
            ws.socket.shutdown(socket.SHUT_RDWR)

    def never_reads() -> None:  # a page whose tab froze: the server must not queue for it
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.connect(("127.0.0.1", server.address[1]))
        sock.sendall(b"GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n"
                     b"Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                     b"Sec-WebSocket-Version: 13\r\n\r\n")  # then it never reads again
        time.sleep(6.0)
        sock.close()

    watcher = Watcher(server, 0.2, 6.5)
    begin = time.perf_counter()
    play_for(engine, 6.5, during=[flood, cut_mid_frame, never_reads, watcher])
    ons = [t for t, d in out.sent if d[0] & 0xF0 == 0x90 and d[2] > 0]
    # The band played on after all of it: notes after the take's first 3 s, when the flood and
    # the cut frame were over and the stuck page was filling (how many notes a sampled band plays,
    # and where it rests, varies: CI once heard exactly 20 in 6.5 s; once the last came at 4.5 s).
    assert len(ons) >= 10 and max(ons) > begin + 3.0
    assert balanced(out.sent)
    assert watcher.notes("band") == sent_notes(out.sent)  # the watching page lost nothing
    assert server.dropped > 0 and all(p.queue.qsize() <= 32 for p in server.pages)
    assert server.ignored >= 3000 and len(lines) < 20
    fresh = Watcher(server, 0.0, 0.5)  # and the server still serves
    fresh()
    assert fresh.of("hello")
    server.close()


def test_the_page_s_files_come_from_the_package_and_ask_for_nothing_outside():
    engine, _ = make_engine()
    server = ViewServer(engine, port=0, say=lambda line: None)
    try:
        for path, kind in (("", "text/html"), ("view.js", "text/javascript"),
                           ("view.css", "text/css")):
            with urllib.request.urlopen(server.url + path) as reply:
                body = reply.read().decode()
                assert reply.headers["Content-Type"].startswith(kind)
            assert "http://" not in body.replace("http://${", "") and "https://" not in body
        with pytest.raises(urllib.error.HTTPError) as err:
            urllib.request.urlopen(server.url + "secrets.txt")
        assert err.value.code == 404
    finally:
        server.close()


def test_only_the_view_s_own_page_may_open_its_websocket():
    """Another site open in the player's browser must not press panic or read the notes."""
    from websockets.exceptions import InvalidStatus

    engine, _ = make_engine()
    server = ViewServer(engine, port=0, say=lambda line: None)
    port = server.address[1]
    try:
        for origin in (f"http://127.0.0.1:{port}", None):  # the page itself; a script
            with connect(f"ws://127.0.0.1:{port}/ws", origin=origin) as ws:
                assert json.loads(ws.recv(timeout=5))["type"] == "hello"
        for origin in ("http://evil.example", f"http://127.0.0.1:{port + 1}"):
            with pytest.raises(InvalidStatus, match="403"):
                connect(f"ws://127.0.0.1:{port}/ws", origin=origin).close()
        # DNS rebinding: a page of another name that resolves here sends its own Host.
        with socket.create_connection(("127.0.0.1", port)) as sock:
            sock.sendall(f"GET /ws HTTP/1.1\r\nHost: evil.example:{port}\r\n"
                         f"Origin: http://evil.example:{port}\r\nUpgrade: websocket\r\n"
                         "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                         "Sec-WebSocket-Version: 13\r\n\r\n".encode())
            assert sock.recv(100).startswith(b"HTTP/1.1 403")
    finally:
        server.close()


def test_beyond_loopback_the_view_opens_only_with_its_token():
    """--view-host 0.0.0.0 (a phone on stage): the URL printed carries a secret; a websocket
    without it (anyone else on the network) is refused in one log line, the band unaffected."""
    from websockets.exceptions import InvalidStatus

    engine, _ = make_engine()
    lines: list[str] = []
    server = ViewServer(engine, host="0.0.0.0", port=0, say=lines.append)
    port = server.address[1]
    try:
        assert server.token and server.url.endswith(f"/?token={server.token}")
        with connect(f"ws://127.0.0.1:{port}/ws?token={server.token}",
                     origin=f"http://127.0.0.1:{port}") as ws:
            assert json.loads(ws.recv(timeout=5))["type"] == "hello"
        for query in ("", "?token=guess"):
            with pytest.raises(InvalidStatus, match="403"):
                connect(f"ws://127.0.0.1:{port}/ws{query}").close()
        assert engine.panel.get("panic") == 0
    finally:
        server.close()
    assert len(lines) == 1 and "without the view's token" in lines[0]
    loopback = ViewServer(engine, port=0, say=lines.append)  # as easy as before on loopback
    try:
        assert loopback.token is None and "token" not in loopback.url
    finally:
        loopback.close()


def test_a_taken_port_and_bad_cells_are_one_line_errors():
    engine, _ = make_engine()
    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen()
    try:
        with pytest.raises(ValueError, match=r"cannot serve the view on 127.0.0.1:\d+"):
            ViewServer(engine, port=taken.getsockname()[1])
    finally:
        taken.close()
    layers, _, hidden = engine.stepper.h.shape
    assert parse_cells(f"0:3, {layers - 1}:{hidden - 1}", engine.stepper) == [
        Cell(0, 3), Cell(layers - 1, hidden - 1)]
    with pytest.raises(ValueError, match="is not in the model"):
        parse_cells(f"{layers}:0", engine.stepper)
    with pytest.raises(ValueError, match="LAYER:CELL"):
        parse_cells("seven", engine.stepper)


@pytest.mark.slow
@pytest.mark.parametrize("model", ["grid", "pop-duet"])
def test_a_band_of_voices_is_named_voice_by_voice_and_its_plan_is_shown(model):
    stepper = Stepper.load(bundled_model(model), precision=live_precision("auto"))
    out = Capture()
    rules = model_rules(stepper.info)
    if model == "grid":
        from neuralband.live.grid_engine import GridEngine

        engine = GridEngine(stepper, out, PlaySettings(mode="duet"), rules, seed=5)
    else:
        engine = Engine(stepper, out, PlaySettings(mode="duet"), rules, seed=5)
    server = ViewServer(engine, port=0, say=lambda line: None)
    page = Watcher(server, 0.0, 7.0)
    play_for(engine, 6.5, during=[page])
    server.close()
    hello = page.of("hello")[0]
    names = set(hello["voices"].values())
    played = {m["voice"] for m in page.messages if m["type"] == "note_on" and m["who"] == "band"}
    assert played and played <= names
    plans = [p for f in page.of("state") for p in f["plan"]]
    assert plans and {p["voice"] for p in plans} <= names
    frames = page.of("state")
    # A planned note is ahead of the frame that shows it.
    assert all(p["t"] >= f["t"] - 0.2 for f in frames for p in f["plan"])
    if model == "grid":
        assert names == {f"voice {k}" for k in range(1, len(names) + 1)} and len(names) >= 3
    assert balanced(out.sent)
