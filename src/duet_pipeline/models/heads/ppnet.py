"""PPNet (Kuaishou's parameter personalisation net): a gate per head layer.

Each head layer's output is multiplied by ``2*sigmoid(MLP([c; sg(u); sg(e_t)]))``: a
two-layer gate (ReLU, then the scaled sigmoid) whose input is the personal prior c (the
device's window through DUET's history encoder) concatenated with the shared features,
the user vector u and the target item's embedding e_t, under stop-gradient (``sg``):
the gate's loss does not train the shared features, which keeps the shared model
stable. The gate reads the candidate, so it runs on the device, which holds the gate
networks; the cloud sends c (d floats). The gates' last layers start at zero: every
gate starts at exactly 1.

FuxiCTR's PPNet gates every layer of a DNN from the concatenation of the personal
prior's embedding with the stop-gradient embeddings of all features; our "all
features" are u and e_t.
"""
from __future__ import annotations

import torch

from .base import Gate, HistoryEncoder, PersonalHead, RowInputs


class HeadGates(torch.nn.Module):
    """PPNet's gated head: the static layers, each output times its gate on
    [c; sg(u); sg(e_t)] (also PEPNet's PPNet part)."""

    def __init__(self, dim: int, gate_hidden: int) -> None:
        super().__init__()
        self.gate1 = Gate(3 * dim, dim, gate_hidden)
        self.gate2 = Gate(3 * dim, dim, gate_hidden)

    def forward(self, layer1: torch.nn.Linear, layer2: torch.nn.Linear, user: torch.Tensor,
                prior: torch.Tensor, target_emb: torch.Tensor) -> torch.Tensor:
        gate_input = torch.cat([prior, user.detach(), target_emb.detach()], dim=-1)
        hidden = torch.tanh(layer1(user)) * self.gate1(gate_input)
        return layer2(hidden) * self.gate2(gate_input)


class PPNetHead(PersonalHead):
    name = "ppnet"
    reads_candidate = True

    def __init__(self, dim: int, max_seq_len: int, num_items: int, *, gate_hidden: int) -> None:
        super().__init__(dim, max_seq_len, num_items)
        self.encoder = HistoryEncoder(dim)
        self.gates = HeadGates(dim, gate_hidden)

    def message(self, history, history_emb, mask):
        return {"prior": self.encoder(history_emb, mask)}

    def forward(self, user: torch.Tensor, rows: RowInputs) -> torch.Tensor:
        return self.gates(self.layer1, self.layer2, user, rows.sent_rows("prior"), rows.target_emb)
