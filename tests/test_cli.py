"""The `pekit` command line, in process: output, files written, exit codes, one-line errors."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from pekit.cli import main


@pytest.fixture
def cli(cached_pipelines: Any, capsys: pytest.CaptureFixture[str]) -> Any:
    """``cli(*args) -> (exit code, stdout, stderr)``; every run uses the cached backbone."""

    def run(*args: Any) -> tuple[int, str, str]:
        code = main([str(a) for a in args])
        out, err = capsys.readouterr()
        return code, out, err

    return run


@pytest.fixture
def files(tmp_path: Path, chelsea: np.ndarray, coffee: np.ndarray) -> dict[str, Path]:
    """Photos as PNG files (lossless: the same pixels as the fixtures), a text file, a memory path."""
    out = {"memory": tmp_path / "m.db", "notes": tmp_path / "notes.jpg"}
    for name, img in (("cat", chelsea), ("coffee", coffee), ("query", np.ascontiguousarray(chelsea[:, ::-1]))):
        out[name] = tmp_path / f"{name}.png"
        Image.fromarray(img).save(out[name])
    out["notes"].write_text("not a photo")
    return out


@pytest.fixture
def stocked(cli: Any, files: dict[str, Path]) -> dict[str, Path]:
    """``files`` with 'cat' introduced into ``files['memory']``."""
    code, _, err = cli("introduce", "cat", files["cat"], "--category", "cat", "--context", "my cat",
                       "--memory", files["memory"])
    assert code == 0, err
    return files


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def assert_one_line_error(err: str, command: str, message: str) -> None:
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith(f"pekit {command}: error: ")
    assert message in lines[0]
    assert "Traceback" not in err


# ---- happy paths ------------------------------------------------------------------------------
def test_introduce_and_list(cli: Any, files: dict[str, Path]) -> None:
    code, out, err = cli("introduce", "cat", files["cat"], "--category", "cat", "--context", "my cat",
                         "--memory", files["memory"])
    assert (code, err) == (0, "")
    assert out.strip() == f"introduced 'cat' (cat) from 1 view(s) into {files['memory']}"
    assert files["memory"].is_file()

    code, out, _ = cli("list", "--memory", files["memory"])
    assert code == 0
    assert out.split()[:2] == ["cat", "cat"] and "1 view(s)" in out and "my cat" in out

    code, out, _ = cli("list", "--json", "--memory", files["memory"])
    assert code == 0
    rows = json.loads(out)
    assert rows == [{"name": "cat", "id": rows[0]["id"], "kind": "object", "category": "cat", "context": "my cat",
                     "views": 1, "threshold": None, "corrections": 0}]


def test_introduce_json_and_from_a_folder_with_boxes(cli: Any, files: dict[str, Path], tmp_path: Path,
                                                     chelsea: np.ndarray) -> None:
    folder = tmp_path / "refs"
    folder.mkdir()
    Image.fromarray(chelsea).save(folder / "a.png")
    Image.fromarray(np.ascontiguousarray(chelsea[:, ::-1])).save(folder / "b.png")
    code, out, err = cli("introduce", "cat", folder, "--box", "0,0,400,300", "--box", "51, 0, 451, 300",
                         "--json", "--memory", files["memory"])
    assert code == 0, err
    record = json.loads(out)
    assert record["name"] == "cat" and record["views"] == 2 and record["memory"] == str(files["memory"])
    assert record["category"] == "" and isinstance(record["id"], int)
    assert record["consistency"] > 0.6  # the cat and its mirror recognize one another
    assert record["consistency_low"] is False and record["same_pictures"] == [] and record["most_alike"] is None

    code, out, err = cli("introduce", "cat2", folder / "a.png", folder / "b.png", "--memory", files["memory"])
    assert code == 0 and err == "", err
    assert out.splitlines()[1].startswith("its photos match one another at 0.") and "same picture" not in out

    Image.fromarray(chelsea).save(folder / "copy.jpg", quality=70)  # a.png again, re-saved
    code, out, err = cli("introduce", "cat3", folder / "a.png", folder / "b.png", folder / "copy.jpg", "--json",
                         "--memory", files["memory"])
    assert code == 0, err
    record = json.loads(out)
    assert record["same_pictures"] == [[1, 3]]  # (and a warning on stderr)
    # the same cat as 'cat' and 'cat2': either name may go to a cat never introduced (and a warning)
    assert record["most_alike"]["name"] in ("cat", "cat2") and record["most_alike"]["agreement"] > 0.6


def test_list_an_empty_memory(cli: Any, files: dict[str, Path]) -> None:
    from pekit.memory import SqliteMemory
    from pekit.types import Concept

    with SqliteMemory(files["memory"]) as memory:  # a memory file that exists but holds nothing
        memory.add(Concept("x", np.eye(1, 8), backbone="toy"))
        memory.remove("x")
    code, out, _ = cli("list", "--memory", files["memory"])
    assert code == 0 and "no concepts" in out and "pekit introduce" in out
    assert cli("list", "--json", "--memory", files["memory"])[1].strip() == "[]"


def test_recognize_writes_the_annotated_image_and_json(cli: Any, stocked: dict[str, Path],
                                                       tmp_path: Path) -> None:
    annotated = tmp_path / "out" / "annotated.png"
    code, out, err = cli("recognize", stocked["query"], "--out", annotated, "--json", "--memory", stocked["memory"])
    assert code == 0, err
    record = json.loads(out)  # a file was written: the record lists it
    assert record["written"] == [str(annotated)] and record["image"] == str(stocked["query"])
    records = record["detections"]
    assert [r["name"] for r in records] == ["cat"]
    assert set(records[0]) == {"name", "score", "box", "concept_id"}
    assert 0.6 <= records[0]["score"] <= 1 and len(records[0]["box"]) == 4
    drawn = np.asarray(Image.open(annotated))
    query = np.asarray(Image.open(stocked["query"]))
    assert drawn.shape == query.shape and not np.array_equal(drawn, query)

    code, out, _ = cli("recognize", stocked["query"], "--memory", stocked["memory"])
    assert code == 0
    assert out.startswith(f"{stocked['query']}: cat (0.")


def test_recognize_several_images_into_a_folder(cli: Any, stocked: dict[str, Path], tmp_path: Path) -> None:
    out_dir = tmp_path / "annotated"
    code, out, err = cli("recognize", stocked["query"], stocked["coffee"], "--out", out_dir, "--json",
                         "--memory", stocked["memory"])
    assert code == 0, err
    results = json.loads(out)
    assert [r["image"] for r in results] == [str(stocked["query"]), str(stocked["coffee"])]
    assert [d["name"] for d in results[0]["detections"]] == ["cat"]
    assert results[1]["detections"] == []
    assert sorted(p.name for p in out_dir.iterdir()) == ["coffee_pekit.jpg", "query_pekit.jpg"]


def test_json_of_a_folder_is_a_list_of_records_even_with_one_photo(cli: Any, stocked: dict[str, Path],
                                                                   tmp_path: Path) -> None:
    """A script reads one shape for a batch: a folder (or several photos) gives a list of
    records whether it held one photo or more; one photo named alone gives its detections."""
    album = tmp_path / "album"
    album.mkdir()
    Image.open(stocked["query"]).save(album / "query.png")
    code, out, err = cli("recognize", album, "--json", "--memory", stocked["memory"])
    assert code == 0, err
    records = json.loads(out)
    assert [r["image"] for r in records] == [str(album / "query.png")]
    assert [d["name"] for d in records[0]["detections"]] == ["cat"] and records[0]["written"] == []
    code, out, err = cli("caption", album, "--json", "--memory", stocked["memory"])
    assert code == 0, err
    records = json.loads(out)
    assert isinstance(records, list) and [r["image"] for r in records] == [str(album / "query.png")]
    assert [d["name"] for d in records[0]["detections"]] == ["cat"]
    code, out, err = cli("recognize", album / "query.png", "--json", "--memory", stocked["memory"])
    assert code == 0, err
    assert [d["name"] for d in json.loads(out)] == ["cat"]  # one photo: its detections
    code, out, err = cli("caption", album / "query.png", "--json", "--memory", stocked["memory"])
    assert code == 0, err
    assert json.loads(out)["image"] == str(album / "query.png")  # one photo: its record
    # and --out is a folder for a folder, whatever its name and however many photos it holds
    code, out, err = cli("recognize", album, "--out", tmp_path / "annotated", "--json", "--memory", stocked["memory"])
    assert code == 0, err
    assert [Path(w).name for w in json.loads(out)[0]["written"]] == ["query_pekit.jpg"]
    assert (tmp_path / "annotated" / "query_pekit.jpg").is_file()
    code, _, err = cli("recognize", album, "--out", tmp_path / "one.jpg", "--memory", stocked["memory"])
    assert code == 2 and "names one image file, but 1 photo(s) were given as a batch" in err


def test_a_bad_photo_in_a_batch_is_skipped_and_the_rest_answered(cli: Any, stocked: dict[str, Path]) -> None:
    photos = (stocked["query"], stocked["notes"], stocked["coffee"])
    code, out, err = cli("recognize", *photos, "--json", "--memory", stocked["memory"])
    assert code == 3  # the bad photo's exit code (ImageError), after every photo was tried
    results = json.loads(out)
    assert [r["image"] for r in results] == [str(p) for p in photos]
    assert [d["name"] for d in results[0]["detections"]] == ["cat"] and results[2]["detections"] == []
    assert results[1]["exit_code"] == 3 and "notes.jpg" in results[1]["error"] and "detections" not in results[1]
    assert "skipped; the other photos go on" in err and "Traceback" not in err
    code, out, _ = cli("recognize", *photos, "--memory", stocked["memory"])
    assert code == 3 and out.splitlines()[0].startswith(f"{stocked['query']}: cat (0.")
    assert out.splitlines()[1] == f"{stocked['notes']}: skipped, not read (the error is above)"
    code, out, err = cli("caption", *photos, "--json", "--memory", stocked["memory"])
    assert code == 3 and [r.get("exit_code") for r in json.loads(out)] == [None, 3, None]
    code, _, err = cli("recognize", stocked["notes"], "--memory", stocked["memory"])  # alone: the error itself
    assert code == 3
    assert_one_line_error(err, "recognize", "notes.jpg")


@pytest.mark.parametrize("option", ["--out", "--explain"])
def test_an_output_over_an_input_photo_is_refused(cli: Any, stocked: dict[str, Path], option: str) -> None:
    before = digest(stocked["query"])
    code, _, err = cli("recognize", stocked["query"], option, stocked["query"], "--memory", stocked["memory"])
    assert code == 2 and digest(stocked["query"]) == before
    assert_one_line_error(err, "recognize", f"{option} '{stocked['query']}' is one of the inputs")
    code, _, err = cli("ask", stocked["query"], "Who?", "--out", stocked["query"], "--memory", stocked["memory"])
    assert code == 2 and digest(stocked["query"]) == before


@pytest.mark.parametrize("command", ["recognize", "ask", "caption"])
def test_an_output_name_without_an_image_suffix_is_refused_before_any_work(cli: Any, stocked: dict[str, Path],
                                                                            tmp_path: Path, command: str) -> None:
    """``--out result``: a file without a format, or a folder? Said before the photo is read,
    with both ways out; nothing is written."""
    question = ("Who?",) if command == "ask" else ()
    for option, value, hint in (("--out", tmp_path / "result", f"'{tmp_path / 'result.jpg'}'"),
                                ("--out", tmp_path / "result.txt", f"'{tmp_path / 'result.jpg'}'"),
                                ("--explain", tmp_path / "why", f"'{tmp_path / 'why.png'}'")):
        if option == "--explain" and command != "recognize":
            continue
        code, out, err = cli(command, stocked["query"], *question, option, value, "--memory", stocked["memory"])
        assert code == 2 and out == ""
        assert_one_line_error(err, command, f"{option} '{value}' does not end in the suffix of an image pekit writes")
        assert hint in err and f"'{value}/'" in err
        assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["cat.png", "coffee.png", "query.png",
                                                                     "notes.jpg", "m.db"])
    from PIL import features

    if features.check("avif"):  # any format Pillow writes is taken, not only the usual ones
        code, _, err = cli(command, stocked["query"], *question, "--out", tmp_path / "result.avif",
                           "--memory", stocked["memory"])
        assert code == 0 and Image.open(tmp_path / "result.avif").format == "AVIF", err
        (tmp_path / "result.avif").unlink()
    code, _, err = cli(command, stocked["query"], *question, "--out", f"{tmp_path / 'result'}/",
                       "--memory", stocked["memory"])
    assert code == 0, err  # the same name as a folder is written into
    assert [p.suffix for p in (tmp_path / "result").iterdir()] == [".jpg"]


def test_out_and_explain_into_one_file_are_refused_and_explain_takes_a_folder(cli: Any, stocked: dict[str, Path],
                                                                               tmp_path: Path) -> None:
    same = tmp_path / "same.png"
    code, _, err = cli("recognize", stocked["query"], "--out", same, "--explain", same, "--memory", stocked["memory"])
    assert code == 2 and not same.exists()
    assert_one_line_error(err, "recognize", "--out and --explain both name")
    folder = f"{tmp_path / 'why'}/"  # a name ending in / is a folder, as for --out
    code, out, err = cli("recognize", stocked["query"], "--out", folder, "--explain", folder, "--json",
                         "--memory", stocked["memory"])
    assert code == 0, err
    written = json.loads(out)["written"]
    assert sorted(Path(w).name for w in written) == [f"{stocked['query'].stem}_explain.png",
                                                     f"{stocked['query'].stem}_pekit.jpg"]
    assert all(Path(w).parent == tmp_path / "why" and Path(w).is_file() for w in written)


def test_a_full_disk_while_writing_out_is_exit_code_11(cli: Any, stocked: dict[str, Path], tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    import errno

    def full(*args: Any, **kwargs: Any) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(Image.Image, "save", full)
    code, _, err = cli("recognize", stocked["query"], "--out", tmp_path / "a.png", "--memory", stocked["memory"])
    assert code == 11
    assert_one_line_error(err, "recognize", "the disk is full (or over quota); free some space")


def test_a_read_only_out_file_is_refused_before_any_work(cli: Any, stocked: dict[str, Path], tmp_path: Path) -> None:
    kept = tmp_path / "kept.jpg"
    kept.write_bytes(b"an earlier result, kept on purpose")
    kept.chmod(0o444)
    code, out, err = cli("recognize", stocked["query"], "--out", kept, "--memory", stocked["memory"])
    assert code == 11 and out == "" and kept.read_bytes() == b"an earlier result, kept on purpose"
    assert_one_line_error(err, "recognize", f"cannot write '{kept}': the file is read-only (-r--r--r--)")


def test_an_explain_path_that_cannot_be_written_names_explain(cli: Any, stocked: dict[str, Path],
                                                              tmp_path: Path) -> None:
    (tmp_path / "afile").write_text("a file where a folder should be")
    code, _, err = cli("recognize", stocked["query"], "--explain", tmp_path / "afile" / "why.png",
                       "--memory", stocked["memory"])
    assert code == 11
    assert_one_line_error(err, "recognize", "pass --explain a path")
    assert "--out" not in err


def test_one_file_name_for_several_photos_is_refused(cli: Any, stocked: dict[str, Path], tmp_path: Path) -> None:
    code, _, err = cli("recognize", stocked["query"], stocked["coffee"], "--out", tmp_path / "x.jpg",
                       "--memory", stocked["memory"])
    assert code == 2 and not (tmp_path / "x.jpg").exists()
    assert_one_line_error(err, "recognize", "pass a folder")


def test_options_for_the_other_kind_of_input_are_refused(cli: Any, stocked: dict[str, Path], tmp_path: Path) -> None:
    code, _, err = cli("recognize", stocked["query"], "--sheet", tmp_path / "s.png", "--memory", stocked["memory"])
    assert code == 2 and not (tmp_path / "s.png").exists()
    assert_one_line_error(err, "recognize", "--sheet is the contact sheet of a video")
    code, _, err = cli("recognize", tmp_path / "clip.mp4", "--explain", tmp_path / "e.png",
                       "--memory", stocked["memory"])
    assert code == 2
    assert_one_line_error(err, "recognize", "for a clip use --sheet")


def test_ask_without_an_lvlm_prints_the_prompt(cli: Any, stocked: dict[str, Path], tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    code, out, err = cli("ask", stocked["query"], "What is cat doing?", "--memory", stocked["memory"])
    assert code == 0, err
    assert "recognized: cat (0." in out
    assert "no LVLM configured" in out
    assert "What is cat doing?" in out and "my cat" in out  # the prompt, with the context
    assert (tmp_path / "query_pekit.jpg").is_file()  # the annotated image it would get

    code, out, _ = cli("ask", stocked["query"], "What is cat doing?", "--json", "--memory", stocked["memory"])
    record = json.loads(out)
    assert code == 0 and record["backend"] == "none" and record["text"] == ""
    assert "What is cat doing?" in record["prompt"] and record["detections"][0]["name"] == "cat"


def test_an_answer_with_terminal_escapes_is_shown_not_run(cli: Any, stocked: dict[str, Path],
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    import dataclasses

    from pekit.personalizer import Personalizer

    real = Personalizer.ask

    def ask(self: Any, *args: Any, **kwargs: Any) -> Any:  # an LVLM server that answers with escapes
        answer = real(self, *args, **kwargs)
        text = ("Bo \x1b[31msleeps\x1b]0;pwned\x07.\nOn the sofa \u202e"
                "\u0645\u06cc\u200c\u062e\u0648\u0627\u0647\u0645 \U0001f468\u200d\U0001f469.")
        return dataclasses.replace(answer, text=text,
                                   meta={**answer.meta, "backend": "openai:x#m"})

    monkeypatch.setattr(Personalizer, "ask", ask)
    code, out, _ = cli("ask", stocked["query"], "What is cat doing?", "--memory", stocked["memory"])
    assert code == 0 and "\x1b" not in out
    assert out.splitlines()[:2] == ["Bo \\x1b[31msleeps\\x1b]0;pwned\\x07.",  # a bidi override shown too,
                                    "On the sofa \\u202e\u0645\u06cc\u200c\u062e\u0648\u0627\u0647\u0645 "
                                    "\U0001f468\u200d\U0001f469."]  # joiners are text


def test_forget(cli: Any, stocked: dict[str, Path]) -> None:
    code, out, _ = cli("forget", "CAT", "--memory", stocked["memory"])
    assert code == 0 and out.strip() == "forgot 'cat'"  # found ignoring case, said as stored
    assert json.loads(cli("list", "--json", "--memory", stocked["memory"])[1]) == []


def test_copy_makes_a_backup_that_recognizes_as_the_memory_does(cli: Any, stocked: dict[str, Path],
                                                                 tmp_path: Path) -> None:
    backup = tmp_path / "backups" / "pekit.db"
    code, out, _ = cli("copy", backup, "--memory", stocked["memory"])
    assert code == 0 and out.splitlines() == [f"copied 1 concept(s) from {stocked['memory']} to {backup}",
                                              "  namespace 'default': cat"]
    found = [json.loads(cli("recognize", stocked["query"], "--json", "--memory", m)[1]) for m in (stocked["memory"],
                                                                                                backup)]
    assert found[0] == found[1] and [d["name"] for d in found[1]] == ["cat"]
    before = digest(backup)
    code, _, err = cli("copy", backup, "--memory", stocked["memory"])  # taken: refused, the backup untouched
    assert code == 5 and digest(backup) == before
    assert_one_line_error(err, "copy", "already has 1 of these names (namespace 'default'): 'cat'; nothing was "
                                       "copied: pass --replace")
    code, out, _ = cli("copy", backup, "--replace", "--json", "--memory", stocked["memory"])
    assert code == 0 and json.loads(out) == {"from": str(stocked["memory"]), "to": str(backup),
                                             "copied": {"default": ["cat"]}, "count": 1}
    for target, message in ((stocked["memory"], "is the memory being copied"), ("memory://", "lives only as long"),
                            (":memory:", "lives only as long"), (f"{tmp_path}/new/", "names a folder"),
                            (tmp_path, "names a folder")):
        code, _, err = cli("copy", target, "--memory", stocked["memory"])
        assert code == 2
        assert_one_line_error(err, "copy", message)


def test_pekit_memory_environment_variable(cli: Any, files: dict[str, Path], tmp_path: Path,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    env_db = tmp_path / "from-env.db"
    monkeypatch.setenv("PEKIT_MEMORY", str(env_db))
    code, out, _ = cli("introduce", "cat", files["cat"])
    assert code == 0 and str(env_db) in out and env_db.is_file()
    assert [r["name"] for r in json.loads(cli("list", "--json")[1])] == ["cat"]
    code, _, err = cli("list", "--json", "--memory", files["memory"])  # --memory wins (and does not exist)
    assert code == 7 and str(files["memory"]) in err and "does not exist" in err


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["--version"])
    assert info.value.code == 0
    assert capsys.readouterr().out.startswith("pekit ")


# ---- errors: exit codes and one line, never a traceback -------------------------------------------
@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (["forget", "Mochi"], 4, "Mochi"),
        (["introduce", "cat", "{cat}"], 5, "already exists; pass --replace to overwrite it"),  # the CLI's spelling
        (["introduce", "dog", "{notes}"], 3, "notes.jpg"),
        (["introduce", "dog", "{missing}"], 3, "no such file"),
        (["introduce", "dog", "{cat}", "--box", "0,0,10,10", "--box", "0,0,20,20"], 2, "got 2 --box for 1 images"),
        (["introduce", "dog", "{cat}", "--box", "10,10,0,0"], 2, "x1 > x0"),
        (["introduce", "dog", "{cat}", "--preset", "turbo"], 2, "unknown preset 'turbo'; available: offline"),
        (["recognize", "{notes}"], 3, "notes.jpg"),
        (["recognize", "{query}", "--threshold", "5"], 2, "threshold"),
        (["ask", "{query}", "  "], 2, "question is empty"),
        (["ask", "{query}", "Which?", "--option", "A"], 2, "--option must look like A=Cat"),
        (["ask", "{query}", "Which?", "--option", "A=Cat", "--option", "B=Dog", "--option", "a=Fish"], 2,
         "--option A is given twice (A=Cat, a=Fish); give each letter once"),
        # checked before the photo is looked at and the LVLM loaded (this one does not exist)
        (["ask", "{query}", "Which?", "--option", "A=Cat", "--lvlm", "hf:{missing}"], 2,
         "a multiple-choice prompt needs options with at least two letters"),
    ],
    ids=["forget-unknown", "duplicate", "non-image", "missing-file", "box-count", "inverted-box",
         "unknown-preset", "recognize-non-image", "bad-threshold", "empty-question", "bad-option",
         "repeated-option", "one-option"],
)
def test_errors_exit_with_their_code_and_one_line(cli: Any, stocked: dict[str, Path], tmp_path: Path,
                                                  args: list[str], code: int, message: str) -> None:
    paths = {**{k: str(v) for k, v in stocked.items()}, "missing": str(tmp_path / "missing.png")}
    argv = [a.format(**paths) for a in args]
    before = digest(stocked["memory"])
    got, out, err = cli(*argv, "--memory", stocked["memory"])
    assert got == code, err
    assert out == ""
    assert_one_line_error(err, argv[0], message)
    assert digest(stocked["memory"]) == before


@pytest.mark.parametrize("box", ["1,2,3", "a,b,c,d", "1;2;3;4", ""])
def test_bad_box_format_is_an_argparse_error(box: str, files: dict[str, Path],
                                             capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["introduce", "cat", str(files["cat"]), "--box", box, "--memory", str(files["memory"])])
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert "a box is x0,y0,x1,y1 in pixels" in err and "Traceback" not in err
    assert not files["memory"].exists()


def test_read_only_memory_is_refused_and_unchanged(cli: Any, stocked: dict[str, Path]) -> None:
    before = digest(stocked["memory"])
    read_only = f"{stocked['memory'].as_uri()}?mode=ro"
    code, out, _ = cli("list", "--json", "--memory", read_only)
    assert code == 0 and [r["name"] for r in json.loads(out)] == ["cat"]  # reading works
    for args in (["introduce", "coffee", stocked["coffee"]], ["forget", "cat"],
                 ["introduce", "cat", stocked["coffee"], "--replace"]):
        code, out, err = cli(*args, "--memory", read_only)
        assert code == 7, err
        assert_one_line_error(err, args[0], "read-only")
    assert digest(stocked["memory"]) == before


def test_a_file_that_is_not_a_memory(cli: Any, files: dict[str, Path]) -> None:
    code, _, err = cli("list", "--memory", files["notes"])
    assert code == 7
    assert_one_line_error(err, "list", "not a pekit memory")
    assert files["notes"].read_text() == "not a photo"


def test_a_library_that_prints_its_own_messages_is_not_printed_twice() -> None:
    import logging

    from pekit.cli import PrintedElsewhere

    own = logging.getLogger("some_hub_library")         # like huggingface_hub: its own handler, and propagates
    own.addHandler(logging.NullHandler())
    try:
        keep = PrintedElsewhere()
        record = own.makeRecord("some_hub_library.http", logging.WARNING, __file__, 1, "retrying", None, None)
        assert keep.filter(record) is False
        plain = logging.getLogger("pekit.anything").makeRecord("pekit.anything", logging.WARNING, __file__, 1,
                                                               "a pekit warning", None, None)
        assert keep.filter(plain) is True
    finally:
        own.handlers.clear()


def test_update_changes_context_and_category_and_keeps_the_views(cli: Any, stocked: dict[str, Path]) -> None:
    m = stocked["memory"]
    code, out, err = cli("update", "CAT", "--context", "my cat, loves the sun", "--memory", m, "--json")
    assert code == 0, err
    assert json.loads(out) == {"name": "cat", "category": "cat", "context": "my cat, loves the sun", "memory": str(m)}
    code, out, _ = cli("list", "--memory", m, "--json")
    assert [(r["context"], r["views"]) for r in json.loads(out)] == [("my cat, loves the sun", 1)]
    before = digest(m)
    code, _, err = cli("update", "cat", "--memory", m)
    assert code == 2 and "--context TEXT, --category TEXT and/or --rename NEW" in err
    code, _, err = cli("update", "cat", "--category", "a\x1b[2Jb", "--memory", m)
    assert_one_line_error(err, "update", "control character U+001B")
    code, _, err = cli("update", "dog", "--context", "x", "--memory", m)
    assert code == 4 and "no concept named 'dog'" in err
    assert digest(m) == before
    code, out, err = cli("update", "cat", "--rename", "Mochi", "--memory", m, "--json")
    assert code == 0 and json.loads(out)["name"] == "Mochi", err
    code, out, _ = cli("recognize", stocked["query"], "--memory", m, "--json")
    assert [d["name"] for d in json.loads(out)] == ["Mochi"]  # recognized under its new name


def test_a_caption_batch_keeps_the_answers_it_got_when_the_lvlm_fails(
        cli: Any, stocked: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """One photo the LVLM refuses is skipped like an unreadable one (named, its record says
    why); two failures in a row mean the LVLM is down: the batch stops there, and the
    captions already paid for are printed, not thrown away."""
    from pekit import personalizer
    from pekit.errors import BackendError

    class Flaky:
        name = "flaky"

        def __init__(self) -> None:
            self.calls = 0

        def generate(self, image: Any, prompt: str, **generation: Any) -> str:
            self.calls += 1
            if self.calls in (2, 4, 5):
                raise BackendError("the LVLM at http://127.0.0.1:9/v1 answered 400: bad request")
            return f"caption {self.calls}"

    lvlm = Flaky()
    monkeypatch.setattr(personalizer, "build_lvlm", lambda *spec: lvlm)
    photos = []
    for i in range(6):
        photos.append(tmp_path / f"p{i}.png")
        photos[-1].write_bytes(stocked["query"].read_bytes())
    code, out, err = cli("caption", *photos, "--json", "--memory", stocked["memory"], "--lvlm", "none")
    records = json.loads(out)
    assert code == 10 and lvlm.calls == 5  # the sixth photo was not asked
    assert [r.get("text") or r["exit_code"] for r in records] == ["caption 1", 10, "caption 3", 10, 10]
    assert f"{photos[1]}: the LVLM at" in err and "(skipped; the other photos go on)" in err
    assert "failed on 2 photos in a row, so the other 1 were not asked" in err


def test_lvlm_options_reach_the_backend_from_the_command_line_and_python(
        cli: Any, stocked: dict[str, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    """What an error's hint says to raise (timeout=, retries=, max_image_side=) can be set
    without Python: --lvlm-option KEY=VALUE; an option the backend does not take is named."""
    from pekit import Personalizer, personalizer
    from pekit.answer.none import NoneLVLM
    from pekit.errors import InvalidInputError

    p = Personalizer(memory=str(stocked["memory"]), lvlm="openai:http://127.0.0.1:9/v1#m",
                     lvlm_options={"timeout": 7, "retries": 0, "api_key_env": None})
    assert (p.lvlm.timeout, p.lvlm.retries, p.lvlm.api_key_env) == (7, 0, None)
    p.close()
    seen: list[Any] = []
    real = personalizer.build_lvlm
    monkeypatch.setattr(personalizer, "build_lvlm", lambda *a: seen.append(a[2]) or real(*a))
    code, _, err = cli("ask", stocked["query"], "What is this?", "--memory", stocked["memory"], "--lvlm",
                       "openai:http://127.0.0.1:9/v1#m", "--lvlm-option", "timeout=0.5", "--lvlm-option",
                       "retries=0", "--lvlm-option", "stream=false")
    assert seen == [{"timeout": 0.5, "retries": 0, "stream": False}]
    assert code == 10 and "cannot reach the LVLM server" in err  # nothing listens on port 9
    code, _, err = cli("ask", stocked["query"], "What is this?", "--memory", stocked["memory"], "--lvlm",
                       "openai:http://127.0.0.1:9/v1#m", "--lvlm-option", "colour=blue")
    assert code == 2
    assert_one_line_error(err, "ask", "takes no option 'colour'; its options: model, ")
    with pytest.raises(InvalidInputError, match="lvlm_options are for an LVLM given by name"):
        Personalizer(lvlm=NoneLVLM(), lvlm_options={"timeout": 3})
