"""HTTP trigger route templates, matched the way ASP.NET Core routing matches them.

Templates like ``products/{category:alpha}/{id:int?}``, ``files/{*path}`` and
``hello/{name?}``: literal segments match ignoring case; parameters match one
segment (``{*name}`` the rest of the path); constraints restrict what a
parameter accepts. When several templates match a path, the most specific
wins (literal before constrained before plain parameter before catch-all),
as ASP.NET's route precedence decides. Route values reach the function as
strings, also for typed parameters, as in Azure.
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Callable

_PARAM = re.compile(r"\{([^{}]*)\}")
_INT32 = (-2**31, 2**31 - 1)
_INT64 = (-2**63, 2**63 - 1)


class RouteError(ValueError):
    """A route template is malformed or uses an unknown constraint."""


def _int_in(low: int, high: int) -> Callable[[str], bool]:
    def check(v: str) -> bool:
        return bool(re.fullmatch(r"-?\d+", v)) and low <= int(v) <= high
    return check


def _number(v: str) -> bool:
    try:
        float(v)
        return v.strip() == v and v.lower() not in ("nan", "inf", "-inf", "infinity", "-infinity")
    except ValueError:
        return False


def _guid(v: str) -> bool:
    try:
        uuid.UUID(v.strip("{}()"))
        return True
    except ValueError:
        return False


def _datetime(v: str) -> bool:
    try:
        datetime.fromisoformat(v.replace("Z", "+00:00"))
        return True
    except ValueError:
        return False


_SIMPLE = {
    "int": _int_in(*_INT32), "long": _int_in(*_INT64),
    "bool": lambda v: v.lower() in ("true", "false"),
    "alpha": lambda v: bool(re.fullmatch(r"[A-Za-z]+", v)),
    "guid": _guid, "double": _number, "float": _number, "decimal": _number, "datetime": _datetime,
}
_WITH_ARGS = {"min", "max", "range", "minlength", "maxlength", "length", "regex"}
ALLOWED_CONSTRAINTS = ", ".join(sorted([*_SIMPLE, *(f"{c}(...)" for c in _WITH_ARGS)]))


def _constraint(text: str, template: str) -> Callable[[str], bool]:
    m = re.fullmatch(r"(\w+)(?:\((.*)\))?", text, re.S)
    if not m:
        raise RouteError(f"route {template!r}: constraint {text!r} is malformed.")
    name, arg = m[1].lower(), m[2]
    if name in _SIMPLE and arg is None:
        return _SIMPLE[name]
    if name in _WITH_ARGS and arg is not None:
        try:
            if name == "regex":
                rx = re.compile(arg)
                return lambda v: bool(rx.search(v))
            nums = [int(x) for x in arg.split(",")]
        except (ValueError, re.error) as e:
            raise RouteError(f"route {template!r}: constraint {text!r} has a bad argument ({e}).") from None
        if name == "min":
            return lambda v: _int_in(*_INT64)(v) and int(v) >= nums[0]
        if name == "max":
            return lambda v: _int_in(*_INT64)(v) and int(v) <= nums[0]
        if name == "range" and len(nums) == 2:
            return lambda v: _int_in(*_INT64)(v) and nums[0] <= int(v) <= nums[1]
        if name == "minlength":
            return lambda v: len(v) >= nums[0]
        if name == "maxlength":
            return lambda v: len(v) <= nums[0]
        if name == "length":
            return (lambda v: len(v) == nums[0]) if len(nums) == 1 else (lambda v: nums[0] <= len(v) <= nums[1])
    raise RouteError(f"route {template!r}: unknown route constraint {text!r}. Allowed: {ALLOWED_CONSTRAINTS}.")


@dataclass(frozen=True)
class _Param:
    name: str
    optional: bool
    catch_all: bool
    default: str | None
    checks: tuple[Callable[[str], bool], ...]


@dataclass(frozen=True)
class RouteTemplate:
    """One compiled template: a regex over the whole path plus the checks of its parameters."""

    text: str
    regex: re.Pattern
    params: tuple[_Param, ...]
    precedence: tuple[int, ...]

    @classmethod
    def parse(cls, template: str) -> "RouteTemplate":
        """Compile ``template``; RouteError naming the template and the problem when it is malformed."""
        text = template.strip().strip("/")
        parts = text.split("/") if text else []
        pattern, params, precedence = "", [], []
        for i, part in enumerate(parts):
            fragment, seg_params, digit = _segment(part, template)
            sep = "/" if i else ""
            whole_optional = (len(seg_params) == 1 and digit != 2
                              and (seg_params[0].optional or seg_params[0].catch_all or seg_params[0].default))
            if not whole_optional and any(p.optional for p in seg_params):
                raise RouteError(f"route {template!r}: an optional parameter must be a whole segment, "
                                 f"as in 'items/{{id?}}' (segment {part!r}).")
            if whole_optional:
                pattern += f"(?:{sep}{fragment})?"
            elif any(pp.optional or pp.catch_all for pp in params):
                raise RouteError(f"route {template!r}: only optional parameters may follow an optional or "
                                 "catch-all parameter; put them in the last segment(s).")
            else:
                pattern += sep + fragment
            for p in seg_params:
                if p.name.lower() in {q.name.lower() for q in params}:
                    raise RouteError(f"route {template!r}: parameter {p.name!r} appears twice.")
                if p.catch_all and i != len(parts) - 1:
                    raise RouteError(f"route {template!r}: the catch-all {{*{p.name}}} must be the last segment.")
            params += seg_params
            precedence.append(digit)
        return cls(text, re.compile(pattern, re.I | re.S), tuple(params), tuple(precedence))

    def match(self, path: str) -> dict[str, str] | None:
        """Route values for the decoded ``path`` (without the route prefix), or None."""
        m = self.regex.fullmatch(path.strip("/"))
        if m is None:
            return None
        values: dict[str, str] = {}
        for p in self.params:
            v = m.group(p.name)
            if v is None or v == "":
                if p.default is not None:
                    values[p.name] = p.default
                continue
            if not all(check(v) for check in p.checks):
                return None
            values[p.name] = v
        return values


def _segment(part: str, template: str) -> tuple[str, list[_Param], int]:
    """The regex of one segment, its parameters and its ASP.NET precedence digit
    (literal 1, complex 2, constrained parameter 3, parameter 4, catch-all 5)."""
    if not part:
        raise RouteError(f"route {template!r} has an empty segment ('//').")
    if "{" not in part and "}" not in part:
        return re.escape(part), [], 1
    pattern, params, pos = "", [], 0
    for m in _PARAM.finditer(part):
        pattern += re.escape(part[pos:m.start()])
        p = _parse_param(m[1], template)
        params.append(p)
        pattern += f"(?P<{p.name}>{'.*' if p.catch_all else '[^/]+'})"
        pos = m.end()
    pattern += re.escape(part[pos:])
    if "{" in _PARAM.sub("", part) or "}" in _PARAM.sub("", part):
        raise RouteError(f"route {template!r}: unbalanced braces in segment {part!r}.")
    if len(params) > 1 or _PARAM.sub("", part):
        return pattern, params, 2
    p = params[0]
    return pattern, params, 5 if p.catch_all else 3 if p.checks else 4


def _parse_param(text: str, template: str) -> _Param:
    catch_all = text.startswith("*")
    body = text.lstrip("*")
    default = None
    if "=" in body:
        body, default = body.split("=", 1)
    optional = body.endswith("?")
    body = body.rstrip("?")
    name, *constraints = _split_constraints(body)
    if not re.fullmatch(r"[A-Za-z_]\w*", name or ""):
        raise RouteError(f"route {template!r}: {{{text}}} is not a valid parameter; write {{name}}, {{name?}}, "
                         "{name:int} or {*rest}.")
    checks = tuple(_constraint(c, template) for c in constraints)
    return _Param(name, optional, catch_all, default, checks)


def _split_constraints(body: str) -> list[str]:
    # Split on ':' outside parentheses, so regex(a:b) stays whole.
    out, depth, cur = [], 0, ""
    for ch in body:
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        if ch == ":" and depth == 0:
            out.append(cur)
            cur = ""
        else:
            cur += ch
    out.append(cur)
    return out
