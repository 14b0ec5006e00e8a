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
# What Slicer's QUiLoader can build and set, verified in the real sources (Slicer v5.6.0 and v5.12.3 tags, the same
# lines in both; CTK 868d56c). No Slicer source is at hand in CI, so the facts are written down here.
# Slicer/CTK designer-plugin classes → the properties this .ui may set on them (their own Q_PROPERTYs):
PLUGIN_PROPERTIES = {
    # Libs/MRML/Widgets/DesignerPlugins/qMRMLWidgetPlugin.h
    "qMRMLWidget": set(),
    # Libs/MRML/Widgets/DesignerPlugins/qMRMLNodeComboBoxPlugin.h; Q_PROPERTYs in Libs/MRML/Widgets/
    # qMRMLNodeComboBox.h lines 61-93 (nodeTypes 61, showChildNodeTypes 63, noneEnabled 73, addEnabled 74,
    # removeEnabled 75, noneDisplay 91)
    "qMRMLNodeComboBox": {"nodeTypes", "showHidden", "showChildNodeTypes", "hideChildNodeTypes", "baseName",
                          "noneEnabled", "addEnabled", "removeEnabled", "editEnabled", "renameEnabled",
                          "interactionNodeSingletonTag", "selectNodeUponCreation", "noneDisplay", "sizeAdjustPolicy"},
    # Modules/Loadable/Markups/Widgets/DesignerPlugins/qSlicerMarkupsPlaceWidgetPlugin.h; Q_PROPERTYs in
    # Modules/Loadable/Markups/Widgets/qSlicerMarkupsPlaceWidget.h lines 43-55 (v5.12.3)
    "qSlicerMarkupsPlaceWidget": {"buttonsVisible", "deleteAllControlPointsOptionVisible",
                                  "unsetLastControlPointOptionVisible", "unsetAllControlPointsOptionVisible",
                                  "placeMultipleMarkups", "nodeColor", "defaultNodeColor", "currentNodeActive",
                                  "placeModeEnabled", "placeModePersistency"},
    # CTK Libs/Widgets/Plugins/ctkCollapsibleButtonPlugin.h; Q_PROPERTYs in Libs/Widgets/ctkCollapsibleButton.h
    # lines 48-66 (collapsed 48); text is QAbstractButton's (ctkCollapsibleButton derives from it, line 45)
    "ctkCollapsibleButton": {"collapsed", "collapsedHeight", "flat", "contentsFrameShape", "contentsFrameShadow",
                             "contentsLineWidth", "contentsMidLineWidth", "buttonTextAlignment", "indicatorAlignment",
                             "text", "checkable", "checked"},
}
# Qt's own widgets (Q_PROPERTYs of the class and its bases in Qt 5.15 and 6, the ones a .ui of this kind sets)
QWIDGET_PROPERTIES = {"geometry", "toolTip", "enabled", "visible", "minimumSize", "maximumSize", "sizePolicy",
                      "statusTip", "whatsThis", "font"}
QT_PROPERTIES = {
    "QWidget": set(),
    "QLabel": {"text", "wordWrap", "alignment", "textFormat", "openExternalLinks", "buddy"},
    "QPushButton": {"text", "checkable", "checked", "icon", "flat", "autoDefault", "default"},
    "QLineEdit": {"text", "readOnly", "placeholderText", "maxLength", "clearButtonEnabled"},
    "QComboBox": {"editable", "currentIndex", "maxVisibleItems", "sizeAdjustPolicy"},
    "QSpinBox": {"minimum", "maximum", "value", "singleStep", "suffix", "prefix", "readOnly"},
    "QProgressBar": {"minimum", "maximum", "value", "format", "textVisible", "orientation"},
    "QPlainTextEdit": {"readOnly", "maximumBlockCount", "plainText", "placeholderText", "lineWrapMode"},
}
# dynamic properties (stdset="0") Slicer reads: the parameter-node GUI connection (Base/Python/slicer/
# parameterNodeWrapper/wrapper.py line 28, SlicerParameterNamePropertyName, v5.6.0)
DYNAMIC_PROPERTIES = {"SlicerParameterName"}
# connections: (class, signature) of the signals and slots that exist. qMRMLWidget's signal
# mrmlSceneChanged(vtkMRMLScene*) (Libs/MRML/Widgets/qMRMLWidget.h line 66 v5.6.0, 71 v5.12.3); the setMRMLScene
# slot of qMRMLNodeComboBox (qMRMLNodeComboBox.h line 275/272) and of qSlicerWidget (Base/QTGUI/qSlicerWidget.h
# line 55/57), the base of qSlicerMarkupsPlaceWidget (setMRMLScene override, qSlicerMarkupsPlaceWidget.h 134/132)
SIGNALS = {("qMRMLWidget", "mrmlSceneChanged(vtkMRMLScene*)")}
SLOTS = {("qMRMLNodeComboBox", "setMRMLScene(vtkMRMLScene*)"),
         ("qSlicerMarkupsPlaceWidget", "setMRMLScene(vtkMRMLScene*)")}
