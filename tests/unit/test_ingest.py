"""Ingestion: every bad-input case ends as its reject reason, with file, line and field; ids are
hashed before anything is written; a failed ingest leaves no partial table."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from glom_plugin.config import GlomConfig
from glom_plugin.data.dedup import DigestSet
from glom_plugin.data.hashing import hash_ids_file, hash_user_id, hash_user_ids
from glom_plugin.data.ingest import IngestError, IngestReport
from glom_plugin.data.readers import READER_REGISTRY, reader_class
from glom_plugin.data.rejects import (
    BAD_ENCODING,
    CORRUPT_GZIP,
    DUPLICATE,
    EMPTY_ID,
    ID_NOT_SCALAR,
    LINE_TOO_LONG,
    MALFORMED_JSON,
    MALFORMED_ROW,
    MISSING_FIELD,
    RATING_NOT_NUMBER,
    RATING_OUT_OF_RANGE,
    TIMESTAMP_OUT_OF_RANGE,
    TRUNCATED_GZIP,
    UNTERMINATED_QUOTE,
)
from glom_plugin.data.schema import INTERACTIONS_SCHEMA, ITEMS_SCHEMA, USERS_SCHEMA
from glom_plugin.layout import RunLayout
from glom_plugin.stages.ingest import run_ingest

SALT = "unit-test-salt"


@pytest.fixture(autouse=True)
def _salt(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GLOM_ID_SALT", SALT)


def review(user: str, item: str, rating: object = 5.0, text: str = "great", ts: int = 1_700_000_000_000, **extra: object) -> dict:
    rec = {"rating": rating, "title": "t", "text": text, "images": [], "asin": item, "parent_asin": item,
           "user_id": user, "timestamp": ts, "helpful_vote": 1, "verified_purchase": True}
    rec.update(extra)
    return rec


def good_reviews(n_users: int = 6, n_items: int = 4) -> list[dict]:
    """Every user reviews every item: a dense block that survives any small k-core."""
    return [review(f"RAWUSER{u:03d}", f"ITEM{i}", rating=1 + (u + i) % 5, text=f"text {u} {i}", ts=1_700_000_000_000 + u * 10 + i)
            for u in range(n_users) for i in range(n_items)]


def write_lines(path: Path, lines: list[bytes]) -> Path:
    data = b"".join(line + b"\n" for line in lines)
    path.write_bytes(gzip.compress(data) if path.suffix == ".gz" else data)
    return path


def records_to_lines(records: list[dict]) -> list[bytes]:
    return [json.dumps(r).encode() for r in records]


def config(source: Path, fmt: str = "amazon2023", **overrides: object) -> GlomConfig:
    values = {"data.source_format": fmt, "data.source_path": str(source), "data.min_user_interactions": 1,
              "data.min_item_interactions": 1}
    values.update(overrides)
    return GlomConfig().with_overrides(**values)


def rejects_of(layout: RunLayout) -> list[dict]:
    return [json.loads(line) for line in layout.rejects.read_text().splitlines()]


# ------------------------------------------------------------------------------------ round trip


def test_amazon2023_round_trip(tmp_path: Path) -> None:
    raw = tmp_path / "raw"
    raw.mkdir()
    records = good_reviews(3, 2) + [review("RAWUSER000", "ITEM9", rating=2.0, text="")]
    write_lines(raw / "Books.jsonl.gz", records_to_lines(records))
    meta = [
        {"parent_asin": "ITEM0", "title": "Item zero", "main_category": "Books", "categories": ["Books", "Sci-Fi"],
         "description": ["line one", "line two"], "features": ["f1"], "store": "S", "price": "$12.50"},
        {"parent_asin": "ITEM1", "title": "Item one", "main_category": "Books", "categories": [], "description": [],
         "features": [], "store": None, "price": None},
    ]
    write_lines(raw / "meta_Books.jsonl.gz", records_to_lines(meta))
    layout = RunLayout.at(tmp_path / "run")
    report = run_ingest(config(raw), layout, echo=lambda _: None)

    inter = pq.read_table(layout.interactions)
    assert inter.schema.equals(INTERACTIONS_SCHEMA)
    assert pq.read_table(layout.items).schema.equals(ITEMS_SCHEMA)
    assert pq.read_table(layout.users).schema.equals(USERS_SCHEMA)
    df = inter.to_pandas()
    assert len(df) == 7 and report.n_interactions == 7 and report.rows_read == 7
    row = df[(df.user_id == hash_user_id("RAWUSER001", SALT)) & (df.item_id == "ITEM1")].iloc[0]
    assert row.rating == 3.0 and row.rating_norm == pytest.approx(0.5)  # (3 - 1) / (5 - 1)
    assert row.text == "text 1 1" and row.timestamp_ms == 1_700_000_000_011 and row.verified_purchase and row.helpful_votes == 1
    assert df[df.item_id == "ITEM9"].text.isna().all()  # empty text is missing text

    items = pq.read_table(layout.items).to_pandas().set_index("item_id")
    assert set(items.index) == {"ITEM0", "ITEM1", "ITEM9"}
    assert items.loc["ITEM0", "description"] == "line one\nline two" and items.loc["ITEM0", "price"] == 12.5
    assert list(items.loc["ITEM0", "categories"]) == ["Books", "Sci-Fi"]
    assert pd.isna(items.loc["ITEM9", "title"])  # no metadata: still a row, with nulls
    assert report.n_items_with_metadata == 2

    users = pq.read_table(layout.users).to_pandas().set_index("user_id")
    u0 = users.loc[hash_user_id("RAWUSER000", SALT)]
    assert u0.n_interactions == 3 and u0.n_with_text == 2
    saved = json.loads(layout.ingest_report.read_text())
    assert saved["n_users"] == 3 and saved["rating_min"] == 1.0 and saved["share_with_text"] == pytest.approx(6 / 7, abs=1e-6)


# ------------------------------------------------------------------------------------- bad input

BAD_CASES = [
    ("malformed json", b'{"user_id": "RAWBAD", "parent_asin": "ITEM0", "rating": 5', None, MALFORMED_JSON),
    ("not an object", b'["RAWBAD", "ITEM0", 5]', None, MALFORMED_JSON),
    ("missing rating", json.dumps({k: v for k, v in review("RAWBAD", "ITEM0").items() if k != "rating"}).encode(), "rating", MISSING_FIELD),
    ("missing user", json.dumps({k: v for k, v in review("RAWBAD", "ITEM0").items() if k != "user_id"}).encode(), "user_id", MISSING_FIELD),
    ("missing item", json.dumps({k: v for k, v in review("RAWBAD", "X").items() if k not in ("asin", "parent_asin")}).encode(), "item_id", MISSING_FIELD),
    ("rating out of range", json.dumps(review("RAWBAD", "ITEM0", rating=7)).encode(), "rating", RATING_OUT_OF_RANGE),
    ("rating zero", json.dumps(review("RAWBAD", "ITEM0", rating=0)).encode(), "rating", RATING_OUT_OF_RANGE),
    ("rating text", json.dumps(review("RAWBAD", "ITEM0", rating="five")).encode(), "rating", RATING_NOT_NUMBER),
    ("rating bool", json.dumps(review("RAWBAD", "ITEM0", rating=True)).encode(), "rating", RATING_NOT_NUMBER),
    ("bad encoding", b'{"user_id": "RAWBAD", "parent_asin": "ITEM0", "rating": 5, "text": "caf\xe9 \xff"}', None, BAD_ENCODING),
    ("empty user id", json.dumps(review("   ", "ITEM0")).encode(), "user_id", EMPTY_ID),
    ("empty item id", json.dumps(review("RAWBAD", "")).encode(), "item_id", EMPTY_ID),
    ("duplicate", json.dumps(review("RAWUSER000", "ITEM0", rating=1, text="text 0 0", ts=1_700_000_000_000)).encode(), None, DUPLICATE),
]


@pytest.mark.parametrize(("label", "bad_line", "field", "reason"), BAD_CASES, ids=[c[0] for c in BAD_CASES])
def test_each_bad_row_becomes_its_reject(tmp_path: Path, label: str, bad_line: bytes, field: str | None, reason: str) -> None:
    lines = records_to_lines(good_reviews())
    lines.insert(5, bad_line)  # line 6 of the file
    source = write_lines(tmp_path / "reviews.jsonl", lines)
    layout = RunLayout.at(tmp_path / "run")
    report = run_ingest(config(source, **{"data.max_reject_ratio": 0.5}), layout, echo=lambda _: None)

    rejects = rejects_of(layout)
    assert len(rejects) == 1, rejects
    assert rejects[0] == {**rejects[0], "file": str(source), "line": 6, "field": field, "reason": reason}
    assert report.rejects_by_reason == {reason: 1}
    assert report.n_interactions == 24 and report.rows_read == 25
    if reason == DUPLICATE:
        assert report.duplicates == 1 and report.rows_rejected == 0
    else:
        assert report.rows_rejected == 1
    # Whatever the bad row held, no raw id reached any output.
    assert "RAWBAD" not in _all_output_text(layout)
    assert "RAWUSER" not in _all_output_text(layout)


def test_truncated_gzip_is_refused_unless_kept(tmp_path: Path) -> None:
    lines = records_to_lines(good_reviews(40, 5))
    full = gzip.compress(b"".join(line + b"\n" for line in lines))
    source = tmp_path / "reviews.jsonl.gz"
    source.write_bytes(full[: len(full) * 2 // 3])
    layout = RunLayout.at(tmp_path / "run")
    # What follows the cut was never on disk: the loss is unknown, so the default refuses the file.
    with pytest.raises(IngestError, match=rf"{source}:\d+: truncated gzip .*data.truncated_gzip=keep"):
        run_ingest(config(source), layout, echo=lambda _: None)
    assert not layout.interactions.exists()

    report = run_ingest(config(source, **{"data.truncated_gzip": "keep"}), layout, echo=lambda _: None)
    [reject] = rejects_of(layout)
    kept = report.n_interactions
    assert 0 < kept < len(lines)
    assert reject["reason"] == TRUNCATED_GZIP and reject["line"] == kept + 1
    assert f"kept the {kept} complete lines before it" in reject["detail"]
    # The kept rows are exactly the file's first complete lines.
    got = pq.read_table(layout.interactions).to_pandas()
    expected = {(hash_user_id(r["user_id"], SALT), r["parent_asin"]) for r in good_reviews(40, 5)[:kept]}
    assert set(zip(got.user_id, got.item_id, strict=True)) == expected


def test_corrupt_gzip_keeps_the_readable_half_and_counts_the_lost_rows(tmp_path: Path) -> None:
    """Found 1: the damage used to cost every line of the 1 MB block it sat in ("kept the 0 lines") and
    counted as one reject; now the lines before it are kept and the unread bytes weigh as rows."""
    import random

    rng = random.Random(3)
    # incompressible text, so compressed bytes track rows evenly
    records = [review(f"RAWUSER{u:03d}", f"ITEM{i}", text="".join(rng.choice("abcdefghij") for _ in range(300)))
               for u in range(50) for i in range(10)]
    full = bytearray(gzip.compress(b"".join(line + b"\n" for line in records_to_lines(records))))
    middle = len(full) // 2
    full[middle : middle + 64] = b"\xff" * 64  # an invalid deflate block in the middle of the stream
    source = tmp_path / "reviews.jsonl.gz"
    source.write_bytes(bytes(full))
    layout = RunLayout.at(tmp_path / "run")
    with pytest.raises(IngestError, match="corrupt gzip"):
        run_ingest(config(source), layout, echo=lambda _: None)
    report = run_ingest(config(source, **{"data.max_reject_ratio": 0.9}), layout, echo=lambda _: None)
    [corrupt] = [r for r in rejects_of(layout) if r["reason"] == CORRUPT_GZIP]
    assert report.rows_accepted > 0.3 * len(records)  # the first half was readable and is kept
    assert corrupt["rows"] > 0.25 * len(records)  # ... and the unread half counts as lost rows
    assert report.rows_read == report.rows_accepted + report.rows_rejected + report.duplicates
    assert abs(report.rows_read - len(records)) < 0.25 * len(records)


def test_reject_ratio_failure_names_file_line_field_and_writes_nothing_else(tmp_path: Path) -> None:
    lines = records_to_lines(good_reviews(2, 2))
    lines += [json.dumps(review("RAWBAD", "ITEM0", rating=9)).encode()] * 3
    source = write_lines(tmp_path / "reviews.jsonl", lines)
    layout = RunLayout.at(tmp_path / "run")
    # A previous successful run's tables must not survive a failed rerun as if they were its output.
    ok = write_lines(tmp_path / "ok.jsonl", records_to_lines(good_reviews(2, 2)))
    run_ingest(config(ok), layout, echo=lambda _: None)
    assert layout.interactions.exists()

    with pytest.raises(IngestError) as err:
        run_ingest(config(source), layout, echo=lambda _: None)
    message = str(err.value)
    assert str(source) in message and "3 of 7 rows" in message and "max_reject_ratio" in message
    assert f"{source}:5 field 'rating': rating out of range" in message
    assert str(layout.rejects) in message
    for path in (layout.interactions, layout.items, layout.users, layout.ingest_report):
        assert not path.exists()
    assert len(rejects_of(layout)) == 3
    assert _leftovers(layout) == []


def test_crash_mid_run_leaves_no_partial_output(tmp_path: Path) -> None:
    source = tmp_path / "ratings.csv"
    source.write_text("u,i,r\nA,B,5\n")
    cfg = config(source, "generic", **{"data.column_map": {"user_id": "u", "item_id": "i", "rating": "stars"},
                                       "data.rating_min": 1, "data.rating_max": 5})
    layout = RunLayout.at(tmp_path / "run")
    with pytest.raises(ValueError, match=r"ratings.csv:1: header lacks column\(s\) \['stars'\]"):
        run_ingest(cfg, layout, echo=lambda _: None)
    assert sorted(p.name for p in layout.ingest_dir.iterdir()) == []


def test_raw_ids_never_written(tmp_path: Path) -> None:
    records = good_reviews(5, 3)
    lines = records_to_lines(records) + [
        json.dumps(review("RAWUSER999", "ITEM0", rating=11)).encode(),
        json.dumps(review("x", "ITEM0", rating="RAWUSER998")).encode(),  # a raw id in the wrong field
    ]
    source = write_lines(tmp_path / "reviews.jsonl", lines)
    layout = RunLayout.at(tmp_path / "run")
    run_ingest(config(source, **{"data.max_reject_ratio": 0.5}), layout, echo=lambda _: None)
    text = _all_output_text(layout)
    assert "RAWUSER" not in text
    assert hash_user_id("RAWUSER001", SALT) in text  # the hashed form is what is there


def _all_output_text(layout: RunLayout) -> str:
    """Raw bytes of every file under the ingest dir plus every Parquet value rendered as text
    (compression could hide a string from a byte grep)."""
    parts = []
    for path in sorted(layout.root.rglob("*")):
        if path.is_file():
            parts.append(path.read_bytes().decode("utf-8", errors="replace"))
            if path.suffix == ".parquet":
                parts.append(pq.read_table(path).to_pandas().to_csv())
    return "\n".join(parts)


def _leftovers(layout: RunLayout) -> list[str]:
    return [p.name for p in layout.ingest_dir.iterdir() if p.name.startswith(".")]


# -------------------------------------------------------------------------------------- filtering


def test_kcore_filter_is_iterated_and_counted(tmp_path: Path) -> None:
    # A dense 4x4 block survives min 2/2. User LONER has two reviews: one on ITEM0 and one on
    # ITEMX (ITEMX has only LONER): dropping ITEMX leaves LONER with one review, so LONER goes in
    # round two — a single pass would keep them.
    records = good_reviews(4, 4) + [review("LONER", "ITEM0"), review("LONER", "ITEMX")]
    source = write_lines(tmp_path / "reviews.jsonl", records_to_lines(records))
    layout = RunLayout.at(tmp_path / "run")
    report = run_ingest(config(source, **{"data.min_user_interactions": 2, "data.min_item_interactions": 2}),
                        layout, echo=lambda _: None)
    assert report.kcore_rounds == 2
    assert (report.filtered_users, report.filtered_items, report.filtered_interactions) == (1, 1, 2)
    assert report.n_interactions == 16 and report.n_users == 4 and report.n_items == 4
    assert hash_user_id("LONER", SALT) not in set(pq.read_table(layout.users)["user_id"].to_pylist())


def test_everything_filtered_is_an_error(tmp_path: Path) -> None:
    source = write_lines(tmp_path / "reviews.jsonl", records_to_lines([review("A", "I1"), review("B", "I2")]))
    with pytest.raises(IngestError, match="no interaction survives"):
        run_ingest(config(source, **{"data.min_user_interactions": 2}), RunLayout.at(tmp_path / "run"), echo=lambda _: None)


# ------------------------------------------------------------------------------- other layouts


def test_amazon2014_reviews_and_python_literal_meta(tmp_path: Path) -> None:
    reviews = [
        {"reviewerID": "A1RAW", "asin": "X1", "overall": 4.0, "reviewText": "nice", "summary": "s",
         "unixReviewTime": 1_158_019_200, "helpful": [3, 5]},
        {"reviewerID": "A2RAW", "asin": "X1", "overall": 2.0, "reviewText": "", "summary": "s", "unixReviewTime": 1, "helpful": [0, 0]},
    ]
    write_lines(tmp_path / "reviews_Music_5.json.gz", records_to_lines(reviews))
    meta = [
        b"{'asin': 'X1', 'title': \"Don't Stop\", 'price': 9.49, 'categories': [['CDs & Vinyl', 'Pop'], ['Digital Music', 'Pop']]}",
        b"__import__('os').system('echo pwned')",  # literal_eval refuses code: a reject, never executed
    ]
    write_lines(tmp_path / "meta_Music.json.gz", meta)
    layout = RunLayout.at(tmp_path / "run")
    report = run_ingest(config(tmp_path, "amazon2014", **{"data.max_reject_ratio": 0.5}), layout, echo=lambda _: None)
    df = pq.read_table(layout.interactions).to_pandas().sort_values("rating")
    assert list(df.rating_norm) == [0.25, 0.75]
    assert list(df.timestamp_ms) == [1000, 1_158_019_200_000] and list(df.helpful_votes) == [0, 3]
    item = pq.read_table(layout.items).to_pandas().iloc[0]
    assert item.title == "Don't Stop" and item.main_category == "CDs & Vinyl"
    assert list(item.categories) == ["CDs & Vinyl", "Pop", "Digital Music"]
    [reject] = rejects_of(layout)
    assert reject["reason"] == MALFORMED_JSON and reject["line"] == 2 and reject["file"].endswith("meta_Music.json.gz")
    assert report.meta_rejected == 1 and report.rows_rejected == 0


def test_mal_layout(tmp_path: Path) -> None:
    (tmp_path / "anime_ratings.dat").write_text("User_ID\tAnime_ID\tFeedback\n1\t10\t10\n1\t11\t1\n2\t10\t5\n2\t10\n3\t11\t0\n")
    (tmp_path / "anime_info.dat").write_text(
        "anime_ids\tname\tgenre\ttype\tepisodes\trating\tmembers\n10\tSome Show\tAction, Drama\tTV\t12\t8.1\t100\n"
    )
    layout = RunLayout.at(tmp_path / "run")
    report = run_ingest(config(tmp_path, "mal", **{"data.max_reject_ratio": 0.5}), layout, echo=lambda _: None)
    df = pq.read_table(layout.interactions).to_pandas()
    assert sorted(df.rating_norm) == [0.0, pytest.approx(4 / 9), 1.0]  # (r - 1) / 9
    assert df.text.isna().all() and df.timestamp_ms.isna().all()
    reasons = {(r["line"], r["reason"], r["field"]) for r in rejects_of(layout)}
    assert reasons == {(5, MALFORMED_ROW, None), (6, RATING_OUT_OF_RANGE, "rating")}
    items = pq.read_table(layout.items).to_pandas().set_index("item_id")
    assert list(items.loc["10", "categories"]) == ["Action", "Drama"] and items.loc["10", "main_category"] == "TV"
    assert pd.isna(items.loc["11", "title"])
    assert report.rating_min == 1 and report.rating_max == 10


def test_movielens_layout(tmp_path: Path) -> None:
    (tmp_path / "ratings.csv").write_text("userId,movieId,rating,timestamp\n1,1,4.0,964982703\n1,2,0.5,964981247\n2,1,abc,1\n")
    (tmp_path / "movies.csv").write_text('movieId,title,genres\n1,"Toy Story, The (1995)",Adventure|Animation\n2,X,(no genres listed)\n')
    layout = RunLayout.at(tmp_path / "run")
    run_ingest(config(tmp_path, "movielens", **{"data.max_reject_ratio": 0.5}), layout, echo=lambda _: None)
    df = pq.read_table(layout.interactions).to_pandas().sort_values("item_id")
    assert list(df.rating_norm) == [pytest.approx(3.5 / 4.5), 0.0]
    assert df.timestamp_ms.iloc[0] == 964_982_703_000
    items = pq.read_table(layout.items).to_pandas().set_index("item_id")
    assert items.loc["1", "title"] == "Toy Story, The (1995)" and list(items.loc["1", "categories"]) == ["Adventure", "Animation"]
    assert items.loc["2", "categories"] is None
    [reject] = rejects_of(layout)
    assert (reject["line"], reject["field"], reject["reason"]) == (4, "rating", RATING_NOT_NUMBER)


def test_generic_parquet_with_column_map(tmp_path: Path) -> None:
    source = tmp_path / "events.parquet"
    pq.write_table(pa.table({"cust": ["c1", "c2", "c2", None], "sku": ["s1", "s1", "s2", "s1"], "stars": [10, 0, 5, 3],
                             "ts": [1, 2, 3, 4], "body": ["good", None, "", "x"]}), source)
    meta = tmp_path / "items.csv"
    meta.write_text("sku,name,price,tags\ns1,Thing,$3.50,a|b\n")
    mapping = {"user_id": "cust", "item_id": "sku", "rating": "stars", "timestamp_s": "ts", "text": "body",
               "title": "name", "price": "price", "categories": "tags"}
    cfg = config(source, "generic", **{"data.column_map": mapping, "data.rating_min": 0, "data.rating_max": 10,
                                       "data.meta_path": str(meta), "data.max_reject_ratio": 0.5})
    layout = RunLayout.at(tmp_path / "run")
    run_ingest(cfg, layout, echo=lambda _: None)
    df = pq.read_table(layout.interactions).to_pandas().sort_values("rating")
    assert list(df.rating_norm) == [0.0, 0.5, 1.0] and list(df.timestamp_ms) == [2000, 3000, 1000]
    assert df.text.isna().sum() == 2
    [reject] = rejects_of(layout)
    assert (reject["line"], reject["field"], reject["reason"]) == (4, "user_id", MISSING_FIELD)
    item = pq.read_table(layout.items).to_pandas().set_index("item_id").loc["s1"]
    assert item.title == "Thing" and item.price == 3.5 and list(item.categories) == ["a", "b"]


def test_generic_requires_a_declared_scale(tmp_path: Path) -> None:
    source = tmp_path / "r.csv"
    source.write_text("user_id,item_id,rating\na,b,1\n")
    with pytest.raises(ValueError, match="rating_min and data.rating_max"):
        run_ingest(config(source, "generic"), RunLayout.at(tmp_path / "run"), echo=lambda _: None)


def test_registry_names_and_unknown_format() -> None:
    assert set(READER_REGISTRY) == {"amazon2023", "amazon2014", "mal", "movielens", "generic"}
    for name in READER_REGISTRY:
        assert reader_class(name).name == name
    with pytest.raises(ValueError, match="unknown data.source_format 'yelp'.*amazon2014"):
        reader_class("yelp")


# ------------------------------------------------------------------------------------------ hashing


def test_hash_user_id_is_salted_stable_and_short() -> None:
    h = hash_user_id("AGH123", SALT)
    assert h == hash_user_id("AGH123", SALT) and len(h) == 20 and all(c in "0123456789abcdef" for c in h)
    assert h != hash_user_id("AGH123", "other-salt") and h != hash_user_id("AGH124", SALT)
    raw = ["b", "a", "b", "c"]
    assert list(hash_user_ids(raw, SALT)) == [hash_user_id(r, SALT) for r in raw]
    with pytest.raises(ValueError, match="salt is empty"):
        hash_user_id("x", "")


def test_hash_ids_file_matches_ingested_ids(tmp_path: Path) -> None:
    source = write_lines(tmp_path / "reviews.jsonl", records_to_lines(good_reviews(3, 2)))
    layout = RunLayout.at(tmp_path / "run")
    run_ingest(config(source), layout, echo=lambda _: None)
    seeds = tmp_path / "seeds.txt"
    seeds.write_text("RAWUSER000\n\n  RAWUSER002 \n")
    assert hash_ids_file(seeds, tmp_path / "seeds.hashed", SALT) == 2
    hashed = (tmp_path / "seeds.hashed").read_text().split()
    assert set(hashed) <= set(pq.read_table(layout.users)["user_id"].to_pylist()) and len(hashed) == 2


def test_digest_set_keeps_first_occurrence_across_calls() -> None:
    import numpy as np

    seen = DigestSet()
    assert list(seen.add_new(np.array([5, 3, 5, 9], dtype=np.uint64))) == [True, True, False, True]
    assert list(seen.add_new(np.array([9, 1, 1], dtype=np.uint64))) == [False, True, False]
    for start in range(0, 1001, 7):  # 143 runs of 7, merged as they come
        seen.add_new(np.arange(start, start + 7, dtype=np.uint64) + 100)
    assert len(seen) == 4 + 1001 and not seen.add_new(np.array([100, 1100], dtype=np.uint64)).any()  # 100..1100


def _generic_csv(tmp_path: Path, body: str, **overrides: object) -> tuple[IngestReport, RunLayout]:
    source = tmp_path / "ratings.csv"
    source.write_text("user,item,stars,text\n" + body)
    values = {"data.column_map": {"user_id": "user", "item_id": "item", "rating": "stars", "text": "text"},
              "data.rating_min": 1, "data.rating_max": 5, "data.max_reject_ratio": 0.5, **overrides}
    layout = RunLayout.at(tmp_path / "run")
    return run_ingest(config(source, "generic", **values), layout, echo=lambda _: None), layout


def _rows(n: int, start: int = 0) -> str:
    return "".join(f"RAWUSER{u % 7},ITEM{u % 5},{1 + u % 5},fine\n" for u in range(start, start + n))


def test_csv_quoted_field_spanning_lines_is_one_row(tmp_path: Path) -> None:
    """Found 2: a multi-line quoted text field used to kill ingest with a bare zip() error."""
    body = _rows(10) + 'RAWUSER9,ITEM9,5,"first line\nsecond, line\n""third"""\n' + _rows(10, 10)
    report, layout = _generic_csv(tmp_path, body)
    assert report.rows_read == 21 and report.rows_rejected == 0
    df = pq.read_table(layout.interactions).to_pandas()
    assert 'first line\nsecond, line\n"third"' in set(df.text)


