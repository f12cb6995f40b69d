"""Train model on several machines (DEVICE multi-worker, MultiWorkerMirroredStrategy): two worker
processes on 127.0.0.1, each the same engine command with its own TF_CONFIG, on patches of the real
North Carolina scene. Their loss curve is the one process's (same global batch, same seed), only the
chief writes, a worker killed mid-training is resumed from the chief's checkpoint; a missing or
malformed cluster is refused, naming DEVICE, before TensorFlow starts."""

from __future__ import annotations

import csv
import json
import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

from patchflow.plugin import protocol
from patchflow.plugin.engine.errors import PatchFlowError
from patchflow.plugin.engine.reporting import Reporter
from patchflow.plugin.engine.train import multiworker
from patchflow.plugin.engine.worker import run_job

ROOT = Path(__file__).resolve().parents[2]
# The two workers see the same batches in the same order as one process (the record cache is sharded
# by DATA: each keeps its share of every global batch, and their gradients are averaged). What differs:
# an epoch's last batch is split unequally (19 training patches: 10 and 9, 13 validation ones: 7 and 6)
# and each worker's share is averaged on its own, so those samples weigh 1/20 and 1/18 instead of 1/19
# (in one step of 21, and in the validation mean), and float sums come in another order. Measured after
# 2 epochs: loss 0.02 %, val_loss 0.15 %, weights 1.5e-3 apart. A wrong global batch (each worker taking
# a whole BATCH_SIZE) moves the loss far more than LOSS_RTOL: the test checks that too.
LOSS_RTOL = 0.01
WEIGHTS_ATOL = 0.01


def run(operation: str, **parameters):
    return run_job(protocol.Job(operation, parameters, "mw"), Reporter())


@pytest.fixture(scope="module")
def nc_patches(nc, tmp_path_factory):
    """700 training and 210 validation 16 x 16 patches of the six-band Landsat scene (100 and 30 per class)."""
    folder = tmp_path_factory.mktemp("mw_sets")
    for name, number, seed in (("train", 100, 1), ("valid", 30, 2)):
        run("sample_label_raster", INPUT=str(nc / "landsat96_labelled_pixels.tif"), NUMBER=number,
            STRATEGY="constant", SEED=seed, OUTPUT=str(folder / f"{name}.gpkg"))
        run("extract_patches", INPUT=str(folder / f"{name}.gpkg"), SOURCE1=str(nc / "landsat_multiband.tif"),
            PATCH_SIZE1=16, CLASS_FIELD="class", OUTPUT=str(folder / f"{name}.json"))
    return folder


def free_ports(count: int) -> list[int]:
    sockets = [socket.socket() for _ in range(count)]
    for item in sockets:
        item.bind(("127.0.0.1", 0))
    ports = [item.getsockname()[1] for item in sockets]
    for item in sockets:
        item.close()
    return ports


def start_workers(tmp_path: Path, parameters: dict, tag: str) -> list[tuple[subprocess.Popen, Path]]:
    """Two engine processes, `run train_model ... DEVICE=multi-worker`, the cluster in TF_CONFIG; each
    with its own temporary folder; (process, folder of its stdout/stderr and temporary files)."""
    addresses = [f"127.0.0.1:{port}" for port in free_ports(2)]
    arguments = [f"{key}={value}" for key, value in dict(parameters, DEVICE="multi-worker").items()]
    workers = []
    for index in range(2):
        folder = tmp_path / f"{tag}-worker{index}"
        (folder / "tmp").mkdir(parents=True)
        env = dict(os.environ, PYTHONPATH=str(ROOT / ".cache" / "plugins"), TMPDIR=str(folder / "tmp"),
                   CUDA_VISIBLE_DEVICES="", TF_CPP_MIN_LOG_LEVEL="2",
                   TF_CONFIG=json.dumps({"cluster": {"worker": addresses}, "task": {"type": "worker", "index": index}}))
        for name in ("SLURM_JOB_ID", *multiworker.SLURM_STEP):
            env.pop(name, None)
        with open(folder / "stdout", "w") as stdout, open(folder / "stderr", "w") as stderr:
            process = subprocess.Popen([sys.executable, "-m", "patchflow.plugin.engine", "run", "train_model",
                                        *arguments], stdout=stdout, stderr=stderr, stdin=subprocess.DEVNULL, env=env,
                                       cwd=str(tmp_path))
        workers.append((process, folder))
    return workers


