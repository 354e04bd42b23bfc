"""``python -m percepnet`` runs the command line (``percepnet.cli``)."""
from percepnet.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
