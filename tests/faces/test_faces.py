"""`pekit.faces`: dlib detection/embedding, the one-face rule, face matching."""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
import pytest
from PIL import Image

from pekit.errors import BackboneMismatchError, InvalidInputError, MemoryFileError, NothingFoundError
from pekit.faces import FACE_TOLERANCE, FaceGallery, concept_kind, face_reference, match_faces
from pekit.retrieve.nms import box_iou
from pekit.types import Concept, Detections

#: skimage.data.astronaut(): Eileen Collins' face (HOG detection at upsample 1)
FACE_BOX = (175.0, 76.0, 266.0, 167.0)


def resize(img: np.ndarray, scale: float) -> np.ndarray:
    h, w = img.shape[:2]
    return np.asarray(Image.fromarray(img).resize((round(w * scale), round(h * scale)), Image.Resampling.BICUBIC))


def _person(name: str, vectors: np.ndarray, fingerprint: str, cid: int = 1) -> Concept:
    return Concept(name, np.ones((1, 4)), id=cid,
                   meta={"kind": "person", "faces": np.asarray(vectors).tolist(), "face_model": fingerprint})


def test_detects_the_astronaut_face(faces: Any, astronaut: np.ndarray) -> None:
    found = faces.detect(astronaut)
    assert len(found) == 1  # the weak false detection on the flag is below min_score
    assert box_iou(found.xyxy, np.array([FACE_BOX], np.float32))[0, 0] > 0.8
    vec = faces.embed(astronaut, found.xyxy)
    assert vec.shape == (1, 128) and vec.dtype == np.float32


def test_same_face_is_close_and_flipped_half_scale_still_matches(faces: Any, astronaut: np.ndarray) -> None:
    vector, _ = face_reference(faces, astronaut)
    other = np.ascontiguousarray(resize(astronaut, 0.75)[:, ::-1])
    found = faces.detect(other)
    assert len(found) == 1
    d = float(np.linalg.norm(faces.embed(other, found.xyxy)[0] - vector))
    assert d < FACE_TOLERANCE


@pytest.mark.parametrize(
    ("make", "box", "error", "words"),
    [
        (lambda a: np.full((300, 300, 3), 127, np.uint8), None, NothingFoundError, "no face found"),
        (lambda a: np.hstack([a, a]), None, InvalidInputError, "--box"),
        (lambda a: resize(a, 0.4), (60, 20, 120, 80), NothingFoundError, "too small"),
    ],
    ids=["no-face", "two-faces-no-box", "tiny-face"],
)
def test_reference_photo_errors(faces: Any, astronaut: np.ndarray, make: Any, box: Any, error: type,
                                words: str) -> None:
    with pytest.raises(error, match=words):
        face_reference(faces, make(astronaut), box=None if box is None else np.array(box, np.float32))


def test_a_box_picks_one_of_several_faces(faces: Any, astronaut: np.ndarray) -> None:
    pair = np.hstack([astronaut, astronaut])
    _, xyxy = face_reference(faces, pair, box=np.array([512, 0, 1024, 512], np.float32))
    assert xyxy[0] >= 512


def test_match_names_known_faces_once_and_never_strangers(faces: Any, astronaut: np.ndarray) -> None:
    vector, _ = face_reference(faces, astronaut)
    fp = faces.fingerprint
    pair = np.hstack([astronaut, astronaut])
    found = faces.detect(pair)
    vecs = faces.embed(pair, found.xyxy)
    g = FaceGallery.from_concepts([_person("Eileen", vector[None], fp)], fp)
    named = match_faces(found, vecs, g)
    assert named.name.tolist() == ["Eileen"]  # two identical faces, one person: named once
    assert 0 < float(named.score[0]) <= 1
    stranger = FaceGallery.from_concepts([_person("Other", -vector[None], fp)], fp)
    assert len(match_faces(found, vecs, stranger)) == 0
    assert len(match_faces(Detections.empty(), np.zeros((0, 128), np.float32), g)) == 0


