"""The loop detector: loops of any unit length are caught, normal text of every kind is not."""

from __future__ import annotations

import inspect
import json
import textwrap

import pytest

from proxy.quality import repetition
from proxy.quality.content import Content
from proxy.quality.repetition import MIN_CHARS, WINDOW, loop_period

INTRO = "Here is the answer you asked for, with the details that matter most to it. "


@pytest.mark.parametrize("unit", ["a", "ha ", "I think. ", "The cat sat on the mat. ",
                                  "1. Preheat the oven to 200 degrees and wait for it.\n",
                                  "これはペンです。", "x" * 200 + "\n"])
def test_loops_of_any_unit_length_are_caught(unit: str) -> None:
    text = INTRO + unit * (2 * WINDOW // len(unit) + 2)
    assert loop_period(text) is not None


def test_a_loop_that_began_late_in_the_window_is_a_loop() -> None:
    # SmolLM2 on "List ten fruits": a long list, then "-Brumble" until max_tokens.
    prose = textwrap.dedent(inspect.getdoc(json) or "")[:700]
    assert loop_period(prose) is None
    assert loop_period(prose + "Brumble-" * 50) == len("Brumble-")


def test_the_period_is_the_unit() -> None:
    assert loop_period(INTRO + "The cat sat on the mat. " * 80) == len("The cat sat on the mat. ")


def test_a_loop_with_a_counter_in_it_is_still_a_loop() -> None:
    text = INTRO + "".join(f"Step {i}: add the flour to the bowl and stir it well.\n" for i in range(10, 60))
    assert loop_period(text) is not None


def test_a_loop_too_short_to_matter_is_not_judged() -> None:
    assert loop_period("ha " * ((MIN_CHARS - 1) // 3)) is None


def test_a_unit_that_fits_fewer_than_min_repeats_is_not_a_loop() -> None:
    # A 200-character paragraph said three times: repeated, but a loop needs MIN_REPEATS units.
    unit = "".join(f"Sentence {w} of a paragraph that is quoted. " for w in "one two three four five".split())
    assert MIN_CHARS < 3 * len(unit) < 4 * len(unit) < WINDOW and repetition.MIN_REPEATS > 3
    assert loop_period(unit * 3) is None
    assert loop_period(unit * 4) is not None


@pytest.mark.parametrize("text", [
    textwrap.dedent(inspect.getdoc(json) or ""),
    inspect.getsource(textwrap),
    "\n".join(f"| {i:3d} | {i * i:6d} | {i ** 3:9d} |" for i in range(1, 80)),  # a table of numbers
    "\n".join(f"- item {w}" for w in "apple banana cherry damson elder fig grape hazel ilama jujube kiwi lime".split()) * 3,
], ids=["prose", "code", "table", "list"])
def test_normal_text_is_not_a_loop(text: str) -> None:
    for end in range(MIN_CHARS, len(text), 97):
        assert loop_period(text[:end]) is None, text[max(0, end - 200) : end]


def test_content_keeps_a_bounded_tail() -> None:
    content = Content(tail=True, keep=False)
    for i in range(20000):
        content.text(f"word{i} ")
    assert content.tail().endswith("word19999 ")
    assert len(content.tail()) == WINDOW
    assert content._tail_size <= 2 * WINDOW  # noqa: SLF001 (the bound is the point)
