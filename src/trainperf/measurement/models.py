"""Models by name: torchvision's ResNet-18, its CIFAR variant, any torchvision classifier, or a user factory."""

from __future__ import annotations

import importlib
import inspect
from functools import cache
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from torch import nn

NUM_CLASSES = 10


@cache
def torchvision_classifiers() -> frozenset[str]:
    """Names torchvision registers as classification models."""
    import torchvision

    return frozenset(torchvision.models.list_models(module=torchvision.models))


def build_model(name: str, num_classes: int = NUM_CLASSES) -> nn.Module:
    """A freshly initialised model for ``name``.

    ``resnet18_cifar`` is ResNet-18 with the 3x3 stride-1 stem and no max-pool that CIFAR-10 recipes train:
    it keeps 32x32 feature maps in the first stage, about 15x the FLOPs of the stock stem at this size.
    ``package.module:factory`` calls ``factory(num_classes=...)`` (or ``factory()`` when it takes no such
    argument) and must return an ``nn.Module``.
    """
    import torchvision
    from torch import nn

    if name == "resnet18_cifar":
        model = torchvision.models.resnet18(num_classes=num_classes)
        model.conv1 = nn.Conv2d(3, 64, kernel_size=3, stride=1, padding=1, bias=False)
        model.maxpool = nn.Identity()
        return model
    if ":" in name:
        module_name, _, attr = name.partition(":")
        factory = getattr(importlib.import_module(module_name), attr)
        params = inspect.signature(factory).parameters
        takes_classes = "num_classes" in params or any(p.kind is p.VAR_KEYWORD for p in params.values())
        model = factory(num_classes=num_classes) if takes_classes else factory()
        if not isinstance(model, nn.Module):
            raise TypeError(f"model factory {name!r} returned {type(model).__name__}, expected a torch.nn.Module")
        return model
    return torchvision.models.get_model(name, weights=None, num_classes=num_classes)
