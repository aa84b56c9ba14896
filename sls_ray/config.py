"""Experiment configs: YAML in, validated pydantic models out, with errors a person can act on.

An experiment config names a platform profile (``configs/platforms/<name>.yaml`` or a path)
and may override any of its values under ``profile:``; ``--set a.b=c`` overrides anything
from the command line. Unknown keys are errors that name the field, the file and the allowed
keys (STYLE.md, "Configs a person can read").
"""
from __future__ import annotations

import copy
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, Field, ValidationError, field_validator, model_validator

from sls_ray.errors import ConfigError
from sls_ray.faults import FaultSpec
from sls_ray.platform import PlatformProfile, Strict

PROFILE_DIR = Path(__file__).resolve().parent.parent / "configs" / "platforms"


class RunOptions(Strict):
    transport: Literal["local", "ray"] = Field("local", description="in-process threads, or Ray actors")
    hosts: int = Field(2, ge=1, le=256, description="FunctionHost actors (ray transport)")
    address: str | None = Field(None, description="Ray cluster address; None starts a local instance")
    watchdog_s: float = Field(600.0, gt=0, description="real seconds without a simcall before giving up")
    isolated: bool = Field(False, description="ray transport: each function in its own worker process under an "
                                              "OS memory limit (RLIMIT_DATA), to catch what accounting misses")

    @model_validator(mode="after")
    def _ray_options_need_ray(self) -> "RunOptions":
        """A cluster address or isolated mode under the local transport is an error, not ignored
        (README, "The CLI": they do not imply Ray; say --transport ray). ``hosts`` may stay in a
        config run on both transports (it sizes Ray's only); the CLI refuses ``--hosts`` alone."""
        if self.transport == "local":
            given = [f"{name}={value}{flag}" for name, value, default, flag in (
                ("address", self.address, None, " (--address)"), ("isolated", self.isolated, False, ""))
                if value != default]
            if given:
                raise ConfigError(f"run: {', '.join(given)} applies only to the Ray transport, but run.transport is "
                                  f"'local'; add --transport ray (run.transport: ray) or drop it")
        return self


class ExperimentConfig(Strict):
    experiment: str = Field(description="experiment kind (sls-ray list)")
    seed: int = Field(0, ge=0, description="every random stream derives from it (numpy seeds are >= 0)")
    platform: str = Field("aws_2020", description="profile name in configs/platforms, or a YAML path")
    profile: dict[str, Any] = Field(default_factory=dict, description="overrides of the profile's values")
    params: dict[str, Any] = Field(default_factory=dict, description="the experiment's parameters")
    faults: list[FaultSpec] = Field(default_factory=list, description="fault plan in virtual time")
    run: RunOptions = Field(default_factory=RunOptions)
    sweep: dict[str, list[Any]] = Field(default_factory=dict, description="default grid for sls-ray sweep")
    description: str = Field("", description="what this config reproduces")

    @field_validator("sweep")
    @classmethod
    def _non_empty_grid(cls, grid: dict[str, list[Any]]) -> dict[str, list[Any]]:
        for key, values in grid.items():
            if not values:
                raise ConfigError(f"sweep.{key}: an empty list of values would sweep no point; give at least one "
                                  f"value or remove the key")
        return grid


def _deep_merge(base: dict, over: dict) -> dict:
    out = copy.deepcopy(base)
    for k, v in over.items():
        if isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = _deep_merge(out[k], v)
        else:
            out[k] = copy.deepcopy(v)
    return out


def _format_validation(e: ValidationError, where: str, model: type[BaseModel] | None = None,
                       prefix: str = "") -> str:
    parts = []
    for err in e.errors()[:3]:
        loc = prefix + ".".join(str(p) for p in err["loc"])
        if err["type"] == "extra_forbidden":
            parent = err["loc"][:-1]
            allowed = _allowed_keys(model, parent) if model else []
            hint = f"; allowed keys here: {', '.join(allowed)}" if allowed else ""
            parts.append(f"unknown key '{loc}'{hint}. Remove it or fix its spelling")
        elif err["type"] == "missing":
            parts.append(f"missing required key '{loc}'. Add it")
        elif isinstance((err.get("ctx") or {}).get("error"), ConfigError):
            parts.append(str(err["ctx"]["error"]))  # a nested validator already named the field and the fix
        else:
            parts.append(f"'{loc}': {err['msg']} (got {err.get('input')!r})")
    return f"{where}: " + "; ".join(parts)


def _allowed_keys(model: type[BaseModel], loc: tuple) -> list[str]:
    cur: Any = model
    for part in loc:
        if isinstance(part, int):
            continue
        field = getattr(cur, "model_fields", {}).get(part)
        if field is None:
            return []
        ann = field.annotation
        cur = ann if isinstance(ann, type) and issubclass(ann, BaseModel) else None
        if cur is None:
            return []
    return sorted(getattr(cur, "model_fields", {}))


