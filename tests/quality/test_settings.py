"""The flags of section 15: parsed, validated at start, one line naming the flag when wrong."""

from __future__ import annotations

from pathlib import Path

import pytest

from proxy.cli import SERVE_FLAGS, _collect, build_parser
from proxy.config import ConfigError, Settings


def test_checks_flag() -> None:
    assert Settings().enabled_checks == {"empty", "json", "tool_arguments", "repetition"}
    assert Settings(checks="none").enabled_checks == frozenset()
    assert Settings(checks="json, repetition").enabled_checks == {"json", "repetition"}
    with pytest.raises(ConfigError, match="--checks: unknown check"):
        Settings(checks="json,spelling")


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"eval_model": "j"}, "need --eval-url"),
    ({"eval_url": "ftp://judge"}, "--eval-url must be an http"),
    ({"eval_url": "http://judge:8080"}, "--eval-model"),
    ({"eval_url": "http://judge:8080", "eval_model": "j", "eval_sample": 1.5}, "--eval-sample"),
    ({"eval_url": "http://judge:8080", "eval_model": "j", "eval_rubric": ("wit",)}, "unknown rubric"),
    ({"eval_url": "http://judge:8080", "eval_model": "j", "eval_queue": 0}, "--eval-queue"),
    ({"eval_url": "http://127.0.0.1:8100/v1", "eval_model": "j"}, "points at this proxy"),
])
def test_bad_eval_settings_name_the_flag(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        Settings(**kwargs)  # type: ignore[arg-type]


def test_rubrics_default_and_file(tmp_path: Path) -> None:
    judged = Settings(eval_url="http://judge:8080", eval_model="j")
    assert list(judged.judge_rubrics) == ["relevance"]
    path = tmp_path / "rubrics.json"
    path.write_text('{"politeness": "How polite is {answer}?"}')
    mine = Settings(eval_url="http://judge:8080", eval_model="j", eval_rubrics=str(path),
                    eval_rubric=("politeness", "toxicity"))
    assert list(mine.judge_rubrics) == ["politeness", "toxicity"]
    path.write_text("[1, 2]")
    with pytest.raises(ConfigError, match="--eval-rubrics"):
        Settings(eval_url="http://judge:8080", eval_model="j", eval_rubrics=str(path))


def test_eval_rubric_repeats_or_takes_a_list(monkeypatch: pytest.MonkeyPatch) -> None:
    args = build_parser().parse_args(["serve", "--eval-rubric", "relevance", "--eval-rubric", "toxicity,groundedness"])
    assert _collect(args, SERVE_FLAGS, "INFERMETER_")["eval_rubric"] == ("relevance", "toxicity", "groundedness")
    monkeypatch.setenv("INFERMETER_EVAL_RUBRIC", "toxicity, relevance")
    args = build_parser().parse_args(["serve"])
    assert _collect(args, SERVE_FLAGS, "INFERMETER_")["eval_rubric"] == ("toxicity", "relevance")
