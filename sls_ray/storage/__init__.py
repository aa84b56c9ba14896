"""Storage and messaging stand-ins: one module each, one registry.

A new service is one module plus one line in REGISTRY (docs/adding.md).
"""
from __future__ import annotations

import importlib
from typing import Any

from pydantic import ValidationError

from sls_ray.errors import ConfigError

#: kind -> "module:Class"; imported lazily so a broken plug-in fails only when used
REGISTRY: dict[str, str] = {
    "s3": "sls_ray.storage.s3:S3",
    "s3express": "sls_ray.storage.s3express:S3Express",
    "memcached": "sls_ray.storage.memcached:Memcached",
    "dynamodb": "sls_ray.storage.dynamodb:DynamoDB",
    "redis": "sls_ray.storage.redis:Redis",
    "sqs": "sls_ray.storage.sqs:SQS",
    "vm": "sls_ray.storage.vm:VM",
    "requests": "sls_ray.storage.requests:RequestStream",
}


def service_class(kind: str):
    if kind not in REGISTRY:
        raise ConfigError(f"services: unknown service kind '{kind}'; known kinds: {sorted(REGISTRY)}")
    module, cls = REGISTRY[kind].split(":")
    return getattr(importlib.import_module(module), cls)


def validate_service_config(name: str, raw: dict[str, Any]):
    if not isinstance(raw, dict) or "kind" not in raw:
        raise ConfigError(f"services.{name}: needs a 'kind' (one of {sorted(REGISTRY)})")
    cls = service_class(raw["kind"])
    try:
        return cls.Config(**raw)
    except ValidationError as e:
        err = e.errors()[0]
        loc = ".".join(str(p) for p in err["loc"])
        if err["type"] == "extra_forbidden":
            raise ConfigError(f"unknown key 'services.{name}.{loc}' for a {raw['kind']} service; allowed keys "
                              f"here: {', '.join(sorted(cls.Config.model_fields))}. Remove it or fix its spelling"
                              ) from None
        raise ConfigError(f"'services.{name}.{loc}': {err['msg']} (got {err.get('input')!r})") from None


def build_services(profile, env) -> dict[str, Any]:
    services = {}
    for name in profile.services:
        cfg = profile.service_config(name)  # validated once, by the profile
        services[name] = service_class(cfg.kind)(name, cfg, env)
    return services
