"""Entry point for `python -m benchmarks.smsc_sim`."""

from benchmarks.smsc_sim.cli import main

if __name__ == "__main__":
    main()
