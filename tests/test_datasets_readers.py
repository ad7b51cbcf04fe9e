"""Readers of the public formats users bring, tested on small files written here in those
formats (MovieLens, Kaggle credit card, NAB, Pascal VOC, COCO, class folders)."""

from __future__ import annotations

import json
import re

import numpy as np
import pandas as pd
import pytest

from sparkzoo.datasets import readers

# ---------------------------------------------------------------------------- MovieLens


def test_u_data_ratings(tmp_path):
    path = tmp_path / "u.data"
    path.write_text("196\t242\t3\t881250949\n186\t302\t3\t891717742\n22\t377\t1\t878887116\n")
    ratings = readers.read_movielens_ratings(str(path))
    assert list(ratings.columns) == list(readers.RATINGS_COLUMNS)
    assert ratings.dtypes.tolist() == [np.int64, np.int64, np.float64, np.int64]
    assert ratings.iloc[2].tolist() == [22, 377, 1.0, 878887116]


def test_ml_latest_csv_and_ml_1m_dat_give_the_same_schema(tmp_path):
    csv = tmp_path / "ratings.csv"
    csv.write_text("userId,movieId,rating,timestamp\n1,1,4.0,964982703\n1,3,3.5,964981247\n")
    dat = tmp_path / "ratings.dat"
    dat.write_text("1::1193::5::978300760\n1::661::3::978302109\n")
    from_csv = readers.read_movielens_ratings(str(csv))
    from_dat = readers.read_movielens_ratings(str(dat))
    assert from_csv["rating"].tolist() == [4.0, 3.5]
    assert from_csv.iloc[1].tolist() == [1, 3, 3.5, 964981247]
    assert from_dat.iloc[0].tolist() == [1, 1193, 5.0, 978300760]
    assert from_csv.dtypes.equals(from_dat.dtypes)


def test_movielens_errors_name_file_and_line(tmp_path):
    bad = tmp_path / "u.data"
    bad.write_text("196\t242\t3\t881250949\n186\tabc\t3\t891717742\n")
    with pytest.raises(ValueError, match=r"u\.data, line 2: column 'item_id' holds 'abc'"):
        readers.read_movielens_ratings(str(bad))
    short = tmp_path / "short.data"
    short.write_text("196\t242\t3\t881250949\n186\t302\t3\n")
    with pytest.raises(ValueError, match=r"short\.data, line 2: column 'timestamp' is empty"):
        readers.read_movielens_ratings(str(short))
    fractional = tmp_path / "frac.csv"
    fractional.write_text("userId,movieId,rating,timestamp\n1.5,1,4.0,964982703\n")
    with pytest.raises(ValueError, match=r"frac\.csv, line 2: column 'user_id' .* not an integer"):
        readers.read_movielens_ratings(str(fractional))
    other = tmp_path / "notes.txt"
    other.write_text("hello world\n")
    with pytest.raises(ValueError, match=r"notes\.txt: not a MovieLens ratings file"):
        readers.read_movielens_ratings(str(other))


# ---------------------------------------------------------------------------- credit card


def _kaggle_csv(path, rows, columns=readers.CREDITCARD_COLUMNS):
    # The Kaggle file quotes every header and the Class values.
    lines = [",".join(f'"{c}"' for c in columns)]
    for row in rows:
        lines.append(
            ",".join(
                f'"{v}"' if c == "Class" else str(v) for c, v in zip(columns, row, strict=True)
            )
        )
    path.write_text("\n".join(lines) + "\n")


def test_creditcard_csv(tmp_path):
    rng = np.random.default_rng(0)
    rows = [[0.0, *rng.normal(size=28).round(6), 149.62, 0], [1.0, *rng.normal(size=28), 2.69, 1]]
    path = tmp_path / "creditcard.csv"
    _kaggle_csv(path, rows)
    frame = readers.read_creditcard(str(path))
    assert list(frame.columns) == list(readers.CREDITCARD_COLUMNS)
    assert len(readers.CREDITCARD_COLUMNS) == 31
    assert frame["Class"].tolist() == [0, 1] and frame["Class"].dtype == np.int64
    assert frame["Amount"].tolist() == [149.62, 2.69]
    assert frame["V1"].iloc[0] == pytest.approx(rows[0][1])


