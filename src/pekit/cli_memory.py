"""The CLI commands that fill and tend the memory: ``introduce``, ``list``, ``forget``,
``correct``, ``add-view``, ``update``, ``copy`` and ``repair`` (`pekit.cli` dispatches to them), and
how every command opens the memory it names and a `Personalizer` on it.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
from typing import TYPE_CHECKING, Any

from pekit.errors import InvalidInputError, PekitError

if TYPE_CHECKING:
    from pekit.personalizer import Personalizer

__all__ = ["cmd_add_view", "cmd_copy", "cmd_correct", "cmd_forget", "cmd_introduce", "cmd_list", "cmd_repair",
           "cmd_update", "named_memory", "open_personalizer", "shown_line"]


def named_memory(args: argparse.Namespace, *, creates: bool = False) -> Any:
    """The memory the command names; only a command that ``creates`` one may name a missing file.
    A misspelt ``--preset`` is refused here too, by the commands that load no model (`list`,
    `forget`...), as by those that do."""
    from pekit.memory import open_memory
    from pekit.presets import get_preset

    if getattr(args, "preset", None) is not None:
        get_preset(args.preset)
    named = bool(args.memory) or bool(os.environ.get("PEKIT_MEMORY", "").strip())
    return open_memory(args.memory, must_exist=named and not creates,
                       skip_damaged=bool(getattr(args, "skip_damaged", False)))


def open_personalizer(args: argparse.Namespace, *, creates: bool = False, **extra: Any) -> Personalizer:
    """A `Personalizer` on the memory the command names (`named_memory`), with its ``--preset``,
    ``--namespace`` and, where the command has them, ``--threshold``, ``--lvlm`` (and its
    ``--lvlm-option``), ``--faces`` and ``--face-tolerance``; it owns the memory."""
    from pekit.personalizer import Personalizer

    kwargs: dict[str, Any] = {}
    if getattr(args, "threshold", None) is not None:
        kwargs["threshold"] = args.threshold
    if getattr(args, "lvlm", None):
        kwargs["lvlm"] = args.lvlm
    if getattr(args, "lvlm_option", None):
        kwargs["lvlm_options"] = dict(args.lvlm_option)
    if getattr(args, "faces", None):
        kwargs["faces"] = args.faces
    if getattr(args, "face_tolerance", None) is not None:
        kwargs["face_tolerance"] = args.face_tolerance
    memory = named_memory(args, creates=creates)
    try:
        return Personalizer(args.preset, memory=memory, namespace=args.namespace, own_memory=True, **kwargs, **extra)
    except BaseException:
        memory.close()
        raise


def shown_line(text: Any) -> str:
    """``text`` (a name, category, context...) on one terminal line: controls and line breaks
    escaped, not run (`pekit.memory.printable`)."""
    from pekit.memory import printable

    return printable(str(text))


def cmd_introduce(args: argparse.Namespace) -> int:
    """``pekit introduce NAME PHOTO...``: a new concept, the only command that may create the memory."""
    from pekit.extract.views import SAME_PICTURES
    from pekit.images import list_images
    from pekit.personalizer import CONSISTENCY_MARGIN, stored_consistency

    images = list_images(args.images)
    if args.box and len(args.box) != len(images):
        raise InvalidInputError(f"got {len(args.box)} --box for {len(images)} images; give one per image, in order")
    with open_personalizer(args, creates=True) as p:
        c = p.introduce(args.name, [str(i) for i in images], category=args.category, context=args.context,
                        boxes=args.box, replace=args.replace, kind=args.kind)
        try:  # (the library warns when it is at the threshold or above)
            alike = p.most_alike(c.name)
        except PekitError:  # another concept's record is damaged (recognize names it): the introduce stands
            alike = None
    agreement = stored_consistency(c)
    threshold = p.pipeline.config.threshold
    twins = c.meta.get(SAME_PICTURES, [])
    record = {"name": c.name, "id": c.id, "kind": args.kind, "category": c.category, "context": c.context,
              "views": len(c.views), "consistency": agreement, "consistency_low": p.low_consistency(c),
              "same_pictures": twins,
              "most_alike": None if alike is None else {"name": alike[0], "agreement": alike[1]},
              "memory": p.memory.uri}
    if args.json:
        print(json.dumps(record))
    else:
        print(f"introduced '{shown_line(c.name)}' ({shown_line(c.category) or 'no category'}) from {len(c.views)} "
              f"view(s) into {p.memory.uri}")
        if agreement is not None:  # below the threshold, the library's warning says what to do
            # each photo against the concept made of the others: fewer views than the concept has, so it
            # reads below the threshold before new photos are missed; the warning starts at CONSISTENCY_MARGIN
            print(f"its photos match one another at {agreement:.3f} (each against the others; pekit warns under "
                  f"{threshold - CONSISTENCY_MARGIN:.2f}, {CONSISTENCY_MARGIN:.2f} below the recognition threshold "
                  f"{threshold:.2f})" + (" -- counting copies of the same picture, which match themselves"
                                         if twins else ""))
    return 0


def cmd_list(args: argparse.Namespace) -> int:
    """``pekit list``: the concepts of the namespace, one a line."""
    with named_memory(args) as memory:
        concepts = memory.summaries(namespace=args.namespace)  # no vectors: fast at 10^4 concepts
        rows = [{"name": c.name, "id": c.id, "kind": c.kind, "category": c.category, "context": c.context,
                 "views": c.views, "threshold": c.threshold, "corrections": c.corrections} for c in concepts]
        uri = memory.uri
    if args.json:
        print(json.dumps(rows))
    elif not rows:
        print(f"no concepts in {uri} (namespace '{shown_line(args.namespace)}'); add one with `pekit introduce`")
    else:
        shown = [(shown_line(r["name"]), shown_line(r["category"]), shown_line(r["context"])) for r in rows]
        width = max(len(name) for name, _, _ in shown)
        for r, (name, category, context) in zip(rows, shown, strict=True):
            extra = f" — {context}" if context else ""
            fixes = r["corrections"]
            fixed = f", {fixes} correction{'s' if fixes != 1 else ''}" if fixes else ""
            print(f"{name:<{width}}  {category or '-':<14} {r['views']} view(s){fixed}{extra}")
    return 0


def cmd_forget(args: argparse.Namespace) -> int:
    """``pekit forget NAME``."""
    with named_memory(args) as memory:
        name = memory.remove(args.name, namespace=args.namespace)  # as stored: `forget bo` forgets 'Bo'
    _report(args, {"forgotten": name}, f"forgot '{shown_line(name)}'")
    return 0


def _report(args: argparse.Namespace, record: dict, text: str) -> None:
    """A memory command's one-line outcome: ``record`` as JSON with ``--json``, else ``text``."""
    print(json.dumps(record) if args.json else text)