def test_csv_stray_quote_rejects_its_line_and_keeps_the_rest(tmp_path: Path) -> None:
    body = _rows(500) + '"RAWUSER1,ITEM1,3,fine\n' + _rows(499, 501)
    report, layout = _generic_csv(tmp_path, body)
    [reject] = [r for r in rejects_of(layout) if r["reason"] != DUPLICATE]
    assert reject["reason"] == UNTERMINATED_QUOTE and reject["line"] == 502  # header is line 1
    assert report.rows_read == 1000 and report.rows_rejected == 1
    assert report.rows_accepted + report.duplicates == 999


def test_csv_five_megabyte_field_is_read_and_an_overlong_one_rejected(tmp_path: Path) -> None:
    big = "x" * 5_000_000
    report, layout = _generic_csv(tmp_path, _rows(10) + f"RAWUSER3,ITEM3,4,{big}\n" + _rows(10, 10))
    assert report.rows_rejected == 0 and report.rows_read == 21
    assert big in set(pq.read_table(layout.interactions).to_pandas().text)
    report, layout = _generic_csv(tmp_path, _rows(10) + f"RAWUSER3,ITEM3,4,{big}\n" + _rows(10, 10),
                                  **{"data.max_line_bytes": 1_000_000})
    [reject] = [r for r in rejects_of(layout) if r["reason"] != DUPLICATE]
    assert reject["reason"] == LINE_TOO_LONG and reject["line"] == 12 and report.rows_read == 21


