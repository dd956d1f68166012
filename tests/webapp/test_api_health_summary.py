"""The health decision: every component ok is 200, anything else 503 naming the failures."""

from webapp.health import ComponentState, run_probe, summarize


def test_all_ok_is_200():
    body, status = summarize({"sqs": ComponentState("ok", 1.0, detail={"queue": "q"}), "s3": ComponentState("ok", 2.0)})
    assert status == 200
    assert body == {
        "status": "ok",
        "components": {
            "s3": {"status": "ok", "latency_ms": 2.0},
            "sqs": {"status": "ok", "latency_ms": 1.0, "detail": {"queue": "q"}},
        },
    }


def test_one_failure_is_503_and_names_it():
    body, status = summarize({"sqs": ComponentState("ok", 1.0), "dynamodb": ComponentState("error", 3.0, error="gone")})
    assert status == 503
    assert body["status"] == "degraded"
    assert body["components"]["dynamodb"] == {"status": "error", "latency_ms": 3.0, "error": "gone"}


def test_run_probe_turns_an_exception_into_an_error_state():
    def broken():
        raise ConnectionError("refused")

    state = run_probe(broken)
    assert (state.status, state.error) == ("error", "ConnectionError: refused")
    assert run_probe(lambda: {"bucket": "b"}).detail == {"bucket": "b"}
