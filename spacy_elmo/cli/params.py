"""Checks of command-line values, run by click before a command starts, so a bad flag costs no work.

Each names the value it refuses (click adds the option's name): integer bounds, finite floats
(click's ranges let NaN through), choices, and the char-CNN filter list.
"""
from __future__ import annotations

import inspect
from typing import Any, Callable, Container, List, Optional

import typer


def default_of(function: Callable[..., Any], name: str) -> Any:
    """The default of `function`'s parameter `name`: an option of the command that calls it says no other."""
    return inspect.signature(function).parameters[name].default


def within(interval: Container[float]) -> Callable[[Optional[float]], Optional[float]]:
    """A number in `interval` (a training setting's `Interval`, whose str() names its bounds)."""

    def check(value: Optional[float]) -> Optional[float]:
        if value is not None and value not in interval:
            raise typer.BadParameter(f"{value} is not a finite number in {interval}")
        return value

    return check


def at_least(low: int) -> Callable[[Optional[int]], Optional[int]]:
    def check(value: Optional[int]) -> Optional[int]:
        if value is not None and value < low:
            raise typer.BadParameter(f"{value} is not an integer >= {low}")
        return value

    return check


def choice(*allowed: str) -> Callable[[Optional[str]], Optional[str]]:
    def check(value: Optional[str]) -> Optional[str]:
        if value is not None and value not in allowed:
            raise typer.BadParameter(f"{value!r} is not one of {', '.join(allowed)}")
        return value

    return check


def parse_filters(value: str) -> List[List[int]]:
    """'1:32,2:32' -> [[1, 32], [2, 32]]."""
    pairs = []
    for item in (v.strip() for v in value.split(",")):
        width, _, count = item.partition(":")
        if not (width.isdigit() and count.isdigit() and int(width) > 0 and int(count) > 0):
            raise typer.BadParameter(f"{item!r} is not a width:count pair of positive integers, e.g. 1:32,2:32,3:64")
        pairs.append([int(width), int(count)])
    return pairs


def filters(value: Optional[str]) -> Optional[str]:
    if value is not None:
        parse_filters(value)
    return value


def split_list(values: str) -> List[str]:
    return [v for v in values.split(",") if v]


def plural(count: int, noun: str) -> str:
    return f"{count} {noun}" if count == 1 else f"{count} {noun}s"


def given(ctx: typer.Context) -> List[str]:
    """The parameters of the running command that were set on the command line (or by env var)."""
    sources = ("COMMANDLINE", "ENVIRONMENT")  # by name: typer may vendor its own click
    return [name for name in ctx.params if getattr(ctx.get_parameter_source(name), "name", None) in sources]
