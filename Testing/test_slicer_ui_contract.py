"""Contract between DCEDiff.py, Resources/UI/DCEDiff.ui and the packaging, checked without Slicer.

- every widget the module code uses (``self.ui.<name>``) exists in the .ui with the class the code expects;
- every ``SlicerParameterName`` in the .ui is a field of the ``@parameterNodeWrapper`` class and every field is
  bound to a widget of a class the wrapper can connect to that field's type (fields read with ``ast``: the module
  itself imports Slicer's GUI and cannot be imported here);
- the manifest check catches an unlisted file and a listed file that does not exist.
"""

import ast
import re
import shutil
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
MODULE = ROOT / "DCEDiff" / "DCEDiff.py"
UI = ROOT / "Resources" / "UI" / "DCEDiff.ui"

# widget class → the parameter types @parameterNodeWrapper connects it to (Slicer guiConnectors.py)
CONNECTABLE = {
    "qMRMLNodeComboBox": {"node"}, "QSpinBox": {"int"}, "QDoubleSpinBox": {"float"}, "ctkSliderWidget": {"float"},
    "QComboBox": {"choice"}, "QLineEdit": {"str"}, "QCheckBox": {"bool"}, "ctkPathLineEdit": {"Path"},
}
EXPECTED_USED = {"applyButton": "QPushButton", "importModelButton": "QPushButton", "shippedModelButton": "QPushButton",
                 "modelInfoLabel": "QLabel", "progressBar": "QProgressBar", "statusLabel": "QLabel",
                 "logTextEdit": "QPlainTextEdit", "centerPlaceWidget": "qSlicerMarkupsPlaceWidget",
                 "inputsCollapsibleButton": "ctkCollapsibleButton", "settingsCollapsibleButton": "ctkCollapsibleButton"}


def ui_widgets():
    tree = ET.parse(UI)
    top = tree.getroot().find("widget")
    assert top.get("class") == "qMRMLWidget"
    widgets = {w.get("name"): w for w in tree.getroot().iter("widget")}
    return tree, widgets


def parameter_fields():
    """{field: kind} of the class decorated with @parameterNodeWrapper in DCEDiff.py."""
    tree = ast.parse(MODULE.read_text(encoding="utf-8"))
    classes = [n for n in tree.body if isinstance(n, ast.ClassDef)
               and any(getattr(d, "id", None) == "parameterNodeWrapper" for d in n.decorator_list)]
    assert len(classes) == 1, "expected one @parameterNodeWrapper class in DCEDiff.py"
    fields = {}
    for stmt in classes[0].body:
        if isinstance(stmt, ast.AnnAssign):
            text = ast.unparse(stmt.annotation)
            if "Choice(" in text:
                kind = "choice"
            elif "vtkMRML" in text:
                kind = "node"
            else:
                kind = re.sub(r"^Annotated\[(\w+),.*$", r"\1", text)
            fields[stmt.target.id] = kind
    return fields


def test_widgets_used_by_the_module_exist_with_the_expected_class():
    _, widgets = ui_widgets()
    used = set(re.findall(r"self\.ui\.(\w+)", MODULE.read_text(encoding="utf-8")))
    assert used, "the module should use widgets from the .ui"
    for name in used:
        assert name in widgets, f"DCEDiff.py uses self.ui.{name}, which is not in {UI.name}"
    for name, cls in EXPECTED_USED.items():
        assert name in used and widgets[name].get("class") == cls, name
    assert widgets["progressBar"].find("property[@name='maximum']/number").text == "1000"  # fraction × 1000


def test_every_parameter_name_is_a_field_and_every_field_is_bound_to_a_fitting_widget():
    _, widgets = ui_widgets()
    fields = parameter_fields()
    assert {"t2w", "pd", "adc", "t1pre", "dceEarly", "dceLate", "dceBaseline", "center", "modelFile", "sampler",
            "steps", "samples", "seed", "device"} <= set(fields)
    bound = {}
    for name, widget in widgets.items():
        prop = widget.find("property[@name='SlicerParameterName']")
        if prop is not None:
            assert prop.get("stdset") == "0", f"{name}: SlicerParameterName must be a dynamic property"
            parameter = prop.find("string").text
            assert parameter in fields, f"{name}: SlicerParameterName '{parameter}' is not a parameter-node field"
            assert parameter not in bound, f"'{parameter}' is bound to two widgets"
            bound[parameter] = widget.get("class")
    assert set(bound) == set(fields), f"fields without a widget: {set(fields) - set(bound)}"
    for parameter, cls in bound.items():
        assert fields[parameter] in CONNECTABLE.get(cls, set()), \
            f"{parameter} ({fields[parameter]}) cannot be connected to a {cls}"


