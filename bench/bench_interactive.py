"""Interactive paths at scale: what a user waits for (loyalty_mlm, issue 22).

    .venv/bin/python bench/bench_interactive.py -d mlm_bench [-c .run/odoo.cfg] \\
        [--company ID] [--members-share 0.5] [--lots 6] [--runs 5] [--commit]

Against a database holding a big bench company, as `bench_scores.py
--commit` leaves it ("MLM Bench <pid>": customers, orders, scores, stages,
KPI snapshots; the newest such company unless --company). If that company
has no member programme yet, this script gives it one and makes
--members-share of its customers members with set-based SQL: a member card
each, --lots earned lots plus one redemption in the ledger, the card's
points equal to its ledger; then the night's KPI snapshots again (the
cockpit reads them). With --commit that data is committed (and VACUUM
ANALYZEd) and the next run reuses it; without, it is rolled back at the end.

Then, as a salesperson (Sales / User: own documents, hence Loyalty User)
of that company only (`allowed_company_ids`), the calls the web client
makes, with the specifications it builds from the views (get_views):

1. the contact form of a member (`web_read`, the form view's fields with
   their one2many lists and smart buttons, chatter not included);
2. the Members action: the list (`web_search_read`, limit 80) with the
   action's default filter (members) alone and with the score filters of
   the search view, `search_count`, and the kanban grouped by stage
   (`web_read_group`, then the records of each open column);
3. the point ledger list (`web_search_read`, limit 80, default order), all
   entries and one member's (the contact's *Points* button);
4. the cockpit (`loyalty.mlm.cockpit.get_cockpit_data`).

Each call runs once cold (first call of the process: empty caches), then
--runs times warm with the record cache emptied before each call (as in a
new request): median and max of the warm runs, queries (of one warm run),
the slowest query's time. The time is the server's: the ORM call and the
JSON encoding of its result, no HTTP. For a path slower than --explain-over
seconds (and every path with --explain) the slowest query of its last run
is printed with its EXPLAIN (ANALYZE, BUFFERS).

Prints a table. Not a test: timings depend on the machine.
"""

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("-d", "--database", required=True)
    parser.add_argument("-c", "--config", default=str(ROOT / ".run" / "odoo.cfg"))
    parser.add_argument(
        "--company", type=int, help="bench company id (default: newest)"
    )
    parser.add_argument("--members-share", type=float, default=0.5)
    parser.add_argument("--lots", type=int, default=6, help="earned lots per member")
    parser.add_argument("--runs", type=int, default=5, help="warm runs per path")
    parser.add_argument("--explain-over", type=float, default=0.3)
    parser.add_argument("--explain", action="store_true", help="EXPLAIN every path")
    parser.add_argument(
        "--dump", action="store_true", help="list every query of the explained paths"
    )
    parser.add_argument(
        "--commit",
        action="store_true",
        help="commit the generated members (throwaway database!)",
    )
    return parser.parse_args()


# ------------------------------------------------------------
# Query capture
# ------------------------------------------------------------


class QueryLog:
    """Records (seconds, query, params) of every query while `active`."""

    def __init__(self):
        self.active = False
        self.queries = []

    def install(self):
        import odoo.sql_db  # noqa: PLC0415

        original = odoo.sql_db.Cursor.execute
        log = self

        def execute(cursor, query, params=None, log_exceptions=True):
            if not log.active:
                return original(cursor, query, params, log_exceptions)
            start = time.perf_counter()
            try:
                return original(cursor, query, params, log_exceptions)
            finally:
                log.queries.append((time.perf_counter() - start, query, params))

        odoo.sql_db.Cursor.execute = execute


QUERY_LOG = QueryLog()


# ------------------------------------------------------------
# Data
# ------------------------------------------------------------


def bench_company(env, company_id):
    Company = env["res.company"]
    if company_id:
        return Company.browse(company_id)
    company = Company.search(
        [("name", "=like", "MLM Bench %")], order="id desc", limit=1
    )
    if not company:
        sys.exit("No 'MLM Bench' company: run bench_scores.py --commit first.")
    return company


