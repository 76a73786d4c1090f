"""Outputs appear whole or not at all, with the mode of any new file."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import numpy as np
import pytest

from pekit._files import atomic_path, atomic_write, refuse_read_only, save_image
from pekit.errors import OutputError


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_a_written_file_gets_the_mode_any_new_file_gets(tmp_path: Path) -> None:
    old = os.umask(0o022)
    try:
        atomic_write(tmp_path / "sub" / "a.bin", lambda fh: fh.write(b"abc"))  # the folder is made
        with atomic_path(tmp_path / "b.mp4") as tmp:
            assert tmp.suffix == ".mp4" and tmp.parent == tmp_path  # the format stays readable from the name
            tmp.write_bytes(b"video")
    finally:
        os.umask(old)
    assert (tmp_path / "sub" / "a.bin").read_bytes() == b"abc" and (tmp_path / "b.mp4").read_bytes() == b"video"
    assert _mode(tmp_path / "sub" / "a.bin") == _mode(tmp_path / "b.mp4") == 0o644  # not mkstemp's private 0600


def test_a_failed_write_keeps_the_previous_file_and_leaves_nothing_behind(tmp_path: Path) -> None:
    target = tmp_path / "report.md"
    target.write_text("previous")

    def fail(fh) -> None:
        fh.write(b"half")
        raise OSError(28, "No space left on device")

    with pytest.raises(OSError, match="No space"):
        atomic_write(target, fail)
    assert target.read_text() == "previous" and sorted(p.name for p in tmp_path.iterdir()) == ["report.md"]


def test_an_image_that_cannot_be_written_leaves_the_previous_one_whole(tmp_path: Path) -> None:
    import numpy as np

    from pekit._files import save_image
    from pekit.errors import InvalidInputError, OutputError

    image = np.zeros((8, 8, 3), np.uint8)
    odd = tmp_path / "boxes.unknownformat"
    odd.write_bytes(b"an earlier file")
    with pytest.raises(InvalidInputError, match=r"use a suffix such as \.jpg or \.png"):
        save_image(image, odd)
    with pytest.raises(OutputError, match="cannot write the file"):
        save_image(image, tmp_path / "no-such-folder" / "a.png")
    assert odd.read_bytes() == b"an earlier file" and sorted(p.name for p in tmp_path.iterdir()) == [odd.name]
    save_image(image, tmp_path / "plain")  # no suffix: PNG
    assert (tmp_path / "plain").read_bytes()[:4] == b"\x89PNG"


def test_a_link_stays_a_link_and_a_files_own_mode_is_kept(tmp_path: Path) -> None:
    real = tmp_path / "real.jpg"
    real.write_bytes(b"old")
    real.chmod(0o600)                                        # the user's own, private file
    link = tmp_path / "link.jpg"
    link.symlink_to(real)
    atomic_write(link, lambda fh: fh.write(b"new"))
    assert link.is_symlink() and real.read_bytes() == b"new" and _mode(real) == 0o600
    assert sorted(p.name for p in tmp_path.iterdir()) == ["link.jpg", "real.jpg"]


def test_a_read_only_file_or_folder_is_left_alone_even_through_a_link(tmp_path: Path) -> None:
    """chmod 444 / 555 says "keep as it is": not replaced by a rename (which the mode does not
    stop) nor by root (whom nothing stops)."""
    album = tmp_path / "album"
    album.mkdir()
    photo = album / "photo.jpg"
    photo.write_bytes(b"mine")
    photo.chmod(0o444)
    link = tmp_path / "latest.jpg"
    link.symlink_to(photo)
    try:
        for target in (photo, link):
            with pytest.raises(PermissionError, match=r"the file is read-only \(-r--r--r--\).*chmod u\+w"):
                atomic_write(target, lambda fh: fh.write(b"new"))  # an OSError, as a write's own would be
            with pytest.raises(OutputError, match=r"cannot write the file .*: the file is read-only \(-r--r--r--\)"):
                save_image(np.zeros((8, 8, 3), np.uint8), target)  # said as it is, not "permission denied"
        photo.chmod(0o644)
        album.chmod(0o555)
        for target in (photo, album / "new.jpg"):
            with pytest.raises(PermissionError, match=r"its folder is read-only \(dr-xr-xr-x\)"):
                atomic_write(target, lambda fh: fh.write(b"new"))
        with pytest.raises(OutputError, match="the folder is read-only"):
            refuse_read_only(album)
        with pytest.raises(OutputError, match=r"cannot write '.*deeper.*': its folder is read-only"):
            refuse_read_only(album / "new" / "deeper" / "x.jpg")  # folders to be made inside it: said too
    finally:
        album.chmod(0o755)
    assert photo.read_bytes() == b"mine" and sorted(p.name for p in album.iterdir()) == ["photo.jpg"]
    atomic_write(photo, lambda fh: fh.write(b"new"))  # writable again: written
    assert photo.read_bytes() == b"new"


def test_a_long_file_name_that_the_disk_takes_is_written(tmp_path: Path) -> None:
    target = tmp_path / ("x" * 250 + ".jpg")                # 254 characters: the temporary name must fit too
    atomic_write(target, lambda fh: fh.write(b"ok"))
    assert target.read_bytes() == b"ok"


def test_a_file_system_without_modes_still_takes_the_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import pekit._files as files

    def no_modes(*args, **kw):
        raise PermissionError(1, "Operation not permitted")  # what chmod says on FAT or exFAT

    monkeypatch.setattr(files.os, "chmod", no_modes)
    atomic_write(tmp_path / "a.png", lambda fh: fh.write(b"ok"))
    assert (tmp_path / "a.png").read_bytes() == b"ok"
