"""Soak run of one member card under concurrent registers and a salesperson
(issue 13). Not a test: a run of a real deployment's shape, with a report.

    .venv/bin/python bench/soak_pos.py --registers 2 --rounds 50 --max-seconds 300

1. Creates a throwaway database with loyalty_mlm and its demo data (or copies
   `--template`, faster when iterating), then, as admin over JSON-RPC: every
   loyalty programme but the member programme archived, tier multipliers at
   1.0 and campaigns archived (so that every point is one the requests below
   asked for), a product at 10.00 untaxed, a member whose card holds
   `--initial-points` (Adjust Points), one cash journal, payment method and
   POS config per register, a cashier per register (Point of Sale user) and a
   salesperson (Sales user), each with their own login.
2. Starts Odoo in prefork mode (`--workers`, no cron thread, 127.0.0.1 on a
   free port) and opens each register's session as its cashier.
3. Drives the registers and the salesperson at once (threads, each user
   logged in with a browser-like session, calls through
   `/web/dataset/call_kw` as the web client makes them), `--rounds` rounds
   each or until `--max-seconds`:
   * a register sells 1 to 5 breads to the member the way the payment screen
     does: `validate_coupon_programs` (point changes of existing cards), then
     `sync_from_ui` (the order with a uuid), then `confirm_coupon_programs`
     (earned points on the member card, net of what reward lines cost) and
     `add_loyalty_history_lines`;
   * sometimes it first reads the card's balance and spends all of it through
     the member programme's reward (a discount line with `points_cost`): two
     registers doing so at once race for the same last points;
   * sometimes it sends the very same order twice at once (same uuid, two
     threads: an offline queue flushing while the register retries);
   * the salesperson creates sale orders for the member, sometimes asks for
     Odoo's promotions (`action_open_reward_wizard`, which claims the member
     reward when it is the only one), and confirms them.
4. Prints requests, successes, clean refusals (UserError / ValidationError,
   `successful: False`), server errors (anything else: serialization
   failures, access errors, HTTP errors), duplicated orders (more than one
   `pos.order` per uuid), the lowest balance seen (a watcher reads the card
   every 50 ms, plus the ledger's running balance) and the redeem entries that
   left the balance below zero, then card points, the sum of the card's
   ledger and the balance expected from what the server accepted (opening
   balance, plus each uuid's net points once if one of its confirmations
   succeeded, plus each confirmed sale order's point changes read back).
5. Stops Odoo and drops the database (`--keep` keeps it).

Exit status 1 when a server error, a duplicated order, a spend below zero or
any difference between expected, card and ledger is found.
"""

import argparse
import configparser
import math
import os
import random
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid as uuidlib
from collections import Counter
from contextlib import closing
from pathlib import Path

import psycopg2
import requests

ROOT = Path(__file__).resolve().parent.parent
PASSWORD = "soak-pass-13"
REFUSALS = (
    "odoo.exceptions.UserError",
    "odoo.exceptions.ValidationError",
    "odoo.exceptions.RedirectWarning",
)
EPSILON = 1e-6


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("-c", "--config", default=str(ROOT / ".run" / "odoo.cfg"))
    parser.add_argument("--odoo-src", default=os.environ.get("ODOO_SRC", "/opt/odoo"))
    parser.add_argument("-d", "--database", default=f"dev_soak_{os.getpid()}")
    parser.add_argument(
        "--template", help="copy this database (with loyalty_mlm) instead of installing"
    )
    parser.add_argument("--registers", type=int, default=2)
    parser.add_argument("--workers", type=int, default=3)
    parser.add_argument("--rounds", type=int, default=50, help="per thread")
    parser.add_argument("--max-seconds", type=float, default=300)
    parser.add_argument("--initial-points", type=float, default=1000)
    parser.add_argument("--spend-share", type=float, default=0.3)
    parser.add_argument("--duplicate-share", type=float, default=0.2)
    parser.add_argument("--promotion-share", type=float, default=0.3)
    parser.add_argument("--seed", type=int, default=13)
    parser.add_argument("--keep", action="store_true", help="keep the database")
    args = parser.parse_args()
    if args.registers < 1 or args.rounds < 1 or args.max_seconds <= 0:
        parser.error("--registers, --rounds and --max-seconds must be positive")
    return args


