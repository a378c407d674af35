"""Small statistics helpers: the sample file for `ghostfill complete`."""

import math


def mean(values: list[float]) -> float:
    """Arithmetic mean of a non-empty list."""
    return sum(values) / len(values)


def variance(values: list[float]) -> float:
    """Population variance."""
    m = mean(values)
    return sum((v - m) ** 2 for v in values) / len(values)


def stdev(values: list[float]) -> float:
    """Population standard deviation."""
    
