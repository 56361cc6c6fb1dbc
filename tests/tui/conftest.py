"""Fixtures for the TUI pilot tests: a real ProfileStore with fake profiles, a FakeEngine, a session."""

from __future__ import annotations

import pytest

from tests.support.fake_engine import FakeEngine, install_fake_profiles  # noqa: E402


@pytest.fixture
def store():
    from medchat.core.profiles import ProfileStore

    return install_fake_profiles(ProfileStore())


@pytest.fixture
def history():
    from medchat.app.history.store import HistoryStore

    return HistoryStore()


@pytest.fixture
def make_app(store, history):
    """make_app(delay=..., triage=..., retriever=..., embedder=...) -> (app, session, engine)."""

    def build(delay: float = 0.0, triage=None, retriever=None, with_history: bool = True, embedder=None):
        from medchat.app.session import ChatSession
        from medchat.app.tui.app import MedchatApp

        engine = FakeEngine(store, delay=delay)
        session = ChatSession(engine, history=history if with_history else None, kb="default" if retriever else None,
                              retriever=retriever, triage=triage or (lambda text: None), embedder=embedder)
        return MedchatApp(session=session, disclaimer="Not a clinician. In an emergency call your local number."), session, engine

    return build
