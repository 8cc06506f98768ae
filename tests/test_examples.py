"""The runner image and the pipeline examples, checked with the tools that own each format:
the Dockerfile with `dockerfile` (Docker's own parser), the Pachyderm spec with
`pachyderm-sdk`'s request type, the Argo Workflow with `hera`'s models, the Job with the
official schema; every command line they give is parsed by the CLI's own parser, and the
shared step script computes the right answer through the runner."""

from __future__ import annotations

import copy
import importlib.util
import json
import tomllib
from pathlib import Path
from typing import Any

import dockerfile
import kubernetes_validate
import pytest
import yaml

from arkouda_k8s import manifests
from arkouda_k8s.cli import build_parser, main
from arkouda_k8s.errors import ServerUnreachable
from arkouda_k8s.spec import ClusterSpec

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"
IMAGE = "arkouda-k8s-runner:0.1.0"


def _final_stage(path: Path) -> list[Any]:
    commands = dockerfile.parse_file(str(path))
    last_from = max(i for i, c in enumerate(commands) if c.cmd == "FROM")
    return list(commands[last_from:])


def _one(stage: list[Any], cmd: str) -> Any:
    found = [c for c in stage if c.cmd == cmd]
    assert len(found) == 1, f"{cmd}: {found}"
    return found[0]


def _entrypoint() -> list[str]:
    return list(_one(_final_stage(ROOT / "images" / "runner" / "Dockerfile"), "ENTRYPOINT").value)


def _run_args(command: list[str]) -> Any:
    """The runner's parsed options for a container command, through the CLI's parser."""
    assert command[: len(_entrypoint())] == _entrypoint(), command
    args = build_parser().parse_args(command[1:])
    assert args.command == "run"
    return args


# -- images/runner/Dockerfile --------------------------------------------------------------


def test_dockerfile_entrypoint_is_the_cli_run_command(capsys):
    path = ROOT / "images" / "runner" / "Dockerfile"
    stage = _final_stage(path)
    entry = _one(stage, "ENTRYPOINT")
    assert entry.json, "exec form: signals reach the runner, no shell in between"
    program, *sub = entry.value
    # The program is the project's console script, and it lands on the image's PATH.
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    assert scripts[program] == "arkouda_k8s.cli:main"
    env = dict(zip(_one(stage, "ENV").value[::2], _one(stage, "ENV").value[1::2], strict=True))
    venv_bin = env["PATH"].split(":")[0]
    commands = dockerfile.parse_file(str(path))
    assert any(
        f"python -m venv {venv_bin.rsplit('/bin', 1)[0]}" in c.value[0]
        for c in commands
        if c.cmd == "RUN"
    )
    # ENTRYPOINT + CMD is a command line the parser accepts: `run --help`.
    cmd = _one(stage, "CMD")
    with pytest.raises(SystemExit) as done:
        build_parser().parse_args([*sub, *cmd.value])
    assert done.value.code == 0
    assert "--in-cluster NAME" in capsys.readouterr().out


def test_dockerfile_slim_python_non_root_client_from_a_build_argument():
    commands = dockerfile.parse_file(str(ROOT / "images" / "runner" / "Dockerfile"))
    stage = _final_stage(ROOT / "images" / "runner" / "Dockerfile")
    assert (
        _one(stage, "FROM").value[0].startswith("python:")
        and "-slim" in _one(stage, "FROM").value[0]
    )
    user = _one(stage, "USER").value[0].split(":")[0]
    assert user.isdigit() and int(user) != 0  # numeric, so runAsNonRoot can be verified
    args = {c.value[0].split("=", 1)[0] for c in commands if c.cmd == "ARG"}
    assert "ARKOUDA_CLIENT" in args
    installs = [c.value[0] for c in commands if c.cmd == "RUN" and "pip install" in c.value[0]]
    assert any('"${ARKOUDA_CLIENT}"' in line for line in installs)
    # The build tools stay in the build stage.
    assert not any("apt-get install" in c.value[0] for c in stage if c.cmd == "RUN")
    copies = [c for c in stage if c.cmd == "COPY"]
    assert copies and all("--from=build" in c.flags for c in copies)
    # What the build copies exists in the repository (the context is the repository root).
    for c in commands:
        if c.cmd == "COPY" and not c.flags:
            for src in c.value[:-1]:
                assert (ROOT / src).exists(), src


# -- examples/job ----------------------------------------------------------------------------


