"""Fixtures of the snapshot store tests: a private PostgreSQL cluster, SQLite files, a forecast.

The PostgreSQL cluster is real: ``initdb`` into a temporary directory, ``pg_ctl -w start`` on a
free loopback port (its unix socket in the same directory), one fresh database per test, stopped
at the end of the session. Without the server binaries the tests fail and say how to install
them (scripts/test-deps.sh); they are not skipped, so a missing PostgreSQL cannot pass as green.
"""

from __future__ import annotations

import glob
import json
import os
import pwd
import shutil
import subprocess
import tempfile
import uuid
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from contract.validation import parse_event
from core.domain import DomainConfig
from forecasts.live import OrganisationForecast, forecast_organisation
from services.demo.scenario import Scenario, generate_scenario
from services.processes.supervised import free_port, wait_until
from streams.aggregation import apply_events, leaf_series, state_key

POSTGRES_START_TIMEOUT_S = 60
DB_YEAR = 2024
DB_AS_OF = 3


def find_postgres_bin() -> Path | None:
    """The directory with initdb and pg_ctl: the newest /usr/lib/postgresql/*/bin, else PATH."""
    candidates = sorted(
        glob.glob("/usr/lib/postgresql/*/bin"), key=lambda p: int(Path(p).parent.name)
    )
    for directory in reversed(candidates):
        if (Path(directory) / "initdb").is_file() and (Path(directory) / "pg_ctl").is_file():
            return Path(directory)
    initdb, pg_ctl = shutil.which("initdb"), shutil.which("pg_ctl")
    if initdb and pg_ctl:
        return Path(os.path.realpath(initdb)).parent
    return None


def _server_user() -> pwd.struct_passwd | None:
    """PostgreSQL refuses to run as root: as root, run it as ``postgres`` (or ``nobody``)."""
    if os.geteuid() != 0:
        return None
    for name in ("postgres", "nobody"):
        try:
            return pwd.getpwnam(name)
        except KeyError:
            continue
    raise RuntimeError("running as root and neither user 'postgres' nor 'nobody' exists")


class PostgresCluster:
    """A throw-away cluster: trust authentication, loopback only, fsync off (test data)."""

    def __init__(self, bin_dir: Path) -> None:
        self.bin_dir = bin_dir
        self.user = _server_user()
        # Not under pytest's tmp dir: that is private to root, and the server may run as postgres.
        self.base = Path(tempfile.mkdtemp(prefix="budgetvakt-pg-"))
        self.data_dir = self.base / "data"
        self.socket_dir = self.base / "socket"
        self.log_path = self.base / "postgres.log"
        self.port = free_port()
        self.superuser = "budgetvakt"
        self.socket_dir.mkdir()
        if self.user is not None:
            for path in (self.base, self.socket_dir):
                os.chown(path, self.user.pw_uid, self.user.pw_gid)

    def _run(self, *args: str, timeout_s: float = POSTGRES_START_TIMEOUT_S) -> None:
        command = [str(self.bin_dir / args[0]), *args[1:]]
        completed = subprocess.run(
            command,
            cwd=self.base,
            capture_output=True,
            text=True,
            timeout=timeout_s,
            check=False,
            user=self.user.pw_uid if self.user else None,
            group=self.user.pw_gid if self.user else None,
            env={**os.environ, "LC_ALL": "C", "HOME": str(self.base)},
        )
        if completed.returncode != 0:
            log = self.log_path.read_text() if self.log_path.exists() else ""
            raise RuntimeError(
                f"{' '.join(command)} failed ({completed.returncode}):\n"
                f"{completed.stdout}\n{completed.stderr}\n{log[-3000:]}"
            )

    def start(self) -> None:
        self._run(
            "initdb",
            "-D", str(self.data_dir),
            "-U", self.superuser,
            "-A", "trust",
            "-E", "UTF8",
            "--no-locale",
            "--no-sync",
        )  # fmt: skip
        options = (
            f"-p {self.port} -k {self.socket_dir} -c listen_addresses=127.0.0.1 "
            "-c fsync=off -c synchronous_commit=off -c full_page_writes=off"
        )
        self._run(
            "pg_ctl",
            "-D", str(self.data_dir),
            "-l", str(self.log_path),
            "-o", options,
            "-w",
            "-t", str(POSTGRES_START_TIMEOUT_S),
            "start",
        )  # fmt: skip
        wait_until(self.accepts_connections, POSTGRES_START_TIMEOUT_S, "PostgreSQL accepts")

    def stop(self) -> None:
        try:
            if (self.data_dir / "postmaster.pid").exists():
                self._run("pg_ctl", "-D", str(self.data_dir), "-m", "fast", "-w", "stop")
        finally:
            shutil.rmtree(self.base, ignore_errors=True)

    def url(self, database: str = "postgres") -> str:
        return f"postgresql+psycopg2://{self.superuser}@127.0.0.1:{self.port}/{database}"

    def _connect(self, database: str = "postgres") -> Any:
        import psycopg2

        return psycopg2.connect(
            host="127.0.0.1",
            port=self.port,
            user=self.superuser,
            dbname=database,
            connect_timeout=5,
        )

    def accepts_connections(self) -> bool:
        import psycopg2

        try:
            self._connect().close()
            return True
        except psycopg2.OperationalError:
            return False

    def create_database(self) -> str:
        name = f"t_{uuid.uuid4().hex[:12]}"
        connection = self._connect()
        connection.autocommit = True
        try:
            with connection.cursor() as cursor:
                cursor.execute(f'CREATE DATABASE "{name}"')
        finally:
            connection.close()
        return name

    def drop_database(self, name: str) -> None:
        connection = self._connect()
        connection.autocommit = True
        try:
            with connection.cursor() as cursor:
                cursor.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            connection.close()


