"""A LeNet5 whose logits are multiplied by ``scale``: the same predictions, a saturated
cross-entropy (issue 26's ×1000 population), loadable from a LeNet5 state dict."""

from clmrepro.core.models import LeNet5


class ScaledLeNet5(LeNet5):
    def __init__(self, scale: float):
        super().__init__(in_channels=1, num_classes=10)
        self.scale = float(scale)

    def forward(self, x):
        return super().forward(x) * self.scale


def build(scale: float = 1000.0) -> ScaledLeNet5:
    return ScaledLeNet5(scale)
