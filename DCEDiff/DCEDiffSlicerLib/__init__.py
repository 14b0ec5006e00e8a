"""Slicer-side helpers of the DCEDiff module.

- ``scene_io``: MRML nodes <-> files/SimpleITK images with exact geometry; result, residual, uncertainty and
  metrics-table nodes. Imports only ``slicer``/``slicer.util`` (plus numpy and SimpleITK), so it runs under the
  PyPI ``slicer-core`` wheel in pytest.
- ``process_runner``: the engine's ``synthesize`` command line, its progress lines, and a subprocess runner with a
  process-tree kill. No Slicer import at all.
- ``study_fill``: "Fill from study": the engine's DICOM role rules on the volume nodes loaded with the DICOM module
  (their ``DICOM.instanceUIDs`` → files → headers) → the input selectors. Runs under ``slicer-core``.
- ``shown_frame``: the frame a volume sequence's proxy node shows, recorded and copied into a volume of its own for a
  run (runs under ``slicer-core``).
- ``dependencies``: torch through PyTorchUtils and the other packages of ``Resources/requirements.txt``, only when
  the user agrees (imports Slicer lazily, inside functions).
"""
