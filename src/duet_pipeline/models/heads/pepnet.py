"""PEPNet (Kuaishou, KDD 2023): EPNet gates the item embeddings, PPNet gates the head.

EPNet: every item embedding e the backbone and the target tower read (the window's
and the candidate's) becomes ``e * 2*sigmoid(MLP([c; sg(e)]))``, with c the device's
window through DUET's history encoder (read from the ungated embeddings) and ``sg``
stop-gradient, as in TorchEasyRec's EPNet. PPNet then gates both head layers as in
``ppnet`` (its gate reads the gated target embedding). Both gates read the candidate
or the window's embeddings, so they run on the device; the cloud sends c. All gates
start at exactly 1.

The original's EPNet reads domain-side features (the scenario); we have one domain,
so its "domain" input is the personal prior c.
"""
from __future__ import annotations

import torch

from .base import Gate, HistoryEncoder, PersonalHead, RowInputs
from .ppnet import HeadGates, PPNetHead


class PEPNetHead(PPNetHead):
    """PPNet's head (its message and gated layers) plus EPNet's embedding gate."""

    name = "pepnet"

    def __init__(self, dim: int, max_seq_len: int, num_items: int, *, gate_hidden: int) -> None:
        # PersonalHead's, not PPNet's, constructor: the modules are built in this order
        # (the embedding gate before the head gates), which fixes their initial values.
        PersonalHead.__init__(self, dim, max_seq_len, num_items)
        self.encoder = HistoryEncoder(dim)
        self.embedding_gate = Gate(2 * dim, dim, gate_hidden)
        self.gates = HeadGates(dim, gate_hidden)

    def gate_embeddings(self, history_emb, mask, rows: RowInputs):
        prior = rows.sent["prior"]  # (H, d)
        window_prior = prior.unsqueeze(1).expand_as(history_emb)
        history_gate = self.embedding_gate(torch.cat([window_prior, history_emb.detach()], dim=-1))
        target_gate = self.embedding_gate(torch.cat([rows.sent_rows("prior"), rows.target_emb.detach()], dim=-1))
        return history_emb * history_gate, rows.target_emb * target_gate
