"""Controls generated from the parameter registry (``percepnet.app.settings.PARAMS``): the
label, range, unit and help text (as tooltip) come from the :class:`Param`, never repeated
here, so the window, the command line and the config file always agree."""
from __future__ import annotations

from PyQt6.QtCore import Qt, pyqtSignal
from PyQt6.QtWidgets import (QCheckBox, QComboBox, QHBoxLayout, QLabel, QPushButton, QSlider,
                             QVBoxLayout, QWidget)

from percepnet.app.settings import Param

__all__ = ["ParamSlider", "ParamCheck", "SuppressionButton", "DeviceCombo", "param_tooltip"]


def param_tooltip(p: Param) -> str:
    rng = f" ({p.range[0]:g}–{p.range[1]:g} {p.unit})".replace("  ", " ") if p.range else ""
    return f"{p.help[:1].upper()}{p.help[1:]}{rng}."


class ParamSlider(QWidget):
    """A labelled slider over ``param.range`` in steps of ``step`` (in the param's unit)."""

    value_changed = pyqtSignal(float)

    def __init__(self, param: Param, value: float, *, step: float = 1.0, parent=None) -> None:
        super().__init__(parent)
        if param.range is None:
            raise ValueError(f"{param.name} has no range")
        self.param = param
        self.step = float(step)
        lo, hi = param.range
        self.title = QLabel(param.label or param.name)
        self.value_label = QLabel()
        self.value_label.setAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        self.slider = QSlider(Qt.Orientation.Horizontal)
        self.slider.setRange(int(round(lo / self.step)), int(round(hi / self.step)))
        self.slider.setPageStep(max(1, int(round(10.0 / self.step))))
        self.slider.setAccessibleName(param.label or param.name)
        tip = param_tooltip(param)
        for w in (self, self.title, self.slider, self.value_label):
            w.setToolTip(tip)
        top = QHBoxLayout()
        top.setContentsMargins(0, 0, 0, 0)
        top.addWidget(self.title)
        top.addStretch(1)
        top.addWidget(self.value_label)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.setSpacing(2)
        lay.addLayout(top)
        lay.addWidget(self.slider)
        self.set_value(value)
        self.slider.valueChanged.connect(self._on_slider)

    def value(self) -> float:
        return self.slider.value() * self.step

    def set_value(self, value: float) -> None:
        """Move the slider without emitting :attr:`value_changed`."""
        self.slider.blockSignals(True)
        self.slider.setValue(int(round(float(value) / self.step)))
        self.slider.blockSignals(False)
        self._show(self.value())

    def _show(self, v: float) -> None:
        p = self.param
        if p.name == "atten_limit_db" and p.range is not None and v >= p.range[1]:
            text = f"{v:g} {p.unit} (unlimited)"
        elif p.name == "atten_limit_db" and v <= 0:
            text = f"{v:g} {p.unit} (no suppression)"
        else:
            text = f"{v:g} {p.unit}".strip()
        self.value_label.setText(text)

    def _on_slider(self, _raw: int) -> None:
        v = self.value()
        self._show(v)
        self.value_changed.emit(v)


class ParamCheck(QCheckBox):
    """A check box for a bool :class:`Param`; emits ``toggled(bool)``."""

    def __init__(self, param: Param, value: bool, parent=None) -> None:
        super().__init__(param.label or param.name, parent)
        self.param = param
        self.setToolTip(param_tooltip(param))
        self.setChecked(bool(value))


class SuppressionButton(QPushButton):
    """The big on/off switch for suppression (checked = on)."""

    STYLE = """
    QPushButton { font-size: 17px; font-weight: 600; padding: 14px; border-radius: 8px;
                  color: #ffffff; background: #5b6170; border: 1px solid #444954; }
    QPushButton:checked { background: #2f9e6b; border: 1px solid #3cb97f; }
    QPushButton:focus { border: 2px solid #9ecbff; }
    """

    def __init__(self, param: Param, value: bool, shortcut_text: str = "", parent=None) -> None:
        super().__init__(parent)
        self.param = param
        self._shortcut_text = shortcut_text
        self.setCheckable(True)
        self.setStyleSheet(self.STYLE)
        self.setMinimumHeight(56)
        tip = param_tooltip(param)
        if shortcut_text:
            tip += f" Shortcut: {shortcut_text}."
        self.setToolTip(tip)
        self.setAccessibleName(param.label or param.name)
        self.toggled.connect(self._relabel)
        self.setChecked(bool(value))
        self._relabel(self.isChecked())

    def _relabel(self, on: bool) -> None:
        self.setText(f"{self.param.label or 'Suppression'}: {'ON' if on else 'OFF'}")


class DeviceCombo(QComboBox):
    """Device picker whose list can be refreshed (hot-plug) without losing the selection.

    Entries are ``(id, label)``; the id is what the engine and the settings store. An id
    that is selected but no longer listed stays, marked "(not connected)", so unplugging a
    device never silently changes the choice.
    """

    device_selected = pyqtSignal(str)

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        self.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
        self.setMinimumContentsLength(18)
        self._entries: list[tuple[str, str]] = []
        self.activated.connect(self._on_activated)

    def set_entries(self, entries: list[tuple[str, str]], selected: str | None = None) -> None:
        """Replace the list; keeps the current id selected (or selects ``selected``)."""
        want = self.current_id() if selected is None else selected
        ids = [e[0] for e in entries]
        if want is not None and want not in ids:
            entries = entries + [(want, f"{want} (not connected)")]
        if entries == self._entries:
            if want is not None and self.current_id() != want:
                self._select(want)
            return
        self.blockSignals(True)
        self.clear()
        for dev_id, label in entries:
            self.addItem(label, dev_id)
            self.setItemData(self.count() - 1, label, Qt.ItemDataRole.ToolTipRole)
        self._entries = list(entries)
        self.blockSignals(False)
        if want is not None:
            self._select(want)

    def _select(self, dev_id: str) -> None:
        i = self.findData(dev_id)
        if i >= 0:
            self.blockSignals(True)
            self.setCurrentIndex(i)
            self.blockSignals(False)

    def select_id(self, dev_id: str) -> None:
        """Select ``dev_id`` (adding it if unknown) without emitting :attr:`device_selected`."""
        if self.findData(dev_id) < 0:
            self.set_entries(self._entries, selected=dev_id)
        self._select(dev_id)

    def current_id(self) -> str | None:
        d = self.currentData()
        return None if d is None else str(d)

    def ids(self) -> list[str]:
        return [e[0] for e in self._entries]

    def _on_activated(self, index: int) -> None:
        d = self.itemData(index)
        if d is not None:
            self.device_selected.emit(str(d))