SPACER_PROPERTIES = {"orientation", "sizeHint", "sizeType"}
ENUMS = {"Qt::Vertical", "Qt::Horizontal"}
EXPECTED_USED = {"applyButton": "QPushButton", "importModelButton": "QPushButton", "shippedModelButton": "QPushButton",
                 "modelInfoLabel": "QLabel", "progressBar": "QProgressBar", "statusLabel": "QLabel",
                 "logTextEdit": "QPlainTextEdit", "centerPlaceWidget": "qSlicerMarkupsPlaceWidget",
                 "inputsCollapsibleButton": "ctkCollapsibleButton", "settingsCollapsibleButton": "ctkCollapsibleButton",
                 "installProstateFinderButton": "QPushButton", "prostateFinderStatusLabel": "QLabel"}


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


def ui_problems(root) -> list:
    """What a real Slicer's QUiLoader would not build or set in the .ui tree ``root``: unknown widget classes, a
    property the class does not have (Qt only warns and skips it), a dynamic property Slicer does not read, a
    custom widget undeclared or with another header, an enum Qt does not know, a connection to a missing signal or
    slot."""
    problems = []
    declared = {c.findtext("class"): c for c in root.iter("customwidget")}
    used = set()
    for widget in root.iter("widget"):
        cls, name = widget.get("class"), widget.get("name")
        used.add(cls)
        allowed = PLUGIN_PROPERTIES.get(cls, QT_PROPERTIES.get(cls))
        if allowed is None:
            problems.append(f"{name}: class {cls} is neither a Qt widget nor a Slicer/CTK designer-plugin class")
            continue
        for prop in widget.findall("property"):
            key = prop.get("name")
            if prop.get("stdset") == "0":
                if key not in DYNAMIC_PROPERTIES:
                    problems.append(f"{name}: dynamic property {key!r} is not one Slicer reads")
            elif key not in allowed | QWIDGET_PROPERTIES:
                problems.append(f"{name}: {cls} has no property {key!r}")
    for spacer in root.iter("spacer"):
        for prop in spacer.findall("property"):
            if prop.get("name") not in SPACER_PROPERTIES:
                problems.append(f"{spacer.get('name')}: a spacer has no property {prop.get('name')!r}")
    for cls in sorted(used & set(PLUGIN_PROPERTIES)):
        if cls not in declared:
            problems.append(f"{cls}: used but not declared in <customwidgets>")
        elif declared[cls].findtext("header") != f"{cls}.h":
            problems.append(f"{cls}: <customwidget> header {declared[cls].findtext('header')!r}, expected '{cls}.h'")
    for enum in root.iter("enum"):
        if enum.text not in ENUMS:
            problems.append(f"enum {enum.text!r} is not spelled as Qt expects")
    classes = {w.get("name"): w.get("class") for w in root.iter("widget")}
    for connection in root.iter("connection"):
        sender, receiver = connection.findtext("sender"), connection.findtext("receiver")
        if (classes.get(sender), connection.findtext("signal")) not in SIGNALS:
            problems.append(f"{sender}: no signal {connection.findtext('signal')}")
        if (classes.get(receiver), connection.findtext("slot")) not in SLOTS:
            problems.append(f"{receiver}: no slot {connection.findtext('slot')}")
    return problems


def test_the_ui_sets_only_what_the_real_classes_have():
    tree, widgets = ui_widgets()
    assert ui_problems(tree.getroot()) == []
    text = UI.read_text(encoding="utf-8")
    # each kind of mistake is caught (a misspelt property is only a warning in Slicer's log: the widget keeps its
    # default, e.g. a "None" entry that was meant to be hidden)
    cases = {'name="noneDisplay"': ('name="noneText"', "pdSelector: qMRMLNodeComboBox has no property 'noneText'"),
             '<enum>Qt::Vertical</enum>': ('<enum>Vertical</enum>', "enum 'Vertical' is not spelled as Qt expects"),
             '<header>qMRMLNodeComboBox.h</header>': ('<header>qMRMLNodeComboBox</header>',
                                                      "qMRMLNodeComboBox: <customwidget> header 'qMRMLNodeComboBox'"),
             'name="SlicerParameterName" stdset="0"><string>t2w': (
                 'name="ParameterName" stdset="0"><string>t2w',
                 "t2wSelector: dynamic property 'ParameterName' is not one Slicer reads"),
             'class="qSlicerMarkupsPlaceWidget"': ('class="qSlicerMarkupsPlacementWidget"',
                                                    "class qSlicerMarkupsPlacementWidget is neither"),
             '<slot>setMRMLScene(vtkMRMLScene*)</slot></connection>\n </connections>': (
                 '<slot>setMRMLScene(vtkMRMLScene)</slot></connection>\n </connections>',
                 "centerPlaceWidget: no slot setMRMLScene(vtkMRMLScene)")}
    for before, (after, expected) in cases.items():
        assert text.count(before) >= 1, before
        problems = ui_problems(ET.fromstring(text.replace(before, after, 1).encode("utf-8")))
        assert any(expected in p for p in problems), (expected, problems)


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


