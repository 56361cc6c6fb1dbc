"""Pilot tests of the modal screens: profile picker, history browser, help."""

from __future__ import annotations

from tests.support.fake_engine import wait_until

from medchat.app.tui.screens.help_screen import HelpScreen
from medchat.app.tui.screens.history_browser import HistoryBrowser
from medchat.app.tui.screens.profile_picker import ProfilePicker
from medchat.app.tui.widgets.chat_input import ChatInput
from medchat.app.tui.widgets.status_bar import StatusBar
from medchat.app.tui.widgets.user_message import UserMessage

SIZE = (100, 34)


async def send(app, pilot, text):
    box = app.query_one(ChatInput)
    box.load_text(text)
    box.submit()
    await pilot.pause()
    await wait_until(lambda: not app.busy, pilot=pilot)
    await pilot.pause()


async def test_profile_picker_shows_manifest_and_switches(make_app):
    app, session, engine = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("ctrl+p")
        await wait_until(lambda: isinstance(app.screen, ProfilePicker), pilot=pilot)
        details = app.screen.query_one("#profile-details")
        assert "stage:  base" in str(details.render())
        await pilot.press("down")  # base -> covid-dpo (names are listed base first, then sorted)
        text = str(details.render())
        assert "covid-dpo" in text and "stage:  dpo" in text and "covid-pairs (40 rows)" in text
        assert "reward_acc: 0.8" in text and "covid-sft › covid-dpo" in text
        await pilot.press("enter")
        await wait_until(lambda: session.profile.name == "covid-dpo" and not app.busy, pilot=pilot)
        await pilot.pause()
        assert not isinstance(app.screen, ProfilePicker)
        assert "profile covid-dpo (covid-sft › covid-dpo)" in str(app.query_one(StatusBar).render())


async def test_profile_picker_cannot_pick_a_reward_profile(make_app):
    app, session, engine = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("ctrl+p")
        await wait_until(lambda: isinstance(app.screen, ProfilePicker), pilot=pilot)
        olist = app.screen.query_one("#profile-list")
        assert olist.get_option("judge-rm").disabled and not olist.get_option("covid-sft").disabled
        await pilot.press("escape")
        await pilot.pause()
        assert not isinstance(app.screen, ProfilePicker) and session.profile.name == "base"


async def test_history_search_finds_and_loads_an_old_conversation(make_app, history):
    app, session, engine = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await send(app, pilot, "my zebrafish has a rash")
        old = session.conversation_id
        await send(app, pilot, "/clear")
        await send(app, pilot, "an unrelated question")
        assert session.conversation_id != old
        await pilot.press("ctrl+r")
        await wait_until(lambda: isinstance(app.screen, HistoryBrowser), pilot=pilot)
        await pilot.press(*"zebrafish")
        olist = app.screen.query_one("#history-list")
        await wait_until(lambda: olist.option_count and olist.get_option_at_index(0).id, pilot=pilot)
        assert all(olist.get_option_at_index(i).id.startswith(f"{old}:") for i in range(olist.option_count))
        await pilot.press("enter", "enter")  # Enter in the search box moves to the list, Enter again loads
        await wait_until(lambda: session.conversation_id == old and not app.busy, pilot=pilot)
        await pilot.pause()
        assert [w.text for w in app.query(UserMessage)] == ["my zebrafish has a rash"]


async def test_history_command_opens_browser_with_query(make_app):
    app, session, engine = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await send(app, pilot, "/history nothing-like-this")
        await wait_until(lambda: isinstance(app.screen, HistoryBrowser), pilot=pilot)
        assert app.screen.query_one("#history-search").value == "nothing-like-this"
        olist = app.screen.query_one("#history-list")
        assert olist.option_count == 1 and olist.get_option_at_index(0).disabled


async def test_help_lists_every_registered_command(make_app):
    from medchat.app.commands import REGISTRY

    app, session, engine = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("f1")
        await wait_until(lambda: isinstance(app.screen, HelpScreen), pilot=pilot)
        source = app.screen.query_one("Markdown").source
        for cmd in REGISTRY.commands():
            assert f"/{cmd.name}" in source
        assert "Ctrl+P" in source
        await pilot.press("escape")
        await send(app, pilot, "/help")
        assert isinstance(app.screen, HelpScreen)
