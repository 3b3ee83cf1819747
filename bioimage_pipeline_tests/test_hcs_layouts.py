"""HCS plate layouts read into the common model, against the real samples of the plate-layouts corpus.

Expected values come from the corpus MANIFEST (plate ids, wells, fields, channels, pixel sizes as the samples'
own index files state them) and from the samples' file lists. Where a sample lacks its images (not copied, or
never committed), it is read as it is — index only: missing files are warnings — and once more as a copy in
``tmp_path`` with empty stand-ins for the images, so the file records themselves are checked too (layout
readers never open an image, so an empty file is as good as a real one). Folders the samples lack (a Harmony
folder without index, MetaXpress raw folders with thumbnails, ``.C01`` files, unrelated names) are written here.
"""

from __future__ import annotations

import ast
import csv
import shutil
import xml.etree.ElementTree as ET
from collections.abc import Iterable
from pathlib import Path

import pytest

from bioimage_pipeline.errors import StoreError
from bioimage_pipeline.formats.hcs import (
    PlateLayout,
    harmony,
    is_loaddata_csv,
    plate_layout_of,
    read_loaddata,
    read_plate,
)
from bioimage_pipeline_tests.corpus import CORPUS

LAYOUTS = CORPUS / "plate-layouts"
PE2LOADDATA = LAYOUTS / "broadinstitute+pe2loaddata"
HARMONY_V5 = PE2LOADDATA / "tests/data/Version1/images"
HARMONY_V7 = PE2LOADDATA / "tests/data/Version7/images"
LOADDATA_V1 = PE2LOADDATA / "tests/data/Version1/load_data_version1.csv"
LOADDATA_V7 = PE2LOADDATA / "tests/data/Version7/load_data_version7.csv"
PEDIATRIC = LAYOUTS / "WayScience+pediatric_cancer_atlas_profiling"
LOADDATA_JUMP = PEDIATRIC / "1.illumination_correction/loaddata_csvs/Round_3_data/BR00147003_concatenated.csv"
LOADDATA_ILLUM = PEDIATRIC / "2.feature_extraction/loaddata_csvs/Round_3_data/BR00147003_concatenated_with_illum.csv"
FAIM = LAYOUTS / "fmi-faim+faim-ipa"
MX_SINGLE = FAIM / "resources/ImageXpress_exported/9987_Plate_3420"
MX_TIME = FAIM / "resources/ImageXpress_exported/9987_Plate_3435"
MX_RAW = FAIM / "resources/ImageXpress/SingleChannel/2023-02-21/1334"
MX_RAW_FILES = FAIM / "tests/hcs/imagexpress/files.csv"
HCSAI_1 = (
    LAYOUTS
    / "fractal-analytics-platform+fractal-uzh-converters/tests/data/MolecularDevices-ImageXpressHCSai/raw"
    / "hcs_1w1s1t1c1z_binning4x4/experiment"
)
BIOIO = LAYOUTS / "bioio-devs+bioio-imagexpress/bioio_imagexpress/tests/resources"
HCSAI_Z = BIOIO / "experiment_z_stack"
HCSAI_MONTAGE = BIOIO / "run_root/experiment_montage"
FRACTAL = LAYOUTS / "fractal-analytics-platform+fractal-tasks-core/tests/data"
CV_PNG = FRACTAL / "png"
CV_1536 = FRACTAL / "syn_1536_images"
CV_EDGE = FRACTAL / "metadata_files"
CV_2X2 = CORPUS / "fractal-analytics-platform+fractal-tasks-core/tests/data/metadata_files"
CQ3000 = LAYOUTS / "fractal-analytics-platform+fractal-uzh-converters/tests/data/Yokogawa-CQ3K/raw/hcs_2w1p1c1z1t_mip"
EXAMPLE_HUMAN = CORPUS / "cytomining+CytoTable/tests/data/cellprofiler/ExampleHuman"
NF1 = CORPUS / "WayScience+coSMicQC/tests/data/cytotable/NF1_cellpainting_data_shrunken/Plate_2_images"
C01_SAMPLE = LAYOUTS / "CellProfiler+CellProfiler/tests/core/data/modules/loadimages/iamac01file.c01"

PHENIX_V5_CHANNELS = {
    "1": "Alexa 647",
    "2": "Alexa 568",
    "3": "488 long",
    "4": "Alexa 488",
    "5": "HOECHST 33342",
    "6": "Brightfield",
}
PHENIX_V7_CHANNELS = {
    "1": "Alexa 488",
    "2": "Alexa 568",
    "3": "Alexa 488 Em 650",
    "4": "405ex, 570-630-em)",
    "5": "Alexa 647",
    "6": "HOECHST 33342",
    "7": "Brightfield",
}


# --- helpers -------------------------------------------------------------------------------------------------


def wells(plate: PlateLayout) -> set[str]:
    return {f.well_id for f in plate.files}


def fields(plate: PlateLayout) -> set[int]:
    return {f.field for f in plate.files}


def planes(plate: PlateLayout) -> set[int | None]:
    return {f.plane for f in plate.files}


def timepoints(plate: PlateLayout) -> set[int | None]:
    return {f.timepoint for f in plate.files}


def channels(plate: PlateLayout) -> dict[str, str | None]:
    found: dict[str, str | None] = {}
    for f in plate.files:
        assert found.setdefault(f.channel, f.channel_name) == f.channel_name, f"channel {f.channel} has two names"
    return found


def keys(plate: PlateLayout) -> list[str]:
    return [f.key for f in plate.files]


def assert_sorted_unique(plate: PlateLayout) -> None:
    assert keys(plate) == sorted(set(keys(plate)))
    identities = [(f.well_id, f.field, f.plane, f.timepoint, f.channel) for f in plate.files]
    assert len(identities) == len(set(identities))


def copy_folder(src: Path, dst: Path) -> Path:
    """A writable copy of a corpus folder's files (the corpus is read-only)."""
    dst.mkdir(parents=True)
    for p in src.iterdir():
        if p.is_file():
            shutil.copyfile(p, dst / p.name)
    return dst