# ---------------------------------------------------------------------------
# database and server
# ---------------------------------------------------------------------------


class Odoo:
    """The config's PostgreSQL server, the throwaway database, the server."""

    def __init__(self, args):
        parser = configparser.ConfigParser()
        if not parser.read(args.config):
            sys.exit(f"Cannot read the Odoo config {args.config} (run make test once).")
        self.options = dict(parser["options"])
        self.args = args
        self.db = args.database
        self.python = sys.executable
        self.odoo_bin = str(Path(args.odoo_src) / "odoo-bin")
        self.log = Path(args.config).parent / "logs" / f"soak-{self.db}.log"
        self.log.parent.mkdir(exist_ok=True)
        self.proc = None
        self.port = None

    def connect(self, dbname):
        value = self.options.get
        conn = psycopg2.connect(
            dbname=dbname,
            host=value("db_host") or None,
            port=value("db_port") or None,
            user=value("db_user") or None,
            password=value("db_password") or None,
        )
        conn.autocommit = True
        return conn

    def filestore(self, db):
        return Path(self.options.get("data_dir", "")) / "filestore" / db

    def create_database(self):
        self.drop_database()
        if self.args.template:
            print(f"copying {self.args.template} to {self.db}", flush=True)
            with closing(self.connect("postgres")) as conn, conn.cursor() as cr:
                cr.execute(
                    f'CREATE DATABASE "{self.db}" TEMPLATE "{self.args.template}"'
                )
            source = self.filestore(self.args.template)
            if source.is_dir():
                shutil.copytree(source, self.filestore(self.db))
            return
        print(f"installing loyalty_mlm with demo data in {self.db}", flush=True)
        proc = subprocess.run(
            [
                self.python,
                self.odoo_bin,
                "-c",
                self.args.config,
                "-d",
                self.db,
                "-i",
                "loyalty_mlm",
                "--stop-after-init",
                "--no-http",
                "--log-level=warn",
                f"--logfile={self.log}",
            ],
            check=False,
        )
        if proc.returncode:
            sys.exit(f"Installing loyalty_mlm failed, see {self.log}")

    def drop_database(self):
        with closing(self.connect("postgres")) as conn, conn.cursor() as cr:
            cr.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE datname = %s AND pid != pg_backend_pid()",
                [self.db],
            )
            cr.execute(f'DROP DATABASE IF EXISTS "{self.db}"')
        shutil.rmtree(self.filestore(self.db), ignore_errors=True)

    @staticmethod
    def free_port():
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.bind(("127.0.0.1", 0))
            return sock.getsockname()[1]

    def start(self):
        self.port = self.free_port()
        gevent_port = self.free_port()
        self.proc = subprocess.Popen(
            [
                self.python,
                self.odoo_bin,
                "-c",
                self.args.config,
                "-d",
                self.db,
                f"--db-filter=^{self.db}$",
                f"--workers={self.args.workers}",
                "--max-cron-threads=0",
                "--http-interface=127.0.0.1",
                f"--http-port={self.port}",
                f"--gevent-port={gevent_port}",
                "--log-level=warn",
                f"--logfile={self.log}",
            ],
        )
        # The first request loads the registry in a worker: slow on a busy
        # machine.
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                sys.exit(f"Odoo stopped at start, see {self.log}")
            try:
                requests.get(self.url("/web/login"), timeout=120)
                print(
                    f"Odoo serving {self.db} on 127.0.0.1:{self.port}, "
                    f"{self.args.workers} workers (log: {self.log})",
                    flush=True,
                )
                return
            except requests.RequestException:
                time.sleep(0.5)
        sys.exit(f"Odoo did not answer within 300 s, see {self.log}")

    def stop(self):
        if not self.proc or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()

    def url(self, path):
        return f"http://127.0.0.1:{self.port}{path}"


# ---------------------------------------------------------------------------
# JSON-RPC as the web client does it
# ---------------------------------------------------------------------------


class RpcError(Exception):
    def __init__(self, name, message):
        super().__init__(f"{name}: {message}")
        self.name = name
        self.message = message

    @property
    def refusal(self):
        return self.name in REFUSALS


