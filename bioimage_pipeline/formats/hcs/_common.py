"""What the layout readers share: folder listings, XML and number parsing that fail with one-line errors, and the
builder that turns parsed image files into a :class:`PlateLayout` (duplicates, capped warnings, sorted files).

Nothing here opens an image file: listings come from ``os.scandir``, metadata from the index documents.
"""

from __future__ import annotations

import math
import os
import re
import xml.etree.ElementTree as ET
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from bioimage_pipeline.errors import StoreError
from bioimage_pipeline.formats.hcs.model import Layout, PlateFile, PlateLayout
from bioimage_pipeline.wells import well_id

#: Warning lines kept in a PlateLayout; the rest are counted in one last line.
MAX_WARNINGS = 20
TIFF_SUFFIXES = (".tif", ".tiff")
_UTF8_BOM = b"\xef\xbb\xbf"
#: Micrometres per unit, for the length units index files write.
_MICROMETRES = {"m": 1e6, "mm": 1e3, "um": 1.0, "µm": 1.0, "μm": 1.0, "micron": 1.0, "nm": 1e-3}


# --- folder listings -----------------------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class Listing:
    """The visible files and sub-folders of one folder, sorted by name."""

    files: tuple[str, ...] = ()
    dirs: tuple[str, ...] = ()


def list_dir(folder: Path) -> Listing:
    """One folder's entries. Hidden names (``.DS_Store``, macOS ``._`` twins) are left out: instruments never
    write them, and a single one would otherwise break "every image follows the pattern". An unreadable or
    missing folder lists as empty."""
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return Listing()
    files: list[str] = []
    dirs: list[str] = []
    for entry in entries:
        if entry.name.startswith("."):
            continue
        try:
            if entry.is_dir():
                dirs.append(entry.name)
            elif entry.is_file():
                files.append(entry.name)
        except OSError:
            continue
    return Listing(files=tuple(sorted(files)), dirs=tuple(sorted(dirs)))


def numbered_dirs(listing: Listing, pattern: re.Pattern[str]) -> list[tuple[int, str]]:
    """Sub-folders whose name matches ``pattern`` (one integer group), with that number, in number order."""
    found = [(int(m.group(1)), name) for name in listing.dirs if (m := pattern.match(name))]
    return sorted(found)


def has_suffix(name: str, suffixes: Iterable[str]) -> bool:
    lower = name.lower()
    return any(lower.endswith(s) for s in suffixes)


def relative_key(*parts: str) -> str:
    """A plate-relative POSIX key from path parts that may carry Windows separators or a leading ``./``."""
    joined = "/".join(p.replace("\\", "/").strip("/") for p in parts if p and p.strip("/\\"))
    while joined.startswith("./"):
        joined = joined[2:]
    return joined


class FolderFiles:
    """Which plate-relative keys exist, listing each folder once (a plate's index can name 100 000 files;
    one ``stat`` each would be slow on network storage)."""

    def __init__(self, root: Path) -> None:
        self._root = root
        self._listings: dict[str, frozenset[str]] = {}

    def names(self, folder_key: str) -> frozenset[str]:
        if folder_key not in self._listings:
            self._listings[folder_key] = frozenset(
                list_dir(self._root / folder_key if folder_key else self._root).files
            )
        return self._listings[folder_key]

    def exists(self, key: str) -> bool:
        folder_key, _, name = key.rpartition("/")
        return name in self.names(folder_key)


# --- documents -----------------------------------------------------------------------------------------------