def generate_members(env, company, share, lots):
    """A member programme for `company` and `share` of its customers as members:
    a card each, `lots` earned lots and one redemption per member in the
    ledger, card points == ledger. Set-based SQL; returns the member count."""
    cr = env.cr
    program = env["loyalty.program"].create(
        {
            "name": "Bench Members",
            "program_type": "loyalty",
            "company_id": company.id,
        }
    )
    company.mlm_program_id = program
    company.mlm_points_validity_months = 12
    prefix = f"bench-{company.id}-"
    # Every n-th customer of the company (those with a score row), in id order.
    step = max(1, round(1 / share))
    cr.execute(
        """
        CREATE TEMP TABLE bench_member ON COMMIT DROP AS
        SELECT partner_id AS id, nextval('loyalty_card_id_seq')::int AS card_id,
               row_number() OVER (ORDER BY partner_id) AS n
          FROM (SELECT partner_id, row_number() OVER (ORDER BY partner_id) AS r
                  FROM loyalty_mlm_partner_score WHERE company_id = %s) s
         WHERE r %% %s = 0
        """,
        (company.id, step),
    )
    cr.execute("SELECT setseed(0.22)")
    # Lots over the last 20 months (12-month validity: a part expired).
    cr.execute(
        """
        CREATE TEMP TABLE bench_lot ON COMMIT DROP AS
        SELECT m.id AS partner_id, m.card_id, m.n,
               now() - random() * interval '600 days' AS date,
               round((1 + random() * 99)::numeric, 2) AS points
          FROM bench_member m, generate_series(1, %s)
        """,
        (lots,),
    )
    cr.execute(
        """
        UPDATE res_partner p SET mlm_member_since = s.first::date
          FROM (SELECT partner_id, MIN(date) AS first FROM bench_lot
                 GROUP BY partner_id) s
         WHERE p.id = s.partner_id
        """
    )
    cr.execute(
        """
        INSERT INTO loyalty_card (id, program_id, company_id, partner_id, code,
                                  points, active, create_uid, write_uid,
                                  create_date, write_date)
        SELECT m.card_id, %(program)s, %(company)s, m.id, %(prefix)s || m.n,
               s.points * 0.8, true, 1, 1, now(), now()
          FROM bench_member m
          JOIN (SELECT card_id, SUM(points)::float8 AS points
                  FROM bench_lot GROUP BY card_id) s ON s.card_id = m.card_id
        """,
        {"program": program.id, "company": company.id, "prefix": prefix},
    )
    # Earned lots (the oldest lot's remaining consumed by the redemption is
    # not modelled: remaining = points; the list does not care).
    cr.execute(
        """
        INSERT INTO loyalty_mlm_ledger (date, partner_id, card_id, card_code,
                                        program_id, company_id, points, kind,
                                        user_id, reason, expiry_date, remaining,
                                        unallocated, create_uid, write_uid,
                                        create_date, write_date)
        SELECT date, partner_id, card_id, %(prefix)s || n, %(program)s,
               %(company)s, points, 'earn', 1, 'Bench lot',
               (date + interval '12 months')::date, points, 0, 1, 1, date, date
          FROM bench_lot
        UNION ALL
        SELECT now() - interval '1 day', m.id, m.card_id, %(prefix)s || m.n,
               %(program)s, %(company)s, -round((s.points * 0.2)::numeric, 2),
               'redeem', 1, 'Bench redemption', NULL, 0, 0, 1, 1, now(), now()
          FROM bench_member m
          JOIN (SELECT card_id, SUM(points) AS points
                  FROM bench_lot GROUP BY card_id) s ON s.card_id = m.card_id
        """,
        {"program": program.id, "company": company.id, "prefix": prefix},
    )
    # The card equals its ledger to the cent.
    cr.execute(
        """
        UPDATE loyalty_card c SET points = l.total
          FROM (SELECT card_id, SUM(points)::float8 AS total
                  FROM loyalty_mlm_ledger WHERE company_id = %s
                 GROUP BY card_id) l
         WHERE c.id = l.card_id
        """,
        (company.id,),
    )
    cr.execute("SELECT COUNT(*) FROM bench_member")
    count = cr.fetchone()[0]
    for table in ("res_partner", "loyalty_card", "loyalty_mlm_ledger"):
        cr.execute(f"ANALYZE {table}")
    env.invalidate_all()
    return count


