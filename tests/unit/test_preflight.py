"""Preflight against recorded-shape usages and resource SKUs, through the real azure-mgmt-compute client."""

from __future__ import annotations

import pytest
from azure_http_fakes import SUBSCRIPTION, FakeAzure, actions_environ, authorization_failed, usage, vm_sku

from aks_ray import config, gha, preflight
from aks_ray.errors import UserError

EASTUS_SKUS = [
    vm_sku("Standard_D2s_v5", "standardDSv5Family", 2),
    vm_sku("Standard_D4s_v5", "standardDSv5Family", 4),
    vm_sku("Standard_D8s_v5", "standardDSv5Family", 8),
    vm_sku("Standard_NC6s_v3", "standardNCSv3Family", 6, restricted=True),
    vm_sku("Standard_E4s_v5", "standardESv5Family", 4, location="westeurope"),
]


@pytest.fixture(autouse=True)
def plain_annotations():
    gha.use_workflow_commands(False)


def usages(family_used: int = 0, family_limit: int = 100, total_used: int = 0, total_limit: int = 100, **more: tuple[int, int]):
    rows = [
        usage("cores", "Total Regional vCPUs", total_used, total_limit),
        usage("standardDSv5Family", "Standard DSv5 Family vCPUs", family_used, family_limit),
        usage("availabilitySets", "Availability Sets", 0, 2500),
    ]
    rows += [usage(name, name, used, limit) for name, (used, limit) in more.items()]
    return rows


def load(tmp_path, **env: str | None) -> config.Config:
    return config.load({}, actions_environ(tmp_path, **env))


def run(tmp_path, cloud: FakeAzure, **env: str | None) -> preflight.Report:
    return preflight.run(load(tmp_path, **env), transport=cloud.transport())


def test_enough_quota_passes_and_shows_the_arithmetic(tmp_path):
    cloud = FakeAzure(skus=EASTUS_SKUS, usages=usages(family_used=4, family_limit=20, total_used=4, total_limit=20), cluster_exists=False)

    report = run(tmp_path, cloud)

    assert report.ok
    assert report.lines[1] == (
        "  standardDSv5Family: system 1 x Standard_D2s_v5 (2 vCPUs) + ray 3 x Standard_D4s_v5 (4 vCPUs) = 14 vCPUs;"
        " 4 of 20 in use, 16 free: ok"
    )
    assert report.lines[2] == "  Total Regional vCPUs: all pools = 14 vCPUs; 4 of 20 in use, 16 free: ok"
    summary = (tmp_path / "gh" / "summary.md").read_text()
    assert "preflight in `eastus` passed" in summary
    assert "= 14 vCPUs" in summary
    assert cloud.called("skus")[0].query["$filter"] == "location eq 'eastus'"
    assert cloud.called("usages")[0].path == f"/subscriptions/{SUBSCRIPTION}/providers/Microsoft.Compute/locations/eastus/usages"


@pytest.mark.parametrize(
    ("env", "quota", "expected"),
    [
        pytest.param(
            {},
            usages(family_used=4, family_limit=10),
            "Standard DSv5 Family vCPUs quota in eastus is too small: 14 more",
            id="family-short",
        ),
        pytest.param(
            {}, usages(total_used=10, total_limit=16), "Total Regional vCPUs quota in eastus is too small: 14 more", id="regional-short"
        ),
        pytest.param(
            {"AKS_RAY_RAY_MIN_NODES": "0", "AKS_RAY_RAY_MAX_NODES": "5"},
            usages(family_limit=20),
            "at least 22",
            id="autoscaling-counts-the-maximum",
        ),
    ],
)
def test_short_quota_fails_with_the_numbers_and_the_fix(tmp_path, env, quota, expected):
    cloud = FakeAzure(skus=EASTUS_SKUS, usages=quota, cluster_exists=False)

    with pytest.raises(UserError) as caught:
        run(tmp_path, cloud, **env)

    assert expected in caught.value.message
    assert "Azure portal > Quotas > Compute" in caught.value.message
    assert "preflight in `eastus` failed" in (tmp_path / "gh" / "summary.md").read_text()


def test_nodes_of_the_existing_cluster_are_not_counted_twice(tmp_path):
    # 14 vCPUs in use are the cluster's own: a re-run needs no more quota.
    cloud = FakeAzure(skus=EASTUS_SKUS, usages=usages(family_used=14, family_limit=16, total_used=14, total_limit=16))

    report = run(tmp_path, cloud)

    assert report.ok
    assert "14 vCPUs, 14 of them already running, so 0 more" in report.lines[1]


def test_a_bigger_ray_pool_needs_only_the_difference(tmp_path):
    cloud = FakeAzure(skus=EASTUS_SKUS, usages=usages(family_used=14, family_limit=20, total_used=14, total_limit=100))

    with pytest.raises(UserError) as caught:
        run(tmp_path, cloud, AKS_RAY_RAY_NODE_COUNT="6")

    assert "12 more vCPUs needed" in caught.value.message


