"""What an app built on `Personalizer` relies on beyond the happy path: bad input refused
before any backbone pass with memory untouched, text fields as said to the LVLM, a store
shared between Personalizers, models built once across threads, streams that follow the
memory."""

from __future__ import annotations

import dataclasses
import io
import logging
import threading
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from pekit.errors import (
    BackboneMismatchError,
    BackendError,
    ConceptNotFoundError,
    DuplicateConceptError,
    ImageError,
    InvalidInputError,
    MemoryStoreError,
)
from pekit.memory import MAX_CONTEXT_LENGTH, SqliteMemory

CAT_BOX = [100, 20, 320, 290]


@pytest.fixture
def p(make_personalizer: Any, chelsea: np.ndarray) -> Any:
    """A memory holding the cat 'Tom'; ``p.passes`` counts backbone passes from here on."""
    p = make_personalizer()
    p.introduce("Tom", chelsea, boxes=[CAT_BOX], category="cat", context="the neighbour's cat")
    encode = p.pipeline.encode
    p.passes = 0

    def counted(*args: Any, **kwargs: Any) -> Any:
        p.passes += 1
        return encode(*args, **kwargs)

    p.pipeline.encode = counted
    return p


def _state(p: Any) -> list[Any]:
    return [(c.name, c.category, c.context, len(c.views), c.updated) for c in p.concepts()]


# ---- refused before any backbone pass, memory untouched ------------------------------------------
@pytest.mark.parametrize(("kwargs", "error", "words"), [
    ({"name": "Rex", "context": "x" * (MAX_CONTEXT_LENGTH + 1)}, InvalidInputError, "keep it to 2,000"),
    ({"name": "Rex", "category": "dog\x1b[2J"}, InvalidInputError, "control character U\\+001B"),
    ({"name": "Rex", "context": "good dog\u202e"}, InvalidInputError, "control character U\\+202E"),
    ({"name": "Re\u200bx"}, InvalidInputError, "invisible character U\\+200B"),
    ({"name": "Ｔｏｍ"}, DuplicateConceptError, "looks the same as the stored concept 'Tom'"),
    ({"name": "x" * 201}, InvalidInputError, "201 characters long"),
    ({"name": "Rex", "masks": [np.ones((300, 451), bool)], "boxes": [CAT_BOX]}, InvalidInputError,
     "both a box and a mask"),
    ({"name": "Rex", "images": ["__chelsea__", "/no/such/photo.jpg"]}, ImageError, "no such file"),
    ({"name": "Rex", "images": {"a.jpg"}}, InvalidInputError, "not a set"),
    ({"name": "Rex", "images": np.zeros((5, 5, 3), np.uint8)}, InvalidInputError, "5 x 5 pixels: too small"),
])
def test_introduce_refuses_before_any_pass(p: Any, chelsea: np.ndarray, kwargs: dict[str, Any], error: type,
                                           words: str) -> None:
    before = _state(p)
    images = kwargs.pop("images", chelsea)
    if isinstance(images, list):
        images = [chelsea if i == "__chelsea__" else i for i in images]
    with pytest.raises(error, match=words):
        p.introduce(images=images, **kwargs)
    assert p.passes == 0 and _state(p) == before


def test_images_may_come_from_any_ordered_iterable_and_a_bare_mask_serves_one_photo(
        p: Any, chelsea: np.ndarray) -> None:
    mask = np.zeros(chelsea.shape[:2], bool)
    mask[20:290, 100:320] = True
    rex = p.introduce("Rex", (img for img in [chelsea]), masks=mask)  # a generator, and a mask not in a list
    assert len(rex.views) == 1 and p.passes >= 1


