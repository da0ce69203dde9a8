"""The main window's pixel side: hover readout, clicks (and the arrow-key probe), masked pixels,
the posterior of a click, its predictive band, pinned pixels, a second model on the same click and
the latent explorer. Mixed into :class:`~tissue_inn.gui.main_window.MainWindow`."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from tissue_inn.errors import TissueInnError
from tissue_inn.workspace import PixelResult, Workspace
from tissue_inn.workspace.compare import COMPARE_COLOR
from tissue_inn.workspace.snr import snr_text
from tissue_inn.workspace.trust import calibration_badge

if TYPE_CHECKING:
    from tissue_inn.gui.main_window import MainWindow

__all__ = ["PixelsMixin", "CLICK_HINT"]

CLICK_HINT = (
    "<b>Click a pixel on the image</b> to see its posterior. Shown now: the priors (grey) — what the model "
    "assumes before any measurement. Arrow keys move the probe pixel."
)


class PixelsMixin:
    """Pixel interactions of the main window (needs the window's widgets, workspace and workers)."""

    ws: Workspace

    # ------------------------------------------------------------------ hover
    def _on_hover(self: MainWindow, row: int, col: int) -> None:
        if not self.ws.has_image or not self.ws.inside(row, col):
            return
        s = self.ws.spectrum(row, col)
        wl = self.ws.wavelengths_nm if self.ws.wavelengths_nm is not None else np.arange(s.size)
        self.spectrum.set_hover(wl, s)
        key = self.maps_panel.current_key() if self.ws.maps is not None else None
        self.status_pixel.setText(self.ws.hover_text(row, col, key))

    # ------------------------------------------------------------------ clicks
    def move_probe(self: MainWindow, d_row: int, d_col: int) -> None:
        """Arrow keys: move the probe pixel by one and compute its posterior."""
        if not self.ws.has_image:
            return
        h, w = self.ws.shape
        row, col = self._probe if self._probe is not None else (h // 2, w // 2)
        row, col = min(max(row + d_row, 0), h - 1), min(max(col + d_col, 0), w - 1)
        self.select_pixel(row, col)

    def select_pixel(self: MainWindow, row: int, col: int) -> None:
        """Compute the posterior of one pixel off the GUI thread (older requests are dropped)."""
        if not self.ws.ready:
            self.show_error("Not ready", "load a model and an image whose bands match first")
            return
        if not self.ws.inside(row, col):
            return
        self._probe = (row, col)
        self.image_view.mark_pixel(row, col)
        reason = self.ws.mask_reason(row, col)
        if reason is not None:
            self._show_masked(row, col, reason)
            return
        if self._pixel_busy:
            self._pending_pixel = (row, col)  # coalesce: only the latest click is computed next
            self.ws.request_pixel(row, col)  # bumps the generation: the running answer is now stale
            return
        self._start_pixel(row, col)

    def _show_masked(self: MainWindow, row: int, col: int, reason: str) -> None:
        """A masked pixel: the previous histograms go, the pixel and the reason are named."""
        self.ws.pixel_generation.next()  # any answer still running is now stale
        self.ws.pixel_result = None
        self._pending_pixel = None
        text = (
            f"Pixel (row {row}, col {col}) is {reason}; it cannot be analysed. "
            "Click another pixel (masked pixels are hatched in magenta)."
        )
        self.posterior_panel.clear()
        self.posterior_panel.set_banner(text, "error")
        self.posterior_panel.header.setText(f"<span style='color:#b00000'>{text}</span>")
        y = self.ws.model_spectrum(row, col)
        if np.all(np.isfinite(y)):
            self.spectrum.set_pixel(self.ws.band_centers_nm, y, None)
        else:
            self.spectrum.set_pixel(self.ws.band_centers_nm[:0], y[:0], None)  # nothing to draw
        self.statusBar().showMessage(text, 8000)
        self.pixelMasked.emit(row, col)

    def _start_pixel(self: MainWindow, row: int, col: int) -> None:
        try:
            request = self.ws.request_pixel(row, col)
        except Exception as exc:  # noqa: BLE001
            self.show_error("Cannot compute this pixel", exc)
            return
        self._pixel_busy = True
        self.posterior_panel.header.setText(f"computing pixel (row {row}, col {col}) …")
        self.workers.start(
            self.ws.compute_pixel,
            request,
            name="pixel",
            on_returned=self._on_pixel,
            on_errored=self._on_pixel_error,
            on_finished=self._on_pixel_finished,
        )
        other = self.ws.compare_request(request)
        if other is not None:
            self.workers.start(
                self.ws.compute_pixel,
                other,
                name="compare",
                on_returned=self._on_compare,
                on_errored=lambda exc: self.statusBar().showMessage(f"second model failed: {exc}", 8000),
            )

    def _extra_series(self: MainWindow) -> list[tuple[str, np.ndarray, str]]:
        extra = self.ws.pins.series()
        if self.ws.compare_result is not None and self.ws.compare_model is not None:
            r = self.ws.compare_result.request
            cur = self.ws.pixel_result.request if self.ws.pixel_result is not None else None
            if cur is not None and (r.row, r.col) == (cur.row, cur.col):
                badge = calibration_badge(self.ws.compare_model.card)
                label = self.ws.compare_model.name + (f" ({badge.status})" if badge.warn else "")
                extra.append((label, self.ws.compare_result.samples, COMPARE_COLOR))
        return extra

    def _redraw_pixel(self: MainWindow) -> None:
        result = self.ws.pixel_result
        snr = snr_text(result.request.snr if result else self.ws.snr, self.ws.nominal_snr)
        muted = result is not None and result.explained is False
        self.posterior_panel.show_pixel(self.ws, self._extra_series(), f" · model {self.ws.model_name} · {snr}", muted)
        self.image_view.mark_pins([(p.result.request.row, p.result.request.col, p.color) for p in self.ws.pins.items])

    def _on_pixel(self: MainWindow, result: PixelResult) -> None:
        if not self.ws.accept_pixel(result):
            return
        if result.misfit_message:  # the gate: not explained by this model at its 1 % false-alarm level
            self.posterior_panel.set_banner(
                f"⚠ <b>Not explained by {self.ws.model_name}</b>: {result.misfit_message} The histograms are "
                "shown faded: read them with care.", "error"
            )
        else:
            self.posterior_panel.set_banner(self._model_warning)
        self._redraw_pixel()
        req = result.request
        self.spectrum.set_pixel(self.ws.band_centers_nm, req.spectrum, None)
        self.spectrum.plot.setTitle(f"pixel (row {req.row}, col {req.col})", size="9pt")
        self._compute_latent()
        self.pixelShown.emit(req.generation)
        if self.ws.posterior is not None and self.ws.posterior.has_forward_model:
            self.workers.start(
                self.ws.compute_predictive,
                result,
                name="predictive",
                on_returned=lambda check: self._on_predictive(result, check),
                on_errored=lambda exc: self.statusBar().showMessage(f"predictive check failed: {exc}", 8000),
            )

    def _on_compare(self: MainWindow, result: PixelResult) -> None:
        if self.ws.accept_compare(result) and self.ws.pixel_result is not None:
            self._redraw_pixel()
            self.compareShown.emit(result.request.generation)

    def _on_predictive(self: MainWindow, result: PixelResult, check) -> None:
        if check is None or not self.ws.accept_predictive(result, check):
            return
        req = result.request
        self.spectrum.set_pixel(self.ws.band_centers_nm, req.spectrum, self.ws.predictive_quantiles(result))
        self.spectrum.plot.setTitle(
            f"pixel (row {req.row}, col {req.col}) · predictive residual {100 * check.relative_residual:.1f} %",
            size="9pt",
        )
        self.predictiveShown.emit(req.generation)

    def _on_pixel_error(self: MainWindow, exc: BaseException) -> None:
        if self._pending_pixel is not None:
            return  # the user has clicked on; this answer is stale anyway
        if isinstance(exc, TissueInnError):  # e.g. a dead or saturated pixel: say so, no dialog
            self.posterior_panel.clear()
            self.posterior_panel.header.setText(f"<span style='color:#b00000'>{exc}</span>")
            self.statusBar().showMessage(str(exc), 8000)
            return
        self.show_error("Pixel posterior failed", exc)

    def _on_pixel_finished(self: MainWindow) -> None:
        self._pixel_busy = False
        if self._pending_pixel is not None:
            row, col = self._pending_pixel
            self._pending_pixel = None
            self._start_pixel(row, col)

    # ------------------------------------------------------------------ the measurement's noise level
    def set_snr(self: MainWindow, value: float | None) -> None:
        """Use this SNR for every later click, map and region (None or 0: the model's nominal)."""
        value = None if not value else float(value)
        try:
            warning = self.ws.set_snr(value)
        except TissueInnError as exc:
            self.show_error("Invalid SNR", exc)
            return
        self._snr_warning = warning
        if warning:
            self.posterior_panel.set_banner(f"⚠ {warning}")
            self.statusBar().showMessage(warning, 10000)
        if self.posterior_panel.snr.value() != (value or 0.0):
            self.posterior_panel.snr.blockSignals(True)
            self.posterior_panel.snr.setValue(value or 0.0)
            self.posterior_panel.snr.blockSignals(False)
        if self.ws.pixel_result is not None and self._probe is not None:
            self.select_pixel(*self._probe)  # the shown pixel, again at the new SNR

    def estimate_snr(self: MainWindow) -> None:
        """Estimate the SNR from the image in a worker; the answer fills the SNR field (and says how)."""
        if not self.ws.has_image:
            return
        from tissue_inn.workspace.snr import estimate_image_snr

        self.statusBar().showMessage("estimating the noise level from the image …")
        self.workers.start(
            estimate_image_snr, self.ws.image, name="snr",
            on_returned=lambda est: (self.set_snr(est.value), self.statusBar().showMessage(f"estimated: {est.text}", 10000)),
            on_errored=lambda exc: self.show_error("Cannot estimate the SNR", exc),
        )

    # ------------------------------------------------------------------ pins and a second model
    def pin_pixel(self: MainWindow) -> None:
        try:
            self.ws.pin_current()
        except TissueInnError as exc:
            self.statusBar().showMessage(str(exc), 6000)
            return
        self._redraw_pixel()

    def clear_pins(self: MainWindow) -> None:
        self.ws.pins.clear()
        self.image_view.mark_pins([])
        if self.ws.pixel_result is not None:
            self._redraw_pixel()

    def compare_with_model(self: MainWindow, name_or_path) -> bool:
        """Answer every click with a second model too (its posterior overlaid on the first's)."""
        from tissue_inn.workspace.models import load_model

        try:
            self.ws.set_compare_model(load_model(name_or_path) if name_or_path is not None else None)
        except Exception as exc:  # noqa: BLE001
            self.show_error("Cannot compare with this model", exc)
            return False
        if self._probe is not None and self.ws.ready:
            self.select_pixel(*self._probe)
        name = self.ws.compare_model.name if self.ws.compare_model is not None else None
        self.statusBar().showMessage(f"comparing with {name}" if name else "comparison off", 5000)
        return True

    # ------------------------------------------------------------------ latent explorer
    def _configure_latent(self: MainWindow) -> None:
        try:
            n = self.ws.n_latent()
        except TissueInnError:
            n = 0
        self.latent.configure(self.ws.parameter_names, self.ws.units, self.ws.plot_ranges(), max(n, 1), self.ws.labels)

    def _compute_latent(self: MainWindow) -> None:
        result = self.ws.pixel_result
        if result is None or not self.ws.has_model:
            return
        a, b = self.latent.dims()
        if b == a:
            return
        req = result.request
        gen = req.generation
        self.workers.start(
            self.ws.latent_grid,
            req.spectrum,
            a,
            b,
            self.latent.extent.value(),
            name="latent",
            on_returned=lambda grid: self._on_latent(gen, grid, (req.row, req.col)),
            on_errored=lambda exc: self.show_error("Latent explorer failed", exc),
        )

    def _on_latent(self: MainWindow, generation: int, grid, pixel) -> None:
        if generation != self.ws.generation:
            return
        self.latent.set_grid(grid, pixel)
        self.latentShown.emit()
