"""Start from an image model trained elsewhere (``train.init``): its weights loaded into ``train.model`` built for
the data, or a one-line error naming ``train.init`` and what differs (classes, channels, layers) before any work.

Accepted: the project's own checkpoint (training/checkpoint.py: architecture and dataset info inside), a bare
state dict of ``train.model`` (``torch.save(model.state_dict(), path)``; for ``torchvision/<arch>`` also the
library module's own keys, ``fc.weight``), or the weights of a registered MLflow model (``models:/...``, read by
the stage through tracking.py and handed in as ``registry_weights``). Language models: modality/text/pretrained.py.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Mapping

import torch
from torch import nn

from ..data.splits import DatasetInfo
from ..sources import init_path, is_registry_uri
from .base import build_model

CHECKPOINT_KEYS = {"model", "dataset_info", "state_dict"}  # training/checkpoint.py's payload


def describe(info: DatasetInfo) -> str:
    return f"{info.in_channels} channel(s), {info.num_classes} classes, {info.image_size} px"


def load_image_init(init: str, model_name: str, info: DatasetInfo, root: Path,
                    registry_weights: Callable[[str], Mapping[str, torch.Tensor]]) -> tuple[nn.Module, str]:
    """(``model_name`` built for ``info`` holding the weights ``init`` names, what was loaded)."""
    if is_registry_uri(init):
        return fitted(model_name, info, registry_weights(init), init), f"{init} (registered MLflow model)"
    path = init_path(init, root)
    if path.is_dir():
        raise ValueError(f"train.init: {init!r} is a directory (a Hugging Face model?) but train.model {model_name!r} "
                         "is an image model; name a state-dict file saved with torch.save(model.state_dict(), path)")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise ValueError(f"train.init: {init!r} is not a torch state dict ({type(exc).__name__}); save the weights "
                         "with torch.save(model.state_dict(), path)") from None
    if not isinstance(payload, Mapping):
        raise ValueError(f"train.init: {init!r} holds a {type(payload).__name__}, not a state dict; save the weights "
                         "with torch.save(model.state_dict(), path)")
    if CHECKPOINT_KEYS <= set(payload):
        return checkpoint_weights(init, payload, model_name, info), f"{init} (memunlearn checkpoint of {model_name})"
    return fitted(model_name, info, payload, init), f"{init} (state dict of {model_name})"


def registry_weights(fingerprint: Mapping[str, str], target: Callable[[], Any]
                     ) -> Callable[[str], Mapping[str, torch.Tensor]]:
    """``uri -> weights`` of the registered MLflow version the sources stage resolved ``train.init: models:/...``
    to (``fingerprint``: name, version, run id), read from the store ``target()`` names (tracking.py) when asked."""
    from ..tracking import VersionRef, load_state_dict

    ref = VersionRef(fingerprint.get("name", ""), fingerprint.get("version", ""), fingerprint.get("run_id", ""), {})
    return lambda uri: load_state_dict(target(), ref)


def checkpoint_weights(init: str, payload: Mapping, model_name: str, info: DatasetInfo) -> nn.Module:
    """The project's checkpoint: its architecture must be ``train.model`` and its data shaped like this data."""
    if payload["model"] != model_name:
        raise ValueError(f"train.init: {init!r} is a {payload['model']!r} checkpoint but train.model is "
                         f"{model_name!r}; set train.model to {payload['model']!r}")
    trained_on = DatasetInfo.from_json(payload["dataset_info"])
    if describe(trained_on) != describe(info):
        raise ValueError(f"train.init: {init!r} was trained on {describe(trained_on)}; this data has "
                         f"{describe(info)}; start from a model trained on data of this shape")
    return fitted(model_name, info, payload["state_dict"], init)


def fitted(model_name: str, info: DatasetInfo, state: Mapping[str, torch.Tensor], init: str) -> nn.Module:
    """``model_name`` built for ``info`` with ``state`` loaded, or one line naming every difference."""
    model = build_model(model_name, info.in_channels, info.num_classes, info.image_size, seed=0)
    adapt = getattr(model, "from_library_state", None)  # torchvision/timm wrappers accept the library's keys
    return loaded(model, adapt(state) if adapt else dict(state), init, model_name, describe(info))


def loaded(model: nn.Module, state: Mapping[str, torch.Tensor], init: str, model_name: str, shape: str) -> nn.Module:
    """``model`` (``train.model`` built for data of ``shape``, in words) with ``state`` loaded, or one line naming
    ``train.init`` and every difference (an image model here; a language model: modality/text/pipeline.py)."""
    if problems := differences(model, state):
        raise ValueError(f"train.init: {init!r} does not fit train.model {model_name!r} on this data "
                         f"({shape}): {'; '.join(problems)}")
    model.load_state_dict(state)
    return model


def differences(model: nn.Module, state: Mapping[str, torch.Tensor]) -> list[str]:
    """What keeps ``state`` from loading into ``model``: classes (the head's rows), input channels (the first
    layer's), other shapes, missing and unexpected keys (three named of each)."""
    expected = model.state_dict()
    shapes = {k: (tuple(state[k].shape), tuple(v.shape)) for k, v in expected.items()
              if k in state and tuple(state[k].shape) != tuple(v.shape)}
    head = next((f"{name}.weight" for name, m in model.named_modules() if m is getattr(model, "head", None)), None)
    first = next((k for k, v in expected.items() if v.dim() == 4), None)  # the first conv's (out, in, kh, kw)
    out = []
    if head in shapes:
        out.append(f"classes: {shapes[head][0][0]} in train.init, {shapes[head][1][0]} in the data")
    if first in shapes and shapes[first][0][1] != shapes[first][1][1]:
        out.append(f"channels: {shapes[first][0][1]} in train.init, {shapes[first][1][1]} in the data")
    out += [f"{k} is {a} in train.init, {b} here" for k, (a, b) in list(shapes.items())[:3]]
    for what, keys in (("missing", [k for k in expected if k not in state]),
                       ("unexpected", [k for k in state if k not in expected])):
        if keys:
            out.append(f"{len(keys)} {what} key(s) ({', '.join(keys[:3])}{', ...' if len(keys) > 3 else ''})")
    return out
