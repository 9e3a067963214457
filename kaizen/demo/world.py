"""A deterministic world of a few realistic tools whose APIs drift at scheduled points.

"World time" is the episode index: the number of episodes started so far. Each `Drift` names one
change, the index from which it holds, its tool, and a line for the demo report. The world keeps
no state between calls (the caller passes `attempt`, the n-th call of that tool in its episode),
so fleets may call it from many threads and a replay gives the same answers.

The drifts are the kinds of change that break agents in production: a renamed parameter, a new
required field, a changed date format, a deprecated endpoint with a successor, a rate limit that
a back-off gets past, and one user's preference that no error reveals. Error texts look like real
HTTP APIs' because agents (and Kaizen's signatures) read them.

`harmful_patch` is a plausible-looking lesson that breaks every call it touches: the demo injects
it to show that per-lesson effect measurement catches and retires it.
"""

from __future__ import annotations

import json
import random
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from kaizen.schemas.model import ArgumentChange, ToolCallPatch

__all__ = [
    "CALENDAR_DATE_FORMAT",
    "ORDERS_RENAMED_PARAM",
    "PAYMENTS_REQUIRED_CURRENCY",
    "PREFERENCE_USER",
    "SEARCH_RATE_LIMIT",
    "TOOLS",
    "USER_PREFERS_IMPERIAL",
    "WEATHER_DEPRECATED",
    "Drift",
    "ToolOutcome",
    "World",
    "default_drifts",
    "harmful_patch",
]

SEARCH_RATE_LIMIT = "search-rate-limit"
ORDERS_RENAMED_PARAM = "orders-renamed-param"
PAYMENTS_REQUIRED_CURRENCY = "payments-required-currency"
CALENDAR_DATE_FORMAT = "calendar-date-format"
WEATHER_DEPRECATED = "weather-deprecated"
USER_PREFERS_IMPERIAL = "user-prefers-imperial"

#: The user whose preference (imperial units) no tool error reveals; only their feedback does.
PREFERENCE_USER = "u7"
PREFERENCE_CORRECTION = "use imperial units"

#: The tools of the original API (weather.v2.get appears with the deprecation drift).
TOOLS = ("search", "orders.get", "payments.charge", "calendar.book", "weather.get")

OLD_DATE, NEW_DATE = "%d/%m/%Y", "%Y-%m-%d"
_DATE_LABEL = {OLD_DATE: "DD/MM/YYYY", NEW_DATE: "YYYY-MM-DD"}
_CURRENCIES = ("USD", "EUR", "GBP")
_UNITS = ("metric", "imperial")


@dataclass(frozen=True, slots=True)
class Drift:
    """One scheduled API change: it holds for every episode index >= `index`."""

    name: str
    index: int
    tool: str
    description: str


@dataclass(frozen=True, slots=True)
class ToolOutcome:
    """What a tool call returned: `ok` with an output, or not with an error text."""

    ok: bool
    error: str | None = None
    output: str | None = None


_DESCRIPTIONS = (
    (SEARCH_RATE_LIMIT, "search", "search is rate limited: the first call of an episode gets "
     "'429 Too Many Requests', a retry after back-off works"),
    (ORDERS_RENAMED_PARAM, "orders.get", "orders.get renamed its parameter `order_id` to `id`"),
    (PAYMENTS_REQUIRED_CURRENCY, "payments.charge", "payments.charge now requires `currency` "
     "(it defaulted to USD before)"),
    (CALENDAR_DATE_FORMAT, "calendar.book", "calendar.book wants dates as YYYY-MM-DD instead of "
     "DD/MM/YYYY"),
    (WEATHER_DEPRECATED, "weather.get", "weather.get is gone (410); its successor weather.v2.get "
     "takes the same arguments"),
    (USER_PREFERS_IMPERIAL, "weather.get", f"user {PREFERENCE_USER} wants imperial units: metric "
     "answers work but earn a correction and a negative rating"),
)


