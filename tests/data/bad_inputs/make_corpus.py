"""Write the bad-input corpus: small files a new (or hostile) user could bring, for every reader.

    python tests/data/bad_inputs/make_corpus.py      # rewrites the files and cases.json beside this script

Each case is a folder (a source in its publisher's layout) and an entry in ``cases.json``: the reader,
``--set`` overrides, and what must happen, counted here independently of the code under test:

- ``"rows"``: the data rows the file holds (records, not physical lines: a quoted CSV field may span
  lines; blank lines are not rows; a cut-off last line is a row), the reject reasons expected, and
  ``"duplicates"``. Ingestion must report rows read = this, = kept + rejected + duplicates.
- ``"error"``: ingestion must stop with one line that matches the regex (file, line, field named).

Every file is deterministic and a few KB at most.
"""

from __future__ import annotations

import gzip
import json
import random
import shutil
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

HERE = Path(__file__).resolve().parent
CASES: list[dict[str, Any]] = []


def case(name: str, reader: str, expect: dict[str, Any], source: str = "", **overrides: Any) -> Path:
    folder = HERE / name
    folder.mkdir(parents=True, exist_ok=True)
    CASES.append({"name": name, "reader": reader, "source": source, "overrides": overrides, **expect})
    return folder


def review(u: int, i: int, rating: Any = None, **extra: Any) -> dict[str, Any]:
    rec = {"user_id": f"RAWID{u:04d}", "parent_asin": f"B{i:04d}", "rating": 1 + (u * 7 + i) % 5 if rating is None else rating,
           "title": "ok", "text": f"review {u} {i}", "timestamp": 1_600_000_000_000 + u * 1000 + i,
           "helpful_vote": 0, "verified_purchase": True}
    rec.update(extra)
    return rec


def dense(n_users: int = 20, n_items: int = 10) -> list[dict[str, Any]]:
    return [review(u, i) for u in range(n_users) for i in range(n_items) if (u + i) % 3]


def jsonl(records: list[Any]) -> bytes:
    return b"".join(json.dumps(r).encode() + b"\n" for r in records)


def write(folder: Path, name: str, data: bytes) -> None:
    (folder / name).write_bytes(data)


