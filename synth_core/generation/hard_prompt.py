"""The paper's baseline: a hand-written instruction plus k few-shot target examples, sent to the same
frozen LM with the same decoding and output format.

Two styles: `plain` few-shot continuation (examples in the target format, then the header of a new
one) and `chat` (the model's own chat template). Few-shot examples for sample j are a seeded draw
keyed by j.
"""

from __future__ import annotations

import re

import numpy as np

from synth_core.config import GenerationConfig
from synth_core.generation.calculator import Calculator
from synth_core.generation.decoding import DecodedBatch, sample_batch
from synth_core.models import FrozenLM

NEXT_EXAMPLE = re.compile(r"\n+\s*Example \d+:")


class HardPromptGenerator:
    variant = "hard-prompt"
    checkpoint_hash = ""

    def __init__(self, lm: FrozenLM, target_texts: list[str], settings: GenerationConfig,
                 calculator: Calculator | None = None) -> None:
        if len(target_texts) < settings.baseline_shots:
            raise ValueError(f"generation.baseline_shots={settings.baseline_shots}: only {len(target_texts)} "
                             "target rows available")
        self.lm, self.targets, self.settings, self.calculator = lm, target_texts, settings, calculator
        self.variant = f"hard-prompt-{settings.baseline_style}"

    def shots(self, sample_index: int, seed: int) -> list[int]:
        rng = np.random.default_rng([seed, sample_index, 2])
        return rng.choice(len(self.targets), size=self.settings.baseline_shots, replace=False).tolist()

    def prompt(self, sample_index: int, seed: int) -> str:
        examples = [self.targets[i] for i in self.shots(sample_index, seed)]
        body = "".join(f"Example {n}:\n{text}\n\n" for n, text in enumerate(examples, 1))
        if self.settings.baseline_style == "plain":
            return f"{self.settings.baseline_instruction}\n\n{body}Example {len(examples) + 1}:\n"
        message = (f"{self.settings.baseline_instruction}\n\n{body}"
                   "Reply with the new example only, in exactly the same format.")
        return self.lm.tokenizer.apply_chat_template([{"role": "user", "content": message}], tokenize=False,
                                                     add_generation_prompt=True)

    def sample(self, sample_indices: list[int], seed: int) -> tuple[DecodedBatch, list[int]]:
        """The rows, and per row its first example's target index (-1 with `baseline_shots: 0`: the
        instruction alone)."""
        tokenizer, plain = self.lm.tokenizer, self.settings.baseline_style == "plain"
        tokenizer.padding_side = "left"
        encoded = tokenizer([self.prompt(j, seed) for j in sample_indices], return_tensors="pt", padding=True,
                            add_special_tokens=False)
        batch = sample_batch(self.lm, self.settings, seed * 1_000_003 + sample_indices[0],
                             input_ids=encoded["input_ids"], attention_mask=encoded["attention_mask"],
                             stop=NEXT_EXAMPLE if plain else None, calculator=self.calculator,
                             live=self.settings.batch_size)
        if plain:
            # the model goes on to write "Example N+1:"; the sample ends where that header starts
            for i, text in enumerate(batch.texts):
                cut = NEXT_EXAMPLE.search(text)
                if cut:
                    batch.texts[i], batch.finished[i] = text[: cut.start()].strip(), True
        return batch, [next(iter(self.shots(j, seed)), -1) for j in sample_indices]
