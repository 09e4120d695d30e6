"""Each wire format's recorded stream gives the exact summary, whatever the chunking."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.stream.cases import BODIES, STREAMS, Case, line_end_variants, run, split

ALL = STREAMS + BODIES


@pytest.mark.parametrize("case", ALL, ids=lambda c: c.fixture)
def test_whole_body_gives_the_exact_summary(case: Case) -> None:
    assert run(case.tap(), [case.body]) == case.expected


@pytest.mark.parametrize("case", STREAMS, ids=lambda c: c.fixture)
def test_line_end_variants_and_single_bytes_agree(case: Case) -> None:
    for name, body in line_end_variants(case).items():
        assert run(case.tap(), [body]) == case.expected, name
        assert run(case.tap(), [body[i : i + 1] for i in range(len(body))]) == case.expected, name


@pytest.mark.parametrize("case", STREAMS, ids=lambda c: c.fixture)
def test_every_two_way_split_of_crlf_stream_agrees(case: Case) -> None:
    body = line_end_variants(case)["crlf"]
    for point in range(0, len(body), 3 if len(body) > 6000 else 1):
        assert run(case.tap(), split(body, [point])) == case.expected, point


@pytest.mark.parametrize("case", ALL, ids=lambda c: c.fixture)
@settings(max_examples=60, deadline=None)
@given(data=st.data())
def test_any_rechunking_agrees(case: Case, data: st.DataObject) -> None:
    variants = line_end_variants(case) if case in STREAMS else {"lf": case.body}
    name = data.draw(st.sampled_from(sorted(variants)))
    body = variants[name]
    points = data.draw(st.lists(st.integers(0, len(body)), max_size=60))
    assert run(case.tap(), split(body, points)) == case.expected