def bench_user(env, company):
    """A salesperson of `company` only (Sales / User: own documents only,
    which makes a Loyalty User)."""
    login = f"bench_sales_{company.id}"
    user = env["res.users"].search([("login", "=", login)])
    if not user:
        user = (
            env["res.users"]
            .with_context(no_reset_password=True)
            .create(
                {
                    "name": f"Bench Salesperson {company.id}",
                    "login": login,
                    "company_id": company.id,
                    "company_ids": [(6, 0, [company.id])],
                    "tz": "Europe/Amsterdam",
                    "groups_id": [
                        (6, 0, [env.ref("sales_team.group_sale_salesman").id])
                    ],
                }
            )
        )
    return user


# ------------------------------------------------------------
# Specifications, as the web client builds them from the views
# ------------------------------------------------------------

X2MANY = ("one2many", "many2many")
RELATIONAL = ("many2one", "one2many", "many2many")


def field_nodes(node):
    """The <field> nodes of `node`, not those of sub-views of x2many fields."""
    for child in node:
        if not isinstance(child.tag, str):
            continue
        if child.tag == "field":
            yield child
        else:
            yield from field_nodes(child)


def specification(node, model, models):
    fields = models[model]["fields"]
    spec = {}
    for field_node in field_nodes(node):
        name = field_node.get("name")
        info = fields.get(name)
        if info is None:
            continue
        if info["type"] == "many2one":
            spec[name] = {"fields": {"display_name": {}}}
        elif info["type"] in X2MANY:
            sub = next(
                (c for c in field_node if c.tag in ("list", "kanban")),
                None,
            )
            if sub is not None:
                spec[name] = {
                    "fields": specification(sub, info["relation"], models),
                    "limit": 40,
                }
            else:
                spec[name] = {"fields": {"display_name": {}}}
        else:
            spec[name] = spec.get(name, {})
    return spec


def view_spec(env, model, view_type, view_id=False):
    from lxml import etree  # noqa: PLC0415

    result = env[model].get_views([(view_id, view_type)])
    arch = etree.fromstring(result["views"][view_type]["arch"])
    return specification(arch, model, result["models"]), arch


# ------------------------------------------------------------
# Measures
# ------------------------------------------------------------


def call(env, function):
    """Server time of one call: empty record cache, the call, its JSON."""
    env.invalidate_all()
    QUERY_LOG.queries = []
    QUERY_LOG.active = True
    start = time.perf_counter()
    try:
        json.dumps(function(), default=str)
    finally:
        QUERY_LOG.active = False
    return time.perf_counter() - start, list(QUERY_LOG.queries)


def measure(env, label, function, runs):
    cold, _queries = call(env, function)
    times = []
    queries = []
    for _run in range(runs):
        seconds, queries = call(env, function)
        times.append(seconds)
    slowest = max(queries, key=lambda q: q[0]) if queries else (0.0, "", None)
    return {
        "label": label,
        "cold": cold,
        "median": statistics.median(times),
        "max": max(times),
        "queries": len(queries),
        "slowest": slowest,
        "all": queries,
    }


def explain(env, query, params):
    cr = env.cr
    cr.execute("SAVEPOINT bench_explain")
    try:
        if hasattr(query, "code"):  # odoo.tools.SQL
            query, params = query.code, query.params
        cr.execute("EXPLAIN (ANALYZE, BUFFERS) " + query, params)
        return "\n".join(row[0] for row in cr.fetchall())
    finally:
        cr.execute("ROLLBACK TO SAVEPOINT bench_explain")


def sql_text(cr, query, params):
    if hasattr(query, "code"):
        query, params = query.code, query.params
    return cr._obj.mogrify(query, params).decode()