@pytest.mark.parametrize("value", [[1, 2], {"id": 1}, True, 1.5])
def test_json_ids_that_are_not_strings_are_rejected(tmp_path: Path, value: object) -> None:
    """Found 7: a list, object, boolean or fraction used to become a user id like "[1, 2]"."""
    lines = records_to_lines(good_reviews(4, 3)) + [json.dumps(review(value, "ITEM0")).encode()]
    layout = RunLayout.at(tmp_path / "run")
    report = run_ingest(config(write_lines(tmp_path / "r.jsonl", lines), **{"data.max_reject_ratio": 0.5}),
                        layout, echo=lambda _: None)
    [reject] = rejects_of(layout)
    assert (reject["line"], reject["field"], reject["reason"]) == (13, "user_id", ID_NOT_SCALAR)
    assert report.rows_read == 13 and report.n_interactions == 12


def test_integer_ids_and_timestamps_beyond_2262(tmp_path: Path) -> None:
    lines = records_to_lines(good_reviews(4, 3))
    lines.append(json.dumps(review(12345, "ITEM0")).encode())  # an integer id is an id
    lines.append(json.dumps(review("RAWUSER999", "ITEM1", ts=17_000_000_004_000_000_000)).encode())
    layout = RunLayout.at(tmp_path / "run")
    report = run_ingest(config(write_lines(tmp_path / "r.jsonl", lines), **{"data.max_reject_ratio": 0.5}),
                        layout, echo=lambda _: None)
    [reject] = rejects_of(layout)
    assert (reject["line"], reject["field"], reject["reason"]) == (14, "timestamp_ms", TIMESTAMP_OUT_OF_RANGE)
    assert hash_user_id("12345", SALT) in set(pq.read_table(layout.users)["user_id"].to_pylist())
    assert report.rows_read == 14