def test_manifest_check_catches_an_install_that_would_not_keep_the_layout(tmp_path):
    """The build tree is right either way (ctest passes); only the installed package would lack DCEDiffLib/ and
    Resources/ next to DCEDiff.py (CTK installs the folder itself without NO_INSTALL_SUBDIR) or hide the module
    one folder down (WITH_SUBDIR)."""
    check_manifest = _load_check_manifest()
    assert check_manifest.install_layout_problems(ROOT) == []
    top = (ROOT / "CMakeLists.txt").read_text(encoding="utf-8")
    module = (ROOT / "DCEDiff" / "CMakeLists.txt").read_text(encoding="utf-8")
    (tmp_path / "DCEDiff").mkdir()

    def problems(top_text, module_text):
        (tmp_path / "CMakeLists.txt").write_text(top_text, encoding="utf-8")
        (tmp_path / "DCEDiff" / "CMakeLists.txt").write_text(module_text, encoding="utf-8")
        return "\n".join(check_manifest.install_layout_problems(tmp_path))

    assert "  NO_INSTALL_SUBDIR\n" in top and "  WITH_GENERIC_TESTS\n" in module
    # the option only in a comment does not count
    text = problems(top.replace("  NO_INSTALL_SUBDIR\n", "  # NO_INSTALL_SUBDIR\n"), module)
    assert "ctkMacroCompilePythonScript(...) lacks 'NO_INSTALL_SUBDIR'" in text
    text = problems(top.replace("INSTALL_DIR ${Slicer_INSTALL_QTSCRIPTEDMODULES_LIB_DIR}",
                                "INSTALL_DIR ${Slicer_INSTALL_QTLOADABLEMODULES_LIB_DIR}"), module)
    assert "lacks 'INSTALL_DIR ${Slicer_INSTALL_QTSCRIPTEDMODULES_LIB_DIR}'" in text
    text = problems(top, module.replace("  WITH_GENERIC_TESTS\n", "  WITH_GENERIC_TESTS\n  WITH_SUBDIR\n"))
    assert "slicerMacroBuildScriptedModule(...) has 'WITH_SUBDIR'" in text
    text = problems(top.replace("ctkMacroCompilePythonScript(", "message("), module)
    assert "CMakeLists.txt: no ctkMacroCompilePythonScript(...) call" in text


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


def test_the_manifest_check_reports_the_install_layout_and_reads_cmake_words_across_lines(tmp_path):
    """Round-18 mutation audit. check_manifest.check (what ``make test`` runs) lists the install-layout problems
    among the others; a call's words are CMake's, whitespace-separated: INSTALL_DIR and its value on two lines are
    the same argument pair."""
    check_manifest = _load_check_manifest()
    copy = tmp_path / "repo"
    copy.mkdir()
    for part in ("CMakeLists.txt", "DCEDiff", "DCEDiffLib", "Resources"):
        src = ROOT / part
        if src.is_dir():
            shutil.copytree(src, copy / part, ignore=shutil.ignore_patterns("__pycache__", "*.nii.gz"))
        else:
            shutil.copy(src, copy / part)
    module = copy / "DCEDiff" / "CMakeLists.txt"
    module.write_text(module.read_text(encoding="utf-8").replace("  WITH_GENERIC_TESTS\n",
                                                                 "  WITH_GENERIC_TESTS\n  WITH_SUBDIR\n"))
    problems, _ = check_manifest.check(copy)
    assert any("slicerMacroBuildScriptedModule(...) has 'WITH_SUBDIR'" in p for p in problems), problems
    top = copy / "CMakeLists.txt"
    text = top.read_text(encoding="utf-8")
    split = text.replace("INSTALL_DIR ${Slicer_INSTALL_QTSCRIPTEDMODULES_LIB_DIR}",
                         "INSTALL_DIR\n    ${Slicer_INSTALL_QTSCRIPTEDMODULES_LIB_DIR}")
    assert split != text
    top.write_text(split, encoding="utf-8")
    module.write_text((ROOT / "DCEDiff" / "CMakeLists.txt").read_text(encoding="utf-8"), encoding="utf-8")
    assert check_manifest.install_layout_problems(copy) == []