def _photo_or_undo(args: argparse.Namespace, with_photo: str, undo: str) -> None:
    """`InvalidInputError` unless a feedback command got a PHOTO or ``--undo``, and ``--undo``
    none of the options that say where in a PHOTO (``--box``, ``--threshold``)."""
    if args.undo == (args.image is not None):
        raise InvalidInputError(f"give a PHOTO ({with_photo}) or --undo ({undo}), not both or neither")
    given = [f"--{k}" for k in ("box", "threshold") if getattr(args, k, None) is not None]
    if args.undo and given:
        raise InvalidInputError(f"{' and '.join(given)} say(s) where in a PHOTO; --undo takes no PHOTO ({undo})")


def cmd_correct(args: argparse.Namespace) -> int:
    """``pekit correct PHOTO --not NAME`` (a negative view), or ``--undo`` the last one."""
    _photo_or_undo(args, "pekit correct PHOTO --not NAME", "pekit correct --undo --not NAME")
    from pekit.feedback import CORRECTIONS

    with open_personalizer(args) as p:
        # --threshold is the Personalizer's, as for `recognize --threshold`: the same detections
        c = p.undo_correction(args.name) if args.undo else p.correct(args.image, args.name, box=args.box)
    record = {"name": c.name, "negatives": len(c.meta.get(CORRECTIONS, [])), "memory": p.memory.uri}
    if args.json:
        print(json.dumps(record))
    elif args.undo:
        print(f"took back the last correction of '{shown_line(c.name)}': {record['negatives']} negative view(s) left")
    else:
        undo = ["pekit", "correct", "--undo", "--not", c.name, *(["--memory", args.memory] if args.memory else []),
                *(["--namespace", args.namespace] if args.namespace != "default" else [])]
        print(f"'{shown_line(c.name)}' now has {record['negatives']} negative view(s): that region of {args.image} "
              f"will not be called '{shown_line(c.name)}' again (a mistake? {shown_line(shlex.join(undo))})")
    return 0


