"""Model files: ``NAME.safetensors`` (weights) + ``NAME.json`` (config, token scheme, summary).

Nothing is ever unpickled: weights are safetensors (a JSON header and raw arrays) and the sidecar
is JSON. The sidecar records the weights file's SHA-256, so a damaged or tampered file is refused
with one line (`ModelFileError`) before any array is used.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path

from neuralband.encoders.controls import ControlSettings
from neuralband.encoders.performance import EncoderSettings
from neuralband.encoders.schemes import TokenScheme, scheme_from_dict, scheme_from_parts
from neuralband.modelconfig import ModelConfig

FORMAT = "neuralband-model"
VERSION = 2  # 1: encoder settings beside an optional voices or grid entry (still read)


class ModelFileError(Exception):
    """A model file is missing, damaged, tampered with, or made for other settings."""


@dataclass(frozen=True)
class ModelInfo:
    """What the JSON sidecar says about the weights."""

    config: ModelConfig
    scheme: TokenScheme  # what its tokens are (`encoders.schemes`)
    dtype: str
    sha256: str
    summary: dict = field(default_factory=dict)
    controls: ControlSettings | None = None  # a model that reads key and density controls

    @property
    def encoder(self) -> EncoderSettings | None:
        """The event encoding under the scheme (None for text)."""
        return self.scheme.settings

    def to_json(self) -> str:
        controls = {"controls": self.controls.to_dict()} if self.controls else {}
        return json.dumps({
            "format": FORMAT, "version": VERSION, "model": self.config.to_dict(),
            "scheme": self.scheme.to_dict(), **controls, "dtype": self.dtype,
            "sha256": self.sha256, "summary": self.summary,
        }, indent=2) + "\n"

    @property
    def vocab_size(self) -> int:
        """The token vocabulary (input classes) the model was trained on."""
        return self.scheme.input_classes

    def check(self) -> None:
        """ValueError where the config does not fit the tokens (classes in and out)."""
        if self.config.vocab_size != self.vocab_size:
            raise ValueError(f"the model has {self.config.vocab_size} classes, its tokens "
                             f"{self.vocab_size}")
        if self.config.classes != self.scheme.output_classes:
            raise ValueError(f"the model predicts {self.config.classes} classes, its tokens "
                             f"need {self.scheme.output_classes}")
        wanted = self.controls.size if self.controls else 0
        if self.config.controls != wanted:
            raise ValueError(f"the model reads {self.config.controls} control inputs, its "
                             f"control settings make {wanted}")
        if self.config.fields != self.scheme.fields:
            raise ValueError(f"a {self.scheme.name} model embeds fields {self.scheme.fields}, "
                             f"not {self.config.fields}")


BUNDLED = ("pop", "pop-duet", "chorale-folk", "duet", "grid", "folk", "colours")
DEFAULT = "pop"
ALIASES = {"default": DEFAULT}


def bundled_model(name: str = DEFAULT) -> Path:
    """A model shipped inside the package: "pop" (the default: POP909's piano arrangements, key
    and density controls, examples/train_pop_model.sh), "pop-duet" (you play the tune, it plays
    the arrangement, examples/train_pop_duet_model.sh), "chorale-folk" (the first default: Bach
    chorales and folk tunes, examples/train_chorale_folk_model.sh), "duet" (voice-packed SATB,
    examples/train_duet_model.sh), "grid" (the SATB ensemble grid, examples/
    train_grid_model.sh), "folk" (FolkRNN: ABC tunes as folk-rnn's tokens, examples/
    train_folk_model.sh) or "colours" (a char-RNN of colour names, examples/
    train_colours_model.sh); "default" is "pop"."""
    from importlib import resources

    name = ALIASES.get(name, name)
    return Path(str(resources.files("neuralband") / "data" / name))


def model_paths(path: str | os.PathLike) -> tuple[Path, Path]:
    """NAME, NAME.json or NAME.safetensors -> (weights path, sidecar path); a bare bundled name
    ("duet") that is not a file here means the bundled model; a run folder (`train -o RUN`)
    means the best model it holds, RUN/model."""
    p = Path(path)
    if p.is_dir() and (p / "model.json").is_file():
        p = p / "model"
    if p.suffix in (".json", ".safetensors"):
        p = p.with_suffix("")
    if (str(p) in BUNDLED or str(p) in ALIASES) and not p.with_name(p.name + ".json").exists():
        p = bundled_model(str(p))
    return p.with_name(p.name + ".safetensors"), p.with_name(p.name + ".json")


def read_info(path: str | os.PathLike, weights_bytes: bytes | None = None) -> ModelInfo:
    """Read and check the sidecar and the weights' hash (no arrays are built); a caller that
    has read the weights file gives its ``weights_bytes`` (it is then not read again)."""
    weights, sidecar = model_paths(path)
    try:
        meta = json.loads(sidecar.read_text())
    except FileNotFoundError as err:
        raise ModelFileError(f"{sidecar}: no such model file (a model is a file NAME.json "
                             f"beside NAME.safetensors, a run folder, or one of the bundled: "
                             f"{', '.join(BUNDLED)})") from err
    except (OSError, ValueError) as err:
        raise ModelFileError(f"{sidecar}: not a readable model description ({err})") from err
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise ModelFileError(f"{sidecar}: not a neuralband model description")
    if meta.get("version") not in (1, VERSION):
        raise ModelFileError(f"{sidecar}: model format version {meta.get('version')!r}, "
                             f"this neuralband reads 1..{VERSION}")
    try:
        scheme = (scheme_from_parts(meta["encoder"], meta.get("voices"), meta.get("grid"))
                  if meta["version"] == 1 else scheme_from_dict(meta["scheme"]))
        controls = (ControlSettings.from_dict(meta["controls"]) if meta.get("controls")
                    else None)
        info = ModelInfo(ModelConfig.from_dict(meta["model"]), scheme, str(meta["dtype"]),
                         str(meta["sha256"]), dict(meta.get("summary", {})), controls)
        info.check()
    except (KeyError, TypeError, ValueError) as err:
        raise ModelFileError(f"{sidecar}: bad model description ({err})") from err
    try:
        digest = hashlib.sha256(weights_bytes if weights_bytes is not None
                                else weights.read_bytes()).hexdigest()
    except OSError as err:
        raise ModelFileError(f"{weights}: {err.strerror or err}") from err
    if digest != info.sha256:
        raise ModelFileError(f"{weights}: weights do not match their description "
                             "(damaged or modified file)")
    return info
