"""The ``repro`` command: list, run, book, scoreboard and sweep."""
from __future__ import annotations

import argparse
import statistics
import sys
from collections import defaultdict
from typing import Any

from repro import chapters
from repro.params import ParameterError
from repro.params import validate as validate_params


def _overrides(args: argparse.Namespace) -> dict[str, Any]:
    values = dict(args.p or [])
    for name in ("scale", "device", "seed"):
        if getattr(args, name, None) is not None:
            values[name] = getattr(args, name)
    return values


def _print_claims(claims: list[dict]) -> None:
    if not claims:
        print("  (no claims recorded)")
        return
    width = max(len(c["id"]) for c in claims)
    # reproductions first, then the checks of our own implementation (never counted as reproduced)
    for c in sorted(claims, key=lambda c: c.get("kind", "reproduction") == "check"):
        kind = "check " if c.get("kind") == "check" else ""
        print(f"  {kind}{c['id']:<{width}}  {c['verdict']:<24}  measured {c['measured_text']:<22} "
              f"paper {c['paper_value']} [{c['paper_source']}]")


def cmd_list(args: argparse.Namespace) -> int:
    from repro.runner import status_line

    for c in chapters.CHAPTERS:
        print(f"{c.number:02d} {c.slug:<13} {status_line(c)}")
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    from repro.runner import run_chapter

    result = run_chapter(args.chapter, _overrides(args), timeout=args.timeout, force=args.force)
    if result.cached:
        print(f"{result.chapter}: unchanged since its run at {result.finished} (notebook, code, parameters, packages "
              f"and data match); not executed again. --force reruns it.")
    else:
        print(f"\n{result.chapter}: {result.status} in {result.wall_s:.1f} s -> {result.notebook}")
    _print_claims(result.claims)
    if result.error:
        print(f"error: {result.error}\n  the executed notebook keeps the traceback: {result.notebook}", file=sys.stderr)
        return 1
    return 0


def cmd_book(args: argparse.Namespace) -> int:
    from repro.book import build_html, html_dir, recorded_results, write_readme_counts
    from repro.runner import run_chapter

    selected = [chapters.get(n) for n in args.chapters] if args.chapters else chapters.available()
    for c in selected:  # validate everything before running anything
        if c.planned:
            raise chapters.UnknownChapterError(f"chapter {c.slug!r} has no notebook yet; see `repro list`")
        validate_params(c.slug, c.params, {"scale": args.scale, **dict(args.p or [])})
    failed = []
    if not args.no_execute:
        for c in selected:
            print(f"== {c.stem} at scale {args.scale}", flush=True)
            result = run_chapter(c.slug, {"scale": args.scale, **dict(args.p or [])}, timeout=args.timeout,
                                 force=args.force)
            if result.cached:
                print(f"   unchanged since {result.finished}: kept, not executed (--force reruns it)")
            else:
                print(f"   {result.status} in {result.wall_s:.1f} s; " + result.summary())
            if result.status == "failed":
                failed.append(c.slug)
    # every chapter's last run stays in the book: --chapters X re-executes X and keeps the others' pages
    results = [r for r in recorded_results() if r.status != "interrupted"]
    failed += [r.chapter for r in results if r.status == "failed" and r.chapter not in failed
               and r.chapter in {c.slug for c in selected}]
    rc = build_html(results)
    print(f"\nbook: {html_dir() / 'index.html'} (jupyter-book exit code {rc})")
    if write_readme_counts(recorded_results()):
        print("README.md: scoreboard counts refreshed from this default-scale build")
    if failed:
        print(f"failed chapters: {', '.join(failed)} (rendered with their tracebacks)", file=sys.stderr)
    return 1 if failed or rc else 0


def cmd_scoreboard(args: argparse.Namespace) -> int:
    from repro.book import recorded_results, write_scoreboard_files

    results = recorded_results()
    if not results:
        print("no chapter has been run yet: try `repro run sylvie --scale smoke`")
        return 1
    from repro.runner import staleness

    for r in results:
        stale = staleness(r)
        print(f"{r.chapter}: {r.status}, {r.summary()}" + (f"\n  STALE: {'; '.join(stale)} changed since" if stale
                                                           else ""))
        _print_claims(r.claims)
    csv_path, json_path = write_scoreboard_files(results)
    print(f"\nwritten: {csv_path} and {json_path}")
    return 0