def read_yaml(path: Path) -> dict:
    path = Path(path)
    try:
        text = path.read_bytes().decode("utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such file. Check the path (sls-ray list shows the configs)") from None
    except IsADirectoryError:
        raise ConfigError(f"{path}: is a directory, not a YAML file. Pass the config file itself, "
                          f"e.g. {path / 'config.yaml'}") from None
    except PermissionError:
        raise ConfigError(f"{path}: permission denied. Make the file readable") from None
    except UnicodeDecodeError as e:
        raise ConfigError(f"{path}: not UTF-8 text (byte {e.object[e.start]:#04x} at offset {e.start}). "
                          f"Save the config as UTF-8 YAML") from None
    except OSError as e:
        raise ConfigError(f"{path}: cannot be read ({e.strerror}). Check the path") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise ConfigError(f"{path}: malformed YAML{where}: {getattr(e, 'problem', e)}. Fix the syntax") from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: the top level must be a mapping of keys to values")
    return data


def parse_set(item: str, flag: str = "--set") -> tuple[list[str], Any]:
    """``a.b=c`` -> (["a", "b"], yaml-parsed c); ``flag`` names the option in errors."""
    example = "workers=1,2,4" if flag == "--grid" else "params.workers=8"
    if "=" not in item:
        raise ConfigError(f"{flag} {item!r}: expected KEY=VALUE, e.g. {flag} {example}")
    key, raw = item.split("=", 1)
    path = [p for p in key.strip().split(".") if p]
    if not path:
        raise ConfigError(f"{flag} {item!r}: empty key; write e.g. {flag} {example}")
    try:
        value = yaml.safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError:
        raise ConfigError(f"{flag} {item!r}: value {raw!r} is not valid YAML") from None
    return path, value


def apply_set(data: dict, path: list[str], value: Any) -> dict:
    out = copy.deepcopy(data)
    cur = out
    for p in path[:-1]:
        nxt = cur.get(p)
        if nxt is None:
            nxt = cur[p] = {}
        if not isinstance(nxt, dict):
            raise ConfigError(f"--set {'.'.join(path)}: '{p}' is a value, not a section")
        cur = nxt
    cur[path[-1]] = value
    return out


def _profile_path(name_or_path: str) -> Path:
    path = Path(name_or_path)
    if not path.suffix:
        path = PROFILE_DIR / f"{name_or_path}.yaml"
        if not path.exists():
            known = sorted(p.stem for p in PROFILE_DIR.glob("*.yaml"))
            raise ConfigError(f"platform: unknown profile '{name_or_path}'; known profiles: {known}")
    return path


def _profile_data(name_or_path: str, seen: tuple[str, ...] = ()) -> dict:
    """A profile's raw values; ``extends: <profile>`` starts from another profile's values."""
    path = _profile_path(name_or_path)
    data = read_yaml(path)
    base = data.pop("extends", None)
    if base is None:
        return data
    chain = seen + (name_or_path,)
    if str(base) in chain:
        raise ConfigError(f"{path}: 'extends: {base}' makes a cycle ({' -> '.join(chain + (str(base),))}); "
                          f"remove one of these 'extends:' lines")
    return _deep_merge(_profile_data(str(base), chain), data)


def load_profile(name_or_path: str, overrides: dict | None = None) -> PlatformProfile:
    """The named profile with a config's ``profile:`` overrides on top, validated.

    An error is blamed on the file when the profile alone is invalid, else on the config's own
    ``profile:`` section (the user's overrides), so the message points at what to edit.
    """
    path = _profile_path(name_or_path)
    base = _profile_data(name_or_path)
    try:
        PlatformProfile(**base)
    except ValidationError as e:
        raise ConfigError(_format_validation(e, f"{path} (profile)", PlatformProfile)) from None
    try:
        return PlatformProfile(**_deep_merge(base, overrides or {}))
    except ValidationError as e:
        raise ConfigError(_format_validation(e, f"the config's 'profile:' section (over {path})", PlatformProfile,
                                             prefix="profile.")) from None


def load_config(path: str | Path | None = None, sets: list[str] = (), data: dict | None = None) -> ExperimentConfig:
    where = str(path) if path is not None else "<config>"
    raw = read_yaml(Path(path)) if path is not None else copy.deepcopy(data or {})
    for item in sets:
        key, value = parse_set(item)
        raw = apply_set(raw, key, value)
    try:
        return ExperimentConfig(**raw)
    except ValidationError as e:
        raise ConfigError(_format_validation(e, where, ExperimentConfig)) from None


def resolve_params(cfg: ExperimentConfig, params_model: type[BaseModel]) -> BaseModel:
    try:
        return params_model(**cfg.params)
    except ValidationError as e:
        raise ConfigError(_format_validation(e, f"experiment '{cfg.experiment}'", params_model,
                                             prefix="params.")) from None
