"""Model providers: dataclasses that describe a model and build it (Megatron Bridge's naming).

The classes are exported lazily, by class name, from the ``plugtron.providers`` entry points (the
registry of providers): importing this package (or its torch-free ``registry`` and ``hf.commands``)
does not import torch.
"""

from plugtron.providers.registry import provider_class


def _classes():
    from plugtron import registry

    return {e.attr: name for name, e in registry.entries("provider").items()
            if e.module.startswith("plugtron.providers.") and e.attr}


def __getattr__(name):
    classes = _classes()
    if name in classes:
        return provider_class(classes[name])
    raise AttributeError(f"module 'plugtron.providers' has no attribute {name!r}")


def __dir__():
    return sorted(_classes()) + ["provider_class"]
