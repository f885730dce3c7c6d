"""The image and the schedulers (Dockerfile, deploy/), tested without a Docker engine or a cluster.

What runs here: hadolint on the Dockerfile; the Kubernetes manifests against their OpenAPI schemas
(kubernetes-validate, strict, offline); the systemd units with ``systemd-analyze verify``; the example
config through ``restorecheck run --check``; the image's ENTRYPOINT and CMD parsed by restorecheck's own
CLI; the Dockerfile's Debian packages looked up in this machine's apt lists (when it is Debian 12, as the
image is); and the build stage's install replayed as a non-root user in a scratch directory, with the
entrypoint then run from it (``slow``). What does not: ``docker build`` itself, the apt-get step, and the
container's runtime (seccomp, AppArmor, the sandbox inside it): README, "Running it in a container".

hadolint and kubernetes-validate come with the test extra; where they are missing the tests skip saying
so, unless RESTORECHECK_REQUIRE_DEPLOY_TOOLS is set (.ci/run sets it): then they fail.
"""

from __future__ import annotations

import copy
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import pytest

from restorecheck.cli import cli, run_cli
from restorecheck.config import Config, load_config

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = ROOT / "Dockerfile"
DEPLOY = ROOT / "deploy"
CONFIG = DEPLOY / "restorecheck.toml"
K8S = DEPLOY / "kubernetes"
SYSTEMD = DEPLOY / "systemd"
REQUIRE_TOOLS = bool(os.environ.get("RESTORECHECK_REQUIRE_DEPLOY_TOOLS"))


def _missing(what: str) -> None:
    if REQUIRE_TOOLS:
        pytest.fail(f"{what} (RESTORECHECK_REQUIRE_DEPLOY_TOOLS is set: CI must run this test)")
    pytest.skip(what)


def _tool(name: str) -> str:
    found = shutil.which(name) or shutil.which(name, path=str(Path(sys.executable).parent))
    if found is None:
        _missing(f"{name} is not installed (pip install -e '.[test]' brings it)")
    assert found is not None
    return found


# --- the Dockerfile, parsed ---------------------------------------------------------------------------


def dockerfile_instructions(text: str) -> list[tuple[int, str, str]]:
    """(stage index, INSTRUCTION, arguments) with continuation lines joined and comments dropped."""
    out: list[tuple[int, str, str]] = []
    stage, pending = -1, ""
    for line in text.splitlines():
        stripped = line.strip()
        if not pending and (not stripped or stripped.startswith("#")):
            continue
        if pending and stripped.startswith("#"):
            continue
        if stripped.endswith("\\"):
            pending += stripped[:-1].rstrip() + " "
            continue
        full = (pending + stripped).strip()
        pending = ""
        word, _, rest = full.partition(" ")
        word = word.upper()
        if word == "FROM":
            stage += 1
        out.append((stage, word, rest.strip()))
    return out


INSTRUCTIONS = dockerfile_instructions(DOCKERFILE.read_text())
FINAL = max(s for s, _w, _a in INSTRUCTIONS)


def final(word: str) -> list[str]:
    return [a for s, w, a in INSTRUCTIONS if s == FINAL and w == word]


def exec_form(word: str) -> list[str]:
    (args,) = final(word)
    value = json.loads(args)
    assert isinstance(value, list) and all(isinstance(v, str) for v in value), f"{word} is not in exec form"
    return value


def final_env() -> dict[str, str]:
    env: dict[str, str] = {}
    for args in final("ENV"):
        for item in shlex.split(args):
            key, _, value = item.partition("=")
            env[key] = value
    return env


