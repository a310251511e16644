"""The demo: an MLP trained on scikit-learn's bundled digits dataset (no download)."""

import time

import numpy as np
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split

from .layers import Dense
from .network import Sequential
from .optimizers import Adam


def run_demo(epochs=80, batch_size=32, seed=0, verbose=1):
    """Train a 64-128-10 ReLU/softmax MLP on digits and report accuracy and throughput.

    The 1797 8x8 images are split 75/25 (stratified) into train and test; 10 % of the training
    part is held out for validation.

    Parameters
    ----------
    epochs : int, default 80
    batch_size : int, default 32
    seed : int, default 0
        Seeds the split, the initial weights and the shuffling.
    verbose : {0, 1, 2}, default 1
        Passed to :meth:`Sequential.fit`.

    Returns
    -------
    dict
        ``test_accuracy``, ``test_loss``, ``samples_per_second`` (training passes only),
        ``seconds`` (whole fit, compile included on a cold start) and ``history``.
    """
    X, y = load_digits(return_X_y=True)
    X = (X / 16.0).astype(np.float32)
    X_train, X_test, y_train, y_test = train_test_split(
        X, y, test_size=0.25, stratify=y, random_state=seed
    )
    X_fit, X_val, y_fit, y_val = train_test_split(
        X_train, y_train, test_size=0.1, stratify=y_train, random_state=seed
    )
    model = Sequential(
        [Dense(64, 128, activation="relu"), Dense(128, 10, activation="softmax")],
        dtype="float32",
        seed=seed,
    )
    model.compile(loss="cross_entropy", optimizer=Adam(lr=1e-3), l2=1e-4)
    start = time.perf_counter()
    history = model.fit(
        X_fit, y_fit, epochs=epochs, batch_size=batch_size, validation_data=(X_val, y_val),
        verbose=verbose,
    )  # fmt: skip
    seconds = time.perf_counter() - start
    scores = model.evaluate(X_test, y_test)
    # The first epoch includes compilation on a cold start; throughput uses the others.
    timed = history.epoch_seconds[1:] or history.epoch_seconds
    rate = len(X_fit) * len(timed) / sum(timed)
    return {
        "test_accuracy": scores["accuracy"],
        "test_loss": scores["loss"],
        "samples_per_second": rate,
        "seconds": seconds,
        "history": history,
    }
