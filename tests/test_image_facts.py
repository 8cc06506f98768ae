"""The image facts file: its documented format, and the facts everything else relies on."""

from __future__ import annotations

import pytest
import yaml

from arkouda_k8s.sandbox import image_facts

# What the launch scripts, the manifests and the sandbox's image models read.
NEEDED = {
    "udp-server": {
        "user", "uid", "home", "sudo", "workdir", "entrypoint", "path", "arkouda_dir",
        "arkouda_dir_contents", "launcher", "sshd", "python3", "ssh_keys_dir", "dot_ssh_at_start",
    },
    "smp-server": {
        "user", "uid", "home", "sudo", "workdir", "entrypoint", "path", "arkouda_dir",
        "arkouda_dir_contents", "launcher", "python3",
    },
    "exporter": {"user", "uid", "workdir", "entrypoint", "env_read", "scrape_port"},
}  # fmt: skip


def test_every_fact_has_a_value_and_a_source_in_a_named_repository():
    data = image_facts.load()
    assert data["sources"]["contrib"]["commit"].startswith("d3b011e")
    assert data["sources"]["arkouda"]["tag"] == "v2023.05.05"
    for image, needed in NEEDED.items():
        assert needed <= set(image_facts.image(image)), image


def test_a_fact_without_a_source_is_refused(tmp_path, monkeypatch):
    data = yaml.safe_load(image_facts.FACTS_FILE.read_text())
    data["images"]["udp-server"]["uid"] = {"value": 1000}
    bad = tmp_path / "image_facts.yaml"
    bad.write_text(yaml.safe_dump(data))
    monkeypatch.setattr(image_facts, "FACTS_FILE", bad)
    image_facts.load.cache_clear()
    try:
        with pytest.raises(image_facts.FactsError, match="images.udp-server.uid"):
            image_facts.load()
    finally:
        image_facts.load.cache_clear()


def test_the_facts_the_issue_is_about():
    udp = image_facts.image("udp-server")
    assert "/opt/arkouda/arkouda_server_real" in udp["arkouda_dir_contents"]
    assert "/opt/arkouda" not in udp["path"]
    assert (udp["user"], udp["uid"], udp["home"]) == ("ubuntu", 1000, "/home/ubuntu")
    assert image_facts.image("exporter")["env_read"]["METRICS_SCRAPE_PORT"] == "5080"
    server = image_facts.server()
    assert server["token_file"] == ".arkouda/tokens.txt"
    assert server["registration_failure"] == "exit"