def test_creditcard_schema_check_names_missing_columns(tmp_path):
    columns = [c for c in readers.CREDITCARD_COLUMNS if c not in ("V3", "Amount")]
    path = tmp_path / "partial.csv"
    _kaggle_csv(path, [[0.0] * (len(columns) - 1) + [0]], columns)
    with pytest.raises(ValueError, match=r"partial\.csv: missing column\(s\) V3, Amount"):
        readers.read_creditcard(str(path))
    with pytest.raises(ValueError, match=r"frame: missing column\(s\) Class"):
        readers.check_creditcard_columns(readers.CREDITCARD_COLUMNS[:-1])


def test_creditcard_bad_values_name_line_and_column(tmp_path):
    path = tmp_path / "bad.csv"
    _kaggle_csv(path, [[0.0, *[0.1] * 28, 5.0, 0], [1.0, *[0.1] * 27, "n/a", 5.0, 0]])
    with pytest.raises(ValueError, match=r"bad\.csv, line 3: column 'V28' holds 'n/a'"):
        readers.read_creditcard(str(path))
    _kaggle_csv(path, [[0.0, *[0.1] * 28, 5.0, 2]])
    with pytest.raises(ValueError, match=r"bad\.csv, line 2: Class is '2', expected 0 or 1"):
        readers.read_creditcard(str(path))


# ---------------------------------------------------------------------------- NAB


@pytest.fixture
def nab_series(tmp_path):
    stamps = pd.date_range("2014-04-01 00:00", periods=12, freq="5min")
    path = tmp_path / "data" / "realKnownCause" / "machine_temperature.csv"
    path.parent.mkdir(parents=True)
    values = [f"{v:.4f}" for v in np.linspace(70.0, 75.5, 12)]
    lines = ["timestamp,value"] + [
        f"{t:%Y-%m-%d %H:%M:%S},{v}" for t, v in zip(stamps, values, strict=True)
    ]
    path.write_text("\n".join(lines) + "\n")
    return path


def test_nab_windows(tmp_path, nab_series):
    windows = tmp_path / "combined_windows.json"
    windows.write_text(
        json.dumps(
            {
                "artificialNoAnomaly/art_daily_no_noise.csv": [],
                "realKnownCause/machine_temperature.csv": [
                    ["2014-04-01 00:10:00.000000", "2014-04-01 00:20:00.000000"],
                    ["2014-04-01 00:50:00.000000", "2014-04-01 00:50:00.000000"],
                ],
            },
            indent=4,
        )
    )
    series = readers.read_nab(str(nab_series), str(windows))
    assert list(series.columns) == ["timestamp", "value", "is_anomaly"]
    assert len(series) == 12 and series["timestamp"].dtype == "datetime64[ns]"
    assert np.flatnonzero(series["is_anomaly"]).tolist() == [2, 3, 4, 10]
    assert series["value"].iloc[0] == 70.0


def test_nab_point_labels_and_key(tmp_path, nab_series):
    labels = tmp_path / "combined_labels.json"
    labels.write_text(
        json.dumps(
            {
                "realKnownCause/machine_temperature.csv": ["2014-04-01 00:35:00"],
                "realTweets/machine_temperature.csv": ["2014-04-01 00:00:00"],
            }
        )
    )
    with pytest.raises(ValueError, match=r"2 entries .* pass key="):
        readers.read_nab(str(nab_series), str(labels))
    series = readers.read_nab(
        str(nab_series), str(labels), key="realKnownCause/machine_temperature.csv"
    )
    assert np.flatnonzero(series["is_anomaly"]).tolist() == [7]
    unlabelled = readers.read_nab(str(nab_series))
    assert not unlabelled["is_anomaly"].any()


