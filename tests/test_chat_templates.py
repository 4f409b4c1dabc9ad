"""SFT with chat templates: tokens identical to transformers' ``apply_chat_template``, and learned
tokens identical to the assistant mask transformers derives from ``{% generation %}`` markers,
although plugtron's templates here carry no markers (it renders prefixes instead)."""

import json
import logging

import attrs
import pytest
from _chat_tokenizers import CONVERSATION, TEMPLATES, TOOL_CONVERSATION, chat_tokenizer_dir

from plugtron.config import FinetuningDatasetConfig
from plugtron.data.chat_template import resolve
from plugtron.data.file_tokenizers import HuggingFaceTokenizer
from plugtron.data.sft_examples import Encoder, load_examples
from plugtron.data.tokenizers import ByteLevelTokenizer
from plugtron.errors import DataError


def reference(directory, messages, marked_template, tools=None):
    """(input_ids, assistant_masks) from transformers, the mask from the marked twin template."""
    from transformers import PreTrainedTokenizerFast

    hf = PreTrainedTokenizerFast.from_pretrained(directory)
    plain = hf.apply_chat_template(messages, tools=tools, tokenize=True)
    out = hf.apply_chat_template(messages, tools=tools, tokenize=True, return_dict=True,
                                 return_assistant_tokens_mask=True, chat_template=marked_template)
    assert out["input_ids"] == plain  # the markers change nothing but the mask
    return plain, [bool(x) for x in out["assistant_masks"]]


def ds_cfg(**kw):
    return FinetuningDatasetConfig(**{"dataset_root": "/unused", "seq_length": 512, "data_format": "chat", **kw})


def encode(tok, record, **kw):
    ids, answer = Encoder(ds_cfg(**kw), tok).encode(record)
    return [ids.tolist(), answer.tolist()]


@pytest.fixture(scope="module", params=sorted(TEMPLATES))
def style_dir(request, tmp_path_factory):
    return request.param, chat_tokenizer_dir(str(tmp_path_factory.mktemp(request.param)), request.param)


def test_tokens_and_mask_equal_transformers(style_dir):
    style, directory = style_dir
    tok = HuggingFaceTokenizer(directory)
    ids, answer = encode(tok, {"messages": CONVERSATION})
    ref_ids, ref_mask = reference(directory, CONVERSATION, TEMPLATES[style](marked=True))
    assert ids == ref_ids
    assert answer == ref_mask and sum(answer) > 0
    learned = tok.detokenize([i for i, a in zip(ids, answer) if a])
    assert "Paris is the capital." in learned and "the dog sat on the log" in learned
    assert "France" not in learned and "helpful" not in learned  # prompt and system never learned


def test_a_template_with_generation_markers_used_as_the_template(style_dir):
    style, directory = style_dir
    marked = TEMPLATES[style](marked=True)
    tok = HuggingFaceTokenizer(directory)
    assert encode(tok, {"messages": CONVERSATION}, chat_template=marked) == list(
        reference(directory, CONVERSATION, marked))


def test_tool_calls_and_tool_role(tmp_path):
    directory = chat_tokenizer_dir(str(tmp_path / "t"), "chatml")
    tok = HuggingFaceTokenizer(directory)
    ids, answer = encode(tok, TOOL_CONVERSATION)
    assert [ids, answer] == list(reference(directory, TOOL_CONVERSATION["messages"], TEMPLATES["chatml"](marked=True),
                                      tools=TOOL_CONVERSATION["tools"]))
    learned = tok.detokenize([i for i, a in zip(ids, answer) if a])
    assert '"city": "Paris"' in learned and "sunny in Paris" in learned and "<tool_response>" not in learned


