"""The batch templates run the real ``seqboltz synthesize``: every index of the Kubernetes
Indexed Job and every task of the Slurm array, with their own arguments (only the sizes made
small and the paths mapped here), together write exactly the files of a one-machine run."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from deploy_helpers import DEPLOY, REPO, job_objects

from seqboltz.cli import main

MODELS = REPO / "serving" / "models"  # holds motion_crbm.onnx, the model the templates name
SMALL = ["--count=12", "--frames=8", "--chunk=2", "--workers=1"]  # last flag wins


def _files(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.glob("seq_*"))}


def _one_machine(tmp_path: Path, model: Path, fmt: str, seed: str) -> dict[str, bytes]:
    out = tmp_path / "one-machine"
    args = ["synthesize", f"--model={model}", f"--format={fmt}", f"--seed={seed}", *SMALL]
    assert main([*args, f"--out={out}", "--no-progress"]) == 0
    return _files(out)


def _option(args: list[str], name: str) -> str:
    (value,) = [a.split("=", 1)[1] for a in args if a.startswith(f"{name}=")]
    return value


def test_indexed_job_shards_equal_one_run(tmp_path: Path) -> None:
    (job,) = job_objects()
    spec, pod = job["spec"], job["spec"]["template"]["spec"]
    assert spec["completionMode"] == "Indexed"
    (container,) = pod["containers"]
    assert container["command"] == ["seqboltz", "synthesize"]
    volumes = {v["name"]: v for v in pod["volumes"]}
    local = {"seqboltz-models": MODELS, "seqboltz-synthesis": tmp_path / "volume"}
    mounts = {
        m["mountPath"]: local[volumes[m["name"]]["persistentVolumeClaim"]["claimName"]]
        for m in container["volumeMounts"]
        if "persistentVolumeClaim" in volumes[m["name"]]
    }
    shards = set()
    for index in range(spec["completions"]):
        args = []
        for arg in container["args"]:  # what the kubelet does with $(VAR) of the pod's env
            arg = arg.replace("$(JOB_COMPLETION_INDEX)", str(index))
            assert "$(" not in arg, arg
            for mount, folder in mounts.items():
                arg = arg.replace(f"={mount}/", f"={folder}/")
            args.append(arg)
        shards.add(_option(args, "--shard"))
        assert main(["synthesize", *args, *SMALL]) == 0
    n = spec["completions"]
    assert shards == {f"{k}/{n}" for k in range(n)}
    out = Path(_option(args, "--out"))
    assert len(list(out.glob("manifest.shard-*.json"))) == n
    model = Path(_option(args, "--model"))
    fmt, seed = _option(args, "--format"), _option(args, "--seed")
    reference = _one_machine(tmp_path, model, fmt, seed)
    assert len(reference) == 12 and _files(out) == reference


@pytest.mark.skipif(shutil.which("bash") is None, reason="needs bash")
def test_slurm_array_tasks_equal_one_run(tmp_path: Path) -> None:
    script = DEPLOY / "slurm" / "synthesize-array.sbatch"
    text = script.read_text()
    first, last = map(int, re.search(r"^#SBATCH --array=(\d+)-(\d+)$", text, re.M).groups())  # type: ignore[union-attr]
    cpus = re.search(r"^#SBATCH --cpus-per-task=(\d+)$", text, re.M)[1]  # type: ignore[index]
    # bash runs the script as Slurm would; a stand-in `seqboltz` records the expanded argv
    shim = tmp_path / "bin" / "seqboltz"
    shim.parent.mkdir()
    shim.write_text('#!/bin/sh\nprintf "%s\\0" "$@" > "$ARGV_FILE"\n')
    shim.chmod(0o755)
    out = tmp_path / "shared"
    for task in range(first, last + 1):
        argv_file = tmp_path / f"argv-{task}"
        env = {
            "PATH": f"{shim.parent}{os.pathsep}{os.environ['PATH']}",
            "ARGV_FILE": str(argv_file),
            "SLURM_ARRAY_TASK_ID": str(task),
            "SLURM_ARRAY_TASK_COUNT": str(last - first + 1),
            "SLURM_CPUS_PER_TASK": cpus,
            "MODEL": str(MODELS / "motion_crbm.onnx"),
            "OUT": str(out),
            "COUNT": "12",
            "FRAMES": "8",
        }
        subprocess.run(["bash", str(script)], env=env, check=True, timeout=60)
        argv = argv_file.read_bytes().decode().split("\0")[:-1]
        assert argv[0] == "synthesize"
        assert argv[argv.index("--shard") + 1] == f"{task}/{last - first + 1}"
        assert main([*argv, "--chunk=2", "--workers=1"]) == 0
    fmt, seed = argv[argv.index("--format") + 1], argv[argv.index("--seed") + 1]
    reference = _one_machine(tmp_path, MODELS / "motion_crbm.onnx", fmt, seed)
    assert len(reference) == 12 and _files(out) == reference
