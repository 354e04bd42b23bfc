"""The notices across the top of the window: one-line banners with a close button, kept by
key so that a later notice replaces an earlier one of the same kind (e.g. the first-run hint,
the demo clip note, "a microphone is now available")."""
from __future__ import annotations

from PyQt6.QtCore import Qt, pyqtSignal
from PyQt6.QtWidgets import QFrame, QHBoxLayout, QLabel, QPushButton, QVBoxLayout

__all__ = ["Banner", "BannerStack", "sentence"]


class Banner(QFrame):
    """A one-line notice across the top of the window, with a close button."""

    dismissed = pyqtSignal()

    STYLES = {
        "info": "background:#1f3b57; color:#e6f0ff; border:1px solid #2f5b85;",
        "warning": "background:#4d3b12; color:#fff2d6; border:1px solid #7a5d1c;",
    }

    def __init__(self, text: str, kind: str = "info", parent=None) -> None:
        super().__init__(parent)
        self.setObjectName("banner")
        style = self.STYLES.get(kind, self.STYLES["info"])
        self.setStyleSheet(f"#banner {{ {style} border-radius:6px; }} "
                           "QLabel { border:none; background:transparent; }")
        self.label = QLabel(text)
        self.label.setWordWrap(True)
        self.label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        close = QPushButton("✕")
        close.setFlat(True)
        close.setFixedWidth(28)
        close.setToolTip("Dismiss")
        close.setAccessibleName("Dismiss notice")
        close.clicked.connect(self._dismiss)
        lay = QHBoxLayout(self)
        lay.setContentsMargins(10, 4, 4, 4)
        lay.addWidget(self.label, 1)
        lay.addWidget(close)

    @property
    def text(self) -> str:
        return self.label.text()

    def _dismiss(self) -> None:
        self.hide()
        self.dismissed.emit()


def sentence(text: str) -> str:
    """``text`` stripped, with a capital first letter (notes arrive in lower case)."""
    text = text.strip()
    return text[:1].upper() + text[1:] if text else text


class BannerStack(QVBoxLayout):
    """The column of banners, by key (:attr:`banners`)."""

    def __init__(self) -> None:
        super().__init__()
        self.setSpacing(4)
        self.banners: dict[str, Banner] = {}

    def add(self, key: str, text: str, kind: str = "info") -> Banner:
        old = self.banners.pop(key, None)
        if old is not None:
            old.deleteLater()
        b = Banner(text, kind)
        self.banners[key] = b
        self.addWidget(b)
        b.show()
        return b

    def remove(self, key: str) -> None:
        b = self.banners.pop(key, None)
        if b is not None:
            b.hide()
            b.deleteLater()

    def remove_matching(self, needle: str) -> None:
        """Remove the banners whose text contains ``needle`` (case-insensitive)."""
        for key, b in list(self.banners.items()):
            if needle in b.text.lower():
                self.remove(key)

    def visible_texts(self) -> list[str]:
        return [b.text for b in self.banners.values() if not b.isHidden()]
