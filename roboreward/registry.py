"""Name-registered implementations: reward models, teleoperators, and the like.

A family base (``RewardModel``, ``Teleoperator``) subclasses :class:`Registered` with ``abc.ABC`` and
gets its own registry; each concrete subclass declares ``name`` (its config's registered ``type``)
and ``config_class``, is registered under that name — a duplicate is an error — and checks at
construction that it was given its own config. ``build(config)`` picks the implementation by name
and, on a failed lookup, lists the names that exist (as LeRobot's registries do).
"""

from __future__ import annotations

import abc
from typing import Any, ClassVar


class Registered:
    name: ClassVar[str]
    config_class: ClassVar[type]
    kind: ClassVar[str] = "implementation"  # how errors call the family ("reward model", ...)
    _registry: ClassVar[dict[str, type]]

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if Registered in cls.__bases__:  # a family base: its own registry
            cls._registry = {}
            return
        if abc.ABC in cls.__bases__:  # an intermediate abstract class
            return
        for attr in ("name", "config_class"):
            if not hasattr(cls, attr):
                raise TypeError(f"{cls.__name__} must declare the class attribute {attr!r}")
        if cls.name in cls._registry:
            raise TypeError(f"{cls.kind} name {cls.name!r} is taken by {cls._registry[cls.name].__name__}")
        cls._registry[cls.name] = cls

    def __init__(self, config: Any) -> None:
        if not isinstance(config, self.config_class):
            raise TypeError(f"{type(self).__name__} takes a {self.config_class.__name__}, got {type(config).__name__}")
        self.config = config

    @classmethod
    def build(cls, config: Any) -> Any:
        """The registered implementation for ``config`` (its ``type_name``), constructed from it."""
        name = config.type_name
        if name not in cls._registry:
            raise KeyError(f"no {cls.kind} is registered as {name!r}; registered: {sorted(cls._registry)}")
        return cls._registry[name](config)
