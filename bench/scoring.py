"""Benchmark: leads scored per second on one core under the default rules (target: 20,000).

    taskset -c 0 python bench/scoring.py [--leads 5000] [--events 20] [--seed 7] [--rounds 3] [--profile]

Generates seeded, varied leads (names, company and free-mail domains, disposable and student
addresses, valid, invalid and missing phones, countries as codes and names) with a realistic
mix of signals each, and times ``score_lead`` only (building the inputs is not timed):

1. first leads after start: a fresh process scores ``--leads`` leads; includes the one-time
   loading (phone metadata per country, regexes, the routes of each new page and asset);
2. new leads, steady state (the target figure): a process that has scored leads before
   scores ``--leads`` leads it has never seen (new people, phones, addresses, ages);
3. re-score: the same leads again (what scoring a known lead after one more event costs);
4. next change: ``next_change`` for the steady-state leads, just scored (as the pipeline asks it
   after each scoring): a separate call, so the figures above do not include it.

Rounds 2 and 3 run ``--rounds`` times on fresh lead sets (new seeds); the best round counts.
Before each timing the freshly built inputs are moved out of the cycle collector's way
(``gc.freeze``): a worker holds one batch, not 100,000 new signals for the collector to rescan.
The scoring runs compiled (``scoring.native``) when built, else as pure Python: the first
line says which (``LEADLOOP_PURE_PYTHON=1`` measures the pure-Python code).
"""

from __future__ import annotations

import argparse
import cProfile
import gc
import math
import pstats
import random
import sys
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from scoring import LeadProfile, Signal, load_rules_file, native, next_change, score_lead  # noqa: E402

RULES_FILE = Path(__file__).resolve().parent.parent / "rules" / "leadloop.yaml"
AS_OF = datetime(2025, 6, 2, 9, 30, tzinfo=UTC)

FIRST = ["anna", "ben", "carla", "david", "elif", "femi", "greta", "hiro", "ines", "jonas", "katarzyna",
         "liam", "maria", "nguyen", "olivia", "pierre", "quinn", "rahul", "sofia", "tomasz", "ulla", "wei"]
LAST = ["schmidt", "smith", "garcia", "mueller", "rossi", "dubois", "kowalski", "nakamura", "okafor",
        "jensen", "van-dijk", "oconnor", "schwarzkopf", "szczepanski", "patel", "li", "brown", "novak"]
COMPANY_WORDS = ["acme", "north", "blue", "cargo", "freight", "metro", "alpine", "delta", "nordic",
                 "summit", "harbor", "prime", "urban", "swift", "atlas", "vector"]
COMPANY_SUFFIX = ["logistics", "retail", "systems", "group", "trading", "foods", "labs", "parts"]
TLDS = ["com", "de", "co.uk", "fr", "nl", "io", "eu"]
FREE = ["gmail.com", "yahoo.com", "outlook.com", "web.de", "gmx.de", "hotmail.co.uk", "icloud.com"]
DISPOSABLE = ["mailinator.com", "10minutemail.com", "guerrillamail.com", "yopmail.com"]
STUDENT = ["tum.edu", "ox.ac.uk", "mit.edu", "uni-koeln.edu"]
TITLES = ["Head of Logistics", "Operations Manager", "CEO", "Student", "Marketing Intern",
          "Supply Chain Director", "Buyer", "Software Engineer", "", "VP Operations", "Team Lead Dispatch"]
INDUSTRIES = ["Logistics", "Retail", "Manufacturing", "Education", "Software", "Healthcare", ""]
COUNTRIES = [("DE", "+49 30 {n7}"), ("Germany", "030 {n7}"), ("US", "(415) 555-{n4}"),
             ("GB", "+44 20 7946 {n4}"), ("France", "+33 1 42 68 {n2} {n2}"), ("NL", "+31 20 {n7}"),
             ("", "+49 89 {n7}")]
PAGES = ["/pricing", "/coverage-map", "/blog/{n}", "/blog/{n}", "/guide/section-{k}", "/customers/{n}",
         "/careers", "/docs/integrations/{n}", "/about", "/", "/roi-calculator", "/product/{n}"]
ASSETS = ["coverage-map", "roi-calculator", "buyers-guide", "case-studies", "webinar-recording",
          "blog", "newsletter", "unknown-asset"]
#: Signal kinds and how often each occurs among a lead's signals.
KIND_WEIGHTS = {
    "page_view": 50, "content_download": 10, "email_open": 15, "email_click": 8, "form_submit": 5,
    "chat_intent": 2, "contact_request": 2, "event_attended": 1, "trial_signup": 1,
    "unsubscribe": 1, "bounce": 1, "do_not_contact": 0.5,
}


def _digits(rng: random.Random, count: int) -> str:
    return "".join(rng.choice("0123456789") for _ in range(count))


def make_email(rng: random.Random, index: int) -> str:
    first, last = rng.choice(FIRST), rng.choice(LAST)
    roll = rng.random()
    if roll < 0.05:
        local = "".join(rng.choice("bcdfghjklmnpqrstvwxz") for _ in range(rng.randint(5, 8))) + _digits(rng, 3)
    else:
        local = rng.choice([f"{first}.{last}", f"{first[0]}{last}", f"{first}", f"{first}{rng.randint(1, 99)}"])
    roll = rng.random()
    if roll < 0.25:
        domain = rng.choice(FREE)
    elif roll < 0.28:
        domain = rng.choice(DISPOSABLE)
    elif roll < 0.31:
        domain = rng.choice(STUDENT)
    elif roll < 0.32:
        domain = "rivalroute.example"
    else:
        domain = f"{rng.choice(COMPANY_WORDS)}-{rng.choice(COMPANY_SUFFIX)}{index % 97}.{rng.choice(TLDS)}"
    return f"{local}@{domain}"