def test_the_dockerfile_has_the_shape_the_issue_asks_for() -> None:
    froms = [a for _s, w, a in INSTRUCTIONS if w == "FROM"]
    assert froms and all(re.fullmatch(r"python:3\.\d+-slim-\w+( AS \w+)?", f) for f in froms), froms
    assert exec_form("ENTRYPOINT") == ["restorecheck"]
    assert exec_form("CMD") == ["run", "--config", "/etc/restorecheck/restorecheck.toml"]
    (user,) = final("USER")
    uid = user.split(":")[0]
    assert uid.isdigit() and int(uid) != 0, "the image runs as a numeric non-root user (runAsNonRoot can check it)"
    runs = " ".join(final("RUN"))
    assert f"--uid {uid}" in runs, "USER is the user the image creates"
    for package in ("bubblewrap", "postgresql-client-15"):
        assert package in runs
    assert final_env()["RESTORECHECK_CONFIG"] == exec_form("CMD")[2]
    assert "HEALTHCHECK" not in [w for _s, w, _a in INSTRUCTIONS], "a batch job has no health to check"
    volumes = [v for a in final("VOLUME") for v in json.loads(a)]
    assert str(load_config_example().output_dir) in volumes, "output_dir and the history are on a volume"


def test_the_entrypoint_and_cmd_are_a_command_restorecheck_accepts() -> None:
    entry, cmd = exec_form("ENTRYPOINT"), exec_form("CMD")
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    assert entry[0] in scripts and scripts[entry[0]] == "restorecheck.cli:main"
    command = cli.commands[cmd[0]]
    ctx = command.make_context(cmd[0], list(cmd[1:]))  # every option of the CMD exists and parses
    assert ctx.params["config_file"] == "/etc/restorecheck/restorecheck.toml"
    assert run_cli([cmd[0], "--help"]) == 0


