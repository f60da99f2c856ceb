"""python -m bench: every benchmark with small defaults, one after the other."""

from bench.run_all import main

if __name__ == "__main__":
    main()