def touch_all(root: Path, names: Iterable[str]) -> None:
    for name in names:
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"")


def missing_keys(plate: PlateLayout, why: str) -> list[str]:
    return [w.split(": ", 1)[0] for w in plate.warnings if w.endswith(why)]


# --- Harmony (samples 1, 2) ----------------------------------------------------------------------------------


def test_harmony_v5_index_with_two_of_six_images() -> None:
    assert plate_layout_of(HARMONY_V5) == "harmony"
    plate = read_plate(HARMONY_V5)
    assert plate.layout == "harmony"
    assert plate.plate_id == "BR00121482"
    assert keys(plate) == ["r01c01f01p01-ch3sk1fk1fl1.tiff", "r01c01f01p01-ch5sk1fk1fl1.tiff"]
    assert wells(plate) == {"A01"}
    assert fields(plate) == {1}
    assert planes(plate) == {1}
    assert timepoints(plate) == {0}  # TimepointID as written (0-based in this export)
    assert channels(plate) == {"3": "488 long", "5": "HOECHST 33342"}
    assert plate.pixel_size == pytest.approx((0.597976, 0.597976), rel=1e-5)  # 5.98e-07 m
    assert plate.plane_spacing is None
    assert plate.index_files == ["Index.idx.xml"]
    assert plate.warnings == [
        f"r01c01f01p01-ch{c}sk1fk1fl1.tiff: listed in Index.idx.xml but missing" for c in (1, 2, 4, 6)
    ]


def test_harmony_v7_index_only() -> None:
    assert plate_layout_of(HARMONY_V7) == "harmony"
    plate = read_plate(HARMONY_V7)
    assert plate.plate_id == "240624_WES_Perturbs_n_densities_1.1"
    assert plate.files == []
    assert plate.pixel_size == pytest.approx((0.296688, 0.296688), rel=1e-5)
    assert plate.index_files == ["Index.xml"]
    assert missing_keys(plate, "listed in Index.xml but missing") == [
        f"r01c01f01p01-ch{c}sk1fk1fl1.tiff" for c in range(1, 8)
    ]
    assert len(plate.warnings) == 7


def test_harmony_v7_channel_names_from_maps(tmp_path: Path) -> None:
    """HarmonyV7 keeps channel names in Maps/Map/Entry, not per Image; with the 7 images present they show."""
    folder = copy_folder(HARMONY_V7, tmp_path / "images")
    touch_all(folder, (f"r01c01f01p01-ch{c}sk1fk1fl1.tiff" for c in range(1, 8)))
    plate = read_plate(folder)
    assert plate.warnings == []
    assert len(plate.files) == 7
    assert channels(plate) == PHENIX_V7_CHANNELS
    assert timepoints(plate) == {1}  # 1-based in this export: kept as written
    assert (wells(plate), fields(plate), planes(plate)) == ({"A01"}, {1}, {1})


def test_harmony_v5_all_six_images_present(tmp_path: Path) -> None:
    folder = copy_folder(HARMONY_V5, tmp_path / "images")
    touch_all(folder, (f"r01c01f01p01-ch{c}sk1fk1fl1.tiff" for c in (1, 2, 4, 6)))
    plate = read_plate(folder)
    assert plate.warnings == []
    assert channels(plate) == PHENIX_V5_CHANNELS


def test_harmony_measurement_folder_with_images_subfolder(tmp_path: Path) -> None:
    """A Harmony export ``<measurement>/Images/``: the measurement folder is the plate, keys start with Images/."""
    measurement = tmp_path / "BR00121482__2021-03-29T16_51_44-Measurement 1"
    images = copy_folder(HARMONY_V5, measurement / "Images")
    (images / "stray.tiff").write_bytes(b"")
    assert plate_layout_of(measurement) == "harmony"
    plate = read_plate(measurement)
    assert plate.plate_id == "BR00121482"
    assert keys(plate) == ["Images/r01c01f01p01-ch3sk1fk1fl1.tiff", "Images/r01c01f01p01-ch5sk1fk1fl1.tiff"]
    assert plate.index_files == ["Images/Index.idx.xml"]
    assert plate.warnings[-1] == "Images/stray.tiff: not listed in Index.idx.xml"
    assert len(plate.warnings) == 5


def harmony_names(wells_rc: Iterable[tuple[int, int]], n_fields: int, n_planes: int, n_channels: int) -> list[str]:
    return [
        f"r{r:02d}c{c:02d}f{f:02d}p{p:02d}-ch{ch}sk1fk1fl1.tiff"
        for r, c in wells_rc
        for f in range(1, n_fields + 1)
        for p in range(1, n_planes + 1)
        for ch in range(1, n_channels + 1)
    ]


def test_harmony_names_without_index(tmp_path: Path) -> None:
    folder = tmp_path / "BR00000001__2025-01-02T03_04_05-Measurement 2"
    touch_all(folder, harmony_names([(2, 3), (16, 24)], 2, 2, 3))
    (folder / "notes.txt").write_text("not an image")
    assert plate_layout_of(folder) == "harmony"
    plate = read_plate(folder)
    assert plate.plate_id == "BR00000001"
    assert len(plate.files) == 24
    assert wells(plate) == {"B03", "P24"}
    assert fields(plate) == {1, 2}
    assert planes(plate) == {1, 2}
    assert timepoints(plate) == {1}  # the sk token
    assert channels(plate) == {"1": None, "2": None, "3": None}
    assert (plate.pixel_size, plate.index_files, plate.warnings) == (None, [], [])
    assert_sorted_unique(plate)


