"""The execution choice (scale/execution.py) and CLUSTER_CONFIG (scale/clusterconfig.py): "setting" follows
the PatchFlow setting, a bad scheduler address or cluster file is refused naming its parameter, and the batch
job dask-jobqueue would submit carries the file's queue, cores, memory, walltime and GPUs."""

from __future__ import annotations

import json

import pytest

from patchflow.plugin.declarations import OPERATIONS
from patchflow.plugin.engine.errors import PatchFlowError
from patchflow.plugin.engine.params import Params
from patchflow.plugin.engine.scale.clusterconfig import make_cluster, read_config
from patchflow.plugin.engine.scale.execution import ENVIRONMENT, PLUGIN_PARENT, execution_of


def params(**values) -> Params:
    return Params(values, {"CLUSTER_CONFIG": "SLURM/PBS cluster file"}, OPERATIONS["apply_model"])


@pytest.fixture(autouse=True)
def no_setting(monkeypatch):
    for variable in ENVIRONMENT.values():
        monkeypatch.delenv(variable, raising=False)


def test_the_default_is_this_process_and_the_setting_is_followed(monkeypatch, tmp_path):
    assert execution_of(params()).mode == "process" and not execution_of(params()).distributed
    monkeypatch.setenv("PATCHFLOW_EXECUTION", "local")
    monkeypatch.setenv("PATCHFLOW_DASK_WORKERS", "3")
    chosen = execution_of(params(WORKERS=7))  # EXECUTION "setting": the setting's values as a whole
    assert (chosen.mode, chosen.workers) == ("local", 3)
    assert execution_of(params(EXECUTION="local", WORKERS=5)).workers == 5  # a per-run choice wins
    assert execution_of(params(EXECUTION="process")).mode == "process"
    monkeypatch.delenv("PATCHFLOW_DASK_WORKERS")
    assert execution_of(params(WORKERS=7)).workers == 2  # the setting's default, not this run's WORKERS
    monkeypatch.setenv("PATCHFLOW_EXECUTION", "scheduler")
    with pytest.raises(PatchFlowError) as error:  # the setting says scheduler but gives no address
        execution_of(params(SCHEDULER="tcp://run:1"))
    assert error.value.parameter == "SCHEDULER"
    monkeypatch.setenv("PATCHFLOW_DASK_SCHEDULER", "tcp://head:8786")
    assert execution_of(params()).scheduler == "tcp://head:8786"
    monkeypatch.setenv("PATCHFLOW_EXECUTION", "cloud")
    with pytest.raises(PatchFlowError) as error:
        execution_of(params())
    assert error.value.parameter == "EXECUTION" and "cloud" in error.value.message


@pytest.mark.parametrize("address", ["", "host:8786", "http://host:8786", "tcp://", "tcp://a b:1"])
def test_a_bad_scheduler_address_names_scheduler(address):
    with pytest.raises(PatchFlowError) as error:
        execution_of(params(EXECUTION="scheduler", SCHEDULER=address))
    assert error.value.parameter == "SCHEDULER" and "tcp://host:8786" in error.value.message
    assert execution_of(params(EXECUTION="scheduler", SCHEDULER=" tcp://10.0.0.2:8786 ")).scheduler == \
        "tcp://10.0.0.2:8786"


GOOD = {"system": "slurm", "queue": "gpu", "cores": 8, "memory": "32GB", "walltime": "02:30:00", "gpus": 2,
        "jobs": 4, "account": "lab42"}


@pytest.mark.parametrize("change,expected", [
    ({"cores": None}, "missing cores"), ({"system": "lsf"}, "slurm or pbs"), ({"cores": 0}, "'cores'"),
    ({"cores": "8"}, "'cores'"), ({"memory": "lots"}, "'memory'"), ({"walltime": "2h"}, "'walltime'"),
    ({"gpus": -1}, "'gpus'"), ({"jobs": 1.5}, "'jobs'"), ({"queues": "gpu"}, "unknown key(s) queues"),
    ({"prologue": [1]}, "'prologue'"),
])
def test_a_bad_cluster_file_names_cluster_config(tmp_path, change, expected):
    config = {**GOOD, **change}
    config = {key: value for key, value in config.items() if value is not None}
    path = tmp_path / "cluster.json"
    path.write_text(json.dumps(config))
    with pytest.raises(PatchFlowError) as error:
        execution_of(params(EXECUTION="jobqueue", CLUSTER_CONFIG=str(path)))
    assert error.value.parameter == "CLUSTER_CONFIG" and expected in error.value.message, error.value.message
    assert str(path) in error.value.message


@pytest.mark.parametrize("text,name,expected", [
    ("{not json", "c.json", "not valid JSON"), ('{"cores": NaN}', "c.json", "not valid JSON"),
    ("[1, 2]", "c.json", "one object"), ("system: [slurm\n", "c.yaml", "not valid YAML"),
])
def test_an_unreadable_cluster_file_names_cluster_config(tmp_path, text, name, expected):
    (tmp_path / name).write_text(text)
    with pytest.raises(PatchFlowError) as error:
        read_config(str(tmp_path / name))
    assert error.value.parameter == "CLUSTER_CONFIG" and expected in error.value.message
    with pytest.raises(PatchFlowError) as error:
        execution_of(params(EXECUTION="jobqueue", CLUSTER_CONFIG=str(tmp_path / "absent.json")))
    assert error.value.parameter == "CLUSTER_CONFIG" and "does not exist" in error.value.message


def test_the_slurm_job_script_carries_the_file(tmp_path):
    path = tmp_path / "cluster.yaml"
    path.write_text("system: slurm\nqueue: gpu\ncores: 8\nmemory: 32GB\nwalltime: '02:30:00'\ngpus: 2\njobs: 4\n"
                    "account: lab42\nprologue: [module load cuda]\n")
    execution = execution_of(params(EXECUTION="jobqueue", CLUSTER_CONFIG=str(path)))
    assert execution.workers == 4
    cluster = make_cluster(execution.cluster, PLUGIN_PARENT)
    try:
        script = cluster.job_script()
    finally:
        cluster.close()
    for line in ("#SBATCH -p gpu", "#SBATCH --cpus-per-task=8", "#SBATCH --mem=30G", "#SBATCH -t 02:30:00",
                 "#SBATCH --gres=gpu:2", "#SBATCH -A lab42", "module load cuda", f"export PYTHONPATH={PLUGIN_PARENT}"):
        assert line in script, script


def test_the_pbs_job_script_carries_the_file(tmp_path):
    path = tmp_path / "cluster.json"
    path.write_text(json.dumps({**GOOD, "system": "pbs", "queue": "workq", "cores": 4, "memory": "16GB",
                                "walltime": "01:00:00", "gpus": 1}))
    cluster = make_cluster(read_config(str(path)), PLUGIN_PARENT)
    try:
        script = cluster.job_script()
    finally:
        cluster.close()
    for line in ("#PBS -q workq", "#PBS -l select=1:ncpus=4:ngpus=1:mem=16GB", "#PBS -l walltime=01:00:00",
                 "#PBS -A lab42"):
        assert line in script, script
