import numpy as np

from memlane.embed.tokens import PROBES, direct_tokenizer

TEXTS = [
    "When did Melanie paint a sunrise?",
    "  Caroline went to the LGBTQ support group on 7 May 2023.  ",
    "naïve café résumé — 'quotes' and \"double quotes\" (brackets) [more] {braces}",
    "word " * 400,
    "",
]


def _as_arrays(features):
    return {k: np.asarray(v.numpy() if hasattr(v, "numpy") else v, dtype=np.int64)
            for k, v in features.items() if k in ("input_ids", "attention_mask", "token_type_ids")}


def test_the_direct_tokenizer_gives_the_models_own_inputs(minilm):
    tokenize = direct_tokenizer(minilm.model, minilm._features)
    assert tokenize is not None
    for batch in [[t] for t in TEXTS] + [TEXTS]:
        ours, theirs = tokenize(batch), _as_arrays(minilm._features(batch))
        assert set(ours) == set(theirs)
        for name in theirs:
            assert ours[name].dtype == np.int64 and np.array_equal(ours[name], theirs[name]), (name, batch)
    assert tokenize(["word " * 400])["input_ids"].shape == (1, minilm.max_seq_length)  # truncated at the limit


def test_a_tokenizer_that_differs_on_a_probe_is_not_used(minilm):
    def differs_on_one_probe(texts):  # a "model" whose inputs differ from the core's on one probe
        features = _as_arrays(minilm._features(texts))
        if texts and texts[0] == PROBES[3]:
            features["input_ids"] = features["input_ids"] + 1
        return features

    assert direct_tokenizer(minilm.model, differs_on_one_probe) is None


def test_a_model_without_a_tokenizer_core_keeps_its_own(minilm):
    class NoCore:
        tokenizer = object()
        max_seq_length = 256

    assert direct_tokenizer(NoCore(), minilm._features) is None


def test_the_onnx_path_embeds_with_the_direct_tokenizer_and_the_same_vectors(minilm):
    if minilm.onnx_encoder() is None:  # this model runs on torch here: the direct path is not used
        assert minilm._onnx_tokenize is None
        return
    assert minilm._onnx_tokenize != minilm._features
    reference = minilm._encode_torch(TEXTS[:3])
    assert np.allclose(minilm.encode(TEXTS[:3]), reference, atol=1e-5)
    assert np.allclose(minilm.encode(TEXTS[:1], purpose="query"), reference[:1], atol=1e-5)