def cmd_sweep(args: argparse.Namespace) -> int:
    from repro.paths import build_dir
    from repro.runner import run_chapter

    chapter = chapters.get(args.chapter)
    name, values = args.p[0], args.p[1:]
    if not values:
        raise ParameterError(f"sweep needs at least one value: -p {name} V1 V2 ...")
    base = {"scale": args.scale} if args.scale else {}
    for v in values:  # validate every point before running any
        validate_params(chapter.slug, chapter.params, {**base, name: v})
    per_claim: dict[str, list[tuple[str, dict]]] = defaultdict(list)
    failures = 0
    for v in values:
        out = build_dir() / "sweeps" / chapter.slug / f"{name}={v}.ipynb"
        print(f"== {chapter.slug}: {name}={v}")
        result = run_chapter(chapter.slug, {**base, name: v}, output=out, record=False, timeout=args.timeout)
        if result.status == "failed":
            failures += 1
            print(f"   failed: {result.error}", file=sys.stderr)
        for c in result.claims:
            per_claim[c["id"]].append((v, c))
    print(f"\n{chapter.slug}: sweep over {name} = {' '.join(values)}")
    for cid, points in per_claim.items():
        measured = [c["measured"] for _, c in points if c["measured"] is not None]
        spread = f"{statistics.mean(measured):.4g} ± {statistics.stdev(measured):.2g}" if len(measured) > 1 else (
            f"{measured[0]:.4g}" if measured else "n/a")
        unit = points[0][1]["unit"]
        verdicts = ", ".join(f"{v}: {c['verdict']}" for v, c in points)
        print(f"  {cid}: {spread} {unit}  [{verdicts}]")
    return 1 if failures else 0


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="repro", description="Run and check the reproducibility handbook.")
    sub = p.add_subparsers(dest="command", required=True)
    sub.add_parser("list", help="the chapters and their status").set_defaults(func=cmd_list)

    run = sub.add_parser("run", help="validate parameters and execute one chapter")
    run.add_argument("chapter")
    run.add_argument("--scale")
    run.add_argument("--device")
    run.add_argument("--seed")
    run.add_argument("-p", nargs=2, action="append", metavar=("NAME", "VALUE"), help="any chapter parameter")
    run.add_argument("--timeout", type=int, default=None,
                     help="seconds per cell (default: 5x the scale's budget; 6 h at full scale)")
    run.add_argument("--force", action="store_true", help="execute even if nothing changed since the last run")
    run.set_defaults(func=cmd_run)

    book = sub.add_parser("book", help="execute chapters, then build the HTML book")
    book.add_argument("--scale", default="default")
    book.add_argument("--chapters", nargs="+")
    book.add_argument("-p", nargs=2, action="append", metavar=("NAME", "VALUE"))
    book.add_argument("--no-execute", action="store_true", help="render the chapters executed last time")
    book.add_argument("--timeout", type=int, default=None)
    book.add_argument("--force", action="store_true", help="execute every selected chapter, changed or not")
    book.set_defaults(func=cmd_book)

    sub.add_parser("scoreboard", help="the cross-chapter claims table").set_defaults(func=cmd_scoreboard)

    sweep = sub.add_parser("sweep", help="rerun a chapter over several values of one parameter")
    sweep.add_argument("chapter")
    sweep.add_argument("-p", nargs="+", required=True, metavar="NAME VALUE", help="NAME V1 V2 ...")
    sweep.add_argument("--scale")
    sweep.add_argument("--timeout", type=int, default=None)
    sweep.set_defaults(func=cmd_sweep)
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        return args.func(args)
    except (ParameterError, chapters.UnknownChapterError) as exc:
        print(f"repro: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("repro: interrupted; the last finished runs and pages are kept", file=sys.stderr)
        return 130
    except Exception as exc:
        from repro.data import DataNotFoundError
        from repro.runner import ChapterBusyError, ChapterNotReadyError

        if isinstance(exc, (DataNotFoundError, ChapterNotReadyError, ChapterBusyError)):
            print(f"repro: {exc}", file=sys.stderr)
            return 2
        raise


if __name__ == "__main__":
    sys.exit(main())
