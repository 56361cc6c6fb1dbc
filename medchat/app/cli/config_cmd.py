"""`medchat config show|set KEY VALUE|path`: the settings in config.toml, the environment and flags."""

from __future__ import annotations



def register(sub) -> None:
    p = sub.add_parser("config", help="show or change the settings in config.toml",
                       description="Settings come from their default, then config.toml, then the environment, "
                                   "then a command's flags.")
    cs = p.add_subparsers(dest="config_command", metavar="{show,set,path}")
    show = cs.add_parser("show", help="the effective settings and where each comes from")
    show.add_argument("--json", action="store_true", help="one JSON object")
    show.set_defaults(func=cmd_show)
    st = cs.add_parser("set", help="check a value and write it to config.toml")
    st.add_argument("key", help="section.name, e.g. chat.key_facts (see `medchat config show`)")
    st.add_argument("value")
    st.set_defaults(func=cmd_set)
    cs.add_parser("path", help="print the path of config.toml").set_defaults(func=cmd_path)
    p.set_defaults(func=cmd_show)


def _rows() -> list[dict]:
    import os

    from medchat.core.config import BY_FIELD, AppConfig, config_path

    config, sources = AppConfig.resolve(config_path(), env=os.environ)
    return [{"key": BY_FIELD[name].key, "value": value, "source": sources[name], "env": BY_FIELD[name].env[0],
             "help": BY_FIELD[name].help} for name, value in config.to_dict().items()]


def cmd_show(args) -> int:
    from medchat.app.cli.common import show_result
    from medchat.core.config import config_path

    result = {"path": str(config_path()), "settings": _rows()}

    def lines(res):
        yield f"{res['path']}"
        for row in res["settings"]:
            yield f"{row['key']} = {_text(row['value'])}  ({row['source']}; env {row['env']})"

    return show_result(result, getattr(args, "json", False), lines=lines)


def _text(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return '""' if value == "" else str(value)


def cmd_set(args) -> int:
    from medchat.core.config import AppConfig, config_path, set_value

    if args.key == "safety.region":  # the triage room knows the region codes
        from dataclasses import replace

        from medchat.app.triage import region_for

        region_for(replace(AppConfig(), region=args.value))
    value = set_value(args.key, args.value)
    print(f"{args.key} = {_text(value)}  ({config_path()})")
    return 0


def cmd_path(args) -> int:
    from medchat.core.config import config_path

    print(config_path())
    return 0


