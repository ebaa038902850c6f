"""GPU panel: utilisation and memory per device with sparklines, or a plain "no GPU" and why."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.containers import Vertical

from mihd.runs.gpu import GpuDevice
from mihd.present import fmt_bytes

from ..text import Plain, say
from .fmt import fmt_pct
from .sparkline import MetricSpark


class DeviceView(Vertical):
    def __init__(self, device: GpuDevice, **kw) -> None:
        super().__init__(classes="gpu-device", **kw)
        self.index, self.device = device.index, device

    def compose(self) -> ComposeResult:
        yield Plain(classes="gpu-name")
        yield MetricSpark("util", fmt_pct, classes="gpu-util")
        yield MetricSpark("mem ", fmt_pct, classes="gpu-mem")

    def on_mount(self) -> None:
        self.update_device(self.device)

    def update_device(self, d: GpuDevice) -> None:
        self.device = d
        if not self.query(".gpu-name"):
            return  # not composed yet: on_mount shows the latest
        mem_pct = 100.0 * d.mem_used / d.mem_total if d.mem_total else None
        say(self.query_one(".gpu-name", Plain),
            f"GPU {d.index}  {d.name}  {fmt_bytes(d.mem_used)} / {fmt_bytes(d.mem_total)}")
        self.query_one(".gpu-util", MetricSpark).push(d.util)
        self.query_one(".gpu-mem", MetricSpark).push(mem_pct)


class GpuPanel(Vertical):
    def compose(self) -> ComposeResult:
        yield Plain("probing GPUs…", id="gpu-none")  # NVML's words

    def show(self, devices: list[GpuDevice], reason: str) -> None:
        none = self.query_one("#gpu-none", Plain)
        views = {v.index: v for v in self.query(DeviceView)}
        if not devices:
            say(none, reason or "no GPU")
            none.display = True
        else:
            none.display = False
        for idx in set(views) - {d.index for d in devices}:
            views.pop(idx).remove()
        for d in devices:
            if d.index not in views:
                views[d.index] = DeviceView(d)
                self.mount(views[d.index])
            else:
                views[d.index].update_device(d)