def make_profile(rng: random.Random, index: int) -> LeadProfile:
    country, phone_format = rng.choice(COUNTRIES)
    roll = rng.random()
    if roll < 0.3:
        phone = ""
    elif roll < 0.4:
        phone = _digits(rng, rng.randint(3, 6))  # junk typed into a form
    else:
        phone = phone_format.format(n7=_digits(rng, 7), n4=_digits(rng, 4), n2=_digits(rng, 2))
    return LeadProfile({
        "email": make_email(rng, index), "first_name": rng.choice(FIRST).title(),
        "job_title": rng.choice(TITLES), "industry": rng.choice(INDUSTRIES),
        "employees": rng.choice([None, 3, 25, 80, 250, 1200, 9000]), "country": country,
        "phone": phone, "company": rng.choice(["", "Acme", "Northwind", "Globex"]),
        "do_not_contact": rng.random() < 0.01,
    })


def make_signals(rng: random.Random, count: int, lead: int) -> list[Signal]:
    kinds, weights = list(KIND_WEIGHTS), list(KIND_WEIGHTS.values())
    signals = []
    for number in range(count):
        kind = rng.choices(kinds, weights)[0]
        when = AS_OF - timedelta(seconds=rng.randint(0, 120 * 86400))
        properties: dict[str, str] = {"campaign": f"c{rng.randint(1, 9)}"}
        if kind == "page_view":
            properties["url"] = "https://www.example.com" + rng.choice(PAGES).format(
                n=rng.randint(1, 400), k=rng.randint(1, 6))
        elif kind == "content_download":
            properties["asset"] = rng.choice(ASSETS)
        elif kind == "form_submit":
            properties["form"] = rng.choice(["newsletter", "demo-request", "whitepaper", "contact"])
        signals.append(Signal(kind, when, properties, key=f"{lead}-{number}"))
    return signals


def make_leads(seed: int, count: int, events: int) -> list[tuple[LeadProfile, list[Signal]]]:
    """Return ``count`` seeded leads with ``events`` signals each."""
    rng = random.Random(seed)
    return [(make_profile(rng, i), make_signals(rng, events, i)) for i in range(count)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--leads", type=int, default=5000)
    parser.add_argument("--events", type=int, default=20)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--rounds", type=int, default=3, help="rounds of the steady-state and re-score timings")
    parser.add_argument("--profile", action="store_true", help="print the top functions by time (pure Python only)")
    args = parser.parse_args()

    rules = load_rules_file(RULES_FILE)

    def timed(leads: list[tuple[LeadProfile, list[Signal]]]) -> tuple[float, list]:
        # The inputs were just built: move them out of the cycle collector's way, as a worker
        # holds one batch, not 100,000 fresh signals the collector would rescan while we time.
        gc.collect()
        gc.freeze()
        start = time.perf_counter()
        results = [score_lead(profile, signals, rules, AS_OF) for profile, signals in leads]
        return time.perf_counter() - start, results

    def timed_changes(leads: list[tuple[LeadProfile, list[Signal]]]) -> tuple[float, list]:
        gc.collect()
        gc.freeze()
        start = time.perf_counter()
        changes = [next_change(profile, signals, rules, AS_OF) for profile, signals in leads]
        return time.perf_counter() - start, changes

    first_leads = make_leads(args.seed, args.leads, args.events)
    if args.profile:
        profiler = cProfile.Profile()
        profiler.runcall(timed, first_leads)
        pstats.Stats(profiler).sort_stats("tottime").print_stats(15)
        return
    first, results = timed(first_leads)
    steady = rescore = changes_time = math.inf
    changes: list = []
    del first_leads
    for round_number in range(1, args.rounds + 1):
        gc.unfreeze()
        leads = make_leads(args.seed + round_number, args.leads, args.events)
        steady = min(steady, timed(leads)[0])
        rescore = min(rescore, timed(leads)[0])
        seconds, changes = timed_changes(leads)
        changes_time = min(changes_time, seconds)
    print(f"rules {rules.version}, scoring {native.active()}: {args.leads} leads x {args.events} signals, "
          f"seed {args.seed}, best of {args.rounds}")
    for label, seconds in (("first leads after start", first), ("new leads, steady state", steady),
                           ("re-score (warm)", rescore), ("next change (separate)", changes_time)):
        print(f"  {label:25} {args.leads / seconds:9,.0f} leads/s  {seconds / args.leads * 1e6:6.1f} µs/lead"
              f"  {args.leads * args.events / seconds:11,.0f} signals/s")
    rate = args.leads / steady
    print(f"  target 20,000 leads/s for new leads, steady state: {'met' if rate >= 20_000 else 'NOT met'}")
    what = Counter(change.reason.split()[0] for change in changes if change is not None)
    print(f"  next change: {sum(what.values())} of {len(changes)} leads change on their own "
          f"({', '.join(f'{field} {count}' for field, count in what.most_common())}); "
          f"score and next change together {args.leads / (steady + changes_time):,.0f} leads/s")
    bands = {band: sum(r.band == band for r in results) for band in ("cold", "cool", "warm", "hot")}
    print(f"  first set: bands {bands}, MQLs {sum(r.mql for r in results)}, "
          f"disqualified {sum(r.disqualified for r in results)}")
    # Memory: the whole process at its peak (rules, caches, all inputs and results held).
    import resource

    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"  peak memory {peak_mb:.0f} MB (max RSS of this process)")


if __name__ == "__main__":
    main()
