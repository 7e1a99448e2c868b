"""In-process A/B of two training-step components, old and new interleaved (issue 10).

    python docs/diagnostics/ab_gru_din.py

The masked GRU's steps by indexing (`projected[:, t]`, old) or by one `unbind` (the
library's now), and DIN's activation unit on the concatenated [h, t, h-t, h*t] (old)
or with its first layer decomposed, (W_h + W_d) h + (W_t - W_d) t + W_p (h*t) (the
library's now, docs/benchmarks.md "DIN's decomposed first layer");
forward + backward, 30 interleaved rounds of 5 calls, median and min.
Whole training steps vary by +-20% between runs on this machine, which hides changes of
this size; interleaving in one process does not.
"""
import statistics
import time

import torch
from torch import nn

from duet_pipeline.models.backbones import DIN, masked_gru

torch.manual_seed(0)
def old_gru(gru, inputs, mask, dropout=0.0):
    steps = mask.unsqueeze(-1)
    layer_input = inputs
    for layer in range(gru.num_layers):
        w_ih, w_hh = getattr(gru, f"weight_ih_l{layer}"), getattr(gru, f"weight_hh_l{layer}")
        b_ih, b_hh = getattr(gru, f"bias_ih_l{layer}"), getattr(gru, f"bias_hh_l{layer}")
        projected = nn.functional.linear(layer_input, w_ih, b_ih)
        state = inputs.new_zeros(inputs.shape[0], gru.hidden_size)
        outputs = []
        for t in range(inputs.shape[1]):
            r_in, z_in, n_in = projected[:, t].chunk(3, dim=-1)
            r_hid, z_hid, n_hid = nn.functional.linear(state, w_hh, b_hh).chunk(3, dim=-1)
            reset = torch.sigmoid(r_in + r_hid); update = torch.sigmoid(z_in + z_hid)
            candidate = torch.tanh(n_in + reset * n_hid)
            new_state = (1 - update) * candidate + update * state
            state = torch.where(steps[:, t], new_state, state)
            outputs.append(state)
        layer_input = torch.stack(outputs, dim=1)
    return state
gru = nn.GRU(32, 32, num_layers=2, batch_first=True)
x = torch.randn(205, 10, 32, requires_grad=True); m = torch.ones(205, 10, dtype=torch.bool); m[:, :3] = torch.rand(205, 3) > 0.5
din = DIN(32, 10, attention_units=[32, 16])
h = torch.randn(1024, 10, 32, requires_grad=True); t_ = torch.randn(1024, 32, requires_grad=True); mk = torch.ones(1024, 10, dtype=torch.bool)
def concatenated_din():
    t = t_.unsqueeze(1).expand_as(h)
    s = din.activation_unit(torch.cat([h, t, h - t, h * t], dim=-1)).squeeze(-1)
    return torch.softmax(s.masked_fill(~mk, float("-inf")), 1)
cases = {"gru old": lambda: old_gru(gru, x, m).sum().backward(), "gru new": lambda: masked_gru(gru, x, m).sum().backward(),
         "din concatenated": lambda: concatenated_din().sum().backward(),
         "din decomposed": lambda: din.attention_weights(h, mk, t_).sum().backward()}
times = {k: [] for k in cases}
for rep in range(30):
    for k, f in cases.items():
        s = time.perf_counter()
        for _ in range(5): f()
        times[k].append((time.perf_counter() - s) / 5 * 1000)
for k, v in times.items(): print(f"{k}: median {statistics.median(v):.2f} ms  min {min(v):.2f} ms")