def finished(workers, timeout: float = 600) -> list[tuple[int, dict | None, str]]:
    """(exit status, outputs printed, stderr) of each worker once it ends."""
    ended = []
    for process, folder in workers:
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            raise
        stdout = (folder / "stdout").read_text()
        ended.append((process.returncode, json.loads(stdout) if stdout.strip() else None,
                      (folder / "stderr").read_text()))
    return ended


def history(output: Path) -> list[dict[str, float]]:
    with open(output / "history.csv") as handle:
        return [{k: float(v) for k, v in row.items()} for row in csv.DictReader(handle)]


def task_folders(workers) -> list[str]:
    return [name for _, folder in workers for name in os.listdir(folder / "tmp") if name.startswith("patchflow-task")]


@pytest.mark.slow
def test_two_workers_train_as_one_process_does_and_only_the_chief_writes(nc_patches, tmp_path):
    import keras

    # 30: the last batches (19 of 619 training, 13 of 193 validation patches) split between the workers
    job = {"TRAIN": nc_patches / "train.json", "VALID": nc_patches / "valid.json", "EPOCHS": 2, "BATCH_SIZE": 30,
           "SEED": 0}
    workers = start_workers(tmp_path, dict(job, OUTPUT=tmp_path / "out" / "cnn"), "mw")
    (chief_status, chief, chief_log), (other_status, other, other_log) = finished(workers)
    assert chief_status == 0 and other_status == 0, chief_log[-3000:] + other_log[-3000:]
    assert "device: 2 workers (MultiWorkerMirroredStrategy, cluster from TF_CONFIG)" in chief_log
    assert "BATCH_SIZE 30 is the global batch, 15 samples per replica (2 replicas on 2 workers)" in chief_log
    assert "left out" not in chief_log
    assert "task 1 of 2" in other_log and "the chief writes the outputs" in other_log

    # only the chief wrote: the model folder and nothing else; the other worker's folder is gone
    assert sorted(os.listdir(tmp_path / "out")) == ["cnn"]
    assert chief["OUTPUT"] == str(tmp_path / "out" / "cnn") and chief["EPOCHS_RUN"] == 2
    assert other["OUTPUT"] is None and other["REPORT"] is None and other["EPOCHS_RUN"] == 2
    assert task_folders(workers) == []
    assert {"model.keras", "report.html", "history.csv", "patchflow_card.json"} <= set(
        os.listdir(tmp_path / "out" / "cnn"))

    alone_job = {k: str(v) if isinstance(v, Path) else v for k, v in job.items()}
    single = run("train_model", **alone_job, DEVICE="cpu", OUTPUT=str(tmp_path / "single"))
    two, one = history(tmp_path / "out" / "cnn"), history(tmp_path / "single")
    print("two workers:", two, "\none process:", one)
    for key in ("loss", "val_loss", "accuracy"):
        np.testing.assert_allclose([row[key] for row in two], [row[key] for row in one], rtol=LOSS_RTOL)
    assert chief["KAPPA"] == pytest.approx(single["KAPPA"], abs=0.01)
    # what each worker taking a whole BATCH_SIZE (a global batch of 60) would give: far off
    run("train_model", **dict(alone_job, BATCH_SIZE=60), DEVICE="cpu", OUTPUT=str(tmp_path / "double"))
    double = history(tmp_path / "double")
    assert abs(double[-1]["loss"] - one[-1]["loss"]) > 5 * LOSS_RTOL * one[-1]["loss"]
    shared = keras.models.load_model(str(tmp_path / "out" / "cnn" / "model.keras")).get_weights()
    alone = keras.models.load_model(str(tmp_path / "single" / "model.keras")).get_weights()
    assert all(np.allclose(a, b, atol=WEIGHTS_ATOL) for a, b in zip(shared, alone))


