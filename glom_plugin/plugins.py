"""One loader for every name -> implementation registry (models, readers, similarity and LSH backends,
profile builders, sentiment backends).

Each registry is a plain map from a short name to a dotted ``"package.module:Attribute"`` path, Feast's
``ONLINE_STORE_CLASS_FOR_TYPE`` habit: the module is imported only when its entry is asked for (so
``glom --help`` never pays for torch or Spark), a built-in is one more map line, and a third-party
implementation needs no line at all — its ``module:Attribute`` path is accepted wherever a short name is.
Every registry answers a bad name the same way: what was asked for, under which setting, and the names
that exist.
"""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Callable, Mapping, Sequence
from typing import Any, TypeVar

T = TypeVar("T")


def resolve_path(
    name_or_path: str, registry: Mapping[str, str], what: str, also: Sequence[str] = ()
) -> str:
    """The ``module:Attribute`` path for a registered short name, or the path itself when it is one.

    ``also`` lists names the caller handles before asking the registry, so the error lists them too.
    """
    if name_or_path in registry:
        return registry[name_or_path]
    if _is_dotted_path(name_or_path):
        return name_or_path
    available = ", ".join([*sorted(registry), *also])
    raise ValueError(
        f"unknown {what} {name_or_path!r}; available: {available} (or a 'package.module:Name' path)"
    )


def load_object(name_or_path: str, registry: Mapping[str, str], what: str, also: Sequence[str] = ()) -> Any:
    """Import and return the attribute a short name (or a ``module:Attribute`` path) points to."""
    path = resolve_path(name_or_path, registry, what, also)
    module_name, _, attribute = path.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as error:
        raise ModuleNotFoundError(
            f"{what} {name_or_path!r} lives in {module_name}, which could not be imported: {error}"
        ) from error
    target: Any = module
    for part in attribute.split("."):
        if not hasattr(target, part):
            raise ImportError(f"{what} {name_or_path!r}: {module_name} has no attribute {attribute!r}")
        target = getattr(target, part)
    return target


def load_class(
    name_or_path: str, registry: Mapping[str, str], base: type[T], what: str, also: Sequence[str] = ()
) -> type[T]:
    """The class a short name (or ``module:Class``) points to, checked against ``base``.

    ``base`` may be a ``typing.Protocol``: the class must then define the protocol's methods and
    properties (data attributes are often set in ``__init__``, so they are not required up front).
    """
    target = load_object(name_or_path, registry, what, also)
    path = resolve_path(name_or_path, registry, what, also)
    if not isinstance(target, type):
        raise TypeError(f"{what} {name_or_path!r} ({path}) is not a class but {type(target).__name__}")
    if _is_protocol(base):
        missing = [member for member in _protocol_members(base) if not hasattr(target, member)]
        if missing:
            raise TypeError(
                f"{what} {name_or_path!r} ({path}) does not implement {base.__name__}: lacks {missing}"
            )
    elif not issubclass(target, base):
        raise TypeError(
            f"{what} {name_or_path!r} ({path}) is not a {base.__module__}.{base.__qualname__} subclass"
        )
    return target


def load_function(name_or_path: str, registry: Mapping[str, str], what: str) -> Callable[..., Any]:
    """The callable a short name (or ``module:function``) points to (backends that are functions)."""
    target = load_object(name_or_path, registry, what)
    if not callable(target):
        path = resolve_path(name_or_path, registry, what)
        raise TypeError(f"{what} {name_or_path!r} ({path}) is not callable")
    return target


def _is_dotted_path(text: str) -> bool:
    module_name, sep, attribute = text.partition(":")
    return bool(sep) and bool(module_name) and bool(attribute) and all(
        part.isidentifier() for part in (*module_name.split("."), *attribute.split("."))
    )


def _is_protocol(base: type) -> bool:
    return bool(getattr(base, "_is_protocol", False))


def _protocol_members(base: type) -> list[str]:
    """Methods and properties a protocol declares (its own and its protocol bases', not ``object``'s)."""
    members: list[str] = []
    for klass in inspect.getmro(base):
        if klass is object or not _is_protocol(klass) or klass.__module__ == "typing":
            continue
        for name, value in vars(klass).items():
            if name.startswith("_"):
                continue
            if callable(value) or isinstance(value, property | staticmethod | classmethod):
                members.append(name)
    return sorted(set(members))