def cmd_add_view(args: argparse.Namespace) -> int:
    """``pekit add-view NAME PHOTO``: one more photo of a concept; ``--undo``: the last one taken back."""
    _photo_or_undo(args, "pekit add-view NAME PHOTO", "pekit add-view NAME --undo")
    with open_personalizer(args) as p:
        c = p.undo_view(args.name) if args.undo else p.add_view(args.name, args.image, box=args.box)
    text = (f"took back the last photo added to '{shown_line(c.name)}': it now has {len(c.views)} view(s)"
            if args.undo else f"'{shown_line(c.name)}' now has {len(c.views)} view(s)")
    _report(args, {"name": c.name, "views": len(c.views), "memory": p.memory.uri}, text)
    return 0


def cmd_update(args: argparse.Namespace) -> int:
    """``pekit update NAME [--context TEXT] [--category TEXT] [--rename NEW]``: what the LVLM is
    told, or the name, photos kept."""
    if args.context is None and args.category is None and args.rename is None:
        raise InvalidInputError("say what to change: --context TEXT, --category TEXT and/or --rename NEW")
    with open_personalizer(args) as p:
        c = p.update(args.name, context=args.context, category=args.category, rename=args.rename)
    _report(args, {"name": c.name, "category": c.category, "context": c.context, "memory": p.memory.uri},
            f"'{shown_line(c.name)}': {shown_line(c.category) or '-'} — {shown_line(c.context) or '(no context)'}")
    return 0


def cmd_copy(args: argparse.Namespace) -> int:
    """``pekit copy DEST``: the memory's concepts (or one ``--namespace``'s) into another memory."""
    from pekit.memory import open_memory
    from pekit.memory.copying import copy_concepts

    dest = args.destination.strip()
    if "://" not in dest and (dest.endswith(("/", os.sep)) or os.path.isdir(os.path.expanduser(dest))):
        raise InvalidInputError(f"'{dest}' names a folder; give the file to copy into, e.g. "
                                f"{os.path.join(dest, 'memory.db')}")
    with named_memory(args) as source, open_memory(dest) as destination:
        if getattr(getattr(destination, "_db", None), "path", "") is None:  # memory://, :memory:
            raise InvalidInputError(f"{dest} lives only as long as this command; copy into a file "
                                    "(pekit copy backup.db) or a postgresql:// URI")
        copied = copy_concepts(source, destination, namespace=args.namespace, names=args.names,
                               into_namespace=args.to_namespace, replace=args.replace)
        uris = source.uri, destination.uri
    count = sum(len(names) for names in copied.values())
    if args.json:
        print(json.dumps({"from": uris[0], "to": uris[1], "copied": copied, "count": count}))
    elif not copied:
        where = f"namespace '{shown_line(args.namespace)}' of " if args.namespace is not None else ""
        print(f"no concepts in {where}{uris[0]}: nothing copied")
    else:
        print(f"copied {count} concept(s) from {uris[0]} to {uris[1]}")
        for ns, names in copied.items():
            print(f"  namespace '{shown_line(ns)}': " + ", ".join(shown_line(n) for n in names))
    return 0


def cmd_repair(args: argparse.Namespace) -> int:
    """``pekit repair [--dry-run]``: remove (or only report) the concepts whose stored rows are damaged."""
    with named_memory(args) as memory:
        if not hasattr(memory, "repair"):
            raise InvalidInputError(f"the memory {memory.uri} cannot be repaired by pekit")
        found = memory.repair(dry_run=args.dry_run)
        uri = memory.uri
    if args.json:
        print(json.dumps({"memory": uri, "damaged": found, "removed": [] if args.dry_run else found}))
        return 0
    if not found:
        print(f"no damaged concepts in {uri}")
        return 0
    verb = "damaged (not removed: --dry-run)" if args.dry_run else "removed"
    for item in found:
        print(f"{verb}: '{shown_line(item['name'])}' (id {item['id']}, namespace '{shown_line(item['namespace'])}'): "
              f"{item['problem']}")
    if not args.dry_run:
        print(f"removed {len(found)} damaged concept(s) from {uri}; introduce them again")
    return 0