@pytest.mark.slow
def test_a_worker_killed_mid_training_is_resumed_from_the_chiefs_checkpoint(nc_patches, tmp_path):
    # 32: the last validation batch (1 of 193 patches) would leave a worker an empty share
    job = {"TRAIN": nc_patches / "train.json", "VALID": nc_patches / "valid.json", "EPOCHS": 4, "BATCH_SIZE": 32,
           "SEED": 0, "RESUME": "true", "OUTPUT": tmp_path / "out" / "cnn"}
    work = tmp_path / "out" / "cnn.training"
    workers = start_workers(tmp_path, job, "first")
    deadline = time.monotonic() + 600
    while not (work / "state.json").exists() or json.loads((work / "state.json").read_text())["epoch"] < 1:
        assert time.monotonic() < deadline and workers[0][0].poll() is None, "epoch 1 never ended"
        time.sleep(0.05)
    workers[1][0].send_signal(signal.SIGKILL)  # the other worker, after epoch 1's checkpoint
    (chief_status, _, chief_log), (other_status, _, _) = finished(workers, timeout=300)
    assert other_status == -signal.SIGKILL
    assert chief_status == 1 and "error: DEVICE: a worker of the cluster stopped" in chief_log, chief_log[-3000:]
    assert "RESUME" in chief_log
    done = json.loads((work / "state.json").read_text())["epoch"]
    assert 1 <= done < 4  # interrupted: the chief could not train on alone
    assert not (tmp_path / "out" / "cnn").exists()
    assert len(task_folders(workers)) == 1  # what the killed worker left: the next run replaces it

    again = start_workers(tmp_path, job, "again")
    (chief_status, chief, chief_log), (other_status, other, other_log) = finished(again)
    assert chief_status == 0 and other_status == 0, chief_log[-3000:] + other_log[-3000:]
    assert f"{done} epoch(s) already done" in chief_log and f"{done} epoch(s) already done" in other_log
    assert "validation set's last batch (1 of 193 patches) is smaller than the 2 replicas" in chief_log
    assert chief["EPOCHS_RUN"] == 4 and other["EPOCHS_RUN"] == 4
    assert [row["epoch"] for row in history(tmp_path / "out" / "cnn")] == [1, 2, 3, 4]
    assert not work.exists() and task_folders(again) == []


# ---- the cluster, checked before TensorFlow -----------------------------------------------------------


NO_TENSORFLOW_RUN = textwrap.dedent("""
    import json, sys
    from patchflow.plugin import protocol
    from patchflow.plugin.engine.errors import PatchFlowError
    from patchflow.plugin.engine.reporting import Reporter
    from patchflow.plugin.engine.worker import run_job
    try:
        run_job(protocol.Job("train_model", json.loads(sys.argv[1]), "mw"), Reporter())
    except PatchFlowError as exc:
        print(json.dumps({"parameter": exc.parameter, "message": exc.message,
                          "tensorflow": "tensorflow" in sys.modules}))
""")


@pytest.mark.parametrize("tf_config, expected", [
    (None, "neither TF_CONFIG nor a SLURM job step is set"),
    ('{"cluster": {"worker": ["127.0.0.1:1"]}, "task": ', "is not valid JSON"),
    ('{"cluster": {"worker": ["127.0.0.1:1"]}}', "needs a 'cluster' object and a 'task' object"),
    ('{"cluster": {"worker": ["127.0.0.1"]}, "task": {"type": "worker", "index": 0}}', "\"host:port\""),
    ('{"cluster": {"worker": ["a:1", "b:2"]}, "task": {"type": "worker", "index": 2}}', "not between 0 and 1"),
    ('{"cluster": {"worker": ["a:1"], "ps": ["b:2"]}, "task": {"type": "worker", "index": 0}}', "names ps tasks"),
])
def test_no_cluster_or_a_malformed_tf_config_is_refused_before_tensorflow(nc_patches, tmp_path, tf_config, expected):
    env = dict(os.environ, PYTHONPATH=str(ROOT / ".cache" / "plugins"))
    for name in ("TF_CONFIG", "SLURM_JOB_ID", *multiworker.SLURM_STEP):
        env.pop(name, None)
    if tf_config is not None:
        env["TF_CONFIG"] = tf_config
    job = {"TRAIN": str(nc_patches / "train.json"), "EPOCHS": 1, "DEVICE": "multi-worker",
           "OUTPUT": str(tmp_path / "out" / "cnn")}
    done = subprocess.run([sys.executable, "-c", NO_TENSORFLOW_RUN, json.dumps(job)], capture_output=True, text=True,
                          env=env, cwd=str(tmp_path), timeout=120)
    assert done.returncode == 0, done.stderr
    error = json.loads(done.stdout.strip().splitlines()[-1])
    print(error["message"])
    assert error["parameter"] == "DEVICE" and expected in error["message"]
    assert "TF_CONFIG" in error["message"] and "srun" in error["message"]  # says how to set a cluster up
    assert error["tensorflow"] is False
    assert os.listdir(tmp_path) == []  # nothing written


