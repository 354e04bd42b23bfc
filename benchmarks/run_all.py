"""`make bench`: every benchmark in turn; reports land in bench-out/.

The 2-hour soak (``python -m benchmarks.soak``) is not part of it; see the README.
"""
import sys

from benchmarks import dsp_cost, engine_load, oracle_quality, quality, runtime_cost


def main() -> None:
    dsp_cost.main([])
    print()
    runtime_cost.main([])
    print()
    oracle_quality.main([])
    print()
    try:
        engine_load.main([])
    except Exception as exc:  # noqa: BLE001 - no sound server here: say so, keep going
        print(f"engine load benchmark failed: {exc}", file=sys.stderr)
    print()
    # the older development set first (secondary figures, quoted by the main report), then
    # the one of unseen voices, languages and noises (benchmarks.devset_unseen)
    for argv in (["--set", "val"], []):
        try:
            quality.main(argv)
        except SystemExit as exc:  # no trained model installed: say so, keep the other reports
            print(f"quality report skipped: {exc}", file=sys.stderr)
        print()


if __name__ == "__main__":
    main()
