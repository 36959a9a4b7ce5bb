"""Shapes, heads, gradients and errors of the torch models (CPU, small batches)."""

import pytest
import torch
from torch import nn

import models
from models import (
    FAMILIES,
    TRUNKS,
    CNNTrunk,
    FFNTrunk,
    LSTMTrunk,
    MultiHeadNet,
    build_model,
    count_parameters,
    is_multitask,
    trunk_family,
)

LENGTHS = [8, 33, 48, 64, 100]
RICH = {
    "ffn": {
        "ffn_n_layers": 3, "ffn_units_l0": 128, "ffn_units_l1": 40, "ffn_units_l2": 17,
        "dropout": 0.3, "batch_norm": True, "activation": "gelu",
    },
    "cnn": {
        "cnn_n_blocks": 4, "cnn_channels_b0": 8, "cnn_channels_b1": 16, "cnn_channels_b2": 32,
        "cnn_channels_b3": 64, "cnn_kernel_b0": 9, "cnn_kernel_b1": 7, "cnn_kernel_b2": 5,
        "cnn_kernel_b3": 3, "cnn_pool": "avg", "batch_norm": True, "dropout": 0.2,
        "cnn_global_pool": "flatten", "cnn_dense_units": 32, "activation": "elu",
    },
    "lstm": {
        "lstm_hidden": 24, "lstm_layers": 2, "bidirectional": True, "dropout": 0.25,
        "lstm_readout": "mean", "lstm_input_stride": 4,
    },
}
RICH["auto"] = dict(RICH["lstm"], auto_family="lstm")  # "auto" builds the family its search chose


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


@pytest.mark.parametrize("name", sorted(TRUNKS))
@pytest.mark.parametrize("rich", [False, True], ids=["minimal", "rich"])
@pytest.mark.parametrize("length", LENGTHS)
def test_trunk_output_shape(name, rich, length):
    trunk = TRUNKS[name](length, RICH[name] if rich else {})
    trunk.train()
    out = trunk(torch.randn(5, length))
    assert out.shape == (5, trunk.out_features)
    assert torch.isfinite(out).all()


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("k", [2, 3, 6])
@pytest.mark.parametrize("length", [8, 48, 100])
def test_build_model_logits_shape(family, k, length):
    counts = [k, 2, 6] if is_multitask(family) else [k]
    model = build_model(family, RICH[trunk_family(family)], length, counts)
    model.eval()
    x = torch.randn(3, length)
    for task, kk in enumerate(counts):
        assert model(x, task=task).shape == (3, kk)


def test_minimal_config_builds():
    model = build_model("cnn", {}, 48, [3])
    assert model(torch.randn(2, 48)).shape == (2, 3)


def test_ffn_layers_follow_config():
    trunk = FFNTrunk(48, {"ffn_n_layers": 2, "ffn_units_l0": 30, "ffn_units_l1": 20})
    linears = [m for m in trunk.modules() if isinstance(m, nn.Linear)]
    assert [(m.in_features, m.out_features) for m in linears] == [(48, 30), (30, 20)]
    assert trunk.out_features == 20
    with pytest.raises(ValueError, match="48 samples"):
        trunk(torch.randn(2, 50))


@pytest.mark.parametrize("length", [1, 2, 3, 4, 5, 7])
@pytest.mark.parametrize("global_pool", ["avg", "max", "flatten"])
def test_cnn_very_short_inputs(length, global_pool):
    cfg = dict(RICH["cnn"], cnn_global_pool=global_pool, cnn_pool="max")
    trunk = CNNTrunk(length, cfg)
    assert trunk(torch.randn(4, length)).shape == (4, trunk.out_features)


def test_cnn_pooling_stops_at_short_maps():
    # 48 -> 24 -> 12 -> 6 with pooling between 4 blocks; never below 2 for short inputs.
    assert CNNTrunk(48, RICH["cnn"]).final_length == 6
    assert CNNTrunk(5, RICH["cnn"]).final_length == 2
    assert CNNTrunk(48, dict(RICH["cnn"], cnn_pool="none")).final_length == 48


