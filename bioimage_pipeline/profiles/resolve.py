"""Link every profile row to the images it was measured on.

Three ways, tried in order for each row until one links: the row's own ``dataset_id`` + ``image_id``; its
CellProfiler image references (``FileName_*`` with ``PathName_*``, or ``URL_*``) against image URIs; its
plate/well/site against the plate metadata of the images. Only level-0 intensity images are candidates,
so a row is never multiplied by resolution levels, labels or chunks. A reference that matches several
images equally well is ambiguous and links nothing: a wrong link is worse than none.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import PurePosixPath
from typing import TYPE_CHECKING
from urllib.parse import unquote, urlparse

import pyarrow as pa

from bioimage_pipeline.profiles.normalize import KEY_COLUMNS, ROW_ID, Normalized, file_name_columns

#: ``array_path`` is set where a row names one file of its image (a plate site's channel file); null where the
#: link is to the whole image.
LINK_COLUMNS = (ROW_ID, "dataset_id", "image_id", "array_path", "channel", "method", "rank")
#: How many unmatched rows a report lists.
UNMATCHED_SAMPLE = 20

if TYPE_CHECKING:  # imported where used: pandas costs half a second, which `status` need not pay
    import pandas as pd


@dataclass
class Resolution:
    """The normalised table with keys filled from its links, and the links themselves."""

    data: pa.Table
    links: pd.DataFrame
    rows: int
    matched_rows: int
    methods: dict[str, int] = field(default_factory=dict)
    #: True when the table carries something that can name an image (ids, file names or wells).
    has_keys: bool = False
    warnings: list[str] = field(default_factory=list)
    unmatched_sample: list[dict[str, object]] = field(default_factory=list)
    #: A site offset under which most unlinked rows would link (see :func:`resolve`).
    site_offset_hint: int | None = None

    @property
    def coverage(self) -> float:
        return self.matched_rows / self.rows if self.rows else 1.0


def image_candidates(image_assets: pa.Table | None) -> pd.DataFrame:
    """Level-0 intensity arrays with the keys profiles are matched on: one row per array, so that each channel
    file of a plate site can be named by its own file name (``_images`` gives one row per image)."""
    import pandas as pd

    columns = ["dataset_id", "image_id", "array_path", "uri", "plate_id", "well_id", "site_id", "format"]
    if image_assets is None or image_assets.num_rows == 0:
        return pd.DataFrame(columns=[*columns, "basename"])
    df = image_assets.select([*columns, "level", "kind"]).to_pandas()
    df = df[(df["level"] == 0) & (df["kind"] == "image")].drop(columns=["level", "kind"])
    df = df.drop_duplicates(["dataset_id", "image_id", "array_path"]).reset_index(drop=True)
    df["basename"] = df["uri"].map(lambda u: PurePosixPath(str(u).replace("\\", "/")).name)
    df["site_id"] = df["site_id"].map(_site)
    return df


def _images(candidates: pd.DataFrame) -> pd.DataFrame:
    """One row per image (the first of its arrays): what rows linked by ids or plate/well/site match."""
    return candidates.drop_duplicates(["dataset_id", "image_id"])


def _site(value: object) -> object:
    import pandas as pd

    if value is None or (isinstance(value, float) and pd.isna(value)):
        return None
    text = str(value).strip()
    return str(int(text)) if text.isdigit() else text


def _path_parts(path: str | None, name: str) -> list[str]:
    full = f"{path.rstrip('/')}/{name}" if path else name
    return [p for p in full.replace("\\", "/").split("/") if p]


def _common_tail(a: list[str], b: list[str]) -> int:
    n = 0
    while n < min(len(a), len(b)) and a[-1 - n] == b[-1 - n]:
        n += 1
    return n


def _reference_name(value: str) -> tuple[str, str | None]:
    """(file name, directory) of a FileName value or a URL."""
    if "://" in value or value.startswith("file:"):
        parsed = urlparse(value)
        path = unquote(parsed.path)
        pure = PurePosixPath(path)
        return pure.name, str(pure.parent)
    return PurePosixPath(value.replace("\\", "/")).name, None


def _by_ids(keys: pd.DataFrame, images: pd.DataFrame) -> pd.DataFrame:
    import pandas as pd

    images = _images(images)
    rows = keys.dropna(subset=["dataset_id"])
    if rows.empty:
        return pd.DataFrame(columns=LINK_COLUMNS)
    with_image = rows.dropna(subset=["image_id"])
    linked = with_image.merge(images[["dataset_id", "image_id"]], on=["dataset_id", "image_id"])
    # A dataset given without an image links when the dataset holds exactly one image.
    only_dataset = rows[rows["image_id"].isna()]
    single = images.groupby("dataset_id").filter(lambda g: len(g) == 1)[["dataset_id", "image_id"]]
    linked2 = only_dataset.drop(columns=["image_id"]).merge(single, on="dataset_id")
    out = pd.concat([linked[[ROW_ID, "dataset_id", "image_id"]], linked2[[ROW_ID, "dataset_id", "image_id"]]])
    out["array_path"] = None
    out["channel"] = None
    out["method"] = "image_id"
    out["rank"] = 0
    return out[list(LINK_COLUMNS)]


def _by_file_names(table: pa.Table, keys: pd.DataFrame, images: pd.DataFrame, warnings: list[str]) -> pd.DataFrame:
    import numpy as np
    import pandas as pd

    refs = file_name_columns(table.column_names)
    if not refs or images.empty:
        return pd.DataFrame(columns=LINK_COLUMNS)
    parts = []
    for rank, (channel, name_col, path_col) in enumerate(refs):
        names = table.column(name_col).to_pandas()
        paths = table.column(path_col).to_pandas() if path_col else pd.Series([None] * len(names))
        frame = pd.DataFrame(
            {
                ROW_ID: keys[ROW_ID].to_numpy(),
                "ref": names.to_numpy(),
                "path": paths.to_numpy(),
                "channel": channel,
                "rank": rank,
                "dataset_hint": keys["dataset_id"].to_numpy(),
            }
        )
        parts.append(frame.dropna(subset=["ref"]))
    refs_df = pd.concat(parts, ignore_index=True)
    if refs_df.empty:
        return pd.DataFrame(columns=LINK_COLUMNS)
    # Work on distinct references: a site's file names repeat on every object row measured on it. Each row
    # keeps the number of its reference (numbered in order of first appearance, so distinct row i is
    # reference i) and takes its resolution by that number: a plate's rows hold millions of references,
    # and merging them back by their three text columns cost a gigabyte.
    code = refs_df.groupby(["ref", "path", "dataset_hint"], sort=False, dropna=False).ngroup().to_numpy()
    first = np.unique(code, return_index=True)[1]
    distinct = refs_df[["ref", "path", "dataset_hint"]].iloc[first].reset_index(drop=True)
    split = distinct["ref"].astype(str).map(_reference_name)
    distinct["basename"] = split.map(lambda t: t[0])
    distinct["url_dir"] = split.map(lambda t: t[1])
    cand = distinct.reset_index().merge(
        images[["dataset_id", "image_id", "array_path", "uri", "basename"]], on="basename"
    )
    if not cand.empty:
        hint = cand["dataset_hint"].notna()
        cand = cand[~hint | (cand["dataset_hint"] == cand["dataset_id"])]
        wanted = [
            _path_parts(p if isinstance(p, str) else (d if isinstance(d, str) else None), b)
            for p, d, b in zip(cand["path"], cand["url_dir"], cand["basename"], strict=True)
        ]
        cand = cand.assign(
            score=[_common_tail(w, _path_parts(None, str(u))) for w, u in zip(wanted, cand["uri"], strict=True)]
        )
        best = cand.groupby("index")["score"].transform("max")
        cand = cand[cand["score"] == best]
        counts = cand.groupby("index")["dataset_id"].transform("size")
        ambiguous = cand[counts > 1]["index"].nunique()
        if ambiguous:
            warnings.append(f"{ambiguous} image references match several images equally well; not linked")
        cand = cand[counts == 1]
    # cand now has at most one image per distinct reference.
    resolved = {}
    for column in ("dataset_id", "image_id", "array_path"):
        values = np.full(len(distinct), None, dtype=object)
        if not cand.empty:
            values[cand["index"].to_numpy()] = cand[column].to_numpy()
        resolved[column] = values[code]
    merged = refs_df.assign(**resolved)
    for label, group in merged.groupby("channel", sort=False):
        missing = int(group["dataset_id"].isna().sum())
        if missing and missing == len(group):
            warnings.append(f"references in the {label} image column match no catalogued image")
    merged = merged.dropna(subset=["dataset_id"])
    merged["method"] = "file_name"
    return merged[list(LINK_COLUMNS)]


def _folder(dataset_id: str) -> str:
    return dataset_id.rsplit("/", 1)[0] if "/" in dataset_id else ""


def _by_plate_well_site(keys: pd.DataFrame, images: pd.DataFrame, warnings: list[str]) -> pd.DataFrame:
    """Rows to images by well (and plate, site, dataset where the row gives them).

    Images whose plate is unknown (vendor file names such as Opera Phenix carry well and field but no
    plate) match any plate, provided all of a row's matches sit in one folder, or in the one folder whose
    path names the row's plate: plates are exported one folder each. Anything else is ambiguous and left
    unlinked, as is a row without a plate whose well exists on several plates.
    """
    import pandas as pd

    rows = keys.dropna(subset=["well_id"])
    columns = ["dataset_id", "image_id", "plate_id", "well_id", "site_id"]
    plated = _images(images).dropna(subset=["well_id"])[columns].copy()
    if rows.empty or plated.empty:
        return pd.DataFrame(columns=LINK_COLUMNS)
    plated["folder"] = plated["dataset_id"].map(_folder)
    # Where the plate is unknown, the folder stands for it when telling plates apart.
    plated["plate_key"] = plated["plate_id"].where(plated["plate_id"].notna(), "folder:" + plated["folder"])
    out = []
    ambiguous_rows = 0
    pattern = rows[["plate_id", "site_id", "dataset_id"]].notna()
    for (has_plate, has_site, has_dataset), group in rows.groupby(
        [pattern["plate_id"], pattern["site_id"], pattern["dataset_id"]]
    ):
        on = ["well_id"] + (["site_id"] if has_site else []) + (["dataset_id"] if has_dataset else [])
        columns = list(dict.fromkeys(["dataset_id", "image_id", "plate_id", "plate_key", "folder", *on]))
        candidates = group[[ROW_ID, "plate_id", *[c for c in on if c != "plate_id"]]].merge(
            plated[columns], on=on, suffixes=("", "_image")
        )
        if has_plate:
            exact = candidates[candidates["plate_id_image"] == candidates["plate_id"]]
            wild = candidates[candidates["plate_id_image"].isna() & ~candidates[ROW_ID].isin(exact[ROW_ID])]
            if not wild.empty:
                names_plate = [
                    str(p).lower() in f.lower() for p, f in zip(wild["plate_id"], wild["folder"], strict=True)
                ]
                wild = wild.assign(names_plate=names_plate)
                folders = wild.groupby(ROW_ID)["folder"].transform("nunique")
                preferred = wild[(folders == 1) | wild["names_plate"]]
                kept = preferred.groupby(ROW_ID)["folder"].transform("nunique")
                ambiguous_rows += wild[~wild[ROW_ID].isin(preferred[kept == 1][ROW_ID])][ROW_ID].nunique()
                wild = preferred[kept == 1]
            merged = pd.concat([exact, wild])
        else:
            n_plates = candidates.groupby(ROW_ID)["plate_key"].transform("nunique")
            ambiguous = candidates[n_plates > 1][ROW_ID].unique()
            if len(ambiguous):
                warnings.append(
                    f"{len(ambiguous)} rows name a well but no plate, and several plates have that well; not linked"
                )
            merged = candidates[~candidates[ROW_ID].isin(ambiguous)]
        out.append(merged[[ROW_ID, "dataset_id", "image_id"]])
    if ambiguous_rows:
        warnings.append(
            f"{ambiguous_rows} rows match images of unknown plate in several folders, none named after the row's "
            "plate; not linked"
        )
    links = pd.concat(out, ignore_index=True) if out else pd.DataFrame(columns=[ROW_ID, "dataset_id", "image_id"])
    links["array_path"] = None
    links["channel"] = None
    links["method"] = "plate_well_site"
    links["rank"] = 0
    return links[list(LINK_COLUMNS)]


def _shift_sites(keys: pd.DataFrame, offset: int) -> pd.DataFrame:
    """``keys`` with numeric sites moved by ``offset`` (profiles counting sites from 1, images from 0)."""
    if not offset:
        return keys
    sites = keys["site_id"]

    def shifted(v: object) -> object:
        return str(int(v) + offset) if isinstance(v, str) and v.isdigit() else v

    return keys.assign(site_id=sites.map(shifted))


def _site_offset_hint(unmatched: pd.DataFrame, images: pd.DataFrame, offset: int) -> int | None:
    """The site offset under which most of the rows plate/well/site left unlinked would link, if any
    (``unmatched`` already moved by ``offset``)."""
    rows = unmatched.dropna(subset=["well_id", "site_id"])
    if rows.empty or len(rows) * 2 < len(unmatched) or images.empty:
        return None
    for delta in (-1, 1):
        found = _by_plate_well_site(_shift_sites(rows, delta), images, [])
        if not found.empty and found[ROW_ID].nunique() * 2 > len(unmatched):
            return offset + delta
    return None


def resolve(normalized: Normalized, images: pd.DataFrame, site_offset: int = 0) -> Resolution:
    """Links for every row; the table's missing keys filled from each row's first linked image.

    ``site_offset`` is added to numeric sites before rows are matched by plate/well/site (the source's
    option); when most rows stay unlinked and another offset would link them, it is named in
    :attr:`Resolution.site_offset_hint`.
    """
    import pandas as pd

    table = normalized.data
    keys = table.select(list((ROW_ID, *KEY_COLUMNS))).to_pandas()
    if site_offset:
        # ``site_id`` is the images' numbering from here on; the source's own site column is kept as it was.
        keys = _shift_sites(keys, site_offset)
        column = table.schema.get_field_index("site_id")
        table = table.set_column(column, "site_id", pa.array(keys["site_id"].tolist(), pa.string()))
    warnings = list(normalized.warnings)
    has_refs = bool(file_name_columns(table.column_names))
    has_keys = bool(keys["dataset_id"].notna().any() or keys["well_id"].notna().any() or has_refs)

    links_parts = []
    remaining = set(keys[ROW_ID])
    for method in ("image_id", "file_name", "plate_well_site"):
        if not remaining:
            break
        subset = keys[keys[ROW_ID].isin(remaining)]
        if method == "image_id":
            found = _by_ids(subset, images)
        elif method == "file_name":
            found = _by_file_names(table, subset if len(subset) == len(keys) else keys, images, warnings)
            found = found[found[ROW_ID].isin(remaining)]
        else:
            found = _by_plate_well_site(subset, images, warnings)
        if not found.empty:
            links_parts.append(found)
            remaining -= set(found[ROW_ID])
    links = pd.concat(links_parts, ignore_index=True) if links_parts else pd.DataFrame(columns=LINK_COLUMNS)
    links = (
        links.sort_values([ROW_ID, "rank", "dataset_id", "image_id"])
        .drop_duplicates([ROW_ID, "dataset_id", "image_id", "array_path", "channel"])
        .reset_index(drop=True)
    )
    methods = links.drop_duplicates(ROW_ID)["method"].value_counts().to_dict() if not links.empty else {}
    data = _fill_keys(table, keys, links, images)
    matched = int(links[ROW_ID].nunique()) if not links.empty else 0
    unmatched_rows = keys[~keys[ROW_ID].isin(set(links[ROW_ID]))] if not links.empty else keys
    sample = unmatched_rows.head(UNMATCHED_SAMPLE)
    hint = _site_offset_hint(unmatched_rows, images, site_offset) if len(unmatched_rows) * 2 > len(keys) else None
    return Resolution(
        site_offset_hint=hint,
        data=data,
        links=links,
        rows=len(keys),
        matched_rows=matched,
        methods={str(k): int(v) for k, v in methods.items()},
        has_keys=has_keys,
        warnings=warnings,
        unmatched_sample=[{k: (None if pd.isna(v) else v) for k, v in r.items()} for r in sample.to_dict("records")],
    )


def _fill_keys(table: pa.Table, keys: pd.DataFrame, links: pd.DataFrame, images: pd.DataFrame) -> pa.Table:
    if links.empty:
        return table
    primary = links.drop_duplicates(ROW_ID).merge(
        _images(images)[["dataset_id", "image_id", "plate_id", "well_id", "site_id"]],
        on=["dataset_id", "image_id"],
        how="left",
        suffixes=("", "_image"),
    )
    filled = keys.merge(primary, on=ROW_ID, how="left", suffixes=("", "_link"))
    for key in KEY_COLUMNS:
        source = f"{key}_link" if f"{key}_link" in filled.columns else key
        if source == key:
            continue
        value = filled[key].where(filled[key].notna(), filled[source])
        index = table.column_names.index(key)
        # from_pandas: pandas 3 string columns carry NaN for missing values, which must become nulls.
        table = table.set_column(index, key, pa.Array.from_pandas(value.astype(object), type=pa.string()))
    return table
