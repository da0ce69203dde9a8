"""The main window's files and folders: opening images (with white/dark references remembered per
folder), clicking through a folder, recent files and folders, loading models (asking before unsaved
maps are discarded), drag and drop, and the launch that reads model and image in the background.
Mixed into :class:`~tissue_inn.gui.main_window.MainWindow`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

from PySide6.QtGui import QAction
from PySide6.QtWidgets import QFileDialog, QMessageBox

from tissue_inn.gui.model_dialog import ModelCardDialog
from tissue_inn.gui.open_dialog import OpenImageDialog
from tissue_inn.workspace import BandMismatchError, Workspace, push_recent, step_image
from tissue_inn.workspace.browse import References, references_for, remember_references
from tissue_inn.workspace.images import image_filter, image_suffixes
from tissue_inn.workspace.models import bundle_folder_of
from tissue_inn.workspace.trust import calibration_badge

if TYPE_CHECKING:
    from tissue_inn.gui.main_window import MainWindow
    from tissue_inn.gui.new_model_dialog import NewModelDialog

__all__ = ["FilesMixin"]


class FilesMixin:
    """Files, folders and models of the main window."""

    ws: Workspace

    # ================================================================== files and folders
    def _list_setting(self: MainWindow, key: str) -> list[str]:
        value = self.settings.value(key, [])
        if isinstance(value, str):
            value = [value]
        return [str(v) for v in (value or [])]

    def recent_files(self: MainWindow) -> list[str]:
        return self._list_setting("recent_files")

    def recent_folders(self: MainWindow) -> list[str]:
        return self._list_setting("recent_folders")

    def _references_memory(self: MainWindow) -> dict[str, dict[str, str]]:
        try:
            value = json.loads(str(self.settings.value("references", "{}") or "{}"))
        except json.JSONDecodeError:
            value = {}
        return value if isinstance(value, dict) else {}

    def remembered_references(self: MainWindow, image: str | Path) -> References:
        return references_for(self._references_memory(), image)

    def _remember(self: MainWindow, path: str | Path, refs: References | None = None) -> None:
        self.settings.setValue("recent_files", push_recent(self.recent_files(), path))
        self.settings.setValue("recent_folders", push_recent(self.recent_folders(), Path(path).parent))
        if refs is not None:
            self.settings.setValue("references", json.dumps(remember_references(self._references_memory(), path, refs)))
        self.settings.sync()
        self._rebuild_recent()

    def _rebuild_recent(self: MainWindow) -> None:
        for menu, items, slot in (
            (self.recent_menu, self.recent_files(), self.open_image),
            (self.folders_menu, self.recent_folders(), self.open_folder),
        ):
            menu.clear()
            for f in items:
                act = QAction(f, self)
                act.triggered.connect(lambda *_, f=f, slot=slot: slot(f))
                menu.addAction(act)
            menu.setEnabled(bool(items))

    def open_image_dialog(self: MainWindow) -> None:
        start = str(self.ws.image_path.parent) if self.ws.image_path else ""
        dlg = OpenImageDialog(image_filter(), lambda p: self.remembered_references(p), start, self)
        if dlg.exec():
            path, refs = dlg.choice()
            if str(path):
                self.open_image(path, refs)

    def open_folder(self: MainWindow, folder: str | Path) -> bool:
        """Open the first image of a folder (then click through it with Page Down)."""
        from tissue_inn.workspace.browse import folder_images

        images = folder_images(folder, image_suffixes())
        if not images:
            self.show_error("No images", f"{folder} holds no image this application can read")
            return False
        return self.open_image(images[0])

    def next_image(self: MainWindow) -> bool:
        return self._step_image(1)

    def previous_image(self: MainWindow) -> bool:
        return self._step_image(-1)

    def _step_image(self: MainWindow, step: int) -> bool:
        if self.ws.image_path is None:
            return False
        target = step_image(self.ws.image_path, step, image_suffixes())
        if target is None:
            self.statusBar().showMessage("no further image in this folder", 4000)
            return False
        return self.open_image(target)

    def _discard_ok(self: MainWindow, action: str) -> bool:
        """Ask before results are discarded (maps computed and not exported)."""
        if not self.ws.has_unsaved_maps:
            return True
        answer = QMessageBox.question(
            self,
            "Discard the maps?",
            f"The maps of {self.ws.image_path.name if self.ws.image_path else 'this image'} were not exported. "
            f"{action} discards them. Continue?",
            QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.No,
            QMessageBox.StandardButton.No,
        )
        return answer == QMessageBox.StandardButton.Yes

    def open_image(self: MainWindow, path: str | Path, refs: References | None = None) -> bool:
        """Load an image (with the references given, or those remembered for its folder); errors (corrupt
        file, bands that do not fit the model) become a dialog."""
        if not self._discard_ok("Opening another image"):
            return False
        refs = refs if refs is not None else self.remembered_references(path)
        try:
            self.ws.load_image(path, white=refs.white, dark=refs.dark)
        except Exception as exc:  # noqa: BLE001 — every failure is reported, none crashes the app
            self._load_failed("Cannot open image", exc)
            return False
        self._remember(path, refs)
        self._after_image_change()
        used = f" (white {refs.white.name}" + (f", dark {refs.dark.name})" if refs.dark else ")") if refs.white else ""
        self.statusBar().showMessage(f"opened {path}{used}", 6000)
        return True

    def load_model_dialog(self: MainWindow) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Load model bundle (folder with model_card.json)")
        if folder:
            self.load_model(folder)

    def compare_model_dialog(self: MainWindow) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Second model to compare (folder with model_card.json)")
        if folder:
            self.compare_with_model(folder)

    def load_model(self: MainWindow, name_or_path: str | Path | None = None, device: str | None = None) -> bool:
        """Load a model bundle; a model whose bands do not match the image is refused with a dialog."""
        if not self._discard_ok("Loading another model"):
            return False
        if self.workers.n_running:
            self.workers.stop_and_wait(5000)
        try:
            self.ws.load_model(name_or_path, device=device)
        except Exception as exc:  # noqa: BLE001
            self._load_failed("Cannot load model", exc)
            return False
        self._after_model_change()
        return True

    def _after_model_change(self: MainWindow) -> None:
        badge = calibration_badge(self.ws.card)
        self._model_warning = (
            f"⚠ <b>{self.ws.model_name} is {badge.status}</b>: {badge.detail}" if badge.warn else None
        )
        if badge.warn:
            self.statusBar().showMessage(f"warning: {self.ws.model_name} is {badge.status}", 10000)
        self.posterior_panel.configure(self.ws)
        self.regions_panel.histograms.configure(self.ws)
        self.maps_panel.allow_amortised(self.ws.model.has_amortised)
        self._configure_latent()
        self._clear_results()
        self._refresh_status()

    def _load_failed(self: MainWindow, title: str, exc: BaseException) -> None:
        """An error dialog; when the image's bands fit no model, it offers to make one for its camera."""
        wl = getattr(exc, "cube_wavelengths_nm", None)
        if not isinstance(exc, BandMismatchError) or not wl:
            self.show_error(title, exc)
            return
        self.statusBar().showMessage(f"{title}: the image's bands do not fit the model", 8000)
        answer = QMessageBox.critical(
            self, title, f"{exc}\n\nMake a model for this image's camera ({len(wl)} bands, "
            f"{min(wl):.0f}–{max(wl):.0f} nm)? (Model ▸ New model…, with a camera file made from its band centres)",
            QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.No, QMessageBox.StandardButton.No)
        if answer == QMessageBox.StandardButton.Yes:
            self.model_for_cube(wl)

    def model_for_cube(self: MainWindow, wavelengths_nm) -> NewModelDialog | None:
        """Write a camera file with the cube's band centres and open Model ▸ New model… with it."""
        from tissue_inn.workspace.new_model import cube_camera_file, default_models_dir

        try:
            camera = cube_camera_file(wavelengths_nm, default_models_dir() / "cameras")
        except Exception as exc:  # noqa: BLE001
            self.show_error("Cannot make a camera file", exc)
            return None
        return self.new_model_dialog(camera=str(camera))

    def new_model_dialog(self: MainWindow, camera: str | None = None, tissue: str | None = None) -> NewModelDialog:
        """Model ▸ New model… (non-modal; "Load this model" loads the result here)."""
        from tissue_inn.gui.new_model_dialog import NewModelDialog

        if tissue is None and self.ws.has_model:  # the loaded model's tissue, when it is a shipped one
            from tissue_inn.workspace.new_model import shipped

            name = (self.ws.card.get("tissue") or {}).get("name")
            tissue = name if name in shipped("tissue") else None
        dlg = NewModelDialog(self, workers=self.workers, tissue=tissue, camera=camera, on_load=self.load_model)
        self.new_model = dlg
        dlg.show()
        return dlg

    def show_model_card(self: MainWindow) -> ModelCardDialog | None:
        if not self.ws.has_model:
            self.show_error("No model", "load a model bundle first")
            return None
        dlg = ModelCardDialog(self.ws.card, self.ws.model_path, self)
        dlg.show()
        return dlg

    def dragEnterEvent(self: MainWindow, event) -> None:  # noqa: N802
        if event.mimeData().hasUrls():
            event.acceptProposedAction()

    def dropEvent(self: MainWindow, event) -> None:  # noqa: N802
        for url in event.mimeData().urls():
            self.open_dropped(url.toLocalFile())
        event.acceptProposedAction()

    def open_dropped(self: MainWindow, path: str) -> None:
        """A dropped bundle folder (or its card) loads the model, a folder opens its first image, a file opens."""
        bundle = bundle_folder_of(path)
        if bundle is not None:
            self.load_model(bundle)
        elif Path(path).is_dir():
            self.open_folder(path)
        else:
            self.open_image(Path(path))

    # ================================================================== launch: window first, then the work
    def load_in_background(self: MainWindow, model: str | Path | None, image: str | Path | None, device: str | None = None) -> None:
        """Read the model and then the image in worker threads behind a busy indicator (the window is
        already painted); errors become dialogs as usual."""
        from tissue_inn.workspace.images import load_image
        from tissue_inn.workspace.models import load_model

        self.busy.setVisible(True)
        self.statusBar().showMessage("loading the model …")

        def done(ok: bool) -> None:
            self.busy.setVisible(False)
            self.loadingEnded.emit(ok)

        def image_loaded(loaded) -> None:
            try:
                self.ws.set_image(loaded)
            except Exception as exc:  # noqa: BLE001
                self._load_failed("Cannot open image", exc)
                done(False)
                return
            self._remember(loaded.path, References(loaded.white, loaded.dark))
            self._after_image_change()
            self.statusBar().showMessage(f"opened {loaded.path}", 4000)
            done(True)

        def start_image() -> None:
            if image is None:
                done(True)
                return
            self.statusBar().showMessage(f"loading {Path(image).name} …")
            refs = self.remembered_references(image)
            self.workers.start(
                load_image, image, refs.white, refs.dark, name="load image", on_returned=image_loaded,
                on_errored=lambda exc: (self.show_error("Cannot open image", exc), done(False)),
            )

        def model_loaded(model_obj) -> None:
            try:
                self.ws.set_model(model_obj)
            except Exception as exc:  # noqa: BLE001
                self._load_failed("Cannot load model", exc)
                done(False)
                return
            self._after_model_change()
            start_image()

        self.workers.start(
            load_model, model, device, name="load model", on_returned=model_loaded,
            on_errored=lambda exc: (self.show_error("Cannot load model", exc), start_image()),
        )
