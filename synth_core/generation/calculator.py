"""Write the result of each arithmetic step the model starts, as it samples (a domain's `arithmetic` check).

A 135M-parameter LM writes word problems well and gets `48/2 = 24` wrong about a third of the time, so
the arithmetic check dropped most long rows (more steps, more chances to err), and the kept rows ran
short of the targets. GSM8K's own authors sampled with a calculator for the same reason. When a row's
text so far ends in `<expression> =`, the calculator lets the model choose what comes between the `=`
and the number (a space, a `$`), then writes the number itself (`equation_result`, the check's own
arithmetic) and keeps the next token from adding digits to it. Everything else is the model's choice.
"""

from __future__ import annotations

import re
from collections import deque

import torch

from synth_core.arithmetic import equation_result

TAIL_TOKENS = 48  # tokens decoded to find the step a row ends in: longer than any expression in GSM8K
_EQUALS = re.compile(r" ?= ?")
_LEAD = re.compile(r" ?\$? ?")  # what may stand between "=" and the number


class Calculator:
    """Made once per tokenizer (it reads the vocabulary); `sample_batch` calls `start` for each batch,
    then `restrict`, `override` and `observe` at every step. Rows are the batch's row numbers."""

    def __init__(self, tokenizer) -> None:
        self.tokenizer = tokenizer
        pieces = {i: tokenizer.decode([i]) for i in range(len(tokenizer))}
        self._equals = torch.tensor([i for i, p in pieces.items() if _EQUALS.fullmatch(p)])
        self._not_lead = torch.tensor([i for i, p in pieces.items() if not (p and _LEAD.fullmatch(p))])
        self._digit_led = torch.tensor([i for i, p in pieces.items() if p[:1].isdigit()])
        self.steps_completed = 0  # over all batches: how many numbers the calculator wrote
        self.start(torch.device("cpu"))

    def start(self, device: torch.device) -> None:
        self._equals, self._not_lead, self._digit_led = (
            ids.to(device) for ids in (self._equals, self._not_lead, self._digit_led))
        self._value: dict[int, str] = {}  # row -> the number its open step needs, once the lead is sampled
        self._queue: dict[int, deque[int]] = {}  # row -> the number's tokens still to write
        self._closing: set[int] = set()  # rows whose number was just written: no digit may follow

    def restrict(self, logits: torch.Tensor, rows: list[int]) -> None:
        """Mask, in place, what a row may not sample next: only a lead after `=`, no digit after a number."""
        for position, row in enumerate(rows):
            if row in self._value:
                logits[position, self._not_lead] = float("-inf")
            elif row in self._closing:
                logits[position, self._digit_led] = float("-inf")

    def override(self, token: torch.Tensor, rows: list[int]) -> torch.Tensor:
        """The sampled tokens, with each row's next calculator token in place of the model's."""
        self._closing.difference_update(rows)
        for position, row in enumerate(rows):
            if row in self._value:  # the model chose the lead; the number follows
                self._queue[row] = deque(self.tokenizer.encode(self._value.pop(row), add_special_tokens=False))
            elif row in self._queue:
                token[position] = self._queue[row].popleft()
                if not self._queue[row]:
                    del self._queue[row]
                    self._closing.add(row)
                    self.steps_completed += 1
        return token

    def observe(self, tokens: torch.Tensor, rows: list[int], written: list[int], token: torch.Tensor) -> None:
        """Open a step where a row's text now ends in `<expression> =` (tokens: the batch's tokens; `written`:
        how many each of `rows` holds so far, this `token` included)."""
        ended_in_equals = torch.isin(token, self._equals).nonzero().squeeze(-1).tolist()
        for position in ended_in_equals:
            row = rows[position]
            if row in self._queue:
                continue
            end = written[position]
            value = equation_result(self.tokenizer.decode(tokens[row, max(0, end - TAIL_TOKENS): end]))
            if value is not None:
                self._value[row] = value