def read_bytes(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise StoreError(path, f"cannot be read ({exc.strerror or exc})") from exc


def read_text(path: Path) -> str:
    """A text document, UTF-8 with an optional BOM; bytes that are not UTF-8 become U+FFFD rather than failing
    (MetaXpress HTD descriptions carry 0x82 0x81 as line breaks)."""
    data = read_bytes(path)
    if data.startswith(_UTF8_BOM):
        data = data[len(_UTF8_BOM) :]
    return data.decode("utf-8", errors="replace")


def parse_xml(path: Path) -> ET.Element:
    """The root element of an XML document, or a StoreError naming it."""
    data = read_bytes(path)
    if data.startswith(_UTF8_BOM):
        data = data[len(_UTF8_BOM) :]
    try:
        return ET.fromstring(data)
    except ET.ParseError as exc:
        raise StoreError(path, f"is not well-formed XML ({exc})") from exc


def local(tag: object) -> str:
    """An element or attribute name without its ``{namespace}``: index schemas change namespace between
    versions (HarmonyV5, V6, V7) while keeping the names. Comments and processing instructions (whose tag is
    not a string) have the empty name."""
    return tag.rsplit("}", 1)[-1] if isinstance(tag, str) else ""


def local_attrs(element: ET.Element) -> dict[str, str]:
    return {local(k): v for k, v in element.attrib.items()}


def children(element: ET.Element, name: str) -> list[ET.Element]:
    return [c for c in element if local(c.tag) == name]


def child(element: ET.Element, name: str) -> ET.Element | None:
    return next((c for c in element if local(c.tag) == name), None)


def child_text(element: ET.Element, name: str) -> str | None:
    found = child(element, name)
    if found is None or found.text is None:
        return None
    return found.text.strip() or None


# --- numbers -------------------------------------------------------------------------------------------------


def parse_int(text: str | None, *, where: Path | str, what: str) -> int:
    """An integer written as text (``1``, or ``1.0`` as spreadsheets write it), or a StoreError naming
    ``where``."""
    value = optional_int(text, where=where, what=what)
    if value is None:
        raise StoreError(where, f"{what} is missing")
    return value


def optional_int(text: str | None, *, where: Path | str, what: str) -> int | None:
    if text is None or not text.strip():
        return None
    stripped = text.strip()
    try:
        return int(stripped)
    except ValueError:
        pass
    try:
        number = float(stripped)
    except ValueError:
        number = math.nan
    if math.isfinite(number) and number.is_integer():
        return int(number)
    raise StoreError(where, f"{what} is not an integer: {stripped!r}")


def parse_float(text: str | None, *, where: Path | str, what: str) -> float | None:
    if text is None or not text.strip():
        return None
    try:
        value = float(text.strip())
    except ValueError:
        raise StoreError(where, f"{what} is not a number: {text.strip()!r}") from None
    if not math.isfinite(value):
        raise StoreError(where, f"{what} is not a finite number: {text.strip()!r}")
    return value


def to_micrometres(value: float, unit: str | None, *, where: Path | str, what: str) -> float:
    """``value`` in ``unit`` (default metres, as Harmony writes it) as micrometres."""
    factor = _MICROMETRES.get((unit or "m").strip())
    if factor is None:
        raise StoreError(where, f"{what} has an unknown length unit {unit!r}")
    return value * factor


def well_from_numbers(row: int, column: int, *, where: Path | str, what: str) -> str:
    """``B03`` from 1-based row and column numbers."""
    if row < 1 or column < 1:
        raise StoreError(where, f"{what}: row {row}, column {column} is not a well (both count from 1)")
    return well_id(row, column)


def well_from_name(letters: str, column: str) -> str:
    """``B03`` from the row letters and column digits of a file name (``b3`` → ``B03``)."""
    return well_id(letters.upper(), int(column))


def plane_spacing_of(stacks: Mapping[tuple[object, ...], Mapping[int, float]]) -> float | None:
    """The step between consecutive planes (µm) when every z-stack agrees on one, else None.

    ``stacks`` maps a stack's identity (well, field, time point, channel) to its plane numbers' z positions.
    Rounded to 0.1 nm: positions converted from metres carry float noise.
    """
    steps: set[float] = set()
    for planes in stacks.values():
        for plane, z in planes.items():
            above = planes.get(plane + 1)
            if above is not None:
                steps.add(round(abs(above - z), 4))
    steps.discard(0.0)
    return steps.pop() if len(steps) == 1 else None


def single_pixel_size(
    sizes: Mapping[str, tuple[float, float]], *, where: str, builder: PlateBuilder
) -> tuple[float, float] | None:
    """One pixel size for the plate from per-channel sizes (first channel in ``sizes`` order); a warning when
    the channels disagree, since the model has one size per plate."""
    if not sizes:
        return None
    first_channel, first = next(iter(sizes.items()))
    differing = sorted(ch for ch, size in sizes.items() if not _same_size(size, first))
    if differing:
        builder.warn(
            where,
            f"channels {', '.join(differing)} have another pixel size than channel {first_channel}; "
            f"using channel {first_channel}'s",
        )
    return first


def _same_size(a: tuple[float, float], b: tuple[float, float]) -> bool:
    return all(math.isclose(x, y, rel_tol=1e-6) for x, y in zip(a, b, strict=True))


# --- building the layout -------------------------------------------------------------------------------------


def cap_warnings(lines: list[str], limit: int = MAX_WARNINGS) -> list[str]:
    """At most ``limit`` lines, then one line counting the rest (a plate of 100 000 missing files must not
    produce 100 000 log lines)."""
    if len(lines) <= limit:
        return list(lines)
    return [*lines[:limit], f"and {len(lines) - limit} more"]


@dataclass
class PlateBuilder:
    """Collects a plate's files: the first file of each identity and each key wins, later ones are warnings."""

    layout: Layout
    warnings: list[str] = field(default_factory=list)
    _by_key: dict[str, PlateFile] = field(default_factory=dict)
    _by_identity: dict[tuple[object, ...], str] = field(default_factory=dict)

    def warn(self, path: Path | str, problem: str) -> None:
        self.warnings.append(f"{path}: {' '.join(problem.split())}")

    def add(self, file: PlateFile, *, scope: str = "") -> bool:
        """Keep ``file`` unless its key or its (well, field, plane, time point, channel) is taken. ``scope``
        separates plates that share one index (a LoadData CSV naming several plates)."""
        if file.key in self._by_key:
            self.warn(file.key, "listed twice; kept the first")
            return False
        identity = (scope, file.well_id, file.field, file.plane, file.timepoint, file.channel)
        first = self._by_identity.get(identity)
        if first is not None:
            self.warn(file.key, f"same well, field, plane, time point and channel as {first}; kept the first")
            return False
        self._by_key[file.key] = file
        self._by_identity[identity] = file.key
        return True

    @property
    def files(self) -> list[PlateFile]:
        return sorted(self._by_key.values(), key=lambda f: f.key)

    def build(
        self,
        *,
        plate_id: str | None,
        index_files: Iterable[str] = (),
        pixel_size: tuple[float, float] | None = None,
        plane_spacing: float | None = None,
    ) -> PlateLayout:
        return PlateLayout(
            layout=self.layout,
            plate_id=plate_id,
            files=self.files,
            pixel_size=pixel_size,
            plane_spacing=plane_spacing,
            index_files=sorted(set(index_files)),
            warnings=cap_warnings(self.warnings),
        )


def clean_id(text: str | None) -> str | None:
    """An identifier as written, stripped; None when empty."""
    if text is None:
        return None
    stripped = text.strip()
    return stripped or None