def test_cnn_flatten_width_and_other_lengths():
    cfg = dict(RICH["cnn"], cnn_dense_units=0)
    trunk = CNNTrunk(33, cfg)  # 33 -> 16 -> 8 -> 4
    assert trunk.out_features == 64 * 4
    # Flatten keeps its width if a different length arrives.
    assert trunk(torch.randn(2, 57)).shape == (2, 64 * 4)


def test_cnn_channels_and_kernels():
    trunk = CNNTrunk(48, RICH["cnn"])
    convs = [m for m in trunk.modules() if isinstance(m, nn.Conv1d)]
    assert [c.out_channels for c in convs] == [8, 16, 32, 64]
    assert [c.kernel_size[0] for c in convs] == [9, 7, 5, 3]


@pytest.mark.parametrize("stride", [1, 2, 4])
@pytest.mark.parametrize("bidirectional", [False, True])
@pytest.mark.parametrize("readout", ["last", "mean"])
def test_lstm_variants(stride, bidirectional, readout):
    cfg = {"lstm_hidden": 16, "lstm_layers": 2, "bidirectional": bidirectional,
           "lstm_readout": readout, "lstm_input_stride": stride, "dropout": 0.1}
    trunk = LSTMTrunk(33, cfg)
    assert trunk.out_features == 16 * (2 if bidirectional else 1)
    assert trunk.lstm.input_size == stride
    assert trunk._to_sequence(torch.randn(3, 33)).shape == (3, -(-33 // stride), stride)
    assert trunk(torch.randn(3, 33)).shape == (3, trunk.out_features)


def test_lstm_last_readout_is_final_state():
    trunk = LSTMTrunk(10, {"lstm_hidden": 8, "lstm_readout": "last"}).eval()
    x = torch.randn(2, 10)
    out, _ = trunk.lstm(trunk._to_sequence(x))
    torch.testing.assert_close(trunk(x), out[:, -1, :])


def test_multihead_heads_and_forward():
    trunk = FFNTrunk(48, {"ffn_n_layers": 1, "ffn_units_l0": 16})
    net = MultiHeadNet(trunk, [2, 3, 6])
    assert net.num_tasks == 3 and net.class_counts == (2, 3, 6)
    assert [h.out_features for h in net.heads] == [2, 3, 6]
    x = torch.randn(4, 48)
    for i, k in enumerate(net.class_counts):
        assert net(x, task=i).shape == (4, k)
    assert net(x).shape == (4, 2)  # task defaults to 0
    with pytest.raises(ValueError, match="out of range"):
        net(x, task=3)


def test_multihead_hidden_heads():
    trunk = FFNTrunk(48, {"ffn_n_layers": 1, "ffn_units_l0": 16})
    net = MultiHeadNet(trunk, [2, 6], head_hidden=32, head_dropout=0.3)
    for head, k in zip(net.heads, (2, 6)):
        assert isinstance(head, nn.Sequential)
        assert head[0].in_features == 16 and head[0].out_features == 32
        assert isinstance(head[1], nn.ReLU) and head[2].p == 0.3
        assert head[-1].out_features == k
    model = build_model("mtl-ffn", {"head_hidden": 64, "head_dropout": 0.1}, 48, [2, 3])
    assert model.heads[1][-1].out_features == 3 and model.heads[0][0].out_features == 64


@pytest.mark.parametrize("family", ["mtl-ffn", "mtl-cnn", "mtl-lstm"])
def test_loss_on_one_task_leaves_other_heads_untouched(family):
    model = build_model(family, {"head_hidden": 32}, 48, [2, 3, 6])
    model.train()
    loss = nn.functional.cross_entropy(model(torch.randn(8, 48), task=0), torch.randint(0, 2, (8,)))
    loss.backward()
    assert all(p.grad is not None for p in model.heads[0].parameters())
    assert any(p.grad.abs().sum() > 0 for p in model.trunk.parameters() if p.grad is not None)
    for head in model.heads[1:]:
        for p in head.parameters():
            assert p.grad is None or torch.count_nonzero(p.grad) == 0


def test_count_parameters():
    net = MultiHeadNet(FFNTrunk(10, {"ffn_n_layers": 1, "ffn_units_l0": 4}), [3])
    assert count_parameters(net) == (10 * 4 + 4) + (4 * 3 + 3)
    net.heads[0].weight.requires_grad_(False)
    assert count_parameters(net) == (10 * 4 + 4) + 3


def test_registry():
    assert models.FAMILIES == ("ffn", "cnn", "lstm", "mtl-ffn", "mtl-cnn", "mtl-lstm", "ft-ffn", "ft-cnn", "ft-lstm",
                               "auto")
    assert not is_multitask("auto") and models.network_family("auto", {"auto_family": "cnn"}) == "cnn"
    assert models.network_family("mtl-cnn", {"auto_family": "ffn"}) == "mtl-cnn"
    assert isinstance(build_model("auto", {"auto_family": "cnn"}, 48, [3]).trunk, CNNTrunk)
    with pytest.raises(ValueError, match="auto_family in ffn, cnn, lstm, got 'transformer'"):
        build_model("auto", {"auto_family": "transformer"}, 48, [3])
    assert trunk_family("mtl-cnn") == "cnn" and trunk_family("lstm") == "lstm" and trunk_family("ft-ffn") == "ffn"
    assert is_multitask("mtl-lstm") and not is_multitask("ffn") and is_multitask("ft-cnn")
    assert models.is_finetuned("ft-lstm") and not models.is_finetuned("mtl-lstm")
    assert models.multitask_twin("ft-cnn") == "mtl-cnn" == models.multitask_twin("cnn")
    for bad in (trunk_family, is_multitask):
        with pytest.raises(ValueError, match="mtl-cnn"):
            bad("transformer")


def test_build_model_errors():
    with pytest.raises(ValueError, match="single-task"):
        build_model("cnn", {}, 48, [2, 3])
    with pytest.raises(ValueError, match="single-task"):
        build_model("ffn", {}, 48, [])
    with pytest.raises(ValueError, match="choose one of"):
        build_model("rnn", {}, 48, [2])
    with pytest.raises(ValueError, match=">= 2 classes"):
        build_model("mtl-ffn", {}, 48, [2, 1])
    with pytest.raises(ValueError, match="at least one task"):
        build_model("mtl-ffn", {}, 48, [])
    with pytest.raises(ValueError, match="input_length"):
        build_model("lstm", {}, 0, [2])
    with pytest.raises(ValueError, match="activation"):
        build_model("ffn", {"activation": "tanhh"}, 48, [2])
    with pytest.raises(ValueError, match="cnn_global_pool"):
        build_model("cnn", {"cnn_global_pool": "sum"}, 48, [2])
    with pytest.raises(ValueError, match="ffn_n_layers"):
        build_model("ffn", {"ffn_n_layers": 0}, 48, [2])


def test_trunk_rejects_wrong_shapes():
    with pytest.raises(ValueError, match=r"\(batch, length\)"):
        CNNTrunk(48, {})(torch.randn(2, 1, 1, 48))
    with pytest.raises(ValueError, match=r"built for 1 channel"):
        CNNTrunk(48, {})(torch.randn(2, 3, 48))
    with pytest.raises(ValueError, match=r"do not split into 4 equal channels"):
        CNNTrunk(48, {}, n_channels=4)(torch.randn(2, 190))


def test_extra_config_keys_ignored():
    cfg = dict(RICH["ffn"], lr=1e-3, optimizer="sgd", family="ffn")
    assert build_model("ffn", cfg, 48, [2])(torch.randn(2, 48)).shape == (2, 2)