def test_photos_past_the_memory_budget_are_decoded_again_for_their_pass(p: Any, chelsea: np.ndarray,
                                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    import pekit.introducing as module

    kept = p.introduce("Rex", [chelsea, chelsea[:, ::-1]], boxes=[CAT_BOX, None])
    monkeypatch.setattr(module, "_KEPT_PIXELS", 0)  # nothing kept between the checks and the passes
    again = p.introduce("Rex", [chelsea, chelsea[:, ::-1]], boxes=[CAT_BOX, None], replace=True)
    assert np.allclose(again.views, kept.views, atol=1e-6)


def test_update_changes_what_the_lvlm_is_told_without_a_pass(p: Any, chelsea: np.ndarray) -> None:
    tom = p.get("Tom")
    gen = p.memory.generation(namespace=p.namespace)
    same = p.update("tom", context="the neighbour's cat")  # nothing to change: nothing written
    assert same.updated == tom.updated and p.get("Tom").updated == tom.updated
    assert p.memory.generation(namespace=p.namespace) == gen
    new = p.update("tom", context="the neighbour's cat, loves the sun\non the wall", category="tabby")
    assert (new.context, new.category, len(new.views)) == ("the neighbour's cat, loves the sun\non the wall",
                                                          "tabby", len(tom.views))
    assert p.passes == 0 and "loves the sun" in p.ask(chelsea, "Where is Tom?").prompt
    with pytest.raises(InvalidInputError, match="control character"):
        p.update("Tom", category="a\nb")  # a category is one line
    assert p.get("Tom").category == "tabby"


def test_rename_keeps_views_and_corrections_and_refuses_a_taken_name(p: Any, chelsea: np.ndarray) -> None:
    p.introduce("Rex", chelsea[:, ::-1], boxes=[None])
    tom = p.get("Tom")
    fixed = p.memory.modify("Tom", lambda c: dataclasses.replace(c, meta={**c.meta, "corrections": [{"negatives": 1}]},
                                                                 negatives=c.views[:1]))
    before = p.memory.generation(namespace=p.namespace)
    for taken in ("Rex", "rex"):
        with pytest.raises(DuplicateConceptError, match=f"cannot rename 'Tom' to '{taken}': that name is taken"):
            p.update("Tom", rename=taken)
    for alike in ("Ｒｅｘ", "ＲＥＸ"):  # Rex in full-width letters: refused as introduce refuses it
        with pytest.raises(DuplicateConceptError, match=f"'{alike}' looks the same as the stored concept 'Rex'"):
            p.update("Tom", rename=alike)
    for bad, words in (("", "non-empty"), ("Bo\x1b[31m", "control character"), ("x" * 201, "characters long")):
        with pytest.raises(InvalidInputError, match=words):
            p.update("Tom", rename=bad)
    assert p.memory.generation(namespace=p.namespace) == before  # nothing was written
    bobby = p.update("tom", rename=" Bobby ", context="the neighbour's cat")
    assert (bobby.name, bobby.id, bobby.context) == ("Bobby", tom.id, "the neighbour's cat")
    assert np.array_equal(bobby.views, tom.views) and np.array_equal(bobby.negatives, fixed.negatives)
    assert bobby.meta["corrections"] == [{"negatives": 1}]
    with pytest.raises(ConceptNotFoundError):
        p.get("Tom")
    assert "Bobby" in list(p.recognize(chelsea).name)  # the matcher sees the new name (its cache too)
    assert p.update("BOBBY", rename="bobby").name == "bobby"  # a change of case only is a rename too
    assert p.update("bobby", rename="ｂｏｂｂｙ").name == "ｂｏｂｂｙ"  # it may look like itself
    p.update("Rex", rename="Mr Rex")
    with pytest.raises(DuplicateConceptError, match="'Mr  Rex' looks the same as the stored concept 'Mr Rex'"):
        p.introduce("Mr  Rex", chelsea, boxes=[CAT_BOX])  # two spaces are drawn as one
    # two such names stored by an older pekit: a change that resends one's own name is no rename
    p.memory.add(dataclasses.replace(p.get("Mr Rex"), id=-1, name="Mr  Rex"))
    assert p.update("Mr Rex", rename="Mr Rex", context="resent").context == "resent"


# ---- ask and caption -------------------------------------------------------------------------------
@pytest.mark.parametrize(("kwargs", "words"), [
    ({"question": None}, "ask needs a question"),
    ({"question": "Where is Tom?", "max_tokens": 10}, "unknown option max_tokens"),
    ({"question": "Where is Tom?", "max_new_tokens": -1}, "max_new_tokens must be a positive integer"),
    ({"question": "Where is Tom?", "fps": 2.0}, "unknown option fps; .* \\(and fps, max_frames for a video\\)"),
    ({"question": "Where is Tom?\x1b[31m"}, "control character U\\+001B"),
])
def test_ask_refuses_before_any_pass(p: Any, chelsea: np.ndarray, kwargs: dict[str, Any], words: str) -> None:
    with pytest.raises(InvalidInputError, match=words):
        p.ask(chelsea, **kwargs)
    assert p.passes == 0


def test_an_lvlm_must_answer_and_answer_text(make_personalizer: Any, chelsea: np.ndarray) -> None:
    with pytest.raises(InvalidInputError, match=r"lvlm must be a spec .* got int"):
        make_personalizer(lvlm=42)

    class Silent:
        name = "silent"

        def generate(self, image: Any, prompt: str, **kwargs: Any) -> None:
            return None

    with pytest.raises(BackendError, match="the LVLM silent answered NoneType, not text"):
        make_personalizer(lvlm=Silent()).caption(chelsea)


# ---- explain ---------------------------------------------------------------------------------------
def test_explain_checks_the_backbone_as_recognize_does(chelsea: np.ndarray, make_personalizer: Any) -> None:
    from pekit.memory import open_memory
    from pekit.types import Concept

    memory = open_memory("memory://")
    v = np.random.default_rng(0).normal(size=(1, 384)).astype(np.float32)
    memory.add(Concept("Rex", v / np.linalg.norm(v), backbone="hf:facebook/dinov2-small/layer-1/res224"))
    other = make_personalizer(memory=memory)  # its vectors are another backbone's: no map can mean anything
    for call in (other.recognize, other.explain):
        with pytest.raises(BackboneMismatchError):
            call(chelsea)


# ---- a store shared, models built once ---------------------------------------------------------------
def test_closing_a_sibling_or_a_borrower_leaves_the_shared_store_open(tmp_path: Path, make_personalizer: Any,
                                                                     chelsea: np.ndarray) -> None:
    store = SqliteMemory(tmp_path / "m.db")
    owner = make_personalizer(memory=store)
    owner.for_namespace("alice").close()  # a request handler's `with p.for_namespace(user) as q:`
    make_personalizer(memory=store).close()
    assert owner.concepts() == []  # still open
    opened = make_personalizer(memory=str(tmp_path / "n.db"))
    opened.close()  # it opened its store from a path: closing closes it
    with pytest.raises(MemoryStoreError, match="closed"):
        opened.concepts()
    given = make_personalizer(memory=store, own_memory=True)  # the CLI's: it opened the store for it
    given.close()
    with pytest.raises(MemoryStoreError, match="closed"):
        store.count()


def test_models_are_built_once_however_many_threads_ask(make_personalizer: Any,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    import time

    import pekit.personalizer as module

    built: list[int] = []
    real = module.build_pipeline

    def slow_build(*args: Any, **kwargs: Any) -> Any:
        built.append(1)
        time.sleep(0.2)  # long enough for every thread to arrive while the first builds
        return real(*args, **kwargs)

    monkeypatch.setattr(module, "build_pipeline", slow_build)
    q = make_personalizer()
    got: list[Any] = []
    threads = [threading.Thread(target=lambda: got.append(q.pipeline)) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(built) == 1 and len({id(g) for g in got}) == 1


# ---- recognize_many --------------------------------------------------------------------------------
@pytest.mark.parametrize(("images", "kwargs", "words"), [
    (5, {}, "takes an iterable of photos"),
    ("photo.jpg", {}, "for one photo use recognize"),
    (io.BytesIO(b"\x89PNG..."), {}, "for one photo use recognize"),  # not its lines
    (memoryview(b"\x89PNG..."), {}, "for one photo use recognize"),  # not its bytes
    (np.zeros((8, 8, 3), np.uint8), {}, "for one photo use recognize"),  # not its rows; (N, H, W, 3) is a batch
    ([], {"workers": "2"}, "workers must be a whole number"),
    ([], {"errors": "skip"}, "errors must be 'raise' or 'return'"),
])
def test_recognize_many_refuses_at_the_call(p: Any, images: Any, kwargs: dict[str, Any], words: str) -> None:
    with pytest.raises(InvalidInputError, match=words):
        p.recognize_many(images, **kwargs)  # not at the first photo: a generator would wait for it


def test_recognize_many_can_return_errors_in_place_and_follows_the_memory(p: Any, chelsea: np.ndarray,
                                                                         tmp_path: Path) -> None:
    bad = tmp_path / "notes.jpg"
    bad.write_text("not a photo")
    results = list(p.recognize_many([chelsea, bad, chelsea], errors="return"))
    assert isinstance(results[1], ImageError) and [r.name.tolist() for r in (results[0], results[2])] == [["Tom"]] * 2
    stream = p.recognize_many([chelsea, chelsea, chelsea])
    assert next(stream).name.tolist() == ["Tom"]
    p.forget("Tom")  # forgotten mid-stream: not named in the photos after
    assert [d.name.tolist() for d in stream] == [[], []]


def test_recognize_on_an_empty_memory_says_so_once(make_personalizer: Any, p: Any, chelsea: np.ndarray,
                                                   caplog: pytest.LogCaptureFixture) -> None:
    q = make_personalizer(memory="memory://")
    with caplog.at_level(logging.WARNING, logger="pekit.personalizer"):
        q.recognize(chelsea)
        q.recognize(chelsea)
        q.for_namespace("bob").recognize(chelsea)  # a service's next user: not again
    assert caplog.text.count("holds no concepts") == 1 and "must_exist=True" in caplog.text
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="pekit.personalizer"):
        p.for_namespace("alice").recognize(chelsea)  # a user with nothing yet, in a memory that holds Tom
    assert "holds no concepts" not in caplog.text


def test_explain_draws_parts_in_a_namespace_too_large_to_keep_them_all(p: Any, chelsea: np.ndarray,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    """Over `EAGER_CONCEPTS` concepts the matching gallery loads parts lazily; the heat map must
    still be Tom's parts, not his view embeddings."""
    import pekit.retrieve.explain as explain_module
    from pekit.retrieve.cache import EAGER_CONCEPTS
    from pekit.types import Concept

    tom = p.get("Tom")
    rng = np.random.default_rng(0)
    for i in range(EAGER_CONCEPTS):
        v = rng.normal(size=(1, tom.views.shape[1])).astype(np.float32)
        parts = rng.normal(size=(4, tom.views.shape[1])).astype(np.float32)
        p.memory.add(Concept(f"thing{i}", v / np.linalg.norm(v), parts=parts / np.linalg.norm(parts, axis=1,
                                                                                           keepdims=True),
                             backbone=p.pipeline.fingerprint))
    drawn: list[int] = []
    real = explain_module.part_similarity_map
    monkeypatch.setattr(explain_module, "part_similarity_map",
                        lambda unit, parts, shape: drawn.append(len(parts)) or real(unit, parts, shape))
    figure = p.explain(chelsea)
    assert figure.ndim == 3 and drawn == [len(tom.parts)] != [len(tom.views)]


def test_two_look_alike_names_introduced_at_once_leave_one(p: Any, chelsea: np.ndarray,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    """Another process stores 'Ｍｉｍｉ' while this one's passes run for 'Mimi' (each checked
    the names before its passes): the later takes itself back, so the memory holds one."""
    import dataclasses

    from pekit.errors import DuplicateConceptError

    real_add = p.memory.add

    def add_with_a_rival(concept: Any, **kwargs: Any) -> Any:
        if concept.name == "Mimi":  # the other process's write lands first
            real_add(dataclasses.replace(concept, name="Ｍｉｍｉ"))
        return real_add(concept, **kwargs)

    monkeypatch.setattr(p.memory, "add", add_with_a_rival)
    with pytest.raises(DuplicateConceptError, match="introduced meanwhile"):
        p.introduce("Mimi", chelsea, category="cat")
    names = p.memory.names(namespace=p.namespace)
    assert "Ｍｉｍｉ" in names and "Mimi" not in names


def test_a_library_user_gets_pekits_errors_for_plausible_mistakes(p: Any, chelsea: np.ndarray,
                                                                  tmp_path: Path) -> None:
    """No bare TypeError, ValueError or OSError from deep inside for these."""
    from pekit.errors import ImageError
    from pekit.personalizer import Personalizer

    with pytest.raises(InvalidInputError, match="caption takes no question"):
        p.caption(chelsea, question="What is it?")
    with pytest.raises(InvalidInputError, match="from a file"):
        p.recognize_video(b"\x00\x00\x00\x18ftypmp42")
    with pytest.raises(ImageError, match="not a path this system can open"):
        p.recognize(str(tmp_path / ("x" * 300 + ".jpg")))
    for bad in ({"face_tolerance": "x"}, {"face_tolerance": -1}, {"face_tolerance": float("nan")}, {"faces": 5}):
        with pytest.raises(InvalidInputError, match=r"face_tolerance|faces must be"):
            Personalizer(memory="memory://", **bad)
    assert Personalizer(memory="memory://", face_tolerance=np.float32(0.5)).face_tolerance == 0.5
    boxes = ([30, 0, 451, 300] for _ in range(1))  # a generator, as images may be
    assert len(p.introduce("Mochi", [chelsea], boxes=boxes).views) == 1


def test_recognize_many_takes_a_folder_and_views_one_photo(p: Any, chelsea: np.ndarray, tmp_path: Path,
                                                           make_personalizer: Any) -> None:
    """What the docstrings promise: a folder's path is its photos (sorted, as the CLI takes a
    folder), one photo's path is refused with what to do; `views` takes one photo as
    `introduce` does; a closed Personalizer says how to get a working one."""
    from PIL import Image

    album = tmp_path / "album"
    album.mkdir()
    Image.fromarray(chelsea).save(album / "b.png")
    Image.fromarray(np.ascontiguousarray(chelsea[:, ::-1])).save(album / "a.png")
    (album / "notes.txt").write_text("not a photo")
    got = list(p.recognize_many(str(album)))
    assert [d.name.tolist() for d in got] == [["Tom"], ["Tom"]]
    assert got[1] == p.recognize(album / "b.png") and list(p.recognize_many(album)) == got  # sorted; a Path too
    with pytest.raises(InvalidInputError, match="or a folder's path, got str; for one photo use recognize"):
        p.recognize_many(str(album / "a.png"))
    assert len(p.views(str(album / "a.png"), boxes=[CAT_BOX])) == 1
    closed = make_personalizer(memory=str(tmp_path / "m.db"))
    closed.close()
    with pytest.raises(MemoryStoreError, match=r"is closed .*a new Personalizer on it"):
        closed.recognize(chelsea)
