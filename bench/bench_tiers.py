"""The tier review alone, on a database bench_chain.py generated.

    .venv/bin/python bench/bench_tiers.py -d mlm_bench [-c .run/odoo.cfg] \\
        [--batch-size 5000] [--trace] [--snapshots 8]

Runs the nightly tier review (`loyalty.mlm.tier._cron_review`) on the data
`bench_chain.py --generate-only --commit` (or a whole chain) left: the
members of its last "MLM Chain" (or "MLM Bench") company. Clears that
company's tiers first, then times a first review (every member is put on a
rung), then an unchanged night. Each review ends as the scheduler's commit would
(`cr.flush()`: the ORM flush and the precommit hooks, e.g. chatter
tracking), but everything happens in one transaction that is rolled back:
rerun it as often as needed, no copy of the database to make.

Per review: wall time, queries, peak RSS (VmHWM after resetting it) and,
with --trace, the peak of tracemalloc (a second run of each review under
tracemalloc; its wall time is printed apart). --snapshots N (implies
--trace): a tracemalloc snapshot before each batch of the first review and
at its end, and the N biggest growths between the first and the last
(statistics by traceback): what the job keeps from batch to batch.
Not a test: timings depend on the machine.
"""

import argparse
import sys
import time
import tracemalloc
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("-d", "--database", required=True)
    parser.add_argument("-c", "--config", default=str(ROOT / ".run" / "odoo.cfg"))
    parser.add_argument("--batch-size", type=int, help="default: the cron's")
    parser.add_argument("--trace", action="store_true")
    parser.add_argument("--snapshots", type=int, default=0)
    args = parser.parse_args()
    if args.snapshots:
        args.trace = True
    return args


def rss_reset():
    try:
        with open("/proc/self/clear_refs", "w") as handle:
            handle.write("5")
    except OSError:
        pass


def vm_hwm():
    with open("/proc/self/status") as handle:
        for line in handle:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return None


def clear_tiers(env, company):
    """Forget the tiers of `company` (keys of the jsonb columns, history)."""
    key = str(company.id)
    env.flush_all()
    env.cr.execute(
        """
        UPDATE res_partner
           SET mlm_tier_id = mlm_tier_id - %(key)s,
               mlm_tier_below_since = mlm_tier_below_since - %(key)s
         WHERE mlm_tier_id ? %(key)s OR mlm_tier_below_since ? %(key)s
        """,
        {"key": key},
    )
    env.cr.execute(
        "DELETE FROM loyalty_mlm_tier_history WHERE company_id = %s", (company.id,)
    )
    env.invalidate_all()


def main():
    args = parse_args()
    sys.path.insert(0, str(ROOT))
    import odoo  # noqa: PLC0415
    import odoo.sql_db  # noqa: PLC0415
    from odoo import SUPERUSER_ID, api  # noqa: PLC0415
    from odoo.tools import config  # noqa: PLC0415

    config.parse_config(
        ["-c", args.config, "-d", args.database, "--log-level=warn", "--no-http"]
    )
    registry = odoo.modules.registry.Registry(args.database)
    with registry.cursor() as cr:
        env = api.Environment(cr, SUPERUSER_ID, {})
        company = env["res.company"].search(
            ["|", ("name", "=like", "MLM Bench %"), ("name", "=like", "MLM Chain %")],
            order="id desc",
            limit=1,
        )
        if not company:
            sys.exit(
                "no MLM Chain company: run bench_chain.py --generate-only --commit"
            )
        members = len(env["loyalty.mlm.tier"]._mlm_programme_member_ids(company))
        Tier = env["loyalty.mlm.tier"]
        kwargs = {"batch_size": args.batch_size} if args.batch_size else {}
        snapshots = []
        taking = []  # non-empty while the snapshots are taken
        if args.snapshots:
            # Before each batch: the batch method is the one the review calls
            # once per batch of members.
            TierClass = type(Tier)
            batch_review = TierClass._mlm_tier_review

            def snapshot_review(self, *a, **kw):
                if taking:
                    snapshots.append(tracemalloc.take_snapshot())
                return batch_review(self, *a, **kw)

            TierClass._mlm_tier_review = snapshot_review

        def review(traced):
            # Only the company of the bench: other companies' members are
            # not ours to count.
            env.invalidate_all()
            queries = odoo.sql_db.sql_counter
            rss_reset()
            if traced:
                tracemalloc.start(25 if args.snapshots else 1)
            start = time.perf_counter()
            done = Tier.with_context(allowed_company_ids=company.ids)._cron_review(
                **kwargs
            )
            env.flush_all()
            cr.flush()  # what the scheduler's commit runs first
            seconds = time.perf_counter() - start
            peak = None
            if traced:
                if taking:
                    snapshots.append(tracemalloc.take_snapshot())
                peak = tracemalloc.get_traced_memory()[1] / 2**20
                tracemalloc.stop()
            cr.execute(
                "SELECT COUNT(*) FROM loyalty_mlm_tier_history WHERE company_id = %s",
                (company.id,),
            )
            return {
                "seconds": seconds,
                "queries": odoo.sql_db.sql_counter - queries,
                "rss_peak": vm_hwm(),
                "traced_peak": peak,
                "done": done,
                "history": cr.fetchone()[0],
            }

        print(
            f"company {company.name} (id {company.id}): {members} members; "
            f"batch size {args.batch_size or 'the cron default'}",
            flush=True,
        )
        results = []
        for traced in (False, True) if args.trace else (False,):
            clear_tiers(env, company)
            for label in ("first review", "unchanged night"):
                if traced and args.snapshots and label == "first review":
                    taking.append(True)
                result = review(traced)
                taking.clear()
                results.append((label, traced, result))
        print(
            "\n| review | traced | wall (s) | queries | RSS peak (MiB) "
            "| traced peak (MiB) | members | tier history rows |"
        )
        print("|---|---|---:|---:|---:|---:|---:|---:|")
        for label, traced, result in results:
            peak = result["traced_peak"]
            print(
                f"| {label} | {'yes' if traced else 'no'} | {result['seconds']:.3f} "
                f"| {result['queries']} | {result['rss_peak']:.0f} "
                f"| {'' if peak is None else f'{peak:.1f}'} | {result['done']} "
                f"| {result['history']} |"
            )
        if len(snapshots) >= 2:
            # Without the snapshots the list keeps: what the job keeps.
            own = [tracemalloc.Filter(False, tracemalloc.__file__)]
            snapshots = [snap.filter_traces(own) for snap in snapshots]
            first, last = snapshots[0], snapshots[-1]
            print(
                f"\n{len(snapshots) - 1} snapshots of the first traced review: "
                f"what grew between the first batch and the end "
                f"(top {args.snapshots}, by traceback):"
            )
            for stat in last.compare_to(first, "traceback")[: args.snapshots]:
                print(
                    f"\n+{stat.size_diff / 2**20:.1f} MiB in {stat.count_diff} blocks:"
                )
                for line in stat.traceback.format(limit=12):
                    print("   ", line)
            print("\nper batch (traced memory at its start, MiB):")
            print(
                " ".join(
                    f"{sum(s.size for s in snap.statistics('filename')) / 2**20:.1f}"
                    for snap in snapshots
                )
            )
        cr.rollback()


if __name__ == "__main__":
    main()
