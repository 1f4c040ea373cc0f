"""Entry point for `python -m benchmarks.loadgen`."""

from benchmarks.loadgen.cli import main

if __name__ == "__main__":
    main()
