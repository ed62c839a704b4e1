"""Training state on disk, for `--resume`: weights, optimizer moments and RNG, never pickled.

A checkpoint is ``ckpt-STEP.safetensors`` (every tensor: model, AdamW moments, torch RNG) plus
``state.json`` (step, best validation NLL, optimizer hyper-parameters, the weights file's name
and SHA-256). ``state.json`` is replaced atomically after the tensors are on disk, so it always
names a complete checkpoint, also after kill -9; older tensor files are removed after that.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load, save

from neuralband.atomic import write_atomic
from neuralband.modelfile import ModelFileError

STATE = "state.json"


def save_checkpoint(run_dir: Path, step: int, model: torch.nn.Module,
                    optimizer: torch.optim.Optimizer, extra: dict) -> Path:
    """Write the state after ``step`` optimizer steps; returns the tensors file."""
    tensors = {f"model.{k}": v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    opt = optimizer.state_dict()
    for index, slots in opt["state"].items():
        for name, value in slots.items():
            tensors[f"optim.{index}.{name}"] = torch.as_tensor(value).detach().cpu().contiguous()
    tensors["rng.torch"] = torch.get_rng_state()
    data = save(tensors)
    name = f"ckpt-{step:08d}.safetensors"
    write_atomic(run_dir / name, data)
    state = {"step": step, "tensors": name, "sha256": hashlib.sha256(data).hexdigest(),
             "param_groups": opt["param_groups"], **extra}
    write_atomic(run_dir / STATE, (json.dumps(state, indent=2) + "\n").encode())
    for old in run_dir.glob("ckpt-*.safetensors"):
        if old.name != name:
            old.unlink(missing_ok=True)
    return run_dir / name


def load_checkpoint(run_dir: Path, model: torch.nn.Module,
                    optimizer: torch.optim.Optimizer) -> dict:
    """Restore model, optimizer and torch RNG in place; returns the JSON state (with ``step``)."""
    path = run_dir / STATE
    try:
        state = json.loads(path.read_text())
        tensors_path = run_dir / state["tensors"]
        data = tensors_path.read_bytes()
    except FileNotFoundError as err:
        raise ModelFileError(f"{run_dir}: no checkpoint to resume from ({err.filename})") from err
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise ModelFileError(f"{path}: not a readable checkpoint ({err})") from err
    if hashlib.sha256(data).hexdigest() != state.get("sha256"):
        raise ModelFileError(f"{tensors_path}: checkpoint does not match {STATE} "
                             "(damaged or modified file)")
    try:
        tensors = load(data)
    except SafetensorError as err:
        raise ModelFileError(f"{tensors_path}: not a readable safetensors file ({err})") from err
    try:
        model.load_state_dict({k[6:]: v for k, v in tensors.items() if k.startswith("model.")})
    except RuntimeError as err:
        first = str(err).strip().splitlines()[0]
        raise ModelFileError(f"{tensors_path}: checkpoint is for another model size ({first}); "
                             "resume with the run's own --preset") from err
    slots: dict[int, dict[str, torch.Tensor]] = {}
    for key, value in tensors.items():
        if key.startswith("optim."):
            _, index, name = key.split(".", 2)
            slots.setdefault(int(index), {})[name] = value
    optimizer.load_state_dict({"state": slots, "param_groups": state["param_groups"]})
    torch.set_rng_state(tensors["rng.torch"])
    return state