def main():
    args = parse_args()
    sys.path.insert(0, str(ROOT))
    import odoo  # noqa: PLC0415
    from odoo import SUPERUSER_ID, api  # noqa: PLC0415
    from odoo.tools import config  # noqa: PLC0415

    config.parse_config(
        ["-c", args.config, "-d", args.database, "--log-level=warn", "--no-http"]
    )
    registry = odoo.modules.registry.Registry(args.database)
    QUERY_LOG.install()
    cr = registry.cursor()
    try:
        su = api.Environment(cr, SUPERUSER_ID, {})
        company = bench_company(su, args.company)
        su = su(context={"allowed_company_ids": [company.id]})
        if not company.mlm_program_id:
            start = time.perf_counter()
            members = generate_members(su, company, args.members_share, args.lots)
            snapshots = su["loyalty.mlm.kpi.snapshot"]._cron_snapshots(
                companies=company
            )
            print(
                f"made {members} members with {args.lots + 1} ledger entries "
                f"each, {snapshots} KPI snapshots, in "
                f"{time.perf_counter() - start:.1f} s",
                flush=True,
            )
        user = bench_user(su, company)
        # Read now: without --commit the user is rolled back before the table.
        login, company_name = user.login, company.name
        if args.commit:
            cr.commit()
            with registry.cursor() as vacuum_cr:
                vacuum_cr._cnx.autocommit = True
                for table in ("res_partner", "loyalty_card", "loyalty_mlm_ledger"):
                    vacuum_cr.execute(f"VACUUM ANALYZE {table}")
        cr.execute(
            "SELECT COUNT(*) FROM res_partner p WHERE EXISTS (SELECT 1 FROM"
            " loyalty_mlm_partner_score s WHERE s.partner_id = p.id AND"
            " s.company_id = %s)",
            (company.id,),
        )
        customers = cr.fetchone()[0]
        cr.execute(
            "SELECT COUNT(*), COUNT(DISTINCT partner_id) FROM loyalty_mlm_ledger"
            " WHERE company_id = %s",
            (company.id,),
        )
        entries, members = cr.fetchone()
        cr.execute("SELECT COUNT(*) FROM loyalty_mlm_ledger")
        all_entries = cr.fetchone()[0]
        cr.execute("SELECT COUNT(*) FROM res_partner")
        all_partners = cr.fetchone()[0]

        env = api.Environment(
            cr,
            user.id,
            {
                "allowed_company_ids": [company.id],
                "lang": "en_US",
                "tz": "Europe/Amsterdam",
            },
        )
        rows = measure_paths(env, company, args.runs)
    finally:
        if args.commit:
            cr.commit()
        else:
            cr.rollback()

    try:
        print(
            f"\ncompany {company_name} (id {company.id}): {customers} scored "
            f"customers, {members} members, {entries} ledger entries; database: "
            f"{all_partners} contacts, {all_entries} ledger entries; user "
            f"{login} (groups: Sales / User, Loyalty User)\n"
        )
        print(
            "| path | cold (s) | median (s) | max (s) | queries | slowest query (s) |"
        )
        print("|---|---:|---:|---:|---:|---:|")
        for row in rows:
            print(
                f"| {row['label']} | {row['cold']:.3f} | {row['median']:.3f} | "
                f"{row['max']:.3f} | {row['queries']} | {row['slowest'][0]:.3f} |"
            )
        env = api.Environment(cr, user.id, env.context)
        for row in rows:
            if not (args.explain or row["max"] > args.explain_over):
                continue
            _seconds, query, params = row["slowest"]
            if args.dump:
                print(f"\n### {row['label']}: {row['queries']} queries\n")
                for seconds, text, values in row["all"]:
                    print(f"{seconds:.4f} {sql_text(cr, text, values)[:200]}")
            print(f"\n### {row['label']}: slowest query ({row['slowest'][0]:.3f} s)\n")
            print(sql_text(cr, query, params))
            print()
            print(explain(env, query, params))
    finally:
        cr.rollback()
        cr.close()


def action_context(env, xmlid):
    """The context the web client sends for the action `xmlid` (its own
    context, without the search view defaults, which become the domain)."""
    from odoo.tools.safe_eval import safe_eval  # noqa: PLC0415

    action = env.ref(xmlid).sudo()
    context = safe_eval(action.context or "{}", {"uid": env.uid})
    return {k: v for k, v in context.items() if not k.startswith("search_default_")}


