"""One module per helpdesk kind, each with one ``Connector`` subclass: ``connectors()``
finds them, so adding a kind is adding a module."""

from __future__ import annotations

import importlib
import pkgutil

from streams.connectors.base import Connector


def connectors() -> dict[str, type[Connector]]:
    """Every kind by its name."""
    found: dict[str, type[Connector]] = {}
    for module_info in pkgutil.iter_modules(__path__):
        module = importlib.import_module(f"{__name__}.{module_info.name}")
        for value in vars(module).values():
            if (
                isinstance(value, type)
                and issubclass(value, Connector)
                and value.__module__ == module.__name__
            ):
                found[value.kind] = value
    return dict(sorted(found.items()))
