"""Small pieces: fused head cross-entropy, precision choice, durations, the re-plannable schedule."""
from __future__ import annotations

import pytest
import torch
from torch import nn

from studyabroadgpt.config import ConfigError
from studyabroadgpt.train.config import TrainConfig, parse_duration
from studyabroadgpt.train.modeling import _HeadCrossEntropy, choose_precision
from studyabroadgpt.train.schedule import WarpedSchedule
from studyabroadgpt.train.trainer import _glibc, kept_heap


@pytest.mark.parametrize("chunk", [7, 64, 1000])
def test_fused_head_cross_entropy_matches_reference(chunk):
    torch.manual_seed(0)
    h = torch.randn(50, 16, requires_grad=True)
    w = torch.randn(300, 16) * 0.3
    t = torch.randint(0, 300, (50,))
    loss = _HeadCrossEntropy.apply(h, w, t, chunk, 1.0)
    (3 * loss).backward()
    fused_grad, h.grad = h.grad.clone(), None
    ref = nn.functional.cross_entropy(h @ w.t(), t, reduction="sum")
    (3 * ref).backward()
    assert torch.allclose(loss, ref, rtol=1e-5)
    assert torch.allclose(fused_grad, h.grad, atol=1e-5)
    with torch.autocast("cpu", dtype=torch.bfloat16):  # 16-bit matmuls, fp32 softmax
        low = _HeadCrossEntropy.apply(h, w, t, chunk, 1.0)
    assert low.dtype == torch.float32 and abs(float(low) - float(ref)) / float(ref) < 2e-2


def test_precision_choice_on_cpu(monkeypatch):
    from studyabroadgpt.train import modeling

    monkeypatch.setattr(modeling, "cpu_has_fast_bf16", lambda: True)
    auto = choose_precision(TrainConfig(), "cpu")
    assert (auto.weights, auto.autocast) == ("bfloat16", "bf16")
    # Without hardware bf16 (AVX2-only CPUs) bf16 is emulated and many times slower: auto picks fp32.
    monkeypatch.setattr(modeling, "cpu_has_fast_bf16", lambda: False)
    auto = choose_precision(TrainConfig(), "cpu")
    assert (auto.weights, auto.autocast) == ("float32", None) and "AVX512-BF16" in auto.why
    assert choose_precision(TrainConfig(precision="fp32"), "cpu").autocast is None
    with pytest.raises(ConfigError, match="fp16 needs a CUDA GPU"):
        choose_precision(TrainConfig(precision="fp16"), "cpu")


def test_parse_duration():
    assert parse_duration("8h30m") == 8.5 * 3600
    assert parse_duration("90s") == 90 and parse_duration("10m") == 600 and parse_duration("1.5h") == 5400
    assert parse_duration("45") == 45
    for bad in ("soon", "10x", "h", "0s"):
        with pytest.raises(ValueError):
            parse_duration(bad)


def test_schedule_replan_keeps_lr_continuous_and_ends_at_zero():
    s = WarpedSchedule("linear", warmup=2, total=20)
    before = [s.factor(i) for i in range(10)]
    s.replan(10, remaining_steps=5)  # e.g. batch doubled: 10 nominal steps left, now in 5
    assert [s.factor(i) for i in range(10)] == before, "the past is untouched"
    assert s.factor(10) == pytest.approx(WarpedSchedule("linear", 2, 20).factor(10))
    assert s.factor(15) == pytest.approx(0.0)
    after = [s.factor(i) for i in range(10, 16)]
    assert all(b <= a for a, b in zip(after, after[1:]))
    restored = WarpedSchedule.from_state(s.state())
    assert [restored.factor(i) for i in range(16)] == [s.factor(i) for i in range(16)]


@pytest.mark.skipif(_glibc() is None, reason="glibc's mallopt only")
def test_kept_heap_reuses_freed_memory_without_page_faults():
    import resource

    def faults_of_five_allocations() -> int:
        before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
        for _ in range(5):  # 64 MB, above glibc's largest dynamic mmap threshold (32 MB): mapped afresh each time
            torch.empty(16 * 1024 * 1024, dtype=torch.float32).fill_(1.0)
        return resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before

    outside = faults_of_five_allocations()
    with kept_heap():
        faults_of_five_allocations()  # the first one grows the heap
        inside = faults_of_five_allocations()
    after = faults_of_five_allocations()  # thresholds back to glibc's defaults, kept memory released
    # every allocation outside faults its pages in again (16k of 4 kB, or 32 huge pages where THP is always on);
    # inside they come back from the heap
    assert outside > 0 and after > 0
    assert inside * 10 < min(outside, after), (outside, inside, after)
