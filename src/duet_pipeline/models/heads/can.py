"""CAN (Alibaba, WSDM 2022): the co-action network, feature interaction by micro-MLP.

The candidate's own "induction" embedding (a second item table) is reshaped into a
micro-MLP of two bias-free layers (``feed_dim`` x h1, h1 x h2, tanh between and after);
each window item's "feed" embedding (a third table) passes through it at orders 1..3
(e, e^2, e^3 element-wise, sharing the weights). The outputs, masked and summed over
the window, join the head input: ``u + P(co-action)``, with P zero-initialised so the
untrained method is the base model.

Its weights depend on the candidate, not on the device: nothing is generated per
device (payload 0); the device holds both extra item tables and computes the co-action
per candidate. ReChorus's CAN sums the orders' outputs the same way (its ``co_action``).
"""
from __future__ import annotations

import torch
from torch import nn

from ..layers import EMBEDDING_INIT_STD
from .base import PersonalHead, RowInputs


class CANHead(PersonalHead):
    name = "can"
    reads_candidate = True

    def __init__(self, dim: int, max_seq_len: int, num_items: int, *, feed_dim: int, micro_units: list[int],
                 orders: int) -> None:
        super().__init__(dim, max_seq_len, num_items)
        self.shapes = [(feed_dim, micro_units[0]), (micro_units[0], micro_units[1])]
        self.orders = orders
        self.feed = nn.Embedding(num_items + 1, feed_dim, padding_idx=0)
        self.induction = nn.Embedding(num_items + 1, sum(i * o for i, o in self.shapes))
        for table in (self.feed, self.induction):
            nn.init.normal_(table.weight, std=EMBEDDING_INIT_STD)
        self.project = nn.Linear(orders * micro_units[1], dim)
        nn.init.zeros_(self.project.weight)
        nn.init.zeros_(self.project.bias)

    def co_action(self, rows: RowInputs) -> torch.Tensor:
        """(B, orders * h2): the window's feed embeddings through each candidate's micro-MLP."""
        feed = self.feed(rows.history)[rows.row_of]  # (B, L, f)
        mask = rows.mask[rows.row_of].unsqueeze(-1).unsqueeze(-1)  # (B, L, 1, 1)
        x = torch.stack([feed**order for order in range(1, self.orders + 1)], dim=2)  # (B, L, O, f)
        weights = self.induction(rows.target).split([i * o for i, o in self.shapes], dim=-1)
        for weight, (fan_in, fan_out) in zip(weights, self.shapes):
            x = torch.tanh(torch.einsum("bloi,bij->bloj", x, weight.view(-1, fan_in, fan_out)))
        return (x * mask).sum(dim=1).flatten(1)

    def forward(self, user: torch.Tensor, rows: RowInputs) -> torch.Tensor:
        return self.static(user + self.project(self.co_action(rows)))