def load_config_example() -> Config:
    """deploy/restorecheck.toml, with the password variable it names set (to a dummy)."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("APP_DB_PASSWORD", "not-a-real-password")
        return load_config(CONFIG)


def test_the_example_config_passes_run_check(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("APP_DB_PASSWORD", "not-a-real-password")
    cmd = exec_form("CMD")
    assert run_cli([*cmd[:2], str(CONFIG), "--check"]) == 0
    out = capsys.readouterr().out
    assert "valid; 2 jobs (app (source), staging (backups))" in out
    assert "not-a-real-password" not in out
    config = load_config_example()
    assert config.output_dir == Path("/var/lib/restorecheck")
    assert [j.name for j in config.jobs] == ["app", "staging"]


def test_run_check_validates_only(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                  capsys: pytest.CaptureFixture[str]) -> None:
    """--check runs no job and writes nothing: output_dir is not even created; a bad config is exit 2."""
    monkeypatch.delenv("APP_DB_PASSWORD", raising=False)
    cfg = tmp_path / "restorecheck.toml"
    out_dir = tmp_path / "out"
    cfg.write_text(f'[defaults]\noutput_dir = "{out_dir}"\n[[job]]\nname = "a"\nsource = "{tmp_path / "x.db"}"\n'
                   f'[[job]]\nname = "b"\nbackups = "{tmp_path}/*.dump"\n')
    assert run_cli(["run", "--config", str(cfg), "--check", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["valid"] is True and [j["name"] for j in report["jobs"]] == ["a", "b"]
    assert run_cli(["run", "--config", str(cfg), "--check", "--only", "b", "--quiet"]) == 0
    assert capsys.readouterr().out == ""
    assert not out_dir.exists() and sorted(p.name for p in tmp_path.iterdir()) == ["restorecheck.toml"]
    assert run_cli(["run", "--config", str(cfg), "--check", "--only", "c"]) == 2
    assert "--only 'c': no such job" in capsys.readouterr().err
    cfg.write_text(cfg.read_text().replace('name = "b"', 'name = "b"\nparalel = 2'))
    assert run_cli(["run", "--config", str(cfg), "--check"]) == 2
    err = capsys.readouterr().err
    assert "line 8" in err and "unknown key" in err and "paralel" in err and "Traceback" not in err
    # the example's password variable unset: exit 2 naming it, before any work
    assert run_cli(["run", "--config", str(CONFIG), "--check"]) == 2
    assert "APP_DB_PASSWORD, which is not set" in capsys.readouterr().err


def test_hadolint_finds_nothing_in_the_dockerfile() -> None:
    hadolint = _tool("hadolint")
    res = subprocess.run([hadolint, "--no-color", "-f", "json", str(DOCKERFILE)], capture_output=True,
                         text=True, timeout=60)
    assert res.returncode == 0 and json.loads(res.stdout or "[]") == [], res.stdout + res.stderr
    # and it does look: the same base without a tag, an apt-get without -y, are found
    bad = subprocess.run([hadolint, "--no-color", "-"], input="FROM python\nRUN apt-get install curl\n",
                         capture_output=True, text=True, timeout=60)
    assert bad.returncode != 0 and "DL3006" in bad.stdout and "DL3014" in bad.stdout


def test_the_dockerignore_lets_in_exactly_what_the_build_copies() -> None:
    ignore = [ln.strip() for ln in (ROOT / ".dockerignore").read_text().splitlines()
              if ln.strip() and not ln.startswith("#")]
    assert ignore[0] == "*", "everything is excluded first"
    allowed = {p[1:].rstrip("/") for p in ignore if p.startswith("!")}
    copied = set()
    for _s, w, a in INSTRUCTIONS:
        if w == "COPY" and not a.startswith("--from"):
            copied |= {p.rstrip("/") for p in shlex.split(a)[:-1]}
    assert copied == allowed, (copied, allowed)
    assert all((ROOT / p).exists() for p in copied)


def test_the_debian_packages_exist_in_debian_12() -> None:
    """The apt-get step cannot run here (root, the whole system); its package names can be looked up."""
    release = Path("/etc/os-release").read_text() if Path("/etc/os-release").exists() else ""
    if "VERSION_CODENAME=bookworm" not in release or shutil.which("apt-cache") is None:
        pytest.skip("not Debian 12 with apt-cache: the image's package names cannot be looked up here")
    runs = " ".join(final("RUN"))
    lists = re.findall(r"apt-get install -y --no-install-recommends ((?:[a-z0-9.+-]+ )*[a-z0-9.+-]+)", runs)
    packages = [p for found in lists for p in found.split()]
    assert {"bubblewrap", "postgresql-client-15", "postgresql-common"} <= set(packages), packages
    for package in packages:
        res = subprocess.run(["apt-cache", "show", "--no-all-versions", package], capture_output=True, text=True,
                             timeout=60)
        if res.returncode != 0 or not res.stdout.strip():
            pytest.skip(f"apt-cache knows no {package}: this machine's apt lists are not Debian 12's main")


def test_every_run_is_valid_sh() -> None:
    """RUN's shell form runs under /bin/sh -c (dash in Debian): a syntax error would only show in a build."""
    sh = shutil.which("dash") or shutil.which("sh")
    assert sh
    runs = [a for _s, w, a in INSTRUCTIONS if w == "RUN"]
    assert len(runs) >= 3
    for command in runs:
        res = subprocess.run([sh, "-n", "-c", command], capture_output=True, text=True, timeout=30)
        assert res.returncode == 0, f"{command}: {res.stderr}"
    (with_if,) = [r for r in runs if "; fi" in r]
    bad = subprocess.run([sh, "-n", "-c", with_if.replace("; fi", "")], capture_output=True, text=True, timeout=30)
    assert bad.returncode != 0, "the check does look: the if without its fi is refused"


# --- Kubernetes -----------------------------------------------------------------------------------------


def _manifests() -> dict[str, dict[str, Any]]:
    try:
        import yaml
    except ImportError:
        _missing("PyYAML is not installed (kubernetes-validate brings it with the test extra)")

    out = {}
    for path in sorted(K8S.glob("*.yaml")):
        docs = [d for d in yaml.safe_load_all(path.read_text()) if d]
        assert len(docs) == 1, path
        out[path.name] = docs[0]
    return out


def _kubernetes_validate() -> Any:
    try:
        import kubernetes_validate
    except ImportError:
        _missing("kubernetes-validate is not installed (pip install -e '.[test]' brings it)")
    return kubernetes_validate