class Client:
    """One logged-in browser tab of one user."""

    def __init__(self, odoo, login, password=PASSWORD):
        self.odoo = odoo
        self.login = login
        self.http = requests.Session()
        self.uid = self._post(
            "/web/session/authenticate",
            {"db": odoo.db, "login": login, "password": password},
        )["uid"]
        self.context = {"lang": "en_US", "tz": "Europe/Brussels", "uid": self.uid}

    def _post(self, path, params):
        try:
            response = self.http.post(
                self.odoo.url(path),
                json={"jsonrpc": "2.0", "method": "call", "params": params, "id": 1},
                timeout=180,
            )
        except requests.RequestException as exc:
            raise RpcError("http", str(exc)) from exc
        if response.status_code != 200:
            raise RpcError("http", f"HTTP {response.status_code}")
        body = response.json()
        if "error" in body:
            data = body["error"].get("data") or {}
            raise RpcError(
                data.get("name", "error"), data.get("message") or str(body["error"])
            )
        return body.get("result")  # Odoo leaves out a None result

    def call(self, model, method, *args, **kwargs):
        kwargs.setdefault("context", self.context)
        return self._post(
            f"/web/dataset/call_kw/{model}/{method}",
            {"model": model, "method": method, "args": list(args), "kwargs": kwargs},
        )


def xmlid(admin, full):
    module, name = full.split(".")
    found = admin.call(
        "ir.model.data",
        "search_read",
        [("module", "=", module), ("name", "=", name)],
        ["res_id"],
    )
    return found[0]["res_id"]


# ---------------------------------------------------------------------------
# fixtures
# ---------------------------------------------------------------------------


def fixtures(odoo, args):
    admin = Client(odoo, "admin", "admin")
    fx = {}
    program = xmlid(admin, "loyalty_mlm.loyalty_program_member")
    company = admin.call("res.users", "read", [admin.uid], ["company_id"])[0][
        "company_id"
    ][0]
    admin.call("res.company", "write", [company], {"mlm_program_id": program})
    others = admin.call("loyalty.program", "search", [("id", "!=", program)])
    admin.call("loyalty.program", "write", others, {"active": False})
    # Every point must be one a request asked for: no tier or campaign bonus.
    no_archived = dict(admin.context, active_test=False)
    tiers = admin.call("loyalty.mlm.tier", "search", [], context=no_archived)
    admin.call("loyalty.mlm.tier", "write", tiers, {"multiplier": 1.0})
    campaigns = admin.call("loyalty.mlm.campaign", "search", [])
    admin.call("loyalty.mlm.campaign", "write", campaigns, {"active": False})
    reward = admin.call(
        "loyalty.reward",
        "search_read",
        [("program_id", "=", program)],
        ["discount_line_product_id", "required_points", "discount"],
    )[0]
    fx["program"], fx["reward"] = program, reward
    fx["product"] = admin.call(
        "product.product",
        "create",
        {
            "name": "Soak Bread",
            "list_price": 10.0,
            "taxes_id": [(6, 0, [])],
            "available_in_pos": True,
        },
    )
    member = admin.call("res.partner", "create", {"name": "Soak Member"})
    # Make Member first: Adjust Points on a contact without a card fails today
    # (issue 13, point 9).
    admin.call("res.partner", "action_mlm_enroll", [member])
    wizard = admin.call(
        "loyalty.mlm.adjust.wizard",
        "create",
        {
            "partner_id": member,
            "points": args.initial_points,
            "reason": "Soak: opening balance",
        },
    )
    admin.call("loyalty.mlm.adjust.wizard", "action_apply", [wizard])
    fx["member"] = member
    fx["card"] = admin.call(
        "loyalty.card",
        "search",
        [("partner_id", "=", member), ("program_id", "=", program)],
    )[0]
    base_user = xmlid(admin, "base.group_user")
    pos_user = xmlid(admin, "point_of_sale.group_pos_user")
    salesman = xmlid(admin, "sales_team.group_sale_salesman")
    fx["registers"] = []
    for index in range(1, args.registers + 1):
        journal = admin.call(
            "account.journal",
            "create",
            {"name": f"Soak Cash {index}", "type": "cash", "code": f"SOK{index}"},
        )
        method = admin.call(
            "pos.payment.method",
            "create",
            {"name": f"Soak Cash {index}", "journal_id": journal},
        )
        config = admin.call(
            "pos.config",
            "create",
            {
                "name": f"Soak Register {index}",
                "payment_method_ids": [(6, 0, [method])],
            },
        )
        login = f"soak_cashier_{index}"
        admin.call(
            "res.users",
            "create",
            {
                "name": f"Soak Cashier {index}",
                "login": login,
                "email": f"{login}@example.com",
                "password": PASSWORD,
                "groups_id": [(6, 0, [base_user, pos_user])],
            },
        )
        cashier = Client(odoo, login)
        cashier.call("pos.config", "open_ui", [config])
        session = cashier.call(
            "pos.session",
            "search_read",
            [("config_id", "=", config), ("state", "!=", "closed")],
            ["id"],
        )[0]["id"]
        cashier.call("pos.session", "set_opening_control", [session], 0, "")
        pricelist = cashier.call("pos.config", "read", [config], ["pricelist_id"])[0][
            "pricelist_id"
        ]
        fx["registers"].append(
            {
                "index": index,
                "login": login,
                "config": config,
                "session": session,
                "method": method,
                "pricelist": pricelist and pricelist[0],
            }
        )
    admin.call(
        "res.users",
        "create",
        {
            "name": "Soak Salesperson",
            "login": "soak_salesperson",
            "email": "soak_salesperson@example.com",
            "password": PASSWORD,
            "groups_id": [(6, 0, [base_user, salesman])],
        },
    )
    return admin, fx


