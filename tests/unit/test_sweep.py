"""`aks-ray infra sweep` through the real azure-mgmt-resource client against the fake ARM transport."""

from __future__ import annotations

import datetime as dt

import pytest
from azure_http_fakes import SUBSCRIPTION, FakeAzure, actions_environ, authorization_failed, resource_group

from aks_ray import cli, config, gha, sweep
from aks_ray.errors import UserError

NOW = dt.datetime(2030, 6, 1, 12, 0, tzinfo=dt.timezone.utc)
OURS = {"aks-ray-managed-by": "terraform"}


@pytest.fixture(autouse=True)
def plain_annotations():
    gha.use_workflow_commands(False)


def cloud_with_groups() -> FakeAzure:
    groups = [
        resource_group("expired-rg", {**OURS, "aks-ray-expires-on": "2030-06-01T06:00:00Z"}),
        resource_group("long-ago-rg", {**OURS, "aks-ray-expires-on": "2030-05-01T00:00:00Z", "team": "ml"}),
        resource_group("fresh-rg", {**OURS, "aks-ray-expires-on": "2030-06-02T12:00:00Z"}),
        resource_group("kept-rg", OURS),  # destroy-policy never: no expiry tag at all
        resource_group("someone-elses-rg", {"aks-ray-expires-on": "2030-01-01T00:00:00Z"}),
        resource_group(
            "MC_expired-rg_aksray-aks_eastus",
            {**OURS, "aks-ray-expires-on": "2030-06-01T06:00:00Z"},
            managed_by=f"/subscriptions/{SUBSCRIPTION}/resourceGroups/expired-rg/providers/Microsoft.ContainerService/managedClusters/aksray-aks",
        ),
        resource_group("garbled-rg", {**OURS, "aks-ray-expires-on": "tomorrow"}),
        resource_group("going-rg", {**OURS, "aks-ray-expires-on": "2030-05-01T00:00:00Z"}, state="Deleting"),
    ]
    return FakeAzure(resource_groups={g["name"]: g for g in groups})


def load(tmp_path, *, yes: bool = False, **env: str | None) -> config.Config:
    flags = {"yes": "true"} if yes else {}
    return config.load(flags, actions_environ(tmp_path, **env))


def verdicts_by_name(verdicts: list[sweep.Verdict]) -> dict[str, str]:
    return {v.group.name: v.action for v in verdicts}


def test_without_yes_it_lists_and_deletes_nothing(tmp_path):
    cloud = cloud_with_groups()

    verdicts = sweep.sweep(load(tmp_path), transport=cloud.transport(), now=NOW)

    assert verdicts_by_name(verdicts) == {
        "expired-rg": "delete",
        "fresh-rg": "keep",
        "garbled-rg": "skip",
        "going-rg": "skip",
        "long-ago-rg": "delete",
        "MC_expired-rg_aksray-aks_eastus": "skip",
        "someone-elses-rg": "skip",
    }
    assert "kept-rg" not in verdicts_by_name(verdicts), "a cluster kept on purpose has no expiry and is never listed"
    assert [c.method for c in cloud.calls if c.method == "DELETE"] == [], "listed, not deleted"
    (listed,) = cloud.called("resource_groups")
    assert listed.query["$filter"] == "tagName eq 'aks-ray-expires-on'"
    assert listed.path == f"/subscriptions/{SUBSCRIPTION}/resourcegroups"
    assert cloud.deleted == []
    summary = (tmp_path / "gh" / "summary.md").read_text()
    assert "| `expired-rg` | 2030-06-01T06:00:00Z | expired: would delete: expired 6.0 h ago |" in summary
    assert "2 expired; run `aks-ray infra sweep --yes` to delete them." in summary


def test_with_yes_it_deletes_exactly_the_expired_groups_aks_ray_made(tmp_path):
    cloud = cloud_with_groups()

    sweep.sweep(load(tmp_path, yes=True), transport=cloud.transport(), now=NOW)

    assert sorted(cloud.deleted) == ["expired-rg", "long-ago-rg"]
    deletes = [c.path.rsplit("/", 1)[1] for c in cloud.called("resource_group") if c.method == "DELETE"]
    assert sorted(deletes) == ["expired-rg", "long-ago-rg"]
    assert set(cloud.resource_groups) == {
        "fresh-rg",
        "kept-rg",
        "someone-elses-rg",
        "MC_expired-rg_aksray-aks_eastus",
        "garbled-rg",
        "going-rg",
    }
    assert "🗑️ deleted" in (tmp_path / "gh" / "summary.md").read_text()


def test_the_cli_offers_it_as_infra_sweep_with_yes(tmp_path, monkeypatch, capsys):
    cloud = cloud_with_groups()
    transport = cloud.transport()
    real = sweep.sweep
    monkeypatch.setattr(sweep, "sweep", lambda cfg: real(cfg, transport=transport, now=NOW))
    for key, value in actions_environ(tmp_path).items():
        monkeypatch.setenv(key, value)

    assert cli.main(["infra", "sweep"]) == 0
    assert cloud.deleted == []
    assert "would delete" in capsys.readouterr().out

    assert cli.main(["infra", "sweep", "--yes"]) == 0
    assert sorted(cloud.deleted) == ["expired-rg", "long-ago-rg"]


def test_a_missing_reader_role_is_explained(tmp_path):
    cloud = FakeAzure(
        failures={
            "resource_groups": authorization_failed(
                "Microsoft.Resources/subscriptions/resourceGroups/read", f"/subscriptions/{SUBSCRIPTION}"
            )
        }
    )
    with pytest.raises(UserError) as caught:
        sweep.sweep(load(tmp_path), transport=cloud.transport(), now=NOW)
    assert '--role "Reader"' in caught.value.fix


def test_no_subscription_is_bad_input(tmp_path):
    cfg = load(tmp_path, ARM_SUBSCRIPTION_ID=None, AKS_RAY_TARGET="local")
    with pytest.raises(UserError, match="subscription"):
        sweep.sweep(cfg, transport=FakeAzure().transport(), now=NOW)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("2030-06-01T06:00:00Z", dt.datetime(2030, 6, 1, 6, tzinfo=dt.timezone.utc)),
        ("2030-06-01T08:00:00+02:00", dt.datetime(2030, 6, 1, 6, tzinfo=dt.timezone.utc)),
        ("2030-06-01T06:00:00", dt.datetime(2030, 6, 1, 6, tzinfo=dt.timezone.utc)),
        ("soon", None),
    ],
)
def test_expiry_tags_are_read_as_rfc3339(raw, expected):
    assert sweep.parse_expiry(raw) == expected
