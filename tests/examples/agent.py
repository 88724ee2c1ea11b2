"""Kargo's side of a promotion whose steps run in a step plugin, as kargo-extended runs it.

An emulator of the promotion agent and of the orchestrator that drives it, written from
their sources (kargo-extended ``extended/pkg/stepplugin``: ``executor/wiretypes.go``,
``executor/dispatcher.go``, ``orchestrator/orchestrator.go``; the Argo Workflows plugin
client it adapts):

- **The call** (``PluginClient.execute``): ``POST <plugin>/api/v1/step.execute`` with the
  token as a bearer, a 30 s client timeout, three tries for a timeout, a refused
  connection or a 503 (250 ms, then 500 ms apart), after which the step is ``Running``
  for 2 s. A 404 or a 200 without a status is "does not implement step.execute", final;
  any other status is a final error ``"<status>: <body>"``.
- **The answer** (``read_answer``, Kargo's ``FromWireStepExecuteResponse``): ``error``
  is an error (final if ``terminal``); ``Failed`` with a message is final; ``Errored``
  with a message is an error, final only if ``terminal``; anything else is no error.
- **The step** (``Agent._run_step``, the orchestrator): ``Succeeded`` ends it; a final
  error ends it ``Failed`` (if the step said Failed; upstream Kargo's orchestrator, with
  ``extended=False``: ``Errored``) or ``Errored``; other errors count up to the step's
  error threshold (default 1); a ``Running`` step (or one that failed without a
  word) is asked again after its ``retryAfter`` until the step's timeout. Every answer's
  ``output`` is stored under the step's alias (``outputs.<alias>`` for later steps).
- **The promotion**: steps in order, each ``config`` evaluated as Kargo evaluates it
  (``kargo.evaluate_config``) before every try; after a failure, later steps are
  ``Skipped``; the phase is the worst step status.

Built-in steps (``git-clone``, ``http``...) run in this process, in the same work dir,
through the functions the test hands over. Waits last ``time_scale`` of their time and
the step timeout is measured on a clock that counts them whole, so a test can run a 5 s
``retryAfter`` in 0.5 s, or ten minutes of polling in a fraction of a second.
"""

from __future__ import annotations

import copy
import json
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from tests.examples.kargo import Answer, evaluate_config

PLUGIN_METHOD = "/api/v1/step.execute"
CLIENT_TIMEOUT = 30.0
BACKOFF = (0.25, 0.5)  # between the three tries of a transient failure
TRANSIENT_RETRY_AFTER = 2.0
# When a step still running without a retryAfter of its own is looked at again (the
# http step's default pollInterval).
REQUEUE = 30.0
STATUSES = ("Succeeded", "Failed", "Errored", "Running", "Skipped", "Aborted")
# Worst last: a promotion's phase is its worst step's status.
SEVERITY = ("Succeeded", "Skipped", "Running", "Aborted", "Failed", "Errored")
NOT_IMPLEMENTED = "plugin does not implement step.execute"


@dataclass(frozen=True)
class StepError:
    """An error a step returned: ``terminal`` ones are never retried."""

    text: str
    terminal: bool


@dataclass
class Call:
    """One HTTP call to the plugin: what came back (a status code) or what went wrong."""

    status_code: int | None
    failure: str = ""


@dataclass
class Attempt:
    """One run of a step by the orchestrator: the answer and the calls it took."""

    answer: Answer
    calls: list[Call]


@dataclass
class StepRun:
    """A step's fate in the promotion (Kargo's ``StepExecutionMetadata``)."""

    alias: str
    kind: str
    status: str = ""
    message: str = ""
    error_count: int = 0
    attempts: list[Attempt] = field(default_factory=list)


@dataclass
class PromotionRun:
    phase: str
    steps: list[StepRun]
    outputs: dict[str, Any]

    def step(self, alias: str) -> StepRun:
        return next(step for step in self.steps if step.alias == alias)


@dataclass
class StepDefaults:
    """A plugin step kind's ``defaultTimeout`` and ``defaultErrorThreshold`` (seconds)."""

    timeout: float = 0.0
    error_threshold: int = 1


Builtin = Callable[[Path, dict[str, Any]], Answer]


