"""Entry point of the PyInstaller bundle: ``dist/percepnet/percepnet`` is the ``percepnet``
command (the same as the console script installed by pip)."""
import multiprocessing

if __name__ == "__main__":
    multiprocessing.freeze_support()
    from percepnet.cli import main

    raise SystemExit(main())
