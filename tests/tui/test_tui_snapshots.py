"""Snapshots of the main screen states (run `pytest tests/tui --snapshot-update` after a deliberate
UI change and look at the SVGs). Fixed size, fixed fake stats, no clock, no cursor blink."""

from __future__ import annotations

from tests.support.fake_engine import wait_until

from medchat.app.tui.widgets.chat_input import ChatInput

SIZE = (100, 30)


def steady(app):
    """run_before that stops the input's cursor blinking (its phase would vary between runs)."""

    async def run_before(pilot):
        app.query_one(ChatInput).cursor_blink = False
        await pilot.pause()

    return run_before


def test_empty_chat(make_app, snap_compare):
    app, _, _ = make_app()
    assert snap_compare(app, terminal_size=SIZE, run_before=steady(app))


def test_finished_reply(make_app, snap_compare):
    app, _, _ = make_app()

    async def run_before(pilot):
        await steady(app)(pilot)
        box = app.query_one(ChatInput)
        box.load_text("What helps a sore throat?")
        box.submit()
        await pilot.pause()
        await wait_until(lambda: not app.busy, pilot=pilot)
        await pilot.pause()

    assert snap_compare(app, terminal_size=SIZE, run_before=run_before)


def test_help_screen(make_app, snap_compare):
    app, _, _ = make_app()
    assert snap_compare(app, terminal_size=SIZE, press=["f1"], run_before=steady(app))