class PluginClient:
    """The agent's HTTP client for one plugin sidecar (Argo's plugin client, adapted)."""

    def __init__(self, base_url: str, token: str, sleep: Callable[[float], None]) -> None:
        self.url = base_url.rstrip("/") + PLUGIN_METHOD
        self.token = token
        self.sleep = sleep
        # Read timeouts for the next calls, then CLIENT_TIMEOUT: a test's slow network.
        self.read_timeouts: list[float] = []

    def execute(self, request: dict[str, Any], calls: list[Call]) -> Answer:
        """The dispatcher's answer to ``request``; each HTTP call is noted in ``calls``."""
        failure = ""
        for attempt in range(len(BACKOFF) + 1):
            if attempt:
                self.sleep(BACKOFF[attempt - 1])
            read = self.read_timeouts.pop(0) if self.read_timeouts else CLIENT_TIMEOUT
            try:
                response = httpx.post(
                    self.url,
                    content=json.dumps(request),
                    headers={
                        "Content-Type": "application/json",
                        "Authorization": f"Bearer {self.token}",
                    },
                    timeout=httpx.Timeout(CLIENT_TIMEOUT, read=read),
                )
            except (httpx.TimeoutException, httpx.ConnectError) as exc:
                failure = f"{type(exc).__name__}: {exc}"
                calls.append(Call(None, failure))
                continue
            calls.append(Call(response.status_code))
            if response.status_code == 503:
                failure = response.text
                continue
            return _answer_of(response)
        return Answer("Running", message=failure, retry_after=TRANSIENT_RETRY_AFTER)


def _answer_of(response: httpx.Response) -> Answer:
    if response.status_code == 404:
        return Answer("Errored", NOT_IMPLEMENTED, error=NOT_IMPLEMENTED, terminal=True)
    if response.status_code != 200:
        text = f"{response.status_code} {response.reason_phrase}: {response.text}"
        return Answer("Errored", text, error=text, terminal=True)
    try:
        body = json.loads(response.content)
    except ValueError as exc:
        return Answer("Errored", str(exc), error=str(exc), terminal=True)
    if not body.get("status"):
        return Answer("Errored", NOT_IMPLEMENTED, error=NOT_IMPLEMENTED, terminal=True)
    return Answer(
        status=body["status"],
        message=body.get("message", ""),
        output=body.get("output"),
        retry_after=_go_duration(body["retryAfter"]) if body.get("retryAfter") else None,
        error=body.get("error", ""),
        terminal=bool(body.get("terminal", False)),
    )


def read_answer(answer: Answer) -> StepError | None:
    """The error Kargo reads in an answer (``FromWireStepExecuteResponse``)."""
    if answer.error:
        return StepError(answer.error, answer.terminal)
    if answer.status in ("Failed", "Errored") and answer.message:
        return StepError(answer.message, answer.terminal or answer.status == "Failed")
    return None


