from pathlib import Path

import torch

from netsight.suites.schedule import estimated_flops, forward_flops, longest_first
from netsight.suites.spec import expand, load_suite


def test_forward_flops_match_a_hand_count():
    # LeNet5 on 28x28: conv1 28*28*32*25 MACs, conv2 14*14*64*(32*25), fc1 3136*1024, fc2 1024*10; 2 FLOPs per MAC
    lenet5 = 2 * (28 * 28 * 32 * 25 + 14 * 14 * 64 * 32 * 25 + 3136 * 1024 + 1024 * 10)
    assert forward_flops("lenet5", (1, 28, 28), 10, None) == lenet5
    # LSTM-32 reading 28 rows of 28 pixels: 4 gates of (28 inputs + 32 hidden) per step, then fc 32 -> 10
    assert forward_flops("lstm", (1, 28, 28), 10, 32) == 2 * (28 * 4 * 32 * (28 + 32) + 32 * 10)


def test_counting_leaves_the_random_stream_alone():
    forward_flops.cache_clear()
    torch.manual_seed(0)
    expected = torch.rand(3)
    torch.manual_seed(0)
    forward_flops("cnn-bn", (1, 28, 28), 10, None)
    assert torch.equal(torch.rand(3), expected)


def test_the_assignment_study_starts_with_its_longest_runs():
    specs = expand(load_suite("assignment"))
    units = longest_first([[(s, Path(s.dirname))] for s in specs])
    order = [(u[0][0].config.model, u[0][0].config.data, u[0][0].config.hidden) for u in units]
    assert order[:3] == [("lenet5", "mnist", None)] * 3  # 5,500 steps and 55 evaluations of 10,000 images
    assert order[-3:] == [("rnn", "mnist", 32)] * 3
    assert [u[0][0].config.seed for u in units[:3]] == [0, 1, 2]  # ties keep the suite's order
    flops = [estimated_flops(u[0][0].config) for u in units]
    assert flops == sorted(flops, reverse=True)


def test_a_fleet_counts_all_its_members():
    specs = expand(load_suite("assignment"))
    rnn32 = [(s, Path(s.dirname)) for s in specs if s.config.model == "rnn" and s.config.hidden == 32]
    lstm128 = [(s, Path(s.dirname)) for s in specs if s.config.model == "lstm" and s.config.hidden == 128]
    assert longest_first([lstm128[:1], rnn32])[0] == lstm128[:1]
    many = rnn32 * 20  # 60 small members outweigh one big run
    assert longest_first([lstm128[:1], many])[0] == many