def test_nab_malformed_files_are_named(tmp_path, nab_series):
    broken = tmp_path / "combined_windows.json"
    broken.write_text('{"realKnownCause/machine_temperature.csv": [[')
    with pytest.raises(ValueError, match=r"combined_windows\.json: not valid JSON"):
        readers.read_nab(str(nab_series), str(broken))
    odd = tmp_path / "odd.json"
    odd.write_text(json.dumps({"machine_temperature.csv": [["2014-04-01", "x", "y"]]}))
    with pytest.raises(ValueError, match=r"odd\.json: labels must be timestamps"):
        readers.read_nab(str(nab_series), str(odd))
    bad_series = tmp_path / "bad.csv"
    bad_series.write_text("timestamp,value\n2014-04-01 00:00:00,1.0\nyesterday,2.0\n")
    with pytest.raises(ValueError, match=r"bad\.csv, line 3: timestamp 'yesterday'"):
        readers.read_nab(str(bad_series))
    no_value = tmp_path / "novalue.csv"
    no_value.write_text("timestamp,level\n2014-04-01 00:00:00,1.0\n")
    with pytest.raises(ValueError, match=r"novalue\.csv: missing column\(s\) value"):
        readers.read_nab(str(no_value))


# ---------------------------------------------------------------------------- boxes

VOC_XML = """<annotation>
\t<folder>VOC2012</folder>
\t<filename>{filename}</filename>
\t<source><database>The VOC2007 Database</database></source>
\t<size><width>{width}</width><height>{height}</height><depth>3</depth></size>
\t<segmented>0</segmented>
{objects}</annotation>
"""
VOC_OBJECT = """\t<object>
\t\t<name>{name}</name><pose>Left</pose><truncated>0</truncated>
\t\t<difficult>{difficult}</difficult>
\t\t<bndbox><xmin>{xmin}</xmin><ymin>{ymin}</ymin><xmax>{xmax}</xmax><ymax>{ymax}</ymax></bndbox>
\t</object>
"""


def _voc(path, filename, width, height, objects):
    body = "".join(VOC_OBJECT.format(**o) for o in objects)
    path.write_text(VOC_XML.format(filename=filename, width=width, height=height, objects=body))


def test_voc_folder_to_box_table(tmp_path):
    folder = tmp_path / "Annotations"
    folder.mkdir()
    _voc(
        folder / "2007_000027.xml",
        "2007_000027.jpg",
        486,
        500,
        [{"name": "person", "difficult": 0, "xmin": 174, "ymin": 101, "xmax": 349, "ymax": 351}],
    )
    _voc(
        folder / "2007_000032.xml",
        "2007_000032.jpg",
        500,
        281,
        [
            {
                "name": "aeroplane",
                "difficult": 0,
                "xmin": 104,
                "ymin": 78,
                "xmax": 375,
                "ymax": 183,
            },
            {"name": "person", "difficult": 1, "xmin": 195, "ymin": 180, "xmax": 213, "ymax": 229},
        ],
    )
    (folder / "readme.txt").write_text("not an annotation")
    boxes = readers.read_voc(str(folder))
    assert list(boxes.columns) == list(readers.BOX_COLUMNS)
    assert boxes["image"].tolist() == ["2007_000027.jpg", "2007_000032.jpg", "2007_000032.jpg"]
    first = boxes.iloc[0]
    # 1-based inclusive VOC corners -> 0-based, end-exclusive pixels -> normalised.
    assert [first["xmin"], first["ymin"], first["xmax"], first["ymax"]] == [173, 100, 349, 351]
    assert first["y1"] == pytest.approx(100 / 500) and first["x2"] == pytest.approx(349 / 486)
    assert boxes["difficult"].tolist() == [False, False, True]
    assert ((boxes[["y1", "x1", "y2", "x2"]] >= 0) & (boxes[["y1", "x1", "y2", "x2"]] <= 1)).all(
        axis=None
    )
    one = readers.read_voc(str(folder / "2007_000032.xml"))
    assert one["class"].tolist() == ["aeroplane", "person"]


