"""The Arkouda step as an Argo Workflow, made with hera; writes workflow.yaml beside it.

    python examples/argo/workflow.py        # regenerate workflow.yaml after a change

The step script and a small sample input travel as raw artifacts (no artifact repository
needed); the result comes back as an output parameter. Argo retries the step only when
`arkouda-k8s run` exits 3 (the server did not answer in time).
"""

from __future__ import annotations

from pathlib import Path

from hera.workflows import Container, Parameter, RawArtifact, RetryStrategy, Workflow
from hera.workflows.models import ValueFrom

HERE = Path(__file__).resolve().parent
STEP = (HERE.parent / "step.py").read_text()
DEPLOYMENT, NAMESPACE = "arkouda", "arkouda"


def build() -> Workflow:
    with Workflow(
        generate_name="arkouda-summary-",
        entrypoint="summary",
        namespace=NAMESPACE,
        service_account_name=f"{DEPLOYMENT}-runner",
    ) as workflow:
        Container(
            name="summary",
            image="arkouda-k8s-runner:0.1.0",
            command=["arkouda-k8s", "run"],
            args=[
                "--in-cluster",
                DEPLOYMENT,
                "--connect-timeout",
                "300",
                "--input",
                "/work/in",
                "--output",
                "/work/out",
                "/work/step.py",
            ],  # fmt: skip
            inputs=[
                RawArtifact(name="step", path="/work/step.py", data=STEP),
                RawArtifact(name="numbers", path="/work/in/numbers.txt", data="3\n1\n4\n1\n5\n"),
            ],
            outputs=[
                Parameter(name="summary", value_from=ValueFrom(path="/work/out/numbers.txt.json"))
            ],
            retry_strategy=RetryStrategy(limit=3, expression="asInt(lastRetry.exitCode) == 3"),
        )
    return workflow


if __name__ == "__main__":
    (HERE / "workflow.yaml").write_text(build().to_yaml())