def test_gallery_refuses_vectors_of_another_face_model_and_skips_objects() -> None:
    obj = Concept("mug", np.ones((1, 4)))
    assert concept_kind(obj) == "object"
    assert len(FaceGallery.from_concepts([obj], "dlib-face-128@resnet_v1")) == 0
    with pytest.raises(BackboneMismatchError, match="re-introduce"):
        FaceGallery.from_concepts([_person("Lin", np.zeros((1, 128)), "other-model")], "dlib-face-128@resnet_v1")


def test_stored_face_vectors_of_the_wrong_width_name_the_person() -> None:
    fp = "dlib-face-128@resnet_v1"
    assert len(FaceGallery.from_concepts([_person("Lin", np.zeros((2, 128)), fp)], fp, 128)) == 1
    for bad in (np.zeros((1, 3)), np.zeros((2, 64))):  # (2, 64) would have been regrouped into one vector
        with pytest.raises(MemoryFileError, match=r"person 'Lin' is damaged.*not the 128 numbers.*introduce"):
            FaceGallery.from_concepts([_person("Lin", bad, fp)], fp, 128)


def test_add_view_of_a_person_with_damaged_faces_names_them(faces: Any, astronaut: np.ndarray,
                                                            make_personalizer: Any) -> None:
    p = make_personalizer(faces=faces)
    lin = p.introduce("Lin", astronaut, kind="person")
    p.memory.update(dataclasses.replace(lin, meta={**lin.meta, "faces": [[0.0, 1.0, 2.0]]}))
    with pytest.raises(MemoryFileError, match="person 'Lin' is damaged"):
        p.add_view("Lin", astronaut)
    assert p.get("Lin").meta["faces"] == [[0.0, 1.0, 2.0]]  # nothing written


def test_the_cnn_detector_finds_the_face_and_keeps_the_fingerprint(faces: Any, astronaut: np.ndarray) -> None:
    from PIL import Image

    from pekit.faces import load_faces

    small = np.asarray(Image.fromarray(astronaut).resize((400, 400)))  # a 100 px face; the CNN pass takes ~1 s
    cnn = load_faces("dlib-cnn", upsample=0)
    (box,) = cnn.detect(small).xyxy
    (hog,) = faces.detect(small, upsample=1).xyxy
    assert cnn.fingerprint == faces.fingerprint and cnn.detector == "cnn"
    centre = lambda b: np.array([(b[0] + b[2]) / 2, (b[1] + b[3]) / 2])  # noqa: E731
    assert np.abs(centre(box) - centre(hog)).max() < 15  # the same face


def test_a_box_around_several_faces_is_refused_like_a_photo_of_several(faces: Any, astronaut: np.ndarray) -> None:
    """A box must pick one face: one around both is refused, never settled by detector score."""
    pair = np.hstack([astronaut, astronaut])
    with pytest.raises(InvalidInputError, match="2 faces in the box"):
        face_reference(faces, pair, box=np.array([0, 0, 1024, 512], np.float32))


def test_threads_detecting_and_embedding_at_once_get_what_one_thread_gets(faces: Any, astronaut: np.ndarray) -> None:
    """A server detects faces in several requests at once: dlib's detector keeps scratch
    buffers, and shared by threads it gave one photo the other photo's face box."""
    from concurrent.futures import ThreadPoolExecutor

    photos = [astronaut, np.ascontiguousarray(astronaut[:, ::-1]), np.ascontiguousarray(astronaut[64:, 32:])]

    def both(img: np.ndarray) -> tuple[list, np.ndarray]:
        found = faces.detect(img)
        return found.xyxy.tolist(), faces.embed(img, found.xyxy[:1])

    alone = [both(img) for img in photos]
    assert len({str(a[0]) for a in alone}) == 3  # three different answers to tell apart
    with ThreadPoolExecutor(4) as pool:
        together = list(pool.map(both, photos * 8))
    for i, (boxes, vectors) in enumerate(together):
        assert boxes == alone[i % 3][0], f"call {i}"
        np.testing.assert_allclose(vectors, alone[i % 3][1], atol=1e-5)
