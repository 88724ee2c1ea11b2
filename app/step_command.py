"""``stepd step <kind> --config JSON [--workdir DIR]``: one step, run where it is started.

The door for Kargo's custom steps (a command run in the promotion's work dir): no
server and no state. The directory is the root; the step runs as a batch of one with the
same models and semantics as the API, removing in place and taking no lock, so nothing
is left in the directory but what the step did.

The outputs go, as a JSON object, to the file ``$KARGO_OUTPUT`` names, or to standard
output. Exit status: ``0`` the step succeeded; ``1`` it failed (a strict target missing,
a path refused, the filesystem): one line on standard error, the problem code and the
detail; ``2`` a usage error (the config is not JSON, has an unknown field or a wrong
type; the directory cannot be a root).
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

from app.sandbox import Root
from app.sandbox.errors import SandboxError, from_os_error
from app.settings import ConfigError, check_workspace_root
from app.steps.errors import InvalidConfig
from app.steps.purger import Purger
from app.steps.registry import KINDS
from app.steps.single import outputs, parse_config, run_alone, summary
from app.steps.staging import Staging
from app.steps.workspace import RESERVED

OUTPUT_VARIABLE = "KARGO_OUTPUT"
SUCCEEDED, FAILED, USAGE = 0, 1, 2


def run_step(uses: str, config_text: str, workdir: Path) -> int:
    """Run the step ``uses`` with the JSON ``config_text`` in ``workdir``; the exit status."""
    try:
        root_path = check_workspace_root(workdir)
    except ConfigError as exc:
        return _say(USAGE, f"invalid_request: --workdir: {exc}")
    try:
        config = json.loads(config_text)
    except ValueError as exc:
        return _say(USAGE, f"invalid_request: --config is not JSON: {exc}")
    kind = KINDS[uses]
    try:
        parsed = parse_config(kind, config)
    except InvalidConfig as exc:
        return _say(FAILED if exc.refused else USAGE, summary(exc))
    try:
        root = Root.open(root_path, reserved=RESERVED)
    except OSError as exc:
        return _say(FAILED, summary(from_os_error(exc, "", "open the work dir")))
    with root:
        staging = Staging(root, shared=False)
        try:
            result = run_alone(root, Purger(staging, background=False), kind, parsed, None, uses)
        finally:
            staging.close()
    if result.error is not None:
        return _say(FAILED, summary(result.error))
    try:
        _write(json.dumps(outputs(result.output)))
    except SandboxError as exc:
        return _say(FAILED, summary(exc))
    return SUCCEEDED


def _write(text: str) -> None:
    """The outputs to ``$KARGO_OUTPUT``, or to standard output when it is unset."""
    target = os.environ.get(OUTPUT_VARIABLE)
    if not target:
        print(text)
        return
    try:
        Path(target).write_text(text + "\n", encoding="utf-8")
    except OSError as exc:
        raise from_os_error(exc, "", f"write ${OUTPUT_VARIABLE}") from None


def _say(status: int, line: str) -> int:
    print(f"stepd: {line}", file=sys.stderr)
    return status
