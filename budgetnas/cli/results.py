"""The commands that read a study: ``leaderboard``, ``report`` and ``dashboard``. They
open the storage read-only and never load torch."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ..config import ConfigError


def study_budget(study, entries) -> int | None:
    """The study's budget: its pinned settings, else the largest budget its trials recorded."""
    budget = (study.user_attrs.get("settings") or {}).get("budget")
    return budget or max((e.budget for e in entries if e.budget), default=None)


def cmd_leaderboard(args: argparse.Namespace) -> int:
    from ..results import formats as fmt
    from ..results import leaderboard as lb
    from ..study.create import load_existing
    from ..study.urls import redact
    if args.top < 1:
        raise ConfigError(f"--top must be at least 1 (got {args.top})")
    study, url = load_existing(args.study, args.storage)
    trials = study.get_trials(deepcopy=False)
    everything = lb.build(trials, sort=args.sort, include_all=True)
    entries = everything if args.all else [e for e in everything if e.state == "complete"]
    done = [e for e in entries if e.state == "complete"]
    shown = done[: args.top] + [e for e in entries if e.state != "complete"]
    budget = study_budget(study, everything)
    tiers = args.tiers or (lb.default_tiers(budget) if budget else [])
    best = lb.best_per_tier(done, tiers)
    if args.format == "csv":
        print(fmt.format_csv(shown), end="")
    elif args.format == "json":
        print(fmt.format_json(shown, best, study=study.study_name, storage=redact(url),
                              budget=budget, sort=args.sort, pareto=sorted(e.trial for e in done if e.pareto),
                              counts=fmt.state_counts(everything)))
    elif args.format == "markdown":
        print(fmt.format_markdown(shown, best))
    else:
        counts = ", ".join(f"{n} {state}" for state, n in fmt.state_counts(everything).items()) or "no trials"
        print(f"study {study.study_name!r} in {redact(url)}: "
              f"budget {budget:,} params; {counts}" if budget else f"study {study.study_name!r}: {counts}")
        if not done:
            print("no completed trial yet: the table fills in as 'budgetnas search' finishes trials")
        print(fmt.format_table(shown, arch=True))
        print(f"sorted by {args.sort}; * = on the accuracy/params Pareto front; "
              f"score = efficiency: val acc % - {lb.PP_PER_DOUBLING} x log2(params/{lb.REFERENCE_PARAMS})")
        if any(e.n_runs > 1 for e in done):
            print("runs: candidates re-run with new seeds show mean val/test accuracy and the val std in points; "
                  "they rank above candidates trained once")
        if best:
            print("\nbest per budget tier (most accurate with params <= tier)")
            print(fmt.format_tiers(best))
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    from ..results.report import check_writable, write_report
    from ..study.create import load_existing
    from ..study.urls import redact
    out = Path(args.out)
    check_writable(out)  # before the (slow) storage read and plots
    study, url = load_existing(args.study, args.storage)
    path = write_report(study, out, storage_label=redact(url), cost=args.cost)
    print(f"wrote {path} ({path.stat().st_size / 1e6:.1f} MB, self-contained, works offline): open it in a browser")
    return 0


def cmd_dashboard(args: argparse.Namespace) -> int:
    from ..results.dashboard import publish_plots, serve
    from ..study.create import load_existing
    from ..study.urls import redact
    if not 0 < args.port < 65536:
        raise ConfigError(f"--port must be in 1..65535 (got {args.port})")
    study, url = load_existing(args.study, args.storage)
    server = serve(study._storage, args.host, args.port)  # ConfigError if the port is busy
    try:
        publish_plots(study)  # the Pareto and leaderboard plots on the study page, fresh
    except Exception as e:  # e.g. a read-only storage: serve what is there
        print(f"note: could not refresh the study's plots ({type(e).__name__}); serving as stored", file=sys.stderr)
    host = f"[{args.host}]" if ":" in args.host else args.host
    print(f"optuna-dashboard for study {study.study_name!r} in {redact(url)}")
    print(f"open http://{host}:{server.server_port}/dashboard/studies/{study._study_id}  (Ctrl-C stops it)", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0
