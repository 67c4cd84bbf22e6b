"""PostgreSQL for the project: the server the user points to, else a private one.

Order of precedence:
1. an Odoo config file given by LOYALTY_MLM_ODOO_CONFIG (its db_* options);
2. the standard libpq variables PGHOST / PGPORT / PGUSER / PGPASSWORD;
3. a private cluster under the run directory, started on demand.

The private cluster listens on a Unix socket only (no TCP), trusts local
connections and gets a dedicated `odoo` role: Odoo refuses to connect as the
`postgres` superuser, and initdb refuses to run as root, so as root the cluster
belongs to the Debian `postgres` system user. That user cannot enter a checkout
inside a private folder (/root, `mktemp -d`), so the cluster then lives under
/var/tmp instead (see `cluster_dir`).
"""

import configparser
import glob
import hashlib
import os
import pwd
import shutil
import stat
import subprocess
from pathlib import Path

from .shell import die, have_root, run, say

DB_ROLE = "odoo"
# Owner of the private cluster when we run as root.
CLUSTER_OWNER = "postgres"
# Where the cluster goes when the owner cannot reach the run directory.
FALLBACK_PARENT = Path("/var/tmp")


def _pg_bindir():
    for candidate in sorted(glob.glob("/usr/lib/postgresql/*/bin"), reverse=True):
        if os.path.exists(os.path.join(candidate, "initdb")):
            return candidate
    initdb = shutil.which("initdb")
    return os.path.dirname(initdb) if initdb else None


def external_db_options(environ):
    """db_* options for a server the user points to, or None for a private one."""
    config = environ.get("LOYALTY_MLM_ODOO_CONFIG")
    if config:
        parser = configparser.ConfigParser()
        if not parser.read(config):
            die(f"LOYALTY_MLM_ODOO_CONFIG points to {config}, which cannot be read.")
        options = parser["options"] if parser.has_section("options") else {}
        return {
            key: options[key]
            for key in ("db_host", "db_port", "db_user", "db_password")
            if options.get(key) not in (None, "", "False")
        }
    if any(environ.get(var) for var in ("PGHOST", "PGPORT", "PGUSER")):
        options = {
            "db_host": environ.get("PGHOST", ""),
            "db_port": environ.get("PGPORT", ""),
            "db_user": environ.get("PGUSER", ""),
            "db_password": environ.get("PGPASSWORD", ""),
        }
        if options["db_user"] == "postgres":
            die(
                "PGUSER is 'postgres', but Odoo refuses to connect as the PostgreSQL "
                "superuser; create another role (e.g. createuser -d odoo) and use it."
            )
        return {key: value for key, value in options.items() if value}
    return None


def _as_owner(cmd, owner):
    if owner is None:
        return cmd
    return ["runuser", "-u", owner, "--", *cmd]