# ---------------------------------------------------------------------------
# the run
# ---------------------------------------------------------------------------


class Stats:
    def __init__(self):
        self.lock = threading.Lock()
        self.requests = Counter()
        self.successes = Counter()
        self.refusals = Counter()
        self.errors = Counter()
        self.error_samples = []
        self.refusal_samples = Counter()
        # uuid -> net points the order asked for, once one confirmation of it
        # was accepted
        self.accepted_pos = {}
        self.accepted_sales = []
        # uuid -> accepted confirmations (more than one: points booked twice)
        self.confirmations = Counter()
        self.races = Counter()

    def call(self, client, model, method, *args, **kwargs):
        """One request, counted; returns (ok, result or RpcError)."""
        key = f"{model}.{method}"
        with self.lock:
            self.requests[key] += 1
        try:
            result = client.call(model, method, *args, **kwargs)
        except RpcError as exc:
            with self.lock:
                if exc.refusal:
                    self.refusals[key] += 1
                    self.refusal_samples[_shorten(exc.message)] += 1
                else:
                    self.errors[key] += 1
                    if len(self.error_samples) < 10:
                        self.error_samples.append(
                            f"{key} ({client.login}): {exc.name}: "
                            f"{_shorten(exc.message)}"
                        )
            return False, exc
        if isinstance(result, dict) and result.get("successful") is False:
            with self.lock:
                self.refusals[key] += 1
                message = (result.get("payload") or {}).get("message", "")
                self.refusal_samples[_shorten(message)] += 1
            return False, result
        with self.lock:
            self.successes[key] += 1
        return True, result


def _shorten(text):
    text = re.sub(r"\s+", " ", str(text)).strip()
    return text if len(text) < 140 else text[:137] + "..."


class Watcher(threading.Thread):
    """Reads the card's balance every 50 ms: the lowest value seen."""

    def __init__(self, odoo, card):
        super().__init__(daemon=True)
        self.conn = odoo.connect(odoo.db)
        self.card = card
        self.lowest = math.inf
        self.stop = threading.Event()

    def run(self):
        with self.conn.cursor() as cr:
            while not self.stop.is_set():
                cr.execute("SELECT points FROM loyalty_card WHERE id = %s", [self.card])
                self.lowest = min(self.lowest, float(cr.fetchone()[0]))
                time.sleep(0.05)
        self.conn.close()


