"""fer.atomic, the one writer every stage publishes its files through."""

from __future__ import annotations

import os
import stat
import threading

import pytest

from fer.atomic import atomic_write, save_torch, write_json, write_text
from fer.errors import FerError


def test_failure_leaves_the_old_file_and_no_temporary(tmp_path):
    out = tmp_path / "r" / "x.json"
    write_json(out, {"a": 1}, indent=1)
    with pytest.raises(ValueError):
        write_json(out, {"a": float("nan")})  # NaN is refused, and nothing is published
    with pytest.raises(RuntimeError), atomic_write(out) as fh:
        fh.write("half")
        raise RuntimeError("killed mid-write")
    assert [p.name for p in out.parent.iterdir()] == ["x.json"]
    assert out.read_text() == '{\n "a": 1\n}\n'


def test_concurrent_writers_never_share_a_temporary(tmp_path):
    out = tmp_path / "same.txt"
    texts = [f"writer {i}\n" * 2000 for i in range(8)]
    threads = [threading.Thread(target=write_text, args=(out, t)) for t in texts]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert out.read_text() in texts  # one whole file, never a mix
    assert [p.name for p in tmp_path.iterdir()] == ["same.txt"]


def test_published_files_get_ordinary_permissions(tmp_path):
    umask = os.umask(0o022)
    try:
        write_text(tmp_path / "a.txt", "x")
    finally:
        os.umask(umask)
    assert stat.S_IMODE((tmp_path / "a.txt").stat().st_mode) == 0o644


def test_an_unwritable_folder_is_one_line_naming_the_file(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(FerError, match=r"file/out\.json: could not write"):
        write_json(blocker / "out.json", {"a": 1})


def test_save_torch_round_trips(tmp_path):
    torch = pytest.importorskip("torch")
    save_torch({"w": torch.ones(2)}, tmp_path / "m.pt")
    assert torch.equal(torch.load(tmp_path / "m.pt", weights_only=True)["w"], torch.ones(2))