def test_loss_modes_and_train_false(tmp_path):
    style = "llama3"
    directory = chat_tokenizer_dir(str(tmp_path / style), style)
    tok = HuggingFaceTokenizer(directory)
    ids, mask = reference(directory, CONVERSATION, TEMPLATES[style](marked=True))
    first_end = mask.index(False, mask.index(True))  # end of the first assistant turn
    last_turn = [m and k >= first_end for k, m in enumerate(mask)]
    assert encode(tok, {"messages": CONVERSATION}, loss_mode="last_turn") == [ids, last_turn]
    skip_first = [dict(m, train=False) if k == 2 else m for k, m in enumerate(CONVERSATION)]
    assert encode(tok, {"messages": skip_first}) == [ids, last_turn]
    assert encode(tok, {"messages": CONVERSATION}, loss_mode="full") == [ids, [True] * len(ids)]
    with pytest.raises(ValueError, match="no assistant message to learn"):
        encode(tok, {"messages": [dict(m, train=False) for m in CONVERSATION]})


def _ambiguous_case(tmp_path, template, lines):
    directory = chat_tokenizer_dir(str(tmp_path / "a"), "chatml", template=template)
    root = tmp_path / "data"
    root.mkdir()
    (root / "training.jsonl").write_text("".join(json.dumps(x) + "\n" for x in lines))
    return str(root / "training.jsonl"), HuggingFaceTokenizer(directory)


def test_history_rendered_differently_is_an_error_naming_the_line(tmp_path):
    # Like templates that drop earlier turns' reasoning: history is rendered unlike the last turn.
    template = ("{% for m in messages %}{{ m['role'] + ':\n' }}"
                "{% if m['role'] != 'assistant' or loop.last %}{{ m['content'] }}{% endif %}{{ '\n' }}{% endfor %}"
                "{% if add_generation_prompt %}{{ 'assistant:\n' }}{% endif %}")
    path, tok = _ambiguous_case(tmp_path, template, [{"messages": CONVERSATION[1:3]}, {"messages": CONVERSATION}])
    with pytest.raises(DataError, match=r"training\.jsonl:2: ambiguous assistant boundary at message 2: the chat "
                                        "template renders"):
        load_examples(path, ds_cfg(), tok)
    assert len(load_examples(path, ds_cfg(loss_mode="last_turn"), tok)[0]) == 2  # no boundary in rewritten history


def test_tokens_merging_across_the_boundary_is_an_error(tmp_path):
    # The generation prompt ends in a space that the answer's first word absorbs (" Paris").
    template = ("{% for m in messages %}{{ m['role'] + ': ' + m['content'] + '\n' }}{% endfor %}"
                "{% if add_generation_prompt %}{{ 'assistant: ' }}{% endif %}")
    path, tok = _ambiguous_case(tmp_path, template, [{"messages": CONVERSATION[1:3]}])
    with pytest.raises(DataError, match=r"training\.jsonl:1: ambiguous assistant boundary at message 1: tokenizing"):
        load_examples(path, ds_cfg(), tok)


def test_template_resolution_and_the_log(tmp_path, caplog):
    byte = ByteLevelTokenizer()
    assert resolve(None, byte) is None and resolve("plugtron", byte) is None
    chatml = resolve("chatml", byte)
    assert chatml.render(CONVERSATION[1:3]) == ("<|im_start|>user\nWhat is the capital of France?<|im_end|>\n"
                                                "<|im_start|>assistant\nParis is the capital.<|im_end|>\n")
    path = tmp_path / "t.jinja"
    path.write_text("{% for m in messages %}{{ m['content'] }}|{% endfor %}")
    assert resolve(str(path), byte).render(CONVERSATION[1:3]) == "What is the capital of France?|Paris is the capital.|"
    with pytest.raises(DataError, match="dataset.chat_template: 'nope' is neither a built-in"):
        resolve("nope", byte)
    with pytest.raises(DataError, match="not a valid Jinja template"):
        resolve("{% for %}", byte)
    root = tmp_path / "d"
    root.mkdir()
    (root / "training.jsonl").write_text(json.dumps({"messages": CONVERSATION}) + "\n")
    with caplog.at_level(logging.INFO, logger="plugtron"):
        (plain_ids, _), = load_examples(str(root / "training.jsonl"), ds_cfg(), byte)[0]
        (chatml_ids, _), = load_examples(str(root / "training.jsonl"), ds_cfg(chat_template="chatml"), byte)[0]
    assert "chat format: plugtron's own" in caplog.text and "chat format: the chat template chatml" in caplog.text
    assert byte.detokenize(chatml_ids).startswith("<|im_start|>system\nYou are")
    assert byte.detokenize(plain_ids).startswith("<system>\nYou are")


