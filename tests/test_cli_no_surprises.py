"""The `pekit` command line on a user's first hour: no files where none were asked for, no
overwritten outputs, no raw escape codes, clear errors for damaged memories and tiny boxes."""

from __future__ import annotations

import hashlib
import json
import sqlite3
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from pekit.cli import main
from pekit.errors import OutputError


@pytest.fixture
def cli(cached_pipelines: Any, capsys: pytest.CaptureFixture[str]) -> Any:
    def run(*args: Any) -> tuple[int, str, str]:
        code = main([str(a) for a in args])
        out, err = capsys.readouterr()
        return code, out, err

    return run


@pytest.fixture
def files(tmp_path: Path, chelsea: np.ndarray, coffee: np.ndarray) -> dict[str, Path]:
    photos = tmp_path / "photos"
    photos.mkdir()
    out = {"memory": tmp_path / "m.db", "notes": photos / "notes.jpg"}
    for name, img in (("cat", chelsea), ("coffee", coffee), ("query", np.ascontiguousarray(chelsea[:, ::-1]))):
        out[name] = photos / f"{name}.png"
        Image.fromarray(img).save(out[name])
    out["notes"].write_text("not a photo")
    return out


@pytest.fixture
def stocked(cli: Any, files: dict[str, Path]) -> dict[str, Path]:
    code, _, err = cli("introduce", "cat", files["cat"], "--category", "cat", "--context", "my cat",
                       "--memory", files["memory"])
    assert code == 0, err
    return files


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def one_line(err: str, command: str, *needles: str) -> None:
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"pekit {command}: error: "), err
    for needle in needles:
        assert needle in lines[0], (needle, err)


# ---- memory files: created by introduce only -------------------------------------------------------
READS = [["list"], ["forget", "cat"], ["repair"], ["recognize", "{query}"], ["ask", "{query}", "What is this?"],
         ["caption", "{query}"], ["copy", "{memory}"]]


@pytest.mark.parametrize("args", READS, ids=[a[0] for a in READS])
@pytest.mark.parametrize("how", ["flag", "env"])
def test_a_missing_memory_is_an_error_and_nothing_is_created(cli: Any, files: dict[str, Path], tmp_path: Path,
                                                              monkeypatch: pytest.MonkeyPatch, args: list[str],
                                                              how: str) -> None:
    typo = tmp_path / "typo" / "path" / "m.db"
    argv = [a.format(**{k: str(v) for k, v in files.items()}) for a in args]
    if how == "flag":
        argv += ["--memory", str(typo)]
    else:
        monkeypatch.setenv("PEKIT_MEMORY", str(typo))
    code, out, err = cli(*argv)
    assert (code, out) == (7, "")
    one_line(err, args[0], str(typo), "does not exist")
    assert not (tmp_path / "typo").exists()