def default_drifts(start: int = 40, spacing: int = 40) -> tuple[Drift, ...]:
    """The six drifts, the first at `start` and each next one `spacing` episodes later."""
    return tuple(
        Drift(name, start + i * spacing, tool, text)
        for i, (name, tool, text) in enumerate(_DESCRIPTIONS)
    )


def harmful_patch() -> ToolCallPatch:
    """A plausible lesson that is wrong: `amount_cents` -> `amount` makes every charge fail."""
    return ToolCallPatch(
        tool="payments.charge",
        changes=[ArgumentChange("rename", "amount_cents", new_argument="amount")],
    )


class World:
    """The tools at a given world time. Stateless between calls, hence thread-safe."""

    def __init__(self, drifts: Sequence[Drift] | None = None, *, seed: int = 0) -> None:
        self.drifts = tuple(default_drifts() if drifts is None else drifts)
        self.seed = seed
        self._at = {d.name: d.index for d in self.drifts}

    def drift(self, name: str) -> Drift:
        """The scheduled drift called `name` (KeyError if this world has none)."""
        for drift in self.drifts:
            if drift.name == name:
                return drift
        raise KeyError(name)

    def active(self, name: str, episode_index: int) -> bool:
        """Whether drift `name` holds at this world time (a drift not scheduled never does)."""
        return name in self._at and episode_index >= self._at[name]

    def call(
        self,
        tool: str,
        args: Mapping[str, Any],
        *,
        episode_index: int,
        user: str | None = None,
        attempt: int = 0,
    ) -> ToolOutcome:
        """Call `tool` as the API stands at `episode_index`; `attempt` counts this tool's earlier
        calls in the same episode (the rate limit lets the second one through)."""
        handler = _HANDLERS.get(tool)
        if handler is None:
            return _error(f"404 Not Found: unknown tool '{tool}'")
        return handler(self, dict(args), episode_index, attempt)

    def preference_correction(
        self, tool: str, args: Mapping[str, Any], *, episode_index: int, user: str | None
    ) -> str | None:
        """The correction a user gives for a call that worked but ignored their preference."""
        if (
            user == PREFERENCE_USER
            and self.active(USER_PREFERS_IMPERIAL, episode_index)
            and tool.startswith("weather.")
            and args.get("units") != "imperial"
        ):
            return PREFERENCE_CORRECTION
        return None

    def _rng(self, tool: str, args: Mapping[str, Any], episode_index: int) -> random.Random:
        """Seeded per call, so outputs do not depend on call order or threads."""
        key = json.dumps(dict(args), sort_keys=True, default=str)
        return random.Random(f"{self.seed}/{episode_index}/{tool}/{key}")  # noqa: S311

    # --- the tools ---------------------------------------------------------------------------

    def _search(self, args: dict[str, Any], t: int, attempt: int) -> ToolOutcome:
        bad = _check_fields(args, allowed={"query"}, required={"query"})
        if bad:
            return bad
        if self.active(SEARCH_RATE_LIMIT, t) and attempt == 0:
            return _error("429 Too Many Requests: rate limit exceeded, retry after 1s")
        hits = self._rng("search", args, t).randint(1, 9)
        return _ok({"query": args["query"], "results": hits})

    def _orders_get(self, args: dict[str, Any], t: int, attempt: int) -> ToolOutcome:
        renamed = self.active(ORDERS_RENAMED_PARAM, t)
        key = "id" if renamed else "order_id"
        hint = {"order_id": "id"} if renamed else {}
        bad = _check_fields(args, allowed={key}, required={key}, hints=hint)
        if bad:
            return bad
        status = self._rng("orders.get", args, t).choice(("processing", "shipped", "delivered"))
        return _ok({key: args[key], "status": status})

    def _payments_charge(self, args: dict[str, Any], t: int, attempt: int) -> ToolOutcome:
        required = {"amount_cents"}
        if self.active(PAYMENTS_REQUIRED_CURRENCY, t):
            required.add("currency")
        bad = _check_fields(args, allowed={"amount_cents", "currency"}, required=required)
        if bad:
            return bad
        amount, currency = args["amount_cents"], args.get("currency", "USD")
        if not isinstance(amount, int) or isinstance(amount, bool) or amount <= 0:
            return _error("422 Unprocessable Entity: 'amount_cents' must be a positive integer")
        if currency not in _CURRENCIES:
            return _error(f"422 Unprocessable Entity: unsupported currency '{currency}'")
        charge = f"ch_{self._rng('payments.charge', args, t).getrandbits(32):08x}"
        return _ok({"charge": charge, "amount_cents": amount, "currency": currency})

    def _calendar_book(self, args: dict[str, Any], t: int, attempt: int) -> ToolOutcome:
        bad = _check_fields(args, allowed={"date", "title"}, required={"date", "title"})
        if bad:
            return bad
        fmt = NEW_DATE if self.active(CALENDAR_DATE_FORMAT, t) else OLD_DATE
        if not _parses(args["date"], fmt):
            return _error(
                f"400 Bad Request: invalid date '{args['date']}', expected {_DATE_LABEL[fmt]}"
            )
        return _ok({"booked": args["title"], "date": args["date"]})

    def _weather_get(self, args: dict[str, Any], t: int, attempt: int) -> ToolOutcome:
        if self.active(WEATHER_DEPRECATED, t):
            return _error("410 Gone: weather.get is deprecated, use weather.v2.get")
        return self._weather(args, t, "weather.get")

    def _weather_v2_get(self, args: dict[str, Any], t: int, attempt: int) -> ToolOutcome:
        if not self.active(WEATHER_DEPRECATED, t):
            return _error("404 Not Found: unknown tool 'weather.v2.get'")
        return self._weather(args, t, "weather.v2.get")

    def _weather(self, args: dict[str, Any], t: int, tool: str) -> ToolOutcome:
        bad = _check_fields(args, allowed={"city", "units"}, required={"city", "units"})
        if bad:
            return bad
        if args["units"] not in _UNITS:
            return _error(f"400 Bad Request: unknown units '{args['units']}'")
        celsius = self._rng(tool, {"city": args["city"]}, t).randint(-5, 30)
        temp = celsius if args["units"] == "metric" else round(celsius * 9 / 5 + 32)
        return _ok({"city": args["city"], "temperature": temp, "units": args["units"]})


