"""The model loaded in a background thread while the series are read and registered.

On a first run torch's import alone takes over a second (1.15–1.26 s on an Intel Xeon), and the series' reading,
the prostate model and the registrations need no torch and run in C with the GIL released. So the pipeline checks
the model file without torch first (``model_files.precheck_model``: a missing, pickled, foreign or altered file is
refused before any slow work), then starts :class:`BackgroundModel` and preprocesses meanwhile. A failure in the
thread (a card whose architecture does not fit the weights, ``--device cuda`` without a GPU) stops the registrations
at their next cancel check (:meth:`BackgroundModel.cancel_hook`) and is raised by :meth:`BackgroundModel.result`
(docs/performance.md, "The model loaded while the series are read").
"""

from __future__ import annotations

import threading
from typing import Optional

from DCEDiffLib.progress import CancelHook


class BackgroundModel:
    """``load_model(weights)`` with the device (``resolve_device``) and precision (``choose_precision``) chosen, in
    a daemon thread started at construction (a daemon: a run stopped by an error or a cancel does not wait for it)."""

    def __init__(self, weights, device: str = "auto", precision: str = "auto"):
        self._weights, self._device, self._precision = weights, device, precision
        self._done = threading.Event()
        self._error: Optional[BaseException] = None
        self._value = None
        threading.Thread(target=self._load, name="dcediff-model-load", daemon=True).start()

    def _load(self) -> None:
        try:
            from DCEDiffLib.diffusion.model_files import load_model
            from DCEDiffLib.diffusion.synthesis import resolve_device
            from DCEDiffLib.precision import choose_precision

            choice = choose_precision(self._precision, resolve_device(self._device).type)
            self._value = (load_model(self._weights), choice)
        except BaseException as error:  # raised in the caller's thread by result()
            self._error = error
        finally:
            self._done.set()

    def failed(self) -> bool:
        """Whether the thread has ended with an error (without waiting for it)."""
        return self._done.is_set() and self._error is not None

    def cancel_hook(self, should_cancel: Optional[CancelHook] = None) -> CancelHook:
        """``should_cancel`` (the user's) or the load failed: what the preprocessing polls meanwhile, so that a model
        that cannot run does not wait for the registrations to end."""
        return lambda: self.failed() or (should_cancel is not None and bool(should_cancel()))

    def raise_if_failed(self) -> None:
        """The thread's error, raised here, where it has ended with one (a cancel caused by it becomes it)."""
        if self.failed():
            raise self._error

    def result(self):
        """(``LoadedModel``, ``PrecisionChoice``), waiting for the thread; its error is raised here."""
        self._done.wait()
        if self._error is not None:
            raise self._error
        return self._value
