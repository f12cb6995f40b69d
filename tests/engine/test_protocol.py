"""The JSON-lines protocol between the QGIS side and the worker."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest

from patchflow.plugin import protocol


def test_job_round_trips_through_one_line():
    job = protocol.Job("extract_patches", {"INPUT": "/a b/p.gpkg", "SOURCE1": ["x.tif", "y.tif"], "N": 3}, "j42")
    line = job.to_line()
    assert "\n" not in line
    back = protocol.Job.from_line(line)
    assert back == job
    assert json.loads(line)["version"] == protocol.PROTOCOL_VERSION


def test_job_from_a_minimal_line_gets_defaults():
    job = protocol.Job.from_line('{"operation": "grid_split"}')
    assert job.operation == "grid_split"
    assert job.parameters == {}
    assert job.job_id == "cli"
    assert job.version == protocol.PROTOCOL_VERSION


def test_job_line_without_operation_is_rejected():
    with pytest.raises(KeyError):
        protocol.Job.from_line('{"parameters": {}}')


@pytest.mark.parametrize(
    ("message", "kind", "payload"),
    [
        (protocol.progress(12.3456), protocol.PROGRESS, {"value": 12.35}),
        (protocol.log("hello"), protocol.LOG, {"text": "hello"}),
        (protocol.warning("careful"), protocol.WARNING, {"text": "careful"}),
        (protocol.result({"OUTPUT": "/x.json", "COUNT": 3}), protocol.RESULT,
         {"outputs": {"OUTPUT": "/x.json", "COUNT": 3}}),
        (protocol.error("bad", "INPUT", "tb"), protocol.ERROR,
         {"message": "bad", "parameter": "INPUT", "traceback": "tb"}),
    ],
)
def test_messages_round_trip(message, kind, payload):
    line = message.to_line()
    assert json.loads(line)["type"] == kind
    back = protocol.Message.from_line(line)
    assert back is not None
    assert back.kind == kind
    assert back.payload == payload


def test_error_without_parameter_sends_null():
    data = json.loads(protocol.error("boom").to_line())
    assert data == {"type": "error", "message": "boom", "parameter": None, "traceback": ""}


@pytest.mark.parametrize("line", ["", "not json", "[1, 2]", '"text"', '{"type": "chatter"}', '{"value": 3}',
                                  "GDAL: some warning printed on stdout"])
def test_lines_that_are_not_messages_give_none(line):
    assert protocol.Message.from_line(line) is None


def test_every_message_type_is_accepted():
    for kind in protocol.MESSAGE_TYPES:
        message = protocol.Message.from_line(json.dumps({"type": kind}))
        assert message is not None and message.kind == kind


def test_message_payload_with_paths_is_still_json():
    line = protocol.result({"OUTPUT": Path("/tmp/out.json")}).to_line()
    assert json.loads(line)["outputs"]["OUTPUT"] == "/tmp/out.json"


def test_send_writes_one_flushed_line_per_message():
    class Stream(io.StringIO):
        flushes = 0

        def flush(self):
            Stream.flushes += 1
            super().flush()

    stream = Stream()
    protocol.send(stream, protocol.progress(50))
    protocol.send(stream, protocol.log("two\nlines"))
    lines = stream.getvalue().splitlines()
    assert len(lines) == 2
    assert protocol.Message.from_line(lines[0]).payload == {"value": 50.0}
    assert protocol.Message.from_line(lines[1]).payload == {"text": "two\nlines"}
    assert Stream.flushes >= 2


def test_staging_prefix_names_the_staging_folder():
    from patchflow.plugin.engine.staging import staging_dir_for

    folder = staging_dir_for("/data/out/samples.gpkg", "abc123")
    assert folder == Path("/data/out") / f"{protocol.STAGING_PREFIX}abc123"
    assert protocol.STAGING_PREFIX.startswith(".")


def test_json_lines_reporter_sends_progress_in_steps_of_half_a_percent():
    from patchflow.plugin.engine.reporting import JsonLinesReporter

    stream = io.StringIO()
    reporter = JsonLinesReporter(stream)
    for step in range(1, 1001):  # many small steps: 0.1 % each
        reporter.progress(step / 10)
    reporter.log("done")
    reporter.warning("careful")
    messages = [protocol.Message.from_line(line) for line in stream.getvalue().splitlines()]
    values = [m.payload["value"] for m in messages if m.kind == protocol.PROGRESS]
    assert 150 <= len(values) <= 201
    assert values[-1] == 100
    assert all(b - a >= 0.5 - 1e-9 for a, b in zip(values, values[1:]))
    assert [m.kind for m in messages[-2:]] == [protocol.LOG, protocol.WARNING]
    assert reporter.warnings == ["careful"] and reporter.logs == ["done"]