def test_job_example_is_valid_and_matches_the_runner_rbac():
    job = yaml.safe_load((EXAMPLES / "job" / "job.yaml").read_text())
    kubernetes_validate.validate(job, kubernetes_validate.latest_version(), strict=True)
    pod = job["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    assert container["image"] == IMAGE
    args = _run_args(container["command"] + container["args"])
    grant = manifests.runner_rbac(ClusterSpec(name=args.in_cluster, namespace="default"))
    assert pod["serviceAccountName"] == grant[0]["metadata"]["name"]
    assert pod["restartPolicy"] == "Never"
    assert job["spec"]["backoffLimit"] >= 1  # exit 3 is retried by the Job


# -- examples/pachyderm --------------------------------------------------------------------


def _same(original: Any, back: Any, where: str = "") -> list[str]:
    """Differences between a spec and its round trip; protobuf JSON writes int64 as text."""
    if isinstance(original, dict) and isinstance(back, dict):
        out = [f"{where}.{k}: dropped" for k in original if k not in back]
        out += [f"{where}.{k}: added" for k in back if k not in original]
        for k in original.keys() & back.keys():
            out += _same(original[k], back[k], f"{where}.{k}")
        return out
    if isinstance(original, list) and isinstance(back, list) and len(original) == len(back):
        return [
            d
            for i, (a, b) in enumerate(zip(original, back, strict=True))
            for d in _same(a, b, f"{where}[{i}]")
        ]
    if isinstance(original, int) and isinstance(back, str) and back == str(original):
        return []
    return [] if original == back else [f"{where}: {original!r} -> {back!r}"]


def test_pachyderm_spec_round_trips_through_the_sdk_request():
    from pachyderm_sdk.api.pps import CreatePipelineRequest

    spec = json.loads((EXAMPLES / "pachyderm" / "pipeline.json").read_text())
    request = CreatePipelineRequest().from_dict(spec)
    assert _same(spec, request.to_dict()) == []
    # The check is worth something: from_dict silently drops what it does not know.
    typo = {**spec, "transform": {**spec["transform"], "comand": ["x"]}}
    assert _same(typo, CreatePipelineRequest().from_dict(typo).to_dict()) == [
        ".transform.comand: dropped"
    ]
    assert request.transform.image == IMAGE
    args = _run_args(list(request.transform.cmd))
    assert args.in_cluster and args.input == "/pfs/data" and args.output == "/pfs/out"
    assert args.file.startswith("/pfs/scripts/")
    assert {i.pfs.repo for i in request.input.cross} == {"scripts", "data"}
    assert request.datum_tries >= 2  # a datum whose step exits 3 is tried again


# -- examples/argo ----------------------------------------------------------------------------


def _argo_builder() -> Any:
    spec = importlib.util.spec_from_file_location(
        "argo_workflow", EXAMPLES / "argo" / "workflow.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_argo_workflow_is_made_by_hera_and_valid_for_its_models():
    from hera.workflows.models import Workflow as WorkflowModel

    committed = yaml.safe_load((EXAMPLES / "argo" / "workflow.yaml").read_text())
    # The committed YAML is what the hera script makes (regenerate it after a change).
    assert _argo_builder().build().to_dict() == committed

    # hera's models are pydantic v2 models in newer releases and v1 ones in older ones;
    # either way unknown fields are dropped, so a round trip that keeps everything
    # means every field is one Argo knows.
    def round_trip(doc: dict[str, Any]) -> dict[str, Any]:
        if hasattr(WorkflowModel, "model_validate"):
            model = WorkflowModel.model_validate(doc)
            return dict(model.model_dump(by_alias=True, exclude_none=True, mode="json"))
        return dict(json.loads(WorkflowModel.parse_obj(doc).json(by_alias=True, exclude_none=True)))

    assert round_trip(committed) == committed
    typo = copy.deepcopy(committed)
    typo["spec"]["templates"][0]["container"]["comand"] = ["x"]
    assert round_trip(typo) == committed
    (template,) = committed["spec"]["templates"]
    container = template["container"]
    assert container["image"] == IMAGE
    args = _run_args(container["command"] + container["args"])
    assert committed["spec"]["serviceAccountName"] == f"{args.in_cluster}-runner"
    # Argo retries only the runner's "server not reachable in time" exit.
    assert template["retryStrategy"]["expression"] == (
        f"asInt(lastRetry.exitCode) == {ServerUnreachable.exit_code}"
    )
    artifacts = {a["path"]: a["raw"]["data"] for a in template["inputs"]["artifacts"]}
    assert artifacts[args.file] == (EXAMPLES / "step.py").read_text()


# -- the step itself --------------------------------------------------------------------------


def test_the_examples_step_summarises_its_input(tmp_path, capsys):
    pytest.importorskip("arkouda", reason="run scripts/install_arkouda_client.py")
    from arkouda_k8s.sandbox.arkouda_server import StandInProcess

    inp, out = tmp_path / "in", tmp_path / "out"
    inp.mkdir()
    (inp / "numbers.txt").write_text("3\n1\n4\n1\n5\n")
    (inp / "one.txt").write_text("42\n")
    with StandInProcess("--authenticate=false", "--arkoudaVersion=2020.07.07") as srv:
        argv = ["run", "--server", f"127.0.0.1:{srv.port}", "--input", str(inp)]
        assert main([*argv, "--output", str(out), str(EXAMPLES / "step.py")]) == 0
    assert json.loads((out / "numbers.txt.json").read_text()) == {
        "count": 5,
        "sum": 14,
        "min": 1,
        "max": 5,
        "mean": 2.8,
    }
    assert json.loads((out / "one.txt.json").read_text())["sum"] == 42
    assert "wrote nothing" not in capsys.readouterr().err