class Agent:
    """Runs promotions: built-in steps here, plugin steps through ``client``."""

    def __init__(
        self,
        client: PluginClient | None,
        plugin_steps: Mapping[str, StepDefaults],
        builtins: Mapping[str, Builtin],
        *,
        time_scale: float = 1.0,
        extended: bool = True,
    ) -> None:
        self.client = client
        self.plugin_steps = plugin_steps
        self.builtins = builtins
        self.time_scale = time_scale
        self.extended = extended
        self._skew = 0.0
        if client is not None:
            client.sleep = self.sleep

    def sleep(self, seconds: float) -> None:
        """Wait ``seconds`` of the promotion's time: that times ``time_scale`` for real."""
        time.sleep(seconds * self.time_scale)
        self._skew += seconds * (1 - self.time_scale)

    def now(self) -> float:
        """The promotion's clock: real time, plus what scaled waits left out."""
        return time.monotonic() + self._skew

    def promote(
        self,
        steps: list[dict[str, Any]],
        *,
        work_dir: Path,
        ctx: dict[str, Any],
        uid: str,
        variables: Mapping[str, Any] | None = None,
        secrets: Mapping[str, Any] | None = None,
        after_step: Callable[[StepRun], None] = lambda step: None,
    ) -> PromotionRun:
        """Run ``steps`` (a promotion template's) to the end, as one Promotion; ``secrets``
        are the project's Secrets that ``secret(name)`` reads."""
        state: dict[str, Any] = {}
        env: dict[str, Any] = {"ctx": ctx, "vars": {}, "secrets": dict(secrets or {})}
        for var in variables or {}:
            env["vars"][var] = evaluate_config((variables or {})[var], env)
        runs: list[StepRun] = []
        for index, step in enumerate(steps):
            run = StepRun(step.get("as") or f"step-{index + 1}", step["uses"])
            runs.append(run)
            if any(r.status in ("Failed", "Errored") for r in runs[:-1]):
                run.status = "Skipped"
                continue
            self._run_step(step, run, work_dir, uid, env, state)
            after_step(run)
        worst = max((run.status for run in runs), key=SEVERITY.index)
        return PromotionRun(worst, runs, state)

    def _run_step(
        self,
        step: dict[str, Any],
        run: StepRun,
        work_dir: Path,
        uid: str,
        env: dict[str, Any],
        state: dict[str, Any],
    ) -> None:
        defaults = self.plugin_steps.get(run.kind, StepDefaults())
        retry = step.get("retry", {})
        threshold = int(retry.get("errorThreshold", defaults.error_threshold))
        timeout = _go_duration(retry["timeout"]) if "timeout" in retry else defaults.timeout
        started = self.now()
        while True:
            outputs = {"outputs": state, "task": {"outputs": state}}
            config = evaluate_config(step.get("config", {}), {**env, **outputs})
            calls: list[Call] = []
            if run.kind in self.builtins:
                answer = self.builtins[run.kind](work_dir, config)
            else:
                assert self.client is not None, f"no plugin for {run.kind!r}"
                request = _wire_request(run, config, work_dir, uid, env["ctx"], state)
                answer = self.client.execute(request, calls)
            run.attempts.append(Attempt(answer, calls))
            state[run.alias] = answer.output
            if answer.status not in STATUSES:
                run.status, run.message = "Errored", f"invalid status {answer.status!r}"
                return
            if self._finished(run, answer, threshold):
                return
            if timeout and self.now() - started > timeout:
                run.status, run.message = "Errored", f"step {run.alias!r} timed out"
                return
            self.sleep(answer.retry_after or REQUEUE)

    def _finished(self, run: StepRun, answer: Answer, threshold: int) -> bool:
        """Kargo's ``reconcileResultWithMetadata`` then ``determineStepCompletion``: in
        kargo-extended's orchestrator a terminal ``Failed`` stays ``Failed``; upstream's
        makes every terminal error ``Errored``."""
        run.status, run.message = answer.status, answer.message
        error = read_answer(answer)
        if error is not None:
            if run.status != "Failed":
                run.status = "Errored"
            run.message = error.text
        elif answer.status == "Errored":
            detail = answer.message or "no details provided"
            error = StepError(f"step {run.alias!r} errored: {detail}", terminal=False)
        if run.status in ("Succeeded", "Skipped"):
            return True
        if error is not None and error.terminal:
            if run.status != "Failed" or not self.extended:
                run.status = "Errored"
                run.message = f"an unrecoverable error occurred: {error.text}"
            return True
        if error is not None:
            run.error_count += 1
            if run.error_count >= threshold:
                reason = run.message
                run.message = f"step {run.alias!r} met error threshold of {threshold}: {reason}"
                return True
        return False


def _wire_request(
    run: StepRun,
    config: dict[str, Any],
    work_dir: Path,
    uid: str,
    ctx: Mapping[str, Any],
    state: Mapping[str, Any],
) -> dict[str, Any]:
    """``ToWireStepExecuteRequest``: the context as Go serialises it (empty strings left
    out), the config twice."""
    context = {
        "workDir": str(work_dir),
        "sharedState": copy.deepcopy(dict(state)),
        "alias": run.alias,
        "config": config,
        "project": ctx["project"],
        "stage": ctx["stage"],
        "promotion": ctx["promotion"],
        "promotionUID": uid,
        "promotionActor": ctx["meta"]["promotion"]["actor"],
        "freight": {"id": "", "items": {}},
        "targetFreightRef": {"name": ctx["targetFreight"]["name"], "origin": {}},
    }
    return {"context": context, "step": {"kind": run.kind, "alias": run.alias, "config": config}}


def _go_duration(text: str) -> float:
    """Seconds of a Go duration string of hours, minutes, seconds and milliseconds."""
    total, number = 0.0, ""
    units = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 0.001}
    index = 0
    while index < len(text):
        char = text[index]
        if char.isdigit() or char == ".":
            number += char
            index += 1
            continue
        unit = "ms" if text.startswith("ms", index) else char
        total += float(number) * units[unit]
        number = ""
        index += len(unit)
    return total


def kargo_context(stage: str, promotion: str) -> dict[str, Any]:
    """``ctx`` as Kargo's expressions see it."""
    return {
        "project": "kargo-demo",
        "stage": stage,
        "promotion": promotion,
        "targetFreight": {"name": "f0e1d2c3", "origin": {"name": "kargo-demo"}},
        "meta": {"promotion": {"actor": "admin"}},
    }