def test_voc_malformed_files_are_named(tmp_path):
    broken = tmp_path / "broken.xml"
    broken.write_text("<annotation><filename>a.jpg</filename><size>")
    with pytest.raises(ValueError, match=r"broken\.xml: malformed VOC XML"):
        readers.read_voc(str(broken))
    no_box = tmp_path / "nobox.xml"
    no_box.write_text(
        "<annotation><filename>a.jpg</filename><size><width>10</width><height>10</height>"
        "</size><object><name>dog</name></object></annotation>"
    )
    with pytest.raises(ValueError, match=r"nobox\.xml: object 1 \(dog\) has no <bndbox>"):
        readers.read_voc(str(no_box))
    empty = tmp_path / "empty.xml"
    _voc(
        empty,
        "b.jpg",
        10,
        10,
        [{"name": "cat", "difficult": 0, "xmin": 5, "ymin": 5, "xmax": 3, "ymax": 8}],
    )
    with pytest.raises(ValueError, match=r"empty\.xml: object 1 \(cat\) has an empty box"):
        readers.read_voc(str(empty))
    with pytest.raises(FileNotFoundError, match=r"missing\.xml"):
        readers.read_voc(str(tmp_path / "missing.xml"))


def _coco(
    path, annotations, categories=({"id": 1, "name": "person"}, {"id": 5, "name": "airplane"})
):
    document = {
        "images": [
            {"id": 42, "file_name": "000000000042.jpg", "width": 640, "height": 480},
            {"id": 73, "file_name": "000000000073.jpg", "width": 500, "height": 281},
        ],
        "annotations": annotations,
        "categories": list(categories),
    }
    path.write_text(json.dumps(document))


def test_coco_json_to_box_table(tmp_path):
    path = tmp_path / "instances_val.json"
    _coco(
        path,
        [
            {
                "id": 1,
                "image_id": 42,
                "category_id": 1,
                "bbox": [100.5, 50.0, 200.0, 300.0],
                "iscrowd": 0,
            },
            {"id": 2, "image_id": 73, "category_id": 5, "bbox": [103, 77, 272, 106], "iscrowd": 1},
            {"id": 3, "image_id": 73, "category_id": 1, "bbox": [490, 270, 20, 20], "iscrowd": 0},
        ],
    )
    boxes = readers.read_coco(str(path))
    assert list(boxes.columns) == list(readers.BOX_COLUMNS)
    assert boxes["class"].tolist() == ["person", "airplane", "person"]
    first = boxes.iloc[0]
    assert [first["xmin"], first["ymin"], first["xmax"], first["ymax"]] == [100.5, 50, 300.5, 350]
    assert first["x1"] == pytest.approx(100.5 / 640) and first["y2"] == pytest.approx(350 / 480)
    assert boxes["difficult"].tolist() == [False, True, False]
    # A box running past the image edge is clipped to it.
    assert boxes.iloc[2][["xmax", "ymax", "x2", "y2"]].tolist() == [500, 281, 1.0, 1.0]


def test_voc_and_coco_agree_on_the_same_box(tmp_path):
    _voc(
        tmp_path / "a.xml",
        "000000000073.jpg",
        500,
        281,
        [{"name": "airplane", "difficult": 0, "xmin": 104, "ymin": 78, "xmax": 375, "ymax": 183}],
    )
    _coco(
        tmp_path / "a.json",
        [{"id": 1, "image_id": 73, "category_id": 5, "bbox": [103, 77, 272, 106]}],
    )
    columns = ["image", "class", "y1", "x1", "y2", "x2", "ymin", "xmin", "ymax", "xmax"]
    pd.testing.assert_frame_equal(
        readers.read_voc(str(tmp_path / "a.xml"))[columns],
        readers.read_coco(str(tmp_path / "a.json"))[columns],
    )


