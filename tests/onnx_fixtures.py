"""Builds a tiny ONNX GenAI model with random weights, offline, for tests/test_onnx_server.py.

Run in .venv-onnx (it needs PyTorch, transformers and onnxruntime-genai's model builder):

    .venv-onnx/bin/python tests/onnx_fixtures.py <folder>

It writes <folder>/hf (a Llama checkpoint: 2 layers, hidden size 64, random weights from a
fixed seed, and a byte-level BPE tokenizer trained here on one sentence, with a ChatML chat
template) and <folder>/onnx, what onnxruntime_genai.models.builder makes of it for the CPU
in int4, the precision the published CPU checkpoints use. Nothing is downloaded.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

# ChatML, a common template shape; the server applies whatever the model folder carries.
CHAT_TEMPLATE = (
    "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n"
    "{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)
SPECIAL_TOKENS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
CORPUS = ["hello world, the quick brown fox jumps over the lazy dog"]
VOCAB_SIZE = 320
CONTEXT_LENGTH = 1024
SEED = 0
# The conversation the tests send, and where its prompt token count is written, counted by
# transformers' own chat template and tokenizer: the server's count must agree.
MESSAGES = [
    {"role": "system", "content": "You are brief."},
    {"role": "user", "content": "hello world, the quick brown fox"},
]
EXPECTED = "expected.json"


def tokenizer():  # noqa: ANN201 (transformers is not importable in the project's .venv)
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=VOCAB_SIZE,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    bpe.train_from_iterator(CORPUS, trainer)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=bpe, bos_token="<|endoftext|>", eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
    )  # fmt: skip
    fast.chat_template = CHAT_TEMPLATE
    return fast


def checkpoint(folder: Path) -> Path:
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    words = tokenizer()
    words.save_pretrained(folder)
    torch.manual_seed(SEED)
    config = LlamaConfig(
        vocab_size=len(words),
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=CONTEXT_LENGTH,
        bos_token_id=words.bos_token_id,
        eos_token_id=words.eos_token_id,
        pad_token_id=words.pad_token_id,
        tie_word_embeddings=False,
    )
    model = LlamaForCausalLM(config)
    with torch.no_grad():
        # The end-of-sequence token's logit is always 0 while the other 300-odd are random
        # of either sign: greedy decoding never picks it, so the tests' counts are exact.
        model.lm_head.weight[words.eos_token_id] = 0
    model.save_pretrained(folder)
    prompt = words.apply_chat_template(MESSAGES, add_generation_prompt=True, tokenize=True)
    (folder.parent / EXPECTED).write_text(json.dumps({"prompt_tokens": len(_ids(prompt))}))
    return folder


def _ids(encoded):  # noqa: ANN001, ANN202
    # transformers 5 returns a BatchEncoding where 4.x returned a list.
    return encoded["input_ids"] if hasattr(encoded, "keys") else encoded


def build(folder: Path) -> Path:
    """The ONNX GenAI model folder (genai_config.json, model.onnx, tokenizer files)."""
    from onnxruntime_genai.models.builder import create_model, parse_extra_options

    source, output, cache = folder / "hf", folder / "onnx", folder / "cache"
    checkpoint(source)
    # The builder's own command line, called in this process: torch and transformers are
    # imported once. Its positional order: model name, input, output, precision, EP, cache.
    arguments = (None, str(source), str(output), "int4", "cpu", str(cache))
    create_model(*arguments, **parse_extra_options(*arguments, None))
    return output


if __name__ == "__main__":
    print(build(Path(sys.argv[1])))