_HANDLERS = {
    "search": World._search,
    "orders.get": World._orders_get,
    "payments.charge": World._payments_charge,
    "calendar.book": World._calendar_book,
    "weather.get": World._weather_get,
    "weather.v2.get": World._weather_v2_get,
}


def _check_fields(
    args: Mapping[str, Any],
    *,
    allowed: set[str],
    required: set[str],
    hints: Mapping[str, str] | None = None,
) -> ToolOutcome | None:
    """The API's schema check: unknown fields first (as real validators do), then missing ones."""
    for key in sorted(args):
        if key not in allowed:
            hint = (hints or {}).get(key)
            suffix = f"; did you mean '{hint}'?" if hint else ""
            return _error(f"400 Bad Request: unknown field '{key}'{suffix}")
    for key in sorted(required):
        if key not in args:
            return _error(f"422 Unprocessable Entity: missing required field '{key}'")
    return None


def _parses(value: Any, fmt: str) -> bool:
    if not isinstance(value, str):
        return False
    try:
        time.strptime(value, fmt)
    except ValueError:
        return False
    return True


def _ok(output: Mapping[str, Any]) -> ToolOutcome:
    return ToolOutcome(ok=True, output=json.dumps(dict(output), sort_keys=True))


def _error(text: str) -> ToolOutcome:
    return ToolOutcome(ok=False, error=text)
