"""Yokogawa CellVoyager (CV7000, CV8000, CQ1, CQ3000) measurement folders.

``MeasurementData.mlf`` lists one record per image (row, column, field, z, time point, channel; the element text
is the file name relative to the folder, CQ3000 projections under ``Projection/``). ``MeasurementDetail.mrf`` gives
the plate name and per-channel pixel size; the protocol ``.mes`` names the channels. The well comes from the
record, never from the file name: CV7000 prefixes may hold other well names (``myplate_B03_C03_D04_T0002…`` is D04).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from bioimage_pipeline.errors import StoreError
from bioimage_pipeline.formats.hcs._common import (
    FolderFiles,
    PlateBuilder,
    clean_id,
    has_suffix,
    list_dir,
    local,
    local_attrs,
    optional_int,
    parse_float,
    parse_int,
    parse_xml,
    plane_spacing_of,
    relative_key,
    single_pixel_size,
    well_from_numbers,
)
from bioimage_pipeline.formats.hcs.model import PlateFile, PlateLayout

MLF = "MeasurementData.mlf"
MRF = "MeasurementDetail.mrf"
_METADATA_SUFFIXES = (".mlf", ".mrf", ".mes", ".wpi", ".wpp")
_IMAGE_SUFFIXES = (".tif", ".tiff", ".png")
_PROJECTION_DIR = "Projection"
#: What the CQ3000 calls a plate it was given no name for: not an identity (every such plate would share it).
_NO_PLATE_NAMES = {"noplateid"}


@dataclass(frozen=True, kw_only=True)
class _Detail:
    """What the mrf says."""

    plate_name: str | None = None
    setting_file: str | None = None
    pixel_sizes: dict[str, tuple[float, float]] = field(default_factory=dict)  # µm (y, x) by channel
    correction_images: tuple[str, ...] = ()


def is_cellvoyager_folder(folder: Path) -> bool:
    """A folder holding ``MeasurementData.mlf``."""
    return MLF in list_dir(folder).files


def read_cellvoyager(folder: Path) -> PlateLayout:
    """A CellVoyager measurement folder, from its mlf (files), mrf (plate, pixel size) and mes (channel names)."""
    mlf = folder / MLF
    if not mlf.is_file():
        raise StoreError(folder, f"is not a CellVoyager measurement folder (no {MLF})")
    top = list_dir(folder)
    detail = _read_mrf(folder / MRF) if MRF in top.files else _Detail()
    channel_names = _channel_names(folder, top.files, detail)
    builder = PlateBuilder(layout="cellvoyager")
    existing = FolderFiles(folder)
    listed: set[str] = set()
    stacks: dict[tuple[object, ...], dict[int, float]] = {}
    used_channels: list[str] = []
    for file, z in _records(mlf, channel_names):
        listed.add(file.key)
        if file.channel not in used_channels:
            used_channels.append(file.channel)
        if z is not None and file.plane is not None:
            stacks.setdefault((file.well_id, file.field, file.timepoint, file.channel), {})[file.plane] = z
        if not existing.exists(file.key):
            builder.warn(file.key, f"listed in {MLF} but missing")
            continue
        builder.add(file)
    index_files = [n for n in top.files if has_suffix(n, _METADATA_SUFFIXES)]
    # Shading-correction images the mrf names are calibration, not plate images.
    index_files += [n for n in detail.correction_images if n in top.files]
    folders = {key.rpartition("/")[0] for key in listed} | {"", _PROJECTION_DIR}
    for folder_key in sorted(folders):
        for name in sorted(existing.names(folder_key)):
            key = relative_key(folder_key, name)
            if has_suffix(name, _IMAGE_SUFFIXES) and key not in listed and key not in index_files:
                builder.warn(key, f"not listed in {MLF}")
    sizes = {ch: detail.pixel_sizes[ch] for ch in sorted(used_channels, key=_channel_order) if ch in detail.pixel_sizes}
    plate_name = detail.plate_name
    if plate_name is not None and plate_name.lower() in _NO_PLATE_NAMES:
        plate_name = None
    return builder.build(
        plate_id=plate_name or clean_id(folder.name),
        index_files=index_files,
        pixel_size=single_pixel_size(sizes, where=MRF, builder=builder),
        plane_spacing=plane_spacing_of(stacks),
    )


def _channel_order(channel: str) -> tuple[int, str]:
    return (int(channel), channel) if channel.isdigit() else (1 << 30, channel)


def _records(mlf: Path, channel_names: dict[str, str]) -> list[tuple[PlateFile, float | None]]:
    """The mlf's image records, with each one's z position (µm)."""
    root = parse_xml(mlf)
    if local(root.tag) != "MeasurementData":
        raise StoreError(mlf, f"is not a CellVoyager mlf (root element <{local(root.tag)}>, not <MeasurementData>)")
    records: list[tuple[PlateFile, float | None]] = []
    for number, record in enumerate((r for r in root if local(r.tag) == "MeasurementRecord"), start=1):
        attrs = local_attrs(record)
        if attrs.get("Type", "IMG") != "IMG":
            continue  # error and log records carry no image
        what = f"MeasurementRecord {number}"
        name = (record.text or "").strip()
        if not name:
            raise StoreError(mlf, f"{what} names no file")
        channel = str(_attr_int(attrs, "Ch", mlf, what))
        # A record with ZImageProcessing (CQ3000 "Maximum") is a projection of the stack, not one plane.
        projected = attrs.get("ZImageProcessing", "").strip() not in ("", "None")
        file = PlateFile(
            key=relative_key(name),
            well_id=well_from_numbers(
                _attr_int(attrs, "Row", mlf, what), _attr_int(attrs, "Column", mlf, what), where=mlf, what=what
            ),
            field=_attr_int(attrs, "FieldIndex", mlf, what),
            plane=None if projected else optional_int(attrs.get("ZIndex"), where=mlf, what=f"{what} ZIndex"),
            timepoint=optional_int(attrs.get("TimePoint"), where=mlf, what=f"{what} TimePoint"),
            channel=channel,
            channel_name=channel_names.get(channel),
        )
        records.append((file, parse_float(attrs.get("Z"), where=mlf, what=f"{what} Z")))
    return records


def _attr_int(attrs: dict[str, str], name: str, path: Path, what: str) -> int:
    return parse_int(attrs.get(name), where=path, what=f"{what} {name}")


def _read_mrf(mrf: Path) -> _Detail:
    root = parse_xml(mrf)
    if local(root.tag) != "MeasurementDetail":
        raise StoreError(mrf, f"is not a CellVoyager mrf (root element <{local(root.tag)}>, not <MeasurementDetail>)")
    plate_name = None
    sizes: dict[str, tuple[float, float]] = {}
    corrections: list[str] = []
    for element in root:
        attrs = local_attrs(element)
        if local(element.tag) == "MeasurementSamplePlate":
            plate_name = plate_name or clean_id(attrs.get("Name"))
        elif local(element.tag) == "MeasurementChannel":
            what = f"MeasurementChannel {attrs.get('Ch', '?')}"
            channel = str(parse_int(attrs.get("Ch"), where=mrf, what=f"{what} Ch"))
            x = parse_float(attrs.get("HorizontalPixelDimension"), where=mrf, what=f"{what} HorizontalPixelDimension")
            y = parse_float(attrs.get("VerticalPixelDimension"), where=mrf, what=f"{what} VerticalPixelDimension")
            if x is not None and y is not None and x > 0 and y > 0:
                sizes.setdefault(channel, (y, x))
            if source := clean_id(attrs.get("ShadingCorrectionSource")):
                corrections.append(relative_key(source))
    return _Detail(
        plate_name=plate_name,
        setting_file=clean_id(local_attrs(root).get("MeasurementSettingFileName")),
        pixel_sizes=sizes,
        correction_images=tuple(corrections),
    )


def _channel_names(folder: Path, files: tuple[str, ...], detail: _Detail) -> dict[str, str]:
    """Channel names from the protocol (``.mes``): the one the mrf names, else the only one in the folder.
    ``Target`` is the instrument's description of the channel; ``Acquisition`` (the filter) when it has none."""
    mes_files = [n for n in files if n.lower().endswith(".mes")]
    name = detail.setting_file if detail.setting_file in mes_files else (mes_files[0] if len(mes_files) == 1 else None)
    if name is None:
        return {}
    root = parse_xml(folder / name)
    names: dict[str, str] = {}
    channels = [c for parent in root.iter() if local(parent.tag) == "ChannelList" for c in parent]
    for element in channels:
        if local(element.tag) != "Channel":
            continue
        attrs = local_attrs(element)
        channel = attrs.get("Ch")
        label = clean_id(attrs.get("Target")) or clean_id(attrs.get("Acquisition"))
        if channel and channel.strip().isdigit() and label:
            names.setdefault(str(int(channel)), label)
    return names
