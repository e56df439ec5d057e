"""Read the YAML file, expand `${ENV}` references, validate, run every rule, collect every problem.

`load()` either returns a valid frozen `Config` or raises `ConfigErrors` listing **every** problem
as `<field path>: <reason>` — an operator fixes a file in one pass, not one error per run.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import yaml
from pydantic import SecretStr, ValidationError

from gateway.config import Config, ConnectionConfig, ProtocolSettings
from gateway.errors import ConfigError, RaccordError
from gateway.logging import REDACTOR

MAX_CONFIG_BYTES = 4 << 20
_ENV_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}|\$\$")


class ConfigErrors(RaccordError):
    """Every problem found in one configuration file."""

    def __init__(self, errors: list[ConfigError]) -> None:
        super().__init__("\n".join(str(e) for e in errors))
        self.errors = errors


def field_path(loc: tuple[int | str, ...]) -> str:
    """('connections', 2, 'structure') -> 'connections[2].structure'."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out or "(root)"


def _expand(value: str, path: str, env: Mapping[str, str], errors: list[ConfigError]) -> str:
    def substitute(match: re.Match[str]) -> str:
        if match.group(0) == "$$":
            return "$"
        name, default = match.group(1), match.group(2)
        if name in env:
            return env[name]
        if default is not None:
            return default
        errors.append(ConfigError(path, f"environment variable {name} is not set"))
        return ""

    return _ENV_REF.sub(substitute, value)


def expand_env(node: Any, env: Mapping[str, str], errors: list[ConfigError], path: str = "") -> Any:
    """Replace `${NAME}` / `${NAME:-default}` in every string; `$$` is a literal dollar."""
    if isinstance(node, str):
        return _expand(node, path or "(root)", env, errors)
    if isinstance(node, dict):
        return {
            k: expand_env(v, env, errors, f"{path}.{k}" if path else str(k))
            for k, v in node.items()
        }
    if isinstance(node, list):
        return [expand_env(v, env, errors, f"{path}[{i}]") for i, v in enumerate(node)]
    return node


def _read_yaml(path: Path) -> Any:
    try:
        size = path.stat().st_size
    except OSError as exc:
        raise ConfigErrors([ConfigError(str(path), f"cannot read: {exc.strerror}")]) from exc
    if size > MAX_CONFIG_BYTES:
        raise ConfigErrors([ConfigError(str(path), f"larger than {MAX_CONFIG_BYTES} bytes")])
    try:
        return yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        raise ConfigErrors([ConfigError(str(path), f"not valid YAML: {exc}")]) from exc


def _validation_problems(
    exc: ValidationError, *, prefix: tuple[int | str, ...] = ()
) -> Iterator[ConfigError]:
    for error in exc.errors(include_url=False, include_input=False):
        reason = str(error["msg"]).removeprefix("Value error, ")
        yield ConfigError(field_path(prefix + tuple(error["loc"])), reason)


def _typed_settings(
    sheet: ConnectionConfig, index: int, base_dir: Path, errors: list[ConfigError]
) -> ConnectionConfig | None:
    """Validate `settings` with the protocol's model now, so relative paths in it are read
    from the configuration file's folder like every other path."""
    from gateway.settings import MODELS

    try:
        typed = MODELS[sheet.protocol].model_validate(
            sheet.settings.model_dump(), context={"base_dir": base_dir}
        )
    except ValidationError as exc:
        errors.extend(_validation_problems(exc, prefix=("connections", index, "settings")))
        return None
    resolved = ProtocolSettings.model_validate(typed.model_dump(exclude_unset=True))
    return sheet.model_copy(update={"settings": resolved})


def _validate_sheets(
    sheets: Any, base_dir: Path, errors: list[ConfigError]
) -> tuple[list[ConnectionConfig], list[int]]:
    """Validate each sheet on its own, so one bad sheet never hides the rules of the others."""
    if not isinstance(sheets, list):
        errors.append(ConfigError("connections", "must be a list of connection sheets"))
        return [], []
    valid: list[ConnectionConfig] = []
    positions: list[int] = []
    for index, raw in enumerate(sheets):
        try:
            sheet = ConnectionConfig.model_validate(raw, context={"base_dir": base_dir})
        except ValidationError as exc:
            errors.extend(_validation_problems(exc, prefix=("connections", index)))
            continue
        typed = _typed_settings(sheet, index, base_dir, errors)
        if typed is not None:
            valid.append(typed)
            positions.append(index)
    return valid, positions


def parse(
    raw: Any, *, base_dir: Path, env: Mapping[str, str] | None = None
) -> tuple[Config | None, list[int], list[ConfigError]]:
    """Validate a YAML tree: the config of every valid sheet, their file positions, problems."""
    errors: list[ConfigError] = []
    if not isinstance(raw, dict):
        return None, [], [ConfigError("(root)", "the file must hold a mapping")]
    # Top-level `x-…` keys hold YAML anchors shared by several sheets (as in compose files).
    raw = {k: v for k, v in raw.items() if not str(k).startswith("x-")}
    expanded = expand_env(raw, os.environ if env is None else env, errors)
    sheets, positions = _validate_sheets(expanded.pop("connections", []), base_dir, errors)
    try:
        config = Config.model_validate(expanded, context={"base_dir": base_dir})
    except ValidationError as exc:
        errors.extend(_validation_problems(exc))
        return None, [], errors
    return config.model_copy(update={"connections": tuple(sheets)}), positions, errors


def read_secret(
    inline: SecretStr | None, file: Path | None, *, field: str, errors: list[ConfigError]
) -> bytes | None:
    """A secret from its inline value (usually a `${ENV}` reference) or its `*_file`."""
    if inline is not None:
        return inline.get_secret_value().encode()
    if file is None:
        return None
    try:
        return file.read_bytes().rstrip(b"\r\n")
    except OSError as exc:
        errors.append(ConfigError(f"{field}_file", f"cannot read {file}: {exc.strerror}"))
        return None


def _inline_secrets(node: Any) -> Iterator[str]:
    """SecretStr values anywhere in a protocol's settings (PeSIT passwords, …)."""
    if isinstance(node, SecretStr):
        yield node.get_secret_value()
    elif isinstance(node, dict):
        for value in node.values():
            yield from _inline_secrets(value)


def register_secrets(config: Config) -> None:
    """Tell the log redactor every literal secret the configuration holds."""
    secrets: list[str] = []
    token = config.gateway.admin.api_token
    if token is not None:
        secrets.append(token.get_secret_value())
    webhook = config.intake.delivery.webhook
    if webhook is not None and webhook.secret is not None:
        secrets.append(webhook.secret.get_secret_value())
    for conn in config.connections:
        for pair in conn.certificates.own().values():
            if pair.key_passphrase is not None:
                secrets.append(pair.key_passphrase.get_secret_value())
        secrets.extend(_inline_secrets(conn.settings.model_dump()))
    REDACTOR.register(secrets)


def load(path: Path, *, env: Mapping[str, str] | None = None, check_files: bool = True) -> Config:
    """Load and fully validate `path`; raise `ConfigErrors` with every problem found."""
    from gateway.config_rules import check_rules

    raw = _read_yaml(path)
    config, positions, errors = parse(raw, base_dir=path.resolve().parent, env=env)
    if config is not None:
        complete = not errors
        errors.extend(
            check_rules(config, check_files=check_files and complete, positions=positions)
        )
    if errors:
        raise ConfigErrors(errors)
    assert config is not None
    register_secrets(config)
    return config