@pytest.fixture(scope="session")
def postgres_cluster() -> Iterator[PostgresCluster]:
    bin_dir = find_postgres_bin()
    if bin_dir is None:
        pytest.fail(
            "PostgreSQL server binaries (initdb, pg_ctl) not found under "
            "/usr/lib/postgresql/*/bin or on PATH: run scripts/test-deps.sh to install them",
            pytrace=False,
        )
    cluster = PostgresCluster(bin_dir)
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture
def postgres_url(postgres_cluster: PostgresCluster) -> Iterator[str]:
    """A fresh, empty database of the session cluster."""
    name = postgres_cluster.create_database()
    try:
        yield postgres_cluster.url(name)
    finally:
        postgres_cluster.drop_database(name)


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'store.sqlite'}"


# The PostgreSQL variant of every test that takes this fixture is an integration test.
@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.integration)])
def database_url(request: pytest.FixtureRequest) -> str:
    """An empty database of each supported kind (SQLite file, private PostgreSQL)."""
    fixture = "sqlite_url" if request.param == "sqlite" else "postgres_url"
    url: str = request.getfixturevalue(fixture)
    return url


@pytest.fixture
def migrated_url(database_url: str) -> str:
    from services.snapshots import upgrade

    upgrade(database_url)
    return database_url


@pytest.fixture
def store_engine(migrated_url: str) -> Iterator[Any]:
    from services.snapshots import make_engine

    engine = make_engine(migrated_url)
    try:
        yield engine
    finally:
        engine.dispose()


# --- A small real forecast ------------------------------------------------------------------


@dataclass(frozen=True)
class ForecastCase:
    domain: DomainConfig
    scenario: Scenario
    items: dict[str, Any]  # table values of every event, keyed by state_key(0, event)
    forecast: OrganisationForecast  # DB_YEAR as of DB_AS_OF


def aggregate_events(events: list[dict[str, Any]], domain: DomainConfig) -> dict[str, Any]:
    """The worker's aggregation of contract events, all on partition 0."""
    groups: dict[str, list[Any]] = defaultdict(list)
    for event in events:
        parsed = parse_event(json.dumps(event).encode("utf-8"), domain)
        groups[state_key(0, parsed)].append(parsed)
    return {key: apply_events(None, group, domain).value for key, group in groups.items()}


@pytest.fixture(scope="session")
def forecast_case(domain: DomainConfig) -> ForecastCase:
    scenario = generate_scenario(
        seed=7, start_year=DB_YEAR - 1, years=2, overrun=True, domain=domain
    )
    items = aggregate_events(scenario.all_events(), domain)
    leaves, _ = leaf_series(items.items(), DB_YEAR)
    forecast = forecast_organisation(leaves, domain, DB_YEAR, DB_AS_OF, model="auto")
    return ForecastCase(domain, scenario, items, forecast)


