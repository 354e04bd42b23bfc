"""percepnet.ui: the PyQt6 + pyqtgraph window (``percepnet gui``).

Importing this package imports no Qt; ``launcher`` (the command-line entry) does not either,
until the window opens.

- ``launcher``: ``percepnet gui`` arguments, screen check, ``--self-test``;
- ``app``: the QApplication, engine + window start-up, the self-test report;
- ``main_window``: the window (controls, views, status bar, tray, settings persistence);
- ``controls``: widgets generated from ``percepnet.app.settings.PARAMS``, device pickers;
- ``spectrogram_view``, ``band_view``, ``pitch_track_view``, ``level_meter``: the views,
  fed from the engine's telemetry rings;
- ``scroll_buffer``: the views' allocation-free scrolling history;
- ``device_watcher``: hot-plug polling in a worker thread;
- ``virtual_mic_panel``: the virtual microphone's state, mode and self-test, off the GUI
  thread;
- ``screenshot``: ``python -m percepnet.ui.screenshot OUT.png``;
- ``plot_style``, ``icons``: colours, colormaps, the application icon.
"""
