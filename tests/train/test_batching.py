"""Step planning, cursor re-planning and padding-free packing."""
from __future__ import annotations

import torch

from studyabroadgpt.train.batching import collate, count_steps, plan_steps, rank_micro_batches
from studyabroadgpt.train.formatting import IGNORE, Example


def fake(lengths):
    return [Example(f"e{i}", list(range(1, n + 1)), [IGNORE] * (n // 2) + list(range(n // 2 + 1, n + 1)))
            for i, n in enumerate(lengths)]


KW = dict(seed=3, seq_len=100, packing=True, batch_size=2, grad_accum=2)


def test_each_epoch_visits_every_example_once():
    exs = fake([30, 70, 50, 20, 90, 10, 40, 60, 80, 25])
    steps = list(plan_steps(exs, epochs=2, **KW))
    for epoch in (0, 1):
        seen = [i for s in steps if s.epoch == epoch for mb in s.micro_batches for row in mb for i in row]
        assert sorted(seen) == list(range(len(exs)))
    for s in steps:
        for mb in s.micro_batches:
            assert len(mb) <= 2
            for row in mb:
                assert sum(len(exs[i]) for i in row) <= 100
        assert s.tokens == sum(len(exs[i]) for mb in s.micro_batches for row in mb for i in row)


def test_resume_from_cursor_replays_the_same_steps_and_replans_a_new_shape():
    exs = fake([30, 70, 50, 20, 90, 10, 40, 60, 80, 25] * 3)
    full = list(plan_steps(exs, epochs=2, **KW))
    cut = full[2]
    assert cut.epoch == 0
    rest = list(plan_steps(exs, epochs=2, cursor=(cut.epoch, cut.end), **KW))
    assert [(s.epoch, s.start, s.micro_batches) for s in rest] == [(s.epoch, s.start, s.micro_batches)
                                                                    for s in full[3:]]
    bigger = dict(KW, batch_size=4)
    replanned = list(plan_steps(exs, epochs=2, cursor=(cut.epoch, cut.end), **bigger))
    assert len(replanned) < len(rest)
    done = {i for s in full[:3] if s.epoch == cut.epoch for mb in s.micro_batches for r in mb for i in r}
    left = [i for s in replanned if s.epoch == cut.epoch for mb in s.micro_batches for r in mb for i in r]
    assert sorted(done | set(left)) == list(range(len(exs))) and not done & set(left)
    assert count_steps(exs, epochs=0.5, **KW) < count_steps(exs, epochs=1, **KW)


def test_ranks_get_equal_micro_batch_counts():
    exs = fake([90] * 5)
    step = next(plan_steps(exs, epochs=1, world_size=2, **KW))
    counts = [len(rank_micro_batches(step, r, 2)) for r in range(2)]
    assert counts[0] == counts[1]
    real = [mb for r in range(2) for mb, dummy in rank_micro_batches(step, r, 2) if not dummy]
    assert sorted(map(str, real)) == sorted(map(str, step.micro_batches))


def test_collate_restarts_positions_and_shifts_within_each_example():
    exs = fake([4, 6, 3])
    b = collate(exs, [[0, 1], [2]], pad_id=0)
    assert b["position_ids"][0].tolist() == [0, 1, 2, 3, 0, 1, 2, 3, 4, 5]
    assert b["position_ids"][1].tolist() == [0, 1, 2, 0, 1, 2, 3, 4, 5, 6]
    # targets[t] = labels[t+1] inside an example; the last token of each example predicts nothing
    assert b["targets"][0].tolist() == [IGNORE, 3, 4, IGNORE, IGNORE, IGNORE, 4, 5, 6, IGNORE]
    assert (b["targets"][1][3:] == IGNORE).all()


def test_packed_rows_do_not_attend_across_examples(tiny_model):
    """The loss of two examples packed in one row equals their losses computed separately."""
    from peft import LoraConfig, get_peft_model

    from studyabroadgpt.train.modeling import TrainedPositionsLoss

    model, tok = tiny_model
    torch.manual_seed(0)
    peft = get_peft_model(model, LoraConfig(r=4, target_modules=["q_proj", "v_proj"]))
    try:
        loss = TrainedPositionsLoss(peft).eval()
        g = torch.Generator().manual_seed(1)
        exs = []
        for n in (12, 9):
            ids = torch.randint(5, 1000, (n,), generator=g).tolist()
            exs.append(Example("x", ids, [IGNORE] * 3 + ids[3:]))
        with torch.no_grad():
            packed = loss(**collate(exs, [[0, 1]], pad_id=tok.pad_token_id))
            apart = loss(**collate(exs, [[0]], tok.pad_token_id)) + loss(**collate(exs, [[1]], tok.pad_token_id))
            padded = loss(**collate(exs, [[0], [1]], tok.pad_token_id))
        assert torch.allclose(packed, apart, rtol=1e-4)
        assert torch.allclose(padded, apart, rtol=1e-4)
    finally:
        peft.unload()
