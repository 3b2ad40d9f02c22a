"""`python -m pushinstall`: the same as the `pushinstall` command."""

from pushinstall.cli import main

main()