def test_slurm_step_gives_the_cluster_and_the_resolver_its_addresses(monkeypatch):
    step = {"SLURM_JOB_ID": "77", "SLURM_PROCID": "2", "SLURM_STEP_NUM_TASKS": "4",
            "SLURM_STEP_NODELIST": "node[1-2]", "SLURM_STEP_TASKS_PER_NODE": "2(x2)", "CUDA_VISIBLE_DEVICES": ""}
    for name, value in step.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("TF_CONFIG", raising=False)
    cluster = multiworker.cluster_of("multi-worker")
    assert cluster == multiworker.Cluster("SLURM", 4, 2) and not cluster.chief
    resolver = multiworker.slurm_resolver(os.environ)
    spec = resolver.cluster_spec().as_dict()
    assert spec == {"worker": ["node1:8888", "node1:8889", "node2:8888", "node2:8889"]}
    assert (resolver.task_type, resolver.task_id) == ("worker", 2)
    assert os.environ["CUDA_VISIBLE_DEVICES"] == ""  # no GPU here: left as it was
    assert multiworker.cluster_of("cpu") is None  # other devices ignore the cluster


def test_a_slurm_job_without_a_step_and_repeats_are_refused(nc_patches, tmp_path, monkeypatch):
    with pytest.raises(PatchFlowError, match="srun") as error:
        multiworker.cluster_of("multi-worker", {"SLURM_JOB_ID": "77"})
    assert error.value.parameter == "DEVICE"
    monkeypatch.setenv("TF_CONFIG", json.dumps({"cluster": {"chief": ["a:1"], "worker": ["b:1"]},
                                                "task": {"type": "worker", "index": 0}}))
    assert multiworker.cluster_of("multi-worker") == multiworker.Cluster("TF_CONFIG", 2, 1)  # a chief job is task 0
    assert not multiworker.writes_outputs("train_model", {"DEVICE": "multi-worker"})  # so this one locks nothing
    assert multiworker.writes_outputs("train_model", {"DEVICE": "cpu"})
    with pytest.raises(PatchFlowError) as error:
        run("train_model", TRAIN=str(nc_patches / "train.json"), EPOCHS=1, REPEATS=2, DEVICE="multi-worker",
            OUTPUT=str(tmp_path / "m"))
    assert error.value.parameter == "REPEATS" and os.listdir(tmp_path) == []


def test_a_process_that_already_ran_tensorflow_cannot_join_a_cluster(nc_patches, tmp_path, monkeypatch):
    """A warm worker that ran other jobs: TensorFlow configures collectives at start only."""
    import tensorflow as tf

    assert float(tf.reduce_sum(tf.ones(2))) == 2.0  # TensorFlow has run in this process
    monkeypatch.setenv("TF_CONFIG", json.dumps({"cluster": {"worker": [f"127.0.0.1:{free_ports(1)[0]}"]},
                                                "task": {"type": "worker", "index": 0}}))
    with pytest.raises(PatchFlowError, match="needs a process of its own") as error:
        run("train_model", TRAIN=str(nc_patches / "train.json"), EPOCHS=1, DEVICE="multi-worker",
            OUTPUT=str(tmp_path / "m"))
    assert error.value.parameter == "DEVICE" and os.listdir(tmp_path) == []
