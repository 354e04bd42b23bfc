"""``python -m percepnet`` runs the command line."""
from percepnet.app.cli import main

raise SystemExit(main())
