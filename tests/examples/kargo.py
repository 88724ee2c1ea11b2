"""Kargo's side of a promotion, as far as the example task needs it.

- ``evaluate_config``: Kargo's expression templates (``${{ ... }}`` in config values),
  following its ``pkg/expressions/json_templates.go``: each expression's result is
  written into the string, then a whole value that reads as a quoted string, a number,
  a boolean or JSON becomes that.
- ``http_outcome``: the ``http`` step's rules (``http_requester.go``) for
  ``successExpression``, ``failureExpression``, ``errorExpression`` and ``outputs``.

Expressions are evaluated by expr-lang itself (its Go implementation, through the
``golem`` binding). Kargo's own functions that the task uses, ``secret()`` and
``quote()``, are not expr-lang built-ins: each call is evaluated here (its argument
by expr-lang) and its result handed to expr-lang as a variable.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from itertools import count
from typing import Any

import golem

DELIMITERS = (("${{", "}}"), ("${%", "%}"))
KARGO_FUNCTION = re.compile(r"\b(quote|secret)\(")
GO_NUMBER = re.compile(r"[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?|[+-]?(inf|infinity|nan)", re.I)
GO_BOOL = {"1": True, "t": True, "T": True, "TRUE": True, "true": True, "True": True}
GO_BOOL |= {"0": False, "f": False, "F": False, "FALSE": False, "false": False, "False": False}

_ENGINE = golem.Engine(strict_vars=False)


def go_json(value: Any) -> str:
    """``json.Marshal``: compact, map keys sorted, ``<``, ``>`` and ``&`` escaped."""
    text = json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def evaluate_expression(expression: str, env: Mapping[str, Any]) -> Any:
    """One expr-lang expression against ``env``; ``secrets`` feeds ``secret(name)``."""
    bindings = dict(env)
    fresh = count()
    while calls := list(KARGO_FUNCTION.finditer(expression)):
        call = calls[-1]  # the last call starts innermost: its argument has no calls left
        end = _closing_paren(expression, call.end() - 1)
        argument = _evaluate_expr_lang(expression[call.end() : end], bindings)
        name = f"kargo_call_{next(fresh)}"
        bindings[name] = _KARGO_FUNCTIONS[call.group(1)](argument, env)
        expression = expression[: call.start()] + name + expression[end + 1 :]
    return _evaluate_expr_lang(expression, bindings)


def render_string(template: str, env: Mapping[str, Any]) -> str:
    """A string with zero or more delimited expressions, each replaced by its value
    (strings as they are, anything else as JSON), and kept a string."""
    parts: list[str] = []
    rest = template
    while (found := _next_expression(rest)) is not None:
        before, expression, rest = found
        value = evaluate_expression(expression, env)
        parts += [before, value if isinstance(value, str) else go_json(value)]
    return "".join([*parts, rest])


def evaluate_template(template: str, env: Mapping[str, Any]) -> Any:
    """A config string with zero or more delimited expressions, typed as Kargo types it."""
    if not any(start in template for start, _ in DELIMITERS):
        return template
    result = render_string(template, env)
    newline = "\n" if result.endswith("\n") else ""
    result = result.removesuffix("\n")
    if len(result) > 1 and result.startswith('"') and result.endswith('"'):
        return result[1:-1] + newline
    if GO_NUMBER.fullmatch(result):
        return float(result)
    if result in GO_BOOL:
        return GO_BOOL[result]
    try:
        return json.loads(result)
    except ValueError:
        return result + newline


def evaluate_config(config: Any, env: Mapping[str, Any]) -> Any:
    """Every string value in ``config`` (not keys) evaluated, recursively."""
    if isinstance(config, dict):
        return {key: evaluate_config(value, env) for key, value in config.items()}
    if isinstance(config, list):
        return [evaluate_config(value, env) for value in config]
    if isinstance(config, str):
        return evaluate_template(config, env)
    return config


@dataclass
class Answer:
    """A step's result as Kargo's orchestrator reads it: a status, what the step said,
    its output, when to ask again, and an error (``terminal`` ones are never retried).
    A plugin's JSON answer has exactly these fields; a built-in step returns them."""

    status: str
    message: str = ""
    output: dict[str, Any] | None = None
    retry_after: float | None = None
    error: str = ""
    terminal: bool = False


