"""`make bench`: every benchmark in turn; reports land in bench-out/."""
from benchmarks import dsp_cost, oracle_quality, runtime_cost


def main() -> None:
    dsp_cost.main([])
    print()
    runtime_cost.main([])
    print()
    oracle_quality.main([])


if __name__ == "__main__":
    main()
