"""finetext.storage: a file or a folder is replaced whole or not at all, and a failed write leaves nothing.

(Processes killed mid-write: tests/test_atomic_artifacts.py and tests/test_atomic_outputs.py.)"""

from __future__ import annotations

import os
import stat

import pytest

from finetext import storage


def mode(path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_a_staged_file_replaces_the_old_one_shareable_and_leaves_no_temporary(tmp_path):
    target = tmp_path / "sub" / "chart.png"
    with storage.staged_file(target) as tmp:
        assert tmp.parent == target.parent and tmp.name.startswith(".chart.png.") and tmp.suffix == ".png"
        tmp.write_bytes(b"first")
    storage.write_bytes(target, b"second")
    assert target.read_bytes() == b"second" and mode(target) == 0o644
    assert os.listdir(target.parent) == ["chart.png"]


def test_a_failed_file_write_leaves_the_old_file_and_no_temporary(tmp_path):
    target = tmp_path / "out.csv"
    storage.write_text(target, "old\n")
    with pytest.raises(RuntimeError), storage.staged_file(target) as tmp:
        tmp.write_text("half")
        raise RuntimeError("writer crashed")
    assert target.read_text() == "old\n" and os.listdir(tmp_path) == ["out.csv"]


def test_write_json_is_indented_utf8_with_a_final_newline(tmp_path):
    storage.write_json(tmp_path / "m.json", {"label": "café"})
    assert (tmp_path / "m.json").read_text(encoding="utf-8") == '{\n  "label": "café"\n}\n'


@pytest.mark.parametrize("swap", [True, False], ids=["swap", "no-swap"])
def test_a_staged_folder_replaces_the_old_one_whole(tmp_path, monkeypatch, swap):
    if not swap:
        monkeypatch.setattr(storage, "exchange_folders", lambda a, b: False)
    final = tmp_path / "export"
    with storage.staged_folder(final) as staging:
        (staging / "old.txt").write_text("old")
    assert mode(final) == 0o755  # not mkdtemp's 0700
    final.chmod(0o750)
    with storage.staged_folder(final) as staging:
        (staging / "sub").mkdir()
        (staging / "sub" / "new.txt").write_text("new")
        os.chmod(staging / "sub" / "new.txt", 0o600)
    assert sorted(str(p.relative_to(final)) for p in final.rglob("*")) == ["sub", "sub/new.txt"]
    assert mode(final) == 0o750 and mode(final / "sub" / "new.txt") == 0o644
    assert os.listdir(tmp_path) == ["export"]


def test_a_failed_folder_write_leaves_the_old_folder_and_no_staging(tmp_path):
    final = tmp_path / "cache-entry"
    final.mkdir()
    (final / "keep.txt").write_text("old")
    with pytest.raises(RuntimeError), storage.staged_folder(final) as staging:
        (staging / "half.txt").write_text("half")
        raise RuntimeError("writer crashed")
    assert os.listdir(tmp_path) == ["cache-entry"] and os.listdir(final) == ["keep.txt"]


def test_a_folder_set_aside_by_a_killed_write_is_put_back(tmp_path):
    """The fallback renames the old folder aside before renaming the new one in; a kill in between leaves
    neither at the final name, and the next writer's clean-up restores the old one."""
    final = tmp_path / "onnx"
    aside = tmp_path / f".onnx{storage.ASIDE}x1"
    (aside / "onnx").mkdir(parents=True)
    (aside / "onnx" / "model.onnx").write_text("old")
    (tmp_path / f".onnx{storage.STAGING}x2").mkdir()
    storage.remove_stale_staging(final)
    assert os.listdir(tmp_path) == ["onnx"] and (final / "model.onnx").read_text() == "old"
