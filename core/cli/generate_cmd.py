"""``plugtron generate CKPT --prompt TEXT [...]``: text from a trained or imported model.

The parser is torch-free (``plugtron --help`` builds it); the command imports torch when it runs.
"""

from __future__ import annotations

import sys


def add_parser(sub) -> None:
    gen = sub.add_parser("generate", help="generate text from a checkpoint (greedy or sampled; one process, CPU is fine)",
                         description="Continue PROMPT with the model of a plugtron checkpoint, using the tokenizer "
                                     "its run recorded (run_config.yaml). Greedy unless --temperature > 0.")
    gen.add_argument("checkpoint", metavar="CKPT",
                     help="a save directory (its newest checkpoint is used) or one iter_XXXXXXX directory")
    gen.add_argument("--prompt", required=True, help="the text to continue")
    gen.add_argument("--chat", action="store_true",
                     help="PROMPT is a user message: render it with the chat template the model was fine-tuned with "
                          "(the run's dataset.chat_template, else the tokenizer's own) plus the assistant's generation "
                          "prompt, as apply_chat_template(add_generation_prompt=True) does; print the rendered prompt "
                          "and the reply")
    gen.add_argument("--max-new-tokens", type=int, default=64, metavar="N", help="tokens to generate at most (default 64)")
    gen.add_argument("--temperature", type=float, default=0.0, metavar="T",
                     help="0 (default): greedy, the most likely token each step; > 0: sample from softmax(logits / T)")
    gen.add_argument("--top-k", type=int, default=0, metavar="K", help="sample only among the K most likely tokens (0: all)")
    gen.add_argument("--seed", type=int, default=1234, metavar="S", help="seed of the sampler (same seed, same text)")


def run(ns) -> int:
    from plugtron.inference.generate import GenerationSettings, open_checkpoint

    settings = GenerationSettings(max_new_tokens=ns.max_new_tokens, temperature=ns.temperature, top_k=ns.top_k,
                                  seed=ns.seed).check()  # bad numbers fail before the (slow) load
    with open_checkpoint(ns.checkpoint) as loaded:
        prompt = loaded.chat_prompt(ns.prompt) if ns.chat else ns.prompt
        text = loaded.generate(prompt, settings)
    sys.stdout.write(prompt + text + "\n")
    return 0
