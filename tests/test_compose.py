"""docker-compose.yml: the services docs/operations.md names exist, and no secret has a default.

`make test` also runs `docker-compose --env-file .env.example -f docker-compose.yml config -q`
(Debian's docker-compose, no engine needed)."""

import re

import yaml

from tests.helpers import ROOT

COMPOSE = yaml.safe_load((ROOT / "docker-compose.yml").read_text(encoding="utf-8"))
OPERATIONS = (ROOT / "docs" / "operations.md").read_text(encoding="utf-8")
SECRETS = [
    "POSTGRES_PASSWORD",
    "LAKE_POSTGRES_PASSWORD",
    "AIRFLOW__CORE__FERNET_KEY",
    "AIRFLOW__API_AUTH__JWT_SECRET",
    "AIRFLOW__API__SECRET_KEY",
    "_AIRFLOW_WWW_USER_PASSWORD",
]


def documented_services() -> set[str]:
    section = OPERATIONS.split("## Running on several machines (docker-compose)", 1)[1]
    section = section.split("\n## ", 1)[0]
    return set(re.findall(r"^\| `([a-z0-9-]+)` \|", section, flags=re.M))


def test_every_service_the_docs_name_exists():
    named = documented_services()
    assert len(named) >= 8
    assert named <= set(COMPOSE["services"]), named - set(COMPOSE["services"])


def test_the_multi_machine_shape():
    services = set(COMPOSE["services"])
    for needed in ("postgres", "catalog", "redis", "airflow-apiserver", "airflow-scheduler",
                   "airflow-dag-processor", "airflow-triggerer", "airflow-worker"):  # fmt: skip
        assert needed in services
        if needed != "airflow-init":
            assert "healthcheck" in COMPOSE["services"][needed], needed
    assert "newsflow-data" in COMPOSE["volumes"]


def test_the_cluster_and_docker_compose_give_the_components_the_same_settings():
    """`make cluster` (scripts/cluster.py) and docker-compose.yml describe one shape: every
    setting the cluster gives its components, docker-compose gives them too."""
    from scripts.cluster import AIRFLOW_SETTINGS

    common = COMPOSE["x-airflow-common"]["environment"]
    missing = sorted(set(AIRFLOW_SETTINGS) - set(common))
    assert not missing, f"docker-compose.yml lacks {missing}"
    assert common["AIRFLOW__CORE__EXECUTOR"] == AIRFLOW_SETTINGS["AIRFLOW__CORE__EXECUTOR"]


def test_secrets_come_from_env_without_defaults():
    text = (ROOT / "docker-compose.yml").read_text(encoding="utf-8")
    example = (ROOT / ".env.example").read_text(encoding="utf-8")
    for name in SECRETS:
        # ${NAME:?message}: docker-compose refuses to run without it
        assert re.search(r"\$\{" + re.escape(name) + r":\?", text), name
        assert re.search(rf"^{re.escape(name)}=change-me", example, flags=re.M), name


def test_the_airflow_group_is_installed_at_its_pins_and_matches_the_image():
    """The Celery stack runs at the versions pyproject.toml pins (what uv.lock installs; the
    cluster tests run it), and docker-compose's image is built on the same Airflow release."""
    import importlib.metadata
    import tomllib

    pins = tomllib.loads((ROOT / "pyproject.toml").read_text())["dependency-groups"]["airflow"]
    for pin in pins:
        name, _, version = pin.partition("==")
        assert version, f"{pin} is not pinned"
        assert importlib.metadata.version(name) == version, name
    airflow = next(p.partition("==")[2] for p in pins if p.startswith("apache-airflow=="))
    dockerfile = (ROOT / "docker" / "Dockerfile").read_text()
    assert f"apache/airflow:{airflow}-" in dockerfile
