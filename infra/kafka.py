"""The local Apache Kafka broker: one KRaft node (broker + controller) on 127.0.0.1.

Kafka is assembled from Maven Central jars (``infra/pom.xml``), so a developer needs only a Java
runtime and Maven: no tarball to unpack, no Docker. Data lives under ``<home>/kafka/data`` and
survives ``down`` + ``up`` because storage is formatted only once.

This module must not import Kafka clients or other project packages: it starts the broker that
those clients need, and it judges readiness from the process, its TCP port and its log line
``Kafka Server started``.

    launcher = KafkaLauncher(home=Path(".kaizen"))
    launcher.up()       # 'started in 4.2s (pid 4242)'; a second call: 'already running'
    launcher.bootstrap  # '127.0.0.1:19092'
    launcher.down()     # 'stopped (pid 4242)'

CLI (used by the Makefile): ``python -m kaizen.infra.kafka fetch|up|down|status``
(options: ``--home DIR --port N``).
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kaizen.errors import KaizenError

KAFKA_VERSION = "3.9.1"
POM = Path(__file__).with_name("pom.xml")
READY_LINE = "Kafka Server started"
MAIN_CLASS = "kafka.Kafka"
# C1-only JIT and the serial collector start the broker faster on a small box. Measured on 2 cores:
# `up` in ~2.5-3.8 s, against ~3.8 s with G1 and ~5.5 s with the full (C2) JIT.
FAST_START_JVM = ("-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1")
JVM_OPTS = ("-Xms256m", "-Xmx1g", *FAST_START_JVM, "-XX:+ExitOnOutOfMemoryError")
INSTALL_HINT = "run `bash infra/install-system-deps.sh` (Debian/Ubuntu, as root) or install it"

LOG4J_PROPERTIES = """\
# Written by infra/kafka.py: INFO to stdout (-> broker.log), Kafka's chatter at WARN.
log4j.rootLogger=INFO, stdout
log4j.appender.stdout=org.apache.log4j.ConsoleAppender
log4j.appender.stdout.layout=org.apache.log4j.PatternLayout
log4j.appender.stdout.layout.ConversionPattern=[%d] %p %m (%c)%n
log4j.logger.kafka=WARN
log4j.logger.org.apache.kafka=WARN
log4j.logger.state.change.logger=WARN
log4j.logger.kafka.request.logger=WARN
# The readiness line the launcher waits for.
log4j.logger.kafka.server.KafkaRaftServer=INFO
"""

# Brokers spawned by this interpreter, kept so they can be reaped (no zombies, no warnings).
_CHILDREN: dict[int, subprocess.Popen[bytes]] = {}


class KafkaLauncherError(KaizenError, RuntimeError):
    """The local broker cannot be fetched, started or stopped; the message says what to do."""


def default_jar_cache() -> Path:
    """Where the jars go unless told otherwise: shared by every checkout of the project."""
    return Path.home() / ".cache" / "kaizen" / "jars"


def libs_dir(cache_dir: Path) -> Path:
    """The classpath directory for this Kafka version inside a jar cache."""
    return cache_dir / f"kafka-{KAFKA_VERSION}" / "libs"


def fetch_jars(cache_dir: Path) -> Path:
    """Copy the broker's jars from Maven Central into the cache, once; return the libs dir.

    A marker file is written only after Maven succeeds, so an interrupted fetch is retried.
    """
    libs = libs_dir(cache_dir)
    marker = libs.parent / ".fetched"
    if marker.exists():
        return libs
    mvn = _require("mvn", "Maven")
    _require("java", "a Java runtime (17+)")
    _say(f"fetching Kafka {KAFKA_VERSION} jars from Maven Central (once) into {libs} ...")
    libs.mkdir(parents=True, exist_ok=True)
    goal = ["dependency:copy-dependencies", f"-DoutputDirectory={libs}"]
    result = _run([mvn, "-B", "-q", "-f", str(POM), *goal])
    if result.returncode != 0 or not any(libs.glob("kafka_2.13-*.jar")):
        raise KafkaLauncherError(
            f"mvn could not fetch the Kafka jars (exit {result.returncode}); "
            f"is Maven Central reachable?\n{_tail(result.stdout + result.stderr)}"
        )
    marker.write_text(f"kafka_2.13 {KAFKA_VERSION}\n")
    _say(f"Kafka jars ready in {libs}")
    return libs


@dataclass(frozen=True)
class KafkaLauncher:
    """Start, inspect and stop the single-node broker whose state lives under ``home``.

    Every method is idempotent and safe to call from another process than the one that
    started the broker: the pid file under ``home/kafka`` is the shared truth.
    """

    home: Path
    port: int = 19092
    controller_port: int = 19093
    cache_dir: Path | None = None
    port_options: str = "--port / --controller-port"  # how the caller's user changes the ports
    secure: bool = False  # SASL/SCRAM + ACLs (`kaizen up --secure`); see `secure_settings`
    # One node of a cluster (infra/cluster.py): its id, the controller quorum, the replication
    # its topics get by default, and its own directory under home.
    node_id: int = 1
    quorum: str = ""  # controller.quorum.voters; empty: this node alone
    replication: int = 1
    node_dir: str = "kafka"

    def __post_init__(self) -> None:
        # Absolute once, so a later chdir cannot point the launcher at another data dir.
        object.__setattr__(self, "home", Path(self.home).expanduser().absolute())

    @property
    def bootstrap(self) -> str:
        """The ``bootstrap.servers`` value for clients of this broker."""
        return f"127.0.0.1:{self.port}"

    @property
    def kafka_dir(self) -> Path:
        return self.home / self.node_dir

    @property
    def data_dir(self) -> Path:
        return self.kafka_dir / "data"

    @property
    def log_file(self) -> Path:
        return self.kafka_dir / "broker.log"

    @property
    def pid_file(self) -> Path:
        return self.kafka_dir / "broker.pid"

    @property
    def jar_cache(self) -> Path:
        return self.cache_dir if self.cache_dir is not None else default_jar_cache()

    def up(self, timeout: float = 60) -> str:
        """Start the broker unless it runs already; return once it answers on its port."""
        pid = self._live_pid()
        if pid is not None:
            self._wait_ready(pid, timeout)
            return "already running"
        started = time.monotonic()
        pid = self.start()
        self.wait_ready(pid, timeout)
        return f"started in {time.monotonic() - started:.1f}s (pid {pid})"

    def start(self) -> int:
        """Spawn the broker without waiting for it (a cluster starts every node, then waits);
        returns its pid, or the running one's."""
        pid = self._live_pid()
        if pid is not None:
            return pid
        java = _require("java", "a Java runtime (17+)")
        for port in (self.port, self.controller_port):
            _ensure_port_free(port, self.port_options)
        libs = fetch_jars(self.jar_cache)
        self._write_config()
        self._format_storage_once(java, libs)
        return self._spawn(java, libs)

    def wait_ready(self, pid: int, timeout: float = 60) -> None:
        """Return once the broker answers; stop it and raise if it cannot start."""
        try:
            self._wait_ready(pid, timeout)
        except KafkaLauncherError:
            self.down()  # a half-started broker must not keep the ports or the data dir
            raise

    def down(self, timeout: float = 30) -> str:
        """Stop the broker with SIGTERM (a clean shutdown keeps the log), SIGKILL if it hangs."""
        pid = self._live_pid()
        if pid is None:
            return "not running"
        _signal(pid, signal.SIGTERM)
        if not self._wait_exit(pid, timeout):
            _signal(pid, signal.SIGKILL)
            if not self._wait_exit(pid, 10):
                raise KafkaLauncherError(f"broker pid {pid} survived SIGKILL")
        self.pid_file.unlink(missing_ok=True)
        return f"stopped (pid {pid})"

    def status(self) -> dict[str, Any]:
        """What ``kaizen status`` shows: whether it runs, where, and where to look."""
        pid = self._live_pid()
        return {
            "running": pid is not None and self.is_answering(),
            "pid": pid,
            "bootstrap": self.bootstrap,
            "data_dir": str(self.data_dir),
            "log_file": str(self.log_file),
        }

    def is_answering(self) -> bool:
        """True once this start of the broker logged readiness and accepts TCP connections.

        The log is rotated at each start, so an old run's readiness line cannot fool it.
        """
        return _log_contains(self.log_file, READY_LINE) and _tcp_open(self.port)

    def _live_pid(self) -> int | None:
        """The broker's pid if its pid file names a live broker of this home; else clean up."""
        try:
            pid = int(self.pid_file.read_text().strip())
        except (FileNotFoundError, ValueError):
            return None
        if self._is_our_broker(pid):
            return pid
        self.pid_file.unlink(missing_ok=True)
        return None

    def _is_our_broker(self, pid: int) -> bool:
        """Alive, not a zombie, and (where /proc exists) really our broker, not a reused pid."""
        child = _CHILDREN.get(pid)
        if child is not None:  # ours: poll() also reaps it, and /proc may lag right after exec
            if child.poll() is None:
                return True
            del _CHILDREN[pid]
            return False
        try:
            os.kill(pid, 0)
        except (ProcessLookupError, PermissionError):
            return False
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            return True
        return str(self._server_properties).encode() in cmdline

    @property
    def _server_properties(self) -> Path:
        return self.kafka_dir / "server.properties"

    @property
    def _log4j_properties(self) -> Path:
        return self.kafka_dir / "log4j.properties"

    def _write_config(self) -> None:
        """Rewrite the configs each start, so a changed port takes effect."""
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self._server_properties.write_text(self._server_config())
        if self.secure:  # it holds the admin password
            self._server_properties.chmod(0o600)
        self._log4j_properties.write_text(LOG4J_PROPERTIES)

    def _server_config(self) -> str:
        listener = f"127.0.0.1:{self.port}"
        controller = f"127.0.0.1:{self.controller_port}"
        settings = {
            "process.roles": "broker,controller",
            "node.id": str(self.node_id),
            "controller.quorum.voters": self.quorum or f"{self.node_id}@{controller}",
            "listeners": f"PLAINTEXT://{listener},CONTROLLER://{controller}",
            "advertised.listeners": f"PLAINTEXT://{listener}",
            "controller.listener.names": "CONTROLLER",
            "inter.broker.listener.name": "PLAINTEXT",
            "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
            "log.dirs": str(self.data_dir),
            "num.partitions": "1",
            "default.replication.factor": str(self.replication),
            "min.insync.replicas": str(min(2, self.replication)),
            "auto.create.topics.enable": "true",  # faust creates its internal topics this way
            "offsets.topic.replication.factor": str(self.replication),
            "transaction.state.log.replication.factor": str(self.replication),
            "transaction.state.log.min.isr": str(min(2, self.replication)),
            "group.initial.rebalance.delay.ms": "0",
            # A cluster's nodes start together on a busy box: wait for the quorum, not 60 s.
            "initial.broker.registration.timeout.ms": "300000",
            # One node, small box: fewer threads, and one partition for each internal topic
            # instead of 50, so the first consumer group and transaction come up at once.
            "offsets.topic.num.partitions": "1",
            "transaction.state.log.num.partitions": "1",
            "num.network.threads": "2",
            "num.io.threads": "4",
            "log.cleaner.dedupe.buffer.size": str(32 * 1024 * 1024),
        }
        if self.secure:
            settings.update(secure_settings(listener, controller, self.credentials()))
        lines = [f"{key}={value}" for key, value in settings.items()]
        return "# Written by infra/kafka.py at each start; edit KafkaLauncher instead.\n" + (
            "\n".join(lines) + "\n"
        )

    def _format_storage_once(self, java: str, libs: Path) -> None:
        """Format the log dir on first start only: formatting again would drop the data."""
        if (self.data_dir / "meta.properties").exists():
            if self.secure and not self._formatted_secure.exists():
                raise KafkaLauncherError(
                    f"{self.data_dir} was formatted without SCRAM users; secure mode needs a "
                    f"fresh home (KAIZEN_HOME) or `kaizen down` and removing {self.data_dir}"
                )
            return
        tool = ["kafka.tools.StorageTool", "format", "-t", self._cluster_id()]
        if self.secure:
            tool += scram_format_args(self.credentials())
        config = ["-c", str(self._server_properties)]
        result = _run([java, *FAST_START_JVM, *self._java_props(libs), *tool, *config])
        if result.returncode != 0:
            raise KafkaLauncherError(
                f"formatting {self.data_dir} failed (exit {result.returncode}):\n"
                f"{_tail(result.stdout + result.stderr)}"
            )
        if self.secure:
            self._formatted_secure.write_text("SCRAM users bootstrapped at format\n")

    @property
    def _formatted_secure(self) -> Path:
        return self.kafka_dir / "scram.formatted"

    def credentials(self) -> dict[str, str]:
        """The SCRAM users of the secure broker (principal -> password), created once."""
        return ensure_credentials(self.kafka_dir / CREDENTIALS_FILE)

    def _cluster_id(self) -> str:
        """The cluster id, kept in a file so a wiped data dir is re-formatted with the same id."""
        path = self.kafka_dir / "cluster.id"
        if path.exists():
            return path.read_text().strip()
        cluster_id = _random_kafka_uuid()
        path.write_text(cluster_id + "\n")
        return cluster_id

    def _java_props(self, libs: Path) -> list[str]:
        return [f"-Dlog4j.configuration=file:{self._log4j_properties}", "-cp", str(libs / "*")]

    def _spawn(self, java: str, libs: Path) -> int:
        """Start the broker detached (own session), its output in broker.log; write the pid."""
        if self.log_file.exists():
            self.log_file.replace(self.log_file.with_name("broker.previous.log"))
        config = str(self._server_properties)
        command = [java, *JVM_OPTS, *self._java_props(libs), MAIN_CLASS, config]
        with self.log_file.open("ab") as log:
            child = subprocess.Popen(
                command,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=self.kafka_dir,
                start_new_session=True,  # a Ctrl-C in the caller's terminal must not stop it
            )
        _CHILDREN[child.pid] = child
        self.pid_file.write_text(f"{child.pid}\n")
        return child.pid

    def _wait_ready(self, pid: int, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while not self.is_answering():
            if not self._is_our_broker(pid):
                self.pid_file.unlink(missing_ok=True)
                raise KafkaLauncherError(
                    f"the broker exited during startup; last lines of {self.log_file}:\n"
                    f"{_tail_file(self.log_file)}"
                )
            if time.monotonic() > deadline:
                raise KafkaLauncherError(
                    f"the broker (pid {pid}) did not answer on {self.bootstrap} within "
                    f"{timeout:g}s; last lines of {self.log_file}:\n{_tail_file(self.log_file)}"
                )
            time.sleep(0.1)

    def _wait_exit(self, pid: int, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while self._is_our_broker(pid):
            if time.monotonic() > deadline:
                return False
            time.sleep(0.1)
        return True


# --- secure mode: SASL/SCRAM on the client listener, StandardAuthorizer with ACLs -------------

CREDENTIALS_FILE = "credentials.json"
SCRAM_MECHANISM = "SCRAM-SHA-512"
#: The principals of a secure local stack; ACLs per role are applied by `streams/acls.py`.
PRINCIPALS = ("admin", "recorder", "processor", "service")


def ensure_credentials(path: Path) -> dict[str, str]:
    """Random passwords for each principal, written once (mode 0600) next to the broker data."""
    if path.exists():
        return dict(json.loads(path.read_text()))
    path.parent.mkdir(parents=True, exist_ok=True)
    creds = {name: secrets.token_urlsafe(24) for name in PRINCIPALS}
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as out:
        json.dump(creds, out, indent=2)
    return creds


def scram_format_args(creds: dict[str, str]) -> list[str]:
    """`kafka-storage format --add-scram` for every principal: KRaft keeps SCRAM credentials in
    the metadata log, so the first ones must be there before the broker starts."""
    args: list[str] = []
    for name, password in creds.items():
        args += ["--add-scram", f"{SCRAM_MECHANISM}=[name={name},password={password}]"]
    return args


def secure_settings(listener: str, controller: str, creds: dict[str, str]) -> dict[str, str]:
    """Broker settings for SASL/SCRAM clients and deny-by-default ACLs.

    The controller listener uses SASL/PLAIN with a static admin user, because KRaft controllers
    cannot authenticate SCRAM (its credentials live in the metadata they serve)."""
    admin = creds["admin"]
    scram = f'org.apache.kafka.common.security.scram.ScramLoginModule required ' \
            f'username="admin" password="{admin}";'
    plain = f'org.apache.kafka.common.security.plain.PlainLoginModule required ' \
            f'username="admin" password="{admin}" user_admin="{admin}";'
    return {
        "listeners": f"SASL_PLAINTEXT://{listener},CONTROLLER://{controller}",
        "advertised.listeners": f"SASL_PLAINTEXT://{listener}",
        "inter.broker.listener.name": "SASL_PLAINTEXT",
        "listener.security.protocol.map": "SASL_PLAINTEXT:SASL_PLAINTEXT,CONTROLLER:SASL_PLAINTEXT",
        "sasl.enabled.mechanisms": SCRAM_MECHANISM,
        "sasl.mechanism.inter.broker.protocol": SCRAM_MECHANISM,
        "sasl.mechanism.controller.protocol": "PLAIN",
        "listener.name.controller.sasl.enabled.mechanisms": "PLAIN",
        "listener.name.controller.plain.sasl.jaas.config": plain,
        f"listener.name.sasl_plaintext.{SCRAM_MECHANISM.lower()}.sasl.jaas.config": scram,
        "authorizer.class.name": "org.apache.kafka.metadata.authorizer.StandardAuthorizer",
        "super.users": "User:admin",
        "allow.everyone.if.no.acl.found": "false",
    }


def _require(tool: str, what: str) -> str:
    path = shutil.which(tool)
    if path is None:
        raise KafkaLauncherError(
            f"`{tool}` was not found on PATH: the local Kafka needs {what}; {INSTALL_HINT}"
        )
    return path


def _ensure_port_free(port: int, options: str) -> None:
    """Fail early, with the port in the message, rather than let the JVM die on bind."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        # SO_REUSEADDR like the JVM: TIME_WAIT leftovers of our last run must not count.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError as error:
            raise KafkaLauncherError(
                f"port {port} on 127.0.0.1 is already in use by another process ({error}); "
                f"stop that process or choose other ports ({options})"
            ) from error


def _tcp_open(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


def _log_contains(path: Path, text: str) -> bool:
    try:
        return text in path.read_text(errors="replace")
    except FileNotFoundError:
        return False


def _random_kafka_uuid() -> str:
    """A Kafka ``Uuid`` string (url-safe base64, 22 chars); never starting with '-' as Kafka's."""
    while True:
        text = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        if not text.startswith("-"):
            return text


def _signal(pid: int, signum: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signum)


def _run(command: list[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(command, capture_output=True, text=True, check=False)


def _tail(text: str, lines: int = 20) -> str:
    return "\n".join(text.strip().splitlines()[-lines:])


def _tail_file(path: Path, lines: int = 20) -> str:
    try:
        return _tail(path.read_text(errors="replace"), lines)
    except FileNotFoundError:
        return "(no log written)"


def _say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--home", type=Path, default=Path(".kaizen"), help="data dir")
    common.add_argument("--port", type=int, default=19092, help="client (PLAINTEXT) port")
    common.add_argument("--controller-port", type=int, help="KRaft controller port (port + 1)")
    common.add_argument("--cache-dir", type=Path, help="jar cache (env KAIZEN_JAR_CACHE)")
    common.add_argument("--timeout", type=float, help="seconds to wait (up: 60, down: 30)")
    common.add_argument("--secure", action="store_true", help="SASL/SCRAM and ACLs (up)")
    parser = argparse.ArgumentParser(
        prog="python -m kaizen.infra.kafka", description="The local single-node Kafka (KRaft)."
    )
    commands = parser.add_subparsers(dest="command", required=True)
    for name, help_text in (
        ("fetch", "download the broker jars from Maven Central (once)"),
        ("up", "start the local broker (idempotent)"),
        ("down", "stop the local broker (idempotent)"),
        ("status", "print the broker's state as JSON"),
    ):
        commands.add_parser(name, parents=[common], help=help_text)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """CLI entry: the only place that reads the environment (``KAIZEN_JAR_CACHE``)."""
    args = _parser().parse_args(argv)
    env_cache = os.environ.get("KAIZEN_JAR_CACHE")
    cache = args.cache_dir or (Path(env_cache) if env_cache else default_jar_cache())
    launcher = KafkaLauncher(
        home=args.home,
        port=args.port,
        cache_dir=cache,
        controller_port=args.controller_port or args.port + 1,
        secure=args.secure,
    )
    try:
        if args.command == "fetch":
            print(fetch_jars(cache))
        elif args.command == "up":
            print(f"kafka {launcher.up(args.timeout or 60)} at {launcher.bootstrap}")
        elif args.command == "down":
            print(f"kafka {launcher.down(args.timeout or 30)}")
        else:
            print(json.dumps(launcher.status(), indent=2))
    except KafkaLauncherError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