def test_harmony_images_export_without_index_from_loaddata_names(tmp_path: Path) -> None:
    """Sample 4's acquisition folder rebuilt: ``BR00147003__…-Measurement 1/Images/`` holding the Phenix names its
    LoadData CSV lists (first two wells); the plate id comes from the measurement folder's name."""
    measurement = tmp_path / "Plate 6 All Cell Lines" / "BR00147003__2025-03-14T19_16_37-Measurement 1"
    with LOADDATA_JUMP.open(newline="") as handle:
        rows = [r for r in csv.DictReader(handle) if r["Metadata_Well"] in ("C03", "C04")]
    names = {r[c] for r in rows for c in r if c.startswith("FileName_Orig")}
    touch_all(measurement / "Images", names)
    assert plate_layout_of(measurement) == "harmony"
    assert plate_layout_of(measurement / "Images") == "harmony"
    plate = read_plate(measurement)
    assert plate.plate_id == "BR00147003"
    assert len(plate.files) == len(names) == 2 * 9 * 6
    assert all(k.startswith("Images/r03c0") for k in keys(plate))
    assert wells(plate) == {"C03", "C04"}
    assert fields(plate) == set(range(1, 10))
    assert set(channels(plate)) == {"1", "2", "3", "4", "5", "6"}
    assert read_plate(measurement / "Images").plate_id == "BR00147003"  # from the parent of Images/


def test_harmony_duplicate_identity_is_a_warning(tmp_path: Path) -> None:
    """Two FLIM ids of one image: same well, field, plane, time point and channel — the first is kept."""
    folder = tmp_path / "plate"
    touch_all(folder, ["r01c01f01p01-ch1sk1fk1fl1.tiff", "r01c01f01p01-ch1sk1fk1fl2.tiff"])
    plate = read_plate(folder)
    assert keys(plate) == ["r01c01f01p01-ch1sk1fk1fl1.tiff"]
    assert plate.warnings == [
        "r01c01f01p01-ch1sk1fk1fl2.tiff: same well, field, plane, time point and channel as "
        "r01c01f01p01-ch1sk1fk1fl1.tiff; kept the first"
    ]


