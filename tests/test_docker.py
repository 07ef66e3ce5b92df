"""The Docker files, checked without a Docker engine: hadolint, the Compose specification's schema,
and the promises docs/docker.md makes (the worker uses luigid, no secret in a file, non-root, loopback
ports, volumes where the data is), read from the files themselves and through Luigi's own parser."""

from __future__ import annotations

import configparser
import fnmatch
import json
import re
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path, PurePosixPath
from urllib.parse import urlsplit

import luigi.interface
import pytest
from luigi.cmdline_parser import CmdlineParser
from luigi.configuration.cfg_parser import LuigiConfigParser
from luigi.task_register import Register
from ruamel.yaml import YAML  # check-jsonschema's own YAML reader

from taxi_luigi import config

REPO = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent  # hadolint and check-jsonschema come with the test extra
DOCKERFILE = REPO / "Dockerfile"
COMPOSE = REPO / "docker-compose.yml"
WORKER_CFG = REPO / "docker" / "worker.cfg"
LUIGID_CFG = REPO / "docker" / "luigid.cfg"


def stages() -> dict[str, list[tuple[str, str]]]:
    """Stage name -> its instructions as (KEYWORD, arguments): continuations joined, comments dropped."""
    result: dict[str, list[tuple[str, str]]] = {}
    current, pending = "", ""
    for raw in DOCKERFILE.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        keyword, _, args = (pending + line).partition(" ")
        pending = ""
        if keyword.upper() == "FROM":
            image, current = re.fullmatch(r"(\S+)\s+AS\s+(\S+)", args.strip(), flags=re.IGNORECASE).groups()
            result[current] = [("FROM", image)]
        else:
            result[current].append((keyword.upper(), args.strip()))
    return result


def args(stage: str, keyword: str) -> list[str]:
    return [a for k, a in stages()[stage] if k == keyword]


def env(stage: str) -> dict[str, str]:
    """The stage's ENV, in the KEY=value form (values without spaces), the base image's included."""
    found = {} if stages()[stage][0][1] not in stages() else env(stages()[stage][0][1])
    for line in args(stage, "ENV"):
        found.update(pair.split("=", 1) for pair in line.split())
    return found


def compose() -> dict:
    return YAML(typ="safe").load(COMPOSE.read_text())


def with_defaults(value: str) -> str:
    """Compose's interpolation, for a file read without an environment: ${VAR:-default} -> default."""
    return re.sub(r"\$\{\w+:-([^}]*)\}", r"\1", value)


def cfg(path: Path) -> configparser.ConfigParser:
    parser = configparser.ConfigParser(interpolation=None)
    parser.read(path)
    return parser


@pytest.fixture
def luigi_config(monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[..., LuigiConfigParser]]:
    """Make Luigi read exactly the given files, as a container would; Luigi's caches cleared after."""

    def read(*paths: Path) -> LuigiConfigParser:
        monkeypatch.setattr(LuigiConfigParser, "_config_paths", [str(p) for p in paths])
        monkeypatch.setattr(LuigiConfigParser, "_instance", None)
        Register.clear_instance_cache()
        return LuigiConfigParser.instance()

    yield read
    Register.clear_instance_cache()


def test_hadolint_finds_nothing() -> None:
    done = subprocess.run([BIN / "hadolint", "--no-color", DOCKERFILE], capture_output=True, text=True, timeout=60)
    assert (done.returncode, done.stdout + done.stderr) == (0, "")
    # The same hadolint does report: an untagged base and a root USER are refused.
    bad = subprocess.run(
        [BIN / "hadolint", "--no-color", "-"], input="FROM python\nUSER root\n", capture_output=True, text=True
    )
    assert bad.returncode != 0
    assert "DL3006" in bad.stdout
    assert "DL3002" in bad.stdout