def test_unknown_region_is_caught(tmp_path):
    cloud = FakeAzure(skus=EASTUS_SKUS, usages=usages(), cluster_exists=False)

    with pytest.raises(UserError) as caught:
        run(tmp_path, cloud, AKS_RAY_LOCATION="eastuss")

    assert "'eastuss' offers no VM sizes" in caught.value.message
    assert "az account list-locations" in caught.value.message
    assert cloud.called("usages") == []


def test_unknown_vm_size_is_caught_with_a_suggestion(tmp_path):
    cloud = FakeAzure(skus=EASTUS_SKUS, usages=usages(), cluster_exists=False)

    with pytest.raises(UserError) as caught:
        run(tmp_path, cloud, AKS_RAY_RAY_VM_SIZE="Standard_D4s_v6")

    assert "Standard_D4s_v6 (ray pool) is not offered in eastus" in caught.value.message
    assert "Did you mean Standard_D4s_v5" in caught.value.message


def test_a_size_offered_only_elsewhere_is_not_offered_here(tmp_path):
    cloud = FakeAzure(skus=EASTUS_SKUS, usages=usages(), cluster_exists=False)

    with pytest.raises(UserError) as caught:
        run(tmp_path, cloud, AKS_RAY_RAY_VM_SIZE="Standard_E4s_v5")

    assert "Standard_E4s_v5 (ray pool) is not offered in eastus" in caught.value.message


def test_a_restricted_size_is_caught(tmp_path):
    cloud = FakeAzure(skus=EASTUS_SKUS, usages=usages(standardNCSv3Family=(0, 100)), cluster_exists=False)

    with pytest.raises(UserError) as caught:
        run(tmp_path, cloud, AKS_RAY_RAY_VM_SIZE="Standard_NC6s_v3")

    assert "restricted for this subscription in eastus (NotAvailableForSubscription)" in caught.value.message


def test_a_worker_bigger_than_a_node_can_never_run(tmp_path):
    cloud = FakeAzure(skus=EASTUS_SKUS, usages=usages(), cluster_exists=False)

    with pytest.raises(UserError) as caught:
        run(tmp_path, cloud, AKS_RAY_CPUS_PER_WORKER="4")

    assert "asks for 4 CPUs but a Standard_D4s_v5 node has at most 3.86 allocatable" in caught.value.message


def test_a_tight_fit_is_a_warning_not_a_failure(tmp_path, capsys):
    # KubeRay's sample shape: 8 CPUs of Ray pods on one 4-vCPU node.
    cloud = FakeAzure(skus=EASTUS_SKUS, usages=usages(), cluster_exists=False)

    report = run(tmp_path, cloud, AKS_RAY_RAY_NODE_COUNT="1", AKS_RAY_WORKERS="3", AKS_RAY_CPUS_PER_WORKER="2", AKS_RAY_HEAD_CPUS="2")

    assert report.ok
    assert "may not all fit on 1 x Standard_D4s_v5" in report.warnings[0]
    assert "may not all fit" in capsys.readouterr().err


def test_a_head_of_part_of_a_cpu_counts_in_millicores(tmp_path):
    cloud = FakeAzure(skus=EASTUS_SKUS, usages=usages(), cluster_exists=False)

    report = run(tmp_path, cloud, AKS_RAY_WORKERS="2", AKS_RAY_CPUS_PER_WORKER="1", AKS_RAY_HEAD_CPUS="500m")

    assert any("head 0.5 CPU + 2 worker(s) x 1 CPU = 2.5 CPUs" in line for line in report.lines)


def test_infra_plan_takes_the_ray_pod_sizes_its_preflight_checks(tmp_path):
    # `aks-ray infra plan` runs the preflight: it must read the job's sizes, not the defaults.
    from aks_ray import cli

    args = cli.build_parser().parse_args(["infra", "plan", "--workers", "5", "--cpus-per-worker", "2", "--head-cpus", "2"])
    cloud = FakeAzure(skus=EASTUS_SKUS, usages=usages(), cluster_exists=False)

    report = preflight.run(config.load(vars(args), actions_environ(tmp_path)), transport=cloud.transport())

    assert any("head 2 CPU + 5 worker(s) x 2 CPU = 12 CPUs" in line for line in report.lines)


def test_a_missing_reader_role_names_role_and_scope(tmp_path):
    scope = f"/subscriptions/{SUBSCRIPTION}"
    cloud = FakeAzure(skus=EASTUS_SKUS, failures={"skus": authorization_failed("Microsoft.Compute/skus/read", scope)})

    with pytest.raises(UserError) as caught:
        run(tmp_path, cloud)

    assert "'Reader' on the scope /subscriptions/" in caught.value.fix


# ------------------------------------------------------------ pure parts


