"""The house's layers point one way: cli -> learning -> {offline, live, training} -> runtime ->
{model file, encoders}; and torch stays out of everything `play` and `generate` import."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers.data import CHORALES

ROOT = Path(__file__).resolve().parents[2]

# Lowest first. A module may import its own layer and those below; of the applications, each
# group only itself (the live instrument does not reach into offline generation, nor either into
# training).
LAYERS = [
    {"encoders": ["neuralband.encoders"]},
    {"files": ["neuralband.atomic", "neuralband.modelconfig", "neuralband.palette",
               "neuralband.int8", "neuralband.modelfile", "neuralband.fluidsynth"]},
    {"runtime": ["neuralband.runtime", "neuralband.sampling", "neuralband.voicing",
                 "neuralband.steering", "neuralband.groove", "neuralband.loaded",
                 "neuralband.grid_band", "neuralband.model", "neuralband.trial"]},
    {"offline": ["neuralband.generate", "neuralband.score", "neuralband.evaluate",
                 "neuralband.audition", "neuralband.activations", "neuralband.roundtrip"],
     "live": ["neuralband.live"],
     "training": ["neuralband.training"]},
    # The band that learns you composes them: tuning trains on takes, with the model's own
    # music generated to keep what it knew; the live learner tunes while the band plays.
    {"learning": ["neuralband.training.tune", "neuralband.live.learner"]},
    {"front": ["neuralband.cli", "neuralband.commands", "neuralband.options", "neuralband.demo",
               "neuralband.__main__", "neuralband"]},
]


def _place(module: str) -> tuple[int, str]:
    """(layer, group) of a module: the longest listed prefix."""
    best = (-1, "", "")
    for level, groups in enumerate(LAYERS):
        for group, prefixes in groups.items():
            for prefix in prefixes:
                if (module == prefix or module.startswith(prefix + ".")) \
                        and len(prefix) > len(best[2]):
                    best = (level, group, prefix)
    assert best[0] >= 0, f"{module} is in no layer: add it to LAYERS"
    return best[0], best[1]


def _imports(path: Path) -> set[str]:
    """The project modules a file imports (at the top or inside functions)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            found.update(f"{node.module}.{a.name}" for a in node.names)
        elif isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
    project = {_module(p) for root in FOLDERS for p in (ROOT / root).rglob("*.py")}
    return {m for m in found if m in project}


# The folders and the packages they install as (pyproject.toml's package-dir).
FOLDERS = {"encoders": "neuralband.encoders", "training": "neuralband.training",
           "neuralband": "neuralband"}


def _module(path: Path) -> str:
    """The installed module name of a source file: encoders/grid.py -> neuralband.encoders.grid."""
    folder, *rest = path.relative_to(ROOT).with_suffix("").parts
    return ".".join([FOLDERS[folder], *rest]).removesuffix(".__init__")


def test_every_import_points_down_a_layer_or_within_its_group():
    wrong = []
    for root in FOLDERS:
        for path in sorted((ROOT / root).rglob("*.py")):
            module = _module(path)
            level, group = _place(module)
            for dep in sorted(_imports(path)):
                if dep == "neuralband":
                    continue  # the package itself: its version
                dep_level, dep_group = _place(dep)
                if dep_level > level or (dep_level == level and dep_group != group):
                    wrong.append(f"{module} ({group}) imports {dep} ({dep_group})")
    assert not wrong, "\n".join(wrong)


@pytest.mark.parametrize("command", [
    ["play", "--in", "no such keyboard"],
    ["generate", "--seconds", "2", "--quiet", "-o", "OUT"],
    ["generate", "--model", "pop-duet", "--lead", str(CHORALES[0]), "--seconds", "2",
     "--quiet", "-o", "OUT"],
])
def test_play_and_generate_run_with_torch_blocked(command, tmp_path):
    """A player's machine needs no torch: `play` (up to the missing port) and `generate` run
    with every import of torch refused."""
    argv = [str(tmp_path / "x.mid") if a == "OUT" else a for a in command]
    code = ("import sys; sys.modules['torch'] = None\n"
            "from neuralband.cli import main\n"
            f"sys.exit(main({argv!r}))")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         cwd=ROOT, timeout=120)
    assert "torch" not in res.stderr and "Traceback" not in res.stderr, res.stderr
    if command[0] == "play":  # the port's one line (or, with no MIDI system here, what to start)
        lines = res.stderr.strip().splitlines()
        assert res.returncode == 2 and len(lines) == 1 and lines[0].startswith("neuralband: ")
    else:
        assert res.returncode == 0 and (tmp_path / "x.mid").exists(), res.stderr


def test_every_package_folder_installs_under_neuralband():
    """pyproject.toml lists the packages (the folders encoders/ and training/ install as
    neuralband.encoders and neuralband.training): a new package folder must be listed too."""
    tomllib = pytest.importorskip("tomllib")
    tool = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    folders = {_module(p) for root in FOLDERS for p in (ROOT / root).rglob("__init__.py")}
    data = {"neuralband.data", "neuralband.live.web"}  # files only: the models, the view's page
    assert set(tool["packages"]) == folders | data
    assert tool["package-dir"] == {v: k for k, v in FOLDERS.items() if k != v}