def http_outcome(config: Mapping[str, Any], response: Mapping[str, Any]) -> Answer:
    """The ``http`` step's result for ``response`` (``{"status", "headers", "body"}``),
    as ``http_requester.go`` decides it:

    - ``failureExpression`` true: ``Failed``, a terminal error ("HTTP (<status>) response
      met failure criteria", with ``errorExpression``'s string, quoted, after it);
    - else ``successExpression`` true: ``Succeeded``, with the ``outputs``;
    - neither expression given: 2xx succeeds, anything else is ``Failed`` without an
      error, which Kargo asks again (until the step's timeout);
    - otherwise ``Running``: the same request is sent again later.
    """
    env = {"response": response}
    success = _criterion(config.get("successExpression"), env)
    failure = _criterion(config.get("failureExpression"), env)
    if failure:
        error = f"HTTP ({response['status']}) response met failure criteria"
        if detail := _error_detail(config.get("errorExpression"), env):
            error += f": {json.dumps(detail, ensure_ascii=False)}"
        return Answer("Failed", error=error, terminal=True)
    if success or (success is None and failure is None and 200 <= response["status"] < 300):
        outputs = {
            rule["name"]: evaluate_expression(rule["fromExpression"], env)
            for rule in config.get("outputs", [])
        }
        return Answer("Succeeded", output=outputs)
    if success is None and failure is None:
        return Answer("Failed")
    return Answer("Running")


def http_transport_error(error: Exception) -> Answer:
    """The ``http`` step's result when no answer came (refused, reset, timed out): an
    error that counts towards the step's error threshold."""
    return Answer("Errored", error=f"error sending HTTP request: {error}")


def _criterion(expression: str | None, env: Mapping[str, Any]) -> bool | None:
    if not expression:
        return None
    result = evaluate_expression(expression, env)
    assert isinstance(result, bool), f"{expression!r} gave {result!r}, not a boolean"
    return result


def _error_detail(expression: str | None, env: Mapping[str, Any]) -> str | None:
    """``errorExpression``'s string; None when unset, empty, not a string, or failing."""
    if not expression:
        return None
    try:
        detail = evaluate_expression(expression, env)
    except golem.EvalError:
        return None
    return detail if isinstance(detail, str) and detail else None


def _evaluate_expr_lang(expression: str, env: Mapping[str, Any]) -> Any:
    # golem returns scalars only; toJSON (an expr-lang built-in) carries any value out.
    return json.loads(_ENGINE.eval(f"toJSON({expression})", dict(env)))


def _quote(value: Any, env: Mapping[str, Any]) -> str:
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)  # Go's %q, for printable text
    return f'"{go_json(value)}"'


def _secret(name: Any, env: Mapping[str, Any]) -> dict[str, str]:
    secrets: Mapping[str, dict[str, str]] = env.get("secrets", {})
    return dict(secrets.get(name, {}))  # a missing Secret is an empty map


_KARGO_FUNCTIONS: dict[str, Callable[[Any, Mapping[str, Any]], Any]] = {
    "quote": _quote,
    "secret": _secret,
}


def _closing_paren(text: str, opening: int) -> int:
    depth = 0
    quote_char = ""
    index = opening
    while index < len(text):
        char = text[index]
        if quote_char:
            if char == "\\":
                index += 1
            elif char == quote_char:
                quote_char = ""
        elif char in "\"'`":
            quote_char = char
        elif char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
            if depth == 0:
                return index
        index += 1
    raise ValueError(f"unbalanced parentheses in {text!r}")


def _next_expression(template: str) -> tuple[str, str, str] | None:
    found = [(template.find(start), start, end) for start, end in DELIMITERS]
    found = [f for f in found if f[0] >= 0]
    if not found:
        return None
    begin, start, end = min(found)
    close = template.find(end, begin + len(start))
    if close < 0:
        raise ValueError(f"unclosed expression: expected {end!r}")
    return template[:begin], template[begin + len(start) : close], template[close + len(end) :]
