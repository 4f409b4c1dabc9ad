"""``python -m plugtron`` (what torchrun runs: ``torchrun ... -m plugtron train ...``)."""

from plugtron.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
