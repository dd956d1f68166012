"""Traces: the shipped CSVs are their generators' output, realistic in shape, and read strictly."""

import pytest

from lifecycle.simulation.workload import (
    CAMERA_ANGLE_GPU_S, DAY_S, HOUR_S, IMAGE_EDIT_GPU_S, REFERENCE_TRACES, Job, TraceError, bursty, parse_csv,
    read_trace, reference_trace_path, sparse_nightly, steady, to_csv,
)


@pytest.mark.parametrize("name", sorted(REFERENCE_TRACES))
def test_shipped_traces_equal_their_generator(name):
    assert reference_trace_path(name).read_text() == to_csv(REFERENCE_TRACES[name]())


@pytest.mark.parametrize("name", sorted(REFERENCE_TRACES))
def test_round_trip(name):
    jobs = REFERENCE_TRACES[name]()
    assert parse_csv(to_csv(jobs)) == jobs == read_trace(reference_trace_path(name))


@pytest.mark.parametrize("name", sorted(REFERENCE_TRACES))
def test_job_sizes_are_those_of_an_l40s(name):
    low, high = min(IMAGE_EDIT_GPU_S[0], CAMERA_ANGLE_GPU_S[0]), max(IMAGE_EDIT_GPU_S[1], CAMERA_ANGLE_GPU_S[1])
    assert all(low <= j.gpu_s <= high for j in REFERENCE_TRACES[name]())


def test_generators_are_seeded():
    assert steady(seed=7, days=1) == steady(seed=7, days=1) != steady(seed=8, days=1)


def test_steady_runs_around_the_clock():
    jobs = steady()
    hours = {int(j.arrival_s // HOUR_S) % 24 for j in jobs}
    assert hours == set(range(24)) and 25 <= len(jobs) / 48 <= 35


def test_bursty_is_business_hours_only():
    jobs = bursty()
    assert {int(j.arrival_s // DAY_S) for j in jobs} == set(range(5))
    # sessions open between 09:00 and 18:00; their last jobs may run a little past it
    assert all(9 * HOUR_S <= j.arrival_s % DAY_S <= 19 * HOUR_S for j in jobs)


def test_sparse_nightly_has_a_batch_each_night_and_few_jobs_by_day():
    jobs = sparse_nightly()
    for day in range(7):
        night = [j for j in jobs if day * DAY_S + 1.8 * HOUR_S <= j.arrival_s <= day * DAY_S + 2.2 * HOUR_S]
        daytime = [j for j in jobs if day * DAY_S + 8 * HOUR_S <= j.arrival_s <= day * DAY_S + 20 * HOUR_S]
        assert 30 <= len(night) <= 60 and 2 <= len(daytime) <= 6
        assert max(j.arrival_s for j in night) - min(j.arrival_s for j in night) <= 60


@pytest.mark.parametrize("text,problem", [
    ("", "first row"),
    ("arrival,gpu\n1,2\n", "first row"),
    ("arrival_s,gpu_s\n1,x\n", ":2: expected numbers"),
    ("arrival_s,gpu_s\n1,2,3\n", ":2: expected 2 columns"),
    ("arrival_s,gpu_s\n-1,2\n", ":2: arrival_s must be"),
    ("arrival_s,gpu_s\n1,0\n", ":2: arrival_s must be"),
    ("arrival_s,gpu_s,priority,ttl_s\n1,2,urgent,\n", ":2: priority must be one of normal, low"),
    ("arrival_s,gpu_s,priority,ttl_s\n1,2,low,0\n", ":2: arrival_s must be >= 0, gpu_s and ttl_s > 0"),
])
def test_bad_traces_are_refused_with_the_line(text, problem):
    with pytest.raises(TraceError, match=problem):
        parse_csv(text, "t.csv")


def test_rows_are_sorted_and_blank_lines_skipped():
    assert parse_csv("arrival_s,gpu_s\n5,1\n\n1,2\n") == [Job(1.0, 2.0), Job(5.0, 1.0)]


def test_unreadable_trace_and_unknown_reference(tmp_path):
    with pytest.raises(TraceError, match="missing.csv"):
        read_trace(tmp_path / "missing.csv")
    with pytest.raises(TraceError, match="unknown reference trace"):
        reference_trace_path("nope")


def test_a_trace_may_give_each_job_its_priority_and_time_to_live():
    jobs = parse_csv("arrival_s,gpu_s,priority,ttl_s\n5,20,low,\n1,30,normal,600\n", "t.csv")
    assert [(j.arrival_s, j.priority, j.ttl_s) for j in jobs] == [(1.0, "normal", 600.0), (5.0, "low", None)]
    assert parse_csv(to_csv(jobs), "again.csv") == jobs
    assert [(j.priority, j.ttl_s) for j in parse_csv(to_csv(jobs), "again.csv")] == [("normal", 600.0), ("low", None)]