def test_harmony_malformed_index_names_the_index(tmp_path: Path) -> None:
    folder = tmp_path / "images"
    folder.mkdir()
    text = (HARMONY_V5 / "Index.idx.xml").read_text()
    (folder / "Index.idx.xml").write_text(text[: len(text) // 2])
    with pytest.raises(StoreError) as caught:
        read_plate(folder)
    assert str(caught.value).startswith(f"{folder / 'Index.idx.xml'}: is not well-formed XML")
    assert "\n" not in str(caught.value)
    (folder / "Index.idx.xml").write_text(text.replace("<FieldID>1</FieldID>", "<FieldID>one</FieldID>", 1))
    with pytest.raises(StoreError, match=r"Index\.idx\.xml: Image 0101K1F1P1R1 <FieldID> is not an integer: 'one'"):
        read_plate(folder)


def _first_image(text: str) -> tuple[int, int]:
    start = text.index('<Image Version="1">')
    return start, text.index("</Image>", start) + len("</Image>")


def _edit_first_image(text: str, old: str, new: str) -> str:
    start, end = _first_image(text)
    assert old in text[start:end]
    return text[:start] + text[start:end].replace(old, new, 1) + text[end:]


_V5_TEXT = (HARMONY_V5 / "Index.idx.xml").read_text(encoding="utf-8")
#: Index variants: (name, text, whether the list is read without the XML parser).
_INDEX_VARIANTS = [
    ("as written", _V5_TEXT, True),
    ("CRLF line ends", _V5_TEXT.replace("\n", "\r\n"), True),
    ("one Image without PositionZ", _edit_first_image(_V5_TEXT, '<PositionZ Unit="m">-5E-06</PositionZ>', ""), True),
    (
        "an empty ChannelName, an empty Unit",
        _edit_first_image(
            _edit_first_image(_V5_TEXT, "<ChannelName>Alexa 647</ChannelName>", "<ChannelName></ChannelName>"),
            '<PositionZ Unit="m">',
            '<PositionZ Unit="">',
        ),
        True,
    ),
    ("an entity", _edit_first_image(_V5_TEXT, "<ChannelName>Alexa 647", "<ChannelName>Alexa &amp; 647"), False),
    ("a comment", _edit_first_image(_V5_TEXT, "<State>", "<!-- x --><State>"), False),
    ("a field twice", _edit_first_image(_V5_TEXT, "<Row>1</Row>", "<Row>1</Row><Row>2</Row>"), False),
    (
        "a self-closing field",
        _edit_first_image(_V5_TEXT, '<PositionZ Unit="m">-5E-06</PositionZ>', '<PositionZ Unit="m" />'),
        False,
    ),
    ("a field with another attribute", _edit_first_image(_V5_TEXT, "<Row>", '<Row Kind="a">'), False),
    ("a nested child", _edit_first_image(_V5_TEXT, "<State>Ok</State>", "<State><Ok /></State>"), False),
    ("another encoding", _V5_TEXT.replace('encoding="utf-8"', 'encoding="ISO-8859-1"'), False),
]


@pytest.mark.parametrize(("text", "plain"), [v[1:] for v in _INDEX_VARIANTS], ids=[v[0] for v in _INDEX_VARIANTS])
def test_harmony_list_read_equals_the_xml_parse(tmp_path: Path, text: str, plain: bool) -> None:
    """The <Images> list is read without the XML parser where it is written the plain way, and the result is
    the parser's; anything else falls back to the parser."""
    index = tmp_path / "Index.idx.xml"
    index.write_bytes(text.encode("utf-8"))
    data = index.read_bytes()
    span = harmony._image_list_span(data)
    fast = harmony._read_image_list(data[span.content_start : span.content_end]) if span is not None else None
    assert (fast is not None) == plain
    read = harmony._stream_index(index)
    assert read == harmony._parse_index(data, index)
    assert len(read.images) == 6
    if plain:
        assert read.images == fast


@pytest.mark.parametrize("index", [HARMONY_V5 / "Index.idx.xml", HARMONY_V7 / "Index.xml"], ids=["V5", "V7"])
def test_harmony_corpus_indexes_are_read_without_the_parser_and_alike(index: Path) -> None:
    data = index.read_bytes()
    span = harmony._image_list_span(data)
    assert span is not None
    fast = harmony._read_image_list(data[span.content_start : span.content_end])
    assert fast is not None and fast
    read = harmony._stream_index(index)
    assert read == harmony._parse_index(data, index)
    assert read.images == fast


def test_missing_files_warnings_are_capped(tmp_path: Path) -> None:
    """25 listed images absent: 20 warning lines, then one counting the rest."""
    folder = tmp_path / "images"
    folder.mkdir()
    text = (HARMONY_V5 / "Index.idx.xml").read_text()
    head = text[: text.index("<Images>")]
    first = text.index('<Image Version="1">')
    image = text[first : text.index("</Image>", first) + len("</Image>")]
    many = "".join(
        image.replace("<FieldID>1</FieldID>", f"<FieldID>{f}</FieldID>").replace(
            "r01c01f01p01-ch1", f"r01c01f{f:02d}p01-ch1"
        )
        for f in range(1, 26)
    )
    (folder / "Index.idx.xml").write_text(head + "<Images>" + many + "</Images></EvaluationInputData>")
    plate = read_plate(folder)
    assert plate.files == []
    assert len(plate.warnings) == 21
    assert plate.warnings[0] == "r01c01f01p01-ch1sk1fk1fl1.tiff: listed in Index.idx.xml but missing"
    assert plate.warnings[-1] == "and 5 more"


# --- LoadData (samples 3, 4) ---------------------------------------------------------------------------------


def test_loaddata_pe2loaddata_v1_resolves_repo_relative_paths() -> None:
    """PathName ``tests/data/Version1/images/`` is relative to the repository: found three folders up."""
    assert is_loaddata_csv(LOADDATA_V1)
    assert plate_layout_of(LOADDATA_V1) == "loaddata"
    plate = read_loaddata(LOADDATA_V1)
    assert plate.layout == "loaddata"
    assert plate.plate_id == "BR00121482"
    assert keys(plate) == [
        (HARMONY_V5 / "r01c01f01p01-ch3sk1fk1fl1.tiff").as_posix(),
        (HARMONY_V5 / "r01c01f01p01-ch5sk1fk1fl1.tiff").as_posix(),
    ]
    assert channels(plate) == {"RNA": "RNA", "DNA": "DNA"}  # OrigRNA, OrigDNA
    assert (wells(plate), fields(plate), planes(plate), timepoints(plate)) == ({"A01"}, {1}, {1}, {None})
    assert plate.pixel_size == pytest.approx((0.597976, 0.597976), rel=1e-5)  # Metadata_ImageResolution, metres
    assert plate.index_files == [LOADDATA_V1.as_posix()]
    assert plate.warnings == [
        f"{(HARMONY_V5 / f'r01c01f01p01-ch{c}sk1fk1fl1.tiff').as_posix()}: named in load_data_version1.csv but missing"
        for c in (4, 2, 1, 6)  # ER, AGP, Mito, Brightfield, in column order
    ]


def test_loaddata_pe2loaddata_v7_none_present() -> None:
    assert is_loaddata_csv(LOADDATA_V7)
    plate = read_loaddata(LOADDATA_V7)
    assert plate.plate_id == "240624_WES_Perturbs_n_densities_1.1"
    assert plate.files == []
    assert plate.pixel_size == pytest.approx((0.296688, 0.296688), rel=1e-5)
    assert len(plate.warnings) == 1
    assert plate.warnings[0].startswith(f"{LOADDATA_V7.as_posix()}: none of the 7 images it names exists")


@pytest.mark.parametrize("path", [LOADDATA_JUMP, LOADDATA_ILLUM], ids=["concatenated", "with_illum"])
def test_loaddata_jump_absolute_paths_elsewhere(path: Path) -> None:
    """540 rows × 6 Orig channels on an acquisition machine's disk; the Illum* columns are not images."""
    assert is_loaddata_csv(path)
    plate = read_loaddata(path)
    assert plate.plate_id == "BR00147003"
    assert plate.files == []
    assert plate.pixel_size is None
    assert plate.warnings == [
        f"{path.as_posix()}: none of the 3240 images it names exists (the first: /media/18tbdrive/ALSF_pilot_data/"
        "Round_3_data/Plate 6 All Cell Lines/BR00147003__2025-03-14T19_16_37-Measurement 1/Images/"
        "r03c03f01p01-ch2sk1fk1fl1.tiff)"
    ]


def test_loaddata_absolute_paths_with_spaces(tmp_path: Path) -> None:
    """Sample 4's first wells with PathName moved under tmp_path (spaces kept) and the images present."""
    images = tmp_path / "Plate 6 All Cell Lines" / "BR00147003__2025-03-14T19_16_37-Measurement 1" / "Images"
    with LOADDATA_ILLUM.open(newline="") as handle:
        reader = csv.DictReader(handle)
        header = list(reader.fieldnames or [])
        rows = [r for r in reader if r["Metadata_Well"] in ("C03", "C04")]
    for row in rows:
        for column in header:
            if column.startswith("PathName_Orig"):
                row[column] = str(images)
    touch_all(images, {r[c] for r in rows for c in header if c.startswith("FileName_Orig")})
    written = tmp_path / "load_data_with_illum.csv"
    with written.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, header, lineterminator="\r\n")
        writer.writeheader()
        writer.writerows(rows)
    plate = read_loaddata(written)
    assert plate.warnings == []
    assert len(plate.files) == 2 * 9 * 6
    assert all(k.startswith(images.as_posix() + "/r03c0") for k in keys(plate))
    assert wells(plate) == {"C03", "C04"}
    assert fields(plate) == set(range(1, 10))
    assert channels(plate) == {c: c for c in ("ER", "RNA", "AGP", "Mito", "Brightfield", "DNA")}
    assert planes(plate) == {1}
    assert_sorted_unique(plate)


def test_loaddata_recognition() -> None:
    """CellProfiler's measurement output (Image.csv), the HCS.ai image list and a fixture table are not LoadData."""
    assert not is_loaddata_csv(EXAMPLE_HUMAN / "Image.csv")
    assert not is_loaddata_csv(HCSAI_Z / "image_metadata_1.csv")
    assert not is_loaddata_csv(MX_RAW_FILES)
    assert not is_loaddata_csv(HARMONY_V5 / "Index.idx.xml")
    assert plate_layout_of(EXAMPLE_HUMAN / "Image.csv") is None


def test_loaddata_bom_crlf_and_relative_path_with_spaces(tmp_path: Path) -> None:
    """A UTF-8 BOM, CRLF, a relative PathName with spaces resolved against the CSV's folder, planes and time
    points, Illum columns skipped, and one image that is nowhere."""
    touch_all(tmp_path / "my plate" / "raw images", ["a z1.tif", "a z2.tif", "b z1.tif"])
    header = "FileName_OrigDNA,PathName_OrigDNA,FileName_IllumDNA,PathName_IllumDNA,"
    header += "Metadata_Plate,Metadata_Well,Metadata_Site,Metadata_Plane,Metadata_Timepoint"
    rows = [
        "a z1.tif,raw images,P_IllumDNA.npy,/nowhere,P1,B3,2,1,0",
        "a z2.tif,raw images,P_IllumDNA.npy,/nowhere,P1,B3,2,2,0",
        "b z1.tif,raw images/,P_IllumDNA.npy,/nowhere,P1,C12,1,1,0",
        "gone.tif,raw images,P_IllumDNA.npy,/nowhere,P1,C12,1,2,0",
    ]
    path = tmp_path / "my plate" / "load_data.csv"
    path.write_bytes(b"\xef\xbb\xbf" + "\r\n".join([header, *rows, ""]).encode())
    assert is_loaddata_csv(path)
    plate = read_loaddata(path)
    images = (tmp_path / "my plate" / "raw images").as_posix()
    assert keys(plate) == [f"{images}/a z1.tif", f"{images}/a z2.tif", f"{images}/b z1.tif"]
    assert [(f.well_id, f.field, f.plane, f.timepoint, f.channel) for f in plate.files] == [
        ("B03", 2, 1, 0, "DNA"),
        ("B03", 2, 2, 0, "DNA"),
        ("C12", 1, 1, 0, "DNA"),
    ]
    assert plate.plate_id == "P1"
    assert plate.warnings == [f"{images}/gone.tif: named in load_data.csv but missing"]


def test_loaddata_bad_site_names_the_csv(tmp_path: Path) -> None:
    path = tmp_path / "load_data.csv"
    path.write_text("FileName_OrigDNA,PathName_OrigDNA,Metadata_Plate,Metadata_Well,Metadata_Site\na.tif,.,P,A01,x\n")
    with pytest.raises(StoreError, match=r"load_data\.csv: line 2 Metadata_Site is not an integer: 'x'$"):
        read_loaddata(path)


# --- MetaXpress export (samples 5, 6), raw (7, 8), HCS.ai (9–11) ---------------------------------------------


def test_metaxpress_export_single_image() -> None:
    """No _s/_w tokens ("Sites", FALSE; "Waves", FALSE): site 1, channel 1 = WaveName1."""
    assert plate_layout_of(MX_SINGLE) == "metaxpress"
    plate = read_plate(MX_SINGLE)
    assert plate.plate_id == "9987_Plate_3420"
    assert keys(plate) == ["TimePoint_1/9987_B02.TIF"]
    assert (wells(plate), fields(plate), planes(plate), timepoints(plate)) == ({"B02"}, {1}, {None}, {1})
    assert channels(plate) == {"1": "DAPI"}
    assert plate.pixel_size is None
    assert plate.index_files == ["9987.HTD", "TimePoint_1/9987.HTD"]
    assert plate.warnings == []


def test_metaxpress_export_time_series_catalogues_what_is_present() -> None:
    """The HTD declares 6 time points and 4 waves; 2 time points × 2 wells × 2 sites × 2 waves are on disk."""
    plate = read_plate(MX_TIME)
    assert plate.plate_id == "9987_Plate_3435"
    assert len(plate.files) == 16
    assert wells(plate) == {"B02", "B03"}
    assert fields(plate) == {1, 2}
    assert timepoints(plate) == {1, 2}
    assert planes(plate) == {None}
    assert channels(plate) == {"1": "DAPI", "2": "FITC"}
    assert plate.index_files == ["9987.HTD", "TimePoint_1/9987.HTD", "TimePoint_2/9987.HTD"]
    assert plate.warnings == []
    assert_sorted_unique(plate)
    # A TimePoint folder with its HTD copy is recognised on its own too; the caller visits parents first.
    assert plate_layout_of(MX_TIME / "TimePoint_1") == "metaxpress"


def test_metaxpress_export_bad_htd_names_the_htd(tmp_path: Path) -> None:
    folder = tmp_path / "9987_Plate_1"
    (folder / "TimePoint_1").mkdir(parents=True)
    data = (MX_SINGLE / "9987.HTD").read_bytes()
    (folder / "9987.HTD").write_bytes(data.replace(b'"EndFile"\r\n', b""))
    with pytest.raises(StoreError, match=r'9987\.HTD: has no "EndFile" line'):
        read_plate(folder)
    (folder / "9987.HTD").write_bytes(data.replace(b'"XWells", 12', b'"XWells", twelve'))
    with pytest.raises(StoreError, match=r"9987\.HTD: \"XWells\" is not an integer: 'twelve'"):
        read_plate(folder)


def test_metaxpress_export_zsteps_and_odd_names(tmp_path: Path) -> None:
    folder = copy_folder(MX_SINGLE, tmp_path / "9987_Plate_9")
    touch_all(
        folder,
        [
            "TimePoint_1/9987_B02.TIF",  # the projection
            "TimePoint_1/ZStep_1/9987_B02.TIF",
            "TimePoint_1/ZStep_2/9987_B02.TIF",
            "TimePoint_1/9987_B02_thumb.TIF",
            "TimePoint_1/overview.tif",
        ],
    )
    plate = read_plate(folder)
    assert keys(plate) == [
        "TimePoint_1/9987_B02.TIF",
        "TimePoint_1/ZStep_1/9987_B02.TIF",
        "TimePoint_1/ZStep_2/9987_B02.TIF",
    ]
    assert planes(plate) == {None, 1, 2}
    assert plate.warnings == [
        "TimePoint_1/overview.tif: name does not follow the MetaXpress pattern <name>_<WELL>[_s<site>][_w<wave>].TIF"
    ]


def test_metaxpress_raw_projection_and_zsteps() -> None:
    """GUID-suffixed names, one channel (no _w token); thumbnails skipped without a word."""
    assert plate_layout_of(MX_RAW) == "metaxpress"
    plate = read_plate(MX_RAW)
    assert plate.plate_id == "Projection-Mix"
    assert len(plate.files) == 12
    assert not any("_thumb" in k for k in keys(plate))
    assert wells(plate) == {"E07", "E08"}
    assert fields(plate) == {1, 2}
    assert channels(plate) == {"1": None}
    assert timepoints(plate) == {None}
    by_plane = {p: sorted(f.key for f in plate.files if f.plane == p) for p in planes(plate)}
    assert set(by_plane) == {None, 1, 2}
    assert all("/" not in k for k in by_plane[None])  # the top-level files are the projections
    assert all(k.startswith("ZStep_1/") for k in by_plane[1])
    assert "Projection-Mix_E08_s117654C10-92F1-4DFD-98AA-6A01BBD77557.tif" in by_plane[None]  # site 1, not 117654
    assert (plate.pixel_size, plate.index_files, plate.warnings) == (None, [], [])
    assert plate_layout_of(MX_RAW.parent) is None  # the date folder is not a plate


def test_metaxpress_raw_full_acquisition_names(tmp_path: Path) -> None:
    """The 42 files of sample 8's listing, plus thumbnails and a TimePoint level, as empty files."""
    with MX_RAW_FILES.open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 42
    acquisition = tmp_path / "1334"
    names = [r["path"].split("/1334/", 1)[1] for r in rows]
    touch_all(acquisition, names)
    touch_all(acquisition, ["ZStep_1/Projection-Mix_E07_s1_w1_thumb4BFD4018-E675-475E-B5AB-2E959E6B6DA1.tif"])
    assert plate_layout_of(acquisition) == "metaxpress"
    plate = read_plate(acquisition)
    assert plate.warnings == []
    assert len(plate.files) == 42
    expected = {
        (
            f"ZStep_{r['z']}/" + r["path"].rsplit("/", 1)[1],
            r["well"],
            int(r["field"][1:]),
            r["channel"][1:],
            int(r["z"]),
        )
        for r in rows
    }
    assert {(f.key, f.well_id, f.field, f.channel, f.plane) for f in plate.files} == expected
    assert channels(plate) == {"1": None, "2": None, "4": None}

    timed = tmp_path / "1335"
    touch_all(
        timed,
        [f"TimePoint_{t}/ZStep_1/Projection-Mix_E07_s1_w1{r['md_id']}.tif" for t, r in ((1, rows[0]), (2, rows[1]))],
    )
    plate = read_plate(timed)
    assert (timepoints(plate), planes(plate)) == ({1, 2}, {1})


def test_hcsai_single_image_absent() -> None:
    assert plate_layout_of(HCSAI_1) == "metaxpress"
    plate = read_plate(HCSAI_1)
    assert plate.plate_id == "1w1s1t1c1z_binning4x4 2026-03-02, 13:57:52"  # no barcode: the PlateId
    assert plate.files == []
    assert plate.pixel_size == pytest.approx((1.294, 1.294))
    assert plate.plane_spacing is None
    assert plate.index_files == ["1w1s1t1c1z_binning4x4.jdce", "image_metadata_1.csv"]
    assert plate.warnings == ["timepoint0/test_data_t0_C05_s0_w0_z0.tif: listed in image_metadata_1.csv but missing"]


def test_hcsai_single_image_present(tmp_path: Path) -> None:
    folder = copy_folder(HCSAI_1, tmp_path / "experiment")
    touch_all(folder, ["timepoint0/test_data_t0_C05_s0_w0_z0.tif"])
    plate = read_plate(folder)
    assert plate.warnings == []
    assert keys(plate) == ["timepoint0/test_data_t0_C05_s0_w0_z0.tif"]
    assert (wells(plate), fields(plate), planes(plate), timepoints(plate)) == ({"C05"}, {0}, {0}, {0})
    assert channels(plate) == {"0": "DAPI"}


def test_hcsai_z_stack_and_time() -> None:
    plate = read_plate(HCSAI_Z)
    assert plate.plate_id == "3500009044"  # the SpecimenHolder barcode
    assert plate.files == []
    assert plate.pixel_size == pytest.approx((0.5817, 0.5817))
    assert plate.plane_spacing == pytest.approx(3.0)
    assert len(plate.warnings) == 21
    assert plate.warnings[0] == (
        "timepoint0/Wellscan_96well_TL_488_t0_B07_s0_w0_z0.tif: listed in image_metadata_1.csv but missing"
    )
    assert plate.warnings[-1] == "and 28 more"


def test_hcsai_z_stack_and_time_present(tmp_path: Path) -> None:
    """The CSV lists 48 images (the jdce declares more, the fixture was trimmed): all present → 48 files."""
    folder = copy_folder(HCSAI_Z, tmp_path / "experiment_z_stack")
    with (HCSAI_Z / "image_metadata_1.csv").open(newline="", encoding="utf-8-sig") as handle:
        listed = [f"{r['ImageSubFolderPath']}/{r['ImageFileName']}" for r in csv.DictReader(handle)]
    touch_all(folder, listed)
    touch_all(folder, ["timepoint1/unlisted_t1_B07_s0_w0_z9.tif"])
    plate = read_plate(folder)
    assert keys(plate) == sorted(listed)
    assert wells(plate) == {"B07", "B08"}
    assert fields(plate) == {0, 1}
    assert planes(plate) == {0, 1, 2}
    assert timepoints(plate) == {0, 1}
    assert channels(plate) == {"0": "TL", "1": "FITC"}
    assert plate.warnings == ["timepoint1/unlisted_t1_B07_s0_w0_z9.tif: not listed in any image_metadata CSV"]
    assert_sorted_unique(plate)


def test_hcsai_montage() -> None:
    plate = read_plate(HCSAI_MONTAGE)
    assert plate.plate_id == "Lumenoid_4x_LabelfreeColony_20260807 2026-08-07, 15:09:56"
    assert plate.pixel_size == pytest.approx((1.6595, 1.6595))
    assert plate.files == []
    assert missing_keys(plate, "listed in image_metadata_1.csv but missing") == [
        "timepoint0/4X_Lumenoid_Cellvis_96_8-7-2026_t0_B02_s0_w0_z0.tif",
        "timepoint0/4X_Lumenoid_Cellvis_96_8-7-2026_t0_B03_s0_w0_z0.tif",
    ]
    assert len(plate.warnings) == 2


def test_hcsai_bad_jdce_names_it(tmp_path: Path) -> None:
    folder = copy_folder(HCSAI_1, tmp_path / "experiment")
    (folder / "1w1s1t1c1z_binning4x4.jdce").write_text('{"ImageStack": ')
    with pytest.raises(StoreError, match=r"1w1s1t1c1z_binning4x4\.jdce: is not valid JSON"):
        read_plate(folder)


# --- Yokogawa CellVoyager (samples 12–15) --------------------------------------------------------------------


def test_cellvoyager_cv7000_with_images() -> None:
    assert plate_layout_of(CV_PNG) == "cellvoyager"
    plate = read_plate(CV_PNG)
    assert plate.plate_id == "20200812-CardiomyocyteDifferentiation14-Cycle1"
    assert keys(plate) == [f"myplate_B03_T0002F00{f}L01A01Z0{z}C01.png" for f in (1, 2) for z in (1, 2)]
    assert wells(plate) == {"B03"}
    assert fields(plate) == {1, 2}
    assert planes(plate) == {1, 2}
    assert timepoints(plate) == {2}
    assert channels(plate) == {"1": None}  # no .mes here
    assert plate.pixel_size == pytest.approx((0.1625, 0.1625))
    assert plate.plane_spacing == pytest.approx(1.0)  # bts:Z −2.0 → −1.0
    assert plate.index_files == ["MeasurementData.mlf", "MeasurementDetail.mrf"]
    assert plate.warnings == []


def test_cellvoyager_1536_trusts_the_mlf_over_the_name(tmp_path: Path) -> None:
    plate = read_plate(CV_1536)
    assert plate.plate_id == "Test_1536"
    assert plate.files == []
    assert plate.pixel_size == pytest.approx((0.1625, 0.1625))  # channel 1, the one imaged
    assert len(missing_keys(plate, "listed in MeasurementData.mlf but missing")) == 2 == len(plate.warnings)

    folder = copy_folder(CV_1536, tmp_path / "syn_1536_images")
    touch_all(folder, missing_keys(plate, "listed in MeasurementData.mlf but missing"))
    present = read_plate(folder)
    assert present.warnings == []
    assert wells(present) == {"E09"}  # Row 5, Column 9 — not the "B03.a1" of the file names
    assert fields(present) == {1, 2}
    assert (planes(present), timepoints(present), channels(present)) == ({1}, {1}, {"1": None})


@pytest.mark.parametrize(
    ("mlf", "expected_wells", "n_records"),
    [
        ("MeasurementData_SingleWell2Sites_SingleZ.mlf", {"B03": {1, 2}}, 2),
        (
            "MeasurementData_SingleWell2Sites_MultiZ_another_well_name_in_plate_name.mlf",
            {"B03": {1, 2}, "C03": {1, 2}, "D04": {1, 2, 3, 4}},
            16,
        ),
    ],
    ids=["single-z", "other-well-names-in-prefix"],
)
def test_cellvoyager_mlf_edge_cases(
    tmp_path: Path, mlf: str, expected_wells: dict[str, set[int]], n_records: int
) -> None:
    """Sample 14's mlf files, as the MeasurementData.mlf of a folder without mrf (plate id = folder name)."""
    folder = tmp_path / "myplate"
    folder.mkdir()
    shutil.copyfile(CV_EDGE / mlf, folder / "MeasurementData.mlf")
    assert plate_layout_of(folder) == "cellvoyager"
    absent = read_plate(folder)
    assert absent.plate_id == "myplate"
    assert absent.files == []
    assert absent.pixel_size is None
    assert absent.index_files == ["MeasurementData.mlf"]
    missing = missing_keys(absent, "listed in MeasurementData.mlf but missing")
    assert len(missing) == n_records == len(absent.warnings)

    touch_all(folder, missing)
    plate = read_plate(folder)
    assert plate.warnings == []
    assert {w: {f.field for f in plate.files if f.well_id == w} for w in wells(plate)} == expected_wells
    assert timepoints(plate) == {2}
    assert_sorted_unique(plate)


def test_cellvoyager_cv7000_two_by_two(tmp_path: Path) -> None:
    """The fractal-tasks-core 2x2 metadata: 1 well, 4 fields, 10 planes, 3 channels = 120 records."""
    folder = tmp_path / "cv7000"
    folder.mkdir()
    shutil.copyfile(CV_2X2 / "MeasurementData_2x2_well.mlf", folder / "MeasurementData.mlf")
    shutil.copyfile(CV_2X2 / "MeasurementDetail_2x2_well.mrf", folder / "MeasurementDetail.mrf")
    records = ET.parse(folder / "MeasurementData.mlf").getroot()
    touch_all(folder, [r.text or "" for r in records])
    plate = read_plate(folder)
    assert plate.warnings == []
    assert len(plate.files) == 120
    assert plate.plate_id == "20200812-CardiomyocyteDifferentiation14-Cycle1"
    assert (wells(plate), fields(plate), planes(plate)) == ({"B03"}, {1, 2, 3, 4}, set(range(1, 11)))
    assert channels(plate) == {"1": None, "2": None, "3": None}
    assert plate.pixel_size == pytest.approx((0.1625, 0.1625))
    assert plate.plane_spacing == pytest.approx(1.0)


def test_cellvoyager_cq3000_projection_index_only() -> None:
    plate = read_plate(CQ3000)
    # The plate is named "NoPlateID" (the CQ3000's word for none): the folder name identifies it instead.
    assert plate.plate_id == "hcs_2w1p1c1z1t_mip"
    assert plate.files == []
    assert plate.pixel_size == pytest.approx((0.322837, 0.322837), rel=1e-5)
    assert plate.index_files == [
        "10_Greiner_μClear #655090.wpp",
        "MeasurementData.mlf",
        "MeasurementDetail.mrf",
        "MeasurementProtocol.mes",
        "NoPlateID.wpi",
    ]
    assert plate.warnings == [
        "Projection/W0029F0001T0001Z000C1.tif: listed in MeasurementData.mlf but missing",
        "Projection/W0069F0001T0001Z000C1.tif: listed in MeasurementData.mlf but missing",
    ]


def test_cellvoyager_cq3000_projection_present(tmp_path: Path) -> None:
    folder = copy_folder(CQ3000, tmp_path / "hcs_2w1p1c1z1t_mip")
    touch_all(folder, ["Projection/W0029F0001T0001Z000C1.tif", "Projection/W0069F0001T0001Z000C1.tif"])
    touch_all(folder, ["Projection/W0070F0001T0001Z000C1.tif"])
    plate = read_plate(folder)
    assert wells(plate) == {"C05", "F09"}  # W0029 = row 3 col 5, W0069 = row 6 col 9
    assert (fields(plate), timepoints(plate)) == ({1}, {1})
    assert planes(plate) == {None}  # maximum-intensity projections, not plane 1
    assert channels(plate) == {"1": "Ch1_ConfocalFluorescence_405nm/100mW_BP447/60"}  # from the .mes
    assert plate.warnings == ["Projection/W0070F0001T0001Z000C1.tif: not listed in MeasurementData.mlf"]


def test_cellvoyager_malformed_mlf_names_it(tmp_path: Path) -> None:
    folder = tmp_path / "broken"
    folder.mkdir()
    text = (CV_PNG / "MeasurementData.mlf").read_text()
    (folder / "MeasurementData.mlf").write_text(text.replace('bts:Row="2"', 'bts:Row="B"', 1))
    with pytest.raises(StoreError, match=r"MeasurementData\.mlf: MeasurementRecord 1 Row is not an integer: 'B'"):
        read_plate(folder)


# --- Cellomics, NF1, unrelated -------------------------------------------------------------------------------


def test_cellomics_example_human() -> None:
    assert plate_layout_of(EXAMPLE_HUMAN) == "cellomics"
    plate = read_plate(EXAMPLE_HUMAN)
    assert plate.plate_id == "AS_09125_050116030001"
    assert keys(plate) == [f"AS_09125_050116030001_D03f00d{d}.tif" for d in range(3)]
    assert (wells(plate), fields(plate), planes(plate), timepoints(plate)) == ({"D03"}, {0}, {None}, {None})
    assert channels(plate) == {"0": None, "1": None, "2": None}
    assert (plate.pixel_size, plate.index_files, plate.warnings) == (None, [], [])  # the overlay PNG is no image


def test_cellomics_c01_folder(tmp_path: Path) -> None:
    folder = tmp_path / "MFGTMP_140206"
    folder.mkdir()
    for name in ("MFGTMP_140206_A01f00d0.C01", "MFGTMP_140206_A01f00d1.C01", "MFGTMP_140206_B12f101d0.C01"):
        shutil.copyfile(C01_SAMPLE, folder / name)
    assert plate_layout_of(folder) == "cellomics"
    plate = read_plate(folder)
    assert plate.plate_id == "MFGTMP_140206"
    assert wells(plate) == {"A01", "B12"}
    assert fields(plate) == {0, 101}
    assert set(channels(plate)) == {"0", "1"}
    # Two plate prefixes in one folder: not one plate.
    shutil.copyfile(C01_SAMPLE, folder / "OTHER_A01f00d0.C01")
    assert plate_layout_of(folder) is None


def test_nf1_plate_2_images() -> None:
    assert plate_layout_of(NF1) == "nf1"
    plate = read_plate(NF1)
    assert plate.plate_id == "Plate_2"
    assert len(plate.files) == 15
    assert wells(plate) == {"B07", "D06", "D07", "F07", "H12"}
    assert channels(plate) == {"1": "DAPI", "2": "GFP", "3": "RFP"}
    b7 = [f for f in plate.files if f.key == "B7_01_1_3_DAPI_001.tif"]
    assert [(f.well_id, f.field, f.channel, f.channel_name) for f in b7] == [("B07", 3, "1", "DAPI")]
    assert fields(plate) == {1, 2, 3}
    assert (planes(plate), timepoints(plate), plate.warnings) == ({None}, {None}, [])


def test_unrelated_tiffs_are_no_plate(tmp_path: Path) -> None:
    folder = tmp_path / "misc"
    touch_all(folder, ["cells.tif", "nuclei_A01.tiff", "r01c01f01p01-ch1sk1fk1fl1.tiff"])
    assert plate_layout_of(folder) is None
    with pytest.raises(StoreError, match=r"misc: is not an HCS plate folder"):
        read_plate(folder)
    assert plate_layout_of(tmp_path / "absent") is None
    assert plate_layout_of(LAYOUTS / "arve0+leicaexperiment/test/experiment--test") is None


def test_library_imports_no_dagster_and_no_image_reader() -> None:
    """The layout readers read index documents and list folders: no Dagster, no TIFF reader, no pixels."""
    package = Path(__file__).resolve().parents[1] / "bioimage_pipeline/formats/hcs"
    for module in sorted(package.glob("*.py")):
        tree = ast.parse(module.read_text())
        imported = {n.name for node in ast.walk(tree) if isinstance(node, ast.Import) for n in node.names}
        imported |= {node.module or "" for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)}
        forbidden = {m for m in imported if m.split(".")[0] in {"dagster", "tifffile", "PIL", "numpy", "zarr"}}
        assert not forbidden, f"{module.name} imports {forbidden}"
        assert "bioimage_pipeline.formats.tiff" not in imported
