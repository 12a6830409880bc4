"""Configuration: flags over environment over defaults, and every problem reported at once."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import pytest

from aks_ray import config
from aks_ray.cli import build_parser, main
from aks_ray.errors import ConfigError


def load(argv: list[str] | None = None, env: dict[str, str] | None = None) -> config.Config:
    args = build_parser().parse_args(["run", *(argv or [])])
    return config.load(vars(args), env or {})


def test_defaults_are_the_declared_ones():
    cfg = load()
    assert cfg.target == "local"
    assert cfg.training.epochs == 3
    assert cfg.training.workers == 2
    assert cfg.common.timeout == 3600
    assert cfg.training.data_dir is None
    assert cfg.output_dir == Path("aks-ray-output")


def test_flag_beats_environment_which_beats_default():
    assert load(env={"AKS_RAY_EPOCHS": "5"}).training.epochs == 5
    assert load(["--epochs", "7"], env={"AKS_RAY_EPOCHS": "5"}).training.epochs == 7


def test_fallback_environment_names_are_read():
    subscription = "00000000-0000-0000-0000-000000000001"
    assert load(env={"ARM_SUBSCRIPTION_ID": subscription}).azure.azure_subscription_id == subscription
    assert (
        load(env={"AKS_RAY_AZURE_SUBSCRIPTION_ID": subscription, "ARM_SUBSCRIPTION_ID": "bad"}).azure.azure_subscription_id == subscription
    )


@pytest.mark.parametrize(
    ("raw", "seconds"),
    [("900", 900), ("90s", 90), ("15m", 900), ("2h", 7200), (" 3M ", 180)],
    ids=["plain", "seconds", "minutes", "hours", "spaces-and-case"],
)
def test_durations(raw, seconds):
    assert config.parse_duration(raw) == seconds


@pytest.mark.parametrize("raw", ["0", "-5", "1d", "abc", ""], ids=["zero", "negative", "days", "word", "empty"])
def test_bad_durations(raw):
    with pytest.raises(config.Invalid):
        config.parse_duration(raw)


def test_every_problem_is_reported_at_once():
    with pytest.raises(ConfigError) as caught:
        load(["--epochs", "0", "--workers", "two", "--target", "cloud"], env={"AKS_RAY_NAMESPACE": "Not_A_Name"})
    text = "\n".join(caught.value.problems)
    assert len(caught.value.problems) == 4
    for name in ("--epochs", "--workers", "--target", "AKS_RAY_NAMESPACE (--namespace)"):
        assert name in text


@pytest.mark.parametrize(
    "value", ["x; rm -rf /", "$(id)", "`id`", "a|b", "a&b", "a>b"], ids=["semicolon", "dollar", "backtick", "pipe", "ampersand", "redirect"]
)
def test_shell_metacharacters_are_refused_in_any_input(value):
    with pytest.raises(ConfigError) as caught:
        load(env={"AKS_RAY_ENTRYPOINT": value})
    assert "AKS_RAY_ENTRYPOINT" in caught.value.problems[0]
    assert "shell character" in caught.value.problems[0]


def test_missing_training_dir_and_entrypoint_are_caught(tmp_path):
    with pytest.raises(ConfigError, match="--training-dir"):
        load(["--training-dir", str(tmp_path / "nope")])
    with pytest.raises(ConfigError, match=r"train\.py is not in"):
        load(["--training-dir", str(tmp_path), "--entrypoint", "python train.py"])


def test_autoscaling_needs_both_bounds_in_order():
    with pytest.raises(ConfigError, match="needs both"):
        load(["--ray-min-nodes", "0"])
    with pytest.raises(ConfigError, match="above --ray-max-nodes"):
        load(["--ray-min-nodes", "3", "--ray-max-nodes", "2"])
    cfg = load(["--ray-min-nodes", "0", "--ray-max-nodes", "3"])
    assert (cfg.azure.ray_min_nodes, cfg.azure.ray_max_nodes) == (0, 3)


def test_aks_target_requires_a_subscription_and_oidc_ids_in_actions():
    with pytest.raises(ConfigError) as caught:
        load(["--target", "aks"], env={"GITHUB_ACTIONS": "true"})
    text = "\n".join(caught.value.problems)
    assert "--azure-subscription-id" in text and "--azure-client-id" in text and "--azure-tenant-id" in text


def test_key_values_and_tolerations():
    assert config.parse_key_values("a=1, example.com/b=x") == (("a", "1"), ("example.com/b", "x"))
    assert config.parse_tolerations("aks-ray.io/pool=ray:NoSchedule") == (("aks-ray.io/pool", "ray", "NoSchedule"),)
    with pytest.raises(config.Invalid):
        config.parse_tolerations("key=value:Sometimes")
    with pytest.raises(config.Invalid):
        config.parse_key_values("novalue")


def test_latest_image_tags_are_refused():
    with pytest.raises(config.Invalid, match="pinned"):
        config.parse_image("rayproject/ray:latest")


def test_the_oidc_token_never_shows_in_a_repr():
    cfg = config.load({}, {"ACTIONS_ID_TOKEN_REQUEST_TOKEN": "s3cr3t-token", "ACTIONS_ID_TOKEN_REQUEST_URL": "https://example.invalid"})
    assert cfg.github.oidc_request_token == "s3cr3t-token"
    assert "s3cr3t-token" not in repr(cfg)


def test_pull_request_number_comes_from_the_ref():
    assert config.load({}, {"GITHUB_REF": "refs/pull/42/merge"}).github.pull_request == "42"
    assert config.load({}, {"GITHUB_REF": "refs/heads/main"}).github.pull_request == ""


def test_every_option_has_help_and_a_parsable_default():
    for section in config.SECTIONS.values():
        for f in dataclasses.fields(section):
            assert f.metadata["help"], f.name
            assert f.metadata["parse"](f.metadata["raw_default"]) == f.default, f.name


def test_main_exits_2_and_names_every_bad_input(capsys, monkeypatch):
    monkeypatch.setenv("AKS_RAY_BATCH_SIZE", "0")
    assert main(["validate", "--epochs", "many"]) == 2
    err = capsys.readouterr().err
    assert "--epochs" in err and "AKS_RAY_BATCH_SIZE" in err and "nothing was started" in err


def test_validate_accepts_good_input_and_writes_an_output(tmp_path, monkeypatch):
    output = tmp_path / "github_output"
    monkeypatch.setenv("GITHUB_OUTPUT", str(output))
    assert main(["validate", "--epochs", "2"]) == 0
    assert "target=local" in output.read_text()


# ------------------------------------------------ Azure names and state backend


def _terraform_condition(variable: str) -> str:
    import hcl2

    with open(config.PROJECT_ROOT / "terraform" / "variables.tf", encoding="utf-8") as handle:
        for block in hcl2.load(handle)["variable"]:
            for name, body in block.items():
                if name.strip('"') == variable:
                    return body["validation"][0]["condition"]
    raise AssertionError(variable)


@pytest.mark.parametrize(
    ("variable", "pattern"),
    [("cluster_name", config.CLUSTER_NAME_PATTERN), ("resource_group_name", config.RESOURCE_GROUP_PATTERN)],
)
def test_name_patterns_are_terraforms(variable, pattern):
    condition = _terraform_condition(variable)
    # HCL string escapes: "\\w" in the file is \w in the regex.
    hcl_pattern = re.search(r'regex\("(.*?)", var\.', condition).group(1).replace("\\\\", "\\")
    assert hcl_pattern == pattern


@pytest.mark.parametrize(
    ("name", "ok"),
    [
        ("aksray-aks", True),
        ("Ray_Cluster-1", True),
        ("a1", True),
        ("a" * 63, True),
        ("a" * 64, False),
        ("ray.aks", False),
        ("ray_", False),
        ("-ray", False),
        ("a", False),
    ],
)
def test_cluster_names_as_terraform_validates_them(name, ok):
    if ok:
        assert config.parse_optional_cluster_name(name) == name
    else:
        with pytest.raises(config.Invalid):
            config.parse_optional_cluster_name(name)


def test_backend_settings_are_the_azurerm_backends_and_values_may_hold_slashes():
    raw = "resource_group_name=tfstate-rg,storage_account_name=yourtfstate,container_name=tfstate,key=aks-ray/pr/terraform.tfstate"
    assert config.parse_backend_config(raw) == (
        ("resource_group_name", "tfstate-rg"),
        ("storage_account_name", "yourtfstate"),
        ("container_name", "tfstate"),
        ("key", "aks-ray/pr/terraform.tfstate"),
    )
    assert config.parse_backend_config("") == ()


@pytest.mark.parametrize(
    ("raw", "in_problem"),
    [
        ("storage_acount_name=s,container_name=c,key=k", "did you mean storage_account_name"),
        ("storage_account_name=s,container_name=c,key=k,sas_token=sv", "sas_token is a secret"),
        ("storage_account_name=s,container_name=c", "lack key"),
        ("storage_account_name=s,container_name=c,key=k,key=j", "given twice"),
        ("storage_account_name=s,container_name=c,key=" + "k" * 1025, "not a usable value"),
    ],
)
def test_bad_backend_settings_say_what_is_wrong(raw, in_problem):
    with pytest.raises(config.Invalid) as caught:
        config.parse_backend_config(raw)
    assert in_problem in caught.value.problem


def test_the_lock_timeout_defaults_to_15_minutes():
    assert config.AzureOptions().lock_timeout == 900