def amazon2023() -> None:
    good = dense()
    n = len(good)
    bad = [b'{"user_id": "RAWID9000", "parent_asin": "B0001", "rating": 5', b"not json at all", b'["a", "list"]']
    f = case("a23_malformed_json", "amazon2023", {"rows": n + 3, "reasons": {"malformed json": 3}},
             **{"data.max_reject_ratio": 0.5})
    write(f, "reviews.jsonl", jsonl(good[:50]) + b"\n".join(bad) + b"\n" + jsonl(good[50:]))

    missing = [{k: v for k, v in review(900, 1).items() if k != "user_id"},
               {k: v for k, v in review(901, 1).items() if k != "rating"},
               {k: v for k, v in review(902, 1).items() if k not in ("parent_asin", "asin")}]
    f = case("a23_missing_fields", "amazon2023", {"rows": n + 3, "reasons": {"missing field": 3}},
             **{"data.max_reject_ratio": 0.5})
    write(f, "reviews.jsonl", jsonl(good + missing))

    ratings = [review(910, 1, rating=7), review(911, 1, rating=0), review(912, 1, rating="five"),
               review(913, 1, rating=True), review(914, 1, rating=[5])]
    nan_line = json.dumps(review(915, 1)).replace('"rating": ', '"rating": NaN, "x": ').encode()
    inf_line = json.dumps(review(916, 1)).replace('"rating": ', '"rating": Infinity, "x": ').encode()
    f = case("a23_bad_ratings", "amazon2023",
             {"rows": n + 7, "reasons": {"rating out of range": 3, "rating not a number": 3, "missing field": 1}},
             **{"data.max_reject_ratio": 0.5})
    write(f, "reviews.jsonl", jsonl(good + ratings) + nan_line + b"\n" + inf_line + b"\n")

    f = case("a23_duplicates", "amazon2023", {"rows": n + 5, "reasons": {}, "duplicates": 5})
    write(f, "reviews.jsonl", jsonl(good + good[:5]))

    ids = [review(0, 1, user_id=[1, 2]), review(0, 2, user_id={"id": 3}), review(0, 3, user_id=True),
           review(0, 4, user_id=2.5), review(0, 5, parent_asin=["B1"])]
    f = case("a23_ids_not_strings", "amazon2023", {"rows": n + 5, "reasons": {"id not a string": 5}},
             **{"data.max_reject_ratio": 0.5})
    write(f, "reviews.jsonl", jsonl(good + ids))

    f = case("a23_timestamp_overflow", "amazon2023", {"rows": n + 1, "reasons": {"timestamp out of range": 1}})
    write(f, "reviews.jsonl", jsonl(good + [review(920, 1, timestamp=17_000_000_004_000_000_000)]))

    f = case("a23_empty_file", "amazon2023", {"error": r"reviews\.jsonl found no valid interaction rows"})
    write(f, "reviews.jsonl", b"")

    f = case("a23_bom_crlf_blank_lines", "amazon2023", {"rows": n, "reasons": {}})
    first, second = jsonl(good[: n // 2]).replace(b"\n", b"\r\n"), jsonl(good[n // 2 :]).replace(b"\n", b"\r\n")
    write(f, "reviews.jsonl", b"\xef\xbb\xbf" + first + b"\r\n\r\n" + second)

    latin = json.dumps(review(930, 1, text="caf\u00e9")).encode().replace(b"caf\\u00e9", "café".encode("latin-1"))
    f = case("a23_latin1_line", "amazon2023", {"rows": n + 1, "reasons": {"bad encoding": 1}})
    write(f, "reviews.jsonl", jsonl(good) + latin + b"\n")

    huge = json.dumps(review(940, 1, text="x" * 6000)).encode()
    f = case("a23_huge_line", "amazon2023", {"rows": n + 1, "reasons": {"line too long": 1}},
             **{"data.max_line_bytes": 4096})
    write(f, "reviews.jsonl", jsonl(good[:10]) + huge + b"\n" + jsonl(good[10:]))

    f = case("a23_pretty_json_array", "amazon2023", {"error": r"max_reject_ratio.*reviews\.json:1: malformed json"})
    write(f, "reviews.json", json.dumps(good[:20], indent=2).encode())

    whole = gzip.compress(jsonl(good), mtime=0)
    cut = whole[: len(whole) // 2]
    readable = _readable_lines(cut)
    f = case("a23_truncated_gzip_refused", "amazon2023",
             {"error": rf"reviews\.jsonl\.gz:{readable + 1}: truncated gzip .*data\.truncated_gzip=keep"})
    write(f, "reviews.jsonl.gz", cut)
    f = case("a23_truncated_gzip_kept", "amazon2023", {"rows": readable + 1, "reasons": {"truncated gzip": 1}},
             **{"data.truncated_gzip": "keep"})
    write(f, "reviews.jsonl.gz", cut)

    rng = random.Random(11)
    noisy = [review(u, i, text="".join(rng.choice("abcdefgh ") for _ in range(200))) for u in range(40) for i in range(6)]
    damaged = bytearray(gzip.compress(jsonl(noisy), mtime=0))
    middle = len(damaged) // 2
    damaged[middle : middle + 32] = b"\xff" * 32
    f = case("a23_corrupt_gzip", "amazon2023",
             {"error": r"max_reject_ratio.*reviews\.jsonl\.gz:\d+: corrupt gzip .*counted \d+ row\(s\) as lost",
              "true_rows": len(noisy), "retry": {"data.max_reject_ratio": 1.0}})
    write(f, "reviews.jsonl.gz", bytes(damaged))


def _readable_lines(cut: bytes) -> int:
    import zlib

    out = zlib.decompressobj(wbits=31).decompress(cut)
    return out.count(b"\n")


def amazon2014() -> None:
    recs = [{"reviewerID": f"A{u:05d}RAW", "asin": f"B{i:04d}", "overall": float(1 + (u + i) % 5), "reviewText": "t",
             "summary": "s", "unixReviewTime": 1_400_000_000 + u, "helpful": [0, 0]}
            for u in range(20) for i in range(8) if (u * i) % 4 != 1]
    f = case("a14_malformed_and_meta", "amazon2014", {"rows": len(recs) + 2, "reasons": {"malformed json": 2},
                                                       "meta_rejects": 1}, **{"data.max_reject_ratio": 0.5})
    write(f, "reviews_Music_5.json", jsonl(recs[:30]) + b"{'reviewerID': 'python literal'}\n{]\n" + jsonl(recs[30:]))
    meta = "".join(repr({"asin": f"B{i:04d}", "title": f"album {i}", "categories": [["Music", "Pop"]]}) + "\n"
                   for i in range(8))
    write(f, "meta_Music.json", (meta + "{'asin': 'B9999', 'title': \n").encode())


def mal() -> None:
    header = "User_ID\tAnime_ID\tFeedback\n"
    rows = [f"{u}\t{i}\t{1 + (u * 3 + i) % 10}\n" for u in range(25) for i in range(8) if (u + i) % 3]
    bad = ["7\t3\n", "7\t3\t5\textra\n", "8\t4\t0\n", "8\t5\t11\n", "9\t6\tten\n", "\t6\t4\n"]
    f = case("mal_bad_rows", "mal", {"rows": len(rows) + len(bad), "reasons": {
        "malformed row": 2, "rating out of range": 2, "rating not a number": 1, "empty id": 1}},
        **{"data.max_reject_ratio": 0.5})
    write(f, "anime_ratings.dat", (header + "".join(rows[:40]) + "".join(bad) + "".join(rows[40:])).encode())

    f = case("mal_header_lacks_column", "mal", {"error": r"anime_ratings\.dat:1: header lacks column\(s\) \['Feedback'\]"})
    write(f, "anime_ratings.dat", b"User_ID\tAnime_ID\tScore\n1\t2\t3\n")
    f = case("mal_empty_file", "mal", {"error": r"anime_ratings\.dat: empty file \(no header line\)"})
    write(f, "anime_ratings.dat", b"")


def movielens() -> None:
    header = "userId,movieId,rating,timestamp\n"
    rows = [f"{u},{i},{0.5 * (1 + (u + i) % 10)},{964_000_000 + u}\n" for u in range(25) for i in range(8) if (u * i) % 3 != 2]
    n = len(rows)
    f = case("ml_header_only", "movielens", {"error": r"ratings\.csv found no valid interaction rows"})
    write(f, "ratings.csv", header.encode())

    bad = ['"3,4,4.0,964000000\n', "1,2,3.0\n", "1,2,3.0,964000000,9\n", "5,6,7.5,964000000\n"]
    f = case("ml_stray_quote_and_counts", "movielens",
             {"rows": n + 4, "reasons": {"unterminated quote": 1, "malformed row": 2, "rating out of range": 1}},
             **{"data.max_reject_ratio": 0.5})
    write(f, "ratings.csv", (header + "".join(rows[:60]) + "".join(bad) + "".join(rows[60:])).encode())

    f = case("ml_bom_crlf_latin1", "movielens", {"rows": n + 1, "reasons": {"bad encoding": 1}})
    body = (header + "".join(rows)).replace("\n", "\r\n").encode()
    write(f, "ratings.csv", b"\xef\xbb\xbf" + body + "9,9,4.0,96400\xe9000\r\n".encode("latin-1"))
    movies = 'movieId,title,genres\n1,"Heat, (1995)",Action|Crime\n2,"Line one\nline two",Drama\n3,X,(no genres listed)\n'
    write(f, "movies.csv", movies.encode())


def generic() -> None:
    cmap = {"data.column_map": {"user_id": "uid", "item_id": "iid", "rating": "stars", "text": "body"},
            "data.rating_min": 1, "data.rating_max": 5}
    header = "uid,iid,stars,body\n"
    rows = [f"u{u},i{i},{1 + (u + 2 * i) % 5},fine\n" for u in range(25) for i in range(8) if (u + i) % 4]
    n = len(rows)
    special = ['u90,i1,5,"multi\nline, with comma\nand ""quotes"""\n', f"u91,i1,4,{'y' * 200_000}\n",
               'u92,i2,3,"never closed\n']
    f = case("gen_csv_quotes_and_big_field", "generic",
             {"rows": n + 3, "reasons": {"unterminated quote": 1}}, **cmap)
    write(f, "ratings.csv", (header + "".join(rows[:50]) + "".join(special[:2]) + "".join(rows[50:])
                             + special[2]).encode())

    strings = ["u93,i3,five,x\n", "u94,i3,,x\n", "u95,i3,nan,x\n", ",i3,4,x\n", "u96,,4,x\n", "u97,i3,4\n"]
    f = case("gen_csv_bad_values", "generic", {"rows": n + 6, "reasons": {
        "rating not a number": 2, "missing field": 3, "malformed row": 1}}, **{**cmap, "data.max_reject_ratio": 0.5})
    write(f, "ratings.csv", (header + "".join(rows) + "".join(strings)).encode())

    f = case("gen_csv_missing_mapped_column", "generic",
             {"error": r"ratings\.csv:1: header lacks column\(s\) \['stars'\]"}, **cmap)
    write(f, "ratings.csv", b"uid,iid,score,body\nu1,i1,4,x\n")

    f = case("gen_no_scale_declared", "generic", {"error": r"declare the rating scale with data\.rating_min"},
             **{"data.column_map": cmap["data.column_map"]})
    write(f, "ratings.csv", (header + "".join(rows)).encode())

    users = [f"u{u}" for u in range(25) for i in range(8) if (u + i) % 4]
    items = [f"i{i}" for u in range(25) for i in range(8) if (u + i) % 4]
    stars: list[Any] = [float(1 + (u + i) % 5) for u in range(25) for i in range(8) if (u + i) % 4]
    users += [None, "u98", "u99", "  "]
    items += ["i1", None, "i2", "i3"]
    stars += [4.0, 4.0, float("nan"), 3.0]
    f = case("gen_parquet_nulls_nan", "generic", {"rows": len(users), "reasons": {"missing field": 4}},
             **{**cmap, "data.max_reject_ratio": 0.5})
    pq.write_table(pa.table({"uid": users, "iid": items, "stars": stars, "body": ["t"] * len(users)}), f / "ratings.parquet")


def main() -> None:
    for child in HERE.iterdir():
        if child.is_dir():
            shutil.rmtree(child)
    amazon2023()
    amazon2014()
    mal()
    movielens()
    generic()
    (HERE / "cases.json").write_text(json.dumps(CASES, indent=1) + "\n")
    print(f"wrote {len(CASES)} cases under {HERE}")


if __name__ == "__main__":
    main()