def test_the_default_memory_may_be_missing(cli: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PEKIT_MEMORY", raising=False)
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    code, out, _ = cli("list")
    assert code == 0 and "no concepts" in out
    code, _, err = cli("forget", "Bo")
    assert code == 4 and "no concept named 'Bo'" in err
    assert not (tmp_path / "data").exists() and not (tmp_path / "home").exists()  # reading created nothing


def test_recognizing_with_no_concepts_says_how_to_add_one(cli: Any, files: dict[str, Path], tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch,
                                                        caplog: pytest.LogCaptureFixture) -> None:
    monkeypatch.delenv("PEKIT_MEMORY", raising=False)
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    code, out, err = cli("recognize", files["query"], "--json")  # the default memory, not made yet
    assert code == 0 and json.loads(out) == []                    # stdout stays the JSON
    assert "no concepts in" in err and "pekit introduce" in err
    assert "holds no concepts" not in err + caplog.text          # said once, in the CLI's words
    assert not (tmp_path / "data").exists()
    cli("introduce", "cat", files["cat"], "--memory", files["memory"])
    cli("forget", "cat", "--memory", files["memory"])               # a memory emptied by forget
    code, out, err = cli("ask", files["query"], "Who is this?", "--memory", files["memory"],
                         "--out", tmp_path / "a.jpg")
    assert code == 0 and "no concepts in" in err and "recognized: none" in out
    cli("introduce", "cat", files["cat"], "--memory", files["memory"])
    code, out, err = cli("recognize", files["query"], "--memory", files["memory"])
    assert code == 0 and "no concepts" not in err and "cat (" in out


@pytest.mark.parametrize("bad", [["{notes}"], ["{cat}", "--box", "0,0,3,3"], ["{cat}", "--name-is", "x"]],
                         ids=["non-image", "tiny-box", "bad-flag"])
def test_a_failed_introduce_leaves_no_memory_behind(cli: Any, files: dict[str, Path], tmp_path: Path,
                                                    bad: list[str]) -> None:
    target = tmp_path / "new" / "folder" / "m.db"
    argv = ["introduce", "dog", *[a.format(**{k: str(v) for k, v in files.items()}) for a in bad],
            "--memory", str(target)]
    try:
        code, _, _ = cli(*argv)
    except SystemExit as exc:  # argparse
        code = int(exc.code or 0)
    assert code != 0
    assert not (tmp_path / "new").exists()


# ---- outputs ----------------------------------------------------------------------------------------
def test_ask_writes_beside_the_photo_without_overwriting(cli: Any, stocked: dict[str, Path], tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    elsewhere = tmp_path / "cwd"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    photos = stocked["query"].parent
    existing = photos / "query_pekit.jpg"
    existing.write_bytes(b"the user's own file")
    for expected in ("query_pekit-1.jpg", "query_pekit-2.jpg"):
        code, out, err = cli("ask", stocked["query"], "What is cat doing?", "--memory", stocked["memory"])
        assert code == 0, err
        assert f"annotated image: {photos / expected}" in out and (photos / expected).is_file()
    assert existing.read_bytes() == b"the user's own file"
    assert list(elsewhere.iterdir()) == []  # nothing in the current folder


def test_ask_writes_to_the_current_folder_when_the_photos_folder_is_read_only(
        cli: Any, stocked: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from PIL import Image

    elsewhere = tmp_path / "cwd"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    photos = stocked["query"].parent
    save = Image.Image.save

    def read_only(self: Any, fp: Any, *args: Any, **kw: Any) -> None:  # the photos' folder is read-only
        if Path(fp).parent == photos:
            raise PermissionError(13, "Permission denied", str(fp))
        save(self, fp, *args, **kw)

    monkeypatch.setattr(Image.Image, "save", read_only)
    before = sorted(photos.iterdir())
    code, out, err = cli("ask", stocked["query"], "What is cat doing?", "--memory", stocked["memory"])
    assert code == 0, err
    assert f"annotated image: {elsewhere / 'query_pekit.jpg'}" in out and (elsewhere / "query_pekit.jpg").is_file()
    assert sorted(photos.iterdir()) == before  # nothing written beside the photo


def test_a_folder_nobody_may_write_is_left_alone_even_by_root(cli: Any, stocked: dict[str, Path], tmp_path: Path,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    """A shared dataset is often ``r-x`` for everyone; root may write there all the same, but
    the folder's mode says it is not to be written (the tests may run as root)."""
    elsewhere = tmp_path / "cwd"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    photos = stocked["query"].parent
    before = sorted(photos.iterdir())
    photos.chmod(0o555)
    try:
        code, out, err = cli("ask", stocked["query"], "What is cat doing?", "--memory", stocked["memory"])
    finally:
        photos.chmod(0o755)
    assert code == 0, err
    assert f"annotated image: {elsewhere / 'query_pekit.jpg'}" in out and (elsewhere / "query_pekit.jpg").is_file()
    assert sorted(photos.iterdir()) == before


@pytest.mark.parametrize("command", ["ask", "caption", "recognize"])
def test_json_lists_every_file_written(cli: Any, stocked: dict[str, Path], tmp_path: Path, command: str) -> None:
    extra = ["What is cat doing?"] if command == "ask" else []
    out_file = tmp_path / "out" / "a.png"
    code, out, err = cli(command, stocked["query"], *extra, "--out", out_file, "--json", "--memory", stocked["memory"])
    assert code == 0, err
    record = json.loads(out)
    assert record["written"] == [str(out_file)] and out_file.is_file()

    folder = tmp_path / "many"
    args = [command, stocked["query"], *extra] if command == "ask" else [command, stocked["query"], stocked["coffee"]]
    for _ in range(2):
        code, out, err = cli(*args, "--out", f"{folder}/", "--json", "--memory", stocked["memory"])
        assert code == 0, err
    written = sorted(p.name for p in folder.iterdir())
    expected = ["query_pekit-1.jpg", "query_pekit.jpg"]
    if command != "ask":
        expected = ["coffee_pekit-1.jpg", "coffee_pekit.jpg", *expected]
    assert written == expected
    records = json.loads(out)
    records = records if isinstance(records, list) else [records]
    assert sorted(Path(w).name for r in records for w in r["written"]) == [n for n in expected if "-1" in n]


@pytest.mark.parametrize("command", ["recognize", "ask"])
def test_out_under_a_folder_that_cannot_be_created(cli: Any, stocked: dict[str, Path], command: str) -> None:
    blocked = stocked["notes"] / "sub" / "a.jpg"  # notes.jpg is a file: no folder can be made under it
    extra = ["What?"] if command == "ask" else []
    code, out, err = cli(command, stocked["query"], *extra, "--out", blocked, "--memory", stocked["memory"])
    assert code == 11 and out == ""  # OutputError
    one_line(err, command, "cannot create the folder", str(blocked.parent))


# ---- names -------------------------------------------------------------------------------------------
def test_list_escapes_control_characters_from_stored_data(cli: Any, stocked: dict[str, Path]) -> None:
    conn = sqlite3.connect(stocked["memory"])  # e.g. written by an older pekit or another tool
    conn.execute("UPDATE concepts SET name = 'ca\x1b[2Jt', context = 'my\x1b]0;pwned\x07 cat'")
    conn.commit()
    conn.close()
    code, out, _ = cli("list", "--memory", stocked["memory"])
    assert code == 0 and "\x1b" not in out and "\x07" not in out
    assert "ca\\x1b[2Jt" in out and "my\\x1b]0;pwned\\x07 cat" in out
    # ask without an LVLM prints the prompt it would send, which quotes the name and context
    code, out, err = cli("ask", stocked["query"], "Who is this?", "--lvlm", "none", "--out",
                         stocked["memory"].parent / "asked.jpg", "--memory", stocked["memory"])
    assert code == 0, err
    assert "my\\x1b]0;pwned\\x07 cat" in out and "\x1b" not in out and "\x07" not in out


def test_control_characters_in_a_new_name_are_refused(cli: Any, stocked: dict[str, Path]) -> None:
    before = digest(stocked["memory"])
    code, _, err = cli("introduce", "Bo\x1b[31m", stocked["coffee"], "--memory", stocked["memory"])
    assert code == 2
    one_line(err, "introduce", "control character U+001B")
    assert "\x1b" not in err and digest(stocked["memory"]) == before


def test_case_insensitive_names_and_replace_keeps_category_and_context(cli: Any, stocked: dict[str, Path]) -> None:
    before = digest(stocked["memory"])
    code, _, err = cli("introduce", "CAT", stocked["query"], "--memory", stocked["memory"])
    assert code == 5
    one_line(err, "introduce", "ignoring case", "--replace")
    assert digest(stocked["memory"]) == before
    code, _, err = cli("introduce", "CAT", stocked["query"], "--replace", "--memory", stocked["memory"])
    assert code == 0, err
    rows = json.loads(cli("list", "--json", "--memory", stocked["memory"])[1])
    assert [(r["name"], r["category"], r["context"]) for r in rows] == [("CAT", "cat", "my cat")]
    code, _, err = cli("introduce", "CAT", stocked["query"], "--replace", "--context", "", "--category", "feline",
                       "--memory", stocked["memory"])
    assert code == 0, err
    rows = json.loads(cli("list", "--json", "--memory", stocked["memory"])[1])
    assert [(r["category"], r["context"]) for r in rows] == [("feline", "")]


# ---- boxes -------------------------------------------------------------------------------------------
def test_a_box_may_start_with_a_negative_number(cli: Any, files: dict[str, Path]) -> None:
    code, out, err = cli("introduce", "cat", files["cat"], "--box", "-50,-20,300,250", "--json",
                         "--memory", files["memory"])
    assert code == 0, err
    assert json.loads(out)["views"] == 1


@pytest.mark.parametrize(("box", "message"), [("10,10,11,11", "at least 8 x 8 pixels"),
                                              ("100,100,112,112", "covers 0."),
                                              ("700,700,900,900", "lies outside the 600x400 photo")])
def test_a_tiny_box_is_refused(cli: Any, stocked: dict[str, Path], box: str, message: str,
                               recwarn: pytest.WarningsRecorder) -> None:
    before = digest(stocked["memory"])
    code, _, err = cli("introduce", "speck", stocked["coffee"], "--box", box, "--memory", stocked["memory"])
    assert code == 2
    one_line(err, "introduce", message)
    assert digest(stocked["memory"]) == before
    assert not [w for w in recwarn if "NaN" in str(w.message)]


# ---- damaged memories --------------------------------------------------------------------------------
@pytest.mark.parametrize("sql", ["UPDATE views SET vector = X'00'", "UPDATE concepts SET meta = '{oops'"],
                         ids=["view-blob", "meta-json"])
def test_a_damaged_concept_names_the_fix_and_repair_applies_it(cli: Any, stocked: dict[str, Path], sql: str) -> None:
    conn = sqlite3.connect(stocked["memory"])
    conn.execute(sql)
    conn.commit()
    conn.close()
    before = digest(stocked["memory"])
    for args in (["list"], ["recognize", stocked["query"]]):
        code, out, err = cli(*args, "--memory", stocked["memory"])
        assert (code, out) == (7, "")
        one_line(err, args[0], "concept 'cat'", "damaged", "pekit repair", "--skip-damaged")
        code, out, err = cli(*args, "--skip-damaged", "--memory", stocked["memory"])
        assert code == 0, err
    assert digest(stocked["memory"]) == before

    code, out, _ = cli("repair", "--dry-run", "--memory", stocked["memory"])
    assert code == 0 and "damaged (not removed: --dry-run): 'cat'" in out
    assert digest(stocked["memory"]) == before
    code, out, _ = cli("repair", "--json", "--memory", stocked["memory"])
    assert code == 0 and [r["name"] for r in json.loads(out)["removed"]] == ["cat"]
    assert json.loads(cli("list", "--json", "--memory", stocked["memory"])[1]) == []
    assert "no damaged concepts" in cli("repair", "--memory", stocked["memory"])[1]


def test_error_messages_escape_stored_names(cli: Any, stocked: dict[str, Path]) -> None:
    conn = sqlite3.connect(stocked["memory"])
    conn.execute("UPDATE concepts SET name = 'ca\x1b[2Jt'")
    conn.commit()
    conn.close()
    code, _, err = cli("forget", "dog", "--memory", stocked["memory"])
    assert code == 4 and "\x1b" not in err and "ca\\x1b[2Jt" in err


def test_newcomer_mistakes_get_messages_that_say_what_to_do(cli: Any, stocked: dict[str, Path],
                                                            tmp_path: Path) -> None:
    clip = tmp_path / "clip.mp4"
    clip.write_bytes(b"\x00\x00\x00\x18ftypmp42" + bytes(64))  # a video (its suffix and header), not a photo
    code, _, err = cli("introduce", "V", clip, "--memory", tmp_path / "new.db")
    assert code == 3
    one_line(err, "introduce", "a video, not a photo", "save a frame as a photo")
    assert not (tmp_path / "new.db").exists()

    code, _, err = cli("list", "--memory", tmp_path)  # a folder given as the memory file
    assert code == 7
    one_line(err, "list", "is a folder, not a memory file", str(tmp_path / "memory.db"))

    afile = tmp_path / "notes.txt"
    afile.write_text("keep me")
    code, _, err = cli("recognize", stocked["query"], "--out", afile / "x.jpg", "--memory", stocked["memory"])
    assert code == 11 and afile.read_text() == "keep me"
    one_line(err, "recognize", f"'{afile}' is a file, not a folder")


def test_a_reader_that_goes_away_stops_the_output_quietly(stocked: dict[str, Path]) -> None:
    """``pekit list | head -1``: the reader closes the pipe; no traceback, the shell's 141."""
    import subprocess
    import sys

    proc = subprocess.Popen([sys.executable, "-m", "pekit.cli", "list", "--json", "--memory", str(stocked["memory"])],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert proc.stdout is not None and proc.stderr is not None
    proc.stdout.close()  # before the command prints: its first write finds no reader
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=120) == 141
    assert "Traceback" not in err and "BrokenPipe" not in err, err


def test_introduce_given_only_a_photo_says_the_name_comes_first(cli: Any, files: dict[str, Path],
                                                                 capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:  # the photo was taken as the name: no photo left
        cli("introduce", files["cat"], "--category", "cat", "--memory", files["memory"])
    err = capsys.readouterr().err
    assert exc.value.code == 2 and "required: images" in err
    assert "the name comes first" in err and f"pekit introduce Bo {files['cat']}" in err
    assert not files["memory"].exists()
    with pytest.raises(SystemExit):  # a name and no photo: argparse's own message only
        cli("introduce", "Bo", "--memory", files["memory"])
    assert "name comes first" not in capsys.readouterr().err
    with pytest.raises(SystemExit) as exc:  # asking for help is no mistake
        cli("introduce", files["cat"], "--help")
    assert exc.value.code == 0 and "name comes first" not in capsys.readouterr().err


def test_a_misspelt_preset_is_refused_by_commands_that_load_no_model(cli: Any, stocked: dict[str, Path]) -> None:
    before = digest(stocked["memory"])
    for args in (["list"], ["forget", "cat"]):
        code, out, err = cli(*args, "--preset", "ofline", "--memory", stocked["memory"])
        assert (code, out) == (2, "")
        one_line(err, args[0], "unknown preset 'ofline'", "offline-thorough")
    assert digest(stocked["memory"]) == before


def test_ask_still_answers_when_its_unasked_picture_cannot_be_written(cli: Any, stocked: dict[str, Path],
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    import pekit.cli_output

    def refuse(picture: Any, path: Path, option: str = "--out") -> None:
        raise OutputError(f"cannot write the file '{path}' (read-only file system); pass {option} a path")

    monkeypatch.setattr(pekit.cli_output, "save", refuse)  # the photo's folder and the current one
    code, out, err = cli("ask", stocked["query"], "Who is this?", "--lvlm", "none", "--memory", stocked["memory"])
    assert code == 0
    assert "recognized: cat" in out and "the prompt it would get" in out and "annotated image:" not in out
    assert "pekit ask: warning: the annotated image was not written" in err and "--out" in err
