"""`glom` ends a user's mistake with one line on stderr and exit status 2, never a traceback (issue 14,
Found 7); a programming error still raises."""

from __future__ import annotations

from pathlib import Path

import pytest

from glom_plugin.cli import app


def run_glom(args: list[str]) -> int:
    with pytest.raises(SystemExit) as exit_info:
        app(args, prog_name="glom")
    return int(exit_info.value.code or 0)


def test_latin1_id_file_is_one_clear_line(tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch) -> None:
    monkeypatch.setenv("GLOM_ID_SALT", "s")
    monkeypatch.delenv("GLOM_TRACEBACK", raising=False)
    src = tmp_path / "raw.txt"
    src.write_bytes("alice\nren\xe9\n".encode("latin-1"))
    assert run_glom(["hash-ids", str(src), str(tmp_path / "out.txt")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"error: {src}, line 2: not UTF-8 (byte 0xe9); save the file as UTF-8"]
    assert not (tmp_path / "out.txt").exists()


def test_missing_stage_and_bad_setting_are_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run_glom(["validate", "--run-dir", str(tmp_path / "empty-run")]) == 2
    [line] = capsys.readouterr().err.strip().splitlines()
    assert line.startswith("error: ") and "glom ingest" in line
    assert run_glom(["ingest", "--run-dir", str(tmp_path), "--set", "pm.nope=1"]) == 2
    assert capsys.readouterr().err.strip() == "error: unknown config key 'pm.nope'"


def test_strict_refuses_without_a_salt(tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch) -> None:
    monkeypatch.delenv("GLOM_ID_SALT", raising=False)
    src = tmp_path / "raw.txt"
    src.write_text("alice\n")
    assert run_glom(["--strict", "hash-ids", str(src), str(tmp_path / "out.txt")]) == 2
    assert "GLOM_ID_SALT is not set" in capsys.readouterr().err
    assert run_glom(["hash-ids", str(src), str(tmp_path / "out.txt")]) == 0
    assert "PUBLIC development salt" in capsys.readouterr().err  # loud, every time
