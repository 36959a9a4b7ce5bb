"""How much arithmetic a network does per spike: the figure the search's compute cap
(``tune --max-mflop``) limits and every bundle records beside its measured speed.

FLOPs of one forward pass of one spike (a multiply-add counts 2), counted by torch's FLOP
counter on the network itself, with the recurrent layers (which the counter does not see)
counted from their shapes: for an LSTM, ``2 x 4 x hidden x (input + hidden)`` per time step,
layer and direction.
"""

from __future__ import annotations


def flops_per_spike(network, input_columns: int, task: int = 0) -> int:
    """FLOPs of one spike's forward pass through head ``task`` (see the module docstring)."""
    import torch
    from torch import nn
    from torch.utils.flop_counter import FlopCounterMode

    recurrent = []

    def count_recurrent(module, inputs, _output):
        x = inputs[0]
        steps = x.shape[1] if module.batch_first else x.shape[0]
        gates = {nn.LSTM: 4, nn.GRU: 3}.get(type(module), 1)
        directions = 2 if module.bidirectional else 1
        size, hidden = module.input_size, module.hidden_size
        for layer in range(module.num_layers):
            recurrent.append(2 * gates * hidden * (size + hidden) * steps * directions)
            size = hidden * directions

    hooks = [m.register_forward_hook(count_recurrent) for m in network.modules() if isinstance(m, nn.RNNBase)]
    try:
        with torch.inference_mode(), FlopCounterMode(display=False) as counter:
            network.eval()(torch.zeros(1, int(input_columns)), task)
    finally:
        for hook in hooks:
            hook.remove()
    return int(counter.get_total_flops() + sum(recurrent))
