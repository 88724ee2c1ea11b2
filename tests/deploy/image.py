"""What the Dockerfile's final stage says, read with the official (BuildKit) parser."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from string import Template

import dockerfile

REPO = Path(__file__).resolve().parents[2]
DOCKERFILE = REPO / "Dockerfile"


@dataclass(frozen=True)
class HealthCheck:
    """A ``HEALTHCHECK CMD [...]``: its options and the exact argv."""

    options: dict[str, str]
    argv: tuple[str, ...]

    def timeout_seconds(self) -> float:
        """The ``--timeout`` option in seconds (Docker's default is 30s)."""
        value = self.options.get("timeout", "30s")
        match = re.fullmatch(r"(\d+)s", value)
        assert match, f"unexpected --timeout {value!r}"
        return float(match.group(1))


@dataclass
class Image:
    """The final stage: the facts a container of it is started with."""

    bases: list[str] = field(default_factory=list)
    args: dict[str, str] = field(default_factory=dict)
    env: dict[str, str] = field(default_factory=dict)
    user: str = ""
    volumes: list[str] = field(default_factory=list)
    exposed: list[str] = field(default_factory=list)
    runs: list[str] = field(default_factory=list)
    cmd: tuple[str, ...] = ()
    entrypoint: tuple[str, ...] = ()
    healthcheck: HealthCheck | None = None

    @property
    def uid(self) -> int:
        """The numeric UID of ``USER`` (``uid`` or ``uid:gid``), ARG defaults expanded."""
        uid = self.user.split(":")[0]
        assert uid.isdigit(), f"USER {self.user!r} is not numeric"
        return int(uid)

    @property
    def start_argv(self) -> tuple[str, ...]:
        """What the container runs: ENTRYPOINT followed by CMD."""
        return self.entrypoint + self.cmd


def read_image(path: Path = DOCKERFILE) -> Image:
    """Parse ``path``; the result describes its last stage."""
    image = Image()
    for command in dockerfile.parse_file(str(path)):
        name = command.cmd.upper()
        if name == "FROM":
            image = Image(bases=[*image.bases, command.value[0]])
        elif name == "ARG":
            for arg in command.value:
                key, _, default = arg.partition("=")
                image.args[key] = default
        elif name == "ENV":
            pairs = command.value
            for key, value in zip(pairs[::2], pairs[1::2], strict=True):
                assert not value.startswith(('"', "'")), f"quoted ENV {key}: keep values plain"
                image.env[key] = value
        elif name == "USER":
            image.user = Template(command.value[0]).substitute(image.args)
        elif name == "VOLUME":
            image.volumes.extend(_json_or_words(command))
        elif name == "EXPOSE":
            image.exposed.extend(command.value)
        elif name == "RUN":
            image.runs.append(" ".join(command.value))
        elif name == "CMD":
            assert command.json, "CMD must be in exec (JSON) form"
            image.cmd = command.value
        elif name == "ENTRYPOINT":
            assert command.json, "ENTRYPOINT must be in exec (JSON) form"
            image.entrypoint = command.value
        elif name == "HEALTHCHECK":
            assert command.json, "HEALTHCHECK CMD must be in exec (JSON) form"
            assert command.value[0] == "CMD", command.original
            options = dict(flag.lstrip("-").split("=", 1) for flag in command.flags)
            image.healthcheck = HealthCheck(options=options, argv=command.value[1:])
    return image


def _json_or_words(command: dockerfile.Command) -> list[str]:
    if command.json:
        return list(command.value)
    return [word for value in command.value for word in value.split()]


def expand(value: str, environment: dict[str, str]) -> str:
    """Docker's ``$VAR`` / ``${VAR}`` substitution in an ENV value."""
    return Template(value).substitute(environment)


def json_list(values: tuple[str, ...]) -> str:
    """An argv as Docker prints it, for readable assertion messages."""
    return json.dumps(list(values))
