"""One run per output: a second run on a locked output is refused, naming the first's pid."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest

import patchflow
from patchflow.plugin.engine.errors import PatchFlowError
from patchflow.plugin.engine.locks import OutputLocks, lock_path

PACKAGE_PARENT = os.path.dirname(os.path.dirname(patchflow.__file__))


def _hold_lock_in_another_process(output: str):
    code = textwrap.dedent(f"""
        import sys, time
        sys.path.insert(0, {PACKAGE_PARENT!r})
        from patchflow.plugin.engine.locks import OutputLocks
        with OutputLocks([("OUTPUT", {output!r})]):
            print("locked", flush=True)
            sys.stdin.readline()
    """)
    process = subprocess.Popen([sys.executable, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert process.stdout.readline().strip() == "locked"
    return process


def test_a_second_run_on_a_locked_output_is_refused_with_the_holders_pid(tmp_path):
    output = str(tmp_path / "map.tif")
    holder = _hold_lock_in_another_process(output)
    try:
        with pytest.raises(PatchFlowError, match=f"another PatchFlow run \\(pid {holder.pid}\\)") as caught:
            OutputLocks([("OUTPUT", output)]).acquire()
        assert caught.value.parameter == "OUTPUT"
    finally:
        holder.communicate("\n", timeout=20)
    with OutputLocks([("OUTPUT", output)]):  # free again once the first run ended
        assert lock_path(output).exists()
    assert not lock_path(output).exists()
    assert sorted(os.listdir(tmp_path)) == []  # nothing written beside the output


def test_a_killed_holder_leaves_no_lock(tmp_path):
    output = str(tmp_path / "model")
    holder = _hold_lock_in_another_process(output)
    holder.kill()
    holder.wait()
    with OutputLocks([("OUTPUT", output)]):
        pass


def test_a_failed_acquisition_releases_the_locks_already_taken(tmp_path):
    first, second = str(tmp_path / "a.csv"), str(tmp_path / "b.html")
    holder = _hold_lock_in_another_process(second)
    try:
        with pytest.raises(PatchFlowError) as caught:
            OutputLocks([("OUTPUT_CSV", first), ("OUTPUT_HTML", second)]).acquire()
        assert caught.value.parameter == "OUTPUT_HTML"
        with OutputLocks([("OUTPUT_CSV", first)]):
            pass
    finally:
        holder.communicate("\n", timeout=20)