def test_node_selectors_follow_the_scene():
    tree, widgets = ui_widgets()
    selectors = {n for n, w in widgets.items() if w.get("class") in ("qMRMLNodeComboBox", "qSlicerMarkupsPlaceWidget")}
    connected = {c.find("receiver").text for c in tree.getroot().iter("connection")
                 if c.find("signal").text == "mrmlSceneChanged(vtkMRMLScene*)"}
    assert selectors and selectors <= connected
    # PD can be cleared: a model trained with augment.drop_pd (the shipped one) runs without it, and a combo box
    # without "None" keeps whatever volume it first picked
    optional = {"pdSelector", "dceEarlySelector", "dceLateSelector", "dceBaselineSelector", "centerSelector"}
    for name in selectors - {"centerPlaceWidget"}:
        none_enabled = widgets[name].find("property[@name='noneEnabled']/bool").text == "true"
        assert none_enabled == (name in optional), name


def _load_check_manifest():
    from script_module import load_file

    return load_file(ROOT / "Testing" / "check_manifest.py")


def test_manifest_check_passes_here_and_catches_gaps(tmp_path):
    check_manifest = _load_check_manifest()
    problems, destinations = check_manifest.check(ROOT)
    assert problems == []
    assert destinations["DCEDiff.py"] == "DCEDiff/DCEDiff.py"
    assert destinations["DCEDiffLib/__init__.py"] == "DCEDiffLib/__init__.py"
    assert destinations["Resources/UI/DCEDiff.ui"] == "Resources/UI/DCEDiff.ui"
    # a copy of the layout with one unlisted engine file, one listed-but-missing file and one escaping path
    copy = tmp_path / "repo"
    copy.mkdir()
    for part in ("CMakeLists.txt", "DCEDiff", "DCEDiffLib", "Resources"):
        src = ROOT / part
        (shutil.copytree if src.is_dir() else shutil.copy)(src, copy / part,
                                                           **({"ignore": shutil.ignore_patterns("__pycache__",
                                                                                               "*.nii.gz")}
                                                              if src.is_dir() else {}))
    (copy / "DCEDiffLib" / "brand_new.py").write_text("", encoding="utf-8")
    (copy / "DCEDiff" / "DCEDiffSlicerLib" / "dependencies.py").unlink()
    cmake = copy / "DCEDiff" / "CMakeLists.txt"
    cmake.write_text(cmake.read_text(encoding="utf-8").replace("  DCEDiffBatch.py\n", "  DCEDiffBatch.py\n  ../DCEDiffLib/x.py\n"))
    problems, _ = check_manifest.check(copy)
    text = "\n".join(problems)
    assert "DCEDiffLib/brand_new.py: not listed" in text
    assert "DCEDiff/DCEDiffSlicerLib/dependencies.py does not exist" in text
    assert "'../DCEDiffLib/x.py' would be installed outside qt-scripted-modules" in text
    assert any("phantom_case" in p and "does not exist" in p for p in problems)  # the .nii.gz left out of the copy


def test_extension_metadata_agrees():
    import json

    cmake = (ROOT / "CMakeLists.txt").read_text(encoding="utf-8")
    assert re.search(r"^project\(DCEDiff\)", cmake, re.M)
    assert 'set(EXTENSION_CATEGORY "Image Synthesis")' in cmake
    assert 'set(EXTENSION_DEPENDS "PyTorch")' in cmake
    for key in ("HOMEPAGE", "CONTRIBUTORS", "DESCRIPTION", "ICONURL", "SCREENSHOTURLS"):
        assert re.search(rf'set\(EXTENSION_{key} "[^"]+"\)', cmake), key
    entry = json.loads((ROOT / "docs" / "DCEDiff.json").read_text(encoding="utf-8"))
    assert entry["category"] == "Image Synthesis" and entry["build_dependencies"] == ["PyTorch"]
    assert {"$schema", "category", "scm_url"} <= set(entry)
    s4ext = dict(line.split(" ", 1) for line in (ROOT / "DCEDiff.s4ext").read_text(encoding="utf-8").splitlines()
                 if line.strip() and not line.startswith("#"))
    assert s4ext["category"].strip() == "Image Synthesis" and s4ext["depends"].strip() == "PyTorch"
    assert s4ext["scmurl"].strip() == entry["scm_url"]
    from PIL import Image

    assert Image.open(ROOT / "Resources" / "Icons" / "DCEDiff.png").size == (128, 128)
    # every icon/screenshot URL points into this repository (raw GitHub URL of the main branch) at a real image:
    # the ExtensionsIndex validator downloads each one
    raw = "https://raw.githubusercontent.com/dcediff/SlicerDCEDiff/main/"
    icon = re.search(r'set\(EXTENSION_ICONURL "([^"]+)"\)', cmake).group(1)
    screenshots = re.search(r'set\(EXTENSION_SCREENSHOTURLS "([^"]+)"\)', cmake).group(1).split()
    assert screenshots and s4ext["screenshoturls"].split() == screenshots and s4ext["iconurl"].strip() == icon
    for url in [icon] + screenshots:
        assert url.startswith(raw), url
        path = ROOT / url[len(raw):]
        assert path.is_file(), f"{url}: {path} does not exist"
        with Image.open(path) as image:
            image.verify()
    for url in screenshots:
        with Image.open(ROOT / url[len(raw):]) as image:
            assert min(image.size) >= 400, "a screenshot should be readable in the catalog"