def test_sharegpt_and_alpaca_equal_the_same_messages(tmp_path):
    tok = HuggingFaceTokenizer(chat_tokenizer_dir(str(tmp_path / "c"), "chatml"))
    share = {"system": CONVERSATION[0]["content"],
             "conversations": [{"from": {"user": "human", "assistant": "gpt"}[m["role"]], "value": m["content"]}
                               for m in CONVERSATION[1:]]}
    assert encode(tok, share, data_format="sharegpt") == encode(tok, {"messages": CONVERSATION})
    renamed = {"conversations": [{"from": "me" if t["from"] == "human" else "bot", "value": t["value"]}
                                 for t in share["conversations"]]}
    assert (encode(tok, renamed, data_format="sharegpt", role_map={"me": "user", "bot": "assistant"})
            == encode(tok, {"messages": CONVERSATION[1:]}))
    alpaca = {"instruction": "Name the capital.", "input": "France", "output": "Paris."}
    as_chat = [{"role": "user", "content": "Name the capital.\nFrance"}, {"role": "assistant", "content": "Paris."}]
    assert encode(tok, alpaca, data_format="alpaca") == encode(tok, {"messages": as_chat})


@pytest.mark.parametrize("fmt, line, match", [
    ("sharegpt", {"conversations": [{"from": "robot", "value": "x"}]}, r"turn 0: expected \{'from': one of"),
    ("sharegpt", {"messages": []}, r"'conversations': a list of \{'from', 'value'\} turns"),
    ("alpaca", {"instruction": "x"}, r"'instruction' and 'output' strings .*expected a string under 'output'"),
    ("chat", {"messages": [{"role": "bot", "content": "x"}]}, r"message 0: expected \{'role': one of"),
    ("chat", {"messages": [{"role": "assistant", "content": "x", "train": "no"}]}, "'train' must be true or false"),
])
def test_format_errors_name_file_line_and_shape(tmp_path, fmt, line, match):
    path = tmp_path / "training.jsonl"
    path.write_text(json.dumps({"messages": CONVERSATION}) + "\n" + json.dumps(line) + "\n")
    ds = attrs.evolve(ds_cfg(), data_format=fmt)
    if fmt != "chat":
        good = {"sharegpt": {"conversations": [{"from": "human", "value": "a"}, {"from": "gpt", "value": "b"}]},
                "alpaca": {"instruction": "a", "output": "b"}}[fmt]
        path.write_text(json.dumps(good) + "\n" + json.dumps(line) + "\n")
    with pytest.raises(DataError, match=r"training\.jsonl:2: .*" + match):
        load_examples(str(path), ds, ByteLevelTokenizer())


def test_data_inspect_marks_exactly_the_assistant_turns(tmp_path, capsys):
    from plugtron.cli.main import main

    tok_dir = chat_tokenizer_dir(str(tmp_path / "tok"), "llama3")
    root = tmp_path / "data"
    root.mkdir()
    share = {"system": CONVERSATION[0]["content"],
             "conversations": [{"from": {"user": "human", "assistant": "gpt"}[m["role"]], "value": m["content"]}
                               for m in CONVERSATION[1:]]}
    (root / "training.jsonl").write_text((json.dumps(share) + "\n") * 5)
    args = ["data", "inspect", f"dataset.dataset_root={root}", "dataset.data_format=sharegpt", "model.seq_length=128",
            "tokenizer.tokenizer_type=HuggingFaceTokenizer", f"tokenizer.tokenizer_model={tok_dir}",
            "train.train_iters=30", "--n", "1"]
    assert main(["data", "inspect"]) != 0  # the tiny recipe's pretraining data is no SFT set
    assert "not an SFT dataset" in capsys.readouterr().err
    assert main(args + ["--color", "never"]) == 0
    out = capsys.readouterr().out
    import re

    assert re.findall(r"\[\[(.*?)\]\]", out, re.S) == ["Paris is the capital.<|eot_id|>", "the dog sat on the log<|eot_id|>"]
    assert "training.jsonl:1  76 tokens, 14 learned" in out and "=== 5 examples" in out
    assert "chat template of the tokenizer" in out and "no packing: one example per row of 128" in out
    assert main(args + ["--color", "always", "dataset.packed_sequence_specs.packed_sequence_size=128",
                        "train.micro_batch_size=1"]) == 0
    out = capsys.readouterr().out
    assert "\033[32mParis is the capital.<|eot_id|>\033[0m" in out and "packing: 5 rows of 128, efficiency 58.6%" in out