def test_the_kubernetes_manifests_are_valid_against_their_schemas() -> None:
    kv = _kubernetes_validate()
    manifests = _manifests()
    assert set(manifests) == {"configmap.yaml", "cronjob.yaml", "pvc.yaml", "secret.example.yaml"}
    for version in ("1.30.0", kv.latest_version()):  # timeZone is GA since 1.27; 1.30 is the oldest checked
        for name, doc in manifests.items():
            try:
                kv.validate(doc, version, strict=True)  # any error, unknown fields included
            except (kv.ValidationError, kv.SchemaNotFoundError) as exc:
                pytest.fail(f"{name} against Kubernetes {version}: {exc}")
    # the validation does look: a misspelt field and a wrong type are refused
    bad = copy.deepcopy(manifests["cronjob.yaml"])
    bad["spec"]["concurrencypolicy"] = "Forbid"
    with pytest.raises(kv.ValidationError):
        kv.validate(bad, kv.latest_version(), strict=True)
    bad = copy.deepcopy(manifests["cronjob.yaml"])
    bad["spec"]["jobTemplate"]["spec"]["backoffLimit"] = "none"
    with pytest.raises(kv.ValidationError):
        kv.validate(bad, kv.latest_version(), strict=True)


def test_the_cronjob_runs_the_image_as_the_config_expects() -> None:
    m = _manifests()
    cron, pvc, secret, cm = m["cronjob.yaml"], m["pvc.yaml"], m["secret.example.yaml"], m["configmap.yaml"]
    assert cron["spec"]["concurrencyPolicy"] == "Forbid"
    job = cron["spec"]["jobTemplate"]["spec"]
    pod = job["template"]["spec"]
    assert job["backoffLimit"] == 0 and pod["restartPolicy"] == "Never"
    (container,) = pod["containers"]
    assert "command" not in container, "the image's ENTRYPOINT (restorecheck) is kept"
    assert container["args"] == exec_form("CMD")
    sc = pod["securityContext"]
    uid = int(final("USER")[0].split(":")[0])
    assert sc["runAsNonRoot"] is True and sc["runAsUser"] == uid and sc["fsGroup"] == uid
    assert container["securityContext"]["allowPrivilegeEscalation"] is False
    assert container["securityContext"]["capabilities"]["drop"] == ["ALL"]
    res = container["resources"]
    assert res["requests"]["cpu"] and res["requests"]["memory"] and res["limits"]["memory"]
    mounts = {vm["name"]: vm for vm in container["volumeMounts"]}
    volumes = {v["name"]: v for v in pod["volumes"]}
    config_path = Path(exec_form("CMD")[2])
    assert mounts["config"]["mountPath"] == str(config_path.parent) and mounts["config"]["readOnly"] is True
    assert volumes["config"]["configMap"]["name"] == cm["metadata"]["name"]
    assert config_path.name in cm["data"]
    config = load_config_example()
    assert mounts["data"]["mountPath"] == str(config.output_dir)
    assert volumes["data"]["persistentVolumeClaim"]["claimName"] == pvc["metadata"]["name"]
    assert mounts["tmp"]["mountPath"] == "/tmp" and "emptyDir" in volumes["tmp"]
    # every job's password_env is given from the Secret
    wanted = {"APP_DB_PASSWORD"}
    assert re.findall(r'password_env = "(\w+)"', CONFIG.read_text()) == sorted(wanted)
    env = {e["name"]: e["valueFrom"]["secretKeyRef"] for e in container["env"]}
    assert set(env) == wanted
    for ref in env.values():
        assert ref["name"] == secret["metadata"]["name"] and ref["key"] in secret["stringData"]
    # the backups glob of the 'staging' job is mounted
    staging = next(j for j in config.jobs if j.name == "staging")
    assert any(staging.backups.startswith(vm["mountPath"] + "/") for vm in container["volumeMounts"])


def test_the_configmap_holds_the_example_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    text = _manifests()["configmap.yaml"]["data"]["restorecheck.toml"]
    assert text == CONFIG.read_text(), "deploy/kubernetes/configmap.yaml and deploy/restorecheck.toml differ"
    (tmp_path / "restorecheck.toml").write_text(text)
    monkeypatch.setenv("APP_DB_PASSWORD", "x")
    assert run_cli(["run", "--config", str(tmp_path / "restorecheck.toml"), "--check", "--quiet"]) == 0


