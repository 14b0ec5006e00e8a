"""The field types of DCEDiff's ``@parameterNodeWrapper`` class against what Slicer's wrapper accepts.

slicer-core has no ``slicer.parameterNodeWrapper``, and ``Testing/test_slicer_module.py`` replaces it with an identity
decorator, so a field type that Slicer's wrapper refuses passes every other test. The rule checked here is Slicer's
(``Base/Python/slicer/parameterNodeWrapper``, the same in 5.6 to 5.12 and main):

- ``wrapper.py`` ``_initMethod``: wrapping a parameter node that does not hold a field yet writes the field's default,
  ``parameter.write(self.parameterNode, parameter.default.value)``; a node field's default is None.
- ``serializers.py`` ``NodeSerializer``: a field of *one* node class stores None ("None is a valid value").
- ``serializers.py`` ``UnionSerializer._findBestSerializer``: a ``Union`` stores a value only through a member whose
  serializer ``canSerialize(type(value))``; no node class can serialize ``NoneType``, so writing None to
  ``Union[NodeA, NodeB]`` raises ``TypeError: Unable to write value 'None'``. ``util.isNodeOrUnionOfNodes``: "Note
  the None is necessary for the parameterNodeWrapper"; Slicer's own LineProfile module declares
  ``vtkMRMLMarkupsLineNode | vtkMRMLMarkupsCurveNode | None``.

Without None the module's parameter node could not be made in Slicer (``DCEDiffLogic.getParameterNode`` raised on a new
scene, so the panel never connected), and choosing "None" in a union's node selector raised instead of clearing it.
The annotations are evaluated with slicer-core's real MRML classes.
"""

import ast
import typing
from pathlib import Path

import pytest

slicer = pytest.importorskip("slicer", reason="slicer-core (pip install slicer-core) is not installed")

ROOT = Path(__file__).resolve().parent.parent
MODULE = ROOT / "DCEDiff" / "DCEDiff.py"


def node_field_types() -> dict:
    """{field: type} of every MRML-node field of the ``@parameterNodeWrapper`` class in DCEDiff.py, evaluated with
    ``typing`` and slicer-core's node classes (the module itself imports Slicer's GUI and cannot be imported here)."""
    tree = ast.parse(MODULE.read_text(encoding="utf-8"))
    classes = [n for n in tree.body if isinstance(n, ast.ClassDef)
               and any(getattr(d, "id", None) == "parameterNodeWrapper" for d in n.decorator_list)]
    assert len(classes) == 1, "expected one @parameterNodeWrapper class in DCEDiff.py"
    namespace = {name: getattr(typing, name) for name in ("Annotated", "Optional", "Union")}
    namespace.update({name: getattr(slicer, name) for name in dir(slicer) if name.startswith("vtkMRML")})
    fields = {}
    for stmt in classes[0].body:
        if isinstance(stmt, ast.AnnAssign) and "vtkMRML" in ast.unparse(stmt.annotation):
            fields[stmt.target.id] = eval(ast.unparse(stmt.annotation), namespace)  # noqa: S307  (our own source)
    return fields


def can_hold_none(datatype) -> bool:
    """Whether Slicer's wrapper can store None in a field of ``datatype`` (the rule quoted in the module docstring)."""
    if isinstance(datatype, type) and issubclass(datatype, slicer.vtkMRMLNode):
        return True  # NodeSerializer: None is a valid value
    if typing.get_origin(datatype) is typing.Union:
        return type(None) in typing.get_args(datatype)  # UnionSerializer: only through a NoneType member
    return False


def test_every_node_field_can_hold_none_as_slicers_wrapper_writes_it():
    fields = node_field_types()
    assert {"t2w", "pd", "adc", "t1pre", "dceEarly", "dceLate", "dceBaseline", "center"} <= set(fields)
    refused = sorted(name for name, datatype in fields.items() if not can_hold_none(datatype))
    assert refused == [], (f"{refused}: a Union of node classes without None; Slicer's parameterNodeWrapper raises "
                           "TypeError writing the default None (wrap it in Optional[...])")


def test_the_centre_selector_still_offers_both_markups_kinds():
    """The centre takes a point list or an ROI (Slicer's util.getNodeTypes leaves NoneType out of the selector)."""
    args = typing.get_args(node_field_types()["center"])
    assert {a for a in args if a is not type(None)} == {slicer.vtkMRMLMarkupsFiducialNode, slicer.vtkMRMLMarkupsROINode}


def test_the_rule_refuses_a_union_without_none():
    """The check itself: the type DCEDiff.py declared before this fix is refused, Slicer's LineProfile form passes."""
    assert not can_hold_none(typing.Union[slicer.vtkMRMLMarkupsFiducialNode, slicer.vtkMRMLMarkupsROINode])
    assert can_hold_none(typing.Optional[typing.Union[slicer.vtkMRMLMarkupsFiducialNode,
                                                      slicer.vtkMRMLMarkupsROINode]])
    assert can_hold_none(slicer.vtkMRMLScalarVolumeNode)