def order_payload(fx, register, cashier_uid, qty, spend=0.0):
    """The order as the register's `serialize` sends it: qty breads at 10.00,
    and a member-reward discount line when `spend` points are used."""
    reward = fx["reward"]
    order_uuid = str(uuidlib.uuid4())
    lines = [
        (
            0,
            0,
            {
                "uuid": str(uuidlib.uuid4()),
                "product_id": fx["product"],
                "qty": qty,
                "price_unit": 10.0,
                "discount": 0,
                "price_subtotal": 10.0 * qty,
                "price_subtotal_incl": 10.0 * qty,
                "tax_ids": [(6, 0, [])],
                "pack_lot_ids": [],
            },
        )
    ]
    discount = round(spend * reward["discount"], 2)
    if spend:
        lines.append(
            (
                0,
                0,
                {
                    "uuid": str(uuidlib.uuid4()),
                    "product_id": reward["discount_line_product_id"][0],
                    "qty": 1,
                    "price_unit": -discount,
                    "discount": 0,
                    "price_subtotal": -discount,
                    "price_subtotal_incl": -discount,
                    "tax_ids": [(6, 0, [])],
                    "pack_lot_ids": [],
                    "is_reward_line": True,
                    "reward_id": reward["id"],
                    "coupon_id": fx["card"],
                    "reward_identifier_code": f"R{order_uuid[:8]}",
                    "points_cost": spend,
                },
            )
        )
    total = round(10.0 * qty - discount, 2)
    return {
        "uuid": order_uuid,
        "name": f"Order {order_uuid}",
        "session_id": register["session"],
        "state": "paid",
        "partner_id": fx["member"],
        "user_id": cashier_uid,
        "pricelist_id": register["pricelist"],
        "fiscal_position_id": False,
        "sequence_number": 1,
        "date_order": time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime()),
        "amount_paid": total,
        "amount_return": 0,
        "amount_tax": 0,
        "amount_total": total,
        "to_invoice": False,
        "last_order_preparation_change": "{}",
        "lines": lines,
        "payment_ids": [
            (
                0,
                0,
                {
                    "amount": total,
                    "name": time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime()),
                    "payment_method_id": register["method"],
                },
            )
        ],
    }


class Register(threading.Thread):
    def __init__(self, odoo, fx, register, stats, args, deadline, rng):
        super().__init__(name=f"register-{register['index']}")
        self.fx, self.register, self.stats = fx, register, stats
        self.args, self.deadline, self.rng = args, deadline, rng
        # Two tabs of the same cashier: the second one re-sends orders.
        self.tabs = [Client(odoo, register["login"]), Client(odoo, register["login"])]

    def run(self):
        for _round in range(self.args.rounds):
            if time.monotonic() > self.deadline:
                return
            self.sell()

    def sell(self):
        fx, tab, rng = self.fx, self.tabs[0], self.rng
        qty, spend = rng.randint(1, 5), 0.0
        if rng.random() < self.args.spend_share:
            # The register shows the card's balance; the cashier uses it all.
            ok, cards = self.stats.call(
                tab, "loyalty.card", "read", [fx["card"]], ["points"]
            )
            balance = cards[0]["points"] if ok else 0.0
            if balance >= fx["reward"]["required_points"]:
                spend = balance
                qty += math.ceil(spend * fx["reward"]["discount"] / 10.0)
        data = order_payload(fx, self.register, tab.uid, qty, spend)
        earned = 10.0 * qty
        net = earned - spend
        # The payment screen checks existing cards' point changes first.
        ok, _result = self.stats.call(
            tab, "pos.order", "validate_coupon_programs", [], {str(fx["card"]): net}, []
        )
        if not ok:
            return
        coupon_data = {
            str(fx["card"]): {
                "points": net,
                "program_id": fx["program"],
                "coupon_id": fx["card"],
                "barcode": False,
                "partner_id": fx["member"],
            }
        }
        if spend:
            coupon_data[str(fx["card"])]["line_codes"] = [
                data["lines"][1][2]["reward_identifier_code"]
            ]
        if rng.random() < self.args.duplicate_share:
            with self.stats.lock:
                self.stats.races["same order sent twice at once"] += 1
            barrier = threading.Barrier(2)
            threads = [
                threading.Thread(
                    target=self.push, args=(other, data, coupon_data, net, barrier)
                )
                for other in self.tabs
            ]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
        else:
            self.push(tab, data, coupon_data, net)
        if spend:
            with self.stats.lock:
                self.stats.races["spend the whole balance"] += 1

    def push(self, tab, data, coupon_data, net, barrier=None):
        if barrier:
            barrier.wait()
        ok, result = self.stats.call(tab, "pos.order", "sync_from_ui", [data])
        if not ok:
            return
        orders = result.get("pos.order") or []
        if not orders:
            return  # the server already had it: nothing to confirm
        order_id = orders[0]["id"]
        ok, result = self.stats.call(
            tab, "pos.order", "confirm_coupon_programs", [order_id], coupon_data
        )
        if not ok:
            return
        with self.stats.lock:
            self.stats.accepted_pos.setdefault(data["uuid"], net)
            self.stats.confirmations[data["uuid"]] += 1
        card = str(self.fx["card"])
        won, spent = max(net, 0.0), 0.0
        if len(coupon_data[card].get("line_codes") or []):
            spent = data["lines"][1][2]["points_cost"]
            won = net + spent
        self.stats.call(
            tab,
            "pos.order",
            "add_loyalty_history_lines",
            [order_id],
            [
                {
                    "order_id": order_id,
                    "card_id": self.fx["card"],
                    "spent": spent,
                    "won": won,
                    "total": (result.get("coupon_updates") or [{}])[0].get("points", 0),
                }
            ],
            [{"id": self.fx["card"], "old_id": self.fx["card"]}],
        )


