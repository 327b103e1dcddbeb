"""Methods: LightningModules on the shared DiffusionModule, looked up by `method.name`."""

from __future__ import annotations

import importlib

from vidgen.errors import ConfigError

# name -> "module:Class"; methods add themselves here (JDM, InstanceV, Ingredients, STIV).
METHODS = {
    "finetune": "vidgen.methods.finetune:FineTuneModule",
    "jdm": "vidgen.methods.jdm.module:JDMModule",
    "stiv": "vidgen.methods.stiv.module:STIVModule",
    "instancev": "vidgen.methods.instancev.module:InstanceVModule",
    "ingredients": "vidgen.methods.ingredients.module:IngredientsModule",
    "gligen": "vidgen.methods.gligen.module:GLIGENModule",
    "instancediffusion": "vidgen.methods.instancediffusion.module:InstanceDiffusionModule",
}


def method_class(name: str):
    if name not in METHODS:
        raise ConfigError(f"method={name}: no such method. Valid values: {', '.join(sorted(METHODS))}")
    module, cls = METHODS[name].split(":")
    return getattr(importlib.import_module(module), cls)