def test_allocatable_cpu_follows_the_aks_reservation_table():
    assert preflight.allocatable_milli(2, with_daemonsets=False) == 1900
    assert preflight.allocatable_milli(4, with_daemonsets=False) == 3860
    assert preflight.allocatable_milli(8, with_daemonsets=True) == 8000 - 180 - preflight.DAEMONSET_CPU_MILLI
    assert preflight.allocatable_milli(96, with_daemonsets=False) == 96000 - 740


def test_packing_needs_room_for_every_pod():
    assert preflight._packs([2000, 2000, 2000], capacity=3000, nodes=3)
    assert not preflight._packs([2000, 2000, 2000], capacity=3000, nodes=2)
    assert preflight._packs([1000] * 6, capacity=3000, nodes=2)


# ------------------------------------------------------- Kubernetes versions


def passing_cloud(**kw) -> FakeAzure:
    return FakeAzure(skus=EASTUS_SKUS, usages=usages(), cluster_exists=False, **kw)


def run_on(tmp_path, cloud: FakeAzure, today: str = "2026-12-01", **env: str | None) -> preflight.Report:
    import datetime as dt

    return preflight.run(load(tmp_path, **env), transport=cloud.transport(), today=dt.date.fromisoformat(today))


def test_the_default_version_is_offered_and_its_support_end_shown(tmp_path):
    cloud = passing_cloud()

    report = run_on(tmp_path, cloud)

    assert report.ok and not report.warnings
    assert report.lines[-1] == "Kubernetes 1.36: offered in eastus; AKS standard support ends 2027-06-30"
    (call,) = cloud.called("kubernetes_versions")
    assert call.path == f"/subscriptions/{SUBSCRIPTION}/providers/Microsoft.ContainerService/locations/eastus/kubernetesVersions"


@pytest.mark.parametrize(
    ("version", "why"),
    [
        pytest.param("1.33", "only with long-term support", id="lts-only"),
        pytest.param("1.31", "not at all", id="gone"),
    ],
)
def test_a_version_the_region_does_not_offer_is_bad_input_naming_those_it_does(tmp_path, version, why):
    with pytest.raises(UserError) as caught:
        run_on(tmp_path, passing_cloud(), AKS_RAY_KUBERNETES_VERSION=version)

    assert caught.value.exit_code == 2
    assert f"Kubernetes {version} is offered in eastus {why}" in caught.value.message
    assert "a new cluster there can have 1.35, 1.36. Fix: set --kubernetes-version" in caught.value.message
    assert "--kubernetes-version" in caught.value.message


def test_a_patch_the_region_does_not_offer_is_bad_input(tmp_path):
    with pytest.raises(UserError) as caught:
        run_on(tmp_path, passing_cloud(), AKS_RAY_KUBERNETES_VERSION="1.36.9")
    assert "not a patch eastus offers for 1.36 (1.36.0, 1.36.1)" in caught.value.message
    run_on(tmp_path, passing_cloud(), AKS_RAY_KUBERNETES_VERSION="1.36.1")


def test_a_version_near_its_end_of_support_is_a_warning_with_the_date(tmp_path, capsys):
    report = run_on(tmp_path, passing_cloud(), today="2027-02-15", AKS_RAY_KUBERNETES_VERSION="1.35")

    assert report.ok
    (warning,) = report.warnings
    assert warning.startswith("Kubernetes 1.35 reaches the end of AKS standard support on 2027-03-31 (in 44 days)")
    assert "Move to 1.36" in warning
    assert "2027-03-31" in capsys.readouterr().err
    assert "⚠️ Kubernetes 1.35 reaches" in (tmp_path / "gh" / "summary.md").read_text()


def test_sixty_one_days_before_the_end_is_quiet():
    import datetime as dt

    report = preflight.Report()
    offered = preflight.kubernetes_index(FakeAzure().kubernetes_versions)
    preflight.check_kubernetes("1.35", offered, "eastus", dt.date(2027, 3, 31) - dt.timedelta(days=61), report)
    assert not report.warnings and not report.problems
    preflight.check_kubernetes("1.35", offered, "eastus", dt.date(2027, 3, 31) - dt.timedelta(days=60), report)
    assert len(report.warnings) == 1


def test_a_preview_version_passes_with_a_warning(tmp_path):
    report = run_on(tmp_path, passing_cloud(), AKS_RAY_KUBERNETES_VERSION="1.37")
    assert report.ok
    assert any("preview" in w for w in report.warnings)


def test_the_versions_call_needs_only_reader(tmp_path):
    scope = f"/subscriptions/{SUBSCRIPTION}"
    cloud = passing_cloud(
        failures={"kubernetes_versions": authorization_failed("Microsoft.ContainerService/locations/kubernetesVersions/read", scope)}
    )
    with pytest.raises(UserError) as caught:
        run_on(tmp_path, cloud)
    assert "Kubernetes versions AKS offers in eastus" in caught.value.message
