"""The fault injector: seeded, shape-preserving, and each fault changes the frame as it should."""

from __future__ import annotations

import numpy as np
import pytest

from sonobridge.lab.faults import InjectedFault, inject


def _tissue(seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    frame = np.clip(rng.gamma(2.0, 40.0, (96, 128)), 0, 255).astype(np.uint8)
    frame[:, :8] = 0  # outside the sector
    return frame


@pytest.mark.parametrize("fault", list(InjectedFault))
def test_same_seed_same_pixels_and_the_frame_changes(fault):
    frame = _tissue()
    a, b = inject(frame, fault, 5), inject(frame, fault, 5)
    assert a.dtype == np.uint8 and a.shape == frame.shape
    assert np.array_equal(a, b)
    assert not np.array_equal(a, frame)


def test_low_gain_darkens_and_lost_contact_erases_the_tissue():
    frame = _tissue()
    assert inject(frame, InjectedFault.LOW_GAIN, 1).mean() < 0.6 * frame.mean()
    full = inject(frame, InjectedFault.LOST_CONTACT_FULL, 1)
    # Reverberation bands are the same on every column: nothing of the tissue is left.
    assert np.corrcoef(full[:, 20:].ravel(), frame[:, 20:].ravel())[0, 1] < 0.2


def test_dead_elements_leave_dark_columns():
    frame = _tissue()
    out = inject(frame, InjectedFault.DEAD_ELEMENTS, 3)
    ratio = out[:, 8:].mean(axis=0) / frame[:, 8:].mean(axis=0)
    assert ratio.min() < 0.25
    assert np.median(ratio) == pytest.approx(1.0, abs=0.02)


def test_quality_labels_name_the_image_quality_classes():
    labels = {f.quality_label for f in InjectedFault}
    assert labels == {"low_gain", "lost_contact", "dead_elements", "motion_blur", "wrong_depth"}


def test_rejects_colour_frames():
    with pytest.raises(ValueError):
        inject(np.zeros((4, 4, 3), dtype=np.uint8), InjectedFault.LOW_GAIN, 0)
