"""percepnet.ui: the PyQt6 + pyqtgraph window (``percepnet gui``).

Importing this package imports no Qt; ``launcher`` (the command-line entry) does not either,
until the window opens.

- ``launcher``: ``percepnet gui`` arguments, screen check, ``--self-test``;
- ``app``: the QApplication, engine + window start-up, the self-test report;
- ``main_window``: the window (builds the layout: controls and views; wires the parts);
- ``banners``, ``status_bar``, ``tray``: the notices on top, the status bar, the tray icon;
- ``window_settings``: settings persistence (debounced saves);
- ``device_controller``: device pickers, hot-plug, selection → engine, output routing;
- ``controls``: widgets generated from ``percepnet.app.settings.PARAMS``, device pickers;
- ``spectrogram_view``, ``band_view``, ``pitch_track_view``, ``level_meter``: the views,
  fed from the engine's telemetry rings;
- ``scroll_buffer``: the views' allocation-free scrolling history;
- ``device_watcher``: hot-plug polling in a worker thread;
- ``virtual_mic_panel``: the virtual microphone's state, mode and self-test, off the GUI
  thread, and its box in the window;
- ``screenshot``: ``python -m percepnet.ui.screenshot OUT.png``;
- ``plot_style``, ``icons``: colours, colormaps, the application icon.
"""
