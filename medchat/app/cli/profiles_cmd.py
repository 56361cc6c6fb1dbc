"""`medchat profiles list|show|import|remove|rename|export`."""

from __future__ import annotations

import json
import sys


def register(sub) -> None:
    p = sub.add_parser("profiles", help="list and manage installed profiles")
    ps = p.add_subparsers(dest="profiles_cmd", metavar="ACTION", required=True)
    x = ps.add_parser("list", help="list profiles")
    x.add_argument("--json", action="store_true")
    x.set_defaults(func=cmd_list)
    x = ps.add_parser("show", help="show one profile's manifest")
    x.add_argument("name")
    x.add_argument("--json", action="store_true")
    x.set_defaults(func=cmd_show)
    x = ps.add_parser("import", help="install a PEFT LoRA adapter made elsewhere")
    x.add_argument("dir")
    x.add_argument("--name", required=True)
    x.add_argument("--base", default=None, help="base it was made for (default: from adapter_config.json)")
    x.add_argument("--description", default="")
    x.add_argument("--allow-pickle", action="store_true", help="accept adapter_model.bin (can run code!)")
    x.set_defaults(func=cmd_import)
    x = ps.add_parser("remove", help="remove a profile")
    x.add_argument("name")
    x.add_argument("--force", action="store_true", help="remove even if other profiles stack on it")
    x.set_defaults(func=cmd_remove)
    x = ps.add_parser("rename", help="rename a profile (children follow)")
    x.add_argument("old")
    x.add_argument("new")
    x.set_defaults(func=cmd_rename)
    x = ps.add_parser("export", help="export a PEFT adapter dir, or a merged full model with --merged")
    x.add_argument("name")
    x.add_argument("out")
    x.add_argument("--merged", action="store_true")
    x.add_argument("--dtype", default=None, help="float16 | bfloat16 | float32: store the adapter's weights "
                   "in this precision (default: as trained)")
    x.add_argument("--force", action="store_true", help="replace OUT if it exists and is not empty")
    x.set_defaults(func=cmd_export)


def _store():
    from medchat.core.profiles import ProfileStore

    return ProfileStore()


def _summary(p) -> dict:
    return {"name": p.name, "kind": p.kind, "stage": p.stage, "method": p.method, "base": p.base,
            "chain": list(p.chain), "datasets": [d.get("name") for d in p.datasets], "metrics": p.metrics,
            "created": p.created, "description": p.description}


def cmd_list(args) -> int:
    from medchat.app.builtin_profiles import install_builtin

    store = _store()
    try:  # first run: the shipped profiles, when their base is already prepared
        install_builtin(store)
    except Exception as exc:  # noqa: BLE001 - listing must work even with a broken shipped folder
        print(f"medchat: could not install the shipped profiles ({exc})", file=sys.stderr)
    profiles = store.list()
    if args.json:
        print(json.dumps([_summary(p) for p in profiles], ensure_ascii=False))
        return 0
    from rich.console import Console
    from rich.table import Table

    t = Table("name", "kind", "stage", "chain", "base", "datasets", title="medchat profiles")
    for p in profiles:
        t.add_row(p.name, p.kind, p.stage, " → ".join(p.chain) or "-", p.base or "(any)",
                  ", ".join(d.get("name", "") for d in p.datasets) or "-")
    Console().print(t)
    return 0


def cmd_show(args) -> int:
    p = _store().get(args.name)
    if args.json:
        print(json.dumps(_summary(p) | {"generation": p.generation, "kb": p.kb,
                                        "system_prompt": p.system_prompt, "datasets": p.datasets}, ensure_ascii=False))
    else:
        print(p.to_toml() if not p.is_base else "name = \"base\"\n# the base model with no adapter")
    return 0


def cmd_import(args) -> int:
    from medchat.core.profile_io import import_adapter

    p = import_adapter(_store(), args.dir, args.name, args.base, args.allow_pickle, args.description)
    print(f"imported '{p.name}' (base {p.base}); chat with it: /use {p.name}")
    return 0


def cmd_remove(args) -> int:
    _store().remove(args.name, force=args.force)
    print(f"removed '{args.name}'")
    return 0


def cmd_rename(args) -> int:
    p = _store().rename(args.old, args.new)
    print(f"renamed '{args.old}' to '{p.name}'")
    return 0


def cmd_export(args) -> int:
    from medchat.core import profile_io
    from medchat.core.errors import UserError

    if args.merged:
        if args.dtype:
            raise UserError("--dtype applies to an adapter export; drop it or --merged")
        out = profile_io.export_merged(_store(), args.name, args.out, force=args.force)
    else:
        out = profile_io.export_adapter(_store(), args.name, args.out, force=args.force, dtype=args.dtype)
    print(f"exported '{args.name}' to {out}" + (" (merged full model)" if args.merged else " (PEFT adapter)"))
    return 0
