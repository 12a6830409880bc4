"""The convolutional network trained on MNIST."""

from __future__ import annotations

import torch
from torch import nn

# MNIST's mean and standard deviation over the training set, the usual normalisation.
MNIST_MEAN, MNIST_STD = 0.1307, 0.3081


class MnistCNN(nn.Module):
    """Two 3x3 convolution blocks (16 and 32 channels, each ReLU + 2x2 max-pool) and two dense layers.

    About 220 k parameters: small enough for two CPU cores to train the full set
    in seconds per epoch, large enough to pass 98.5% test accuracy in three epochs.
    """

    def __init__(self) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(1, 16, kernel_size=3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2),  # 16 x 14 x 14
            nn.Conv2d(16, 32, kernel_size=3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2),  # 32 x 7 x 7
        )
        self.classifier = nn.Sequential(
            nn.Flatten(),
            nn.Linear(32 * 7 * 7, 128),
            nn.ReLU(),
            nn.Dropout(0.2),
            nn.Linear(128, 10),
        )

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(images))


def to_tensor(images) -> torch.Tensor:
    """uint8 (N, 28, 28) -> normalised float32 (N, 1, 28, 28)."""
    # A copy: arrays from Ray's object store are read-only.
    return ((torch.tensor(images, dtype=torch.float32) / 255.0 - MNIST_MEAN) / MNIST_STD).unsqueeze(1)


def to_labels(labels) -> torch.Tensor:
    return torch.tensor(labels, dtype=torch.long)


def train_epoch(
    model: nn.Module, optimizer: torch.optim.Optimizer, images: torch.Tensor, labels: torch.Tensor, order: torch.Tensor, batch_size: int
) -> float:
    """One pass over `order` (indices into images/labels) in mini-batches; returns the summed loss."""
    model.train()
    loss_sum = 0.0
    for start in range(0, len(order), batch_size):
        idx = order[start : start + batch_size]
        optimizer.zero_grad(set_to_none=True)
        loss = nn.functional.cross_entropy(model(images[idx]), labels[idx])
        loss.backward()
        optimizer.step()
        loss_sum += loss.item() * len(idx)
    return loss_sum


def evaluate(model: nn.Module, images: torch.Tensor, labels: torch.Tensor, chunk: int = 1000) -> tuple[float, int]:
    """Summed cross-entropy and the number of correct predictions."""
    model.eval()
    with torch.no_grad():
        logits = torch.cat([model(images[i : i + chunk]) for i in range(0, len(labels), chunk)])
    return nn.functional.cross_entropy(logits, labels, reduction="sum").item(), int((logits.argmax(dim=1) == labels).sum().item())