def test_coco_malformed_files_are_named(tmp_path):
    path = tmp_path / "instances.json"
    path.write_text('{"images": [')
    with pytest.raises(ValueError, match=r"instances\.json: malformed COCO JSON"):
        readers.read_coco(str(path))
    _coco(path, [{"id": 9, "image_id": 42, "category_id": 3, "bbox": [1, 2, 3, 4]}])
    with pytest.raises(
        ValueError, match=r"instances\.json: annotation 9 names unknown category_id 3"
    ):
        readers.read_coco(str(path))
    _coco(path, [{"id": 9, "image_id": 7, "category_id": 1, "bbox": [1, 2, 3, 4]}])
    with pytest.raises(ValueError, match=r"annotation 9 names unknown image_id 7"):
        readers.read_coco(str(path))
    _coco(path, [{"id": 9, "image_id": 42, "category_id": 1, "bbox": [1, 2, 3]}])
    with pytest.raises(ValueError, match=re.escape("annotation 9 bbox is [1, 2, 3]")):
        readers.read_coco(str(path))
    path.write_text(json.dumps({"images": []}))
    with pytest.raises(ValueError, match=r"missing key\(s\) annotations, categories"):
        readers.read_coco(str(path))


def test_box_table_normalises_and_clips():
    table = readers.box_table(
        [
            {"image": "a.jpg", "width": 200, "height": 100, "class": "cat",
             "ymin": 10, "xmin": 20, "ymax": 60, "xmax": 120},
            {"image": "a.jpg", "width": 200, "height": 100, "class": "dog",
             "ymin": -3, "xmin": 150, "ymax": 101, "xmax": 260, "difficult": True},
        ]
    )  # fmt: skip
    assert table[["y1", "x1", "y2", "x2"]].iloc[0].tolist() == [0.1, 0.1, 0.6, 0.6]
    assert table[["ymin", "xmax", "y1", "y2", "x2"]].iloc[1].tolist() == [0, 200, 0, 1, 1]
    assert table["difficult"].tolist() == [False, True]
    empty = readers.box_table([])
    assert list(empty.columns) == list(readers.BOX_COLUMNS) and len(empty) == 0


# ---------------------------------------------------------------------------- image folders


def test_image_folder_table(tmp_path):
    for rel in ("tulips/b.jpg", "roses/a.PNG", "roses/more/c.jpeg", "tulips/a.jpg"):
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_bytes(b"\xff\xd8 not decoded here")
    (tmp_path / "roses" / "notes.txt").write_text("ignored")
    (tmp_path / "roses" / ".hidden.jpg").write_bytes(b"")
    (tmp_path / ".cache").mkdir()
    (tmp_path / "README.md").write_text("ignored")
    table = readers.read_image_folder(str(tmp_path))
    assert list(table.columns) == ["path", "label", "label_index"]
    names = [p.split(str(tmp_path))[1].lstrip("/") for p in table["path"]]
    assert names == ["roses/a.PNG", "roses/more/c.jpeg", "tulips/a.jpg", "tulips/b.jpg"]
    assert table["label"].tolist() == ["roses", "roses", "tulips", "tulips"]
    assert table["label_index"].tolist() == [0, 0, 1, 1]


def test_image_folder_errors_name_the_folder(tmp_path):
    with pytest.raises(ValueError, match="not a folder"):
        readers.read_image_folder(str(tmp_path / "nowhere"))
    with pytest.raises(ValueError, match="no class sub-folders"):
        readers.read_image_folder(str(tmp_path))
    (tmp_path / "cats").mkdir()
    (tmp_path / "cats" / "1.jpg").write_bytes(b"x")
    (tmp_path / "dogs").mkdir()
    (tmp_path / "dogs" / "notes.txt").write_text("x")
    with pytest.raises(ValueError, match=r"class folder\(s\) without images .*dogs"):
        readers.read_image_folder(str(tmp_path))
