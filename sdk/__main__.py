"""`python -m skewless`: the same CLI as the `skewless` command."""

from skewless.cli.main import main

main()
