"""LHUC (learning hidden unit contributions): each unit of the head scaled per device.

Both head layers' outputs are multiplied unit by unit by ``2*sigmoid(a)``, with ``a`` a
linear function of the personalisation signal c (DUET's history encoder). The cloud
computes the two scale vectors from the device's window and sends them (2d floats);
the device multiplies. The linear maps start at zero: every scale starts at exactly 1.

Original LHUC scales the hidden units of a speaker-adapted acoustic model; here the
"hidden units" are the head's two layers, the part every method of the family
personalises (issue 11).
"""
from __future__ import annotations

import torch

from .base import Gate, HistoryEncoder, PersonalHead, RowInputs


class LHUCHead(PersonalHead):
    name = "lhuc"

    def __init__(self, dim: int, max_seq_len: int, num_items: int, *, gate_scale: float) -> None:
        super().__init__(dim, max_seq_len, num_items)
        self.encoder = HistoryEncoder(dim)
        # The scales live in the cloud: they read c only, and the device receives them.
        self.scales = Gate(dim, 2 * dim, hidden=None, scale=gate_scale)

    cloud_only = ("encoder.", "scales.")

    def message(self, history, history_emb, mask):
        scale1, scale2 = self.scales(self.encoder(history_emb, mask)).chunk(2, dim=-1)
        return {"scale1": scale1, "scale2": scale2}

    def forward(self, user: torch.Tensor, rows: RowInputs) -> torch.Tensor:
        hidden = torch.tanh(self.layer1(user)) * rows.sent_rows("scale1")
        return self.layer2(hidden) * rows.sent_rows("scale2")
