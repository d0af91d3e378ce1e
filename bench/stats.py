"""Small statistics and the result record every benchmark returns."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any


def percentile(values: Sequence[float], q: float) -> float:
    """The ``q``-th percentile (0-100) with linear interpolation between ranks."""
    if not values:
        return math.nan
    ordered = sorted(values)
    rank = (len(ordered) - 1) * q / 100
    low, high = math.floor(rank), math.ceil(rank)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def summary(values: Sequence[float], digits: int = 4) -> dict[str, float]:
    """Count, mean and the percentiles a latency or memory figure is judged on."""
    if not values:
        return {"count": 0}
    return {
        "count": len(values),
        "min": round(min(values), digits),
        "p50": round(percentile(values, 50), digits),
        "p90": round(percentile(values, 90), digits),
        "p99": round(percentile(values, 99), digits),
        "max": round(max(values), digits),
        "mean": round(sum(values) / len(values), digits),
    }


@dataclass
class Check:
    """One target: what was measured against what it must stay under (or above)."""

    name: str
    value: float
    limit: float
    #: "max": value must be at most limit; "min": at least limit.
    kind: str = "max"
    unit: str = ""

    @property
    def passed(self) -> bool:
        """True when the value meets the target."""
        return self.value <= self.limit if self.kind == "max" else self.value >= self.limit

    def as_dict(self) -> dict[str, Any]:
        """The check as it is stored in the results."""
        return {
            "name": self.name,
            "value": round(self.value, 4),
            "limit": round(self.limit, 4),
            "kind": self.kind,
            "unit": self.unit,
            "passed": self.passed,
        }


@dataclass
class Result:
    """What a benchmark measured: its figures, its checks and samples for the plot."""

    name: str
    description: str
    parameters: dict[str, Any]
    figures: dict[str, Any] = field(default_factory=dict)
    checks: list[Check] = field(default_factory=list)
    samples: dict[str, Any] = field(default_factory=dict)
    seconds: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        """The result as it is stored in results.json."""
        return {
            "description": self.description,
            "parameters": self.parameters,
            "figures": self.figures,
            "checks": [check.as_dict() for check in self.checks],
            "passed": all(check.passed for check in self.checks),
            "seconds": round(self.seconds, 1),
            "samples": self.samples,
        }
