"""Static checks of the deployment files: cronjob/ (kustomize base), its IAM policy, Dockerfile.

They keep the manifests in line with the code: env vars that `lbscrape run` really reads,
exactly the Kubernetes permissions the code uses, a CronJob that cannot pile up runs.
"""

from __future__ import annotations

import copy
import json
import shutil
import subprocess
import tomllib
from pathlib import Path
from typing import Any

import pytest
import yaml  # type: ignore[import-untyped,unused-ignore]

from lbscrape.cli import cli
from lbscrape.core.options import DEFAULT_CHECKPOINT_NAME

ROOT = Path(__file__).resolve().parent.parent
BASE = ROOT / "cronjob"


def _load_yaml(path: Path) -> list[dict[str, Any]]:
    with path.open() as f:
        return [doc for doc in yaml.safe_load_all(f) if doc is not None]


def _kustomization() -> dict[str, Any]:
    (doc,) = _load_yaml(BASE / "kustomization.yaml")
    return doc


def _objects() -> list[dict[str, Any]]:
    return [obj for res in _kustomization()["resources"] for obj in _load_yaml(BASE / res)]


def _one(kind: str) -> dict[str, Any]:
    found = [o for o in _objects() if o["kind"] == kind]
    assert len(found) == 1, f"expected one {kind}, found {len(found)}"
    return found[0]