def forecast_as_of(case: ForecastCase, month: int) -> OrganisationForecast:
    leaves, _ = leaf_series(case.items.items(), DB_YEAR)
    return forecast_organisation(leaves, case.domain, DB_YEAR, month, model="auto")


# --- A kommun of two nämnder (the demo's VON and a smaller BUN) --------------------------------

#: BUN's enheter: copies of the äldreomsorg's, ids prefixed "B", amounts halved.
KOMMUN_BUN_UNITS = ("1110", "1120", "1210", "1220")
KOMMUN_MUNICIPALITY = "Storvik kommun"


@dataclass(frozen=True)
class KommunCase:
    """The shipped configuration with ``config/org.yaml`` as a kommun of two nämnder (VON, the
    demo's, and BUN), with events for both and each nämnd's forecast of DB_YEAR as of DB_AS_OF."""

    config_dir: Path
    domain: DomainConfig
    items: dict[str, Any]
    forecasts: dict[str, OrganisationForecast]  # owner → its forecast (VON, BUN)


def _bun_tree() -> dict[str, Any]:
    return {
        "id": "BUN",
        "name": "Barn- och utbildningsnämnden",
        "level": "namnd",
        "children": [
            {
                "id": "BUF",
                "name": "Barn- och utbildningsförvaltningen",
                "level": "forvaltning",
                "children": [
                    {
                        "id": "BFS",
                        "name": "Förskola",
                        "level": "avdelning",
                        "children": [
                            {"id": f"B{unit}", "name": f"Förskola {unit}", "level": "enhet"}
                            for unit in KOMMUN_BUN_UNITS
                        ],
                    }
                ],
            }
        ],
    }


def write_kommun_config(target: Path) -> Path:
    """A copy of the shipped configuration whose org.yaml holds VON and BUN in one kommun."""
    import yaml

    from core.settings import DEFAULT_CONFIG_DIR

    shutil.copytree(DEFAULT_CONFIG_DIR, target)
    shipped = yaml.safe_load((DEFAULT_CONFIG_DIR / "org.yaml").read_text(encoding="utf-8"))
    document = {"municipality": KOMMUN_MUNICIPALITY, "namnder": [shipped["tree"], _bun_tree()]}
    (target / "org.yaml").write_text(yaml.safe_dump(document, allow_unicode=True), "utf-8")
    return target


def kommun_events(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The demo's events plus BUN's: the äldreomsorg's costs and budgets, halved, as BUN's."""
    out = list(events)
    for event in events:
        unit = event.get("org_unit")
        if event["type"] == "period_close":
            out.append({**event, "event_id": event["event_id"] + "-BUN", "org_unit": "BUN"})
        elif unit in KOMMUN_BUN_UNITS and event["type"] in ("cost", "budget"):
            copy = {**event, "event_id": event["event_id"] + "-BUN", "org_unit": f"B{unit}"}
            for key in ("amount_sek", "annual"):
                if key in copy:
                    copy[key] = copy[key] / 2
            if "monthly" in copy:
                copy["monthly"] = [value / 2 for value in copy["monthly"]]
            out.append(copy)
    return out


def kommun_forecasts(case: KommunCase, month: int) -> dict[str, OrganisationForecast]:
    from services.snapshots.store import split_by_owner

    leaves, _ = leaf_series(case.items.items(), DB_YEAR)
    whole = forecast_organisation(leaves, case.domain, DB_YEAR, month, model="auto")
    return split_by_owner(whole, case.domain.org)


@pytest.fixture(scope="session")
def kommun_case(
    tmp_path_factory: pytest.TempPathFactory, forecast_case: ForecastCase
) -> KommunCase:
    from services.config.domain import load_domain_config

    config_dir = write_kommun_config(tmp_path_factory.mktemp("kommun") / "config")
    domain = load_domain_config(config_dir)
    items = aggregate_events(kommun_events(forecast_case.scenario.all_events()), domain)
    case = KommunCase(config_dir, domain, items, {})
    forecasts = kommun_forecasts(case, DB_AS_OF)
    return KommunCase(config_dir, domain, items, forecasts)