# --- systemd ----------------------------------------------------------------------------------------------


def _unit(path: Path) -> dict[str, list[tuple[str, str]]]:
    sections: dict[str, list[tuple[str, str]]] = {}
    current = ""
    for line in path.read_text().splitlines():
        s = line.strip()
        if not s or s.startswith("#"):
            continue
        if s.startswith("["):
            current = s.strip("[]")
            sections.setdefault(current, [])
            continue
        key, _, value = s.partition("=")
        sections[current].append((key.strip(), value.strip()))
    return sections


def _get(unit: dict[str, list[tuple[str, str]]], section: str, key: str) -> str | None:
    values = [v for k, v in unit.get(section, []) if k == key]
    return values[-1] if values else None


def test_the_systemd_units_say_what_the_issue_asks() -> None:
    service, timer = _unit(SYSTEMD / "restorecheck.service"), _unit(SYSTEMD / "restorecheck.timer")
    assert _get(service, "Service", "Type") == "oneshot"
    assert _get(service, "Service", "ProtectSystem") == "strict"
    assert _get(service, "Service", "NoNewPrivileges") == "yes" and _get(service, "Service", "PrivateTmp") == "yes"
    assert _get(service, "Service", "User") not in (None, "root") or _get(service, "Service", "DynamicUser") == "yes"
    # bubblewrap's namespaces stay allowed: 'yes' would turn the sandbox off
    ns = set((_get(service, "Service", "RestrictNamespaces") or "").split())
    assert {"user", "pid", "net", "ipc", "uts", "mnt"} <= ns
    assert "PrivateUsers" not in dict(service["Service"])
    # output_dir is writable under ProtectSystem=strict
    state = _get(service, "Service", "StateDirectory")
    assert Path("/var/lib") / (state or "") == load_config_example().output_dir
    argv = shlex.split(_get(service, "Service", "ExecStart") or "")
    assert Path(argv[0]).name == "restorecheck"
    ctx = cli.commands[argv[1]].make_context(argv[1], argv[2:])
    assert ctx.params["config_file"] == "/etc/restorecheck/restorecheck.toml" and ctx.params["quiet"] is True
    assert _get(timer, "Timer", "Persistent") == "true"
    assert _get(timer, "Timer", "RandomizedDelaySec") and _get(timer, "Timer", "OnCalendar")
    assert _get(timer, "Install", "WantedBy") == "timers.target"


def test_systemd_analyze_verify_accepts_the_units(tmp_path: Path) -> None:
    exe = shutil.which("systemd-analyze")
    if exe is None:
        pytest.skip("systemd-analyze is not installed here: the units are checked by the test above only")
    # verify checks that ExecStart's program exists: point it at this installation's restorecheck
    here = shutil.which("restorecheck", path=str(Path(sys.executable).parent)) or shutil.which("restorecheck")
    assert here, "the restorecheck console script of this installation"
    text = (SYSTEMD / "restorecheck.service").read_text()
    assert "/opt/restorecheck/bin/restorecheck" in text
    (tmp_path / "restorecheck.service").write_text(text.replace("/opt/restorecheck/bin/restorecheck", here))
    shutil.copy(SYSTEMD / "restorecheck.timer", tmp_path / "restorecheck.timer")
    res = subprocess.run([exe, "verify", str(tmp_path / "restorecheck.service"), str(tmp_path / "restorecheck.timer")],
                         capture_output=True, text=True, timeout=120)
    # verify exits 0 on an unknown key or a bad value (it only warns): any output is a finding
    assert res.returncode == 0 and not res.stdout.strip() and not res.stderr.strip(), res.stdout + res.stderr
    (tmp_path / "bad.service").write_text(text.replace("/opt/restorecheck/bin/restorecheck", here)
                                          .replace("ProtectSystem=strict", "ProtectSystem=strictly"))
    bad = subprocess.run([exe, "verify", str(tmp_path / "bad.service")], capture_output=True, text=True, timeout=120)
    assert re.search(r"bad\.service:\d+: Failed to parse protect system value", bad.stdout + bad.stderr), \
        "verify does look at the hardening lines"
