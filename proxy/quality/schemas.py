"""JSON Schema validation for the ``json`` and ``tool_arguments`` checks.

python-jsonschema: the reference implementation, every draft up to 2020-12 (OpenAI's
structured outputs use a subset of 2020-12; fastjsonschema stops at draft 7), already
a dependency of half the Python ecosystem. The draft comes from the schema's
``$schema``, 2020-12 when absent.

Building a validator costs far more than using it, and clients send the same schema
with every request: validators are cached by the schema's canonical JSON, bounded
(``CACHE_SIZE``, least recently used out). A schema the library rejects cannot judge
anything: ``validate`` answers None (the check is skipped), never raises.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Any

import orjson
from jsonschema import validators
from jsonschema.protocols import Validator

CACHE_SIZE = 256

_cache: OrderedDict[bytes, Validator | None] = OrderedDict()


def validate(schema: Any, document: Any) -> bool | None:
    """True when ``document`` matches ``schema``, False when not, None when ``schema`` is unusable."""
    validator = _validator(schema)
    if validator is None:
        return None
    try:
        return bool(validator.is_valid(document))
    except Exception:  # a $ref that cannot be resolved, a regex the engine refuses
        return None


def _validator(schema: Any) -> Validator | None:
    try:
        key = orjson.dumps(schema, option=orjson.OPT_SORT_KEYS)
    except Exception:
        return None
    if key in _cache:
        _cache.move_to_end(key)
        return _cache[key]
    validator: Validator | None
    try:
        cls = validators.validator_for(schema, default=validators.Draft202012Validator)
        cls.check_schema(schema)
        validator = cls(schema)
    except Exception:  # SchemaError, or a schema the library chokes on
        validator = None
    _cache[key] = validator
    if len(_cache) > CACHE_SIZE:
        _cache.popitem(last=False)
    return validator