class Salesperson(threading.Thread):
    def __init__(self, odoo, fx, stats, args, deadline, rng):
        super().__init__(name="salesperson")
        self.fx, self.stats, self.args = fx, stats, args
        self.deadline, self.rng = deadline, rng
        self.client = Client(odoo, "soak_salesperson")

    def run(self):
        for _round in range(self.args.rounds):
            if time.monotonic() > self.deadline:
                return
            self.sell()

    def sell(self):
        ok, order = self.stats.call(
            self.client,
            "sale.order",
            "create",
            {
                "partner_id": self.fx["member"],
                "order_line": [
                    (
                        0,
                        0,
                        {
                            "product_id": self.fx["product"],
                            "product_uom_qty": self.rng.randint(1, 5),
                        },
                    )
                ],
            },
        )
        if not ok:
            return
        if self.rng.random() < self.args.promotion_share:
            ok, _result = self.stats.call(
                self.client, "sale.order", "action_open_reward_wizard", [order]
            )
            if not ok:
                return
        ok, _result = self.stats.call(
            self.client, "sale.order", "action_confirm", [order]
        )
        if ok:
            with self.stats.lock:
                self.stats.accepted_sales.append(order)


def sale_changes(admin, fx, orders):
    """Point changes of the member card the confirmed sale orders made."""
    if not orders:
        return 0.0
    earned = admin.call(
        "sale.order.coupon.points",
        "search_read",
        [("order_id", "in", orders), ("coupon_id", "=", fx["card"])],
        ["points"],
    )
    spent = admin.call(
        "sale.order.line",
        "search_read",
        [("order_id", "in", orders), ("coupon_id", "=", fx["card"])],
        ["points_cost"],
    )
    return sum(row["points"] for row in earned) - sum(
        row["points_cost"] for row in spent
    )


def final_checks(odoo, fx):
    conn = odoo.connect(odoo.db)
    with conn.cursor() as cr:
        cr.execute(
            "SELECT uuid, count(*) FROM pos_order WHERE session_id = ANY(%s) "
            "GROUP BY uuid HAVING count(*) > 1",
            [[r["session"] for r in fx["registers"]]],
        )
        duplicated = cr.fetchall()
        cr.execute("SELECT points FROM loyalty_card WHERE id = %s", [fx["card"]])
        card = cr.fetchone()[0]
        cr.execute(
            "SELECT kind, points, sum(points) OVER (ORDER BY id) "
            "FROM loyalty_mlm_ledger WHERE card_id = %s ORDER BY id",
            [fx["card"]],
        )
        # numeric columns come as Decimal: compare floats, as the ORM does
        rows = [(kind, float(points), float(run)) for kind, points, run in cr]
    conn.close()
    card = float(card)
    ledger = rows[-1][2] if rows else 0.0
    running_low = min((row[2] for row in rows), default=0.0)
    negative_spends = [row for row in rows if row[0] == "redeem" and row[2] < -EPSILON]
    return duplicated, card, ledger, running_low, negative_spends, len(rows)


