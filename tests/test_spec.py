"""ClusterSpec: validation, derived values, dict and Helm values round trips."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path

import pytest
import yaml

from arkouda_k8s.errors import SpecError
from arkouda_k8s.spec import ClusterSpec, Persistence, helm_chart_of, parse_quantity

# The seed tutorial's values files for the two arkouda-contrib charts.
SEED = Path(__file__).resolve().parent / "fixtures" / "seed-values"


def _seed(chart: str) -> dict:
    return yaml.safe_load((SEED / f"arkouda-udp-{chart}.yaml").read_text())


# -- quantities ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("1", Decimal(1)),
        ("500m", Decimal("0.5")),
        ("1000m", Decimal(1)),
        ("2Gi", Decimal(2 * 2**30)),
        ("1024Mi", Decimal(2**30)),
        ("1.5G", Decimal("1.5e9")),
        ("1e3", Decimal(1000)),
        ("128974848", Decimal(128974848)),
        ("64Ki", Decimal(65536)),
        (".5", Decimal("0.5")),
        (2, Decimal(2)),
    ],
)
def test_parse_quantity_reads_kubernetes_spellings(text, value):
    assert parse_quantity(text) == value


@pytest.mark.parametrize("text", ["lots", "", "1 Gi", "Gi", "1GB", "1.2.3", "1x", None, True])
def test_parse_quantity_rejects_what_kubernetes_rejects(text):
    with pytest.raises(ValueError):
        parse_quantity(text)


# -- defaults and derived values -----------------------------------------------------------


def test_defaults_follow_the_design():
    spec = ClusterSpec()
    assert (spec.name, spec.mode, spec.locales) == ("arkouda", "udp", 2)
    assert spec.release == "v2023.05.05"
    assert spec.server_image == "bearsrus/arkouda-udp-server:v2023.05.05"
    assert spec.authenticate is True
    assert spec.metrics is False
    assert spec.persistence is None
    assert spec.namespace is None


@pytest.mark.parametrize("memory", ["64Mi", "1024Mi", "2Gi", "3G", "100Gi"])
def test_derived_mem_max_sits_below_the_limit_with_headroom(memory):
    spec = ClusterSpec(memory=memory)
    limit = spec.memory_bytes
    assert 0.5 * limit < spec.effective_mem_max < limit


def test_explicit_mem_max_is_kept_and_quantities_are_accepted():
    assert ClusterSpec(memory="4Gi", mem_max=3 * 2**30).effective_mem_max == 3 * 2**30
    assert ClusterSpec(memory="4Gi", mem_max="3Gi").mem_max == 3 * 2**30


def test_threads_default_to_whole_cpus():
    assert ClusterSpec(cpu="500m").effective_threads == 1
    assert ClusterSpec(cpu="4").effective_threads == 4
    assert ClusterSpec(cpu="4", threads=2).effective_threads == 2


def test_locale_pods_follow_mode():
    assert ClusterSpec(locales=4).locale_pods == 3
    assert ClusterSpec(locales=1).locale_pods == 0
    assert ClusterSpec(mode="smp", locales=4).locale_pods == 0
    assert ClusterSpec(mode="smp").server_image.startswith("bearsrus/arkouda-smp-server:")


@pytest.mark.parametrize("given", ["LogLevel.DEBUG", "debug", "DEBUG", " Debug "])
def test_log_level_accepts_the_charts_spelling(given):
    assert ClusterSpec(log_level=given).log_level == "DEBUG"


def test_replace_validates_again():
    spec = ClusterSpec(memory="4Gi", mem_max="3Gi")
    assert spec.replace(locales=8).locales == 8
    with pytest.raises(SpecError) as err:
        spec.replace(memory="2Gi")  # the explicit memMax no longer fits
    assert err.value.field == "mem_max"


def test_longest_name_fits_every_derived_object_name():
    name = "a" * 47
    ClusterSpec(name=name)
    assert len(f"{name}-locale-headless") == 63
    with pytest.raises(SpecError):
        ClusterSpec(name=name + "a")


def test_dict_round_trip_and_json():
    spec = ClusterSpec(
        name="demo",
        namespace="team",
        locales=4,
        persistence=Persistence("/mnt/arkouda", "/data"),
        labels={"team": "x"},
        annotations={"note": "hi"},
        node_selector={"disk": "ssd"},
        tolerations=[{"key": "gpu", "operator": "Exists", "effect": "NoSchedule"}],
        image_pull_secrets=["registry"],
        service_account="runner",
        ttl_seconds=3600,
    )
    data = json.loads(json.dumps(spec.to_dict()))
    again = ClusterSpec.from_dict(data)
    assert again == spec
    assert hash(again) == hash(spec)
    assert again.persistence == Persistence("/mnt/arkouda", "/data")


def test_from_dict_names_an_unknown_setting():
    with pytest.raises(SpecError) as err:
        ClusterSpec.from_dict({"locale": 3})
    assert err.value.field == "locale"
    assert "locales" in err.value.allowed


def test_with_namespace():
    assert ClusterSpec().with_namespace("team").namespace == "team"


# -- bad inputs: each raises a SpecError naming its field ---------------------------------

BAD = [
    ({"name": "Arkouda"}, "name", "RFC 1123"),
    ({"name": "my_cluster"}, "name", "RFC 1123"),
    ({"name": "-arkouda"}, "name", "RFC 1123"),
    ({"name": "arkouda-"}, "name", "RFC 1123"),
    ({"name": "1arkouda"}, "name", "starting with a letter"),
    ({"name": ""}, "name", "RFC 1123"),
    ({"name": "a" * 48}, "name", "at most 47"),
    ({"namespace": "Team"}, "namespace", "RFC 1123"),
    ({"namespace": "a.b"}, "namespace", "RFC 1123"),
    ({"mode": "mpi"}, "mode", "udp"),
    ({"locales": 0}, "locales", "from 1"),
    ({"locales": -3}, "locales", "from 1"),
    ({"locales": 2.5}, "locales", "integer"),
    ({"locales": "4"}, "locales", "integer"),
    ({"locales": True}, "locales", "integer"),
    ({"locales": 5000}, "locales", "to 1024"),
    ({"threads": 0}, "threads", "from 1"),
    ({"cpu": "-1"}, "cpu", "positive"),
    ({"cpu": "0"}, "cpu", "positive"),
    ({"cpu": "two"}, "cpu", "quantity"),
    ({"memory": "lots"}, "memory", "quantity"),
    ({"memory": "-2Gi"}, "memory", "quantity"),
    ({"memory": "1Mi"}, "memory", "at least 64.0 MiB"),
    ({"memory": "2 Gi"}, "memory", "quantity"),
    ({"memory": "2Gi", "mem_max": 3 * 2**30}, "mem_max", "below the pod memory limit"),
    ({"memory": "2Gi", "mem_max": "2Gi"}, "mem_max", "below the pod memory limit"),
    ({"mem_max": 0}, "mem_max", "positive"),
    ({"mem_max": "much"}, "mem_max", "positive"),
    ({"release": "v2023 05 05"}, "release", "no spaces"),
    ({"release": ""}, "release", "image tag"),
    ({"release": "v1:latest"}, "release", "image tag"),
    ({"image_repository": "Bears R Us"}, "image_repository", "image repository"),
    ({"image_repository": "bearsrus/"}, "image_repository", "image repository"),
    ({"pull_policy": "always"}, "pull_policy", "IfNotPresent"),
    ({"authenticate": "yes"}, "authenticate", "true or false"),
    ({"metrics": 1}, "metrics", "true or false"),
    ({"log_level": "LOUD"}, "log_level", "DEBUG"),
    ({"persistence": {"host_path": "mnt/arkouda"}}, "persistence.host_path", "absolute"),
    (
        {"persistence": {"host_path": "/mnt", "mount_path": "/opt/arkouda"}},
        "persistence.mount_path",
        "not used",
    ),
    ({"labels": {"bad key!": "x"}}, "labels", "label/annotation key"),
    ({"labels": {"team": "has space"}}, "labels[team]", "label value"),
    ({"labels": {"app.kubernetes.io/instance": "x"}}, "labels", "sets itself"),
    ({"annotations": {"n": 3}}, "annotations[n]", "a string"),
    ({"node_selector": {"disk": "x" * 64}}, "node_selector[disk]", "at most 63"),
    ({"tolerations": [{"key": "gpu", "operator": "Maybe"}]}, "tolerations[0].operator", "Exists"),
    ({"tolerations": [{"key": "gpu", "effect": "Never"}]}, "tolerations[0].effect", "NoSchedule"),
    (
        {"tolerations": [{"key": "k", "colour": "red"}]},
        "tolerations[0].colour",
        "toleration fields",
    ),
    ({"tolerations": {"key": "k"}}, "tolerations", "a list"),
    ({"image_pull_secrets": ["My Registry"]}, "image_pull_secrets", "DNS subdomain"),
    ({"service_account": "Runner"}, "service_account", "DNS subdomain"),
    ({"server_port": 0}, "server_port", "from 1024 to 65535"),
    ({"server_port": 70000}, "server_port", "from 1024 to 65535"),
    ({"server_port": 22}, "server_port", "from 1024"),
    # The server runs as the image's user (uid 1000), which cannot bind below 1024.
    ({"server_port": 80}, "server_port", "does not run as root"),
    ({"server_port": 1023}, "server_port", "does not run as root"),
    # The metrics daemon's and the exporter's ports (image_facts.yaml).
    ({"server_port": 5556}, "server_port", "other than 5556 (metrics)"),
    ({"server_port": 5080}, "server_port", "5080 (metrics exporter)"),
    ({"registration": "self"}, "registration", "client (arkouda-k8s creates the Service"),
    ({"registration": None}, "registration", "server (the charts' flow"),
    ({"mode": "smp", "registration": "server"}, "registration", "client with mode smp"),
    ({"ttl_seconds": 5}, "ttl_seconds", ">= 60"),
]


@pytest.mark.parametrize(("kwargs", "field", "allowed"), BAD, ids=[str(b[0])[:60] for b in BAD])
def test_bad_input_raises_a_spec_error_naming_field_value_and_rule(kwargs, field, allowed):
    with pytest.raises(SpecError) as err:
        ClusterSpec(**kwargs)
    exc = err.value
    assert exc.field == field
    assert allowed in exc.allowed
    line = exc.one_line()
    assert "\n" not in line
    assert line.startswith(f"{field}: invalid value ")
    assert repr(exc.value) in line


def test_there_are_at_least_25_bad_inputs():
    assert len(BAD) >= 25


# -- Helm values -----------------------------------------------------------------------------


def test_chart_detection_by_keys():
    assert helm_chart_of(_seed("server")) == "server"
    assert helm_chart_of(_seed("locale")) == "locale"
    exported = ClusterSpec(namespace="x").to_helm_values()
    assert helm_chart_of(exported["server"]) == "server"
    assert helm_chart_of(exported["locale"]) == "locale"


def test_seed_values_load_with_warnings_for_their_traps():
    spec, warnings = ClusterSpec.from_helm_values(server=_seed("server"), locale=_seed("locale"))
    text = "\n".join(warnings)
    # The server's numLocales is the total; its value wins over the locale chart's pods.
    assert spec.locales == 1
    assert "4 locale pod(s)" in text
    assert spec.namespace == "arkouda"
    assert spec.name == "arkouda"  # from the arkouda-tls / arkouda-ssh secret names
    assert (spec.cpu, spec.memory) == ("1000m", "1024Mi")
    assert spec.threads == 5 and "threadsPerLocale differs" in text
    assert spec.authenticate is False
    assert spec.log_level == "DEBUG"
    assert spec.persistence == Persistence("/mnt/arkouda", "/opt/locale")
    # memMax 2000 bytes is kept as given, with a warning.
    assert spec.mem_max == 2000
    assert any("memMax 2000 bytes is absurdly small" in w for w in warnings)
    # The minikube address is unreachable from a pod.
    assert any("https://192.168.49.2:8443" in w and "kubernetes.default.svc" in w for w in warnings)
    assert any("arkoudaserver" in w for w in warnings)


def _leaves(d: dict, prefix: str = "") -> dict:
    out = {}
    for k, v in d.items():
        if isinstance(v, dict):
            out.update(_leaves(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out


def _same_meaning(a, b) -> bool:
    try:
        return parse_quantity(a) == parse_quantity(b)
    except ValueError:
        return a == b


# Seed settings that arkouda-k8s deliberately changes on export, each announced by a
# warning on import (the upstream traps), and what the export holds instead.
FIXED_ON_EXPORT = {
    "server": {
        "external.k8sHost": "https://kubernetes.default.svc",
        "external.service.name": "arkouda-arkouda",
    },
    # The seed's locale file disagrees with its server file (threads, persistence, the
    # locale count); the server's values win for every pod, each announced by a warning.
    "locale": {
        "server.threadsPerLocale": 5,
        "external.persistence.enabled": True,
        "external.persistence.path": "/opt/locale",
        "server.numLocales": 0,
    },
}


@pytest.mark.parametrize("chart", ["server", "locale"])
def test_seed_values_export_back_equal_in_meaning(chart):
    seed = {"server": _seed("server"), "locale": _seed("locale")}
    spec, _ = ClusterSpec.from_helm_values(**seed)
    exported = _leaves(spec.to_helm_values()[chart])
    for key, value in _leaves(seed[chart]).items():
        if value is None:
            continue  # an unset chart default
        if key in FIXED_ON_EXPORT[chart]:
            assert exported[key] == FIXED_ON_EXPORT[chart][key], key
            continue
        assert key in exported, key
        assert _same_meaning(exported[key], value), (key, exported[key], value)


@pytest.mark.parametrize("chart", ["server", "locale"])
def test_each_seed_file_alone_round_trips(chart):
    seed = _seed(chart)
    spec, _ = ClusterSpec.from_helm_values(**{chart: seed})
    if chart == "locale":
        assert spec.locales == 5  # 4 locale pods + the server
    again, _ = ClusterSpec.from_helm_values(**{chart: spec.to_helm_values()[chart]})
    assert again.locales == spec.locales
    assert again.effective_threads == spec.effective_threads
    assert again.memory_bytes == spec.memory_bytes


def test_export_then_import_gives_the_same_spec_without_warnings():
    spec = ClusterSpec(
        name="demo",
        namespace="team",
        locales=6,
        threads=3,
        cpu="3",
        memory="8Gi",
        mem_max=6 * 2**30,
        release="v2024.02.02",
        image_repository="registry.local:5000/arkouda",
        pull_policy="Always",
        authenticate=False,
        metrics=True,
        log_level="WARN",
        persistence=Persistence("/mnt/data", "/arkouda-files"),
        server_port=6000,
    )
    values = spec.to_helm_values()
    assert values["server"]["server"]["numLocales"] == 6
    assert values["locale"]["server"]["numLocales"] == 5
    again, warnings = ClusterSpec.from_helm_values(**values)
    assert warnings == []
    assert again == spec


def test_unknown_keys_and_fixups_are_warned_about():
    server = _seed("server")
    server["server"]["memTrack"] = False
    server["server"]["service"]["type"] = "NodePort"
    server["extra"] = {"thing": 1}
    spec, warnings = ClusterSpec.from_helm_values(server=server)
    text = "\n".join(warnings)
    assert "extra.thing is not a setting" in text
    assert "memTrack false is ignored" in text
    assert "NodePort is not used" in text


def test_helm_values_overrides_win():
    spec, _ = ClusterSpec.from_helm_values(server=_seed("server"), locales=3, mem_max=None)
    assert spec.locales == 3
    assert spec.mem_max is None


def test_bad_values_raise_spec_errors_naming_the_setting():
    server = _seed("server")
    server["server"]["memMax"] = 4 * 2**30
    with pytest.raises(SpecError) as err:
        ClusterSpec.from_helm_values(server=server)
    assert err.value.field == "mem_max"
    server = _seed("server")
    server["server"]["numLocales"] = 0
    with pytest.raises(SpecError) as err:
        ClusterSpec.from_helm_values(server=server)
    assert err.value.field == "locales"


def test_enabled_persistence_without_host_path_is_turned_off_with_a_warning():
    locale = _seed("locale")
    locale["external"]["persistence"] = {"enabled": True, "path": "/data", "hostPath": None}
    spec, warnings = ClusterSpec.from_helm_values(locale=locale)
    assert spec.persistence is None
    assert any("without external.persistence.hostPath" in w for w in warnings)


def test_a_values_file_whose_persistence_paths_climb_out_is_refused():
    # The reported attack: a chart values file whose persistence path climbs out of the
    # pod's filesystem (the sandbox kubelet deleted a host directory with it).
    for key in ("path", "hostPath"):
        locale = _seed("locale")
        locale["external"]["persistence"] = {
            "enabled": True,
            "path": "/arkouda-files",
            "hostPath": "/mnt/arkouda",
        }
        locale["external"]["persistence"][key] = "/../../../../tmp/x"
        with pytest.raises(SpecError) as err:
            ClusterSpec.from_helm_values(locale=locale)
        assert err.value.field == {"path": "persistence.mount_path"}.get(
            key, "persistence.host_path"
        )
        assert "without '..'" in str(err.value)


def test_smp_has_no_helm_values():
    with pytest.raises(SpecError) as err:
        ClusterSpec(mode="smp").to_helm_values()
    assert err.value.field == "mode"


def test_registration_defaults_to_the_mode_that_needs_namespace_permissions_only():
    assert ClusterSpec().registration == "client"
    spec = ClusterSpec(registration="server")
    assert ClusterSpec.from_dict(spec.to_dict()) == spec
    assert ClusterSpec(server_port=1024).server_port == 1024


def test_ports_the_image_uses_are_the_ones_the_spec_reserves():
    from arkouda_k8s.sandbox import image_facts

    server = image_facts.server()
    exporter = image_facts.image("exporter")
    for port in (server["metrics_port"], exporter["scrape_port"]):
        with pytest.raises(SpecError):
            ClusterSpec(server_port=port, metrics=True)