def _pod_spec() -> dict[str, Any]:
    spec: dict[str, Any] = _one("CronJob")["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    return spec


def _container() -> dict[str, Any]:
    containers: list[dict[str, Any]] = _pod_spec()["containers"]
    (container,) = containers
    return container


def test_kustomization_lists_existing_parseable_files():
    kust = _kustomization()
    assert kust["kind"] == "Kustomization"
    assert kust["namespace"] == "monitoring"
    assert {"app.kubernetes.io/name": "lbscrape"} in [block["pairs"] for block in kust["labels"]]
    resources = kust["resources"]
    assert resources
    for res in resources:
        path = BASE / res
        assert path.is_file(), f"{res} listed in kustomization.yaml does not exist"
        docs = _load_yaml(path)
        assert docs, f"{res} has no documents"
        for doc in docs:
            assert doc.get("apiVersion") and doc.get("kind") and doc["metadata"]["name"]
    kinds = sorted(o["kind"] for o in _objects())
    assert kinds == sorted(["ServiceAccount", "ClusterRole", "ClusterRoleBinding", "Role",
                            "RoleBinding", "CronJob"])


def test_cronjob_never_overlaps_and_ends_within_its_minute():
    cronjob = _one("CronJob")
    assert cronjob["apiVersion"] == "batch/v1"
    spec = cronjob["spec"]
    assert spec["schedule"] == "* * * * *"
    assert spec["concurrencyPolicy"] == "Forbid"
    assert 0 < spec["startingDeadlineSeconds"] < 60
    job = spec["jobTemplate"]["spec"]
    assert job["backoffLimit"] == 0
    assert 0 < job["activeDeadlineSeconds"] < 60
    assert job["ttlSecondsAfterFinished"] > 0
    assert _pod_spec()["restartPolicy"] == "Never"


def test_cronjob_runs_locked_down():
    pod = _pod_spec()
    assert pod["serviceAccountName"] == _one("ServiceAccount")["metadata"]["name"]
    pod_sc = pod["securityContext"]
    assert pod_sc["runAsNonRoot"] is True
    assert pod_sc["runAsUser"] != 0
    assert pod_sc["seccompProfile"]["type"] == "RuntimeDefault"
    container = _container()
    sc = container["securityContext"]
    assert sc["allowPrivilegeEscalation"] is False
    assert sc["readOnlyRootFilesystem"] is True
    assert sc["capabilities"]["drop"] == ["ALL"]
    assert not sc["capabilities"].get("add")
    assert sc.get("privileged", False) is False
    assert container["resources"]["requests"]["memory"]
    assert container["resources"]["limits"]["memory"]
    assert container["args"] == ["run"]


def test_cronjob_env_vars_are_real_options():
    run = cli.commands["run"]
    known = {str(p.envvar) for p in run.params if p.envvar}
    env = {e["name"]: e.get("value") for e in _container()["env"]}
    used = {name for name in env if name.startswith("LBSCRAPE_")}
    assert used, "the CronJob sets no LBSCRAPE_* env var"
    assert used <= known, f"not options of `lbscrape run`: {sorted(used - known)}"
    required = {str(p.envvar) for p in run.params if p.required}
    assert required <= used, f"required options not set: {sorted(required - used)}"
    assert "LBSCRAPE_REMOTE_WRITE_URL" in used
    assert env["LBSCRAPE_LOG_FORMAT"] == "json"


def test_cronjob_sets_a_region():
    # boto3 itself reads only AWS_DEFAULT_REGION; `lbscrape run` also takes AWS_REGION.
    env = {e["name"] for e in _container()["env"]}
    assert env & {"AWS_DEFAULT_REGION", "AWS_REGION", "LBSCRAPE_REGION"}


def _grants(rules: list[dict[str, Any]]) -> set[tuple[str, str, str]]:
    out = set()
    for rule in rules:
        assert not rule.get("nonResourceURLs")
        for field in ("apiGroups", "resources", "verbs", "resourceNames"):
            assert "*" not in rule.get(field, []), f"wildcard in {field}: {rule}"
        for group in rule["apiGroups"]:
            for resource in rule["resources"]:
                for verb in rule["verbs"]:
                    out.add((group, resource, verb))
    return out


def test_rbac_grants_exactly_what_the_code_calls():
    cluster_role = _one("ClusterRole")
    role = _one("Role")
    cluster = _grants(cluster_role["rules"])
    namespaced = _grants(role["rules"])
    assert cluster == {
        ("networking.k8s.io", "ingresses", "list"),
        ("networking.k8s.io", "ingressclasses", "list"),
        ("", "services", "list"),
        ("elbv2.k8s.aws", "targetgroupbindings", "list"),
        ("", "events", "create"),
    }
    assert namespaced == {
        ("", "configmaps", "get"),
        ("", "configmaps", "create"),
        ("", "configmaps", "update"),
    }
    assert not cluster_role.get("aggregationRule")


def test_rbac_limits_configmap_reads_and_writes_to_the_checkpoint():
    for rule in _one("Role")["rules"]:
        if set(rule["verbs"]) & {"get", "update"}:
            assert rule["resourceNames"] == [DEFAULT_CHECKPOINT_NAME]
        else:
            # create cannot be restricted by name, so it is the only unrestricted verb.
            assert rule["verbs"] == ["create"]


def test_rbac_bindings_point_at_the_roles_and_the_service_account():
    sa = _one("ServiceAccount")["metadata"]
    for binding_kind, role_kind in (("ClusterRoleBinding", "ClusterRole"),
                                    ("RoleBinding", "Role")):
        binding = _one(binding_kind)
        assert binding["roleRef"] == {"apiGroup": "rbac.authorization.k8s.io",
                                      "kind": role_kind,
                                      "name": _one(role_kind)["metadata"]["name"]}
        assert binding["subjects"] == [{"kind": "ServiceAccount", "name": sa["name"],
                                        "namespace": sa["namespace"]}]


def test_service_account_has_irsa_annotation():
    annotations = _one("ServiceAccount")["metadata"]["annotations"]
    assert annotations["eks.amazonaws.com/role-arn"].startswith("arn:aws:iam::")


def test_iam_policy_allows_exactly_the_four_actions_and_amp_remote_write():
    policy = json.loads((BASE / "iam-policy.json").read_text())
    assert policy["Version"] == "2012-10-17"
    read, amp = policy["Statement"]
    for statement in (read, amp):
        assert statement["Sid"]
        assert statement["Effect"] == "Allow"
        assert "NotAction" not in statement and "NotResource" not in statement
    assert sorted(read["Action"]) == ["cloudwatch:GetMetricData",
                                      "elasticloadbalancing:DescribeLoadBalancers",
                                      "elasticloadbalancing:DescribeTags",
                                      "elasticloadbalancing:DescribeTargetGroups"]
    assert read["Resource"] == "*"
    # Only with --remote-write-sigv4; on workspaces only, never "*".
    assert amp["Action"] == ["aps:RemoteWrite"]
    assert amp["Resource"].startswith("arn:aws:aps:") and ":workspace/" in amp["Resource"]


def _final_stage(dockerfile: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) of the last stage, continuation lines joined."""
    text = dockerfile.replace("\\\n", " ")
    lines = [line.strip() for line in text.splitlines()]
    instructions = [tuple(line.split(None, 1)) for line in lines if line and not
                    line.startswith("#")]
    last_from = max(i for i, ins in enumerate(instructions) if ins[0].upper() == "FROM")
    return [(ins[0].upper(), ins[1] if len(ins) > 1 else "") for ins in instructions[last_from:]]


def test_dockerfile_runs_lbscrape_as_non_root():
    stage = _final_stage((ROOT / "Dockerfile").read_text())
    users = [args for ins, args in stage if ins == "USER"]
    assert users, "the final stage has no USER"
    user = users[-1].split(":")[0]
    assert user.isdigit() and int(user) != 0, f"USER {users[-1]} is not a numeric non-root uid"
    (entrypoint,) = [json.loads(args) for ins, args in stage if ins == "ENTRYPOINT"]
    assert entrypoint == ["lbscrape"]
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert "lbscrape" in pyproject["project"]["scripts"]
    cronjob_uid = _pod_spec()["securityContext"]["runAsUser"]
    assert int(user) == cronjob_uid


@pytest.mark.parametrize("name", ["Dockerfile", ".dockerignore"])
def test_docker_files_exist(name):
    assert (ROOT / name).is_file()


def test_the_image_keeps_the_botocore_model_of_every_service_lbscrape_calls():
    import re

    from lbscrape.aws import session

    dockerfile = (ROOT / "Dockerfile").read_text()
    assert "from lbscrape.aws.session import BOTOCORE_MODELS" in dockerfile
    called = set()
    for path in (ROOT / "lbscrape").rglob("*.py"):
        text = path.read_text()
        called |= set(re.findall(r"aws\.client\(\s*[\w.]+,\s*\"([a-z0-9-]+)\"", text))
    assert called == set(session.SERVICES)
    assert set(session.SERVICES) <= set(session.BOTOCORE_MODELS)
    with pytest.raises(ValueError, match="SERVICES"):
        session.client(session.session("us-east-1"), "s3")


# --- the sharded overlay (cronjob-sharded/) ---------------------------------------------

SHARDED = ROOT / "cronjob-sharded"


def _merge(base: Any, patch: Any) -> Any:
    """Strategic merge as kustomize does it for these manifests: maps merge, null deletes,
    lists of named maps (containers, env) merge by name, other lists are replaced."""
    if isinstance(base, dict) and isinstance(patch, dict):
        out = dict(base)
        for k, v in patch.items():
            if v is None:
                out.pop(k, None)
            else:
                out[k] = _merge(base[k], v) if k in base else v
        return out
    if isinstance(base, list) and isinstance(patch, list) and all(
            isinstance(x, dict) and "name" in x for x in base + patch):
        old = {x["name"]: x for x in base}
        new = {x["name"]: x for x in patch}
        return [_merge(old[n], new[n]) if n in old else new[n] for n in new] + [
            x for x in base if x["name"] not in new]
    return patch


def _render(path: Path) -> list[dict[str, Any]]:
    """A kustomization's objects: its resources (files, or directories rendered first),
    then its namespace and labels, then its patches."""
    (kust,) = _load_yaml(path / "kustomization.yaml")
    objects: list[dict[str, Any]] = []
    for res in kust.get("resources", []):
        objects += _render(path / res) if (path / res).is_dir() else _load_yaml(path / res)
    for obj in objects:
        meta = obj["metadata"]
        if "namespace" in kust and not obj["kind"].startswith("Cluster"):
            meta["namespace"] = kust["namespace"]
        for block in kust.get("labels", []):
            meta["labels"] = {**meta.get("labels", {}), **block["pairs"]}
    for p in kust.get("patches", []):
        (patch,) = yaml.safe_load_all(p["patch"])
        for i, obj in enumerate(objects):
            if obj["kind"] == p["target"]["kind"] and \
                    obj["metadata"]["name"] == p["target"]["name"]:
                objects[i] = _merge(obj, patch)
    return objects


def _canonical(objects: list[dict[str, Any]]) -> list[str]:
    def norm(x: Any) -> Any:
        if isinstance(x, dict):
            return {k: norm(v) for k, v in x.items()}
        if isinstance(x, list):
            items = [norm(v) for v in x]
            named = all(isinstance(v, dict) and "name" in v for v in items)
            return sorted(items, key=lambda v: v["name"]) if named and items else items
        return x
    return sorted(json.dumps(norm(o), sort_keys=True) for o in objects)


def _cronjob(objects: list[dict[str, Any]]) -> dict[str, Any]:
    (cronjob,) = [o for o in objects if o["kind"] == "CronJob"]
    return cronjob


def test_sharded_overlay_runs_n_shards_as_one_indexed_job_a_minute():
    base, sharded = _render(BASE), _render(SHARDED)
    job = _cronjob(sharded)["spec"]["jobTemplate"]["spec"]
    (container,) = job["template"]["spec"]["containers"]
    n = int({e["name"]: e.get("value") for e in container["env"]}["LBSCRAPE_SHARDS"])
    assert n >= 2
    assert job["completionMode"] == "Indexed"
    assert job["completions"] == job["parallelism"] == n  # every shard, all at once
    # One failing shard must not end the others (a Job-wide backoffLimit: 0 would).
    assert job["backoffLimitPerIndex"] == 0 and "backoffLimit" not in job
    # Everything else is the base's: schedule, no overlap, deadline, the pod, RBAC.
    expected = copy.deepcopy(_cronjob(base))
    base_job = expected["spec"]["jobTemplate"]["spec"]
    del base_job["backoffLimit"]
    base_job.update(completionMode="Indexed", completions=n, parallelism=n,
                    backoffLimitPerIndex=0)
    # The shards fetch at once: each gets its share of one run's CloudWatch rates.
    env = {e["name"]: e["value"] for e in container["env"]}
    assert float(env["LBSCRAPE_CLOUDWATCH_MAX_TPS"]) * n <= 25
    assert float(env["LBSCRAPE_CLOUDWATCH_MAX_DPS"].rstrip("%")) * n <= 50
    base_job["template"]["spec"]["containers"][0]["env"] += [
        {"name": "LBSCRAPE_SHARDS", "value": str(n)},
        {"name": "LBSCRAPE_CLOUDWATCH_MAX_TPS", "value": env["LBSCRAPE_CLOUDWATCH_MAX_TPS"]},
        {"name": "LBSCRAPE_CLOUDWATCH_MAX_DPS", "value": env["LBSCRAPE_CLOUDWATCH_MAX_DPS"]}]
    assert _canonical([_cronjob(sharded)]) == _canonical([expected])
    assert _canonical([o for o in sharded if o["kind"] != "CronJob"]) == \
        _canonical([o for o in base if o["kind"] != "CronJob"])


def test_sharded_overlay_pods_are_the_shards_of_run():
    # What each pod's `lbscrape run` makes of LBSCRAPE_SHARDS and its JOB_COMPLETION_INDEX.
    from lbscrape.core.shard import Shard, parse_shard

    job = _cronjob(_render(SHARDED))["spec"]["jobTemplate"]["spec"]
    (container,) = job["template"]["spec"]["containers"]
    env = {e["name"]: e.get("value") for e in container["env"]}
    run = cli.commands["run"]
    assert "LBSCRAPE_SHARDS" in {str(p.envvar) for p in run.params if p.envvar}
    assert [parse_shard(None, env["LBSCRAPE_SHARDS"], str(i))
            for i in range(job["completions"])] == \
        [Shard(i, job["completions"]) for i in range(job["completions"])]


@pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl not installed")
@pytest.mark.parametrize("path", [BASE, SHARDED], ids=["base", "sharded"])
def test_kubectl_kustomize_renders_what_these_tests_check(path):
    # Where kubectl is at hand, the small renderer above is checked against kustomize's.
    out = subprocess.run(["kubectl", "kustomize", str(path)], capture_output=True, text=True,
                         timeout=60, check=True).stdout
    assert _canonical([d for d in yaml.safe_load_all(out) if d]) == _canonical(_render(path))