def main():
    args = parse_args()
    rng = random.Random(args.seed)
    odoo = Odoo(args)
    started = time.monotonic()
    odoo.create_database()
    status = 1
    try:
        odoo.start()
        admin, fx = fixtures(odoo, args)
        stats = Stats()
        watcher = Watcher(odoo, fx["card"])
        watcher.start()
        deadline = time.monotonic() + args.max_seconds
        threads = [
            Register(
                odoo, fx, register, stats, args, deadline, random.Random(rng.random())
            )
            for register in fx["registers"]
        ]
        threads.append(
            Salesperson(odoo, fx, stats, args, deadline, random.Random(rng.random()))
        )
        print(
            f"driving {args.registers} registers and 1 salesperson, {args.rounds} "
            f"rounds each (at most {args.max_seconds:g} s), member card "
            f"{fx['card']} opened at {args.initial_points:g} points",
            flush=True,
        )
        run_start = time.monotonic()
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        elapsed = time.monotonic() - run_start
        watcher.stop.set()
        watcher.join()
        status = report(odoo, admin, fx, stats, watcher, args, elapsed)
    finally:
        odoo.stop()
        if args.keep:
            print(f"database {odoo.db} kept")
        else:
            odoo.drop_database()
        print(f"total time {time.monotonic() - started:.0f} s")
    return status


def report(odoo, admin, fx, stats, watcher, args, elapsed):
    duplicated, card, ledger, running_low, negative_spends, entries = final_checks(
        odoo, fx
    )
    expected = (
        args.initial_points
        + sum(stats.accepted_pos.values())
        + sale_changes(admin, fx, stats.accepted_sales)
    )
    lowest = min(watcher.lowest, running_low, card)
    requests_ = sum(stats.requests.values())
    errors = sum(stats.errors.values())
    print(f"\n================ soak_pos: {elapsed:.0f} s ================")
    print(
        f"requests: {requests_}, successes: {sum(stats.successes.values())}, "
        f"clean refusals: {sum(stats.refusals.values())}, server errors: {errors}"
    )
    for key in sorted(stats.requests):
        print(
            f"  {key:42} {stats.requests[key]:5} sent, {stats.successes[key]:5} ok, "
            f"{stats.refusals[key]:4} refused, {stats.errors[key]:4} errors"
        )
    for what, count in sorted(stats.races.items()):
        print(f"  {what}: {count}")
    for message, count in stats.refusal_samples.most_common(5):
        print(f"  refused {count}x: {message}")
    for sample in stats.error_samples:
        print(f"  server error: {sample}")
    extra = sum(count - 1 for _uuid, count in duplicated)
    print(
        f"duplicated orders: {len(duplicated)} uuids with more than one pos.order "
        f"({extra} extra orders)"
    )
    print(f"lowest balance seen: {lowest:g}")
    print(f"redeem entries leaving the balance below zero: {len(negative_spends)}")
    print(
        f"POS orders accepted: {len(stats.accepted_pos)}, sale orders confirmed: "
        f"{len(stats.accepted_sales)}, ledger entries on the card: {entries}"
    )
    twice = {uuid: count for uuid, count in stats.confirmations.items() if count > 1}
    if twice:
        print(
            f"orders whose points were confirmed more than once: {len(twice)}, "
            "their extra confirmations asked for "
            f"{sum(stats.accepted_pos[u] * (n - 1) for u, n in twice.items()):+g} "
            "points"
        )
    print(f"card points: {card:g}")
    print(f"sum of ledger: {ledger:g}")
    print(f"expected balance: {expected:g}")
    problems = []
    if errors:
        problems.append(f"{errors} server errors")
    if duplicated:
        problems.append(f"{len(duplicated)} duplicated orders")
    if negative_spends:
        problems.append(f"{len(negative_spends)} spends below zero")
    if abs(card - ledger) > EPSILON:
        problems.append(f"card {card:g} != ledger {ledger:g}")
    if abs(card - expected) > EPSILON:
        problems.append(f"card {card:g} != expected {expected:g}")
    print("RESULT: " + ("FAILED: " + "; ".join(problems) if problems else "clean"))
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
