"""A player's whole setup in a file: ``play --save-settings band.toml`` keeps the options given
(model, mode, key, temperature, maps, ports, beat...) and ``play --settings band.toml`` starts
the same band again, the command line's own options over the file's.

The file is TOML: one ``name = value`` per option, named as in ``--help`` (``top-p``, ``map``);
an option the file does not know is refused by name.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

# Not a setup: what to do this time (where to write, how long, which file to read).
NOT_KEPT = ("settings", "save_settings", "learn", "seconds", "record", "func", "command",
            "parser")


def _options(parser: argparse.ArgumentParser) -> dict[str, argparse.Action]:
    """The parser's options by their long name without dashes (``top-p``)."""
    out = {}
    for action in parser._actions:
        if not action.option_strings or isinstance(action, argparse._HelpAction):
            continue
        if action.dest in NOT_KEPT:
            continue
        long = max(action.option_strings, key=len).lstrip("-")
        out[long] = action
    return out


def given(args: argparse.Namespace, parser: argparse.ArgumentParser) -> dict[str, object]:
    """The options that differ from their defaults: what the player chose."""
    return {name: getattr(args, a.dest) for name, a in _options(parser).items()
            if getattr(args, a.dest) != a.default}


def save(args: argparse.Namespace, parser: argparse.ArgumentParser,
         path: str | os.PathLike) -> Path:
    """Write the options given as a TOML file; an existing file is not replaced (ValueError)."""
    path = Path(path)
    if path.exists():
        raise ValueError(f"{path} exists; name a new settings file (or delete it first)")
    lines = ["# neuralband play settings (neuralband play --settings THIS)"]
    for name, value in given(args, parser).items():
        lines.append(f"{name} = {_toml(value)}")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("\n".join(lines) + "\n")
    except OSError as err:
        raise ValueError(f"cannot write the settings file {path}: {err.strerror or err}") \
            from None
    return path


def apply(args: argparse.Namespace, parser: argparse.ArgumentParser,
          path: str | os.PathLike) -> None:
    """Take the file's options where the command line left them at their defaults."""
    try:
        import tomllib
    except ImportError:  # Python 3.10
        raise ValueError("settings files need Python 3.11 or later (tomllib)") from None

    path = Path(path)
    try:
        data = tomllib.loads(path.read_text())
    except OSError as err:
        raise ValueError(f"cannot read the settings file {path}: {err.strerror or err}") \
            from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as err:
        raise ValueError(f"{path} is not valid TOML: {err}") from None
    options = _options(parser)
    for name, value in data.items():
        action = options.get(name)
        if action is None:
            raise ValueError(f"{path}: no play option {name!r} (the options are as in "
                             "`neuralband play --help`, without their dashes)")
        if getattr(args, action.dest) != action.default:
            continue  # the command line said otherwise: it wins
        if action.type is not None and not isinstance(value, (list, bool)):
            try:
                value = action.type(value)
            except (TypeError, ValueError):
                raise ValueError(f"{path}: {name} = {value!r} is not a "
                                 f"{getattr(action.type, '__name__', 'value')}") from None
        if action.choices is not None and value not in action.choices:
            raise ValueError(f"{path}: {name} is one of {', '.join(map(str, action.choices))}, "
                             f"not {value!r}")
        setattr(args, action.dest, value)


def _toml(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_toml(v) for v in value) + "]"
    text = str(value).replace("\\", "\\\\").replace('"', '\\"')
    return f'"{text}"'