def test_compose_file_matches_the_compose_specification(tmp_path: Path) -> None:
    check = [BIN / "check-jsonschema", "--builtin-schema", "vendor.compose-spec"]
    done = subprocess.run([*check, COMPOSE], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr
    # The vendored schema is really applied: a misspelt key is refused.
    typo = tmp_path / "compose.yml"
    typo.write_text(COMPOSE.read_text().replace("depends_on:", "depend_on:"))
    refused = subprocess.run([*check, typo], capture_output=True, text=True, timeout=60)
    assert refused.returncode == 1
    assert "depend_on" in refused.stdout


def test_pipeline_is_the_default_stage_and_runs_the_cards_command() -> None:
    assert list(stages())[-1] == "pipeline"
    assert [json.loads(a) for a in args("pipeline", "ENTRYPOINT")] == [["luigi", "--module", "taxi_luigi"]]
    assert args("pipeline", "WORKDIR") == ["/app"]
    assert "luigi.cfg ./" in args("pipeline", "COPY")  # Luigi reads luigi.cfg from the working directory
    assert "scripts/ scripts/" in args("pipeline", "COPY")
    assert any('pip install --no-cache-dir ".[gcp,postgres,zones]"' in run for run in args("pipeline-build", "RUN"))
    assert "--from=pipeline-build /opt/venv /opt/venv" in args("pipeline", "COPY")
    assert env("pipeline")["PATH"].startswith("/opt/venv/bin:")


def test_the_compose_command_is_a_valid_task(luigi_config) -> None:
    luigi_config(REPO / "luigi.cfg")
    command = [with_defaults(word) for word in compose()["services"]["worker"]["command"]]
    entrypoint = json.loads(args("pipeline", "ENTRYPOINT")[0])
    with CmdlineParser.global_instance(entrypoint[1:] + command) as parser:
        task = parser.get_task_obj()
    assert (task.get_task_family(), task.service, task.year) == ("TaxiYear", "yellow", 2024)


def test_luigid_has_its_own_virtualenv_from_the_requirements_file() -> None:
    assert "scripts/luigid-requirements.txt /tmp/luigid-requirements.txt" in args("luigid-build", "COPY")
    (run,) = args("luigid-build", "RUN")
    assert "python -m venv /opt/luigid" in run
    assert "/opt/luigid/bin/pip install --no-cache-dir -r /tmp/luigid-requirements.txt" in run
    assert args("luigid", "COPY")[0] == "--from=luigid-build /opt/luigid /opt/luigid"
    assert env("luigid")["PATH"].startswith("/opt/luigid/bin:")
    assert json.loads(args("luigid", "ENTRYPOINT")[0]) == ["luigid", "--address", "0.0.0.0", "--port", "8082"]
    # Nothing of luigid's environment reaches the pipeline's, and the other way round.
    pipeline_text = str(stages()["pipeline-build"] + stages()["pipeline"])
    assert "luigid-requirements" not in pipeline_text
    assert "/opt/luigid" not in pipeline_text
    assert "/opt/venv" not in str(stages()["luigid-build"] + stages()["luigid"])


def test_luigid_config_records_history_in_its_volume(luigi_config, monkeypatch: pytest.MonkeyPatch) -> None:
    (volume,) = args("luigid", "VOLUME")
    history_url = env("luigid")["LUIGID_HISTORY_URL"]
    assert history_url.startswith(f"sqlite:///{volume}/")
    assert args("luigid", "COPY")[1] == "docker/luigid.cfg /etc/luigi/luigi.cfg"
    assert "/etc/luigi/luigi.cfg" in LuigiConfigParser._config_paths  # read by luigid without being named
    monkeypatch.setenv("LUIGID_HISTORY_URL", history_url)
    parser = luigi_config(LUIGID_CFG)
    assert parser.getboolean("scheduler", "record_task_history") is True
    assert PurePosixPath(parser.get("scheduler", "state_path")).parent == PurePosixPath(volume)
    assert parser.get("task_history", "db_connection") == history_url
    # From the environment only: a PostgreSQL URL (its password in PGPASSWORD) needs no file.
    monkeypatch.setenv("LUIGID_HISTORY_URL", "postgresql://luigid@postgres:5432/luigid")
    assert parser.get("task_history", "db_connection") == "postgresql://luigid@postgres:5432/luigid"
    # luigid, not the worker, enforces resources: the same limits as the local scheduler's.
    assert parser.getintdict("resources") == {k: int(v) for k, v in cfg(REPO / "luigi.cfg")["resources"].items()}


def test_worker_cfg_switches_to_luigid(luigi_config) -> None:
    worker = cfg(WORKER_CFG)
    assert worker.getboolean("core", "local_scheduler") is False
    url = urlsplit(worker["core"]["scheduler_url"])
    assert url.hostname in compose()["services"]
    assert url.hostname == "luigid"
    assert url.port == 8082
    # What Luigi itself makes of the container's files: /app/luigi.cfg, then LUIGI_CONFIG_PATH.
    luigi_config(REPO / "luigi.cfg", WORKER_CFG)
    core = luigi.interface.core()
    assert (core.local_scheduler, core.scheduler_url) == (False, "http://luigid:8082")
    assert config.warehouse().url == worker["warehouse"]["url"]


def test_worker_cfg_is_in_the_image_where_compose_points() -> None:
    worker = compose()["services"]["worker"]
    assert worker["build"]["target"] == "pipeline"
    assert compose()["services"]["luigid"]["build"]["target"] == "luigid"
    (workdir,) = args("pipeline", "WORKDIR")
    copied = [PurePosixPath(workdir, a.split()[1]) for a in args("pipeline", "COPY") if a.startswith("docker/worker")]
    assert copied == [PurePosixPath(worker["environment"]["LUIGI_CONFIG_PATH"])]


def test_warehouse_url_has_no_password_and_names_the_compose_database() -> None:
    services = compose()["services"]
    url = urlsplit(cfg(WORKER_CFG)["warehouse"]["url"])
    postgres = services["postgres"]["environment"]
    assert url.scheme == "postgresql"
    assert url.password is None
    assert (url.hostname, url.port) == ("postgres", 5432)
    assert (url.username, url.path) == (postgres["POSTGRES_USER"], "/" + postgres["POSTGRES_DB"])
    # The password reaches both sides from one variable of the environment, never from the file.
    secret = postgres["POSTGRES_PASSWORD"]
    assert re.fullmatch(r"\$\{POSTGRES_PASSWORD:\?[^}]+\}", secret)
    assert services["worker"]["environment"]["PGPASSWORD"] == secret


@pytest.mark.parametrize(
    "name", ["docker-compose.yml", "Dockerfile", "docker/worker.cfg", "docker/luigid.cfg", "docker/.env.example"]
)
def test_no_password_is_written_in_the_files(name: str) -> None:
    text = (REPO / name).read_text()
    for key, value in re.findall(r"(?im)^[\s-]*(\w*(?:password|passwd|secret)\w*)[ \t]*[:=][ \t]*(.*)$", text):
        assert value == "" or re.fullmatch(r"\$\{\w+:\?[^}]*\}", value), f"{key}: {value}"
    assert not re.search(r"://[^/@\s:]+:[^/@\s]+@", text), "a URL with a password"


def test_both_runtime_stages_run_as_the_unprivileged_user() -> None:
    (create,) = args("base", "RUN")
    uid, gid = re.search(r"--uid (\d+)", create)[1], re.search(r"groupadd .*--gid (\d+)", create)[1]
    assert int(uid) > 0
    assert int(gid) > 0
    for stage in ("luigid", "pipeline"):
        assert stages()[stage][0] == ("FROM", "base")
        assert args(stage, "USER")[-1] == f"{uid}:{gid}"  # the last USER is the one the container runs as


def test_base_image_is_a_pinned_slim_python() -> None:
    assert re.fullmatch(r"python:3\.1[0-3]-slim-bookworm(@sha256:[0-9a-f]{64})?", stages()["base"][0][1])


def test_data_lives_in_the_volumes_compose_mounts() -> None:
    services = compose()["services"]
    (data,) = args("pipeline", "VOLUME")
    assert data in [v.split(":")[1] for v in services["worker"]["volumes"]]
    assert args("luigid", "VOLUME")[0] in [v.split(":")[1] for v in services["luigid"]["volumes"]]
    assert any(f"ln -s {data} /app/data" in run for run in args("pipeline", "RUN"))
    # That link holds only while luigi.cfg keeps every local output under the relative data/.
    defaults = cfg(REPO / "luigi.cfg")
    assert defaults["paths"]["data_dir"] == "data"
    assert defaults["lake"]["root"].startswith("data/")
    assert defaults["warehouse"]["url"].startswith("duckdb:///data/")


def test_ports_are_published_on_loopback_only_and_workers_scale() -> None:
    services = compose()["services"]
    published = [p for s in services.values() for p in s.get("ports", [])]
    assert published
    assert all(p.startswith("127.0.0.1:") for p in published)
    assert "ports" not in services["worker"]
    assert "container_name" not in services["worker"]  # --scale worker=3 needs three names


def test_workers_wait_for_healthy_luigid_and_postgres() -> None:
    services = compose()["services"]
    needs = services["worker"]["depends_on"]
    assert {name: need["condition"] for name, need in needs.items()} == {
        "luigid": "service_healthy",
        "postgres": "service_healthy",
    }
    assert "http://127.0.0.1:8082/" in services["luigid"]["healthcheck"]["test"][-1]
    assert "pg_isready" in services["postgres"]["healthcheck"]["test"]


def ignored(path: str, patterns: list[str]) -> bool:
    """.dockerignore's rule for one path: the last pattern matching it or a parent directory wins."""
    verdict = False
    parts = PurePosixPath(path).parts
    for pattern in patterns:
        exclude = not pattern.startswith("!")
        glob = pattern.lstrip("!").rstrip("/")
        prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
        if any(fnmatch.fnmatchcase(p, glob) or fnmatch.fnmatchcase(p, glob.replace("**/", "")) for p in prefixes):
            verdict = exclude
    return verdict


def test_build_context_holds_what_the_dockerfile_copies_and_no_secrets() -> None:
    lines = [line.strip() for line in (REPO / ".dockerignore").read_text().splitlines()]
    patterns = [line for line in lines if line and not line.startswith("#")]
    sources = [src for s in stages() for a in args(s, "COPY") if not a.startswith("--from") for src in a.split()[:-1]]
    for source in sources:
        assert not ignored(source.rstrip("/"), patterns), source
    for private in ("docker/.env", ".venv/bin/python", ".git/config", "data/warehouse.duckdb", "tests/conftest.py"):
        assert ignored(private, patterns), private
    assert ignored("taxi_luigi/__pycache__/tasks.cpython-311.pyc", patterns)
