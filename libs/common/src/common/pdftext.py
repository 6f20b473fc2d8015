"""Text for PDFs made with fpdf2 (invoices, certificates): a font that can draw it.

fpdf2's core fonts (Helvetica) cover Latin-1 only, and fpdf2 ships no TrueType font. Where DejaVu
Sans is installed (Debian's fonts-dejavu-core, which the service images install), documents use it
and names in any script it covers come out as written; elsewhere they fall back to Helvetica with
accents folded and what Latin-1 cannot hold replaced. No fpdf2 import here: the document is passed
in, so services without PDFs do not depend on it.
"""

from __future__ import annotations

import os
import unicodedata
from pathlib import Path
from typing import Any

# fonts-dejavu-core's files; PDF_FONT_DIR points elsewhere (another distribution, a test).
_FONT_FILES = {"": "DejaVuSans.ttf", "B": "DejaVuSans-Bold.ttf"}
_DEFAULT_DIR = "/usr/share/fonts/truetype/dejavu"
UNICODE_FAMILY = "DejaVuSans"
CORE_FAMILY = "Helvetica"


def fold_to_latin1(text: str) -> str:
    """What a core font can draw: accents kept where Latin-1 has them, dropped where not, the rest '?'."""
    if all(ord(c) < 256 for c in text):
        return text
    decomposed = unicodedata.normalize("NFKD", text)
    return "".join(c for c in decomposed if not unicodedata.combining(c)).encode("latin-1", "replace").decode("latin-1")


class PdfText:
    """Registers the Unicode font on `pdf` when it is installed; `family` is the one to set and
    `text()` prepares a string for it."""

    def __init__(self, pdf: Any, font_dir: str | None = None) -> None:
        directory = Path(font_dir or os.environ.get("PDF_FONT_DIR") or _DEFAULT_DIR)
        files = {style: directory / name for style, name in _FONT_FILES.items()}
        self.unicode = all(path.is_file() for path in files.values())
        if self.unicode:
            for style, path in files.items():
                pdf.add_font(UNICODE_FAMILY, style, str(path))
        self.family = UNICODE_FAMILY if self.unicode else CORE_FAMILY

    def text(self, value: str) -> str:
        return value if self.unicode else fold_to_latin1(value)
