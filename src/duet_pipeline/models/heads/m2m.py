"""M2M (Alibaba, WSDM 2022): a meta unit generates each head layer from c.

For each head layer the meta unit maps the personalisation signal c (DUET's history
encoder) linearly to a weight and a bias, ``W = reshape(U c)``, ``b = V c``, and the
generated layer sits on a residual branch beside the static one:

    hidden = tanh(W1_static u + b1) + tanh(W1(c) u + b1(c))
    out    = W2_static hidden + b2 + W2(c) hidden + b2(c)

The cloud generates (W, b) per device and sends them (the same 2 (d^2 + d) floats as
DUET's head); the device applies them. U and V start at zero, so every generated layer
starts at exactly 0 and the head at the static one; their gradient at zero is not
zero (it is the layer's gradient times c), so they learn.

The original's meta unit reads scenario and user features; ours reads c, like every
member of the family. "Residual connection around each generated layer" is read as
the static layer being the generated one's skip path, which keeps the neutral start.
"""
from __future__ import annotations

import torch
from torch import nn

from ..layers import linear_per_run
from .base import HistoryEncoder, PersonalHead, RowInputs


class M2MHead(PersonalHead):
    name = "m2m"
    cloud_only = ("encoder.", "meta.")

    def __init__(self, dim: int, max_seq_len: int, num_items: int) -> None:
        super().__init__(dim, max_seq_len, num_items)
        self.encoder = HistoryEncoder(dim)
        # One linear meta unit per head layer: c -> (d * d weight, d bias).
        self.meta = nn.ModuleList(nn.Linear(dim, dim * dim + dim, bias=False) for _ in range(2))
        for unit in self.meta:
            nn.init.zeros_(unit.weight)

    def message(self, history, history_emb, mask):
        c = self.encoder(history_emb, mask)
        sent = {}
        for layer, unit in enumerate(self.meta, start=1):
            generated = unit(c)
            sent[f"w{layer}"] = generated[:, : self.dim * self.dim].view(-1, self.dim, self.dim)
            sent[f"b{layer}"] = generated[:, self.dim * self.dim :]
        return sent

    def forward(self, user: torch.Tensor, rows: RowInputs) -> torch.Tensor:
        sent = rows.sent
        hidden = torch.tanh(self.layer1(user)) + torch.tanh(self._generated(user, sent["w1"], sent["b1"], rows))
        return self.layer2(hidden) + self._generated(hidden, sent["w2"], sent["b2"], rows)

    @staticmethod
    def _generated(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor, rows: RowInputs) -> torch.Tensor:
        """``x`` through each row's generated layer: batched by run where rows come in runs,
        else row by row (a device model's export, whose shapes cannot depend on the data)."""
        if rows.runs:
            return linear_per_run(x, weight, bias, rows.row_of)
        return torch.baddbmm(bias[rows.row_of].unsqueeze(1), x.unsqueeze(1), weight[rows.row_of].transpose(1, 2)).squeeze(1)