def test_hash_ids_reads_the_layouts_expand_reads(tmp_path: Path) -> None:
    """Found 6: a CSV's header and whole "id,score" lines were hashed; a BOM corrupted the first id."""
    csv_in = tmp_path / "raw.csv"
    csv_in.write_bytes(b"\xef\xbb\xbfuser_id,score\r\nRAWUSER001,0.9\r\nRAWUSER002,0.4\r\n")
    assert hash_ids_file(csv_in, tmp_path / "seeds.csv", SALT) == 2
    lines = (tmp_path / "seeds.csv").read_text().splitlines()
    assert lines == ["user_id,score", f"{hash_user_id('RAWUSER001', SALT)},0.9", f"{hash_user_id('RAWUSER002', SALT)},0.4"]
    from glom_plugin.expand.expander import read_seed_file

    assert read_seed_file(tmp_path / "seeds.csv") == [hash_user_id("RAWUSER001", SALT), hash_user_id("RAWUSER002", SALT)]
    plain = tmp_path / "raw.txt"
    plain.write_bytes(b"\xef\xbb\xbfRAWUSER001\n")
    hash_ids_file(plain, tmp_path / "seeds.txt", SALT)
    assert (tmp_path / "seeds.txt").read_text() == hash_user_id("RAWUSER001", SALT) + "\n"


def test_unset_salt_warns_loudly_strict_refuses_blank_is_an_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Found 4: with $GLOM_ID_SALT unset the public development salt was used without a word."""
    from glom_plugin.data.hashing import DEV_SALT, SaltError

    monkeypatch.delenv("GLOM_ID_SALT")
    source = write_lines(tmp_path / "r.jsonl", records_to_lines(good_reviews(3, 3)))
    run_ingest(config(source), RunLayout.at(tmp_path / "run"), echo=lambda _: None)
    assert "PUBLIC development salt" in capsys.readouterr().err
    assert GlomConfig().id_salt() == DEV_SALT and "WARNING" in capsys.readouterr().err
    strict = config(source, **{"data.require_salt": True})
    with pytest.raises(SaltError, match="GLOM_ID_SALT is not set"):
        run_ingest(strict, RunLayout.at(tmp_path / "strict"), echo=lambda _: None)
    monkeypatch.setenv("GLOM_ID_SALT", "   ")
    with pytest.raises(SaltError, match="blank"):
        GlomConfig().id_salt()