def ensure_private_cluster(run_dir, environ, apt):
    """Start (creating if needed) the private cluster; return Odoo's db_* options."""
    bindir = _pg_bindir()
    if not bindir:
        apt.install(["postgresql-15"], why="a private PostgreSQL server")
        bindir = _pg_bindir()
    if not bindir:
        die(
            "PostgreSQL server binaries (initdb, pg_ctl) were not found; install "
            "Debian's postgresql-15, or point PGHOST/PGPORT/PGUSER at a server."
        )
    port = environ.get("LOYALTY_MLM_PG_PORT", "55432")
    owner = None
    if have_root():
        owner = CLUSTER_OWNER
        try:
            pwd.getpwnam(owner)
        except KeyError:
            die(
                f"Running as root but there is no '{owner}' system user to own "
                "the private cluster."
            )
    # Without root the cluster runs as ourselves: it reaches what we reach.
    pg_dir = cluster_dir(
        run_dir, environ, lambda path: owner is None or _can_traverse(path, owner)
    )
    data = pg_dir / "data"
    sock = pg_dir / "socket"
    sock.mkdir(parents=True, exist_ok=True)
    if owner:
        # The cluster owner must reach its own directories.
        for path in (pg_dir, sock):
            shutil.chown(path, user=owner)
    if not (data / "PG_VERSION").exists():
        say(f"Creating a private PostgreSQL cluster in {data}")
        data.mkdir(parents=True, exist_ok=True)
        if owner:
            shutil.chown(data, user=owner)
        run(
            _as_owner(
                [
                    f"{bindir}/initdb",
                    "-D",
                    str(data),
                    "-A",
                    "trust",
                    "-E",
                    "UTF8",
                    "--locale=C.UTF-8",
                    "-U",
                    "postgres",
                ],
                owner,
            ),
            quiet=True,
        )
    status = subprocess.run(
        _as_owner([f"{bindir}/pg_ctl", "-D", str(data), "status"], owner),
        capture_output=True,
        check=False,
    )
    if status.returncode != 0:
        say(f"Starting the private PostgreSQL server (socket {sock}, port {port})")
        # Socket only, no TCP; fsync off: a disposable dev/test cluster.
        opts = (
            f"-c listen_addresses='' -c unix_socket_directories='{sock}' "
            f"-p {port} -c fsync=off"
        )
        run(
            _as_owner(
                [
                    f"{bindir}/pg_ctl",
                    "-D",
                    str(data),
                    "-o",
                    opts,
                    "-w",
                    "-l",
                    str(data.parent / "server.log"),
                    "start",
                ],
                owner,
            ),
            quiet=True,
        )
    psql = shutil.which("psql") or f"{bindir}/psql"
    exists = subprocess.run(
        [
            psql,
            "-h",
            str(sock),
            "-p",
            port,
            "-U",
            "postgres",
            "-d",
            "postgres",
            "-tAc",
            f"SELECT 1 FROM pg_roles WHERE rolname = '{DB_ROLE}'",
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    if exists != "1":
        run(
            [
                psql,
                "-h",
                str(sock),
                "-p",
                port,
                "-U",
                "postgres",
                "-d",
                "postgres",
                "-qc",
                f"CREATE ROLE {DB_ROLE} LOGIN CREATEDB",
            ],
            quiet=True,
        )
    return {
        "db_host": str(sock),
        "db_port": port,
        "db_user": DB_ROLE,
        "db_password": "",
    }


def cluster_dir(run_dir, environ, reachable):
    """The private cluster's folder: `<run dir>/pg` when its owner can get there.

    `reachable(path)` says whether the cluster's owner can traverse `path`. A
    checkout inside a private folder (/root, `mktemp -d`: mode 0700) is out of
    reach of the `postgres` user; the cluster then goes to a folder of ours in
    /var/tmp named after the run directory, so that two checkouts never share
    a cluster and a second run finds the first one's. A run directory the
    user chose (LOYALTY_MLM_RUN_DIR) is taken as it is, or refused.
    """
    run_dir = Path(run_dir)
    if reachable(run_dir):
        return run_dir / "pg"
    if environ.get("LOYALTY_MLM_RUN_DIR"):
        die(
            f"The '{CLUSTER_OWNER}' user cannot reach {run_dir}; set "
            "LOYALTY_MLM_RUN_DIR to a directory every user can traverse "
            "(e.g. /var/tmp/loyalty_mlm)."
        )
    digest = hashlib.sha256(str(run_dir).encode()).hexdigest()[:12]
    home = FALLBACK_PARENT / f"loyalty_mlm-{digest}"
    say(
        f"The '{CLUSTER_OWNER}' user cannot reach {run_dir}, so the private "
        f"PostgreSQL cluster lives in {home}/pg (LOYALTY_MLM_RUN_DIR picks "
        "another run directory)."
    )
    _private_dir(home)
    return home / "pg"


def _private_dir(path):
    """Create `path` for us alone (others may only traverse it), or refuse one
    that someone else made: a name in /var/tmp can be taken by anybody first."""
    path.mkdir(mode=0o711, exist_ok=True)
    info = path.lstat()
    if stat.S_ISLNK(info.st_mode) or info.st_uid != os.geteuid():
        die(
            f"{path} exists but does not belong to us; remove it or set "
            "LOYALTY_MLM_RUN_DIR to a directory every user can traverse."
        )
    path.chmod(0o711)  # mkdir's mode went through our umask


def _can_traverse(path, owner):
    probe = subprocess.run(
        ["runuser", "-u", owner, "--", "test", "-x", str(path)], check=False
    )
    return probe.returncode == 0


def libpq_env(db_options):
    """Environment for psql/createdb/dropdb matching Odoo's db_* options."""
    env = dict(os.environ)
    mapping = {
        "db_host": "PGHOST",
        "db_port": "PGPORT",
        "db_user": "PGUSER",
        "db_password": "PGPASSWORD",
    }
    for key, var in mapping.items():
        if db_options.get(key):
            env[var] = db_options[key]
    return env


def database_exists(db_options, name):
    # psql interpolates :'name' as a quoted literal when the query comes on stdin.
    out = subprocess.run(
        ["psql", "-d", "postgres", "-tA", "-v", f"name={name}"],
        input="SELECT 1 FROM pg_database WHERE datname = :'name';",
        env=libpq_env(db_options),
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    return out == "1"


def drop_database(db_options, name):
    # --if-exists still prints a NOTICE for a database that is not there.
    subprocess.run(
        ["dropdb", "--if-exists", "--force", name],
        env=libpq_env(db_options),
        check=False,
        stderr=subprocess.DEVNULL,
    )


def module_state(db_options, db, module):
    """State of a module in an Odoo database ('' when unknown)."""
    proc = subprocess.run(
        ["psql", "-d", db, "-tA", "-v", f"name={module}"],
        input="SELECT state FROM ir_module_module WHERE name = :'name';",
        env=libpq_env(db_options),
        capture_output=True,
        text=True,
        check=False,
    )
    return proc.stdout.strip()