def measure_paths(env, company, runs):
    members_context = action_context(env, "loyalty_mlm.res_partner_action_member")
    Partner = env["res.partner"].with_context(**members_context)
    Ledger = env["loyalty.mlm.ledger"].with_context(
        **action_context(env, "loyalty_mlm.loyalty_mlm_ledger_action")
    )
    rows = []
    members = [("mlm_member_since", "!=", False)]

    # 1. The contact form of a member with points, stages, history.
    form_spec, _arch = view_spec(env, "res.partner", "form")
    # A heavy user of the bench company: many orders behind the smart buttons.
    member = Partner.search(
        [*members, ("mlm_usage_segment", "=", "heavy")], limit=1, order="id"
    )
    form_ctx = {"bin_size": True}
    rows.append(
        measure(
            env,
            "contact form of a member (web_read)",
            lambda: member.with_context(**form_ctx).web_read(form_spec),
            runs,
        )
    )

    # 2. Members: list with the search view's filters, count, kanban.
    list_view = env.ref("loyalty_mlm.res_partner_view_list_member").id
    list_spec, _arch = view_spec(env, "res.partner", "list", list_view)
    heavy = [("mlm_usage_segment", "=", "heavy")]
    at_risk = [("mlm_usage_segment", "=", "heavy"), ("mlm_churn_risk", ">=", 70)]
    stage = env["loyalty.mlm.stage"].search([("code", "=", "retention")], limit=1)
    filters = [
        ("members", members),
        ("members, Heavy users", members + heavy),
        ("members, Heavy users at risk", members + at_risk),
        ("members, True Friends", [*members, ("mlm_quadrant", "=", "true_friend")]),
        ("members, stage Retention", [*members, ("mlm_stage_id", "=", stage.id)]),
        ("customers, Heavy users at risk", [("customer_rank", ">", 0), *at_risk]),
    ]
    for label, domain in filters:
        rows.append(
            measure(
                env,
                f"member list: {label} (web_search_read 80)",
                lambda domain=domain: Partner.web_search_read(
                    domain, list_spec, limit=80, count_limit=10001
                ),
                runs,
            )
        )
    rows.append(
        measure(
            env,
            "member list: members, Heavy users at risk (search_count)",
            lambda: Partner.search_count(members + at_risk),
            runs,
        )
    )
    rows.append(
        measure(
            env,
            "member list: sorted by churn risk (web_search_read 80)",
            lambda: Partner.web_search_read(
                members,
                list_spec,
                limit=80,
                order="mlm_churn_risk desc",
                count_limit=10001,
            ),
            runs,
        )
    )
    kanban_view = env.ref("loyalty_mlm.res_partner_view_kanban_member").id
    kanban_spec, _arch = view_spec(env, "res.partner", "kanban", kanban_view)
    kanban_ctx = {"bin_size": True}
    # As the web client asks (relational_model.js, _webReadGroup): every
    # field of the view that has an aggregator in fields_get.
    kanban_aggregates = [
        f"{name}:{info['aggregator']}"
        for name, info in Partner.fields_get(list(kanban_spec), ["aggregator"]).items()
        if info.get("aggregator")
    ]

    def kanban():
        # As the kanban loads: the columns (group_expand: every stage), then
        # the first 40 cards of each open column.
        groups = Partner.with_context(**kanban_ctx).web_read_group(
            members,
            kanban_aggregates,
            ["mlm_stage_id"],
            lazy=True,
        )
        result = [groups]
        for group in groups["groups"]:
            # Folded stages, empty columns and the "no stage" column (folded
            # by default) load no cards.
            if group.get("__fold") or not group["mlm_stage_id_count"]:
                continue
            if not group["mlm_stage_id"]:
                continue
            result.append(
                Partner.with_context(**kanban_ctx).web_search_read(
                    group["__domain"], kanban_spec, limit=40, count_limit=10001
                )
            )
        return result

    rows.append(
        measure(
            env,
            "members kanban: web_read_group by stage",
            lambda: Partner.web_read_group(
                members, kanban_aggregates, ["mlm_stage_id"], lazy=True
            ),
            runs,
        )
    )
    rows.append(
        measure(
            env,
            "members kanban: columns + cards of open columns",
            kanban,
            runs,
        )
    )

    # 3. The point ledger.
    ledger_spec, _arch = view_spec(env, "loyalty.mlm.ledger", "list")
    rows.append(
        measure(
            env,
            "ledger list (web_search_read 80)",
            lambda: Ledger.web_search_read(
                [], ledger_spec, limit=80, count_limit=10001
            ),
            runs,
        )
    )
    action = member.action_mlm_open_ledger()
    rows.append(
        measure(
            env,
            "ledger list of one member (Points button)",
            lambda: Ledger.with_context(**action["context"]).web_search_read(
                action["domain"], ledger_spec, limit=80, count_limit=10001
            ),
            runs,
        )
    )

    # 4. The cockpit.
    Cockpit = env["loyalty.mlm.cockpit"]
    rows.append(
        measure(env, "cockpit (get_cockpit_data month)", Cockpit.get_cockpit_data, runs)
    )
    return rows


if __name__ == "__main__":
    main()