def test_packed_cache_key_follows_tokenizer_template_format_and_length(tmp_path):
    from plugtron.config import PackedSequenceSpecs
    from plugtron.data.packing import packed_path

    src = tmp_path / "training.jsonl"
    src.write_text(json.dumps({"messages": CONVERSATION}) + "\n")
    llama = HuggingFaceTokenizer(chat_tokenizer_dir(str(tmp_path / "l"), "llama3"))
    chatml = HuggingFaceTokenizer(chat_tokenizer_dir(str(tmp_path / "c"), "chatml"))  # same vocabulary

    def key(tok=llama, size=512, **kw):
        return packed_path(str(src), ds_cfg(seq_length=size, packed_sequence_specs=PackedSequenceSpecs(
            packed_sequence_size=size), **kw), tok)

    variants = [key(), key(chatml), key(chat_template="chatml"), key(chat_template=TEMPLATES["llama3"](marked=True)),
                key(loss_mode="last_turn"), key(data_format="sharegpt"), key(size=256)]
    assert len(set(variants)) == len(variants)
    assert key() == key()  # unchanged settings reuse the packed file


def test_input_output_full_learns_the_prompt_too():
    byte = ByteLevelTokenizer()
    pair = {"input": "2+2=", "output": "4"}
    ids, answer = Encoder(ds_cfg(data_format="input_output"), byte).encode(pair)
    assert byte.detokenize(ids) == "2+2=4" and answer.tolist() == [False] * 4 + [True, True]
    ids, answer = Encoder(ds_cfg(data_format="input_output", loss_mode="full"), byte).encode(pair)
    assert answer.all()


@pytest.mark.parametrize("style", ["llama3", "chatml", "mistral"])
def test_generate_chat_prompt_is_apply_chat_templates(tmp_path, style):
    """``plugtron generate --chat``: the prompt is what ``apply_chat_template(add_generation_prompt=True)``
    renders with the tokenizer's template; a run's ``dataset.chat_template`` wins; no template:
    plugtron's own format, as the run was trained on."""
    from transformers import PreTrainedTokenizerFast

    from plugtron.config import ConfigContainer
    from plugtron.inference.generate import LoadedModel

    directory = chat_tokenizer_dir(str(tmp_path / style), style)
    tok = HuggingFaceTokenizer(directory)
    question = [{"role": "user", "content": "What is the capital of France?"}]
    expected = PreTrainedTokenizerFast.from_pretrained(directory).apply_chat_template(
        question, tokenize=False, add_generation_prompt=True)
    if style == "mistral":  # its template writes no generation prompt: the prompt ends with [/INST]
        assert expected.endswith("[/INST]")
    assert LoadedModel("ckpt", None, None, ConfigContainer(), tok).chat_prompt(question[0]["content"]) == expected
    run = ConfigContainer(dataset=ds_cfg(chat_template="chatml"))
    assert LoadedModel("ckpt", None, None, run, tok).chat_prompt("hi") == "<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n"
    assert LoadedModel("ckpt", None, None, ConfigContainer(), ByteLevelTokenizer()).chat_prompt("hi") == "<user>\nhi\n<assistant>\n"
