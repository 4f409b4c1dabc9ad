"""``python -m plugtron`` (what torchrun runs: ``torchrun ... -m plugtron train ...``)."""

from plugtron.cli.entry import console

if __name__ == "__main__":
    raise SystemExit(console())
